//! The one entry point: [`Objective`], [`ObjectiveConfig`] and [`ObjectiveConfig::loss`].

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::control_variate::ControlVariate;
use super::regression::{RegressionLoss, DEFAULT_CLIP, MAX_EXPONENT};
use super::subtb::DEFAULT_LAMBDA;
use super::{db, divergence, entropy, log_weights, subtb, tb, LossOutput, Terms};
use crate::autodiff::Tape;
use crate::error::{positive_finite, Result};
use crate::{Error, Scalar};

/// Which objective; names `tb | subtb | db | rev-kl | fwd-kl | renyi | tsallis`, a parameter
/// given as `subtb:<lambda>`, `renyi:<alpha>`, `tsallis:<alpha>` (bare names take the
/// defaults `lambda = 0.9`, `alpha = 0.5`; `Display` omits a default parameter).
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub enum Objective {
    /// Trajectory balance ([`super::tb`]).
    #[default]
    Tb,
    /// SubTB(lambda) ([`super::subtb`]).
    SubTb { lambda: f64 },
    /// Detailed balance ([`super::db`]).
    Db,
    /// `KL(P_F || pi)` ([`super::divergence::reverse_kl`]).
    RevKl,
    /// `KL(pi || P_F)` ([`super::divergence::forward_kl`]).
    FwdKl,
    /// Rényi-alpha ([`super::divergence::renyi`]).
    Renyi { alpha: f64 },
    /// Tsallis-alpha ([`super::divergence::tsallis`]).
    Tsallis { alpha: f64 },
}

