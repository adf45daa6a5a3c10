//! The regression loss `g` applied to balance residuals `t` (Hu et al., "Beyond
//! Squared Error", ICLR 2025, arXiv 2410.02596), in this module's sign convention
//! `t = log(backward flow) - log(forward flow)` (see the [module docs](super)).
//!
//! | name | `g(t)` | `g'(t)` | `g''(0)` |
//! | --- | --- | --- | --- |
//! | `squared` | `t^2` | `2t` | 2 |
//! | `linex:<a>` | `(exp(a t) - a t - 1) / a^2` | `(exp(a t) - 1) / a` | 1 |
//! | `linex1` | `exp(t) - t - 1` (= `linex:1`) | `exp(t) - 1` | 1 |
//! | `linex0.5` | `4 exp(t/2) - 2t - 4` (= `linex:0.5`) | `2 exp(t/2) - 2` | 1 |
//! | `cosh` | `exp(t) + exp(-t) - 2` | `exp(t) - exp(-t)` | 2 |
//!
//! Every `g` is convex with `g(0) = g'(0) = 0`, so `g >= 0`. Linex(a) is
//! asymmetric: for `a > 0` it punishes `t > 0` (a trajectory the forward policy
//! under-weights relative to the target) exponentially and `t < 0` only linearly;
//! `a < 0` is the mirror image. On-policy and with the exact `Z`, writing
//! `q = P_F(tau)` and `pi = P_B(tau|x) R(x) / Z`,
//! `E_q[g_a(t)] = (E_q[(pi/q)^a] - 1) / a^2 + KL(q || pi) / a`: Linex(1) is the
//! reverse KL, while Linex(-1) is `chi^2(q || pi) - KL(q || pi)`, far more
//! zero-forcing. A code base that uses the opposite residual `-t` with the same
//! formula is therefore running Linex(-a), with the opposite exploration behaviour.
//!
//! Values are computed in `f64`: an overflow gives `+inf`, never NaN. The tape op
//! [`Regression`] reports `g(t)` forward and backpropagates `g'(clip(t))`, where
//! `clip(t)` limits the (detached) residual to `[-clip, clip]` (default
//! [`DEFAULT_CLIP`] = 50, as in the paper's official code), so a huge residual
//! gives a large but finite gradient. Where `|t| <= clip` the gradient is exact.

use std::fmt;
use std::str::FromStr;

use ndarray::Array2;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::autodiff::{Op, Tape, Var};
use crate::error::Result;
use crate::{Error, Scalar};

/// Default clip on the residual inside `g'` (the official code's 50).
pub const DEFAULT_CLIP: f64 = 50.0;

/// Largest `|a| * clip` (Linex) or `clip` (cosh) accepted: keeps `g'(clip) < e^80`,
/// finite in `f32`.
pub const MAX_EXPONENT: f64 = 80.0;

/// The regression loss `g`; names `squared | linex1 | linex0.5 | cosh | linex:<alpha>`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum RegressionLoss {
    /// `t^2`.
    Squared,
    /// `(exp(a t) - a t - 1) / a^2` for a real `a != 0`.
    Linex(f64),
    /// `exp(t) + exp(-t) - 2 = 4 sinh(t/2)^2`.
    ShiftedCosh,
}

impl RegressionLoss {
    /// `linex1`: `exp(t) - t - 1`.
    pub const LINEX1: Self = RegressionLoss::Linex(1.0);
    /// `linex0.5`: `4 exp(t/2) - 2t - 4`.
    pub const LINEX_HALF: Self = RegressionLoss::Linex(0.5);

    /// Linex(`alpha`), refusing `alpha = 0` and non-finite values (naming `objective.g`).
    pub fn linex(alpha: f64) -> Result<Self> {
        let g = RegressionLoss::Linex(alpha);
        g.validate("objective.g")?;
        Ok(g)
    }

