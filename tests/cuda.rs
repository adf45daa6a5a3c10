//! The GPU backend against the CPU engine.
//!
//! Tests that need a GPU print `SKIPPED <test>: <reason>` and pass when none is usable,
//! and FAIL instead when `REQUIRE_GPU=1`. Every kernel is compared with an f64 reference
//! on fresh random inputs (seed printed; `GFN_TEST_SEED=<n>` replays one) of several
//! sizes, including sizes that are not multiples of the GEMM tile, with its outputs
//! poisoned (NaN-filled) before each launch.
#![cfg(any(feature = "cuda", feature = "cuda-emu"))]

use std::collections::HashMap;

use gflownet::autodiff::ops::{Gather, MaskedLogSoftmax, Op};
use gflownet::autodiff::Tape;
use gflownet::cuda::reference::{self, CpuStep};
use gflownet::cuda::trainer::StepConfig;
use gflownet::cuda::{
    parse_ptx_entries, rng, validate_loss, Act, Buf, GemmOp, Gpu, GpuError, GpuTrainer, PtxModule, RegressionLoss,
    SIGNATURES,
};
use gflownet::env::{Environment, HyperGrid, HyperGridReward, LogReward, Peptide};
use gflownet::nn::{Activation, Adam, AdamKind, GroupConfig, ParamStore};
use gflownet::objective::{ControlVariate, ObjectiveConfig};
use gflownet::policy::{Policy, PolicyConfig, LOG_Z_GROUP, NET_GROUP};
use gflownet::sampler::{Exploration, Sampler};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NAN: u32 = 0x7fc0_0000;

/// Under the host emulation (`cuda-emu`, scripts/emulate-kernels.sh --rust), CUDA threads are
/// OS threads: the tests shrink their largest workloads.
const EMU: bool = cfg!(all(feature = "cuda-emu", not(feature = "cuda")));

/// A usable GPU, or `None` after printing why (a failure under `REQUIRE_GPU=1`).
fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var("REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("{test}: REQUIRE_GPU=1 but no GPU is usable: {e}");
            }
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

/// [`gpu`] and, when there is one, [`test_rng`]: the start of a test of the kernels.
fn gpu_and_rng(test: &str) -> Option<(Gpu, ChaCha8Rng)> {
    let g = gpu(test)?;
    Some((g, test_rng(test)))
}

/// A fresh seed per run (printed), or `GFN_TEST_SEED`.
fn test_rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("GFN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: GFN_TEST_SEED={seed}");
    ChaCha8Rng::seed_from_u64(seed)
}

fn randn(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Box-Muller
            let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * scale
        })
        .collect()
}

/// Random masks with at least one valid entry per row.
fn random_mask(rng: &mut ChaCha8Rng, rows: usize, cols: usize, p: f64) -> Vec<bool> {
    let mut m: Vec<bool> = (0..rows * cols).map(|_| rng.gen_bool(p)).collect();
    for r in 0..rows {
        if !m[r * cols..(r + 1) * cols].iter().any(|&v| v) {
            m[r * cols + rng.gen_range(0..cols)] = true;
        }
    }
    m
}

fn poisoned(n: usize) -> Buf<f32> {
    let mut b = Buf::zeros(n).unwrap();
    b.fill_u32(NAN).unwrap();
    b
}

/// max |got - want| / max(floor, max |scale|): the error relative to the magnitude at stake.
fn rel_err(got: &[f32], want: &[f64], scale: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    let denom = scale.iter().fold(floor, |m, &s| m.max(s.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g.is_nan() {
                f64::INFINITY
            } else {
                (g as f64 - w).abs()
            }
        })
        .fold(0.0, f64::max)
        / denom
}

// ------------------------------------------------------------------ no GPU needed

#[test]
fn launcher_signatures_match_ptx_entries() {
    let mut entries: HashMap<&str, Vec<(String, Vec<String>)>> = HashMap::new();
    for m in PtxModule::ALL {
        let parsed = parse_ptx_entries(m.ptx());
        assert!(!parsed.is_empty(), "{}: no .entry found", m.file());
        entries.insert(m.file(), parsed);
    }
    for sig in SIGNATURES {
        let list = &entries[sig.module.file()];
        let (_, params) = list
            .iter()
            .find(|(n, _)| n == sig.name)
            .unwrap_or_else(|| panic!("launcher {} has no .entry in {}", sig.name, sig.module.file()));
        assert_eq!(
            params.iter().map(String::as_str).collect::<Vec<_>>(),
            sig.params,
            "launcher {} vs the .entry parameters in {}",
            sig.name,
            sig.module.file()
        );
    }
    let launchers: Vec<(&str, &str)> = SIGNATURES.iter().map(|s| (s.module.file(), s.name)).collect();
    for (file, list) in &entries {
        for (name, _) in list {
            assert!(
                launchers.contains(&(file, name.as_str())),
                "{file}: kernel {name} has no typed launcher"
            );
        }
    }
    let total: usize = entries.values().map(Vec::len).sum();
    assert_eq!(total, SIGNATURES.len());
}

#[test]
fn ptx_parser_reads_qualified_params() {
    let ptx = ".visible .entry k(\n\t.param .u32 k_param_0,\n\t.param .align 8 .u64 .ptr .global k_param_1,\n\t.param .f32 k_param_2\n)\n{\n}\n.visible .entry j()\n{\n}";
    let e = parse_ptx_entries(ptx);
    assert_eq!(
        e[0],
        ("k".to_string(), vec![".u32".into(), ".u64".into(), ".f32".into()])
    );
    assert_eq!(e[1], ("j".to_string(), vec![]));
}

#[test]
fn no_device_is_an_error_not_a_panic() {
    match Gpu::new() {
        Ok(g) => eprintln!("a GPU is present ({}): nothing to check here", g.name()),
        Err(e) => {
            assert!(e.is_unavailable(), "expected Unavailable, got {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("no usable CUDA GPU") && msg.contains("CPU engine"),
                "{msg}"
            );
            let _: &dyn std::error::Error = &e;
        }
    }
}