impl Objective {
    /// The bare name.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Tb => "tb",
            Objective::SubTb { .. } => "subtb",
            Objective::Db => "db",
            Objective::RevKl => "rev-kl",
            Objective::FwdKl => "fwd-kl",
            Objective::Renyi { .. } => "renyi",
            Objective::Tsallis { .. } => "tsallis",
        }
    }

    /// Whether it uses a regression loss on balance residuals (tb, subtb, db).
    pub fn is_balance(&self) -> bool {
        matches!(self, Objective::Tb | Objective::SubTb { .. } | Objective::Db)
    }

    /// Whether `Terms::log_f` is required (subtb, db).
    pub fn needs_log_f(&self) -> bool {
        matches!(self, Objective::SubTb { .. } | Objective::Db)
    }

    /// Whether the loss trains `Terms::log_z` (the balance objectives; the divergences
    /// need no `Z` and leave `log_z` without gradient).
    pub fn needs_log_z(&self) -> bool {
        self.is_balance()
    }

    /// Whether a learned `P_B` (a `log_pb` carrying a gradient) gets a correct gradient:
    /// true for every objective here (see [`super::divergence`] for the divergences'
    /// pathwise `P_B` terms).
    pub fn supports_learned_pb(&self) -> bool {
        true
    }

    /// Refuses `lambda <= 0`, `alpha <= 0`, `alpha = 1` and non-finite parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Objective::SubTb { lambda } => positive_finite("objective.lambda", lambda),
            Objective::Renyi { alpha } | Objective::Tsallis { alpha } => {
                if alpha.is_finite() && alpha > 0.0 && alpha != 1.0 {
                    Ok(())
                } else {
                    Err(Error::config(
                        "objective.alpha",
                        format!(
                            "{} alpha must be finite, positive and not 1 (alpha = 1 is the KL limit: use rev-kl; \
                             alpha = 0 is degenerate; alpha < 0 is maximised at the target), got {alpha}",
                            self.name()
                        ),
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Objective::SubTb { lambda } if lambda != DEFAULT_LAMBDA => write!(f, "subtb:{lambda}"),
            Objective::Renyi { alpha } | Objective::Tsallis { alpha } if alpha != divergence::DEFAULT_ALPHA => {
                write!(f, "{}:{alpha}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for Objective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let number = |what: &str, default: f64| -> Result<f64> {
            match param {
                None => Ok(default),
                Some(p) => p
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(&format!("objective.{what}"), format!("`{s}`: `{p}` is not a number"))),
            }
        };
        let obj = match name {
            "tb" if param.is_none() => Objective::Tb,
            "db" if param.is_none() => Objective::Db,
            "rev-kl" if param.is_none() => Objective::RevKl,
            "fwd-kl" if param.is_none() => Objective::FwdKl,
            "subtb" => Objective::SubTb {
                lambda: number("lambda", DEFAULT_LAMBDA)?,
            },
            "renyi" => Objective::Renyi {
                alpha: number("alpha", divergence::DEFAULT_ALPHA)?,
            },
            "tsallis" => Objective::Tsallis {
                alpha: number("alpha", divergence::DEFAULT_ALPHA)?,
            },
            _ => {
                return Err(Error::config(
                    "objective",
                    format!(
                        "unknown objective `{s}`; allowed: tb, subtb, subtb:<lambda>, db, rev-kl, fwd-kl, \
                         renyi, renyi:<alpha>, tsallis, tsallis:<alpha>"
                    ),
                ))
            }
        };
        obj.validate()?;
        Ok(obj)
    }
}

impl Serialize for Objective {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Everything that defines the training loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// Which objective (default `tb`).
    pub objective: Objective,
    /// Regression loss of the balance objectives (default `squared`).
    pub g: RegressionLoss,
    /// Clip on the residual inside `g'` (default 50); positive, and with `|alpha| * clip`
    /// (Linex) or `clip` (cosh) at most 80 so that `g'(clip)` is finite in `f32`.
    pub clip: f64,
    /// Control variate of the divergence objectives (default `none`; `loo` for any
    /// divergence, `batch` for `rev-kl` only; the balance objectives take `none`).
    pub cv: ControlVariate,
    /// Weight `w >= 0` of the entropy bonus `-w * mean(entropy)` (default 0).
    pub entropy_weight: f64,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig {
            objective: Objective::Tb,
            g: RegressionLoss::Squared,
            clip: DEFAULT_CLIP,
            cv: ControlVariate::None,
            entropy_weight: 0.0,
        }
    }
}

impl ObjectiveConfig {
    pub fn needs_log_f(&self) -> bool {
        self.objective.needs_log_f()
    }

    pub fn needs_log_z(&self) -> bool {
        self.objective.needs_log_z()
    }

    pub fn supports_learned_pb(&self) -> bool {
        self.objective.supports_learned_pb()
    }

    /// Refuses meaningless settings with an error naming the option.
    pub fn validate(&self) -> Result<()> {
        self.objective.validate()?;
        self.g.validate("objective.g")?;
        positive_finite("objective.clip", self.clip)?;
        if self.g.exponent_at(self.clip) > MAX_EXPONENT {
            return Err(Error::config(
                "objective.clip",
                format!(
                    "with g = {} the gradient at the clip is about exp({}), which overflows f32; \
                     lower the clip so that {} stays <= {MAX_EXPONENT}",
                    self.g,
                    self.g.exponent_at(self.clip),
                    match self.g {
                        RegressionLoss::Linex(_) => "|alpha| * clip",
                        _ => "clip",
                    }
                ),
            ));
        }
        if !(self.entropy_weight.is_finite() && self.entropy_weight >= 0.0) {
            return Err(Error::config(
                "objective.entropy_weight",
                format!("must be >= 0 and finite, got {}", self.entropy_weight),
            ));
        }
        match self.cv {
            ControlVariate::None => Ok(()),
            cv if self.objective.is_balance() => Err(Error::config(
                "objective.cv",
                format!(
                    "`{cv}` applies to the divergence objectives (rev-kl, fwd-kl, renyi, tsallis), not `{}`",
                    self.objective
                ),
            )),
            ControlVariate::Loo => Ok(()),
            ControlVariate::Batch if self.objective == Objective::RevKl => Ok(()),
            ControlVariate::Batch => Err(Error::config(
                "objective.cv",
                format!(
                    "`batch` needs a pathwise term, which only rev-kl has; `{}` is a pure score-function \
                     estimator (use loo)",
                    self.objective
                ),
            )),
        }
    }

    /// The loss of a batch: the objective, plus `-entropy_weight * mean(entropy)`, plus the
    /// batch metrics. Errors on an invalid configuration or when `terms` lacks what the
    /// objective needs (`log_f`, `entropy`); panics on malformed `terms` shapes.
    pub fn loss<T: Scalar>(&self, tape: &mut Tape<T>, terms: &Terms) -> Result<LossOutput> {
        self.validate()?;
        let (g, clip, cv) = (self.g, self.clip, self.cv);
        let part = match self.objective {
            Objective::Tb => tb::loss(tape, terms, g, clip),
            Objective::SubTb { lambda } => subtb::loss(tape, terms, lambda, g, clip)?,
            Objective::Db => db::loss(tape, terms, g, clip)?,
            Objective::RevKl => divergence::reverse_kl(tape, terms, cv)?,
            Objective::FwdKl => divergence::forward_kl(tape, terms, cv)?,
            Objective::Renyi { alpha } => divergence::renyi(tape, terms, alpha, cv)?,
            Objective::Tsallis { alpha } => divergence::tsallis(tape, terms, alpha, cv)?,
        };
        let (mut loss, mut value) = (part.loss, part.value);
        let entropy = entropy::mean(tape, terms);
        if let Some(term) = entropy::bonus(tape, terms, self.entropy_weight)? {
            loss = tape.add(loss, term);
            value -= self.entropy_weight * entropy.unwrap_or(0.0);
        }
        let l = log_weights(tape, terms);
        let log_z = tape.item(terms.log_z).to_f64();
        Ok(LossOutput {
            loss,
            value,
            residuals: l.iter().map(|&l| l - log_z).collect(),
            log_z_estimate: l.iter().sum::<f64>() / l.len() as f64,
            clipped_fraction: part.clipped_fraction,
            entropy,
            batch_cv: part.batch_cv,
        })
    }
}
