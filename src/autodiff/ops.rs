//! Every differentiable op: its forward and its backward side by side.
//!
//! `backward` receives the op's inputs, its output and the gradient of the
//! loss with respect to that output, and returns one gradient per input
//! (`None` where an input gets none). Each backward is written with the same
//! array primitives as its forward. The output's gradient is the op's to
//! overwrite: the tape reads it no more (a layer's activation derivative is
//! applied in its place).

use ndarray::{concatenate, s, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};

use super::{gemm, pool, Activation};
use crate::scalar::wide;
use crate::Scalar;

/// A differentiable operation on 2-D arrays.
///
/// Implement it to add an op of your own; record it with [`super::Tape::apply`]
/// and verify it with [`super::gradcheck()`].
pub trait Op<T: Scalar> {
    fn name(&self) -> &'static str;
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T>;
    /// One gradient per input, from the gradient `g` of the output `out`.
    /// `g` may be overwritten (or taken): the tape does not read it again.
    fn backward(&self, xs: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>>;
    /// `false` for ops whose output carries no gradient back.
    fn differentiable(&self) -> bool {
        true
    }
}

fn t<T: Scalar>(x: f64) -> T {
    T::from_f64(x)
}

/// Shape of `a (op) b` under size-1 broadcasting; panics naming both shapes.
fn broadcast_shape(op: &str, a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    let dim = |x: usize, y: usize| {
        if x == y || y == 1 {
            Some(x)
        } else if x == 1 {
            Some(y)
        } else {
            None
        }
    };
    match (dim(a.0, b.0), dim(a.1, b.1)) {
        (Some(r), Some(c)) => (r, c),
        _ => panic!("{op}: shapes {a:?} and {b:?} do not broadcast"),
    }
}

/// Sums `g` over the dimensions that broadcasting stretched, back to `shape`.
fn sum_to<T: Scalar>(g: &Array2<T>, shape: (usize, usize)) -> Array2<T> {
    match (shape.0 == 1 && g.nrows() != 1, shape.1 == 1 && g.ncols() != 1) {
        (false, false) => pool::copy(g),
        (true, false) => column_sums(g),
        (false, true) => g.sum_axis(Axis(1)).insert_axis(Axis(1)),
        (true, true) => g
            .sum_axis(Axis(0))
            .sum_axis(Axis(0))
            .insert_axis(Axis(0))
            .insert_axis(Axis(1)),
    }
}

fn bcast<T: Scalar>(a: &Array2<T>, shape: (usize, usize)) -> ArrayView2<'_, T> {
    a.broadcast(shape).expect("shape checked by broadcast_shape")
}

// ---------------------------------------------------------------- matmul

/// `a [m, k] · b [k, n]`.
pub struct MatMul;
impl<T: Scalar> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let (a, b) = (xs[0], xs[1]);
        assert!(
            a.ncols() == b.nrows(),
            "matmul: shapes {:?} and {:?} do not chain",
            a.dim(),
            b.dim()
        );
        gemm::dot(a.view(), b.view())
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let (a, b) = (xs[0], xs[1]);
        vec![Some(gemm::dot(g.view(), b.t())), Some(gemm::dot(a.t(), g.view()))]
    }
}

/// `x · w` for a constant sparse `x` (state features) and a dense `w`;
/// backward `dw = xᵀ · g` (no gradient flows to `x`). With `at`, row `r` of
/// `x` gives row `at[r]` of the product (the sampler keeps its rows in
/// another order than the transitions'), and `dw` is summed over the rows
/// of `x` in their order.
#[derive(Clone)]
pub struct SparseMatMul {
    pub x: std::sync::Arc<crate::nn::Csr>,
    pub at: Option<std::sync::Arc<[usize]>>,
}
impl<T: Scalar> Op<T> for SparseMatMul {
    fn name(&self) -> &'static str {
        "sparse_matmul"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let y = self.x.matmul(xs[0]);
        match &self.at {
            None => y,
            Some(at) => {
                let mut moved = pool::scratch(y.dim());
                at.iter()
                    .zip(y.rows())
                    .for_each(|(&r, row)| moved.row_mut(r).assign(&row));
                pool::give(y);
                moved
            }
        }
    }
    fn backward(&self, _: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(self.x.t_matmul(g, self.at.as_deref()))]
    }
}

