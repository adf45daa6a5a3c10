//! A training run on disk: the run directory, checkpoints and resume.
//!
//! Layout of a run directory:
//! - `config.json`: the full resolved [`TrainConfig`]; fed back with
//!   `--config` it reproduces the run bit for bit.
//! - `metrics.jsonl`: one [`StepMetrics`] line every `log_every` steps.
//! - `eval.jsonl`: one [`EvalReport`] line per evaluation; `baseline.json`:
//!   the same metrics for a uniformly random policy.
//! - `samples.csv` (object, reward, log P_F, length) and `samples.fasta`: the
//!   final evaluation's samples.
//! - `checkpoint/` (latest) and `best/` (best evaluation mean reward): weights
//!   in safetensors, optimizer moments, sampler, replay buffer and step.
//! - `summary.json`: final evaluation, baseline and speed.
//!
//! A run interrupted at any point and resumed with [`resume`] writes the same
//! bytes as an uninterrupted run: the resumed trainer restarts from the last
//! checkpoint and the metric lines written after it are dropped first.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{EnvConfig, EvalReport, Sample, StepMetrics, TrainConfig, Trainer};
use crate::checkpoint::{self, decode_safetensors, encode_safetensors, Tensor, TensorData};
use crate::env::{Environment, HyperGrid, HyperGridReward, LogReward, Peptide};
use crate::error::{Error, Result};
use crate::replay::ReplayBuffer;
use crate::reward::{ExternalReward, PeptideLogReward, PeptideReward, RewardModel};
use crate::sampler::Sampler;

/// Told about progress as a run goes (e.g. to draw a progress bar).
pub trait Observer {
    fn on_step(&mut self, _metrics: &StepMetrics, _seconds: f64) {}
    fn on_eval(&mut self, _report: &EvalReport) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// What a finished run reports (`summary.json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub steps: u64,
    pub stopped_early: bool,
    pub final_eval: EvalReport,
    pub baseline: EvalReport,
    /// Training steps per second over this process's part of the run.
    pub steps_per_second: f64,
    /// On-policy trajectories sampled per second, likewise.
    pub trajectories_per_second: f64,
}

/// Everything beyond the weights and moments that a checkpoint restores.
#[derive(Serialize, Deserialize)]
struct State<S: Eq + std::hash::Hash> {
    step: u64,
    opt_step: u64,
    sampler: Sampler,
    replay: ReplayBuffer<S>,
    /// `None` before the first evaluation (JSON has no -inf).
    best_mean_reward: Option<f64>,
    evals_since_best: u64,
}

fn compat(config: &TrainConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("crate_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        (
            "config_fnv1a64".to_string(),
            format!("{:016x}", checkpoint::fnv1a64(config.to_json().as_bytes())),
        ),
    ])
}

fn ck_err(e: checkpoint::CheckpointError) -> Error {
    Error::Checkpoint(e.to_string())
}

/// Starts a new run in `out`, which must not hold a run already.
pub fn start(config: TrainConfig, out: &Path, observer: &mut dyn Observer) -> Result<RunSummary> {
    config.validate()?;
    if out.join("config.json").exists() {
        return Err(Error::config(
            "out",
            format!(
                "{} already holds a run; resume it or choose another directory",
                out.display()
            ),
        ));
    }
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    checkpoint::atomic_write(&out.join("config.json"), config.to_json().as_bytes()).map_err(ck_err)?;
    for f in ["metrics.jsonl", "eval.jsonl"] {
        File::create(out.join(f)).map_err(|e| Error::io(out.join(f), e))?;
    }
    dispatch(config, out, false, observer)
}

/// Continues the run in `out` from its last checkpoint (from the start if it has none).
pub fn resume(out: &Path, observer: &mut dyn Observer) -> Result<RunSummary> {
    let path = out.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let config = TrainConfig::from_json(&text)?;
    remove_stale_temp_files(out)?;
    dispatch(config, out, true, observer)
}

fn dispatch(config: TrainConfig, out: &Path, resuming: bool, observer: &mut dyn Observer) -> Result<RunSummary> {
    match config.env.clone() {
        EnvConfig::Peptide { min_len, max_len } => {
            let env = Peptide::new(min_len, max_len)?;
            let model: Box<dyn RewardModel> = match &config.reward.command {
                Some(cmd) => Box::new(ExternalReward::spawn(
                    cmd,
                    std::time::Duration::from_secs_f64(config.reward.timeout_s),
                )?),
                None => Box::new(PeptideReward::new()),
            };
            let reward = PeptideLogReward {
                env: env.clone(),
                model,
            };
            drive(Trainer::new(config, env, reward)?, out, resuming, observer)
        }
        EnvConfig::HyperGrid {
            ndim,
            height,
            r0,
            r1,
            r2,
        } => {
            let env = HyperGrid::new(ndim, height)?;
            let reward = HyperGridReward { height, r0, r1, r2 };
            drive(Trainer::new(config, env, reward)?, out, resuming, observer)
        }
    }
}

