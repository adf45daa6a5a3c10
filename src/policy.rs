//! The policy: an MLP trunk with heads for `P_F`, `P_B`, `log F` and a scalar `log Z`.

use std::sync::Arc;

use ndarray::Array2;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::ops::SparseMatMul;
use crate::autodiff::pool::with_rows;
use crate::autodiff::{Tape, Var};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::nn::{Activation, Bound, Csr, Init, Input, Linear, Mlp, ParamId, ParamStore, RowSums};
use crate::objective::Terms;
use crate::sampler::Trajectories;
use crate::Scalar;

/// Optimizer group of the network weights.
pub const NET_GROUP: &str = "net";
/// Optimizer group of `log Z` (it needs a much larger learning rate).
pub const LOG_Z_GROUP: &str = "log_z";

/// How `P_B` is obtained.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackwardPolicy {
    /// Uniform over the valid parents (exactly 1 on trees).
    #[default]
    Uniform,
    /// A learned head.
    Learned,
}

/// Shape of the policy network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub hidden: Vec<usize>,
    pub activation: Activation,
    #[serde(default)]
    pub backward: BackwardPolicy,
    /// Add a `log F(s)` head (DB and SubTB need it).
    #[serde(default)]
    pub log_f: bool,
    /// The `P_B` and `log F` heads share the `P_F` trunk (else they get a trunk of their own).
    #[serde(default = "yes")]
    pub shared_trunk: bool,
    /// Initial value of `log Z`.
    #[serde(default)]
    pub log_z_init: f64,
}

fn yes() -> bool {
    true
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            hidden: vec![256, 256],
            activation: Activation::Relu,
            backward: BackwardPolicy::Uniform,
            log_f: false,
            shared_trunk: true,
            log_z_init: 0.0,
        }
    }
}

impl PolicyConfig {
    /// Range checks that need no environment: at least one hidden width, each
    /// in [1, 65536], at most 2^28 hidden-to-hidden weights (1 GiB in f32), a
    /// leaky ReLU slope finite and `>= 0`, a finite initial `log Z`.
    pub fn validate(&self) -> Result<()> {
        let weights = self
            .hidden
            .windows(2)
            .try_fold(0usize, |acc, w| acc.checked_add(w[0].checked_mul(w[1])?));
        if self.hidden.is_empty()
            || self.hidden.iter().any(|&h| h == 0 || h > 1 << 16)
            || weights.is_none_or(|n| n > 1 << 28)
        {
            return Err(Error::config(
                "policy.hidden",
                format!(
                    "must list at least one width in [1, 65536], with at most 2^28 weights between hidden layers, got {:?}",
                    self.hidden
                ),
            ));
        }
        self.activation
            .check()
            .map_err(|e| Error::config("policy.activation", e))?;
        if !self.log_z_init.is_finite() {
            return Err(Error::config(
                "policy.log_z_init",
                format!("must be finite, got {}", self.log_z_init),
            ));
        }
        Ok(())
    }
}

/// Raw head outputs for a batch of states.
pub struct Heads {
    /// `[N, n_actions]` forward logits.
    pub pf_logits: Var,
    /// `[N, n_backward_actions]` backward logits (learned `P_B` only).
    pub pb_logits: Option<Var>,
    /// `[N, 1]` state log-flows.
    pub log_f: Option<Var>,
}

/// Every layer's output of a pass without a tape over some rows (see
/// [`Policy::activations`]): what the sampler computed, which the training
/// pass over the same states under the same weights reuses instead of
/// computing it again ([`Policy::terms_sampled`]).
#[derive(Clone, Debug)]
pub struct Activations {
    /// Each trunk layer's output (after its activation).
    pub trunk: Vec<Array2<f32>>,
    /// The same for the trunk of the backward and flow heads, when not shared.
    pub aux: Option<Vec<Array2<f32>>>,
    pub pf: Array2<f32>,
    pub pb: Option<Array2<f32>>,
    pub log_f: Option<Array2<f32>>,
    /// Where each transition's values are, when not in the transitions'
    /// order: transition `t` (of [`Trajectories`]) is row `order[t]`. The
    /// sampler keeps its passes' rows as it made them, step after step
    /// ([`Activations::in_order`] copies them into the transitions' order).
    pub order: Option<Vec<usize>>,
    /// Each row's `log sum exp` of its valid forward logits, in `f64`, as
    /// the sampler computed it (the training pass's log-softmax then needs
    /// no exponentials); `None` when not known.
    pub lse: Option<Vec<f64>>,
    /// The same for the backward logits, where `P_B` is learned.
    pub pb_lse: Option<Vec<f64>>,
}

