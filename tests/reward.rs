//! Tests of the reward module: descriptors against hand computations and against values
//! printed by Biopython 1.83 (`Bio.SeqUtils.ProtParam.ProteinAnalysis`) and the Python port
//! of the `peptides` R package 0.5.0 (`peptides.Peptide`, pKscale="EMBOSS"); the composite
//! reward; `validate_rewards`; and `ExternalReward` against `examples/score.py`.

use std::time::{Duration, Instant};

use gflownet::reward::external::ExternalReward;
use gflownet::reward::peptide::{
    aliphatic_index, boman_index, composite, composite_terms, gravy, hydrophobic_moment, instability_index,
    isoelectric_point, length_gate, net_charge, normalized_entropy, sigmoid, COMPOSITE_FLOOR, DEFAULT_MOMENT_WINDOW,
    DIWV, HELIX_ANGLE_DEG,
};
use gflownet::reward::{validate_rewards, FnReward, PeptideReward, RewardError, RewardModel, AMINO_ACIDS};

// Kept in its own group so import order survives renaming the crate.
use proptest::prelude::*;

const SCORE_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/score.py");

/// A peptide used in the `peptides` package docs.
const FLPV: &str = "FLPVLAGLTPSIVPKLVCLLTKKC";
/// Magainin 2.
const MAGAININ: &str = "GIGKFLHSAKKFGKAFVGEIMNS";

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

macro_rules! assert_close {
    ($a:expr, $b:expr, $tol:expr) => {{
        let (a, b): (f64, f64) = ($a, $b);
        assert!(close(a, b, $tol), "{} = {a}, expected {b} (±{})", stringify!($a), $tol);
    }};
}

// ---------------------------------------------------------------- descriptors

#[test]
fn gravy_values() {
    // Kyte & Doolittle (1982): A = 1.8, R = -4.5, N = -3.5, D = -3.5.
    assert_close!(gravy("AAAA").unwrap(), 1.8, 1e-12);
    assert_close!(gravy("ARND").unwrap(), (1.8 - 4.5 - 3.5 - 3.5) / 4.0, 1e-12);
    // I = 4.5, R = -4.5: mean 0.
    assert_close!(gravy("IR").unwrap(), 0.0, 1e-12);
    // Biopython ProteinAnalysis(FLPV).gravy() = 1.2666666666666666.
    assert_close!(gravy(FLPV).unwrap(), 1.266_666_666_666_666_6, 1e-12);
}

#[test]
fn instability_values() {
    // II = (10 / L) * sum DIWV; Guruprasad 1990 via Biopython: DIWV[A][C] = 44.94, [A][A] = 1.
    assert_close!(instability_index("AC").unwrap(), 10.0 / 2.0 * 44.94, 1e-9);
    assert_close!(instability_index("AA").unwrap(), 5.0, 1e-12);
    // R->R 58.28 twice over three residues.
    assert_close!(instability_index("RRR").unwrap(), 10.0 / 3.0 * 2.0 * 58.28, 1e-9);
    // One residue has no dipeptide.
    assert_close!(instability_index("W").unwrap(), 0.0, 0.0);
    // Biopython 1.83 instability_index().
    assert_close!(instability_index(FLPV).unwrap(), 42.633_333_333_333_34, 1e-9);
    assert_close!(instability_index(MAGAININ).unwrap(), -0.104_347_826_086_955_84, 1e-9);
    assert_close!(instability_index(AMINO_ACIDS).unwrap(), 84.740_000_000_000_01, 1e-9);
}

#[test]
fn diwv_table_spot_checks() {
    // Entries as printed in Biopython's ProtParamData.DIWV (index order ACDEFGHIKLMNPQRSTVWY).
    let i = |c: char| AMINO_ACIDS.find(c).unwrap();
    assert_eq!(DIWV[i('F')][i('Y')], 33.601);
    assert_eq!(DIWV[i('M')][i('H')], 58.28);
    assert_eq!(DIWV[i('Y')][i('R')], -15.91);
    assert_eq!(DIWV[i('K')][i('Q')], 24.64);
    assert_eq!(DIWV[i('P')][i('E')], 18.38);
    assert_eq!(DIWV[i('W')][i('A')], -14.03);
    let ones = DIWV.iter().flatten().filter(|&&v| v == 1.0).count();
    assert_eq!(ones, 247, "count of 1.0 entries in Biopython's DIWV");
}

