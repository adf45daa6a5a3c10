//! The optional GPU backend (`--features cuda`): the policy MLP forward and backward,
//! masked log-softmax, categorical sampling, trajectory-balance residuals and losses,
//! and the Adam update, as PTX kernels launched through `cust`.
//!
//! * Kernels are CUDA C in `kernels/*.cu`, compiled ahead of time to PTX by
//!   `scripts/kernels.sh` (clang-16, no CUDA toolkit); the committed `.ptx` files are
//!   embedded here with `include_str!`, so building this feature needs no compiler and
//!   the driver JIT-compiles them for the GPU at hand.
//! * Every kernel has exactly one typed launcher ([`Gpu`]'s `unsafe` methods named
//!   after the kernel, generated with the parameter table [`SIGNATURES`] from one list,
//!   so a test can compare each launcher's parameter list with the PTX `.entry`), and
//!   safe wrappers in [`ops`] that check buffer sizes first.
//! * [`Gpu::new`] returns [`GpuError::Unavailable`] (never panics) when the driver
//!   reports no device, so a caller can fall back to the CPU engine. A binary built
//!   with this feature links `libcuda.so.1`; a machine without the driver library at
//!   all cannot start it (use a build without the feature there).
//! * [`trainer::GpuTrainer`] runs a whole trajectory-balance training step on the GPU
//!   (sampling, loss, backward, Adam) for any [`crate::env::Environment`] with a
//!   uniform `P_B` (peptides, HyperGrid); [`reference`] holds the CPU engine's twin
//!   of that step, used by the tests and the benchmark.
//! * Test-only feature `cuda-emu` (ignored when `cuda` is on): the same module with
//!   `cust` replaced by a host emulation of the kernels (`kernels/emu`, linked by
//!   `scripts/emulate-kernels.sh --rust`), so `tests/cuda.rs` runs without a GPU.

mod buf;
mod error;
mod gpu;
mod launch;
pub mod ops;
pub mod reference;
pub mod rng;
pub mod trainer;

pub use buf::{Buf, Elem, Ptr};
pub use error::GpuError;
pub use gpu::Gpu;
pub use launch::{parse_ptx_entries, KernelSig, PtxModule, SIGNATURES};
pub use ops::{validate_loss, Act, GemmOp, RegressionLoss};
pub use trainer::{GpuStepStats, GpuTrainer};
