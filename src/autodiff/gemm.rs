//! The engine's matrix product: output in a pooled buffer, large products split
//! over worker threads, `f32` products by a kernel of our own.
//!
//! In the kernel, every output entry is computed by the same operations
//! whatever the number of rows in the product, how they are grouped or split
//! over threads: a row of the output has the same bits whether it is computed
//! alone (the sampler's last step) or among many, and a trajectory sampled
//! with 1 or 3 workers is the same (tested).
//!
//! `matrixmultiply` (ndarray's product) repacks both operands on every call,
//! which costs as much as the arithmetic when `a` has a handful of rows or `b`
//! a handful of columns, and its results differ from the kernel's where `k`
//! exceeds its blocking. The kernel has two forms:
//! - Register tiles, each output one fused multiply-add chain over `k` in
//!   order: 6 rows by 16 columns in AVX2, 8 rows by 32 in AVX-512 where the
//!   CPU has it (the last rows of a product in tiles over several 16-column
//!   strips, so that they too keep 8 or more chains in flight). It reads `b`
//!   in place up to 128 rows and packed from there on (a transposed `b` always
//!   packed), and blocks `k` by reloading its accumulators from the output,
//!   which continues the same chain, so neither the tile shape, the vector
//!   width nor the blocking changes a bit: AVX2 and AVX-512 give the same
//!   results (tested).
//! - For `b` of fewer than 16 columns (the output heads) and rows of `a`
//!   contiguous, dot products along `k` in 8 lanes (`narrow_fma`): a tile
//!   would leave most of its lanes idle. The transposed `b` these read is
//!   kept for the next product with the same entries (the sampler's heads,
//!   step after step).
//!
//! It serves every `f32` product where the CPU has AVX2 and FMA, inference
//! and the tape alike (`bench matmul` measures each shape the engine uses
//! against `matrixmultiply`). `f64` (gradient checks) goes to
//! `matrixmultiply`, whose rows do not depend on each other either.

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

/// A product kernel: `out = a · b` for a row-major `out` (any strides for `a` and `b`).
pub type Kernel<T> = fn(ArrayView2<'_, T>, ArrayView2<'_, T>, ArrayViewMut2<'_, T>);

/// `a · b` into a pooled array, each row of the output computed by the same
/// operations whatever the other rows of `a`: the sampler advances a batch's
/// unfinished trajectories together, and a trajectory must come out the same
/// bits however many others share its steps (batch size, thread count), and
/// the same as when the tape computes it among all the states of a batch.
pub fn dot<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    let mut out = pool::scratch((a.nrows(), b.ncols()));
    dot_into(a, b, out.view_mut());
    out
}

/// [`dot`] into `out` (`[a rows, b columns]`, row-major), whose values are overwritten.
pub fn dot_into<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, mut out: ArrayViewMut2<'_, T>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert!(
        a.ncols() == b.nrows() && out.dim() == (m, n) && out.is_standard_layout(),
        "dot: {:?} · {:?} into {:?}",
        a.dim(),
        b.dim(),
        out.dim()
    );
    // the choice is made once per product, never per band of threads
    let kernel = T::kernel().filter(|_| k > 0);
    let column_major = !a.is_standard_layout() && a.t().is_standard_layout();
    match kernel {
        Some(kernel) if column_major && n < NR && m >= NR => {
            // a narrow product with column-major `a` (an output head's weight
            // gradient `xᵀ · g`): as `(gᵀ · x)ᵀ`, whose wide rows suit the tiles
            let mut c = pool::scratch((n, m));
            split(b.t(), a.t(), c.view_mut(), Some(kernel));
            out.assign(&c.t());
            pool::give(c);
        }
        kernel => split(a, b, out, kernel),
    }
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
    let mut bands = Vec::with_capacity(threads);
    let mut rest = out;
    for lo in (0..m).step_by(rows) {
        let (part, tail) = rest.split_at(ndarray::Axis(0), rows.min(m - lo));
        rest = tail;
        bands.push((a.slice(s![lo..lo + part.nrows(), ..]), part));
    }
    crate::workers::map(bands, |(a, out)| band(a, out));
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
/// Columns of `b` packed at a time (a block of `KC` rows of them, 256 KiB, stays in L2).
const NC: usize = 16 * NR;

/// The `f32` kernel where the CPU has AVX2 and FMA: its tiles in AVX-512
/// where the CPU also has AVX-512F (the same bits, see [`Isa`]).
pub(crate) fn f32_kernel() -> Option<Kernel<f32>> {
    isas().last().map(|&isa| kernel_of(isa))
}

/// Every form of the `f32` kernel this CPU runs (AVX2, then AVX-512), for the tests.
#[cfg(test)]
fn f32_kernels() -> Vec<Kernel<f32>> {
    isas().iter().map(|&isa| kernel_of(isa)).collect()
}

/// The instruction sets of the kernel this CPU runs, AVX-512 last (none
/// without AVX2 and FMA).
fn isas() -> &'static [Isa] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        return match std::is_x86_feature_detected!("avx512f") {
            true => &[Isa::Avx2, Isa::Avx512],
            false => &[Isa::Avx2],
        };
    }
    &[]
}

/// The kernel with tiles of `isa` (one of [`isas`]).
fn kernel_of(isa: Isa) -> Kernel<f32> {
    #[cfg(target_arch = "x86_64")]
    return match isa {
        Isa::Avx2 => |a, b, out| kernel_f32(a, b, out, Isa::Avx2),
        Isa::Avx512 => |a, b, out| kernel_f32(a, b, out, Isa::Avx512),
    };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no {isa:?} kernel off x86-64 (`isas` is empty)")
}

