//! Philox4x32-10 (Salmon et al. 2011), the counter-based generator of GPU sampling:
//! the bit-exact host twin of `kernels/sample.cu`.
//!
//! Trajectory `traj`'s uniform at step `step` under `seed` is the first output word `w`
//! for key `(seed low, seed high)` and counter `(traj low, traj high, step, 0)`, mapped to
//! `(w >> 8) * 2^-24` in `[0, 1)`. No state: any draw can be recomputed from its key.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The four output words of Philox4x32-10 for `counter` under `key`.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for _ in 0..10 {
        let p0 = M0 as u64 * c0 as u64;
        let p1 = M1 as u64 * c2 as u64;
        let n0 = (p1 >> 32) as u32 ^ c1 ^ k0;
        let n2 = (p0 >> 32) as u32 ^ c3 ^ k1;
        c1 = p1 as u32;
        c3 = p0 as u32;
        c0 = n0;
        c2 = n2;
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    [c0, c1, c2, c3]
}

/// The first output word for `(seed, traj, step)`.
pub fn word(seed: u64, traj: u64, step: u32) -> u32 {
    philox4x32(
        [traj as u32, (traj >> 32) as u32, step, 0],
        [seed as u32, (seed >> 32) as u32],
    )[0]
}

/// The uniform in `[0, 1)` that GPU sampling uses for trajectory `traj` at `step`.
pub fn uniform(seed: u64, traj: u64, step: u32) -> f32 {
    (word(seed, traj, step) >> 8) as f32 * (1.0 / 16_777_216.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123's kat_vectors for philox4x32_10.
    #[test]
    fn known_answers() {
        assert_eq!(
            philox4x32([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}
