//! Transitions as they are drawn, and their assembly into [`Trajectories`].

use ndarray::Array2;

use super::{uniform_log_pb, RowExps, Trajectories};
use crate::env::Environment;
use crate::nn::Csr;

/// No row: before a trajectory's first.
const NONE: usize = usize::MAX;

/// Transitions in the order they were drawn, one row per non-terminal state
/// `s_k` visited, each linked to its trajectory's row before it: the forward
/// sampler draws step after step, all trajectories at once, and
/// [`in_trajectory_order`] puts the rows in the order of [`Trajectories`]. Rows are
/// kept in flat lists that the sampler reuses from batch to batch, so that
/// drawing allocates nothing per transition.
#[derive(Default)]
pub(crate) struct Drawn {
    n_actions: usize,
    n_backward: usize,
    /// Row `r`'s features, appended by the caller in row order.
    pub features: Csr,
    /// The features of one step's rows, for the caller's pass (kept for its allocations).
    pub step: Csr,
    /// The forward and backward softmaxes of the caller's rows (kept for their allocations).
    pub exps: [RowExps; 2],
    forward_masks: Vec<bool>,
    backward_masks: Vec<bool>,
    /// The backward action undoing the transition into row `r`'s state (0 at `s_0`).
    pub backward_actions: Vec<usize>,
    /// The forward action taken at row `r`'s state.
    pub actions: Vec<usize>,
    /// Its `log P_F`.
    pub log_pf: Vec<f32>,
    /// Under a learned `P_B`: `log P_B(s_{k-1} | s_k)` of the transition
    /// into row `r`'s state `s_k` (0 at `s_0`).
    pub log_pb_into: Vec<f32>,
    /// The same trajectory's row before `r` (`NONE` at `s_0`).
    before: Vec<usize>,
    /// Per trajectory: its last row (`NONE` before its first), its rows, and
    /// the backward action undoing the transition into its current state.
    last: Vec<usize>,
    len: Vec<usize>,
    into: Vec<usize>,
}

