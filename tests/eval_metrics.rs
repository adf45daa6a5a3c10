//! Sample statistics and sequence-diversity metrics: hand values, brute-force
//! references and invariances (proptest).

use gflownet::metrics::sequences::{
    clusters_at_radius, composition, kl_divergence, length_histogram, levenshtein, levenshtein_dp,
    mean_pairwise_distance, mean_pairwise_distance_unique, modes_above, normalized_levenshtein, pairwise_subsample,
    reference_composition, sequence_report, unique_ratio, unique_sequences, AMINO_ACIDS, PAIRWISE_MAX_SEQS,
    UNIPROT_COMPOSITION,
};
use gflownet::metrics::stats::{
    average_ranks, histogram, mean, median, ols_slope, pearson, quantile, spearman, std, top_fraction_mean,
};
use proptest::prelude::*;

const TOL: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * (1.0 + a.abs().max(b.abs()))
}

/// The recursive definition, no memo: only for short strings.
fn brute_levenshtein(a: &[u8], b: &[u8]) -> usize {
    match (a.split_first(), b.split_first()) {
        (None, _) => b.len(),
        (_, None) => a.len(),
        (Some((ha, ta)), Some((hb, tb))) => {
            let sub = brute_levenshtein(ta, tb) + usize::from(ha != hb);
            let del = brute_levenshtein(ta, b) + 1;
            let ins = brute_levenshtein(a, tb) + 1;
            sub.min(del).min(ins)
        }
    }
}

/// Deterministic xorshift64* for the non-proptest fixtures.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn peptides(&mut self, n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| (0..len).map(|_| AMINO_ACIDS[(self.next() % 20) as usize]).collect())
            .collect()
    }
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|s| s.as_slice()).collect()
}

/// Mean pairwise distance by the plain DP, no subsampling.
fn naive_mean_pairwise(seqs: &[&[u8]]) -> f64 {
    let mut row = Vec::new();
    let (mut total, mut pairs) = (0.0, 0usize);
    for i in 0..seqs.len() {
        for j in i + 1..seqs.len() {
            let longest = seqs[i].len().max(seqs[j].len());
            if longest > 0 {
                total += levenshtein_dp(seqs[i], seqs[j], &mut row) as f64 / longest as f64;
            }
            pairs += 1;
        }
    }
    if pairs == 0 {
        0.0
    } else {
        total / pairs as f64
    }
}

fn small_string() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop::sample::select(b"ACG".to_vec()), 0..=6)
}

