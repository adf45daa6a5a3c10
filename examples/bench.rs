//! Benchmarks. `cargo run --release --example bench -- <what>` with `what` one of:
//! `matmul` (single-thread GEMM rate, the yardstick of every floor), `all`.
//! Prints one JSON line per measurement, then a readable table.

use std::time::Instant;

use ndarray::Array2;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
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

/// Single-thread f32 GEMM rate in GFLOP/s for `[m, k] x [k, n]`.
pub fn gemm_gflops(m: usize, k: usize, n: usize) -> f64 {
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.01);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.01);
    let secs = time_it(15, || {
        std::hint::black_box(a.dot(&b));
    });
    2.0 * (m * k * n) as f64 / secs / 1e9
}

fn matmul(rows: &mut Vec<(String, String)>) {
    for (m, k, n) in [
        (16, 32, 256),
        (16, 256, 256),
        (256, 256, 256),
        (2048, 256, 256),
        (512, 2048, 2048),
    ] {
        let g = gemm_gflops(m, k, n);
        println!("{{\"bench\":\"matmul\",\"m\":{m},\"k\":{k},\"n\":{n},\"gflops\":{g:.2}}}");
        rows.push((format!("matmul {m}x{k}x{n}"), format!("{g:.1} GFLOP/s")));
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let mut rows = Vec::new();
    match what.as_str() {
        "matmul" => matmul(&mut rows),
        "all" => matmul(&mut rows),
        other => {
            eprintln!("unknown benchmark `{other}`; expected one of: matmul, all");
            std::process::exit(2);
        }
    }
    println!();
    for (name, value) in rows {
        println!("{name:<40} {value}");
    }
}
