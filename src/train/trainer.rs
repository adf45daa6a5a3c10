//! One training step: sample, reward, objective, backward, clip, Adam.

use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;

use super::config::{LogZInit, TrainConfig};
use crate::autodiff::Tape;
use crate::env::{Environment, LogReward};
use crate::error::{Error, Result};
use crate::nn::{Adam, GroupConfig, ParamStore};
use crate::objective::apply_batch_cv;
use crate::policy::{Policy, LOG_Z_GROUP, NET_GROUP};
use crate::replay::{ReplayBuffer, ReplayKind};
use crate::rng::{self, streams};
use crate::sampler::{Sampler, Trajectories};

/// Training diagnostics of one step: a line of `metrics.jsonl`. Nothing
/// here depends on wall time, so the same seed gives byte-identical lines.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    /// The objective's reported value (may be `+inf` for exploding exponential losses).
    pub loss: f64,
    pub log_z: f64,
    /// VarGrad estimate `mean(log R + sum log P_B - sum log P_F)` on this batch.
    pub log_z_estimate: f64,
    /// Mean and standard deviation of the TB residuals `t(tau)` of the batch.
    pub residual_mean: f64,
    pub residual_std: f64,
    pub mean_sum_log_pf: f64,
    /// Mean `log R` (after the reward exponent) of the on-policy batch.
    pub mean_log_r: f64,
    /// Gradient norm of the network and of `log Z`, before clipping.
    pub grad_norm: f64,
    pub log_z_grad: f64,
    pub grad_clipped: bool,
    pub lr: f64,
    pub log_z_lr: f64,
    /// Fraction of residuals whose `g'` was evaluated at the clip.
    pub clipped_fraction: f64,
    pub entropy: Option<f64>,
    /// Batch-CV coefficient, when that control variate is on.
    pub cv_coefficient: Option<f64>,
    pub replayed: usize,
    pub buffer: usize,
}

/// Wall-clock seconds of the parts of the last step (for benchmarks and
/// progress displays; never written to `metrics.jsonl`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StepTimings {
    /// Forward sampling, rewards and replay (backward sampling).
    pub sample: f64,
    /// The batched pass over all states and the objective.
    pub loss: f64,
    /// Reverse pass (and the control variate's extra passes).
    pub backward: f64,
    /// Clipping and the Adam update.
    pub optim: f64,
    /// States of the step's batch (its transitions, replayed ones included).
    pub states: usize,
    /// Floating-point operations of the step's MLP work over those states:
    /// the forward pass and the backward pass as [`Policy::forward_flops`]
    /// and [`Policy::backward_flops`] count them (the benchmarks' floor).
    pub flops: f64,
}

/// A training run in memory.
pub struct Trainer<E: Environment, R: LogReward<E::State>> {
    pub config: TrainConfig,
    pub env: E,
    pub reward: R,
    pub policy: Policy,
    pub store: ParamStore<f32>,
    pub opt: Adam<f32>,
    pub sampler: Sampler,
    pub replay: ReplayBuffer<E::State>,
    /// Steps completed.
    pub step: u64,
    /// Timings of the last step.
    pub timings: StepTimings,
}

impl<E: Environment, R: LogReward<E::State>> Trainer<E, R> {
    /// Validates `config` and builds the policy (seeded) and the optimizer.
    pub fn new(config: TrainConfig, env: E, reward: R) -> Result<Self> {
        config.validate()?;
        let mut init = rng::stream(config.seed, streams::INIT);
        let mut store = ParamStore::new();
        let policy = Policy::new(&env, &config.policy, &mut store, &mut init)?;
        let o = &config.optimizer;
        let net = GroupConfig {
            name: NET_GROUP.into(),
            lr: o.lr,
            weight_decay: o.weight_decay,
            clip_norm: o.clip_norm,
            schedule: o.schedule.clone(),
        };
        let log_z = GroupConfig {
            name: LOG_Z_GROUP.into(),
            lr: o.log_z_lr,
            weight_decay: 0.0,
            clip_norm: None,
            schedule: o.log_z_schedule.clone(),
        };
        let opt = Adam::new(o.kind, vec![net, log_z], &store)?;
        Ok(Trainer {
            sampler: Sampler::new(config.seed).with_threads(config.threads),
            replay: ReplayBuffer::new(config.replay.capacity),
            config,
            env,
            reward,
            policy,
            store,
            opt,
            step: 0,
            timings: StepTimings::default(),
        })
    }