#[test]
fn aliphatic_values() {
    // Ikai 1980: X(Ala) + 2.9 X(Val) + 3.9 (X(Ile) + X(Leu)), mole percent.
    assert_close!(aliphatic_index("AVIL").unwrap(), 25.0 + 2.9 * 25.0 + 3.9 * 50.0, 1e-9);
    assert_close!(aliphatic_index("LLLL").unwrap(), 390.0, 1e-9);
    assert_close!(aliphatic_index("KKK").unwrap(), 0.0, 0.0);
    // peptides.Peptide(FLPV).aliphatic_index() = 154.16666666666666.
    assert_close!(aliphatic_index(FLPV).unwrap(), 154.166_666_666_666_66, 1e-9);
}

#[test]
fn boman_values() {
    // Boman 2003 values as in the peptides package: L = 4.92, R = -14.92, index = -mean.
    assert_close!(boman_index("LLLL").unwrap(), -4.92, 1e-12);
    assert_close!(boman_index("RRRR").unwrap(), 14.92, 1e-12);
    assert_close!(boman_index("PPPP").unwrap(), 0.0, 0.0);
    // peptides.Peptide(FLPV).boman() = -1.2358333333333333 (also in its docstring).
    assert_close!(boman_index(FLPV).unwrap(), -1.235_833_333_333_333_3, 1e-12);
    assert_close!(boman_index(MAGAININ).unwrap(), 0.419_130_434_782_608_64, 1e-12);
}

/// Henderson–Hasselbalch with the EMBOSS set, written out independently.
fn hh_charge(seq: &str, ph: f64) -> f64 {
    let pos = |pka: f64| 1.0 / (1.0 + 10f64.powf(ph - pka));
    let neg = |pka: f64| -1.0 / (1.0 + 10f64.powf(pka - ph));
    let mut z = pos(8.6) + neg(3.6);
    for ch in seq.chars() {
        z += match ch {
            'K' => pos(10.8),
            'R' => pos(12.5),
            'H' => pos(6.5),
            'D' => neg(3.9),
            'E' => neg(4.1),
            'C' => neg(8.5),
            'Y' => neg(10.1),
            _ => 0.0,
        };
    }
    z
}

#[test]
fn net_charge_values() {
    let kkk = net_charge("KKK", 7.0).unwrap();
    assert!(kkk > 2.9 && kkk < 3.05, "KKK at pH 7: {kkk}");
    // peptides.Peptide("KKK").charge(pH=7, pKscale="EMBOSS") = 2.975419188580882.
    assert_close!(kkk, 2.975_419_188_580_882, 1e-12);
    assert_close!(net_charge("KKK", 7.0).unwrap(), hh_charge("KKK", 7.0), 1e-12);
    let dddd = net_charge("DDDD", 7.0).unwrap();
    assert_close!(dddd, -4.020_930_627_693_355, 1e-12);
    for ph in [1.0, 4.0, 7.0, 9.5, 13.0] {
        assert_close!(net_charge(FLPV, ph).unwrap(), hh_charge(FLPV, ph), 1e-12);
    }
    assert_close!(net_charge(FLPV, 7.0).unwrap(), 2.914_112_328_517_451, 1e-12);
    // Monotone in pH.
    assert!(net_charge("HCY", 5.0).unwrap() > net_charge("HCY", 9.0).unwrap());
    assert!(net_charge("A", f64::NAN).is_err());
}

#[test]
fn isoelectric_point_values() {
    let d = isoelectric_point("DDDD").unwrap();
    assert!(d < 4.0, "pI of DDDD = {d}");
    let k = isoelectric_point("KKK").unwrap();
    assert!(k > 10.0, "pI of KKK = {k}");
    // peptides (EMBOSS): DDDD 3.2280, KKK 11.1031, FLPV 9.6678, magainin 10.8027.
    assert_close!(d, 3.228_029, 1e-3);
    assert_close!(k, 11.103_071, 1e-3);
    assert_close!(isoelectric_point(FLPV).unwrap(), 9.667_790, 1e-3);
    assert_close!(isoelectric_point(MAGAININ).unwrap(), 10.802_728, 1e-3);
    // Zero net charge there, to the bisection tolerance.
    for s in ["DDDD", "KKK", FLPV, "ACDEFGHIKLMNPQRSTVWY", "G"] {
        let pi = isoelectric_point(s).unwrap();
        assert!(net_charge(s, pi - 1e-4).unwrap() > 0.0, "{s}");
        assert!(net_charge(s, pi + 1e-4).unwrap() < 0.0, "{s}");
    }
}

