//! The objectives: gradients against finite differences (proptest), the regression losses,
//! SubTB against a brute-force double loop and against TB, the log Z fixed points,
//! the divergence estimators against exact gradients on an enumerable DAG, the control
//! variates' variance reduction, finiteness far from balance, and config validation.

use gflownet::autodiff::{gradcheck, Tape, Var};
use gflownet::nn::{Activation, Bound, Init, Linear, Mlp, ParamId, ParamStore};
use gflownet::objective::{
    apply_batch_cv, db, subtb, tb, ControlVariate, Objective, ObjectiveConfig, RegressionLoss, Terms,
};
use gflownet::{rng, Error};
use ndarray::Array2;
use proptest::prelude::*;
use rand::Rng;

// ============================================================== a random policy over random trajectories

/// A tiny random policy (P_F and P_B MLPs over random state features, a state-flow
/// head, a learned log Z) and a random batch of trajectories with random masks and actions.
struct Setup {
    store: ParamStore<f64>,
    pf: Mlp,
    pb: Mlp,
    head: Linear,
    log_z: ParamId,
    offsets: Vec<usize>,
    x: Array2<f64>,
    x_next: Array2<f64>,
    mask_f: Array2<bool>,
    act_f: Vec<usize>,
    mask_b: Array2<bool>,
    act_b: Vec<usize>,
    log_r: Array2<f64>,
    flow_offset: Array2<f64>,
}

const D: usize = 3; // features
const A: usize = 3; // actions

impl Setup {
    /// Rewards and flow offsets are set so that every balance residual (TB, SubTB, DB) at the
    /// initial parameters is a random number in `[-spread, spread]` (plus `shift` for TB).
    fn new(seed: u64, spread: f64) -> Self {
        let mut r = rng::stream(seed, rng::streams::DATA);
        let mut init = rng::stream(seed, rng::streams::INIT);
        let mut store = ParamStore::<f64>::new();
        let pf = Mlp::new(&mut store, "pf", "net", &[D, 5, A], Activation::Tanh, false, &mut init);
        let pb = Mlp::new(&mut store, "pb", "net", &[D, 4, A], Activation::Tanh, false, &mut init);
        let head = Linear::new(&mut store, "flow", "net", D, 1, Init::Xavier, &mut init);
        let log_z = store.add("log_z", "z", Array2::from_elem((1, 1), r.gen_range(-1.0..1.0)));
        let b = r.gen_range(1..=4);
        let mut offsets = vec![0];
        for _ in 0..b {
            let n = r.gen_range(1..=4);
            offsets.push(offsets.last().unwrap() + n);
        }
        let t = offsets[b];
        let x = Array2::from_shape_fn((t, D), |_| r.gen_range(-1.0..1.0));
        let x_next = Array2::from_shape_fn((t, D), |_| r.gen_range(-1.0..1.0));
        let mut mask_f = Array2::from_shape_fn((t, A), |_| r.gen_bool(0.6));
        let act_f: Vec<usize> = (0..t).map(|_| r.gen_range(0..A)).collect();
        let mut mask_b = Array2::from_shape_fn((t, A), |_| r.gen_bool(0.6));
        let act_b: Vec<usize> = (0..t).map(|_| r.gen_range(0..A)).collect();
        for i in 0..t {
            mask_f[[i, act_f[i]]] = true;
            mask_b[[i, act_b[i]]] = true;
        }
        for w in offsets.windows(2) {
            // terminating transition: a single valid backward action, so log P_B = 0 exactly
            let last = w[1] - 1;
            for j in 0..A {
                mask_b[[last, j]] = j == act_b[last];
            }
        }
        let mut s = Setup {
            store,
            pf,
            pb,
            head,
            log_z,
            offsets,
            x,
            x_next,
            mask_f,
            act_f,
            mask_b,
            act_b,
            log_r: Array2::zeros((b, 1)),
            flow_offset: Array2::zeros((t, 1)),
        };
        // values at the initial parameters
        let mut tape = Tape::new();
        let p = s.store.bind_constant(&mut tape);
        let terms = s.terms(&mut tape, &p);
        let (lpf, lpb) = (col(&tape, terms.log_pf), col(&tape, terms.log_pb));
        let head = col(&tape, terms.log_f.unwrap());
        let z = s.store.value(s.log_z)[[0, 0]];
        for (bi, w) in s.offsets.clone().windows(2).enumerate() {
            // target log F(s_k) = log Z + prefix (pf - pb) + noise, so that t_ij = noise_j - noise_i
            let mut u = z;
            for k in w[0]..w[1] {
                if k > w[0] {
                    s.flow_offset[[k, 0]] = u + r.gen_range(-spread..spread) - head[k];
                }
                u += lpf[k] - lpb[k];
            }
            s.log_r[[bi, 0]] = u + r.gen_range(-spread..spread);
        }
        s
    }

    fn terms(&self, tape: &mut Tape<f64>, p: &Bound) -> Terms {
        let x = tape.constant(self.x.clone());
        let logits = self.pf.forward(tape, p, x);
        let lp = tape.masked_log_softmax(logits, self.mask_f.clone());
        let log_pf = tape.gather(lp, self.act_f.clone());
        let entropy = tape.entropy(lp);
        let xn = tape.constant(self.x_next.clone());
        let logits_b = self.pb.forward(tape, p, xn);
        let lpb = tape.masked_log_softmax(logits_b, self.mask_b.clone());
        let log_pb = tape.gather(lpb, self.act_b.clone());
        let f = self.head.forward(tape, p, x, None);
        let off = tape.constant(self.flow_offset.clone());
        let log_f = tape.add(f, off);
        Terms {
            offsets: self.offsets.clone(),
            log_pf,
            log_pb,
            log_f: Some(log_f),
            log_r: tape.constant(self.log_r.clone()),
            log_z: p[self.log_z],
            entropy: Some(entropy),
        }
    }

    fn params(&self) -> Vec<Array2<f64>> {
        self.store.iter().map(|p| p.value.clone()).collect()
    }
}

fn col(tape: &Tape<f64>, v: Var) -> Vec<f64> {
    tape.value(v).iter().copied().collect()
}

fn all_g() -> Vec<RegressionLoss> {
    vec![
        RegressionLoss::Squared,
        RegressionLoss::LINEX1,
        RegressionLoss::LINEX_HALF,
        RegressionLoss::ShiftedCosh,
    ]
}

fn balance(which: usize, lambda: f64) -> Objective {
    [Objective::Tb, Objective::SubTb { lambda }, Objective::Db][which]
}

// ============================================================== gradients vs finite differences

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Every balance objective x every g (and Linex with a random, possibly negative alpha),
    /// with the entropy bonus: the tape gradient w.r.t. every parameter (both MLPs, the flow
    /// head, log Z) matches central finite differences.
    #[test]
    fn balance_gradients_match_finite_differences(
        seed in any::<u64>(),
        which in 0usize..3,
        alpha in prop_oneof![-2.5f64..-0.1, 0.1f64..2.5],
        lambda in 0.3f64..1.5,
        ew in prop_oneof![Just(0.0), 0.01f64..0.5],
    ) {
        let s = Setup::new(seed, 0.7);
        let mut gs = all_g();
        gs.push(RegressionLoss::Linex(alpha));
        for g in gs {
            let cfg = ObjectiveConfig { objective: balance(which, lambda), g, clip: 30.0, entropy_weight: ew, ..Default::default() };
            // residuals stay well inside the clip: the gradient is exact
            let mut tape = Tape::new();
            let p = s.store.bind(&mut tape);
            let terms = s.terms(&mut tape, &p);
            let out = cfg.loss(&mut tape, &terms).unwrap();
            prop_assert_eq!(out.clipped_fraction, 0.0);
            prop_assert!(out.residuals.iter().all(|t| t.abs() < 3.0), "{:?}", out.residuals);
            let r = gradcheck(&s.params(), 1e-6, |tape, v| {
                let p = Bound::from(v.to_vec());
                let terms = s.terms(tape, &p);
                cfg.loss(tape, &terms).unwrap().loss
            });
            prop_assert!(r.max_error < 1e-5, "{} with g = {}: {:?}", cfg.objective, g, r);
            prop_assert!(r.checked == s.store.numel());
        }
    }
}

