//! GPU benchmark (`--features cuda`): the achieved GEMM rate, and peptide TB training
//! (sampling + reward + update) on the GPU against the CPU engine.
//!
//! ```sh
//! cargo run --release --features cuda --example gpu_bench -- [--batch 4096] [--steps 5]
//!     [--hidden 2048,2048] [--cpu-batch 64] [--cpu-steps 2]
//! ```
//! Peptides of length 10-30 over the 20 amino acids, the built-in composite reward,
//! ReLU MLP, TB with the squared loss, Adam. The CPU engine (single thread) is run at
//! `--cpu-batch` (a batch of 4096 would take minutes per step there) and its
//! throughput reported per trajectory. Prints one JSON line per measurement, then a
//! short table last. Exits 2 with the reason when no GPU is usable.

use std::time::Instant;

use gflownet::cuda::reference::CpuStep;
use gflownet::cuda::trainer::StepConfig;
use gflownet::cuda::{Buf, GemmOp, Gpu, GpuTrainer};
use gflownet::env::{Peptide, PeptideState};
use gflownet::nn::{Activation, Adam, AdamKind, GroupConfig, ParamStore};
use gflownet::objective::ObjectiveConfig;
use gflownet::policy::{Policy, PolicyConfig, LOG_Z_GROUP, NET_GROUP};
use gflownet::reward::{PeptideReward, RewardModel};
use gflownet::sampler::{Exploration, Sampler};

struct Args {
    batch: usize,
    steps: usize,
    hidden: Vec<usize>,
    cpu_batch: usize,
    cpu_steps: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        batch: 4096,
        steps: 5,
        hidden: vec![2048, 2048],
        cpu_batch: 64,
        cpu_steps: 2,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        let num = |s: &str| {
            s.parse::<usize>().unwrap_or_else(|_| {
                eprintln!("{}: expected a number, got `{s}`", argv[i]);
                std::process::exit(2)
            })
        };
        match argv[i].as_str() {
            "--batch" => a.batch = num(&v),
            "--steps" => a.steps = num(&v),
            "--cpu-batch" => a.cpu_batch = num(&v),
            "--cpu-steps" => a.cpu_steps = num(&v),
            "--hidden" => a.hidden = v.split(',').map(num).collect(),
            other => {
                eprintln!("unknown option `{other}`");
                std::process::exit(2)
            }
        }
        i += 2;
    }
    a
}

fn log_rewards(env: &Peptide, xs: &[PeptideState]) -> gflownet::error::Result<Vec<f64>> {
    let seqs: Vec<String> = xs.iter().map(|x| env.to_string(x)).collect();
    let refs: Vec<&str> = seqs.iter().map(String::as_str).collect();
    let r = PeptideReward::new()
        .score(&refs)
        .map_err(|e| gflownet::Error::Reward(e.to_string()))?;
    Ok(r.iter().map(|v| v.max(1e-8).ln()).collect())
}

fn setup(env: &Peptide, hidden: &[usize]) -> (Policy, ParamStore<f32>, Adam<f32>) {
    let cfg = PolicyConfig {
        hidden: hidden.to_vec(),
        activation: Activation::Relu,
        ..PolicyConfig::default()
    };
    let mut store = ParamStore::new();
    let mut r = gflownet::rng::stream(0, gflownet::rng::streams::INIT);
    let policy = Policy::new(env, &cfg, &mut store, &mut r).expect("valid policy");
    let mut net = GroupConfig::new(NET_GROUP, 1e-4);
    net.clip_norm = Some(10.0);
    let adam = Adam::new(AdamKind::Adam, vec![net, GroupConfig::new(LOG_Z_GROUP, 1e-1)], &store).expect("valid");
    (policy, store, adam)
}

fn gemm_rate(gpu: &Gpu, op: GemmOp, m: usize, n: usize, k: usize, bf16: bool) -> f64 {
    let a = Buf::<f32>::from_slice(&vec![0.01; m * k]).unwrap();
    let b = Buf::<f32>::from_slice(&vec![0.02; k * n]).unwrap();
    let mut c = Buf::<f32>::zeros(m * n).unwrap();
    let (mut ha, mut hb) = (Buf::<u16>::zeros(m * k).unwrap(), Buf::<u16>::zeros(k * n).unwrap());
    gpu.to_bf16(m * k, &a, &mut ha).unwrap();
    gpu.to_bf16(k * n, &b, &mut hb).unwrap();
    let run = |c: &mut Buf<f32>| {
        if bf16 {
            gpu.gemm_bf16(op, m, n, k, 1.0, &ha, &hb, 0.0, c).unwrap()
        } else {
            gpu.gemm(op, m, n, k, 1.0, &a, &b, 0.0, c).unwrap()
        }
    };
    run(&mut c);
    gpu.synchronize().unwrap();
    let reps = 10;
    let t = Instant::now();
    for _ in 0..reps {
        run(&mut c);
    }
    gpu.synchronize().unwrap();
    2.0 * (m * n * k) as f64 * reps as f64 / t.elapsed().as_secs_f64() / 1e12
}

