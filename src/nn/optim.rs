//! Adam and AdamW with parameter groups, per-group global-norm clipping and schedules.

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use super::{ParamStore, Schedule};
use crate::error::{positive_finite, Result};
use crate::{Error, Scalar};

/// One optimizer group: parameters whose [`super::Param::group`] is `name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Base learning rate (positive, finite).
    pub lr: f64,
    /// Weight decay: added to the gradient for Adam, decoupled for AdamW.
    #[serde(default)]
    pub weight_decay: f64,
    /// Global-norm gradient clipping over this group's parameters.
    #[serde(default)]
    pub clip_norm: Option<f64>,
    #[serde(default)]
    pub schedule: Schedule,
}

impl GroupConfig {
    pub fn new(name: &str, lr: f64) -> Self {
        GroupConfig {
            name: name.to_string(),
            lr,
            weight_decay: 0.0,
            clip_norm: None,
            schedule: Schedule::Constant,
        }
    }

    fn validate(&self) -> Result<()> {
        let opt = |field: &str| format!("optimizer.{}.{field}", self.name);
        positive_finite(&opt("lr"), self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(
                &opt("weight_decay"),
                format!("must be >= 0 and finite, got {}", self.weight_decay),
            ));
        }
        if let Some(c) = self.clip_norm {
            positive_finite(&opt("clip_norm"), c)?;
        }
        self.schedule.validate(&opt("schedule"))
    }
}

/// L2-coupled (Adam) or decoupled (AdamW) weight decay.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdamKind {
    Adam,
    AdamW,
}

/// What one step did, per group in configuration order.
#[derive(Clone, Debug, Default)]
pub struct StepStats {
    /// Global gradient norm before clipping.
    pub grad_norm: Vec<f64>,
    /// Whether clipping (or the overflow guard) scaled the gradient down.
    pub clipped: Vec<bool>,
    /// Learning rate used (base rate times the schedule's factor).
    pub lr: Vec<f64>,
}

/// Largest group gradient norm Adam uses as is in `T`: its square times the
/// accumulation stays far from overflow (1e15 in `f32`, 1e150 in `f64`).
pub(crate) fn max_grad_norm<T: Scalar>() -> f64 {
    if T::from_f64(1e300).is_finite() {
        1e150
    } else {
        1e15
    }
}

