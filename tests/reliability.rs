//! Reliability of the main job as a process: killed with SIGKILL at random
//! moments (training or saving) and resumed, it ends byte-identical to an
//! uninterrupted run; a write that fails (file size limit, standing in for a
//! full disk) stops it with an error naming the file and loses nothing that a
//! resume needs; an output path that cannot be created is refused.
//!
//! `cargo test --release --test reliability` runs short versions;
//! `cargo test --release --test reliability -- --ignored` runs the long ones
//! recorded in RELIABILITY.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gflownet::train::TrainConfig;
use rand::{Rng, SeedableRng};

mod common;

fn train_bin() -> PathBuf {
    common::example("train")
}

fn tmp(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("rel-{name}"))
}

/// The small HyperGrid run of tests/train.rs, checkpointing every 3 steps so
/// that kills land in saves as well as in training.
fn small_config(steps: u64) -> TrainConfig {
    let mut c = common::small_grid();
    c.steps = steps;
    c.checkpoint_every = 3;
    c
}

fn write_config(c: &TrainConfig, name: &str) -> common::Scratch {
    let p = tmp(&format!("{name}.json"));
    std::fs::write(&p, c.to_json()).unwrap();
    p
}

/// The files a finished run must reproduce byte for byte.
const RUN_FILES: [&str; 6] = [
    "metrics.jsonl",
    "eval.jsonl",
    "samples.csv",
    "summary.json",
    "checkpoint/weights.safetensors",
    "best/weights.safetensors",
];

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `summary.json` holds wall-clock speeds; everything else in it must match.
fn comparable(file: &str, bytes: Vec<u8>) -> Vec<u8> {
    if file != "summary.json" {
        return bytes;
    }
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("steps_per_second");
    o.remove("trajectories_per_second");
    serde_json::to_vec(&v).unwrap()
}

/// Asserts every run file of `dir` equals the uninterrupted `reference`'s
/// (their [`common::Scratch`] guards remove them).
fn assert_same_run(reference: &Path, dir: &Path, after: &str) {
    let litter: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(litter.is_empty(), "temp files left after {after}: {litter:?}");
    for f in RUN_FILES {
        assert!(
            comparable(f, read(&reference.join(f))) == comparable(f, read(&dir.join(f))),
            "{f} differs after {after}"
        );
    }
}

