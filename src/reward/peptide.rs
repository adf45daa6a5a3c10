//! Physico-chemical descriptors of peptides and a default composite reward.
//!
//! Every descriptor is a pure function of one sequence over the 20 standard amino acids
//! ([`AMINO_ACIDS`], upper case). Each returns
//! [`RewardError::InvalidResidue`] naming the first character outside the alphabet, and
//! [`RewardError::EmptySequence`] for `""` (where a mean over residues is undefined).
//!
//! Implementation: residues are looked up through a 256-entry byte table into
//! 20-entry constant tables, and charges at pH 7 are tabulated once; nothing allocates
//! except [`hydrophobic_moment`]'s per-call table of window phases. [`composite`] costs
//! about 0.3 µs for a 20-residue peptide.
//!
//! Sources of the constants (each table below repeats its citation):
//! * Kyte & Doolittle (1982) hydropathy, Eisenberg (1984) consensus hydrophobicity and the
//!   Guruprasad (1990) DIWV dipeptide table: as in Biopython's `Bio/SeqUtils/ProtParamData.py`;
//! * EMBOSS pKa set and Boman (2003) solubility values: as in the `peptides` R package
//!   (Osorio, Rondón-Villarreal & Torres 2015), `peptides.tables` in its Python port.

use std::sync::OnceLock;

use super::{RewardError, RewardModel, AMINO_ACIDS};

const NO_RESIDUE: u8 = u8::MAX;

/// Byte -> index into the 20-entry tables (alphabetical one-letter order), or `NO_RESIDUE`.
static INDEX: [u8; 256] = {
    let letters = AMINO_ACIDS.as_bytes();
    let mut t = [NO_RESIDUE; 256];
    let mut i = 0;
    while i < 20 {
        t[letters[i] as usize] = i as u8;
        i += 1;
    }
    t
};

// Residue indices, alphabetical by one-letter code.
const A: usize = 0;
const C: usize = 1;
const D: usize = 2;
const E: usize = 3;
const H: usize = 6;
const I: usize = 7;
const K: usize = 8;
const L: usize = 9;
const R: usize = 14;
const V: usize = 17;
const Y: usize = 19;

/// Kyte–Doolittle hydropathy (Kyte J, Doolittle RF. J Mol Biol 157:105–132, 1982),
/// order `ACDEFGHIKLMNPQRSTVWY`; values as in Biopython `ProtParamData.kd`.
pub const KYTE_DOOLITTLE: [f64; 20] = [
    1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8, //
    1.9, -3.5, -1.6, -3.5, -4.5, -0.8, -0.7, 4.2, -0.9, -1.3,
];

/// Eisenberg normalized consensus hydrophobicity (Eisenberg D, Schwarz E, Komaromy M,
/// Wall R. J Mol Biol 179:125–142, 1984), order `ACDEFGHIKLMNPQRSTVWY`; values as in
/// Biopython `ProtParamData.es` and `peptides` `HYDROPHOBICITY["Eisenberg"]`.
pub const EISENBERG: [f64; 20] = [
    0.62, 0.29, -0.9, -0.74, 1.19, 0.48, -0.4, 1.38, -1.5, 1.06, //
    0.64, -0.78, 0.12, -0.85, -2.53, -0.18, -0.05, 1.08, 0.81, 0.26,
];

/// Boman (2003) solubility values per residue (Boman HG. J Intern Med 254:197–215, 2003;
/// derived from Radzicka & Wolfenden 1988 cyclohexane-to-water transfer energies), order
/// `ACDEFGHIKLMNPQRSTVWY`; values as in the `peptides` R package / its Python port
/// (`peptides.tables.BOMAN["Boman"]`), which has no entry for P (counted as 0 here too).
pub const BOMAN: [f64; 20] = [
    1.81, 1.28, -8.72, -6.81, 2.98, 0.94, -4.66, 4.92, -5.55, 4.92, //
    2.35, -6.64, 0.0, -5.54, -14.92, -3.4, -2.57, 4.04, 2.33, -0.14,
];

