//! Benchmarks: `cargo run --release --example bench -- <what>`, `what` one of
//! `matmul`, `sampling`, `hypergrid`, `peptide`, `objectives`, `threads`,
//! `scaling`, `all`; or `steady <hypergrid|peptide> <batch> <steps>`, training
//! steps alone for a profiler (`scripts/phases.sh`).
//! Prints one JSON line per measurement, then a readable table.
//!
//! Every time is a median over repeated runs in this process. The *floor* of
//! a scenario is its floating-point work (the MLP forward and backward over
//! the states each timed step actually visited, as the trainer reports them
//! in its `timings`, first layers counted sparse as the engine
//! computes them, with a weight gradient but no input gradient) divided by the single-thread GEMM rate measured here at
//! 256x256x256 by the engine's own kernel (in AVX-512 where the CPU has it,
//! the fastest product we have on the machine); `ratio` = measured time /
//! floor, and `ratio_ndarray` the same against ndarray's product (the
//! yardstick up to the eighth session of 2026-11-30). The training scenarios
//! measure that rate again after every 10 steps and set each step against
//! the rate measured around it (the machine's speed drifts by tens of
//! percent over seconds on a shared host); `ratio` is the median of those
//! per-step ratios.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use gflownet::env::{HyperGrid, HyperGridReward, Peptide};
use gflownet::metrics::exact_terminal_distribution;
use gflownet::nn::ParamStore;
use gflownet::policy::{BackwardPolicy, Policy, PolicyConfig};
use gflownet::replay::ReplayKind;
use gflownet::reward::{PeptideLogReward, PeptideReward};
use gflownet::sampler::{Exploration, Sampler};
use gflownet::train::{objective_from_flags, LogZInit, TrainConfig, Trainer};
use ndarray::Array2;

/// Counts heap allocations, to report them per training step.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static LARGE_ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Relaxed);
        if layout.size() >= 1 << 16 {
            LARGE_ALLOCS.fetch_add(1, Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, bytes, allocations of 64 KiB or more) so far.
fn alloc_counts() -> [u64; 3] {
    [
        ALLOCS.load(Relaxed),
        ALLOC_BYTES.load(Relaxed),
        LARGE_ALLOCS.load(Relaxed),
    ]
}

/// Minor page faults of this process so far (0 where /proc is unavailable).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit(')').next()?.split_whitespace().nth(7)?.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` timed runs of enough iterations to last ~20 ms each.
fn time_it(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let inner = ((0.02 / once) as usize).clamp(1, 100_000);
    let samples = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..inner {
                f();
            }
            t.elapsed().as_secs_f64() / inner as f64
        })
        .collect();
    median(samples)
}

/// Single-thread f32 GEMM rates in GFLOP/s for `[m, k] x [k, n]`: ndarray's
/// product (`matrixmultiply`) and the engine's own kernel (`gemm::dot`, which
/// serves inference and the tape alike), timed alternately.
fn gemm_gflops(m: usize, k: usize, n: usize) -> (f64, f64) {
    gemm_gflops_as(m, k, n, Operands::RowMajor)
}

/// How the operands of a measured product are stored: as a forward product
/// `x · W`, an input gradient `g · Wᵀ` (`b` column-major) or a weight
/// gradient `xᵀ · g` (`a` column-major).
#[derive(Clone, Copy, PartialEq)]
enum Operands {
    RowMajor,
    TransposedB,
    TransposedA,
}