#[test]
fn regression_losses_validate_their_options() {
    assert!(validate_loss(RegressionLoss::Linex(0.0), 50.0).is_err());
    assert!(validate_loss(RegressionLoss::Linex(f64::NAN), 50.0).is_err());
    assert!(validate_loss(RegressionLoss::ShiftedCosh, 81.0).is_err());
    assert!(validate_loss(RegressionLoss::Squared, -1.0).is_err());
    for g in losses() {
        validate_loss(g, 50.0).unwrap();
        // g(0) = g'(0) = 0, convex, and value/deriv agree with finite differences
        assert_eq!(g.value(0.0), 0.0);
        assert_eq!(g.deriv(0.0), 0.0);
        for t in [-3.0, -0.5, -1e-4, 1e-4, 0.7, 2.5] {
            let h = 1e-6;
            let fd = (g.value(t + h) - g.value(t - h)) / (2.0 * h);
            assert!(
                (fd - g.deriv(t)).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{g:?} at {t}: {fd} vs {}",
                g.deriv(t)
            );
        }
    }
}

#[test]
fn cpu_reference_tb_gradient_matches_finite_differences() {
    // The reference that the GPU step is checked against is itself checked here (CPU only).
    let env = HyperGrid::new(2, 4).unwrap();
    let (policy, store) = policy_for(&env, &[8], Activation::Tanh, 3);
    let store64: ParamStore<f64> = store.cast();
    let traj = Sampler::new(1).sample(&env, &policy, &store, 6, Exploration::ON_POLICY);
    let log_r = HyperGridReward::standard(4).log_rewards(&traj.terminals).unwrap();
    for g in losses() {
        let f = |s: &ParamStore<f64>| {
            let mut tape = Tape::<f64>::new();
            let p = s.bind(&mut tape);
            let terms = policy.terms(&mut tape, &p, &traj, &log_r);
            let a = tape.segment_sum(terms.log_pf, terms.offsets.clone());
            let b = tape.segment_sum(terms.log_pb, terms.offsets.clone());
            let back = tape.add(terms.log_r, b);
            let fwd = tape.add(a, terms.log_z);
            let t = tape.sub(back, fwd);
            let v = tape.apply(gflownet::objective::Regression { loss: g, clip: 50.0 }, &[t]);
            let l = tape.mean(v);
            let value = tape.item(l);
            let mut gr = tape.backward(l);
            (value, p.grads(&mut gr, s))
        };
        let (_, grads) = f(&store64);
        let h = 1e-6;
        for (i, p) in store64.iter().enumerate() {
            for j in (0..p.value.len()).step_by(7) {
                let mut plus = store64.clone();
                let mut minus = store64.clone();
                plus.value_mut(gflownet::nn::ParamId(i)).as_slice_mut().unwrap()[j] += h;
                minus.value_mut(gflownet::nn::ParamId(i)).as_slice_mut().unwrap()[j] -= h;
                let fd = (f(&plus).0 - f(&minus).0) / (2.0 * h);
                let an = grads[i].as_slice().unwrap()[j];
                assert!(
                    (fd - an).abs() <= 1e-5 * (1.0 + fd.abs()),
                    "{g:?} {}[{j}]: fd {fd} vs {an}",
                    p.name
                );
            }
        }
    }
}

// ------------------------------------------------------------------ kernels (GPU)

const GEMM_SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 13, 5),
    (128, 128, 8),
    (129, 130, 17),
    (300, 77, 260),
    (33, 600, 21),
    (517, 259, 1031),
];

/// The operands of `op` as stored, and the f64 product with the scale of each entry.
fn gemm_reference(op: GemmOp, m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let at = |i: usize, kk: usize| match op {
        GemmOp::TN => a[kk * m + i],
        _ => a[i * k + kk],
    } as f64;
    let bt = |kk: usize, j: usize| match op {
        GemmOp::NT => b[j * k + kk],
        _ => b[kk * n + j],
    } as f64;
    let mut c = vec![0.0; m * n];
    let mut s = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for kk in 0..k {
                c[i * n + j] += at(i, kk) * bt(kk, j);
                s[i * n + j] += (at(i, kk) * bt(kk, j)).abs();
            }
        }
    }
    (c, s)
}

/// Every size of [`GEMM_SIZES`] (the largest skipped under the emulation) with every op.
fn gemm_shapes() -> impl Iterator<Item = (GemmOp, usize, usize, usize)> {
    let sizes = GEMM_SIZES.iter().filter(|s| !EMU || s.0 * s.1 * s.2 < 1_000_000);
    sizes.flat_map(|&(m, n, k)| [GemmOp::NN, GemmOp::NT, GemmOp::TN].map(|op| (op, m, n, k)))
}

/// Random operands of `op` as stored, on the device, with their f64 product and its scale.
fn gemm_case(
    rng: &mut ChaCha8Rng,
    op: GemmOp,
    m: usize,
    n: usize,
    k: usize,
) -> (Buf<f32>, Buf<f32>, Vec<f64>, Vec<f64>) {
    let a = randn(rng, m * k, 1.0);
    let b = randn(rng, k * n, 1.0);
    let (want, scale) = gemm_reference(op, m, n, k, &a, &b);
    (Buf::from_slice(&a).unwrap(), Buf::from_slice(&b).unwrap(), want, scale)
}

#[test]
fn gemm_f32_matches_f64() {
    let Some((g, mut rng)) = gpu_and_rng("gemm_f32_matches_f64") else {
        return;
    };
    for (op, m, n, k) in gemm_shapes() {
        let (da, db, want, scale) = gemm_case(&mut rng, op, m, n, k);
        // beta = 0 on a NaN-poisoned output
        let mut c = poisoned(m * n);
        g.gemm(op, m, n, k, 1.0, &da, &db, 0.0, &mut c).unwrap();
        let got = c.download().unwrap();
        let e = rel_err(&got, &want, &scale, 1e-30);
        assert!(e < 1e-6, "{op:?} {m}x{n}x{k}: relative error {e:e}");
        // alpha, beta on a prior value
        let c0 = randn(&mut rng, m * n, 1.0);
        let mut c = Buf::from_slice(&c0).unwrap();
        g.gemm(op, m, n, k, 1.5, &da, &db, 0.5, &mut c).unwrap();
        let want2: Vec<f64> = want.iter().zip(&c0).map(|(&w, &c)| 1.5 * w + 0.5 * c as f64).collect();
        let scale2: Vec<f64> = scale
            .iter()
            .zip(&c0)
            .map(|(&s, &c)| 1.5 * s + 0.5 * (c as f64).abs())
            .collect();
        let e = rel_err(&c.download().unwrap(), &want2, &scale2, 1e-30);
        assert!(e < 1e-6, "{op:?} {m}x{n}x{k} alpha/beta: relative error {e:e}");
    }
}

