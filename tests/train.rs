//! The trainer end to end: replay proportions, reproducibility, resume,
//! refused checkpoints and configurations, and learning on peptides.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gflownet::env::{HyperGrid, HyperGridState};
use gflownet::replay::ReplayBuffer;
use gflownet::train::{resume, start, Observer, Quiet, StepMetrics, TrainConfig, Trainer};
use gflownet::Error;

fn tmp(name: &str) -> Scratch {
    Scratch::new(&format!("train-{name}"))
}

mod common;
use common::{read, small_grid, snapshot, Scratch};

#[test]
fn prioritized_replay_proportions() {
    let mut buf = ReplayBuffer::new(1000);
    let objects: Vec<u32> = (0..1000).collect();
    let log_r: Vec<f64> = (0..1000).map(|i| i as f64).collect();
    assert_eq!(buf.add(&objects, &log_r), 1000);
    assert_eq!(buf.add(&objects[..10], &log_r[..10]), 0, "duplicates are not added");
    let threshold = buf.percentile(90.0);
    assert_eq!(threshold, 899.0);
    let mut rng = gflownet::rng::stream(0, 9);
    for alpha in [0.0, 0.25, 0.5, 1.0] {
        let draw = buf.sample_prioritized(2000, alpha, 90.0, &mut rng);
        let high = draw.iter().filter(|(_, l)| *l >= threshold).count();
        assert_eq!(high, (alpha * 2000.0).round() as usize, "alpha {alpha}");
        // the low part is spread over the whole bottom 90%, not just near the top
        if alpha < 1.0 {
            let low_mean =
                draw.iter().filter(|(_, l)| *l < threshold).map(|(_, l)| l).sum::<f64>() / (2000 - high) as f64;
            assert!((low_mean - 449.0).abs() < 25.0, "{low_mean}");
        }
    }
    // FIFO eviction: the oldest object leaves first, again and again
    let mut small = ReplayBuffer::new(3);
    small.add(&[1u32, 2, 3, 4], &[0.0, 0.0, 0.0, 0.0]);
    let kept = |b: &ReplayBuffer<u32>| b.items().iter().map(|(s, _)| *s).collect::<Vec<u32>>();
    assert_eq!(kept(&small), vec![4, 2, 3]);
    small.add(&[5, 6, 7], &[0.0, 0.0, 0.0]);
    assert_eq!(kept(&small), vec![7, 5, 6]);
    // every reward equal: nothing lies below the percentile, all draws come from the rest
    let mut flat = ReplayBuffer::new(10);
    flat.add(&[1u32, 2, 3, 4, 5], &[0.5; 5]);
    let draw = flat.sample_prioritized(10, 0.5, 90.0, &mut rng);
    assert_eq!(draw.len(), 10);
    assert!(draw.iter().all(|(s, l)| (1..=5).contains(s) && *l == 0.5));
}

#[test]
fn same_seed_gives_byte_identical_run_files() {
    let (a, b) = (tmp("same-a"), tmp("same-b"));
    start(small_grid(), &a, &mut Quiet).unwrap();
    start(small_grid(), &b, &mut Quiet).unwrap();
    for f in [
        "metrics.jsonl",
        "eval.jsonl",
        "samples.csv",
        "checkpoint/weights.safetensors",
        "config.json",
    ] {
        assert_eq!(read(&a.join(f)), read(&b.join(f)), "{f} differs");
    }
    let mut other = small_grid();
    other.seed = 1;
    let c = tmp("same-c");
    start(other, &c, &mut Quiet).unwrap();
    assert_ne!(read(&a.join("metrics.jsonl")), read(&c.join("metrics.jsonl")));
    // the resolved config reproduces the run
    let cfg = TrainConfig::from_json(&String::from_utf8(read(&a.join("config.json"))).unwrap()).unwrap();
    let d = tmp("same-d");
    start(cfg, &d, &mut Quiet).unwrap();
    assert_eq!(read(&a.join("metrics.jsonl")), read(&d.join("metrics.jsonl")));
    // a directory that holds a run is never overwritten
    let err = start(small_grid(), &a, &mut Quiet).unwrap_err().to_string();
    assert!(err.contains("already holds a run"), "{err}");
}