    pub fn log_z(&self) -> f64 {
        self.store.value(self.policy.log_z)[[0, 0]] as f64
    }

    /// `beta * log R` of each object; refuses a non-finite `log R` naming the
    /// object, and turns a panicking reward model into an error.
    pub fn log_rewards(&mut self, xs: &[E::State]) -> Result<Vec<f64>> {
        let reward = &mut self.reward;
        let raw =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reward.log_rewards(xs))).map_err(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                Error::Reward(format!("the reward model panicked: {msg}"))
            })??;
        if raw.len() != xs.len() {
            return Err(Error::Reward(format!(
                "expected {} rewards, got {}",
                xs.len(),
                raw.len()
            )));
        }
        let beta = self.config.reward.exponent;
        raw.iter()
            .zip(xs)
            .map(|(&l, x)| {
                if l.is_nan() || l == f64::INFINITY {
                    Err(Error::Reward(format!("object `{}`: log R = {l}", self.env.describe(x))))
                } else if l == f64::NEG_INFINITY {
                    Err(Error::Reward(format!(
                        "object `{}`: R = 0 (log R = -inf); give every object a positive reward",
                        self.env.describe(x)
                    )))
                } else {
                    Ok(beta * l)
                }
            })
            .collect()
    }

    /// The batch of this step: on-policy samples plus replayed objects.
    fn batch(&mut self) -> Result<(Trajectories<E::State>, Vec<f64>, usize)> {
        let c = &self.config;
        let mut traj =
            self.sampler
                .sample_with_activations(&self.env, &self.policy, &self.store, c.batch, c.exploration);
        let mut log_r = self.log_rewards(&traj.terminals)?;
        let on_policy = traj.len();
        let rc = self.config.replay.clone();
        if rc.kind != ReplayKind::None {
            self.replay.add(&traj.terminals, &log_r);
            let mut rng = rng::keyed(self.config.seed, streams::REPLAY, self.step);
            let drawn = match rc.kind {
                ReplayKind::Uniform => self.replay.sample_uniform(rc.batch, &mut rng),
                _ => self.replay.sample_prioritized(rc.batch, rc.alpha, rc.beta, &mut rng),
            };
            if !drawn.is_empty() {
                let (objects, lr): (Vec<E::State>, Vec<f64>) = drawn.into_iter().unzip();
                let replayed = self
                    .sampler
                    .sample_backward(&self.env, &self.policy, &self.store, &objects);
                traj.append(replayed);
                log_r.extend(lr);
            }
        }
        Ok((traj, log_r, on_policy))
    }

    /// One optimisation step.
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let clock = Instant::now();
        // large products of this step split over the same workers as sampling (bit-identical for any count)
        crate::autodiff::gemm::set_threads(self.sampler.threads);
        let (mut traj, log_r, on_policy) = self.batch()?;
        let t_sample = clock.elapsed().as_secs_f64();
        let (states, flops) = (
            traj.n_transitions(),
            self.policy.forward_flops(&traj.features) + self.policy.backward_flops(&traj.features),
        );
        let mean_log_r = log_r[..on_policy].iter().sum::<f64>() / on_policy as f64;
        if self.step == 0 && self.config.optimizer.log_z_init == LogZInit::BatchEstimate {
            let (pf, pb) = (traj.sum_log_pf(), traj.sum_log_pb());
            let est = (0..on_policy).map(|b| log_r[b] + pb[b] - pf[b]).sum::<f64>() / on_policy as f64;
            self.store.value_mut(self.policy.log_z)[[0, 0]] = est as f32;
        }

        let mut tape = Tape::<f32>::new();
        let p = self.store.bind(&mut tape);
        // the sampler's forward pass, made under these weights, serves the training pass
        let terms = match traj.activations.take() {
            Some(acts) => self.policy.terms_sampled(&mut tape, &p, &traj, &log_r, acts),
            None => self.policy.terms(&mut tape, &p, &traj, &log_r),
        };
        let out = self.config.objective.loss(&mut tape, &terms)?;
        let t_loss = clock.elapsed().as_secs_f64();
        if out.value.is_nan() {
            return Err(Error::Numeric(format!("step {}: the loss is NaN", self.step)));
        }
        let mut g = tape.backward(out.loss);
        let mut grads = p.grads(&mut g, &self.store);
        let mut cv_coefficient = None;
        if let Some(cv) = &out.batch_cv {
            let mut gp = tape.backward(cv.pathwise);
            let pathwise = p.grads(&mut gp, &self.store);
            let mut gs = tape.backward(cv.score);
            let score = p.grads(&mut gs, &self.store);
            cv_coefficient = Some(apply_batch_cv(&mut grads, &pathwise, &score, cv.eps));
            pathwise.into_iter().chain(score).for_each(crate::autodiff::pool::give);
        }
        let t_backward = clock.elapsed().as_secs_f64();
        let stats = self.opt.step(&mut self.store, &mut grads)?;
        grads.into_iter().for_each(crate::autodiff::pool::give);
        let t_optim = clock.elapsed().as_secs_f64();
        self.timings = StepTimings {
            sample: t_sample,
            loss: t_loss - t_sample,
            backward: t_backward - t_loss,
            optim: t_optim - t_backward,
            states,
            flops,
        };
        let n = out.residuals.len() as f64;
        let residual_mean = out.residuals.iter().sum::<f64>() / n;
        let residual_std = (out.residuals.iter().map(|r| (r - residual_mean).powi(2)).sum::<f64>() / n).sqrt();
        let sum_pf = traj.sum_log_pf();
        let metrics = StepMetrics {
            step: self.step,
            loss: out.value,
            log_z: self.log_z(),
            log_z_estimate: out.log_z_estimate,
            residual_mean,
            residual_std,
            mean_sum_log_pf: sum_pf[..on_policy].iter().sum::<f64>() / on_policy as f64,
            mean_log_r,
            grad_norm: stats.grad_norm[0],
            log_z_grad: stats.grad_norm[1],
            grad_clipped: stats.clipped[0],
            lr: stats.lr[0],
            log_z_lr: stats.lr[1],
            clipped_fraction: out.clipped_fraction,
            entropy: out.entropy,
            cv_coefficient,
            replayed: traj.len() - on_policy,
            buffer: self.replay.len(),
        };
        self.step += 1;
        Ok(metrics)
    }

    /// `n` objects from the current policy on a stream of their own (the same
    /// objects for the same weights, whatever training did before), with
    /// their `sum log P_F` (= `log P(x)` on trees).
    pub fn sample_eval(&self, n: usize) -> (Vec<E::State>, Vec<f64>) {
        let mut sampler = Sampler::new(self.config.seed ^ 0x5EED_E7A1).with_threads(self.config.threads);
        let t = sampler.sample(
            &self.env,
            &self.policy,
            &self.store,
            n,
            crate::sampler::Exploration::ON_POLICY,
        );
        let lp = t.sum_log_pf();
        (t.terminals, lp)
    }

    /// The network's weights as `(name, [rows, cols], values)`.
    pub fn weights(&self) -> Vec<(String, (usize, usize), Vec<f32>)> {
        self.store
            .iter()
            .map(|p| (p.name.clone(), p.value.dim(), p.value.iter().copied().collect()))
            .collect()
    }

    /// Replaces the weights (same names and shapes), e.g. from a checkpoint.
    pub fn set_weights(&mut self, weights: &[(String, (usize, usize), Vec<f32>)]) -> Result<()> {
        if weights.len() != self.store.len() {
            return Err(Error::Checkpoint(format!(
                "{} tensors, the model has {}",
                weights.len(),
                self.store.len()
            )));
        }
        for (p, (name, dim, v)) in self.store.iter_mut().zip(weights) {
            if &p.name != name || p.value.dim() != *dim || v.len() != dim.0 * dim.1 {
                return Err(Error::Checkpoint(format!(
                    "tensor `{name}` {dim:?} does not match the model's `{}` {:?}",
                    p.name,
                    p.value.dim()
                )));
            }
            p.value = Array2::from_shape_vec(*dim, v.clone()).expect("length checked");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::env::{HyperGrid, HyperGridState};

    /// `R = 1 + x0 + 4 x1` on a 4x4 grid: 16 objects with distinct rewards 1..=16.
    fn reward(x: &HyperGridState) -> f64 {
        (1 + x.coords[0] + 4 * x.coords[1]) as f64
    }

    fn trainer(kind: ReplayKind) -> Trainer<HyperGrid, impl LogReward<HyperGridState>> {
        let mut c = TrainConfig::hypergrid_default(2, 4);
        c.seed = 3;
        c.batch = 5;
        c.policy.hidden = vec![8];
        c.reward.exponent = 2.0;
        c.replay.kind = kind;
        c.replay.batch = 6;
        c.replay.alpha = 0.5;
        c.replay.beta = 50.0;
        let r = |xs: &[HyperGridState]| -> Result<Vec<f64>> { Ok(xs.iter().map(|x| reward(x).ln()).collect()) };
        Trainer::new(c, HyperGrid::new(2, 4).unwrap(), r).unwrap()
    }

    /// A step's batch: the on-policy trajectories, then `replay.batch`
    /// trajectories to objects drawn from the buffer (which already holds
    /// this step's distinct terminals) on the stream keyed by the step, each
    /// with its stored `beta log R`; a prioritized draw takes `round(alpha n)`
    /// of them at or above the buffer's `beta`-th percentile.
    #[test]
    fn a_batch_appends_replayed_objects_drawn_on_the_steps_stream_with_their_tempered_rewards() {
        for kind in [ReplayKind::Uniform, ReplayKind::Prioritized] {
            let mut t = trainer(kind);
            let mut seen = BTreeSet::new();
            let mut draws = BTreeSet::new();
            for step in 0..4 {
                t.step = step;
                let (traj, log_r, on_policy) = t.batch().unwrap();
                assert_eq!(
                    (on_policy, traj.len(), log_r.len()),
                    (5, 11, 11),
                    "{kind:?} step {step}"
                );
                for (x, l) in traj.terminals.iter().zip(&log_r) {
                    assert!(x.done);
                    assert!(
                        (l - 2.0 * reward(x).ln()).abs() < 1e-12,
                        "{kind:?}: {x:?} has log R {l}"
                    );
                }
                seen.extend(traj.terminals[..5].iter().cloned());
                assert_eq!(
                    t.replay.len(),
                    seen.len(),
                    "the buffer holds each distinct terminal once"
                );
                let replayed = &traj.terminals[5..];
                assert!(replayed.iter().all(|x| seen.contains(x)));
                let mut rng = rng::keyed(3, streams::REPLAY, step);
                let want = match kind {
                    ReplayKind::Uniform => t.replay.sample_uniform(6, &mut rng),
                    _ => t.replay.sample_prioritized(6, 0.5, 50.0, &mut rng),
                };
                let want: Vec<HyperGridState> = want.into_iter().map(|(x, _)| x).collect();
                assert_eq!(replayed, &want[..], "{kind:?} step {step}");
                if kind == ReplayKind::Prioritized && seen.len() > 2 {
                    // the median of the stored rewards, nearest rank (with two
                    // objects it is the lower one, and nothing lies below it)
                    let mut r: Vec<f64> = seen.iter().map(reward).collect();
                    r.sort_by(f64::total_cmp);
                    let median = r[r.len().div_ceil(2) - 1];
                    let high = replayed.iter().filter(|x| reward(x) >= median).count();
                    assert_eq!(high, 3, "step {step}: half of 6 from the top half of {r:?}");
                }
                draws.insert(replayed.to_vec());
            }
            assert_eq!(draws.len(), 4, "{kind:?}: each step draws afresh");
        }
    }
}
