//! Every autodiff op against central finite differences in f64, on random
//! shapes and values (proptest), plus the masked-softmax guarantees.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[a.clone()]` reads best in these one-line checks
use gflownet::autodiff::{gradcheck, Activation, Tape, Var};
use ndarray::Array2;
use proptest::prelude::*;

const TOL: f64 = 1e-6;

/// A fixed, irregular weighting so every output entry matters differently.
fn weights(shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_fn(shape, |(i, j)| (1.3 * i as f64 + 0.7 * j as f64 + 0.4).sin() + 0.1)
}

fn wsum(tape: &mut Tape<f64>, y: Var) -> Var {
    let w = tape.constant(weights(tape.value(y).dim()));
    let p = tape.mul(y, w);
    tape.sum(p)
}

fn matrix(max_r: usize, max_c: usize, lo: f64, hi: f64) -> impl Strategy<Value = Array2<f64>> {
    (1..=max_r, 1..=max_c).prop_flat_map(move |(r, c)| {
        proptest::collection::vec(lo..hi, r * c).prop_map(move |v| Array2::from_shape_vec((r, c), v).unwrap())
    })
}

/// Values kept away from 0 so ReLU-like kinks are not straddled by the finite difference.
fn away_from_zero(m: Array2<f64>) -> Array2<f64> {
    m.mapv(|x| if x.abs() < 0.05 { x + 0.1 } else { x })
}

fn assert_grad(inputs: &[Array2<f64>], f: impl Fn(&mut Tape<f64>, &[Var]) -> Var) -> Result<(), TestCaseError> {
    let r = gradcheck(inputs, 1e-6, f);
    prop_assert!(r.max_error < TOL, "gradcheck failed: {r:?}");
    Ok(())
}

