//! The tape: an arena of values and the ops that made them.

use ndarray::Array2;

use super::ops::{self, Op};
use super::Activation;
use crate::Scalar;

/// A handle to one value on a [`Tape`]. Cheap to copy; only meaningful for
/// the tape that made it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);

impl Var {
    /// Position of this node in its tape's arena.
    pub fn index(self) -> usize {
        self.0
    }
}

struct Node<T: Scalar> {
    inputs: Vec<Var>,
    op: Option<Box<dyn Op<T>>>,
    requires_grad: bool,
}

/// An arena of nodes recorded in execution order.
pub struct Tape<T: Scalar> {
    values: Vec<Array2<T>>,
    nodes: Vec<Node<T>>,
}

impl<T: Scalar> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Tape<T> {
    pub fn new() -> Self {
        Tape {
            values: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn push(&mut self, value: Array2<T>, inputs: Vec<Var>, op: Option<Box<dyn Op<T>>>, requires_grad: bool) -> Var {
        self.values.push(value);
        self.nodes.push(Node {
            inputs,
            op,
            requires_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// A leaf whose gradient is wanted (a parameter or an input under test).
    pub fn leaf(&mut self, value: Array2<T>) -> Var {
        self.push(value, Vec::new(), None, true)
    }

    /// A leaf that never receives a gradient (features, masks, rewards).
    pub fn constant(&mut self, value: Array2<T>) -> Var {
        self.push(value, Vec::new(), None, false)
    }

    /// A `[1, 1]` constant.
    pub fn scalar(&mut self, x: f64) -> Var {
        self.constant(Array2::from_elem((1, 1), T::from_f64(x)))
    }

    /// The value of a node.
    pub fn value(&self, v: Var) -> &Array2<T> {
        &self.values[v.0]
    }

    /// The value of a `[1, 1]` node as a number.
    pub fn item(&self, v: Var) -> T {
        let a = self.value(v);
        assert!(a.dim() == (1, 1), "item: expected a [1, 1] value, got {:?}", a.dim());
        a[[0, 0]]
    }

    /// Whether gradients flow into this node.
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// `f` of the values of `inputs`, listed on the stack for up to four (an
    /// op's usual count; not one allocation per op and pass), else in a `Vec`.
    fn with_values<R>(&self, inputs: &[Var], f: impl FnOnce(&[&Array2<T>]) -> R) -> R {
        match inputs {
            [first, ..] if inputs.len() <= 4 => {
                let mut xs = [&self.values[first.0]; 4];
                xs.iter_mut().zip(inputs).for_each(|(x, v)| *x = &self.values[v.0]);
                f(&xs[..inputs.len()])
            }
            _ => f(&inputs.iter().map(|v| &self.values[v.0]).collect::<Vec<_>>()),
        }
    }

    /// Records `op` applied to `inputs`: computes the forward value now.
    pub fn apply<O: Op<T> + 'static>(&mut self, op: O, inputs: &[Var]) -> Var {
        let value = self.with_values(inputs, |xs| op.forward(xs));
        self.record(op, inputs, value)
    }

    /// Records `op` applied to `inputs` with its forward `value` already
    /// computed elsewhere (e.g. by inference on the same weights), so that the
    /// backward pass runs through it without computing the forward again.
    /// The caller vouches that `value` is what `op` gives on these inputs.
    pub fn record<O: Op<T> + 'static>(&mut self, op: O, inputs: &[Var], value: Array2<T>) -> Var {
        let requires_grad = op.differentiable() && inputs.iter().any(|v| self.nodes[v.0].requires_grad);
        let op: Option<Box<dyn Op<T>>> = if requires_grad { Some(Box::new(op)) } else { None };
        self.push(value, inputs.to_vec(), op, requires_grad)
    }

    /// Reverse pass from the scalar `loss`: one walk over the arena in reverse.
    /// Returns the leaves' gradients; each op's output gradient is handed to
    /// its backward to overwrite, and is gone afterwards.
    ///
    /// Panics if `loss` is not `[1, 1]`.
    pub fn backward(&self, loss: Var) -> Gradients<T> {
        let shape = self.values[loss.0].dim();
        assert!(shape == (1, 1), "backward: the loss must be [1, 1], got {shape:?}");
        let mut grads: Vec<Option<Array2<T>>> = vec![None; loss.0 + 1];
        if self.nodes[loss.0].requires_grad {
            grads[loss.0] = Some(Array2::from_elem((1, 1), T::one()));
        }
        for i in (0..=loss.0).rev() {
            let node = &self.nodes[i];
            let Some(op) = &node.op else { continue };
            // an interior node's gradient is the op's to overwrite, then the pool's
            let Some(mut g) = grads[i].take() else { continue };
            let input_grads = self.with_values(&node.inputs, |xs| op.backward(xs, &self.values[i], &mut g));
            super::pool::give(g);
            debug_assert_eq!(
                input_grads.len(),
                node.inputs.len(),
                "{}: one gradient per input",
                op.name()
            );
            for (x, gx) in node.inputs.iter().zip(input_grads) {
                if !self.nodes[x.0].requires_grad {
                    continue;
                }
                let Some(gx) = gx else { continue };
                debug_assert_eq!(gx.dim(), self.values[x.0].dim(), "{}: gradient shape", op.name());
                match &mut grads[x.0] {
                    Some(acc) => {
                        match (acc.as_slice_mut(), gx.as_slice()) {
                            (Some(a), Some(g)) => {
                                crate::scalar::wide(|| a.iter_mut().zip(g).for_each(|(a, &g)| *a += g))
                            }
                            _ => *acc += &gx,
                        }
                        super::pool::give(gx);
                    }
                    slot @ None => *slot = Some(gx),
                }
            }
        }
        Gradients { grads }
    }

    // ----- convenience constructors, one per op (see `ops` for the math) -----

    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.apply(ops::MatMul, &[a, b])
    }
    /// `x · w` for sparse constant rows `x` (see [`crate::nn::Csr`]).
    pub fn sparse_matmul(&mut self, x: std::sync::Arc<crate::nn::Csr>, w: Var) -> Var {
        self.apply(ops::SparseMatMul { x, at: None }, &[w])
    }
    /// `act(x · w + b)` for a bias row `b` (a linear layer and its
    /// activation, if any, in one op). Panics on a leaky ReLU slope that is
    /// negative or not finite.
    pub fn affine(&mut self, x: Var, w: Var, b: Var, act: Option<Activation>) -> Var {
        self.apply(ops::Affine(act.map(checked)), &[x, w, b])
    }
    /// `act(x · w + b)` for sparse constant rows `x` and a bias row `b`.
    pub fn sparse_affine(&mut self, x: std::sync::Arc<crate::nn::Csr>, w: Var, b: Var, act: Option<Activation>) -> Var {
        self.apply(
            ops::SparseAffine(ops::SparseMatMul { x, at: None }, act.map(checked)),
            &[w, b],
        )
    }
    /// Elementwise `a + b`, broadcasting size-1 dimensions (e.g. a bias row).
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.apply(ops::Add, &[a, b])
    }
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.apply(ops::Sub, &[a, b])
    }
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.apply(ops::Mul, &[a, b])
    }
    pub fn neg(&mut self, a: Var) -> Var {
        self.apply(ops::Scale(-1.0), &[a])
    }
    /// `c * a` for a number `c`.
    pub fn scale(&mut self, a: Var, c: f64) -> Var {
        self.apply(ops::Scale(c), &[a])
    }
    /// `a + c` for a number `c`.
    pub fn add_scalar(&mut self, a: Var, c: f64) -> Var {
        self.apply(ops::AddScalar(c), &[a])
    }
    pub fn exp(&mut self, a: Var) -> Var {
        self.apply(ops::Exp, &[a])
    }
    pub fn log(&mut self, a: Var) -> Var {
        self.apply(ops::Log, &[a])
    }
    pub fn square(&mut self, a: Var) -> Var {
        self.apply(ops::Square, &[a])
    }
    /// An [`Activation`] elementwise (see [`Tape::affine`] for one fused with a layer).
    pub fn activate(&mut self, a: Var, act: Activation) -> Var {
        self.apply(ops::Activate(checked(act)), &[a])
    }
    pub fn relu(&mut self, a: Var) -> Var {
        self.activate(a, Activation::Relu)
    }
    /// `a if a > 0 else slope * a`; panics unless `slope` is finite and `>= 0`.
    pub fn leaky_relu(&mut self, a: Var, slope: f64) -> Var {
        self.activate(a, Activation::LeakyRelu(slope))
    }
    pub fn tanh(&mut self, a: Var) -> Var {
        self.activate(a, Activation::Tanh)
    }
    /// Sum of all entries, `[1, 1]`.
    pub fn sum(&mut self, a: Var) -> Var {
        self.apply(ops::Sum { axis: None }, &[a])
    }
    /// Mean of all entries, `[1, 1]`.
    pub fn mean(&mut self, a: Var) -> Var {
        let n = self.value(a).len();
        let s = self.sum(a);
        self.scale(s, 1.0 / n as f64)
    }
    /// Sum along `axis`, keeping it as size 1 (`axis = 1`: row sums `[m, 1]`).
    pub fn sum_axis(&mut self, a: Var, axis: usize) -> Var {
        self.apply(ops::Sum { axis: Some(axis) }, &[a])
    }
    /// Mean along `axis`, keeping it as size 1.
    pub fn mean_axis(&mut self, a: Var, axis: usize) -> Var {
        let n = self.value(a).len_of(ndarray::Axis(axis));
        let s = self.sum_axis(a, axis);
        self.scale(s, 1.0 / n as f64)
    }
    /// Row-wise log-softmax over the entries where `mask` is true. Masked
    /// entries get log-probability `-inf` (probability exactly 0) and zero
    /// gradient. Panics if a row has no valid entry.
    pub fn masked_log_softmax(&mut self, logits: Var, mask: Array2<bool>) -> Var {
        self.apply(ops::MaskedLogSoftmax { mask, lse: None }, &[logits])
    }
    /// [`Tape::masked_log_softmax`] with each row's `log sum exp` over its
    /// valid entries given (computed in `f64` by the sampler from these logits).
    pub fn masked_log_softmax_given(&mut self, logits: Var, mask: Array2<bool>, lse: Vec<f64>) -> Var {
        self.apply(ops::MaskedLogSoftmax { mask, lse: Some(lse) }, &[logits])
    }
    /// Row-wise entropy `-sum_j p_j log p_j` of the distributions whose
    /// log-probabilities are the rows of `log_p` (e.g. a
    /// [`Tape::masked_log_softmax`]; `-inf` entries count as probability 0), `[m, 1]`.
    pub fn entropy(&mut self, log_p: Var) -> Var {
        self.apply(ops::Entropy, &[log_p])
    }
    /// One entry per row: `out[i] = a[i, index[i]]`, `[m, 1]`.
    pub fn gather(&mut self, a: Var, index: Vec<usize>) -> Var {
        self.apply(ops::Gather { index }, &[a])
    }
    /// `log sum exp` along `axis`, keeping it as size 1. Stable for large
    /// inputs; `-inf` entries contribute nothing.
    pub fn logsumexp(&mut self, a: Var, axis: usize) -> Var {
        self.apply(ops::LogSumExp { axis }, &[a])
    }
    /// Stop-gradient: the same value, no gradient flows back.
    pub fn detach(&mut self, a: Var) -> Var {
        let v = self.value(a).clone();
        self.constant(v)
    }
    /// Rows of `a` picked by `rows` (repeats allowed), `[rows.len(), n]`.
    pub fn index_select(&mut self, a: Var, rows: Vec<usize>) -> Var {
        self.apply(ops::IndexSelect { rows }, &[a])
    }
    /// Concatenation along `axis`.
    pub fn concat(&mut self, parts: &[Var], axis: usize) -> Var {
        self.apply(ops::Concat { axis }, parts)
    }
    /// Sums of consecutive row segments: `offsets` has one more entry than
    /// segments, `out[s] = sum_{r in offsets[s]..offsets[s+1]} a[r]`.
    pub fn segment_sum(&mut self, a: Var, offsets: Vec<usize>) -> Var {
        self.apply(ops::SegmentSum { offsets }, &[a])
    }
    /// Inclusive cumulative sum of rows inside each segment (see [`Tape::segment_sum`]).
    pub fn segment_cumsum(&mut self, a: Var, offsets: Vec<usize>) -> Var {
        self.apply(ops::SegmentCumsum { offsets }, &[a])
    }
}

