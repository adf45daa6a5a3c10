//! A balance-objective training step on the GPU.
//!
//! [`GpuTrainer`] keeps the policy's parameters, their gradients and Adam's moments on
//! the device. One [`GpuTrainer::step`]:
//! 1. samples a batch of trajectories ([`GpuTrainer::sample`]): per step the host encodes
//!    the active states and steps the environment, the GPU runs the MLP and draws the
//!    actions (Philox keyed by `(seed, trajectory, step)`, see [`super::rng`]);
//! 2. asks the reward for `log R` of the terminal states (host);
//! 3. trains on them ([`GpuTrainer::train_on`]): forward over every transition (trunk,
//!    `P_F` head, `log F` head when the policy has one), masked log-softmax and gather of
//!    `log P_F`; then the objective's gradient with respect to each transition's
//!    `log P_F`, `log F` and to `log Z`; backward through the MLP, per-group gradient
//!    norms (non-finite refused, clipping), Adam.
//!
//! The objective's gradient: TB without an entropy bonus runs on the device (residual
//! `t = log R + sum log P_B - log Z - sum log P_F`, `mean_b g(t_b)` with `g'` at the
//! residual clipped to `[-clip, clip]`). Every other objective (SubTB, DB, the
//! divergences with or without the LOO control variate) downloads the per-transition
//! `log P_F` and `log F` (a few floats per transition), evaluates the engine's own
//! [`ObjectiveConfig::loss`] on a host tape in `f64`, and uploads its gradient: the same
//! code and sign convention as the CPU trainer, at the cost of one small round trip.
//!
//! Supported: any [`Environment`] with a uniform `P_B` (peptides, HyperGrid), the
//! policy's trunk, `P_F` head and a `log F` head on the shared trunk, ReLU, leaky ReLU (slope >= 0) and tanh, Adam and
//! AdamW with the engine's groups, clipping and schedules. Not supported
//! ([`GpuError::Unsupported`]): a learned `P_B`, a `log F` head on a trunk of its own,
//! the entropy bonus, the batch control variate.

use ndarray::Array2;

use super::ops::AdamScalars;
use super::{Act, Buf, GemmOp, Gpu, GpuError};
use crate::autodiff::Tape;
use crate::env::{Environment, LogReward};
use crate::nn::{Adam, AdamKind, ParamStore, StepStats};
use crate::objective::{ControlVariate, Objective, ObjectiveConfig, Terms};
use crate::policy::Policy;
use crate::sampler::{in_trajectory_order, uniform_log_pb, Drawn, Exploration, Trajectories};

/// What one training step did.
#[derive(Clone, Debug, Default)]
pub struct GpuStepStats {
    /// The objective's reported value before the update (TB: `mean_b g(t_b)`).
    pub loss: f64,
    /// `log Z` before the update.
    pub log_z: f64,
    /// Per optimizer group: gradient norm before clipping.
    pub grad_norm: Vec<f64>,
    /// Per optimizer group: whether clipping scaled the gradient.
    pub clipped: Vec<bool>,
    /// Per optimizer group: learning rate used.
    pub lr: Vec<f64>,
    /// Mean `log R` of the batch.
    pub mean_log_r: f64,
    /// Trajectories and transitions in the batch.
    pub batch: usize,
    pub transitions: usize,
}

impl GpuStepStats {
    /// The stats of one update on `traj` (`log_r`: `log R` per trajectory): the objective's
    /// value `loss` and `log_z` before it, and the optimizer's per-group `stats`.
    pub(crate) fn of_update<S>(loss: f64, log_z: f64, stats: StepStats, traj: &Trajectories<S>, log_r: &[f64]) -> Self {
        GpuStepStats {
            loss,
            log_z,
            grad_norm: stats.grad_norm,
            clipped: stats.clipped,
            lr: stats.lr,
            mean_log_r: log_r.iter().sum::<f64>() / log_r.len() as f64,
            batch: traj.len(),
            transitions: traj.n_transitions(),
        }
    }
}

/// Options of a GPU step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepConfig {
    pub batch: usize,
    pub exploration: Exploration,
    pub objective: ObjectiveConfig,
}