#[test]
fn thread_count_does_not_change_results() {
    // the small policy splits sampling only; the 2x256 one also splits its
    // large matrix products (src/autodiff/gemm.rs) over the threads
    let mut wide = small_grid();
    wide.policy.hidden = vec![256, 256];
    wide.batch = 16;
    wide.steps = 12;
    for (name, config) in [("small", small_grid()), ("wide", wide)] {
        let mut one = config.clone();
        one.threads = 1;
        let mut three = config;
        three.threads = 3;
        let (a, b) = (tmp(&format!("threads-1-{name}")), tmp(&format!("threads-3-{name}")));
        start(one, &a, &mut Quiet).unwrap();
        // the config differs only in `threads`; everything it produces is identical
        start(three, &b, &mut Quiet).unwrap();
        for f in [
            "metrics.jsonl",
            "eval.jsonl",
            "samples.csv",
            "checkpoint/weights.safetensors",
        ] {
            assert_eq!(
                read(&a.join(f)),
                read(&b.join(f)),
                "{name}: {f} differs between 1 and 3 threads"
            );
        }
    }
}

/// Panics (like a crash) once the run reaches `at`.
struct CrashAt(u64);
impl Observer for CrashAt {
    fn on_step(&mut self, m: &StepMetrics, _: f64) {
        if m.step == self.0 {
            panic!("simulated crash at step {}", self.0);
        }
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let full = tmp("resume-full");
    start(small_grid(), &full, &mut Quiet).unwrap();
    for crash in [3u64, 17, 29] {
        let dir = tmp(&format!("resume-{crash}"));
        let r = catch_unwind(AssertUnwindSafe(|| start(small_grid(), &dir, &mut CrashAt(crash))));
        assert!(r.is_err(), "the crash happened");
        resume(&dir, &mut Quiet).unwrap();
        // resuming a finished run changes nothing
        resume(&dir, &mut Quiet).unwrap();
        for f in [
            "metrics.jsonl",
            "eval.jsonl",
            "samples.csv",
            "checkpoint/weights.safetensors",
            "best/weights.safetensors",
            "baseline.json",
        ] {
            assert_eq!(read(&full.join(f)), read(&dir.join(f)), "crash at {crash}: {f} differs");
        }
    }
}

/// A checkpoint saved before the first evaluation (no best reward yet) resumes:
/// its state once held -inf, which JSON cannot carry.
#[test]
fn checkpoint_before_the_first_evaluation_resumes() {
    let mut c = small_grid();
    c.checkpoint_every = 2;
    let full = tmp("early-full");
    start(c.clone(), &full, &mut Quiet).unwrap();
    let dir = tmp("early");
    let r = catch_unwind(AssertUnwindSafe(|| start(c.clone(), &dir, &mut CrashAt(5))));
    assert!(r.is_err(), "the crash happened");
    resume(&dir, &mut Quiet).unwrap();
    for f in ["metrics.jsonl", "eval.jsonl", "checkpoint/weights.safetensors"] {
        assert_eq!(read(&full.join(f)), read(&dir.join(f)), "{f} differs");
    }
}

#[test]
fn corrupted_checkpoint_is_refused_and_nothing_is_overwritten() {
    let dir = tmp("corrupt");
    let mut c = small_grid();
    c.steps = 20;
    start(c, &dir, &mut Quiet).unwrap();
    let w = dir.join("checkpoint/weights.safetensors");
    let mut bytes = read(&w);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&w, &bytes).unwrap();
    let before = snapshot(&dir, &[]);
    let err = resume(&dir, &mut Quiet).unwrap_err();
    assert!(matches!(err, Error::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
    assert_eq!(before, snapshot(&dir, &[]), "a refused resume must not change any file");
    // truncated
    std::fs::write(&w, &bytes[..bytes.len() - 7]).unwrap();
    let before = snapshot(&dir, &[]);
    assert!(resume(&dir, &mut Quiet).is_err());
    assert_eq!(before, snapshot(&dir, &[]));
}

#[test]
fn checkpoint_from_another_config_is_refused() {
    let dir = tmp("incompatible");
    let mut c = small_grid();
    c.steps = 10;
    start(c.clone(), &dir, &mut Quiet).unwrap();
    // someone edits config.json after the fact: the checkpoint no longer matches it
    c.optimizer.lr = 5e-4;
    std::fs::write(dir.join("config.json"), c.to_json()).unwrap();
    let before = snapshot(&dir, &[]);
    let err = resume(&dir, &mut Quiet).unwrap_err().to_string();
    assert!(err.contains("config_fnv1a64"), "{err}");
    assert_eq!(before, snapshot(&dir, &[]));
}

#[test]
fn invalid_configurations_are_refused_naming_the_option() {
    let base = small_grid();
    type Edit = Box<dyn Fn(&mut TrainConfig)>;
    fn set_r(c: &mut TrainConfig, r0: f64, r1: f64, r2: f64) {
        c.env = gflownet::train::EnvConfig::HyperGrid {
            ndim: 2,
            height: 6,
            r0,
            r1,
            r2,
        }
    }
    let cases: Vec<(&str, Edit)> = vec![
        ("batch", Box::new(|c| c.batch = 0)),
        ("steps", Box::new(|c| c.steps = 0)),
        ("optimizer.lr", Box::new(|c| c.optimizer.lr = -1.0)),
        ("optimizer.log_z_lr", Box::new(|c| c.optimizer.log_z_lr = f64::NAN)),
        ("exploration.epsilon", Box::new(|c| c.exploration.epsilon = 1.5)),
        ("exploration.temperature", Box::new(|c| c.exploration.temperature = 0.0)),
        ("replay.alpha", Box::new(|c| c.replay.alpha = 2.0)),
        ("reward.exponent", Box::new(|c| c.reward.exponent = 0.0)),
        (
            "height",
            Box::new(|c| {
                c.env = gflownet::train::EnvConfig::HyperGrid {
                    ndim: 2,
                    height: 1,
                    r0: 0.1,
                    r1: 0.5,
                    r2: 2.0,
                }
            }),
        ),
        (
            "max_len",
            Box::new(|c| {
                c.env = gflownet::train::EnvConfig::Peptide {
                    min_len: 10,
                    max_len: 5,
                }
            }),
        ),
        (
            "policy.log_f",
            Box::new(|c| c.objective.objective = "db".parse().unwrap()),
        ),
        ("policy.hidden", Box::new(|c| c.policy.hidden = vec![])),
        ("policy.hidden", Box::new(|c| c.policy.hidden = vec![32, 0])),
        ("policy.hidden", Box::new(|c| c.policy.hidden = vec![65536; 3])),
        (
            "policy.activation",
            Box::new(|c| c.policy.activation = gflownet::nn::Activation::LeakyRelu(-0.1)),
        ),
        ("policy.log_z_init", Box::new(|c| c.policy.log_z_init = f64::INFINITY)),
        (
            "policy.backward",
            Box::new(|c| {
                c.env = gflownet::train::EnvConfig::Peptide { min_len: 2, max_len: 5 };
                c.policy.backward = gflownet::policy::BackwardPolicy::Learned;
            }),
        ),
        (
            "alpha",
            Box::new(|c| c.objective.g = gflownet::objective::RegressionLoss::Linex(0.0)),
        ),
        (
            "lambda",
            Box::new(|c| {
                c.objective.objective = gflownet::objective::Objective::SubTb { lambda: 0.0 };
                c.policy.log_f = true;
            }),
        ),
        ("log_every", Box::new(|c| c.log_every = 0)),
        ("env.r0", Box::new(|c| set_r(c, 0.0, 0.5, 2.0))),
        ("env.r1", Box::new(|c| set_r(c, 0.1, -0.5, 2.0))),
        ("env.r2", Box::new(|c| set_r(c, 0.1, 0.5, f64::NAN))),
        ("reward.timeout_s", Box::new(|c| c.reward.timeout_s = 0.0)),
        (
            "reward.command",
            Box::new(|c| c.reward.command = Some("python3 score.py".into())),
        ),
        (
            "optimizer.schedule.warmup",
            Box::new(|c| c.optimizer.schedule = gflownet::nn::Schedule::Warmup { warmup: 0 }),
        ),
        (
            "optimizer.log_z_schedule.half_life",
            Box::new(|c| c.optimizer.log_z_schedule = gflownet::nn::Schedule::InverseTime { half_life: 0.0 }),
        ),
        ("replay.capacity", Box::new(|c| c.replay.capacity = 0)),
        (
            "replay.beta",
            Box::new(|c| {
                c.replay.kind = gflownet::replay::ReplayKind::Uniform;
                c.replay.beta = 101.0;
            }),
        ),
        (
            "exploration",
            Box::new(|c| {
                c.replay.kind = gflownet::replay::ReplayKind::None;
                c.objective.objective = "rev-kl".parse().unwrap();
                c.exploration.temperature = 2.0;
            }),
        ),
        ("eval.samples", Box::new(|c| c.eval.samples = (1 << 20) + 1)),
        ("eval.cluster_radius", Box::new(|c| c.eval.cluster_radius = 1.5)),
        ("eval.reward_threshold", Box::new(|c| c.eval.reward_threshold = -1.0)),
        (
            "replay.kind",
            Box::new(|c| {
                c.objective.objective = "rev-kl".parse().unwrap();
                c.objective.g = gflownet::objective::RegressionLoss::Squared;
            }),
        ),
    ];
    for (option, edit) in cases {
        let mut c = base.clone();
        edit(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(option), "`{option}` not named in: {err}");
    }
    let json = base.to_json().replacen("\"batch\"", "\"batchsize\"", 1);
    let err = TrainConfig::from_json(&json).unwrap_err().to_string();
    assert!(err.contains("batchsize"), "{err}");
    let json = base.to_json().replacen("\"steps\": 40", "\"steps\": \"forty\"", 1);
    let err = TrainConfig::from_json(&json).unwrap_err().to_string();
    assert!(err.contains("invalid type"), "{err}");
    let json = base
        .to_json()
        .replacen("\"objective\": \"tb\"", "\"objective\": \"tbb\"", 1);
    let err = TrainConfig::from_json(&json).unwrap_err().to_string();
    assert!(err.contains("unknown objective `tbb`"), "{err}");
}

#[test]
fn bad_rewards_stop_training_with_the_object_named() {
    let env = HyperGrid::new(2, 4).unwrap();
    for (bad, expect) in [(f64::NAN, "NaN"), (f64::NEG_INFINITY, "R = 0"), (f64::INFINITY, "inf")] {
        let reward =
            move |xs: &[HyperGridState]| Ok(xs.iter().map(|x| if x.coords[0] == 0 { bad } else { 0.0 }).collect());
        let mut c = TrainConfig::hypergrid_default(2, 4);
        c.policy.hidden = vec![8];
        c.batch = 64;
        let mut t = Trainer::new(c, env.clone(), reward).unwrap();
        let err = t.train_step().unwrap_err().to_string();
        assert!(err.contains(expect) && err.contains("object `0,"), "{err}");
    }
}

#[test]
fn a_panicking_reward_model_is_an_error() {
    let reward = |_: &[HyperGridState]| -> gflownet::error::Result<Vec<f64>> { panic!("scorer exploded") };
    let mut c = TrainConfig::hypergrid_default(2, 4);
    c.policy.hidden = vec![8];
    let mut t = Trainer::new(c, HyperGrid::new(2, 4).unwrap(), reward).unwrap();
    let err = t.train_step().unwrap_err().to_string();
    assert!(err.contains("the reward model panicked: scorer exploded"), "{err}");
}

#[test]
fn short_peptide_run_beats_random_and_stays_diverse() {
    let mut c = TrainConfig::peptide_default();
    c.steps = 150;
    c.batch = 32;
    c.policy.hidden = vec![64, 64];
    c.eval.every = 0;
    c.eval.samples = 256;
    c.checkpoint_every = 0;
    let dir = tmp("peptide");
    let s = start(c, &dir, &mut Quiet).unwrap();
    let (f, b) = (&s.final_eval, &s.baseline);
    let (fd, bd) = (f.sequences.as_ref().unwrap(), b.sequences.as_ref().unwrap());
    eprintln!(
        "mean reward {:.3} vs random {:.3}; diversity {:.3} vs {:.3}",
        f.mean_reward, b.mean_reward, fd.diversity, bd.diversity
    );
    assert!(
        f.mean_reward > 1.5 * b.mean_reward,
        "{} vs random {}",
        f.mean_reward,
        b.mean_reward
    );
    // a collapsed policy has diversity near 0; random peptides sit near 0.85
    assert!(fd.diversity > 0.5, "diversity {}", fd.diversity);
    assert!(f.unique_ratio > 0.8, "unique ratio {}", f.unique_ratio);
}

/// A resume removes the temp files a killed `atomic_write` leaves
/// (`.NAME.PID-N.tmp`) and nothing else.
#[test]
fn resume_removes_stale_temp_files_only() {
    let dir = tmp("stale");
    start(small_grid(), &dir, &mut Quiet).unwrap();
    let stale = dir.join(".samples.csv.4242-7.tmp");
    let mine = [
        dir.join(".notes.tmp"),
        dir.join(".a.b-c.tmp"),
        dir.join("draft.1-2.tmp"),
    ];
    std::fs::write(&stale, b"half a file").unwrap();
    for f in &mine {
        std::fs::write(f, b"the user's").unwrap();
    }
    resume(&dir, &mut Quiet).unwrap();
    assert!(!stale.exists(), "the stale temp file is removed");
    for f in &mine {
        assert_eq!(read(f), b"the user's", "{} is not ours and stays", f.display());
    }
}

#[test]
fn step_timings_count_the_states_and_work_of_the_batch() {
    // HyperGrid D=2, H=4: a trajectory visits 1 to 7 states, each encoded
    // with D ones, so the step's floor is the policy's count for that many rows
    let (d, h, batch) = (2, 4, 8);
    let mut cfg = TrainConfig::hypergrid_default(d, h);
    cfg.batch = batch;
    let mut t = Trainer::new(
        cfg,
        HyperGrid::new(d, h).unwrap(),
        gflownet::env::HyperGridReward::standard(h),
    )
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        t.train_step().unwrap();
        let states = t.timings.states;
        assert!((batch..=batch * (d * (h - 1) + 1)).contains(&states), "{states} states");
        let mut x = gflownet::nn::Csr::new(d * h);
        for _ in 0..states {
            x.push_row((0..d).map(|i| ((i * h) as u32, 1.0)));
        }
        let want = t.policy.forward_flops(&x) + t.policy.backward_flops(&x);
        assert_eq!(t.timings.flops, want, "{states} states");
        seen.insert(states);
    }
    assert!(
        seen.len() > 1,
        "the batches' sizes vary, and the timings follow them: {seen:?}"
    );
}

/// Early stopping counts the evaluations without a better mean reward across
/// a resume: the checkpoint carries the count.
#[test]
fn a_resumed_run_stops_early_where_the_uninterrupted_run_does() {
    let mut c = small_grid();
    c.eval.every = 1;
    c.eval.patience = 2;
    c.checkpoint_every = 1;
    let full = tmp("patience-full");
    let stopped = start(c.clone(), &full, &mut Quiet).unwrap().steps;
    assert!(stopped < c.steps, "the run stops early");
    // crash in the step it stopped after: the checkpoint a step before counts
    // one evaluation without improvement, and the next one ends the run
    let dir = tmp("patience");
    let r = catch_unwind(AssertUnwindSafe(|| start(c.clone(), &dir, &mut CrashAt(stopped - 1))));
    assert!(r.is_err(), "the crash happened");
    assert_eq!(resume(&dir, &mut Quiet).unwrap().steps, stopped);
    for f in ["metrics.jsonl", "eval.jsonl", "checkpoint/weights.safetensors"] {
        assert_eq!(read(&full.join(f)), read(&dir.join(f)), "{f} differs");
    }
}

/// `evaluate` reports `R(x)` itself (not `R(x)^beta`), statistics of those
/// rewards, the calibration slope of `log P_F` on `beta log R`, and the exact
/// `log Z` of the tempered target. On a 4x4 grid with `R = 1 + x0 + 4 x1` the
/// rewards are 1..=16, so `Z = sum R^2 = 16 * 17 * 33 / 6 = 1496` for beta 2.
#[test]
fn evaluation_reports_untempered_rewards_and_the_tempered_target() {
    let reward = |xs: &[HyperGridState]| -> gflownet::error::Result<Vec<f64>> {
        Ok(xs
            .iter()
            .map(|x| ((1 + x.coords[0] + 4 * x.coords[1]) as f64).ln())
            .collect())
    };
    let mut c = TrainConfig::hypergrid_default(2, 4);
    c.policy.hidden = vec![8];
    c.reward.exponent = 2.0;
    c.eval.samples = 40;
    let mut t = Trainer::new(c, HyperGrid::new(2, 4).unwrap(), reward).unwrap();
    let (rep, samples) = t.evaluate().unwrap();
    assert_eq!((rep.n, samples.len()), (40, 40));
    let r: Vec<f64> = samples.iter().map(|s| s.reward).collect();
    for s in &samples {
        let x: Vec<f64> = s.object.split(',').map(|v| v.parse().unwrap()).collect();
        assert!(
            (s.reward - (1.0 + x[0] + 4.0 * x[1])).abs() < 1e-9,
            "{} -> {}",
            s.object,
            s.reward
        );
    }
    let mean = r.iter().sum::<f64>() / 40.0;
    assert!((rep.mean_reward - mean).abs() < 1e-9);
    let distinct: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.object.as_str()).collect();
    assert_eq!(rep.unique_ratio, distinct.len() as f64 / 40.0);
    // top 10% of 40 samples: the 4 largest
    let mut sorted = r.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    assert!((rep.top10_reward - sorted[..4].iter().sum::<f64>() / 4.0).abs() < 1e-9);
    // least-squares slope of y = log P_F on x = 2 ln R
    let x: Vec<f64> = r.iter().map(|v| 2.0 * v.ln()).collect();
    let y: Vec<f64> = samples.iter().map(|s| s.log_pf).collect();
    let (mx, my) = (x.iter().sum::<f64>() / 40.0, y.iter().sum::<f64>() / 40.0);
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    assert!((rep.calibration_slope.unwrap() - sxy / sxx).abs() < 1e-9);
    let exact = rep.exact.unwrap();
    assert!((exact.true_log_z - 1496f64.ln()).abs() < 1e-9, "{}", exact.true_log_z);
    assert!((exact.log_z_error - (t.log_z() - 1496f64.ln()).abs()).abs() < 1e-9);
}