#[test]
fn entropy_values() {
    assert_close!(normalized_entropy("AAAA").unwrap(), 0.0, 0.0);
    assert_close!(normalized_entropy(AMINO_ACIDS).unwrap(), 1.0, 1e-12);
    assert_close!(normalized_entropy("AACC").unwrap(), 2f64.ln() / 20f64.ln(), 1e-12);
    // Short sequences are capped at ln L / ln 20.
    assert_close!(normalized_entropy("ACDE").unwrap(), 4f64.ln() / 20f64.ln(), 1e-12);
}

#[test]
fn hydrophobic_moment_values() {
    // Eisenberg 1984 consensus: A = 0.62, C = 0.29. Window min(11, 2) = 2:
    // |0.62 + 0.29 e^{i 100°}| / 2.
    let (s, c) = 100f64.to_radians().sin_cos();
    let want = ((0.62 + 0.29 * c).powi(2) + (0.29 * s).powi(2)).sqrt() / 2.0;
    assert_close!(hydrophobic_moment("AC", 11, 100.0).unwrap(), want, 1e-12);
    // Angle 0: the moment is the mean hydrophobicity's magnitude, |R| = 2.53.
    assert_close!(hydrophobic_moment("RRRRR", 11, 0.0).unwrap(), 2.53, 1e-12);
    // Angle 180 on an alternating sequence of length 2k: |sum (+h_A, -h_L)| / w.
    assert_close!(
        hydrophobic_moment("ALALALALALAL", 11, 180.0).unwrap(),
        (5.0 * 1.06 - 6.0 * 0.62_f64).abs().max(6.0 * 1.06 - 5.0 * 0.62) / 11.0,
        1e-12
    );
    // peptides.Peptide(FLPV).hydrophobic_moment(window=11, angle=100 / 160).
    assert_close!(
        hydrophobic_moment(FLPV, DEFAULT_MOMENT_WINDOW, HELIX_ANGLE_DEG).unwrap(),
        0.519_922_580_512_116_5,
        1e-9
    );
    assert_close!(
        hydrophobic_moment(FLPV, 11, 160.0).unwrap(),
        0.270_590_572_369_184,
        1e-9
    );
    assert_close!(
        hydrophobic_moment(MAGAININ, 11, 100.0).unwrap(),
        0.686_238_916_606_850_8,
        1e-9
    );
    // Window 0 is treated as 1: max |h|.
    assert_close!(hydrophobic_moment("AR", 0, 100.0).unwrap(), 2.53, 1e-12);
}

/// One residue at a time, in the order the scales are usually printed (ARNDCQEGHILKMFPSTWYV,
/// not the tables' alphabetical order): GRAVY is the Kyte & Doolittle (1982) value, the
/// hydrophobic moment (window 1) the magnitude of the Eisenberg (1984) consensus value, and
/// the Boman index minus the Boman (2003) value (P has none in the `peptides` package: 0).
#[test]
fn single_residues_give_the_published_scale_values() {
    let table: [(char, f64, f64, f64); 20] = [
        ('A', 1.8, 0.62, 1.81),
        ('R', -4.5, -2.53, -14.92),
        ('N', -3.5, -0.78, -6.64),
        ('D', -3.5, -0.90, -8.72),
        ('C', 2.5, 0.29, 1.28),
        ('Q', -3.5, -0.85, -5.54),
        ('E', -3.5, -0.74, -6.81),
        ('G', -0.4, 0.48, 0.94),
        ('H', -3.2, -0.40, -4.66),
        ('I', 4.5, 1.38, 4.92),
        ('L', 3.8, 1.06, 4.92),
        ('K', -3.9, -1.50, -5.55),
        ('M', 1.9, 0.64, 2.35),
        ('F', 2.8, 1.19, 2.98),
        ('P', -1.6, 0.12, 0.0),
        ('S', -0.8, -0.18, -3.40),
        ('T', -0.7, -0.05, -2.57),
        ('W', -0.9, 0.81, 2.33),
        ('Y', -1.3, 0.26, -0.14),
        ('V', 4.2, 1.08, 4.04),
    ];
    for (c, kd, eisenberg, boman) in table {
        let s = c.to_string();
        assert_close!(gravy(&s).unwrap(), kd, 1e-12);
        assert_close!(hydrophobic_moment(&s, 11, 100.0).unwrap(), eisenberg.abs(), 1e-12);
        assert_close!(boman_index(&s).unwrap(), -boman, 1e-12);
    }
}

