//! The engine's matrix product: output in a pooled buffer, large products split
//! over worker threads, products of few rows by a kernel of our own.
//!
//! A product is split by rows of its output, and each part is the same
//! `matrixmultiply` call on a band of rows. Every output entry is computed by
//! the same sequence of operations whatever the split, so the result is
//! bit-identical for any number of threads (tested).
//!
//! `matrixmultiply` repacks both operands on every call, which costs as much as
//! the arithmetic when `a` has a handful of rows: the sampler's forward pass
//! once most trajectories of a batch have finished. Products of at most
//! [`FEW_ROWS`] rows (and at least 16 columns) therefore go to
//! [`few_rows_f32`], which reads the weights in place: 2-4 times as fast at 1
//! to 4 rows, even at 16 (BENCHMARKS.md). It is used on `f32` where the CPU has
//! AVX2 and FMA, and decided per product (never per band), so a given product
//! is computed the same way whatever the number of threads.

use std::cell::Cell;

use ndarray::{s, Array2, ArrayView2};

use super::pool;
use crate::Scalar;

/// Products of fewer floating-point operations than this run on one thread
/// (a thread start costs about as much as a product of this size).
const SPLIT_FLOPS: usize = 1 << 22;

thread_local! {
    static THREADS: Cell<usize> = const { Cell::new(1) };
}

/// Threads for the large products made on this thread (1 by default; 0 means 1).
pub fn set_threads(n: usize) {
    THREADS.with(|t| t.set(n.max(1)));
}

/// `a · b` into a pooled array.
pub fn dot<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    let (m, n) = (a.nrows(), b.ncols());
    // with beta = 0 the product overwrites `out` without reading it
    let mut out = pool::scratch((m, n));
    if T::few_rows(a, b, &mut out) {
        return out;
    }
    let threads = THREADS.with(Cell::get).min(m / 16).max(1);
    if threads == 1 || 2 * m * n * a.ncols() < SPLIT_FLOPS {
        ndarray::linalg::general_mat_mul(T::one(), &a, &b, T::zero(), &mut out);
        return out;
    }
    let band = m.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut rest = out.view_mut();
        let mut lo = 0;
        while lo < m {
            let hi = (lo + band).min(m);
            let (mut part, tail) = rest.split_at(ndarray::Axis(0), hi - lo);
            rest = tail;
            let a_part = a.slice(s![lo..hi, ..]);
            let b = b.view();
            scope.spawn(move || ndarray::linalg::general_mat_mul(T::one(), &a_part, &b, T::zero(), &mut part));
            lo = hi;
        }
    });
    out
}

// ---------------------------------------------------------------- the few-row kernel

/// Products with at most this many rows go to the engine's own kernel: it
/// measured about even with `matrixmultiply` at 16 rows and behind it at 64
/// (`cargo run --release --example bench -- matmul`).
pub const FEW_ROWS: usize = 16;

/// `out = a · b` by [`few_rows_f32`] when `a` has at most [`FEW_ROWS`] rows,
/// `b` at least 16 columns (narrower heads pad most of each vector) and both
/// are row-major; `false` (nothing written) otherwise.
pub(crate) fn few_rows(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, out: &mut Array2<f32>) -> bool {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    match (a.to_slice(), b.to_slice(), out.as_slice_mut()) {
        (Some(a), Some(b), Some(o)) if m <= FEW_ROWS && n >= 16 && k > 0 => few_rows_f32(a, b, o, m, k, n),
        _ => false,
    }
}

/// Rows of the output computed together in one register tile.
const MR: usize = 6;

/// `out = a · b` (all row-major, `out` zero or not) by the engine's own kernel:
/// each output entry is one fused multiply-add chain over `k` in order, so the
/// result does not depend on how the rows are grouped. Returns `false` (and
/// leaves `out` alone) where the CPU lacks AVX2 and FMA.
fn few_rows_f32(a: &[f32], b: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the two features the function is compiled for.
        unsafe { few_rows_fma(a, b, out, m, k, n) };
        return true;
    }
    let _ = (a, b, out, m, k, n);
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn few_rows_fma(a: &[f32], b: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    // strips of 16 columns of `b` are read in place; the last n % 16 columns
    // are copied, zero-padded to 16, into `tail`
    let full = n / 16 * 16;
    // (the buffer is taken out of its thread-local, so that the code below is
    // compiled here, with this function's target features, not in a closure)
    let mut tail = TAIL.take();
    tail.clear();
    if full < n {
        tail.resize(k * 16, 0.0);
        for (p, row) in tail.chunks_exact_mut(16).enumerate() {
            row[..n - full].copy_from_slice(&b[p * n + full..p * n + n]);
        }
    }
    let cols = Columns { b, n, tail: &tail };
    // MR rows at a time (they stay in L1 while `b` streams past them)
    for (rows, i) in a.chunks(MR * k).zip((0..m).step_by(MR)) {
        let out = &mut out[i * n..];
        match m - i {
            1 => row_block::<1>(rows, k, &cols, out),
            2 => row_block::<2>(rows, k, &cols, out),
            3 => row_block::<3>(rows, k, &cols, out),
            4 => row_block::<4>(rows, k, &cols, out),
            5 => row_block::<5>(rows, k, &cols, out),
            _ => row_block::<MR>(rows, k, &cols, out),
        }
    }
    TAIL.set(tail);
}

thread_local! {
    /// The zero-padded last columns of `b` (reused).
    static TAIL: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `b`'s columns as the kernel reads them: strips of 16 in place, then `tail`
/// (the last `n % 16` columns, zero-padded to 16).
#[cfg(target_arch = "x86_64")]
struct Columns<'a> {
    b: &'a [f32],
    n: usize,
    tail: &'a [f32],
}

