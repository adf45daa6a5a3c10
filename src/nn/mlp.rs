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

    /// Forward pass without a tape (sampling, evaluation): the tape's ops,
    /// each row computed alike whatever the others.
    pub fn infer<T: Scalar>(&self, store: &ParamStore<T>, x: Input<'_, T>) -> Array2<T> {
        let mut h = self.layers[0].infer(store, x, self.act(0));
        for i in 1..self.layers.len() {
            let next = self.layers[i].infer(store, Input::Dense(h.view()), self.act(i));
            crate::autodiff::pool::give(std::mem::replace(&mut h, next));
        }
        h
    }

    /// Floating-point operations of one forward row (multiply and add counted apart).
    pub fn flops_per_row(&self) -> usize {
        self.layers.iter().map(Linear::flops_per_row).sum()
    }
}
