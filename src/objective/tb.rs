//! Trajectory balance (Malkin et al. 2022) with a general regression loss `g`.
//!
//! ```text
//! t(tau) = log R(x) + sum_k log P_B(s_k | s_{k+1}) - log Z - sum_k log P_F(s_{k+1} | s_k)
//! L      = (1/B) sum_b g(t(tau_b))
//! ```
//!
//! with a learned `log Z` (`Terms::log_z`). With `g = squared` the minimiser in `log Z`
//! for a fixed policy is `mean_b (log R + sum log P_B - sum log P_F)`; with Linex(1)
//! (`sum_b (exp(t_b) - 1) = 0`) it is the importance-sampling estimate
//! `log mean_b exp(log R + sum log P_B - sum log P_F)`.

use super::regression::{weighted_sum, RegressionLoss};
use super::{check_terms, trajectory_sums, ObjectiveLoss, Terms};
use crate::autodiff::{Tape, Var};
use crate::Scalar;

/// `[B, 1]` TB residuals on the tape.
pub fn residuals<T: Scalar>(tape: &mut Tape<T>, terms: &Terms) -> Var {
    let (pf, pb) = trajectory_sums(tape, terms);
    let a = tape.add(terms.log_r, pb);
    let a = tape.sub(a, terms.log_z);
    tape.sub(a, pf)
}

/// The TB loss `mean_b g(t_b)`.
pub fn loss<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, g: RegressionLoss, clip: f64) -> ObjectiveLoss {
    let b = check_terms(tape, terms);
    let t = residuals(tape, terms);
    let (loss, value, clipped_fraction) = weighted_sum(tape, t, &vec![1.0 / b as f64; b], g, clip);
    ObjectiveLoss {
        loss,
        value,
        clipped_fraction,
        batch_cv: None,
    }
}
