//! Peptides: sequences of amino acids built left to right.

use serde::{Deserialize, Serialize};

use super::Environment;
use crate::error::{Error, Result};
use crate::nn::Csr;

/// The 20 standard amino acids, in the order of their action indices.
pub const AMINO_ACIDS: &[u8; 20] = b"ACDEFGHIKLMNPQRSTVWY";

/// A partial or finished sequence, as indices into the alphabet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeptideState {
    pub residues: Vec<u8>,
    pub done: bool,
}

/// Actions `0..k` append residue `alphabet[a]`; action `k` is STOP, valid
/// only from `min_len` residues on, and the only valid action at `max_len`.
/// The state graph is a tree: `log P_B = 0` exactly, and `P(x) = P_F(trajectory of x)`.
///
/// Features (one-hot per position): `max_len * k` inputs with
/// `x[p * k + residues[p]] = 1` for each filled position `p`; a state with `L`
/// residues has exactly `L` ones, so the first layer of an MLP is a sum of `L`
/// weight rows.
#[derive(Clone, Debug)]
pub struct Peptide {
    pub alphabet: Vec<u8>,
    pub min_len: usize,
    pub max_len: usize,
}

impl Default for Peptide {
    /// All 20 amino acids, lengths 10 to 30.
    fn default() -> Self {
        Peptide::new(10, 30).expect("valid defaults")
    }
}

impl Peptide {
    /// Longest sequence the engine accepts.
    pub const MAX_LEN_LIMIT: usize = 1000;

    pub fn new(min_len: usize, max_len: usize) -> Result<Self> {
        Self::with_alphabet(AMINO_ACIDS, min_len, max_len)
    }

    /// A peptide task over a subset of the amino acids (small ones can be enumerated exactly).
    pub fn with_alphabet(alphabet: &[u8], min_len: usize, max_len: usize) -> Result<Self> {
        if alphabet.is_empty() {
            return Err(Error::config("alphabet", "must not be empty"));
        }
        for (i, c) in alphabet.iter().enumerate() {
            if !AMINO_ACIDS.contains(c) || alphabet[..i].contains(c) {
                return Err(Error::config(
                    "alphabet",
                    format!(
                        "`{}` is not a distinct amino acid of {}",
                        *c as char,
                        std::str::from_utf8(AMINO_ACIDS).unwrap()
                    ),
                ));
            }
        }
        if min_len == 0 {
            return Err(Error::config("min_len", "must be at least 1, got 0"));
        }
        if max_len < min_len || max_len > Self::MAX_LEN_LIMIT {
            return Err(Error::config(
                "max_len",
                format!(
                    "must be in [min_len = {min_len}, {}], got {max_len}",
                    Self::MAX_LEN_LIMIT
                ),
            ));
        }
        Ok(Peptide {
            alphabet: alphabet.to_vec(),
            min_len,
            max_len,
        })
    }

    /// The STOP action's index.
    pub fn stop(&self) -> usize {
        self.alphabet.len()
    }

    /// The sequence of a state as letters.
    pub fn to_string(&self, s: &PeptideState) -> String {
        s.residues.iter().map(|&r| self.alphabet[r as usize] as char).collect()
    }

    /// A finished peptide from its letters; the error names a letter outside
    /// the alphabet or a length outside `[min_len, max_len]`.
    pub fn parse(&self, seq: &str) -> Result<PeptideState> {
        let residues = seq
            .bytes()
            .enumerate()
            .map(|(i, c)| {
                self.alphabet
                    .iter()
                    .position(|&a| a == c.to_ascii_uppercase())
                    .map(|p| p as u8)
                    .ok_or_else(|| {
                        Error::Parse(format!(
                            "peptide `{seq}`: letter `{}` at position {} is not in the alphabet {}",
                            seq[i..].chars().next().unwrap_or('?'),
                            i + 1,
                            String::from_utf8_lossy(&self.alphabet)
                        ))
                    })
            })
            .collect::<Result<Vec<u8>>>()?;
        let n = residues.len();
        if n < self.min_len || n > self.max_len {
            return Err(Error::Parse(format!(
                "peptide `{seq}`: length {n} is outside [{}, {}]",
                self.min_len, self.max_len
            )));
        }
        Ok(PeptideState { residues, done: true })
    }
}

impl Environment for Peptide {
    type State = PeptideState;

