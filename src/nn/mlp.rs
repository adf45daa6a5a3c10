//! A multi-layer perceptron.

use rand::Rng;
use serde::{Deserialize, Serialize};

use ndarray::Array2;

use super::{Bound, Csr, Init, Input, Linear, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::Scalar;

/// Hidden-layer nonlinearity.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    LeakyRelu(f64),
    Tanh,
}

impl Activation {
    pub fn apply<T: Scalar>(self, tape: &mut Tape<T>, x: Var) -> Var {
        match self {
            Activation::Relu => tape.relu(x),
            Activation::LeakyRelu(k) => tape.leaky_relu(x, k),
            Activation::Tanh => tape.tanh(x),
        }
    }

    /// The activation applied in place, without a tape (same formulas as the tape ops).
    pub fn infer_inplace<T: Scalar>(self, h: &mut ndarray::Array2<T>) {
        fn each<T: Scalar>(h: &mut ndarray::Array2<T>, f: impl Fn(T) -> T) {
            match h.as_slice_mut() {
                // contiguous (the usual case): a plain loop the compiler vectorizes
                Some(s) => s.iter_mut().for_each(|v| *v = f(*v)),
                None => h.mapv_inplace(f),
            }
        }
        match self {
            Activation::Relu => each(h, |v| v.max(T::zero())),
            Activation::LeakyRelu(k) => {
                let k = T::from_f64(k);
                each(h, |v| if v > T::zero() { v } else { k * v })
            }
            Activation::Tanh => each(h, T::tanh),
        }
    }

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
        let first = self.layers[0].forward(tape, p, x);
        self.forward_rest(tape, p, first)
    }

    /// The same network on sparse constant input rows.
    pub fn forward_sparse<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, x: std::sync::Arc<Csr>) -> Var {
        let first = self.layers[0].forward_sparse(tape, p, x);
        self.forward_rest(tape, p, first)
    }

    /// Everything after the first layer's affine map.
    fn forward_rest<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, mut x: Var) -> Var {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                x = layer.forward(tape, p, x);
            }
            if i < last || self.activate_last {
                x = self.activation.apply(tape, x);
            }
        }
        x
    }

    /// Forward pass without a tape (sampling, evaluation).
    pub fn infer<T: Scalar>(&self, store: &ParamStore<T>, x: Input<'_, T>) -> Array2<T> {
        let last = self.layers.len() - 1;
        let mut h = self.layers[0].infer(store, x);
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                let next = layer.infer(store, Input::Dense(h.view()));
                crate::autodiff::pool::give(std::mem::replace(&mut h, next));
            }
            if i < last || self.activate_last {
                self.activation.infer_inplace(&mut h);
            }
        }
        h
    }

    /// Floating-point operations of one forward row (multiply and add counted apart).
    pub fn flops_per_row(&self) -> usize {
        self.layers.iter().map(Linear::flops_per_row).sum()
    }
}
