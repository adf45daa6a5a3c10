//! Metrics: exact distributions for enumerable environments, sample statistics.

mod exact;
pub mod sequences;
pub mod stats;

pub use exact::{empirical_distribution, exact_terminal_distribution, DistributionMetrics, ExactDistribution};