fn string_up_to(max: usize, alphabet: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop::sample::select(alphabet.to_vec()), 0..=max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn levenshtein_matches_recursive_definition(a in small_string(), b in small_string()) {
        let want = brute_levenshtein(&a, &b);
        prop_assert_eq!(levenshtein(&a, &b), want);
        prop_assert_eq!(levenshtein_dp(&a, &b, &mut Vec::new()), want);
    }

    /// The bit-parallel path (either side <= 64) against the DP, across the 64 boundary.
    #[test]
    fn bit_parallel_matches_dp(a in string_up_to(140, b"ACDE"), b in string_up_to(140, AMINO_ACIDS)) {
        let mut row = vec![7; 3]; // a dirty buffer must not matter
        prop_assert_eq!(levenshtein(&a, &b), levenshtein_dp(&a, &b, &mut row));
        prop_assert_eq!(levenshtein(&b, &a), levenshtein_dp(&b, &a, &mut row));
    }

    #[test]
    fn levenshtein_is_a_metric(a in string_up_to(80, b"ACG"), b in string_up_to(80, b"ACG"), c in string_up_to(80, b"ACG")) {
        let ab = levenshtein(&a, &b);
        prop_assert_eq!(ab, levenshtein(&b, &a));
        prop_assert_eq!(ab == 0, a == b);
        prop_assert!(ab <= levenshtein(&a, &c) + levenshtein(&c, &b));
        prop_assert!(ab >= a.len().abs_diff(b.len()) && ab <= a.len().max(b.len()));
        let n = normalized_levenshtein(&a, &b);
        prop_assert!((0.0..=1.0).contains(&n));
    }

    #[test]
    fn mean_pairwise_matches_naive(seqs in proptest::collection::vec(string_up_to(90, b"ACDE"), 0..12)) {
        let r = refs(&seqs);
        let got = mean_pairwise_distance(&r);
        prop_assert!(close(got, naive_mean_pairwise(&r)), "{} vs {}", got, naive_mean_pairwise(&r));
    }

    /// Integer-valued inputs so that ties occur; both transforms are strictly increasing.
    #[test]
    fn spearman_invariant_to_monotone_transforms(
        xy in proptest::collection::vec((-20i32..20, -20i32..20), 2..40)
    ) {
        let x: Vec<f64> = xy.iter().map(|p| p.0 as f64).collect();
        let y: Vec<f64> = xy.iter().map(|p| p.1 as f64).collect();
        let fx: Vec<f64> = x.iter().map(|v| v.powi(3) + 5.0).collect();
        let gy: Vec<f64> = y.iter().map(|v| (v / 4.0).exp()).collect();
        let base = spearman(&x, &y);
        let moved = spearman(&fx, &gy);
        prop_assert_eq!(base.is_some(), moved.is_some());
        if let (Some(a), Some(b)) = (base, moved) {
            prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b);
            prop_assert!((-1.0..=1.0).contains(&a));
        }
        // A decreasing transform of one side flips the sign.
        let neg: Vec<f64> = y.iter().map(|v| -v).collect();
        if let (Some(a), Some(b)) = (base, spearman(&x, &neg)) {
            prop_assert!((a + b).abs() < 1e-12);
        }
    }

    #[test]
    fn kl_zero_on_itself_positive_otherwise(
        w in proptest::collection::vec(0.0f64..1.0, 2..21),
        v in proptest::collection::vec(0.01f64..1.0, 2..21),
    ) {
        let n = w.len().min(v.len());
        let (w, v) = (&w[..n], &v[..n]);
        let sw: f64 = w.iter().sum();
        prop_assume!(sw > 1e-3);
        let p: Vec<f64> = w.iter().map(|x| x / sw).collect();
        let sv: f64 = v.iter().sum();
        let q: Vec<f64> = v.iter().map(|x| x / sv).collect();
        prop_assert_eq!(kl_divergence(&p, &p), 0.0);
        let differs = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let kl = kl_divergence(&p, &q);
        prop_assert!(kl.is_finite());
        if differs > 1e-6 {
            prop_assert!(kl > 0.0, "kl {} for max diff {}", kl, differs);
        }
    }
}

#[test]
fn levenshtein_known_values() {
    assert_eq!(levenshtein(b"kitten", b"sitting"), 3);
    assert_eq!(levenshtein(b"sitting", b"kitten"), 3);
    assert_eq!(levenshtein(b"flaw", b"lawn"), 2);
    assert_eq!(levenshtein(b"saturday", b"sunday"), 3);
    assert_eq!(levenshtein(b"", b"ACDE"), 4);
    assert_eq!(levenshtein(b"", b""), 0);
    assert_eq!(levenshtein_dp(b"kitten", b"sitting", &mut Vec::new()), 3);
    // Around the 64-byte word: one substitution / one insertion / 65 insertions.
    let a = vec![b'A'; 64];
    let mut b = a.clone();
    b[63] = b'C';
    assert_eq!(levenshtein(&a, &b), 1);
    let mut c = a.clone();
    c.push(b'A');
    assert_eq!(levenshtein(&a, &c), 1);
    assert_eq!(levenshtein(&c, &a), 1);
    let long_c = vec![b'C'; 65];
    assert_eq!(levenshtein(&long_c, b""), 65);
    assert_eq!(levenshtein(&long_c, &c), 65);
}

#[test]
fn normalised_distance_values() {
    assert_eq!(normalized_levenshtein(b"", b""), 0.0);
    assert_eq!(normalized_levenshtein(b"ACD", b"EFG"), 1.0);
    assert_eq!(normalized_levenshtein(b"AAAA", b"CCC"), 1.0);
    assert_eq!(normalized_levenshtein(b"", b"W"), 1.0);
    assert_eq!(normalized_levenshtein(b"kitten", b"sitting"), 3.0 / 7.0);
}