/// Every ionisable residue at several pH values, against the independent
/// Henderson-Hasselbalch sum (FLPV has no H, D, E or Y).
#[test]
fn net_charge_of_every_ionisable_residue() {
    for s in ["H", "Y", "C", "D", "E", "K", "R", AMINO_ACIDS] {
        for ph in [3.0, 6.5, 7.0, 8.5, 10.1] {
            assert_close!(net_charge(s, ph).unwrap(), hh_charge(s, ph), 1e-12);
        }
    }
    // At pH = pKa(His) = 6.5 the side chain carries exactly +1/2.
    let termini = 1.0 / (1.0 + 10f64.powf(6.5 - 8.6)) - 1.0 / (1.0 + 10f64.powf(3.6 - 6.5));
    assert_close!(net_charge("H", 6.5).unwrap(), 0.5 + termini, 1e-12);
}

/// Sequences with 128 or more copies of a residue (past the cached `k ln k` table).
#[test]
fn entropy_of_long_sequences() {
    assert_close!(normalized_entropy(&"A".repeat(200)).unwrap(), 0.0, 1e-12);
    let half = "A".repeat(150) + &"C".repeat(150);
    assert_close!(normalized_entropy(&half).unwrap(), 2f64.ln() / 20f64.ln(), 1e-12);
}

#[test]
fn descriptors_refuse_bad_input() {
    for f in [
        gravy,
        instability_index,
        aliphatic_index,
        boman_index,
        normalized_entropy,
    ] {
        assert_eq!(f(""), Err(RewardError::EmptySequence));
        match f("ACxD") {
            Err(RewardError::InvalidResidue { letter, position, .. }) => assert_eq!((letter, position), ('x', 2)),
            other => panic!("{other:?}"),
        }
    }
    assert!(isoelectric_point("").is_err());
    assert!(hydrophobic_moment("AC", 11, f64::INFINITY).is_err());
}

// ---------------------------------------------------------------- composite

#[test]
fn composite_error_names_the_letter() {
    for (seq, letter) in [("ACDB", 'B'), ("acd", 'a'), ("AC D", ' '), ("ACé", 'é')] {
        let err = composite(seq).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("{letter:?}")), "{seq}: {msg}");
        assert!(msg.contains("invalid residue"), "{msg}");
    }
    let err = PeptideReward::new().score(&["ACDK", "ACXK"]).unwrap_err();
    assert!(err.to_string().contains("'X'"), "{err}");
    assert!(err.to_string().contains("ACXK"), "{err}");
}

#[test]
fn composite_is_the_documented_product() {
    for s in [FLPV, MAGAININ, "A", "KKKKKKKKKKKKKKKK", "DEWASDHQGYEPNNTQR"] {
        let t = composite_terms(s).unwrap();
        let h = normalized_entropy(s).unwrap();
        let ii = instability_index(s).unwrap();
        let g = gravy(s).unwrap();
        let z = net_charge(s, 7.0).unwrap().abs();
        let product = sigmoid(10.0 * (h - 0.5))
            * sigmoid(0.5 * (s.len() as f64 - 10.0))
            * sigmoid((40.0 - ii) / 5.0)
            * sigmoid(-g / 0.5)
            * sigmoid((z - 1.0) / 0.4)
            * sigmoid((5.0 - z) / 0.4);
        let want = 1e-6 + (1.0 - 1e-6) * product;
        assert_close!(t.reward, want, 1e-12);
        assert_close!(composite(s).unwrap(), want, 1e-12);
        assert_close!(t.length_gate, length_gate(s.len()), 0.0);
    }
    assert_eq!(composite("").unwrap(), COMPOSITE_FLOOR);
}

#[test]
fn composite_prefers_diverse_stable_soluble_charged() {
    let good = composite("DEWASDHQGYEPNNTQR").unwrap();
    assert!(good > 0.85, "{good}");
    // Repetitive.
    assert!(composite("EKEKEKEKEKEKEKEKEK").unwrap() < 0.2 * good);
    // Too short.
    assert!(composite("DEWAS").unwrap() < 0.2 * good);
    // Hydrophobic and uncharged.
    assert!(composite("LIVAFMWLIVAFMWLIVA").unwrap() < 0.05 * good);
    // Unstable (many high-DIWV dipeptides such as RR, RW, MH).
    assert!(composite("RRWRRWMHRRWSRRWMHD").unwrap() < 0.05 * good);
}

