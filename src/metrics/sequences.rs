//! Diversity metrics of a set of sampled sequences (byte strings over an
//! alphabet; peptides use [`AMINO_ACIDS`]).
//!
//! Distances are Levenshtein (unit-cost insertions, deletions and
//! substitutions), normalised by the longer length so that they lie in
//! `[0, 1]`. Nothing here panics or returns NaN; degenerate inputs (an empty
//! list, a single sequence, no residues) return the documented values.
//! Nothing is random: every subsample is a fixed function of the input.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::stats;

/// The 20 standard amino acids in the order used by [`UNIPROT_COMPOSITION`].
pub use crate::env::AMINO_ACIDS;

/// Amino-acid composition (percent) of UniProtKB/Swiss-Prot, from the
/// "Amino acid composition" table of the UniProtKB/Swiss-Prot release
/// statistics (<https://web.expasy.org/docs/relnotes/relstat.html>, also
/// linked from uniprot.org as "Swiss-Prot statistics"), in the order of
/// [`AMINO_ACIDS`], as that page has published them for the releases of the
/// 2020s (it is regenerated every release; the figures move by at most
/// 0.01-0.02 between releases, e.g. older releases list S 6.62, E 6.73,
/// K 5.81). The exact release number could not be re-checked offline when
/// this table was written:
///
/// ```text
/// A 8.25  C 1.38  D 5.46  E 6.72  F 3.86  G 7.07  H 2.27  I 5.91  K 5.80  L 9.65
/// M 2.41  N 4.06  P 4.74  Q 3.93  R 5.53  S 6.64  T 5.35  V 6.86  W 1.10  Y 2.92
/// ```
///
/// The published figures are rounded to 0.01% and sum to 99.91; they are
/// divided by that sum in [`UNIPROT_COMPOSITION`].
const UNIPROT_PERCENT: [f64; 20] = [
    8.25, 1.38, 5.46, 6.72, 3.86, 7.07, 2.27, 5.91, 5.80, 9.65, 2.41, 4.06, 4.74, 3.93, 5.53, 6.64, 5.35, 6.86, 1.10,
    2.92,
];

const UNIPROT_PERCENT_SUM: f64 = {
    let mut sum = 0.0;
    let mut i = 0;
    while i < 20 {
        sum += UNIPROT_PERCENT[i];
        i += 1;
    }
    sum
};

/// Reference amino-acid frequencies (UniProtKB/Swiss-Prot release statistics,
/// see the source comment on `UNIPROT_PERCENT`), order [`AMINO_ACIDS`],
/// normalised to sum to 1.
pub const UNIPROT_COMPOSITION: [f64; 20] = {
    let mut out = [0.0; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = UNIPROT_PERCENT[i] / UNIPROT_PERCENT_SUM;
        i += 1;
    }
    out
};

/// Floor applied to probabilities inside [`kl_divergence`] so that a zero in
/// `q` gives a large but finite term.
pub const KL_EPSILON: f64 = 1e-9;

/// At most this many sequences enter a mean pairwise distance; a longer list
/// is subsampled deterministically (see [`pairwise_subsample`]).
pub const PAIRWISE_MAX_SEQS: usize = 1000;

/// Words of the bit-parallel algorithm: patterns up to this length use it.
const WORD: usize = 64;

/// Levenshtein distance (unit costs). Uses Myers' bit-parallel algorithm
/// (Hyyrö's formulation) when either string has at most 64 bytes, otherwise
/// the dynamic program of [`levenshtein_dp`]. Allocates only in the second
/// case; to reuse a buffer call [`levenshtein_dp`] directly.
pub fn levenshtein(a: &[u8], b: &[u8]) -> usize {
    if a.len() <= WORD || b.len() <= WORD {
        let (p, t) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        let mut peq = [0u64; 256];
        let peq_ready = Peq::build(&mut peq, p);
        myers(&peq_ready, t)
    } else {
        levenshtein_dp(a, b, &mut Vec::new())
    }
}

/// Levenshtein distance by the textbook dynamic program, keeping one row of
/// `min(len a, len b) + 1` cells in `row` (the two-row recurrence with the
/// diagonal cell held in a local), so a caller looping over pairs allocates
/// once. Common prefixes and suffixes are stripped first. `O(len a * len b)`.
pub fn levenshtein_dp(a: &[u8], b: &[u8], row: &mut Vec<usize>) -> usize {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[pre..], &b[pre..]);
    let suf = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[..a.len() - suf], &b[..b.len() - suf]);
    // Inner loop over the shorter string.
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return long.len();
    }
    row.clear();
    row.extend(0..=short.len());
    for (i, &lc) in long.iter().enumerate() {
        let mut diag = row[0]; // D[i][0]
        row[0] = i + 1;
        for (j, &sc) in short.iter().enumerate() {
            let up = row[j + 1]; // D[i][j+1]
            let cost = usize::from(lc != sc);
            row[j + 1] = (diag + cost).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[short.len()]
}

/// Match masks of a pattern of at most 64 bytes: bit `i` of `peq[c]` is set
/// when `pattern[i] == c`.
struct Peq<'a> {
    masks: &'a [u64; 256],
    len: usize,
}

