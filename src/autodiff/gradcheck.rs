//! Numerical verification of tape gradients.

use ndarray::Array2;

use super::{Tape, Var};

/// The outcome of [`gradcheck`].
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Worst error over all entries of all inputs, measured as
    /// `|analytic - numeric| / max(1, |analytic|, |numeric|)`: relative for
    /// gradients larger than 1, absolute below.
    pub max_error: f64,
    /// `(input, row, col)` where `max_error` occurred.
    pub worst_at: (usize, usize, usize),
    /// The analytic (tape) and numeric (finite-difference) values there.
    pub analytic: f64,
    pub numeric: f64,
    /// Number of entries compared.
    pub checked: usize,
}

/// Compares the tape's gradient of a scalar function with central finite differences, in `f64`.
///
/// `f` builds the function on a fresh tape from leaves holding `inputs` and
/// returns a `[1, 1]` result. Each entry `x` of each input is perturbed by
/// `±h` with `h = step * max(1, |x|)`, and `(f(x+h) - f(x-h)) / 2h` is compared
/// with the tape's gradient. Use it to verify a loss of your own:
///
/// ```
/// use gflownet::autodiff::gradcheck;
/// use ndarray::array;
/// let x = array![[0.3, -1.2], [2.0, 0.5]];
/// let report = gradcheck(&[x], 1e-6, |tape, v| {
///     let e = tape.exp(v[0]);
///     let s = tape.square(e);
///     tape.mean(s)
/// });
/// assert!(report.max_error < 1e-6, "{report:?}");
/// ```
///
/// Away from kinks (ReLU at 0, clipping thresholds) a correct gradient gives
/// errors around 1e-9; an error above 1e-6 means a wrong derivative.
pub fn gradcheck<F>(inputs: &[Array2<f64>], step: f64, f: F) -> GradCheck
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Var,
{
    let eval = |xs: &[Array2<f64>]| -> f64 {
        let mut tape = Tape::new();
        let vars: Vec<Var> = xs.iter().map(|x| tape.leaf(x.clone())).collect();
        let out = f(&mut tape, &vars);
        tape.item(out)
    };

    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let out = f(&mut tape, &vars);
    let mut grads = tape.backward(out);
    let analytic: Vec<Array2<f64>> = vars
        .iter()
        .zip(inputs)
        .map(|(&v, x)| grads.take_or_zeros(v, x.dim()))
        .collect();

    let mut report = GradCheck {
        max_error: 0.0,
        worst_at: (0, 0, 0),
        analytic: 0.0,
        numeric: 0.0,
        checked: 0,
    };
    let mut xs: Vec<Array2<f64>> = inputs.to_vec();
    for (k, input) in inputs.iter().enumerate() {
        for ((r, c), &x) in input.indexed_iter() {
            let h = step * x.abs().max(1.0);
            xs[k][[r, c]] = x + h;
            let up = eval(&xs);
            xs[k][[r, c]] = x - h;
            let down = eval(&xs);
            xs[k][[r, c]] = x;
            let numeric = (up - down) / (2.0 * h);
            let a = analytic[k][[r, c]];
            let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
            let err = if err.is_nan() { f64::INFINITY } else { err };
            report.checked += 1;
            if err > report.max_error || report.checked == 1 {
                report.max_error = err;
                report.worst_at = (k, r, c);
                report.analytic = a;
                report.numeric = numeric;
            }
        }
    }
    report
}
