//! The engine's matrix product: output in a pooled buffer, large products split
//! over worker threads, `f32` products by a kernel of our own.
//!
//! In the kernel, every output entry is one fused multiply-add chain over `k`
//! in order, whatever the number of rows in the product, how they are grouped
//! or split over threads: a row of the output has the same bits whether it is
//! computed alone (the sampler's last step) or among many, and a trajectory
//! sampled with 1 or 3 workers is the same (tested). The kernel blocks `k` by
//! reloading its accumulators from the output, which continues the same
//! chain, so the blocking changes no bit either.
//!
//! `matrixmultiply` (ndarray's product) repacks both operands on every call,
//! which costs as much as the arithmetic when `a` has a handful of rows, and its
//! results differ from the kernel's where `k` exceeds its blocking. The kernel
//! reads `b` in place below 32 rows and packed from there on (a transposed `b`
//! is copied once per product), with 6x16 register tiles. It is used on `f32`
//! where the CPU has AVX2 and FMA and `b` has at least 16 columns, always by
//! [`dot_rows`] (inference), and by [`dot`] (the tape) below [`LARGE_ROWS`]
//! rows; narrower heads and `f64` (gradient checks) go to `matrixmultiply`,
//! whose rows do not depend on each other either.

use std::cell::Cell;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

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

/// A product kernel: `out = a · b` for a row-major `b` and `out` (any strides for `a`).
pub type Kernel<T> = fn(ArrayView2<'_, T>, ArrayView2<'_, T>, ArrayViewMut2<'_, T>);

/// `a · b` into a pooled array, by whichever measured faster for its shape
/// (the tape's batched products): the kernel for row-major operands below
/// [`LARGE_ROWS`] rows, `matrixmultiply` for more rows or a transposed operand
/// (a gradient's product).
pub fn dot<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    let kernel = a.nrows() < LARGE_ROWS && a.is_standard_layout() && b.is_standard_layout();
    product(a, b, kernel)
}

/// `a · b` into a pooled array, each row of the output computed by the same
/// operations whatever the other rows of `a`, as inference needs: the sampler
/// advances a batch's unfinished trajectories together, and a trajectory must
/// come out the same bits however many others share its steps (batch size,
/// thread count).
pub fn dot_rows<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    product(a, b, true)
}

/// Products of at least this many rows go to `matrixmultiply` in [`dot`]: at
/// 2048x256x256 the kernel measured 0.8x its speed, from 32 to 256 rows
/// 0.86-1.15x over several runs (BENCHMARKS.md).
pub const LARGE_ROWS: usize = 512;

/// `a · b` by the kernel (where `kernel` and the type, CPU and `b`'s width
/// allow) or `matrixmultiply` otherwise.
fn product<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, kernel: bool) -> Array2<T> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let mut out = pool::scratch((m, n));
    // the choice is made once per product, never per band of threads
    match T::kernel().filter(|_| kernel && n >= NR && k > 0) {
        Some(kernel) if !b.is_standard_layout() => {
            // the kernel reads `b` by rows: a transposed one is copied once
            let mut c = pool::scratch((k, n));
            c.assign(&b);
            split(a, c.view(), out.view_mut(), Some(kernel));
            pool::give(c);
        }
        kernel => split(a, b, out.view_mut(), kernel),
    }
    out
}

/// `out = a · b` by `kernel` (else `matrixmultiply`), in bands of rows over
/// the threads when the product is large enough to pay for them.
fn split<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, out: ArrayViewMut2<'_, T>, kernel: Option<Kernel<T>>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let band = |a: ArrayView2<'_, T>, mut out: ArrayViewMut2<'_, T>| match kernel {
        Some(f) => f(a, b, out),
        // with beta = 0 the product overwrites `out` without reading it
        None => ndarray::linalg::general_mat_mul(T::one(), &a, &b, T::zero(), &mut out),
    };
    let threads = THREADS.with(Cell::get).min(m / 16).max(1);
    if threads == 1 || 2 * m * n * k < SPLIT_FLOPS {
        return band(a, out);
    }
    let rows = m.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut rest = out;
        let mut lo = 0;
        while lo < m {
            let hi = (lo + rows).min(m);
            let (part, tail) = rest.split_at(ndarray::Axis(0), hi - lo);
            rest = tail;
            let a_part = a.slice(s![lo..hi, ..]);
            let band = &band;
            scope.spawn(move || band(a_part, part));
            lo = hi;
        }
    });
}

