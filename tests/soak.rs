//! Numerical soak on peptides: every objective (TB, SubTB, DB under each of the
//! four regression losses; the four divergences with the leave-one-out control
//! variate), with the default settings and with a deliberately small log Z
//! learning rate (the exploding-residual regime of issue #9), keeps every
//! logged metric, the gradient norm and every parameter finite.
//!
//! CI runs a short version (small policy, a few steps). The long soak:
//! `GFN_SOAK_STEPS=20000 cargo test --release --test soak -- --ignored`
//! (default settings: batch 64, MLP 2x256; `GFN_SOAK_FILTER=<substring>` keeps
//! the configurations whose name contains it, e.g. `"g=linex1 slow-logZ"`);
//! results in RELIABILITY.md.

use gflownet::env::{Environment, LogReward, Peptide};
use gflownet::objective::{ControlVariate, Objective, RegressionLoss};
use gflownet::reward::{PeptideLogReward, PeptideReward};
use gflownet::train::{StepMetrics, TrainConfig, Trainer};

fn configs(slow_log_z: bool) -> Vec<(String, TrainConfig)> {
    let mut out = Vec::new();
    let losses = [
        RegressionLoss::Squared,
        RegressionLoss::LINEX1,
        RegressionLoss::LINEX_HALF,
        RegressionLoss::ShiftedCosh,
    ];
    let objectives: [Objective; 7] =
        ["tb", "subtb", "db", "rev-kl", "fwd-kl", "renyi", "tsallis"].map(|s| s.parse().unwrap());
    for objective in objectives {
        let gs: &[RegressionLoss] = if objective.is_balance() { &losses } else { &losses[..1] };
        for &g in gs {
            let mut c = TrainConfig::peptide_default();
            c.objective.objective = objective;
            c.objective.g = g;
            c.policy.log_f = c.objective.needs_log_f();
            if !objective.is_balance() {
                c.objective.cv = ControlVariate::Loo;
                c.replay.kind = gflownet::replay::ReplayKind::None;
                c.exploration.epsilon = 0.0;
                c.exploration.temperature = 1.0;
            }
            if slow_log_z {
                // the reference PyTorch setting: policy lr 3e-4, log Z lr 3x that, no initialisation
                c.optimizer.lr = 3e-4;
                c.optimizer.log_z_lr = 9e-4;
                c.optimizer.log_z_init = gflownet::train::LogZInit::Config;
            }
            let name = format!(
                "{objective}{}{}",
                if objective.is_balance() {
                    format!(" g={g}")
                } else {
                    " cv=loo".to_string()
                },
                if slow_log_z { " slow-logZ" } else { "" }
            );
            out.push((name, c));
        }
    }
    out
}

fn finite_parameters<E: Environment, R: LogReward<E::State>>(t: &Trainer<E, R>) -> Result<(), String> {
    match t.store.iter().find(|p| p.value.iter().any(|x| !x.is_finite())) {
        Some(p) => Err(format!("parameter {} is not finite", p.name)),
        None => Ok(()),
    }
}

fn finite_metrics(m: &StepMetrics) -> Result<(), String> {
    let named = [
        ("loss", m.loss),
        ("log_z", m.log_z),
        ("log_z_estimate", m.log_z_estimate),
        ("residual_mean", m.residual_mean),
        ("residual_std", m.residual_std),
        ("mean_sum_log_pf", m.mean_sum_log_pf),
        ("mean_log_r", m.mean_log_r),
        ("grad_norm", m.grad_norm),
        ("log_z_grad", m.log_z_grad),
        ("entropy", m.entropy.unwrap_or(0.0)),
        ("cv_coefficient", m.cv_coefficient.unwrap_or(0.0)),
    ];
    match named.iter().find(|(_, x)| !x.is_finite()) {
        Some((n, x)) => Err(format!("{n} = {x} at step {}", m.step)),
        None => Ok(()),
    }
}