#[test]
fn collapsed_list_has_zero_diversity() {
    let seqs: Vec<&[u8]> = vec![b"ACDEFGHIK"; 50];
    assert_eq!(mean_pairwise_distance(&seqs), 0.0);
    assert_eq!(mean_pairwise_distance_unique(&seqs), 0.0);
    assert!(close(unique_ratio(&seqs), 1.0 / 50.0));
    // One outlier among 49 copies: 49 of the 1225 pairs are at distance 1.
    let mut one_off = seqs.clone();
    one_off[10] = b"WWWWWWWWW";
    assert!(close(mean_pairwise_distance(&one_off), 49.0 / 1225.0));
    assert_eq!(mean_pairwise_distance_unique(&one_off), 1.0);
    assert!(close(unique_ratio(&one_off), 2.0 / 50.0));
}

#[test]
fn pairwise_hand_values_and_degenerate_lists() {
    let seqs: Vec<&[u8]> = vec![b"AAA", b"AAA", b"CCC"];
    assert!(close(mean_pairwise_distance(&seqs), 2.0 / 3.0));
    assert_eq!(mean_pairwise_distance_unique(&seqs), 1.0);
    assert_eq!(unique_sequences(&seqs), vec![b"AAA" as &[u8], b"CCC"]);
    assert_eq!(mean_pairwise_distance(&[]), 0.0);
    assert_eq!(mean_pairwise_distance(&[b"ACD"]), 0.0);
    assert_eq!(mean_pairwise_distance(&[b"", b""]), 0.0);
    assert_eq!(unique_ratio(&[]), 0.0);
    assert_eq!(unique_ratio(&[b"A", b"C", b"D"]), 1.0);
}

#[test]
fn large_lists_use_the_strided_subsample() {
    let mut rng = XorShift(7);
    let n = 2500;
    let seqs = rng.peptides(n, 12);
    let r = refs(&seqs);
    let sub = pairwise_subsample(&r);
    assert_eq!(sub.len(), PAIRWISE_MAX_SEQS);
    assert_eq!(sub[0], r[0]);
    assert_eq!(sub[1], r[2]); // floor(1 * 2500 / 1000)
    assert_eq!(sub[999], r[2497]); // floor(999 * 2500 / 1000)
    let got = mean_pairwise_distance(&r);
    assert!(close(got, naive_mean_pairwise(&sub)));
    assert_eq!(got, mean_pairwise_distance(&r)); // deterministic
    assert_eq!(pairwise_subsample(&r[..PAIRWISE_MAX_SEQS]).len(), PAIRWISE_MAX_SEQS);
}

#[test]
fn mean_pairwise_1000_by_30_matches_plain_dp() {
    // (its speed is measured by `cargo run --release --example bench -- metrics`, not here)
    let mut rng = XorShift(42);
    let seqs = rng.peptides(1000, 30);
    let r = refs(&seqs);
    let d = mean_pairwise_distance(&r);
    assert!(close(d, naive_mean_pairwise(&r)));
    // Uniform random peptides of length 30 sit far apart (roughly 0.8 normalised).
    assert!(d > 0.6 && d < 0.95, "{d}");
}

#[test]
fn modes_count_distinct_sequences_above_threshold() {
    let seqs: Vec<&[u8]> = vec![b"AA", b"AA", b"CC", b"DD", b"EE"];
    let rewards = [0.9, 0.9, 0.5, f64::NAN, 0.7];
    assert_eq!(modes_above(&seqs, &rewards, 0.7), 2); // AA (twice) and EE (== threshold)
    assert_eq!(modes_above(&seqs, &rewards, 0.0), 3); // NaN never counts
    assert_eq!(modes_above(&seqs, &rewards[..1], 0.0), 1); // extra sequences ignored
    assert_eq!(modes_above(&seqs, &rewards, 1.0), 0);
}

