#![doc = include_str!("../README.md")]
//! # gflownet
//!
//! A GFlowNet training engine with no ML framework underneath: its own
//! reverse-mode autodiff over `ndarray` ([`autodiff`]), a policy MLP and
//! optimizers ([`nn`]), and seeded random streams ([`rng`]) so that a run is
//! reproducible bit for bit from its seed.

pub mod autodiff;
pub mod checkpoint;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod cuda;
pub mod env;
pub mod error;
mod exp;
pub mod metrics;
pub mod nn;
pub mod objective;
pub mod policy;
pub mod replay;
pub mod reward;
pub mod rng;
pub mod sampler;
mod scalar;
pub mod train;
pub mod workers;

pub use error::Error;
pub use scalar::Scalar;