#[test]
fn short_buffers_are_refused_with_the_kernel_and_the_buffer_named() {
    let Some(g) = gpu("short_buffers_are_refused_with_the_kernel_and_the_buffer_named") else {
        return;
    };
    let buf = |n| Buf::<f32>::zeros(n).unwrap();
    let (a, b, mut c) = (buf(6), buf(6), buf(4));
    // 2x3 · 3x2 fits; a 2x4 `a` (8 entries) does not
    g.gemm(GemmOp::NN, 2, 2, 3, 1.0, &a, &b, 0.0, &mut c).unwrap();
    let e = g.gemm(GemmOp::NN, 2, 2, 4, 1.0, &a, &b, 0.0, &mut c).unwrap_err();
    assert_eq!(e.to_string(), "GPU kernel arguments: gemm a holds 6 elements, needs 8");
    // bias and activation: the inputs checked first, then the output
    let (x, bias, mut y) = (buf(6), buf(3), buf(5));
    let e = g.bias_act(2, 3, &x, &bias, Act::Tanh, &mut y).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GPU kernel arguments: bias_act y holds 5 elements, needs 6"
    );
    let e = g.bias_act(2, 3, &x, &buf(2), Act::Tanh, &mut y).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GPU kernel arguments: bias_act bias holds 2 elements, needs 3"
    );
}

#[test]
fn gemm_bf16_within_1e_2() {
    let Some((g, mut rng)) = gpu_and_rng("gemm_bf16_within_1e_2") else {
        return;
    };
    for (op, m, n, k) in gemm_shapes() {
        let (da, db, want, scale) = gemm_case(&mut rng, op, m, n, k);
        let (mut ha, mut hb) = (Buf::<u16>::zeros(m * k).unwrap(), Buf::<u16>::zeros(k * n).unwrap());
        ha.fill_u8(0xff).unwrap();
        hb.fill_u8(0xff).unwrap();
        g.to_bf16(m * k, &da, &mut ha).unwrap();
        g.to_bf16(k * n, &db, &mut hb).unwrap();
        let mut c = poisoned(m * n);
        g.gemm_bf16(op, m, n, k, 1.0, &ha, &hb, 0.0, &mut c).unwrap();
        let e = rel_err(&c.download().unwrap(), &want, &scale, 1e-30);
        assert!(e < 1e-2, "bf16 {op:?} {m}x{n}x{k}: relative error {e:e}");
    }
}

#[test]
fn f32_to_bf16_rounds_like_half() {
    let Some((g, mut rng)) = gpu_and_rng("f32_to_bf16_rounds_like_half") else {
        return;
    };
    let mut x = randn(&mut rng, 10_001, 100.0);
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
    ]);
    let mut y = Buf::<u16>::zeros(x.len()).unwrap();
    y.fill_u8(0xff).unwrap();
    g.to_bf16(x.len(), &Buf::from_slice(&x).unwrap(), &mut y).unwrap();
    let got = y.download().unwrap();
    for (i, (&v, &h)) in x.iter().zip(&got).enumerate() {
        assert_eq!(h, half::bf16::from_f32(v).to_bits(), "element {i} = {v:e}");
    }
}

#[test]
fn bias_activation_forward_backward_and_column_sums() {
    let Some((g, mut rng)) = gpu_and_rng("bias_activation_forward_backward_and_column_sums") else {
        return;
    };
    for &(rows, cols) in &[(1, 1), (5, 33), (257, 129), (1000, 7), (64, 2048)] {
        for act in [Act::Identity, Act::LeakyRelu(0.0), Act::LeakyRelu(0.01), Act::Tanh] {
            let x = randn(&mut rng, rows * cols, 2.0);
            let bias = randn(&mut rng, cols, 1.0);
            let dy = randn(&mut rng, rows * cols, 1.0);
            let f = |v: f64| match act {
                Act::Identity => v,
                Act::LeakyRelu(k) => {
                    if v > 0.0 {
                        v
                    } else {
                        k as f64 * v
                    }
                }
                Act::Tanh => v.tanh(),
            };
            let pre: Vec<f64> = (0..rows * cols).map(|e| x[e] as f64 + bias[e % cols] as f64).collect();
            let want_y: Vec<f64> = pre.iter().map(|&v| f(v)).collect();
            let mut y = poisoned(rows * cols);
            let (dx_, db_) = (Buf::from_slice(&x).unwrap(), Buf::from_slice(&bias).unwrap());
            g.bias_act(rows, cols, &dx_, &db_, act, &mut y).unwrap();
            let got_y = y.download().unwrap();
            let e = rel_err(&got_y, &want_y, &pre, 1.0);
            assert!(e < 1e-6, "{act:?} fwd {rows}x{cols}: {e:e}");
            // backward from the GPU's own output (the engine's convention: derivative at x <= 0 is the slope)
            let want_dx: Vec<f64> = (0..rows * cols)
                .map(|e| {
                    let d = match act {
                        Act::Identity => 1.0,
                        Act::LeakyRelu(k) => {
                            if pre[e] as f32 > 0.0 {
                                1.0
                            } else {
                                k as f64
                            }
                        }
                        Act::Tanh => 1.0 - (got_y[e] as f64).powi(2),
                    };
                    dy[e] as f64 * d
                })
                .collect();
            let mut dx = poisoned(rows * cols);
            g.act_backward(rows, cols, &y, &Buf::from_slice(&dy).unwrap(), act, &mut dx)
                .unwrap();
            let scale: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
            let e = rel_err(&dx.download().unwrap(), &want_dx, &scale, 1.0);
            assert!(e < 1e-6, "{act:?} bwd {rows}x{cols}: {e:e}");
        }
        // column sums, beta 0 (poisoned) and beta 1
        let x = randn(&mut rng, rows * cols, 1.0);
        let want: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| x[i * cols + j] as f64).sum())
            .collect();
        let scale: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| (x[i * cols + j] as f64).abs()).sum())
            .collect();
        let dxb = Buf::from_slice(&x).unwrap();
        let mut out = poisoned(cols);
        g.col_sums(rows, cols, &dxb, 0.0, &mut out).unwrap();
        let e = rel_err(&out.download().unwrap(), &want, &scale, 1e-30);
        assert!(e < 1e-6, "col_sum {rows}x{cols}: {e:e}");
        g.col_sums(rows, cols, &dxb, 1.0, &mut out).unwrap();
        let want2: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
        let e = rel_err(&out.download().unwrap(), &want2, &scale, 1e-30);
        assert!(e < 2e-6, "col_sum beta 1 {rows}x{cols}: {e:e}");
    }
}

