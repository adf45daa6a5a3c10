//! Batched trajectory sampling, forward with exploration and backward with `P_B`.
//!
//! One sampler serves training and evaluation. Trajectory `i` of the `n`-th
//! trajectory ever drawn by a sampler uses its own random stream keyed by
//! `(seed, n)`, so results do not depend on batching or threads, and the
//! sampler's whole random state is one counter.

use ndarray::Array2;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::autodiff::ops::log_prob_given;
use crate::env::Environment;
use crate::error::{in_range, positive_finite, Result};
use crate::nn::{Csr, ParamStore};
use crate::policy::{Activations, Policy};
use crate::rng::{self, streams};

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
    /// `[T, feature_dim]` sparse: features of each transition's source state `s_k`.
    pub features: Csr,
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
        self.features.append(&other.features);
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

/// One trajectory under construction.
pub(crate) struct Path<S> {
    pub states: Vec<S>,
    pub actions: Vec<usize>,
    pub log_pf: Vec<f32>,
    /// Under a learned `P_B` only: `log P_B(s_k | s_{k+1})` per transition (0 for the terminating one).
    pub log_pb: Vec<f32>,
    /// Where each transition's layer outputs were kept: a row of its worker's arrays.
    pub rows: Vec<usize>,
}

impl<S> Path<S> {
    /// A path from `s0` with room for `steps` transitions in the lists it
    /// will fill (`log_pb` only under a learned `P_B`, `rows` only when the
    /// layers' outputs are kept), so that they grow without reallocating.
    pub fn with_room(s0: S, steps: usize, learned_pb: bool, keep: bool) -> Self {
        let mut states = Vec::with_capacity(steps + 1);
        states.push(s0);
        Path {
            states,
            actions: Vec::with_capacity(steps),
            log_pf: Vec::with_capacity(steps),
            log_pb: Vec::with_capacity(if learned_pb { steps } else { 0 }),
            rows: Vec::with_capacity(if keep { steps } else { 0 }),
        }
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
        // to it (a worker thread's own pool ends with the thread), with room
        // for as many rows per trajectory as the last batch had, and a quarter
        let rows = match keep {
            true => ROWS_PER_TRAJECTORY.with(std::cell::Cell::get),
            false => 1,
        };
        let chunks: Vec<&[u64]> = keys.chunks(batch.div_ceil(workers).max(1)).collect();
        let arrays: Vec<Activations> = chunks.iter().map(|ks| policy.arrays(ks.len() * rows, keep)).collect();
        let longest = LONGEST.with(std::cell::Cell::get);
        let work = |ks: &[u64], acts| forward_paths(env, policy, store, seed, ks, explore, keep, acts, longest);
        let parts: Vec<Worked<E::State>> = match chunks.len() {
            0 | 1 => chunks.iter().zip(arrays).map(|(ks, acts)| work(ks, acts)).collect(),
            _ => std::thread::scope(|scope| {
                let handles: Vec<_> = (chunks.iter().zip(arrays))
                    .map(|(&ks, acts)| scope.spawn(move || work(ks, acts)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a sampling worker panicked"))
                    .collect()
            }),
        };
        let (worker_paths, kept): (Vec<_>, Vec<_>) = parts.into_iter().map(|(p, a, s)| (p, (a, s))).unzip();
        let activations = match keep && !kept.is_empty() {
            true => Some(in_step_order(kept, &worker_paths)),
            false => {
                kept.into_iter().for_each(|(a, _)| a.give_back());
                None
            }
        };
        let paths: Vec<Path<E::State>> = worker_paths.into_iter().flatten().collect();
        let mut t = assemble(env, paths, policy.learned_pb());
        let most = t.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        LONGEST.with(|h| h.set(most));
        if let Some(a) = &activations {
            let per = a.pf.nrows().div_ceil(batch.max(1));
            ROWS_PER_TRAJECTORY.with(|h| h.set(per + per / 4 + 1));
        }
        t.activations = activations;
        t
    }

    /// Trajectories ending in the given terminal states, drawn backward with
    /// `P_B` (uniform or the policy's learned head). On trees the unique trajectory.
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
        let mut probs = vec![0f64; b_n];
        let paths: Vec<Path<E::State>> = terminals
            .iter()
            .zip(rngs.iter_mut())
            .map(|(x, rng)| {
                let (mut s, stop) = env.unterminate(x);
                let mut rev_states = vec![x.clone(), s.clone()];
                let mut rev_actions = vec![stop];
                while !env.is_initial(&s) {
                    env.backward_mask(&s, &mut bmask);
                    let b = match policy.learned_pb() {
                        true => {
                            let mut feat = Csr::new(env.feature_dim());
                            env.encode_sparse(&s, &mut feat);
                            let (_, pb) = policy.infer(store, &feat);
                            let pb = pb.expect("learned P_B head");
                            choose(
                                pb.row(0).as_slice().unwrap(),
                                &bmask,
                                Exploration::ON_POLICY,
                                &mut probs,
                                rng,
                            )
                            .0
                        }
                        false => {
                            let valid: Vec<usize> = (0..b_n).filter(|&j| bmask[j]).collect();
                            valid[rng.gen_range(0..valid.len())]
                        }
                    };
                    let (parent, a) = env.backward_step(&s, b);
                    rev_actions.push(a);
                    rev_states.push(parent.clone());
                    s = parent;
                }
                rev_states.reverse();
                rev_actions.reverse();
                Path {
                    states: rev_states,
                    actions: rev_actions,
                    log_pf: Vec::new(),
                    log_pb: Vec::new(),
                    rows: Vec::new(),
                }
            })
            .collect();
        // log P_F (and a learned log P_B) of the replayed transitions under the
        // current policy, in one batched pass over their source states
        let mut paths = paths;
        let mut x = Csr::new(env.feature_dim());
        for p in &paths {
            p.states[..p.actions.len()]
                .iter()
                .for_each(|s| env.encode_sparse(s, &mut x));
        }
        let mut acts = policy.activations(store, &x);
        let (logits, pb_logits) = (&acts.pf, &acts.pb);
        let mut mask = vec![false; env.n_actions()];
        let mut lse = Vec::with_capacity(logits.nrows());
        let mut r = 0;
        for p in paths.iter_mut() {
            let n = p.actions.len();
            for (k, &a) in p.actions.iter().enumerate() {
                env.forward_mask(&p.states[k], &mut mask);
                let row = logits.row(r + k);
                let row = row.as_slice().unwrap();
                lse.push(row_logsumexp(row, &mask));
                p.log_pf.push(log_prob_given(row[a], lse[r + k]));
            }
            if let Some(pb) = pb_logits {
                // P_B(s_k | s_{k+1}) is read at the row of s_{k+1}, the next row of this path
                for k in 1..n {
                    p.log_pb
                        .push(learned_log_pb(env, pb.row(r + k).as_slice().unwrap(), p, k, &mut bmask));
                }
                p.log_pb.push(0.0);
            }
            r += n;
        }
        // the pass was over exactly the rows of the trajectories, in their order
        acts.lse = Some(lse);
        let mut t = assemble(env, paths, policy.learned_pb());
        t.activations = Some(acts);
        t
    }
}

/// A sampling worker's trajectories, its arrays and, if kept, the number of
/// rows of each step (its passes' layer outputs in the arrays, one step's
/// rows after the other's; each path's `rows` index them).
type Worked<S> = (Vec<Path<S>>, Activations, Vec<usize>);

thread_local! {
    /// Rows per trajectory to make room for in the kept arrays: a quarter
    /// more than the last batch sampled from this thread had (a capacity
    /// only; the results never depend on it).
    static ROWS_PER_TRAJECTORY: std::cell::Cell<usize> = const { std::cell::Cell::new(16) };
    /// The transitions of the longest trajectory of this thread's last
    /// sampled batch: the room each new path's lists start with (a capacity
    /// only; the results never depend on it).
    static LONGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Forward trajectories for the given stream keys, all advanced together
/// (one batched MLP pass per step over the unfinished ones), each pass into
/// `acts` ([`Policy::arrays`]): with `keep`, each step's rows after the
/// last step's (the arrays grow when they must), else over the last step's.
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
    longest: usize,
) -> Worked<E::State> {
    let a_n = env.n_actions();
    let mut rngs: Vec<_> = keys.iter().map(|&k| rng::keyed(seed, streams::SAMPLE, k)).collect();
    let learned_pb = policy.learned_pb();
    let mut paths: Vec<Path<E::State>> = keys
        .iter()
        .map(|_| Path::with_room(env.initial_state(), longest, learned_pb, keep))
        .collect();
    let mut active: Vec<usize> = (0..keys.len()).collect();
    let mut mask = vec![false; a_n];
    let mut bmask = vec![false; env.n_backward_actions()];
    let mut probs = vec![0f64; a_n];
    let mut x = Csr::new(env.feature_dim());
    let mut running = policy.running(keys.len());
    acts.lse = keep.then(Vec::new);
    let (mut filled, mut steps) = (0, Vec::new());
    let mut still = Vec::with_capacity(active.len());
    while !active.is_empty() {
        x.clear();
        for &i in &active {
            env.encode_sparse(paths[i].states.last().unwrap(), &mut x);
        }
        let at = if keep { filled } else { 0 };
        acts.reserve(at + active.len(), at);
        policy.pass_into(store, &x, Some((&mut running, &active)), &mut acts, at);
        let this = ndarray::s![at..at + active.len(), ..];
        let (logits, pb_logits) = (acts.pf.slice(this), acts.pb.as_ref().map(|pb| pb.slice(this)));
        for (row, &i) in active.iter().enumerate() {
            let path = &mut paths[i];
            if keep {
                path.rows.push(at + row);
            }
            let k = path.actions.len();
            if let (Some(pb), true) = (&pb_logits, k > 0) {
                // this step's P_B head at s_k gives the previous transition's P_B(s_{k-1} | s_k)
                let lp = learned_log_pb(env, pb.row(row).as_slice().unwrap(), path, k, &mut bmask);
                path.log_pb.push(lp);
            }
            let s = &path.states[k];
            env.forward_mask(s, &mut mask);
            let lr = logits.row(row);
            let lr = lr.as_slice().unwrap();
            let (a, lse) = choose(lr, &mask, explore, &mut probs, &mut rngs[i]);
            let next = env.step(s, a);
            let lse = lse.unwrap_or_else(|| row_logsumexp(lr, &mask));
            path.log_pf.push(log_prob_given(lr[a], lse));
            if let Some(kept) = &mut acts.lse {
                kept.push(lse);
            }
            path.actions.push(a);
            let done = env.is_terminal(&next);
            path.states.push(next);
            if !done {
                still.push(i);
            } else if pb_logits.is_some() {
                path.log_pb.push(0.0); // the terminating transition: P_B = 1
            }
        }
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
    (paths, acts, steps)
}

/// The workers' kept rows as one set of arrays in the order one worker would
/// have kept them, whatever their number (so that the training pass sums its
/// gradients in the same order): step after step, and within a step the
/// workers' rows in turn (each worker's in the order of its trajectories).
/// A single worker's arrays are that already; several workers' are copied.
/// `order` maps the trajectories' transitions to these rows.
fn in_step_order<S>(kept: Vec<(Activations, Vec<usize>)>, paths: &[Vec<Path<S>>]) -> Activations {
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
            let acts = Activations::gather(&blocks, &picks).expect("kept blocks");
            blocks.into_iter().for_each(Activations::give_back);
            acts
        }
    };
    let order = paths
        .iter()
        .zip(&canonical)
        .flat_map(|(ps, c)| ps.iter().flat_map(move |p| p.rows.iter().map(move |&r| c[r])))
        .collect();
    acts.order = Some(order);
    acts
}