fn mask_for(m: &Array2<f64>, bits: &[bool]) -> Array2<bool> {
    let (r, c) = m.dim();
    let mut mask = Array2::from_shape_fn((r, c), |(i, j)| bits[(i * c + j) % bits.len()]);
    for i in 0..r {
        mask[[i, i % c]] = true; // at least one valid entry per row
    }
    mask
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matmul((a, k) in matrix(5, 5, -2.0, 2.0).prop_flat_map(|a| { let k = a.ncols(); (Just(a), Just(k)) }),
              n in 1usize..5, seed in 0u64..1000) {
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 3) as f64 + seed as f64).sin());
        assert_grad(&[a, b], |t, v| { let y = t.matmul(v[0], v[1]); wsum(t, y) })?;
    }

    #[test]
    fn add_sub_mul_broadcast(a in matrix(4, 4, -2.0, 2.0), which in 0usize..4, op in 0usize..3) {
        let (r, c) = a.dim();
        let shape = [(r, c), (1, c), (r, 1), (1, 1)][which];
        let b = weights(shape).mapv(|x| x * 1.7 - 0.2);
        for swap in [false, true] {
            let inputs = if swap { [b.clone(), a.clone()] } else { [a.clone(), b.clone()] };
            assert_grad(&inputs, |t, v| {
                let y = match op { 0 => t.add(v[0], v[1]), 1 => t.sub(v[0], v[1]), _ => t.mul(v[0], v[1]) };
                wsum(t, y)
            })?;
        }
    }

    #[test]
    fn scalar_ops(a in matrix(4, 4, -2.0, 2.0), c in -3.0f64..3.0) {
        assert_grad(&[a.clone()], |t, v| { let y = t.scale(v[0], c); wsum(t, y) })?;
        assert_grad(&[a.clone()], |t, v| { let y = t.add_scalar(v[0], c); let y = t.square(y); wsum(t, y) })?;
        assert_grad(&[a], |t, v| { let y = t.neg(v[0]); wsum(t, y) })?;
    }

    #[test]
    fn elementwise(a in matrix(4, 4, -2.0, 2.0)) {
        let a = away_from_zero(a);
        assert_grad(&[a.clone()], |t, v| { let y = t.exp(v[0]); wsum(t, y) })?;
        assert_grad(&[a.mapv(|x| x.abs() + 0.5)], |t, v| { let y = t.log(v[0]); wsum(t, y) })?;
        assert_grad(&[a.clone()], |t, v| { let y = t.square(v[0]); wsum(t, y) })?;
        assert_grad(&[a.clone()], |t, v| { let y = t.relu(v[0]); wsum(t, y) })?;
        assert_grad(&[a.clone()], |t, v| { let y = t.leaky_relu(v[0], 0.01); wsum(t, y) })?;
        assert_grad(&[a], |t, v| { let y = t.tanh(v[0]); wsum(t, y) })?;
    }

    #[test]
    fn reductions(a in matrix(5, 5, -2.0, 2.0)) {
        assert_grad(&[a.clone()], |t, v| { let y = t.exp(v[0]); t.sum(y) })?;
        assert_grad(&[a.clone()], |t, v| { let y = t.exp(v[0]); t.mean(y) })?;
        for axis in 0..2 {
            assert_grad(&[a.clone()], |t, v| { let y = t.sum_axis(v[0], axis); wsum(t, y) })?;
            assert_grad(&[a.clone()], |t, v| { let y = t.mean_axis(v[0], axis); wsum(t, y) })?;
            assert_grad(&[a.clone()], |t, v| { let y = t.logsumexp(v[0], axis); wsum(t, y) })?;
        }
    }

    #[test]
    fn masked_log_softmax_and_entropy(a in matrix(5, 6, -3.0, 3.0), bits in proptest::collection::vec(any::<bool>(), 1..30)) {
        let mask = mask_for(&a, &bits);
        let m2 = mask.clone();
        // through the probabilities (masked entries are exactly 0)
        assert_grad(&[a.clone()], |t, v| { let l = t.masked_log_softmax(v[0], m2.clone()); let p = t.exp(l); wsum(t, p) })?;
        // through one chosen valid log-probability per row
        let chosen: Vec<usize> = (0..a.nrows()).map(|i| i % a.ncols()).collect();
        let m3 = mask.clone();
        assert_grad(&[a.clone()], |t, v| { let l = t.masked_log_softmax(v[0], m3.clone()); let g = t.gather(l, chosen.clone()); wsum(t, g) })?;
        // the entropy of the masked softmax, from its log-probabilities
        let m4 = mask.clone();
        assert_grad(&[a.clone()], |t, v| { let l = t.masked_log_softmax(v[0], m4.clone()); let h = t.entropy(l); wsum(t, h) })?;
        let mut t = Tape::<f64>::new();
        let x = t.leaf(a.clone());
        let l = t.masked_log_softmax(x, mask.clone());
        let h = t.entropy(l);
        for (i, row) in a.rows().into_iter().enumerate() {
            let valid: Vec<f64> = row.iter().zip(mask.row(i)).filter(|(_, &m)| m).map(|(&x, _)| x.exp()).collect();
            let z: f64 = valid.iter().sum();
            let direct: f64 = -valid.iter().map(|e| e / z * (e / z).ln()).sum::<f64>();
            prop_assert!((t.value(h)[[i, 0]] - direct).abs() < 1e-9, "row {i}: {} vs {direct}", t.value(h)[[i, 0]]);
        }
    }

    #[test]
    fn indexing(a in matrix(5, 4, -2.0, 2.0), picks in proptest::collection::vec(0usize..100, 1..8)) {
        let rows: Vec<usize> = picks.iter().map(|p| p % a.nrows()).collect();
        let cols: Vec<usize> = (0..a.nrows()).map(|i| picks[i % picks.len()] % a.ncols()).collect();
        assert_grad(&[a.clone()], |t, v| { let y = t.index_select(v[0], rows.clone()); wsum(t, y) })?;
        let mut t = Tape::new();
        let x = t.constant(a.clone());
        let y = t.index_select(x, rows.clone());
        prop_assert_eq!(t.value(y), &a.select(ndarray::Axis(0), &rows));
        assert_grad(&[a.clone()], |t, v| { let y = t.gather(v[0], cols.clone()); wsum(t, y) })?;
        let b = weights((a.nrows(), 2));
        assert_grad(&[a.clone(), b], |t, v| { let y = t.concat(&[v[0], v[1]], 1); wsum(t, y) })?;
        let c = weights((3, a.ncols()));
        assert_grad(&[a, c], |t, v| { let y = t.concat(&[v[1], v[0]], 0); wsum(t, y) })?;
    }

    #[test]
    fn segments(a in matrix(8, 3, -2.0, 2.0), cuts in proptest::collection::vec(0usize..9, 0..4)) {
        let mut offsets: Vec<usize> = cuts.iter().map(|c| c % (a.nrows() + 1)).collect();
        offsets.push(0);
        offsets.push(a.nrows());
        offsets.sort();
        let o2 = offsets.clone();
        assert_grad(&[a.clone()], |t, v| { let y = t.segment_sum(v[0], o2.clone()); wsum(t, y) })?;
        assert_grad(&[a], |t, v| { let y = t.segment_cumsum(v[0], offsets.clone()); wsum(t, y) })?;
    }

    #[test]
    fn sparse_matmul(w in matrix(6, 4, -2.0, 2.0), picks in proptest::collection::vec((0usize..6, -2.0f32..2.0), 0..12)) {
        // sparse rows built from random (column, value) picks (up to 5 a row,
        // past the 4 that the forward pass adds in one pass), some rows empty
        let mut x = gflownet::nn::Csr::new(w.nrows());
        for chunk in picks.chunks(5) {
            x.push_row(chunk.iter().map(|&(c, v)| ((c % w.nrows()) as u32, v)));
        }
        x.push_row([]);
        // the dense reference in f64 (`to_dense` adds a row's repeated columns in f32)
        let mut dense = Array2::<f64>::zeros((x.nrows(), w.nrows()));
        for r in 0..x.nrows() {
            let (c, v) = x.row(r);
            c.iter().zip(v).for_each(|(&c, &v)| dense[[r, c as usize]] += v as f64);
        }
        let direct = dense.dot(&w);
        let x = std::sync::Arc::new(x);
        let mut t = Tape::new();
        let wv = t.constant(w.clone());
        let y = t.sparse_matmul(x.clone(), wv);
        prop_assert!((t.value(y) - &direct).iter().all(|d| d.abs() < 1e-6), "forward equals the dense product");
        assert_grad(&[w.clone()], |t, v| { let y = t.sparse_matmul(x.clone(), v[0]); wsum(t, y) })?;
        // with its rows placed elsewhere (the sampler's order): row r of x is row at[r]
        let n = x.nrows();
        let at: std::sync::Arc<[usize]> = (0..n).map(|r| (r * 3 + 1) % n).collect::<Vec<_>>().into();
        if (0..n).all(|r| at.contains(&r)) {
            let op = || gflownet::autodiff::ops::SparseMatMul { x: x.clone(), at: Some(at.clone()) };
            let mut t = Tape::new();
            let wv = t.constant(w.clone());
            let y = t.apply(op(), &[wv]);
            for r in 0..n {
                prop_assert!((0..w.ncols()).all(|j| (t.value(y)[[at[r], j]] - direct[[r, j]]).abs() < 1e-6), "row {r} placed");
            }
            assert_grad(&[w], |t, v| { let y = t.apply(op(), &[v[0]]); wsum(t, y) })?;
        }
    }

    #[test]
    fn affine(x in matrix(5, 4, -2.0, 2.0), n in 1usize..5, seed in 0u64..1000,
              picks in proptest::collection::vec((0usize..6, -2.0f32..2.0), 0..12)) {
        let k = x.ncols();
        let w = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 3) as f64 + seed as f64).sin());
        let b = Array2::from_shape_fn((1, n), |(_, j)| (j as f64 - seed as f64).cos());
        let mut sx = gflownet::nn::Csr::new(k);
        for chunk in picks.chunks(3) {
            sx.push_row(chunk.iter().map(|&(c, v)| ((c % k) as u32, v)));
        }
        sx.push_row([]);
        let dense = sx.to_dense().mapv(|v| v as f64);
        let sx = std::sync::Arc::new(sx);
        for act in [None, Some(Activation::Relu), Some(Activation::LeakyRelu(0.1)), Some(Activation::Tanh)] {
            // the fused op equals matmul, add and the activation apart, and its
            // gradients match finite differences
            let mut t = Tape::new();
            let (xv, wv, bv) = (t.constant(x.clone()), t.constant(w.clone()), t.constant(b.clone()));
            let fused = t.affine(xv, wv, bv, act);
            let xw = t.matmul(xv, wv);
            let mut apart = t.add(xw, bv);
            if let Some(act) = act {
                apart = t.activate(apart, act);
            }
            prop_assert_eq!(t.value(fused), t.value(apart), "{:?}", act);
            assert_grad(&[x.clone(), w.clone(), b.clone()], |t, v| { let y = t.affine(v[0], v[1], v[2], act); wsum(t, y) })?;
            // and the sparse one
            let mut direct = dense.dot(&w) + &b;
            if let Some(act) = act {
                let mut t = Tape::new();
                let d = t.constant(direct);
                let y = t.activate(d, act);
                direct = t.value(y).clone();
            }
            let mut t = Tape::new();
            let (wv, bv) = (t.constant(w.clone()), t.constant(b.clone()));
            let y = t.sparse_affine(sx.clone(), wv, bv, act);
            prop_assert!((t.value(y) - &direct).iter().all(|d| d.abs() < 1e-6), "forward equals the dense affine map");
            assert_grad(&[w.clone(), b.clone()], |t, v| { let y = t.sparse_affine(sx.clone(), v[0], v[1], act); wsum(t, y) })?;
        }
    }

    #[test]
    fn node_used_several_times(a in matrix(4, 4, -1.5, 1.5)) {
        // x*x + exp(x)*x + x: x feeds five uses
        assert_grad(&[a], |t, v| {
            let x = v[0];
            let sq = t.mul(x, x);
            let e = t.exp(x);
            let ex = t.mul(e, x);
            let s = t.add(sq, ex);
            let s = t.add(s, x);
            wsum(t, s)
        })?;
    }

    #[test]
    fn segment_sum_matches_brute_force(a in matrix(9, 2, -2.0, 2.0)) {
        let n = a.nrows();
        let offsets = vec![0, n / 3, n / 2, n];
        let mut t = Tape::new();
        let x = t.constant(a.clone());
        let s = t.segment_sum(x, offsets.clone());
        let c = t.segment_cumsum(x, offsets.clone());
        for (k, w) in offsets.windows(2).enumerate() {
            for j in 0..a.ncols() {
                let direct: f64 = (w[0]..w[1]).map(|r| a[[r, j]]).sum();
                prop_assert!((t.value(s)[[k, j]] - direct).abs() < 1e-12);
                let mut run = 0.0;
                for r in w[0]..w[1] {
                    run += a[[r, j]];
                    prop_assert!((t.value(c)[[r, j]] - run).abs() < 1e-12);
                }
            }
        }
    }
}

