//! Sub-trajectory balance SubTB(lambda) (Madan et al., ICML 2023) with a general
//! regression loss `g`.
//!
//! For a trajectory `s_0 -> ... -> s_n` and every pair `0 <= i < j <= n`:
//!
//! ```text
//! t_ij = log F(s_j) + sum_{k=i}^{j-1} log P_B(s_k | s_{k+1})
//!      - log F(s_i) - sum_{k=i}^{j-1} log P_F(s_{k+1} | s_k)
//! L(tau) = sum_{i<j} lambda^(j-i) g(t_ij) / sum_{i<j} lambda^(j-i)
//! L      = mean over the trajectories of L(tau)
//! ```
//!
//! with `F(s_0) := Z` and `F(s_n) := R(x)`, so `t_0n` is the TB residual. Lengths may
//! differ between trajectories. On the tape, with
//! `u_k = log F(s_k) + sum_{m<k} (log P_B - log P_F)_m` (a segment cumsum),
//! `t_ij = u_j - u_i`: two row selections of `u` give every pair at once.

use super::regression::{weighted_sum, RegressionLoss};
use super::{check_terms, state_log_flows, ObjectiveLoss, Terms};
use crate::autodiff::Tape;
use crate::error::Result;
use crate::Scalar;

/// Default `lambda`.
pub const DEFAULT_LAMBDA: f64 = 0.9;

/// Every pair `(i, j)`, `0 <= i < j <= n`, with its normalised SubTB(lambda) weight
/// `lambda^(j-i) / sum lambda^(j'-i')` (computed in log space: no overflow for `lambda > 1`).
pub fn pair_weights(n: usize, lambda: f64) -> Vec<(usize, usize, f64)> {
    let ll = lambda.ln();
    // sum over pairs of lambda^d: (n + 1 - d) pairs at distance d
    let logs: Vec<f64> = (1..=n).map(|d| ((n + 1 - d) as f64).ln() + d as f64 * ll).collect();
    let m = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logs.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    let mut out = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        for j in i + 1..=n {
            out.push((i, j, ((j - i) as f64 * ll - lse).exp()));
        }
    }
    out
}

/// SubTB(lambda): [`weighted`] with [`pair_weights`].
pub fn loss<T: Scalar>(
    tape: &mut Tape<T>,
    terms: &Terms,
    lambda: f64,
    g: RegressionLoss,
    clip: f64,
) -> Result<ObjectiveLoss> {
    weighted(tape, terms, g, clip, |n| pair_weights(n, lambda))
}

/// SubTB with any pair weighting: `pairs(n)` lists `(i, j, weight)` for a trajectory of `n`
/// transitions; the weights of one trajectory should sum to 1 (they are used as given,
/// then averaged over trajectories). E.g. `|n| vec![(0, n, 1.0)]` is exactly TB.
pub fn weighted<T: Scalar>(
    tape: &mut Tape<T>,
    terms: &Terms,
    g: RegressionLoss,
    clip: f64,
    pairs: impl Fn(usize) -> Vec<(usize, usize, f64)>,
) -> Result<ObjectiveLoss> {
    let b = check_terms(tape, terms);
    let o = &terms.offsets;
    let flows = state_log_flows(tape, terms, "subtb")?;
    // prefix sums sum_{m<k} (log P_B - log P_F)_m, k = 0..=n, laid out like `flows`
    let d = tape.sub(terms.log_pb, terms.log_pf);
    let c = tape.segment_cumsum(d, o.clone());
    let zero = tape.scalar(0.0);
    let cz = tape.concat(&[zero, c], 0); // row 0 is 0, row r + 1 is the cumsum at r
    let mut rows = Vec::with_capacity(o[b] + b);
    for w in o.windows(2) {
        rows.push(0);
        rows.extend(w[0] + 1..=w[1]);
    }
    let prefix = tape.index_select(cz, rows);
    let u = tape.add(flows, prefix);

    let (mut is, mut js, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for (bi, w) in o.windows(2).enumerate() {
        let (start, n) = (w[0] + bi, w[1] - w[0]);
        for (i, j, wt) in pairs(n) {
            assert!(i < j && j <= n, "subtb: pair ({i}, {j}) outside 0 <= i < j <= {n}");
            is.push(start + i);
            js.push(start + j);
            weights.push(wt / b as f64);
        }
    }
    let uj = tape.index_select(u, js);
    let ui = tape.index_select(u, is);
    let t = tape.sub(uj, ui);
    let (loss, value, clipped_fraction) = weighted_sum(tape, t, &weights, g, clip);
    Ok(ObjectiveLoss {
        loss,
        value,
        clipped_fraction,
        batch_cv: None,
    })
}
