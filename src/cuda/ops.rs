//! Safe wrappers over the typed launchers: each checks the buffers' lengths against
//! the sizes it is given, picks the launch shape, and launches (asynchronously).

use super::{Buf, Elem, Gpu, GpuError, Ptr};

/// Which operands of a GEMM are transposed (all row-major).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GemmOp {
    /// `a [m,k] · b [k,n]`
    NN,
    /// `a [m,k] · b^T`, `b [n,k]`
    NT,
    /// `a^T · b`, `a [k,m]`, `b [k,n]`
    TN,
}

/// Hidden-layer activation as the kernels know it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Act {
    Identity,
    /// Leaky ReLU with slope `>= 0` (0 is ReLU).
    LeakyRelu(f32),
    Tanh,
}

impl Act {
    fn code(self) -> (u32, f32) {
        match self {
            Act::Identity => (0, 0.0),
            Act::LeakyRelu(k) => (1, k),
            Act::Tanh => (2, 0.0),
        }
    }

    /// The engine's activation, refusing a negative leaky slope (the backward kernel
    /// reads the sign of the pre-activation from the output).
    pub fn from_engine(a: crate::nn::Activation) -> Result<Self, GpuError> {
        match a {
            crate::nn::Activation::Relu => Ok(Act::LeakyRelu(0.0)),
            crate::nn::Activation::LeakyRelu(k) if k >= 0.0 && k.is_finite() => Ok(Act::LeakyRelu(k as f32)),
            crate::nn::Activation::LeakyRelu(k) => Err(GpuError::Unsupported(format!(
                "leaky ReLU with slope {k}: the GPU backward needs a slope >= 0"
            ))),
            crate::nn::Activation::Tanh => Ok(Act::Tanh),
        }
    }
}

/// The engine's regression loss and clip: the GPU computes the same `g` as the CPU objectives.
pub use crate::objective::{RegressionLoss, DEFAULT_CLIP};

/// Refuses what the CPU objective refuses: a Linex alpha that is zero or not
/// finite, and a clip that is not positive or whose `g'` overflows f32.
pub fn validate_loss(g: RegressionLoss, clip: f64) -> Result<(), GpuError> {
    let config = crate::objective::ObjectiveConfig {
        g,
        clip,
        ..Default::default()
    };
    config.validate().map_err(Into::into)
}

/// The kernel's encoding of `g`: `(kind, alpha)`.
fn loss_code(g: RegressionLoss) -> (u32, f32) {
    match g {
        RegressionLoss::Squared => (0, 0.0),
        RegressionLoss::Linex(a) => (1, a as f32),
        RegressionLoss::ShiftedCosh => (2, 0.0),
    }
}

const BLOCK: u32 = 256;

fn u32_of(what: &str, n: usize) -> Result<u32, GpuError> {
    u32::try_from(n).map_err(|_| GpuError::Shape(format!("{what} = {n} does not fit in 32 bits")))
}

fn need<T: Elem>(what: &str, b: &Buf<T>, n: usize) -> Result<(), GpuError> {
    if b.len() < n {
        return Err(GpuError::Shape(format!("{what} holds {} elements, needs {n}", b.len())));
    }
    Ok(())
}

/// Checks each buffer's length against the element count after its name, in order
/// (`need!("gather", x: rows * cols, index: rows)`); the error names the kernel and
/// the buffer, e.g. `gather x holds 6 elements, needs 8`.
macro_rules! need {
    ($kernel:literal, $($buf:ident: $n:expr),+ $(,)?) => {
        $(need(concat!($kernel, " ", stringify!($buf)), $buf, $n)?;)+
    };
}

/// `rows` and `cols` as the kernels' 32-bit sizes (the error names the one that does not fit).
fn dims(rows: usize, cols: usize) -> Result<(u32, u32), GpuError> {
    Ok((u32_of("rows", rows)?, u32_of("cols", cols)?))
}

/// Grid of a grid-stride kernel over `n` elements.
fn grid_1d(n: usize) -> (u32, u32) {
    (n.div_ceil(BLOCK as usize).clamp(1, 8192) as u32, 1)
}

/// Grid of a one-warp-per-row kernel (8 rows per block).
fn grid_rows(rows: usize) -> (u32, u32) {
    (rows.div_ceil(8).max(1) as u32, 1)
}

