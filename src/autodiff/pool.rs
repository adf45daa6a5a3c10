//! Array buffers reused from one step to the next.
//!
//! A training step builds a tape of large arrays (`[states, width]` activations
//! and their gradients) and drops all of them at its end. Handed back to the
//! allocator, that memory is returned to the operating system and every array
//! of the next step page-faults its way in again: at batch 128 on HyperGrid that
//! cost more than the arithmetic of the forward pass. So the tape, its
//! gradients and the inference pass take their large buffers from a per-thread
//! free list here and give them back when dropped; in the steady state a step
//! reuses the previous step's memory.
//!
//! Small arrays (under [`MIN_LEN`] entries) go straight to the allocator, whose
//! own free lists serve them without page faults.

use std::cell::RefCell;

use ndarray::{Array2, ShapeBuilder};

use crate::Scalar;

/// Arrays with fewer entries than this are not pooled.
pub const MIN_LEN: usize = 4096;
/// At most this many buffers are kept per thread and scalar type: a training
/// step of the default policy has about 25 large arrays alive at its peak, and
/// the sampler keeps two per step of a batch (up to 60 steps for peptides)
/// until the training pass has taken their rows.
const MAX_KEPT: usize = 256;

/// A per-thread free list of buffers (see [`Scalar::pool`]).
#[derive(Default)]
pub struct Pool<T> {
    free: Vec<Vec<T>>,
}

impl<T> Pool<T> {
    /// The smallest kept buffer that holds `n` entries, if it is not more than
    /// twice as large (a small array must not take the buffer a large one
    /// will ask for next, as the sampler's kept arrays or the tape's).
    fn take(&mut self, n: usize) -> Option<Vec<T>> {
        let best = (0..self.free.len())
            .filter(|&i| self.free[i].capacity() >= n)
            .min_by_key(|&i| self.free[i].capacity())
            .filter(|&i| self.free[i].capacity() <= 2 * n)?;
        Some(self.free.swap_remove(best))
    }

    /// Keeps `v`; when full, in place of the smallest kept buffer if `v` is larger.
    fn give(&mut self, v: Vec<T>) {
        if self.free.len() < MAX_KEPT {
            self.free.push(v);
        } else if let Some(i) = (0..self.free.len()).min_by_key(|&i| self.free[i].capacity()) {
            if self.free[i].capacity() < v.capacity() {
                self.free[i] = v;
            }
        }
    }
}

/// Runs `f` on this thread's pool for `T`; does nothing while the thread is being torn down.
fn with<T: Scalar, R>(f: impl FnOnce(&mut Pool<T>) -> R) -> Option<R> {
    T::pool().try_with(|p: &RefCell<Pool<T>>| f(&mut p.borrow_mut())).ok()
}

/// Frees the buffers this thread keeps, and those of the worker threads
/// ([`crate::workers`]), which are otherwise kept until the threads end:
/// about one training step's worth of memory. (Called from inside a worker's
/// part, only that thread's.)
pub fn release<T: Scalar>() {
    crate::workers::map(vec![(); crate::workers::started() + 1], |()| {
        with(|p: &mut Pool<T>| p.free.clear());
    });
}

/// Bytes this thread keeps for reuse.
pub fn kept_bytes<T: Scalar>() -> usize {
    with(|p: &mut Pool<T>| p.free.iter().map(|v| v.capacity() * std::mem::size_of::<T>()).sum()).unwrap_or(0)
}

/// A zero-filled `shape` array, in a reused buffer when one fits.
pub fn zeros<T: Scalar>(shape: (usize, usize)) -> Array2<T> {
    let mut a = scratch(shape);
    a.fill(T::zero());
    a
}

/// A `shape` array whose entries are left as they are (zeros or a reused
/// buffer's old values), for outputs that the caller overwrites entirely.
pub fn scratch<T: Scalar>(shape: (usize, usize)) -> Array2<T> {
    let n = shape.0 * shape.1;
    if n < MIN_LEN {
        return Array2::zeros(shape);
    }
    // a new buffer gets 1/8 headroom, so that the next step's slightly longer batch fits it
    let mut v = with(|p: &mut Pool<T>| p.take(n))
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(n + n / 8));
    // A buffer is initialized over its whole capacity once and keeps that
    // length while an array lends it (the array's explicit row stride lets it
    // cover only a first part), so a reused buffer is never filled again first.
    if v.len() < n {
        v.resize(v.capacity(), T::zero());
    }
    Array2::from_shape_vec(shape.strides((shape.1, 1)), v).expect("a buffer of at least rows * cols")
}

/// `a` (row-major, as pooled arrays are) with `rows` rows: its first ones,
/// and past its end whatever its buffer holds. In `a`'s own buffer when that
/// has room (fewer rows always, more within a pooled buffer's headroom),
/// else copied into a larger pooled one (`a`'s going back to the pool).
pub fn with_rows<T: Scalar>(a: Array2<T>, rows: usize) -> Array2<T> {
    assert!(
        a.is_standard_layout(),
        "with_rows: a row-major array, not {:?}",
        a.strides()
    );
    let (n, cols) = a.dim();
    let (v, offset) = a.into_raw_vec_and_offset();
    let offset = offset.unwrap_or(0);
    if offset == 0 && v.len() >= rows * cols {
        return Array2::from_shape_vec((rows, cols).strides((cols, 1)), v).expect("room for the rows");
    }
    let mut b = scratch((rows, cols));
    let kept = n.min(rows) * cols;
    b.as_slice_mut().expect("row-major")[..kept].copy_from_slice(&v[offset..offset + kept]);
    give_vec(v);
    b
}

