//! Sparse feature rows (compressed sparse rows).
//!
//! State encodings are mostly zeros (a peptide of `L` residues has `L` ones
//! among `20 * max_len` inputs), so the engine stores them as CSR and the
//! first layer of the policy computes `x W` as a sum of the selected rows of
//! `W` ([`crate::autodiff::ops::SparseMatMul`]).

use ndarray::Array2;

use crate::Scalar;

/// `y += a * x` over slices: a plain loop the compiler vectorizes.
fn axpy<T: Scalar>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// A sparse `[nrows, ncols]` matrix, row by row.
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
        for (r, mut o) in out.rows_mut().into_iter().enumerate() {
            let o = o.as_slice_mut().expect("a fresh array is row-major");
            let (c, v) = self.row(r);
            for (&c, &v) in c.iter().zip(v) {
                axpy(
                    T::from_f64(v as f64),
                    w.row(c as usize).as_slice().expect("row-major"),
                    o,
                );
            }
        }
        out
    }

    /// `selfᵀ · g`: the gradient of `self · w` with respect to `w`.
    pub fn t_matmul<T: Scalar>(&self, g: &Array2<T>) -> Array2<T> {
        let mut out = crate::autodiff::pool::zeros((self.ncols, g.ncols()));
        let g = g.as_standard_layout();
        for r in 0..self.nrows() {
            let (c, v) = self.row(r);
            let g_row = g.row(r);
            let g_row = g_row.as_slice().expect("row-major");
            for (&c, &v) in c.iter().zip(v) {
                let mut o = out.row_mut(c as usize);
                axpy(
                    T::from_f64(v as f64),
                    g_row,
                    o.as_slice_mut().expect("a fresh array is row-major"),
                );
            }
        }
        out
    }
}
