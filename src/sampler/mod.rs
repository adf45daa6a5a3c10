//! Batched trajectory sampling, forward with exploration and backward with `P_B`.
//!
//! One sampler serves training and evaluation. Trajectory `i` of the `n`-th
//! trajectory ever drawn by a sampler uses its own random stream keyed by
//! `(seed, n)`, so results do not depend on batching or threads, and the
//! sampler's whole random state is one counter.

use std::sync::Arc;

use ndarray::Array2;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::autodiff::ops::log_prob_given;
use crate::env::Environment;
use crate::error::{in_range, positive_finite, Result};
use crate::nn::{Csr, ParamStore};
use crate::policy::{Activations, Policy};
use crate::rng::{self, streams};

mod drawn;
mod row_exps;
pub(crate) use drawn::{in_trajectory_order, Drawn};
use row_exps::RowExps;

/// Off-policy exploration for forward sampling.
///
/// Actions are drawn from `(1 - epsilon) * softmax(logits / temperature) +
/// epsilon * uniform(valid actions)`; masked actions never get mass. The
/// `log P_F` recorded in [`Trajectories`] is always the policy's own
/// (temperature 1, no epsilon): training on these trajectories is off-policy
/// training of `P_F`, which balance objectives (TB, DB, SubTB) allow.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exploration {
    pub temperature: f64,
    pub epsilon: f64,
}

impl Default for Exploration {
    fn default() -> Self {
        Exploration::ON_POLICY
    }
}

impl Exploration {
    pub const ON_POLICY: Exploration = Exploration {
        temperature: 1.0,
        epsilon: 0.0,
    };

    pub fn validate(&self) -> Result<()> {
        positive_finite("exploration.temperature", self.temperature)?;
        in_range("exploration.epsilon", self.epsilon, 0.0, 1.0)
    }

    pub fn is_on_policy(&self) -> bool {
        *self == Self::ON_POLICY
    }
}

/// A batch of complete trajectories, stored flat: row `offsets[b] + k` is the
/// transition `s_k -> s_{k+1}` of trajectory `b` (see [`crate::objective::Terms`]).
#[derive(Clone, Debug)]
pub struct Trajectories<S> {
    /// `B + 1` rising offsets.
    pub offsets: Vec<usize>,
    /// `[T, feature_dim]` sparse: features of each transition's source state
    /// `s_k` (shared with the training pass's tape, which reads them too).
    pub features: Arc<Csr>,
    /// `[T, n_actions]`: valid forward actions at `s_k`.
    pub forward_masks: Array2<bool>,
    /// `[T]`: the forward action taken at `s_k`.
    pub actions: Vec<usize>,
    /// `[T, n_backward_actions]`: valid backward actions at `s_k` (row of `s_0`: unused).
    pub backward_masks: Array2<bool>,
    /// `[T]`: the backward action leading from `s_k` to `s_{k-1}` (row of `s_0`: 0, unused).
    pub backward_actions: Vec<usize>,
    /// `[T]`: `log P_F(s_{k+1} | s_k)` under the policy at sampling time.
    pub log_pf: Vec<f32>,
    /// `[T]`: `log P_B(s_k | s_{k+1})` at sampling time (0 for the terminating transition).
    pub log_pb: Vec<f32>,
    /// `[B]`: the terminal states (the objects).
    pub terminals: Vec<S>,
    /// The policy's layer outputs at each row's state `s_k`, as computed while
    /// sampling ([`Sampler::sample_with_activations`], [`Sampler::sample_backward`]),
    /// for [`Policy::terms_sampled`]; `None` when not kept.
    pub activations: Option<Activations>,
}

impl<S> Trajectories<S> {
    /// Number of trajectories.
    pub fn len(&self) -> usize {
        self.terminals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terminals.is_empty()
    }

