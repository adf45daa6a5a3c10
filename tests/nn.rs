//! The MLP, Adam/AdamW, clipping, schedules and seeded determinism.

use gflownet::autodiff::Tape;
use gflownet::nn::{Activation, Adam, AdamKind, Bound, GroupConfig, Mlp, ParamStore, Schedule};
use gflownet::rng;
use gflownet::Error;
use ndarray::Array2;
use rand::Rng;

/// Fits y = sin(3 x0) * x1 on 64 seeded points; returns (first loss, last loss, params).
fn fit(seed: u64, steps: usize, kind: AdamKind) -> (f32, f32, ParamStore<f32>) {
    let mut init = rng::stream(seed, rng::streams::INIT);
    let mut data = rng::stream(seed, rng::streams::DATA);
    let mut store = ParamStore::<f32>::new();
    let mlp = Mlp::new(
        &mut store,
        "mlp",
        "net",
        &[2, 32, 32, 1],
        Activation::Tanh,
        false,
        &mut init,
    );
    let x = Array2::from_shape_fn((64, 2), |_| data.gen_range(-1.0f32..1.0));
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (3.0 * x[[i, 0]]).sin() * x[[i, 1]]);
    let mut group = GroupConfig::new("net", 1e-2);
    group.weight_decay = 1e-4;
    let mut opt = Adam::new(kind, vec![group], &store).unwrap();
    let (mut first, mut last) = (0.0, 0.0);
    for step in 0..steps {
        let mut tape = Tape::new();
        let p = store.bind(&mut tape);
        let xv = tape.constant(x.clone());
        let yv = tape.constant(y.clone());
        let pred = mlp.forward(&mut tape, &p, xv);
        let err = tape.sub(pred, yv);
        let sq = tape.square(err);
        let loss = tape.mean(sq);
        let l = tape.item(loss);
        if step == 0 {
            first = l;
        }
        last = l;
        let mut g = tape.backward(loss);
        let mut grads = p.grads(&mut g, &store);
        opt.step(&mut store, &mut grads).unwrap();
    }
    (first, last, store)
}

#[test]
fn mlp_fits_a_small_regression() {
    for kind in [AdamKind::Adam, AdamKind::AdamW] {
        let (first, last, _) = fit(7, 600, kind);
        assert!(first / last > 50.0, "{kind:?}: loss only fell from {first} to {last}");
    }
}