// ---------------------------------------------------------------- the kernel

/// Columns of a register tile (two AVX vectors).
const NR: usize = 16;
/// Rows of a register tile.
const MR: usize = 6;
/// Depth of a block of `k`: a 16-column strip of it (16 KiB) stays in L1.
const KC: usize = 256;
/// Rows that share one pass over a strip (their `KC` columns of `a` stay in L2).
const MC: usize = 12 * MR;

/// The `f32` kernel where the CPU has AVX2 and FMA.
pub(crate) fn f32_kernel() -> Option<Kernel<f32>> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        return Some(kernel_f32);
    }
    None
}

/// `out = a · b`, `b` and `out` row-major, `b` at least [`NR`] columns.
#[cfg(target_arch = "x86_64")]
fn kernel_f32(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert!(b.nrows() == k && out.dim() == (m, n) && n >= NR, "kernel: shapes");
    let (rs, cs) = (a.strides()[0], a.strides()[1]);
    assert!(rs >= 0 && cs >= 0, "kernel: negative strides of `a`");
    let b = b.to_slice().expect("kernel: row-major `b`");
    let out = out.as_slice_mut().expect("kernel: row-major output");
    if m == 0 {
        return;
    }
    let a = Strided {
        ptr: a.as_ptr(),
        rs: rs as usize,
        cs: cs as usize,
    };
    // SAFETY: `f32_kernel` hands this function out only where the CPU has
    // AVX2 and FMA; `a` addresses (i, p) for i < m, p < k within its view.
    unsafe { kernel_fma(a, b, out, m, k, n) }
}

/// An `m x k` matrix at `ptr` with entry `(i, p)` at `ptr + i * rs + p * cs`.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

/// # Safety
/// The CPU has AVX2 and FMA; `a` is a valid `m x k` matrix; `b` is `k x n`
/// and `out` `m x n`, row-major.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_fma(a: Strided, b: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    // `b` as the tiles read it: from `PACK_ROWS` rows on, each block of `k` is
    // first copied strip by strip (16 columns, the last zero-padded) into
    // `packed`, where a strip's rows are adjacent (in place, a strip's rows lie
    // `n` apart and fall into few cache sets); below, `b` is read in place and
    // only its last n % 16 columns are copied, zero-padded, into `packed`.
    // The layout changes no arithmetic. (The buffer is taken out of its
    // thread-local, so that this code is compiled with this function's target
    // features, not in a closure.)
    let full = n / NR * NR;
    let strips = n.div_ceil(NR);
    let in_place = m < PACK_ROWS;
    let mut packed = PACKED.take();
    if in_place && full < n {
        packed.clear();
        packed.resize(k * NR, 0.0);
        for (p, row) in packed.chunks_exact_mut(NR).enumerate() {
            row[..n - full].copy_from_slice(&b[p * n + full..p * n + n]);
        }
    }
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        if !in_place {
            packed.clear();
            packed.resize(strips * kc * NR, 0.0);
            for (s, strip) in packed.chunks_exact_mut(kc * NR).enumerate() {
                let (j, w) = (s * NR, NR.min(n - s * NR));
                for (p, row) in strip.chunks_exact_mut(NR).enumerate() {
                    row[..w].copy_from_slice(&b[(p0 + p) * n + j..(p0 + p) * n + j + w]);
                }
            }
        }
        for i0 in (0..m).step_by(MC) {
            let mc = MC.min(m - i0);
            for s in 0..strips {
                let j = s * NR;
                let (strip, ldb) = match (in_place, j < full) {
                    (false, _) => (&packed[s * kc * NR..], NR),
                    (true, true) => (&b[p0 * n + j..], n),
                    (true, false) => (&packed[p0 * NR..], NR),
                };
                let w = NR.min(n - j);
                for i in (i0..i0 + mc).step_by(MR) {
                    let t = Tile {
                        // SAFETY: i < m and p0 < k, so (i, p0) is an entry of `a`.
                        a: Strided {
                            ptr: unsafe { a.ptr.add(i * a.rs + p0 * a.cs) },
                            ..a
                        },
                        kc,
                        b: strip,
                        ldb,
                        first: p0 == 0,
                    };
                    let out = &mut out[i * n + j..];
                    // SAFETY (each call): rows i..i+R and columns p0..p0+kc of `a`
                    // exist, `strip` holds kc rows of 16 at stride `ldb`.
                    match (i0 + mc - i).min(MR) {
                        1 => unsafe { tile::<1>(&t, out, n, w) },
                        2 => unsafe { tile::<2>(&t, out, n, w) },
                        3 => unsafe { tile::<3>(&t, out, n, w) },
                        4 => unsafe { tile::<4>(&t, out, n, w) },
                        5 => unsafe { tile::<5>(&t, out, n, w) },
                        _ => unsafe { tile::<MR>(&t, out, n, w) },
                    }
                }
            }
        }
    }
    PACKED.set(packed);
}