/// Guruprasad dipeptide instability weight values DIWV\[x\]\[y\] for the dipeptide `xy`
/// (Guruprasad K, Reddy BVB, Pandit MW. Protein Eng 4:155–161, 1990), rows and columns in
/// order `ACDEFGHIKLMNPQRSTVWY`. Copied entry for entry from Biopython's
/// `ProtParamData.DIWV` (including its `F,Y = 33.601` and `K,Q = 24.64`).
#[rustfmt::skip]
pub const DIWV: [[f64; 20]; 20] = [
    [   1.0,  44.94,  -7.49,    1.0,    1.0,    1.0,  -7.49,    1.0,    1.0,    1.0,    1.0,    1.0,  20.26,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0], // A
    [   1.0,    1.0,  20.26,    1.0,    1.0,    1.0,   33.6,    1.0,    1.0,  20.26,   33.6,    1.0,  20.26,  -6.54,    1.0,    1.0,   33.6,  -6.54,  24.68,    1.0], // C
    [   1.0,    1.0,    1.0,    1.0,  -6.54,    1.0,    1.0,    1.0,  -7.49,    1.0,    1.0,    1.0,    1.0,    1.0,  -6.54,  20.26, -14.03,    1.0,    1.0,    1.0], // D
    [   1.0,  44.94,  20.26,   33.6,    1.0,    1.0,  -6.54,  20.26,    1.0,    1.0,    1.0,    1.0,  20.26,  20.26,    1.0,  20.26,    1.0,    1.0, -14.03,    1.0], // E
    [   1.0,    1.0,  13.34,    1.0,    1.0,    1.0,    1.0,    1.0, -14.03,    1.0,    1.0,    1.0,  20.26,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0, 33.601], // F
    [ -7.49,    1.0,    1.0,  -6.54,    1.0,  13.34,    1.0,  -7.49,  -7.49,    1.0,    1.0,  -7.49,    1.0,    1.0,    1.0,    1.0,  -7.49,    1.0,  13.34,  -7.49], // G
    [   1.0,    1.0,    1.0,    1.0,  -9.37,  -9.37,    1.0,  44.94,  24.68,    1.0,    1.0,  24.68,  -1.88,    1.0,    1.0,    1.0,  -6.54,    1.0,  -1.88,  44.94], // H
    [   1.0,    1.0,    1.0,  44.94,    1.0,    1.0,  13.34,    1.0,  -7.49,  20.26,    1.0,    1.0,  -1.88,    1.0,    1.0,    1.0,    1.0,  -7.49,    1.0,    1.0], // I
    [   1.0,    1.0,    1.0,    1.0,    1.0,  -7.49,    1.0,  -7.49,    1.0,  -7.49,   33.6,    1.0,  -6.54,  24.64,   33.6,    1.0,    1.0,  -7.49,    1.0,    1.0], // K
    [   1.0,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,  -7.49,    1.0,    1.0,    1.0,  20.26,   33.6,  20.26,    1.0,    1.0,    1.0,  24.68,    1.0], // L
    [ 13.34,    1.0,    1.0,    1.0,    1.0,    1.0,  58.28,    1.0,    1.0,    1.0,  -1.88,    1.0,  44.94,  -6.54,  -6.54,  44.94,  -1.88,    1.0,    1.0,  24.68], // M
    [   1.0,  -1.88,    1.0,    1.0, -14.03, -14.03,    1.0,  44.94,  24.68,    1.0,    1.0,    1.0,  -1.88,  -6.54,    1.0,    1.0,  -7.49,    1.0,  -9.37,    1.0], // N
    [ 20.26,  -6.54,  -6.54,  18.38,  20.26,    1.0,    1.0,    1.0,    1.0,    1.0,  -6.54,    1.0,  20.26,  20.26,  -6.54,  20.26,    1.0,  20.26,  -1.88,    1.0], // P
    [   1.0,  -6.54,  20.26,  20.26,  -6.54,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,  20.26,  20.26,    1.0,  44.94,    1.0,  -6.54,    1.0,  -6.54], // Q
    [   1.0,    1.0,    1.0,    1.0,    1.0,  -7.49,  20.26,    1.0,    1.0,    1.0,    1.0,  13.34,  20.26,  20.26,  58.28,  44.94,    1.0,    1.0,  58.28,  -6.54], // R
    [   1.0,   33.6,    1.0,  20.26,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,    1.0,  44.94,  20.26,  20.26,  20.26,    1.0,    1.0,    1.0,    1.0], // S
    [   1.0,    1.0,    1.0,  20.26,  13.34,  -7.49,    1.0,    1.0,    1.0,    1.0,    1.0, -14.03,    1.0,  -6.54,    1.0,    1.0,    1.0,    1.0, -14.03,    1.0], // T
    [   1.0,    1.0, -14.03,    1.0,    1.0,  -7.49,    1.0,    1.0,  -1.88,    1.0,    1.0,    1.0,  20.26,    1.0,    1.0,    1.0,  -7.49,    1.0,    1.0,  -6.54], // V
    [-14.03,    1.0,    1.0,    1.0,    1.0,  -9.37,  24.68,    1.0,    1.0,  13.34,  24.68,  13.34,    1.0,    1.0,    1.0,    1.0, -14.03,  -7.49,    1.0,    1.0], // W
    [ 24.68,    1.0,  24.68,  -6.54,    1.0,  -7.49,  13.34,    1.0,    1.0,    1.0,  44.94,    1.0,  13.34,    1.0, -15.91,    1.0,  -7.49,    1.0,  -9.37,  13.34], // Y
];