impl<'a> Peq<'a> {
    /// Fills `masks` (which must be all zero) for `pattern` (at most 64 bytes).
    fn build(masks: &'a mut [u64; 256], pattern: &[u8]) -> Peq<'a> {
        debug_assert!(pattern.len() <= WORD);
        for (i, &c) in pattern.iter().enumerate() {
            masks[c as usize] |= 1u64 << i;
        }
        Peq {
            masks,
            len: pattern.len(),
        }
    }
}

/// Clears the entries of `masks` that `pattern` set, restoring all zeros.
fn clear_peq(masks: &mut [u64; 256], pattern: &[u8]) {
    for &c in pattern {
        masks[c as usize] = 0;
    }
}

/// Edit distance between the pattern of `peq` and `text`, by Myers' (1999)
/// bit-vector algorithm for global distance (Hyyrö 2001): one column of the
/// DP matrix is held as vertical +1/-1 deltas `pv`/`mv`, and the score tracks
/// the bottom cell. The `| 1` on the horizontal delta is the boundary row
/// `D[0][j] = j` of a global (not substring-search) alignment.
fn myers(peq: &Peq, text: &[u8]) -> usize {
    let m = peq.len;
    if m == 0 {
        return text.len();
    }
    let last = 1u64 << (m - 1);
    let mut pv = !0u64;
    let mut mv = 0u64;
    let mut score = m;
    for &c in text {
        let eq = peq.masks[c as usize];
        let xv = eq | mv;
        let xh = ((eq & pv).wrapping_add(pv) ^ pv) | eq;
        let mut ph = mv | !(xh | pv);
        let mut mh = pv & xh;
        // Branch-free: the bottom cell moves by +1, -1 or 0.
        score += usize::from(ph & last != 0);
        score -= usize::from(mh & last != 0);
        ph = (ph << 1) | 1;
        mh <<= 1;
        pv = mh | !(xv | ph);
        mv = ph & xv;
    }
    score
}

/// `levenshtein(a, b) / max(len a, len b)`, in `[0, 1]`; `0.0` for two empty
/// strings.
pub fn normalized_levenshtein(a: &[u8], b: &[u8]) -> f64 {
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    levenshtein(a, b) as f64 / longest as f64
}

/// The sequences a mean pairwise distance is computed over: all of them when
/// there are at most [`PAIRWISE_MAX_SEQS`], otherwise the evenly spaced
/// indices `floor(k * n / PAIRWISE_MAX_SEQS)` for `k = 0..PAIRWISE_MAX_SEQS`
/// (a fixed stride through the list, so a list sorted by reward is sampled
/// across its whole range rather than at its head). Deterministic.
pub fn pairwise_subsample<'a>(seqs: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let n = seqs.len();
    if n <= PAIRWISE_MAX_SEQS {
        return seqs.to_vec();
    }
    (0..PAIRWISE_MAX_SEQS)
        .map(|k| seqs[k * n / PAIRWISE_MAX_SEQS])
        .collect()
}

/// Mean [`normalized_levenshtein`] over all unordered pairs `i < j` of the
/// list as given, duplicates included (a policy that keeps producing the
/// same sequence scores near 0). `0.0` for fewer than two sequences. Lists
/// longer than [`PAIRWISE_MAX_SEQS`] are subsampled by [`pairwise_subsample`].
/// Cost `O(n^2 L)` for sequences up to 64 long (bit-parallel), `O(n^2 L^2)`
/// beyond; 1000 sequences of length 30 take a few milliseconds.
pub fn mean_pairwise_distance(seqs: &[&[u8]]) -> f64 {
    let sub;
    let seqs = if seqs.len() > PAIRWISE_MAX_SEQS {
        sub = pairwise_subsample(seqs);
        &sub[..]
    } else {
        seqs
    };
    let n = seqs.len();
    if n < 2 {
        return 0.0;
    }
    let mut masks = [0u64; 256];
    let mut row = Vec::new();
    let mut total = 0.0;
    for (i, &a) in seqs.iter().enumerate() {
        let rest = &seqs[i + 1..];
        if a.len() <= WORD {
            let peq = Peq::build(&mut masks, a);
            for &b in rest {
                let longest = a.len().max(b.len());
                if longest > 0 {
                    total += myers(&peq, b) as f64 / longest as f64;
                }
            }
            clear_peq(&mut masks, a);
        } else {
            for &b in rest {
                let d = if b.len() <= WORD {
                    levenshtein(a, b)
                } else {
                    levenshtein_dp(a, b, &mut row)
                };
                total += d as f64 / a.len().max(b.len()) as f64;
            }
        }
    }
    total / (n * (n - 1) / 2) as f64
}

