//! The embedded PTX modules and one typed launcher per kernel.
//!
//! `cust`'s `launch!` passes whatever it is given: nothing checks the Rust arguments
//! against the kernel's parameters. Here every kernel is declared once, in the
//! [`kernels!`] list below, which generates both its `unsafe` launcher on [`Gpu`]
//! (taking exactly those typed parameters) and its row of [`SIGNATURES`], whose PTX
//! parameter types come from the same Rust types through [`KernelArg`]. A test parses
//! the `.entry` lists of the embedded PTX ([`parse_ptx_entries`]) and compares.

use std::ffi::c_void;

use super::{Gpu, GpuError, Ptr};

/// The PTX files in `kernels/`, one driver module each.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PtxModule {
    Gemm,
    Act,
    Softmax,
    Sample,
    Loss,
    Adam,
}

impl PtxModule {
    pub const ALL: [PtxModule; 6] = [
        PtxModule::Gemm,
        PtxModule::Act,
        PtxModule::Softmax,
        PtxModule::Sample,
        PtxModule::Loss,
        PtxModule::Adam,
    ];

    /// The embedded PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            PtxModule::Gemm => include_str!("../../kernels/gemm.ptx"),
            PtxModule::Act => include_str!("../../kernels/act.ptx"),
            PtxModule::Softmax => include_str!("../../kernels/softmax.ptx"),
            PtxModule::Sample => include_str!("../../kernels/sample.ptx"),
            PtxModule::Loss => include_str!("../../kernels/loss.ptx"),
            PtxModule::Adam => include_str!("../../kernels/adam.ptx"),
        }
    }

    pub fn file(self) -> &'static str {
        match self {
            PtxModule::Gemm => "kernels/gemm.ptx",
            PtxModule::Act => "kernels/act.ptx",
            PtxModule::Softmax => "kernels/softmax.ptx",
            PtxModule::Sample => "kernels/sample.ptx",
            PtxModule::Loss => "kernels/loss.ptx",
            PtxModule::Adam => "kernels/adam.ptx",
        }
    }
}

/// A Rust type that may be passed to a kernel, with the PTX parameter type it becomes.
pub trait KernelArg: Copy + private::Sealed {
    const PTX: &'static str;
}
mod private {
    pub trait Sealed {}
}
impl private::Sealed for u32 {}
impl KernelArg for u32 {
    const PTX: &'static str = ".u32";
}
impl private::Sealed for f32 {}
impl KernelArg for f32 {
    const PTX: &'static str = ".f32";
}
impl private::Sealed for f64 {}
impl KernelArg for f64 {
    const PTX: &'static str = ".f64";
}
impl<T> private::Sealed for Ptr<T> {}
impl<T> KernelArg for Ptr<T> {
    const PTX: &'static str = ".u64";
}

/// One kernel's launcher signature.
#[derive(Clone, Debug)]
pub struct KernelSig {
    pub module: PtxModule,
    pub name: &'static str,
    /// PTX parameter types in order (`.u32`, `.f32`, `.u64`).
    pub params: &'static [&'static str],
}