/// EMBOSS pKa set (EMBOSS `iep`/`Epk.dat`; as `PK["EMBOSS"]` in the `peptides` R package):
/// N-terminus 8.6, C-terminus 3.6.
pub const PKA_N_TERM: f64 = 8.6;
/// EMBOSS pKa of the free C-terminus.
pub const PKA_C_TERM: f64 = 3.6;
/// EMBOSS side-chain pKa of Lys (positive when protonated).
pub const PKA_K: f64 = 10.8;
/// EMBOSS side-chain pKa of Arg (positive when protonated).
pub const PKA_R: f64 = 12.5;
/// EMBOSS side-chain pKa of His (positive when protonated).
pub const PKA_H: f64 = 6.5;
/// EMBOSS side-chain pKa of Asp (negative when deprotonated).
pub const PKA_D: f64 = 3.9;
/// EMBOSS side-chain pKa of Glu (negative when deprotonated).
pub const PKA_E: f64 = 4.1;
/// EMBOSS side-chain pKa of Cys (negative when deprotonated).
pub const PKA_C: f64 = 8.5;
/// EMBOSS side-chain pKa of Tyr (negative when deprotonated).
pub const PKA_Y: f64 = 10.1;

/// `ln 20`, the entropy of the uniform distribution over the 20 amino acids.
const LN_20: f64 = 2.995_732_273_553_991;

/// Window of [`hydrophobic_moment`] used by convention (Eisenberg 1984): 11 residues.
pub const DEFAULT_MOMENT_WINDOW: usize = 11;
/// Angle between successive residues of an alpha helix, in degrees.
pub const HELIX_ANGLE_DEG: f64 = 100.0;

/// The logistic function `1 / (1 + e^-x)`; never NaN for non-NaN `x`.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Checks that every character of `seq` is one of the 20 upper-case one-letter codes.
/// The empty sequence passes. The error names the first offending character and its
/// 0-based position.
pub fn validate_sequence(seq: &str) -> Result<(), RewardError> {
    if seq.bytes().all(|b| INDEX[b as usize] != NO_RESIDUE) {
        Ok(())
    } else {
        Err(invalid_residue(seq))
    }
}

#[cold]
fn invalid_residue(seq: &str) -> RewardError {
    let bad = seq
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii() && INDEX[c as usize] != NO_RESIDUE));
    match bad {
        Some((position, letter)) => RewardError::InvalidResidue {
            sequence: seq.to_string(),
            letter,
            position,
        },
        // Not reachable when called after a failed byte check; kept total to never panic.
        None => RewardError::Other(format!("sequence {seq:?} failed validation")),
    }
}

/// The validated residue bytes of a non-empty sequence.
#[inline]
fn residues(seq: &str) -> Result<&[u8], RewardError> {
    validate_sequence(seq)?;
    if seq.is_empty() {
        Err(RewardError::EmptySequence)
    } else {
        Ok(seq.as_bytes())
    }
}

