//! The bit-sequence environment: masks, trajectory length, uniform `P_B`,
//! the reward and its mode set, the modes-found counter, bad parameters, and a
//! short training run.

use gflownet::env::{BitSequence, BitSequenceReward, BitSequenceState, Environment, LogReward};
use gflownet::nn::ParamStore;
use gflownet::policy::{Policy, PolicyConfig};
use gflownet::rng;
use gflownet::sampler::{Exploration, Sampler};
use gflownet::train::{objective_from_flags, TrainConfig, Trainer};
use gflownet::Error;
use rand::Rng;

fn policy_for(env: &BitSequence, seed: u64) -> (Policy, ParamStore<f32>) {
    let cfg = PolicyConfig {
        hidden: vec![16],
        ..PolicyConfig::default()
    };
    let mut store = ParamStore::new();
    let policy = Policy::new(env, &cfg, &mut store, &mut rng::stream(seed, rng::streams::INIT)).unwrap();
    (policy, store)
}

/// Random complete strings of `env`.
fn random_objects(env: &BitSequence, n: usize, seed: u64) -> Vec<BitSequenceState> {
    let mut r = rng::stream(seed, rng::streams::EVAL);
    (0..n)
        .map(|_| {
            let words: Vec<u16> = (0..env.slots()).map(|_| r.gen_range(0..env.words() as u16)).collect();
            env.object(&words)
        })
        .collect()
}

#[test]
fn masks_allow_exactly_the_empty_slots() {
    let env = BitSequence::new(120, 8).unwrap();
    assert_eq!(env.n_actions(), 15 * 256 + 1);
    let mut r = rng::stream(3, rng::streams::EVAL);
    let mut s = env.initial_state();
    let mut mask = vec![false; env.n_actions()];
    let mut bmask = vec![false; env.n_backward_actions()];
    for filled in 0..=15 {
        env.forward_mask(&s, &mut mask);
        env.backward_mask(&s, &mut bmask);
        for (a, &m) in mask.iter().enumerate().take(env.stop()) {
            assert_eq!(m, s.words[a / 256].is_none(), "{filled} filled, action {a}");
        }
        assert_eq!(mask[env.stop()], filled == 15, "STOP with {filled} filled");
        for (slot, &m) in bmask.iter().enumerate() {
            assert_eq!(m, s.words[slot].is_some(), "{filled} filled, backward action {slot}");
        }
        if filled == 15 {
            break;
        }
        let valid: Vec<usize> = (0..env.stop()).filter(|&a| mask[a]).collect();
        let a = valid[r.gen_range(0..valid.len())];
        let next = env.step(&s, a);
        // the backward step undoes the forward one
        assert_eq!(env.backward_step(&next, env.backward_action(&s, a)), (s.clone(), a));
        s = next;
    }
    let x = env.step(&s, env.stop());
    assert!(env.is_terminal(&x) && env.unterminate(&x) == (s, env.stop()));
    env.forward_mask(&x, &mut mask);
    assert!(mask.iter().all(|&m| !m), "a terminal state has no action");
}

#[test]
fn trajectories_have_15_steps_and_uniform_pb_of_minus_log_filled() {
    let env = BitSequence::new(120, 8).unwrap();
    let (policy, store) = policy_for(&env, 1);
    let explore = Exploration {
        temperature: 1.0,
        epsilon: 0.5,
    };
    let mut sampler = Sampler::new(7);
    let fwd = sampler.sample(&env, &policy, &store, 8, explore);
    let bwd = sampler.sample_backward(&env, &policy, &store, &fwd.terminals);
    for t in [&fwd, &bwd] {
        assert_eq!(t.len(), 8);
        for (b, w) in t.offsets.windows(2).enumerate() {
            // 15 slot fills, then the forced STOP
            assert_eq!(w[1] - w[0], 16, "trajectory {b}");
            for k in 0..15 {
                let r = w[0] + k;
                assert!(t.actions[r] < env.stop(), "row {r} fills a slot");
                let want = -((k + 1) as f64).ln();
                assert!(
                    (t.log_pb[r] as f64 - want).abs() < 1e-6,
                    "trajectory {b}, fill {}: log P_B {} != {want}",
                    k + 1,
                    t.log_pb[r]
                );
            }
            assert_eq!(t.actions[w[1] - 1], env.stop());
            assert_eq!(t.log_pb[w[1] - 1], 0.0);
            assert!(t.log_pf[w[1] - 1].abs() < 1e-6, "STOP is forced: log P_F = 0");
        }
        let ln_15_factorial: f64 = (1..=15).map(|i| (i as f64).ln()).sum();
        for s in t.sum_log_pb() {
            assert!((s + ln_15_factorial).abs() < 1e-4, "sum log P_B {s}");
        }
    }
    assert_eq!(fwd.terminals, bwd.terminals);
}