    /// Refuses Linex with `alpha = 0` (where the formula is 0/0) or a non-finite `alpha`.
    pub fn validate(&self, option: &str) -> Result<()> {
        match *self {
            RegressionLoss::Linex(a) if !(a.is_finite() && a != 0.0) => Err(Error::config(
                option,
                format!(
                    "linex alpha must be a finite nonzero number, got {a} (use `squared` for the alpha -> 0 limit)"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `g(t)`, in `f64`: `+inf` on overflow, never NaN for a non-NaN `t`.
    pub fn value(&self, t: f64) -> f64 {
        match *self {
            RegressionLoss::Squared => t * t,
            RegressionLoss::Linex(a) => expm1_minus_x(a * t) / (a * a),
            RegressionLoss::ShiftedCosh => {
                let s = (0.5 * t).sinh();
                4.0 * s * s
            }
        }
    }

    /// `g'(t)` (no clipping here; [`Regression`] clips `t` first).
    pub fn deriv(&self, t: f64) -> f64 {
        match *self {
            RegressionLoss::Squared => 2.0 * t,
            RegressionLoss::Linex(a) => (a * t).exp_m1() / a,
            RegressionLoss::ShiftedCosh => 2.0 * t.sinh(),
        }
    }

    /// `g''(0)`: 2 for `squared` and `cosh`, 1 for every Linex.
    pub fn curvature_at_zero(&self) -> f64 {
        match self {
            RegressionLoss::Squared | RegressionLoss::ShiftedCosh => 2.0,
            RegressionLoss::Linex(_) => 1.0,
        }
    }

    /// The exponent `g'` reaches at the clip (`|a| clip` for Linex, `clip` for cosh, 0 for squared).
    pub fn exponent_at(&self, clip: f64) -> f64 {
        match *self {
            RegressionLoss::Squared => 0.0,
            RegressionLoss::Linex(a) => a.abs() * clip,
            RegressionLoss::ShiftedCosh => clip,
        }
    }
}

/// `exp(x) - 1 - x`, accurate near 0 (series), `+inf` on overflow, never NaN for a non-NaN `x`.
fn expm1_minus_x(x: f64) -> f64 {
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.abs() < 0.1 {
        let mut term = 0.5 * x * x;
        let mut sum = term;
        for k in 3..=14 {
            term *= x / k as f64;
            sum += term;
        }
        sum
    } else {
        x.exp_m1() - x
    }
}

impl fmt::Display for RegressionLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RegressionLoss::Squared => write!(f, "squared"),
            RegressionLoss::Linex(1.0) => write!(f, "linex1"),
            RegressionLoss::Linex(0.5) => write!(f, "linex0.5"),
            RegressionLoss::Linex(a) => write!(f, "linex:{a}"),
            RegressionLoss::ShiftedCosh => write!(f, "cosh"),
        }
    }
}

impl FromStr for RegressionLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "squared" => Ok(RegressionLoss::Squared),
            "linex1" => Ok(RegressionLoss::LINEX1),
            "linex0.5" => Ok(RegressionLoss::LINEX_HALF),
            "cosh" => Ok(RegressionLoss::ShiftedCosh),
            _ => match s.strip_prefix("linex:") {
                Some(a) => {
                    let a: f64 = a.trim().parse().map_err(|_| {
                        Error::config("objective.g", format!("`{s}`: linex alpha `{a}` is not a number"))
                    })?;
                    RegressionLoss::linex(a)
                }
                None => Err(Error::config(
                    "objective.g",
                    format!(
                        "unknown regression loss `{s}`; allowed: squared, linex1, linex0.5, cosh, \
                         linex:<alpha> (alpha a nonzero real)"
                    ),
                )),
            },
        }
    }
}

impl Serialize for RegressionLoss {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RegressionLoss {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Tape op: `g` elementwise on a residual. Forward `g(t)` (may be `+inf`);
/// backward `g'(clamp(t, -clip, clip))` times the incoming gradient.
pub struct Regression {
    pub loss: RegressionLoss,
    pub clip: f64,
}

impl<T: Scalar> Op<T> for Regression {
    fn name(&self) -> &'static str {
        "regression"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        xs[0].mapv(|t| T::from_f64(self.loss.value(t.to_f64())))
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let d = xs[0].mapv(|t| T::from_f64(self.loss.deriv(t.to_f64().max(-self.clip).min(self.clip))));
        vec![Some(&*g * &d)]
    }
}

/// Records [`Regression`] on `t`.
pub fn regression<T: Scalar>(tape: &mut Tape<T>, t: Var, loss: RegressionLoss, clip: f64) -> Var {
    tape.apply(Regression { loss, clip }, &[t])
}

/// `sum_p w_p g(t_p)` of a `[P, 1]` residual, with the reported value in `f64` and the
/// fraction of residuals beyond the clip. Rows whose weight is 0 in `T` are left out
/// (so an infinite `g` never meets a zero weight: the value is never NaN).
pub(crate) fn weighted_sum<T: Scalar>(
    tape: &mut Tape<T>,
    t: Var,
    weights: &[f64],
    loss: RegressionLoss,
    clip: f64,
) -> (Var, f64, f64) {
    let tv: Vec<f64> = tape.value(t).iter().map(|x| x.to_f64()).collect();
    assert_eq!(tv.len(), weights.len(), "regression: one weight per residual");
    let clipped = tv.iter().filter(|x| x.abs() > clip).count() as f64 / tv.len().max(1) as f64;
    let keep: Vec<usize> = (0..tv.len())
        .filter(|&p| T::from_f64(weights[p]) != T::zero())
        .collect();
    let value: f64 = keep.iter().map(|&p| weights[p] * loss.value(tv[p])).sum();
    if keep.is_empty() {
        return (tape.scalar(0.0), 0.0, clipped);
    }
    let t = if keep.len() == tv.len() {
        t
    } else {
        tape.index_select(t, keep.clone())
    };
    let gt = regression(tape, t, loss, clip);
    let w = Array2::from_shape_fn((keep.len(), 1), |(k, _)| T::from_f64(weights[keep[k]]));
    let w = tape.constant(w);
    let wg = tape.mul(gt, w);
    (tape.sum(wg), value, clipped)
}