#[inline]
fn idx(b: u8) -> usize {
    INDEX[b as usize] as usize
}

/// Residue counts, by table index.
fn counts(res: &[u8]) -> [u32; 20] {
    let mut c = [0u32; 20];
    for &b in res {
        c[idx(b)] += 1;
    }
    c
}

/// `k ln k` for small counts, computed once (entropy needs one per residue type present).
fn k_ln_k(k: u32) -> f64 {
    const N: usize = 128;
    static TABLE: OnceLock<[f64; N]> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0.0; N];
        for (k, v) in t.iter_mut().enumerate().skip(1) {
            *v = k as f64 * (k as f64).ln();
        }
        t
    });
    match t.get(k as usize) {
        Some(&v) => v,
        None => f64::from(k) * f64::from(k).ln(),
    }
}

/// `-sum p ln p / ln 20` with `p = k / n`, as `(ln n - sum k ln k / n) / ln 20`.
fn entropy_from_counts(c: &[u32; 20], len: usize) -> f64 {
    let n = len as f64;
    let sum: f64 = c.iter().map(|&k| k_ln_k(k)).sum();
    // Clamp away rounding below 0 (homopolymers) and above 1.
    ((n.ln() - sum / n) / LN_20).clamp(0.0, 1.0)
}

/// Shannon entropy of the sequence's own amino-acid composition, divided by `ln 20`:
/// `H = -(1/ln 20) * sum_a p_a ln p_a`, `p_a` = count of `a` / length.
///
/// The divisor is `ln 20` for every length (not `ln min(20, L)`), so `H` is in `[0, 1]`,
/// a homopolymer scores 0, and a sequence of length `L < 20` can reach at most
/// `ln L / ln 20`: short peptides cannot look maximally diverse.
pub fn normalized_entropy(seq: &str) -> Result<f64, RewardError> {
    let res = residues(seq)?;
    Ok(entropy_from_counts(&counts(res), res.len()))
}

/// Entropy gate `sigmoid(10 (H - 0.5))` on [`normalized_entropy`] `H`: about 0.007 for a
/// homopolymer, 0.5 at `H = 0.5`, 0.99 at `H = 1`.
pub fn entropy_gate(h: f64) -> f64 {
    sigmoid(ENTROPY_GATE_STEEPNESS * (h - ENTROPY_GATE_MIDPOINT))
}

/// Length gate `sigmoid(0.5 (L - 10))`: 0.5 at 10 residues, 0.92 at 15, 0.99 at 20.
pub fn length_gate(len: usize) -> f64 {
    sigmoid(LENGTH_GATE_STEEPNESS * (len as f64 - LENGTH_GATE_MIDPOINT))
}

fn instability_of(res: &[u8]) -> f64 {
    let mut sum = 0.0;
    for w in res.windows(2) {
        sum += DIWV[idx(w[0])][idx(w[1])];
    }
    10.0 / res.len() as f64 * sum
}

/// Instability index (Guruprasad, Reddy & Pandit 1990):
/// `II = (10 / L) * sum_{i=1}^{L-1} DIWV[x_i][x_{i+1}]` with the [`DIWV`] table, as
/// Biopython's `ProteinAnalysis.instability_index`. Below 40 the protein is predicted
/// stable. A single residue has no dipeptide and scores 0.
pub fn instability_index(seq: &str) -> Result<f64, RewardError> {
    Ok(instability_of(residues(seq)?))
}

fn mean_scale(c: &[u32; 20], len: usize, scale: &[f64; 20]) -> f64 {
    let sum: f64 = c.iter().zip(scale).map(|(&k, &v)| f64::from(k) * v).sum();
    sum / len as f64
}

/// GRAVY, the grand average of hydropathy: the mean of the Kyte–Doolittle (1982)
/// hydropathy values ([`KYTE_DOOLITTLE`]) over the residues. Negative is hydrophilic.
pub fn gravy(seq: &str) -> Result<f64, RewardError> {
    let res = residues(seq)?;
    Ok(mean_scale(&counts(res), res.len(), &KYTE_DOOLITTLE))
}