/// GFLOP/s of `[m, k] · [k, n]` in f32, single thread: (ndarray, the engine's kernel).
fn gemm_gflops_as(m: usize, k: usize, n: usize, layout: Operands) -> (f64, f64) {
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.01);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.01);
    // the same values, stored transposed where the layout says so
    let a_t = a.t().as_standard_layout().into_owned();
    let b_t = b.t().as_standard_layout().into_owned();
    let (a, b) = match layout {
        Operands::RowMajor => (a.view(), b.view()),
        Operands::TransposedB => (a.view(), b_t.t()),
        Operands::TransposedA => (a_t.t(), b.view()),
    };
    gflownet::autodiff::gemm::set_threads(1);
    let (mut nd, mut engine) = (vec![], vec![]);
    for _ in 0..7 {
        nd.push(time_it(3, || {
            std::hint::black_box(a.dot(&b));
        }));
        engine.push(time_it(3, || {
            gflownet::autodiff::pool::give(std::hint::black_box(gflownet::autodiff::gemm::dot(a, b)));
        }));
    }
    let flops = 2.0 * (m * k * n) as f64;
    (flops / median(nd) / 1e9, flops / median(engine) / 1e9)
}

struct Bench {
    rows: Vec<(String, String)>,
    /// GFLOP/s of the yardstick GEMM (the engine's kernel).
    rate: f64,
    /// The yardstick's operands and its output, 256x256 each.
    operands: (Array2<f32>, Array2<f32>, Array2<f32>),
}

/// Steps timed in a row between two measurements of the yardstick.
const BLOCK: usize = 10;

/// A timed training step: its seconds, its floor's floating-point work and
/// its states (from the trainer's `timings`).
#[derive(Clone, Copy)]
struct Step {
    secs: f64,
    flops: f64,
    states: usize,
}

/// One training step of `t`, timed.
fn timed_step<E: gflownet::env::Environment, R: gflownet::env::LogReward<E::State>>(t: &mut Trainer<E, R>) -> Step {
    let c = Instant::now();
    t.train_step().unwrap();
    let secs = c.elapsed().as_secs_f64();
    Step {
        secs,
        flops: t.timings.flops,
        states: t.timings.states,
    }
}

/// Timed steps, each with the GFLOP/s of the engine's and ndarray's
/// yardstick products measured around it.
struct Paired(Vec<(Step, [f64; 2])>);

impl Paired {
    /// Median seconds per step.
    fn secs(&self) -> f64 {
        median(self.0.iter().map(|(s, _)| s.secs).collect())
    }
    /// Median floating-point work of a step's floor.
    fn flops(&self) -> f64 {
        median(self.0.iter().map(|(s, _)| s.flops).collect())
    }
    /// Mean states per step.
    fn states(&self) -> f64 {
        self.0.iter().map(|(s, _)| s.states as f64).sum::<f64>() / self.0.len().max(1) as f64
    }
    /// The floor ratio: of each block of steps timed between two
    /// measurements of the yardstick, the seconds of its steps over their
    /// floors (each step's own work at the block's rate), then the median
    /// over the blocks; against the engine's rate, and against ndarray's.
    /// (A block's total time over its total floor: a step's work varies
    /// from batch to batch more than its time does.)
    fn ratios(&self) -> [f64; 2] {
        [0, 1].map(|i| {
            let blocks = self.0.chunks(BLOCK).map(|b| {
                let secs: f64 = b.iter().map(|(s, _)| s.secs).sum();
                secs / b.iter().map(|(s, rate)| s.flops / (rate[i] * 1e9)).sum::<f64>()
            });
            median(blocks.collect())
        })
    }
    /// (lowest, median, highest) GFLOP/s of the engine's yardstick over the run, then of ndarray's.
    fn rates(&self) -> [(f64, f64, f64); 2] {
        [0, 1].map(|i| {
            let r: Vec<f64> = self.0.iter().map(|&(_, r)| r[i]).collect();
            let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.iter().copied().fold(0.0, f64::max);
            (lo, median(r), hi)
        })
    }
}

impl Bench {
    fn emit(&mut self, json: serde_json::Value, name: String, text: String) {
        println!("{json}");
        self.rows.push((name, text));
    }

    fn yardstick(&mut self) -> f64 {
        if self.rate == 0.0 {
            self.rate = gemm_gflops(256, 256, 256).1;
        }
        self.rate
    }