    /// Total number of transitions `T`.
    pub fn n_transitions(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// Appends another batch's trajectories after these.
    pub fn append(&mut self, other: Trajectories<S>) {
        let base = self.n_transitions();
        self.offsets.extend(other.offsets[1..].iter().map(|o| o + base));
        Arc::make_mut(&mut self.features).append(&other.features);
        self.forward_masks
            .append(ndarray::Axis(0), other.forward_masks.view())
            .expect("same action count");
        self.backward_masks
            .append(ndarray::Axis(0), other.backward_masks.view())
            .expect("same backward action count");
        self.actions.extend(other.actions);
        self.backward_actions.extend(other.backward_actions);
        self.log_pf.extend(other.log_pf);
        self.log_pb.extend(other.log_pb);
        self.terminals.extend(other.terminals);
        self.activations = match (self.activations.take(), other.activations) {
            (Some(mut a), Some(b)) => {
                a.append(b);
                Some(a)
            }
            (a, b) => {
                a.into_iter().chain(b).for_each(Activations::give_back);
                None
            }
        };
    }

    /// `sum log P_F` of each trajectory, as recorded.
    pub fn sum_log_pf(&self) -> Vec<f64> {
        self.segment_sums(&self.log_pf)
    }

    /// `sum log P_B` of each trajectory, as recorded.
    pub fn sum_log_pb(&self) -> Vec<f64> {
        self.segment_sums(&self.log_pb)
    }

    fn segment_sums(&self, v: &[f32]) -> Vec<f64> {
        self.offsets
            .windows(2)
            .map(|w| v[w[0]..w[1]].iter().map(|&x| x as f64).sum())
            .collect()
    }
}

/// Draws trajectories from a policy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sampler {
    pub seed: u64,
    /// Trajectories drawn so far: the next one uses stream key `drawn`.
    pub drawn: u64,
    /// Worker threads for forward sampling (not part of the random state).
    #[serde(skip, default = "one")]
    pub threads: usize,
}