/// `sum x^2` over `a` in `f64`: eight partial sums (entry `i` into sum
/// `i mod 8`) added in a fixed order at the end, so that the loop vectorizes
/// (one running sum is a chain of dependent additions, 4 cycles an entry).
fn sum_of_squares<T: Scalar>(a: &Array2<T>) -> f64 {
    let mut acc = [0f64; 8];
    let mut add = |x: &[T]| {
        let chunks = x.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for (s, &v) in acc.iter_mut().zip(c) {
                *s += v.to_f64() * v.to_f64();
            }
        }
        for (s, &v) in acc.iter_mut().zip(rest) {
            *s += v.to_f64() * v.to_f64();
        }
    };
    match a.as_slice() {
        Some(x) => add(x),
        None => a.rows().into_iter().for_each(|r| add(&r.to_vec())),
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Adam (Kingma & Ba 2015) with bias correction; state is serializable for checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Adam<T> {
    pub kind: AdamKind,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub groups: Vec<GroupConfig>,
    /// Group index of each parameter.
    member: Vec<usize>,
    m: Vec<Array2<T>>,
    v: Vec<Array2<T>>,
    /// Steps taken so far.
    pub step: u64,
}

impl<T: Scalar> Adam<T> {
    /// Validates every group and assigns each parameter of `store` to its group.
    pub fn new(kind: AdamKind, groups: Vec<GroupConfig>, store: &ParamStore<T>) -> Result<Self> {
        for g in &groups {
            g.validate()?;
        }
        let member = store
            .iter()
            .map(|p| {
                groups.iter().position(|g| g.name == p.group).ok_or_else(|| {
                    Error::config(
                        "optimizer.groups",
                        format!("no group named `{}` for parameter `{}`", p.group, p.name),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Adam {
            kind,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            groups,
            member,
            m: store.iter().map(|p| Array2::zeros(p.value.dim())).collect(),
            v: store.iter().map(|p| Array2::zeros(p.value.dim())).collect(),
            step: 0,
        })
    }

    /// First and second moment estimates, one per parameter in store order (for checkpoints).
    pub fn moments(&self) -> (&[Array2<T>], &[Array2<T>]) {
        (&self.m, &self.v)
    }

    /// Restores moments saved by [`Adam::moments`] and the step count; shapes must match.
    pub fn restore(&mut self, m: Vec<Array2<T>>, v: Vec<Array2<T>>, step: u64) -> Result<()> {
        let same =
            |a: &[Array2<T>], b: &[Array2<T>]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.dim() == y.dim());
        if !same(&m, &self.m) || !same(&v, &self.v) {
            return Err(Error::Checkpoint(
                "optimizer moments do not match the model's parameter shapes".into(),
            ));
        }
        self.m = m;
        self.v = v;
        self.step = step;
        Ok(())
    }

    /// The learning rate group `g` uses at the next step.
    pub fn lr(&self, g: usize) -> f64 {
        self.groups[g].lr * self.groups[g].schedule.factor(self.step)
    }

    /// One update. `grads` aligns with the store. A non-finite gradient is
    /// refused (nothing is updated) so one bad batch cannot poison the weights.
    pub fn step(&mut self, store: &mut ParamStore<T>, grads: &mut [Array2<T>]) -> Result<StepStats> {
        assert_eq!(grads.len(), store.len(), "Adam::step: one gradient per parameter");
        let ng = self.groups.len();
        let mut sq = vec![0.0f64; ng];
        for (g, &k) in grads.iter().zip(&self.member) {
            sq[k] += sum_of_squares(g);
        }
        let mut stats = StepStats::default();
        for (k, &s) in sq.iter().enumerate() {
            if !s.is_finite() {
                return Err(Error::Numeric(format!(
                    "non-finite gradient in group `{}`",
                    self.groups[k].name
                )));
            }
            let norm = s.sqrt();
            let scale = match self.groups[k].clip_norm {
                Some(c) if norm > c => c / norm,
                _ => 1.0,
            };
            // Overflow guard: the squared gradient must fit the moment's type,
            // else `v` becomes inf and the update silently becomes 0 (e.g. the
            // log Z gradient of Linex(1) at a residual of 50, about 5e21, in f32).
            // Adam's step hardly depends on the gradient's scale, so scaling
            // such a group down keeps the update it would have made.
            let limit = max_grad_norm::<T>();
            let scale = if norm * scale > limit { limit / norm } else { scale };
            stats.grad_norm.push(norm);
            stats.clipped.push(scale < 1.0);
            stats.lr.push(self.lr(k));
            if scale < 1.0 {
                let sc = T::from_f64(scale);
                for (g, _) in grads.iter_mut().zip(&self.member).filter(|(_, &m)| m == k) {
                    g.mapv_inplace(|x| x * sc);
                }
            }
        }
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let (b1, b2, eps) = (T::from_f64(self.beta1), T::from_f64(self.beta2), T::from_f64(self.eps));
        let (one_b1, one_b2) = (T::one() - b1, T::one() - b2);
        for (i, (p, g)) in store.iter_mut().zip(grads.iter()).enumerate() {
            let group = &self.groups[self.member[i]];
            let lr = stats.lr[self.member[i]];
            let wd = T::from_f64(group.weight_decay);
            let step_size = T::from_f64(lr / bc1);
            let inv_bc2_sqrt = T::from_f64(1.0 / bc2.sqrt());
            let decay = T::from_f64(1.0 - lr * group.weight_decay);
            let coupled = self.kind == AdamKind::Adam;
            Zip::from(&mut p.value)
                .and(g)
                .and(&mut self.m[i])
                .and(&mut self.v[i])
                .for_each(|w, &g, m, v| {
                    let g = if coupled { g + wd * *w } else { g };
                    *m = b1 * *m + one_b1 * g;
                    *v = b2 * *v + one_b2 * g * g;
                    if !coupled {
                        *w *= decay;
                    }
                    *w -= step_size * *m / ((*v).sqrt() * inv_bc2_sqrt + eps);
                });
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_of_squares_matches_a_plain_sum_for_every_length_and_layout() {
        for (r, c) in [(1, 1), (1, 7), (3, 8), (5, 13), (64, 33)] {
            let a = Array2::from_shape_fn((r, c), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
            let want: f64 = a.iter().map(|&x| x as f64 * x as f64).sum();
            let got = sum_of_squares(&a);
            assert!((got - want).abs() <= 1e-12 * want, "{r}x{c}: {got} vs {want}");
            // the same values stored column-major are summed row by row
            let f = a.t().as_standard_layout().into_owned().reversed_axes();
            assert!(f.as_slice().is_none() || r == 1 || c == 1);
            let got_f = sum_of_squares(&f);
            assert!((got_f - want).abs() <= 1e-12 * want, "{r}x{c} column-major");
        }
        assert_eq!(sum_of_squares(&Array2::<f64>::zeros((0, 3))), 0.0);
    }
}