/// The vector instructions of a kernel's tiles. Both compute every output as
/// one fused multiply-add chain over `k` in order, so they give the same bits;
/// AVX-512 does twice the work per instruction (on a Zen 5 EPYC, whose 512-bit
/// multiply-adds run at full width, twice the rate: BENCHMARKS.md, eighth session).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Isa {
    /// AVX2 and FMA: tiles of 6 rows by one 16-column strip.
    Avx2,
    /// AVX-512F: tiles of 8 rows by two strips.
    Avx512,
}

/// `out = a · b`, `b` and `out` row-major: by tiles ([`tiles`]), or for
/// `b` narrower than a tile and rows of `a` contiguous (an output head's
/// forward product) by dot products along `k` ([`narrow_fma`]).
#[cfg(target_arch = "x86_64")]
fn kernel_f32(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>, isa: Isa) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert!(b.nrows() == k && out.dim() == (m, n), "kernel: shapes");
    let strided = |x: ArrayView2<'_, f32>, what: &str| {
        let (rs, cs) = (x.strides()[0], x.strides()[1]);
        assert!(rs >= 0 && cs >= 0, "kernel: negative strides of `{what}`");
        Strided {
            ptr: x.as_ptr(),
            rs: rs as usize,
            cs: cs as usize,
        }
    };
    let (a, b) = (strided(a, "a"), strided(b, "b"));
    let out = out.as_slice_mut().expect("kernel: row-major output");
    if m == 0 {
        return;
    }
    // SAFETY: `kernel_of` is called only with the `isas()` this CPU has
    // (AVX2 and FMA, and for `Isa::Avx512` AVX-512F); `a`
    // addresses (i, p) for i < m, p < k, and `b` (p, j) for p < k, j < n,
    // within their views.
    match n < NR && (a.cs == 1 || k == 1) {
        true => unsafe { narrow_fma(a, b, out, m, k, n) },
        false => unsafe { tiles(a, b, out, m, k, n, isa) },
    }
}

/// An `m x k` matrix at `ptr` with entry `(i, p)` at `ptr + i * rs + p * cs`.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

impl Strided {
    /// Entry `(i, p)`.
    ///
    /// # Safety
    /// `(i, p)` is an entry of the matrix.
    unsafe fn at(&self, i: usize, p: usize) -> f32 {
        unsafe { *self.ptr.add(i * self.rs + p * self.cs) }
    }
}

/// `out = a · b` by register tiles of `isa`.
///
/// # Safety
/// The CPU has AVX2 and FMA, and AVX-512F if `isa` says so; `a` is a valid
/// `m x k` matrix, `b` a valid `k x n` one; `out` is `m x n`, row-major.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles(a: Strided, b: Strided, out: &mut [f32], m: usize, k: usize, n: usize, isa: Isa) {
    // `b` as the tiles read it: in a product of at most `IN_PLACE_ROWS` rows
    // a row-major `b` is read in place (for AVX2, its last n % 16 columns
    // copied, zero-padded, into `packed`; AVX-512 masks them); otherwise each block of `KC` rows and `NC`
    // columns is first copied strip by strip (16 columns, the last
    // zero-padded) into `packed`, where a strip's rows are adjacent (in place
    // they lie a row of `b` apart and fall into few cache sets). `a` is read
    // in place. The layout changes no arithmetic.
    // (The buffer is taken out of its thread-local, so that this code is
    // compiled with this function's target features, not in a closure.)
    let full = n / NR * NR;
    let strips = n.div_ceil(NR);
    let in_place = m <= IN_PLACE_ROWS && b.cs == 1;
    let mut packed = PACKED.take();
    // AVX-512 tiles read a partial last strip in place too, by masked loads
    let masked = isa == Isa::Avx512;
    if in_place && full < n && !masked {
        packed.clear();
        packed.resize(k * NR, 0.0);
        for (p, row) in packed.chunks_exact_mut(NR).enumerate() {
            for (c, v) in row[..n - full].iter_mut().enumerate() {
                // SAFETY: (p, full + c) is an entry of `b`.
                *v = unsafe { b.at(p, full + c) };
            }
        }
    }
    for (p0, s0) in (0..k)
        .step_by(KC)
        .flat_map(|p0| (0..strips).step_by(NC / NR).map(move |s0| (p0, s0)))
    {
        let kc = KC.min(k - p0);
        let group = s0..strips.min(s0 + NC / NR);
        if !in_place {
            // every entry is written below (the last strip's padding too),
            // so the buffer is only grown, never cleared
            let len = group.len() * kc * NR;
            if packed.len() < len {
                packed.resize(len, 0.0);
            }
            for (s, strip) in group.clone().zip(packed[..len].chunks_exact_mut(kc * NR)) {
                let (j, w) = (s * NR, NR.min(n - s * NR));
                match (b.cs, w) {
                    // row by row from a row-major `b`, 16 entries at a time
                    (1, NR) => {
                        for (p, row) in strip.chunks_exact_mut(NR).enumerate() {
                            // SAFETY: row p0 + p of `b` has entries j..j+16, contiguous.
                            let src = unsafe { &*(b.ptr.add((p0 + p) * b.rs + j) as *const [f32; NR]) };
                            let row: &mut [f32; NR] = row.try_into().expect("a row of 16");
                            *row = *src;
                        }
                    }
                    // 8x8 blocks transposed in registers from a transposed one
                    // (columns contiguous), whole blocks of 8 rows
                    (_, NR) if b.rs == 1 => {
                        // SAFETY: columns j..j+16 of `b`, rows p0..p0+kc, exist, each contiguous.
                        let done = unsafe { transposed_strip(b, p0, j, strip) };
                        for (p, row) in strip.chunks_exact_mut(NR).enumerate().skip(done) {
                            for (c, v) in row.iter_mut().enumerate() {
                                // SAFETY: (p0 + p, j + c) is an entry of `b`.
                                *v = unsafe { b.at(p0 + p, j + c) };
                            }
                        }
                    }
                    // entry by entry otherwise, and the last strip
                    _ => {
                        for (p, row) in strip.chunks_exact_mut(NR).enumerate() {
                            for (c, v) in row.iter_mut().enumerate() {
                                // SAFETY: (p0 + p, j + c) is an entry of `b` for c < w.
                                *v = if c < w { unsafe { b.at(p0 + p, j + c) } } else { 0.0 };
                            }
                        }
                    }
                }
            }
        }
        // strip s as the tiles read it: from its first row on, the row stride,
        // and the distance to the next strip
        let strip_at = |s: usize| -> (&[f32], usize, usize) {
            let j = s * NR;
            match (in_place, j < full || masked) {
                (false, _) => (&packed[(s - s0) * kc * NR..], NR, kc * NR),
                // SAFETY: a row-major `b` (`in_place`): rows p0..p0+kc have
                // columns j..n, `b.rs` apart.
                (true, true) => (
                    unsafe { std::slice::from_raw_parts(b.ptr.add(p0 * b.rs + j), (kc - 1) * b.rs + n - j) },
                    b.rs,
                    NR,
                ),
                (true, false) => (&packed[p0 * NR..], NR, NR),
            }
        };
        let tile_at = |i: usize, s: usize| {
            let (b, ldb, sstride) = strip_at(s);
            Tile {
                // SAFETY: i < m and p0 < k, so (i, p0) is an entry of `a`.
                a: Strided {
                    ptr: unsafe { a.ptr.add(i * a.rs + p0 * a.cs) },
                    ..a
                },
                kc,
                b,
                ldb,
                sstride,
                first: p0 == 0,
            }
        };
        for i0 in (0..m).step_by(MC) {
            let rows = i0..m.min(i0 + MC);
            // SAFETY: rows `rows` and columns p0..p0+kc of `a` exist, each
            // strip of `group` holds kc rows of 16 (see `strip_at`).
            match isa {
                Isa::Avx2 => unsafe { walk_avx2(&tile_at, out, rows, group.clone(), n, full) },
                Isa::Avx512 => unsafe { walk_avx512(&tile_at, out, rows, group.clone(), n) },
            }
        }
    }
    PACKED.set(packed);
}