#[test]
fn same_seed_is_bitwise_identical_and_seeds_differ() {
    let (_, la, a) = fit(3, 50, AdamKind::Adam);
    let (_, lb, b) = fit(3, 50, AdamKind::Adam);
    let (_, _, c) = fit(4, 50, AdamKind::Adam);
    assert_eq!(la.to_bits(), lb.to_bits());
    let bits = |s: &ParamStore<f32>| {
        s.iter()
            .flat_map(|p| p.value.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn learning_rate_must_be_positive_and_finite() {
    let mut store = ParamStore::<f32>::new();
    store.add("w", "net", Array2::zeros((2, 2)));
    for lr in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        let err = Adam::new(AdamKind::Adam, vec![GroupConfig::new("net", lr)], &store).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{msg}");
        assert!(
            msg.contains("optimizer.net.lr") && msg.contains("positive and finite"),
            "{msg}"
        );
    }
    let err = Adam::new(AdamKind::Adam, vec![GroupConfig::new("other", 1e-3)], &store).unwrap_err();
    assert!(err.to_string().contains("no group named `net`"), "{err}");
}

#[test]
fn groups_have_their_own_rates_and_clipping() {
    // Two scalars with gradient 1e3 each: group "a" clips to norm 1, group "b" does not clip.
    let mut store = ParamStore::<f64>::new();
    store.add("a", "a", Array2::zeros((1, 1)));
    store.add("b", "b", Array2::zeros((1, 1)));
    let mut ga = GroupConfig::new("a", 0.1);
    ga.clip_norm = Some(1.0);
    let gb = GroupConfig::new("b", 0.5);
    let mut opt = Adam::new(AdamKind::Adam, vec![ga, gb], &store).unwrap();
    let mut grads = vec![Array2::from_elem((1, 1), 1e3), Array2::from_elem((1, 1), 1e3)];
    let stats = opt.step(&mut store, &mut grads).unwrap();
    assert_eq!(stats.clipped, vec![true, false]);
    assert!((stats.grad_norm[0] - 1e3).abs() < 1e-9);
    // Adam's first step moves each parameter by about its own learning rate.
    assert!((store.value(gflownet::nn::ParamId(0))[[0, 0]] + 0.1).abs() < 1e-6);
    assert!((store.value(gflownet::nn::ParamId(1))[[0, 0]] + 0.5).abs() < 1e-6);
}

#[test]
fn a_huge_finite_gradient_still_moves_an_f32_parameter() {
    // 5e21 is finite in f32 but its square is not: without the overflow guard
    // `v` became inf and the parameter never moved (log Z under Linex(1) at a
    // residual of 50). Adam should move it by about its learning rate per step,
    // as it does for a gradient of 1.
    for g in [1.0f32, 5e21, -3e30] {
        let mut store = ParamStore::<f32>::new();
        let id = store.add("log_z", "log_z", Array2::zeros((1, 1)));
        let mut opt = Adam::new(AdamKind::Adam, vec![GroupConfig::new("log_z", 0.01)], &store).unwrap();
        for step in 1..=3 {
            let mut grads = vec![Array2::from_elem((1, 1), g)];
            let stats = opt.step(&mut store, &mut grads).unwrap();
            assert_eq!(stats.clipped[0], g.abs() > 1e15, "gradient {g}");
            let moved = store.value(id)[[0, 0]];
            let expect = -0.01 * step as f32 * g.signum();
            assert!(
                (moved - expect).abs() < 1e-5,
                "gradient {g}, step {step}: {moved} vs {expect}"
            );
        }
    }
}

#[test]
fn non_finite_gradient_is_refused_without_touching_weights() {
    let mut store = ParamStore::<f32>::new();
    store.add("w", "net", Array2::from_elem((1, 2), 1.0));
    let mut opt = Adam::new(AdamKind::Adam, vec![GroupConfig::new("net", 0.1)], &store).unwrap();
    let before = store.clone();
    let mut grads = vec![ndarray::array![[f32::NAN, 1.0]]];
    assert!(matches!(opt.step(&mut store, &mut grads), Err(Error::Numeric(_))));
    assert_eq!(store, before);
    assert_eq!(opt.step, 0);
}

#[test]
fn a_weight_the_update_makes_non_finite_is_an_error_naming_it() {
    let mut store = ParamStore::<f32>::new();
    store.add("fine", "net", Array2::from_elem((1, 3), 1.0));
    store.add("huge", "net", ndarray::array![[1.0, f32::MAX, 2.0]]);
    let mut opt = Adam::new(AdamKind::Adam, vec![GroupConfig::new("net", 1e37)], &store).unwrap();
    // a step of about 1e37 upward on each entry: f32::MAX overflows to infinity
    let mut grads = vec![Array2::from_elem((1, 3), -1.0), Array2::from_elem((1, 3), -1.0)];
    match opt.step(&mut store, &mut grads) {
        Err(Error::Numeric(msg)) => assert!(msg.contains("`huge`"), "{msg}"),
        other => panic!("expected a numeric error, got {other:?}"),
    }
    // the same step from finite room is fine
    let mut store = ParamStore::<f32>::new();
    store.add("fine", "net", Array2::from_elem((1, 3), 1.0));
    let mut opt = Adam::new(AdamKind::Adam, vec![GroupConfig::new("net", 1e37)], &store).unwrap();
    let mut grads = vec![Array2::from_elem((1, 3), -1.0)];
    assert!(opt.step(&mut store, &mut grads).is_ok());
}

#[test]
fn schedules() {
    assert_eq!(Schedule::Constant.factor(1000), 1.0);
    let w = Schedule::Warmup { warmup: 10 };
    assert!((w.factor(0) - 0.1).abs() < 1e-12 && w.factor(9) == 1.0 && w.factor(500) == 1.0);
    let c = Schedule::Cosine {
        warmup: 10,
        total: 110,
        min_factor: 0.1,
    };
    assert!((c.factor(10) - 1.0).abs() < 1e-12);
    assert!((c.factor(60) - 0.55).abs() < 1e-12);
    assert!((c.factor(110) - 0.1).abs() < 1e-12 && (c.factor(10_000) - 0.1).abs() < 1e-12);
    let h = Schedule::InverseTime { half_life: 100.0 };
    assert!((h.factor(100) - 0.5).abs() < 1e-12);
    assert!(Schedule::Cosine {
        warmup: 10,
        total: 5,
        min_factor: 0.0
    }
    .validate("lr")
    .is_err());
    assert!(Schedule::Cosine {
        warmup: 0,
        total: 5,
        min_factor: 1.5
    }
    .validate("lr")
    .is_err());
}

#[test]
fn mlp_gradients_match_finite_differences() {
    // The whole MLP (tanh and leaky ReLU) against gradcheck, weights as inputs.
    for act in [Activation::Tanh, Activation::LeakyRelu(0.1)] {
        let mut init = rng::stream(1, rng::streams::INIT);
        let mut store = ParamStore::<f64>::new();
        let mlp = Mlp::new(&mut store, "m", "net", &[3, 5, 4, 2], act, false, &mut init);
        let x = Array2::from_shape_fn((4, 3), |(i, j)| ((i * 3 + j) as f64 * 0.77).sin());
        let inputs: Vec<Array2<f64>> = store.iter().map(|p| p.value.clone()).collect();
        let r = gflownet::autodiff::gradcheck(&inputs, 1e-6, |t, v| {
            let bound = Bound::from(v.to_vec()); // the leaves are the parameters, in store order
            let xc = t.constant(x.clone());
            let x_t = mlp.forward(t, &bound, xc);
            let sq = t.square(x_t);
            t.mean(sq)
        });
        assert!(r.max_error < 1e-6, "{act:?}: {r:?}");
    }
}

#[test]
fn weight_decay_is_added_to_the_gradient_for_adam_and_to_the_weight_for_adamw() {
    // one weight at 1, a zero gradient, rate 0.1, weight decay 0.5. Adam: the
    // gradient becomes 0.5 * w = 0.5, and a first step moves by the rate: 0.9.
    // AdamW: no gradient, no move; the weight shrinks by rate * decay: 0.95.
    for (kind, want) in [(AdamKind::Adam, 0.9), (AdamKind::AdamW, 0.95)] {
        let mut store = ParamStore::<f64>::new();
        let id = store.add("w", "net", Array2::from_elem((1, 1), 1.0));
        let mut group = GroupConfig::new("net", 0.1);
        group.weight_decay = 0.5;
        let mut opt = Adam::new(kind, vec![group], &store).unwrap();
        opt.step(&mut store, &mut [Array2::zeros((1, 1))]).unwrap();
        let w = store.value(id)[[0, 0]];
        assert!((w - want).abs() < 1e-7, "{kind:?}: {w} vs {want}");
    }
}

#[test]
fn clipping_scales_a_group_to_the_clip_norm_over_all_its_weights() {
    // two weights of one group: gradients (3e3, 4e3), norm 5e3, clipped to norm
    // 5 are (3, 4); then (3, 4) again, not clipped. Under a constant gradient
    // each Adam step moves each weight by the rate: both end at -2 * 0.1.
    let mut store = ParamStore::<f64>::new();
    let a = store.add("a", "net", Array2::zeros((1, 1)));
    let b = store.add("b", "net", Array2::zeros((1, 1)));
    let mut group = GroupConfig::new("net", 0.1);
    group.clip_norm = Some(5.0);
    let mut opt = Adam::new(AdamKind::Adam, vec![group], &store).unwrap();
    for (scale, clipped) in [(1e3, true), (1.0, false)] {
        let mut grads = [
            Array2::from_elem((1, 1), 3.0 * scale),
            Array2::from_elem((1, 1), 4.0 * scale),
        ];
        let stats = opt.step(&mut store, &mut grads).unwrap();
        assert_eq!(stats.clipped, [clipped]);
        assert!((stats.grad_norm[0] - 5.0 * scale).abs() < 1e-9 * scale);
    }
    for id in [a, b] {
        let w = store.value(id)[[0, 0]];
        assert!((w + 0.2).abs() < 1e-7, "{w}");
    }
}

#[test]
fn the_schedule_gives_the_first_step_the_factor_of_step_zero() {
    // warm-up over 4 steps: factors 1/4, 2/4, 3/4, then 1; under a constant
    // gradient each Adam step moves the weight by that step's rate
    let mut store = ParamStore::<f64>::new();
    let id = store.add("w", "net", Array2::zeros((1, 1)));
    let mut group = GroupConfig::new("net", 0.4);
    group.schedule = Schedule::Warmup { warmup: 4 };
    let mut opt = Adam::new(AdamKind::Adam, vec![group], &store).unwrap();
    let mut want = 0.0;
    for factor in [0.25, 0.5, 0.75, 1.0, 1.0] {
        let stats = opt.step(&mut store, &mut [Array2::from_elem((1, 1), 1.0)]).unwrap();
        assert!((stats.lr[0] - 0.4 * factor).abs() < 1e-12, "{:?}", stats.lr);
        want -= 0.4 * factor;
        assert!((store.value(id)[[0, 0]] - want).abs() < 1e-7);
    }
}

#[test]
fn an_infinite_gradient_is_refused_like_a_nan() {
    for bad in [f32::INFINITY, f32::NEG_INFINITY] {
        let mut store = ParamStore::<f32>::new();
        store.add("w", "net", Array2::from_elem((1, 2), 1.0));
        let mut opt = Adam::new(AdamKind::Adam, vec![GroupConfig::new("net", 0.1)], &store).unwrap();
        let before = store.clone();
        let mut grads = vec![ndarray::array![[bad, 1.0]]];
        assert!(
            matches!(opt.step(&mut store, &mut grads), Err(Error::Numeric(_))),
            "{bad}"
        );
        assert_eq!(store, before);
        assert_eq!(opt.step, 0);
    }
}

#[test]
fn inverse_time_is_one_over_one_plus_steps_over_the_half_life() {
    // not merely halved at the half-life: a quarter at three half-lives (an
    // exponential decay would give an eighth), two thirds at half of one
    let h = Schedule::InverseTime { half_life: 100.0 };
    assert_eq!(h.factor(0), 1.0);
    assert!((h.factor(300) - 0.25).abs() < 1e-12, "{}", h.factor(300));
    assert!((h.factor(50) - 2.0 / 3.0).abs() < 1e-12, "{}", h.factor(50));
}
