//! Training: configuration, the trainer, evaluation.

mod config;
mod eval;
mod run;
mod trainer;

pub use config::{
    hidden_from_flag, objective_from_flags, EnvConfig, EvalConfig, LogZInit, OptimizerConfig, RewardConfig, TrainConfig,
};
pub use eval::{EvalReport, ExactReport, Sample};
pub use run::{resume, start, Observer, Quiet, RunSummary};
pub use trainer::{StepMetrics, StepTimings, Trainer};