/// Keeps `v` for reuse if it is large enough to be worth it.
fn give_vec<T: Scalar>(v: Vec<T>) {
    if v.len() >= MIN_LEN {
        with(|p: &mut Pool<T>| p.give(v));
    }
}

/// Gives `a`'s buffer back for reuse.
pub fn give<T: Scalar>(a: Array2<T>) {
    if a.len() >= MIN_LEN {
        give_vec(a.into_raw_vec_and_offset().0);
    }
}

/// `f` of every entry of `a`, into a pooled array.
pub fn map<T: Scalar>(a: &Array2<T>, f: impl Fn(T) -> T) -> Array2<T> {
    let mut out = scratch(a.dim());
    match (out.as_slice_mut(), a.as_slice()) {
        // contiguous (the usual case): a plain loop the compiler vectorizes
        (Some(o), Some(x)) => o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x)),
        _ => ndarray::Zip::from(&mut out).and(a).for_each(|o, &x| *o = f(x)),
    }
    out
}

/// A copy of `a` in a pooled array.
pub fn copy<T: Scalar>(a: &Array2<T>) -> Array2<T> {
    map(a, |x| x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_reused_and_comes_back_zeroed() {
        let mut a = zeros::<f32>((64, 128));
        a.fill(3.0);
        let ptr = a.as_ptr();
        give(a);
        let b = zeros::<f32>((128, 64));
        assert_eq!(b.as_ptr(), ptr, "the same buffer serves the next array of that size");
        assert!(b.iter().all(|&x| x == 0.0));
        give(b);
        let c = zeros::<f32>((66, 128));
        assert_eq!(c.as_ptr(), ptr, "a new buffer has room for a slightly larger array");
    }

    #[test]
    fn scratch_reuses_a_buffer_without_writing_it() {
        let mut a = scratch::<f32>((64, 128));
        a.fill(3.0);
        let ptr = a.as_ptr();
        give(a);
        // larger than the last array the buffer held, within its headroom
        let b = scratch::<f32>((66, 128));
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.is_standard_layout() && b.as_slice().is_some_and(|s| s.len() == 66 * 128));
        assert!(
            b.iter().take(64 * 128).all(|&x| x == 3.0),
            "old values left as they are"
        );
        assert!(
            b.iter().skip(64 * 128).all(|&x| x == 0.0),
            "the headroom was zeroed once"
        );
    }

    #[test]
    fn a_small_array_leaves_a_much_larger_buffer_alone() {
        let a = scratch::<f32>((64, 128));
        let ptr = a.as_ptr();
        give(a);
        let small = scratch::<f32>((16, 128));
        assert_ne!(small.as_ptr(), ptr, "a quarter of the buffer: a fresh one");
        let half = scratch::<f32>((40, 128));
        assert_eq!(half.as_ptr(), ptr, "within twice its size: the kept one");
    }

    #[test]
    fn rows_come_and_go_in_place_and_past_the_buffer_by_a_copy() {
        let a = Array2::from_shape_fn((70, 64), |(i, j)| (i * 64 + j) as f32);
        let ptr = a.as_ptr();
        let first = with_rows(a.clone(), 50);
        assert_eq!(first, a.slice(ndarray::s![..50, ..]));
        let back = with_rows(first, 60);
        assert_eq!(back, a.slice(ndarray::s![..60, ..]), "within its buffer: in place");
        let more = with_rows(back, 90);
        assert_eq!(more.slice(ndarray::s![..60, ..]), a.slice(ndarray::s![..60, ..]));
        assert_eq!(more.dim(), (90, 64));
        let same = with_rows(a, 10);
        assert_eq!(same.as_ptr(), ptr, "no copy");
    }

    #[test]
    fn release_frees_the_kept_buffers() {
        give(zeros::<f32>((64, 128)));
        give(zeros::<f32>((2, 2)));
        assert_eq!(
            kept_bytes::<f32>(),
            64 * 128 * 9 / 8 * 4,
            "the large one is kept, with its headroom"
        );
        release::<f32>();
        assert_eq!(kept_bytes::<f32>(), 0);
    }

    #[test]
    fn release_frees_the_workers_buffers_too() {
        // f64 arrays, which no other test hands to a worker thread
        let kept = |give_one: bool| {
            crate::workers::map(vec![false, give_one], |give_one| {
                if give_one {
                    give(zeros::<f64>((64, 64)));
                }
                kept_bytes::<f64>()
            })[1]
        };
        assert!(kept(true) >= 64 * 64 * 8, "the worker keeps the buffer");
        release::<f64>();
        assert_eq!(kept(false), 0);
    }

    #[test]
    fn small_arrays_and_bigger_requests_get_fresh_buffers() {
        let a = zeros::<f64>((64, 128));
        let ptr = a.as_ptr();
        give(a);
        let bigger = zeros::<f64>((64 * 9 / 8 + 1, 128));
        assert_ne!(bigger.as_ptr(), ptr, "a kept buffer that is too small is not used");
        let small = zeros::<f64>((2, 2));
        assert_eq!(small.dim(), (2, 2));
    }

    #[test]
    fn map_and_copy_match_ndarray() {
        let a = Array2::from_shape_fn((70, 65), |(i, j)| (i * 3 + j) as f64 * 0.01);
        assert_eq!(map(&a, |x| x * 2.0), a.mapv(|x| x * 2.0));
        assert_eq!(copy(&a), a);
    }
}
