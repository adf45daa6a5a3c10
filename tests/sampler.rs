//! Environments, policy heads, sampling and exact distributions.

use gflownet::autodiff::Tape;
use gflownet::env::{Environment, HyperGrid, HyperGridReward, HyperGridState, Peptide};
use gflownet::metrics::exact_terminal_distribution;
use gflownet::nn::{Activation, Csr, ParamStore};
use gflownet::policy::{BackwardPolicy, Policy, PolicyConfig};
use gflownet::rng;
use gflownet::sampler::{Exploration, Sampler, Trajectories};
use proptest::prelude::*;
use std::collections::HashMap;

fn policy_for<E: Environment>(env: &E, seed: u64, backward: BackwardPolicy, scale: f32) -> (Policy, ParamStore<f32>) {
    let cfg = PolicyConfig {
        hidden: vec![32, 32],
        activation: Activation::LeakyRelu(0.01),
        backward,
        log_f: true,
        ..PolicyConfig::default()
    };
    let (policy, mut store) = built(env, &cfg, seed);
    // sharpen the random policy so masks matter
    for p in store.iter_mut() {
        p.value.mapv_inplace(|v| v * scale);
    }
    (policy, store)
}

/// A policy with `cfg` on `env`, its weights from stream `seed`.
fn built<E: Environment>(env: &E, cfg: &PolicyConfig, seed: u64) -> (Policy, ParamStore<f32>) {
    let mut store = ParamStore::new();
    let policy = Policy::new(env, cfg, &mut store, &mut rng::stream(seed, rng::streams::INIT)).unwrap();
    (policy, store)
}