/// A typed GEMM launcher (see `launch.rs`): `(grid, block, m, n, k, alpha, a, b, beta, c)`.
type GemmLauncher<T> =
    unsafe fn(&Gpu, (u32, u32), u32, u32, u32, u32, f32, Ptr<T>, Ptr<T>, f32, Ptr<f32>) -> Result<(), GpuError>;

/// A storage type of the GEMM operands `a` and `b`, with the kernels that read it.
trait GemmStorage: Elem {
    /// The kernel of `op` for this storage.
    fn launcher(op: GemmOp) -> GemmLauncher<Self>;
}

impl GemmStorage for f32 {
    fn launcher(op: GemmOp) -> GemmLauncher<f32> {
        match op {
            GemmOp::NN => Gpu::gemm_nn_f32,
            GemmOp::NT => Gpu::gemm_nt_f32,
            GemmOp::TN => Gpu::gemm_tn_f32,
        }
    }
}

/// bf16 bit patterns.
impl GemmStorage for u16 {
    fn launcher(op: GemmOp) -> GemmLauncher<u16> {
        match op {
            GemmOp::NN => Gpu::gemm_nn_bf16,
            GemmOp::NT => Gpu::gemm_nt_bf16,
            GemmOp::TN => Gpu::gemm_tn_bf16,
        }
    }
}