/// All output columns of `R` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_block<const R: usize>(rows: &[f32], k: usize, c: &Columns<'_>, out: &mut [f32]) {
    let (n, full) = (c.n, c.n / 16 * 16);
    for j in (0..full).step_by(16) {
        tile::<R>(rows, k, &c.b[j..], n, &mut out[j..], n, 16);
    }
    if full < n {
        tile::<R>(rows, k, c.tail, 16, &mut out[full..], n, n - full);
    }
}

/// `R x NR` outputs accumulated in registers from the `R` rows of `a` (length
/// `k` each) in `rows`; the first `w` columns are written to `out` (row stride `n`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn tile<const R: usize>(rows: &[f32], k: usize, b: &[f32], ldb: usize, out: &mut [f32], n: usize, w: usize) {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps};
    const NR: usize = 16;
    let rows: [&[f32]; R] = std::array::from_fn(|r| &rows[r * k..(r + 1) * k]);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for p in 0..k {
        let b_row: &[f32; NR] = b[p * ldb..p * ldb + NR].try_into().expect("NR columns");
        // SAFETY: `b_row` holds 16 entries, so 0..8 and 8..16 are in bounds.
        let bv = unsafe { [_mm256_loadu_ps(b_row.as_ptr()), _mm256_loadu_ps(b_row.as_ptr().add(8))] };
        for r in 0..R {
            let xr = _mm256_set1_ps(rows[r][p]);
            for (acc, bv) in acc[r].iter_mut().zip(&bv) {
                *acc = _mm256_fmadd_ps(xr, *bv, *acc);
            }
        }
    }
    let mut lanes = [0f32; NR];
    for (r, acc) in acc.iter().enumerate() {
        for (lanes, acc) in lanes.chunks_exact_mut(8).zip(acc) {
            // SAFETY: each chunk of `lanes` has 8 entries.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
        }
        out[r * n..r * n + w].copy_from_slice(&lanes[..w]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_products_are_bit_identical_to_one_thread() {
        let a = Array2::from_shape_fn((301, 257), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        let b = Array2::from_shape_fn((257, 130), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9);
        set_threads(1);
        let one = dot(a.view(), b.view());
        let one_t = dot(b.t(), a.t());
        assert_eq!(one, a.dot(&b));
        for threads in [2, 3, 7] {
            set_threads(threads);
            let many = dot(a.view(), b.view());
            let many_t = dot(b.t(), a.t());
            assert!(
                one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{threads} threads"
            );
            assert!(
                one_t.iter().zip(&many_t).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{threads} threads, transposed"
            );
        }
        set_threads(1);
    }

    /// Sum in f64 of the exact products, for comparison.
    fn reference(a: &Array2<f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
        a.mapv(f64::from).dot(&b.mapv(f64::from))
    }

    #[test]
    fn few_row_kernel_matches_a_reference_and_ignores_row_grouping() {
        // also a `b` whose data starts 4 bytes past an allocation
        let shifted = |k: usize, n: usize| {
            let v: Vec<f32> = (0..k * n + 1).map(|i| ((i * 7) % 17) as f32 * 0.11 - 0.9).collect();
            ndarray::Array1::from_vec(v)
                .slice_move(s![1..])
                .into_shape_with_order((k, n))
                .unwrap()
        };
        for (m, k, n) in [
            (1, 1, 16),
            (3, 7, 20),
            (6, 256, 256),
            (7, 33, 48),
            (16, 256, 256),
            (16, 5, 100),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
            for b in [
                Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9),
                shifted(k, n),
            ] {
                let mut out = Array2::from_elem((m, n), f32::NAN);
                if !few_rows(a.view(), b.view(), &mut out) {
                    eprintln!("no AVX2 and FMA here: the kernel is not used");
                    return;
                }
                let want = reference(&a, b.view());
                let scale = k as f64 * 2.0 * 0.9 * 2.0;
                for ((i, j), &x) in out.indexed_iter() {
                    assert!(
                        (x as f64 - want[[i, j]]).abs() <= 1e-6 * scale,
                        "{m}x{k}x{n} at ({i}, {j}): {x} vs {}",
                        want[[i, j]]
                    );
                }
                // every row alone gives the same bits as within the whole product
                for i in 0..m {
                    let mut row = Array2::zeros((1, n));
                    assert!(few_rows(a.slice(s![i..i + 1, ..]), b.view(), &mut row));
                    assert!(
                        row.iter().zip(out.row(i)).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{m}x{k}x{n} row {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn few_row_kernel_declines_what_it_does_not_cover() {
        let a = Array2::<f32>::ones((17, 8));
        let b = Array2::<f32>::ones((8, 32));
        let mut out = Array2::zeros((17, 32));
        assert!(!few_rows(a.view(), b.view(), &mut out), "more than FEW_ROWS rows");
        let a = Array2::<f32>::ones((4, 8));
        let mut out = Array2::zeros((4, 5));
        assert!(
            !few_rows(a.view(), Array2::<f32>::ones((8, 5)).view(), &mut out),
            "narrow head"
        );
        let mut out = Array2::zeros((4, 32));
        let bt = Array2::<f32>::ones((32, 8));
        assert!(!few_rows(a.view(), bt.t(), &mut out), "column-major b");
        assert!(out.iter().all(|&x| x == 0.0), "nothing written when declined");
        // and the product is still right through `dot`
        assert_eq!(dot(a.view(), bt.t()), a.dot(&bt.t()));
    }
}