/// Runs every configuration for `steps` steps; returns one line per run with
/// the largest |residual mean| seen, and the failures.
fn soak(steps: u64, shrink: bool, filter: &str) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut failures) = (Vec::new(), Vec::new());
    for slow in [false, true] {
        for (name, mut c) in configs(slow).into_iter().filter(|(n, _)| n.contains(filter)) {
            c.steps = steps;
            if shrink {
                c.batch = 16;
                c.policy.hidden = vec![32, 32];
                c.env = gflownet::train::EnvConfig::Peptide {
                    min_len: 5,
                    max_len: 12,
                };
            }
            let gflownet::train::EnvConfig::Peptide { min_len, max_len } = c.env else {
                unreachable!()
            };
            let env = Peptide::new(min_len, max_len).unwrap();
            let reward = PeptideLogReward {
                env: env.clone(),
                model: Box::new(PeptideReward::new()),
            };
            let mut t = Trainer::new(c, env, reward).unwrap();
            let (mut worst, mut last) = (0.0f64, None);
            let outcome = (|| {
                for _ in 0..steps {
                    let m = t.train_step().map_err(|e| format!("step {}: {e}", t.step + 1))?;
                    finite_metrics(&m)?;
                    worst = worst.max(m.residual_mean.abs());
                    last = Some(m);
                }
                finite_parameters(&t)
            })();
            let last = last.map_or(String::new(), |m| {
                format!(
                    "final loss {:.3e}, log Z {:.2}, residual {:.2}",
                    m.loss, m.log_z, m.residual_mean
                )
            });
            lines.push(format!("{name}: {steps} steps, max |residual mean| {worst:.2}, {last}"));
            if let Err(e) = outcome {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    (lines, failures)
}

#[test]
fn every_objective_stays_finite_short() {
    let (lines, failures) = soak(12, true, "");
    assert_eq!(lines.len(), 32, "16 objective x g pairs, two log Z regimes");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "long soak (GFN_SOAK_STEPS, default 20000, default settings); results in RELIABILITY.md"]
fn every_objective_stays_finite_long() {
    let steps = std::env::var("GFN_SOAK_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let filter = std::env::var("GFN_SOAK_FILTER").unwrap_or_default();
    let (lines, failures) = soak(steps, std::env::var("GFN_SOAK_SMALL").is_ok(), &filter);
    assert!(!lines.is_empty(), "GFN_SOAK_FILTER={filter:?} matches no configuration");
    for l in &lines {
        println!("{l}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Rewards spanning 1e-30..1e30 (log R from -69 to +69 across the grid), for
/// every objective x g: every metric, the gradient norm and every parameter
/// stay finite over a short run.
#[test]
fn rewards_from_1e_minus_30_to_1e30_keep_everything_finite() {
    use gflownet::env::{HyperGrid, HyperGridState};
    let (ndim, height) = (2, 6);
    let span = 1e30f64.ln();
    let mut failures = Vec::new();
    for (name, base) in configs(false) {
        let mut c = TrainConfig::hypergrid_default(ndim, height);
        c.objective = base.objective.clone();
        c.policy.log_f = base.policy.log_f;
        c.replay = base.replay.clone();
        c.exploration = base.exploration;
        c.steps = 30;
        c.batch = 16;
        c.policy.hidden = vec![32, 32];
        // a checkerboard of extremes: adjacent objects differ by 60 orders of magnitude
        let reward = move |xs: &[HyperGridState]| -> Result<Vec<f64>, gflownet::Error> {
            Ok(xs
                .iter()
                .map(|x| {
                    let s: usize = x.coords.iter().sum();
                    let frac = (x.coords[0] * height + x.coords[1]) as f64 / (height * height - 1) as f64;
                    if s.is_multiple_of(2) {
                        span * frac
                    } else {
                        -span * (1.0 - frac)
                    }
                })
                .collect())
        };
        let mut t = Trainer::new(c, HyperGrid::new(ndim, height).unwrap(), reward).unwrap();
        let outcome = (|| {
            for _ in 0..30 {
                let m = t.train_step().map_err(|e| e.to_string())?;
                finite_metrics(&m)?;
            }
            finite_parameters(&t)
        })();
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