/// The command that (re)starts the run in `out`: a fresh start while no
/// `config.json` exists there, a resume afterwards.
fn launch(config: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(train_bin());
    if out.join("config.json").exists() {
        cmd.arg("--resume").arg(out);
    } else {
        cmd.arg("--config").arg(config).arg("--out").arg(out);
    }
    cmd.env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn finish(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run the train example");
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts the run, kills it with SIGKILL after a random delay, resumes it, and
/// so on until a launch finishes; then compares every run file with the
/// uninterrupted run. The delays (uniform below `2 span / kills`, `span` the
/// uninterrupted run's duration) spread about `kills` kills over the run:
/// process start, training, evaluation and saving alike. Their bound doubles
/// after every `kills` launches, so that a machine that has become slower
/// than it was for the uninterrupted run still lets a launch finish (with a
/// fixed bound, a machine under load once killed all 400 launches); a
/// launch that finishes before its delay is not waited for.
fn kill_and_resume(steps: u64, kills: usize, seed: u64) -> usize {
    let config = small_config(steps);
    let cfg = write_config(&config, &format!("kill-{seed}"));
    let reference = tmp(&format!("kill-ref-{seed}"));
    let t0 = Instant::now();
    finish(&mut launch(&cfg, &reference));
    let span = t0.elapsed().as_secs_f64();

    let dir = tmp(&format!("kill-{seed}"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut killed = 0;
    for launches in 1.. {
        assert!(launches <= 100 * kills, "the run never finished ({killed} kills)");
        let mut child = launch(&cfg, &dir).spawn().expect("spawn train");
        let doublings = ((launches - 1) / kills).min(20) as i32;
        let delay = rng.gen_range(0.0..2.0 * span / kills as f64 * 2f64.powi(doublings));
        let deadline = Instant::now() + Duration::from_secs_f64(delay);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            killed += 1;
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "launch {launches} failed after {killed} kills: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        break;
    }
    assert_same_run(
        &reference,
        &dir,
        &format!("{killed} SIGKILLs and resumes (seed {seed})"),
    );
    killed
}

#[test]
fn sigkill_at_random_moments_then_resume_equals_uninterrupted_run() {
    let killed = kill_and_resume(30, 4, 1);
    assert!(killed > 0, "no launch was killed");
}

#[test]
#[ignore = "long: about 20 kills in each of ten 120-step runs; results in RELIABILITY.md"]
fn sigkill_soak() {
    let mut total = 0;
    for seed in 0..10 {
        let killed = kill_and_resume(120, 20, 100 + seed);
        println!("seed {}: {killed} SIGKILLs, resumed to identical files", 100 + seed);
        total += killed;
    }
    println!("{total} SIGKILLs in all");
}

/// Runs the train example under a file-size limit (`ulimit -f`, in KiB, with
/// SIGXFSZ ignored so a write past it fails with EFBIG the way a full disk
/// fails with ENOSPC).
fn limited(kib: u64, args: &[&str]) -> Output {
    let script = format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\"");
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(train_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run bash")
}

#[test]
fn failed_write_stops_with_the_file_named_and_resume_loses_nothing() {
    let config = small_config(60);
    let cfg = write_config(&config, "full");
    let reference = tmp("full-ref");
    finish(&mut launch(&cfg, &reference));
    let metrics_len = read(&reference.join("metrics.jsonl")).len() as u64;
    let largest_other = std::fs::read_dir(reference.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .chain(["eval.jsonl", "samples.csv", "samples.fasta"].map(|f| read(&reference.join(f)).len() as u64))
        .max()
        .unwrap();
    // a limit that every other file fits under and metrics.jsonl outgrows
    // part-way through the run
    let kib = (metrics_len / 2).max(largest_other + 1024).div_ceil(1024);
    assert!(kib * 1024 < metrics_len, "the limit must cut the run short");

    let dir = tmp("full");
    let (c, d) = (cfg.to_str().unwrap(), dir.to_str().unwrap());
    let out = limited(kib, &["--config", c, "--out", d]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run cannot finish under the limit");
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(
        err.contains("metrics.jsonl") && err.contains("too large"),
        "the error names the file and the cause: {err}"
    );
    assert!(
        dir.join("checkpoint/manifest.json").exists(),
        "the checkpoints written before the failure are still there"
    );
    // nothing a resume needs was lost: it completes and matches
    finish(&mut launch(&cfg, &dir));
    assert_same_run(&reference, &dir, "a failed write and a resume");
}

#[test]
fn failed_checkpoint_write_is_an_error_and_a_resume_recovers() {
    // with a 256-wide policy the weight files outgrow a limit that every other file fits under
    let mut config = small_config(12);
    config.policy.hidden = vec![256, 256];
    config.checkpoint_every = 4;
    let cfg = write_config(&config, "ckfull");
    let dir = tmp("ckfull");
    let (c, d) = (cfg.to_str().unwrap(), dir.to_str().unwrap());
    let out = limited(64, &["--config", c, "--out", d]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(err.contains("too large"), "the error names the cause: {err}");
    assert!(err.contains(d), "and the path: {err}");
    // no half-written checkpoint is left for a resume to trip on
    let reference = tmp("ckfull-ref");
    finish(&mut launch(&cfg, &reference));
    finish(&mut launch(&cfg, &dir));
    assert_same_run(&reference, &dir, "a failed checkpoint write and a resume");
}

#[test]
fn output_path_that_cannot_be_created_is_refused() {
    // a regular file where a directory is needed: refused before training, even as root
    let blocker = tmp("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let out_dir = blocker.join("run");
    let out = Command::new(train_bin())
        .args(["--steps", "2", "--batch", "4", "--out"])
        .arg(&out_dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(err.contains(blocker.to_str().unwrap()), "the path is named: {err}");
    assert_eq!(read(&blocker), b"not a directory", "the file is untouched");
}
