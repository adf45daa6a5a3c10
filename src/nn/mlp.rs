//! A multi-layer perceptron.

use rand::Rng;

use ndarray::Array2;

use super::{Bound, Csr, Init, Input, Linear, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::Scalar;

pub use crate::autodiff::Activation;

impl Activation {
    /// The initialisation that suits it: He for ReLU-like, Xavier for tanh.
    pub fn init(self) -> Init {
        match self {
            Activation::Tanh => Init::Xavier,
            _ => Init::He,
        }
    }
}

/// Layers `sizes[0] -> sizes[1] -> ... -> sizes[n]`, the activation after
/// every layer except the last unless `activate_last`.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
    pub activation: Activation,
    pub activate_last: bool,
}

impl Mlp {
    /// Creates layers `name.0`, `name.1`, ... in `store` under `group`.
    pub fn new<T: Scalar, R: Rng>(
        store: &mut ParamStore<T>,
        name: &str,
        group: &str,
        sizes: &[usize],
        activation: Activation,
        activate_last: bool,
        rng: &mut R,
    ) -> Self {
        assert!(
            sizes.len() >= 2,
            "Mlp needs at least an input and an output size, got {sizes:?}"
        );
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(store, &format!("{name}.{i}"), group, w[0], w[1], activation.init(), rng))
            .collect();
        Mlp {
            layers,
            activation,
            activate_last,
        }
    }

    pub fn input_dim(&self) -> usize {
        self.layers[0].fan_in
    }

    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].fan_out
    }

    pub fn forward<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        let first = self.layers[0].forward(tape, p, x, self.act(0));
        self.forward_rest(tape, p, first)
    }

    /// The same network on sparse constant input rows.
    pub fn forward_sparse<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, x: std::sync::Arc<Csr>) -> Var {
        let first = self.layers[0].forward_sparse(tape, p, x, self.act(0));
        self.forward_rest(tape, p, first)
    }

    /// The activation after layer `i`, if any.
    fn act(&self, i: usize) -> Option<Activation> {
        (i + 1 < self.layers.len() || self.activate_last).then_some(self.activation)
    }

    /// Everything after the first layer.
    fn forward_rest<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        (1..self.layers.len()).fold(x, |x, i| self.layers[i].forward(tape, p, x, self.act(i)))
    }

    /// [`Mlp::forward_sparse`] with every layer's output computed beforehand
    /// by [`Mlp::infer_layers`] on the same weights and rows (see [`Tape::record`]).
    pub fn record_sparse<T: Scalar>(
        &self,
        tape: &mut Tape<T>,
        p: &Bound,
        x: crate::autodiff::ops::SparseMatMul,
        values: Vec<Array2<T>>,
    ) -> Var {
        assert_eq!(values.len(), self.layers.len(), "record_sparse: one value per layer");
        let mut values = values.into_iter();
        let first = values.next().expect("a layer");
        let h = self.layers[0].record_sparse(tape, p, x, self.act(0), first);
        values
            .enumerate()
            .fold(h, |h, (i, v)| self.layers[i + 1].record(tape, p, h, self.act(i + 1), v))
    }

    /// Forward pass without a tape (sampling, evaluation): the tape's ops,
    /// each row computed alike whatever the others.
    pub fn infer<T: Scalar>(&self, store: &ParamStore<T>, x: Input<'_, T>) -> Array2<T> {
        let mut layers = self.infer_layers(store, x);
        let h = layers.pop().expect("a layer");
        layers.into_iter().for_each(crate::autodiff::pool::give);
        h
    }

    /// [`Mlp::infer`] keeping every layer's output.
    pub fn infer_layers<T: Scalar>(&self, store: &ParamStore<T>, x: Input<'_, T>) -> Vec<Array2<T>> {
        let mut out: Vec<Array2<T>> = (self.layers.iter())
            .map(|l| crate::autodiff::pool::scratch((x.nrows(), l.fan_out)))
            .collect();
        self.infer_into(store, x, &mut out, 0);
        out
    }

    /// [`Mlp::infer_layers`] into rows `at..` of `out`, one row-major array per layer.
    pub fn infer_into<T: Scalar>(&self, store: &ParamStore<T>, x: Input<'_, T>, out: &mut [Array2<T>], at: usize) {
        assert_eq!(out.len(), self.layers.len(), "Mlp::infer_into: one output per layer");
        let rows = ndarray::s![at..at + x.nrows(), ..];
        self.layers[0].infer_into(store, x, self.act(0), out[0].slice_mut(rows));
        for i in 1..self.layers.len() {
            let (done, rest) = out.split_at_mut(i);
            let h = Input::Dense(done[i - 1].slice(rows));
            self.layers[i].infer_into(store, h, self.act(i), rest[0].slice_mut(rows));
        }
    }

    /// Floating-point operations of one forward row (multiply and add counted apart).
    pub fn flops_per_row(&self) -> usize {
        self.layers.iter().map(Linear::flops_per_row).sum()
    }
}
