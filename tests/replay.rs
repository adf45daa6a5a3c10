//! Replay in the training loop and across a resume: what a step's metrics
//! report about its on-policy and replayed parts, a full buffer (FIFO
//! eviction) carried over a checkpoint under both kinds of replay, and
//! resumes that must continue where the run stood: from `checkpoint.prev`,
//! and not at all once the run has finished or stopped early; and a
//! checkpoint that does not fit the model.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use gflownet::checkpoint::{
    decode_safetensors, encode_safetensors, read_checkpoint, write_checkpoint, Tensor, TensorData,
};
use gflownet::env::{HyperGrid, HyperGridState};
use gflownet::replay::ReplayKind;
use gflownet::train::{resume, start, LogZInit, Observer, Quiet, StepMetrics, TrainConfig, Trainer};

mod common;
use common::{read, small_grid, snapshot, Scratch};

fn tmp(name: &str) -> Scratch {
    Scratch::new(&format!("replay-{name}"))
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

/// Records the steps a run trains.
struct Steps(Vec<u64>);
impl Observer for Steps {
    fn on_step(&mut self, m: &StepMetrics, _: f64) {
        self.0.push(m.step);
    }
}

/// A step's metrics describe its on-policy batch (mean `beta log R`, mean
/// `sum log P_F`, the first batch's `log Z` estimate) and count the replayed
/// trajectories and the distinct objects in the buffer. The on-policy batch
/// is drawn again from a copy of the sampler under the same weights; on a
/// 4x4 grid with `R = 1 + x0 + 4 x1` and beta 2 its `log R` are `2 ln R`.
#[test]
fn step_metrics_describe_the_on_policy_batch_and_count_the_replayed_and_the_buffer() {
    let r = |x: &HyperGridState| (1 + x.coords[0] + 4 * x.coords[1]) as f64;
    let reward = move |xs: &[HyperGridState]| -> gflownet::error::Result<Vec<f64>> {
        Ok(xs.iter().map(|x| r(x).ln()).collect())
    };
    let mut c = TrainConfig::hypergrid_default(2, 4);
    c.seed = 5;
    c.batch = 5;
    c.policy.hidden = vec![8];
    c.reward.exponent = 2.0;
    c.replay.kind = ReplayKind::Prioritized;
    c.replay.batch = 6;
    c.optimizer.log_z_init = LogZInit::BatchEstimate;
    // Adam's first step moves log Z by about its rate: 1e-6 leaves the estimate
    c.optimizer.log_z_lr = 1e-6;
    let mut t = Trainer::new(c, HyperGrid::new(2, 4).unwrap(), reward).unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut distinct = std::collections::BTreeSet::new();
    for step in 0..4 {
        let on = t
            .sampler
            .clone()
            .sample(&t.env, &t.policy, &t.store, 5, t.config.exploration);
        let m = t.train_step().unwrap();
        distinct.extend(on.terminals.iter().cloned());
        let log_r: Vec<f64> = on.terminals.iter().map(|x| 2.0 * r(x).ln()).collect();
        let pf = on.sum_log_pf();
        assert!(
            (m.mean_log_r - mean(&log_r)).abs() < 1e-12,
            "step {step}: {}",
            m.mean_log_r
        );
        assert!(
            (m.mean_sum_log_pf - mean(&pf)).abs() < 1e-9,
            "step {step}: {}",
            m.mean_sum_log_pf
        );
        assert_eq!((m.replayed, m.buffer), (6, distinct.len()), "step {step}");
        if step == 0 {
            let pb = on.sum_log_pb();
            let est: Vec<f64> = (0..5).map(|b| log_r[b] + pb[b] - pf[b]).collect();
            assert!((m.log_z - mean(&est)).abs() < 1e-4, "{} vs {}", m.log_z, mean(&est));
        }
    }
}

/// A buffer that fills up evicts its oldest object first; a resumed run goes
/// on with the slot the next eviction takes (the resume tests of
/// tests/train.rs use prioritized replay into a buffer that never fills).
#[test]
fn a_resumed_run_with_a_full_replay_buffer_equals_the_uninterrupted_run() {
    for kind in [ReplayKind::Uniform, ReplayKind::Prioritized] {
        let mut c = small_grid();
        c.replay.kind = kind;
        c.replay.capacity = 7;
        let full = tmp(&format!("full-{kind:?}"));
        start(c.clone(), &full, &mut Quiet).unwrap();
        let dir = tmp(&format!("full-crash-{kind:?}"));
        let r = catch_unwind(AssertUnwindSafe(|| start(c.clone(), &dir, &mut CrashAt(17))));
        assert!(r.is_err(), "the crash happened");
        let mut steps = Steps(vec![]);
        resume(&dir, &mut steps).unwrap();
        assert_eq!(
            steps.0,
            (10..40).collect::<Vec<u64>>(),
            "{kind:?}: from the checkpoint at 10"
        );
        for f in ["metrics.jsonl", "eval.jsonl", "checkpoint/weights.safetensors"] {
            assert_eq!(read(&full.join(f)), read(&dir.join(f)), "{kind:?}: {f} differs");
        }
    }
}

/// A crash between the steps of a checkpoint write can leave only
/// `checkpoint.prev`: a resume continues from it, not from the start.
#[test]
fn a_resume_continues_from_checkpoint_prev_when_only_it_is_left() {
    let full = tmp("prev-full");
    start(small_grid(), &full, &mut Quiet).unwrap();
    let dir = tmp("prev");
    let r = catch_unwind(AssertUnwindSafe(|| start(small_grid(), &dir, &mut CrashAt(17))));
    assert!(r.is_err(), "the crash happened");
    std::fs::rename(dir.join("checkpoint"), dir.join("checkpoint.prev")).unwrap();
    let mut steps = Steps(vec![]);
    resume(&dir, &mut steps).unwrap();
    assert_eq!(steps.0.first(), Some(&10), "resumed from the checkpoint at step 10");
    for f in ["metrics.jsonl", "eval.jsonl", "checkpoint/weights.safetensors"] {
        assert_eq!(read(&full.join(f)), read(&dir.join(f)), "{f} differs");
    }
}

/// A finished run resumed trains no further step and changes no file: its
/// last checkpoint is saved at the last step even when that is not a
/// multiple of `checkpoint_every`, and at the step where an early stop ends it.
#[test]
fn resuming_a_finished_or_early_stopped_run_trains_no_step() {
    let mut finished = small_grid();
    finished.steps = 15; // not a multiple of checkpoint_every (10)
    let mut early = small_grid();
    early.eval.every = 1;
    early.eval.patience = 2;
    early.checkpoint_every = 100;
    for (name, c) in [("finished", finished), ("early", early)] {
        let dir = tmp(name);
        let first = start(c.clone(), &dir, &mut Quiet).unwrap();
        assert_eq!(first.stopped_early, name == "early", "{name}");
        let stop = if name == "early" { first.steps } else { 15 };
        assert!(first.steps == stop && stop < 40, "{name}: {} steps", first.steps);
        let before = snapshot(&dir, &["summary.json"]);
        let mut steps = Steps(vec![]);
        let again = resume(&dir, &mut steps).unwrap();
        assert!(
            steps.0.is_empty(),
            "{name}: trained {:?} after step {}",
            steps.0,
            first.steps
        );
        assert_eq!(
            (again.steps, again.stopped_early),
            (first.steps, first.stopped_early),
            "{name}"
        );
        assert_eq!(
            before,
            snapshot(&dir, &["summary.json"]),
            "{name}: a resume changed the run's files"
        );
    }
}

/// A checkpoint whose weights file carries a tensor the model lacks (written
/// with a valid manifest and checksums) is refused, and nothing is touched.
#[test]
fn a_checkpoint_with_a_tensor_the_model_lacks_is_refused() {
    let mut c = small_grid();
    c.steps = 10;
    let dir = tmp("extra-tensor");
    start(c.clone(), &dir, &mut Quiet).unwrap();
    let config = TrainConfig::from_json(&String::from_utf8(read(&dir.join("config.json"))).unwrap()).unwrap();
    let compat = BTreeMap::from([
        ("crate_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        (
            "config_fnv1a64".to_string(),
            format!("{:016x}", gflownet::checkpoint::fnv1a64(config.to_json().as_bytes())),
        ),
    ]);
    let ck = dir.join("checkpoint");
    let mut files = read_checkpoint(&ck, &compat).unwrap();
    let (mut tensors, meta) = decode_safetensors(&files["weights.safetensors"]).unwrap();
    tensors.push(Tensor {
        name: "extra".into(),
        shape: vec![1, 1],
        data: TensorData::F32(vec![0.5]),
    });
    files.insert("weights.safetensors".into(), encode_safetensors(&tensors, &meta));
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_checkpoint(&ck, &files, &compat).unwrap();
    let before = snapshot(&dir, &["summary.json"]);
    let err = resume(&dir, &mut Quiet).unwrap_err().to_string();
    assert!(err.contains("tensors, the model has"), "{err}");
    assert_eq!(before, snapshot(&dir, &["summary.json"]));
}