/// The distinct sequences, in order of first occurrence.
pub fn unique_sequences<'a>(seqs: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut seen = HashSet::with_capacity(seqs.len());
    seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
}

/// Number of distinct sequences divided by the number of sequences; `0.0`
/// for an empty list (and `1/n` for `n` copies of one sequence).
pub fn unique_ratio(seqs: &[&[u8]]) -> f64 {
    if seqs.is_empty() {
        return 0.0;
    }
    let distinct: HashSet<&[u8]> = seqs.iter().copied().collect();
    distinct.len() as f64 / seqs.len() as f64
}

/// [`mean_pairwise_distance`] over the distinct sequences only (first
/// occurrences, in order; the subsample rule applies after deduplication).
/// `0.0` when there are fewer than two distinct sequences.
pub fn mean_pairwise_distance_unique(seqs: &[&[u8]]) -> f64 {
    mean_pairwise_distance(&unique_sequences(seqs))
}

/// Number of distinct sequences with a reward `>= threshold`. `seqs[i]` is
/// paired with `rewards[i]`; entries beyond the shorter of the two slices
/// are ignored, and a NaN reward never qualifies.
pub fn modes_above(seqs: &[&[u8]], rewards: &[f64], threshold: f64) -> usize {
    let above: HashSet<&[u8]> = seqs
        .iter()
        .zip(rewards)
        .filter(|(_, &r)| r >= threshold)
        .map(|(&s, _)| s)
        .collect();
    above.len()
}

/// Greedy leader clustering, meant for sequences sorted by reward,
/// best first: the sequences are visited in the order given; each one joins
/// the first existing cluster whose leader is within normalised Levenshtein
/// distance `<= radius` of it, and otherwise founds a new cluster and
/// becomes its leader. Returns the number of clusters, i.e. the number of
/// distinct high-reward modes at that radius (each leader is the best
/// sequence of its mode). A leader is never re-elected, so the result
/// depends on the order; exact duplicates always share a cluster when
/// `radius >= 0`. `radius < 0` (or NaN) makes every sequence a leader;
/// `radius >= 1` gives one cluster for a non-empty list. Cost
/// `O(n * clusters)` distance evaluations.
pub fn clusters_at_radius(seqs_sorted_by_reward_desc: &[&[u8]], radius: f64) -> usize {
    let mut leaders: Vec<&[u8]> = Vec::new();
    for &s in seqs_sorted_by_reward_desc {
        let joined = leaders.iter().any(|&l| normalized_levenshtein(l, s) <= radius);
        if !joined {
            leaders.push(s);
        }
    }
    leaders.len()
}

/// Frequency of each letter of `alphabet` over all residues of all
/// sequences (so longer sequences weigh more), in the order of `alphabet`.
/// Residues not in `alphabet` are ignored (not counted in the total). All
/// zeros when there is no residue from the alphabet. If a letter appears
/// twice in `alphabet`, its first position gets the counts.
pub fn composition(seqs: &[&[u8]], alphabet: &[u8]) -> Vec<f64> {
    let mut slot = [usize::MAX; 256];
    for (i, &c) in alphabet.iter().enumerate().rev() {
        slot[c as usize] = i;
    }
    let mut counts = vec![0usize; alphabet.len()];
    let mut total = 0usize;
    for s in seqs {
        for &c in *s {
            let k = slot[c as usize];
            if k != usize::MAX {
                counts[k] += 1;
                total += 1;
            }
        }
    }
    if total == 0 {
        return vec![0.0; alphabet.len()];
    }
    counts.into_iter().map(|c| c as f64 / total as f64).collect()
}

/// Kullback-Leibler divergence `KL(p || q) = sum_i p_i ln(p_i / q_i)` in nats.
/// Terms with `p_i <= 0` contribute 0; otherwise both `p_i` and `q_i` are
/// floored at [`KL_EPSILON`] inside the logarithm, so a zero in `q` gives a
/// large finite term and `KL(p, p) = 0` exactly for every `p`. The inputs
/// are used as given (not renormalised); mismatched lengths use the common
/// prefix.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(&pi, _)| pi > 0.0)
        .map(|(&pi, &qi)| pi * (pi.max(KL_EPSILON) / qi.max(KL_EPSILON)).ln())
        .sum()
}

