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
    // the partial sums stay in this function's registers (through a captured
    // array they went to memory and back at every entry)
    #[inline(always)]
    fn add<T: Scalar>(mut acc: [f64; 8], x: &[T]) -> [f64; 8] {
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
        acc
    }
    let acc = match a.as_slice() {
        Some(x) => crate::scalar::wide512(|| add([0f64; 8], x)),
        None => a.rows().into_iter().fold([0f64; 8], |acc, r| add(acc, &r.to_vec())),
    };
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// The constants of one parameter's Adam update.
struct Coefficients<T> {
    b1: T,
    b2: T,
    one_b1: T,
    one_b2: T,
    eps: T,
    wd: T,
    step_size: T,
    inv_bc2_sqrt: T,
    decay: T,
}

impl<T: Scalar> Coefficients<T> {
    /// One entry's update: the moments, then the weight (weight decay added
    /// to the gradient when `coupled` (Adam), applied to the weight else (AdamW)).
    #[inline(always)]
    fn one(&self, w: &mut T, g: T, m: &mut T, v: &mut T, coupled: bool) {
        let g = if coupled { g + self.wd * *w } else { g };
        *m = self.b1 * *m + self.one_b1 * g;
        *v = self.b2 * *v + self.one_b2 * g * g;
        if !coupled {
            *w *= self.decay;
        }
        *w -= self.step_size * *m / ((*v).sqrt() * self.inv_bc2_sqrt + self.eps);
    }
}

/// [`Coefficients::one`] over slices, in a loop the compiler vectorizes
/// (through ndarray's `Zip` it stayed scalar: a square root and a division
/// per entry, about 5 % of a HyperGrid b=16 step), and for AVX-512 where the CPU
/// has it. Square root and division round exactly either way: the same bits.
/// Returns whether every updated weight is finite (checked on the way, where
/// a pass of its own over the weights cost about 1 % of a HyperGrid b=16 step).
fn update<T: Scalar>(w: &mut [T], g: &[T], m: &mut [T], v: &mut [T], c: &Coefficients<T>, coupled: bool) -> bool {
    #[inline(always)]
    fn each<T: Scalar, const COUPLED: bool>(
        w: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
        c: &Coefficients<T>,
    ) -> bool {
        // `&` rather than a short-circuit, so that the loop vectorizes
        let mut finite = true;
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            c.one(w, g, m, v, COUPLED);
            finite &= w.is_finite();
        }
        finite
    }
    match coupled {
        true => crate::scalar::wide512(|| each::<T, true>(w, g, m, v, c)),
        false => crate::scalar::wide512(|| each::<T, false>(w, g, m, v, c)),
    }
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
    /// A weight that the update itself made non-finite (only extreme
    /// settings do it, such as a learning rate of 1e37) is reported as an
    /// error naming its parameter, after the update.
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
        let mut nonfinite = None;
        for (i, (p, g)) in store.iter_mut().zip(grads.iter()).enumerate() {
            let group = &self.groups[self.member[i]];
            let lr = stats.lr[self.member[i]];
            let c = Coefficients {
                b1: T::from_f64(self.beta1),
                b2: T::from_f64(self.beta2),
                one_b1: T::one() - T::from_f64(self.beta1),
                one_b2: T::one() - T::from_f64(self.beta2),
                eps: T::from_f64(self.eps),
                wd: T::from_f64(group.weight_decay),
                step_size: T::from_f64(lr / bc1),
                inv_bc2_sqrt: T::from_f64(1.0 / bc2.sqrt()),
                decay: T::from_f64(1.0 - lr * group.weight_decay),
            };
            let coupled = self.kind == AdamKind::Adam;
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            let finite = match (p.value.as_slice_mut(), g.as_slice(), m.as_slice_mut(), v.as_slice_mut()) {
                (Some(w), Some(g), Some(m), Some(v)) => update(w, g, m, v, &c, coupled),
                _ => {
                    Zip::from(&mut p.value)
                        .and(g)
                        .and(m)
                        .and(v)
                        .for_each(|w, &g, m, v| c.one(w, g, m, v, coupled));
                    p.value.iter().all(|w| w.is_finite())
                }
            };
            if !finite {
                nonfinite.get_or_insert(i);
            }
        }
        match nonfinite {
            Some(i) => Err(Error::Numeric(format!(
                "Adam step {}: parameter `{}` became non-finite",
                self.step,
                store.iter().nth(i).map_or("?", |p| p.name.as_str())
            ))),
            None => Ok(stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectorized_update_has_the_bits_of_the_formula_entry_by_entry() {
        let n = 37; // not a multiple of the vector width
        let f = |k: usize, s: f32| {
            (0..n)
                .map(|i| ((i * k + 3) % 11) as f32 * s - 0.4)
                .collect::<Vec<f32>>()
        };
        let c = Coefficients {
            b1: 0.9f32,
            b2: 0.999,
            one_b1: 1.0 - 0.9,
            one_b2: 1.0 - 0.999,
            eps: 1e-8,
            wd: 0.01,
            step_size: 1e-3 / 0.19,
            inv_bc2_sqrt: 1.0 / 0.0199f32.sqrt(),
            decay: 1.0 - 1e-5,
        };
        for coupled in [true, false] {
            let (mut w, g, mut m) = (f(7, 0.3), f(5, 0.1), f(3, 0.01));
            let mut v: Vec<f32> = f(2, 0.001).iter().map(|x| x * x).collect();
            let (mut w2, mut m2, mut v2) = (w.clone(), m.clone(), v.clone());
            update(&mut w, &g, &mut m, &mut v, &c, coupled);
            for i in 0..n {
                let gi = if coupled { g[i] + c.wd * w2[i] } else { g[i] };
                m2[i] = c.b1 * m2[i] + c.one_b1 * gi;
                v2[i] = c.b2 * v2[i] + c.one_b2 * gi * gi;
                if !coupled {
                    w2[i] *= c.decay;
                }
                w2[i] -= c.step_size * m2[i] / (v2[i].sqrt() * c.inv_bc2_sqrt + c.eps);
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                (bits(&w), bits(&m), bits(&v)),
                (bits(&w2), bits(&m2), bits(&v2)),
                "coupled {coupled}"
            );
        }
    }

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
