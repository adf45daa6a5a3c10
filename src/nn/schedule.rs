//! Learning-rate schedules: a factor applied to a group's base rate.

use serde::{Deserialize, Serialize};

/// How a group's learning rate changes with the optimizer step (counted from 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Factor 1 throughout.
    #[default]
    Constant,
    /// Factor rises linearly from `1/warmup` to 1 over the first `warmup` steps.
    Warmup { warmup: u64 },
    /// Linear warm-up, then cosine decay from 1 to `min_factor` at step `total`, flat after.
    Cosine { warmup: u64, total: u64, min_factor: f64 },
    /// `1 / (1 + step / half_life)`: halves the rate after `half_life` steps
    /// (used for log Z, whose late oscillation it damps).
    InverseTime { half_life: f64 },
}

impl Schedule {
    /// The factor at `step`.
    pub fn factor(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Warmup { warmup } => warmup_factor(step, warmup),
            Schedule::Cosine {
                warmup,
                total,
                min_factor,
            } => {
                if step < warmup {
                    return warmup_factor(step, warmup);
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::InverseTime { half_life } => 1.0 / (1.0 + step as f64 / half_life),
        }
    }

    /// Refuses meaningless settings, naming `option`.
    pub fn validate(&self, option: &str) -> crate::error::Result<()> {
        use crate::error::{in_range, positive_finite};
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Warmup { warmup } => positive_finite(&format!("{option}.warmup"), warmup as f64),
            Schedule::Cosine {
                warmup,
                total,
                min_factor,
            } => {
                in_range(&format!("{option}.min_factor"), min_factor, 0.0, 1.0)?;
                if total <= warmup {
                    return Err(crate::Error::config(
                        &format!("{option}.total"),
                        format!("must exceed warmup ({warmup}), got {total}"),
                    ));
                }
                Ok(())
            }
            Schedule::InverseTime { half_life } => positive_finite(&format!("{option}.half_life"), half_life),
        }
    }
}

fn warmup_factor(step: u64, warmup: u64) -> f64 {
    if warmup == 0 {
        1.0
    } else {
        ((step + 1) as f64 / warmup as f64).min(1.0)
    }
}