    /// The yardsticks' GFLOP/s now, the engine's kernel's (single thread)
    /// and ndarray's: each the median of five products (a few ms; into an
    /// array made once, not a fresh 256 KiB output each).
    fn rate_now(&mut self) -> [f64; 2] {
        let (a, b, out) = &mut self.operands;
        let mut time = |product: &mut dyn FnMut(&mut Array2<f32>)| {
            let secs = (0..5)
                .map(|_| {
                    let c = Instant::now();
                    product(out);
                    std::hint::black_box(&*out);
                    c.elapsed().as_secs_f64()
                })
                .collect();
            2.0 * 256f64.powi(3) / median(secs) / 1e9
        };
        gflownet::autodiff::gemm::set_threads(1);
        [
            time(&mut |out| gflownet::autodiff::gemm::dot_into(a.view(), b.view(), out.view_mut())),
            time(&mut |out| ndarray::linalg::general_mat_mul(1.0, &*a, &*b, 0.0, out)),
        ]
    }

    /// `n` runs of `step` (a timed training step), the yardstick measured
    /// before them and after every [`BLOCK`]; each step is paired with the
    /// mean of the rates measured just before and just after its block.
    fn paired(&mut self, n: usize, mut step: impl FnMut() -> Step) -> Paired {
        let mut out = Vec::with_capacity(n);
        let mut before = self.rate_now();
        while out.len() < n {
            let block: Vec<Step> = (0..BLOCK.min(n - out.len())).map(|_| step()).collect();
            let after = self.rate_now();
            let around = [0, 1].map(|i| 0.5 * (before[i] + after[i]));
            out.extend(block.into_iter().map(|s| (s, around)));
            before = after;
        }
        Paired(out)
    }

    fn matmul(&mut self) {
        for (m, k, n) in [
            (1, 256, 256),
            (4, 256, 256),
            (16, 256, 256),
            (32, 256, 256),
            (64, 256, 256),
            (128, 256, 256),
            (16, 256, 5),
            (64, 256, 9),
            (256, 256, 256),
            (2048, 256, 256),
            (128, 512, 512),
            (256, 512, 512),
            (128, 1024, 1024),
            (512, 2048, 2048),
        ] {
            let (g, engine) = gemm_gflops(m, k, n);
            if (m, k, n) == (256, 256, 256) {
                self.rate = engine;
            }
            self.emit(
                serde_json::json!({"bench": "matmul", "m": m, "k": k, "n": n, "gflops": g, "engine_gflops": engine}),
                format!("matmul {m}x{k}x{n}"),
                format!("{g:.1} GFLOP/s ndarray, {engine:.1} engine ({:.2}x)", engine / g),
            );
        }
        // the backward pass's products: g · Wᵀ and xᵀ · g
        for (m, k, n, layout, name) in [
            (128, 256, 256, Operands::TransposedB, "g·Wt"),
            (2048, 256, 256, Operands::TransposedB, "g·Wt"),
            (2048, 5, 256, Operands::TransposedB, "g·Wt"),
            (256, 128, 256, Operands::TransposedA, "xt·g"),
            (256, 2048, 256, Operands::TransposedA, "xt·g"),
            (256, 2048, 5, Operands::TransposedA, "xt·g"),
        ] {
            let (g, engine) = gemm_gflops_as(m, k, n, layout);
            self.emit(
                serde_json::json!({"bench": "matmul", "product": name, "m": m, "k": k, "n": n, "gflops": g, "engine_gflops": engine}),
                format!("matmul {name} {m}x{k}x{n}"),
                format!("{g:.1} GFLOP/s ndarray, {engine:.1} engine ({:.2}x)", engine / g),
            );
        }
    }