#[test]
fn detach_stops_the_gradient() {
    let x = ndarray::array![[1.5, -2.0, 0.25]];
    let mut t = Tape::new();
    let v = t.leaf(x.clone());
    let d = t.detach(v);
    let p = t.mul(v, d); // d/dx sum(x * stop(x)) = x, not 2x
    let s = t.sum(p);
    let g = t.backward(s);
    assert_eq!(g.get(v).unwrap(), &x);
}

#[test]
fn masked_log_softmax_zero_probability_and_finite_gradients() {
    let logits = ndarray::array![[1.0f32, 50.0, -3.0, 2.0], [0.5, 0.5, 0.5, 0.5], [-1e4, 1e4, 3.0, 7.0]];
    let mask = ndarray::array![
        [true, false, true, true],
        [false, false, true, false],
        [true, true, false, true]
    ];
    let mut t = Tape::new();
    let x = t.leaf(logits);
    let l = t.masked_log_softmax(x, mask.clone());
    let out = t.value(l).clone();
    for ((i, j), &m) in mask.indexed_iter() {
        if m {
            assert!(
                out[[i, j]].is_finite() || out[[i, j]] < -1e3,
                "valid entry {i},{j}: {}",
                out[[i, j]]
            );
        } else {
            assert_eq!(
                out[[i, j]].exp(),
                0.0,
                "masked entry {i},{j} must have probability exactly 0"
            );
        }
    }
    // a row with a single valid entry has log-probability exactly 0
    assert_eq!(out[[1, 2]], 0.0);
    // valid probabilities sum to 1
    for i in 0..3 {
        let s: f32 = out.row(i).iter().map(|v| v.exp()).sum();
        assert!((s - 1.0).abs() < 1e-6, "row {i} sums to {s}");
    }
    // gradients through chosen actions are finite, and zero on masked entries
    let g = t.gather(l, vec![0, 2, 0]);
    let s = t.sum(g);
    let grads = t.backward(s);
    let gx = grads.get(x).unwrap();
    assert!(gx.iter().all(|v| v.is_finite()), "{gx:?}");
    for ((i, j), &m) in mask.indexed_iter() {
        if !m {
            assert_eq!(gx[[i, j]], 0.0);
        }
    }
    // the single-valid row's gradient is exactly zero (its log-probability is constant)
    assert!(gx.row(1).iter().all(|&v| v == 0.0));
}