impl Default for StepConfig {
    fn default() -> Self {
        StepConfig {
            batch: 64,
            exploration: Exploration::ON_POLICY,
            objective: ObjectiveConfig::default(),
        }
    }
}

#[derive(Clone, Debug)]
struct Layer {
    w: usize,
    b: usize,
    fan_in: usize,
    fan_out: usize,
    act: Act,
}

/// Device scratch, grown on demand.
struct Workspace {
    x: Buf<f32>,
    mask: Buf<u8>,
    actions: Buf<u32>,
    offsets: Buf<u32>,
    log_pb: Buf<f32>,
    log_r: Buf<f32>,
    /// Output of each layer (the last is the logits).
    h: Vec<Buf<f32>>,
    logp: Buf<f32>,
    log_pf: Buf<f32>,
    log_f: Buf<f32>,
    g_f: Buf<f32>,
    resid: Buf<f32>,
    value: Buf<f32>,
    gres: Buf<f32>,
    coef: Buf<f32>,
    d: Buf<f32>,
    d_next: Buf<f32>,
    scratch: Buf<f32>,
    scratch64: Buf<f64>,
    norms: Buf<f64>,
    loss: Buf<f32>,
    traj: Buf<u64>,
    sampled: Buf<u32>,
    sampled_logp: Buf<f32>,
}

/// The policy and its optimizer on the GPU.
pub struct GpuTrainer {
    pub policy: Policy,
    layers: Vec<Layer>,
    /// The `log F` head on the trunk's last hidden layer.
    log_f_head: Option<Layer>,
    log_z: usize,
    shapes: Vec<(usize, usize)>,
    params: Vec<Buf<f32>>,
    grads: Vec<Buf<f32>>,
    m: Vec<Buf<f32>>,
    v: Vec<Buf<f32>>,
    /// Hyperparameters, groups and the step counter (its host moments are unused).
    pub adam: Adam<f32>,
    member: Vec<usize>,
    ws: Workspace,
    /// Sampling seed and trajectories drawn so far (the next one has id `drawn`).
    pub seed: u64,
    pub drawn: u64,
    /// Declared last: dropped after every buffer above (they live in its context).
    pub gpu: Gpu,
}

