//! Hidden-layer nonlinearities, each function beside its derivative.
//!
//! The derivative is written in terms of the output `y = f(x)`, so a layer
//! applies its activation in place on its product and keeps no
//! pre-activation: the tape's [`super::ops::Affine`] and inference share this
//! one pass.

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use super::pool;
use crate::Scalar;

/// Hidden-layer nonlinearity.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`; derivative 0 at 0.
    Relu,
    /// `x if x > 0 else slope * x`, for a finite `slope >= 0` (so that the
    /// sign of `y` tells the side of 0); derivative `slope` at 0.
    LeakyRelu(f64),
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// `Err` naming the slope of a leaky ReLU that is negative or not finite.
    pub fn check(self) -> Result<(), String> {
        match self {
            Activation::LeakyRelu(k) if !(k.is_finite() && k >= 0.0) => Err(format!(
                "the leaky ReLU slope must be finite and >= 0 (its derivative is read from the sign of the output), got {k}"
            )),
            _ => Ok(()),
        }
    }

    /// `y = f(x)` in place.
    pub fn apply<T: Scalar>(self, x: &mut Array2<T>) {
        fn each<T: Scalar>(x: &mut Array2<T>, f: impl Fn(T) -> T) {
            match x.as_slice_mut() {
                // contiguous (the usual case): a plain loop the compiler vectorizes
                Some(s) => s.iter_mut().for_each(|v| *v = f(*v)),
                None => x.mapv_inplace(f),
            }
        }
        match self {
            Activation::Relu => each(x, |v| v.max(T::zero())),
            Activation::LeakyRelu(k) => {
                let k = T::from_f64(k);
                each(x, |v| if v > T::zero() { v } else { k * v })
            }
            Activation::Tanh => each(x, T::tanh),
        }
    }

    /// `g * f'(x)` from the output `y = f(x)`, into a pooled array.
    pub fn backprop<T: Scalar>(self, y: &Array2<T>, g: &Array2<T>) -> Array2<T> {
        fn each<T: Scalar>(y: &Array2<T>, g: &Array2<T>, df: impl Fn(T, T) -> T) -> Array2<T> {
            let mut d = pool::scratch(g.dim());
            match (d.as_slice_mut(), y.as_slice(), g.as_slice()) {
                (Some(d), Some(y), Some(g)) => d
                    .iter_mut()
                    .zip(y.iter().zip(g))
                    .for_each(|(d, (&y, &g))| *d = df(y, g)),
                _ => Zip::from(&mut d).and(y).and(g).for_each(|d, &y, &g| *d = df(y, g)),
            }
            d
        }
        match self {
            Activation::Relu => each(y, g, |y, g| if y > T::zero() { g } else { T::zero() }),
            Activation::LeakyRelu(k) => {
                let k = T::from_f64(k);
                each(y, g, |y, g| if y > T::zero() { g } else { k * g })
            }
            Activation::Tanh => each(y, g, |y, g| g * (T::one() - y * y)),
        }
    }
}