    /// Peptide sampling, batch 64, lengths 10-30, MLP 2x256: trajectories/s and the cost split.
    fn sampling(&mut self) {
        let rate = self.yardstick();
        let env = Peptide::default();
        let mut store = ParamStore::new();
        let mut init = gflownet::rng::stream(0, 1);
        let policy = Policy::new(&env, &PolicyConfig::default(), &mut store, &mut init).unwrap();
        let mut sampler = Sampler::new(0);
        let batch = 64;
        let total = time_it(15, || {
            std::hint::black_box(sampler.sample(&env, &policy, &store, batch, Exploration::ON_POLICY));
        });
        // the same states, timed part by part: encoding, then the MLP alone
        let t = sampler.sample(&env, &policy, &store, batch, Exploration::ON_POLICY);
        let states: Vec<_> = {
            use gflownet::env::Environment;
            let mut v = Vec::new();
            for (b, w) in t.offsets.windows(2).enumerate() {
                let mut s = env.initial_state();
                for r in w[0]..w[1] {
                    v.push(s.clone());
                    s = env.step(&s, t.actions[r]);
                }
                let _ = b;
            }
            v
        };
        let encode = time_it(15, || {
            use gflownet::env::Environment;
            let mut x = gflownet::nn::Csr::new(env.feature_dim());
            states.iter().for_each(|s| env.encode_sparse(s, &mut x));
            std::hint::black_box(x);
        });
        let mlp = time_it(15, || {
            std::hint::black_box(policy.infer(&store, &t.features));
        });
        let flops = policy.forward_flops(&t.features);
        let floor = flops / (rate * 1e9);
        let rest = total - encode - mlp;
        self.emit(
            serde_json::json!({"bench": "sampling", "env": "peptide", "batch": batch, "rows": t.n_transitions(),
                "trajectories_per_s": batch as f64 / total, "ms": total * 1e3, "encode_ms": encode * 1e3,
                "mlp_ms": mlp * 1e3, "softmax_sample_ms": rest * 1e3, "mlp_floor_ms": floor * 1e3,
                "ratio_to_mlp_floor": total / floor}),
            format!("sample peptide b={batch}"),
            format!(
                "{:.0} traj/s, {:.2} ms (encode {:.2}, MLP {:.2}, softmax+sample {:.2}); {:.2}x the MLP floor",
                batch as f64 / total,
                total * 1e3,
                encode * 1e3,
                mlp * 1e3,
                rest * 1e3,
                total / floor
            ),
        );
    }