fn one() -> usize {
    1
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Sampler {
            seed,
            drawn: 0,
            threads: 1,
        }
    }

    /// The same sampler with `threads` workers (0: all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            t => t,
        };
        self
    }

    /// Samples `batch` trajectories forward from the initial state, split
    /// over `threads` workers (the objects do not depend on the split).
    pub fn sample<E: Environment>(
        &mut self,
        env: &E,
        policy: &Policy,
        store: &ParamStore<f32>,
        batch: usize,
        explore: Exploration,
    ) -> Trajectories<E::State> {
        self.forward(env, policy, store, batch, explore, false)
    }

    /// [`Sampler::sample`] keeping the policy's layer outputs at every visited
    /// state in [`Trajectories::activations`] (the same bits for any split),
    /// so that training on these trajectories under the same weights need
    /// not compute its forward pass again.
    pub fn sample_with_activations<E: Environment>(
        &mut self,
        env: &E,
        policy: &Policy,
        store: &ParamStore<f32>,
        batch: usize,
        explore: Exploration,
    ) -> Trajectories<E::State> {
        self.forward(env, policy, store, batch, explore, true)
    }

    fn forward<E: Environment>(
        &mut self,
        env: &E,
        policy: &Policy,
        store: &ParamStore<f32>,
        batch: usize,
        explore: Exploration,
        keep: bool,
    ) -> Trajectories<E::State> {
        let first = self.drawn;
        self.drawn += batch as u64;
        let workers = self.threads.clamp(1, batch.max(1));
        let keys: Vec<u64> = (first..first + batch as u64).collect();
        let seed = self.seed;
        // each worker's arrays come from this thread's buffer pool and go back
        // to it, as do the lists it draws into, with room for as many rows
        // per trajectory as the last batch had, and a quarter
        let per = ROWS_PER_TRAJECTORY.with(std::cell::Cell::get);
        let chunks: Vec<&[u64]> = keys.chunks(batch.div_ceil(workers).max(1)).collect();
        let work: Vec<(Activations, Drawn)> = (chunks.iter())
            .map(|ks| {
                let drawn = Drawn::pooled(env, ks.len(), ks.len() * per);
                (policy.arrays(ks.len() * if keep { per } else { 1 }, keep), drawn)
            })
            .collect();
        let run = |ks: &[u64], (acts, drawn)| forward_paths(env, policy, store, seed, ks, explore, keep, acts, drawn);
        let parts: Vec<Worked<E::State>> =
            crate::workers::map(chunks.into_iter().zip(work).collect(), |(ks, w)| run(ks, w));
        let mut drawn = Vec::with_capacity(parts.len());
        let mut terminals = Vec::with_capacity(batch);
        let mut kept = Vec::with_capacity(parts.len());
        for w in parts {
            drawn.push(w.drawn);
            terminals.extend(w.terminals);
            kept.push((w.acts, w.steps));
        }
        let (mut t, orders) = in_trajectory_order(env, &drawn, terminals, policy.learned_pb());
        drawn.into_iter().for_each(Drawn::give_back);
        t.activations = match keep && !kept.is_empty() {
            true => Some(in_step_order(kept, &orders)),
            false => {
                kept.into_iter().for_each(|(a, _)| a.give_back());
                None
            }
        };
        let per = t.n_transitions().div_ceil(batch.max(1));
        ROWS_PER_TRAJECTORY.with(|h| h.set(per + per / 4 + 1));
        t
    }

    /// Trajectories ending in the given terminal states, drawn backward with
    /// `P_B` (uniform or the policy's learned head). On trees the unique trajectory.
    /// The walk back keeps only the actions; the states are made again forward
    /// from `s_0` by [`Environment::step_into`], which by the environment's
    /// contract gives the parents `backward_step` found.
    pub fn sample_backward<E: Environment>(
        &mut self,
        env: &E,
        policy: &Policy,
        store: &ParamStore<f32>,
        terminals: &[E::State],
    ) -> Trajectories<E::State> {
        let b_n = env.n_backward_actions();
        let mut rngs: Vec<_> = (0..terminals.len() as u64)
            .map(|i| rng::keyed(self.seed, streams::REPLAY, self.drawn + i))
            .collect();
        self.drawn += terminals.len() as u64;
        let mut bmask = vec![false; b_n];
        let mut feat = Csr::new(env.feature_dim());
        let per = ROWS_PER_TRAJECTORY.with(std::cell::Cell::get);
        let mut drawn = Drawn::pooled(env, terminals.len(), terminals.len() * per);
        let [mut exps, mut pb_exps] = std::mem::take(&mut drawn.exps);
        // a trajectory's forward actions, last first; the states it passes
        // through are made again forward from s_0, as the forward sampler
        // makes them, into two states whose allocations are passed on
        let mut rev = Vec::new();
        let mut spare = env.initial_state();
        for (i, (x, rng)) in terminals.iter().zip(rngs.iter_mut()).enumerate() {
            let (mut s, stop) = env.unterminate(x);
            rev.clear();
            rev.push(stop);
            while !env.is_initial(&s) {
                env.backward_mask(&s, &mut bmask);
                let b = match policy.learned_pb() {
                    true => {
                        feat.clear();
                        env.encode_sparse(&s, &mut feat);
                        let (_, pb) = policy.infer(store, &feat);
                        exps.fill(pb.expect("learned P_B head").view(), &bmask, 1.0);
                        choose(exps.row(0), exps.total(0), &bmask, 0.0, rng)
                    }
                    false => {
                        // uniform over the valid backward actions
                        let k = rng.gen_range(0..bmask.iter().filter(|&&m| m).count());
                        (0..b_n).filter(|&j| bmask[j]).nth(k).expect("a valid backward action")
                    }
                };
                rev.push(env.backward_step_into(&s, b, &mut spare));
                std::mem::swap(&mut s, &mut spare);
            }
            for &a in rev.iter().rev() {
                drawn.begin(env, i, &s);
                env.encode_sparse(&s, &mut drawn.features);
                drawn.finish(a, 0.0, 0.0);
                env.step_into(&s, a, &mut spare);
                drawn.moved(env, i, &s, a, &spare);
                std::mem::swap(&mut s, &mut spare);
            }
        }
        // log P_F (and a learned log P_B) of the replayed transitions under the
        // current policy, in one batched pass over their source states
        let mut acts = policy.activations(store, &drawn.features);
        let mut lse = Vec::with_capacity(drawn.rows());
        let mut pb_lse = acts.pb.as_ref().map(|_| Vec::with_capacity(drawn.rows()));
        let rows = 0..drawn.rows();
        exps.fill(acts.pf.view(), drawn.forward_masks(rows.clone()), 1.0);
        if let Some(pb) = &acts.pb {
            pb_exps.fill(pb.view(), drawn.backward_masks(rows), 1.0);
        }
        for r in 0..drawn.rows() {
            let row = acts.pf.row(r);
            let forward = exps.log_sum_exp(r);
            drawn.log_pf[r] = log_prob_given(row[drawn.actions[r]], forward);
            // P_B(s_{k-1} | s_k) is read at the row of s_k (at s_0: unused)
            let pb = acts.pb.as_ref().map(|pb| pb.row(r));
            let pb = pb.as_ref().map(|pb| (pb.as_slice().unwrap(), &pb_exps, r));
            let (lp, backward) = backward_log_prob(pb, &drawn, r);
            if let Some(lp) = lp {
                drawn.log_pb_into[r] = lp;
            }
            lse.push(forward);
            pb_lse.iter_mut().zip(backward).for_each(|(kept, b)| kept.push(b));
        }
        // the pass was over exactly the rows of the trajectories, in their order
        (acts.lse, acts.pb_lse) = (Some(lse), pb_lse);
        let (mut t, _) = in_trajectory_order(
            env,
            std::slice::from_ref(&drawn),
            terminals.to_vec(),
            policy.learned_pb(),
        );
        drawn.exps = [exps, pb_exps];
        drawn.give_back();
        t.activations = Some(acts);
        t
    }
}