/// The gradcheck above can fail: a loss whose gradient is wrong is caught by the same harness.
#[test]
fn gradient_harness_detects_a_wrong_objective_gradient() {
    let s = Setup::new(3, 0.7);
    let cfg = ObjectiveConfig {
        objective: Objective::Tb,
        g: RegressionLoss::LINEX1,
        ..Default::default()
    };
    let r = gradcheck(&s.params(), 1e-6, |tape, v| {
        let p = Bound::from(v.to_vec());
        let mut terms = s.terms(tape, &p);
        // log Z enters the value but, detached, not the gradient
        terms.log_z = tape.detach(terms.log_z);
        cfg.loss(tape, &terms).unwrap().loss
    });
    assert!(r.max_error > 1e-3, "{r:?}");
}

// ============================================================== the regression losses

#[test]
fn each_g_vanishes_at_zero_with_documented_curvature() {
    let gs = [
        RegressionLoss::Squared,
        RegressionLoss::LINEX1,
        RegressionLoss::LINEX_HALF,
        RegressionLoss::ShiftedCosh,
        RegressionLoss::Linex(-1.0),
        RegressionLoss::Linex(2.5),
        RegressionLoss::Linex(-0.3),
    ];
    for g in gs {
        assert_eq!(g.value(0.0), 0.0, "{g}");
        assert_eq!(g.deriv(0.0), 0.0, "{g}");
        let h = 1e-4;
        let second = (g.value(h) - 2.0 * g.value(0.0) + g.value(-h)) / (h * h);
        assert!((second - g.curvature_at_zero()).abs() < 1e-6, "{g}: g''(0) = {second}");
        let from_deriv = (g.deriv(h) - g.deriv(-h)) / (2.0 * h);
        assert!(
            (from_deriv - g.curvature_at_zero()).abs() < 1e-6,
            "{g}: g''(0) = {from_deriv}"
        );
    }
    assert_eq!(RegressionLoss::Squared.curvature_at_zero(), 2.0);
    assert_eq!(RegressionLoss::ShiftedCosh.curvature_at_zero(), 2.0);
    assert_eq!(RegressionLoss::Linex(-3.0).curvature_at_zero(), 1.0);
}

