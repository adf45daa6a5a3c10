//! Reverse-mode automatic differentiation over `ndarray`.
//!
//! A [`Tape`] is an arena of nodes. Each node holds a 2-D value and the
//! [`Op`] that made it; [`Tape::backward`] walks the arena once in reverse
//! and accumulates gradients (a node used several times receives the sum of
//! its uses' gradients). Every op lives in [`ops`] as one struct whose
//! `forward` and `backward` sit side by side, so each derivative can be
//! checked against its forward at a glance, and [`gradcheck()`] checks it
//! numerically.
//!
//! All values are 2-D arrays: a scalar is `[1, 1]`, a batch of scalars
//! `[n, 1]`. Binary elementwise ops broadcast a dimension of size 1 (so a
//! bias `[1, n]` adds to a batch `[m, n]`, and a `[1, 1]` scalar to anything).
//!
//! Shape errors inside the tape are programming errors: they panic with a
//! message that names the op and both shapes (like indexing out of bounds).
//! Data that comes from users (configurations, rewards, files) is validated
//! before it reaches the tape and returns [`crate::Error`] instead.

mod activation;
pub mod gemm;
mod gradcheck;
pub mod ops;
pub mod pool;
mod tape;

pub use activation::Activation;
pub use gradcheck::{gradcheck, GradCheck};
pub use ops::Op;
pub use tape::{Gradients, Tape, Var};
