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

/// `out = x · w` (`out` zeroed, `n` columns): each row the sum of the rows of
/// `w` its nonzeros select, four at a time.
#[inline(always)]
fn rows_times<T: Scalar>(x: &Csr, w: &[T], n: usize, out: &mut [T]) {
    let mut terms = Vec::new();
    for (r, o) in out.chunks_exact_mut(n.max(1)).enumerate() {
        let (c, v) = x.row(r);
        terms.clear();
        terms.extend(
            c.iter()
                .zip(v)
                .map(|(&c, &v)| (T::from_f64(v as f64), &w[c as usize * n..(c as usize + 1) * n])),
        );
        axpy_many(&terms, o);
    }
}

/// [`rows_times`] for rows that continue sequences of rows (see [`RowSums`]):
/// row `r`, the next row of sequence `seq[r]`, adds only the entries that
/// follow that sequence's last row when it starts with that row's entries.
#[inline(always)]
fn rows_times_resumed<T: Scalar>(x: &Csr, w: &[T], n: usize, out: &mut [T], sums: &mut RowSums<T>, seq: &[usize]) {
    if sums.off {
        out.fill(T::zero());
        return rows_times(x, w, n, out);
    }
    let (mut tried, mut resumed) = (0, 0);
    let mut terms = Vec::new();
    for (r, o) in out.chunks_exact_mut(n.max(1)).enumerate() {
        let (c, v) = x.row(r);
        let s = seq[r];
        let (last_c, last_v) = &mut sums.rows[s];
        let sum = &mut sums.sums[s * n..(s + 1) * n];
        let k = last_c.len();
        let extends =
            k <= c.len() && last_c[..] == c[..k] && last_v.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits());
        tried += (k > 0) as usize;
        resumed += (k > 0 && extends) as usize;
        let from = match extends {
            true => k,
            false => {
                sum.fill(T::zero());
                last_c.clear();
                last_v.clear();
                0
            }
        };
        terms.clear();
        terms.extend(
            c[from..]
                .iter()
                .zip(&v[from..])
                .map(|(&c, &v)| (T::from_f64(v as f64), &w[c as usize * n..(c as usize + 1) * n])),
        );
        axpy_many(&terms, sum);
        o.copy_from_slice(sum);
        last_c.extend_from_slice(&c[from..]);
        last_v.extend_from_slice(&v[from..]);
    }
    // rows that never extend their last ones (a HyperGrid state changes a
    // coordinate's entry): stop keeping them, which only costs copies
    sums.off = tried > 0 && resumed == 0;
}

/// `out = xᵀ · g` (`out` zeroed, `n` columns): row `at[r]` of `g` (row `r`
/// without `at`) added to the rows of `out` that row `r` of `x` selects.
#[inline(always)]
fn rows_scatter<T: Scalar>(x: &Csr, g: &[T], n: usize, out: &mut [T], at: Option<&[usize]>) {
    for r in 0..x.nrows() {
        let (c, v) = x.row(r);
        let gr = at.map_or(r, |at| at[r]);
        for (&c, &v) in c.iter().zip(v) {
            let c = c as usize;
            axpy(
                T::from_f64(v as f64),
                &g[gr * n..(gr + 1) * n],
                &mut out[c * n..(c + 1) * n],
            );
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
    rows: Vec<(Vec<u32>, Vec<f32>)>,
    /// Set once a product found earlier rows but none that its rows extend:
    /// the rows are then multiplied whole and not kept.
    off: bool,
}

impl<T: Scalar> RowSums<T> {
    /// No row yet for any of `sequences` sequences, for products `width` wide.
    pub fn new(sequences: usize, width: usize) -> Self {
        RowSums {
            sums: vec![T::zero(); sequences * width],
            rows: vec![(Vec::new(), Vec::new()); sequences],
            off: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Csr {
    pub ncols: usize,
    /// `nrows + 1` rising offsets into `indices` / `values`.
    pub offsets: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
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
                        && seq.iter().all(|&s| s < sums.rows.len())
                        && sums.sums.len() == sums.rows.len() * n,
                    "sparse matmul: rows of sequences {seq:?}, sums for {} sequences of {} values, width {n}",
                    sums.rows.len(),
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
                o.fill(T::zero());
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
    /// `at`, row `r` of `self` goes with row `at[r]` of `g`. The rows of
    /// `self` are taken in their order, so consecutive rows that share
    /// columns (a trajectory's states) add into rows of the result still in cache.
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
    fn the_sparse_product_adds_its_terms_as_single_axpys_would() {
        let w = Array2::from_shape_fn((12, 37), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        let mut x = Csr::new(12);
        for nnz in 0..10 {
            x.push_row((0..nnz).map(|i| (((i * 5 + nnz) % 12) as u32, 0.3 * i as f32 - 1.1)));
        }
        // a column repeated within a row: its terms keep their order
        x.push_row([(3, 0.5), (7, 1.5), (3, -2.25)]);
        let y = x.matmul(&w);
        for r in 0..x.nrows() {
            let mut want = vec![0f32; 37];
            let (c, v) = x.row(r);
            for (&c, &v) in c.iter().zip(v) {
                axpy(v, w.row(c as usize).as_slice().unwrap(), &mut want);
            }
            let same = y.row(r).iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "row {r} ({} nonzeros)", c.len());
        }
        // and the gradient: the bits of scattering g row by row into the rows of the result
        let g = Array2::from_shape_fn((11, 37), |(i, j)| {
            ((i * 7 + j * 11) % 17) as f32 * 0.11 * 10f32.powi(i as i32 % 3) - 0.9
        });
        let mut want = Array2::<f32>::zeros((12, 37));
        for r in 0..x.nrows() {
            let (c, v) = x.row(r);
            for (&c, &v) in c.iter().zip(v) {
                axpy(
                    v,
                    g.row(r).as_slice().unwrap(),
                    want.row_mut(c as usize).into_slice().unwrap(),
                );
            }
        }
        let got = x.t_matmul(&g, None);
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "xᵀ g");
    }
}