thread_local! {
    /// Lists the last batches were drawn into, for the next to reuse.
    static POOL: std::cell::RefCell<Vec<Drawn>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drawn {
    /// Empty lists for `trajectories` trajectories of `env`, with room for
    /// `rows` rows: lists this thread gave back, if any ([`Drawn::give_back`]).
    pub fn pooled<E: Environment>(env: &E, trajectories: usize, rows: usize) -> Drawn {
        let mut d = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        d.reset(env, trajectories, rows);
        d
    }

    /// Keeps these lists for this thread's next [`Drawn::pooled`].
    pub fn give_back(self) {
        POOL.with(|p| p.borrow_mut().push(self));
    }

    /// Empties these lists (keeping their allocations) for `trajectories`
    /// trajectories of `env`, with room for `rows` rows.
    fn reset<E: Environment>(&mut self, env: &E, trajectories: usize, rows: usize) {
        let (a_n, b_n) = (env.n_actions(), env.n_backward_actions());
        self.n_actions = a_n;
        self.n_backward = b_n;
        self.features.ncols = env.feature_dim();
        self.features.clear();
        self.step.ncols = env.feature_dim();
        self.step.clear();
        self.features.offsets.reserve(rows);
        self.forward_masks.clear();
        self.forward_masks.reserve(rows * a_n);
        self.backward_masks.clear();
        self.backward_masks.reserve(rows * b_n);
        for v in [&mut self.backward_actions, &mut self.actions, &mut self.before] {
            v.clear();
            v.reserve(rows);
        }
        for v in [&mut self.log_pf, &mut self.log_pb_into] {
            v.clear();
            v.reserve(rows);
        }
        self.last.clear();
        self.last.resize(trajectories, NONE);
        self.len.clear();
        self.len.resize(trajectories, 0);
        self.into.clear();
        self.into.resize(trajectories, 0);
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.before.len()
    }

    /// A new row for trajectory `i`'s current state `s` (its first, or the
    /// one [`Drawn::moved`] last recorded): its masks now, its action and
    /// probabilities by [`Drawn::finish`]. Several rows may be begun before
    /// the first of them is finished; they are finished in the same order.
    pub fn begin<E: Environment>(&mut self, env: &E, i: usize, s: &E::State) -> usize {
        let r = self.rows();
        let (fa, fb) = (r * self.n_actions, r * self.n_backward);
        self.forward_masks.resize(fa + self.n_actions, false);
        env.forward_mask(s, &mut self.forward_masks[fa..]);
        self.backward_masks.resize(fb + self.n_backward, false);
        if self.len[i] == 0 {
            self.backward_masks[fb] = true; // unused: the initial state has no parent
            self.backward_actions.push(0);
        } else {
            env.backward_mask(s, &mut self.backward_masks[fb..]);
            self.backward_actions.push(self.into[i]);
        }
        self.before.push(self.last[i]);
        self.last[i] = r;
        self.len[i] += 1;
        r
    }

    /// Whether row `r` is its trajectory's first (the initial state's).
    pub fn starts(&self, r: usize) -> bool {
        self.before[r] == NONE
    }

    /// Row `r`'s valid forward actions.
    pub fn forward_mask(&self, r: usize) -> &[bool] {
        self.forward_masks(r..r + 1)
    }

    /// Row `r`'s valid backward actions.
    pub fn backward_mask(&self, r: usize) -> &[bool] {
        self.backward_masks(r..r + 1)
    }

    /// These rows' valid forward actions, row after row.
    pub fn forward_masks(&self, rows: std::ops::Range<usize>) -> &[bool] {
        &self.forward_masks[rows.start * self.n_actions..rows.end * self.n_actions]
    }

    /// These rows' valid backward actions, row after row.
    pub fn backward_masks(&self, rows: std::ops::Range<usize>) -> &[bool] {
        &self.backward_masks[rows.start * self.n_backward..rows.end * self.n_backward]
    }

    /// Completes the first row begun and not finished: the action taken and its probabilities.
    pub fn finish(&mut self, a: usize, log_pf: f32, log_pb_into: f32) {
        debug_assert!(self.actions.len() < self.rows(), "Drawn::finish: no row begun");
        self.actions.push(a);
        self.log_pf.push(log_pf);
        self.log_pb_into.push(log_pb_into);
    }

    /// Trajectory `i` moved from `s` by action `a` to `next`: whether it goes
    /// on (`next` is not terminal; its row then gets the backward action
    /// undoing `a`).
    pub fn moved<E: Environment>(&mut self, env: &E, i: usize, s: &E::State, a: usize, next: &E::State) -> bool {
        let on = !env.is_terminal(next);
        if on {
            self.into[i] = env.backward_action(s, a);
        }
        on
    }
}

/// [`Trajectories`] from the rows each worker drew (trajectories of worker
/// 0 first, then of worker 1, ...) and the trajectories' terminal states,
/// with the recorded `log P_B` when `P_B` is `learned`, else the uniform
/// `P_B`; and for each worker its rows in the trajectories' order.
pub(crate) fn in_trajectory_order<E: Environment>(
    env: &E,
    drawn: &[Drawn],
    terminals: Vec<E::State>,
    learned: bool,
) -> (Trajectories<E::State>, Vec<Vec<usize>>) {
    let mut offsets = Vec::with_capacity(terminals.len() + 1);
    offsets.push(0);
    for &n in drawn.iter().flat_map(|d| &d.len) {
        offsets.push(offsets.last().unwrap() + n);
    }
    // each trajectory's rows, from its last one back
    let orders: Vec<Vec<usize>> = drawn
        .iter()
        .map(|d| {
            let mut order = vec![0; d.rows()];
            let mut end = 0;
            for (&n, &last) in d.len.iter().zip(&d.last) {
                end += n;
                let mut r = last;
                for t in order[end - n..end].iter_mut().rev() {
                    *t = r;
                    r = d.before[r];
                }
            }
            order
        })
        .collect();
    let rows = *offsets.last().unwrap();
    let (a_n, b_n) = (env.n_actions(), env.n_backward_actions());
    let mut features = Csr::new(env.feature_dim());
    let entries = drawn.iter().map(|d| d.features.indices.len()).sum();
    features.offsets.reserve(rows);
    features.indices.reserve_exact(entries);
    features.values.reserve_exact(entries);
    let mut forward_masks = Vec::with_capacity(rows * a_n);
    let mut backward_masks = Vec::with_capacity(rows * b_n);
    let (mut actions, mut backward_actions) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let (mut log_pf, mut log_pb) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for (d, order) in drawn.iter().zip(&orders) {
        for (t, &r) in order.iter().enumerate() {
            features.push_row_of(&d.features, r);
            forward_masks.extend_from_slice(d.forward_mask(r));
            backward_masks.extend_from_slice(d.backward_mask(r));
            actions.push(d.actions[r]);
            backward_actions.push(d.backward_actions[r]);
            log_pf.push(d.log_pf[r]);
            // P_B(s_k | s_{k+1}) is recorded at the row of s_{k+1}, the
            // trajectory's next (none after the terminating transition: 1)
            let next = order.get(t + 1).filter(|&&n| d.before[n] == r);
            log_pb.push(next.map_or(0.0, |&n| d.log_pb_into[n]));
        }
    }
    let mut t = Trajectories {
        offsets,
        features: std::sync::Arc::new(features),
        forward_masks: Array2::from_shape_vec((rows, a_n), forward_masks).expect("a mask row per row"),
        actions,
        backward_masks: Array2::from_shape_vec((rows, b_n), backward_masks).expect("a mask row per row"),
        backward_actions,
        log_pf,
        log_pb: Vec::new(),
        terminals,
        activations: None,
    };
    t.log_pb = match learned {
        true => log_pb,
        false => uniform_log_pb(&t),
    };
    (t, orders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::HyperGrid;

    #[test]
    fn rows_drawn_step_after_step_come_out_in_trajectory_order() {
        let env = HyperGrid::new(2, 4).unwrap();
        let mut d = Drawn::pooled(&env, 2, 0);
        let mut states = vec![env.initial_state(), env.initial_state()];
        // trajectory 0: +x then exit; trajectory 1: +y, +y, exit; drawn interleaved
        let steps: [&[(usize, usize)]; 3] = [&[(0, 0), (1, 1)], &[(0, 2), (1, 1)], &[(1, 2)]];
        for step in steps {
            for &(i, a) in step {
                let r = d.begin(&env, i, &states[i]);
                env.encode_sparse(&states[i], &mut d.features);
                d.finish(a, r as f32, 10.0 + r as f32);
                let next = env.step(&states[i], a);
                assert_eq!(d.moved(&env, i, &states[i], a, &next), a != 2);
                states[i] = next;
            }
        }
        let (t, orders) = in_trajectory_order(&env, std::slice::from_ref(&d), states, true);
        assert_eq!(orders, [vec![0, 2, 1, 3, 4]]);
        assert_eq!(t.offsets, [0, 2, 5]);
        assert_eq!(t.actions, [0, 2, 1, 1, 2]);
        assert_eq!(t.log_pf, [0.0, 2.0, 1.0, 3.0, 4.0]);
        // P_B of a transition: recorded at the row of the state it leads to, 0 into the terminal
        assert_eq!(t.log_pb, [12.0, 0.0, 13.0, 14.0, 0.0]);
        assert_eq!(t.backward_actions, [0, 0, 0, 1, 1]);
        // features and masks follow their rows: trajectory 1's third state is (0, 2)
        let mut want = Csr::new(env.feature_dim());
        env.encode_sparse(
            &crate::env::HyperGridState {
                coords: vec![0, 2],
                done: false,
            },
            &mut want,
        );
        assert_eq!(t.features.row(4), want.row(0));
        assert_eq!(t.forward_masks.row(4).to_vec(), [true, true, true]);
        assert_eq!(t.backward_masks.row(4).to_vec(), [false, true]);
        assert!(t.terminals.iter().all(|s| s.done) && t.terminals[1].coords == [0, 2]);
    }
}