/// `act(x [m, k] · w [k, n] + b [1, n])`, a linear layer and its activation
/// (if any) in one op: [`MatMul`] with the bias added to the product in place
/// and the activation applied in place on that; backward, the gradient passes
/// back through the activation (its derivative read from the output), then
/// [`MatMul`]'s, and the bias's gradient is the column sums.
pub struct Affine(pub Option<Activation>);
impl<T: Scalar> Op<T> for Affine {
    fn name(&self) -> &'static str {
        "affine"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let mut y = MatMul.forward(&xs[..2]);
        bias_then("affine", self.0, y.view_mut(), xs[2]);
        y
    }
    fn backward(&self, xs: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        through(self.0, out, g, |g| MatMul.backward(&xs[..2], out, g))
    }
}

impl Affine {
    /// The forward pass without a tape (inference) into `out`, each row of
    /// the product computed by the same operations whatever the others ([`gemm::dot`]).
    pub fn infer_into<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        w: &Array2<T>,
        b: &Array2<T>,
        mut out: ArrayViewMut2<'_, T>,
    ) {
        gemm::dot_into(x, w.view(), out.view_mut());
        bias_then("affine", self.0, out, b);
    }
}

/// `act(x · w + b)` for a constant sparse `x` (state features): [`SparseMatMul`]
/// with the bias and activation of [`Affine`].
pub struct SparseAffine(pub SparseMatMul, pub Option<Activation>);
impl<T: Scalar> Op<T> for SparseAffine {
    fn name(&self) -> &'static str {
        "sparse_affine"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let mut y = self.0.forward(&xs[..1]);
        bias_then("sparse_affine", self.1, y.view_mut(), xs[1]);
        y
    }
    fn backward(&self, xs: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        through(self.1, out, g, |g| self.0.backward(&xs[..1], out, g))
    }
}

impl SparseAffine {
    /// The forward pass without a tape (inference) into `out`, for borrowed
    /// rows `x`, resumed from earlier rows' products as [`crate::nn::Csr::matmul_into`] does.
    pub fn infer_into<T: Scalar>(
        x: &crate::nn::Csr,
        resume: Option<(&mut crate::nn::RowSums<T>, &[usize])>,
        w: &Array2<T>,
        b: &Array2<T>,
        act: Option<Activation>,
        mut out: ArrayViewMut2<'_, T>,
    ) {
        x.matmul_into(w, resume, out.view_mut());
        bias_then("sparse_affine", act, out, b);
    }
}

/// The gradients of an affine layer whose output `out` received `g`: `g`
/// back through the activation (in its own place), then the product's
/// gradients (`product`) and the bias's (column sums, added up in the
/// activation's pass).
fn through<T: Scalar>(
    act: Option<Activation>,
    out: &Array2<T>,
    g: &mut Array2<T>,
    product: impl Fn(&mut Array2<T>) -> Vec<Option<Array2<T>>>,
) -> Vec<Option<Array2<T>>> {
    let mut bias = Array2::zeros((1, g.ncols()));
    let sums = bias.as_slice_mut().expect("a new row");
    match act {
        Some(act) => act.backprop(out, g, Some(sums)),
        None => add_column_sums(sums, g),
    }
    let mut grads = product(g);
    grads.push(Some(bias));
    grads
}

