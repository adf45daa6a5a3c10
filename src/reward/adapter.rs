//! Peptide reward models as the trainer's [`LogReward`].

use super::{validate_rewards, RewardError, RewardModel};
use crate::env::{LogReward, Peptide, PeptideState};
use crate::error::{Error, Result};

impl From<RewardError> for Error {
    fn from(e: RewardError) -> Self {
        Error::Reward(e.to_string())
    }
}

/// Scores peptide states with any [`RewardModel`]; rewards are validated
/// (count, finite, strictly positive) and returned as `log R`.
pub struct PeptideLogReward {
    pub env: Peptide,
    pub model: Box<dyn RewardModel>,
}

impl LogReward<PeptideState> for PeptideLogReward {
    fn log_rewards(&mut self, xs: &[PeptideState]) -> Result<Vec<f64>> {
        let seqs: Vec<String> = xs.iter().map(|x| self.env.to_string(x)).collect();
        let refs: Vec<&str> = seqs.iter().map(String::as_str).collect();
        let r = self.model.score(&refs)?;
        validate_rewards(&refs, &r)?;
        Ok(r.iter().map(|v| v.ln()).collect())
    }
}