impl Activations {
    /// These values with row `t` holding transition `t` (a copy when they are in another order).
    pub fn in_order(self) -> Activations {
        match &self.order {
            None => self,
            Some(order) => {
                let rows: Vec<(usize, usize)> = order.iter().map(|&r| (0, r)).collect();
                let ordered = Activations::gather(std::slice::from_ref(&self), &rows).expect("one block");
                self.give_back();
                ordered
            }
        }
    }

    /// Every array, by value through `f`.
    fn map_arrays(&mut self, mut f: impl FnMut(Array2<f32>) -> Array2<f32>) {
        let arrays = (self.trunk.iter_mut())
            .chain(self.aux.iter_mut().flatten())
            .chain([&mut self.pf])
            .chain(self.pb.iter_mut())
            .chain(self.log_f.iter_mut());
        arrays.for_each(|a| *a = f(std::mem::take(a)));
    }

    /// Room for at least `rows` rows, the first `kept` rows of each array kept.
    pub(crate) fn reserve(&mut self, rows: usize, kept: usize) {
        if self.pf.nrows() < rows {
            let rows = rows.max(2 * self.pf.nrows());
            // cut to the kept rows first (in place), so that only they are copied
            let more = |a| with_rows(with_rows(a, kept), rows);
            self.map_arrays(more);
        }
    }

    /// The first `rows` rows of each array (no copy).
    pub(crate) fn truncate(&mut self, rows: usize) {
        self.map_arrays(|a| with_rows(a, rows));
        for lse in [&mut self.lse, &mut self.pb_lse].into_iter().flatten() {
            lse.truncate(rows);
        }
    }

    /// Rows picked from `blocks`: row `r` of the result is row `rows[r].1` of
    /// `blocks[rows[r].0]` (all blocks from one policy; their `order` is not
    /// read, and the result's is `None`); `None` without blocks.
    pub fn gather(blocks: &[Activations], rows: &[(usize, usize)]) -> Option<Activations> {
        Self::gather_on(blocks, rows, 1)
    }

    /// [`Activations::gather`], the rows copied by `threads` threads.
    pub(crate) fn gather_on(blocks: &[Activations], rows: &[(usize, usize)], threads: usize) -> Option<Activations> {
        let first = blocks.first()?;
        let take = |f: &dyn Fn(&Activations) -> &Array2<f32>| {
            let w = f(first).ncols();
            let src: Vec<&[f32]> = blocks.iter().map(|a| f(a).as_slice().expect("row-major")).collect();
            let mut out = crate::autodiff::pool::scratch((rows.len(), w));
            let dst = out.as_slice_mut().expect("row-major");
            let per = rows.len().div_ceil(threads.max(1)).max(1);
            let parts: Vec<_> = dst.chunks_mut(per * w.max(1)).zip(rows.chunks(per)).collect();
            crate::workers::map(parts, |(dst, rows): (&mut [f32], &[(usize, usize)])| {
                for (d, &(b, r)) in dst.chunks_exact_mut(w.max(1)).zip(rows) {
                    d.copy_from_slice(&src[b][r * w..(r + 1) * w]);
                }
            });
            out
        };
        let layers = |n: usize, f: &dyn Fn(&Activations, usize) -> &Array2<f32>| -> Vec<Array2<f32>> {
            (0..n).map(|i| take(&|a| f(a, i))).collect()
        };
        let lse = |f: &dyn Fn(&Activations) -> Option<&Vec<f64>>| {
            (blocks.iter().map(f).collect::<Option<Vec<_>>>()).map(|lse| rows.iter().map(|&(b, r)| lse[b][r]).collect())
        };
        Some(Activations {
            lse: lse(&|a| a.lse.as_ref()),
            pb_lse: lse(&|a| a.pb_lse.as_ref()),
            trunk: layers(first.trunk.len(), &|a, i| &a.trunk[i]),
            aux: first
                .aux
                .as_ref()
                .map(|x| layers(x.len(), &|a, i| &a.aux.as_ref().expect("one policy")[i])),
            pf: take(&|a| &a.pf),
            pb: first.pb.as_ref().map(|_| take(&|a| a.pb.as_ref().expect("one policy"))),
            log_f: first
                .log_f
                .as_ref()
                .map(|_| take(&|a| a.log_f.as_ref().expect("one policy"))),
            order: None,
        })
    }

