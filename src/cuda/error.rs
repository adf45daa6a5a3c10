//! The GPU backend's error type.

use std::fmt;

/// The driver's error code (`cust`'s), or the host emulation's under `cuda-emu`.
#[cfg(feature = "cuda")]
pub use cust::error::CudaError as DriverError;

/// Errors of the host emulation (feature `cuda-emu`).
#[cfg(not(feature = "cuda"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverError {
    /// The emulation has no kernel of that name.
    UnknownKernel = 1,
    /// A block size the kernels do not use.
    BadLaunch = 2,
    /// The emulation was asked for a device other than 0.
    InvalidDevice = 101,
}

/// Everything the GPU backend can fail with. Never formats a `cust` error with its
/// `Display` (that calls the driver, and panics if the driver cannot answer).
#[derive(Debug)]
#[non_exhaustive]
pub enum GpuError {
    /// No usable GPU: the driver reports no device (or could not initialise). Fall back to the CPU engine.
    Unavailable { call: &'static str, code: DriverError },
    /// A driver call failed.
    Driver { call: String, code: DriverError },
    /// Buffers or sizes that do not fit a kernel's arguments.
    Shape(String),
    /// A model or option the GPU path does not implement (e.g. a learned `P_B`).
    Unsupported(String),
    /// An error of the engine itself (configuration, rewards, non-finite gradients).
    Engine(crate::Error),
}

impl GpuError {
    #[cfg(feature = "cuda")]
    pub(crate) fn driver(call: impl Into<String>) -> impl FnOnce(DriverError) -> GpuError {
        let call = call.into();
        move |code| GpuError::Driver { call, code }
    }

    /// Whether this is [`GpuError::Unavailable`] (no driver / no device).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, GpuError::Unavailable { .. })
    }
}

fn code(c: &DriverError) -> String {
    match *c as u32 {
        n if n < 100_000 => format!("{c:?} (CUresult {n})"),
        _ => format!("{c:?}"),
    }
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::Unavailable { call, code: c } => write!(
                f,
                "no usable CUDA GPU: {call} failed with {}; use the CPU engine",
                code(c)
            ),
            GpuError::Driver { call, code: c } => write!(f, "CUDA driver call {call} failed with {}", code(c)),
            GpuError::Shape(m) => write!(f, "GPU kernel arguments: {m}"),
            GpuError::Unsupported(m) => write!(f, "not supported on the GPU backend: {m}"),
            GpuError::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GpuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GpuError::Engine(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::Error> for GpuError {
    fn from(e: crate::Error) -> Self {
        GpuError::Engine(e)
    }
}
