//! Sparse feature rows (compressed sparse rows).
//!
//! State encodings are mostly zeros (a peptide of `L` residues has `L` ones
//! among `20 * max_len` inputs), so the engine stores them as CSR and the
//! first layer of the policy computes `x W` as a sum of the selected rows of
//! `W` ([`crate::autodiff::ops::SparseMatMul`]).

use ndarray::Array2;

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

/// `out = xᵀ · g` (`out` zeroed, `n` columns): row `r` of `g` added to the
/// rows of `out` that row `r` of `x` selects.
#[inline(always)]
fn rows_scatter<T: Scalar>(x: &Csr, g: &[T], n: usize, out: &mut [T]) {
    for r in 0..x.nrows() {
        let (c, v) = x.row(r);
        for (&c, &v) in c.iter().zip(v) {
            let c = c as usize;
            axpy(
                T::from_f64(v as f64),
                &g[r * n..(r + 1) * n],
                &mut out[c * n..(c + 1) * n],
            );
        }
    }
}

/// [`rows_times`] and [`rows_scatter`] compiled for AVX2 (the crate itself is
/// built for the x86-64 baseline, SSE2), where the CPU has it: they are
/// memory-bound element-wise passes that vectorize twice as wide there. The
/// same operations, so the same bits either way.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{rows_scatter, rows_times, Csr, Scalar};

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn times<T: Scalar>(x: &Csr, w: &[T], n: usize, out: &mut [T]) {
        rows_times(x, w, n, out)
    }

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scatter<T: Scalar>(x: &Csr, g: &[T], n: usize, out: &mut [T]) {
        rows_scatter(x, g, n, out)
    }
}

/// Whether [`avx2`]'s versions may run here.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[allow(unreachable_code)]
    false
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
        assert!(
            self.ncols == w.nrows(),
            "sparse matmul: shapes ({}, {}) and {:?} do not chain",
            self.nrows(),
            self.ncols,
            w.dim()
        );
        let mut out = crate::autodiff::pool::zeros((self.nrows(), w.ncols()));
        let w = w.as_standard_layout();
        let (w, n) = (w.as_slice().expect("row-major"), w.ncols());
        let o = out.as_slice_mut().expect("a fresh array is row-major");
        match has_avx2() {
            // SAFETY: the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            true => unsafe { avx2::times(self, w, n, o) },
            _ => rows_times(self, w, n, o),
        }
        out
    }

    /// `selfᵀ · g`: the gradient of `self · w` with respect to `w`.
    pub fn t_matmul<T: Scalar>(&self, g: &Array2<T>) -> Array2<T> {
        let mut out = crate::autodiff::pool::zeros((self.ncols, g.ncols()));
        let g = g.as_standard_layout();
        let (g, n) = (g.as_slice().expect("row-major"), g.ncols());
        let o = out.as_slice_mut().expect("a fresh array is row-major");
        match has_avx2() {
            // SAFETY: the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            true => unsafe { avx2::scatter(self, g, n, o) },
            _ => rows_scatter(self, g, n, o),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparse_product_adds_its_terms_as_single_axpys_would() {
        let w = Array2::from_shape_fn((12, 37), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        let mut x = Csr::new(12);
        for nnz in 0..10 {
            x.push_row((0..nnz).map(|i| (((i * 5 + nnz) % 12) as u32, 0.3 * i as f32 - 1.1)));
        }
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
        // and the gradient, row by row of g into the rows of the result
        let g = Array2::from_shape_fn((10, 37), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9);
        let dense = x.to_dense();
        let want = dense.t().dot(&g);
        let got = x.t_matmul(&g);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4), "xᵀ g");
    }
}