/// Copies rows `p0..p0 + strip.len() / 16` of columns `j..j + 16` of a `b`
/// whose columns are contiguous (`b.rs == 1`: the `Wᵀ` of an input gradient)
/// into `strip`, 16 entries a row, by 8x8 blocks transposed in registers: 16
/// loads and stores a block of 8 rows where entry by entry takes 128 of each.
/// Returns the rows copied, a multiple of 8; the caller copies the rest.
///
/// # Safety
/// The CPU has AVX2; `b` has those rows and columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transposed_strip(b: Strided, p0: usize, j: usize, strip: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let rows = strip.len() / NR / 8 * 8;
    for p in (0..rows).step_by(8) {
        for half in 0..2 {
            // SAFETY: column j + 8 half + c of `b` holds rows p0 + p..p0 + p + 8, contiguous.
            let col = |c: usize| unsafe { _mm256_loadu_ps(b.ptr.add((j + 8 * half + c) * b.cs + p0 + p)) };
            let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
            let (c4, c5, c6, c7) = (col(4), col(5), col(6), col(7));
            let (t0, t1) = (_mm256_unpacklo_ps(c0, c1), _mm256_unpackhi_ps(c0, c1));
            let (t2, t3) = (_mm256_unpacklo_ps(c2, c3), _mm256_unpackhi_ps(c2, c3));
            let (t4, t5) = (_mm256_unpacklo_ps(c4, c5), _mm256_unpackhi_ps(c4, c5));
            let (t6, t7) = (_mm256_unpacklo_ps(c6, c7), _mm256_unpackhi_ps(c6, c7));
            let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
            let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
            let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
            let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
            // row q of the block: entry q of each of the 8 columns
            let block = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (q, row) in block.into_iter().enumerate() {
                let at = &mut strip[(p + q) * NR + 8 * half..][..8];
                // SAFETY: `at` holds 8 entries.
                unsafe { _mm256_storeu_ps(at.as_mut_ptr(), row) };
            }
        }
    }
    rows
}

