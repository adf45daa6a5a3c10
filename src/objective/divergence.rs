//! Divergence objectives (da Silva, da Silva & Mesquita, "On Divergence Measures for
//! Training GFlowNets", NeurIPS 2024, arXiv 2410.09355).
//!
//! Between the forward policy's trajectory distribution `q(tau) = P_F(tau)` and the
//! target `pi(tau) = P_B(tau | x) R(x) / Z`, `Z = sum_x R(x)`, with the per-trajectory
//! log weight
//!
//! ```text
//! l(tau) = log R(x) + sum log P_B(tau | x) - sum log P_F(tau)      (so pi/q = e^l / Z)
//! ```
//!
//! Each objective's `loss` is a surrogate whose gradient is a score-function
//! (REINFORCE) estimator of the divergence's gradient from `N` trajectories
//! `tau_i ~ q` **sampled on-policy**, built from the identity
//! `grad E_q[f_theta] = E_q[f grad log q + grad f]`: coefficients are computed in `f64`
//! and enter as constants (stop-gradient), in log space with softmax weights where the
//! estimator is self-normalised. None needs a learned `Z`: `Z` either cancels
//! or is estimated on the batch by `log Z_hat = log mean_i exp(l_i)`.
//! A learned `P_B` (a `log_pb` that carries a gradient) is supported by every
//! estimator here: `P_B` does not enter the sampling distribution, only `pi`, so
//! its gradient is a pathwise term.
//!
//! | name | divergence | gradient estimator (`w = softmax` over the batch) | |
//! | --- | --- | --- | --- |
//! | `rev-kl` | `KL(q \|\| pi) = E_q[-l] + log Z` | `(1/N) sum_i [ -l_i grad log q_i + grad(log q_i - log P_B,i) ]` | unbiased |
//! | `fwd-kl` | `KL(pi \|\| q)` | `sum_i w(l)_i [ -grad log q_i + (l_i - log Z_hat) grad log P_B,i ]` | self-normalised |
//! | `renyi` | `1/(a-1) log E_q[(pi/q)^(1-a)]` | `sum_i w((1-a) l)_i [ a/(a-1) grad log q_i - grad log P_B,i ]` | self-normalised |
//! | `tsallis` | `1/(a-1) (E_q[(pi/q)^(1-a)] - 1)` | `(1/N) sum_i e^(s_i) [ a/(a-1) grad log q_i - grad log P_B,i ]`, `s_i = (1-a)(l_i - log Z_hat)` | self-normalised (`Z_hat`) |
//!
//! Rényi-alpha and Tsallis-alpha are taken in the variational direction
//! `D(q || pi) = 1/(a-1) log sum q^a pi^(1-a)` (Li & Turner's Rényi VI): both tend to
//! the reverse KL as `a -> 1`; `a < 1` weights trajectories by `(pi/q)^(1-a)`, so
//! under-sampled high-reward trajectories count more (mass-covering). `a` must be
//! positive and not 1 (for `a < 0` the formula is maximised, not minimised, at `q = pi`).
//!
//! Control variates ([`super::control_variate`]): `loo` replaces the score weights `f_i`
//! of `rev-kl` and `tsallis` by their leave-one-out versions; for the self-normalised
//! `fwd-kl` and `renyi` the batch mean of `N w_i` is exactly 1, so the baseline is the
//! constant 1 (weights `w_i - 1/N`), which keeps the estimator's expectation exactly.
//! `batch` (only `rev-kl`, the one with a pathwise `grad log q` term) adds the batch
//! control variate on `(1/N) sum_i grad(log q_i - log P_B,i - log R_i)`.
//!
//! Reported values (`f64`, batch estimates): `rev-kl` `-mean l + log Z_hat`;
//! `fwd-kl` `sum w(l)_i l_i - log Z_hat`; `renyi` `lme((1-a) l)/(a-1) + log Z_hat`;
//! `tsallis` `(exp(lme(s)) - 1)/(a-1)` (`lme` = log-mean-exp).

use ndarray::Array2;

use super::control_variate::{loo, BatchCv, ControlVariate, BATCH_CV_EPS};
use super::{check_terms, log_mean_exp, log_weights, softmax, trajectory_sums, ObjectiveLoss, Terms};
use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::{Error, Scalar};

/// Default `alpha` of Rényi and Tsallis.
pub const DEFAULT_ALPHA: f64 = 0.5;

/// Cap on the Tsallis log weights `s_i` (reached only for `alpha > 1` far from the target,
/// where the exact gradient itself overflows).
pub const MAX_LOG_WEIGHT: f64 = 60.0;

/// The batch quantities every divergence uses.
struct Batch {
    /// `[B, 1]` `sum log P_F` and `sum log P_B` per trajectory.
    log_q: Var,
    log_pb: Var,
    /// `l_i` in `f64`.
    l: Vec<f64>,
}

fn prepare<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, cv: ControlVariate) -> Result<Batch> {
    let n = check_terms(tape, terms);
    if cv != ControlVariate::None && n < 2 {
        return Err(Error::config(
            "objective.cv",
            format!("`{cv}` needs at least 2 trajectories per batch, got {n}"),
        ));
    }
    let (log_q, log_pb) = trajectory_sums(tape, terms);
    let l = log_weights(tape, terms);
    Ok(Batch { log_q, log_pb, l })
}

/// `sum_i c_i x_i` for a `[N, 1]` tape variable `x` and constants `c`.
fn weighted<T: Scalar>(tape: &mut Tape<T>, x: Var, c: &[f64]) -> Var {
    let c = tape.constant(Array2::from_shape_fn((c.len(), 1), |(i, _)| T::from_f64(c[i])));
    let p = tape.mul(x, c);
    tape.sum(p)
}

