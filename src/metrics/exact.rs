//! The policy's exact terminal distribution and its distance to the target.

use std::collections::HashMap;

use crate::env::{Environment, LogReward};
use crate::error::{Error, Result};
use crate::nn::{Csr, ParamStore};
use crate::policy::Policy;

/// `P_T(x)` for every terminal object `x`, and the target `R(x) / Z`.
#[derive(Clone, Debug)]
pub struct ExactDistribution<S> {
    pub terminals: Vec<S>,
    /// The policy's probability of finishing at each terminal.
    pub p_model: Vec<f64>,
    pub log_reward: Vec<f64>,
    /// `R(x) / Z`.
    pub p_target: Vec<f64>,
    /// `log Z = log sum_x R(x)`.
    pub true_log_z: f64,
}

/// Distances between a distribution over the terminals and the target.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributionMetrics {
    /// `sum_x |P(x) - R(x)/Z|` (the *sum* convention, between 0 and 2).
    pub l1_sum: f64,
    /// `l1_sum / number of terminals` (the per-state mean some papers report).
    pub l1_mean: f64,
    /// Jensen-Shannon divergence in nats (between 0 and ln 2).
    pub jsd: f64,
}

/// Pushes probability mass through the state graph in topological order:
/// `P(s')` accumulates `P(s) P_F(s'|s)`, and `P_T(x) = P(x) P_F(stop|x)`.
/// `None` when the environment cannot enumerate its states.
pub fn exact_terminal_distribution<E: Environment, R: LogReward<E::State>>(
    env: &E,
    policy: &Policy,
    store: &ParamStore<f32>,
    reward: &mut R,
) -> Result<Option<ExactDistribution<E::State>>> {
    let Some(states) = env.all_states() else {
        return Ok(None);
    };
    let index: HashMap<&E::State, usize> = states.iter().enumerate().map(|(i, s)| (s, i)).collect();
    let mut mass = vec![0f64; states.len()];
    mass[index[&env.initial_state()]] = 1.0;
    let mut terminals = Vec::new();
    let mut p_model = Vec::new();
    let mut mask = vec![false; env.n_actions()];
    const CHUNK: usize = 4096;
    for (c, chunk) in states.chunks(CHUNK).enumerate() {
        let mut x = Csr::new(env.feature_dim());
        chunk.iter().for_each(|s| env.encode_sparse(s, &mut x));
        let (logits, _) = policy.infer(store, &x);
        for (r, s) in chunk.iter().enumerate() {
            let m = mass[c * CHUNK + r];
            env.forward_mask(s, &mut mask);
            let row: Vec<f64> = logits.row(r).iter().map(|&v| v as f64).collect();
            let Some(lse) = crate::autodiff::ops::masked_row_logsumexp(row.iter().copied(), mask.iter().copied())
            else {
                continue;
            };
            for a in (0..mask.len()).filter(|&a| mask[a]) {
                let p = m * (row[a] - lse).exp();
                let next = env.step(s, a);
                if env.is_terminal(&next) {
                    terminals.push(next);
                    p_model.push(p);
                } else {
                    let j = *index.get(&next).ok_or_else(|| {
                        Error::Numeric(format!("state {next:?} is missing from the environment's enumeration"))
                    })?;
                    mass[j] += p;
                }
            }
        }
    }
    let log_reward = reward.log_rewards(&terminals)?;
    let true_log_z = log_sum_exp(&log_reward);
    let p_target = log_reward.iter().map(|l| (l - true_log_z).exp()).collect();
    Ok(Some(ExactDistribution {
        terminals,
        p_model,
        log_reward,
        p_target,
        true_log_z,
    }))
}

impl<S: Eq + std::hash::Hash> ExactDistribution<S> {
    /// Distances from the policy's exact distribution to the target.
    pub fn metrics(&self) -> DistributionMetrics {
        distances(&self.p_model, &self.p_target)
    }

    /// Distances from the empirical distribution of `samples` to the target.
    pub fn empirical_metrics(&self, samples: &[S]) -> DistributionMetrics {
        distances(&empirical_distribution(&self.terminals, samples), &self.p_target)
    }
}

/// Frequencies of `samples` over `terminals` (samples not listed are ignored).
pub fn empirical_distribution<S: Eq + std::hash::Hash>(terminals: &[S], samples: &[S]) -> Vec<f64> {
    let index: HashMap<&S, usize> = terminals.iter().enumerate().map(|(i, s)| (s, i)).collect();
    let mut freq = vec![0f64; terminals.len()];
    for s in samples {
        if let Some(&i) = index.get(s) {
            freq[i] += 1.0;
        }
    }
    let n = samples.len().max(1) as f64;
    freq.iter_mut().for_each(|f| *f /= n);
    freq
}

fn distances(p: &[f64], q: &[f64]) -> DistributionMetrics {
    let l1_sum: f64 = p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum();
    let kl_to_mid = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .filter(|(&x, _)| x > 0.0)
            .map(|(&x, &y)| x * (2.0 * x / (x + y)).ln())
            .sum()
    };
    DistributionMetrics {
        l1_sum,
        l1_mean: l1_sum / p.len().max(1) as f64,
        jsd: 0.5 * kl_to_mid(p, q) + 0.5 * kl_to_mid(q, p),
    }
}

pub(crate) fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_take_hand_computed_values() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-14;
        // disjoint: the largest L1 (2) and JSD (ln 2)
        let d = distances(&[1.0, 0.0], &[0.0, 1.0]);
        assert!(
            close(d.l1_sum, 2.0) && close(d.l1_mean, 1.0) && close(d.jsd, 2f64.ln()),
            "{d:?}"
        );
        // identical: zero
        let d = distances(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]);
        assert!(close(d.l1_sum, 0.0) && close(d.jsd, 0.0), "{d:?}");
        // p = (1/2, 1/2), q = (1, 0), the midpoint m = (3/4, 1/4):
        // KL(p || m) = (1/2) ln(4/3), KL(q || m) = ln(4/3), JSD = (3/4) ln(4/3)
        let d = distances(&[0.5, 0.5], &[1.0, 0.0]);
        assert!(close(d.l1_sum, 1.0) && close(d.l1_mean, 0.5), "{d:?}");
        assert!(close(d.jsd, 0.75 * (4.0f64 / 3.0).ln()), "{d:?}");
    }
}