impl Gpu {
    /// `c = alpha op(a, b) + beta c` with f32 storage; `c` is `[m, n]` (`beta = 0`: `c` is not read).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        op: GemmOp,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &Buf<f32>,
        b: &Buf<f32>,
        beta: f32,
        c: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        self.gemm_of(op, m, n, k, alpha, a, b, beta, c)
    }

    /// [`Gpu::gemm`] with bf16 storage of `a` and `b` (f32 accumulate and output).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_bf16(
        &self,
        op: GemmOp,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &Buf<u16>,
        b: &Buf<u16>,
        beta: f32,
        c: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        self.gemm_of(op, m, n, k, alpha, a, b, beta, c)
    }

    /// [`Gpu::gemm`] and [`Gpu::gemm_bf16`]: the checks and the launch, whatever the storage `T`.
    #[allow(clippy::too_many_arguments)]
    fn gemm_of<T: GemmStorage>(
        &self,
        op: GemmOp,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &Buf<T>,
        b: &Buf<T>,
        beta: f32,
        c: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("gemm", a: m * k, b: k * n, c: m * n);
        let (mm, nn, kk) = (u32_of("m", m)?, u32_of("n", n)?, u32_of("k", k)?);
        if m == 0 || n == 0 {
            return Ok(());
        }
        let grid = (n.div_ceil(128) as u32, u32_of("m / 128", m.div_ceil(128))?);
        let launch = T::launcher(op);
        // SAFETY: sizes checked above.
        unsafe { launch(self, grid, BLOCK, mm, nn, kk, alpha, a.ptr(), b.ptr(), beta, c.ptr()) }
    }

    /// `y = bf16(x)` over `n` elements.
    pub fn to_bf16(&self, n: usize, x: &Buf<f32>, y: &mut Buf<u16>) -> Result<(), GpuError> {
        need!("to_bf16", x: n, y: n);
        // SAFETY: sizes checked above.
        unsafe { self.f32_to_bf16(grid_1d(n), BLOCK, u32_of("n", n)?, x.ptr(), y.ptr()) }
    }

    /// `y = act(x + bias)`, `x, y [rows, cols]`, `bias [cols]`.
    pub fn bias_act(
        &self,
        rows: usize,
        cols: usize,
        x: &Buf<f32>,
        bias: &Buf<f32>,
        act: Act,
        y: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        self.bias_act_to(rows, cols, x, bias, act, Some(y))
    }

    /// In-place `x = act(x + bias)`.
    pub fn bias_act_inplace(
        &self,
        rows: usize,
        cols: usize,
        x: &mut Buf<f32>,
        bias: &Buf<f32>,
        act: Act,
    ) -> Result<(), GpuError> {
        self.bias_act_to(rows, cols, x, bias, act, None)
    }

    /// [`Gpu::bias_act`] into `y`, or into `x` itself when `y` is `None`.
    fn bias_act_to(
        &self,
        rows: usize,
        cols: usize,
        x: &Buf<f32>,
        bias: &Buf<f32>,
        act: Act,
        y: Option<&Buf<f32>>,
    ) -> Result<(), GpuError> {
        need!("bias_act", x: rows * cols, bias: cols);
        if let Some(y) = y {
            need!("bias_act", y: rows * cols);
        }
        let (code, slope) = act.code();
        let (r, c) = dims(rows, cols)?;
        let (grid, out) = (grid_1d(rows * cols), y.unwrap_or(x).ptr());
        // SAFETY: sizes checked above; the kernel is elementwise, so x may be both input and output.
        unsafe { self.bias_act_fwd(grid, BLOCK, r, c, x.ptr(), bias.ptr(), code, slope, out) }
    }

    /// `dx = dy * act'` from the activation output `y`.
    pub fn act_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &Buf<f32>,
        dy: &Buf<f32>,
        act: Act,
        dx: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("act_bwd", y: rows * cols, dy: rows * cols, dx: rows * cols);
        let (code, slope) = act.code();
        let (r, c) = dims(rows, cols)?;
        let grid = grid_1d(rows * cols);
        // SAFETY: sizes checked above.
        unsafe { self.act_bwd(grid, BLOCK, r, c, y.ptr(), dy.ptr(), code, slope, dx.ptr()) }
    }

    /// In-place `d = d * act'` from the activation output `y`.
    pub fn act_backward_inplace(
        &self,
        rows: usize,
        cols: usize,
        y: &Buf<f32>,
        d: &mut Buf<f32>,
        act: Act,
    ) -> Result<(), GpuError> {
        need!("act_bwd", y: rows * cols, d: rows * cols);
        let (code, slope) = act.code();
        let (r, c) = dims(rows, cols)?;
        let grid = grid_1d(rows * cols);
        // SAFETY: sizes checked above; elementwise, so d may be both input and output.
        unsafe { self.act_bwd(grid, BLOCK, r, c, y.ptr(), d.ptr(), code, slope, d.ptr()) }
    }

    /// `out[j] = sum_i x[i, j] + beta out[j]`.
    pub fn col_sums(
        &self,
        rows: usize,
        cols: usize,
        x: &Buf<f32>,
        beta: f32,
        out: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("col_sum", x: rows * cols, out: cols);
        let (r, c) = dims(rows, cols)?;
        let grid = (cols.div_ceil(32).max(1) as u32, 1);
        // SAFETY: sizes checked above.
        unsafe { self.col_sum(grid, BLOCK, r, c, x.ptr(), beta, out.ptr()) }
    }

    /// Row-wise log-softmax over the entries where `mask != 0`; `-inf` elsewhere.
    pub fn log_softmax(
        &self,
        rows: usize,
        cols: usize,
        x: &Buf<f32>,
        mask: &Buf<u8>,
        out: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("log_softmax", x: rows * cols, mask: rows * cols, out: rows * cols);
        let (r, c) = dims(rows, cols)?;
        // SAFETY: sizes checked above.
        unsafe { self.masked_log_softmax_fwd(grid_rows(rows), BLOCK, r, c, x.ptr(), mask.ptr(), out.ptr()) }
    }

    /// Backward of [`Gpu::log_softmax`]: `dx = g - p * sum_valid g` at valid entries.
    #[allow(clippy::too_many_arguments)]
    pub fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        logp: &Buf<f32>,
        mask: &Buf<u8>,
        g: &Buf<f32>,
        dx: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("log_softmax_bwd", logp: rows * cols, g: rows * cols, mask: rows * cols, dx: rows * cols);
        let (r, c) = dims(rows, cols)?;
        // SAFETY: sizes checked above.
        unsafe { self.masked_log_softmax_bwd(grid_rows(rows), BLOCK, r, c, logp.ptr(), mask.ptr(), g.ptr(), dx.ptr()) }
    }

    /// `out[i] = x[i, index[i]]` (NaN for an index out of range).
    pub fn gather(
        &self,
        rows: usize,
        cols: usize,
        x: &Buf<f32>,
        index: &Buf<u32>,
        out: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("gather", x: rows * cols, index: rows, out: rows);
        let (r, c) = dims(rows, cols)?;
        // SAFETY: sizes checked above.
        unsafe { self.gather_cols(grid_1d(rows), BLOCK, r, c, x.ptr(), index.ptr(), out.ptr()) }
    }

    /// `dx = d/dlogits sum_i coef[i] log_softmax(logits)[i, action[i]]`, from `logp`.
    #[allow(clippy::too_many_arguments)]
    pub fn log_softmax_gather_backward(
        &self,
        rows: usize,
        cols: usize,
        logp: &Buf<f32>,
        mask: &Buf<u8>,
        action: &Buf<u32>,
        coef: &Buf<f32>,
        dx: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("logsoftmax_gather_bwd", logp: rows * cols, mask: rows * cols, action: rows, coef: rows, dx: rows * cols);
        let (r, c) = dims(rows, cols)?;
        let (logp, mask, action, coef) = (logp.ptr(), mask.ptr(), action.ptr(), coef.ptr());
        // SAFETY: sizes checked above; actions out of range only never match a column.
        unsafe { self.logsoftmax_gather_bwd(grid_rows(rows), BLOCK, r, c, logp, mask, action, coef, dx.ptr()) }
    }

    /// One categorical draw per row from `(1 - epsilon) softmax(logits / temperature) + epsilon uniform`
    /// over the valid entries, with the uniform of row `i` keyed by `(seed, traj[i], step)`.
    /// Writes the action and its log-probability at temperature 1 (`u32::MAX` and NaN for a
    /// row with no valid entry).
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        rows: usize,
        cols: usize,
        logits: &Buf<f32>,
        mask: &Buf<u8>,
        traj: &Buf<u64>,
        step: u32,
        seed: u64,
        temperature: f64,
        epsilon: f64,
        action: &mut Buf<u32>,
        logp: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("sample", logits: rows * cols, mask: rows * cols, traj: rows, action: rows, logp: rows);
        let (r, c) = dims(rows, cols)?;
        // SAFETY: sizes checked above.
        unsafe {
            self.sample_categorical(
                grid_rows(rows),
                BLOCK,
                r,
                c,
                logits.ptr(),
                mask.ptr(),
                traj.ptr(),
                step,
                seed as u32,
                (seed >> 32) as u32,
                (1.0 / temperature) as f32,
                epsilon as f32,
                action.ptr(),
                logp.ptr(),
            )
        }
    }

    /// Philox4x32-10 first output words for counters `(i, hi, step, 0)`, `i < n`.
    pub fn philox(&self, n: usize, hi: u32, step: u32, seed: u64, out: &mut Buf<u32>) -> Result<(), GpuError> {
        need!("philox", out: n);
        let (nn, seed_lo, seed_hi) = (u32_of("n", n)?, seed as u32, (seed >> 32) as u32);
        // SAFETY: size checked above.
        unsafe { self.philox_test(grid_1d(n), BLOCK, nn, hi, step, seed_lo, seed_hi, out.ptr()) }
    }

    /// TB residuals `log R + sum log P_B - log Z - sum log P_F` of `batch` trajectories.
    #[allow(clippy::too_many_arguments)]
    pub fn tb_residuals(
        &self,
        batch: usize,
        offsets: &Buf<u32>,
        log_pf: &Buf<f32>,
        log_pb: &Buf<f32>,
        log_r: &Buf<f32>,
        log_z: &Buf<f32>,
        resid: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("tb_residual", offsets: batch + 1, log_r: batch, log_z: 1, resid: batch);
        // The row count is offsets[batch], known to the caller; log_pf / log_pb must hold it.
        if log_pf.len() != log_pb.len() {
            return Err(GpuError::Shape(format!(
                "tb_residual: log_pf has {} rows, log_pb {}",
                log_pf.len(),
                log_pb.len()
            )));
        }
        // SAFETY: sizes checked above; the caller's offsets rise to at most log_pf.len() (see GpuTrainer).
        unsafe {
            self.tb_residual(
                grid_1d(batch),
                BLOCK,
                u32_of("batch", batch)?,
                offsets.ptr(),
                log_pf.ptr(),
                log_pb.ptr(),
                log_r.ptr(),
                log_z.ptr(),
                resid.ptr(),
            )
        }
    }

    /// `value = g(t)`, `grad = scale g'(clamp(t, -clip, clip))`, elementwise over `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn regression(
        &self,
        n: usize,
        t: &Buf<f32>,
        loss: RegressionLoss,
        clip: f64,
        scale: f32,
        value: &mut Buf<f32>,
        grad: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        validate_loss(loss, clip)?;
        need!("regression", t: n, value: n, grad: n);
        let (kind, alpha) = loss_code(loss);
        // SAFETY: sizes checked above.
        unsafe {
            self.regression_loss(
                grid_1d(n),
                BLOCK,
                u32_of("n", n)?,
                t.ptr(),
                kind,
                alpha,
                clip as f32,
                scale,
                value.ptr(),
                grad.ptr(),
            )
        }
    }

    /// `per_row[r] = sign per_seg[b]` for the rows `offsets[b]..offsets[b+1]` of each segment.
    pub fn broadcast_segments(
        &self,
        batch: usize,
        offsets: &Buf<u32>,
        per_seg: &Buf<f32>,
        sign: f32,
        per_row: &mut Buf<f32>,
    ) -> Result<(), GpuError> {
        need!("segment_broadcast", offsets: batch + 1, per_seg: batch);
        // SAFETY: sizes checked above; the caller's offsets rise to at most per_row.len().
        unsafe {
            self.segment_broadcast(
                grid_1d(batch),
                BLOCK,
                u32_of("batch", batch)?,
                offsets.ptr(),
                per_seg.ptr(),
                sign,
                per_row.ptr(),
            )
        }
    }

    /// `out[at] = scale * sum_{i<n} x[i]` (of `x[i]^2` when `square`), in two deterministic
    /// passes through `scratch` (resized as needed).
    #[allow(clippy::too_many_arguments)]
    pub fn sum(
        &self,
        n: usize,
        x: &Buf<f32>,
        square: bool,
        scale: f32,
        scratch: &mut Buf<f32>,
        out: &mut Buf<f32>,
        at: usize,
    ) -> Result<(), GpuError> {
        need!("sum", x: n, out: at + 1);
        let blocks = n.div_ceil(BLOCK as usize).clamp(1, 512);
        scratch.resize(blocks)?;
        let nn = u32_of("n", n)?;
        // SAFETY: sizes checked above; `out` offset stays inside it.
        unsafe {
            self.reduce_sum(
                (blocks as u32, 1),
                BLOCK,
                nn,
                x.ptr(),
                square as u32,
                1.0,
                scratch.ptr(),
            )?;
            let dst = Ptr::from_raw(out.ptr().addr() + 4 * at as u64);
            self.reduce_sum((1, 1), BLOCK, blocks as u32, scratch.ptr(), 0, scale, dst)
        }
    }

    /// `out[at] = sum_{i<n} x[i]^2`, accumulated in f64, in two deterministic passes.
    pub fn sum_squares(
        &self,
        n: usize,
        x: &Buf<f32>,
        scratch: &mut Buf<f64>,
        out: &mut Buf<f64>,
        at: usize,
    ) -> Result<(), GpuError> {
        need!("sum_squares", x: n, out: at + 1);
        let blocks = n.div_ceil(BLOCK as usize).clamp(1, 512);
        scratch.resize(blocks)?;
        // SAFETY: sizes checked above; `out` offset stays inside it.
        unsafe {
            self.reduce_sum_sq_f64((blocks as u32, 1), BLOCK, u32_of("n", n)?, x.ptr(), scratch.ptr())?;
            let dst = Ptr::from_raw(out.ptr().addr() + 8 * at as u64);
            self.reduce_f64((1, 1), BLOCK, blocks as u32, scratch.ptr(), dst)
        }
    }

    /// One Adam / AdamW update of `n` parameters (see `kernels/adam.cu` for the arithmetic).
    #[allow(clippy::too_many_arguments)]
    pub fn adam(
        &self,
        n: usize,
        w: &mut Buf<f32>,
        g: &Buf<f32>,
        m: &mut Buf<f32>,
        v: &mut Buf<f32>,
        hp: AdamScalars,
    ) -> Result<(), GpuError> {
        need!("adam", w: n, g: n, m: n, v: n);
        // SAFETY: sizes checked above.
        unsafe {
            self.adam_step(
                grid_1d(n),
                BLOCK,
                u32_of("n", n)?,
                w.ptr(),
                g.ptr(),
                m.ptr(),
                v.ptr(),
                hp.grad_scale,
                hp.beta1,
                hp.beta2,
                hp.step_size,
                hp.inv_bc2_sqrt,
                hp.eps,
                hp.weight_decay,
                hp.decay,
                hp.coupled as u32,
            )
        }
    }
}

/// The per-step scalars of one Adam update, each rounded to f32 as the CPU engine does.
#[derive(Copy, Clone, Debug)]
pub struct AdamScalars {
    pub grad_scale: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// `lr / (1 - beta1^t)`
    pub step_size: f32,
    /// `1 / sqrt(1 - beta2^t)`
    pub inv_bc2_sqrt: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// `1 - lr * weight_decay` (AdamW)
    pub decay: f32,
    /// Adam (L2 added to the gradient) rather than AdamW (decoupled decay).
    pub coupled: bool,
}
