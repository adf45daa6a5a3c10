//! Neural-network building blocks: parameters, layers, optimizers, schedules.

mod linear;
mod mlp;
mod optim;
mod params;
mod schedule;

pub use linear::{Init, Linear};
pub use mlp::{Activation, Mlp};
pub use optim::{Adam, AdamKind, GroupConfig, StepStats};
pub use params::{Bound, Param, ParamId, ParamStore};
pub use schedule::Schedule;