macro_rules! kernels {
    ($( $(#[$doc:meta])* $module:ident :: $name:ident ( $($arg:ident : $ty:ty),* $(,)? ); )*) => {
        impl Gpu {
            $(
                $(#[$doc])*
                ///
                /// # Safety
                /// Every pointer must address a live device allocation at least as large as the
                /// kernel reads or writes for the given sizes (see `kernels/`); [`super::ops`]
                /// checks that and is the safe way in.
                #[allow(clippy::too_many_arguments)]
                pub unsafe fn $name(&self, grid: (u32, u32), block: u32, $($arg: $ty),*) -> Result<(), GpuError> {
                    let mut args: Vec<*mut c_void> = vec![$( &$arg as *const $ty as *mut c_void ),*];
                    self.launch(PtxModule::$module, stringify!($name), grid, block, &mut args)
                }
            )*
        }

        /// The parameter list of every typed launcher, in kernel-file order.
        pub const SIGNATURES: &[KernelSig] = &[
            $( KernelSig {
                module: PtxModule::$module,
                name: stringify!($name),
                params: &[$(<$ty as KernelArg>::PTX),*],
            }, )*
        ];
    };
}

kernels! {
    /// `c = alpha a b + beta c`, `a [m,k]`, `b [k,n]`.
    Gemm::gemm_nn_f32(m: u32, n: u32, k: u32, alpha: f32, a: Ptr<f32>, b: Ptr<f32>, beta: f32, c: Ptr<f32>);
    /// `c = alpha a b^T + beta c`, `a [m,k]`, `b [n,k]`.
    Gemm::gemm_nt_f32(m: u32, n: u32, k: u32, alpha: f32, a: Ptr<f32>, b: Ptr<f32>, beta: f32, c: Ptr<f32>);
    /// `c = alpha a^T b + beta c`, `a [k,m]`, `b [k,n]`.
    Gemm::gemm_tn_f32(m: u32, n: u32, k: u32, alpha: f32, a: Ptr<f32>, b: Ptr<f32>, beta: f32, c: Ptr<f32>);
    /// [`Gpu::gemm_nn_f32`] with bf16 storage of `a` and `b`.
    Gemm::gemm_nn_bf16(m: u32, n: u32, k: u32, alpha: f32, a: Ptr<u16>, b: Ptr<u16>, beta: f32, c: Ptr<f32>);
    /// [`Gpu::gemm_nt_f32`] with bf16 storage of `a` and `b`.
    Gemm::gemm_nt_bf16(m: u32, n: u32, k: u32, alpha: f32, a: Ptr<u16>, b: Ptr<u16>, beta: f32, c: Ptr<f32>);
    /// [`Gpu::gemm_tn_f32`] with bf16 storage of `a` and `b`.
    Gemm::gemm_tn_bf16(m: u32, n: u32, k: u32, alpha: f32, a: Ptr<u16>, b: Ptr<u16>, beta: f32, c: Ptr<f32>);
    /// `y = bf16(x)`, round to nearest even.
    Gemm::f32_to_bf16(n: u32, x: Ptr<f32>, y: Ptr<u16>);
    /// `y = act(x + bias)`.
    Act::bias_act_fwd(rows: u32, cols: u32, x: Ptr<f32>, bias: Ptr<f32>, act: u32, slope: f32, y: Ptr<f32>);
    /// `dx = dy * act'` from the activation's output `y`.
    Act::act_bwd(rows: u32, cols: u32, y: Ptr<f32>, dy: Ptr<f32>, act: u32, slope: f32, dx: Ptr<f32>);
    /// `out[j] = sum_i x[i,j] + beta out[j]`.
    Act::col_sum(rows: u32, cols: u32, x: Ptr<f32>, beta: f32, out: Ptr<f32>);
    /// Masked row log-softmax.
    Softmax::masked_log_softmax_fwd(rows: u32, cols: u32, x: Ptr<f32>, mask: Ptr<u8>, out: Ptr<f32>);
    /// Its backward.
    Softmax::masked_log_softmax_bwd(rows: u32, cols: u32, logp: Ptr<f32>, mask: Ptr<u8>, g: Ptr<f32>, dx: Ptr<f32>);
    /// `out[i] = x[i, index[i]]`.
    Softmax::gather_cols(rows: u32, cols: u32, x: Ptr<f32>, index: Ptr<u32>, out: Ptr<f32>);
    /// Gradient of `sum_i coef[i] logp[i, action[i]]` w.r.t. the logits.
    Softmax::logsoftmax_gather_bwd(rows: u32, cols: u32, logp: Ptr<f32>, mask: Ptr<u8>, action: Ptr<u32>, coef: Ptr<f32>, dx: Ptr<f32>);
    /// Philox4x32-10 first words, for the host twin's test.
    Sample::philox_test(n: u32, hi: u32, step: u32, seed_lo: u32, seed_hi: u32, out: Ptr<u32>);
    /// One categorical draw per row.
    Sample::sample_categorical(rows: u32, cols: u32, logits: Ptr<f32>, mask: Ptr<u8>, traj: Ptr<u64>, step: u32, seed_lo: u32, seed_hi: u32, inv_temp: f32, epsilon: f32, action: Ptr<u32>, logp: Ptr<f32>);
    /// TB residual per trajectory.
    Loss::tb_residual(batch: u32, offsets: Ptr<u32>, log_pf: Ptr<f32>, log_pb: Ptr<f32>, log_r: Ptr<f32>, log_z: Ptr<f32>, resid: Ptr<f32>);
    /// `g(t)` and `scale g'(clip(t))`.
    Loss::regression_loss(n: u32, t: Ptr<f32>, kind: u32, alpha: f32, clip: f32, scale: f32, value: Ptr<f32>, grad: Ptr<f32>);
    /// Per-segment value to each of its rows.
    Loss::segment_broadcast(batch: u32, offsets: Ptr<u32>, per_seg: Ptr<f32>, sign: f32, per_row: Ptr<f32>);
    /// Block sums (of squares).
    Loss::reduce_sum(n: u32, x: Ptr<f32>, square: u32, scale: f32, out: Ptr<f32>);
    /// Block sums of squares, accumulated in f64.
    Loss::reduce_sum_sq_f64(n: u32, x: Ptr<f32>, out: Ptr<f64>);
    /// Sum of f64 values (one block).
    Loss::reduce_f64(n: u32, x: Ptr<f64>, out: Ptr<f64>);
    /// Adam / AdamW update.
    Adam::adam_step(n: u32, w: Ptr<f32>, g: Ptr<f32>, m: Ptr<f32>, v: Ptr<f32>, grad_scale: f32, b1: f32, b2: f32, step_size: f32, inv_bc2_sqrt: f32, eps: f32, wd: f32, decay: f32, coupled: u32);
}

/// The `.entry` kernels of a PTX text with their parameter types, in file order.
pub fn parse_ptx_entries(ptx: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry ") {
        rest = &rest[at + ".entry ".len()..];
        let open = rest.find('(').unwrap_or(rest.len());
        let name = rest[..open].trim().to_string();
        let close = rest.find(')').unwrap_or(rest.len());
        let params = rest[open.min(close)..close]
            .trim_start_matches('(')
            .split(',')
            .filter_map(|p| {
                let words: Vec<&str> = p.split_whitespace().collect();
                // `.param .u32 name` (possibly with `.align N` / `.ptr ...` qualifiers)
                let pos = words.iter().position(|w| *w == ".param")?;
                words[pos + 1..]
                    .iter()
                    .find(|w| {
                        matches!(
                            **w,
                            ".u8"
                                | ".u16"
                                | ".u32"
                                | ".u64"
                                | ".s32"
                                | ".s64"
                                | ".f32"
                                | ".f64"
                                | ".b8"
                                | ".b32"
                                | ".b64"
                        )
                    })
                    .map(|w| w.to_string())
            })
            .collect();
        out.push((name, params));
        rest = &rest[close..];
    }
    out
}
