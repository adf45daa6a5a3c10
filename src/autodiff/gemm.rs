//! The engine's matrix product: output in a pooled buffer, large products split
//! over worker threads.
//!
//! A product is split by rows of its output, and each part is the same
//! `matrixmultiply` call on a band of rows. Every output entry is computed by
//! the same sequence of operations whatever the split, so the result is
//! bit-identical for any number of threads (tested).

use std::cell::Cell;

use ndarray::{s, Array2, ArrayView2};

use super::pool;
use crate::Scalar;

/// Products of fewer floating-point operations than this run on one thread
/// (a thread start costs about as much as a product of this size).
const SPLIT_FLOPS: usize = 1 << 22;

thread_local! {
    static THREADS: Cell<usize> = const { Cell::new(1) };
}

/// Threads for the large products made on this thread (1 by default; 0 means 1).
pub fn set_threads(n: usize) {
    THREADS.with(|t| t.set(n.max(1)));
}

/// `a · b` into a pooled array.
pub fn dot<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    let (m, n) = (a.nrows(), b.ncols());
    // with beta = 0 the product overwrites `out` without reading it
    let mut out = pool::scratch((m, n));
    let threads = THREADS.with(Cell::get).min(m / 16).max(1);
    if threads == 1 || 2 * m * n * a.ncols() < SPLIT_FLOPS {
        ndarray::linalg::general_mat_mul(T::one(), &a, &b, T::zero(), &mut out);
        return out;
    }
    let band = m.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut rest = out.view_mut();
        let mut lo = 0;
        while lo < m {
            let hi = (lo + band).min(m);
            let (mut part, tail) = rest.split_at(ndarray::Axis(0), hi - lo);
            rest = tail;
            let a_part = a.slice(s![lo..hi, ..]);
            let b = b.view();
            scope.spawn(move || ndarray::linalg::general_mat_mul(T::one(), &a_part, &b, T::zero(), &mut part));
            lo = hi;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_products_are_bit_identical_to_one_thread() {
        let a = Array2::from_shape_fn((301, 257), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.37 - 2.0);
        let b = Array2::from_shape_fn((257, 130), |(i, j)| ((i * 7 + j * 11) % 17) as f32 * 0.11 - 0.9);
        set_threads(1);
        let one = dot(a.view(), b.view());
        let one_t = dot(b.t(), a.t());
        assert_eq!(one, a.dot(&b));
        for threads in [2, 3, 7] {
            set_threads(threads);
            let many = dot(a.view(), b.view());
            let many_t = dot(b.t(), a.t());
            assert!(
                one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{threads} threads"
            );
            assert!(
                one_t.iter().zip(&many_t).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{threads} threads, transposed"
            );
        }
        set_threads(1);
    }
}