#[test]
fn reward_is_minus_twice_the_distance_to_the_nearest_mode() {
    let env = BitSequence::new(120, 8).unwrap();
    let mut reward = BitSequenceReward::new(&env, 60, 0).unwrap();
    // every mode has log R = 0, and is made of the five words
    let vocab = BitSequenceReward::vocabulary(8);
    assert_eq!(vocab, [0b0000_0000, 0b1111_1111, 0b1111_0000, 0b0000_1111, 0b0011_1100]);
    let modes: Vec<BitSequenceState> = reward
        .modes
        .iter()
        .map(|&m| {
            let words: Vec<u16> = (0..15).rev().map(|i| ((m >> (8 * i)) & 0xff) as u16).collect();
            assert!(words.iter().all(|w| vocab.contains(w)), "{words:?}");
            env.object(&words)
        })
        .collect();
    assert!(reward.log_rewards(&modes).unwrap().iter().all(|&l| l == 0.0));

    // by hand: modes 0^120 and 1^120; x has d ones, so it is d from the first and 120 - d from the second
    let mut two = BitSequenceReward {
        env: env.clone(),
        modes: vec![0, (1u128 << 120) - 1],
    };
    for d in [0usize, 1, 7, 8, 9, 33, 59, 60, 61, 100, 120] {
        let mut words = vec![0u16; 15];
        for p in 0..d {
            words[p / 8] |= 1 << (7 - p % 8);
        }
        let x = env.object(&words);
        assert_eq!(env.describe(&x).matches('1').count(), d);
        let want = -2.0 * d.min(120 - d) as f64;
        assert_eq!(two.log_rewards(&[x]).unwrap(), vec![want], "d = {d}");
    }
    // an incomplete string is refused, not scored
    let err = two.log_rewards(&[env.initial_state()]).unwrap_err();
    assert!(err.to_string().contains("empty slot"), "{err}");
}

#[test]
fn mode_sets_are_deterministic_per_seed() {
    let env = BitSequence::new(120, 8).unwrap();
    let a = BitSequenceReward::new(&env, 60, 5).unwrap().modes;
    assert_eq!(a.len(), 60);
    assert_eq!(a, BitSequenceReward::new(&env, 60, 5).unwrap().modes);
    assert_ne!(a, BitSequenceReward::new(&env, 60, 6).unwrap().modes);
    let distinct: std::collections::HashSet<u128> = a.iter().copied().collect();
    assert!(distinct.len() > 50, "modes are drawn, not repeated: {}", distinct.len());
}

#[test]
fn modes_found_matches_a_brute_force_count() {
    let env = BitSequence::new(24, 4).unwrap();
    let reward = BitSequenceReward::new(&env, 12, 1).unwrap();
    let xs = random_objects(&env, 40, 2);
    let mode_strings: Vec<String> = reward.modes.iter().map(|m| format!("{m:024b}")).collect();
    let mut partial = 0;
    for radius in 0..=24u32 {
        let brute = mode_strings
            .iter()
            .filter(|m| {
                xs.iter().any(|x| {
                    let d = env.describe(x).bytes().zip(m.bytes()).filter(|(a, b)| a != b).count();
                    d as u32 <= radius
                })
            })
            .count();
        // in two halves, to check that the flags accumulate
        let mut found = vec![false; 12];
        reward.mark_found(&xs[..20], radius, &mut found).unwrap();
        let n = reward.mark_found(&xs[20..], radius, &mut found).unwrap();
        assert_eq!(n, brute, "radius {radius}");
        partial += (0 < n && n < 12) as usize;
    }
    assert!(partial > 0, "some radius separates found from missed modes");
}

#[test]
fn invalid_lengths_are_refused_naming_the_cause() {
    for (n, k, option, phrase) in [
        (120, 7, "`n`", "multiple of k = 7"),
        (120, 1, "`k`", "[2, 16]"),
        (120, 17, "`k`", "[2, 16]"),
        (256, 8, "`n`", "u128"),
        (0, 8, "`n`", "got 0"),
        (4, 8, "`n`", "got 4"),
    ] {
        let err = BitSequence::new(n, k).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "n = {n}, k = {k}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(option) && msg.contains(phrase), "n = {n}, k = {k}: {msg}");
    }
    let env = BitSequence::new(24, 4).unwrap();
    assert!(BitSequenceReward::new(&env, 0, 0)
        .unwrap_err()
        .to_string()
        .contains("n_modes"));
}

#[test]
fn short_training_raises_the_mean_log_reward() {
    // a small instance (6 slots of 4 bits, 8 modes) so that it takes seconds
    let env = BitSequence::new(24, 4).unwrap();
    let reward = BitSequenceReward::new(&env, 8, 0).unwrap();
    let mut cfg = TrainConfig::hypergrid_default(2, 2);
    cfg.batch = 16;
    cfg.policy.hidden = vec![32, 32];
    cfg.objective = objective_from_flags("tb", "squared", None, None, "none").unwrap();
    let mut trainer = Trainer::new(cfg, env, reward).unwrap();
    let log_r: Vec<f64> = (0..600).map(|_| trainer.train_step().unwrap().mean_log_r).collect();
    let first = log_r[..50].iter().sum::<f64>() / 50.0;
    let last = log_r[550..].iter().sum::<f64>() / 50.0;
    // a uniform policy is about 8.5 bits from its nearest mode, the target R / Z about 3
    assert!(last > first + 4.0, "mean log R {first:.2} -> {last:.2}");
    assert!(last > -10.0, "mean log R at the end {last:.2}");
}

#[test]
fn the_encoding_is_one_hot_per_filled_slot() {
    // 8 bits in slots of 4: column slot * 16 + word, by either encoding
    let env = BitSequence::new(8, 4).unwrap();
    for (words, want) in [
        (vec![None, Some(5)], vec![21u32]),
        (vec![Some(3), Some(5)], vec![3, 21]),
        (vec![Some(5), None], vec![5]),
    ] {
        let s = BitSequenceState { words, done: false };
        let mut sparse = gflownet::nn::Csr::new(env.feature_dim());
        env.encode_sparse(&s, &mut sparse);
        assert_eq!(sparse.row(0).0, want.as_slice(), "{s:?}");
        let mut dense = vec![0f32; env.feature_dim()];
        env.encode(&s, &mut dense);
        let dense_ones: Vec<u32> = (0..32).filter(|&j| dense[j as usize] == 1.0).collect();
        assert_eq!(dense_ones, want, "{s:?}");
    }
}