/// `act`, or a panic naming what is wrong with it.
fn checked(act: Activation) -> Activation {
    if let Err(e) = act.check() {
        panic!("{e}");
    }
    act
}

/// A dropped tape's values go back to the buffer pool for the next step.
impl<T: Scalar> Drop for Tape<T> {
    fn drop(&mut self) {
        self.values.drain(..).for_each(super::pool::give);
    }
}

/// The gradients of one backward pass, indexed by [`Var`].
pub struct Gradients<T: Scalar> {
    grads: Vec<Option<Array2<T>>>,
}

impl<T: Scalar> Drop for Gradients<T> {
    fn drop(&mut self) {
        self.grads.drain(..).flatten().for_each(super::pool::give);
    }
}

impl<T: Scalar> Gradients<T> {
    /// The gradient of the leaf `v`, or `None` if the loss does not depend
    /// on it (or `v` is not a leaf: see [`Tape::backward`]).
    pub fn get(&self, v: Var) -> Option<&Array2<T>> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }

    /// Takes the gradient of `v` out (zeros of `shape` if the loss does not depend on it).
    pub fn take_or_zeros(&mut self, v: Var, shape: (usize, usize)) -> Array2<T> {
        self.grads
            .get_mut(v.0)
            .and_then(|g| g.take())
            .unwrap_or_else(|| super::pool::zeros(shape))
    }
}
