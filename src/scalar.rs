//! The floating-point types the engine computes in.
//!
//! Training runs in `f32`; gradient checks run in `f64`. Everything numeric in
//! the engine is generic over [`Scalar`], which both implement.

use std::fmt::{Debug, Display};

/// A real floating-point scalar: `f32` or `f64`.
pub trait Scalar:
    ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + PartialOrd
    + Debug
    + Display
    + Default
    + Send
    + Sync
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `exp`, the same bits on every platform (the engine's own, in `src/exp.rs`).
    fn exp(self) -> Self;
    /// [`Scalar::exp`] of each entry, in place (vectorized where the CPU allows).
    fn exp_in_place(xs: &mut [Self]);
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn is_finite(self) -> bool;
    fn neg_infinity() -> Self;
    fn infinity() -> Self;
    /// Bit pattern widened to u64, for bit-exact comparisons and hashing.
    fn to_bits_u64(self) -> u64;
    /// The engine's own product kernel for this type on this CPU, if it has
    /// one (see [`crate::autodiff::gemm`]).
    fn kernel() -> Option<crate::autodiff::gemm::Kernel<Self>>;
    /// This thread's free list of array buffers (see [`crate::autodiff::pool`]).
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<crate::autodiff::pool::Pool<Self>>>;
}

macro_rules! impl_scalar {
    ($t:ty, $kernel:expr, $exp:path, $exps:path) => {
        impl Scalar for $t {
            fn kernel() -> Option<crate::autodiff::gemm::Kernel<Self>> {
                $kernel
            }
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            fn exp_in_place(xs: &mut [Self]) {
                $exps(xs)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn neg_infinity() -> Self {
                <$t>::NEG_INFINITY
            }
            #[inline]
            fn infinity() -> Self {
                <$t>::INFINITY
            }
            #[inline]
            fn to_bits_u64(self) -> u64 {
                self.to_bits() as u64
            }
            fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<crate::autodiff::pool::Pool<Self>>> {
                thread_local! {
                    static POOL: std::cell::RefCell<crate::autodiff::pool::Pool<$t>> = Default::default();
                }
                &POOL
            }
        }
    };
}

impl_scalar!(
    f32,
    crate::autodiff::gemm::f32_kernel(),
    crate::exp::exp_f32,
    crate::exp::exp_f32_in_place
);
// f64 is for gradient checks, where speed does not matter
impl_scalar!(f64, None, crate::exp::exp_f64, crate::exp::exp_f64_in_place);

/// `f()` compiled for AVX2 and FMA where the CPU has them: the plain loops of
/// an elementwise pass, inlined into `f`, then run 8 floats to a vector
/// instead of SSE2's 4, and an explicit `mul_add` one instruction instead of
/// a libm call. The operations are the same, one by one (the compiler neither
/// reorders nor fuses floating-point operations, and `mul_add` is exact
/// either way), so are the bits. The compiler may leave a large `f` out of
/// line (it is called from two places), and it then runs without these
/// features: [`crate::exp`]'s one-at-a-time paths did, and have functions
/// of their own.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2(f) };
    }
    f()
}

/// [`wide`] compiled for AVX-512 where the CPU has it: 16 floats to a
/// vector, for passes bound by arithmetic rather than memory (Adam's square
/// root and division per entry: a HyperGrid b=16 step 1-2 % faster; the
/// gradient norm's squares in `f64`: 0.6-0.8 % more). The
/// bits are again those of the plain loop. Passes over large arrays stay on
/// [`wide`]: in AVX-512 they measured up to 3.6 % slower per step.
#[inline(always)]
pub(crate) fn wide512<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512(f) };
    }
    wide(f)
}