/// Products of at least this many rows read `b` packed (see [`kernel_fma`]).
const PACK_ROWS: usize = 32;

thread_local! {
    /// `b` or its last columns as the tiles read them (reused).
    static PACKED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// One register tile's inputs: `kc` columns of `R` rows of `a` from `a.ptr`,
/// `kc` rows of 16 entries of `b` at stride `ldb`.
struct Tile<'a> {
    a: Strided,
    kc: usize,
    b: &'a [f32],
    ldb: usize,
    /// The first block of `k`: start from zero, else from the partial sums in `out`.
    first: bool,
}

/// `R x 16` outputs of `out` (row stride `n`, first `w` columns written):
/// loaded from `out` (or zero), then `kc` fused multiply-adds each, in order of `k`.
///
/// # Safety
/// AVX2 and FMA; `t.a` has `R` rows and `t.kc` columns; `out` holds `R` rows of `n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn tile<const R: usize>(t: &Tile<'_>, out: &mut [f32], n: usize, w: usize) {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps};
    assert!(t.b.len() >= (t.kc - 1) * t.ldb + NR && out.len() >= (R - 1) * n + w && w <= NR);
    let mut lanes = [0f32; NR];
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    if !t.first {
        for (r, acc) in acc.iter_mut().enumerate() {
            lanes[..w].copy_from_slice(&out[r * n..r * n + w]);
            // SAFETY: `lanes` has 16 entries.
            *acc = unsafe { [_mm256_loadu_ps(lanes.as_ptr()), _mm256_loadu_ps(lanes.as_ptr().add(8))] };
        }
    }
    let (b, a) = (t.b.as_ptr(), t.a);
    for p in 0..t.kc {
        // SAFETY: row p of the strip holds 16 entries (asserted above).
        let bv = unsafe { [_mm256_loadu_ps(b.add(p * t.ldb)), _mm256_loadu_ps(b.add(p * t.ldb + 8))] };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: (r, p) is an entry of `a` (the function's contract).
            let x = _mm256_set1_ps(unsafe { *a.ptr.add(r * a.rs + p * a.cs) });
            acc[0] = _mm256_fmadd_ps(x, bv[0], acc[0]);
            acc[1] = _mm256_fmadd_ps(x, bv[1], acc[1]);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: `lanes` has 16 entries.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
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
        close(&one, &reference(a.view(), b.view()), 257, "301x257x130");
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
    fn reference(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
        a.mapv(f64::from).dot(&b.mapv(f64::from))
    }

    fn close(out: &Array2<f32>, want: &Array2<f64>, k: usize, what: &str) {
        let scale = k as f64 * 2.0 * 0.9 * 2.0;
        for ((i, j), &x) in out.indexed_iter() {
            assert!(
                (x as f64 - want[[i, j]]).abs() <= 1e-6 * scale,
                "{what} at ({i}, {j}): {x} vs {}",
                want[[i, j]]
            );
        }
    }

    fn bits(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> bool {
        x.iter().zip(y.iter()).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn kernel_matches_a_reference_and_ignores_row_grouping() {
        let Some(kernel) = f32_kernel() else {
            eprintln!("no AVX2 and FMA here: the kernel is not used");
            return;
        };
        // also a `b` whose data starts 4 bytes past an allocation
        let shifted = |k: usize, n: usize| {
            let v: Vec<f32> = (0..k * n + 1).map(|i| ((i * 7) % 17) as f32 * 0.11 - 0.9).collect();
            ndarray::Array1::from_vec(v)
                .slice_move(s![1..])
                .into_shape_with_order((k, n))
                .unwrap()
        };
        // rows above and below a tile (6) and a row block (72), `k` above a
        // block (256), columns not a multiple of 16
        for (m, k, n) in [
            (1, 1, 16),
            (3, 7, 20),
            (7, 33, 48),
            (16, 256, 256),
            (16, 5, 100),
            (75, 600, 40),
            (150, 300, 17),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
            let a_t = a.t().to_owned(); // the same matrix read column-major: a_t.t()
            for b in [
                Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9),
                shifted(k, n),
            ] {
                let mut out = Array2::from_elem((m, n), f32::NAN);
                kernel(a.view(), b.view(), out.view_mut());
                close(&out, &reference(a.view(), b.view()), k, &format!("{m}x{k}x{n}"));
                let mut out_t = Array2::from_elem((m, n), f32::NAN);
                kernel(a_t.t(), b.view(), out_t.view_mut());
                assert!(bits(out.view(), out_t.view()), "{m}x{k}x{n}: column-major `a`");
                // every row alone, and any band of rows, gives the same bits as the whole product
                for (lo, hi) in (0..m).map(|i| (i, i + 1)).chain([(m / 3, m), (1.min(m - 1), m)]) {
                    let mut part = Array2::zeros((hi - lo, n));
                    kernel(a.slice(s![lo..hi, ..]), b.view(), part.view_mut());
                    assert!(
                        bits(part.view(), out.slice(s![lo..hi, ..])),
                        "{m}x{k}x{n} rows {lo}..{hi}"
                    );
                }
            }
        }
    }

    #[test]
    fn dot_covers_every_layout_and_width() {
        let a = Array2::from_shape_fn((40, 24), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        for n in [1, 5, 15, 16, 33] {
            let b = Array2::from_shape_fn((24, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9);
            let b_t = b.t().to_owned();
            let want = reference(a.view(), b.view());
            close(&dot(a.view(), b.view()), &want, 24, &format!("n = {n}"));
            // a transposed `b`, as in an input gradient `g · wᵀ`
            close(&dot(a.view(), b_t.t()), &want, 24, &format!("n = {n}, column-major b"));
            // which `dot_rows` copies for the kernel: the same bits
            assert!(
                bits(dot_rows(a.view(), b_t.t()).view(), dot_rows(a.view(), b.view()).view()),
                "n = {n}"
            );
            // `aᵀ · g` as in a weight gradient
            let a_t = a.t().to_owned();
            close(&dot(a_t.t(), b.view()), &want, 24, &format!("n = {n}, column-major a"));
            close(
                &dot_rows(a_t.t(), b.view()),
                &want,
                24,
                &format!("n = {n}, column-major a"),
            );
        }
        let empty = dot(
            Array2::<f32>::zeros((3, 0)).view(),
            Array2::<f32>::zeros((0, 20)).view(),
        );
        assert!(empty.dim() == (3, 20) && empty.iter().all(|&x| x == 0.0), "k = 0");
    }
}