    /// Appends `other`'s rows (from the same policy) after these, growing
    /// these arrays in place (as [`crate::sampler::Trajectories::append`] grows its own).
    pub fn append(&mut self, mut other: Activations) {
        let (n, m) = (self.pf.nrows(), other.pf.nrows());
        self.order = match (self.order.take(), other.order.take()) {
            (None, None) => None,
            (a, b) => {
                let mut order = a.unwrap_or_else(|| (0..n).collect());
                order.extend(b.unwrap_or_else(|| (0..m).collect()).into_iter().map(|r| n + r));
                Some(order)
            }
        };
        let joined = |a: Option<Vec<f64>>, b: Option<Vec<f64>>| {
            a.zip(b).map(|(mut a, b)| {
                a.extend(b);
                a
            })
        };
        self.lse = joined(self.lse.take(), other.lse.take());
        self.pb_lse = joined(self.pb_lse.take(), other.pb_lse.take());
        // in place where the arrays have room (the sampler's do), else in larger pooled ones
        let grow = |a: &mut Array2<f32>, b: &Array2<f32>| {
            assert_eq!(a.ncols(), b.ncols(), "activations of one policy");
            let n = a.nrows();
            *a = with_rows(std::mem::take(a), n + b.nrows());
            a.slice_mut(ndarray::s![n.., ..]).assign(b);
        };
        let pairs = (self.trunk.iter_mut().zip(&other.trunk))
            .chain(self.aux.iter_mut().flatten().zip(other.aux.iter().flatten()))
            .chain([(&mut self.pf, &other.pf)])
            .chain(self.pb.iter_mut().zip(&other.pb))
            .chain(self.log_f.iter_mut().zip(&other.log_f));
        pairs.for_each(|(a, b)| grow(a, b));
        other.give_back();
    }

    /// Hands the arrays back to the buffer pool.
    pub fn give_back(mut self) {
        self.give_back_trunks();
        [Some(self.pf), self.pb, self.log_f]
            .into_iter()
            .flatten()
            .for_each(crate::autodiff::pool::give);
    }

    /// Hands the trunks' layer outputs back to the buffer pool, keeping the heads'.
    fn give_back_trunks(&mut self) {
        std::mem::take(&mut self.trunk)
            .into_iter()
            .chain(self.aux.take().into_iter().flatten())
            .for_each(crate::autodiff::pool::give);
    }
}

/// A sampler's first-layer products of each trajectory's last state, for
/// the trunk and a separate trunk ([`Policy::running`]).
pub(crate) struct Running {
    trunk: RowSums<f32>,
    aux: Option<RowSums<f32>>,
}

/// Trunk plus heads; all parameters live in a [`ParamStore`].
#[derive(Clone, Debug)]
pub struct Policy {
    pub config: PolicyConfig,
    trunk: Mlp,
    /// Trunk of the backward and flow heads when not shared.
    aux_trunk: Option<Mlp>,
    pf: Linear,
    pb: Option<Linear>,
    log_f: Option<Linear>,
    pub log_z: ParamId,
    n_actions: usize,
    feature_dim: usize,
}