#[test]
fn presets_are_the_documented_formulas() {
    for t in [-7.0, -1.3, -0.2, -1e-3, 1e-3, 0.4, 2.0, 9.5] {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-11 * b.abs().max(1e-3);
        let e = f64::exp;
        assert!(close(RegressionLoss::LINEX1.value(t), e(t) - t - 1.0), "linex1 at {t}");
        assert!(
            close(RegressionLoss::LINEX_HALF.value(t), 4.0 * e(t / 2.0) - 2.0 * t - 4.0),
            "linex0.5 at {t}"
        );
        assert!(
            close(RegressionLoss::ShiftedCosh.value(t), e(t) + e(-t) - 2.0),
            "cosh at {t}"
        );
        assert!(close(RegressionLoss::Squared.value(t), t * t), "squared at {t}");
        let a = -1.7;
        let linex = (e(a * t) - a * t - 1.0) / (a * a);
        assert!(close(RegressionLoss::Linex(a).value(t), linex), "linex:{a} at {t}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// g >= 0 everywhere on the range, and g' is the derivative of g.
    #[test]
    fn g_is_nonnegative_and_deriv_is_its_derivative(
        t in -30.0f64..30.0,
        alpha in prop_oneof![-3.0f64..-0.05, 0.05f64..3.0],
    ) {
        for g in [RegressionLoss::Squared, RegressionLoss::LINEX1, RegressionLoss::LINEX_HALF,
                  RegressionLoss::ShiftedCosh, RegressionLoss::Linex(alpha)] {
            let v = g.value(t);
            prop_assert!(v >= 0.0, "{} at {}: {}", g, t, v);
            let h = 1e-6 * t.abs().max(1.0);
            let fd = (g.value(t + h) - g.value(t - h)) / (2.0 * h);
            let d = g.deriv(t);
            prop_assert!((fd - d).abs() <= 1e-5 * d.abs().max(1.0), "{} at {}: {} vs {}", g, t, d, fd);
        }
    }
}

#[test]
fn g_overflows_to_infinity_never_nan() {
    for g in all_g()
        .into_iter()
        .chain([RegressionLoss::Linex(-1.0), RegressionLoss::Linex(3.0)])
    {
        for t in [1e4, -1e4, 1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY] {
            let v = g.value(t);
            assert!(!v.is_nan() && v >= 0.0, "{g} at {t}: {v}");
        }
        assert_eq!(g.value(f64::INFINITY), f64::INFINITY, "{g}");
        assert_eq!(g.value(f64::NEG_INFINITY), f64::INFINITY, "{g}");
    }
    assert_eq!(RegressionLoss::LINEX1.value(1e4), f64::INFINITY);
    assert!(RegressionLoss::LINEX1.value(-1e4).is_finite());
}

/// Inside the clip the op's gradient is exact; beyond it, it is g'(+-clip).
#[test]
fn regression_op_gradient_is_exact_inside_the_clip_and_clipped_outside() {
    use gflownet::objective::regression::regression;
    let x = ndarray::array![[-2.0, 0.3], [1.1, -0.4], [2.9, 0.0]];
    for g in all_g().into_iter().chain([RegressionLoss::Linex(-1.4)]) {
        let r = gradcheck(std::slice::from_ref(&x), 1e-6, |t, v| {
            let y = regression(t, v[0], g, 3.0);
            t.sum(y)
        });
        assert!(r.max_error < 1e-7, "{g}: {r:?}");
        let mut tape = Tape::new();
        let v = tape.leaf(ndarray::array![[10.0, -10.0, 1.0]]);
        let y = regression(&mut tape, v, g, 2.0);
        let s = tape.sum(y);
        let grads = tape.backward(s);
        let d = grads.get(v).unwrap();
        assert_eq!(d[[0, 0]], g.deriv(2.0), "{g}");
        assert_eq!(d[[0, 1]], g.deriv(-2.0), "{g}");
        assert_eq!(d[[0, 2]], g.deriv(1.0), "{g}");
        assert_eq!(
            tape.value(y)[[0, 0]],
            g.value(10.0),
            "{g}: the forward value is not clipped"
        );
    }
}

// ============================================================== SubTB

#[test]
fn subtb_pair_weights_match_a_double_loop() {
    for n in 1..=7 {
        for lambda in [0.3, 0.9, 1.0, 1.7] {
            let w = subtb::pair_weights(n, lambda);
            let mut brute = Vec::new();
            let mut total = 0.0;
            for i in 0..=n {
                for j in i + 1..=n {
                    let raw = f64::powi(lambda, (j - i) as i32);
                    brute.push((i, j, raw));
                    total += raw;
                }
            }
            assert_eq!(w.len(), brute.len());
            for ((i, j, a), (bi, bj, b)) in w.iter().zip(&brute) {
                assert_eq!((i, j), (bi, bj));
                assert!(
                    (a - b / total).abs() < 1e-14,
                    "n={n} lambda={lambda} ({i},{j}): {a} vs {}",
                    b / total
                );
            }
        }
    }
    // no overflow for a long trajectory with lambda > 1
    let w = subtb::pair_weights(2000, 1.5);
    assert!(w.iter().all(|p| p.2.is_finite()));
    assert!((w.iter().map(|p| p.2).sum::<f64>() - 1.0).abs() < 1e-9);
}

/// SubTB's value equals a brute-force double loop over the pairs of every trajectory.
#[test]
fn subtb_value_matches_brute_force() {
    for seed in 0..20 {
        let s = Setup::new(seed, 1.5);
        let lambda = 0.5 + 0.1 * seed as f64;
        for g in all_g() {
            let mut tape = Tape::new();
            let p = s.store.bind(&mut tape);
            let terms = s.terms(&mut tape, &p);
            let (lpf, lpb, lf) = (
                col(&tape, terms.log_pf),
                col(&tape, terms.log_pb),
                col(&tape, terms.log_f.unwrap()),
            );
            let (lr, lz) = (col(&tape, terms.log_r), tape.item(terms.log_z));
            let mut expect = 0.0;
            let b = s.offsets.len() - 1;
            for (bi, w) in s.offsets.windows(2).enumerate() {
                let n = w[1] - w[0];
                let log_flow = |k: usize| match k {
                    0 => lz,
                    k if k == n => lr[bi],
                    k => lf[w[0] + k],
                };
                let (mut num, mut den) = (0.0, 0.0);
                for i in 0..n {
                    for j in i + 1..=n {
                        let mut t = log_flow(j) - log_flow(i);
                        for k in i..j {
                            t += lpb[w[0] + k] - lpf[w[0] + k];
                        }
                        let wt = f64::powi(lambda, (j - i) as i32);
                        num += wt * g.value(t);
                        den += wt;
                    }
                }
                expect += num / den / b as f64;
            }
            assert_loss_value(&mut tape, &terms, Objective::SubTb { lambda }, g, expect);
        }
    }
}

/// `objective` under `g` reports `expect` as its value, and its loss variable holds it too.
fn assert_loss_value(tape: &mut Tape<f64>, terms: &Terms, objective: Objective, g: RegressionLoss, expect: f64) {
    let cfg = ObjectiveConfig {
        objective,
        g,
        ..Default::default()
    };
    let out = cfg.loss(tape, terms).unwrap();
    let tol = 1e-12 * expect.max(1.0);
    assert!(
        (out.value - expect).abs() < tol,
        "{objective} {g}: {} vs {expect}",
        out.value
    );
    assert!(
        (tape.item(out.loss) - expect).abs() < tol,
        "{objective} {g}: the loss variable"
    );
}

/// A pair weighting that keeps only the full pair (0, n) is TB: same value, same gradients.
#[test]
fn subtb_with_only_the_full_pair_is_tb() {
    for seed in 0..20 {
        let s = Setup::new(100 + seed, 1.0);
        for g in all_g() {
            let run = |full_only: bool| {
                let mut tape = Tape::new();
                let p = s.store.bind(&mut tape);
                let terms = s.terms(&mut tape, &p);
                let out = if full_only {
                    subtb::weighted(&mut tape, &terms, g, 50.0, |n| {
                        (0..n)
                            .flat_map(|i| (i + 1..=n).map(move |j| (i, j, if i == 0 && j == n { 1.0 } else { 0.0 })))
                            .collect()
                    })
                    .unwrap()
                } else {
                    tb::loss(&mut tape, &terms, g, 50.0)
                };
                let mut grads = tape.backward(out.loss);
                (out.value, p.grads(&mut grads, &s.store))
            };
            let (v1, g1) = run(true);
            let (v2, g2) = run(false);
            assert!((v1 - v2).abs() <= 1e-13 * v2.abs().max(1.0), "{g}: {v1} vs {v2}");
            for (a, b) in g1.iter().zip(&g2) {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{g}: {x} vs {y}");
                }
            }
        }
    }
}

/// DB residuals computed by hand for every transition.
#[test]
fn db_residuals_match_the_definition() {
    let s = Setup::new(77, 1.0);
    let mut tape = Tape::new();
    let p = s.store.bind(&mut tape);
    let terms = s.terms(&mut tape, &p);
    let t = db::residuals(&mut tape, &terms).unwrap();
    let (lpf, lpb, lf) = (
        col(&tape, terms.log_pf),
        col(&tape, terms.log_pb),
        col(&tape, terms.log_f.unwrap()),
    );
    let (lr, lz) = (col(&tape, terms.log_r), tape.item(terms.log_z));
    let tv = col(&tape, t);
    for (bi, w) in s.offsets.windows(2).enumerate() {
        for r in w[0]..w[1] {
            let from = if r == w[0] { lz } else { lf[r] };
            let to = if r + 1 == w[1] { lr[bi] } else { lf[r + 1] };
            let expect = to + lpb[r] - from - lpf[r];
            assert!((tv[r] - expect).abs() < 1e-13);
        }
    }
}

/// The DB loss is the mean of g over every transition of the batch (not over trajectories).
#[test]
fn db_value_is_the_mean_over_transitions() {
    // batches with more transitions than trajectories, where the two means differ
    let mut longer = 0;
    for seed in 0..10 {
        let s = Setup::new(200 + seed, 1.5);
        longer += (s.offsets[s.offsets.len() - 1] > s.offsets.len() - 1) as usize;
        for g in all_g() {
            let mut tape = Tape::new();
            let p = s.store.bind(&mut tape);
            let terms = s.terms(&mut tape, &p);
            let t = db::residuals(&mut tape, &terms).unwrap();
            let tv = col(&tape, t);
            let expect = tv.iter().map(|&t| g.value(t)).sum::<f64>() / tv.len() as f64;
            assert_loss_value(&mut tape, &terms, Objective::Db, g, expect);
        }
    }
    assert!(longer >= 5, "{longer} of 10 batches longer than their count");
}

/// Hand-built terms of one-transition trajectories: `log P_F`, `log P_B` (the
/// terminating transition's: 0) and `log R` per trajectory, `log Z` given.
fn one_step_terms(tape: &mut Tape<f64>, log_pf: &[f64], log_r: &[f64], log_z: f64) -> Terms {
    let column = |v: &[f64]| Array2::from_shape_fn((v.len(), 1), |(i, _)| v[i]);
    Terms {
        offsets: (0..=log_pf.len()).collect(),
        log_pf: tape.leaf(column(log_pf)),
        log_pb: tape.constant(Array2::zeros((log_pf.len(), 1))),
        log_f: None,
        log_r: tape.constant(column(log_r)),
        log_z: tape.leaf(Array2::from_elem((1, 1), log_z)),
        entropy: None,
    }
}

/// The reported residual has the documented sign: `t = log R + sum log P_B - log Z - sum log P_F`.
#[test]
fn reported_residuals_have_the_documented_sign() {
    let mut tape = Tape::new();
    // t = 1 + 0 - 0.2 - (-0.5) = 1.3
    let terms = one_step_terms(&mut tape, &[-0.5], &[1.0], 0.2);
    for objective in [Objective::Tb, Objective::RevKl] {
        let cfg = ObjectiveConfig {
            objective,
            ..Default::default()
        };
        let out = cfg.loss(&mut tape, &terms).unwrap();
        assert_eq!(out.residuals.len(), 1);
        assert!(
            (out.residuals[0] - 1.3).abs() < 1e-12,
            "{objective}: {:?}",
            out.residuals
        );
    }
}

/// The divergences' reported batch estimates, worked out by hand for two
/// one-step trajectories with log weights `l = [0, ln 2]` (so `Z_hat = 1.5`).
#[test]
fn divergence_values_match_hand_computed_batch_estimates() {
    let (ln2, ln15) = (2f64.ln(), 1.5f64.ln());
    let (r2, r23, r43) = (2f64.sqrt(), (2.0f64 / 3.0).sqrt(), (4.0f64 / 3.0).sqrt());
    for (objective, want) in [
        // -mean l + log Z_hat
        (Objective::RevKl, ln15 - ln2 / 2.0),
        // sum softmax(l)_i l_i - log Z_hat, softmax(l) = (1/3, 2/3)
        (Objective::FwdKl, 2.0 / 3.0 * ln2 - ln15),
        // lme(l / 2) / (-1/2) + log Z_hat, mean(exp(l / 2)) = (1 + sqrt 2) / 2
        (Objective::Renyi { alpha: 0.5 }, -2.0 * ((1.0 + r2) / 2.0).ln() + ln15),
        // (mean exp((l - log Z_hat) / 2) - 1) / (-1/2), the mean (sqrt(2/3) + sqrt(4/3)) / 2
        (Objective::Tsallis { alpha: 0.5 }, 2.0 - r23 - r43),
    ] {
        let mut tape = Tape::new();
        // log P_F = 0, so l = log R; log Z does not enter these values
        let terms = one_step_terms(&mut tape, &[0.0, 0.0], &[0.0, ln2], 3.0);
        let cfg = ObjectiveConfig {
            objective,
            ..Default::default()
        };
        let out = cfg.loss(&mut tape, &terms).unwrap();
        assert!(
            (out.value - want).abs() < 1e-12,
            "{objective}: {} against {want}",
            out.value
        );
    }
    // the same numbers to seven digits, as worked on paper
    assert!((ln15 - ln2 / 2.0 - 0.0588915).abs() < 1e-7);
    assert!((2.0 / 3.0 * ln2 - ln15 - 0.0566330).abs() < 1e-7);
    assert!((-2.0 * ((1.0 + r2) / 2.0).ln() + ln15 - 0.0290123).abs() < 1e-7);
    assert!((2.0 - r23 - r43 - 0.0288029).abs() < 1e-7);
}

// ============================================================== fixed points of log Z

/// On a fixed policy, gradient descent on log Z alone reaches the documented minimiser of each g.
#[test]
fn log_z_fixed_points() {
    let mut r = rng::stream(5, rng::streams::DATA);
    let b = 24;
    let mut offsets = vec![0];
    for _ in 0..b {
        offsets.push(offsets.last().unwrap() + r.gen_range(1..=5));
    }
    let t = offsets[b];
    let lpf = Array2::from_shape_fn((t, 1), |_| r.gen_range(-2.0..-0.05));
    let mut lpb = Array2::from_shape_fn((t, 1), |_| r.gen_range(-1.5..0.0));
    for w in offsets.windows(2) {
        lpb[[w[1] - 1, 0]] = 0.0;
    }
    // log R such that c_b = log R + sum log P_B - sum log P_F is uniform in [-1.5, 1.5]
    let lr = Array2::from_shape_fn((b, 1), |(i, _)| {
        let (lo, hi) = (offsets[i], offsets[i + 1]);
        r.gen_range(-1.5..1.5) - (lo..hi).map(|k| lpb[[k, 0]] - lpf[[k, 0]]).sum::<f64>()
    });
    let c: Vec<f64> = offsets
        .windows(2)
        .enumerate()
        .map(|(i, w)| lr[[i, 0]] + (w[0]..w[1]).map(|k| lpb[[k, 0]] - lpf[[k, 0]]).sum::<f64>())
        .collect();
    let mean = |f: &dyn Fn(f64) -> f64| c.iter().map(|&x| f(x)).sum::<f64>() / b as f64;
    let cases = [
        (RegressionLoss::Squared, mean(&|x| x)),
        (RegressionLoss::LINEX1, mean(&f64::exp).ln()),
        (RegressionLoss::LINEX_HALF, 2.0 * mean(&|x| (x / 2.0).exp()).ln()),
        (
            RegressionLoss::ShiftedCosh,
            0.5 * (mean(&f64::exp) / mean(&|x| (-x).exp())).ln(),
        ),
    ];
    let terms_at = |tape: &mut Tape<f64>, log_z| Terms {
        offsets: offsets.clone(),
        log_pf: tape.constant(lpf.clone()),
        log_pb: tape.constant(lpb.clone()),
        log_f: None,
        log_r: tape.constant(lr.clone()),
        log_z,
        entropy: None,
    };
    for (g, expect) in cases {
        let cfg = ObjectiveConfig {
            g,
            ..Default::default()
        };
        let mut log_z = 0.0;
        for _ in 0..1000 {
            let mut tape = Tape::<f64>::new();
            let z = tape.leaf(Array2::from_elem((1, 1), log_z));
            let terms = terms_at(&mut tape, z);
            let out = cfg.loss(&mut tape, &terms).unwrap();
            let grads = tape.backward(out.loss);
            log_z -= 0.1 * grads.get(z).unwrap()[[0, 0]];
        }
        assert!(
            (log_z - expect).abs() < 1e-10,
            "{g}: log Z = {log_z}, expected {expect}"
        );
        if g == RegressionLoss::Squared {
            // the squared-TB minimiser is the VarGrad estimate every objective reports
            let mut tape = Tape::<f64>::new();
            let z = tape.scalar(log_z);
            let terms = terms_at(&mut tape, z);
            let out = cfg.loss(&mut tape, &terms).unwrap();
            assert!((out.log_z_estimate - expect).abs() < 1e-12);
            assert!(out.residuals.iter().sum::<f64>().abs() < 1e-8);
        }
    }
    // the two estimates differ here (Jensen), so the test distinguishes them
    assert!(cases[1].1 - cases[0].1 > 0.1);
}

// ============================================================== an enumerable DAG for the divergences

/// Sets over {0, 1, 2}: from a set, add a missing element or stop. 16 trajectories, 8 objects;
/// the backward policy (which element was added last) is non-trivial.
mod dag {
    use super::*;

    pub const K: usize = 3;
    pub const STATES: usize = 1 << K;
    pub const STOP: usize = K;
    pub const REWARD: [f64; STATES] = [0.4, 1.0, 2.5, 0.3, 1.7, 0.8, 3.0, 5.0];

    pub fn fwd_mask(s: usize) -> Vec<bool> {
        (0..=K).map(|a| a == STOP || s & (1 << a) == 0).collect()
    }

    pub fn bwd_mask(s: usize) -> Vec<bool> {
        (0..K).map(|e| s & (1 << e) != 0).collect()
    }

    fn log_softmax(row: &[f64], mask: &[bool], j: usize) -> f64 {
        let m = row
            .iter()
            .zip(mask)
            .filter(|p| *p.1)
            .map(|p| *p.0)
            .fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().zip(mask).filter(|p| *p.1).map(|p| (p.0 - m).exp()).sum();
        row[j] - m - z.ln()
    }

    /// Every trajectory: the ordered elements added before stopping.
    pub fn all() -> Vec<Vec<usize>> {
        let mut out = vec![vec![]];
        let mut frontier = vec![vec![]];
        while let Some(seq) = frontier.pop() {
            for e in 0..K {
                if !seq.contains(&e) {
                    let mut s = seq.clone();
                    s.push(e);
                    out.push(s.clone());
                    frontier.push(s);
                }
            }
        }
        out
    }

    pub fn object(seq: &[usize]) -> usize {
        seq.iter().fold(0, |s, e| s | (1 << e))
    }

    pub fn log_q(theta: &Array2<f64>, seq: &[usize]) -> f64 {
        let mut s = 0;
        let mut lq = 0.0;
        for &e in seq.iter().chain([STOP].iter()) {
            lq += log_softmax(theta.row(s).as_slice().unwrap(), &fwd_mask(s), e);
            if e != STOP {
                s |= 1 << e;
            }
        }
        lq
    }

    pub fn log_pb(phi: &Array2<f64>, seq: &[usize]) -> f64 {
        let mut s = 0;
        let mut lp = 0.0;
        for &e in seq {
            s |= 1 << e;
            lp += log_softmax(phi.row(s).as_slice().unwrap(), &bwd_mask(s), e);
        }
        lp
    }

    #[derive(Copy, Clone, Debug)]
    pub enum Div {
        Rev,
        Fwd,
        Renyi(f64),
        Tsallis(f64),
    }

    /// The exact divergence between q = P_F(tau) and pi = P_B(tau|x) R(x) / Z.
    pub fn exact(div: Div, theta: &Array2<f64>, phi: &Array2<f64>) -> f64 {
        let z: f64 = REWARD.iter().sum();
        let mut acc = 0.0;
        for seq in all() {
            let q = log_q(theta, &seq).exp();
            let pi = (log_pb(phi, &seq) + REWARD[object(&seq)].ln() - z.ln()).exp();
            acc += match div {
                Div::Rev => q * (q / pi).ln(),
                Div::Fwd => pi * (pi / q).ln(),
                Div::Renyi(a) | Div::Tsallis(a) => q.powf(a) * pi.powf(1.0 - a),
            };
        }
        match div {
            Div::Renyi(a) => acc.ln() / (a - 1.0),
            Div::Tsallis(a) => (acc - 1.0) / (a - 1.0),
            _ => acc,
        }
    }

    /// The exact gradient w.r.t. (theta, phi), flattened, by central differences of [`exact`].
    pub fn exact_grad(div: Div, theta: &Array2<f64>, phi: &Array2<f64>) -> Vec<f64> {
        let h = 1e-5;
        let mut out = Vec::new();
        for which in 0..2 {
            let base = if which == 0 { theta } else { phi };
            for idx in 0..base.len() {
                let bump = |d: f64| {
                    let mut m = base.clone();
                    m.as_slice_mut().unwrap()[idx] += d;
                    if which == 0 {
                        exact(div, &m, phi)
                    } else {
                        exact(div, theta, &m)
                    }
                };
                out.push((bump(h) - bump(-h)) / (2.0 * h));
            }
        }
        out
    }

    pub fn sample<R: Rng>(theta: &Array2<f64>, r: &mut R) -> Vec<usize> {
        let mut s = 0;
        let mut seq = Vec::new();
        loop {
            let mask = fwd_mask(s);
            let u: f64 = r.gen();
            let mut acc = 0.0;
            let mut pick = STOP;
            for a in 0..=K {
                if mask[a] {
                    acc += log_softmax(theta.row(s).as_slice().unwrap(), &mask, a).exp();
                    if u < acc {
                        pick = a;
                        break;
                    }
                }
            }
            if pick == STOP {
                return seq;
            }
            seq.push(pick);
            s |= 1 << pick;
        }
    }

    /// The Terms of a batch; theta a leaf, phi a leaf when `learned_pb` (else a constant).
    pub fn terms(
        tape: &mut Tape<f64>,
        theta: &Array2<f64>,
        phi: &Array2<f64>,
        learned_pb: bool,
        batch: &[Vec<usize>],
    ) -> (Terms, Var, Var) {
        let th = tape.leaf(theta.clone());
        let ph = if learned_pb {
            tape.leaf(phi.clone())
        } else {
            tape.constant(phi.clone())
        };
        let (mut src, mut act, mut fmask) = (vec![], vec![], vec![]);
        let (mut bsrc, mut bact, mut bmask) = (vec![], vec![], vec![]);
        let mut offsets = vec![0];
        let mut log_r = vec![];
        for seq in batch {
            let mut s = 0;
            for &e in seq.iter().chain([STOP].iter()) {
                src.push(s);
                act.push(e);
                fmask.extend(fwd_mask(s));
                if e == STOP {
                    // terminating transition: one valid backward action, log P_B = 0
                    bsrc.push(s);
                    bact.push(0);
                    bmask.extend((0..K).map(|j| j == 0));
                } else {
                    s |= 1 << e;
                    bsrc.push(s);
                    bact.push(e);
                    bmask.extend(bwd_mask(s));
                }
            }
            offsets.push(src.len());
            log_r.push(REWARD[object(seq)].ln());
        }
        let t = src.len();
        let rows = tape.index_select(th, src);
        let lp = tape.masked_log_softmax(rows, Array2::from_shape_vec((t, K + 1), fmask).unwrap());
        let log_pf = tape.gather(lp, act);
        let brows = tape.index_select(ph, bsrc);
        let lpb = tape.masked_log_softmax(brows, Array2::from_shape_vec((t, K), bmask).unwrap());
        let log_pb = tape.gather(lpb, bact);
        let terms = Terms {
            offsets,
            log_pf,
            log_pb,
            log_f: None,
            log_r: tape.constant(Array2::from_shape_vec((batch.len(), 1), log_r).unwrap()),
            log_z: tape.scalar(0.0),
            entropy: None,
        };
        (terms, th, ph)
    }

    /// The estimator's gradient on one batch, flattened like [`exact_grad`] (phi's part is
    /// zero unless `learned_pb`). Applies the batch control variate when the output carries one.
    pub fn estimate(
        cfg: &ObjectiveConfig,
        theta: &Array2<f64>,
        phi: &Array2<f64>,
        learned_pb: bool,
        batch: &[Vec<usize>],
    ) -> Vec<f64> {
        let mut tape = Tape::<f64>::new();
        let (terms, th, ph) = terms(&mut tape, theta, phi, learned_pb, batch);
        let out = cfg.loss(&mut tape, &terms).unwrap();
        let grads_of = |tape: &Tape<f64>, v: Var| {
            let mut g = tape.backward(v);
            vec![g.take_or_zeros(th, theta.dim()), g.take_or_zeros(ph, phi.dim())]
        };
        let mut grads = grads_of(&tape, out.loss);
        if let Some(cv) = &out.batch_cv {
            let pathwise = grads_of(&tape, cv.pathwise);
            let score = grads_of(&tape, cv.score);
            apply_batch_cv(&mut grads, &pathwise, &score, cv.eps);
        }
        if !learned_pb {
            grads[1].fill(0.0);
        }
        grads.iter().flat_map(|g| g.iter().copied()).collect()
    }
}

use dag::Div;

fn dag_params(seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut r = rng::stream(seed, rng::streams::INIT);
    let theta = Array2::from_shape_fn((dag::STATES, dag::K + 1), |_| r.gen_range(-1.0..1.0));
    let phi = Array2::from_shape_fn((dag::STATES, dag::K), |_| r.gen_range(-1.0..1.0));
    (theta, phi)
}

/// Mean, standard error and covariance trace of the estimator over `m` seeded batches of `n`.
struct Stats {
    mean: Vec<f64>,
    se: Vec<f64>,
    trace_cov: f64,
}

fn run_estimator(cfg: &ObjectiveConfig, learned_pb: bool, n: usize, m: usize, seed: u64) -> Stats {
    let (theta, phi) = dag_params(1);
    let mut r = rng::stream(seed, rng::streams::SAMPLE);
    let mut sum: Vec<f64> = Vec::new();
    let mut sq: Vec<f64> = Vec::new();
    for _ in 0..m {
        let batch: Vec<Vec<usize>> = (0..n).map(|_| dag::sample(&theta, &mut r)).collect();
        let g = dag::estimate(cfg, &theta, &phi, learned_pb, &batch);
        if sum.is_empty() {
            sum = vec![0.0; g.len()];
            sq = vec![0.0; g.len()];
        }
        for (k, x) in g.iter().enumerate() {
            sum[k] += x;
            sq[k] += x * x;
        }
    }
    let mf = m as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / mf).collect();
    let var: Vec<f64> = sq
        .iter()
        .zip(&mean)
        .map(|(q, mu)| (q / mf - mu * mu).max(0.0) * mf / (mf - 1.0))
        .collect();
    Stats {
        se: var.iter().map(|v| (v / mf).sqrt()).collect(),
        trace_cov: var.iter().sum(),
        mean,
    }
}

