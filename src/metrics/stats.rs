//! Plain numeric statistics over `f64` slices.
//!
//! Conventions shared by every function here:
//!
//! * Nothing panics, whatever the input (empty, constant, mismatched lengths).
//! * A statistic that is undefined for the input returns `None` (never NaN):
//!   an empty slice, fewer than two points for a correlation, zero variance,
//!   or `x` and `y` of different lengths.
//! * Inputs are meant to be finite. NaN or infinite inputs do not panic, but
//!   the result is then unspecified; the correlations and the slope map a
//!   non-finite result to `None`. Sorting uses [`f64::total_cmp`].
//! * Allocation: `mean`, `std`, `pearson`, `ols_slope`, `histogram` (its
//!   output aside) and [`quantile_sorted`] allocate nothing; `median`,
//!   `quantile` and `top_fraction_mean` copy the input once; `spearman` allocates
//!   two rank vectors and one index vector.

/// Arithmetic mean; `None` for an empty slice.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// The largest value; `None` if empty or all NaN.
pub fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().filter(|v| !v.is_nan()).reduce(f64::max)
}

/// Population standard deviation `sqrt(sum (x - mean)^2 / n)` (two-pass);
/// `None` for an empty slice, `0.0` for a single value.
pub fn std(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    let ss: f64 = values.iter().map(|&v| (v - m) * (v - m)).sum();
    Some((ss / values.len() as f64).sqrt())
}

/// Median (the `q = 0.5` [`quantile`]: the mean of the two middle values for
/// an even count); `None` for an empty slice.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The `q`-quantile with linear interpolation between order statistics
/// (type 7 of Hyndman & Fan, NumPy's default): with the values sorted
/// ascending as `x[0..n]`, `h = (n - 1) q`, the result is
/// `x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])`.
/// So `q = 0` is the minimum and `q = 1` the maximum. `q` is clamped to
/// `[0, 1]`; `None` for an empty slice or a NaN `q`. Copies and sorts the input.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() || q.is_nan() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    quantile_sorted(&sorted, q)
}

/// [`quantile`] of values already sorted ascending (no copy, no allocation).
/// The order is not checked; unsorted input gives an unspecified value.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || q.is_nan() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    Some(sorted[lo] + frac * (sorted[hi] - sorted[lo]))
}

/// Mean of the `k` largest values, `k = ceil(frac * n)` clamped to `[1, n]`
/// (so any `frac <= 1/n`, including 0 or a negative one, gives the maximum,
/// and `frac >= 1` the plain mean). This is the "top-10% reward" statistic
/// with `frac = 0.1`. To keep a product like `0.3 * 10 = 3.0000000000000004`
/// from rounding up to 4, `frac * n` is reduced by `1e-9` before the ceiling.
/// `None` for an empty slice or a NaN `frac`. Copies the input once.
pub fn top_fraction_mean(values: &[f64], frac: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 || frac.is_nan() {
        return None;
    }
    let want = (frac.clamp(0.0, 1.0) * n as f64 - 1e-9).ceil();
    let k = (want.max(1.0) as usize).min(n);
    let mut copy = values.to_vec();
    if k < n {
        // Descending order: the k largest end up in copy[..k].
        copy.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    }
    Some(copy[..k].iter().sum::<f64>() / k as f64)
}

/// Whether all values are equal to the first (so the variance is exactly 0,
/// whatever rounding the mean suffers).
fn is_constant(values: &[f64]) -> bool {
    values.iter().all(|&v| v == values[0])
}

/// Centred sums `(sxx, syy, sxy)`; callers have checked `x.len() == y.len() >= 1`.
fn centred_sums(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    (sxx, syy, sxy)
}

/// Pearson correlation coefficient, clamped to `[-1, 1]`. `None` when the
/// lengths differ, `n < 2`, either side is constant (zero variance), or the
/// result is not finite.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || is_constant(x) || is_constant(y) {
        return None;
    }
    let (sxx, syy, sxy) = centred_sums(x, y);
    let r = sxy / (sxx.sqrt() * syy.sqrt());
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// Ranks starting at 1, ties given the average of the ranks they span
/// (e.g. `[10, 20, 20, 30]` -> `[1, 2.5, 2.5, 4]`).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        // `==` rather than total_cmp so that -0.0 and 0.0 tie.
        while end < n && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their average:
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman rank correlation: the Pearson correlation of the
/// [`average_ranks`] (ties share the average rank). Invariant to strictly
/// increasing transforms of either side. `None` in the cases [`pearson`]
/// gives `None` (including a constant side).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Least-squares slope of `y` on `x` (`y ~ a + b x`, returns `b`), e.g. the
/// calibration slope of `log P_F(x)` (as `y`) against `log R(x)` (as `x`),
/// which is 1 for a perfectly calibrated sampler. `None` when the lengths
/// differ, `n < 2`, `x` is constant, or the result is not finite. A
/// constant `y` gives `Some(0.0)`.
pub fn ols_slope(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || is_constant(x) {
        return None;
    }
    if is_constant(y) {
        return Some(0.0);
    }
    let (sxx, _, sxy) = centred_sums(x, y);
    let b = sxy / sxx;
    b.is_finite().then_some(b)
}

/// Counts of each value in bins `0..=max` (the output has `max + 1`
/// entries). Values above `max` are counted in the last bin, which therefore
/// reads "`max` or more", so the counts always sum to `values.len()`.
pub fn histogram(values: &[usize], max: usize) -> Vec<usize> {
    let mut counts = vec![0usize; max.saturating_add(1)];
    let last = counts.len() - 1;
    for &v in values {
        counts[v.min(last)] += 1;
    }
    counts
}
