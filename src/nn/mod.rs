//! Neural-network building blocks: parameters, layers, optimizers, schedules.

mod csr;
mod linear;
mod mlp;
mod optim;
mod params;
mod schedule;

pub use csr::{Csr, RowSums};
pub use linear::{Init, Input, Linear};
pub use mlp::{Activation, Mlp};
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub(crate) use optim::max_grad_norm;
pub use optim::{Adam, AdamKind, GroupConfig, StepStats};
pub use params::{Bound, Param, ParamId, ParamStore};
pub use schedule::Schedule;