/// `act(a + b)` in place, with the row `b [1, n]` added to each row of the
/// product `a`; panics naming `op` and both shapes if `b` is not such a row.
fn bias_then<T: Scalar>(op: &str, act: Option<Activation>, a: ArrayViewMut2<'_, T>, b: &Array2<T>) {
    assert!(
        b.dim() == (1, a.ncols()),
        "{op}: bias {:?} for a product {:?}",
        b.dim(),
        a.dim()
    );
    let b = b.as_standard_layout();
    Activation::bias_then(act, a, Some(b.as_slice().expect("row-major")));
}

/// Adds the column sums of `g` into `sums`, each column from the first row
/// down (as `sum_axis(Axis(0))` adds them).
pub(crate) fn add_column_sums<T: Scalar>(sums: &mut [T], g: &Array2<T>) {
    for row in g.rows() {
        match row.as_slice() {
            // contiguous rows (the usual case): a loop the compiler vectorizes
            Some(r) => sums.iter_mut().zip(r).for_each(|(s, &v)| *s += v),
            None => sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v),
        }
    }
}

/// Sums of the columns of `g`, `[1, n]` (the gradient of a broadcast bias row).
fn column_sums<T: Scalar>(g: &Array2<T>) -> Array2<T> {
    let mut sums = Array2::zeros((1, g.ncols()));
    add_column_sums(sums.as_slice_mut().expect("a new row"), g);
    sums
}

// ---------------------------------------------------------------- add, sub, mul

/// `a + b` with size-1 broadcasting.
pub struct Add;
impl<T: Scalar> Op<T> for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let shape = broadcast_shape("add", xs[0].dim(), xs[1].dim());
        let mut out = pool::scratch(shape);
        Zip::from(out.rows_mut())
            .and(bcast(xs[0], shape).rows())
            .and(bcast(xs[1], shape).rows())
            .for_each(|mut o, a, b| match (o.as_slice_mut(), a.as_slice(), b.as_slice()) {
                // contiguous rows (e.g. a batch plus a bias row): a loop the compiler vectorizes
                (Some(o), Some(a), Some(b)) => o.iter_mut().zip(a).zip(b).for_each(|((o, &a), &b)| *o = a + b),
                _ => Zip::from(o).and(a).and(b).for_each(|o, &a, &b| *o = a + b),
            });
        out
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(sum_to(g, xs[0].dim())), Some(sum_to(g, xs[1].dim()))]
    }
}

/// `a - b` with size-1 broadcasting.
pub struct Sub;
impl<T: Scalar> Op<T> for Sub {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let shape = broadcast_shape("sub", xs[0].dim(), xs[1].dim());
        &bcast(xs[0], shape) - &bcast(xs[1], shape)
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(sum_to(g, xs[0].dim())), Some(sum_to(&g.mapv(|v| -v), xs[1].dim()))]
    }
}

/// `a * b` elementwise with size-1 broadcasting.
pub struct Mul;
impl<T: Scalar> Op<T> for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let shape = broadcast_shape("mul", xs[0].dim(), xs[1].dim());
        &bcast(xs[0], shape) * &bcast(xs[1], shape)
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let shape = g.dim();
        let (a, b) = (bcast(xs[0], shape), bcast(xs[1], shape));
        vec![
            Some(sum_to(&(&*g * &b), xs[0].dim())),
            Some(sum_to(&(&*g * &a), xs[1].dim())),
        ]
    }
}

// ---------------------------------------------------------------- scalar ops

/// `c * a`.
pub struct Scale(pub f64);
impl<T: Scalar> Op<T> for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        xs[0] * t::<T>(self.0)
    }
    fn backward(&self, _: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(&*g * t::<T>(self.0))]
    }
}

/// `a + c`.
pub struct AddScalar(pub f64);
impl<T: Scalar> Op<T> for AddScalar {
    fn name(&self) -> &'static str {
        "add_scalar"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        xs[0] + t::<T>(self.0)
    }
    fn backward(&self, _: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(g.clone())]
    }
}

// ---------------------------------------------------------------- elementwise functions

