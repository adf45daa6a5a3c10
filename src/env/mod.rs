//! Environments: the state graph a GFlowNet builds objects in.
//!
//! Implement [`Environment`] for a new task (see `examples/custom_env.rs`).
//! Conventions shared by the whole engine:
//! - Forward actions `0..n_actions()`; one of them is the *terminating*
//!   action (STOP / exit) that turns a state `x` into the terminal state
//!   `x⊤` for which `is_terminal` holds. The finished object is `x⊤`.
//! - A trajectory `s_0 -> ... -> s_n` starts at the initial state and ends
//!   with the terminating transition into `s_n = x⊤`.
//! - Backward actions `0..n_backward_actions()` undo non-terminating
//!   transitions: `backward_step(s, b)` returns the parent and the forward
//!   action that leads from the parent to `s`. The terminating transition is
//!   undone deterministically by `unterminate` (its `P_B` is 1).

mod bitseq;
mod hypergrid;
mod peptide;

pub use bitseq::{BitSequence, BitSequenceReward, BitSequenceState};
pub use hypergrid::{HyperGrid, HyperGridReward, HyperGridState};
pub use peptide::{Peptide, PeptideState, AMINO_ACIDS};

use serde::{de::DeserializeOwned, Serialize};

use crate::nn::Csr;
use std::fmt::Debug;
use std::hash::Hash;

/// A step-by-step construction task.
pub trait Environment: Send + Sync {
    /// States are serializable so replay buffers survive checkpoints.
    type State: Clone + Eq + Hash + Debug + Send + Sync + Serialize + DeserializeOwned;

    /// Number of forward actions, the terminating one included.
    fn n_actions(&self) -> usize;
    /// Number of backward actions (parents a state can have, at most).
    fn n_backward_actions(&self) -> usize;
    /// Width of [`Environment::encode`]'s output.
    fn feature_dim(&self) -> usize;

    fn initial_state(&self) -> Self::State;
    fn is_initial(&self, s: &Self::State) -> bool {
        *s == self.initial_state()
    }
    fn is_terminal(&self, s: &Self::State) -> bool;
    /// Writes which forward actions are valid in `s` (all false when terminal).
    fn forward_mask(&self, s: &Self::State, mask: &mut [bool]);
    /// The state reached from `s` by the valid forward action `a`.
    fn step(&self, s: &Self::State, a: usize) -> Self::State;
    /// [`Environment::step`] into `next`, whose old value is overwritten.
    /// The sampler calls it for every transition, with a `next` it no longer
    /// needs: override it to reuse `next`'s allocations.
    fn step_into(&self, s: &Self::State, a: usize, next: &mut Self::State) {
        *next = self.step(s, a);
    }

    /// Writes which backward actions are valid in the non-initial, non-terminal `s`.
    fn backward_mask(&self, s: &Self::State, mask: &mut [bool]);
    /// Undoes backward action `b` from `s`: `(parent, forward action parent -> s)`.
    fn backward_step(&self, s: &Self::State, b: usize) -> (Self::State, usize);
    /// [`Environment::backward_step`] into `parent`, whose old value is
    /// overwritten; returns the forward action from the parent to `s`.
    /// Backward sampling calls it for every transition: override it to
    /// reuse `parent`'s allocations.
    fn backward_step_into(&self, s: &Self::State, b: usize, parent: &mut Self::State) -> usize {
        let (p, a) = self.backward_step(s, b);
        *parent = p;
        a
    }
    /// The backward action that undoes forward action `a` taken in `parent`.
    fn backward_action(&self, parent: &Self::State, a: usize) -> usize;
    /// The state a terminal state was terminated from, and the terminating action.
    fn unterminate(&self, x: &Self::State) -> (Self::State, usize);

    /// Fixed-width features of a non-terminal state for the policy network.
    fn encode(&self, s: &Self::State, out: &mut [f32]);

    /// `true` when every state has exactly one parent (then `log P_B = 0`).
    fn is_tree(&self) -> bool {
        false
    }

    /// A terminal object as text (samples files, logs).
    fn describe(&self, x: &Self::State) -> String {
        format!("{x:?}")
    }

    /// The object as a sequence of letters, for sequence metrics (diversity,
    /// composition); `None` for objects that are not sequences.
    fn sequence(&self, _x: &Self::State) -> Option<String> {
        None
    }

    /// Every non-terminal state in a topological order (parents before
    /// children), when the state space is small enough to enumerate.
    fn all_states(&self) -> Option<Vec<Self::State>> {
        None
    }

    /// Appends the features of `s` to `out` as a sparse row. The default
    /// calls [`Environment::encode`] and keeps the nonzero entries; override
    /// it to write the few nonzeros of a one-hot encoding directly.
    fn encode_sparse(&self, s: &Self::State, out: &mut Csr) {
        let mut dense = vec![0f32; self.feature_dim()];
        self.encode(s, &mut dense);
        out.push_dense(&dense);
    }
}

/// Log-rewards of terminal states, evaluated in batches.
pub trait LogReward<S>: Send {
    /// `log R(x)` for each terminal state, in order. Errors name the offending object.
    fn log_rewards(&mut self, xs: &[S]) -> crate::error::Result<Vec<f64>>;
}

impl<S, F> LogReward<S> for F
where
    F: FnMut(&[S]) -> crate::error::Result<Vec<f64>> + Send,
{
    fn log_rewards(&mut self, xs: &[S]) -> crate::error::Result<Vec<f64>> {
        self(xs)
    }
}