fn main() {
    let args = parse_args();
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("gpu_bench: {e}");
            std::process::exit(2);
        }
    };
    let name = gpu.name();
    let mut table: Vec<(String, String)> = vec![("device".into(), name.clone())];

    for (op, m, n, k) in [
        (GemmOp::NN, 8192, 2048, 2048),
        (GemmOp::NT, 8192, 2048, 2048),
        (GemmOp::TN, 2048, 2048, 8192),
        (GemmOp::NN, 8192, 2048, 600),
    ] {
        for bf16 in [false, true] {
            let r = gemm_rate(&gpu, op, m, n, k, bf16);
            let kind = if bf16 { "bf16" } else { "f32" };
            println!("{{\"bench\":\"gpu_gemm\",\"op\":\"{op:?}\",\"storage\":\"{kind}\",\"m\":{m},\"n\":{n},\"k\":{k},\"tflops\":{r:.3}}}");
            table.push((format!("GEMM {op:?} {kind} {m}x{n}x{k}"), format!("{r:.2} TFLOP/s")));
        }
    }

    // GPU training
    let env = Peptide::new(10, 30).expect("valid peptide task");
    let (policy, store, adam) = setup(&env, &args.hidden);
    let hid = args.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("x");
    let mut trainer = GpuTrainer::new(gpu, &policy, &store, adam, 1).expect("GPU trainer");
    let cfg = StepConfig {
        batch: args.batch,
        exploration: Exploration::ON_POLICY,
        objective: ObjectiveConfig::default(), // TB, squared
    };
    let reward = |xs: &[PeptideState]| log_rewards(&env, xs);
    let mut phase = [0.0f64; 3]; // sample, reward, train
    let mut transitions = 0usize;
    let mut last = None;
    for step in 0..=args.steps {
        let t0 = Instant::now();
        let traj = trainer.sample(&env, cfg.batch, cfg.exploration).expect("GPU sampling");
        let t1 = Instant::now();
        let lr = reward(&traj.terminals).expect("rewards");
        let t2 = Instant::now();
        let s = trainer.train_on(&traj, &lr, &cfg.objective).expect("GPU step");
        trainer.gpu.synchronize().unwrap();
        let t3 = Instant::now();
        if step > 0 {
            // step 0 warms up (module JIT, allocations)
            phase[0] += (t1 - t0).as_secs_f64();
            phase[1] += (t2 - t1).as_secs_f64();
            phase[2] += (t3 - t2).as_secs_f64();
            transitions += s.transitions;
        }
        last = Some(s);
    }
    let total: f64 = phase.iter().sum();
    let n = args.steps.max(1) as f64;
    let gpu_steps = n / total;
    let gpu_traj = gpu_steps * args.batch as f64;
    let s = last.unwrap();
    let flops = 3.0 * transitions as f64 / n * policy.flops_per_row() as f64 / (phase[2] / n);
    println!(
        "{{\"bench\":\"gpu_train\",\"batch\":{},\"hidden\":\"{hid}\",\"steps_per_s\":{gpu_steps:.4},\"traj_per_s\":{gpu_traj:.1},\"sample_s\":{:.4},\"reward_s\":{:.4},\"train_s\":{:.4},\"train_tflops\":{:.3},\"transitions\":{},\"loss\":{:.4},\"log_z\":{:.4}}}",
        args.batch,
        phase[0] / n,
        phase[1] / n,
        phase[2] / n,
        flops / 1e12,
        transitions as f64 / n,
        s.loss,
        s.log_z
    );
    table.push((
        format!("GPU peptide TB, batch {}, MLP {hid}", args.batch),
        format!("{gpu_steps:.3} steps/s"),
    ));
    table.push(("GPU trajectories/s".into(), format!("{gpu_traj:.0}")));
    table.push((
        "GPU step split sample/reward/train".into(),
        format!("{:.3} / {:.3} / {:.3} s", phase[0] / n, phase[1] / n, phase[2] / n),
    ));
    table.push((
        "GPU train pass (fwd+bwd)".into(),
        format!("{:.2} TFLOP/s", flops / 1e12),
    ));

    // CPU engine (single thread): the CPU sampler and the tape TB step
    let (policy, store, adam) = setup(&env, &args.hidden);
    let mut cpu = CpuStep::new(policy.clone(), store, adam, 1);
    let mut sampler = Sampler::new(1);
    let t = Instant::now();
    for _ in 0..args.cpu_steps {
        let traj = sampler.sample(&env, &cpu.policy, &cpu.store, args.cpu_batch, Exploration::ON_POLICY);
        let lr = reward(&traj.terminals).expect("rewards");
        cpu.train_on(&traj, &lr, &ObjectiveConfig::default()).expect("CPU step");
    }
    let cpu_secs = t.elapsed().as_secs_f64() / args.cpu_steps.max(1) as f64;
    let cpu_traj = args.cpu_batch as f64 / cpu_secs;
    println!(
        "{{\"bench\":\"cpu_train\",\"batch\":{},\"hidden\":\"{hid}\",\"steps_per_s\":{:.5},\"traj_per_s\":{cpu_traj:.2}}}",
        args.cpu_batch,
        1.0 / cpu_secs
    );
    table.push((
        format!("CPU engine, batch {} (1 thread)", args.cpu_batch),
        format!("{:.4} steps/s, {cpu_traj:.1} traj/s", 1.0 / cpu_secs),
    ));
    table.push((
        format!("CPU at batch {} (extrapolated)", args.batch),
        format!("{:.5} steps/s", cpu_traj / args.batch as f64),
    ));
    table.push((
        "GPU / CPU trajectories/s".into(),
        format!("{:.0}x", gpu_traj / cpu_traj),
    ));

    println!();
    for (k, v) in table {
        println!("{k:<48} {v}");
    }
}