fn divergence_cfg(div: Div, cv: ControlVariate) -> ObjectiveConfig {
    let objective = match div {
        Div::Rev => Objective::RevKl,
        Div::Fwd => Objective::FwdKl,
        Div::Renyi(alpha) => Objective::Renyi { alpha },
        Div::Tsallis(alpha) => Objective::Tsallis { alpha },
    };
    ObjectiveConfig {
        objective,
        cv,
        ..Default::default()
    }
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// (max over coordinates of |mean - exact| / se, relative error |mean - exact| / |exact|).
fn compare(stats: &Stats, exact: &[f64]) -> (f64, f64) {
    let diff: Vec<f64> = stats.mean.iter().zip(exact).map(|(a, b)| a - b).collect();
    let z = diff
        .iter()
        .zip(&stats.se)
        .map(|(d, se)| {
            if *se > 0.0 {
                d.abs() / se
            } else if d.abs() < 1e-9 {
                0.0
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max);
    (z, norm(&diff) / norm(exact))
}

/// The exact gradient with the P_B part zeroed (fixed P_B).
fn theta_part(mut g: Vec<f64>) -> Vec<f64> {
    let n = dag::STATES * (dag::K + 1);
    g[n..].iter_mut().for_each(|x| *x = 0.0);
    g
}

#[test]
fn dag_enumeration_is_consistent() {
    let all = dag::all();
    assert_eq!(all.len(), 16);
    let (theta, phi) = dag_params(1);
    let total_q: f64 = all.iter().map(|s| dag::log_q(&theta, s).exp()).sum();
    assert!((total_q - 1.0).abs() < 1e-12);
    for x in 0..dag::STATES {
        let pb: f64 = all
            .iter()
            .filter(|s| dag::object(s) == x)
            .map(|s| dag::log_pb(&phi, s).exp())
            .sum();
        assert!((pb - 1.0).abs() < 1e-12, "P_B(.|{x}) sums to {pb}");
    }
    for div in [Div::Rev, Div::Fwd, Div::Renyi(0.5), Div::Tsallis(2.0)] {
        assert!(dag::exact(div, &theta, &phi) > 0.01, "{div:?}");
    }
}

/// Reverse KL is unbiased, with every control variate, for a fixed and for a learned P_B:
/// the mean over seeded batches matches the exact gradient within a few standard errors.
#[test]
fn reverse_kl_estimators_are_unbiased() {
    let (theta, phi) = dag_params(1);
    let exact = dag::exact_grad(Div::Rev, &theta, &phi);
    for learned_pb in [false, true] {
        let exact = if learned_pb {
            exact.clone()
        } else {
            theta_part(exact.clone())
        };
        for cv in [ControlVariate::None, ControlVariate::Loo, ControlVariate::Batch] {
            let stats = run_estimator(&divergence_cfg(Div::Rev, cv), learned_pb, 8, 3000, 11);
            let (z, rel) = compare(&stats, &exact);
            assert!(z < 4.5, "rev-kl {cv} learned_pb={learned_pb}: {z} standard errors off");
            assert!(rel < 0.1, "rev-kl {cv} learned_pb={learned_pb}: relative error {rel}");
        }
    }
}

/// The self-normalised estimators (biased at small N) converge to the exact gradient as the
/// batch grows: at N = 4 the mean over many batches is many standard errors off, at N = 256 it
/// is within a few standard errors and a few percent.
#[test]
fn self_normalised_estimators_converge_with_the_batch() {
    let (theta, phi) = dag_params(1);
    for div in [
        Div::Fwd,
        Div::Renyi(0.5),
        Div::Renyi(2.0),
        Div::Tsallis(0.5),
        Div::Tsallis(2.0),
    ] {
        let exact_all = dag::exact_grad(div, &theta, &phi);
        for learned_pb in [false, true] {
            let exact = if learned_pb {
                exact_all.clone()
            } else {
                theta_part(exact_all.clone())
            };
            for cv in [ControlVariate::None, ControlVariate::Loo] {
                let cfg = divergence_cfg(div, cv);
                let small = run_estimator(&cfg, learned_pb, 4, 2000, 21);
                let large = run_estimator(&cfg, learned_pb, 256, 100, 22);
                let (z_small, rel_small) = compare(&small, &exact);
                let (z, rel) = compare(&large, &exact);
                println!(
                    "{div:?} {cv} learned_pb={learned_pb}: N=4 rel {rel_small:.3} ({z_small:.1} se), \
                     N=256 rel {rel:.3} ({z:.2} se)"
                );
                let what = format!("{div:?} {cv} learned_pb={learned_pb}");
                assert!(
                    rel < 0.1 && z < 4.5,
                    "{what}: N=256 relative error {rel}, {z} standard errors"
                );
                assert!(rel_small > 2.0 * rel, "{what}: no convergence, {rel_small} -> {rel}");
            }
        }
    }
}

/// Leave-one-out and the batch control variate lower the variance (trace of the covariance
/// over repeated batches of 8) measurably, on the same batches.
#[test]
fn control_variates_reduce_variance() {
    let ratio = |div: Div, cv: ControlVariate, learned_pb: bool| {
        let base = run_estimator(&divergence_cfg(div, ControlVariate::None), learned_pb, 8, 1000, 31);
        let with = run_estimator(&divergence_cfg(div, cv), learned_pb, 8, 1000, 31);
        with.trace_cov / base.trace_cov
    };
    for learned_pb in [false, true] {
        let loo = ratio(Div::Rev, ControlVariate::Loo, learned_pb);
        let batch = ratio(Div::Rev, ControlVariate::Batch, learned_pb);
        println!("rev-kl learned_pb={learned_pb}: variance ratio loo {loo:.3}, batch {batch:.3}");
        assert!(loo < 0.9, "rev-kl loo: variance ratio {loo}");
        assert!(batch < 0.9 * loo, "rev-kl batch: variance ratio {batch} vs loo {loo}");
    }
    for (div, limit) in [
        (Div::Fwd, 0.7),
        (Div::Renyi(0.5), 0.45),
        (Div::Renyi(2.0), 0.7),
        (Div::Tsallis(0.5), 0.45),
    ] {
        let loo = ratio(div, ControlVariate::Loo, false);
        println!("{div:?}: variance ratio loo {loo:.3}");
        assert!(loo < limit, "{div:?} loo: variance ratio {loo}");
    }
    // Tsallis with alpha > 1: heavy-tailed weights (q/pi)^(alpha-1); leave-one-out does not help
    println!(
        "Tsallis(2.0): variance ratio loo {:.3}",
        ratio(Div::Tsallis(2.0), ControlVariate::Loo, false)
    );
}

// ============================================================== finiteness far from balance

/// Residuals of +-1e4: finite gradients and non-NaN values for every objective and every g.
#[test]
fn huge_residuals_give_finite_gradients() {
    let s0 = Setup::new(9, 0.5);
    let mut objectives = vec![Objective::Tb, Objective::SubTb { lambda: 0.9 }, Objective::Db];
    objectives.extend([
        Objective::RevKl,
        Objective::FwdKl,
        Objective::Renyi { alpha: 0.5 },
        Objective::Tsallis { alpha: 0.5 },
        Objective::Tsallis { alpha: 2.0 },
    ]);
    for sign in [1.0, -1.0] {
        let mut s = Setup::new(9, 0.5);
        s.log_r = &s0.log_r + sign * 1e4;
        for objective in &objectives {
            let gs = if objective.is_balance() {
                let mut v = all_g();
                v.push(RegressionLoss::Linex(-1.3));
                v
            } else {
                vec![RegressionLoss::Squared]
            };
            for g in gs {
                let cfg = ObjectiveConfig {
                    objective: *objective,
                    g,
                    ..Default::default()
                };
                let mut tape = Tape::new();
                let p = s.store.bind(&mut tape);
                let terms = s.terms(&mut tape, &p);
                let out = cfg.loss(&mut tape, &terms).unwrap();
                assert!(!out.value.is_nan(), "{objective} {g}: value NaN");
                assert!(!tape.item(out.loss).is_nan(), "{objective} {g}: loss NaN");
                let mut grads = tape.backward(out.loss);
                for (gr, param) in p.grads(&mut grads, &s.store).iter().zip(s.store.iter()) {
                    assert!(
                        gr.iter().all(|x| x.is_finite()),
                        "{objective} {g}: {} gradient",
                        param.name
                    );
                }
                assert!(out.residuals.iter().all(|t| t.abs() > 9e3));
                if objective.is_balance() {
                    assert!(out.clipped_fraction > 0.0, "{objective} {g}");
                }
            }
        }
    }
}

/// The same in f32, the training precision.
#[test]
fn huge_residuals_in_f32() {
    let s = Setup::new(4, 0.5);
    let store: ParamStore<f32> = s.store.cast();
    for g in all_g() {
        for objective in [Objective::Tb, Objective::SubTb { lambda: 0.9 }, Objective::Db] {
            let cfg = ObjectiveConfig {
                objective,
                g,
                ..Default::default()
            };
            let mut tape = Tape::<f32>::new();
            let p = store.bind(&mut tape);
            let x = tape.constant(s.x.mapv(|v| v as f32));
            let logits = s.pf.forward(&mut tape, &p, x);
            let lp = tape.masked_log_softmax(logits, s.mask_f.clone());
            let log_pf = tape.gather(lp, s.act_f.clone());
            let log_f = s.head.forward(&mut tape, &p, x, None);
            let t = s.offsets[s.offsets.len() - 1];
            let b = s.offsets.len() - 1;
            let terms = Terms {
                offsets: s.offsets.clone(),
                log_pf,
                log_pb: tape.constant(Array2::zeros((t, 1))),
                log_f: Some(log_f),
                log_r: tape.constant(Array2::from_shape_fn(
                    (b, 1),
                    |(i, _)| if i % 2 == 0 { 1e4 } else { -1e4 },
                )),
                log_z: p[s.log_z],
                entropy: None,
            };
            let out = cfg.loss(&mut tape, &terms).unwrap();
            assert!(!out.value.is_nan());
            let mut grads = tape.backward(out.loss);
            for gr in p.grads(&mut grads, &store) {
                assert!(gr.iter().all(|x| x.is_finite()), "{objective} {g}");
            }
        }
    }
}

// ============================================================== names, serde and validation

fn option_of(e: Error) -> String {
    match e {
        Error::Config { option, .. } => option,
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn names_round_trip() {
    for s in ["squared", "linex1", "linex0.5", "cosh", "linex:-0.7", "linex:2.5"] {
        let g: RegressionLoss = s.parse().unwrap();
        assert_eq!(g.to_string(), s);
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<RegressionLoss>(&json).unwrap(), g);
    }
    assert_eq!("linex:1".parse::<RegressionLoss>().unwrap(), RegressionLoss::LINEX1);
    assert_eq!(
        "linex:0.5".parse::<RegressionLoss>().unwrap(),
        RegressionLoss::Linex(0.5)
    );
    for s in [
        "tb",
        "subtb",
        "subtb:0.75",
        "db",
        "rev-kl",
        "fwd-kl",
        "renyi",
        "renyi:2",
        "tsallis",
        "tsallis:0.3",
    ] {
        let o: Objective = s.parse().unwrap();
        assert_eq!(o.to_string(), s);
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<Objective>(&json).unwrap(), o);
    }
    assert_eq!("subtb".parse::<Objective>().unwrap(), Objective::SubTb { lambda: 0.9 });
    assert_eq!("renyi".parse::<Objective>().unwrap(), Objective::Renyi { alpha: 0.5 });
    for s in ["none", "loo", "batch"] {
        let c: ControlVariate = s.parse().unwrap();
        assert_eq!(c.to_string(), s);
    }
    let cfg = ObjectiveConfig {
        objective: Objective::Renyi { alpha: 0.25 },
        g: RegressionLoss::Linex(-1.5),
        clip: 20.0,
        cv: ControlVariate::Loo,
        entropy_weight: 0.01,
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<ObjectiveConfig>(&json).unwrap(), cfg);
    let partial: ObjectiveConfig = serde_json::from_str(r#"{"objective": "subtb", "g": "linex0.5"}"#).unwrap();
    assert_eq!(partial.clip, 50.0);
    assert_eq!(partial.g, RegressionLoss::LINEX_HALF);
    assert!(serde_json::from_str::<ObjectiveConfig>(r#"{"g": "linex:0"}"#).is_err());
    assert!(serde_json::from_str::<ObjectiveConfig>(r#"{"bogus": 1}"#).is_err());
}

#[test]
fn unknown_names_list_the_allowed_ones() {
    let e = "huber".parse::<RegressionLoss>().unwrap_err().to_string();
    assert!(
        e.contains("objective.g") && e.contains("linex:<alpha>") && e.contains("cosh"),
        "{e}"
    );
    let e = "tb2".parse::<Objective>().unwrap_err().to_string();
    assert!(e.contains("rev-kl") && e.contains("tsallis"), "{e}");
    let e = "pathwise".parse::<ControlVariate>().unwrap_err().to_string();
    assert!(e.contains("objective.cv") && e.contains("loo"), "{e}");
    assert_eq!(option_of("tb:3".parse::<Objective>().unwrap_err()), "objective");
}

#[test]
fn invalid_settings_name_the_option() {
    let check = |cfg: ObjectiveConfig, option: &str| {
        let e = cfg.validate().unwrap_err();
        let text = e.to_string();
        assert_eq!(option_of(e), option, "{cfg:?}: {text}");
    };
    let with = |objective| ObjectiveConfig {
        objective,
        ..Default::default()
    };
    for lambda in [0.0, -0.5, f64::NAN, f64::INFINITY] {
        check(with(Objective::SubTb { lambda }), "objective.lambda");
    }
    for alpha in [0.0, 1.0, -0.5, f64::NAN, f64::INFINITY] {
        check(with(Objective::Renyi { alpha }), "objective.alpha");
        check(with(Objective::Tsallis { alpha }), "objective.alpha");
    }
    for a in [0.0, f64::NAN, f64::NEG_INFINITY] {
        check(
            ObjectiveConfig {
                g: RegressionLoss::Linex(a),
                ..Default::default()
            },
            "objective.g",
        );
    }
    assert_eq!(
        option_of("linex:0".parse::<RegressionLoss>().unwrap_err()),
        "objective.g"
    );
    assert!(RegressionLoss::linex(0.0).unwrap_err().to_string().contains("nonzero"));
    assert_eq!(
        option_of("subtb:-1".parse::<Objective>().unwrap_err()),
        "objective.lambda"
    );
    assert_eq!(
        option_of("renyi:1".parse::<Objective>().unwrap_err()),
        "objective.alpha"
    );
    assert_eq!(
        option_of("tsallis:x".parse::<Objective>().unwrap_err()),
        "objective.alpha"
    );
    for clip in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        check(
            ObjectiveConfig {
                clip,
                ..Default::default()
            },
            "objective.clip",
        );
    }
    // exp(|alpha| clip) must stay finite in f32
    check(
        ObjectiveConfig {
            g: RegressionLoss::Linex(-2.0),
            ..Default::default()
        },
        "objective.clip",
    );
    ObjectiveConfig {
        g: RegressionLoss::Linex(-2.0),
        clip: 40.0,
        ..Default::default()
    }
    .validate()
    .unwrap();
    for w in [-0.1, f64::NAN, f64::INFINITY] {
        check(
            ObjectiveConfig {
                entropy_weight: w,
                ..Default::default()
            },
            "objective.entropy_weight",
        );
    }
    for objective in [Objective::Tb, Objective::Db, Objective::SubTb { lambda: 0.9 }] {
        for cv in [ControlVariate::Loo, ControlVariate::Batch] {
            check(
                ObjectiveConfig {
                    objective,
                    cv,
                    ..Default::default()
                },
                "objective.cv",
            );
        }
    }
    for objective in [
        Objective::FwdKl,
        Objective::Renyi { alpha: 0.5 },
        Objective::Tsallis { alpha: 0.5 },
    ] {
        check(
            ObjectiveConfig {
                objective,
                cv: ControlVariate::Batch,
                ..Default::default()
            },
            "objective.cv",
        );
    }
    ObjectiveConfig::default().validate().unwrap();
}

#[test]
fn missing_terms_are_errors_naming_the_cause() {
    let s = Setup::new(2, 0.5);
    for objective in [Objective::SubTb { lambda: 0.9 }, Objective::Db] {
        let cfg = ObjectiveConfig {
            objective,
            ..Default::default()
        };
        assert!(cfg.needs_log_f() && cfg.needs_log_z());
        let mut tape = Tape::new();
        let p = s.store.bind(&mut tape);
        let mut terms = s.terms(&mut tape, &p);
        terms.log_f = None;
        let e = cfg.loss(&mut tape, &terms).unwrap_err().to_string();
        assert!(e.contains("log_f"), "{e}");
    }
    let cfg = ObjectiveConfig {
        entropy_weight: 0.1,
        ..Default::default()
    };
    let mut tape = Tape::new();
    let p = s.store.bind(&mut tape);
    let mut terms = s.terms(&mut tape, &p);
    terms.entropy = None;
    assert_eq!(
        option_of(cfg.loss(&mut tape, &terms).unwrap_err()),
        "objective.entropy_weight"
    );
    // leave-one-out with a single trajectory
    let (theta, phi) = dag_params(1);
    let cfg = divergence_cfg(Div::Rev, ControlVariate::Loo);
    assert!(!cfg.needs_log_z() && !cfg.needs_log_f() && cfg.supports_learned_pb());
    let mut tape = Tape::new();
    let (terms, _, _) = dag::terms(&mut tape, &theta, &phi, false, &[vec![0]]);
    assert_eq!(option_of(cfg.loss(&mut tape, &terms).unwrap_err()), "objective.cv");
}

/// The entropy bonus: the reported value and the loss move by exactly -w * mean(entropy).
#[test]
fn entropy_bonus_is_minus_w_mean_entropy() {
    let s = Setup::new(8, 0.5);
    let run = |w: f64| {
        let cfg = ObjectiveConfig {
            objective: Objective::SubTb { lambda: 0.9 },
            entropy_weight: w,
            ..Default::default()
        };
        let mut tape = Tape::new();
        let p = s.store.bind(&mut tape);
        let terms = s.terms(&mut tape, &p);
        let out = cfg.loss(&mut tape, &terms).unwrap();
        let h = col(&tape, terms.entropy.unwrap());
        (
            out.value,
            tape.item(out.loss),
            out.entropy.unwrap(),
            h.iter().sum::<f64>() / h.len() as f64,
        )
    };
    let (v0, l0, h0, mean_h) = run(0.0);
    let (v1, l1, h1, _) = run(0.3);
    assert!(mean_h > 0.1);
    assert_eq!(h0, h1);
    assert!((h0 - mean_h).abs() < 1e-14);
    assert!((v1 - (v0 - 0.3 * mean_h)).abs() < 1e-12);
    assert!((l1 - (l0 - 0.3 * mean_h)).abs() < 1e-12);
}

/// `loss` checks its configuration itself (a config built in code need not
/// come through a validated `TrainConfig`), and a parameter given to an
/// objective that takes none is refused, not dropped.
#[test]
fn loss_refuses_an_invalid_config_and_parameters_are_refused_where_none_is_taken() {
    let s = Setup::new(2, 0.5);
    let cfg = ObjectiveConfig {
        clip: 0.0,
        ..Default::default()
    };
    let mut tape = Tape::new();
    let p = s.store.bind(&mut tape);
    let terms = s.terms(&mut tape, &p);
    assert_eq!(option_of(cfg.loss(&mut tape, &terms).unwrap_err()), "objective.clip");
    for name in ["tb:3", "db:3", "rev-kl:0.5", "fwd-kl:2"] {
        assert_eq!(option_of(name.parse::<Objective>().unwrap_err()), "objective", "{name}");
    }
}