fn bits(a: &ndarray::Array2<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// The bits of every array of `a`: the trunk's, a separate trunk's, the heads'.
fn all_bits(a: &gflownet::policy::Activations) -> Vec<Vec<u32>> {
    let mut v: Vec<_> = a.trunk.iter().chain(a.aux.iter().flatten()).map(bits).collect();
    v.extend(
        [Some(&a.pf), a.pb.as_ref(), a.log_f.as_ref()]
            .into_iter()
            .flatten()
            .map(bits),
    );
    v
}

/// Every recorded action was valid at its state; rows are consistent.
fn assert_valid<S>(t: &Trajectories<S>) -> Result<(), TestCaseError> {
    for (r, &a) in t.actions.iter().enumerate() {
        prop_assert!(t.forward_masks[[r, a]], "row {r}: masked action {a} taken");
        prop_assert!(
            t.log_pf[r].is_finite() && t.log_pf[r] <= 1e-6,
            "row {r}: log_pf {}",
            t.log_pf[r]
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn masked_actions_are_never_sampled(seed in 0u64..10_000, eps in 0.0f64..=1.0, temp in 0.05f64..5.0,
                                        scale in 0.5f32..20.0, min_len in 1usize..6, extra in 0usize..6) {
        let explore = Exploration { temperature: temp, epsilon: eps };
        let pep = Peptide::new(min_len, min_len + extra).unwrap();
        let (policy, store) = policy_for(&pep, seed, BackwardPolicy::Uniform, scale);
        let t = Sampler::new(seed).sample(&pep, &policy, &store, 16, explore);
        assert_valid(&t)?;
        for x in &t.terminals {
            prop_assert!(x.done && (pep.min_len..=pep.max_len).contains(&x.residues.len()), "{x:?}");
        }
        let grid = HyperGrid::new(3, 4).unwrap();
        let (policy, store) = policy_for(&grid, seed, BackwardPolicy::Learned, scale);
        let t = Sampler::new(seed).sample(&grid, &policy, &store, 16, explore);
        assert_valid(&t)?;
        for x in &t.terminals {
            prop_assert!(x.done && x.coords.iter().all(|&c| c < 4));
        }
    }
}

/// Brute force: the probability of ending at each grid point under a uniform
/// P_F, summing over every trajectory explicitly.
fn brute_force_uniform(grid: &HyperGrid) -> HashMap<Vec<usize>, f64> {
    fn walk(grid: &HyperGrid, s: &HyperGridState, p: f64, out: &mut HashMap<Vec<usize>, f64>) {
        let mut mask = vec![false; grid.n_actions()];
        grid.forward_mask(s, &mut mask);
        let n = mask.iter().filter(|&&m| m).count() as f64;
        for a in (0..mask.len()).filter(|&a| mask[a]) {
            let next = grid.step(s, a);
            if next.done {
                *out.entry(next.coords.clone()).or_default() += p / n;
            } else {
                walk(grid, &next, p / n, out);
            }
        }
    }
    let mut out = HashMap::new();
    walk(grid, &grid.initial_state(), 1.0, &mut out);
    out
}

#[test]
fn exact_distribution_sums_to_one_and_matches_brute_force() {
    let grid = HyperGrid::new(2, 4).unwrap();
    let mut reward = HyperGridReward::standard(4);
    // a uniform P_F: zero every weight so all logits are 0
    let (policy, mut store) = policy_for(&grid, 3, BackwardPolicy::Uniform, 1.0);
    for p in store.iter_mut() {
        p.value.fill(0.0);
    }
    let exact = exact_terminal_distribution(&grid, &policy, &store, &mut reward)
        .unwrap()
        .unwrap();
    let total: f64 = exact.p_model.iter().sum();
    assert!((total - 1.0).abs() < 1e-9, "P_T sums to {total}");
    assert_eq!(exact.terminals.len(), 16);
    let brute = brute_force_uniform(&grid);
    for (x, &p) in exact.terminals.iter().zip(&exact.p_model) {
        assert!(
            (brute[&x.coords] - p).abs() < 1e-12,
            "{x:?}: {p} vs {}",
            brute[&x.coords]
        );
    }
    // closed form at the origin: three valid actions (increment x, increment y, exit), so P_T = 1/3
    let origin = exact.terminals.iter().position(|x| x.coords == vec![0, 0]).unwrap();
    assert!((exact.p_model[origin] - 1.0 / 3.0).abs() < 1e-12);
    // and for a random policy the sum is still 1
    let (policy, store) = policy_for(&grid, 5, BackwardPolicy::Uniform, 5.0);
    let exact = exact_terminal_distribution(&grid, &policy, &store, &mut reward)
        .unwrap()
        .unwrap();
    assert!((exact.p_model.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    // target: true log Z of the standard reward by direct summation
    let z: f64 = (0..4)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| reward.reward(&[i, j]))
        .sum();
    assert!((exact.true_log_z - z.ln()).abs() < 1e-12);
}

#[test]
fn peptide_exact_distribution_sums_to_one() {
    let pep = Peptide::with_alphabet(b"ACD", 1, 4).unwrap();
    let (policy, store) = policy_for(&pep, 9, BackwardPolicy::Uniform, 3.0);
    let mut reward = |xs: &[gflownet::env::PeptideState]| Ok(xs.iter().map(|x| x.residues.len() as f64).collect());
    let exact = exact_terminal_distribution(&pep, &policy, &store, &mut reward)
        .unwrap()
        .unwrap();
    assert_eq!(exact.terminals.len(), 3 + 9 + 27 + 81);
    assert!((exact.p_model.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn empirical_frequencies_converge_to_exact() {
    // 20,000 samples over 16 terminals: the expected L1 (sum convention) is
    // about sum_x sqrt(2 p_x (1-p_x) / (pi N)) ~ 0.02; we allow 0.05.
    let grid = HyperGrid::new(2, 4).unwrap();
    let mut reward = HyperGridReward::standard(4);
    let (policy, store) = policy_for(&grid, 11, BackwardPolicy::Uniform, 3.0);
    let exact = exact_terminal_distribution(&grid, &policy, &store, &mut reward)
        .unwrap()
        .unwrap();
    let mut sampler = Sampler::new(1);
    let mut samples = Vec::new();
    for _ in 0..40 {
        samples.extend(
            sampler
                .sample(&grid, &policy, &store, 500, Exploration::ON_POLICY)
                .terminals,
        );
    }
    let freq = gflownet::metrics::empirical_distribution(&exact.terminals, &samples);
    let l1: f64 = freq.iter().zip(&exact.p_model).map(|(a, b)| (a - b).abs()).sum();
    assert!(l1 < 0.05, "empirical L1 to exact P_T = {l1}");
}

#[test]
fn the_sampler_draws_at_the_exploration_temperature_and_epsilon() {
    // P_F's logits are its head's bias alone: at s_0 of a 2-D grid, actions
    // (up 0, up 1, stop) with logits (0, 2 ln 2, 2 ln 5) weigh 1 : 2 : 5 at
    // temperature 2; with epsilon 1/4 the first action's probabilities are
    // 3/4 * (1, 2, 5)/8 + 1/4 * 1/3 = (17, 26, 53)/96
    let grid = HyperGrid::new(2, 3).unwrap();
    let cfg = PolicyConfig {
        hidden: vec![8],
        ..PolicyConfig::default()
    };
    let (policy, mut store) = built(&grid, &cfg, 5);
    for p in store.iter_mut() {
        match p.name.as_str() {
            "pf.w" => p.value.fill(0.0),
            "pf.b" => p
                .value
                .assign(&ndarray::arr2(&[[0.0, 2.0 * 2f32.ln(), 2.0 * 5f32.ln()]])),
            _ => {}
        }
    }
    let explore = Exploration {
        temperature: 2.0,
        epsilon: 0.25,
    };
    let n = 30_000;
    let t = Sampler::new(9).sample(&grid, &policy, &store, n, explore);
    let mut counts = [0usize; 3];
    for w in t.offsets.windows(2) {
        counts[t.actions[w[0]]] += 1;
    }
    // a frequency's standard deviation is below 0.003: 3.3 of them allowed
    for (a, want) in [17.0 / 96.0, 26.0 / 96.0, 53.0 / 96.0].into_iter().enumerate() {
        let freq = counts[a] as f64 / n as f64;
        assert!((freq - want).abs() < 0.01, "first action {a}: {freq} vs {want}");
    }
    // the recorded log P_F is the policy's own, at temperature 1 and no epsilon
    let own = [0.0, 2.0 * 2f64.ln(), 2.0 * 5f64.ln()];
    let lse = (1.0 + 4.0 + 25.0f64).ln();
    for w in t.offsets.windows(2) {
        let a = t.actions[w[0]];
        assert!(
            (t.log_pf[w[0]] as f64 - (own[a] - lse)).abs() < 1e-6,
            "action {a}: {}",
            t.log_pf[w[0]]
        );
    }
}

#[test]
fn recorded_log_pf_equals_batched_recomputation() {
    let pep = Peptide::default();
    let (policy, store) = policy_for(&pep, 2, BackwardPolicy::Uniform, 2.0);
    let t = Sampler::new(4).sample(
        &pep,
        &policy,
        &store,
        32,
        Exploration {
            temperature: 2.0,
            epsilon: 0.1,
        },
    );
    let mut tape = Tape::<f32>::new();
    let p = store.bind(&mut tape);
    let terms = policy.terms(&mut tape, &p, &t, &vec![0.0; t.len()]);
    let lp = tape.value(terms.log_pf);
    // the tape's log-softmax sums in f64 as the sampler does: the same bits
    for (r, &rec) in t.log_pf.iter().enumerate() {
        assert_eq!(lp[[r, 0]].to_bits(), rec.to_bits(), "row {r}: {} vs {rec}", lp[[r, 0]]);
    }
    // tree: log P_B is exactly 0
    assert!(tape.value(terms.log_pb).iter().all(|&v| v == 0.0));
    assert!(t.log_pb.iter().all(|&v| v == 0.0));
}

#[test]
fn backward_sampling_is_consistent() {
    for backward in [BackwardPolicy::Uniform, BackwardPolicy::Learned] {
        let grid = HyperGrid::new(3, 5).unwrap();
        let (policy, store) = policy_for(&grid, 21, backward, 4.0);
        let mut sampler = Sampler::new(8);
        let fwd = sampler.sample(&grid, &policy, &store, 24, Exploration::ON_POLICY);
        let bwd = sampler.sample_backward(&grid, &policy, &store, &fwd.terminals);
        assert_eq!(bwd.terminals, fwd.terminals);
        // every transition valid; each trajectory ends where it should
        for (r, &a) in bwd.actions.iter().enumerate() {
            assert!(bwd.forward_masks[[r, a]], "{backward:?}: row {r}");
        }
        // recorded log P_B and log P_F, drawn forward (P_B read off each step's
        // batch) and backward, equal the batched recomputation
        for (dir, t) in [("forward", &fwd), ("backward", &bwd)] {
            let mut tape = Tape::<f32>::new();
            let p = store.bind(&mut tape);
            let terms = policy.terms(&mut tape, &p, t, &vec![0.0; t.len()]);
            assert_eq!(t.log_pb.len(), t.n_transitions(), "{backward:?} {dir}");
            for (r, (&pb, &pf)) in t.log_pb.iter().zip(&t.log_pf).enumerate() {
                assert!(
                    (tape.value(terms.log_pb)[[r, 0]] - pb).abs() < 1e-4,
                    "{backward:?} {dir}: log_pb row {r}"
                );
                assert!(
                    (tape.value(terms.log_pf)[[r, 0]] - pf).abs() < 1e-4,
                    "{backward:?} {dir}: log_pf row {r}"
                );
            }
        }
        // uniform P_B of the path: the product over steps of 1/(number of parents)
        if backward == BackwardPolicy::Uniform {
            for (b, w) in bwd.offsets.windows(2).enumerate() {
                let sum: f32 = bwd.log_pb[w[0]..w[1]].iter().sum();
                assert!(sum <= 0.0 && sum.is_finite(), "trajectory {b}");
            }
        }
    }
    // on a tree the backward trajectory is the forward one
    let pep = Peptide::new(2, 6).unwrap();
    let (policy, store) = policy_for(&pep, 1, BackwardPolicy::Uniform, 2.0);
    let mut sampler = Sampler::new(3);
    let fwd = sampler.sample(&pep, &policy, &store, 16, Exploration::ON_POLICY);
    let bwd = sampler.sample_backward(&pep, &policy, &store, &fwd.terminals);
    assert_eq!(fwd.actions, bwd.actions);
    assert_eq!(fwd.offsets, bwd.offsets);
    for (a, b) in fwd.log_pf.iter().zip(&bwd.log_pf) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn sampling_is_seeded_and_batch_independent() {
    let pep = Peptide::new(3, 8).unwrap();
    let (policy, store) = policy_for(&pep, 1, BackwardPolicy::Uniform, 2.0);
    let a = Sampler::new(5).sample(&pep, &policy, &store, 20, Exploration::ON_POLICY);
    let mut s = Sampler::new(5);
    let mut b = s.sample(&pep, &policy, &store, 7, Exploration::ON_POLICY).terminals;
    b.extend(s.sample(&pep, &policy, &store, 13, Exploration::ON_POLICY).terminals);
    assert_eq!(
        a.terminals, b,
        "the same seed gives the same objects however the batch is split"
    );
    let threaded = Sampler::new(5)
        .with_threads(3)
        .sample(&pep, &policy, &store, 20, Exploration::ON_POLICY);
    assert_eq!(
        a.terminals, threaded.terminals,
        "the same objects with 3 worker threads"
    );
    assert_eq!(a.log_pf, threaded.log_pf);
    let c = Sampler::new(6).sample(&pep, &policy, &store, 20, Exploration::ON_POLICY);
    assert_ne!(a.terminals, c.terminals);
}

#[test]
fn peptide_parse_errors_name_the_cause() {
    let pep = Peptide::default();
    let e = pep.parse("ACDEFGHIKLBX").unwrap_err().to_string();
    assert!(e.contains("letter `B` at position 11"), "{e}");
    let e = pep.parse("ACDEF").unwrap_err().to_string();
    assert!(e.contains("length 5 is outside [10, 30]"), "{e}");
    let x = pep.parse("ACDEFGHIKLMNPQ").unwrap();
    assert_eq!(pep.to_string(&x), "ACDEFGHIKLMNPQ");
    assert!(Peptide::new(5, 3).unwrap_err().to_string().contains("max_len"));
    assert!(Peptide::new(0, 3).unwrap_err().to_string().contains("min_len"));
    assert!(Peptide::new(1, 100_000).is_err());
    assert!(HyperGrid::new(0, 4).is_err() && HyperGrid::new(2, 1).is_err());
}

#[test]
fn peptide_masks() {
    let pep = Peptide::new(2, 3).unwrap();
    let mut m = vec![false; 21];
    let s = pep.parse("ACD").unwrap();
    let (s, _) = pep.unterminate(&s);
    pep.forward_mask(&s, &mut m);
    assert!(
        m[20] && m[..20].iter().all(|&v| !v),
        "at max_len STOP is the only valid action"
    );
    let (p, a) = pep.backward_step(&s, 0);
    pep.forward_mask(&p, &mut m);
    assert_eq!(a, 2);
    assert!(m.iter().all(|&v| v));
    let (p, _) = pep.backward_step(&p, 0);
    pep.forward_mask(&p, &mut m);
    assert!(!m[20] && m[..20].iter().all(|&v| v), "below min_len STOP is invalid");
}

#[test]
fn wide_policy_samples_the_same_bits_with_any_thread_count() {
    // products of more and fewer than 16 rows, and an inner dimension above
    // the GEMM's blocking: every row must come out the same however the
    // active rows of a step are split between workers
    let grid = HyperGrid::new(3, 6).unwrap();
    let cfg = PolicyConfig {
        hidden: vec![600, 600],
        ..PolicyConfig::default()
    };
    let mut store = ParamStore::new();
    let policy = Policy::new(&grid, &cfg, &mut store, &mut rng::stream(4, rng::streams::INIT)).unwrap();
    let one = Sampler::new(9).sample(&grid, &policy, &store, 40, Exploration::ON_POLICY);
    for threads in [2, 3] {
        let many = Sampler::new(9)
            .with_threads(threads)
            .sample(&grid, &policy, &store, 40, Exploration::ON_POLICY);
        assert_eq!(one.actions, many.actions, "{threads} threads");
        assert_eq!(one.log_pf, many.log_pf, "{threads} threads");
    }
}

#[test]
fn kept_activations_serve_the_training_pass() {
    let grid = HyperGrid::new(3, 5).unwrap();
    for (backward, shared_trunk) in [
        (BackwardPolicy::Uniform, true),
        (BackwardPolicy::Learned, true),
        (BackwardPolicy::Learned, false),
    ] {
        let cfg = PolicyConfig {
            hidden: vec![40, 24],
            activation: Activation::LeakyRelu(0.01),
            backward,
            log_f: true,
            shared_trunk,
            ..PolicyConfig::default()
        };
        let (policy, store) = built(&grid, &cfg, 2);
        let what = format!("{backward:?}, shared trunk {shared_trunk}");
        let mut s = Sampler::new(3);
        let mut t = s.sample_with_activations(&grid, &policy, &store, 12, Exploration::ON_POLICY);
        assert!(s
            .sample(&grid, &policy, &store, 2, Exploration::ON_POLICY)
            .activations
            .is_none());
        // replayed trajectories bring theirs; appended, the rows line up
        let replayed = s.sample_backward(&grid, &policy, &store, &t.terminals[..4]);
        t.append(replayed);
        let kept = t.activations.take().expect("kept");
        assert!(kept.order.is_some(), "kept step by step, not in the transitions' order");
        // kept step by step, they are the bits of one pass over all the rows
        let in_order = kept.clone().in_order();
        assert!(in_order.order.is_none());
        let fresh = policy.activations(&store, &t.features);
        assert_eq!(all_bits(&in_order), all_bits(&fresh), "{what}");
        let log_r: Vec<f64> = (0..t.len()).map(|b| b as f64 * 0.1).collect();
        let run = |acts: Option<gflownet::policy::Activations>| {
            let mut tape = Tape::<f32>::new();
            let p = store.bind(&mut tape);
            let terms = match acts {
                Some(a) => policy.terms_sampled(&mut tape, &p, &t, &log_r, a),
                None => policy.terms(&mut tape, &p, &t, &log_r),
            };
            let parts = [Some(terms.log_pf), Some(terms.log_pb), terms.log_f, terms.entropy];
            let sums: Vec<_> = parts.into_iter().flatten().map(|v| tape.sum(v)).collect();
            let loss = sums[1..].iter().fold(sums[0], |acc, &s| tape.add(acc, s));
            let mut g = tape.backward(loss);
            let grads: Vec<Vec<u32>> = p.grads(&mut g, &store).iter().map(bits).collect();
            (tape.item(loss).to_bits(), grads)
        };
        // the training pass from them in the transitions' order: the loss and
        // gradients of a pass on the tape, bit for bit
        let on_tape = run(None);
        // the sampler kept each row's log-sum-exp (the replayed rows' too), and
        // the training pass's log-probabilities are the recorded ones, bit for bit
        // (the backward logits' too where P_B is learned)
        assert_eq!(kept.lse.as_ref().map(Vec::len), Some(t.n_transitions()), "{what}");
        let learned = backward == BackwardPolicy::Learned;
        let want = learned.then_some(t.n_transitions());
        assert_eq!(kept.pb_lse.as_ref().map(Vec::len), want, "{what}");
        let mut tape = Tape::<f32>::new();
        let p = store.bind(&mut tape);
        let terms = policy.terms_sampled(&mut tape, &p, &t, &log_r, kept.clone());
        for (v, recorded) in [(terms.log_pf, &t.log_pf), (terms.log_pb, &t.log_pb)] {
            let lp = tape.value(v);
            for (r, &rec) in recorded.iter().enumerate() {
                assert_eq!(lp[[r, 0]].to_bits(), rec.to_bits(), "{what}, row {r}");
            }
        }
        assert_eq!(run(Some(in_order)), on_tape, "{what}");
        // in the order they were kept: the same loss; the gradients' sums
        // over the states run in another order, so only their last bits may differ
        let (loss, grads) = run(Some(kept));
        assert_eq!(loss, on_tape.0, "{what}");
        for (g, h) in grads.iter().zip(&on_tape.1) {
            for (&a, &b) in g.iter().zip(h) {
                let (a, b) = (f32::from_bits(a), f32::from_bits(b));
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{what}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn kept_activations_do_not_depend_on_the_thread_count() {
    let grid = HyperGrid::new(3, 6).unwrap();
    let (policy, store) = policy_for(&grid, 5, BackwardPolicy::Learned, 1.0);
    let one = Sampler::new(4).sample_with_activations(&grid, &policy, &store, 30, Exploration::ON_POLICY);
    let three =
        Sampler::new(4)
            .with_threads(3)
            .sample_with_activations(&grid, &policy, &store, 30, Exploration::ON_POLICY);
    let (a, b) = (one.activations.unwrap(), three.activations.unwrap());
    assert_eq!(a.order, b.order);
    assert_eq!(a.lse, b.lse);
    assert_eq!(a.pb_lse, b.pb_lse);
    assert_eq!(a.pf, b.pf);
    assert_eq!(a.trunk, b.trunk);
    assert_eq!(a.pb, b.pb);
    assert_eq!(a.log_f, b.log_f);
}

#[test]
fn kept_peptide_activations_resume_each_state_from_the_last_and_keep_the_bits() {
    // a peptide's encoding grows by one entry a step, so the sampler's first
    // layers add only that entry to the last state's product; with a separate
    // trunk for the flow head, both first layers do
    let env = Peptide::new(3, 9).unwrap();
    for shared_trunk in [true, false] {
        let cfg = PolicyConfig {
            hidden: vec![48, 24],
            log_f: true,
            shared_trunk,
            ..PolicyConfig::default()
        };
        let (policy, store) = built(&env, &cfg, 6);
        for threads in [1, 2] {
            let mut t = Sampler::new(8).with_threads(threads).sample_with_activations(
                &env,
                &policy,
                &store,
                20,
                Exploration::ON_POLICY,
            );
            assert!(t.actions.len() > 3 * 20, "multi-step trajectories");
            let kept = t.activations.take().expect("kept").in_order();
            let fresh = policy.activations(&store, &t.features);
            let what = format!("shared trunk {shared_trunk}, {threads} threads");
            assert_eq!(kept.aux.is_some(), !shared_trunk);
            assert!(kept.log_f.is_some(), "{what}");
            assert_eq!(all_bits(&kept), all_bits(&fresh), "{what}");
        }
    }
}

#[test]
fn flop_counts_follow_the_layer_shapes() {
    // a peptide policy of widths 8 and 16 (P_F only: P_B is uniform on a tree)
    let env = Peptide::new(2, 4).unwrap();
    let cfg = PolicyConfig {
        hidden: vec![8, 16],
        ..PolicyConfig::default()
    };
    let (policy, store) = built(&env, &cfg, 3);
    let t = Sampler::new(1).sample(&env, &policy, &store, 5, Exploration::ON_POLICY);
    let (rows, nnz) = (t.features.nrows() as f64, t.features.indices.len() as f64);
    assert!(rows > 5.0 && nnz > 0.0);
    // per dense row: the second layer and the head; the first layer by its nonzeros
    let dense = 2.0 * 8.0 * 16.0 + 2.0 * 16.0 * env.n_actions() as f64;
    let first = 2.0 * nnz * 8.0;
    assert_eq!(policy.forward_flops(&t.features), first + rows * dense);
    // the backward pass: a weight and an input gradient per layer, but no
    // input gradient for the first layer (its input is the state features)
    assert_eq!(policy.backward_flops(&t.features), 2.0 * rows * dense + first);
}

#[test]
fn backward_sampling_draws_each_parent_with_its_p_b() {
    // (1, 1) has two parents, (0, 1) by backward action 0 and (1, 0) by backward
    // action 1, each with a single parent: P_B(1 | (1, 1)) alone settles the path,
    // and backward action 1 makes the path's first forward step +x (action 0)
    let grid = HyperGrid::new(2, 3).unwrap();
    let x = HyperGridState {
        coords: vec![1, 1],
        done: true,
    };
    for backward in [BackwardPolicy::Uniform, BackwardPolicy::Learned] {
        let (policy, store) = policy_for(&grid, 7, backward, 1.0);
        let want = match backward {
            BackwardPolicy::Uniform => 0.5,
            BackwardPolicy::Learned => {
                // the softmax of the head's two logits at (1, 1), computed apart
                let mut f = Csr::new(grid.feature_dim());
                grid.encode_sparse(&grid.unterminate(&x).0, &mut f);
                let pb = policy.infer(&store, &f).1.unwrap();
                1.0 / (1.0 + (pb[[0, 0]] as f64 - pb[[0, 1]] as f64).exp())
            }
        };
        assert!((0.2..0.8).contains(&want), "{backward:?}: P_B {want} tells little");
        let n = 4000;
        let mut sampler = Sampler::new(2);
        let t = sampler.sample_backward(&grid, &policy, &store, &vec![x.clone(); n]);
        assert_eq!(
            sampler.drawn, n as u64,
            "each trajectory drawn takes a stream key of its own"
        );
        let via_x = t.offsets[..n].iter().filter(|&&o| t.actions[o] == 0).count();
        // the frequency's standard deviation is below 0.008
        let freq = via_x as f64 / n as f64;
        assert!((freq - want).abs() < 0.03, "{backward:?}: {freq} vs P_B {want}");
    }
}

#[test]
fn path_sums_add_every_transition_of_their_trajectory() {
    let pep = Peptide::new(2, 5).unwrap();
    let (policy, store) = policy_for(&pep, 3, BackwardPolicy::Uniform, 2.0);
    let mut t = Sampler::new(1).sample(&pep, &policy, &store, 6, Exploration::ON_POLICY);
    // row r holds r (and -2 r): trajectory b's sum is lo + ... + (hi - 1) over its rows
    t.log_pf = (0..t.n_transitions()).map(|r| r as f32).collect();
    t.log_pb = (0..t.n_transitions()).map(|r| -2.0 * r as f32).collect();
    let (pf, pb) = (t.sum_log_pf(), t.sum_log_pb());
    assert_eq!((pf.len(), pb.len()), (6, 6));
    for b in 0..6 {
        let (lo, hi) = (t.offsets[b], t.offsets[b + 1]);
        assert!(hi - lo >= 3, "two residues at least, then STOP");
        let want = ((lo + hi - 1) * (hi - lo) / 2) as f64;
        assert_eq!((pf[b], pb[b]), (want, -2.0 * want), "trajectory {b}");
    }
}

#[test]
fn kept_activations_give_each_transition_its_own_log_f_and_entropy() {
    // the sampler keeps its rows step after step; the flow head's values and
    // the entropies must come back in the transitions' order, as on the tape
    let grid = HyperGrid::new(2, 5).unwrap();
    let (policy, store) = policy_for(&grid, 4, BackwardPolicy::Uniform, 1.0);
    let mut t = Sampler::new(6).sample_with_activations(&grid, &policy, &store, 6, Exploration::ON_POLICY);
    let kept = t.activations.take().expect("kept");
    let order = kept.order.clone().expect("kept step by step");
    assert!(order.iter().enumerate().any(|(t, &r)| t != r), "another order");
    let log_r = vec![0.0; t.len()];
    let values = |acts: Option<gflownet::policy::Activations>| {
        let mut tape = Tape::<f32>::new();
        let p = store.bind(&mut tape);
        let terms = match acts {
            Some(a) => policy.terms_sampled(&mut tape, &p, &t, &log_r, a),
            None => policy.terms(&mut tape, &p, &t, &log_r),
        };
        let [f, h] = [terms.log_f.unwrap(), terms.entropy.unwrap()].map(|v| bits(tape.value(v)));
        (f, h)
    };
    assert_eq!(values(Some(kept)), values(None));
}

#[test]
fn log_z_starts_at_its_configured_value() {
    let grid = HyperGrid::new(2, 3).unwrap();
    let cfg = PolicyConfig {
        hidden: vec![8],
        log_z_init: 2.5,
        ..PolicyConfig::default()
    };
    let (policy, store) = built(&grid, &cfg, 1);
    assert_eq!(store.value(policy.log_z)[[0, 0]], 2.5);
}

/// The feature columns of `s` holding a 1, by [`Environment::encode_sparse`]
/// and by [`Environment::encode`] (which must agree).
fn ones<E: Environment>(env: &E, s: &E::State) -> Vec<u32> {
    let mut sparse = Csr::new(env.feature_dim());
    env.encode_sparse(s, &mut sparse);
    let mut dense = vec![0f32; env.feature_dim()];
    env.encode(s, &mut dense);
    let cols = sparse.row(0).0.to_vec();
    assert!(sparse.row(0).1.iter().all(|&v| v == 1.0));
    let dense_ones: Vec<u32> = (0..dense.len() as u32).filter(|&j| dense[j as usize] == 1.0).collect();
    assert_eq!(cols, dense_ones);
    assert_eq!(dense.iter().sum::<f32>(), cols.len() as f32);
    cols
}

#[test]
fn encodings_put_their_ones_where_documented() {
    // HyperGrid, height 3: column i * 3 + coords[i]
    let grid = HyperGrid::new(2, 3).unwrap();
    let at = |coords: Vec<usize>| ones(&grid, &HyperGridState { coords, done: false });
    assert_eq!(at(vec![2, 1]), [2, 4]);
    assert_eq!(at(vec![1, 0]), [1, 3]);
    assert_eq!(at(vec![0, 1]), [0, 4]);
    // Peptide over A, C, D: column p * 3 + residue at position p
    let pep = Peptide::with_alphabet(b"ACD", 1, 4).unwrap();
    assert_eq!(ones(&pep, &pep.parse("DA").unwrap()), [2, 3]);
    assert_eq!(ones(&pep, &pep.parse("ACDD").unwrap()), [0, 4, 8, 11]);
}

#[test]
fn terminal_states_have_no_valid_action() {
    let grid = HyperGrid::new(2, 3).unwrap();
    let mut m = vec![true; grid.n_actions()];
    for coords in [vec![0, 0], vec![2, 2], vec![1, 2]] {
        grid.forward_mask(&HyperGridState { coords, done: true }, &mut m);
        assert!(m.iter().all(|&v| !v), "{m:?}");
    }
    let pep = Peptide::new(2, 3).unwrap();
    let mut m = vec![true; pep.n_actions()];
    for x in ["AC", "ACD"] {
        pep.forward_mask(&pep.parse(x).unwrap(), &mut m);
        assert!(m.iter().all(|&v| !v), "{x}");
    }
}