#[test]
fn leader_clustering_on_a_hand_built_example() {
    // Two families of near-identical 10-mers plus a singleton, best first.
    let seqs: Vec<&[u8]> = vec![
        b"AAAAAAAAAA",
        b"CCCCCCCCCC",
        b"AAAAAAAAAC", // 0.1 from the first leader
        b"CCCCCCCCAA", // 0.2 from the second leader
        b"GGGGGGGGGG",
        b"AAAAAAAAAA", // duplicate
    ];
    assert_eq!(clusters_at_radius(&seqs, 0.2), 3);
    assert_eq!(clusters_at_radius(&seqs, 0.1), 4); // CCCCCCCCAA now founds its own
    assert_eq!(clusters_at_radius(&seqs, 0.0), 5); // only the duplicate joins
    assert_eq!(clusters_at_radius(&seqs, -1.0), 6);
    assert_eq!(clusters_at_radius(&seqs, 1.0), 1);
    assert_eq!(clusters_at_radius(&[], 0.5), 0);
    // Leaders are fixed, so order matters on a chain A - B - C (A-B, B-C = 0.2; A-C = 0.4).
    let (a, b, c): (&[u8], &[u8], &[u8]) = (b"AAAAAAAAAA", b"AAAAAAAACC", b"AAAAAACCCC");
    assert_eq!(clusters_at_radius(&[a, b, c], 0.2), 2);
    assert_eq!(clusters_at_radius(&[b, a, c], 0.2), 1);
}

#[test]
fn composition_and_reference() {
    let seqs: Vec<&[u8]> = vec![b"AAC", b"CX", b""];
    assert_eq!(composition(&seqs, b"AC"), vec![0.5, 0.5]);
    assert_eq!(composition(&seqs, b"CAD"), vec![0.5, 0.5, 0.0]);
    assert_eq!(composition(&[b"XYZ"], b"AC"), vec![0.0, 0.0]);
    let sum: f64 = UNIPROT_COMPOSITION.iter().sum();
    assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    assert!(UNIPROT_COMPOSITION.iter().all(|&f| f > 0.005 && f < 0.2));
    // Leucine the most common residue, tryptophan the rarest.
    let idx = |c: u8| AMINO_ACIDS.iter().position(|&a| a == c).unwrap();
    let max = UNIPROT_COMPOSITION.iter().cloned().fold(0.0, f64::max);
    let min = UNIPROT_COMPOSITION.iter().cloned().fold(1.0, f64::min);
    assert_eq!(UNIPROT_COMPOSITION[idx(b'L')], max);
    assert_eq!(UNIPROT_COMPOSITION[idx(b'W')], min);
    assert_eq!(
        reference_composition(AMINO_ACIDS).unwrap(),
        UNIPROT_COMPOSITION.to_vec()
    );
    let lw = reference_composition(b"LW").unwrap();
    assert!(close(lw[0] + lw[1], 1.0) && close(lw[0] / lw[1], 9.65 / 1.10));
    assert_eq!(reference_composition(b"AB"), None);
    assert_eq!(reference_composition(b""), None);
}

#[test]
fn kl_hand_values() {
    let p = [0.5, 0.5];
    assert_eq!(kl_divergence(&p, &p), 0.0);
    assert!(close(kl_divergence(&[1.0, 0.0], &p), std::f64::consts::LN_2));
    // A zero in q is floored, not infinite.
    let kl = kl_divergence(&p, &[1.0, 0.0]);
    assert!(kl.is_finite() && kl > 5.0, "{kl}");
    // A sample made of leucine only, against UniProt: ln(1 / f_L).
    let all_l: Vec<&[u8]> = vec![b"LLLL"; 3];
    let comp = composition(&all_l, AMINO_ACIDS);
    let l = UNIPROT_COMPOSITION[AMINO_ACIDS.iter().position(|&a| a == b'L').unwrap()];
    assert!(close(kl_divergence(&comp, &UNIPROT_COMPOSITION), -(l.ln())));
}