    /// Scenario 1: HyperGrid D=4, H=8, TB squared, 2x256 with a learned P_B head, Adam.
    fn hypergrid(&mut self, objective: &str, batch: usize, to_target: bool) {
        let mut t = hypergrid_trainer(objective, batch, 1);
        for _ in 0..20 {
            t.train_step().unwrap();
        }
        let mut parts = [vec![], vec![], vec![], vec![]];
        let steps = self.paired(100, || {
            let step = timed_step(&mut t);
            let s = t.timings;
            for (v, x) in parts.iter_mut().zip([s.sample, s.loss, s.backward, s.optim]) {
                v.push(x);
            }
            step
        });
        let flops = steps.flops();
        // allocations and page faults over the next 100 steps (no yardstick in between)
        let (a0, f0) = (alloc_counts(), minor_faults());
        for _ in 0..100 {
            t.train_step().unwrap();
        }
        let (a1, f1) = (alloc_counts(), minor_faults());
        let per_step = |i: usize| (a1[i] - a0[i]) as f64 / 100.0;
        let faults = (f1 - f0) as f64 / 100.0;
        let [sample, loss, backward, optim] = parts.map(median);
        let total = steps.secs();
        let ([ratio, ratio_nd], [(lo, mid, hi), (nd_lo, nd_mid, nd_hi)]) = (steps.ratios(), steps.rates());
        let floor = flops / (mid * 1e9);
        let mut json = serde_json::json!({"bench": "hypergrid", "ndim": 4, "height": 8, "objective": objective,
            "batch": batch, "ms_per_iter": total * 1e3, "sample_ms": sample * 1e3, "loss_ms": loss * 1e3,
            "backward_ms": backward * 1e3, "optim_ms": optim * 1e3, "floor_ms": floor * 1e3, "ratio": ratio,
            "states_per_step": steps.states(),
            "yardstick_gflops": [lo, mid, hi], "ratio_ndarray": ratio_nd, "ndarray_gflops": [nd_lo, nd_mid, nd_hi],
            "allocs_per_step": per_step(0), "alloc_kib_per_step": per_step(1) / 1024.0,
            "allocs_64kib_per_step": per_step(2), "minor_faults_per_step": faults});
        let mut text = format!(
            "{:.2} ms/iter (sample {:.2}, loss {:.2}, backward {:.2}, optim {:.2}), {:.0} states; {ratio:.2}x floor \
             (yardstick {lo:.0}-{hi:.0} GFLOP/s; {ratio_nd:.2}x against ndarray's {nd_lo:.0}-{nd_hi:.0}); per step {:.0} allocations ({:.0} KiB, {:.0} of >= 64 KiB), \
             {:.0} page faults",
            total * 1e3,
            sample * 1e3,
            loss * 1e3,
            backward * 1e3,
            optim * 1e3,
            steps.states(),
            per_step(0),
            per_step(1) / 1024.0,
            per_step(2),
            faults
        );
        if to_target {
            // time to exact L1 <= 0.15 from a fresh start (checked every 100 iterations, up to 3000)
            let mut cfg = t.config.clone();
            cfg.policy.backward = BackwardPolicy::Learned;
            let mut fresh = Trainer::new(cfg, HyperGrid::new(4, 8).unwrap(), HyperGridReward::standard(8)).unwrap();
            let mut reward = HyperGridReward::standard(8);
            let clock = Instant::now();
            let mut reached = None;
            let mut train_secs = 0.0;
            for it in 1..=3000 {
                let c = Instant::now();
                fresh.train_step().unwrap();
                train_secs += c.elapsed().as_secs_f64();
                if it % 100 == 0 {
                    let d = exact_terminal_distribution(&fresh.env, &fresh.policy, &fresh.store, &mut reward)
                        .unwrap()
                        .unwrap();
                    if d.metrics().l1_sum <= 0.15 {
                        reached = Some((it, train_secs, clock.elapsed().as_secs_f64()));
                        break;
                    }
                }
            }
            match reached {
                Some((it, secs, wall)) => {
                    json["iters_to_l1_0.15"] = it.into();
                    json["train_s_to_l1_0.15"] = secs.into();
                    text.push_str(&format!(
                        "; L1<=0.15 at iter {it} after {secs:.1} s of training ({wall:.1} s with checks)"
                    ));
                }
                None => text.push_str("; L1<=0.15 not reached in 3000 iters"),
            }
        }
        self.emit(json, format!("hypergrid {objective} b={batch}"), text);
    }

    /// Median seconds of `iters` training steps after 10 warm-up steps (the
    /// buffer pool grows to its steady size as the trajectories lengthen),
    /// the floor ratio, and the mean states a step visits.
    fn step_time<E: gflownet::env::Environment, R: gflownet::env::LogReward<E::State>>(
        &mut self,
        t: &mut Trainer<E, R>,
        iters: usize,
    ) -> (f64, f64, f64) {
        for _ in 0..10 {
            t.train_step().unwrap();
        }
        let steps = self.paired(iters, || timed_step(t));
        (steps.secs(), steps.ratios()[0], steps.states())
    }