/// [`UNIPROT_COMPOSITION`] restricted to the letters of `alphabet`, in its
/// order, renormalised to sum to 1; `None` if `alphabet` is empty or holds
/// a byte that is not one of the 20 [`AMINO_ACIDS`] (upper case).
pub fn reference_composition(alphabet: &[u8]) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(alphabet.len());
    for c in alphabet {
        let k = AMINO_ACIDS.iter().position(|a| a == c)?;
        out.push(UNIPROT_COMPOSITION[k]);
    }
    let sum: f64 = out.iter().sum();
    if sum <= 0.0 {
        return None;
    }
    out.iter_mut().for_each(|v| *v /= sum);
    Some(out)
}

/// Counts of sequence lengths in bins `0..=max_len`; longer sequences are
/// counted in the last bin ("`max_len` or more"), so the counts sum to
/// `seqs.len()` (see [`stats::histogram`]).
pub fn length_histogram(seqs: &[&[u8]], max_len: usize) -> Vec<usize> {
    let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
    stats::histogram(&lengths, max_len)
}

/// Diversity summary of one sample of sequences (see [`sequence_report`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SequenceReport {
    /// Number of sequences in the sample, duplicates included.
    pub n: usize,
    /// Distinct / total ([`unique_ratio`]).
    pub unique_ratio: f64,
    /// [`mean_pairwise_distance`] over the sample as given.
    pub diversity: f64,
    /// [`mean_pairwise_distance_unique`].
    pub diversity_unique: f64,
    /// [`modes_above`] the threshold.
    pub modes_above_threshold: usize,
    /// [`clusters_at_radius`] of the distinct sequences with reward
    /// `>= threshold`, best reward first.
    pub clusters: usize,
    /// `KL(sample composition || UniProt reference)` in nats; `None` when
    /// the alphabet is not made of amino acids or the sample has no residue
    /// from it.
    pub composition_kl: Option<f64>,
    /// [`length_histogram`] with bins `0..=max_len`.
    pub length_histogram: Vec<usize>,
}

/// Computes a [`SequenceReport`]. `rewards[i]` belongs to `seqs[i]`
/// (entries beyond the shorter slice are ignored for the reward-based
/// fields). Clustering: the distinct sequences with reward `>= threshold`
/// (a sequence sampled several times takes its highest reward) are sorted by
/// reward, best first, ties by first occurrence, and passed to
/// [`clusters_at_radius`] with `radius`. The composition is compared with
/// [`reference_composition`]`(alphabet)`, i.e. [`UNIPROT_COMPOSITION`] for
/// `alphabet = AMINO_ACIDS`.
pub fn sequence_report(
    seqs: &[&[u8]],
    rewards: &[f64],
    threshold: f64,
    radius: f64,
    alphabet: &[u8],
    max_len: usize,
) -> SequenceReport {
    // Best reward per distinct qualifying sequence, remembering first occurrence.
    let mut best: HashMap<&[u8], (f64, usize)> = HashMap::new();
    for (i, (&s, &r)) in seqs.iter().zip(rewards).enumerate() {
        if r >= threshold {
            best.entry(s).and_modify(|e| e.0 = e.0.max(r)).or_insert((r, i));
        }
    }
    let mut ranked: Vec<(&[u8], f64, usize)> = best.into_iter().map(|(s, (r, i))| (s, r, i)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    let ranked_seqs: Vec<&[u8]> = ranked.iter().map(|e| e.0).collect();

    let composition_kl = reference_composition(alphabet).and_then(|reference| {
        let comp = composition(seqs, alphabet);
        comp.iter().any(|&f| f > 0.0).then(|| kl_divergence(&comp, &reference))
    });

    let unique = unique_sequences(seqs);
    let diversity = mean_pairwise_distance(seqs);
    // All distinct: the same list, so the same value (the O(n^2) pass runs once).
    let diversity_unique = if unique.len() == seqs.len() {
        diversity
    } else {
        mean_pairwise_distance(&unique)
    };

    SequenceReport {
        n: seqs.len(),
        unique_ratio: if seqs.is_empty() {
            0.0
        } else {
            unique.len() as f64 / seqs.len() as f64
        },
        diversity,
        diversity_unique,
        modes_above_threshold: ranked_seqs.len(),
        clusters: clusters_at_radius(&ranked_seqs, radius),
        composition_kl,
        length_histogram: length_histogram(seqs, max_len),
    }
}