#[test]
fn length_histograms() {
    let seqs: Vec<&[u8]> = vec![b"", b"A", b"AC", b"AC", b"ACDEFG"];
    assert_eq!(length_histogram(&seqs, 3), vec![1, 1, 2, 1]); // 6 lands in the "3 or more" bin
    assert_eq!(length_histogram(&[], 2), vec![0, 0, 0]);
    assert_eq!(histogram(&[0, 1, 1, 5, 9], 5), vec![1, 2, 0, 0, 0, 2]);
    assert_eq!(histogram(&[3], 0), vec![1]);
}

/// The clustering sees the distinct qualifying sequences best reward first.
/// `AAAA`, `AACC`, `CCCC` at radius 0.5: `AACC` as the first leader takes
/// both others (distance 0.5 each); `AAAA` first leaves `CCCC` (distance 1)
/// to found a second cluster.
#[test]
fn sequence_report_clusters_by_each_sequences_best_reward_then_first_occurrence() {
    let (x, y, z): (&[u8], &[u8], &[u8]) = (b"AAAA", b"AACC", b"CCCC");
    let report = |seqs: &[&[u8]], rewards: &[f64]| sequence_report(seqs, rewards, 0.0, 0.5, AMINO_ACIDS, 4).clusters;
    // AACC's best reward (0.9, its second draw) ranks it first.
    assert_eq!(report(&[x, y, z, y], &[0.8, 0.5, 0.4, 0.9]), 1);
    assert_eq!(report(&[x, y, z, y], &[0.8, 0.5, 0.4, 0.6]), 2);
    // Equal rewards: the order of first occurrence.
    assert_eq!(report(&[y, x, z], &[0.5, 0.5, 0.5]), 1);
    assert_eq!(report(&[x, y, z], &[0.5, 0.5, 0.5]), 2);
}

#[test]
fn composition_counts_a_repeated_letter_at_its_first_position() {
    assert_eq!(composition(&[b"AAC"], b"ACA"), vec![2.0 / 3.0, 1.0 / 3.0, 0.0]);
}

#[test]
fn sequence_report_bundles_the_metrics() {
    let seqs: Vec<&[u8]> = vec![b"AAAAAAAAAA", b"AAAAAAAAAC", b"AAAAAAAAAA", b"CCCCCCCCCC", b"DDDDD"];
    let rewards = [0.9, 0.8, 0.9, 0.95, 0.1];
    let rep = sequence_report(&seqs, &rewards, 0.5, 0.2, AMINO_ACIDS, 12);
    assert_eq!(rep.n, 5);
    assert!(close(rep.unique_ratio, 4.0 / 5.0));
    assert!(close(rep.diversity, naive_mean_pairwise(&seqs)));
    assert!(close(
        rep.diversity_unique,
        mean_pairwise_distance(&unique_sequences(&seqs))
    ));
    assert!(rep.diversity < rep.diversity_unique);
    assert_eq!(rep.modes_above_threshold, 3); // A10, A9C, C10
    assert_eq!(rep.clusters, 2); // {C10}, {A10, A9C}
    assert_eq!(rep.length_histogram.len(), 13);
    assert_eq!(rep.length_histogram[10], 4);
    assert_eq!(rep.length_histogram[5], 1);
    let kl = rep.composition_kl.unwrap();
    assert!(kl > 0.0 && kl.is_finite());
    let json = serde_json::to_value(&rep).unwrap();
    for key in [
        "n",
        "unique_ratio",
        "diversity",
        "diversity_unique",
        "modes_above_threshold",
        "clusters",
        "composition_kl",
        "length_histogram",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    // Non-amino-acid alphabet: no reference, so no KL (serialised as null).
    let bits = sequence_report(&[b"0101", b"0011"], &[1.0, 1.0], 0.5, 0.3, b"01", 4);
    assert_eq!(bits.composition_kl, None);
    assert_eq!(bits.clusters, 2); // distance 2/4 = 0.5 > 0.3
    assert_eq!(
        serde_json::to_value(&bits).unwrap()["composition_kl"],
        serde_json::Value::Null
    );
    // Empty sample: all zeros, nothing NaN.
    let empty = sequence_report(&[], &[], 0.0, 0.1, AMINO_ACIDS, 3);
    assert_eq!(
        (empty.n, empty.unique_ratio, empty.diversity, empty.clusters),
        (0, 0.0, 0.0, 0)
    );
    assert_eq!(empty.composition_kl, None);
    assert_eq!(empty.length_histogram, vec![0; 4]);
}

#[test]
fn correlation_and_slope() {
    let x: Vec<f64> = (0..20).map(|i| i as f64 * 0.37 - 2.0).collect();
    let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    let anti: Vec<f64> = x.iter().map(|v| -3.0 * v + 0.5).collect();
    assert!(close(pearson(&x, &y).unwrap(), 1.0));
    assert!(close(pearson(&x, &anti).unwrap(), -1.0));
    assert!(close(spearman(&x, &anti).unwrap(), -1.0));
    assert!(close(ols_slope(&x, &y).unwrap(), 2.0));
    assert!(close(ols_slope(&x, &anti).unwrap(), -3.0));
    // Degenerate inputs.
    let constant = vec![0.1; 20];
    assert_eq!(pearson(&x, &constant), None);
    assert_eq!(pearson(&constant, &x), None);
    assert_eq!(spearman(&x, &constant), None);
    assert_eq!(ols_slope(&constant, &x), None);
    assert_eq!(ols_slope(&x, &constant), Some(0.0));
    assert_eq!(pearson(&[1.0], &[2.0]), None);
    assert_eq!(pearson(&x, &y[..5]), None);
    assert_eq!(ols_slope(&[], &[]), None);
    // Hand value with a tie: ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4] give 4.5 / sqrt(4.5 * 5).
    assert_eq!(average_ranks(&[10.0, 20.0, 20.0, 30.0]), vec![1.0, 2.5, 2.5, 4.0]);
    let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(close(rho, 4.5 / (4.5f64 * 5.0).sqrt()));
    // Pearson hand value: x = [1, 2, 3], y = [1, 3, 2] -> 0.5.
    assert!(close(pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]).unwrap(), 0.5));
}