    /// Scenario 4: step time against batch and hidden width (HyperGrid, scenario 1's
    /// setup) and against the peptide length (scenario 2's setup), each with its floor.
    fn scaling(&mut self) {
        // each point starts with an empty buffer pool, so that after its steps
        // the pool holds what one of its steps uses (the tape's arrays and
        // gradients, the kept layer outputs): its memory
        let point = |b: &mut Self, axis: &str, value: usize, (secs, ratio, rows): (f64, f64, f64)| {
            let mib = gflownet::autodiff::pool::kept_bytes::<f32>() as f64 / (1 << 20) as f64;
            gflownet::autodiff::pool::release::<f32>();
            b.emit(
                serde_json::json!({"bench": "scaling", "axis": axis, "value": value, "ms_per_iter": secs * 1e3,
                    "ratio": ratio, "rows": rows, "us_per_row": secs * 1e6 / rows, "pooled_mib": mib}),
                format!("scaling {axis}={value}"),
                format!(
                    "{:.2} ms/iter, {rows:.0} states, {:.2} us/state; {ratio:.1}x floor; {mib:.1} MiB pooled",
                    secs * 1e3,
                    secs * 1e6 / rows,
                ),
            );
        };
        gflownet::autodiff::pool::release::<f32>();
        let grid = |batch: usize, hidden: usize| {
            let mut cfg = TrainConfig::hypergrid_default(4, 8);
            cfg.batch = batch;
            cfg.policy.hidden = vec![hidden, hidden];
            cfg.policy.backward = BackwardPolicy::Learned;
            cfg.threads = 1;
            Trainer::new(cfg, HyperGrid::new(4, 8).unwrap(), HyperGridReward::standard(8)).unwrap()
        };
        for batch in [16, 32, 64, 128, 256, 512, 1024] {
            let iters = (4096 / batch).clamp(10, 60);
            let r = self.step_time(&mut grid(batch, 256), iters);
            point(self, "batch", batch, r);
        }
        for hidden in [64, 128, 256, 512, 1024, 2048] {
            let iters = (8192 / hidden).clamp(10, 60);
            let r = self.step_time(&mut grid(16, hidden), iters);
            point(self, "hidden", hidden, r);
        }
        // fixed-length peptides (min = max), so every trajectory has max_len + 1 states
        for max_len in [10, 20, 30, 40, 50, 60] {
            let mut cfg = TrainConfig::peptide_default();
            cfg.env = gflownet::train::EnvConfig::Peptide {
                min_len: max_len,
                max_len,
            };
            cfg.replay.kind = ReplayKind::None;
            cfg.optimizer.log_z_init = LogZInit::Config;
            cfg.threads = 1;
            let env = Peptide::new(max_len, max_len).unwrap();
            let reward = PeptideLogReward {
                env: env.clone(),
                model: Box::new(PeptideReward::new()),
            };
            let r = self.step_time(&mut Trainer::new(cfg, env, reward).unwrap(), 15);
            point(self, "peptide_max_len", max_len, r);
        }
    }

    /// Both cores: two trainers of one seed, on one thread and on two,
    /// stepped in turn so that both meet the machine in the same state; the
    /// median of the per-step time ratios, and whether every step's metrics
    /// came out bit-identical.
    fn threads<E, R>(&mut self, name: &str, steps: usize, make: impl Fn(usize) -> Trainer<E, R>)
    where
        E: gflownet::env::Environment,
        R: gflownet::env::LogReward<E::State>,
    {
        let (mut one, mut two) = (make(1), make(2));
        let (mut times, mut same) = ([vec![], vec![]], true);
        for i in 0..5 + steps {
            let mut step = |t: &mut Trainer<E, R>, k: usize| {
                let c = Instant::now();
                let m = t.train_step().unwrap();
                if i >= 5 {
                    times[k].push(c.elapsed().as_secs_f64());
                }
                m
            };
            let (a, b) = (step(&mut one, 0), step(&mut two, 1));
            same &= a == b;
        }
        let ratios: Vec<f64> = times[0].iter().zip(&times[1]).map(|(a, b)| a / b).collect();
        let (speedup, [one_ms, two_ms]) = (median(ratios), times.map(|t| median(t) * 1e3));
        self.emit(
            serde_json::json!({"bench": "threads", "scenario": name, "ms_per_step_1_thread": one_ms,
                "ms_per_step_2_threads": two_ms, "speedup_2_threads": speedup, "bit_identical": same}),
            format!("2-thread speed-up ({name})"),
            format!(
                "{speedup:.2}x ({one_ms:.1} -> {two_ms:.1} ms/step, medians), {}",
                if same {
                    "bit-identical metrics at every step"
                } else {
                    "METRICS DIFFER between 1 and 2 threads"
                }
            ),
        );
    }

