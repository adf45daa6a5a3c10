//! Detailed balance (Bengio et al. 2023) with a general regression loss `g`.
//!
//! For every transition `s -> s'` of every trajectory:
//!
//! ```text
//! t(s -> s') = log F(s') + log P_B(s | s') - log F(s) - log P_F(s' | s)
//! L          = mean over all transitions of the batch of g(t)
//! ```
//!
//! with `F(s_0) := Z` (`Terms::log_z`) and `F(s_n) := R(x)` on the terminating
//! transition; the other `log F` come from the state-flow head (`Terms::log_f`).

use super::regression::{weighted_sum, RegressionLoss};
use super::{check_terms, state_log_flows, ObjectiveLoss, Terms};
use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::Scalar;

/// `[T, 1]` DB residuals on the tape, one per transition (row order of `Terms`).
pub fn residuals<T: Scalar>(tape: &mut Tape<T>, terms: &Terms) -> Result<Var> {
    check_terms(tape, terms);
    let flows = state_log_flows(tape, terms, "db")?;
    let (mut cur, mut next) = (Vec::new(), Vec::new());
    for (b, w) in terms.offsets.windows(2).enumerate() {
        for r in w[0]..w[1] {
            // state s_k of transition r sits at row r + b of `flows`, s_{k+1} right after it
            cur.push(r + b);
            next.push(r + b + 1);
        }
    }
    let f_next = tape.index_select(flows, next);
    let f_cur = tape.index_select(flows, cur);
    let a = tape.add(f_next, terms.log_pb);
    let a = tape.sub(a, f_cur);
    Ok(tape.sub(a, terms.log_pf))
}

/// The DB loss: mean over transitions of `g(t)`.
pub fn loss<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, g: RegressionLoss, clip: f64) -> Result<ObjectiveLoss> {
    let t = residuals(tape, terms)?;
    let n = tape.value(t).nrows();
    let (loss, value, clipped_fraction) = weighted_sum(tape, t, &vec![1.0 / n as f64; n], g, clip);
    Ok(ObjectiveLoss {
        loss,
        value,
        clipped_fraction,
        batch_cv: None,
    })
}