/// `score . log q + pb . log P_B` (the `P_B` term only when `log_pb` carries a gradient).
fn surrogate<T: Scalar>(tape: &mut Tape<T>, batch: &Batch, score: &[f64], pb: &[f64]) -> Var {
    let s = weighted(tape, batch.log_q, score);
    if tape.requires_grad(batch.log_pb) {
        let p = weighted(tape, batch.log_pb, pb);
        tape.add(s, p)
    } else {
        s
    }
}

fn done(loss: Var, value: f64, batch_cv: Option<BatchCv>) -> Result<ObjectiveLoss> {
    Ok(ObjectiveLoss {
        loss,
        value,
        clipped_fraction: 0.0,
        batch_cv,
    })
}

/// Reverse KL `KL(q || pi)`: score weights `f_i = -l_i` (leave-one-out with `loo`/`batch`),
/// pathwise term `(1/N) sum_i (log q_i - log P_B,i - log R_i)`. Unbiased.
pub fn reverse_kl<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, cv: ControlVariate) -> Result<ObjectiveLoss> {
    let batch = prepare(tape, terms, cv)?;
    let n = batch.l.len() as f64;
    let f: Vec<f64> = batch.l.iter().map(|&l| -l).collect();
    let f = if cv == ControlVariate::None { f } else { loo(&f) };
    let c: Vec<f64> = f.iter().map(|&x| x / n).collect();
    let score = weighted(tape, batch.log_q, &c);
    let h = tape.sub(batch.log_q, batch.log_pb);
    let h = tape.sub(h, terms.log_r);
    let pathwise = tape.mean(h);
    let loss = tape.add(score, pathwise);
    let value = -batch.l.iter().sum::<f64>() / n + log_mean_exp(&batch.l);
    let batch_cv = (cv == ControlVariate::Batch).then(|| BatchCv {
        pathwise,
        score: tape.sum(batch.log_q),
        eps: BATCH_CV_EPS,
    });
    done(loss, value, batch_cv)
}

/// Forward KL `KL(pi || q)`, self-normalised: `w = softmax(l)`, score weights `-w_i`
/// (`-(w_i - 1/N)` with `loo`), `P_B` weights `w_i (l_i - log Z_hat)`.
pub fn forward_kl<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, cv: ControlVariate) -> Result<ObjectiveLoss> {
    let batch = prepare(tape, terms, cv)?;
    let n = batch.l.len() as f64;
    let w = softmax(&batch.l);
    let log_z = log_mean_exp(&batch.l);
    let base = if cv == ControlVariate::None { 0.0 } else { 1.0 / n };
    let score: Vec<f64> = w.iter().map(|&w| -(w - base)).collect();
    let pb: Vec<f64> = w.iter().zip(&batch.l).map(|(&w, &l)| w * (l - log_z)).collect();
    let loss = surrogate(tape, &batch, &score, &pb);
    let value = w.iter().zip(&batch.l).map(|(&w, &l)| w * l).sum::<f64>() - log_z;
    done(loss, value, None)
}

/// Rényi-alpha `1/(a-1) log E_q[(pi/q)^(1-a)]`, self-normalised: `w = softmax((1-a) l)`,
/// score weights `a/(a-1) w_i` (`a/(a-1) (w_i - 1/N)` with `loo`), `P_B` weights `-w_i`.
pub fn renyi<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, alpha: f64, cv: ControlVariate) -> Result<ObjectiveLoss> {
    let batch = prepare(tape, terms, cv)?;
    let n = batch.l.len() as f64;
    let scaled: Vec<f64> = batch.l.iter().map(|&l| (1.0 - alpha) * l).collect();
    let w = softmax(&scaled);
    let k = alpha / (alpha - 1.0);
    let base = if cv == ControlVariate::None { 0.0 } else { 1.0 / n };
    let score: Vec<f64> = w.iter().map(|&w| k * (w - base)).collect();
    let pb: Vec<f64> = w.iter().map(|&w| -w).collect();
    let loss = surrogate(tape, &batch, &score, &pb);
    let value = log_mean_exp(&scaled) / (alpha - 1.0) + log_mean_exp(&batch.l);
    done(loss, value, None)
}

/// Tsallis-alpha `1/(a-1) (E_q[(pi/q)^(1-a)] - 1)`, with `Z` estimated on the batch:
/// `s_i = (1-a)(l_i - log Z_hat)` (capped at [`MAX_LOG_WEIGHT`]), score weights
/// `f_i = a/(a-1) e^(s_i) / N` (leave-one-out with `loo`), `P_B` weights `-e^(s_i) / N`.
pub fn tsallis<T: Scalar>(tape: &mut Tape<T>, terms: &Terms, alpha: f64, cv: ControlVariate) -> Result<ObjectiveLoss> {
    let batch = prepare(tape, terms, cv)?;
    let n = batch.l.len() as f64;
    let log_z = log_mean_exp(&batch.l);
    let s: Vec<f64> = batch.l.iter().map(|&l| (1.0 - alpha) * (l - log_z)).collect();
    let e: Vec<f64> = s.iter().map(|&s| s.min(MAX_LOG_WEIGHT).exp()).collect();
    let k = alpha / (alpha - 1.0);
    let f: Vec<f64> = e.iter().map(|&e| k * e).collect();
    let f = if cv == ControlVariate::None { f } else { loo(&f) };
    let score: Vec<f64> = f.iter().map(|&f| f / n).collect();
    let pb: Vec<f64> = e.iter().map(|&e| -e / n).collect();
    let loss = surrogate(tape, &batch, &score, &pb);
    let value = (log_mean_exp(&s).exp() - 1.0) / (alpha - 1.0);
    done(loss, value, None)
}