/// Removes the `.NAME.PID-N.tmp` files that a process killed inside
/// [`checkpoint::atomic_write`] leaves next to the run files (the file itself
/// is intact: the old or the new version).
fn remove_stale_temp_files(out: &Path) -> Result<()> {
    for entry in fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_prefix('.')?.strip_suffix(".tmp")?.rsplit_once('.'))
            .and_then(|(_, tag)| tag.split_once('-'))
            .is_some_and(|(pid, n)| {
                [pid, n]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            });
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io(path, e))
}

/// Keeps the lines of a JSONL file whose `step` satisfies `keep` (atomically).
fn truncate_jsonl(path: &Path, keep: impl Fn(u64) -> bool) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let step = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
        match step {
            Some(s) if keep(s) => {
                kept.push_str(line);
                kept.push('\n');
            }
            Some(_) => {}
            // a line cut short by a crash: everything after it is dropped too
            None => break,
        }
    }
    checkpoint::atomic_write(path, kept.as_bytes()).map_err(ck_err)
}

struct Progress {
    best_mean_reward: f64,
    evals_since_best: u64,
}

fn save<E: Environment, R: LogReward<E::State>>(t: &Trainer<E, R>, dir: &Path, progress: &Progress) -> Result<()> {
    let meta = BTreeMap::from([("step".to_string(), t.step.to_string())]);
    let weights: Vec<Tensor> = t.store.iter().map(|p| tensor(&p.name, &p.value)).collect();
    let (m, v) = t.opt.moments();
    let moments: Vec<Tensor> = t
        .store
        .iter()
        .zip(m.iter().zip(v))
        .flat_map(|(p, (m, v))| [tensor(&format!("m.{}", p.name), m), tensor(&format!("v.{}", p.name), v)])
        .collect();
    let state = State {
        step: t.step,
        opt_step: t.opt.step,
        sampler: t.sampler.clone(),
        replay: t.replay.clone(),
        best_mean_reward: Some(progress.best_mean_reward).filter(|b| b.is_finite()),
        evals_since_best: progress.evals_since_best,
    };
    let state = serde_json::to_vec(&state).map_err(|e| Error::Checkpoint(format!("cannot encode the state: {e}")))?;
    let files = [
        ("weights.safetensors", encode_safetensors(&weights, &meta)),
        ("optimizer.safetensors", encode_safetensors(&moments, &meta)),
        ("state.json", state),
    ];
    checkpoint::write_checkpoint(dir, &files, &compat(&t.config)).map_err(ck_err)
}

fn tensor(name: &str, a: &Array2<f32>) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape: vec![a.nrows(), a.ncols()],
        data: TensorData::F32(a.iter().copied().collect()),
    }
}

fn load<E: Environment, R: LogReward<E::State>>(t: &mut Trainer<E, R>, dir: &Path) -> Result<Progress> {
    let files = checkpoint::read_checkpoint(dir, &compat(&t.config)).map_err(ck_err)?;
    let get = |name: &str| {
        files
            .get(name)
            .ok_or_else(|| Error::Checkpoint(format!("{}: `{name}` is missing", dir.display())))
    };
    let arrays = |name: &str| -> Result<BTreeMap<String, Array2<f32>>> {
        let (tensors, _) = decode_safetensors(get(name)?).map_err(ck_err)?;
        tensors
            .into_iter()
            .map(|tn| match (tn.data, tn.shape.as_slice()) {
                (TensorData::F32(v), &[r, c]) => Ok((tn.name, Array2::from_shape_vec((r, c), v).expect("validated"))),
                _ => Err(Error::Checkpoint(format!(
                    "{name}: tensor `{}` is not a 2-D F32 tensor",
                    tn.name
                ))),
            })
            .collect()
    };
    let weights = arrays("weights.safetensors")?;
    let moments = arrays("optimizer.safetensors")?;
    let mut state: State<E::State> = serde_json::from_slice(get("state.json")?)
        .map_err(|e| Error::Checkpoint(format!("{}: state.json: {e}", dir.display())))?;
    let pick = |map: &BTreeMap<String, Array2<f32>>, name: &str, like: &Array2<f32>| -> Result<Array2<f32>> {
        match map.get(name) {
            Some(a) if a.dim() == like.dim() => Ok(a.clone()),
            Some(a) => Err(Error::Checkpoint(format!(
                "`{name}` has shape {:?}, the model {:?}",
                a.dim(),
                like.dim()
            ))),
            None => Err(Error::Checkpoint(format!("`{name}` is missing from the checkpoint"))),
        }
    };
    let mut new_weights = Vec::new();
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for p in t.store.iter() {
        new_weights.push(pick(&weights, &p.name, &p.value)?);
        m.push(pick(&moments, &format!("m.{}", p.name), &p.value)?);
        v.push(pick(&moments, &format!("v.{}", p.name), &p.value)?);
    }
    if weights.len() != t.store.len() {
        return Err(Error::Checkpoint(format!(
            "{} tensors, the model has {}",
            weights.len(),
            t.store.len()
        )));
    }
    // Nothing is changed until everything has been read and checked.
    t.opt.restore(m, v, state.opt_step)?;
    for (p, w) in t.store.iter_mut().zip(new_weights) {
        p.value = w;
    }
    state.replay.reindex();
    t.replay = state.replay;
    t.sampler = Sampler {
        threads: t.sampler.threads,
        ..state.sampler
    };
    t.step = state.step;
    Ok(Progress {
        best_mean_reward: state.best_mean_reward.unwrap_or(f64::NEG_INFINITY),
        evals_since_best: state.evals_since_best,
    })
}