impl Policy {
    /// Creates the parameters in `store`: network weights in group [`NET_GROUP`], `log Z` in [`LOG_Z_GROUP`].
    pub fn new<E: Environment, T: Scalar, R: Rng>(
        env: &E,
        config: &PolicyConfig,
        store: &mut ParamStore<T>,
        rng: &mut R,
    ) -> Result<Self> {
        config.validate()?;
        if config.backward == BackwardPolicy::Learned && env.is_tree() {
            return Err(Error::config(
                "policy.backward",
                "a learned P_B has nothing to learn on a tree environment (every state has one parent); use `uniform`",
            ));
        }
        let d = env.feature_dim();
        let widths: Vec<usize> = std::iter::once(d).chain(config.hidden.iter().copied()).collect();
        let h = *widths.last().unwrap();
        let act = config.activation;
        let trunk = Mlp::new(store, "trunk", NET_GROUP, &widths, act, true, rng);
        let pf = Linear::new(store, "pf", NET_GROUP, h, env.n_actions(), Init::Xavier, rng);
        let needs_aux = config.backward == BackwardPolicy::Learned || config.log_f;
        let aux_trunk =
            (needs_aux && !config.shared_trunk).then(|| Mlp::new(store, "aux", NET_GROUP, &widths, act, true, rng));
        let pb = (config.backward == BackwardPolicy::Learned)
            .then(|| Linear::new(store, "pb", NET_GROUP, h, env.n_backward_actions(), Init::Xavier, rng));
        let log_f = config
            .log_f
            .then(|| Linear::new(store, "log_f", NET_GROUP, h, 1, Init::Xavier, rng));
        let log_z = store.add(
            "log_z",
            LOG_Z_GROUP,
            Array2::from_elem((1, 1), T::from_f64(config.log_z_init)),
        );
        Ok(Policy {
            config: config.clone(),
            trunk,
            aux_trunk,
            pf,
            pb,
            log_f,
            log_z,
            n_actions: env.n_actions(),
            feature_dim: d,
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    pub fn learned_pb(&self) -> bool {
        self.pb.is_some()
    }

    pub fn has_log_f(&self) -> bool {
        self.log_f.is_some()
    }

    /// All heads on the tape for the states whose (sparse) features are the rows of `x`.
    pub fn forward<T: Scalar>(&self, tape: &mut Tape<T>, p: &Bound, x: Arc<Csr>) -> Heads {
        let h = self.trunk.forward_sparse(tape, p, x.clone());
        let pf_logits = self.pf.forward(tape, p, h, None);
        let h_aux = match &self.aux_trunk {
            Some(aux) => aux.forward_sparse(tape, p, x),
            None => h,
        };
        Heads {
            pf_logits,
            pb_logits: self.pb.as_ref().map(|l| l.forward(tape, p, h_aux, None)),
            log_f: self.log_f.as_ref().map(|l| l.forward(tape, p, h_aux, None)),
        }
    }

    /// The heads on the tape with every layer's value computed beforehand by
    /// [`Policy::activations`] on these rows `x` and the weights bound in `p`
    /// (row `acts.order[r]` being row `r` of `x`'s, when they have an order).
    pub fn forward_recorded(&self, tape: &mut Tape<f32>, p: &Bound, x: Arc<Csr>, acts: Activations) -> Heads {
        let x = SparseMatMul {
            x,
            at: acts.order.as_deref().map(Arc::from),
        };
        let shaped = acts.pf.nrows() == x.x.nrows()
            && acts.aux.is_some() == self.aux_trunk.is_some()
            && acts.pb.is_some() == self.pb.is_some()
            && acts.log_f.is_some() == self.log_f.is_some();
        assert!(shaped, "forward_recorded: activations of another policy or other rows");
        let h = self.trunk.record_sparse(tape, p, x.clone(), acts.trunk);
        let pf_logits = self.pf.record(tape, p, h, None, acts.pf);
        let h_aux = match (&self.aux_trunk, acts.aux) {
            (Some(aux), Some(values)) => aux.record_sparse(tape, p, x, values),
            _ => h,
        };
        Heads {
            pf_logits,
            pb_logits: self
                .pb
                .as_ref()
                .zip(acts.pb)
                .map(|(l, v)| l.record(tape, p, h_aux, None, v)),
            log_f: self
                .log_f
                .as_ref()
                .zip(acts.log_f)
                .map(|(l, v)| l.record(tape, p, h_aux, None, v)),
        }
    }

    /// Every layer's output without a tape, for the rows of `x` (each row
    /// computed alike whatever the others).
    pub fn activations(&self, store: &ParamStore<f32>, x: &Csr) -> Activations {
        self.pass(store, x, true)
    }

    /// Forward logits (and backward logits if learned) without a tape, for sampling.
    pub fn infer(&self, store: &ParamStore<f32>, x: &Csr) -> (Array2<f32>, Option<Array2<f32>>) {
        let acts = self.pass(store, x, false);
        (acts.pf, acts.pb)
    }

    /// The first layers' products per trajectory for a sampler advancing
    /// `trajectories` trajectories (see [`RowSums`]).
    pub(crate) fn running(&self, trajectories: usize) -> Running {
        let sums = |m: &Mlp| RowSums::new(trajectories, m.layers[0].fan_out);
        Running {
            trunk: sums(&self.trunk),
            aux: self.aux_trunk.as_ref().map(sums),
        }
    }

    /// A pass without a tape: with `all`, every layer's output; else only the
    /// logits sampling needs (the trunks' last outputs go back to the pool,
    /// and the flow head and a separate trunk serving it alone are skipped).
    pub(crate) fn pass(&self, store: &ParamStore<f32>, x: &Csr, all: bool) -> Activations {
        let mut acts = self.arrays(x.nrows(), all);
        self.pass_into(store, x, None, &mut acts, 0);
        if !all {
            acts.give_back_trunks();
        }
        acts
    }

    /// Pooled arrays of `rows` rows for what a pass writes: with `all`,
    /// every layer's output; else the trunks', the logits (and not the flow
    /// head, nor a separate trunk serving it alone).
    pub(crate) fn arrays(&self, rows: usize, all: bool) -> Activations {
        let array = |cols: usize| crate::autodiff::pool::scratch((rows, cols));
        let layers = |m: &Mlp| m.layers.iter().map(|l| array(l.fan_out)).collect::<Vec<_>>();
        Activations {
            trunk: layers(&self.trunk),
            aux: (self.aux_trunk.as_ref())
                .filter(|_| all || self.pb.is_some())
                .map(layers),
            pf: array(self.pf.fan_out),
            pb: self.pb.as_ref().map(|l| array(l.fan_out)),
            log_f: self.log_f.as_ref().filter(|_| all).map(|l| array(l.fan_out)),
            order: None,
            lse: None,
            pb_lse: None,
        }
    }

    /// A pass without a tape over the rows of `x` into rows `at..` of `acts`
    /// (from [`Policy::arrays`]; what it holds is what is computed). With
    /// `running`, row `r` of `x` is the next state of trajectory `seq[r]`,
    /// and the first layers resume from its previous state's products.
    pub(crate) fn pass_into(
        &self,
        store: &ParamStore<f32>,
        x: &Csr,
        running: Option<(&mut Running, &[usize])>,
        acts: &mut Activations,
        at: usize,
    ) {
        fn input<'a>(x: &'a Csr, sums: Option<&'a mut RowSums<f32>>, seq: &'a [usize]) -> Input<'a, f32> {
            match sums {
                Some(sums) => Input::Resumed { x, sums, seq },
                None => Input::Sparse(x),
            }
        }
        let rows = || ndarray::s![at..at + x.nrows(), ..];
        let (trunk_sums, aux_sums, seq) = match running {
            Some((r, seq)) => (Some(&mut r.trunk), r.aux.as_mut(), seq),
            None => (None, None, &[][..]),
        };
        self.trunk
            .infer_into(store, input(x, trunk_sums, seq), &mut acts.trunk, at);
        if let (Some(m), Some(aux)) = (&self.aux_trunk, acts.aux.as_mut()) {
            m.infer_into(store, input(x, aux_sums, seq), aux, at);
        }
        let h = acts.trunk.last().expect("a layer").slice(rows());
        let h_aux = acts
            .aux
            .as_ref()
            .map_or(h, |a| a.last().expect("a layer").slice(rows()));
        self.pf
            .infer_into(store, Input::Dense(h), None, acts.pf.slice_mut(rows()));
        if let (Some(l), Some(pb)) = (&self.pb, acts.pb.as_mut()) {
            l.infer_into(store, Input::Dense(h_aux), None, pb.slice_mut(rows()));
        }
        if let (Some(l), Some(log_f)) = (&self.log_f, acts.log_f.as_mut()) {
            l.infer_into(store, Input::Dense(h_aux), None, log_f.slice_mut(rows()));
        }
    }

    /// Floating-point operations (multiply and add counted apart) of one
    /// forward pass over the sparse rows `x` through every head, the first
    /// layers costing `2 * nonzeros * width` as the engine computes them.
    pub fn forward_flops(&self, x: &Csr) -> f64 {
        let rows = x.nrows() as f64;
        let nnz = x.indices.len() as f64;
        let trunk = |m: &Mlp| {
            2.0 * nnz * m.layers[0].fan_out as f64
                + rows * m.layers[1..].iter().map(|l| l.flops_per_row() as f64).sum::<f64>()
        };
        let heads = self.pf.flops_per_row()
            + self.pb.as_ref().map_or(0, Linear::flops_per_row)
            + self.log_f.as_ref().map_or(0, Linear::flops_per_row);
        trunk(&self.trunk) + self.aux_trunk.as_ref().map_or(0.0, trunk) + rows * heads as f64
    }

    /// Floating-point operations of one training pass over the sparse rows
    /// `x` whose forward values are at hand (kept by the sampler): the
    /// backward pass, a weight gradient and an input gradient per layer, each
    /// as costly as the forward product, but for the sparse first layers,
    /// whose input (the state features) needs no gradient. With the forward
    /// pass itself, add [`Policy::forward_flops`].
    pub fn backward_flops(&self, x: &Csr) -> f64 {
        let first = |m: &Mlp| 2.0 * x.indices.len() as f64 * m.layers[0].fan_out as f64;
        2.0 * self.forward_flops(x) - first(&self.trunk) - self.aux_trunk.as_ref().map_or(0.0, first)
    }

    /// Floating-point operations of one forward row through every head.
    pub fn flops_per_row(&self) -> usize {
        self.trunk.flops_per_row()
            + self.aux_trunk.as_ref().map_or(0, Mlp::flops_per_row)
            + self.pf.flops_per_row()
            + self.pb.as_ref().map_or(0, Linear::flops_per_row)
            + self.log_f.as_ref().map_or(0, Linear::flops_per_row)
    }

    /// The objective's [`Terms`] for a batch of trajectories, in one batched
    /// pass over all their states (`log_r` is `log R(x)` per trajectory).
    pub fn terms<T: Scalar, S>(&self, tape: &mut Tape<T>, p: &Bound, traj: &Trajectories<S>, log_r: &[f64]) -> Terms {
        let heads = self.forward(tape, p, traj.features.clone());
        self.terms_of(tape, p, traj, log_r, heads, None, [None, None])
    }

    /// [`Policy::terms`] with the forward pass's values taken from `acts`, the
    /// [`Trajectories::activations`] the sampler kept: the caller vouches that
    /// the weights bound in `p` are those the trajectories were sampled with
    /// (as in one training step: sample, then train, then update). The tape
    /// takes the rows in the order they were kept (see [`Activations::order`]),
    /// so the same values as [`Policy::terms`], but gradients summed over
    /// the states in another order, which may round differently.
    pub fn terms_sampled<S>(
        &self,
        tape: &mut Tape<f32>,
        p: &Bound,
        traj: &Trajectories<S>,
        log_r: &[f64],
        mut acts: Activations,
    ) -> Terms {
        let (order, lse) = (acts.order.clone(), [acts.lse.take(), acts.pb_lse.take()]);
        let heads = self.forward_recorded(tape, p, traj.features.clone(), acts);
        self.terms_of(tape, p, traj, log_r, heads, order.as_deref(), lse)
    }

    /// The terms from the heads' values, row `order[t]` of the heads being
    /// transition `t`'s (row `t` without an `order`), with the forward and
    /// backward logits' row `log sum exp`s when the sampler kept them.
    #[allow(clippy::too_many_arguments)]
    fn terms_of<T: Scalar, S>(
        &self,
        tape: &mut Tape<T>,
        p: &Bound,
        traj: &Trajectories<S>,
        log_r: &[f64],
        heads: Heads,
        order: Option<&[usize]>,
        [pf_lse, pb_lse]: [Option<Vec<f64>>; 2],
    ) -> Terms {
        assert_eq!(log_r.len(), traj.len(), "terms: one log-reward per trajectory");
        let rows = traj.n_transitions();
        let at = |t: usize| order.map_or(t, |o| o[t]);
        // per-transition inputs moved to the heads' rows, and [rows, 1] results back
        let masks = |m: &Array2<bool>| match order {
            None => m.clone(),
            Some(o) => {
                let mut moved = Array2::from_elem(m.dim(), false);
                o.iter()
                    .enumerate()
                    .for_each(|(t, &r)| moved.row_mut(r).assign(&m.row(t)));
                moved
            }
        };
        let indices = |v: &[usize]| match order {
            None => v.to_vec(),
            Some(o) => {
                let mut moved = vec![0; v.len()];
                o.iter().enumerate().for_each(|(t, &r)| moved[r] = v[t]);
                moved
            }
        };
        let back = |tape: &mut Tape<T>, v: Var| match order {
            None => v,
            Some(o) => tape.index_select(v, o.to_vec()),
        };
        let log_softmax = |tape: &mut Tape<T>, logits, m: &Array2<bool>, lse: Option<Vec<f64>>| match lse {
            Some(lse) => tape.masked_log_softmax_given(logits, masks(m), lse),
            None => tape.masked_log_softmax(logits, masks(m)),
        };
        let lp = log_softmax(tape, heads.pf_logits, &traj.forward_masks, pf_lse);
        let log_pf = tape.gather(lp, indices(&traj.actions));
        let log_pf = back(tape, log_pf);

        // Transition k's P_B(s_k | s_{k+1}) is read at the row of k + 1 (the state s_{k+1});
        // the terminating transition has P_B = 1, read from an appended zero row.
        let shift: Vec<usize> = (0..traj.len())
            .flat_map(|b| {
                let (lo, hi) = (traj.offsets[b], traj.offsets[b + 1]);
                (lo..hi).map(move |k| if k + 1 < hi { at(k + 1) } else { rows })
            })
            .collect();
        let log_pb = match heads.pb_logits {
            Some(logits) => {
                let lpb = log_softmax(tape, logits, &traj.backward_masks, pb_lse);
                let at_rows = tape.gather(lpb, indices(&traj.backward_actions));
                let zero = tape.constant(Array2::zeros((1, 1)));
                let padded = tape.concat(&[at_rows, zero], 0);
                tape.index_select(padded, shift)
            }
            None => {
                let uniform = crate::sampler::uniform_log_pb(traj);
                tape.constant(Array2::from_shape_fn((rows, 1), |(k, _)| {
                    T::from_f64(uniform[k] as f64)
                }))
            }
        };
        let entropy = tape.entropy(lp);
        let entropy = Some(back(tape, entropy));
        let log_r = tape.constant(Array2::from_shape_fn((log_r.len(), 1), |(b, _)| T::from_f64(log_r[b])));
        Terms {
            offsets: traj.offsets.clone(),
            log_pf,
            log_pb,
            log_f: heads.log_f.map(|v| back(tape, v)),
            log_r,
            log_z: p[self.log_z],
            entropy,
        }
    }
}
