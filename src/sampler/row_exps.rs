//! The softmaxes of a block of logit rows, as the sampler draws from them.

use ndarray::ArrayView2;

/// For each row of a block of logits: the valid entries' `exp(l / t - max)`
/// (0 at masked entries), `max` being the row's largest valid `l / t`, all
/// the block's exponentials in one vectorized pass (one pass per row was
/// dominated by the call and the tail of 5 or 4 entries; HyperGrid rows
/// have 5 forward and 4 backward actions). At temperature 1,
/// [`RowExps::log_sum_exp`] is, bit for bit, [`super::row_logsumexp`]'s
/// value: the same maximum (`max` is exact in any order), the same
/// exponentials (`crate::exp` gives libm's bits over slices too) added in
/// the same order (a masked entry adds an exact 0 to a positive total).
#[derive(Default)]
pub(crate) struct RowExps {
    exps: Vec<f64>,
    max: Vec<f64>,
    n: usize,
}

impl RowExps {
    /// Fills in the rows of `logits` (`[m, n]`, row-major), their valid
    /// entries being those of `mask` (`m * n`, row-major), divided by the
    /// temperature (times `inv_t`).
    ///
    /// Panics if a row has no valid entry.
    pub fn fill(&mut self, logits: ArrayView2<'_, f32>, mask: &[bool], inv_t: f64) {
        let (m, n) = logits.dim();
        let logits = logits.as_slice().expect("row-major logits");
        assert_eq!(mask.len(), m * n, "one mask entry per logit");
        self.n = n;
        // flat passes over the block, which vectorize (row by row, with
        // rows of 4 or 5 entries, the loops' overheads dominated)
        self.exps.clear();
        self.exps.extend(
            logits
                .iter()
                .zip(mask)
                .map(|(&l, &ok)| if ok { l as f64 * inv_t } else { f64::NEG_INFINITY }),
        );
        self.max.clear();
        for row in self.exps.chunks_exact_mut(n.max(1)) {
            // the valid entries' maximum (`max` ignores NaN and is exact, so
            // any order gives the same value; only the sign of a zero maximum
            // may differ, which no result below sees)
            let max = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            assert!(max > f64::NEG_INFINITY || max.is_nan(), "a state with no valid action");
            row.iter_mut().for_each(|v| *v -= max);
            self.max.push(max);
        }
        // every row's exponentials in one vectorized pass (exp(-inf) = 0)
        crate::exp::exp_f64_in_place(&mut self.exps);
    }

    /// Row `r`'s exponentials.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.exps[r * self.n..(r + 1) * self.n]
    }

    /// Their sum, added in order.
    pub fn total(&self, r: usize) -> f64 {
        self.row(r).iter().fold(0.0, |t, &p| t + p)
    }

    /// Row `r`'s `log sum exp` of its valid `l / t`.
    pub fn log_sum_exp(&self, r: usize) -> f64 {
        self.max[r] + self.total(r).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::Rng;

    #[test]
    fn log_sum_exp_is_row_logsumexp_bit_for_bit_and_masked_entries_get_zero() {
        let mut rng = crate::rng::keyed(7, 0, 0);
        for n in [1, 3, 4, 5, 8, 9, 21, 33] {
            let m = 7;
            let logits = Array2::from_shape_fn((m, n), |_| rng.gen_range(-30.0f32..30.0));
            let masks: Vec<Vec<bool>> = (0..m)
                .map(|r| (0..n).map(|j| j == r % n || rng.gen_bool(0.6)).collect())
                .collect();
            let mut e = RowExps::default();
            e.fill(logits.view(), &masks.concat(), 1.0);
            for (r, mask) in masks.iter().enumerate() {
                let row = logits.row(r).to_vec();
                let want = super::super::row_logsumexp(&row, mask);
                assert_eq!(e.log_sum_exp(r).to_bits(), want.to_bits(), "n = {n}, row {r}");
                for (j, (&p, &ok)) in e.row(r).iter().zip(mask).enumerate() {
                    match ok {
                        false => assert_eq!(p, 0.0, "masked entry {j}"),
                        true => assert!(p > 0.0 && p <= 1.0, "entry {j}: {p}"),
                    }
                }
            }
        }
    }

    #[test]
    fn rows_are_scaled_by_the_temperature_and_shifted_by_their_maximum() {
        // logits (2 ln 2, 0, 9) at temperature 2 with the 9 masked: l/t - max = (0, -ln 2)
        let logits = ndarray::arr2(&[[2.0 * 2f32.ln(), 0.0, 9.0]]);
        let mask = [true, true, false];
        let mut e = RowExps::default();
        e.fill(logits.view(), &mask, 0.5);
        let row = e.row(0);
        assert!(
            (row[0] - 1.0).abs() < 1e-7 && (row[1] - 0.5).abs() < 1e-7 && row[2] == 0.0,
            "{row:?}"
        );
        assert!((e.total(0) - 1.5).abs() < 1e-7);
        assert!((e.log_sum_exp(0) - (2f64.ln() + 1.5f64.ln())).abs() < 1e-7);
    }

    #[test]
    #[should_panic(expected = "no valid action")]
    fn a_row_without_a_valid_entry_is_refused() {
        RowExps::default().fill(ndarray::arr2(&[[1.0f32, 2.0]]).view(), &[false, false], 1.0);
    }
}
