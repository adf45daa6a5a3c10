//! Pieces shared by the integration tests.

use gflownet::replay::ReplayKind;
use gflownet::train::TrainConfig;

/// A small, fast HyperGrid run with replay, evaluation and checkpoints.
pub fn small_grid() -> TrainConfig {
    let mut c = TrainConfig::hypergrid_default(2, 6);
    c.steps = 40;
    c.batch = 8;
    c.policy.hidden = vec![32, 32];
    c.replay.kind = ReplayKind::Prioritized;
    c.replay.batch = 4;
    c.eval.every = 10;
    c.eval.samples = 32;
    c.log_every = 1;
    c.checkpoint_every = 10;
    c
}