/// The tiles of one block of rows (`rows`, at most [`MC`]) over one group of
/// strips, in AVX2: strip by strip (a strip stays in L1 for all the rows),
/// full tiles of 6 rows, then the last 1-5 rows; 1-3 of them over `per` full
/// strips at a time, once the last of those is done. `tile_at(i, s)` is the
/// tile at row `i` and strip `s` (`full`: the columns in full strips).
///
/// # Safety
/// As [`tiles`]: each `tile_at(i, s)` for `i` in `rows`, `s` in `group` is valid.
#[cfg(target_arch = "x86_64")]
unsafe fn walk_avx2<'a>(
    tile_at: &impl Fn(usize, usize) -> Tile<'a>,
    out: &mut [f32],
    rows: std::ops::Range<usize>,
    group: std::ops::Range<usize>,
    n: usize,
    full: usize,
) {
    let (i0, mc) = (rows.start, rows.len());
    let six = mc / MR * MR;
    let (rest, i) = (mc - six, i0 + six);
    let per = match rest {
        1 => 4,
        2 | 3 => 2,
        _ => 1,
    };
    for s in group.clone() {
        let (j, w) = (s * NR, NR.min(n - s * NR));
        for i in (i0..i0 + six).step_by(MR) {
            // SAFETY: rows i..i+6 and columns p0..p0+kc of `a` exist,
            // the strip holds kc rows of 16 at stride `ldb`.
            unsafe { tile::<MR, 1>(&tile_at(i, s), &mut out[i * n + j..], n, w) };
        }
        if rest == 0 {
            continue;
        }
        let g = group.start + (s - group.start) / per * per;
        let wide = per > 1 && g + per <= group.end && (g + per) * NR <= full;
        if wide && s + 1 < g + per {
            continue; // the tile over strips g..g+per comes at its last strip
        }
        let s = if wide { g } else { s };
        let (j, w, t) = (s * NR, NR.min(n - s * NR), tile_at(i, s));
        let out = &mut out[i * n + j..];
        // SAFETY (each call): rows i..i+rest and columns p0..p0+kc of `a`
        // exist; with `wide`, `per` full strips follow from strip s.
        match (rest, wide) {
            (1, true) => unsafe { tile::<1, 4>(&t, out, n, w) },
            (1, false) => unsafe { tile::<1, 1>(&t, out, n, w) },
            (2, true) => unsafe { tile::<2, 2>(&t, out, n, w) },
            (2, false) => unsafe { tile::<2, 1>(&t, out, n, w) },
            (3, true) => unsafe { tile::<3, 2>(&t, out, n, w) },
            (3, false) => unsafe { tile::<3, 1>(&t, out, n, w) },
            (4, _) => unsafe { tile::<4, 1>(&t, out, n, w) },
            _ => unsafe { tile::<5, 1>(&t, out, n, w) },
        }
    }
}

/// [`walk_avx2`] in AVX-512: tiles of 8 rows by two strips (one strip where
/// a pair does not fit), then the last 1-7 rows over several strips at a
/// time, so that every tile keeps at least 8 accumulators (but the last
/// strips'). The strips of a tile lie one after the other, in place or
/// packed, the last one partial or not.
///
/// # Safety
/// As [`walk_avx2`], and the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
unsafe fn walk_avx512<'a>(
    tile_at: &impl Fn(usize, usize) -> Tile<'a>,
    out: &mut [f32],
    rows: std::ops::Range<usize>,
    group: std::ops::Range<usize>,
    n: usize,
) {
    // strips s..s+per if they are in the group, else s alone
    let span = |s: usize, per: usize| match s + per <= group.end {
        true => per,
        false => 1,
    };
    let eight = rows.len() / 8 * 8;
    let mut s = group.start;
    while s < group.end {
        let per = span(s, 2);
        // the columns from strip s on, and of the tile's last strip
        let (j, w) = (s * NR, NR.min(n - (s + per - 1) * NR));
        for i in (rows.start..rows.start + eight).step_by(8) {
            let (t, out) = (tile_at(i, s), &mut out[i * n + j..]);
            // SAFETY (each call): rows i..i+8 and the tile's columns of `a`
            // exist; `per` strips from s, one after the other.
            match per {
                2 => unsafe { tile512::<8, 2>(&t, out, n, w) },
                _ => unsafe { tile512::<8, 1>(&t, out, n, w) },
            }
        }
        s += per;
    }
    let (i, rest) = (rows.start + eight, rows.len() - eight);
    if rest == 0 {
        return;
    }
    let mut s = group.start;
    while s < group.end {
        // as many strips as keep the accumulators within the registers (4
        // and 5 rows by 4 strips: a long `k` read in fewer passes), else 2, else 1
        let per = match span(s, [8, 4, 4, 4, 4, 2, 2][rest - 1]) {
            1 => span(s, 2),
            per => per,
        };
        let (j, w, t) = (s * NR, NR.min(n - (s + per - 1) * NR), tile_at(i, s));
        let out = &mut out[i * n + j..];
        macro_rules! rest {
            ($($r:literal: $per:literal),*) => {
                // SAFETY (each call): rows i..i+rest and the tile's columns of
                // `a` exist; `per` strips from s, one after the other.
                match (rest, per) {
                    $(($r, $per) => unsafe { tile512::<$r, $per>(&t, out, n, w) },)*
                    $(($r, 2) => unsafe { tile512::<$r, 2>(&t, out, n, w) },)*
                    $(($r, _) => unsafe { tile512::<$r, 1>(&t, out, n, w) },)*
                    _ => unreachable!("1-7 rows"),
                }
            };
        }
        #[allow(unreachable_patterns)] // (6, 2) and (7, 2) are listed twice
        {
            rest!(1: 8, 2: 4, 3: 4, 4: 4, 5: 4, 6: 2, 7: 2)
        }
        s += per;
    }
}

/// Columns of `b` per pass of [`narrow_fma`] over a pair of rows.
const NW: usize = 6;