#[test]
#[should_panic(expected = "matmul: shapes (2, 3) and (2, 3) do not chain")]
fn shape_mismatch_names_both_shapes() {
    let mut t = Tape::<f32>::new();
    let a = t.constant(Array2::zeros((2, 3)));
    let b = t.constant(Array2::zeros((2, 3)));
    t.matmul(a, b);
}

#[test]
#[should_panic(expected = "add: shapes (2, 3) and (3, 2) do not broadcast")]
fn broadcast_mismatch_names_both_shapes() {
    let mut t = Tape::<f32>::new();
    let a = t.constant(Array2::zeros((2, 3)));
    let b = t.constant(Array2::zeros((3, 2)));
    t.add(a, b);
}

#[test]
fn gradcheck_catches_a_wrong_derivative() {
    // An op whose backward is deliberately off by a factor 2 must be reported.
    struct BadSquare;
    impl gflownet::autodiff::Op<f64> for BadSquare {
        fn name(&self) -> &'static str {
            "bad_square"
        }
        fn forward(&self, xs: &[&Array2<f64>]) -> Array2<f64> {
            xs[0].mapv(|v| v * v)
        }
        fn backward(&self, xs: &[&Array2<f64>], _: &Array2<f64>, g: &mut Array2<f64>) -> Vec<Option<Array2<f64>>> {
            vec![Some(&*g * &xs[0].mapv(|v| 4.0 * v))]
        }
    }
    let r = gradcheck(&[ndarray::array![[0.7, -1.1]]], 1e-6, |t, v| {
        let y = t.apply(BadSquare, &[v[0]]);
        t.sum(y)
    });
    assert!(r.max_error > 0.1, "{r:?}");
}

#[test]
#[should_panic(expected = "slope must be finite and >= 0")]
fn a_negative_leaky_relu_slope_is_refused() {
    // its derivative is read from the sign of the output, which a negative slope flips
    let mut t = Tape::<f64>::new();
    let x = t.leaf(Array2::from_elem((2, 2), -1.0));
    t.leaky_relu(x, -0.5);
}
