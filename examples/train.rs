//! The main job: train a GFlowNet that generates diverse, high-reward peptides.
//!
//! `cargo run --release --example train` trains with the defaults (peptides of
//! length 10-30, the default composite reward, TB with Linex(1/2), log Z
//! learning rate 0.1 initialised from the first batch, prioritized replay)
//! and writes a run directory (see `gflownet::train::run`) plus `report.svg`.

use std::path::{Path, PathBuf};

use clap::Parser;
use gflownet::error::{Error, Result};
use gflownet::replay::ReplayKind;
use gflownet::sampler::Exploration;
use gflownet::train::{objective_from_flags, EnvConfig, EvalReport, LogZInit, Observer, StepMetrics, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Train a GFlowNet on peptides (or HyperGrid via --config) and write a run directory")]
struct Args {
    /// JSON configuration (e.g. a run's config.json); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint. Takes no
    /// other flag: the run's config.json (hashed into its checkpoints) fixes them all.
    #[arg(long, exclusive = true)]
    resume: Option<PathBuf>,
    /// Run directory (default: the first free runs/run-N).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    min_len: Option<usize>,
    #[arg(long)]
    max_len: Option<usize>,
    /// tb | subtb | db | rev-kl | fwd-kl | renyi | tsallis
    #[arg(long)]
    objective: Option<String>,
    /// squared | linex1 | linex0.5 | cosh | linex:<alpha>
    #[arg(long)]
    g: Option<String>,
    /// Clip on the residual inside g' (objective.clip, default 50): beyond it the
    /// gradient is that of the clip
    #[arg(long)]
    residual_clip: Option<f64>,
    /// Renyi / Tsallis alpha
    #[arg(long)]
    alpha: Option<f64>,
    /// SubTB lambda
    #[arg(long)]
    lambda: Option<f64>,
    /// none | loo | batch
    #[arg(long)]
    cv: Option<String>,
    /// none | uniform | prioritized
    #[arg(long)]
    replay: Option<String>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    log_z_lr: Option<f64>,
    /// How log Z starts: config (policy.log_z_init, 0 by default) | batch-estimate (the first batch's estimate)
    #[arg(long)]
    log_z_init: Option<String>,
    /// Global-norm clip of the network's gradient; 0 turns clipping off.
    #[arg(long)]
    clip_norm: Option<f64>,
    #[arg(long)]
    epsilon: Option<f64>,
    #[arg(long)]
    temperature: Option<f64>,
    /// Reward exponent beta (the model is trained on R^beta).
    #[arg(long)]
    reward_exponent: Option<f64>,
    /// External reward process, e.g. "python3 examples/score.py".
    #[arg(long)]
    reward_cmd: Option<String>,
    #[arg(long)]
    eval_every: Option<u64>,
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Worker threads (results do not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the resolved configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn resolve(a: &Args) -> Result<TrainConfig> {
    let mut c = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            TrainConfig::parse_json(&text).map_err(|e| Error::config("config", format!("{}: {e}", path.display())))?
        }
        None => TrainConfig::peptide_default(),
    };
    macro_rules! set {
        ($field:expr, $flag:expr) => {
            if let Some(v) = $flag.clone() {
                $field = v;
            }
        };
    }
    set!(c.steps, a.steps);
    set!(c.batch, a.batch);
    set!(c.seed, a.seed);
    set!(c.threads, a.threads);
    set!(c.optimizer.lr, a.lr);
    set!(c.optimizer.log_z_lr, a.log_z_lr);
    set!(c.exploration.epsilon, a.epsilon);
    set!(c.exploration.temperature, a.temperature);
    set!(c.reward.exponent, a.reward_exponent);
    set!(c.eval.every, a.eval_every);
    set!(c.checkpoint_every, a.checkpoint_every);
    if let Some(init) = &a.log_z_init {
        c.optimizer.log_z_init = match init.as_str() {
            "config" => LogZInit::Config,
            "batch-estimate" | "batch_estimate" => LogZInit::BatchEstimate,
            other => {
                return Err(Error::config(
                    "log-z-init",
                    format!("unknown `{other}`; allowed: config, batch-estimate"),
                ))
            }
        };
    }
    if let Some(clip) = a.clip_norm {
        c.optimizer.clip_norm = (clip != 0.0).then_some(clip);
    }
    if a.reward_cmd.is_some() {
        c.reward.command = a.reward_cmd.clone();
    }
    if a.min_len.is_some() || a.max_len.is_some() {
        match &mut c.env {
            EnvConfig::Peptide { min_len, max_len } => {
                set!(*min_len, a.min_len);
                set!(*max_len, a.max_len);
            }
            _ => return Err(Error::config("min-len", "applies to the peptide environment only")),
        }
    }
    if a.objective.is_some() || a.g.is_some() || a.alpha.is_some() || a.lambda.is_some() || a.cv.is_some() {
        let cur = &c.objective;
        let objective = a.objective.clone().unwrap_or_else(|| cur.objective.name().to_string());
        let g = a.g.clone().unwrap_or_else(|| cur.g.to_string());
        let cv = a.cv.clone().unwrap_or_else(|| cur.cv.to_string());
        let entropy_weight = cur.entropy_weight;
        let clip = cur.clip;
        c.objective = objective_from_flags(&objective, &g, a.alpha, a.lambda, &cv)?;
        c.objective.entropy_weight = entropy_weight;
        c.objective.clip = clip;
        c.policy.log_f = c.policy.log_f || c.objective.needs_log_f();
        if !c.objective.objective.is_balance() && a.replay.is_none() {
            c.replay.kind = ReplayKind::None; // the divergences are on-policy estimators
        }
    }
    if let Some(clip) = a.residual_clip {
        c.objective.clip = clip;
    }
    if let Some(r) = &a.replay {
        c.replay.kind = match r.as_str() {
            "none" => ReplayKind::None,
            "uniform" => ReplayKind::Uniform,
            "prioritized" => ReplayKind::Prioritized,
            other => {
                return Err(Error::config(
                    "replay",
                    format!("unknown `{other}`; allowed: none, uniform, prioritized"),
                ))
            }
        };
    }
    if c.exploration
        == (Exploration {
            temperature: 1.0,
            epsilon: 0.0,
        })
    {
        c.exploration = Exploration::ON_POLICY;
    }
    c.validate()?;
    Ok(c)
}

fn free_run_dir() -> PathBuf {
    (1..)
        .map(|n| PathBuf::from(format!("runs/run-{n}")))
        .find(|p| !p.exists())
        .expect("a free name")
}

struct Bar(ProgressBar);

impl Observer for Bar {
    fn on_step(&mut self, m: &StepMetrics, seconds: f64) {
        self.0.inc(1);
        if m.step.is_multiple_of(10) {
            self.0.set_message(format!(
                "loss {:>9.3}  logZ {:>7.2} (est {:>7.2})  logR {:>6.2}  {:.0} ms/step",
                m.loss,
                m.log_z,
                m.log_z_estimate,
                m.mean_log_r,
                1e3 * seconds
            ));
        }
    }
    fn on_eval(&mut self, r: &EvalReport) {
        let div = r.sequences.as_ref().map_or(0.0, |s| s.diversity);
        self.0.println(format!(
            "eval @ {:>6}: mean reward {:.3}  top-10% {:.3}  unique {:.2}  diversity {:.3}  calibration r {:.2}",
            r.step,
            r.mean_reward,
            r.top10_reward,
            r.unique_ratio,
            div,
            r.calibration_pearson.unwrap_or(f64::NAN)
        ));
    }
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

type Series = Vec<(f64, f64)>;

fn series(rows: &[serde_json::Value], key: &str) -> Series {
    rows.iter()
        .filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(key)?.as_f64()?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

fn panel(area: &DrawingArea<SVGBackend, plotters::coord::Shift>, title: &str, lines: &[(&str, Series, RGBColor)]) {
    let all: Vec<&(f64, f64)> = lines.iter().flat_map(|l| l.1.iter()).collect();
    if all.is_empty() {
        return;
    }
    let (x0, x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let Ok(mut chart) = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
    else {
        return;
    };
    let _ = chart.configure_mesh().max_light_lines(0).x_desc("step").draw();
    for (name, data, color) in lines {
        let color = *color;
        if let Ok(s) = chart.draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2))) {
            s.label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
    }
    let _ = chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw();
}

/// `log10` of a non-negative series (zeros and negatives dropped).
fn log10(s: Series) -> Series {
    s.into_iter()
        .filter(|p| p.1 > 0.0)
        .map(|(x, y)| (x, y.log10()))
        .collect()
}

/// `f(row)` for each metrics row that has a step and the keys `f` reads.
fn derived(rows: &[serde_json::Value], f: impl Fn(&serde_json::Value) -> Option<f64>) -> Series {
    rows.iter()
        .filter_map(|r| Some((r.get("step")?.as_f64()?, f(r)?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// Training curves: loss (linear, and on a log scale split into the squared
/// gap between the batch estimate and the learned log Z and the residual
/// variance, whose sum is the squared-TB loss), log Z against its batch
/// estimate, residual mean and spread, mean reward, diversity, unique ratio,
/// sum log P_F and calibration.
fn draw_report(out: &Path) -> Result<()> {
    let m = read_jsonl(&out.join("metrics.jsonl"));
    let e = read_jsonl(&out.join("eval.jsonl"));
    let path = out.join("report.svg");
    let root = SVGBackend::new(&path, (1200, 1320)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let areas = root.split_evenly((4, 2));
    let div: Series = e
        .iter()
        .filter_map(|r| {
            Some((
                r.get("step")?.as_f64()?,
                r.get("sequences")?.get("diversity")?.as_f64()?,
            ))
        })
        .collect();
    let f = |r: &serde_json::Value, k: &str| r.get(k).and_then(|v| v.as_f64());
    panel(&areas[0], "loss", &[("loss", series(&m, "loss"), RED)]);
    panel(
        &areas[1],
        "log10: loss = gap^2 + variance (squared TB)",
        &[
            ("loss", log10(series(&m, "loss")), RED),
            (
                "(estimate - log Z)^2",
                log10(derived(&m, |r| Some(f(r, "residual_mean")?.powi(2)))),
                BLUE,
            ),
            (
                "residual variance",
                log10(derived(&m, |r| Some(f(r, "residual_std")?.powi(2)))),
                GREEN,
            ),
        ],
    );
    panel(
        &areas[2],
        "log Z",
        &[
            ("learned log Z", series(&m, "log_z"), BLUE),
            ("batch estimate", series(&m, "log_z_estimate"), RED),
        ],
    );
    panel(
        &areas[3],
        "TB residual",
        &[
            ("mean", series(&m, "residual_mean"), BLUE),
            ("std", series(&m, "residual_std"), RED),
        ],
    );
    panel(
        &areas[4],
        "reward (eval)",
        &[
            ("mean", series(&e, "mean_reward"), BLUE),
            ("top 10%", series(&e, "top10_reward"), RED),
        ],
    );
    panel(
        &areas[5],
        "diversity (eval, duplicates counted)",
        &[("diversity", div, BLUE)],
    );
    panel(
        &areas[6],
        "unique ratio (eval) and sum log P_F / 100",
        &[
            ("unique ratio", series(&e, "unique_ratio"), BLUE),
            (
                "sum log P_F / 100",
                series(&m, "mean_sum_log_pf")
                    .into_iter()
                    .map(|(x, y)| (x, y / 100.0))
                    .collect(),
                RED,
            ),
        ],
    );
    panel(
        &areas[7],
        "calibration of log P_F(x) on log R(x) (eval)",
        &[
            ("slope", series(&e, "calibration_slope"), BLUE),
            ("Pearson r", series(&e, "calibration_pearson"), RED),
        ],
    );
    root.present().map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn run(a: Args) -> Result<()> {
    let (out, steps, summary);
    let bar = |steps: u64, done: u64| {
        let b = ProgressBar::new(steps);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                .expect("template"),
        );
        b.set_position(done);
        Bar(b)
    };
    if let Some(dir) = &a.resume {
        let text =
            std::fs::read_to_string(dir.join("config.json")).map_err(|e| Error::io(dir.join("config.json"), e))?;
        let c = TrainConfig::from_json(&text)?;
        steps = c.steps;
        let mut b = bar(steps, 0);
        summary = gflownet::train::resume(dir, &mut b)?;
        b.0.finish();
        out = dir.clone();
    } else {
        let c = resolve(&a)?;
        if a.print_config {
            println!("{}", c.to_json());
            return Ok(());
        }
        out = a.out.clone().unwrap_or_else(free_run_dir);
        steps = c.steps;
        println!("run directory: {}", out.display());
        let mut b = bar(steps, 0);
        summary = gflownet::train::start(c, &out, &mut b)?;
        b.0.finish();
    }
    draw_report(&out)?;
    let f = &summary.final_eval;
    let b = &summary.baseline;
    let div = |r: &EvalReport| r.sequences.as_ref().map_or(f64::NAN, |s| s.diversity);
    println!("\n{:<28} {:>10} {:>10}", "after training", "policy", "random");
    println!("{:<28} {:>10.3} {:>10.3}", "mean reward", f.mean_reward, b.mean_reward);
    println!(
        "{:<28} {:>10.3} {:>10.3}",
        "top-10% reward", f.top10_reward, b.top10_reward
    );
    println!("{:<28} {:>10.3} {:>10.3}", "diversity (dups counted)", div(f), div(b));
    println!(
        "{:<28} {:>10.3} {:>10.3}",
        "unique ratio", f.unique_ratio, b.unique_ratio
    );
    println!(
        "{:<28} {:>10.3}",
        "calibration (Pearson)",
        f.calibration_pearson.unwrap_or(f64::NAN)
    );
    println!(
        "\n{} of {steps} steps, {:.1} steps/s, {:.0} trajectories/s. Report: {}",
        summary.steps,
        summary.steps_per_second,
        summary.trajectories_per_second,
        out.join("report.svg").display()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