/// What a sampling worker drew: its rows, its trajectories' terminal states,
/// its arrays and, if kept, the number of rows of each step (its passes'
/// layer outputs in the arrays, one step's rows after the other's, the
/// rows of `drawn` in the same order).
struct Worked<S> {
    drawn: Drawn,
    terminals: Vec<S>,
    acts: Activations,
    steps: Vec<usize>,
}

thread_local! {
    /// Rows per trajectory to make room for: a quarter more than the last
    /// batch sampled from this thread had (a capacity only; the results
    /// never depend on it).
    static ROWS_PER_TRAJECTORY: std::cell::Cell<usize> = const { std::cell::Cell::new(16) };
}

/// Forward trajectories for the given stream keys, all advanced together
/// (one batched MLP pass per step over the unfinished ones), each pass into
/// `acts` ([`Policy::arrays`]): with `keep`, each step's rows after the
/// last step's (the arrays grow when they must), else over the last step's.
/// The transitions go into `drawn` (emptied), step after step.
#[allow(clippy::too_many_arguments)]
fn forward_paths<E: Environment>(
    env: &E,
    policy: &Policy,
    store: &ParamStore<f32>,
    seed: u64,
    keys: &[u64],
    explore: Exploration,
    keep: bool,
    mut acts: Activations,
    mut drawn: Drawn,
) -> Worked<E::State> {
    let mut rngs: Vec<_> = keys.iter().map(|&k| rng::keyed(seed, streams::SAMPLE, k)).collect();
    // each trajectory's state; `spare` takes each next state and is swapped
    // in, so that the states' allocations pass from transition to transition
    let mut states: Vec<E::State> = keys.iter().map(|_| env.initial_state()).collect();
    let mut spare = env.initial_state();
    let mut active: Vec<usize> = (0..keys.len()).collect();
    let [mut forward, mut backward] = std::mem::take(&mut drawn.exps);
    let inv_t = 1.0 / explore.temperature;
    let mut running = policy.running(keys.len());
    acts.lse = keep.then(|| Vec::with_capacity(acts.pf.nrows()));
    acts.pb_lse = acts
        .pb
        .as_ref()
        .filter(|_| keep)
        .map(|_| Vec::with_capacity(acts.pf.nrows()));
    let (mut filled, mut steps) = (0, Vec::new());
    let mut still = Vec::with_capacity(active.len());
    while !active.is_empty() {
        let x = &mut drawn.step;
        x.clear();
        for &i in &active {
            env.encode_sparse(&states[i], x);
        }
        let at = if keep { filled } else { 0 };
        acts.reserve(at + active.len(), at);
        policy.pass_into(store, &drawn.step, Some((&mut running, &active)), &mut acts, at);
        let this = ndarray::s![at..at + active.len(), ..];
        let (logits, pb_logits) = (acts.pf.slice(this), acts.pb.as_ref().map(|pb| pb.slice(this)));
        // the step's rows begun first, so that each head's softmaxes take one pass
        let first = drawn.rows();
        active.iter().for_each(|&i| _ = drawn.begin(env, i, &states[i]));
        let rows = first..drawn.rows();
        forward.fill(logits, drawn.forward_masks(rows.clone()), inv_t);
        if let Some(pb) = &pb_logits {
            backward.fill(pb.view(), drawn.backward_masks(rows), 1.0);
        }
        for (row, &i) in active.iter().enumerate() {
            let (s, r) = (&states[i], first + row);
            // this step's P_B head at s_k gives the previous transition's P_B(s_{k-1} | s_k)
            let pb = pb_logits.as_ref().map(|pb| pb.row(row));
            let pb = pb.as_ref().map(|pb| (pb.as_slice().unwrap(), &backward, row));
            let (lp, pb_lse) = backward_log_prob(pb, &drawn, r);
            let lr = logits.row(row);
            let lr = lr.as_slice().unwrap();
            let mask = drawn.forward_mask(r);
            let a = choose(
                forward.row(row),
                forward.total(row),
                mask,
                explore.epsilon,
                &mut rngs[i],
            );
            // the policy's own log-probabilities (temperature 1) are recorded
            let lse = match explore.temperature == 1.0 {
                true => forward.log_sum_exp(row),
                false => row_logsumexp(lr, mask),
            };
            drawn.finish(a, log_prob_given(lr[a], lse), lp.unwrap_or(0.0));
            acts.lse.iter_mut().for_each(|kept| kept.push(lse));
            acts.pb_lse.iter_mut().zip(pb_lse).for_each(|(kept, b)| kept.push(b));
            env.step_into(s, a, &mut spare);
            if drawn.moved(env, i, s, a, &spare) {
                still.push(i);
            }
            std::mem::swap(&mut states[i], &mut spare);
        }
        drawn.features.append(&drawn.step);
        if keep {
            filled += active.len();
            steps.push(active.len());
        }
        std::mem::swap(&mut active, &mut still);
        still.clear();
    }
    if keep {
        acts.truncate(filled);
    }
    drawn.exps = [forward, backward];
    Worked {
        drawn,
        terminals: states,
        acts,
        steps,
    }
}

