//! The full, resolved configuration of a training run (`config.json`).
//!
//! Unknown fields are refused, every value is range-checked by
//! [`TrainConfig::validate`] before training starts, and the resolved config
//! of a run fed back reproduces it bit for bit.

use serde::{Deserialize, Serialize};

use crate::error::{in_range, positive_finite, Error, Result};
use crate::nn::{AdamKind, Schedule};
use crate::objective::ObjectiveConfig;
use crate::policy::{BackwardPolicy, PolicyConfig};
use crate::replay::{ReplayConfig, ReplayKind};
use crate::sampler::Exploration;

/// Which environment to build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EnvConfig {
    /// Peptides over the 20 amino acids, scored by the default composite
    /// reward or by `reward.command`.
    Peptide { min_len: usize, max_len: usize },
    /// HyperGrid with the standard reward shape.
    HyperGrid {
        ndim: usize,
        height: usize,
        r0: f64,
        r1: f64,
        r2: f64,
    },
}

/// Reward settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    /// The reward exponent beta: the model is trained on `R(x)^beta`, applied once.
    pub exponent: f64,
    /// An external scoring process (`sh -c`), one JSON line per batch (see `examples/score.py`).
    #[serde(default)]
    pub command: Option<String>,
    /// Seconds to wait for the external process's answer.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

fn default_timeout() -> f64 {
    60.0
}

/// How `log Z` starts.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogZInit {
    /// `policy.log_z_init` (0 by default).
    #[default]
    Config,
    /// The first batch's estimate `mean(log R + sum log P_B - sum log P_F)`.
    BatchEstimate,
}

/// Optimizer settings: one group for the network, one for `log Z`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: AdamKind,
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Global-norm clipping of the network's gradient.
    #[serde(default)]
    pub clip_norm: Option<f64>,
    #[serde(default)]
    pub schedule: Schedule,
    pub log_z_lr: f64,
    #[serde(default)]
    pub log_z_schedule: Schedule,
    #[serde(default)]
    pub log_z_init: LogZInit,
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Evaluate every this many steps (0: only at the end).
    pub every: u64,
    /// Fresh samples per evaluation (a deterministic stream, the same each time).
    pub samples: usize,
    /// Reward at or above which an object counts as a high-reward mode.
    pub reward_threshold: f64,
    /// Normalised Levenshtein radius of a mode cluster.
    pub cluster_radius: f64,
    /// Stop after this many evaluations without improvement of the mean
    /// reward (0: never stop early).
    #[serde(default)]
    pub patience: u64,
}

/// Everything a run needs; `config.json` of a run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub seed: u64,
    pub steps: u64,
    pub batch: usize,
    pub env: EnvConfig,
    pub reward: RewardConfig,
    pub policy: PolicyConfig,
    pub objective: ObjectiveConfig,
    pub optimizer: OptimizerConfig,
    pub exploration: Exploration,
    pub replay: ReplayConfig,
    pub eval: EvalConfig,
    /// Write a metrics line every this many steps.
    pub log_every: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Worker threads (results do not depend on it).
    pub threads: usize,
}

impl TrainConfig {
    /// The main job's defaults: peptides of length 10-30 under the default
    /// composite reward, TB with Linex(1/2), log Z learning rate 0.1
    /// initialised from the first batch, prioritized replay on.
    pub fn peptide_default() -> Self {
        TrainConfig {
            seed: 0,
            steps: 2000,
            batch: 64,
            env: EnvConfig::Peptide {
                min_len: 10,
                max_len: 30,
            },
            reward: RewardConfig {
                exponent: 1.0,
                command: None,
                timeout_s: default_timeout(),
            },
            policy: PolicyConfig::default(),
            objective: ObjectiveConfig {
                g: crate::objective::RegressionLoss::LINEX_HALF,
                ..ObjectiveConfig::default()
            },
            optimizer: OptimizerConfig {
                kind: AdamKind::Adam,
                lr: 1e-3,
                weight_decay: 0.0,
                clip_norm: Some(10.0),
                schedule: Schedule::Constant,
                log_z_lr: 0.1,
                log_z_schedule: Schedule::Constant,
                log_z_init: LogZInit::BatchEstimate,
            },
            exploration: Exploration::ON_POLICY,
            replay: ReplayConfig {
                kind: ReplayKind::Prioritized,
                ..ReplayConfig::default()
            },
            eval: EvalConfig {
                every: 250,
                samples: 512,
                reward_threshold: 0.7,
                cluster_radius: 0.4,
                patience: 0,
            },
            log_every: 10,
            checkpoint_every: 500,
            threads: 0,
        }
    }

    /// The HyperGrid benchmark's defaults (Malkin et al. 2022 settings).
    pub fn hypergrid_default(ndim: usize, height: usize) -> Self {
        TrainConfig {
            batch: 16,
            env: EnvConfig::HyperGrid {
                ndim,
                height,
                r0: 0.1,
                r1: 0.5,
                r2: 2.0,
            },
            optimizer: OptimizerConfig {
                clip_norm: None,
                log_z_init: LogZInit::Config,
                ..Self::peptide_default().optimizer
            },
            replay: ReplayConfig::default(),
            eval: EvalConfig {
                every: 100,
                samples: 0,
                reward_threshold: 1.0,
                cluster_radius: 0.0,
                patience: 0,
            },
            ..Self::peptide_default()
        }
    }

