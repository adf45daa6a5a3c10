//! Evaluation on fresh samples: reward statistics, diversity, calibration,
//! exact distances where the environment can be enumerated, and the same for
//! a uniformly random policy as a baseline.

use std::collections::HashSet;

use serde::Serialize;

use super::Trainer;
use crate::env::{Environment, LogReward};
use crate::error::Result;
use crate::metrics::exact_terminal_distribution;
use crate::metrics::sequences::{sequence_report, SequenceReport};
use crate::metrics::stats::{max, mean, median, ols_slope, pearson, spearman, top_fraction_mean};
use crate::sampler::{Exploration, Sampler};

/// One sampled object as written to `samples.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub object: String,
    /// `R(x)` (before the reward exponent).
    pub reward: f64,
    /// `sum log P_F` of its trajectory (`log P(x)` on trees).
    pub log_pf: f64,
    pub length: usize,
}

/// Exact distances to the target (enumerable environments only).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExactReport {
    pub l1_sum: f64,
    pub l1_mean: f64,
    pub jsd: f64,
    pub true_log_z: f64,
    pub log_z_error: f64,
}

/// Metrics of one evaluation: a line of `eval.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub step: u64,
    pub n: usize,
    pub mean_reward: f64,
    pub median_reward: f64,
    pub max_reward: f64,
    /// Mean reward of the best 10% of the samples.
    pub top10_reward: f64,
    pub unique_ratio: f64,
    /// Correlations of `log P_F(x)` with `log R(x)` (after the exponent): a
    /// GFlowNet trained to its target has Pearson 1 and slope 1 on a tree.
    pub calibration_pearson: Option<f64>,
    pub calibration_spearman: Option<f64>,
    pub calibration_slope: Option<f64>,
    pub sequences: Option<SequenceReport>,
    pub exact: Option<ExactReport>,
}

/// Metrics of `xs` (with their `sum log P_F`) as objects of `trainer`'s task.
fn report<E: Environment, R: LogReward<E::State>>(
    trainer: &mut Trainer<E, R>,
    xs: &[E::State],
    log_pf: &[f64],
) -> Result<(EvalReport, Vec<Sample>)> {
    let log_r = trainer.log_rewards(xs)?;
    let beta = trainer.config.reward.exponent;
    let rewards: Vec<f64> = log_r.iter().map(|l| (l / beta).exp()).collect();
    let distinct: HashSet<&E::State> = xs.iter().collect();
    let seqs: Option<Vec<String>> = xs.iter().map(|x| trainer.env.sequence(x)).collect();
    let sequences = seqs.as_ref().map(|s| {
        let bytes: Vec<&[u8]> = s.iter().map(|v| v.as_bytes()).collect();
        let max_len = bytes.iter().map(|b| b.len()).max().unwrap_or(0);
        let e = &trainer.config.eval;
        sequence_report(
            &bytes,
            &rewards,
            e.reward_threshold,
            e.cluster_radius,
            crate::env::AMINO_ACIDS,
            max_len,
        )
    });
    let samples = xs
        .iter()
        .zip(&rewards)
        .zip(log_pf)
        .map(|((x, &reward), &log_pf)| {
            let object = trainer.env.describe(x);
            Sample {
                length: trainer.env.sequence(x).map_or(0, |s| s.len()),
                object,
                reward,
                log_pf,
            }
        })
        .collect();
    let report = EvalReport {
        step: trainer.step,
        n: xs.len(),
        mean_reward: mean(&rewards).unwrap_or(0.0),
        median_reward: median(&rewards).unwrap_or(0.0),
        max_reward: max(&rewards).unwrap_or(0.0),
        top10_reward: top_fraction_mean(&rewards, 0.1).unwrap_or(0.0),
        unique_ratio: distinct.len() as f64 / xs.len().max(1) as f64,
        calibration_pearson: pearson(log_pf, &log_r),
        calibration_spearman: spearman(log_pf, &log_r),
        calibration_slope: ols_slope(&log_r, log_pf),
        sequences,
        exact: None,
    };
    Ok((report, samples))
}

impl<E: Environment, R: LogReward<E::State>> Trainer<E, R> {
    /// Evaluates the current policy on `eval.samples` fresh samples (the same
    /// stream every time) and, where the task enumerates, exactly.
    pub fn evaluate(&mut self) -> Result<(EvalReport, Vec<Sample>)> {
        let (xs, lp) = self.sample_eval(self.config.eval.samples);
        let (mut rep, samples) = report(self, &xs, &lp)?;
        let log_z = self.log_z();
        let beta = self.config.reward.exponent;
        let exact = {
            let reward = &mut self.reward;
            let mut scaled = |xs: &[E::State]| -> Result<Vec<f64>> {
                Ok(reward.log_rewards(xs)?.into_iter().map(|l| beta * l).collect())
            };
            exact_terminal_distribution(&self.env, &self.policy, &self.store, &mut scaled)?
        };
        rep.exact = exact.map(|d| {
            let m = d.metrics();
            ExactReport {
                l1_sum: m.l1_sum,
                l1_mean: m.l1_mean,
                jsd: m.jsd,
                true_log_z: d.true_log_z,
                log_z_error: (log_z - d.true_log_z).abs(),
            }
        });
        Ok((rep, samples))
    }

    /// The same metrics for a policy that picks uniformly among valid actions
    /// (reported at step 0: it does not depend on training, so a resumed run
    /// reports the same baseline as an uninterrupted one).
    pub fn evaluate_random_baseline(&mut self) -> Result<EvalReport> {
        let mut sampler = Sampler::new(self.config.seed ^ 0xBA5E_11E0).with_threads(self.config.threads);
        let uniform = Exploration {
            temperature: 1.0,
            epsilon: 1.0,
        };
        let t = sampler.sample(&self.env, &self.policy, &self.store, self.config.eval.samples, uniform);
        // log P(x) under the uniform policy: minus the log of the number of valid actions at each step
        let lp: Vec<f64> = t
            .offsets
            .windows(2)
            .map(|w| {
                (w[0]..w[1])
                    .map(|r| -(t.forward_masks.row(r).iter().filter(|&&m| m).count() as f64).ln())
                    .sum()
            })
            .collect();
        let mut rep = report(self, &t.terminals, &lp)?.0;
        rep.step = 0;
        Ok(rep)
    }
}
