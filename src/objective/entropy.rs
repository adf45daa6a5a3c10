//! Entropy bonus: `-w * mean(entropy)`, added to the loss.
//!
//! `entropy` is `Terms::entropy`, the analytic entropy `H(P_F(. | s_k))` of the forward
//! policy at every source state of the batch, computed on the tape from its
//! log-probabilities ([`crate::autodiff::Tape::entropy`]). Its gradient is exact and has no
//! sampling noise at the visited states; it regularises the per-state policies, not
//! the trajectory distribution (the visited states are taken as given).
//!
//! Why `-w * mean(log P_F(tau))` is **not** offered: on-policy it has zero expected
//! gradient. For `tau ~ P_F`, `E[grad log P_F(tau)] = sum_tau grad P_F(tau) = grad 1 = 0`,
//! so the term adds only noise. The gradient of the trajectory entropy
//! `H = -E[log P_F]` is `-E[log P_F(tau) grad log P_F(tau)]`: it needs the
//! score-function term, which a plain `log P_F` term in the loss does not produce.

use super::Terms;
use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::{Error, Scalar};

/// The `[1, 1]` bonus `-w * mean(entropy)`, or `None` when `w == 0`.
/// Errors if `w > 0` but `Terms::entropy` is `None`.
pub fn bonus<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, w: f64) -> Result<Option<Var>> {
    if w == 0.0 {
        return Ok(None);
    }
    let h = terms.entropy.ok_or_else(|| {
        Error::config(
            "objective.entropy_weight",
            format!("is {w}, but Terms::entropy is None (the policy must provide per-state entropies)"),
        )
    })?;
    let m = tape.mean(h);
    Ok(Some(tape.scale(m, -w)))
}

/// The mean per-state entropy in `f64`, when `Terms::entropy` is given.
pub fn mean<T: Scalar>(tape: &Tape<T>, terms: &Terms) -> Option<f64> {
    let h = tape.value(terms.entropy?);
    Some(h.iter().map(|x| x.to_f64()).sum::<f64>() / h.len() as f64)
}
