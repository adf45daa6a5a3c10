//! Seeded random streams.
//!
//! Every random draw in the engine comes from a ChaCha8 generator derived
//! from the one user seed and a fixed stream number per purpose, so that
//! adding draws to one purpose never shifts another's sequence.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator type used everywhere.
pub type Rng = ChaCha8Rng;

/// Stream numbers, one per purpose.
pub mod streams {
    pub const INIT: u64 = 1;
    pub const SAMPLE: u64 = 2;
    pub const REPLAY: u64 = 3;
    pub const EVAL: u64 = 4;
    pub const DATA: u64 = 5;
}

/// The generator for `(seed, stream)`.
pub fn stream(seed: u64, stream: u64) -> Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A child generator keyed by `(seed, stream, index)`: e.g. one per trajectory
/// of a batch, so results do not depend on how work is split across threads.
pub fn keyed(seed: u64, stream: u64, index: u64) -> Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(stream);
    rng
}