/// A tiny deterministic generator (SplitMix64), so this test needs no `rand`.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn composite_random_versus_optimised() {
    let letters = AMINO_ACIDS.as_bytes();
    let mut rng = SplitMix(7);
    let random_peptide = |rng: &mut SplitMix, min_len: usize| -> Vec<u8> {
        let len = min_len + rng.below(31 - min_len);
        (0..len).map(|_| letters[rng.below(20)]).collect()
    };
    let score = |s: &[u8]| composite(std::str::from_utf8(s).unwrap()).unwrap();

    let n = 20_000;
    let mean = (0..n).map(|_| score(&random_peptide(&mut rng, 10))).sum::<f64>() / n as f64;
    assert!((0.05..=0.25).contains(&mean), "random mean {mean}");

    // Hill climbing (fixed length, point mutations) from random starts of 18-30 residues
    // reaches the plateau near 1, in distinct places.
    let mut bests = Vec::new();
    for _ in 0..4 {
        let mut s = random_peptide(&mut rng, 18);
        let mut f = score(&s);
        for _ in 0..3000 {
            let mut t = s.clone();
            let i = rng.below(t.len());
            t[i] = letters[rng.below(20)];
            let ft = score(&t);
            if ft >= f {
                s = t;
                f = ft;
            }
        }
        bests.push((f, String::from_utf8(s).unwrap()));
    }
    for (f, s) in &bests {
        assert!(*f > 0.85, "hill climb reached only {f} at {s}");
    }
    bests.sort_by(|a, b| a.1.cmp(&b.1));
    bests.dedup_by(|a, b| a.1 == b.1);
    assert_eq!(bests.len(), 4, "optima should differ: {bests:?}");
}

proptest! {
    #[test]
    fn composite_in_unit_interval(idx in proptest::collection::vec(0usize..20, 1..60)) {
        let s: String = idx.iter().map(|&i| AMINO_ACIDS.as_bytes()[i] as char).collect();
        let r = composite(&s).unwrap();
        prop_assert!((COMPOSITE_FLOOR..=1.0).contains(&r), "{} -> {}", s, r);
        prop_assert!(r > 0.0 && r.ln().is_finite());
        let rewards = PeptideReward::new().score(&[s.as_str()]).unwrap();
        prop_assert_eq!(rewards, vec![r]);
        // Every descriptor is finite on valid input.
        for v in [
            gravy(&s).unwrap(), instability_index(&s).unwrap(), aliphatic_index(&s).unwrap(),
            boman_index(&s).unwrap(), net_charge(&s, 7.0).unwrap(),
            isoelectric_point(&s).unwrap(), hydrophobic_moment(&s, 11, 100.0).unwrap(),
            normalized_entropy(&s).unwrap(),
        ] {
            prop_assert!(v.is_finite());
        }
    }
}

// ---------------------------------------------------------------- trait helpers

#[test]
fn validate_rewards_distinct_errors() {
    let seqs = ["AC", "DE", "FG"];
    assert_eq!(validate_rewards(&seqs, &[0.1, 1.0, 3.0]), Ok(()));
    let cases: [(&[f64], &str); 6] = [
        (&[0.1, 1.0], "expected 3"),
        (&[0.1, f64::NAN, 1.0], "NaN"),
        (&[0.1, 1.0, f64::INFINITY], "infinite"),
        (&[f64::NEG_INFINITY, 1.0, 1.0], "infinite"),
        (&[0.1, -2.0, 1.0], "negative"),
        (&[0.0, 1.0, 1.0], "zero"),
    ];
    let mut kinds = Vec::new();
    for (rewards, needle) in cases {
        let err = validate_rewards(&seqs, rewards).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg}");
        kinds.push(std::mem::discriminant(&err));
    }
    assert!(validate_rewards(&seqs, &[0.1, 1.0, 3.0, 4.0])
        .unwrap_err()
        .to_string()
        .contains("got 4"));
    // Names the sequence and value.
    let msg = validate_rewards(&seqs, &[0.1, -2.0, 1.0]).unwrap_err().to_string();
    assert!(msg.contains("\"DE\"") && msg.contains("-2"), "{msg}");
    let msg = validate_rewards(&seqs, &[-0.0, 1.0, 1.0]).unwrap_err().to_string();
    assert!(msg.contains("zero") && msg.contains("\"AC\""), "{msg}");
    kinds.dedup();
    assert_eq!(kinds.len(), 5, "count, NaN, inf, negative, zero are distinct variants");
}