/// The random baseline's `log P(x)` counts only the valid actions. On a 1-D
/// grid of height 3 the uniform policy exits at 0 with probability 1/2 and
/// reaches 1 and 2 with 1/4 each (at 2 only the exit is valid), so with
/// `R = P` it samples exactly `R / Z`: Pearson 1, slope 1.
#[test]
fn random_baseline_is_calibrated_when_the_reward_is_its_own_distribution() {
    let reward = |xs: &[HyperGridState]| -> gflownet::error::Result<Vec<f64>> {
        Ok(xs.iter().map(|x| [0.5f64, 0.25, 0.25][x.coords[0]].ln()).collect())
    };
    let mut c = TrainConfig::hypergrid_default(1, 3);
    c.policy.hidden = vec![8];
    c.eval.samples = 64;
    let mut t = Trainer::new(c, HyperGrid::new(1, 3).unwrap(), reward).unwrap();
    let rep = t.evaluate_random_baseline().unwrap();
    assert!((rep.calibration_pearson.unwrap() - 1.0).abs() < 1e-9, "{rep:?}");
    assert!((rep.calibration_slope.unwrap() - 1.0).abs() < 1e-9, "{rep:?}");
}

/// The defaults the docs promise. The main job (README, `peptide_default`):
/// TB with Linex(1/2), log Z learning rate 0.1 initialised from the first
/// batch, prioritized replay. The HyperGrid benchmark: the reward of Malkin
/// et al. (2022), `R0 = 0.1, R1 = 0.5, R2 = 2`, log Z from its configured
/// value, no replay.
#[test]
fn defaults_are_the_documented_ones() {
    use gflownet::objective::{Objective, RegressionLoss};
    use gflownet::replay::ReplayKind;
    use gflownet::train::{EnvConfig, LogZInit};
    let p = TrainConfig::peptide_default();
    assert_eq!(p.objective.objective, Objective::Tb);
    assert_eq!(p.objective.g, RegressionLoss::Linex(0.5));
    assert_eq!(
        (p.optimizer.log_z_lr, p.optimizer.log_z_init),
        (0.1, LogZInit::BatchEstimate)
    );
    assert_eq!(p.replay.kind, ReplayKind::Prioritized);
    let g = TrainConfig::hypergrid_default(2, 8);
    match g.env {
        EnvConfig::HyperGrid { r0, r1, r2, .. } => assert_eq!((r0, r1, r2), (0.1, 0.5, 2.0)),
        other => panic!("{other:?}"),
    }
    assert_eq!(g.optimizer.log_z_init, LogZInit::Config);
    assert_eq!(g.replay.kind, ReplayKind::None);
}