/// `exp(a)`; `d/da = exp(a)`, reusing the output.
pub struct Exp;
impl<T: Scalar> Op<T> for Exp {
    fn name(&self) -> &'static str {
        "exp"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        xs[0].mapv(T::exp)
    }
    fn backward(&self, _: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(&*g * out)]
    }
}

/// `ln(a)`; `d/da = 1 / a`.
pub struct Log;
impl<T: Scalar> Op<T> for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        xs[0].mapv(T::ln)
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(&*g / xs[0])]
    }
}

/// `a^2`; `d/da = 2a`.
pub struct Square;
impl<T: Scalar> Op<T> for Square {
    fn name(&self) -> &'static str {
        "square"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        xs[0].mapv(|v| v * v)
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(&*g * &xs[0].mapv(|v| v + v))]
    }
}

/// An [`Activation`] elementwise; its derivative is read from the output.
pub struct Activate(pub Activation);
impl<T: Scalar> Op<T> for Activate {
    fn name(&self) -> &'static str {
        "activate"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let mut y = pool::copy(xs[0]);
        Activation::bias_then(Some(self.0), y.view_mut(), None);
        y
    }
    fn backward(&self, _: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        self.0.backprop(out, g, None);
        vec![Some(std::mem::take(g))]
    }
}

// ---------------------------------------------------------------- reductions

/// Sum of all entries (`axis: None`, `[1, 1]`) or along an axis, kept as size 1.
pub struct Sum {
    pub axis: Option<usize>,
}
impl<T: Scalar> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        match self.axis {
            None => Array2::from_elem((1, 1), xs[0].sum()),
            Some(ax) => {
                assert!(ax < 2, "sum: axis {ax} of a 2-D value");
                xs[0].sum_axis(Axis(ax)).insert_axis(Axis(ax))
            }
        }
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        vec![Some(bcast(g, xs[0].dim()).to_owned())]
    }
}

/// `log sum exp` along an axis, kept as size 1; `d/da_j = exp(a_j - out)`.
pub struct LogSumExp {
    pub axis: usize,
}
impl<T: Scalar> Op<T> for LogSumExp {
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        assert!(self.axis < 2, "logsumexp: axis {} of a 2-D value", self.axis);
        xs[0]
            .map_axis(Axis(self.axis), |lane| {
                let m = lane.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                if m == T::neg_infinity() {
                    return m;
                }
                m + lane.iter().map(|&v| (v - m).exp()).sum::<T>().ln()
            })
            .insert_axis(Axis(self.axis))
    }
    fn backward(&self, xs: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let shape = xs[0].dim();
        let mut d = Array2::zeros(shape);
        Zip::from(&mut d)
            .and(xs[0])
            .and(&bcast(out, shape))
            .and(&bcast(g, shape))
            .for_each(|d, &x, &o, &g| {
                if o != T::neg_infinity() {
                    *d = g * (x - o).exp()
                }
            });
        vec![Some(d)]
    }
}

// ---------------------------------------------------------------- masked softmax family

fn check_mask<T>(op: &str, x: &Array2<T>, mask: &Array2<bool>) {
    assert!(
        x.dim() == mask.dim(),
        "{op}: logits {:?} and mask {:?} differ",
        x.dim(),
        mask.dim()
    );
}

/// Row-wise log-softmax restricted to `mask`. Masked entries: `-inf` out, zero gradient in.
/// Backward over valid entries: `d_j = g_j - p_j * sum_k g_k`.
/// The `log sum exp` of each row's valid entries is computed in `f64` (as
/// the sampler computes it, so that an `f32` tape's log-probabilities are the
/// sampler's bit for bit), or taken from `lse` when the sampler kept it.
pub struct MaskedLogSoftmax {
    pub mask: Array2<bool>,
    pub lse: Option<Vec<f64>>,
}
impl<T: Scalar> Op<T> for MaskedLogSoftmax {
    fn name(&self) -> &'static str {
        "masked_log_softmax"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        masked_log_softmax("masked_log_softmax", xs[0], &self.mask, self.lse.as_deref())
    }
    fn backward(&self, _: &[&Array2<T>], out: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        // the probabilities, then in their place the gradient
        let mut d = probabilities(out);
        let (g, mask) = (g.as_standard_layout(), self.mask.as_standard_layout());
        let each = rows_of(&mut d).zip(rows(&g)).zip(rows(&mask));
        wide(|| {
            for ((d, g), m) in each {
                let total: T = g.iter().zip(m).filter(|(_, &m)| m).map(|(&g, _)| g).sum();
                for ((d, &g), &m) in d.iter_mut().zip(g).zip(m) {
                    *d = if m { g - *d * total } else { T::zero() };
                }
            }
        });
        vec![Some(d)]
    }
}