/// `out = a · b` for `b` of fewer than 16 columns (a tile would leave most
/// of its lanes idle) and rows of `a` contiguous.
///
/// Each output is a dot product of a row of `a` with a column of `b`
/// (a row of `bt`, `b` transposed and zero-padded to a multiple of 8 entries,
/// made once for the same entries of `b`: see [`transposed`]): 8 lanes
/// of partial sums, lane `l` a fused multiply-add chain over `p ≡ l (mod 8)`
/// in order of `k`, then the lanes added in the fixed order
/// `((0+4)+(2+6)) + ((1+5)+(3+7))`. Rows go in pairs that share the loads of
/// `bt`; a row's operations, and so its bits, do not depend on its pair.
///
/// # Safety
/// AVX2 and FMA; `a` is a valid `m x k` matrix with `a.cs == 1` (or `k == 1`);
/// `b` is `k x n` and `out` `m x n`, row-major, `n < 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow_fma(a: Strided, b: Strided, out: &mut [f32], m: usize, k: usize, n: usize) {
    let kp = k.div_ceil(8) * 8;
    TRANSPOSED.with_borrow_mut(|cache| {
        // SAFETY: `b` is a valid `k x n` matrix (the function's contract).
        let bt = unsafe { transposed(cache, b, k, n) };
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(2);
            // SAFETY (each call): rows i..i+rows of `a` exist with contiguous
            // entries, `bt` holds n rows of kp, `out` rows i..i+rows.
            let (a_i, out_i) = (unsafe { a.ptr.add(i * a.rs) }, &mut out[i * n..(i + rows) * n]);
            let mut j = 0;
            while j < n {
                let w = NW.min(n - j);
                let bt_j = &bt[j * kp..];
                macro_rules! go {
                    ($($w:literal)*) => {
                        match (rows, w) {
                            $((1, $w) => unsafe { narrow_tile::<1, $w>(a_i, a.rs, k, bt_j, kp, &mut out_i[j..], n) },
                              (_, $w) => unsafe { narrow_tile::<2, $w>(a_i, a.rs, k, bt_j, kp, &mut out_i[j..], n) },)*
                            _ => unreachable!("at most {NW} columns per pass"),
                        }
                    };
                }
                go!(1 2 3 4 5 6);
                j += w;
            }
            i += rows;
        }
    })
}

/// The `b`s of the last few narrow products, transposed for [`narrow_fma`].
/// The sampler multiplies by the same output heads at every step of a batch,
/// so a head is transposed once per batch, not once per step (which cost
/// about as much as the product on a batch of 16).
#[derive(Default)]
struct Transposed {
    /// The entries of each `b` (`k x n`, row by row, as bits) and its transpose.
    entries: Vec<(usize, Vec<u32>, Vec<f32>)>,
}

/// How many transposed `b`s [`Transposed`] keeps (the heads of a policy).
const TRANSPOSED_KEPT: usize = 4;
/// Entries (of `b` and of its transpose together) beyond which [`Transposed`]
/// keeps only the last `b`: a head's are a few thousand, and a product with a
/// long `k` must not leave several copies of its operand behind.
const TRANSPOSED_ROOM: usize = 1 << 18;

thread_local! {
    static TRANSPOSED: std::cell::RefCell<Transposed> = std::cell::RefCell::new(Transposed::default());
}

/// `b` (`k x n`) transposed, each column a row of `k` rounded up to 8,
/// zero-padded: kept from an earlier call if `b`'s entries are bit for bit
/// those it was made from, else made now (and kept, in place of the least
/// recently used). Matching on the entries themselves, not on where `b`
/// lies, keeps it right when weights are updated in place.
///
/// # Safety
/// `b` is a valid `k x n` matrix.
unsafe fn transposed(cache: &mut Transposed, b: Strided, k: usize, n: usize) -> &[f32] {
    // SAFETY (each): (p, j) is an entry of `b`.
    let entry = |p: usize, j: usize| unsafe { b.at(p, j) };
    let same = |(kk, src, _): &(usize, Vec<u32>, Vec<f32>)| {
        *kk == k
            && src.len() == k * n
            && match (b.cs, b.rs) {
                // SAFETY: a contiguous row-major `b` has its k * n entries from `b.ptr` on.
                (1, rs) if rs == n => src[..] == *unsafe { std::slice::from_raw_parts(b.ptr as *const u32, k * n) },
                _ => src
                    .chunks_exact(n.max(1))
                    .enumerate()
                    .all(|(p, row)| row.iter().enumerate().all(|(j, &x)| x == entry(p, j).to_bits())),
            }
    };
    let found = cache.entries.iter().position(same);
    let e = match found {
        Some(e) => e,
        None => {
            let kp = k.div_ceil(8) * 8;
            let (mut src, mut bt) = match cache.entries.len() >= TRANSPOSED_KEPT {
                true => {
                    let (_, src, bt) = cache.entries.pop().expect("a kept entry");
                    (src, bt)
                }
                false => (Vec::new(), Vec::new()),
            };
            src.clear();
            bt.clear();
            bt.resize(n * kp, 0.0);
            for p in 0..k {
                for j in 0..n {
                    let v = entry(p, j);
                    src.push(v.to_bits());
                    bt[j * kp + p] = v;
                }
            }
            cache.entries.push((k, src, bt));
            cache.entries.len() - 1
        }
    };
    // the most recently used first
    cache.entries[..=e].rotate_right(1);
    let size = |(_, src, bt): &(usize, Vec<u32>, Vec<f32>)| src.len() + bt.len();
    while cache.entries.len() > 1 && cache.entries.iter().map(size).sum::<usize>() > TRANSPOSED_ROOM {
        cache.entries.pop();
    }
    &cache.entries[0].2
}

