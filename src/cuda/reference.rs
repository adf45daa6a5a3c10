//! The CPU engine's twin of the GPU step, for tests and benchmarks: the same
//! Philox-keyed sampling rule (in f64 on the CPU) and the objective on the engine's
//! tape ([`crate::policy::Policy::terms`] and [`ObjectiveConfig::loss`], as the CPU
//! trainer computes it) with the engine's [`Adam`].

use ndarray::Array2;

use super::trainer::GpuStepStats;
use super::{rng, GpuError};
use crate::autodiff::Tape;
use crate::env::Environment;
use crate::nn::{Adam, ParamStore};
use crate::objective::ObjectiveConfig;
use crate::policy::Policy;
use crate::sampler::{in_trajectory_order, Drawn, Exploration, Trajectories};

/// The action the GPU sampling rule picks for one row (f64 arithmetic, the same uniform).
pub fn choose(logits: &[f32], mask: &[bool], explore: Exploration, u: f32) -> Option<usize> {
    let inv_t = 1.0 / explore.temperature;
    let valid: Vec<usize> = (0..logits.len()).filter(|&j| mask[j]).collect();
    let max = valid
        .iter()
        .map(|&j| logits[j] as f64 * inv_t)
        .fold(f64::NEG_INFINITY, f64::max);
    if valid.is_empty() {
        return None;
    }
    let total: f64 = valid.iter().map(|&j| (logits[j] as f64 * inv_t - max).exp()).sum();
    let n = valid.len() as f64;
    let mut acc = 0.0;
    for &j in &valid {
        acc += (1.0 - explore.epsilon) * (logits[j] as f64 * inv_t - max).exp() / total + explore.epsilon / n;
        if (u as f64) < acc {
            return Some(j);
        }
    }
    valid.last().copied()
}

/// `log softmax(logits)[a]` over the valid entries, in f64.
pub fn log_prob(logits: &[f32], mask: &[bool], a: usize) -> f64 {
    let max = (0..logits.len())
        .filter(|&j| mask[j])
        .map(|j| logits[j] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = (0..logits.len())
        .filter(|&j| mask[j])
        .map(|j| (logits[j] as f64 - max).exp())
        .sum();
    logits[a] as f64 - max - s.ln()
}

/// The CPU engine running the GPU step's algorithm.
pub struct CpuStep {
    pub policy: Policy,
    pub store: ParamStore<f32>,
    pub adam: Adam<f32>,
    pub seed: u64,
    pub drawn: u64,
}

impl CpuStep {
    pub fn new(policy: Policy, store: ParamStore<f32>, adam: Adam<f32>, seed: u64) -> Self {
        CpuStep {
            policy,
            store,
            adam,
            seed,
            drawn: 0,
        }
    }

    /// [`super::GpuTrainer::sample`]'s rule on the CPU: Philox uniforms, f64 probabilities.
    pub fn sample<E: Environment>(&mut self, env: &E, batch: usize, explore: Exploration) -> Trajectories<E::State> {
        let d = env.feature_dim();
        let base = self.drawn;
        self.drawn += batch as u64;
        let mut drawn = Drawn::pooled(env, batch, 0);
        let mut states: Vec<E::State> = (0..batch).map(|_| env.initial_state()).collect();
        let mut active: Vec<usize> = (0..batch).collect();
        let mut step = 0u32;
        while !active.is_empty() {
            let n = active.len();
            let mut x = crate::nn::Csr::new(d);
            for &i in &active {
                env.encode_sparse(&states[i], &mut x);
            }
            let (logits, _) = self.policy.infer(&self.store, &x);
            let mut still = Vec::with_capacity(n);
            for (r, &i) in active.iter().enumerate() {
                let row = drawn.begin(env, i, &states[i]);
                let (lr, mask) = (logits.row(r), drawn.forward_mask(row));
                let u = rng::uniform(self.seed, base + i as u64, step);
                let a = choose(lr.as_slice().unwrap(), mask, explore, u).expect("a valid action");
                let lp = log_prob(lr.as_slice().unwrap(), mask, a) as f32;
                drawn.finish(a, lp, 0.0);
                let next = env.step(&states[i], a);
                if drawn.moved(env, i, &states[i], a, &next) {
                    still.push(i);
                }
                states[i] = next;
            }
            drawn.features.append(&x);
            active = still;
            step += 1;
        }
        let t = in_trajectory_order(env, std::slice::from_ref(&drawn), states, false).0;
        drawn.give_back();
        t
    }

    /// The objective's value and its gradients on the tape, in store order: `(value, log Z, grads)`.
    pub fn loss_and_grads<S>(
        &self,
        traj: &Trajectories<S>,
        log_r: &[f64],
        objective: &ObjectiveConfig,
    ) -> Result<(f64, f64, Vec<Array2<f32>>), GpuError> {
        let mut tape = Tape::<f32>::new();
        let p = self.store.bind(&mut tape);
        let terms = self.policy.terms(&mut tape, &p, traj, log_r);
        let out = objective.loss(&mut tape, &terms)?;
        let log_z = tape.item(terms.log_z) as f64;
        let mut grads = tape.backward(out.loss);
        Ok((out.value, log_z, p.grads(&mut grads, &self.store)))
    }

    /// One update of `objective` on the given trajectories.
    pub fn train_on<S>(
        &mut self,
        traj: &Trajectories<S>,
        log_r: &[f64],
        objective: &ObjectiveConfig,
    ) -> Result<GpuStepStats, GpuError> {
        let (value, log_z, mut grads) = self.loss_and_grads(traj, log_r, objective)?;
        let stats = self.adam.step(&mut self.store, &mut grads)?;
        Ok(GpuStepStats::of_update(value, log_z, stats, traj, log_r))
    }
}
