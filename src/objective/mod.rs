//! Training objectives.
//!
//! Every objective consumes the same [`Terms`]: the per-transition log-probabilities
//! of a batch of trajectories as tape variables, produced by the policy from
//! sampled (or replayed) trajectories. Objectives know nothing of environments.
//! [`ObjectiveConfig::loss`] is the one entry point; it returns a [`LossOutput`].
//!
//! # Sign convention
//!
//! For a trajectory `tau = (s_0 -> ... -> s_n = x)` the trajectory-balance residual is
//!
//! ```text
//! t(tau) = log R(x) + sum log P_B(tau) - log Z - sum log P_F(tau)
//! ```
//!
//! i.e. log backward flow minus log forward flow (Hu et al., "Beyond Squared Error",
//! ICLR 2025, arXiv 2410.02596). Every balance residual here (TB, SubTB, DB) has that
//! orientation, and the regression loss `g` of [`RegressionLoss`] is applied to it.
//! Several public codes use the opposite residual
//! `log Z + sum log P_F - log R - sum log P_B`; fed to the same Linex formula, that
//! turns Linex(alpha) into Linex(-alpha) and reverses its exploration property (see
//! [`regression`]). Squared and cosh are symmetric and do not care.
//!
//! # Objectives
//!
//! * Balance objectives, valid on- and off-policy: [`tb`] (learned `log Z`),
//!   [`subtb`] (SubTB(lambda), needs `log_f`), [`db`] (needs `log_f`).
//! * Divergences between `q(tau) = P_F(tau)` and `pi(tau) = P_B(tau|x) R(x) / Z`
//!   ([`divergence`]): `rev-kl`, `fwd-kl`, `renyi`, `tsallis`. These are
//!   score-function (REINFORCE) estimators: they assume the batch was sampled
//!   **on-policy** from `P_F` and need no learned `Z`.
//! * An optional entropy bonus ([`entropy`]) and, for the divergences, control
//!   variates ([`control_variate`]).
//!
//! Every objective also reports the batch `log Z` estimate (VarGrad)
//! `mean_b (log R + sum log P_B - sum log P_F)` and the TB residual of every trajectory.

mod config;
pub mod control_variate;
pub mod db;
pub mod divergence;
pub mod entropy;
pub mod regression;
pub mod subtb;
pub mod tb;

pub use config::{Objective, ObjectiveConfig};
pub use control_variate::{apply_batch_cv, BatchCv, ControlVariate};
pub use regression::{Regression, RegressionLoss, DEFAULT_CLIP};

use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::{Error, Scalar};

/// The tape quantities of a batch of `B` complete trajectories.
///
/// Trajectory `b` is `s_0 -> s_1 -> ... -> s_n` with `n = offsets[b+1] - offsets[b] >= 1`
/// transitions; its rows in the `[T, 1]` variables are `offsets[b]..offsets[b+1]`,
/// row `offsets[b] + k` describing the transition `s_k -> s_{k+1}`. The last
/// transition is the terminating one (STOP / exit) into `s_n`, whose flow is
/// the reward: `F(s_n) := R(x)`. The initial flow is the partition function:
/// `F(s_0) := Z`.
pub struct Terms {
    /// `B + 1` rising offsets from 0 to `T`.
    pub offsets: Vec<usize>,
    /// `[T, 1]`: `log P_F(s_{k+1} | s_k)`.
    pub log_pf: Var,
    /// `[T, 1]`: `log P_B(s_k | s_{k+1})`; exactly 0 on the terminating transition.
    pub log_pb: Var,
    /// `[T, 1]`: `log F(s_k)` of each transition's source state, from the
    /// state-flow head. Row `offsets[b]` (the initial state) is ignored: `log Z` stands there.
    pub log_f: Option<Var>,
    /// `[B, 1]` constant: `log R(x_b)` (reward exponent already applied).
    pub log_r: Var,
    /// `[1, 1]`: the learned `log Z`.
    pub log_z: Var,
    /// `[T, 1]`: entropy of `P_F(. | s_k)` at each source state (for the entropy bonus).
    pub entropy: Option<Var>,
}

/// What [`ObjectiveConfig::loss`] returns.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// `[1, 1]`: what to backpropagate (for the divergences a surrogate whose value
    /// means nothing; its gradient is the estimator).
    pub loss: Var,
    /// The reported loss in `f64`: the objective's value (for the divergences, the batch
    /// estimate of the divergence) minus `entropy_weight * entropy`. May be `+inf`, never NaN
    /// for finite inputs.
    pub value: f64,
    /// TB residual `t(tau_b)` of every trajectory (with `Terms::log_z`), whatever the objective.
    pub residuals: Vec<f64>,
    /// VarGrad batch estimate `mean_b (log R + sum log P_B - sum log P_F)` of `log Z`.
    pub log_z_estimate: f64,
    /// Fraction of regression residuals with `|t| > clip` (0 for the divergences).
    pub clipped_fraction: f64,
    /// Mean per-state entropy, when `Terms::entropy` is given.
    pub entropy: Option<f64>,
    /// Present with `cv = batch`: the tape variables [`apply_batch_cv`] needs.
    pub batch_cv: Option<BatchCv>,
}

