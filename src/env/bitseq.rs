//! Bit sequences (Malkin et al. 2022; Hu et al., "Beyond Squared Error", ICLR 2025, Table 3).
//!
//! A string of `n` bits is `L = n / k` slots of `k` bits. The initial state has
//! every slot empty; each step writes one of the `2^k` words into one empty slot,
//! in any order, so an object is built in exactly `L` steps and the state graph
//! is a DAG (a state with `i` filled slots has `i` parents). A final STOP, the
//! only valid action once every slot is filled, turns the string into the
//! terminal object: it has `P_F = P_B = 1`, so it adds nothing to `log P_F` or
//! `log P_B`. With the engine's uniform `P_B`, the step that fills the `i`-th
//! slot has `log P_B = -log i`.
//!
//! Reward ([`BitSequenceReward`]): a mode set `M` of strings, each the
//! concatenation of `L` words drawn uniformly (seeded) from the five
//! `0^k, 1^k, 1^(k/2) 0^(k/2), 0^(k/2) 1^(k/2), 0^(k/4) 1^(k/2) 0^(k/4)`
//! (for `k = 8`: `00000000, 11111111, 11110000, 00001111, 00111100`), and
//!
//! ```text
//! log R(x) = -2 * min_{m in M} Hamming(x, m)
//! ```
//!
//! Strings are packed into a `u128` (hence `n <= 128`), so a distance is one XOR
//! and a popcount.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::{Environment, LogReward};
use crate::error::{Error, Result};
use crate::nn::Csr;
use crate::rng::{self, streams};

/// The word in each slot (`None`: empty); `done` after STOP.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BitSequenceState {
    pub words: Vec<Option<u16>>,
    pub done: bool,
}

/// `n` bits in slots of `k`. Action `slot * 2^k + word` writes `word` into the
/// empty `slot`; action `L * 2^k` is STOP. Backward action `slot` empties a
/// filled slot. Features: one-hot per filled slot, `x[slot * 2^k + word] = 1`.
#[derive(Clone, Debug)]
pub struct BitSequence {
    pub n: usize,
    pub k: usize,
}

impl BitSequence {
    /// Forward action `a` applied to `s` in place.
    fn apply(&self, s: &mut BitSequenceState, a: usize) {
        if a == self.stop() {
            s.done = true;
        } else {
            s.words[a / self.words()] = Some((a % self.words()) as u16);
        }
    }

    /// `n` in `[k, 128]` divisible by `k`, `k` in `[2, 16]`.
    pub fn new(n: usize, k: usize) -> Result<Self> {
        if !(2..=16).contains(&k) {
            return Err(Error::config("k", format!("must be in [2, 16], got {k}")));
        }
        if n < k || n > 128 || !n.is_multiple_of(k) {
            return Err(Error::config(
                "n",
                format!("must be a multiple of k = {k} in [{k}, 128] (strings are packed in a u128), got {n}"),
            ));
        }
        Ok(BitSequence { n, k })
    }

    /// Number of slots `L = n / k`.
    pub fn slots(&self) -> usize {
        self.n / self.k
    }

    /// Number of words `2^k`.
    pub fn words(&self) -> usize {
        1 << self.k
    }

    /// The STOP action's index.
    pub fn stop(&self) -> usize {
        self.slots() * self.words()
    }

    /// A complete string packed in a `u128` (bit `n - 1 - p` holds character `p`);
    /// `None` if a slot is empty.
    pub fn pack(&self, words: &[Option<u16>]) -> Option<u128> {
        words
            .iter()
            .try_fold(0u128, |acc, w| Some((acc << self.k) | (*w)? as u128))
    }

    /// The terminal object with these words.
    pub fn object(&self, words: &[u16]) -> BitSequenceState {
        BitSequenceState {
            words: words.iter().map(|&w| Some(w)).collect(),
            done: true,
        }
    }
}

impl Environment for BitSequence {
    type State = BitSequenceState;