    /// Scenario 2 ([`peptide_trainer`]) on one thread: steps and trajectories
    /// per second, the floor ratio, allocations per step.
    fn peptide(&mut self, batch: usize) {
        let threads = 1;
        let mut t = peptide_trainer(batch, threads);
        for _ in 0..5 {
            t.train_step().unwrap();
        }
        let mut samples = vec![];
        let steps = self.paired(30, || {
            let step = timed_step(&mut t);
            samples.push(t.timings.sample);
            step
        });
        let (total, sample, flops) = (steps.secs(), median(samples), steps.flops());
        let ([ratio, ratio_nd], [(lo, mid, hi), (nd_lo, nd_mid, nd_hi)]) = (steps.ratios(), steps.rates());
        // allocations over 5 further steps (no yardstick in between)
        let a0 = alloc_counts();
        for _ in 0..5 {
            t.train_step().unwrap();
        }
        let allocs = (alloc_counts()[0] - a0[0]) as f64 / 5.0;
        self.emit(
            serde_json::json!({"bench": "peptide", "batch": batch, "threads": threads, "steps_per_s": 1.0 / total,
                "trajectories_per_s": batch as f64 / total, "sampled_trajectories_per_s": batch as f64 / sample,
                "ms_per_step": total * 1e3, "floor_ms": flops / (mid * 1e9) * 1e3, "ratio": ratio,
                "states_per_step": steps.states(),
                "yardstick_gflops": [lo, mid, hi], "ratio_ndarray": ratio_nd, "ndarray_gflops": [nd_lo, nd_mid, nd_hi],
                "allocs_per_step": allocs}),
            format!("peptide TB b={batch} threads={threads}"),
            format!(
                "{:.1} steps/s, {:.0} traj/s trained, {:.0} traj/s sampled, {:.0} states per step; {ratio:.2}x floor \
                 (yardstick {lo:.0}-{hi:.0} GFLOP/s; {ratio_nd:.2}x against ndarray's {nd_lo:.0}-{nd_hi:.0}); \
                 {allocs:.0} allocations per step",
                1.0 / total,
                batch as f64 / total,
                batch as f64 / sample,
                steps.states(),
            ),
        );
    }
}

/// Scenario 1's trainer: HyperGrid D=4, H=8, `objective` under the squared
/// loss (the divergences with the leave-one-out baseline), a learned `P_B`.
fn hypergrid_trainer(objective: &str, batch: usize, threads: usize) -> Trainer<HyperGrid, HyperGridReward> {
    let mut cfg = TrainConfig::hypergrid_default(4, 8);
    cfg.batch = batch;
    let cv = if ["tb", "subtb", "db"].contains(&objective) {
        "none"
    } else {
        "loo"
    };
    cfg.objective = objective_from_flags(objective, "squared", None, None, cv).unwrap();
    cfg.policy.log_f = cfg.objective.needs_log_f();
    cfg.policy.backward = BackwardPolicy::Learned;
    cfg.threads = threads;
    Trainer::new(cfg, HyperGrid::new(4, 8).unwrap(), HyperGridReward::standard(8)).unwrap()
}