#[test]
fn closures_are_reward_models() {
    let mut calls = 0;
    let mut m = FnReward::new("len", move |seqs: &[&str]| {
        calls += 1;
        if calls > 1 {
            return Err(RewardError::Other("only once".into()));
        }
        Ok(seqs.iter().map(|s| s.len() as f64).collect())
    });
    assert_eq!(m.name(), "len");
    assert_eq!(m.score(&["A", "AC"]).unwrap(), vec![1.0, 2.0]);
    assert_eq!(m.score(&["A"]).unwrap_err().to_string(), "only once");
    let mut boxed: Box<dyn RewardModel> = Box::new(PeptideReward::new());
    assert_eq!(boxed.name(), "peptide-composite");
    assert_eq!(boxed.score(&[FLPV]).unwrap(), vec![composite(FLPV).unwrap()]);
}

// ---------------------------------------------------------------- external process

fn python_cmd(mode: &str) -> String {
    format!("python3 '{SCORE_PY}' {mode}")
}

fn external(mode: &str) -> ExternalReward {
    ExternalReward::spawn(&python_cmd(mode), Duration::from_secs(20)).unwrap()
}

/// score.py's documented function, computed independently.
fn py_score(s: &str) -> f64 {
    let n = s.len() as f64;
    let distinct = s.chars().collect::<std::collections::BTreeSet<_>>().len() as f64;
    distinct / n * (1.0 - (-n / 10.0).exp())
}

const BATCH: [&str; 3] = ["ACDEFGHIK", "AAAA", "KWK"];

fn expect_err(mode: &str, needles: &[&str]) -> String {
    let mut m = external(mode);
    let err = m.score(&BATCH).unwrap_err();
    let msg = err.to_string();
    for needle in needles {
        assert!(msg.contains(needle), "mode {mode}: {needle:?} not in: {msg}");
    }
    msg
}

#[test]
fn external_scores_match() {
    for mode in ["ok", "dict"] {
        let mut m = external(mode);
        assert!(m.name().contains("score.py"));
        for batch in [&BATCH[..], &["MKWVTFISLLLLFSSAYS"][..], &BATCH[1..]] {
            let got = m.score(batch).unwrap();
            assert_eq!(got.len(), batch.len());
            for (g, s) in got.iter().zip(batch) {
                assert_close!(*g, py_score(s), 1e-12);
            }
        }
        assert_eq!(m.score(&[]).unwrap(), Vec::<f64>::new());
    }
}

#[test]
fn external_large_batch() {
    let seqs: Vec<String> = (0..2000)
        .map(|i| AMINO_ACIDS.chars().cycle().skip(i % 20).take(10 + i % 40).collect())
        .collect();
    let refs: Vec<&str> = seqs.iter().map(String::as_str).collect();
    let got = external("ok").score(&refs).unwrap();
    for (g, s) in got.iter().zip(&refs) {
        assert_close!(*g, py_score(s), 1e-12);
    }
}

#[test]
fn external_crash_reports_exit_and_stderr() {
    let mut m = external("crash");
    let msg = m.score(&BATCH).unwrap_err().to_string();
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("exit status: 1"), "{msg}");
    assert!(msg.contains("RuntimeError: simulated crash"), "{msg}");
    // Later calls say it is dead and why.
    let again = m.score(&BATCH).unwrap_err().to_string();
    assert!(
        again.contains("no longer running") && again.contains("exited"),
        "{again}"
    );
}