/// `R` rows x `C` columns of [`narrow_fma`]: rows of `a` from `a` at stride
/// `rs` (`k` entries each), columns as rows of `bt` at stride `kp`, outputs
/// written to `out` at row stride `n`.
///
/// # Safety
/// AVX2 and FMA; `a` holds `R` rows of `k` contiguous entries at stride `rs`;
/// `bt` holds `C` rows of `kp = k` rounded up to 8; `out` holds `R` rows of `n`
/// (the last one `C`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn narrow_tile<const R: usize, const C: usize>(
    a: *const f32,
    rs: usize,
    k: usize,
    bt: &[f32],
    kp: usize,
    out: &mut [f32],
    n: usize,
) {
    use std::arch::x86_64::*;
    assert!(bt.len() >= (C - 1) * kp + k.div_ceil(8) * 8 && out.len() >= (R - 1) * n + C);
    let full = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let step = |acc: &mut [[__m256; C]; R], av: [__m256; R], p: usize| {
        for c in 0..C {
            // SAFETY: row c of `bt` has entries p..p+8 (p < kp, asserted above).
            let bv = unsafe { _mm256_loadu_ps(bt.as_ptr().add(c * kp + p)) };
            for (acc, &av) in acc.iter_mut().zip(&av) {
                acc[c] = _mm256_fmadd_ps(av, bv, acc[c]);
            }
        }
    };
    for p in (0..full).step_by(8) {
        // SAFETY: entries p..p+8 of each row exist (p + 8 <= k).
        let av: [__m256; R] = std::array::from_fn(|r| unsafe { _mm256_loadu_ps(a.add(r * rs + p)) });
        step(&mut acc, av, p);
    }
    if full < k {
        // the rows' last k % 8 entries, zero-padded (as `bt` is)
        let av: [__m256; R] = std::array::from_fn(|r| {
            let mut tail = [0f32; 8];
            // SAFETY: entries full..k of row r exist.
            tail[..k - full].copy_from_slice(unsafe { std::slice::from_raw_parts(a.add(r * rs + full), k - full) });
            unsafe { _mm256_loadu_ps(tail.as_ptr()) }
        });
        step(&mut acc, av, full);
    }
    for r in 0..R {
        for c in 0..C {
            let v = acc[r][c];
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)); // 0+4 1+5 2+6 3+7
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s)); // (0+4)+(2+6), (1+5)+(3+7)
            let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
            out[r * n + c] = _mm_cvtss_f32(s);
        }
    }
}

/// Products of at most this many rows read a row-major `b` in place (see
/// [`tiles`]): packing costs a copy of `b` per product, reading in place
/// strided loads per tile. The sampler's products (a row per unfinished
/// trajectory) go in place, the training pass's (a row per state) packed.
/// Measured by in-process A/B, per training step against 32 rows: AVX-512
/// HyperGrid b=128 -3.4 %, peptide b=64 -2.4 to -2.8 %, b=512 -2.9 to -3.7 %,
/// HyperGrid b=16 level; AVX2 -1.7 / -2.1 / +0.7 %; 256 rows was slower.
const IN_PLACE_ROWS: usize = 128;

thread_local! {
    /// `b` or its last columns as the tiles read them (reused).
    static PACKED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// One register tile's inputs: `kc` columns of `R` rows of `a` from `a.ptr`,
/// `kc` rows of 16 entries of `b` at stride `ldb` (fewer in a partial last
/// strip that an AVX-512 tile reads in place, masked).
struct Tile<'a> {
    a: Strided,
    kc: usize,
    b: &'a [f32],
    ldb: usize,
    /// From one strip of `b` to the next.
    sstride: usize,
    /// The first block of `k`: start from zero, else from the partial sums in `out`.
    first: bool,
}

/// `R x 16S` outputs of `out` (row stride `n`; of the last strip, the first
/// `w` columns written): loaded from `out` (or zero), then `kc` fused
/// multiply-adds each, in order of `k`. A tile of few rows spans several
/// strips (`S`), so that it still has at least 8 independent accumulators:
/// with fewer, each multiply-add waits for the previous one's result.
///
/// # Safety
/// AVX2 and FMA; `t.a` has `R` rows and `t.kc` columns; strip `s` of the tile
/// starts `s * t.sstride` into `t.b`; `out` holds `R` rows of `n`; `w < 16`
/// only if `S == 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn tile<const R: usize, const S: usize>(t: &Tile<'_>, out: &mut [f32], n: usize, w: usize) {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps};
    let span = (S - 1) * NR + w;
    assert!(
        t.b.len() >= (S - 1) * t.sstride + (t.kc - 1) * t.ldb + NR
            && out.len() >= (R - 1) * n + span
            && w <= NR
            && (S == 1 || w == NR)
    );
    // a partial strip (w < 16) goes through `lanes`; a full one is read and
    // written in place
    let mut lanes = [0f32; NR];
    let mut acc = [[[_mm256_setzero_ps(); 2]; S]; R];
    if !t.first {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (s, acc) in acc.iter_mut().enumerate() {
                let at = r * n + s * NR;
                let src = match w {
                    NR => out[at..].as_ptr(),
                    _ => {
                        lanes[..w].copy_from_slice(&out[at..at + w]);
                        lanes.as_ptr()
                    }
                };
                // SAFETY: `src` has 16 entries (`out` holds 16 of row r from `at`, or `lanes`).
                *acc = unsafe { [_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8))] };
            }
        }
    }
    let (b, a) = (t.b.as_ptr(), t.a);
    for p in 0..t.kc {
        // SAFETY: row p of each strip holds 16 entries (asserted above).
        let bv: [[_; 2]; S] = std::array::from_fn(|s| unsafe {
            let row = b.add(s * t.sstride + p * t.ldb);
            [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))]
        });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: (r, p) is an entry of `a` (the function's contract).
            let x = _mm256_set1_ps(unsafe { *a.ptr.add(r * a.rs + p * a.cs) });
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                acc[0] = _mm256_fmadd_ps(x, bv[0], acc[0]);
                acc[1] = _mm256_fmadd_ps(x, bv[1], acc[1]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (s, acc) in acc.iter().enumerate() {
            let at = r * n + s * NR;
            let dst = match w {
                NR => out[at..].as_mut_ptr(),
                _ => lanes.as_mut_ptr(),
            };
            // SAFETY: `dst` has 16 entries, as above.
            unsafe {
                _mm256_storeu_ps(dst, acc[0]);
                _mm256_storeu_ps(dst.add(8), acc[1]);
            }
            if w < NR {
                out[at..at + w].copy_from_slice(&lanes[..w]);
            }
        }
    }
}

