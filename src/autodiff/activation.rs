//! Hidden-layer nonlinearities, each function beside its derivative.
//!
//! The derivative is written in terms of the output `y = f(x)`, so a layer
//! applies its activation in place on its product and keeps no
//! pre-activation: the tape's [`super::ops::Affine`] and inference share this
//! one pass.

use ndarray::{Array2, ArrayViewMut2, Zip};
use serde::{Deserialize, Serialize};

use crate::scalar::wide;
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

    /// `a = f(a + bias)` in place, row by row (`bias` a row as wide as `a`;
    /// `f` the identity for `None`): a layer's bias and activation in one pass
    /// over its product.
    pub fn bias_then<T: Scalar>(act: Option<Self>, mut a: ArrayViewMut2<'_, T>, bias: Option<&[T]>) {
        #[inline(always)]
        fn rows<T: Scalar>(a: &mut ArrayViewMut2<'_, T>, bias: Option<&[T]>, f: impl Fn(T) -> T) {
            let n = a.ncols().max(1);
            let a = a.as_slice_mut().expect("a product's row-major output");
            match bias {
                // plain loops over contiguous rows, which the compiler vectorizes
                Some(b) => a
                    .chunks_exact_mut(n)
                    .for_each(|r| r.iter_mut().zip(b).for_each(|(v, &b)| *v = f(*v + b))),
                None => a.iter_mut().for_each(|v| *v = f(*v)),
            }
        }
        let a = &mut a;
        match act {
            None => wide(|| rows(a, bias, |v| v)),
            Some(Activation::Relu) => wide(|| rows(a, bias, |v| v.max(T::zero()))),
            Some(Activation::LeakyRelu(k)) => {
                let k = T::from_f64(k);
                wide(|| rows(a, bias, |v| if v > T::zero() { v } else { k * v }))
            }
            Some(Activation::Tanh) => rows(a, bias, T::tanh),
        }
    }

    /// `g * f'(x)` from the output `y = f(x)`, in place of `g`; with `sums`,
    /// each row of it is also added into `sums` as it is made (an affine
    /// layer's bias gradient: the column sums, from the first row down).
    pub fn backprop<T: Scalar>(self, y: &Array2<T>, g: &mut Array2<T>, sums: Option<&mut [T]>) {
        fn each<T: Scalar>(y: &Array2<T>, g: &mut Array2<T>, mut sums: Option<&mut [T]>, df: impl Fn(T, T) -> T) {
            let n = g.ncols().max(1);
            match (y.as_slice(), g.as_slice_mut()) {
                (Some(y), Some(g)) => wide(|| {
                    for (g, y) in g.chunks_exact_mut(n).zip(y.chunks_exact(n)) {
                        g.iter_mut().zip(y).for_each(|(g, &y)| *g = df(y, *g));
                        if let Some(s) = sums.as_deref_mut() {
                            s.iter_mut().zip(g.iter()).for_each(|(s, &d)| *s += d);
                        }
                    }
                }),
                _ => {
                    Zip::from(&mut *g).and(y).for_each(|g, &y| *g = df(y, *g));
                    if let Some(s) = sums {
                        super::ops::add_column_sums(s, g);
                    }
                }
            }
        }
        match self {
            Activation::Relu => each(y, g, sums, |y, g| if y > T::zero() { g } else { T::zero() }),
            Activation::LeakyRelu(k) => {
                let k = T::from_f64(k);
                each(y, g, sums, |y, g| if y > T::zero() { g } else { k * g })
            }
            Activation::Tanh => each(y, g, sums, |y, g| g * (T::one() - y * y)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    const ALL: [Activation; 3] = [Activation::Relu, Activation::LeakyRelu(0.1), Activation::Tanh];

    #[test]
    fn bias_then_is_the_add_then_the_activation_bit_for_bit() {
        let x = Array2::from_shape_fn((9, 70), |(i, j)| ((i * 13 + j * 7) % 23) as f32 * 0.37 - 4.1);
        let b: Vec<f32> = (0..70).map(|j| (j % 9) as f32 * 0.53 - 2.0).collect();
        for act in [None, Some(ALL[0]), Some(ALL[1]), Some(ALL[2])] {
            let mut fused = x.clone();
            Activation::bias_then(act, fused.view_mut(), Some(&b));
            let f = |v: f32| match act {
                None => v,
                Some(Activation::Relu) => v.max(0.0),
                Some(Activation::LeakyRelu(k)) => {
                    if v > 0.0 {
                        v
                    } else {
                        k as f32 * v
                    }
                }
                Some(Activation::Tanh) => v.tanh(),
            };
            let apart = Array2::from_shape_fn(x.dim(), |(i, j)| f(x[[i, j]] + b[j]));
            assert!(
                fused.iter().zip(&apart).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{act:?}"
            );
        }
    }

    #[test]
    fn backprop_adds_up_its_rows_as_column_sums_would() {
        let y = Array2::from_shape_fn((33, 40), |(i, j)| ((i * 5 + j * 3) % 17) as f32 * 0.11 - 0.9);
        let g = Array2::from_shape_fn((33, 40), |(i, j)| {
            ((i * 7 + j) % 13) as f32 * 10f32.powi(i as i32 % 4 - 2)
        });
        let backprop = |act: Activation, g: &Array2<f32>, sums: Option<&mut [f32]>| {
            let mut d = g.clone();
            act.backprop(&y, &mut d, sums);
            d
        };
        for act in ALL {
            let mut sums = vec![0f32; 40];
            let d = backprop(act, &g, Some(&mut sums));
            assert_eq!(d, backprop(act, &g, None));
            // the derivative itself, entry by entry
            for ((&d, &y), &g) in d.iter().zip(&y).zip(&g) {
                let want = match act {
                    Activation::Relu => {
                        if y > 0.0 {
                            g
                        } else {
                            0.0
                        }
                    }
                    Activation::LeakyRelu(k) => g * if y > 0.0 { 1.0 } else { k as f32 },
                    Activation::Tanh => g * (1.0 - y * y),
                };
                assert_eq!(d.to_bits(), want.to_bits(), "{act:?} at y = {y}, g = {g}");
            }
            let want = d.sum_axis(ndarray::Axis(0));
            assert!(
                sums.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{act:?}"
            );
            // a column-major gradient takes the other path, to the same sums
            let mut gf = Array2::zeros(g.raw_dim().f());
            gf.assign(&g);
            let mut sums_f = vec![0f32; 40];
            let df = backprop(act, &gf, Some(&mut sums_f));
            assert_eq!(df, d);
            assert!(
                sums_f.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{act:?} column-major"
            );
        }
    }
}
