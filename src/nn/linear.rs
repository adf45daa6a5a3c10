//! A fully connected layer `y = x W + b`.

use ndarray::{Array2, ArrayViewMut2};
use rand::Rng;

use super::{Bound, Csr, ParamId, ParamStore, RowSums};
use crate::autodiff::{ops, Activation, Tape, Var};
use crate::Scalar;

/// The input of an inference pass: dense rows or sparse rows.
pub enum Input<'a, T> {
    Dense(ndarray::ArrayView2<'a, T>),
    Sparse(&'a Csr),
    /// Sparse rows, row `r` the next state of sequence `seq[r]` of `sums`
    /// (see [`RowSums`]): the same values as [`Input::Sparse`], computed
    /// from each sequence's last product where a row extends its last row.
    Resumed {
        x: &'a Csr,
        sums: &'a mut RowSums<T>,
        seq: &'a [usize],
    },
}

impl<T> Input<'_, T> {
    pub fn nrows(&self) -> usize {
        match self {
            Input::Dense(x) => x.nrows(),
            Input::Sparse(x) | Input::Resumed { x, .. } => x.nrows(),
        }
    }
}

/// Weight initialisation.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Init {
    /// Glorot/Xavier uniform: `U(-a, a)`, `a = sqrt(6 / (fan_in + fan_out))` (for tanh).
    Xavier,
    /// He/Kaiming uniform: `U(-a, a)`, `a = sqrt(6 / fan_in)` (for ReLU).
    He,
    /// All zeros (e.g. an output head that should start uniform).
    Zeros,
}

/// `y = x W + b` with `W: [in, out]`, `b: [1, out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: ParamId,
    pub b: ParamId,
    pub fan_in: usize,
    pub fan_out: usize,
}

impl Linear {
    /// Creates `name.w` and `name.b` in `store` under `group`.
    pub fn new<T: Scalar, R: Rng>(
        store: &mut ParamStore<T>,
        name: &str,
        group: &str,
        fan_in: usize,
        fan_out: usize,
        init: Init,
        rng: &mut R,
    ) -> Self {
        let a = match init {
            Init::Xavier => (6.0 / (fan_in + fan_out) as f64).sqrt(),
            Init::He => (6.0 / fan_in as f64).sqrt(),
            Init::Zeros => 0.0,
        };
        let w = Array2::from_shape_fn((fan_in, fan_out), |_| {
            if a == 0.0 {
                T::zero()
            } else {
                T::from_f64(rng.gen_range(-a..a))
            }
        });
        let w = store.add(&format!("{name}.w"), group, w);
        let b = store.add(&format!("{name}.b"), group, Array2::zeros((1, fan_out)));
        Linear { w, b, fan_in, fan_out }
    }

    /// `act(x W + b)` on the tape (no activation for `None`).
    pub fn forward<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, x: Var, act: Option<Activation>) -> Var {
        tape.affine(x, p[self.w], p[self.b], act)
    }

    /// `act(x W + b)` for sparse constant rows `x`: a sum of selected rows of `W`.
    pub fn forward_sparse<T: Scalar>(
        &self,
        tape: &mut Tape<T>,
        p: &Bound,
        x: std::sync::Arc<Csr>,
        act: Option<Activation>,
    ) -> Var {
        tape.sparse_affine(x, p[self.w], p[self.b], act)
    }

    /// [`Linear::forward`] with its value computed beforehand (see [`Tape::record`]).
    pub fn record<T: Scalar>(
        &self,
        tape: &mut Tape<T>,
        p: &Bound,
        x: Var,
        act: Option<Activation>,
        value: Array2<T>,
    ) -> Var {
        tape.record(ops::Affine(act), &[x, p[self.w], p[self.b]], value)
    }

    /// [`Linear::forward_sparse`] with its value computed beforehand, for the
    /// rows of `x` (placed as its `at` says).
    pub fn record_sparse<T: Scalar>(
        &self,
        tape: &mut Tape<T>,
        p: &Bound,
        x: ops::SparseMatMul,
        act: Option<Activation>,
        value: Array2<T>,
    ) -> Var {
        tape.record(ops::SparseAffine(x, act), &[p[self.w], p[self.b]], value)
    }

    /// `act(x W + b)` without a tape (inference), for dense or sparse `x`: the
    /// tape's op, its product computed row by row alike (see [`crate::autodiff::gemm::dot`]).
    pub fn infer<T: Scalar>(&self, store: &ParamStore<T>, x: Input<'_, T>, act: Option<Activation>) -> Array2<T> {
        let mut out = crate::autodiff::pool::scratch((x.nrows(), self.fan_out));
        self.infer_into(store, x, act, out.view_mut());
        out
    }

    /// [`Linear::infer`] into `out` (`[rows, fan_out]`, row-major), whose values are overwritten.
    pub fn infer_into<T: Scalar>(
        &self,
        store: &ParamStore<T>,
        x: Input<'_, T>,
        act: Option<Activation>,
        out: ArrayViewMut2<'_, T>,
    ) {
        let (w, b) = (store.value(self.w), store.value(self.b));
        match x {
            Input::Dense(x) => ops::Affine(act).infer_into(x, w, b, out),
            Input::Sparse(x) => ops::SparseAffine::infer_into(x, None, w, b, act, out),
            Input::Resumed { x, sums, seq } => ops::SparseAffine::infer_into(x, Some((sums, seq)), w, b, act, out),
        }
    }

    /// Multiply-adds of one forward row.
    pub fn flops_per_row(&self) -> usize {
        2 * self.fan_in * self.fan_out
    }
}