/// Scenario 2's trainer: the peptide task, TB, lengths 10-30, MLP 2x256, on-policy, no replay.
fn peptide_trainer(batch: usize, threads: usize) -> Trainer<Peptide, PeptideLogReward> {
    let mut cfg = TrainConfig::peptide_default();
    cfg.batch = batch;
    cfg.replay.kind = ReplayKind::None;
    cfg.optimizer.log_z_init = LogZInit::Config;
    cfg.threads = threads;
    let env = Peptide::default();
    let reward = PeptideLogReward {
        env: env.clone(),
        model: Box::new(PeptideReward::new()),
    };
    Trainer::new(cfg, env, reward).unwrap()
}

/// `steady <hypergrid|peptide> <batch> <steps>`: that many training steps of
/// scenario 1 (TB) or 2, after 20 unmeasured ones, and nothing else, for a
/// profiler to record (`scripts/phases.sh`); prints the mean step time.
fn steady(args: &[String]) {
    let (Some(task), Some(Ok(batch)), Some(Ok(steps))) = (
        args.first(),
        args.get(1).map(|b| b.parse::<usize>()),
        args.get(2).map(|s| s.parse::<usize>()),
    ) else {
        eprintln!("usage: bench steady <hypergrid|peptide> <batch> <steps>");
        std::process::exit(2);
    };
    fn run<E: gflownet::env::Environment, R: gflownet::env::LogReward<E::State>>(
        mut t: Trainer<E, R>,
        steps: usize,
    ) -> (f64, f64) {
        for _ in 0..20 {
            t.train_step().unwrap();
        }
        let (clock, mut states) = (Instant::now(), 0);
        for _ in 0..steps {
            t.train_step().unwrap();
            states += t.timings.states;
        }
        (
            clock.elapsed().as_secs_f64() / steps as f64,
            states as f64 / steps as f64,
        )
    }
    let (secs, states) = match task.as_str() {
        "hypergrid" => run(hypergrid_trainer("tb", batch, 1), steps),
        "peptide" => run(peptide_trainer(batch, 1), steps),
        _ => {
            eprintln!("unknown task `{task}`; expected hypergrid or peptide");
            std::process::exit(2);
        }
    };
    println!(
        "{task} b={batch}: {steps} steps, {:.3} ms a step, {states:.0} states a step",
        secs * 1e3
    );
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if what == "steady" {
        return steady(&std::env::args().skip(2).collect::<Vec<_>>());
    }
    let operand =
        |seed: usize| Array2::from_shape_fn((256, 256), |(i, j)| ((i * 31 + j * 17 + seed) % 13) as f32 * 0.01);
    let mut b = Bench {
        rows: Vec::new(),
        rate: 0.0,
        operands: (operand(0), operand(5), Array2::zeros((256, 256))),
    };
    let all = what == "all";
    let known = [
        "matmul",
        "sampling",
        "hypergrid",
        "peptide",
        "objectives",
        "threads",
        "scaling",
        "steady",
        "all",
    ];
    if !known.contains(&what.as_str()) {
        eprintln!("unknown benchmark `{what}`; expected one of: {}", known.join(", "));
        std::process::exit(2);
    }
    if all || what == "matmul" {
        b.matmul();
    }
    if all || what == "sampling" {
        b.sampling();
    }
    if all || what == "hypergrid" {
        b.hypergrid("tb", 16, true);
        b.hypergrid("tb", 128, false);
    }
    if all || what == "peptide" {
        b.peptide(64);
        b.peptide(512);
    }
    if all || what == "objectives" {
        for o in ["tb", "subtb", "db", "rev-kl", "fwd-kl", "renyi", "tsallis"] {
            b.hypergrid(o, 16, false);
        }
    }
    if all || what == "threads" {
        b.threads("peptide b=256", 20, |threads| peptide_trainer(256, threads));
        b.threads("hypergrid b=128", 60, |threads| hypergrid_trainer("tb", 128, threads));
    }
    if all || what == "scaling" {
        b.scaling();
    }
    println!();
    for (name, value) in b.rows {
        println!("{name:<36} {value}");
    }
}