/// Charge of each residue type and of the two termini together at `ph`, by
/// Henderson–Hasselbalch: a base is protonated (+1) with fraction `1 / (1 + 10^(pH - pKa))`,
/// an acid deprotonated (-1) with fraction `1 / (1 + 10^(pKa - pH))`.
fn charge_table(ph: f64) -> ([f64; 20], f64) {
    let pos = |pka: f64| 1.0 / (1.0 + 10f64.powf(ph - pka));
    let neg = |pka: f64| -1.0 / (1.0 + 10f64.powf(pka - ph));
    let mut t = [0.0; 20];
    t[K] = pos(PKA_K);
    t[R] = pos(PKA_R);
    t[H] = pos(PKA_H);
    t[D] = neg(PKA_D);
    t[E] = neg(PKA_E);
    t[C] = neg(PKA_C);
    t[Y] = neg(PKA_Y);
    (t, pos(PKA_N_TERM) + neg(PKA_C_TERM))
}

fn charge_with(table: &([f64; 20], f64), c: &[u32; 20]) -> f64 {
    let (per_residue, termini) = table;
    termini + c.iter().zip(per_residue).map(|(&k, &q)| f64::from(k) * q).sum::<f64>()
}

fn charge_from_counts(c: &[u32; 20], ph: f64) -> f64 {
    charge_with(&charge_table(ph), c)
}

/// [`charge_table`] at [`CHARGE_PH`], computed once.
fn composite_charge_table() -> &'static ([f64; 20], f64) {
    static TABLE: OnceLock<([f64; 20], f64)> = OnceLock::new();
    TABLE.get_or_init(|| charge_table(CHARGE_PH))
}

fn check_finite(what: &str, x: f64) -> Result<(), RewardError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(RewardError::Other(format!("{what} must be finite, got {x}")))
    }
}

/// Net charge at the given pH, by Henderson–Hasselbalch with the EMBOSS pKa set
/// ([`PKA_N_TERM`] … [`PKA_Y`]): one free N-terminus and C-terminus, positive K, R, H,
/// negative D, E, C, Y. This is `charge(pKscale = "EMBOSS")` of the `peptides` package.
pub fn net_charge(seq: &str, ph: f64) -> Result<f64, RewardError> {
    check_finite("pH", ph)?;
    Ok(charge_from_counts(&counts(residues(seq)?), ph))
}