    fn n_actions(&self) -> usize {
        self.stop() + 1
    }
    fn n_backward_actions(&self) -> usize {
        self.slots()
    }
    fn feature_dim(&self) -> usize {
        self.stop()
    }
    fn initial_state(&self) -> BitSequenceState {
        BitSequenceState {
            words: vec![None; self.slots()],
            done: false,
        }
    }
    fn is_initial(&self, s: &BitSequenceState) -> bool {
        !s.done && s.words.iter().all(Option::is_none)
    }
    fn is_terminal(&self, s: &BitSequenceState) -> bool {
        s.done
    }
    fn forward_mask(&self, s: &BitSequenceState, mask: &mut [bool]) {
        let w = self.words();
        for (slot, word) in s.words.iter().enumerate() {
            mask[slot * w..(slot + 1) * w].fill(!s.done && word.is_none());
        }
        mask[self.stop()] = !s.done && s.words.iter().all(Option::is_some);
    }
    fn step(&self, s: &BitSequenceState, a: usize) -> BitSequenceState {
        let mut next = s.clone();
        self.apply(&mut next, a);
        next
    }
    fn step_into(&self, s: &BitSequenceState, a: usize, next: &mut BitSequenceState) {
        next.words.clone_from(&s.words);
        next.done = s.done;
        self.apply(next, a);
    }
    fn backward_mask(&self, s: &BitSequenceState, mask: &mut [bool]) {
        for (m, w) in mask.iter_mut().zip(&s.words) {
            *m = w.is_some();
        }
    }
    fn backward_step(&self, s: &BitSequenceState, b: usize) -> (BitSequenceState, usize) {
        let mut parent = s.clone();
        let a = self.backward_step_into(s, b, &mut parent);
        (parent, a)
    }
    fn backward_step_into(&self, s: &BitSequenceState, b: usize, parent: &mut BitSequenceState) -> usize {
        parent.words.clone_from(&s.words);
        parent.done = s.done;
        let word = parent.words[b].take().expect("backward_step empties a filled slot");
        b * self.words() + word as usize
    }
    fn backward_action(&self, _parent: &BitSequenceState, a: usize) -> usize {
        a / self.words()
    }
    fn unterminate(&self, x: &BitSequenceState) -> (BitSequenceState, usize) {
        (
            BitSequenceState {
                words: x.words.clone(),
                done: false,
            },
            self.stop(),
        )
    }
    fn encode(&self, s: &BitSequenceState, out: &mut [f32]) {
        for (slot, w) in s.words.iter().enumerate() {
            if let Some(w) = w {
                out[slot * self.words() + *w as usize] = 1.0;
            }
        }
    }
    fn encode_sparse(&self, s: &BitSequenceState, out: &mut Csr) {
        let nw = self.words();
        out.push_row(
            s.words
                .iter()
                .enumerate()
                .filter_map(|(slot, w)| w.map(|w| ((slot * nw + w as usize) as u32, 1.0))),
        );
    }
    /// The bits, `.` for an empty slot's.
    fn describe(&self, x: &BitSequenceState) -> String {
        x.words
            .iter()
            .map(|w| match w {
                Some(w) => format!("{w:0width$b}", width = self.k),
                None => ".".repeat(self.k),
            })
            .collect()
    }
    fn sequence(&self, x: &BitSequenceState) -> Option<String> {
        Some(self.describe(x))
    }
}

/// `log R(x) = -2 * min_{m in modes} Hamming(x, m)` over complete strings.
#[derive(Clone, Debug)]
pub struct BitSequenceReward {
    pub env: BitSequence,
    /// The mode set, packed like [`BitSequence::pack`].
    pub modes: Vec<u128>,
}

impl BitSequenceReward {
    /// The five words modes are made of: `0^k, 1^k, 1^(k/2)0^(k/2), 0^(k/2)1^(k/2), 0^(k/4)1^(k/2)0^(k/4)`.
    pub fn vocabulary(k: usize) -> [u16; 5] {
        let ones = |lo: usize, hi: usize| (lo..hi).fold(0u16, |w, p| w | 1 << (k - 1 - p));
        [
            0,
            ones(0, k),
            ones(0, k / 2),
            ones(k / 2, k),
            ones(k / 4, k / 4 + k / 2),
        ]
    }

    /// `n_modes` strings of `L` words drawn uniformly from the [vocabulary](Self::vocabulary)
    /// on the seed's `DATA` stream: the same set for the same seed.
    pub fn new(env: &BitSequence, n_modes: usize, seed: u64) -> Result<Self> {
        if n_modes == 0 {
            return Err(Error::config("n_modes", "must be at least 1, got 0"));
        }
        let vocab = Self::vocabulary(env.k);
        let mut rng = rng::stream(seed, streams::DATA);
        let modes = (0..n_modes)
            .map(|_| {
                let words: Vec<Option<u16>> = (0..env.slots()).map(|_| Some(vocab[rng.gen_range(0..5)])).collect();
                env.pack(&words).expect("every slot is filled")
            })
            .collect();
        Ok(BitSequenceReward {
            env: env.clone(),
            modes,
        })
    }

    /// The packed string of a complete state; the error names an incomplete one.
    pub fn bits(&self, x: &BitSequenceState) -> Result<u128> {
        self.env
            .pack(&x.words)
            .ok_or_else(|| Error::Reward(format!("bit string `{}` has an empty slot", self.env.describe(x))))
    }

    /// `min_{m in modes} Hamming(x, m)`.
    pub fn min_distance(&self, x: u128) -> u32 {
        self.modes
            .iter()
            .map(|m| (x ^ m).count_ones())
            .min()
            .expect("at least one mode")
    }

    /// Marks in `found` (one flag per mode) every mode within Hamming distance
    /// `radius` of one of `xs`; returns how many flags are now set.
    pub fn mark_found(&self, xs: &[BitSequenceState], radius: u32, found: &mut [bool]) -> Result<usize> {
        for x in xs {
            let b = self.bits(x)?;
            for (f, m) in found.iter_mut().zip(&self.modes) {
                *f |= (b ^ m).count_ones() <= radius;
            }
        }
        Ok(found.iter().filter(|&&f| f).count())
    }
}

impl LogReward<BitSequenceState> for BitSequenceReward {
    fn log_rewards(&mut self, xs: &[BitSequenceState]) -> Result<Vec<f64>> {
        xs.iter()
            .map(|x| Ok(-2.0 * self.min_distance(self.bits(x)?) as f64))
            .collect()
    }
}
