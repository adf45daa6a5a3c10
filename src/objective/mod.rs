//! Training objectives.
//!
//! Every objective consumes the same [`Terms`]: the per-transition log-probabilities
//! of a batch of trajectories as tape variables, produced by the policy from
//! sampled (or replayed) trajectories. Objectives know nothing of environments.

pub mod regression;

pub use regression::{Regression, RegressionLoss, DEFAULT_CLIP};

use crate::autodiff::Var;

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