/// The workers' kept rows as one set of arrays in the order one worker would
/// have kept them, whatever their number (so that the training pass sums its
/// gradients in the same order): step after step, and within a step the
/// workers' rows in turn (each worker's in the order of its trajectories).
/// A single worker's arrays are that already; several workers' are copied.
/// `orders[w]` lists worker `w`'s rows in the order of its transitions.
fn in_step_order(kept: Vec<(Activations, Vec<usize>)>, orders: &[Vec<usize>]) -> Activations {
    let mut canonical: Vec<Vec<usize>> = kept.iter().map(|(a, _)| (0..a.pf.nrows()).collect()).collect();
    let mut acts = match kept.len() {
        1 => kept.into_iter().next().expect("one worker").0,
        _ => {
            let mut picks = Vec::new();
            let mut next = vec![0; kept.len()];
            for step in 0..kept.iter().map(|(_, s)| s.len()).max().unwrap_or(0) {
                for (w, (_, steps)) in kept.iter().enumerate() {
                    let n = steps.get(step).copied().unwrap_or(0);
                    for (r, c) in canonical[w].iter_mut().enumerate().skip(next[w]).take(n) {
                        *c = picks.len();
                        picks.push((w, r));
                    }
                    next[w] += n;
                }
            }
            let blocks: Vec<Activations> = kept.into_iter().map(|(a, _)| a).collect();
            let acts = Activations::gather_on(&blocks, &picks, blocks.len()).expect("kept blocks");
            blocks.into_iter().for_each(Activations::give_back);
            acts
        }
    };
    let order = (orders.iter().zip(&canonical))
        .flat_map(|(o, c)| o.iter().map(move |&r| c[r]))
        .collect();
    acts.order = Some(order);
    acts
}