/// [`tile`] in AVX-512: `R x 16S` outputs, one vector of 16 per row and
/// strip; of the last strip only the first `w` lanes of `b` and of the
/// output are read and written (masked), so a partial strip is read in place.
///
/// # Safety
/// AVX-512F; `t.a` has `R` rows and `t.kc` columns; strip `s` of the tile
/// starts `s * t.sstride` into `t.b` (`t.sstride >= 16`) with 16 entries
/// per row (the last strip `w`); `out` holds `R` rows of `n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn tile512<const R: usize, const S: usize>(t: &Tile<'_>, out: &mut [f32], n: usize, w: usize) {
    use std::arch::x86_64::{
        _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };
    assert!(
        t.b.len() >= (S - 1) * t.sstride + (t.kc - 1) * t.ldb + w
            && t.sstride >= NR
            && out.len() >= (R - 1) * n + (S - 1) * NR + w
            && (1..=NR).contains(&w)
    );
    // the lanes of strip s that belong to the output
    let mask = |s: usize| {
        if s + 1 < S {
            u16::MAX
        } else {
            ((1u32 << w) - 1) as u16
        }
    };
    let mut acc = [[_mm512_setzero_ps(); S]; R];
    if !t.first {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (s, acc) in acc.iter_mut().enumerate() {
                // SAFETY: the lanes in `mask(s)` are entries of `out` (asserted
                // above); the others are not read.
                *acc = unsafe { _mm512_maskz_loadu_ps(mask(s), out.as_ptr().add(r * n + s * NR)) };
            }
        }
    }
    let (b, a) = (t.b.as_ptr(), t.a);
    for p in 0..t.kc {
        // SAFETY: row p of each strip holds the lanes of `mask(s)` (asserted above).
        let bv: [_; S] =
            std::array::from_fn(|s| unsafe { _mm512_maskz_loadu_ps(mask(s), b.add(s * t.sstride + p * t.ldb)) });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: (r, p) is an entry of `a` (the function's contract).
            let x = _mm512_set1_ps(unsafe { *a.ptr.add(r * a.rs + p * a.cs) });
            for (acc, &bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm512_fmadd_ps(x, bv, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (s, &acc) in acc.iter().enumerate() {
            // SAFETY: as the loads above.
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * n + s * NR), mask(s), acc) };
        }
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
    fn a_narrow_product_after_b_changed_in_place_uses_the_new_entries() {
        // the transposed `b` is kept by its entries, not by where it lies:
        // a head updated in place must not be read as it was
        let a = Array2::from_shape_fn((5, 40), |(i, p)| ((i * 7 + p * 3) % 11) as f32 * 0.1 - 0.5);
        let mut b = Array2::from_shape_fn((40, 5), |(p, j)| ((p * 5 + j) % 13) as f32 * 0.07 - 0.4);
        let first = dot(a.view(), b.view());
        for round in 0..6 {
            // the same buffer, one entry changed (then, the sign of a zero)
            match round {
                4 => b[[3, 1]] = 0.0,
                5 => b[[3, 1]] = -0.0,
                _ => b[[round * 7, round]] += 0.25,
            }
            let got = dot(a.view(), b.view());
            close(&got, &reference(a.view(), b.view()), 40, &format!("round {round}"));
            // another `b` in between, and the same entries in another buffer, give the same bits
            let fresh = dot(a.view(), b.clone().view());
            assert!(bits(got.view(), fresh.view()), "round {round}: a fresh copy of b");
        }
        let agrees = |b: ArrayView2<'_, f32>, what: &str| close(&dot(a.view(), b), &reference(a.view(), b), 40, what);
        // a column-major `b` changed in place (its entries compared one by one)
        let mut bt = column_major(&b);
        for round in 0..4 {
            bt[[round, round * 9]] -= 0.5;
            agrees(bt.t(), &format!("column-major, round {round}"));
        }
        // two kept `b`s in turn: a hit on one that is not the most recent
        let b2 = b.mapv(|x| 0.5 - x);
        for round in 0..3 {
            agrees(b.view(), &format!("b, turn {round}"));
            agrees(b2.view(), &format!("b2, turn {round}"));
        }
        // back to the first entries: the first bits again
        let mut b0 = Array2::from_shape_fn((40, 5), |(p, j)| ((p * 5 + j) % 13) as f32 * 0.07 - 0.4);
        assert!(bits(dot(a.view(), b0.view()).view(), first.view()));
        b0.swap([0, 0], [39, 4]);
        agrees(b0.view(), "swapped");
        // more distinct `b`s than are kept, then the first again
        for c in 0..2 * TRANSPOSED_KEPT {
            let bc = b0.mapv(|x| x + c as f32);
            agrees(bc.view(), "many");
        }
        agrees(b0.view(), "again");
        // a long `k` is not kept beside the others
        let long = Array2::from_shape_fn((TRANSPOSED_ROOM / 8, 5), |(p, j)| ((p + j) % 7) as f32 * 0.1);
        let a_long = Array2::from_shape_fn((2, TRANSPOSED_ROOM / 8), |(i, p)| ((i + p) % 5) as f32 * 0.1);
        close(
            &dot(a_long.view(), long.view()),
            &reference(a_long.view(), long.view()),
            TRANSPOSED_ROOM / 8,
            "long",
        );
        agrees(b0.view(), "after a long one");
        TRANSPOSED.with_borrow(|c| {
            let kept: usize = c.entries.iter().map(|(_, s, t)| s.len() + t.len()).sum();
            assert!(kept <= TRANSPOSED_ROOM, "{kept} entries kept");
        });
    }

    /// `x` stored column by column: `column_major(&x).t()` is `x`, each of
    /// its columns contiguous. (`x.t().to_owned()` keeps `x`'s memory order,
    /// so its `.t()` is row-major again.)
    fn column_major(x: &Array2<f32>) -> Array2<f32> {
        let t = x.t().as_standard_layout().into_owned();
        assert!(x.nrows() < 2 || t.t().strides()[0] == 1, "column-major");
        t
    }

    #[test]
    fn kernel_matches_a_reference_and_ignores_row_grouping() {
        let kernels = f32_kernels();
        if kernels.is_empty() {
            eprintln!("no AVX2 and FMA here: the kernel is not used");
            return;
        }
        eprintln!("{} forms of the kernel (2: AVX-512 too)", kernels.len());
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
            // the last rows of a product over several strips at a time
            (1, 40, 80),
            (2, 300, 64),
            (13, 20, 70),
            // narrower than a tile: dot products along `k`, `k` a multiple
            // of 8 or not, rows in pairs and one left over
            (1, 1, 1),
            (5, 256, 5),
            (8, 19, 9),
            (33, 300, 15),
            // AVX-512 tiles: 8 rows and 1-7 more, pairs of strips and a
            // single or partial strip after them, several strips for the last rows
            (9, 40, 50),
            (23, 64, 144),
            (80, 30, 33),
            (15, 17, 160),
            // 4 and 5 last rows over 4 strips, then 2, then a partial one
            (12, 40, 64),
            (20, 300, 100),
            (13, 20, 90),
            // an output head of 21 (a partial strip), read in place and packed
            (1, 256, 21),
            (40, 256, 21),
            (140, 256, 21),
            // more than one group of 256 columns, packed and read in place
            (140, 40, 300),
            (20, 300, 270),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
            let a_t = column_major(&a); // the same matrix read column-major: a_t.t()
            for b in [
                Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9),
                shifted(k, n),
            ] {
                let mut first = None;
                for &kernel in &kernels {
                    let mut out = Array2::from_elem((m, n), f32::NAN);
                    kernel(a.view(), b.view(), out.view_mut());
                    close(&out, &reference(a.view(), b.view()), k, &format!("{m}x{k}x{n}"));
                    // every form of the kernel gives the same bits (AVX2 or AVX-512)
                    let first = &*first.get_or_insert_with(|| out.clone());
                    assert!(bits(out.view(), first.view()), "{m}x{k}x{n}: the kernel's forms differ");
                    let mut out_t = Array2::from_elem((m, n), f32::NAN);
                    kernel(a_t.t(), b.view(), out_t.view_mut());
                    close(
                        &out_t,
                        &reference(a.view(), b.view()),
                        k,
                        &format!("{m}x{k}x{n}, column-major a"),
                    );
                    // a column-major `b` (an input gradient's `Wᵀ`) is packed: the same bits
                    let b_t = column_major(&b);
                    let mut out_bt = Array2::from_elem((m, n), f32::NAN);
                    kernel(a.view(), b_t.t(), out_bt.view_mut());
                    assert!(bits(out.view(), out_bt.view()), "{m}x{k}x{n}: column-major `b`");
                    // tiles read `a` with any strides alike (a narrow product
                    // with a column-major `a` takes the tiles, not dot products)
                    if n >= NR {
                        assert!(bits(out.view(), out_t.view()), "{m}x{k}x{n}: column-major `a`");
                    }
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
    }

    #[test]
    fn dot_covers_every_layout_and_width() {
        let a = Array2::from_shape_fn((40, 24), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        for n in [1, 5, 15, 16, 33] {
            let b = Array2::from_shape_fn((24, n), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9);
            let b_t = column_major(&b);
            let want = reference(a.view(), b.view());
            close(&dot(a.view(), b.view()), &want, 24, &format!("n = {n}"));
            // a transposed `b`, as in an input gradient `g · wᵀ`
            close(&dot(a.view(), b_t.t()), &want, 24, &format!("n = {n}, column-major b"));
            // which the kernel packs: the same bits
            assert!(
                bits(dot(a.view(), b_t.t()).view(), dot(a.view(), b.view()).view()),
                "n = {n}"
            );
            // `aᵀ · g` as in a weight gradient (narrow: as `(gᵀ · a)ᵀ`)
            let a_t = column_major(&a);
            close(&dot(a_t.t(), b.view()), &want, 24, &format!("n = {n}, column-major a"));
        }
        let empty = dot(
            Array2::<f32>::zeros((3, 0)).view(),
            Array2::<f32>::zeros((0, 20)).view(),
        );
        assert!(empty.dim() == (3, 20) && empty.iter().all(|&x| x == 0.0), "k = 0");
    }
}