    fn n_actions(&self) -> usize {
        self.alphabet.len() + 1
    }
    fn n_backward_actions(&self) -> usize {
        1
    }
    fn feature_dim(&self) -> usize {
        self.max_len * self.alphabet.len()
    }
    fn initial_state(&self) -> PeptideState {
        PeptideState {
            residues: Vec::new(),
            done: false,
        }
    }
    fn is_initial(&self, s: &PeptideState) -> bool {
        !s.done && s.residues.is_empty()
    }
    fn is_terminal(&self, s: &PeptideState) -> bool {
        s.done
    }
    fn forward_mask(&self, s: &PeptideState, mask: &mut [bool]) {
        let n = s.residues.len();
        let grow = !s.done && n < self.max_len;
        mask[..self.alphabet.len()].fill(grow);
        mask[self.stop()] = !s.done && n >= self.min_len;
    }
    fn step(&self, s: &PeptideState, a: usize) -> PeptideState {
        if a == self.stop() {
            return PeptideState {
                residues: s.residues.clone(),
                done: true,
            };
        }
        // one allocation of the final size (a clone, then a push, made two)
        let mut residues = Vec::with_capacity(s.residues.len() + 1);
        residues.extend_from_slice(&s.residues);
        residues.push(a as u8);
        PeptideState { residues, done: false }
    }
    fn step_into(&self, s: &PeptideState, a: usize, next: &mut PeptideState) {
        // room for the longest peptide at once: the sampler hands this
        // state's allocation on from transition to transition
        next.residues.clear();
        next.residues.reserve_exact(self.max_len.max(s.residues.len()));
        next.residues.extend_from_slice(&s.residues);
        next.done = a == self.stop();
        if !next.done {
            next.residues.push(a as u8);
        }
    }
    fn backward_mask(&self, s: &PeptideState, mask: &mut [bool]) {
        mask[0] = !s.residues.is_empty();
    }
    fn backward_step(&self, s: &PeptideState, _b: usize) -> (PeptideState, usize) {
        let mut parent = s.clone();
        let last = parent.residues.pop().expect("backward_step from the empty peptide");
        (parent, last as usize)
    }
    fn backward_step_into(&self, s: &PeptideState, _b: usize, parent: &mut PeptideState) -> usize {
        let (last, rest) = s.residues.split_last().expect("backward_step from the empty peptide");
        parent.residues.clear();
        parent.residues.reserve_exact(self.max_len.max(rest.len()));
        parent.residues.extend_from_slice(rest);
        parent.done = s.done;
        *last as usize
    }
    fn backward_action(&self, _parent: &PeptideState, _a: usize) -> usize {
        0
    }
    fn unterminate(&self, x: &PeptideState) -> (PeptideState, usize) {
        (
            PeptideState {
                residues: x.residues.clone(),
                done: false,
            },
            self.stop(),
        )
    }
    fn encode(&self, s: &PeptideState, out: &mut [f32]) {
        let k = self.alphabet.len();
        for (p, &r) in s.residues.iter().enumerate() {
            out[p * k + r as usize] = 1.0;
        }
    }
    fn encode_sparse(&self, s: &PeptideState, out: &mut Csr) {
        let k = self.alphabet.len();
        out.push_row(
            s.residues
                .iter()
                .enumerate()
                .map(|(p, &r)| ((p * k + r as usize) as u32, 1.0)),
        );
    }
    fn is_tree(&self) -> bool {
        true
    }
    fn describe(&self, x: &PeptideState) -> String {
        self.to_string(x)
    }
    fn sequence(&self, x: &PeptideState) -> Option<String> {
        Some(self.to_string(x))
    }
    fn all_states(&self) -> Option<Vec<PeptideState>> {
        let k = self.alphabet.len() as f64;
        if (0..=self.max_len).map(|l| k.powi(l as i32)).sum::<f64>() > 4e6 {
            return None;
        }
        let mut out = vec![self.initial_state()];
        let mut frontier = vec![self.initial_state()];
        for _ in 0..self.max_len {
            let mut next = Vec::with_capacity(frontier.len() * self.alphabet.len());
            for s in &frontier {
                for a in 0..self.alphabet.len() {
                    next.push(self.step(s, a));
                }
            }
            out.extend(next.iter().cloned());
            frontier = next;
        }
        Some(out)
    }
}