#[test]
fn masked_log_softmax_forward_backward_gather() {
    let Some((g, mut rng)) = gpu_and_rng("masked_log_softmax_forward_backward_gather") else {
        return;
    };
    for &(rows, cols) in &[(1, 1), (3, 2), (100, 21), (77, 33), (513, 100), (9, 1000)] {
        let x = randn(&mut rng, rows * cols, 3.0);
        let mask = random_mask(&mut rng, rows, cols, 0.6);
        let x64 = Array2::from_shape_fn((rows, cols), |(i, j)| x[i * cols + j] as f64);
        let m = Array2::from_shape_vec((rows, cols), mask.clone()).unwrap();
        let op = MaskedLogSoftmax {
            mask: m.clone(),
            lse: None,
        };
        let want = Op::<f64>::forward(&op, &[&x64]);
        let mask_u8: Vec<u8> = mask.iter().map(|&v| v as u8).collect();
        let (dx, dm) = (Buf::from_slice(&x).unwrap(), Buf::from_slice(&mask_u8).unwrap());
        let mut out = poisoned(rows * cols);
        g.log_softmax(rows, cols, &dx, &dm, &mut out).unwrap();
        let got = out.download().unwrap();
        for e in 0..rows * cols {
            let w = want.as_slice().unwrap()[e];
            if mask[e] {
                assert!(
                    (got[e] as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "fwd {rows}x{cols} [{e}]: {} vs {w}",
                    got[e]
                );
            } else {
                assert_eq!(got[e], f32::NEG_INFINITY, "masked entry {e}");
            }
        }
        // backward with a dense upstream gradient
        let gup = randn(&mut rng, rows * cols, 1.0);
        let g64 = Array2::from_shape_fn((rows, cols), |(i, j)| gup[i * cols + j] as f64);
        let want_d = Op::<f64>::backward(&op, &[&x64], &want, &mut g64.clone())[0]
            .clone()
            .unwrap();
        let mut d = poisoned(rows * cols);
        g.log_softmax_backward(rows, cols, &out, &dm, &Buf::from_slice(&gup).unwrap(), &mut d)
            .unwrap();
        let scale: Vec<f64> = (0..rows)
            .flat_map(|i| {
                let s: f64 = (0..cols).map(|j| (gup[i * cols + j] as f64).abs()).sum();
                std::iter::repeat_n(s, cols)
            })
            .collect();
        let e = rel_err(&d.download().unwrap(), want_d.as_slice().unwrap(), &scale, 1.0);
        assert!(e < 1e-5, "bwd {rows}x{cols}: {e:e}");
        // gather of one valid entry per row, and the fused gather + log-softmax backward
        let actions: Vec<u32> = (0..rows)
            .map(|i| {
                let valid: Vec<usize> = (0..cols).filter(|&j| mask[i * cols + j]).collect();
                valid[rng.gen_range(0..valid.len())] as u32
            })
            .collect();
        let coef = randn(&mut rng, rows, 1.0);
        let da = Buf::from_slice(&actions).unwrap();
        let mut picked = poisoned(rows);
        g.gather(rows, cols, &out, &da, &mut picked).unwrap();
        let idx: Vec<usize> = actions.iter().map(|&a| a as usize).collect();
        let gat = Gather { index: idx.clone() };
        let want_p = Op::<f64>::forward(&gat, &[&want]);
        let e = rel_err(
            &picked.download().unwrap(),
            want_p.as_slice().unwrap(),
            want_p.as_slice().unwrap(),
            1.0,
        );
        assert!(e < 1e-5, "gather {rows}x{cols}: {e:e}");
        let c64 = Array2::from_shape_fn((rows, 1), |(i, _)| coef[i] as f64);
        let g_lp = Op::<f64>::backward(&gat, &[&want], &want_p, &mut c64.clone())[0]
            .clone()
            .unwrap();
        let want_fused = Op::<f64>::backward(&op, &[&x64], &want, &mut g_lp.clone())[0]
            .clone()
            .unwrap();
        let mut d = poisoned(rows * cols);
        g.log_softmax_gather_backward(rows, cols, &out, &dm, &da, &Buf::from_slice(&coef).unwrap(), &mut d)
            .unwrap();
        let scale: Vec<f64> = (0..rows * cols).map(|e| coef[e / cols].abs() as f64).collect();
        let e = rel_err(&d.download().unwrap(), want_fused.as_slice().unwrap(), &scale, 1.0);
        assert!(e < 1e-5, "gather bwd {rows}x{cols}: {e:e}");
    }
}

#[test]
fn philox_matches_host_twin() {
    let Some((g, mut rng)) = gpu_and_rng("philox_matches_host_twin") else {
        return;
    };
    for n in [1usize, 31, 1000, 65_537] {
        let (seed, hi, step): (u64, u32, u32) = (rng.gen(), rng.gen(), rng.gen_range(0..1000));
        let mut out = Buf::<u32>::zeros(n).unwrap();
        out.fill_u32(0xdead_beef).unwrap();
        g.philox(n, hi, step, seed, &mut out).unwrap();
        let got = out.download().unwrap();
        for (i, &w) in got.iter().enumerate() {
            let want = rng::philox4x32([i as u32, hi, step, 0], [seed as u32, (seed >> 32) as u32])[0];
            assert_eq!(w, want, "n {n}, counter {i}");
        }
    }
}

#[test]
fn categorical_sampling_matches_reference_rule() {
    let Some((g, mut rng)) = gpu_and_rng("categorical_sampling_matches_reference_rule") else {
        return;
    };
    let mut near_ties = 0;
    let mut total = 0;
    for &(rows, cols) in &[(1, 1), (1000, 5), (4097, 21), (300, 33), (50, 300)] {
        let rows: usize = if EMU { rows.min(200) } else { rows };
        for explore in [
            Exploration::ON_POLICY,
            Exploration {
                temperature: 2.0,
                epsilon: 0.1,
            },
            Exploration {
                temperature: 0.5,
                epsilon: 0.0,
            },
        ] {
            let x = randn(&mut rng, rows * cols, 2.0);
            let mask = random_mask(&mut rng, rows, cols, 0.5);
            let traj: Vec<u64> = (0..rows).map(|_| rng.gen()).collect();
            let (seed, step): (u64, u32) = (rng.gen(), rng.gen_range(0..64));
            let mask_u8: Vec<u8> = mask.iter().map(|&v| v as u8).collect();
            let mut act = Buf::<u32>::zeros(rows).unwrap();
            act.fill_u32(0xffff_fff0).unwrap();
            let mut lp = poisoned(rows);
            g.sample(
                rows,
                cols,
                &Buf::from_slice(&x).unwrap(),
                &Buf::from_slice(&mask_u8).unwrap(),
                &Buf::from_slice(&traj).unwrap(),
                step,
                seed,
                explore.temperature,
                explore.epsilon,
                &mut act,
                &mut lp,
            )
            .unwrap();
            let (acts, lps) = (act.download().unwrap(), lp.download().unwrap());
            for i in 0..rows {
                total += 1;
                let (xr, mr) = (&x[i * cols..(i + 1) * cols], &mask[i * cols..(i + 1) * cols]);
                let u = rng::uniform(seed, traj[i], step);
                let want = reference::choose(xr, mr, explore, u).unwrap();
                let a = acts[i] as usize;
                assert!(a < cols && mr[a], "row {i}: invalid action {}", acts[i]);
                if a != want {
                    // only where u sits within float rounding of a cumulative boundary
                    let inv_t = 1.0 / explore.temperature;
                    let valid: Vec<usize> = (0..cols).filter(|&j| mr[j]).collect();
                    let mx = valid
                        .iter()
                        .map(|&j| xr[j] as f64 * inv_t)
                        .fold(f64::NEG_INFINITY, f64::max);
                    let tot: f64 = valid.iter().map(|&j| (xr[j] as f64 * inv_t - mx).exp()).sum();
                    let mut acc = 0.0;
                    let mut dist = f64::INFINITY;
                    for &j in &valid {
                        acc += (1.0 - explore.epsilon) * (xr[j] as f64 * inv_t - mx).exp() / tot
                            + explore.epsilon / valid.len() as f64;
                        dist = dist.min((acc - u as f64).abs());
                    }
                    assert!(
                        dist < 1e-5,
                        "row {i}: GPU drew {a}, reference {want}, u = {u} is {dist:e} from a boundary"
                    );
                    near_ties += 1;
                }
                let want_lp = reference::log_prob(xr, mr, a);
                assert!(
                    (lps[i] as f64 - want_lp).abs() <= 1e-5 * (1.0 + want_lp.abs()),
                    "row {i}: log p {} vs {want_lp}",
                    lps[i]
                );
            }
        }
    }
    assert!(
        near_ties * 1000 <= total,
        "{near_ties} near-tie mismatches in {total} draws"
    );
}

fn losses() -> [RegressionLoss; 5] {
    [
        RegressionLoss::Squared,
        RegressionLoss::Linex(1.0),
        RegressionLoss::Linex(0.5),
        RegressionLoss::ShiftedCosh,
        RegressionLoss::Linex(-1.0),
    ]
}

#[test]
fn tb_residuals_losses_and_reductions() {
    let Some((g, mut rng)) = gpu_and_rng("tb_residuals_losses_and_reductions") else {
        return;
    };
    for batch in [1usize, 7, 256, 1000, 4097].into_iter().filter(|&b| !EMU || b <= 256) {
        let lens: Vec<usize> = (0..batch).map(|_| rng.gen_range(1..31)).collect();
        let mut offsets = vec![0u32];
        for l in &lens {
            offsets.push(offsets.last().unwrap() + *l as u32);
        }
        let rows = *offsets.last().unwrap() as usize;
        let log_pf: Vec<f32> = randn(&mut rng, rows, 1.0).iter().map(|v| -v.abs()).collect();
        let log_pb: Vec<f32> = randn(&mut rng, rows, 0.5).iter().map(|v| -v.abs()).collect();
        let log_r = randn(&mut rng, batch, 3.0);
        let log_z = [rng.gen_range(-5.0f32..5.0)];
        let want: Vec<f64> = (0..batch)
            .map(|b| {
                let (lo, hi) = (offsets[b] as usize, offsets[b + 1] as usize);
                let s: f64 = (lo..hi).map(|r| log_pb[r] as f64 - log_pf[r] as f64).sum();
                log_r[b] as f64 + s - log_z[0] as f64
            })
            .collect();
        let scale: Vec<f64> = (0..batch)
            .map(|b| {
                let (lo, hi) = (offsets[b] as usize, offsets[b + 1] as usize);
                let s: f64 = (lo..hi)
                    .map(|r| (log_pb[r] as f64).abs() + (log_pf[r] as f64).abs())
                    .sum();
                log_r[b].abs() as f64 + s + log_z[0].abs() as f64
            })
            .collect();
        let d_off = Buf::from_slice(&offsets).unwrap();
        let mut resid = poisoned(batch);
        g.tb_residuals(
            batch,
            &d_off,
            &Buf::from_slice(&log_pf).unwrap(),
            &Buf::from_slice(&log_pb).unwrap(),
            &Buf::from_slice(&log_r).unwrap(),
            &Buf::from_slice(&log_z).unwrap(),
            &mut resid,
        )
        .unwrap();
        let got = resid.download().unwrap();
        let e = rel_err(&got, &want, &scale, 1.0);
        assert!(e < 1e-6, "tb_residual batch {batch}: {e:e}");

        // losses on residuals spread over [-60, 60] (beyond the clip of 50) and near 0
        let t: Vec<f32> = (0..batch)
            .map(|i| match i % 4 {
                0 => rng.gen_range(-60.0..60.0),
                1 => rng.gen_range(-1e-3..1e-3),
                _ => rng.gen_range(-4.0..4.0),
            })
            .collect();
        let dt = Buf::from_slice(&t).unwrap();
        for loss in losses() {
            let clip = 50.0;
            let scale_g = 1.0 / batch as f32;
            let (mut value, mut grad) = (poisoned(batch), poisoned(batch));
            g.regression(batch, &dt, loss, clip, scale_g, &mut value, &mut grad)
                .unwrap();
            let (v, d) = (value.download().unwrap(), grad.download().unwrap());
            for i in 0..batch {
                let ti = t[i] as f64;
                let wv = loss.value(ti);
                let wd = scale_g as f64 * loss.deriv(ti.clamp(-clip, clip));
                assert!(
                    (v[i] as f64 - wv).abs() <= 1e-5 * wv.abs().max(1e-30),
                    "{loss:?} g({ti}) = {} vs {wv}",
                    v[i]
                );
                assert!(
                    (d[i] as f64 - wd).abs() <= 1e-5 * wd.abs() + 1e-30,
                    "{loss:?} g'({ti}) = {} vs {wd}",
                    d[i]
                );
            }
        }
        // segment broadcast and sums
        let per = randn(&mut rng, batch, 1.0);
        let mut rows_out = poisoned(rows);
        g.broadcast_segments(batch, &d_off, &Buf::from_slice(&per).unwrap(), -1.0, &mut rows_out)
            .unwrap();
        let got = rows_out.download().unwrap();
        for b in 0..batch {
            for (r, &v) in got
                .iter()
                .enumerate()
                .take(offsets[b + 1] as usize)
                .skip(offsets[b] as usize)
            {
                assert_eq!(v, -per[b], "row {r} of segment {b}");
            }
        }
        let x = randn(&mut rng, rows, 1.0);
        let dx = Buf::from_slice(&x).unwrap();
        let mut scratch = Buf::zeros(0).unwrap();
        let mut out = poisoned(3);
        g.sum(rows, &dx, false, 0.5, &mut scratch, &mut out, 1).unwrap();
        g.sum(rows, &dx, true, 1.0, &mut scratch, &mut out, 2).unwrap();
        let got = out.download().unwrap();
        let s: f64 = x.iter().map(|&v| v as f64).sum();
        let sa: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
        let sq: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!(
            (got[1] as f64 - 0.5 * s).abs() <= 1e-6 * sa,
            "sum of {rows}: {} vs {}",
            got[1],
            0.5 * s
        );
        assert!(
            (got[2] as f64 - sq).abs() <= 1e-6 * sq,
            "sum of squares of {rows}: {} vs {sq}",
            got[2]
        );
        let (mut s64, mut o64) = (Buf::<f64>::zeros(0).unwrap(), Buf::<f64>::zeros(2).unwrap());
        o64.fill_u8(0xff).unwrap(); // NaN pattern
        g.sum_squares(rows, &dx, &mut s64, &mut o64, 1).unwrap();
        let got = o64.download().unwrap()[1];
        assert!(
            (got - sq).abs() <= 1e-12 * sq,
            "f64 sum of squares of {rows}: {got} vs {sq}"
        );
        // f64 accumulation: squares beyond the f32 range still give a finite norm
        let big = vec![1e30f32; 1000];
        g.sum_squares(1000, &Buf::from_slice(&big).unwrap(), &mut s64, &mut o64, 0)
            .unwrap();
        let got = o64.download().unwrap()[0];
        assert!((got / 1e63 - 1.0).abs() < 1e-6, "sum of 1000 (1e30)^2 = {got:e}");
    }
}

#[test]
fn adam_matches_cpu_optimizer() {
    let Some((g, mut rng)) = gpu_and_rng("adam_matches_cpu_optimizer") else {
        return;
    };
    for kind in [AdamKind::Adam, AdamKind::AdamW] {
        for n in [1usize, 1000, 70_001] {
            let w0 = randn(&mut rng, n, 1.0);
            let mut store = ParamStore::<f32>::new();
            store.add("w", "net", Array2::from_shape_vec((1, n), w0.clone()).unwrap());
            let mut cfg = GroupConfig::new("net", 1e-2);
            cfg.weight_decay = 0.1;
            let mut cpu = Adam::new(kind, vec![cfg.clone()], &store).unwrap();
            let mut gpu_store = store.clone();
            let policy_free = Adam::new(kind, vec![cfg], &gpu_store).unwrap();
            let (mut dw, mut dm, mut dv) = (
                Buf::from_slice(&w0).unwrap(),
                Buf::zeros(n).unwrap(),
                Buf::zeros(n).unwrap(),
            );
            for step in 1..=5u64 {
                let grad = randn(&mut rng, n, 1.0);
                let mut gs = vec![Array2::from_shape_vec((1, n), grad.clone()).unwrap()];
                cpu.step(&mut store, &mut gs).unwrap();
                let (b1, b2) = (policy_free.beta1, policy_free.beta2);
                let lr = 1e-2;
                let hp = gflownet::cuda::ops::AdamScalars {
                    grad_scale: 1.0,
                    beta1: b1 as f32,
                    beta2: b2 as f32,
                    step_size: (lr / (1.0 - b1.powi(step as i32))) as f32,
                    inv_bc2_sqrt: (1.0 / (1.0 - b2.powi(step as i32)).sqrt()) as f32,
                    eps: policy_free.eps as f32,
                    weight_decay: 0.1,
                    decay: (1.0 - lr * 0.1) as f32,
                    coupled: kind == AdamKind::Adam,
                };
                g.adam(n, &mut dw, &Buf::from_slice(&grad).unwrap(), &mut dm, &mut dv, hp)
                    .unwrap();
            }
            gpu_store
                .value_mut(gflownet::nn::ParamId(0))
                .assign(&Array2::from_shape_vec((1, n), dw.download().unwrap()).unwrap());
            let want: Vec<f64> = store
                .value(gflownet::nn::ParamId(0))
                .iter()
                .map(|&v| v as f64)
                .collect();
            let got = gpu_store.value(gflownet::nn::ParamId(0)).as_slice().unwrap().to_vec();
            // f32 against f32 (the GPU contracts to FMA): a few ulps of the weights
            let e = rel_err(&got, &want, &want, 1.0);
            assert!(e < 1e-5, "{kind:?} n {n}: relative error {e:e}");
        }
    }
}

// ------------------------------------------------------------------ training (GPU)

fn policy_for<E: Environment>(env: &E, hidden: &[usize], act: Activation, seed: u64) -> (Policy, ParamStore<f32>) {
    policy_with(env, hidden, act, seed, false)
}

fn policy_with<E: Environment>(
    env: &E,
    hidden: &[usize],
    act: Activation,
    seed: u64,
    log_f: bool,
) -> (Policy, ParamStore<f32>) {
    let cfg = PolicyConfig {
        hidden: hidden.to_vec(),
        activation: act,
        log_f,
        ..PolicyConfig::default()
    };
    let mut store = ParamStore::new();
    let mut r = gflownet::rng::stream(seed, gflownet::rng::streams::INIT);
    let policy = Policy::new(env, &cfg, &mut store, &mut r).unwrap();
    (policy, store)
}

fn adam_for(store: &ParamStore<f32>) -> Adam<f32> {
    let mut net = GroupConfig::new(NET_GROUP, 1e-3);
    net.clip_norm = Some(10.0);
    Adam::new(AdamKind::Adam, vec![net, GroupConfig::new(LOG_Z_GROUP, 1e-1)], store).unwrap()
}

fn peptide_log_r(xs: &[gflownet::env::PeptideState]) -> gflownet::error::Result<Vec<f64>> {
    // a smooth toy reward: favours residue 0 and length
    Ok(xs
        .iter()
        .map(|x| 0.3 * x.residues.iter().filter(|&&r| r == 0).count() as f64 + 0.05 * x.residues.len() as f64)
        .collect())
}

fn rel_norm(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let n: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum::<f64>().sqrt();
    d / n.max(1e-12)
}

/// Elementwise comparison of two parameter stores after some Adam steps. Adam's update
/// `m / sqrt(v)` is scale-free, so an element whose gradient is at rounding level gets an
/// O(lr) step whose sign is noise: allow a few such elements (1 in 1000), each by at most
/// 2 lr per step; every other element within 1e-5 + 1e-4 |w|.
fn assert_params_close(test: &str, a: &ParamStore<f32>, b: &ParamStore<f32>, max_lr: f64, steps: usize) {
    for (pa, pb) in a.iter().zip(b.iter()) {
        let mut off = 0;
        for (&x, &y) in pa.value.iter().zip(pb.value.iter()) {
            let d = (x as f64 - y as f64).abs();
            assert!(
                d <= 2.0 * max_lr * steps as f64 + 1e-5,
                "{test}: {} differs by {d}",
                pa.name
            );
            if d > 1e-5 + 1e-4 * (y as f64).abs() {
                off += 1;
            }
        }
        assert!(
            off <= 2.max(pa.value.len() / 1000),
            "{test}: {off} of {} elements of {} differ",
            pa.value.len(),
            pa.name
        );
    }
}

/// TB under `g` (the device path).
fn tb(g: RegressionLoss) -> ObjectiveConfig {
    ObjectiveConfig {
        g,
        ..ObjectiveConfig::default()
    }
}

/// Every objective the GPU step trains, and whether the policy gets a `log F` head:
/// TB under each g on the device (once with an unused `log F` head, which must get
/// zero gradients as on the CPU), the others through the host objective.
fn objectives() -> Vec<(ObjectiveConfig, bool)> {
    let mut out: Vec<(ObjectiveConfig, bool)> = losses().into_iter().map(|g| (tb(g), false)).collect();
    out.push((tb(RegressionLoss::LINEX1), true));
    for (name, g) in [
        ("subtb", RegressionLoss::Squared),
        ("subtb:1.5", RegressionLoss::LINEX1),
        ("db", RegressionLoss::LINEX_HALF),
        ("db", RegressionLoss::ShiftedCosh),
    ] {
        let o = ObjectiveConfig {
            objective: name.parse().unwrap(),
            g,
            ..ObjectiveConfig::default()
        };
        out.push((o, true));
    }
    for name in ["rev-kl", "fwd-kl", "renyi", "tsallis"] {
        let o = ObjectiveConfig {
            objective: name.parse().unwrap(),
            cv: ControlVariate::Loo,
            ..ObjectiveConfig::default()
        };
        out.push((o, false));
    }
    out
}

/// Same trajectories, same start: the GPU step's loss, gradients and updated
/// parameters agree with the CPU engine's, for every objective and g. The first step is compared
/// tightly; later steps start from parameters that already differ by rounding
/// (amplified by Adam, see [`assert_params_close`]), so they get 10x the tolerance.
fn check_train_on<E: Environment, R: LogReward<E::State>>(
    test: &str,
    env: &E,
    reward: &mut R,
    hidden: &[usize],
    act: Activation,
) {
    for (objective, log_f) in objectives() {
        let Some(g) = gpu(test) else { return };
        let loss = &objective;
        let (policy, store) = policy_with(env, hidden, act, 7, log_f);
        let mut gt = GpuTrainer::new(g, &policy, &store, adam_for(&store), 11).unwrap();
        let mut cpu = CpuStep::new(policy.clone(), store.clone(), adam_for(&store), 11);
        let mut sampler = Sampler::new(3);
        let (steps, batch) = if EMU { (2, 24) } else { (5, 48) };
        for step in 0..steps {
            let tol = if step == 0 { 1e-4 } else { 1e-3 };
            let explore = Exploration {
                temperature: 1.0,
                epsilon: 0.2,
            };
            let traj = sampler.sample(env, &cpu.policy, &cpu.store, batch, explore);
            let log_r = reward.log_rewards(&traj.terminals).unwrap();
            let (_, _, cpu_grads) = cpu.loss_and_grads(&traj, &log_r, &objective).unwrap();
            let c = cpu.train_on(&traj, &log_r, &objective).unwrap();
            let s = gt.train_on(&traj, &log_r, &objective).unwrap();
            assert!(
                (s.loss - c.loss).abs() <= tol * c.loss.abs().max(1e-3),
                "{test} {loss:?} step {step}: loss GPU {} CPU {}",
                s.loss,
                c.loss
            );
            assert!(
                (s.log_z - c.log_z).abs() <= tol,
                "{test} {loss:?} step {step}: log Z {} vs {}",
                s.log_z,
                c.log_z
            );
            for (k, (a, b)) in s.grad_norm.iter().zip(&c.grad_norm).enumerate() {
                assert!(
                    (a - b).abs() <= tol * b.max(1e-6),
                    "{test} {loss:?} step {step}: group {k} norm {a} vs {b}"
                );
            }
            let gpu_grads = gt.gradients().unwrap();
            for (i, (a, b)) in gpu_grads.iter().zip(&cpu_grads).enumerate() {
                let e = rel_norm(a, b);
                assert!(
                    e < tol,
                    "{test} {loss:?} step {step}: gradient of parameter {i} off by {e:e}"
                );
            }
        }
        let mut after = store.clone();
        gt.download(&mut after).unwrap();
        assert_params_close(&format!("{test} {loss:?}"), &after, &cpu.store, 0.1, steps);
    }
}

#[test]
fn train_on_matches_cpu_engine_hypergrid() {
    let env = HyperGrid::new(3, 6).unwrap();
    check_train_on(
        "train_on_matches_cpu_engine_hypergrid",
        &env,
        &mut HyperGridReward::standard(6),
        &[64, 48],
        Activation::LeakyRelu(0.01),
    );
}

#[test]
fn train_on_matches_cpu_engine_peptide() {
    let env = Peptide::with_alphabet(b"ACDEFG", 3, 12).unwrap();
    check_train_on(
        "train_on_matches_cpu_engine_peptide",
        &env,
        &mut peptide_log_r,
        &[96, 130],
        Activation::Relu,
    );
}

#[test]
fn gpu_sampling_matches_reference_sampler() {
    let Some(g) = gpu("gpu_sampling_matches_reference_sampler") else {
        return;
    };
    let env = Peptide::with_alphabet(b"ACDEFGHIKL", 5, 20).unwrap();
    let (policy, store) = policy_for(&env, &[64, 64], Activation::Tanh, 5);
    // sharpen so probabilities matter
    let mut store = store;
    for p in store.iter_mut() {
        p.value.mapv_inplace(|v| v * 3.0);
    }
    let mut gt = GpuTrainer::new(g, &policy, &store, adam_for(&store), 99).unwrap();
    let mut cpu = CpuStep::new(policy, store, adam_for(&ParamStore::new()), 99);
    for explore in [
        Exploration::ON_POLICY,
        Exploration {
            temperature: 1.5,
            epsilon: 0.1,
        },
    ] {
        let n = if EMU { 100 } else { 500 };
        let a = gt.sample(&env, n, explore).unwrap();
        let b = cpu.sample(&env, n, explore);
        let same = a.terminals.iter().zip(&b.terminals).filter(|(x, y)| x == y).count();
        assert!(same * 100 >= n * 99, "only {same} of {n} trajectories identical");
        for i in 0..n {
            if a.terminals[i] == b.terminals[i] {
                let (lo, hi) = (a.offsets[i], a.offsets[i + 1]);
                for r in lo..hi {
                    assert!((a.log_pf[r] - b.log_pf[r]).abs() <= 1e-4, "trajectory {i} row {r}");
                }
            }
        }
    }
}

/// A whole GPU run (GPU sampling, GPU training) against the CPU engine following it:
/// each step the CPU reference sampler must reproduce the GPU's trajectories from the
/// CPU's own parameters, and the CPU engine trains on the GPU's batch; losses, log Z
/// and the final parameters must agree.
fn check_run<E: Environment, R: LogReward<E::State>>(
    test: &str,
    env: &E,
    reward: &mut R,
    hidden: &[usize],
    batch: usize,
    steps: usize,
) {
    let (batch, steps) = if EMU {
        (batch.min(32), steps.min(3))
    } else {
        (batch, steps)
    };
    for loss in losses() {
        let Some(g) = gpu(test) else { return };
        let (policy, store) = policy_for(env, hidden, Activation::Relu, 21);
        let mut gt = GpuTrainer::new(g, &policy, &store, adam_for(&store), 5).unwrap();
        let mut cpu = CpuStep::new(policy, store.clone(), adam_for(&store), 5);
        let cfg = StepConfig {
            batch,
            exploration: Exploration {
                temperature: 1.0,
                epsilon: 0.05,
            },
            objective: tb(loss),
        };
        let (mut same, mut total) = (0, 0);
        let mut worst: f64 = 0.0;
        for step in 0..steps {
            let (s, ta) = gt.step(env, reward, &cfg).unwrap();
            let tb = cpu.sample(env, cfg.batch, cfg.exploration);
            same += ta.terminals.iter().zip(&tb.terminals).filter(|(x, y)| x == y).count();
            total += cfg.batch;
            let log_r = reward.log_rewards(&ta.terminals).unwrap();
            let c = cpu.train_on(&ta, &log_r, &cfg.objective).unwrap();
            let e = (s.loss - c.loss).abs() / c.loss.abs().max(1e-3);
            worst = worst.max(e);
            assert!(
                e <= 1e-3,
                "{test} {loss:?} step {step}: loss GPU {} CPU {}",
                s.loss,
                c.loss
            );
            assert!(
                (s.log_z - c.log_z).abs() <= 1e-3 * (1.0 + c.log_z.abs()),
                "{test} {loss:?} step {step}: log Z GPU {} CPU {}",
                s.log_z,
                c.log_z
            );
        }
        assert!(
            same * 100 >= total * 98,
            "{test} {loss:?}: {same} of {total} trajectories identical"
        );
        let mut after = store.clone();
        gt.download(&mut after).unwrap();
        assert_params_close(&format!("{test} {loss:?}"), &after, &cpu.store, 0.1, steps);
        eprintln!(
            "{test} {loss:?}: {steps} steps, final log Z {:.4}, worst loss rel. diff {worst:.1e}, {same}/{total} trajectories identical",
            gt.log_z().unwrap()
        );
    }
}

#[test]
fn gpu_training_run_matches_cpu_run_hypergrid() {
    let env = HyperGrid::new(2, 8).unwrap();
    check_run(
        "gpu_training_run_matches_cpu_run_hypergrid",
        &env,
        &mut HyperGridReward::standard(8),
        &[64, 64],
        64,
        40,
    );
}

#[test]
fn gpu_training_run_matches_cpu_run_peptide() {
    let env = Peptide::with_alphabet(b"ACDEFGHIKL", 4, 10).unwrap();
    check_run(
        "gpu_training_run_matches_cpu_run_peptide",
        &env,
        &mut peptide_log_r,
        &[128, 128],
        128,
        20,
    );
}

#[test]
fn unsupported_policy_is_refused_with_a_reason() {
    let Some(g) = gpu("unsupported_policy_is_refused_with_a_reason") else {
        return;
    };
    let env = HyperGrid::new(2, 4).unwrap();
    let cfg = PolicyConfig {
        hidden: vec![8],
        backward: gflownet::policy::BackwardPolicy::Learned,
        ..PolicyConfig::default()
    };
    let mut store = ParamStore::new();
    let mut r = gflownet::rng::stream(0, 1);
    let policy = Policy::new(&env, &cfg, &mut store, &mut r).unwrap();
    let adam = adam_for(&store);
    match GpuTrainer::new(g, &policy, &store, adam, 0) {
        Err(GpuError::Unsupported(m)) => assert!(m.contains("P_B"), "{m}"),
        Err(e) => panic!("expected Unsupported, got {e}"),
        Ok(_) => panic!("a learned P_B was accepted"),
    }
}

#[test]
fn unsupported_objective_options_are_refused_with_a_reason() {
    let Some(g) = gpu("unsupported_objective_options_are_refused_with_a_reason") else {
        return;
    };
    let env = HyperGrid::new(2, 4).unwrap();
    let (policy, store) = policy_for(&env, &[8], Activation::Relu, 0);
    let mut gt = GpuTrainer::new(g, &policy, &store, adam_for(&store), 0).unwrap();
    let traj = Sampler::new(0).sample(&env, &policy, &store, 4, Exploration::ON_POLICY);
    let log_r = vec![0.0; 4];
    let cases = [
        (
            ObjectiveConfig {
                entropy_weight: 0.1,
                ..ObjectiveConfig::default()
            },
            "entropy",
        ),
        (
            ObjectiveConfig {
                objective: "rev-kl".parse().unwrap(),
                cv: ControlVariate::Batch,
                ..ObjectiveConfig::default()
            },
            "batch control variate",
        ),
        (
            ObjectiveConfig {
                objective: "db".parse().unwrap(),
                ..ObjectiveConfig::default()
            },
            "log F",
        ),
    ];
    for (objective, why) in cases {
        let err = gt.train_on(&traj, &log_r, &objective).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}");
    }
}
