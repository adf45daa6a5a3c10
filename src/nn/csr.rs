//! Sparse feature rows (compressed sparse rows).
//!
//! State encodings are mostly zeros (a peptide of `L` residues has `L` ones
//! among `20 * max_len` inputs), so the engine stores them as CSR and the
//! first layer of the policy computes `x W` as a sum of the selected rows of
//! `W` ([`crate::autodiff::ops::SparseMatMul`]).

use ndarray::{Array2, ArrayViewMut2};

use crate::Scalar;

/// `y += a * x` over slices: a plain loop the compiler vectorizes.
#[inline(always)]
fn axpy<T: Scalar>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y += a[0] x[0] + a[1] x[1] + ...`, added one term after the other to each
/// entry as [`axpy`] would, but in one pass over `y` for up to four terms
/// (the same operations in the same order, so the same bits).
#[inline(always)]
fn axpy_many<T: Scalar>(terms: &[(T, &[T])], y: &mut [T]) {
    for group in terms.chunks(4) {
        match *group {
            [(a0, x0), (a1, x1), (a2, x2), (a3, x3)] => {
                let xs = x0.iter().zip(x1).zip(x2.iter().zip(x3));
                for (y, ((&x0, &x1), (&x2, &x3))) in y.iter_mut().zip(xs) {
                    *y = (((*y + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3;
                }
            }
            _ => group.iter().for_each(|&(a, x)| axpy(a, x, y)),
        }
    }
}

/// `y = 0 + a[0] x[0] + a[1] x[1] + ...`: the bits of zeroing `y`, then
/// [`axpy_many`], without the pass that zeroes it or the read of its zeros.
#[inline(always)]
fn sum_into<T: Scalar>(terms: &[(T, &[T])], y: &mut [T]) {
    let (first, rest) = terms.split_at(terms.len().min(4));
    let zero = T::zero();
    match *first {
        [] => y.fill(zero),
        [(a0, x0)] => y.iter_mut().zip(x0).for_each(|(y, &x0)| *y = zero + a0 * x0),
        [(a0, x0), (a1, x1)] => y
            .iter_mut()
            .zip(x0.iter().zip(x1))
            .for_each(|(y, (&x0, &x1))| *y = (zero + a0 * x0) + a1 * x1),
        [(a0, x0), (a1, x1), (a2, x2)] => y
            .iter_mut()
            .zip(x0.iter().zip(x1).zip(x2))
            .for_each(|(y, ((&x0, &x1), &x2))| *y = ((zero + a0 * x0) + a1 * x1) + a2 * x2),
        [(a0, x0), (a1, x1), (a2, x2), (a3, x3)] => y
            .iter_mut()
            .zip(x0.iter().zip(x1).zip(x2.iter().zip(x3)))
            .for_each(|(y, ((&x0, &x1), (&x2, &x3)))| *y = (((zero + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3),
        _ => unreachable!("at most four terms first"),
    }
    axpy_many(rest, y);
}

/// The term `v · w[c]` of a sparse row's entry `(c, v)`, as a factor and a row of `w`.
#[inline(always)]
fn term<T: Scalar>(c: u32, v: f32, w: &[T], n: usize) -> (T, &[T]) {
    (T::from_f64(v as f64), &w[c as usize * n..(c as usize + 1) * n])
}

/// `y = 0 + Σ v_j w[c_j]` over the sparse row `(c, v)` (`y += …` with `add`),
/// four terms at a time as [`sum_into`] and [`axpy_many`] group them, from
/// a buffer on the stack.
#[inline(always)]
fn add_row<T: Scalar>((c, v): (&[u32], &[f32]), w: &[T], n: usize, y: &mut [T], add: bool) {
    let mut buf: [(T, &[T]); 4] = [(T::zero(), &[]); 4];
    let mut fill = |from: usize| {
        let m = (c.len() - from).min(4);
        for (q, t) in buf[..m].iter_mut().enumerate() {
            *t = term(c[from + q], v[from + q], w, n);
        }
        (buf, m)
    };
    let mut j = 0;
    if !add {
        // the first four terms from zero (all of `y` written, even with none)
        let (terms, m) = fill(0);
        sum_into(&terms[..m], y);
        j = m;
    }
    while j < c.len() {
        let (terms, m) = fill(j);
        axpy_many(&terms[..m], y);
        j += m;
    }
}

/// `out = x · w` (`n` columns): each row the sum of the rows of `w` its
/// nonzeros select, four at a time, from zero.
#[inline(always)]
fn rows_times<T: Scalar>(x: &Csr, w: &[T], n: usize, out: &mut [T]) {
    for (r, o) in out.chunks_exact_mut(n.max(1)).enumerate() {
        add_row(x.row(r), w, n, o, false);
    }
}

/// [`rows_times`] for rows that continue sequences of rows (see [`RowSums`]):
/// row `r`, the next row of sequence `seq[r]`, adds only the entries that
/// follow that sequence's last row when it starts with that row's entries.
#[inline(always)]
fn rows_times_resumed<T: Scalar>(x: &Csr, w: &[T], n: usize, out: &mut [T], sums: &mut RowSums<T>, seq: &[usize]) {
    if sums.off {
        return rows_times(x, w, n, out);
    }
    let (mut tried, mut resumed) = (0, 0);
    for (r, o) in out.chunks_exact_mut(n.max(1)).enumerate() {
        let (c, v) = x.row(r);
        let s = seq[r];
        let k = sums.lens[s];
        let at = s * sums.room;
        let extends = starts_with((c, v), (&sums.cols[at..at + k], &sums.vals[at..at + k]));
        tried += (k > 0) as usize;
        resumed += (k > 0 && extends) as usize;
        let sum = &mut sums.sums[s * n..(s + 1) * n];
        let from = match extends {
            true => k,
            false => {
                sum.fill(T::zero());
                0
            }
        };
        add_row((&c[from..], &v[from..]), w, n, sum, true);
        o.copy_from_slice(sum);
        if c.len() > sums.room {
            sums.make_room(c.len());
        }
        let at = s * sums.room;
        sums.cols[at + from..at + c.len()].copy_from_slice(&c[from..]);
        sums.vals[at + from..at + c.len()].copy_from_slice(&v[from..]);
        sums.lens[s] = c.len();
    }
    // rows that never extend their last ones (a HyperGrid state changes a
    // coordinate's entry): stop keeping them, which only costs copies
    sums.off = tried > 0 && resumed == 0;
}

/// Whether the row `(columns, values)` starts with the entries of `prefix`
/// (columns and values, bit for bit), then has none or more: it extends that row.
#[inline(always)]
fn starts_with((c, v): (&[u32], &[f32]), (pc, pv): (&[u32], &[f32])) -> bool {
    let k = pc.len();
    k <= c.len() && pc == &c[..k] && pv.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits())
}

/// Whether row `r` of `x` extends row `r - 1` ([`starts_with`]).
#[inline(always)]
fn extends_previous(x: &Csr, r: usize) -> bool {
    r > 0 && starts_with(x.row(r), x.row(r - 1))
}

/// `out = xᵀ · g` (`out` zeroed, `n` columns), row `at[r]` of `g` (row `r`
/// without `at`) going with row `r` of `x`.
///
/// A run of rows each of which extends the one before it (a trajectory's
/// peptide states: each the last one's residues and one more) shares its
/// entries: an entry that enters at row `r0` of a run is in every row from
/// `r0` to the run's end, so its term is `v · Σ g` over those rows, added
/// once. The rows are visited last to first, each run with its running sum
/// of `g` (from its last row up); a row that neither extends its
/// predecessor nor is extended scatters its own row of `g`. The result is
/// `Σ_r x_rᵀ g_r` with the additions grouped by run. (Rows in their order,
/// not `g`'s: consecutive rows, a trajectory's states, mostly select the
/// same rows of `out`, which stay in cache.)
#[inline(always)]
fn rows_scatter<T: Scalar>(x: &Csr, g: &[T], n: usize, out: &mut [T], at: Option<&[usize]>) {
    let mut run = vec![T::zero(); n];
    let place = |r: usize| at.map_or(r, |at| at[r]);
    // whether row r + 1 extends row r (r is then inside a run, not at its end)
    let mut extended = false;
    for r in (0..x.nrows()).rev() {
        if r > 0 {
            prefetch(&g[place(r - 1) * n..place(r - 1) * n + n]);
        }
        let (c, v) = x.row(r);
        let gr = &g[place(r) * n..(place(r) + 1) * n];
        let extends = extends_previous(x, r);
        let src: &[T] = match (extended, extends) {
            (false, false) => gr,
            (false, true) => {
                run.copy_from_slice(gr);
                &run
            }
            (true, _) => {
                run.iter_mut().zip(gr).for_each(|(s, &g)| *s += g);
                &run
            }
        };
        let from = if extends { x.row(r - 1).0.len() } else { 0 };
        for (&c, &v) in c[from..].iter().zip(&v[from..]) {
            let c = c as usize;
            axpy(T::from_f64(v as f64), src, &mut out[c * n..(c + 1) * n]);
        }
        extended = extends;
    }
}

/// Asks the CPU to bring `x` into its caches (a row of `g` that the next
/// step reads from a place no hardware prefetcher foresees).
#[inline(always)]
fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..std::mem::size_of_val(x)).step_by(64) {
        // SAFETY: a hint about an address within `x`; it reads nothing.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>((x.as_ptr() as *const i8).add(line));
        }
    }
}

/// [`rows_times`], [`rows_times_resumed`] and [`rows_scatter`] compiled for
/// AVX2 (the crate itself is built for the x86-64 baseline, SSE2), where the
/// CPU has it: they are memory-bound element-wise passes that vectorize twice
/// as wide there. The same operations, so the same bits either way.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{rows_scatter, rows_times, rows_times_resumed, Csr, RowSums, Scalar};

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn times<T: Scalar>(x: &Csr, w: &[T], n: usize, out: &mut [T]) {
        rows_times(x, w, n, out)
    }

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn times_resumed<T: Scalar>(
        x: &Csr,
        w: &[T],
        n: usize,
        out: &mut [T],
        sums: &mut RowSums<T>,
        seq: &[usize],
    ) {
        rows_times_resumed(x, w, n, out, sums, seq)
    }

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scatter<T: Scalar>(x: &Csr, g: &[T], n: usize, out: &mut [T], at: Option<&[usize]>) {
        rows_scatter(x, g, n, out, at)
    }
}

/// Whether code compiled for AVX2 may run here.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[allow(unreachable_code)]
    false
}

/// Entries a sequence's kept row has room for at first (a peptide of up
/// to 64 residues): one list holds every sequence's row, each in a slot
/// this long, so that keeping rows allocates nothing per row.
const ROW_ROOM: usize = 64;

/// The last row of each of several sequences of rows (the sampler's
/// trajectories, one state after the other) and its product with the first
/// layer's weights `W`, so that the product of a row that extends its
/// sequence's last row (that row's entries, then more: a peptide's encoding
/// after one more residue) adds only the new entries
/// ([`Csr::matmul_into`]). The product adds a row's terms one after the
/// other, so resuming from the last row's sum gives the bits of the whole.
#[derive(Clone, Debug)]
pub struct RowSums<T> {
    /// `[sequences, width]`, row-major.
    sums: Vec<T>,
    /// Sequence `s`'s last row: `lens[s]` entries from `s * room` on.
    cols: Vec<u32>,
    vals: Vec<f32>,
    lens: Vec<usize>,
    room: usize,
    /// Set once a product found earlier rows but none that its rows extend:
    /// the rows are then multiplied whole and not kept.
    off: bool,
}

impl<T: Scalar> RowSums<T> {
    /// No row yet for any of `sequences` sequences, for products `width` wide.
    pub fn new(sequences: usize, width: usize) -> Self {
        RowSums {
            sums: vec![T::zero(); sequences * width],
            cols: vec![0; sequences * ROW_ROOM],
            vals: vec![0.0; sequences * ROW_ROOM],
            lens: vec![0; sequences],
            room: ROW_ROOM,
            off: false,
        }
    }

    /// Slots of at least `entries` entries (twice as long as before, or more).
    fn make_room(&mut self, entries: usize) {
        let room = entries.max(2 * self.room);
        let mut cols = vec![0; self.lens.len() * room];
        let mut vals = vec![0.0; self.lens.len() * room];
        for (s, &k) in self.lens.iter().enumerate() {
            let (from, to) = (s * self.room, s * room);
            cols[to..to + k].copy_from_slice(&self.cols[from..from + k]);
            vals[to..to + k].copy_from_slice(&self.vals[from..from + k]);
        }
        (self.cols, self.vals, self.room) = (cols, vals, room);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    pub ncols: usize,
    /// `nrows + 1` rising offsets into `indices` / `values`.
    pub offsets: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// No rows and no columns.
impl Default for Csr {
    fn default() -> Self {
        Csr::new(0)
    }
}

impl Csr {
    pub fn new(ncols: usize) -> Self {
        Csr {
            ncols,
            offsets: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Removes every row, keeping the allocations.
    pub fn clear(&mut self) {
        self.offsets.truncate(1);
        self.indices.clear();
        self.values.clear();
    }

    pub fn nrows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Appends a row given as `(column, value)` pairs.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f32)>) {
        for (c, v) in entries {
            debug_assert!((c as usize) < self.ncols, "column {c} of {}", self.ncols);
            self.indices.push(c);
            self.values.push(v);
        }
        self.offsets.push(self.indices.len());
    }

    /// Appends row `r` of `other`.
    pub fn push_row_of(&mut self, other: &Csr, r: usize) {
        debug_assert_eq!(self.ncols, other.ncols, "push_row_of: column counts differ");
        let (c, v) = other.row(r);
        self.indices.extend_from_slice(c);
        self.values.extend_from_slice(v);
        self.offsets.push(self.indices.len());
    }

    /// Appends a row from a dense slice, keeping its nonzero entries.
    pub fn push_dense(&mut self, row: &[f32]) {
        assert_eq!(row.len(), self.ncols, "push_dense: row width");
        self.push_row(
            row.iter()
                .enumerate()
                .filter(|(_, &v)| v != 0.0)
                .map(|(c, &v)| (c as u32, v)),
        );
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[r], self.offsets[r + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// Appends the rows of `other`.
    pub fn append(&mut self, other: &Csr) {
        assert_eq!(self.ncols, other.ncols, "append: column counts differ");
        let base = self.indices.len();
        self.indices.extend_from_slice(&other.indices);
        self.values.extend_from_slice(&other.values);
        self.offsets.extend(other.offsets[1..].iter().map(|o| o + base));
    }

    /// Rows `lo..hi` as a new matrix.
    pub fn slice_rows(&self, lo: usize, hi: usize) -> Csr {
        let (a, b) = (self.offsets[lo], self.offsets[hi]);
        Csr {
            ncols: self.ncols,
            offsets: self.offsets[lo..=hi].iter().map(|o| o - a).collect(),
            indices: self.indices[a..b].to_vec(),
            values: self.values[a..b].to_vec(),
        }
    }

    pub fn to_dense(&self) -> Array2<f32> {
        let mut d = Array2::zeros((self.nrows(), self.ncols));
        for r in 0..self.nrows() {
            let (c, v) = self.row(r);
            for (&c, &v) in c.iter().zip(v) {
                d[[r, c as usize]] += v;
            }
        }
        d
    }

    /// `self · w`: each output row is the value-weighted sum of the rows of `w` it selects.
    pub fn matmul<T: Scalar>(&self, w: &Array2<T>) -> Array2<T> {
        let mut out = crate::autodiff::pool::scratch((self.nrows(), w.ncols()));
        self.matmul_into(w, None, out.view_mut());
        out
    }

    /// [`Csr::matmul`] into `out` (`[rows, w columns]`, row-major; its values
    /// are overwritten). With `resume = (sums, seq)`, row `r` is the next row
    /// of sequence `seq[r]` of `sums`, which it updates: a row that extends
    /// its sequence's last one costs only its new entries (the same bits).
    pub fn matmul_into<T: Scalar>(
        &self,
        w: &Array2<T>,
        resume: Option<(&mut RowSums<T>, &[usize])>,
        mut out: ArrayViewMut2<'_, T>,
    ) {
        assert!(
            self.ncols == w.nrows() && out.dim() == (self.nrows(), w.ncols()),
            "sparse matmul: shapes ({}, {}) and {:?} into {:?}",
            self.nrows(),
            self.ncols,
            w.dim(),
            out.dim()
        );
        let w = w.as_standard_layout();
        let (w, n) = (w.as_slice().expect("row-major"), w.ncols());
        let o = out.as_slice_mut().expect("a row-major output");
        match resume {
            Some((sums, seq)) => {
                assert!(
                    seq.len() == self.nrows()
                        && seq.iter().all(|&s| s < sums.lens.len())
                        && sums.sums.len() == sums.lens.len() * n,
                    "sparse matmul: rows of sequences {seq:?}, sums for {} sequences of {} values, width {n}",
                    sums.lens.len(),
                    sums.sums.len()
                );
                match has_avx2() {
                    // SAFETY: the CPU has AVX2.
                    #[cfg(target_arch = "x86_64")]
                    true => unsafe { avx2::times_resumed(self, w, n, o, sums, seq) },
                    _ => rows_times_resumed(self, w, n, o, sums, seq),
                }
            }
            None => {
                match has_avx2() {
                    // SAFETY: the CPU has AVX2.
                    #[cfg(target_arch = "x86_64")]
                    true => unsafe { avx2::times(self, w, n, o) },
                    _ => rows_times(self, w, n, o),
                }
            }
        }
    }

    /// `selfᵀ · g`: the gradient of `self · w` with respect to `w`; with
    /// `at`, row `r` of `self` goes with row `at[r]` of `g`. Consecutive rows
    /// that extend one another (a trajectory's peptide states) add each
    /// shared entry's term once, with the sum of their rows of `g`.
    pub fn t_matmul<T: Scalar>(&self, g: &Array2<T>, at: Option<&[usize]>) -> Array2<T> {
        assert!(
            at.map_or(g.nrows() == self.nrows(), |at| at.len() == self.nrows()
                && at.iter().all(|&r| r < g.nrows())),
            "sparse matmul gradient: {} rows, a gradient of {:?}, {:?} rows placed",
            self.nrows(),
            g.dim(),
            at.map(<[usize]>::len)
        );
        let mut out = crate::autodiff::pool::zeros((self.ncols, g.ncols()));
        let g = g.as_standard_layout();
        let (g, n) = (g.as_slice().expect("row-major"), g.ncols());
        let o = out.as_slice_mut().expect("a fresh array is row-major");
        match has_avx2() {
            // SAFETY: the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            true => unsafe { avx2::scatter(self, g, n, o, at) },
            _ => rows_scatter(self, g, n, o, at),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_product_has_the_bits_of_the_whole_one() {
        let w = Array2::from_shape_fn((30, 19), |(i, j)| {
            ((i * 31 + j * 17) % 13) as f32 * 0.37 * 10f32.powi(i as i32 % 3 - 1)
        });
        let mut sums = RowSums::new(3, 19);
        // three sequences over four steps: one that grows by an entry each
        // step, one whose rows change an entry or a value (no prefix), one
        // that starts over from an empty row
        type Step = Vec<(usize, Vec<(u32, f32)>)>;
        let steps: Vec<Step> = vec![
            vec![(0, vec![]), (1, vec![(4, 1.0)]), (2, vec![(7, 0.5), (9, 2.0)])],
            vec![
                (0, vec![(3, 1.0)]),
                (1, vec![(5, 1.0)]),
                (2, vec![(7, 0.5), (9, 2.0), (1, 1.0)]),
            ],
            vec![
                (2, vec![]),
                (0, vec![(3, 1.0), (8, 1.0)]),
                (1, vec![(5, -1.0), (6, 1.0)]),
            ],
            vec![
                (0, vec![(3, 1.0), (8, 1.0), (8, 1.0), (29, 0.25), (0, 3.0), (11, 1.0)]),
                (2, vec![(12, 1.0)]),
            ],
        ];
        for (t, step) in steps.iter().enumerate() {
            let mut x = Csr::new(30);
            step.iter().for_each(|(_, row)| x.push_row(row.iter().copied()));
            let seq: Vec<usize> = step.iter().map(|&(s, _)| s).collect();
            let mut resumed = Array2::zeros((x.nrows(), 19));
            x.matmul_into(&w, Some((&mut sums, &seq)), resumed.view_mut());
            let whole = x.matmul(&w);
            let same = resumed.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "step {t}");
            assert!(!sums.off, "some rows extend their last ones");
        }
        // rows that change an entry each step (HyperGrid's coordinates): kept once, then not
        let mut sums = RowSums::new(2, 19);
        for t in 0..3u32 {
            let mut x = Csr::new(30);
            x.push_row([(t, 1.0), (10 + t, 1.0)]);
            x.push_row([(20, 1.0), (21 + t, 1.0)]);
            let mut resumed = Array2::zeros((2, 19));
            x.matmul_into(&w, Some((&mut sums, &[0, 1])), resumed.view_mut());
            assert_eq!(resumed, x.matmul(&w), "step {t}");
            assert_eq!(sums.off, t > 0, "step {t}");
        }
    }

    #[test]
    fn rows_longer_than_their_room_are_kept_whole() {
        let w = Array2::from_shape_fn((400, 9), |(i, j)| ((i * 7 + j * 3) % 17) as f32 * 0.1 - 0.8);
        let mut sums = RowSums::new(3, 9);
        // sequences 0 and 2 grow by 10 entries a step, past ROW_ROOM twice;
        // sequence 1 stays short and must keep its row across the moves
        for t in 1..=15usize {
            let mut x = Csr::new(400);
            x.push_row((0..10 * t).map(|i| (i as u32, 1.0 + (i % 3) as f32)));
            x.push_row([(399, 0.5), (t as u32, 1.0)].into_iter().take(1 + (t > 1) as usize));
            x.push_row((0..10 * t).map(|i| (200 + i as u32 / 2, 0.25)));
            let mut resumed = Array2::zeros((3, 9));
            x.matmul_into(&w, Some((&mut sums, &[0, 1, 2])), resumed.view_mut());
            let whole = x.matmul(&w);
            let same = resumed.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "step {t}");
        }
        assert!(sums.room >= 150 && !sums.off, "room {}", sums.room);
        assert_eq!(sums.lens, [150, 2, 150]);
    }

    #[test]
    fn the_sparse_product_adds_its_terms_as_single_axpys_would() {
        let w = Array2::from_shape_fn((12, 37), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        let mut x = Csr::new(12);
        for nnz in 0..10 {
            x.push_row((0..nnz).map(|i| (((i * 5 + nnz) % 12) as u32, 0.3 * i as f32 - 1.1)));
        }
        // a column repeated within a row: its terms keep their order
        x.push_row([(3, 0.5), (7, 1.5), (3, -2.25)]);
        let y = x.matmul(&w);
        // into an output holding other values (an empty row included): every entry written
        let mut into = Array2::from_elem(y.dim(), f32::NAN);
        x.matmul_into(&w, None, into.view_mut());
        assert!(
            into.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
            "matmul_into over old values"
        );
        for r in 0..x.nrows() {
            let mut want = vec![0f32; 37];
            let (c, v) = x.row(r);
            for (&c, &v) in c.iter().zip(v) {
                axpy(v, w.row(c as usize).as_slice().unwrap(), &mut want);
            }
            let same = y.row(r).iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "row {r} ({} nonzeros)", c.len());
        }
    }

    /// `xᵀ · g` in f64, from the dense rows.
    fn reference(x: &Csr, g: &Array2<f32>, at: &[usize]) -> Array2<f64> {
        let mut want = Array2::<f64>::zeros((x.ncols, g.ncols()));
        for r in 0..x.nrows() {
            let (c, v) = x.row(r);
            for (&c, &v) in c.iter().zip(v) {
                for j in 0..g.ncols() {
                    want[[c as usize, j]] += v as f64 * g[[at[r], j]] as f64;
                }
            }
        }
        want
    }

    #[test]
    fn the_sparse_gradient_adds_shared_entries_once_per_run() {
        // rows as a batch of peptide trajectories lays them out: each state
        // its predecessor's entries and one more, runs broken where a new
        // trajectory starts; also a repeated column, a changed value (no
        // prefix), an empty row after a full one, and a row on its own
        let rows: Vec<Vec<(u32, f32)>> = vec![
            vec![],
            vec![(4, 1.0)],
            vec![(4, 1.0), (7, 1.0)],
            vec![(4, 1.0), (7, 1.0), (4, 0.5)],
            vec![],
            vec![(9, 1.0)],
            vec![(9, 2.0)],
            vec![(9, 2.0), (1, -1.5), (11, 1.0)],
            vec![(3, 1.0), (10, 1.0)],
            vec![(0, 1.0)],
            vec![(0, 1.0), (5, 1.0)],
        ];
        let mut x = Csr::new(12);
        rows.iter().for_each(|r| x.push_row(r.iter().copied()));
        let g = Array2::from_shape_fn((11, 37), |(i, j)| {
            ((i * 7 + j * 11) % 17) as f32 * 0.11 * 10f32.powi(i as i32 % 3) - 0.9
        });
        let close = |got: &Array2<f32>, want: &Array2<f64>, what: &str| {
            for ((i, j), &w) in want.indexed_iter() {
                let d = (got[[i, j]] as f64 - w).abs();
                assert!(
                    d <= 1e-5 * (1.0 + w.abs()),
                    "{what}: ({i}, {j}) {} against {w}",
                    got[[i, j]]
                );
            }
        };
        let identity: Vec<usize> = (0..11).collect();
        close(&x.t_matmul(&g, None), &reference(&x, &g, &identity), "in order");
        // rows of g placed elsewhere
        let at: Vec<usize> = (0..11).map(|r| (r * 4) % 11).collect();
        close(&x.t_matmul(&g, Some(&at)), &reference(&x, &g, &at), "placed");
        // placed as the sampler places them: step by step, the runs'
        // (trajectories') rows of a step together
        let (run, step) = ([0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 4], [0, 1, 2, 3, 0, 1, 0, 1, 0, 0, 1]);
        let mut by_step: Vec<usize> = (0..11).collect();
        by_step.sort_by_key(|&r| (step[r], run[r]));
        let mut at = vec![0; 11];
        by_step.iter().enumerate().for_each(|(q, &r)| at[r] = q);
        let g_placed = Array2::from_shape_fn((11, 37), |(q, j)| g[[by_step[q], j]]);
        let placed = x.t_matmul(&g_placed, Some(&at));
        close(&placed, &reference(&x, &g_placed, &at), "step by step");
        // each run still adds its rows from its last up: a column that one
        // run alone selects has the same bits as with the rows in order
        let in_order = x.t_matmul(&g, None);
        for c in [0, 1, 3, 4, 5, 7, 10, 11] {
            let same = placed
                .row(c)
                .iter()
                .zip(in_order.row(c))
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "column {c} step by step");
        }
        // a run's shared entry gets the sum of the run's rows of g from where
        // it enters, added from the run's last row up: column 4 of row 1 in
        // rows 1-3 (with 0.5 of row 3's repeat), column 7 in rows 2-3
        let got = x.t_matmul(&g, None);
        for j in 0..37 {
            let (g1, g2, g3) = (g[[1, j]], g[[2, j]], g[[3, j]]);
            let col4 = (0.0 + 0.5 * g3) + ((g3 + g2) + g1);
            assert_eq!(got[[4, j]].to_bits(), col4.to_bits(), "column 4, {j}");
            assert_eq!(got[[7, j]].to_bits(), (0.0 + (g3 + g2)).to_bits(), "column 7, {j}");
        }
        // rows that never extend their predecessors (HyperGrid's): each row
        // of g scattered as it is, in order of rows from the last
        let mut y = Csr::new(12);
        for r in 0..11u32 {
            y.push_row([(r % 12, 1.0), ((r * 5 + 1) % 12, 0.5 + r as f32)]);
        }
        let mut want = Array2::<f32>::zeros((12, 37));
        for r in (0..11).rev() {
            let (c, v) = y.row(r);
            for (&c, &v) in c.iter().zip(v) {
                axpy(
                    v,
                    g.row(r).as_slice().unwrap(),
                    want.row_mut(c as usize).into_slice().unwrap(),
                );
            }
        }
        let got = y.t_matmul(&g, None);
        assert!(
            got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
            "rows on their own"
        );
    }
}