/// `log softmax` of each row of `x` over its `mask`ed entries (`-inf`
/// elsewhere): `x_j - lse` with `lse` in `f64`, computed or given per row.
fn masked_log_softmax<T: Scalar>(op: &str, x: &Array2<T>, mask: &Array2<bool>, lse: Option<&[f64]>) -> Array2<T> {
    check_mask(op, x, mask);
    if let Some(lse) = lse {
        assert_eq!(
            lse.len(),
            x.nrows(),
            "{op}: {} log-sum-exps for {} rows",
            lse.len(),
            x.nrows()
        );
    }
    let computed: Vec<f64>;
    let lse = match lse {
        Some(lse) => lse,
        None => {
            computed = (x.rows().into_iter().zip(mask.rows()).enumerate())
                .map(|(i, (x, m))| {
                    masked_row_logsumexp(x.iter().map(|v| v.to_f64()), m.iter().copied())
                        .unwrap_or_else(|| panic!("{op}: row {i} has no valid entry"))
                })
                .collect();
            &computed
        }
    };
    let mut out = pool::scratch(x.dim());
    let (x, mask) = (x.as_standard_layout(), mask.as_standard_layout());
    let each = rows_of(&mut out).zip(rows(&x)).zip(rows(&mask)).zip(lse);
    wide(|| {
        for (((o, x), m), &lse) in each {
            for ((o, &v), &m) in o.iter_mut().zip(x).zip(m) {
                *o = if m { log_prob_given(v, lse) } else { T::neg_infinity() };
            }
        }
    });
    out
}

/// The rows of a row-major array, as slices (a loop over them the compiler
/// vectorizes, where ndarray's per-entry indexing it does not).
fn rows<'a, S: ndarray::Data>(a: &'a ndarray::ArrayBase<S, ndarray::Ix2>) -> std::slice::ChunksExact<'a, S::Elem> {
    let n = a.ncols().max(1);
    a.as_slice().expect("a standard-layout array").chunks_exact(n)
}

/// [`rows`] of a pooled array, to write.
fn rows_of<A>(a: &mut Array2<A>) -> std::slice::ChunksExactMut<'_, A> {
    let n = a.ncols().max(1);
    a.as_slice_mut()
        .expect("a pooled array is row-major")
        .chunks_exact_mut(n)
}

/// `exp` of every entry of `log_p` (log-probabilities, `-inf` for 0), in a
/// pooled array: the exponentials of a whole log-softmax in one vectorized pass.
fn probabilities<T: Scalar>(log_p: &Array2<T>) -> Array2<T> {
    let mut p = pool::scratch(log_p.dim());
    p.assign(log_p);
    T::exp_in_place(p.as_slice_mut().expect("a pooled array is row-major"));
    p
}

/// `logit - lse` in `f64`, rounded once: the one place where both the
/// sampler's recorded `log P_F` and [`MaskedLogSoftmax`] round it, so that
/// training's are the sampler's bit for bit.
pub(crate) fn log_prob_given<T: Scalar>(logit: T, lse: f64) -> T {
    T::from_f64(logit.to_f64() - lse)
}