impl GpuTrainer {
    /// Uploads `store` (the parameters of `policy`) and sets up `adam`'s state on the GPU.
    pub fn new(
        gpu: Gpu,
        policy: &Policy,
        store: &ParamStore<f32>,
        adam: Adam<f32>,
        seed: u64,
    ) -> Result<Self, GpuError> {
        if policy.learned_pb() {
            return Err(GpuError::Unsupported(
                "a learned P_B head (the GPU step supports a uniform P_B)".into(),
            ));
        }
        let act = Act::from_engine(policy.config.activation)?;
        let find = |name: &str| {
            store
                .find(name)
                .map(|id| id.0)
                .ok_or_else(|| GpuError::Unsupported(format!("policy parameter `{name}` not found in the store")))
        };
        let mut layers = Vec::new();
        let mut fan_in = policy.feature_dim();
        let names: Vec<String> = (0..policy.config.hidden.len())
            .map(|i| format!("trunk.{i}"))
            .chain(std::iter::once("pf".to_string()))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let w = find(&format!("{name}.w"))?;
            let b = find(&format!("{name}.b"))?;
            let (rows, cols) = store.get(crate::nn::ParamId(w)).value.dim();
            if rows != fan_in {
                return Err(GpuError::Shape(format!(
                    "{name}.w is {rows}x{cols}, expected {fan_in} rows"
                )));
            }
            let last = i + 1 == names.len();
            layers.push(Layer {
                w,
                b,
                fan_in,
                fan_out: cols,
                act: if last { Act::Identity } else { act },
            });
            fan_in = cols;
        }
        let log_f_head = if policy.config.log_f {
            if !policy.config.shared_trunk {
                return Err(GpuError::Unsupported(
                    "a log F head on a trunk of its own (the GPU step supports it on the shared trunk)".into(),
                ));
            }
            let trunk_out = layers[layers.len() - 1].fan_in;
            Some(Layer {
                w: find("log_f.w")?,
                b: find("log_f.b")?,
                fan_in: trunk_out,
                fan_out: 1,
                act: Act::Identity,
            })
        } else {
            None
        };
        let member = store
            .iter()
            .map(|p| {
                adam.groups.iter().position(|g| g.name == p.group).ok_or_else(|| {
                    GpuError::Engine(crate::Error::config(
                        "optimizer.groups",
                        format!("no group named `{}` for parameter `{}`", p.group, p.name),
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shapes: Vec<(usize, usize)> = store.iter().map(|p| p.value.dim()).collect();
        let params = store
            .iter()
            .map(|p| Buf::from_slice(p.value.as_standard_layout().as_slice().expect("standard layout")))
            .collect::<Result<Vec<_>, _>>()?;
        let zeros = || {
            shapes
                .iter()
                .map(|&(r, c)| Buf::zeros(r * c))
                .collect::<Result<Vec<_>, _>>()
        };
        let (grads, m, v) = (zeros()?, zeros()?, zeros()?);
        let z = || Buf::zeros(0);
        let ws = Workspace {
            x: z()?,
            mask: Buf::zeros(0)?,
            actions: Buf::zeros(0)?,
            offsets: Buf::zeros(0)?,
            log_pb: z()?,
            log_r: z()?,
            h: layers.iter().map(|_| z()).collect::<Result<Vec<_>, _>>()?,
            logp: z()?,
            log_pf: z()?,
            log_f: z()?,
            g_f: z()?,
            resid: z()?,
            value: z()?,
            gres: z()?,
            coef: z()?,
            d: z()?,
            d_next: z()?,
            scratch: z()?,
            scratch64: Buf::zeros(0)?,
            norms: Buf::zeros(shapes.len())?,
            loss: Buf::zeros(1)?,
            traj: Buf::zeros(0)?,
            sampled: Buf::zeros(0)?,
            sampled_logp: z()?,
        };
        Ok(GpuTrainer {
            policy: policy.clone(),
            layers,
            log_f_head,
            log_z: policy.log_z.0,
            shapes,
            params,
            grads,
            m,
            v,
            adam,
            member,
            ws,
            seed,
            drawn: 0,
            gpu,
        })
    }

    /// Copies the parameters back into `store` (same layout as at [`GpuTrainer::new`]).
    pub fn download(&self, store: &mut ParamStore<f32>) -> Result<(), GpuError> {
        for ((p, buf), &(r, c)) in store.iter_mut().zip(&self.params).zip(&self.shapes) {
            p.value = Array2::from_shape_vec((r, c), buf.download()?).expect("shape kept");
        }
        Ok(())
    }

    /// The gradients of the last [`GpuTrainer::train_on`] (before clipping), in store order.
    pub fn gradients(&self) -> Result<Vec<Array2<f32>>, GpuError> {
        self.grads
            .iter()
            .zip(&self.shapes)
            .map(|(g, &s)| Ok(Array2::from_shape_vec(s, g.download()?).expect("shape kept")))
            .collect()
    }

    /// Current `log Z`.
    pub fn log_z(&self) -> Result<f64, GpuError> {
        Ok(self.params[self.log_z].download()?[0] as f64)
    }

    /// Forward through every layer for the `rows` states in `ws.x`; logits end in `ws.h[last]`.
    fn forward(&mut self, rows: usize) -> Result<(), GpuError> {
        let ws = &mut self.ws;
        for (li, l) in self.layers.iter().enumerate() {
            let (before, rest) = ws.h.split_at_mut(li);
            let out = &mut rest[0];
            out.resize(rows * l.fan_out)?;
            let input = if li == 0 { &ws.x } else { &before[li - 1] };
            self.gpu.gemm(
                GemmOp::NN,
                rows,
                l.fan_out,
                l.fan_in,
                1.0,
                input,
                &self.params[l.w],
                0.0,
                out,
            )?;
            self.gpu
                .bias_act_inplace(rows, l.fan_out, out, &self.params[l.b], l.act)?;
        }
        Ok(())
    }

    /// Samples `batch` trajectories forward from the initial state on the GPU.
    pub fn sample<E: Environment>(
        &mut self,
        env: &E,
        batch: usize,
        explore: Exploration,
    ) -> Result<Trajectories<E::State>, GpuError> {
        explore.validate()?;
        let (a_n, d) = (env.n_actions(), env.feature_dim());
        let base = self.drawn;
        self.drawn += batch as u64;
        let mut drawn = Drawn::pooled(env, batch, 0);
        let mut states: Vec<E::State> = (0..batch).map(|_| env.initial_state()).collect();
        let mut active: Vec<usize> = (0..batch).collect();
        let mut x = Array2::<f32>::zeros((batch, d));
        let mut mask = vec![0u8; batch * a_n];
        let mut row_mask = vec![false; a_n];
        let mut actions = vec![0u32; batch];
        let mut logps = vec![0f32; batch];
        let mut step = 0u32;
        while !active.is_empty() {
            let n = active.len();
            {
                let current: Vec<&E::State> = active.iter().map(|&i| &states[i]).collect();
                let mut view = x.slice_mut(ndarray::s![..n, ..]);
                view.fill(0.0);
                for (mut row, s) in view.rows_mut().into_iter().zip(&current) {
                    env.encode(
                        s,
                        row.as_slice_mut()
                            .expect("rows of a standard-layout array are contiguous"),
                    );
                }
                for (r, s) in current.iter().enumerate() {
                    env.forward_mask(s, &mut row_mask);
                    for (m, &v) in mask[r * a_n..(r + 1) * a_n].iter_mut().zip(&row_mask) {
                        *m = v as u8;
                    }
                }
            }
            let ids: Vec<u64> = active.iter().map(|&i| base + i as u64).collect();
            self.ws.x.upload(&x.as_slice().expect("standard layout")[..n * d])?;
            self.ws.mask.upload(&mask[..n * a_n])?;
            self.ws.traj.upload(&ids)?;
            self.ws.sampled.resize(n)?;
            self.ws.sampled_logp.resize(n)?;
            self.forward(n)?;
            let last = self.layers.len() - 1;
            let ws = &mut self.ws;
            self.gpu.sample(
                n,
                a_n,
                &ws.h[last],
                &ws.mask,
                &ws.traj,
                step,
                self.seed,
                explore.temperature,
                explore.epsilon,
                &mut ws.sampled,
                &mut ws.sampled_logp,
            )?;
            ws.sampled.download_into(&mut actions[..n])?;
            ws.sampled_logp.download_into(&mut logps[..n])?;
            let mut still = Vec::with_capacity(n);
            for (r, &i) in active.iter().enumerate() {
                let a = actions[r] as usize;
                if a >= a_n || mask[r * a_n + a] == 0 {
                    return Err(GpuError::Engine(crate::Error::Numeric(format!(
                        "GPU sampling drew invalid action {} for trajectory {} at step {step} (non-finite logits?)",
                        actions[r],
                        base + i as u64
                    ))));
                }
                drawn.begin(env, i, &states[i]);
                env.encode_sparse(&states[i], &mut drawn.features);
                drawn.finish(a, logps[r], 0.0);
                let next = env.step(&states[i], a);
                if drawn.moved(env, i, &states[i], a, &next) {
                    still.push(i);
                }
                states[i] = next;
            }
            active = still;
            step += 1;
        }
        let t = in_trajectory_order(env, std::slice::from_ref(&drawn), states, false).0;
        drawn.give_back();
        Ok(t)
    }

    /// One update of `objective` on the given trajectories (`log_r`: `log R` per trajectory).
    pub fn train_on<S>(
        &mut self,
        traj: &Trajectories<S>,
        log_r: &[f64],
        objective: &ObjectiveConfig,
    ) -> Result<GpuStepStats, GpuError> {
        objective.validate()?;
        if objective.entropy_weight != 0.0 {
            return Err(GpuError::Unsupported("the entropy bonus".into()));
        }
        if objective.cv == ControlVariate::Batch {
            return Err(GpuError::Unsupported("the batch control variate (use `loo`)".into()));
        }
        if objective.needs_log_f() && self.log_f_head.is_none() {
            return Err(crate::Error::config(
                "policy.log_f",
                format!("the `{}` objective needs the log F head", objective.objective),
            )
            .into());
        }
        let (b, rows) = (traj.len(), traj.n_transitions());
        if log_r.len() != b || b == 0 {
            return Err(GpuError::Shape(format!(
                "{} log-rewards for {b} trajectories",
                log_r.len()
            )));
        }
        if log_r.iter().any(|v| !v.is_finite()) {
            return Err(crate::Error::Reward("a log-reward is not finite".into()).into());
        }
        let a_n = traj.forward_masks.ncols();
        let d = traj.features.ncols;
        if d != self.layers[0].fan_in || a_n != self.layers[self.layers.len() - 1].fan_out {
            return Err(GpuError::Shape(format!(
                "trajectories have {d} features and {a_n} actions; the policy {} and {}",
                self.layers[0].fan_in,
                self.layers[self.layers.len() - 1].fan_out
            )));
        }
        // host -> device: the batch
        let log_pb = uniform_log_pb(traj);
        let ws = &mut self.ws;
        ws.x.upload(traj.features.to_dense().as_slice().expect("standard layout"))?;
        let mask: Vec<u8> = traj.forward_masks.iter().map(|&m| m as u8).collect();
        ws.mask.upload(&mask)?;
        ws.actions
            .upload(&traj.actions.iter().map(|&a| a as u32).collect::<Vec<_>>())?;
        ws.offsets
            .upload(&traj.offsets.iter().map(|&o| o as u32).collect::<Vec<_>>())?;
        ws.log_pb.upload(&log_pb)?;
        ws.log_r.upload(&log_r.iter().map(|&v| v as f32).collect::<Vec<_>>())?;
        let widest = self.layers.iter().map(|l| l.fan_out.max(l.fan_in)).max().unwrap_or(0);
        ws.logp.resize(rows * a_n)?;
        ws.d.resize(rows * widest)?;
        ws.d_next.resize(rows * widest)?;
        for buf in [&mut ws.log_pf, &mut ws.coef, &mut ws.log_f, &mut ws.g_f] {
            buf.resize(rows)?;
        }
        for buf in [&mut ws.resid, &mut ws.value, &mut ws.gres] {
            buf.resize(b)?;
        }

        self.forward(rows)?;
        let g = &self.gpu;
        let ws = &mut self.ws;
        let last = self.layers.len() - 1;
        g.log_softmax(rows, a_n, &ws.h[last], &ws.mask, &mut ws.logp)?;
        g.gather(rows, a_n, &ws.logp, &ws.actions, &mut ws.log_pf)?;
        if let Some(f) = &self.log_f_head {
            let trunk_out = if last == 0 { &ws.x } else { &ws.h[last - 1] };
            g.gemm(
                GemmOp::NN,
                rows,
                1,
                f.fan_in,
                1.0,
                trunk_out,
                &self.params[f.w],
                0.0,
                &mut ws.log_f,
            )?;
            g.bias_act_inplace(rows, 1, &mut ws.log_f, &self.params[f.b], Act::Identity)?;
        }
        let log_z = self.params[self.log_z].download()?[0] as f64;
        // dL/dlog P_F per transition into `coef`, dL/dlog F into `g_f`, dL/dlog Z into its gradient
        let (loss_value, log_f_used) = if objective.objective == Objective::Tb {
            g.tb_residuals(
                b,
                &ws.offsets,
                &ws.log_pf,
                &ws.log_pb,
                &ws.log_r,
                &self.params[self.log_z],
                &mut ws.resid,
            )?;
            let (loss, clip) = (objective.g, objective.clip);
            g.regression(b, &ws.resid, loss, clip, 1.0 / b as f32, &mut ws.value, &mut ws.gres)?;
            g.sum(b, &ws.value, false, 1.0 / b as f32, &mut ws.scratch, &mut ws.loss, 0)?;
            // dL/dlog Z = -sum_b gres_b; dL/dlog P_F(row) = -gres_b of its trajectory
            g.sum(
                b,
                &ws.gres,
                false,
                -1.0,
                &mut ws.scratch,
                &mut self.grads[self.log_z],
                0,
            )?;
            g.broadcast_segments(b, &ws.offsets, &ws.gres, -1.0, &mut ws.coef)?;
            (ws.loss.download()?[0] as f64, false)
        } else {
            let log_f = match self.log_f_head {
                Some(_) => Some(ws.log_f.download()?),
                None => None,
            };
            let host = host_objective(
                objective,
                traj,
                log_r,
                &ws.log_pf.download()?,
                &log_pb,
                log_f.as_deref(),
                log_z,
            )?;
            ws.coef.upload(&host.d_log_pf)?;
            self.grads[self.log_z].upload(&[host.d_log_z])?;
            if let Some(gf) = &host.d_log_f {
                ws.g_f.upload(gf)?;
            }
            (host.value, host.d_log_f.is_some())
        };
        g.log_softmax_gather_backward(rows, a_n, &ws.logp, &ws.mask, &ws.actions, &ws.coef, &mut ws.d)?;
        for li in (0..self.layers.len()).rev() {
            let l = &self.layers[li];
            if li != last {
                g.act_backward_inplace(rows, l.fan_out, &ws.h[li], &mut ws.d, l.act)?;
            }
            let input = if li == 0 { &ws.x } else { &ws.h[li - 1] };
            g.gemm(
                GemmOp::TN,
                l.fan_in,
                l.fan_out,
                rows,
                1.0,
                input,
                &ws.d,
                0.0,
                &mut self.grads[l.w],
            )?;
            g.col_sums(rows, l.fan_out, &ws.d, 0.0, &mut self.grads[l.b])?;
            if li > 0 {
                g.gemm(
                    GemmOp::NT,
                    rows,
                    l.fan_in,
                    l.fan_out,
                    1.0,
                    &ws.d,
                    &self.params[l.w],
                    0.0,
                    &mut ws.d_next,
                )?;
                std::mem::swap(&mut ws.d, &mut ws.d_next);
            }
            // the log F head reads the same trunk output as the P_F head
            if let (true, Some(f)) = (li == last, &self.log_f_head) {
                let zero = || vec![0f32; f.fan_in];
                if log_f_used {
                    g.gemm(
                        GemmOp::TN,
                        f.fan_in,
                        1,
                        rows,
                        1.0,
                        input,
                        &ws.g_f,
                        0.0,
                        &mut self.grads[f.w],
                    )?;
                    g.col_sums(rows, 1, &ws.g_f, 0.0, &mut self.grads[f.b])?;
                    if li > 0 {
                        g.gemm(
                            GemmOp::NT,
                            rows,
                            f.fan_in,
                            1,
                            1.0,
                            &ws.g_f,
                            &self.params[f.w],
                            1.0,
                            &mut ws.d,
                        )?;
                    }
                } else {
                    self.grads[f.w].upload(&zero())?;
                    self.grads[f.b].upload(&[0.0])?;
                }
            }
        }
        // per-parameter squared norms -> per-group norms on the host
        for (i, grad) in self.grads.iter().enumerate() {
            g.sum_squares(grad.len(), grad, &mut ws.scratch64, &mut ws.norms, i)?;
        }
        let sq = ws.norms.download()?;
        let stats = self.adam_update(&sq)?;
        Ok(GpuStepStats::of_update(loss_value, log_z, stats, traj, log_r))
    }

    /// Adam with the engine's semantics: non-finite gradients refused, per-group clipping.
    fn adam_update(&mut self, sq: &[f64]) -> Result<StepStats, GpuError> {
        let ng = self.adam.groups.len();
        let mut group_sq = vec![0.0f64; ng];
        for (&s, &k) in sq.iter().zip(&self.member) {
            group_sq[k] += s;
        }
        let (mut norms, mut clipped, mut lrs, mut scales) = (vec![], vec![], vec![], vec![]);
        for (k, &s) in group_sq.iter().enumerate() {
            if !s.is_finite() {
                return Err(crate::Error::Numeric(format!(
                    "non-finite gradient in group `{}`",
                    self.adam.groups[k].name
                ))
                .into());
            }
            let norm = s.sqrt();
            let scale = match self.adam.groups[k].clip_norm {
                Some(c) if norm > c => c / norm,
                _ => 1.0,
            };
            // the CPU optimizer's guard: the squared gradient must fit the f32 moments
            let limit = crate::nn::max_grad_norm::<f32>();
            let scale = if norm * scale > limit { limit / norm } else { scale };
            norms.push(norm);
            clipped.push(scale < 1.0);
            lrs.push(self.adam.lr(k));
            scales.push(scale);
        }
        self.adam.step += 1;
        let t = self.adam.step as i32;
        let bc1 = 1.0 - self.adam.beta1.powi(t);
        let bc2 = 1.0 - self.adam.beta2.powi(t);
        for i in 0..self.params.len() {
            let k = self.member[i];
            let lr = lrs[k];
            let wd = self.adam.groups[k].weight_decay;
            let hp = AdamScalars {
                grad_scale: scales[k] as f32,
                beta1: self.adam.beta1 as f32,
                beta2: self.adam.beta2 as f32,
                step_size: (lr / bc1) as f32,
                inv_bc2_sqrt: (1.0 / bc2.sqrt()) as f32,
                eps: self.adam.eps as f32,
                weight_decay: wd as f32,
                decay: (1.0 - lr * wd) as f32,
                coupled: self.adam.kind == AdamKind::Adam,
            };
            let n = self.params[i].len();
            self.gpu.adam(
                n,
                &mut self.params[i],
                &self.grads[i],
                &mut self.m[i],
                &mut self.v[i],
                hp,
            )?;
        }
        Ok(StepStats {
            grad_norm: norms,
            clipped,
            lr: lrs,
        })
    }

    /// Sample, reward, train: one full step. Returns the stats and the trajectories.
    pub fn step<E: Environment, R: LogReward<E::State>>(
        &mut self,
        env: &E,
        reward: &mut R,
        config: &StepConfig,
    ) -> Result<(GpuStepStats, Trajectories<E::State>), GpuError> {
        let traj = self.sample(env, config.batch, config.exploration)?;
        let log_r = reward.log_rewards(&traj.terminals)?;
        let stats = self.train_on(&traj, &log_r, &config.objective)?;
        Ok((stats, traj))
    }
}

/// The objective's value and its gradient with respect to each transition's
/// `log P_F`, each `log F` and `log Z`.
struct HostObjective {
    value: f64,
    d_log_pf: Vec<f32>,
    d_log_f: Option<Vec<f32>>,
    d_log_z: f32,
}

/// Evaluates `objective` on a host tape (`f64`) from the per-transition values the GPU
/// computed: the engine's own objective code, so the GPU step trains exactly what the
/// CPU trainer does.
fn host_objective<S>(
    objective: &ObjectiveConfig,
    traj: &Trajectories<S>,
    log_r: &[f64],
    log_pf: &[f32],
    log_pb: &[f32],
    log_f: Option<&[f32]>,
    log_z: f64,
) -> Result<HostObjective, GpuError> {
    let column = |v: &[f32]| Array2::from_shape_fn((v.len(), 1), |(i, _)| v[i] as f64);
    let mut tape = Tape::<f64>::new();
    let pf = tape.leaf(column(log_pf));
    let f = log_f.map(|v| tape.leaf(column(v)));
    let z = tape.leaf(Array2::from_elem((1, 1), log_z));
    let terms = Terms {
        offsets: traj.offsets.clone(),
        log_pf: pf,
        log_pb: tape.constant(column(log_pb)),
        log_f: f,
        log_r: tape.constant(Array2::from_shape_fn((log_r.len(), 1), |(i, _)| log_r[i])),
        log_z: z,
        entropy: None,
    };
    let out = objective.loss(&mut tape, &terms)?;
    let grads = tape.backward(out.loss);
    let flat = |v| -> Vec<f32> {
        grads
            .get(v)
            .map_or_else(|| vec![0.0; log_pf.len()], |g| g.iter().map(|&x| x as f32).collect())
    };
    Ok(HostObjective {
        value: out.value,
        d_log_pf: flat(pf),
        d_log_f: f.map(flat),
        d_log_z: grads.get(z).map_or(0.0, |g| g[[0, 0]] as f32),
    })
}
