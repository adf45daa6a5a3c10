//! Control variates for the divergence objectives' gradient estimators
//! (da Silva et al., NeurIPS 2024, arXiv 2410.09355, the variance-reduction part).
//!
//! A divergence gradient is estimated from `N` trajectories `tau_i ~ P_F` as
//! `(1/N) sum_i [ f_i grad log q_i + grad h_i ]` (score-function term with weights
//! `f_i`, pathwise term `h_i`), from the identity
//! `grad E_q[f_theta] = E_q[f grad log q + grad f]`. Two control variates keep its
//! expectation and lower its variance:
//!
//! * **`loo`** (REINFORCE leave-one-out): the score weight of sample `i` becomes
//!   `f_i - (sum_j f_j - f_i) / (N - 1)`, i.e. `N/(N-1) (f_i - mean f)`. The baseline
//!   of sample `i` does not depend on `tau_i`, so `E[baseline_i grad log q_i] = 0`:
//!   unbiased (for `N >= 2`). For self-normalised weights (`fwd-kl`, `renyi`) the
//!   batch mean of `N w_i` is exactly the constant 1, so the baseline is that constant.
//! * **`batch`** (for a pathwise term): with `S = grad sum_i log q_i` (zero mean
//!   on-policy) and `G = grad sum_i h_i`, subtract `a_hat S` from the gradient, with
//!   `a_hat = <S, G> / (eps + |S|^2)` estimated on the batch (the least-squares
//!   coefficient of `G` on `S`). For a fixed `P_B` in `rev-kl`, `G = S` and the
//!   pure-noise term `grad sum log q` is removed entirely; with a learned `P_B` only its
//!   `S`-aligned part goes. `batch` also applies `loo` to the score weights.
//!
//! The batch control variate needs two more gradient passes, which the objective
//! cannot do itself: [`super::LossOutput::batch_cv`] carries the two scalar tape
//! variables, and the trainer combines the parameter gradients with [`apply_batch_cv`]:
//!
//! ```
//! # use gflownet::autodiff::Tape;
//! # use gflownet::nn::ParamStore;
//! # use gflownet::objective::{apply_batch_cv, Objective, ObjectiveConfig, ControlVariate, Terms};
//! # use ndarray::{array, Array2};
//! # let mut store = ParamStore::<f64>::new();
//! # let id = store.add("logits", "pf", array![[0.3, -0.2]]);
//! # let mut tape = Tape::new();
//! # let p = store.bind(&mut tape);
//! # let rows = tape.index_select(p[id], vec![0, 0, 0]);
//! # let mask = Array2::from_elem((3, 2), true);
//! # let lp = tape.masked_log_softmax(rows, mask);
//! # let log_pf = tape.gather(lp, vec![0, 1, 1]);
//! # let log_pb = tape.constant(Array2::zeros((3, 1)));
//! # let log_r = tape.constant(array![[0.5], [1.0], [-0.3]]);
//! # let log_z = tape.constant(array![[0.0]]);
//! # let terms = Terms { offsets: vec![0, 1, 2, 3], log_pf, log_pb, log_f: None, log_r, log_z, entropy: None };
//! let cfg = ObjectiveConfig { objective: Objective::RevKl, cv: ControlVariate::Batch, ..Default::default() };
//! let out = cfg.loss(&mut tape, &terms)?;
//! let mut grads = p.grads(&mut tape.backward(out.loss), &store);
//! if let Some(cv) = &out.batch_cv {
//!     let pathwise = p.grads(&mut tape.backward(cv.pathwise), &store);
//!     let score = p.grads(&mut tape.backward(cv.score), &store);
//!     let a_hat = apply_batch_cv(&mut grads, &pathwise, &score, cv.eps);
//!     // fixed P_B: the pathwise gradient is (1/N) grad sum log q, removed entirely
//!     assert!((a_hat - 1.0 / 3.0).abs() < 1e-9);
//! }
//! # Ok::<(), gflownet::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, Zip};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::autodiff::Var;
use crate::error::Result;
use crate::{Error, Scalar};

/// `eps` in `a_hat = <S, G> / (eps + |S|^2)`.
pub const BATCH_CV_EPS: f64 = 1e-12;

/// Which control variate the divergence objectives use; names `none | loo | batch`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ControlVariate {
    #[default]
    None,
    /// REINFORCE leave-one-out baseline on the score-function weights.
    Loo,
    /// `loo` plus the batch control variate on the pathwise term (`rev-kl` only).
    Batch,
}

impl fmt::Display for ControlVariate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControlVariate::None => "none",
            ControlVariate::Loo => "loo",
            ControlVariate::Batch => "batch",
        })
    }
}

impl FromStr for ControlVariate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(ControlVariate::None),
            "loo" => Ok(ControlVariate::Loo),
            "batch" => Ok(ControlVariate::Batch),
            _ => Err(Error::config(
                "objective.cv",
                format!("unknown control variate `{s}`; allowed: none, loo, batch"),
            )),
        }
    }
}

impl Serialize for ControlVariate {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ControlVariate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Leave-one-out weights `f_i - (sum_j f_j - f_i) / (N - 1) = N/(N-1) (f_i - mean f)`.
/// Panics for fewer than 2 samples (the objectives refuse that case with an error first).
pub fn loo(f: &[f64]) -> Vec<f64> {
    let n = f.len();
    assert!(n >= 2, "leave-one-out needs at least 2 samples, got {n}");
    let mean = f.iter().sum::<f64>() / n as f64;
    let k = n as f64 / (n as f64 - 1.0);
    f.iter().map(|&x| k * (x - mean)).collect()
}

/// The two scalar tape variables the batch control variate needs (see the module docs).
#[derive(Copy, Clone, Debug)]
pub struct BatchCv {
    /// `[1, 1]`: the pathwise part of the loss, `(1/N) sum_i h_i`, with the loss's scaling.
    pub pathwise: Var,
    /// `[1, 1]`: `sum_i log P_F(tau_i)` (its scale does not matter).
    pub score: Var,
    /// `eps` in `a_hat`.
    pub eps: f64,
}

/// Subtracts `a_hat * score` from `grads`, `a_hat = <score, pathwise> / (eps + |score|^2)`,
/// where each slice holds one gradient per parameter (e.g. from [`crate::nn::Bound::grads`]).
/// Sums are taken in `f64`. Returns `a_hat`.
pub fn apply_batch_cv<T: Scalar>(
    grads: &mut [Array2<T>],
    pathwise: &[Array2<T>],
    score: &[Array2<T>],
    eps: f64,
) -> f64 {
    assert!(
        grads.len() == pathwise.len() && grads.len() == score.len(),
        "apply_batch_cv: {} gradients, {} pathwise, {} score",
        grads.len(),
        pathwise.len(),
        score.len()
    );
    let (mut dot, mut sq) = (0.0f64, 0.0f64);
    for (p, s) in pathwise.iter().zip(score) {
        assert_eq!(p.dim(), s.dim(), "apply_batch_cv: pathwise and score shapes differ");
        Zip::from(p).and(s).for_each(|&p, &s| {
            dot += p.to_f64() * s.to_f64();
            sq += s.to_f64() * s.to_f64();
        });
    }
    let a_hat = dot / (eps + sq);
    if !a_hat.is_finite() {
        return 0.0;
    }
    let a = T::from_f64(a_hat);
    for (g, s) in grads.iter_mut().zip(score) {
        assert_eq!(g.dim(), s.dim(), "apply_batch_cv: gradient and score shapes differ");
        Zip::from(g).and(s).for_each(|g, &s| *g -= a * s);
    }
    a_hat
}