/// `objective_from_flags` gives each objective its own parameter: lambda to
/// SubTB, alpha to Rényi and Tsallis; the others take neither.
#[test]
fn objective_flags_set_each_objectives_parameter() {
    use gflownet::objective::Objective;
    use gflownet::train::objective_from_flags;
    let obj = |name: &str| {
        objective_from_flags(name, "squared", Some(0.25), Some(0.5), "none")
            .unwrap()
            .objective
    };
    assert_eq!(obj("subtb"), Objective::SubTb { lambda: 0.5 });
    assert_eq!(obj("renyi"), Objective::Renyi { alpha: 0.25 });
    assert_eq!(obj("tsallis"), Objective::Tsallis { alpha: 0.25 });
    assert_eq!(obj("tb"), Objective::Tb);
}

/// `metrics.jsonl` has a line every `log_every` steps and one for the last
/// step: 11 steps logged every 3 give steps 0, 3, 6, 9 and 10.
#[test]
fn metrics_lines_every_log_every_steps_and_at_the_last() {
    let mut c = small_grid();
    c.steps = 11;
    c.log_every = 3;
    let dir = tmp("log-every");
    start(c, &dir, &mut Quiet).unwrap();
    let steps: Vec<u64> = String::from_utf8(read(&dir.join("metrics.jsonl")))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![0, 3, 6, 9, 10]);
}