/// `log sum_{j valid} exp(x_j)`, or `None` when no entry is valid.
pub(crate) fn masked_row_logsumexp<T: Scalar>(
    x: impl Iterator<Item = T> + Clone,
    mask: impl Iterator<Item = bool> + Clone,
) -> Option<T> {
    let m = x
        .clone()
        .zip(mask.clone())
        .filter(|(_, m)| *m)
        .map(|(v, _)| v)
        .fold(None, |acc: Option<T>, v| Some(acc.map_or(v, |a| a.max(v))))?;
    let s: T = x.zip(mask).filter(|(_, m)| *m).map(|(v, _)| (v - m).exp()).sum();
    Some(m + s.ln())
}

/// Row-wise entropy `H = -sum_j p_j log p_j` of a distribution given by its
/// log-probabilities `l` (a [`MaskedLogSoftmax`]'s output), `[m, 1]`; entries
/// `-inf` (probability 0) contribute nothing.
/// Backward over the others: `dH/dl_j = -p_j (l_j + 1)` (through the
/// log-softmax this is `-p_j (log p_j + H)` on the logits).
pub struct Entropy;
impl<T: Scalar> Op<T> for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let mut h = Array2::zeros((xs[0].nrows(), 1));
        let p = probabilities(xs[0]);
        let log_p = xs[0].as_standard_layout();
        let each = h.iter_mut().zip(rows(&log_p)).zip(rows(&p));
        wide(|| {
            for ((h, l), p) in each {
                *h = -l
                    .iter()
                    .zip(p.iter())
                    .filter(|(&l, _)| l > T::neg_infinity())
                    .map(|(&l, &p)| p * l)
                    .sum::<T>();
            }
        });
        pool::give(p);
        h
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        // the probabilities, as in the forward pass, then in their place the gradient
        let mut d = probabilities(xs[0]);
        let log_p = xs[0].as_standard_layout();
        let each = rows_of(&mut d).zip(rows(&log_p)).zip(g.iter());
        wide(|| {
            for ((d, l), &g) in each {
                for (d, &l) in d.iter_mut().zip(l) {
                    *d = if l > T::neg_infinity() {
                        -g * *d * (l + T::one())
                    } else {
                        T::zero()
                    };
                }
            }
        });
        vec![Some(d)]
    }
}

// ---------------------------------------------------------------- indexing

/// One entry per row: `out[i] = a[i, index[i]]`; backward scatters `g[i]` back.
pub struct Gather {
    pub index: Vec<usize>,
}
impl<T: Scalar> Op<T> for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let a = xs[0];
        assert!(
            a.nrows() == self.index.len(),
            "gather: {} indices for a value of shape {:?}",
            self.index.len(),
            a.dim()
        );
        Array2::from_shape_fn((a.nrows(), 1), |(i, _)| {
            let j = self.index[i];
            assert!(j < a.ncols(), "gather: index {j} out of range for shape {:?}", a.dim());
            a[[i, j]]
        })
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let mut d = pool::zeros(xs[0].dim());
        for (i, &j) in self.index.iter().enumerate() {
            d[[i, j]] = g[[i, 0]];
        }
        vec![Some(d)]
    }
}

/// Rows picked by index (repeats allowed); backward scatter-adds.
pub struct IndexSelect {
    pub rows: Vec<usize>,
}
impl<T: Scalar> Op<T> for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let a = xs[0];
        if let Some(&r) = self.rows.iter().find(|&&r| r >= a.nrows()) {
            panic!("index_select: row {r} out of range for shape {:?}", a.dim());
        }
        let mut y = pool::scratch((self.rows.len(), a.ncols()));
        let n = a.ncols().max(1);
        match (y.as_slice_mut(), a.as_slice()) {
            // row by row from a row-major value, into a row-major output
            (Some(y), Some(src)) => {
                for (y, &r) in y.chunks_exact_mut(n).zip(&self.rows) {
                    y.copy_from_slice(&src[r * n..(r + 1) * n]);
                }
            }
            _ => y.assign(&a.select(Axis(0), &self.rows)),
        }
        y
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let mut d = pool::zeros(xs[0].dim());
        let n = d.ncols().max(1);
        match (d.as_slice_mut(), g.as_slice()) {
            (Some(d), Some(g)) => {
                for (g, &r) in g.chunks_exact(n).zip(&self.rows) {
                    d[r * n..(r + 1) * n].iter_mut().zip(g).for_each(|(d, &g)| *d += g);
                }
            }
            _ => {
                for (k, &r) in self.rows.iter().enumerate() {
                    let mut row = d.row_mut(r);
                    row += &g.row(k);
                }
            }
        }
        vec![Some(d)]
    }
}