/// Draws an action from `(1-eps) softmax(logits/temp) + eps uniform` over the valid ones.
/// Also returns the valid logits' `log sum exp` when the temperature is 1 (it is then
/// computed on the way, with the same operations as [`row_logsumexp`]).
fn choose(
    logits: &[f32],
    mask: &[bool],
    explore: Exploration,
    probs: &mut [f64],
    rng: &mut rng::Rng,
) -> (usize, Option<f64>) {
    let inv_t = 1.0 / explore.temperature;
    let max = logits
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&l, _)| l as f64 * inv_t)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(max > f64::NEG_INFINITY || max.is_nan(), "choose: no valid action");
    let n_valid = mask.iter().filter(|&&m| m).count() as f64;
    let mut total = 0.0;
    for ((p, &l), &m) in probs.iter_mut().zip(logits).zip(mask) {
        *p = if m { (l as f64 * inv_t - max).exp() } else { 0.0 };
        total += *p;
    }
    let lse = (explore.temperature == 1.0).then(|| max + total.ln());
    let mut acc = 0.0;
    let u: f64 = rng.gen();
    let mut last_valid = 0;
    for (j, (&p, &m)) in probs.iter().zip(mask).enumerate() {
        if !m {
            continue;
        }
        last_valid = j;
        acc += (1.0 - explore.epsilon) * p / total + explore.epsilon / n_valid;
        if u < acc {
            return (j, lse);
        }
    }
    (last_valid, lse)
}