    /// Refuses every out-of-range value, naming the option and its range.
    pub fn validate(&self) -> Result<()> {
        let count = |opt: &str, v: u64, lo: u64, hi: u64| -> Result<()> {
            if v < lo || v > hi {
                return Err(Error::config(opt, format!("must be in [{lo}, {hi}], got {v}")));
            }
            Ok(())
        };
        count("steps", self.steps, 1, 100_000_000)?;
        count("batch", self.batch as u64, 1, 1 << 20)?;
        count("log_every", self.log_every, 1, u64::MAX)?;
        count("threads", self.threads as u64, 0, 1024)?;
        self.policy.validate()?;
        match &self.env {
            EnvConfig::Peptide { min_len, max_len } => {
                crate::env::Peptide::new(*min_len, *max_len)?;
                if self.policy.backward == BackwardPolicy::Learned {
                    return Err(Error::config(
                        "policy.backward",
                        "peptides are built left to right (a tree): a learned P_B has nothing to learn; use `uniform`",
                    ));
                }
            }
            EnvConfig::HyperGrid {
                ndim,
                height,
                r0,
                r1,
                r2,
            } => {
                crate::env::HyperGrid::new(*ndim, *height)?;
                positive_finite("env.r0", *r0)?;
                in_range("env.r1", *r1, 0.0, f64::MAX)?;
                in_range("env.r2", *r2, 0.0, f64::MAX)?;
            }
        }
        positive_finite("reward.exponent", self.reward.exponent)?;
        positive_finite("reward.timeout_s", self.reward.timeout_s)?;
        if let Some(c) = &self.reward.command {
            if c.trim().is_empty() {
                return Err(Error::config("reward.command", "must not be empty"));
            }
            if !matches!(self.env, EnvConfig::Peptide { .. }) {
                return Err(Error::config("reward.command", "external rewards score peptides only"));
            }
        }
        self.objective.validate()?;
        positive_finite("optimizer.lr", self.optimizer.lr)?;
        positive_finite("optimizer.log_z_lr", self.optimizer.log_z_lr)?;
        if !(self.optimizer.weight_decay.is_finite() && self.optimizer.weight_decay >= 0.0) {
            return Err(Error::config(
                "optimizer.weight_decay",
                format!("must be >= 0 and finite, got {}", self.optimizer.weight_decay),
            ));
        }
        if let Some(c) = self.optimizer.clip_norm {
            positive_finite("optimizer.clip_norm", c)?;
        }
        self.optimizer.schedule.validate("optimizer.schedule")?;
        self.optimizer.log_z_schedule.validate("optimizer.log_z_schedule")?;
        self.exploration.validate()?;
        self.replay.validate()?;
        if self.replay.kind != ReplayKind::None && !self.objective.objective.is_balance() {
            return Err(Error::config(
                "replay.kind",
                format!(
                    "replay makes the `{}` estimator biased (it assumes on-policy samples); use it with tb, subtb or db",
                    self.objective.objective
                ),
            ));
        }
        if !self.exploration.is_on_policy() && !self.objective.objective.is_balance() {
            return Err(Error::config(
                "exploration",
                format!(
                    "the `{}` estimator assumes on-policy samples: set temperature 1 and epsilon 0",
                    self.objective.objective
                ),
            ));
        }
        if self.policy.backward == BackwardPolicy::Learned && !self.objective.supports_learned_pb() {
            return Err(Error::config(
                "policy.backward",
                format!(
                    "the `{}` objective cannot train a learned P_B; use `uniform`",
                    self.objective.objective
                ),
            ));
        }
        if self.objective.needs_log_f() && !self.policy.log_f {
            return Err(Error::config(
                "policy.log_f",
                format!(
                    "the `{}` objective needs the log F head: set it to true",
                    self.objective.objective
                ),
            ));
        }
        if self.eval.samples > 1 << 20 {
            return Err(Error::config(
                "eval.samples",
                format!("must be at most 1048576, got {}", self.eval.samples),
            ));
        }
        in_range("eval.reward_threshold", self.eval.reward_threshold, 0.0, f64::MAX)?;
        in_range("eval.cluster_radius", self.eval.cluster_radius, 0.0, 1.0)?;
        Ok(())
    }

    /// Parses and validates a JSON config.
    pub fn from_json(text: &str) -> Result<Self> {
        let c = Self::parse_json(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Parses a JSON config without range checks; an error quotes the
    /// offending line, so unknown fields and wrong types are named.
    pub fn parse_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("").trim();
            Error::config("config", format!("{e}: `{line}`"))
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serializes")
    }
}

/// Hidden widths from a `--hidden 256,256` flag (each then range-checked by
/// [`crate::policy::PolicyConfig::validate`]).
pub fn hidden_from_flag(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|w| {
            w.trim()
                .parse()
                .map_err(|_| Error::config("hidden", format!("`{w}` is not a width")))
        })
        .collect()
}

/// The objective from the command-line flags every example shares:
/// `--objective tb|subtb|db|rev-kl|fwd-kl|renyi|tsallis`, `--g
/// squared|linex1|linex0.5|cosh|linex:<alpha>`, `--alpha`, `--lambda`, `--cv none|loo|batch`.
pub fn objective_from_flags(
    objective: &str,
    g: &str,
    alpha: Option<f64>,
    lambda: Option<f64>,
    cv: &str,
) -> Result<ObjectiveConfig> {
    use crate::objective::Objective;
    let mut obj: Objective = objective.parse()?;
    match &mut obj {
        Objective::SubTb { lambda: l } => *l = lambda.unwrap_or(*l),
        Objective::Renyi { alpha: a } | Objective::Tsallis { alpha: a } => *a = alpha.unwrap_or(*a),
        _ => {}
    }
    let cfg = ObjectiveConfig {
        objective: obj,
        g: g.parse()?,
        cv: cv.parse()?,
        ..ObjectiveConfig::default()
    };
    cfg.validate()?;
    Ok(cfg)
}