/// One objective's contribution, before the entropy bonus and the batch metrics.
#[derive(Clone, Debug)]
pub struct ObjectiveLoss {
    /// `[1, 1]`: what to backpropagate.
    pub loss: Var,
    /// The reported value, in `f64`.
    pub value: f64,
    /// Fraction of regression residuals beyond the clip.
    pub clipped_fraction: f64,
    /// The batch control variate's variables, if any.
    pub batch_cv: Option<BatchCv>,
}

/// Checks the shapes of `terms` (programming errors: panics naming the field); returns `B`.
pub(crate) fn check_terms<T: Scalar>(tape: &Tape<T>, terms: &Terms) -> usize {
    let o = &terms.offsets;
    assert!(
        o.len() >= 2 && o[0] == 0 && o.windows(2).all(|w| w[0] < w[1]),
        "Terms::offsets must rise strictly from 0 (every trajectory has >= 1 transition), got {o:?}"
    );
    let (b, t) = (o.len() - 1, o[o.len() - 1]);
    let shape = |name: &str, v: Var, want: (usize, usize)| {
        let got = tape.value(v).dim();
        assert!(got == want, "Terms::{name} must be {want:?}, got {got:?}");
    };
    shape("log_pf", terms.log_pf, (t, 1));
    shape("log_pb", terms.log_pb, (t, 1));
    shape("log_r", terms.log_r, (b, 1));
    shape("log_z", terms.log_z, (1, 1));
    if let Some(f) = terms.log_f {
        shape("log_f", f, (t, 1));
    }
    if let Some(h) = terms.entropy {
        shape("entropy", h, (t, 1));
    }
    b
}

/// A `[n, 1]` value as `f64`s.
pub(crate) fn column<T: Scalar>(tape: &Tape<T>, v: Var) -> Vec<f64> {
    tape.value(v).iter().map(|x| x.to_f64()).collect()
}

/// `[B, 1]` per-trajectory sums `(sum log P_F, sum log P_B)`.
pub(crate) fn trajectory_sums<T: Scalar>(tape: &mut Tape<T>, terms: &Terms) -> (Var, Var) {
    let pf = tape.segment_sum(terms.log_pf, terms.offsets.clone());
    let pb = tape.segment_sum(terms.log_pb, terms.offsets.clone());
    (pf, pb)
}

/// Per-trajectory `log R + sum log P_B - sum log P_F`, in `f64` from the tape's values.
pub(crate) fn log_weights<T: Scalar>(tape: &Tape<T>, terms: &Terms) -> Vec<f64> {
    let (pf, pb, r) = (
        column(tape, terms.log_pf),
        column(tape, terms.log_pb),
        column(tape, terms.log_r),
    );
    terms
        .offsets
        .windows(2)
        .enumerate()
        .map(|(b, w)| r[b] + pb[w[0]..w[1]].iter().sum::<f64>() - pf[w[0]..w[1]].iter().sum::<f64>())
        .collect()
}

/// `[T + B, 1]`: `log F(s_k)` for `k = 0..=n` of every trajectory, trajectory `b` in rows
/// `offsets[b] + b ..= offsets[b + 1] + b`, with `log F(s_0) := log Z` and `log F(s_n) := log R`.
pub(crate) fn state_log_flows<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, objective: &str) -> Result<Var> {
    let log_f = terms.log_f.ok_or_else(|| {
        Error::config(
            "objective",
            format!("`{objective}` needs a state-flow head, but Terms::log_f is None"),
        )
    })?;
    let o = &terms.offsets;
    let t = o[o.len() - 1];
    let mut rows = Vec::with_capacity(t + o.len() - 1);
    for (b, w) in o.windows(2).enumerate() {
        rows.push(t); // log Z
        rows.extend(w[0] + 1..w[1]);
        rows.push(t + 1 + b); // log R_b
    }
    let all = tape.concat(&[log_f, terms.log_z, terms.log_r], 0);
    Ok(tape.index_select(all, rows))
}

/// `log mean exp(x)`, stable; `-inf` for an empty or all `-inf` input.
pub(crate) fn log_mean_exp(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || x.is_empty() {
        return f64::NEG_INFINITY;
    }
    m + (x.iter().map(|&v| (v - m).exp()).sum::<f64>() / x.len() as f64).ln()
}

/// `softmax(x)`, stable.
pub(crate) fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}