/// `log sum exp` of the valid logits, in f64.
fn row_logsumexp(logits: &[f32], mask: &[bool]) -> f64 {
    crate::autodiff::ops::masked_row_logsumexp(logits.iter().map(|&v| v as f64), mask.iter().copied())
        .expect("a state with a valid action")
}

/// `log softmax(logits)[a]` over the valid actions, in f64 then rounded.
fn log_prob(logits: &[f32], mask: &[bool], a: usize) -> f32 {
    log_prob_given(logits[a], row_logsumexp(logits, mask))
}

/// `log P_B(s_{k-1} | s_k)` of a path's transition `k - 1` (`k >= 1`), from the
/// learned head's logits at `s_k`.
fn learned_log_pb<E: Environment>(env: &E, pb_logits: &[f32], p: &Path<E::State>, k: usize, bmask: &mut [bool]) -> f32 {
    env.backward_mask(&p.states[k], bmask);
    let b = env.backward_action(&p.states[k - 1], p.actions[k - 1]);
    log_prob(pb_logits, bmask, b)
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

/// Flat [`Trajectories`] from finished paths: their recorded `log_pb` when
/// `P_B` is `learned`, else the uniform `P_B`.
pub(crate) fn assemble<E: Environment>(env: &E, paths: Vec<Path<E::State>>, learned: bool) -> Trajectories<E::State> {
    let mut offsets = vec![0];
    for p in &paths {
        offsets.push(offsets.last().unwrap() + p.actions.len());
    }
    let rows = *offsets.last().unwrap();
    let mut features = Csr::new(env.feature_dim());
    let mut forward_masks = Array2::from_elem((rows, env.n_actions()), false);
    let mut backward_masks = Array2::from_elem((rows, env.n_backward_actions()), false);
    let mut backward_actions = vec![0; rows];
    let mut r = 0;
    for p in &paths {
        for k in 0..p.actions.len() {
            let s = &p.states[k];
            env.encode_sparse(s, &mut features);
            env.forward_mask(s, forward_masks.row_mut(r).as_slice_mut().unwrap());
            if k == 0 {
                backward_masks[[r, 0]] = true; // unused: the initial state has no parent
            } else {
                env.backward_mask(s, backward_masks.row_mut(r).as_slice_mut().unwrap());
                backward_actions[r] = env.backward_action(&p.states[k - 1], p.actions[k - 1]);
            }
            r += 1;
        }
    }
    let actions = paths.iter().flat_map(|p| p.actions.iter().copied()).collect();
    let log_pf = paths.iter().flat_map(|p| p.log_pf.iter().copied()).collect();
    let log_pb: Vec<f32> = paths.iter().flat_map(|p| p.log_pb.iter().copied()).collect();
    let terminals = paths.into_iter().map(|mut p| p.states.pop().unwrap()).collect();
    let mut t = Trajectories {
        offsets,
        features,
        forward_masks,
        actions,
        backward_masks,
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
    t
}