/// Concatenation along an axis; backward slices the gradient apart.
pub struct Concat {
    pub axis: usize,
}
impl<T: Scalar> Op<T> for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
        concatenate(Axis(self.axis), &views).unwrap_or_else(|_| {
            let shapes: Vec<_> = xs.iter().map(|x| x.dim()).collect();
            panic!("concat: shapes {shapes:?} do not line up along axis {}", self.axis)
        })
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let mut at = 0;
        xs.iter()
            .map(|x| {
                let n = x.len_of(Axis(self.axis));
                let part = match self.axis {
                    0 => g.slice(s![at..at + n, ..]).to_owned(),
                    _ => g.slice(s![.., at..at + n]).to_owned(),
                };
                at += n;
                Some(part)
            })
            .collect()
    }
}

fn check_offsets<T>(op: &str, a: &Array2<T>, offsets: &[usize]) {
    let ok =
        offsets.first() == Some(&0) && offsets.last() == Some(&a.nrows()) && offsets.windows(2).all(|w| w[0] <= w[1]);
    assert!(
        ok,
        "{op}: offsets must rise from 0 to the {} rows of shape {:?}",
        a.nrows(),
        a.dim()
    );
}

/// Row sums over segments `offsets[s]..offsets[s+1]`; backward broadcasts each segment's gradient.
pub struct SegmentSum {
    pub offsets: Vec<usize>,
}
impl<T: Scalar> Op<T> for SegmentSum {
    fn name(&self) -> &'static str {
        "segment_sum"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let a = xs[0];
        check_offsets("segment_sum", a, &self.offsets);
        let mut out = Array2::zeros((self.offsets.len() - 1, a.ncols()));
        match a.as_slice() {
            // `sum_axis` adds the rows one after the other, from zero; here
            // over the rows' slices, without a temporary per segment: the same bits
            Some(values) if a.ncols() > 0 => {
                let n = a.ncols();
                for (sum, w) in rows_of(&mut out).zip(self.offsets.windows(2)) {
                    for r in values[w[0] * n..w[1] * n].chunks_exact(n) {
                        sum.iter_mut().zip(r).for_each(|(s, &v)| *s += v);
                    }
                }
            }
            _ => {
                for (s, w) in self.offsets.windows(2).enumerate() {
                    let mut row = out.row_mut(s);
                    row += &a.slice(s![w[0]..w[1], ..]).sum_axis(Axis(0));
                }
            }
        }
        out
    }
    fn backward(&self, xs: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let mut d = Array2::zeros(xs[0].dim());
        for (s, w) in self.offsets.windows(2).enumerate() {
            d.slice_mut(s![w[0]..w[1], ..]).assign(&g.row(s));
        }
        vec![Some(d)]
    }
}