/// Isoelectric point: the pH in `[0, 14]` where [`net_charge`] is zero, found by bisection
/// until the bracket is narrower than `1e-4` (the midpoint is returned). Net charge falls
/// strictly with pH and the termini guarantee a sign change inside `[0, 14]`.
pub fn isoelectric_point(seq: &str) -> Result<f64, RewardError> {
    let c = counts(residues(seq)?);
    let (mut lo, mut hi) = (0.0_f64, 14.0_f64);
    // About 17 halvings of [0, 14] down to 1e-4.
    while hi - lo > 1e-4 {
        let mid = 0.5 * (lo + hi);
        if charge_from_counts(&c, mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// Aliphatic index (Ikai 1980, J Biochem 88:1895–1898):
/// `AI = X(Ala) + 2.9 X(Val) + 3.9 (X(Ile) + X(Leu))`, `X` = mole percent (0–100).
pub fn aliphatic_index(seq: &str) -> Result<f64, RewardError> {
    let res = residues(seq)?;
    let c = counts(res);
    let pct = |i: usize| 100.0 * f64::from(c[i]) / res.len() as f64;
    Ok(pct(A) + 2.9 * pct(V) + 3.9 * (pct(I) + pct(L)))
}

/// Boman (2003) protein-interaction index: `-(1/L) sum_i BOMAN[x_i]`, i.e. the mean of
/// the per-residue solubility values with the sign convention of the `peptides` R package
/// and modlAMP (charged/hydrophilic peptides score high; above about 2.48 suggests high
/// binding potential). Constants: [`BOMAN`].
pub fn boman_index(seq: &str) -> Result<f64, RewardError> {
    let res = residues(seq)?;
    Ok(-mean_scale(&counts(res), res.len(), &BOMAN))
}

/// Maximal hydrophobic moment (Eisenberg, Weiss & Terwilliger 1984, PNAS 81:140–144) with
/// the [`EISENBERG`] consensus scale: over every window of `w = min(window, L)` consecutive
/// residues (`w` at least 1), `|sum_{j=0}^{w-1} h_{i+j} e^{i j angle}| / w`, maximised over
/// window starts. Use [`DEFAULT_MOMENT_WINDOW`] (11) and [`HELIX_ANGLE_DEG`] (100°) for an
/// alpha helix, 160° for a beta strand. Matches `hydrophobic_moment` of the `peptides`
/// package.
pub fn hydrophobic_moment(seq: &str, window: usize, angle_deg: f64) -> Result<f64, RewardError> {
    check_finite("angle", angle_deg)?;
    let res = residues(seq)?;
    let w = window.clamp(1, res.len());
    let phases: Vec<(f64, f64)> = (0..w).map(|j| (angle_deg * j as f64).to_radians().sin_cos()).collect();
    let mut best = 0.0_f64;
    for win in res.windows(w) {
        let (mut s, mut c) = (0.0, 0.0);
        for (&b, &(sin, cos)) in win.iter().zip(&phases) {
            let h = EISENBERG[idx(b)];
            s += h * sin;
            c += h * cos;
        }
        best = best.max(s * s + c * c);
    }
    Ok(best.sqrt() / w as f64)
}

/// Lower bound of [`composite`]: `R = FLOOR + (1 - FLOOR) * product of gates`, so
/// `log R >= ln 1e-6 ≈ -13.8` for every sequence.
pub const COMPOSITE_FLOOR: f64 = 1e-6;
/// Entropy gate steepness (see [`entropy_gate`]).
pub const ENTROPY_GATE_STEEPNESS: f64 = 10.0;
/// Entropy gate midpoint (see [`entropy_gate`]).
pub const ENTROPY_GATE_MIDPOINT: f64 = 0.5;
/// Length gate steepness per residue (see [`length_gate`]).
pub const LENGTH_GATE_STEEPNESS: f64 = 0.5;
/// Length gate midpoint, in residues (see [`length_gate`]).
pub const LENGTH_GATE_MIDPOINT: f64 = 10.0;
/// Instability index below which a protein is predicted stable (Guruprasad 1990).
pub const STABILITY_THRESHOLD: f64 = 40.0;
/// Width of the stability gate, in instability-index units.
pub const STABILITY_SCALE: f64 = 5.0;
/// GRAVY at which the solubility gate is 0.5.
pub const GRAVY_MIDPOINT: f64 = 0.0;
/// Width of the solubility gate, in GRAVY units.
pub const GRAVY_SCALE: f64 = 0.5;
/// pH at which the charge term is evaluated.
pub const CHARGE_PH: f64 = 7.0;
/// Lower edge of the preferred band of |net charge|.
pub const CHARGE_MIN: f64 = 1.0;
/// Upper edge of the preferred band of |net charge|.
pub const CHARGE_MAX: f64 = 5.0;
/// Softness of the charge band edges, in charge units.
pub const CHARGE_SCALE: f64 = 0.4;

/// The descriptors and gates behind one [`composite`] value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompositeTerms {
    /// Number of residues.
    pub length: usize,
    /// [`normalized_entropy`].
    pub entropy: f64,
    /// [`instability_index`].
    pub instability: f64,
    /// [`gravy`].
    pub gravy: f64,
    /// [`net_charge`] at [`CHARGE_PH`].
    pub charge: f64,
    /// [`entropy_gate`] of `entropy`.
    pub entropy_gate: f64,
    /// [`length_gate`] of `length`.
    pub length_gate: f64,
    /// `sigmoid((40 - instability) / 5)`.
    pub stability_gate: f64,
    /// `sigmoid(-(gravy - 0) / 0.5)`.
    pub solubility_gate: f64,
    /// `sigmoid((|charge| - 1) / 0.4) * sigmoid((5 - |charge|) / 0.4)`.
    pub charge_gate: f64,
    /// The composite reward.
    pub reward: f64,
}

/// All terms of [`composite`]. The empty sequence has all gates 0 and reward
/// [`COMPOSITE_FLOOR`].
pub fn composite_terms(seq: &str) -> Result<CompositeTerms, RewardError> {
    validate_sequence(seq)?;
    let res = seq.as_bytes();
    if res.is_empty() {
        return Ok(CompositeTerms {
            length: 0,
            entropy: 0.0,
            instability: 0.0,
            gravy: 0.0,
            charge: 0.0,
            entropy_gate: 0.0,
            length_gate: 0.0,
            stability_gate: 0.0,
            solubility_gate: 0.0,
            charge_gate: 0.0,
            reward: COMPOSITE_FLOOR,
        });
    }
    let c = counts(res);
    let length = res.len();
    let entropy = entropy_from_counts(&c, length);
    let instability = instability_of(res);
    let gravy = mean_scale(&c, length, &KYTE_DOOLITTLE);
    let charge = charge_with(composite_charge_table(), &c);
    let entropy_gate = entropy_gate(entropy);
    let length_gate = length_gate(length);
    let stability_gate = sigmoid((STABILITY_THRESHOLD - instability) / STABILITY_SCALE);
    let solubility_gate = sigmoid(-(gravy - GRAVY_MIDPOINT) / GRAVY_SCALE);
    let z = charge.abs();
    let charge_gate = sigmoid((z - CHARGE_MIN) / CHARGE_SCALE) * sigmoid((CHARGE_MAX - z) / CHARGE_SCALE);
    let product = entropy_gate * length_gate * stability_gate * solubility_gate * charge_gate;
    let reward = COMPOSITE_FLOOR + (1.0 - COMPOSITE_FLOOR) * product;
    Ok(CompositeTerms {
        length,
        entropy,
        instability,
        gravy,
        charge,
        entropy_gate,
        length_gate,
        stability_gate,
        solubility_gate,
        charge_gate,
        reward,
    })
}

/// The default composite reward, in `[1e-6, 1]`, of one sequence on its own (nothing is
/// normalised across a batch):
///
/// ```text
/// R = 1e-6 + (1 - 1e-6) * g_entropy * g_length * g_stability * g_solubility * g_charge
/// g_entropy    = sigmoid(10 (H - 0.5))               H = normalized_entropy  (non-repetitive)
/// g_length     = sigmoid(0.5 (L - 10))               L = residues            (long enough)
/// g_stability  = sigmoid((40 - II) / 5)              II = instability_index  (stable, Guruprasad II < 40)
/// g_solubility = sigmoid(-(GRAVY - 0) / 0.5)         GRAVY = Kyte–Doolittle mean (hydrophilic)
/// g_charge     = sigmoid((|Z| - 1) / 0.4) * sigmoid((5 - |Z|) / 0.4)
///                                                    Z = net_charge at pH 7 (EMBOSS pKa)
/// ```
///
/// It prefers stable, soluble, non-repetitive peptides of 15 or more residues carrying a
/// moderate net charge of either sign (1 < |Z| < 5). Many unrelated sequences satisfy
/// all gates at once (cationic and anionic families, any order of residues that avoids
/// destabilising dipeptides), so the optimum is a broad, multi-modal plateau rather than
/// one motif. Uniform random peptides of 10–30 residues average about 0.17 (median about
/// 0.06); hill-climbed sequences reach about 0.95. The floor `1e-6`, inside the formula,
/// keeps `log R >= -13.9` finite; the empty sequence gets exactly the floor.
pub fn composite(seq: &str) -> Result<f64, RewardError> {
    composite_terms(seq).map(|t| t.reward)
}

/// The default [`composite`] reward as a [`RewardModel`]. Fails on the first sequence
/// with a character outside the alphabet, naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeptideReward;

impl PeptideReward {
    /// The default composite reward.
    pub fn new() -> Self {
        PeptideReward
    }
}

impl RewardModel for PeptideReward {
    fn score(&mut self, seqs: &[&str]) -> Result<Vec<f64>, RewardError> {
        seqs.iter().map(|s| composite(s)).collect()
    }

    fn name(&self) -> String {
        "peptide-composite".to_string()
    }
}