fn write_samples(out: &Path, samples: &[Sample]) -> Result<()> {
    let mut csv = String::from("sequence,reward,log_pf,length\n");
    let mut fasta = String::new();
    for (i, s) in samples.iter().enumerate() {
        csv.push_str(&format!("\"{}\",{},{},{}\n", s.object, s.reward, s.log_pf, s.length));
        fasta.push_str(&format!(
            ">sample_{i} reward={:.6} log_pf={:.4}\n{}\n",
            s.reward, s.log_pf, s.object
        ));
    }
    checkpoint::atomic_write(&out.join("samples.csv"), csv.as_bytes()).map_err(ck_err)?;
    checkpoint::atomic_write(&out.join("samples.fasta"), fasta.as_bytes()).map_err(ck_err)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("metrics serialize")
}

fn drive<E: Environment, R: LogReward<E::State>>(
    mut t: Trainer<E, R>,
    out: &Path,
    resuming: bool,
    observer: &mut dyn Observer,
) -> Result<RunSummary> {
    let ck_dir: PathBuf = out.join("checkpoint");
    let metrics_path = out.join("metrics.jsonl");
    let eval_path = out.join("eval.jsonl");
    let mut progress = Progress {
        best_mean_reward: f64::NEG_INFINITY,
        evals_since_best: 0,
    };
    if resuming {
        let has_checkpoint = ck_dir.join(checkpoint::MANIFEST_NAME).exists()
            || ck_dir.with_extension("prev").join(checkpoint::MANIFEST_NAME).exists();
        if has_checkpoint {
            progress = load(&mut t, &ck_dir)?;
        }
        let s = t.step;
        truncate_jsonl(&metrics_path, |step| step < s)?;
        truncate_jsonl(&eval_path, |step| step <= s)?;
    }
    // the step of the last evaluation already on disk (a finished run resumed)
    let mut logged_eval_step = fs::read_to_string(&eval_path)
        .ok()
        .and_then(|t| t.lines().last().map(str::to_string))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
    let baseline = t.evaluate_random_baseline()?;
    checkpoint::atomic_write(&out.join("baseline.json"), json(&baseline).as_bytes()).map_err(ck_err)?;

    let c = t.config.clone();
    let started = Instant::now();
    let first_step = t.step;
    // a run that stopped early saved its last checkpoint at the stop, with
    // the count that stopped it: resumed, it stays stopped
    let mut stopped_early = c.eval.patience > 0 && progress.evals_since_best >= c.eval.patience;
    let mut last_eval: Option<(EvalReport, Vec<Sample>)> = None;
    while t.step < c.steps && !stopped_early {
        let t0 = Instant::now();
        let m = t.train_step()?;
        observer.on_step(&m, t0.elapsed().as_secs_f64());
        if m.step % c.log_every == 0 || t.step == c.steps {
            append_line(&metrics_path, &json(&m))?;
        }
        if c.eval.every > 0 && t.step.is_multiple_of(c.eval.every) && c.eval.samples > 0 {
            let (rep, samples) = t.evaluate()?;
            append_line(&eval_path, &json(&rep))?;
            logged_eval_step = Some(rep.step);
            observer.on_eval(&rep);
            if rep.mean_reward > progress.best_mean_reward {
                progress.best_mean_reward = rep.mean_reward;
                progress.evals_since_best = 0;
                save(&t, &out.join("best"), &progress)?;
            } else {
                progress.evals_since_best += 1;
            }
            last_eval = Some((rep, samples));
            if c.eval.patience > 0 && progress.evals_since_best >= c.eval.patience {
                stopped_early = true;
            }
        }
        if (c.checkpoint_every > 0 && t.step.is_multiple_of(c.checkpoint_every)) || t.step == c.steps || stopped_early {
            save(&t, &ck_dir, &progress)?;
        }
        if stopped_early {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let done = (t.step - first_step) as f64;
    let (final_eval, samples) = match last_eval {
        Some(e) if e.0.step == t.step => e,
        _ => {
            let e = t.evaluate()?;
            if c.eval.samples > 0 && logged_eval_step != Some(t.step) {
                append_line(&eval_path, &json(&e.0))?;
            }
            e
        }
    };
    write_samples(out, &samples)?;
    let summary = RunSummary {
        steps: t.step,
        stopped_early,
        final_eval,
        baseline,
        steps_per_second: done / secs,
        trajectories_per_second: done * c.batch as f64 / secs,
    };
    checkpoint::atomic_write(&out.join("summary.json"), json(&summary).as_bytes()).map_err(ck_err)?;
    Ok(summary)
}