/// Draws an action from `(1-eps) softmax(logits/temp) + eps uniform` over
/// the valid ones, given the row's `exps` and their `total` ([`RowExps`]).
fn choose(exps: &[f64], total: f64, mask: &[bool], epsilon: f64, rng: &mut rng::Rng) -> usize {
    let n_valid = mask.iter().filter(|&&m| m).count() as f64;
    let mut acc = 0.0;
    let u: f64 = rng.gen();
    let mut last_valid = 0;
    for (j, (&p, &m)) in exps.iter().zip(mask).enumerate() {
        if !m {
            continue;
        }
        last_valid = j;
        acc += (1.0 - epsilon) * p / total + epsilon / n_valid;
        if u < acc {
            return j;
        }
    }
    last_valid
}

/// `log sum exp` of the valid logits, in f64.
fn row_logsumexp(logits: &[f32], mask: &[bool]) -> f64 {
    crate::autodiff::ops::masked_row_logsumexp(logits.iter().map(|&v| v as f64), mask.iter().copied())
        .expect("a state with a valid action")
}

/// With a learned `P_B` (`pb`, its logits at row `r`, the row `row` of
/// `exps`): the log-probability of the row's backward action (`None` at a
/// trajectory's first row, which has none) and the row's `log sum exp`,
/// which training's log-softmax reuses. `(None, None)` without.
fn backward_log_prob(pb: Option<(&[f32], &RowExps, usize)>, drawn: &Drawn, r: usize) -> (Option<f32>, Option<f64>) {
    let Some((pb, exps, row)) = pb else { return (None, None) };
    let lse = exps.log_sum_exp(row);
    let lp = (!drawn.starts(r)).then(|| log_prob_given(pb[drawn.backward_actions[r]], lse));
    (lp, Some(lse))
}

/// Uniform `log P_B(s_k | s_{k+1}) = -log(number of parents of s_{k+1})` of
/// every transition (0 for the terminating one, and on trees everywhere).
pub fn uniform_log_pb<S>(traj: &Trajectories<S>) -> Vec<f32> {
    let counts: Vec<usize> = traj
        .backward_masks
        .rows()
        .into_iter()
        .map(|m| m.iter().filter(|&&v| v).count().max(1))
        .collect();
    let mut out = vec![0f32; traj.n_transitions()];
    for w in traj.offsets.windows(2) {
        for k in w[0]..w[1].saturating_sub(1) {
            out[k] = -(counts[k + 1] as f64).ln() as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_draws_from_the_tempered_softmax_mixed_with_uniform() {
        // at temperature 2 the logits 0, 2 ln 2, 2 ln 5 weigh 1 : 2 : 5 (the
        // large logit is masked); with epsilon 1/4 the probabilities are
        // 3/4 * (1, 2, 5)/8 + 1/4 * 1/3 = (17, 26, 53)/96
        let logits = [0.0, 2.0 * 2f32.ln(), 9.0, 2.0 * 5f32.ln()];
        let mask = [true, true, false, true];
        let explore = Exploration {
            temperature: 2.0,
            epsilon: 0.25,
        };
        let mut exps = RowExps::default();
        exps.fill(ndarray::aview2(&[logits]), &mask, 1.0 / explore.temperature);
        let (mut rng, n) = (rng::keyed(3, 0, 0), 40_000);
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[choose(exps.row(0), exps.total(0), &mask, explore.epsilon, &mut rng)] += 1;
        }
        // a frequency's standard deviation is below 0.0025: 4 of them allowed
        for (j, want) in [17.0 / 96.0, 26.0 / 96.0, 0.0, 53.0 / 96.0].into_iter().enumerate() {
            let freq = counts[j] as f64 / n as f64;
            assert!((freq - want).abs() < 0.01, "action {j}: {freq} vs {want}");
        }
        assert_eq!(counts[2], 0, "a masked action is never drawn");
    }
}