#[test]
fn location_and_spread() {
    assert_eq!(mean(&[]), None);
    assert_eq!(std(&[]), None);
    assert_eq!(median(&[]), None);
    assert_eq!(quantile(&[], 0.5), None);
    assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    assert_eq!(std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), Some(2.0));
    assert_eq!(std(&[3.5]), Some(0.0));
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(quantile(&[5.0, 1.0, 4.0, 2.0, 3.0], 0.25), Some(2.0));
    assert!(close(quantile(&[40.0, 10.0, 30.0, 20.0], 0.1).unwrap(), 13.0)); // h = 0.3
    assert!(close(quantile(&[40.0, 10.0, 30.0, 20.0], 0.9).unwrap(), 37.0)); // h = 2.7
    assert_eq!(quantile(&[40.0, 10.0, 30.0], 0.0), Some(10.0));
    assert_eq!(quantile(&[40.0, 10.0, 30.0], 1.0), Some(40.0));
    assert_eq!(quantile(&[40.0, 10.0, 30.0], 7.0), Some(40.0)); // clamped
    assert_eq!(quantile(&[40.0, 10.0, 30.0], f64::NAN), None);
    assert_eq!(quantile(&[8.0], 0.3), Some(8.0));
}

#[test]
fn top_fraction() {
    let v: Vec<f64> = [7.0, 1.0, 10.0, 3.0, 9.0, 2.0, 8.0, 5.0, 4.0, 6.0].to_vec();
    assert_eq!(top_fraction_mean(&v, 0.1), Some(10.0));
    assert_eq!(top_fraction_mean(&v, 0.3), Some(9.0)); // 0.3 * 10 must not round up to 4
    assert_eq!(top_fraction_mean(&v, 0.25), Some(9.0)); // ceil(2.5) = 3
    assert_eq!(top_fraction_mean(&v, 0.0), Some(10.0)); // at least one value
    assert_eq!(top_fraction_mean(&v, 1.0), Some(5.5));
    assert_eq!(top_fraction_mean(&v, 3.0), Some(5.5));
    assert_eq!(top_fraction_mean(&[], 0.1), None);
    assert_eq!(top_fraction_mean(&v, f64::NAN), None);
}