#[test]
fn external_missing_command() {
    let mut m = ExternalReward::spawn("no-such-reward-command-xyz", Duration::from_secs(5)).unwrap();
    let msg = m.score(&BATCH).unwrap_err().to_string();
    assert!(msg.contains("exited") && msg.contains("127"), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
}

#[test]
fn external_hang_times_out() {
    let mut m = ExternalReward::spawn(&python_cmd("hang"), Duration::from_secs(1)).unwrap();
    let start = Instant::now();
    let msg = m.score(&BATCH).unwrap_err().to_string();
    let took = start.elapsed();
    assert!(msg.contains("timed out"), "{msg}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let again = m.score(&BATCH).unwrap_err().to_string();
    assert!(again.contains("no longer running"), "{again}");
}

#[test]
fn external_garbage() {
    let msg = expect_err("garbage", &["not valid JSON", "this is not JSON at all"]);
    assert!(msg.contains("bad response"), "{msg}");
}

#[test]
fn external_wrong_count() {
    expect_err("wrongcount", &["expected 3", "got 2"]);
}

#[test]
fn external_nan() {
    // json.dumps writes float('nan') as a bare NaN.
    expect_err("nan", &["NaN", "[NaN,"]);
    expect_err("nanstr", &["NaN", "string", "reward 0"]);
    expect_err("null", &["null", "reward 0"]);
}

#[test]
fn external_infinity() {
    expect_err("inf", &["Infinity", "infinite"]);
}

#[test]
fn external_negative() {
    expect_err("negative", &["negative", "reward 0", "ACDEFGHIK"]);
}

#[test]
fn external_bad_answer_keeps_process_alive() {
    // A complete but wrong answer is an error for that batch only.
    let mut m = external("wrongcount");
    for _ in 0..2 {
        match m.score(&BATCH) {
            Err(RewardError::BadResponse { problem, .. }) => assert!(problem.contains("got 2")),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn external_extra_output_line_is_reported_not_taken_as_the_next_answer() {
    // Two lines per request: the second is left over when the next batch is scored.
    let cmd = "while read l; do printf '[0.5]\\n[0.25]\\n'; done";
    let mut m = ExternalReward::spawn(cmd, Duration::from_secs(10)).unwrap();
    assert_eq!(m.score(&["A"]).unwrap(), vec![0.5]);
    std::thread::sleep(Duration::from_millis(300));
    let msg = m.score(&["A"]).unwrap_err().to_string();
    assert!(msg.contains("unexpected line") && msg.contains("0.25"), "{msg}");
}

#[test]
fn external_chatty_stderr_does_not_deadlock() {
    let mut m = ExternalReward::spawn(&python_cmd("stderr"), Duration::from_secs(20)).unwrap();
    for _ in 0..3 {
        let got = m.score(&BATCH).unwrap();
        assert_close!(got[2], py_score("KWK"), 1e-12);
    }
}

#[test]
fn external_stderr_tail_is_bounded() {
    // A crash after lots of stderr: the message quotes only the tail.
    let cmd = "python3 -c 'import sys; sys.stderr.write(\"x\" * 100000 + \"\\nEND-OF-LOG\\n\"); sys.exit(3)'";
    let mut m = ExternalReward::spawn(cmd, Duration::from_secs(10)).unwrap();
    let msg = m.score(&BATCH).unwrap_err().to_string();
    assert!(
        msg.contains("exit status: 3") && msg.contains("END-OF-LOG"),
        "{}",
        msg.chars().take(300).collect::<String>()
    );
    assert!(msg.len() < 6000, "stderr tail not bounded: {} bytes", msg.len());
    assert!(msg.contains("…x"), "a cut tail is marked as such");
}

#[test]
fn external_drop_kills_child() {
    let m = ExternalReward::spawn(&python_cmd("hang"), Duration::from_secs(1)).unwrap();
    let pid = m.id();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(m);
    // Killed and reaped: no zombie left either.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn external_drop_kills_grandchildren() {
    // `sh -c` with a compound command keeps the shell as the child; the real worker is a
    // grandchild, which Drop must reach through the process group.
    let pid_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("grandchild.pid");
    let _ = std::fs::remove_file(&pid_file);
    let cmd = format!("python3 '{SCORE_PY}' hang & echo $! > '{}'; wait", pid_file.display());
    let m = ExternalReward::spawn(&cmd, Duration::from_secs(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "grandchild pid never written");
        std::thread::sleep(Duration::from_millis(10));
    };
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(m);
    // The grandchild is killed; it is reaped by init, so allow a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&proc_dir).exists() {
        let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        if state.contains(") Z ") {
            break; // a zombie awaiting its new parent's reaping: dead
        }
        assert!(Instant::now() < deadline, "grandchild {pid} survived the drop");
        std::thread::sleep(Duration::from_millis(10));
    }
}