/// Inclusive cumulative row sum inside each segment; backward is the reverse cumulative sum.
pub struct SegmentCumsum {
    pub offsets: Vec<usize>,
}
impl<T: Scalar> Op<T> for SegmentCumsum {
    fn name(&self) -> &'static str {
        "segment_cumsum"
    }
    fn forward(&self, xs: &[&Array2<T>]) -> Array2<T> {
        let a = xs[0];
        check_offsets("segment_cumsum", a, &self.offsets);
        let mut out = a.clone();
        for w in self.offsets.windows(2) {
            for r in w[0] + 1..w[1] {
                let (prev, mut cur) = out.multi_slice_mut((s![r - 1, ..], s![r, ..]));
                cur += &prev;
            }
        }
        out
    }
    fn backward(&self, _: &[&Array2<T>], _: &Array2<T>, g: &mut Array2<T>) -> Vec<Option<Array2<T>>> {
        let mut d = g.clone();
        for w in self.offsets.windows(2) {
            for r in (w[0]..w[1].saturating_sub(1)).rev() {
                let (mut cur, next) = d.multi_slice_mut((s![r, ..], s![r + 1, ..]));
                cur += &next;
            }
        }
        vec![Some(d)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    #[test]
    fn masked_log_softmax_backward_ignores_the_gradient_of_masked_entries() {
        // on a tape, masked entries' gradients arrive as zeros; here they do
        // not, and must neither pass through nor enter the valid entries' sum
        let x = Array2::from_shape_fn((4, 7), |(i, j)| ((i * 5 + j * 3) % 11) as f64 * 0.3 - 1.2);
        let mask = Array2::from_shape_fn((4, 7), |(i, j)| (i + 2 * j) % 3 != 0);
        let op = MaskedLogSoftmax {
            mask: mask.clone(),
            lse: None,
        };
        let out = Op::<f64>::forward(&op, &[&x]);
        let g0 = Array2::from_shape_fn((4, 7), |(i, j)| 1.0 + (i * 7 + j) as f64 * 0.25);
        let d = Op::<f64>::backward(&op, &[&x], &out, &mut g0.clone())[0]
            .clone()
            .unwrap();
        for i in 0..4 {
            let total: f64 = (0..7).filter(|&j| mask[[i, j]]).map(|j| g0[[i, j]]).sum();
            for j in 0..7 {
                let want = match mask[[i, j]] {
                    true => g0[[i, j]] - out[[i, j]].exp() * total,
                    false => 0.0,
                };
                assert!(
                    (d[[i, j]] - want).abs() < 1e-12,
                    "({i}, {j}): {} against {want}",
                    d[[i, j]]
                );
            }
        }
    }

    #[test]
    fn column_sums_add_the_rows_in_order_as_sum_axis_does() {
        // magnitudes far apart, so that another order of the additions would round differently
        let g = Array2::from_shape_fn((37, 19), |(i, j)| {
            ((i * 7 + j * 3) % 11) as f32 * 10f32.powi((i % 5) as i32 - 2)
        });
        let ours = column_sums(&g);
        let reference = g.sum_axis(Axis(0)).insert_axis(Axis(0));
        assert!(ours.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()));
        // column-major rows are not contiguous: the other branch
        let mut fortran = Array2::zeros(g.raw_dim().f());
        fortran.assign(&g);
        assert!(column_sums(&fortran)
            .iter()
            .zip(&reference)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn segment_sums_add_the_rows_in_order_as_sum_axis_does() {
        let a = Array2::from_shape_fn((23, 5), |(i, j)| {
            let v = ((i * 5 + j * 7) % 13) as f32 * 10f32.powi((i % 5) as i32 - 2);
            if (i + j) % 3 == 0 {
                -v
            } else {
                v
            }
        });
        let op = SegmentSum {
            offsets: vec![0, 0, 1, 9, 9, 17, 23],
        };
        for x in [a.clone(), {
            let mut f = Array2::zeros(a.raw_dim().f());
            f.assign(&a);
            f
        }] {
            let ours = Op::<f32>::forward(&op, &[&x]);
            for (s, w) in op.offsets.windows(2).enumerate() {
                let reference = x.slice(s![w[0]..w[1], ..]).sum_axis(Axis(0));
                let row = ours.row(s);
                assert!(
                    row.iter()
                        .zip(&reference)
                        .all(|(a, b)| (0.0 + b).to_bits() == a.to_bits()),
                    "segment {s}"
                );
            }
        }
    }
}
