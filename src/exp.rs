//! `exp` in `f32` and `f64`, an element at a time or over a slice (in
//! AVX-512 where the CPU has it), with the same bits either way.
//!
//! Why the engine has its own: the softmax of every sampled state (in `f64`)
//! and the log-softmax's backward and entropy (in `f32`) took one libm call
//! per entry, 4 % of a peptide training step; over a slice this takes a few
//! vector instructions per 8 entries.
//!
//! The algorithm and constants are those of Arm's optimized-routines (MIT OR
//! Apache-2.0 WITH LLVM-exception), which glibc's `expf` (2.27 on) and `exp`
//! (2.28 on) are, written with the fused multiply-adds of glibc's x86-64 FMA
//! build. On Linux with glibc on an x86-64 CPU with FMA these give libm's
//! bits (the tests: all 2^32 `f32`, one at a time and over slices; 400,000
//! spread `f64` and the edges of their ranges), so the engine's results are
//! those it had with libm; elsewhere they are the same as there.
//!
//! * `f32`: `x = k ln2/32 + r` (`k` an integer), `exp x = 2^(k/32) P(r)` in
//!   `f64` with a cubic `P` and a table of the 32 `2^(j/32)`, rounded once.
//! * `f64`: `x = k ln2/128 + r`, `exp x = 2^(k/128) (1 + tail + r + r^2 (c2 +
//!   c3 r) + r^4 (c4 + c5 r))`, from a table of `2^(j/128)` and the rounding
//!   error of each (`tail`).

/// A precision's one-at-a-time `exp` ([`f32_one`], [`f64_one`]), inlined
/// wherever it is called, so that it takes on the caller's target features.
trait One: Copy {
    fn one(self) -> Self;
}

impl One for f32 {
    #[inline(always)]
    fn one(self) -> f32 {
        f32_one(self)
    }
}

impl One for f64 {
    #[inline(always)]
    fn one(self) -> f64 {
        f64_one(self)
    }
}

/// Whether the CPU has FMA: the one-at-a-time paths then run compiled for
/// it (module `fma`), each `mul_add` one instruction. Elsewhere `mul_add` is
/// a call into the runtime (exact either way, so the same bits).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_fma() -> bool {
    std::is_x86_feature_detected!("fma")
}

/// `exp(x)`, compiled for FMA where the CPU has it.
#[inline(always)]
fn one<T: One>(x: T) -> T {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has FMA.
        return unsafe { fma::one(x) };
    }
    x.one()
}

/// `exp` of each entry one at a time, in one pass compiled for FMA where
/// the CPU has it (the slices' path without AVX-512).
fn one_by_one<T: One>(xs: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { fma::one_by_one(xs) };
    }
    xs.iter_mut().for_each(|x| *x = x.one());
}

/// The scalar paths compiled for FMA: plain functions, not closures handed
/// to `scalar::wide`, which the compiler left out of line for `f64` (each
/// `mul_add` then a call through a pointer: 1.7 % of a HyperGrid b=128 step).
#[cfg(target_arch = "x86_64")]
mod fma {
    use super::One;

    /// # Safety
    /// The CPU has FMA.
    #[target_feature(enable = "fma")]
    pub(super) unsafe fn one<T: One>(x: T) -> T {
        x.one()
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn one_by_one<T: One>(xs: &mut [T]) {
        for x in xs {
            *x = x.one();
        }
    }
}

// ---------------------------------------------------------------- f32

/// `32 / ln 2`, the shift that rounds `z` to an integer in its low bits
/// (`1.5 * 2^52`), and `P`'s coefficients (scaled by powers of 1/32).
const F32_INV_LN2_N: f64 = f64::from_bits(0x40471547652b82fe);
const F32_SHIFT: f64 = f64::from_bits(0x4338000000000000);
const F32_C: [f64; 3] = [
    f64::from_bits(0x3ebc6af84b912394),
    f64::from_bits(0x3f2ebfce50fac4f3),
    f64::from_bits(0x3f962e42ff0c52d6),
];

/// `exp(x)` in `f32`.
pub fn exp_f32(x: f32) -> f32 {
    one(x)
}

/// `exp(x)` in `f32`, for callers already compiled for FMA (module `fma`).
#[inline(always)]
fn f32_one(x: f32) -> f32 {
    f32_special(x).unwrap_or_else(|| f32_core(x))
}

/// The result where `|x| >= 88` or `x` is NaN (else `None`): 0 below
/// `ln 2^-150`, the smallest subnormal where glibc says "may underflow",
/// infinity above `ln 2^128`, `x + x` for infinity and NaN.
#[inline(always)]
fn f32_special(x: f32) -> Option<f32> {
    let abstop = (x.to_bits() >> 20) & 0x7ff;
    if abstop < 0x42b {
        return None;
    }
    Some(if x == f32::NEG_INFINITY {
        0.0
    } else if abstop >= 0x7f8 {
        x + x
    } else if x > f32::from_bits(0x42b17217) {
        f32::INFINITY
    } else if x < f32::from_bits(0xc2cff1b4) {
        0.0
    } else if x < f32::from_bits(0xc2ce8ecf) {
        f32::from_bits(1)
    } else {
        // 88 <= |x| but within range: the main path
        return None;
    })
}

/// The main path, for `|x| < 88` and the in-range inputs above.
#[inline(always)]
fn f32_core(x: f32) -> f32 {
    let xd = x as f64;
    let z = xd.mul_add(F32_INV_LN2_N, F32_SHIFT);
    let ki = z.to_bits();
    let kd = z - F32_SHIFT;
    let r = F32_INV_LN2_N.mul_add(xd, -kd);
    let s = f64::from_bits(TAB_F32[(ki % 32) as usize].wrapping_add(ki << 47));
    let p = F32_C[0].mul_add(r, F32_C[1]);
    let y = r.mul_add(F32_C[2], 1.0);
    let y = p.mul_add(r * r, y);
    (y * s) as f32
}

/// `exp` of each entry, in place.
pub fn exp_f32_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return by_eights(xs, |c| unsafe { avx512::f32x8(c) });
    }
    one_by_one(xs);
}

// ---------------------------------------------------------------- f64

/// `128 / ln 2`, `-ln 2 / 128` in two parts, the rounding shift, and `Q`'s
/// coefficients of `r^2..r^5`.
const F64_INV_LN2_N: f64 = f64::from_bits(0x40671547652b82fe);
const F64_NEG_LN2_HI_N: f64 = f64::from_bits(0xbf762e42fefa0000);
const F64_NEG_LN2_LO_N: f64 = f64::from_bits(0xbd0cf79abc9e3b3a);
const F64_SHIFT: f64 = f64::from_bits(0x4338000000000000);
const F64_C: [f64; 4] = [
    f64::from_bits(0x3fdffffffffffdbd),
    f64::from_bits(0x3fc555555555543c),
    f64::from_bits(0x3fa55555cf172b91),
    f64::from_bits(0x3f81111167a4d017),
];

/// `exp(x)` in `f64`.
pub fn exp_f64(x: f64) -> f64 {
    one(x)
}

/// `exp(x)` in `f64`, for callers already compiled for FMA (module `fma`).
#[inline(always)]
fn f64_one(x: f64) -> f64 {
    match f64_range(x) {
        F64Range::Main => {
            let (tmp, sbits, _) = f64_core(x);
            let scale = f64::from_bits(sbits);
            scale.mul_add(tmp, scale)
        }
        F64Range::Done(y) => y,
        F64Range::Large => {
            let (tmp, sbits, ki) = f64_core(x);
            f64_scaled(tmp, sbits, ki)
        }
    }
}

/// Which path an `f64` takes, by glibc's test on its exponent bits.
enum F64Range {
    /// `2^-54 <= |x| < 512`.
    Main,
    /// The result without the main path.
    Done(f64),
    /// `512 <= |x| < 1024`: the main path, then [`f64_scaled`].
    Large,
}

#[inline(always)]
fn f64_range(x: f64) -> F64Range {
    let abstop = (x.to_bits() >> 52) & 0x7ff;
    match abstop.wrapping_sub(0x3c9) {
        0..=0x3e => F64Range::Main,
        // |x| < 2^-54
        d if d >= 1 << 63 => F64Range::Done(1.0 + x),
        _ if abstop < 0x409 => F64Range::Large,
        _ if x == f64::NEG_INFINITY => F64Range::Done(0.0),
        _ if abstop == 0x7ff => F64Range::Done(1.0 + x),
        _ if x < 0.0 => F64Range::Done(0.0),
        _ => F64Range::Done(f64::INFINITY),
    }
}

/// The main path: `exp(x) = scale * (1 + tmp)` (`sbits` the bits of
/// `scale`, `ki` the integer `k` in its low bits).
#[inline(always)]
fn f64_core(x: f64) -> (f64, u64, u64) {
    let z = x.mul_add(F64_INV_LN2_N, F64_SHIFT);
    let ki = z.to_bits();
    let kd = z - F64_SHIFT;
    let r = kd.mul_add(F64_NEG_LN2_HI_N, x);
    let r = kd.mul_add(F64_NEG_LN2_LO_N, r);
    let idx = 2 * (ki % 128) as usize;
    let tail = f64::from_bits(TAB_F64[idx]);
    let sbits = TAB_F64[idx + 1].wrapping_add(ki << 45);
    let r2 = r * r;
    let tmp = r.mul_add(F64_C[1], F64_C[0]).mul_add(r2, r + tail);
    let tmp = (r2 * r2).mul_add(r.mul_add(F64_C[3], F64_C[2]), tmp);
    (tmp, sbits, ki)
}

/// `scale * (1 + tmp)` where `scale`'s exponent is out of range (`512 <= |x| < 1024`).
#[inline(always)]
fn f64_scaled(tmp: f64, sbits: u64, ki: u64) -> f64 {
    if ki & 0x8000_0000 == 0 {
        // k > 0: the exponent of scale may have overflowed by up to 460
        let scale = f64::from_bits(sbits.wrapping_sub(1009 << 52));
        return scale.mul_add(tmp, scale) * f64::from_bits(0x7f00000000000000);
    }
    // k < 0: rounded to the subnormal's precision before scaling it down
    let scale = f64::from_bits(sbits.wrapping_add(1022 << 52));
    let st = scale * tmp;
    let mut y = scale + st;
    if y < 1.0 {
        let lo = scale - y + st;
        let hi = 1.0 + y;
        let lo = 1.0 - hi + y + lo;
        y = (hi + lo) - 1.0;
        // -0 to +0, as glibc
        if y == 0.0 {
            y = 0.0;
        }
    }
    f64::from_bits(0x0010000000000000) * y
}

/// `exp` of each entry, in place.
pub fn exp_f64_in_place(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return by_eights(xs, |c| unsafe { avx512::f64x8(c) });
    }
    one_by_one(xs);
}

/// `eight` on every 8 entries of `xs` in turn, the last few padded to 8 (with
/// zeros, which take the main path).
#[inline(always)]
fn by_eights<T: Copy + Default>(xs: &mut [T], eight: impl Fn(&mut [T; 8])) {
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        eight(c.try_into().expect("8 entries"));
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut c = [T::default(); 8];
        c[..rest.len()].copy_from_slice(rest);
        eight(&mut c);
        rest.copy_from_slice(&c[..rest.len()]);
    }
}

/// The slices in AVX-512: the main path 8 entries at a time, `-inf` (a
/// masked-out logit) to 0 among them, and each other entry outside the main
/// path (rare in a softmax: under `-87` in `f32`, under `-512` in `f64`) one
/// at a time as above.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// `exp` of 8 entries in place.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn f32x8(c: &mut [f32; 8]) {
        // SAFETY: `c` holds 8 entries.
        let x = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let xd = _mm512_cvtps_pd(x);
        let z = _mm512_fmadd_pd(xd, _mm512_set1_pd(F32_INV_LN2_N), _mm512_set1_pd(F32_SHIFT));
        let ki = _mm512_castpd_si512(z);
        let kd = _mm512_sub_pd(z, _mm512_set1_pd(F32_SHIFT));
        let r = _mm512_fmsub_pd(_mm512_set1_pd(F32_INV_LN2_N), xd, kd);
        let idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
        // SAFETY: every index is below 32, the table's length.
        let t = unsafe { _mm512_i64gather_epi64::<8>(idx, TAB_F32.as_ptr() as *const i64) };
        let s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64::<47>(ki)));
        let p = _mm512_fmadd_pd(_mm512_set1_pd(F32_C[0]), r, _mm512_set1_pd(F32_C[1]));
        let y = _mm512_fmadd_pd(r, _mm512_set1_pd(F32_C[2]), _mm512_set1_pd(1.0));
        let y = _mm512_fmadd_pd(p, _mm512_mul_pd(r, r), y);
        // masked-out logits (-inf) give 0 here; the other lanes with
        // |x| >= 88 or NaN (abstop >= 0x42b) one at a time below
        let bits = _mm256_castps_si256(x);
        let minus_inf = _mm256_cmpeq_epi32(bits, _mm256_set1_epi32(f32::NEG_INFINITY.to_bits() as i32));
        let out = _mm256_andnot_ps(_mm256_castsi256_ps(minus_inf), _mm512_cvtpd_ps(_mm512_mul_pd(y, s)));
        let abstop = _mm256_and_si256(_mm256_srli_epi32::<20>(bits), _mm256_set1_epi32(0x7ff));
        let special = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(
            minus_inf,
            _mm256_cmpgt_epi32(abstop, _mm256_set1_epi32(0x42a)),
        )));
        let xs: [f32; 8] = std::array::from_fn(|i| c[i]);
        // SAFETY: `c` holds 8 entries.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), out) };
        if special != 0 {
            for (i, (c, &x)) in c.iter_mut().zip(&xs).enumerate() {
                if special & (1 << i) != 0 {
                    *c = exp_f32(x);
                }
            }
        }
    }

    /// `exp` of 8 entries in place.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn f64x8(c: &mut [f64; 8]) {
        // SAFETY: `c` holds 8 entries.
        let x = unsafe { _mm512_loadu_pd(c.as_ptr()) };
        let z = _mm512_fmadd_pd(x, _mm512_set1_pd(F64_INV_LN2_N), _mm512_set1_pd(F64_SHIFT));
        let ki = _mm512_castpd_si512(z);
        let kd = _mm512_sub_pd(z, _mm512_set1_pd(F64_SHIFT));
        let r = _mm512_fmadd_pd(kd, _mm512_set1_pd(F64_NEG_LN2_HI_N), x);
        let r = _mm512_fmadd_pd(kd, _mm512_set1_pd(F64_NEG_LN2_LO_N), r);
        let idx = _mm512_slli_epi64::<1>(_mm512_and_si512(ki, _mm512_set1_epi64(127)));
        // SAFETY: idx = 2j <= 254, so entries idx and idx + 1 lie within the table's 256.
        let (tail, top) = unsafe {
            (
                _mm512_i64gather_epi64::<8>(idx, TAB_F64.as_ptr() as *const i64),
                _mm512_i64gather_epi64::<8>(idx, TAB_F64.as_ptr().add(1) as *const i64),
            )
        };
        let sbits = _mm512_add_epi64(top, _mm512_slli_epi64::<45>(ki));
        let r2 = _mm512_mul_pd(r, r);
        let p = _mm512_fmadd_pd(r, _mm512_set1_pd(F64_C[1]), _mm512_set1_pd(F64_C[0]));
        let tmp = _mm512_fmadd_pd(p, r2, _mm512_add_pd(r, _mm512_castsi512_pd(tail)));
        let q = _mm512_fmadd_pd(r, _mm512_set1_pd(F64_C[3]), _mm512_set1_pd(F64_C[2]));
        let tmp = _mm512_fmadd_pd(_mm512_mul_pd(r2, r2), q, tmp);
        let scale = _mm512_castsi512_pd(sbits);
        // -inf gives 0 here, and |x| < 2^-54 gives 1 + x as in `f64_range`
        // (then r = x, tmp = x exactly, and scale = 1); the lanes with
        // |x| >= 512 (and NaN: abstop > 0x407) one at a time below
        let bits = _mm512_castpd_si512(x);
        let minus_inf = _mm512_cmpeq_epi64_mask(bits, _mm512_set1_epi64(f64::NEG_INFINITY.to_bits() as i64));
        let out = _mm512_maskz_fmadd_pd(!minus_inf, scale, tmp, scale);
        let abstop = _mm512_and_si512(_mm512_srli_epi64::<52>(bits), _mm512_set1_epi64(0x7ff));
        let special = !minus_inf & _mm512_cmpgt_epu64_mask(abstop, _mm512_set1_epi64(0x407));
        let xs: [f64; 8] = std::array::from_fn(|i| c[i]);
        // SAFETY: `c` holds 8 entries.
        unsafe { _mm512_storeu_pd(c.as_mut_ptr(), out) };
        if special != 0 {
            for (i, (c, &x)) in c.iter_mut().zip(&xs).enumerate() {
                if special & (1 << i) != 0 {
                    *c = exp_f64(x);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- tables

/// `2^(j/32)`'s bits less `j << 47` (`k`'s integer part is added back there).
const TAB_F32: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
/// Per `j < 128`: the bits of `tail_j`, then those of `2^(j/128)` less `j << 45`.
const TAB_F64: [u64; 256] = [
    0x0000000000000000,
    0x3ff0000000000000,
    0x3c9b3b4f1a88bf6e,
    0x3feff63da9fb3335,
    0xbc7160139cd8dc5d,
    0x3fefec9a3e778061,
    0xbc905e7a108766d1,
    0x3fefe315e86e7f85,
    0x3c8cd2523567f613,
    0x3fefd9b0d3158574,
    0xbc8bce8023f98efa,
    0x3fefd06b29ddf6de,
    0x3c60f74e61e6c861,
    0x3fefc74518759bc8,
    0x3c90a3e45b33d399,
    0x3fefbe3ecac6f383,
    0x3c979aa65d837b6d,
    0x3fefb5586cf9890f,
    0x3c8eb51a92fdeffc,
    0x3fefac922b7247f7,
    0x3c3ebe3d702f9cd1,
    0x3fefa3ec32d3d1a2,
    0xbc6a033489906e0b,
    0x3fef9b66affed31b,
    0xbc9556522a2fbd0e,
    0x3fef9301d0125b51,
    0xbc5080ef8c4eea55,
    0x3fef8abdc06c31cc,
    0xbc91c923b9d5f416,
    0x3fef829aaea92de0,
    0x3c80d3e3e95c55af,
    0x3fef7a98c8a58e51,
    0xbc801b15eaa59348,
    0x3fef72b83c7d517b,
    0xbc8f1ff055de323d,
    0x3fef6af9388c8dea,
    0x3c8b898c3f1353bf,
    0x3fef635beb6fcb75,
    0xbc96d99c7611eb26,
    0x3fef5be084045cd4,
    0x3c9aecf73e3a2f60,
    0x3fef54873168b9aa,
    0xbc8fe782cb86389d,
    0x3fef4d5022fcd91d,
    0x3c8a6f4144a6c38d,
    0x3fef463b88628cd6,
    0x3c807a05b0e4047d,
    0x3fef3f49917ddc96,
    0x3c968efde3a8a894,
    0x3fef387a6e756238,
    0x3c875e18f274487d,
    0x3fef31ce4fb2a63f,
    0x3c80472b981fe7f2,
    0x3fef2b4565e27cdd,
    0xbc96b87b3f71085e,
    0x3fef24dfe1f56381,
    0x3c82f7e16d09ab31,
    0x3fef1e9df51fdee1,
    0xbc3d219b1a6fbffa,
    0x3fef187fd0dad990,
    0x3c8b3782720c0ab4,
    0x3fef1285a6e4030b,
    0x3c6e149289cecb8f,
    0x3fef0cafa93e2f56,
    0x3c834d754db0abb6,
    0x3fef06fe0a31b715,
    0x3c864201e2ac744c,
    0x3fef0170fc4cd831,
    0x3c8fdd395dd3f84a,
    0x3feefc08b26416ff,
    0xbc86a3803b8e5b04,
    0x3feef6c55f929ff1,
    0xbc924aedcc4b5068,
    0x3feef1a7373aa9cb,
    0xbc9907f81b512d8e,
    0x3feeecae6d05d866,
    0xbc71d1e83e9436d2,
    0x3feee7db34e59ff7,
    0xbc991919b3ce1b15,
    0x3feee32dc313a8e5,
    0x3c859f48a72a4c6d,
    0x3feedea64c123422,
    0xbc9312607a28698a,
    0x3feeda4504ac801c,
    0xbc58a78f4817895b,
    0x3feed60a21f72e2a,
    0xbc7c2c9b67499a1b,
    0x3feed1f5d950a897,
    0x3c4363ed60c2ac11,
    0x3feece086061892d,
    0x3c9666093b0664ef,
    0x3feeca41ed1d0057,
    0x3c6ecce1daa10379,
    0x3feec6a2b5c13cd0,
    0x3c93ff8e3f0f1230,
    0x3feec32af0d7d3de,
    0x3c7690cebb7aafb0,
    0x3feebfdad5362a27,
    0x3c931dbdeb54e077,
    0x3feebcb299fddd0d,
    0xbc8f94340071a38e,
    0x3feeb9b2769d2ca7,
    0xbc87deccdc93a349,
    0x3feeb6daa2cf6642,
    0xbc78dec6bd0f385f,
    0x3feeb42b569d4f82,
    0xbc861246ec7b5cf6,
    0x3feeb1a4ca5d920f,
    0x3c93350518fdd78e,
    0x3feeaf4736b527da,
    0x3c7b98b72f8a9b05,
    0x3feead12d497c7fd,
    0x3c9063e1e21c5409,
    0x3feeab07dd485429,
    0x3c34c7855019c6ea,
    0x3feea9268a5946b7,
    0x3c9432e62b64c035,
    0x3feea76f15ad2148,
    0xbc8ce44a6199769f,
    0x3feea5e1b976dc09,
    0xbc8c33c53bef4da8,
    0x3feea47eb03a5585,
    0xbc845378892be9ae,
    0x3feea34634ccc320,
    0xbc93cedd78565858,
    0x3feea23882552225,
    0x3c5710aa807e1964,
    0x3feea155d44ca973,
    0xbc93b3efbf5e2228,
    0x3feea09e667f3bcd,
    0xbc6a12ad8734b982,
    0x3feea012750bdabf,
    0xbc6367efb86da9ee,
    0x3fee9fb23c651a2f,
    0xbc80dc3d54e08851,
    0x3fee9f7df9519484,
    0xbc781f647e5a3ecf,
    0x3fee9f75e8ec5f74,
    0xbc86ee4ac08b7db0,
    0x3fee9f9a48a58174,
    0xbc8619321e55e68a,
    0x3fee9feb564267c9,
    0x3c909ccb5e09d4d3,
    0x3feea0694fde5d3f,
    0xbc7b32dcb94da51d,
    0x3feea11473eb0187,
    0x3c94ecfd5467c06b,
    0x3feea1ed0130c132,
    0x3c65ebe1abd66c55,
    0x3feea2f336cf4e62,
    0xbc88a1c52fb3cf42,
    0x3feea427543e1a12,
    0xbc9369b6f13b3734,
    0x3feea589994cce13,
    0xbc805e843a19ff1e,
    0x3feea71a4623c7ad,
    0xbc94d450d872576e,
    0x3feea8d99b4492ed,
    0x3c90ad675b0e8a00,
    0x3feeaac7d98a6699,
    0x3c8db72fc1f0eab4,
    0x3feeace5422aa0db,
    0xbc65b6609cc5e7ff,
    0x3feeaf3216b5448c,
    0x3c7bf68359f35f44,
    0x3feeb1ae99157736,
    0xbc93091fa71e3d83,
    0x3feeb45b0b91ffc6,
    0xbc5da9b88b6c1e29,
    0x3feeb737b0cdc5e5,
    0xbc6c23f97c90b959,
    0x3feeba44cbc8520f,
    0xbc92434322f4f9aa,
    0x3feebd829fde4e50,
    0xbc85ca6cd7668e4b,
    0x3feec0f170ca07ba,
    0x3c71affc2b91ce27,
    0x3feec49182a3f090,
    0x3c6dd235e10a73bb,
    0x3feec86319e32323,
    0xbc87c50422622263,
    0x3feecc667b5de565,
    0x3c8b1c86e3e231d5,
    0x3feed09bec4a2d33,
    0xbc91bbd1d3bcbb15,
    0x3feed503b23e255d,
    0x3c90cc319cee31d2,
    0x3feed99e1330b358,
    0x3c8469846e735ab3,
    0x3feede6b5579fdbf,
    0xbc82dfcd978e9db4,
    0x3feee36bbfd3f37a,
    0x3c8c1a7792cb3387,
    0x3feee89f995ad3ad,
    0xbc907b8f4ad1d9fa,
    0x3feeee07298db666,
    0xbc55c3d956dcaeba,
    0x3feef3a2b84f15fb,
    0xbc90a40e3da6f640,
    0x3feef9728de5593a,
    0xbc68d6f438ad9334,
    0x3feeff76f2fb5e47,
    0xbc91eee26b588a35,
    0x3fef05b030a1064a,
    0x3c74ffd70a5fddcd,
    0x3fef0c1e904bc1d2,
    0xbc91bdfbfa9298ac,
    0x3fef12c25bd71e09,
    0x3c736eae30af0cb3,
    0x3fef199bdd85529c,
    0x3c8ee3325c9ffd94,
    0x3fef20ab5fffd07a,
    0x3c84e08fd10959ac,
    0x3fef27f12e57d14b,
    0x3c63cdaf384e1a67,
    0x3fef2f6d9406e7b5,
    0x3c676b2c6c921968,
    0x3fef3720dcef9069,
    0xbc808a1883ccb5d2,
    0x3fef3f0b555dc3fa,
    0xbc8fad5d3ffffa6f,
    0x3fef472d4a07897c,
    0xbc900dae3875a949,
    0x3fef4f87080d89f2,
    0x3c74a385a63d07a7,
    0x3fef5818dcfba487,
    0xbc82919e2040220f,
    0x3fef60e316c98398,
    0x3c8e5a50d5c192ac,
    0x3fef69e603db3285,
    0x3c843a59ac016b4b,
    0x3fef7321f301b460,
    0xbc82d52107b43e1f,
    0x3fef7c97337b9b5f,
    0xbc892ab93b470dc9,
    0x3fef864614f5a129,
    0x3c74b604603a88d3,
    0x3fef902ee78b3ff6,
    0x3c83c5ec519d7271,
    0x3fef9a51fbc74c83,
    0xbc8ff7128fd391f0,
    0x3fefa4afa2a490da,
    0xbc8dae98e223747d,
    0x3fefaf482d8e67f1,
    0x3c8ec3bc41aa2008,
    0x3fefba1bee615a27,
    0x3c842b94c3a9eb32,
    0x3fefc52b376bba97,
    0x3c8a64a931d185ee,
    0x3fefd0765b6e4540,
    0xbc8e37bae43be3ed,
    0x3fefdbfdad9cbe14,
    0x3c77893b4d91cd9d,
    0x3fefe7c1819e90d8,
    0x3c5305c14160cc89,
    0x3feff3c22b8f71f1,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs over every range of both paths: specials, the edges of the
    /// ranges, and a dense spread of ordinary values.
    fn f64_inputs() -> Vec<f64> {
        let mut v = vec![
            0.0,
            -0.0,
            1e-300,
            -1e-300,
            5e-17,
            -5e-17,
            1.0,
            -1.0,
            511.9,
            512.0,
            -512.0,
            700.0,
            709.7,
            709.8,
            -708.3,
            -708.5,
            -720.0,
            -745.0,
            -745.2,
            -746.0,
            1023.9,
            -1023.9,
            1024.0,
            -1024.0,
            1e10,
            -1e10,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
        ];
        // a fixed pseudo-random spread (splitmix64) over [-760, 760] and over [-40, 5]
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        };
        for _ in 0..200_000 {
            v.push(next() * 1520.0 - 760.0);
            v.push(next() * 45.0 - 40.0);
        }
        v
    }

    fn same64(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    fn same32(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn f64_slices_match_one_at_a_time_and_are_accurate() {
        let xs = f64_inputs();
        let (mut ys, mut each) = (xs.clone(), xs.clone());
        exp_f64_in_place(&mut ys);
        one_by_one(&mut each);
        for ((&x, &y), &e) in xs.iter().zip(&ys).zip(&each) {
            assert!(same64(y, exp_f64(x)), "exp({x:e}): slice {y:e}, one {:e}", exp_f64(x));
            assert!(
                same64(e, y),
                "exp({x:e}): one at a time over a slice {e:e}, slice {y:e}"
            );
            // within an ulp of the platform's exp (correctly rounded or nearly)
            let want = x.exp();
            let ulps = (y.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(same64(y, want) || ulps <= 1, "exp({x:e}) = {y:e}, libm {want:e}");
        }
    }

    /// On glibc (x86-64 with FMA) every input gives libm's bits.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    fn f64_is_glibcs_exp_bit_for_bit() {
        if !std::is_x86_feature_detected!("fma") {
            return;
        }
        for x in f64_inputs() {
            assert!(
                same64(exp_f64(x), x.exp()),
                "exp({x:e}): {:e}, libm {:e}",
                exp_f64(x),
                x.exp()
            );
        }
    }

    /// Every `f32` in steps of `step` bit patterns, from `start`.
    fn f32_every(start: u32, step: u32) -> impl Iterator<Item = f32> {
        (start..=u32::MAX).step_by(step as usize).map(f32::from_bits)
    }

    #[test]
    fn f32_slices_match_one_at_a_time_and_are_accurate() {
        let specials = [
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            88.7,
            88.8,
            -103.0,
            -103.5,
            -104.0,
        ];
        let xs: Vec<f32> = specials.into_iter().chain(f32_every(0, 997)).collect();
        let (mut ys, mut each) = (xs.clone(), xs.clone());
        exp_f32_in_place(&mut ys);
        one_by_one(&mut each);
        for ((&x, &y), &e) in xs.iter().zip(&ys).zip(&each) {
            assert!(same32(y, exp_f32(x)), "exp({x:e}): slice {y:e}, one {:e}", exp_f32(x));
            assert!(
                same32(e, y),
                "exp({x:e}): one at a time over a slice {e:e}, slice {y:e}"
            );
            let want = (x as f64).exp() as f32;
            let ulps = (y.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(same32(y, want) || ulps <= 1, "exp({x:e}) = {y:e}, want {want:e}");
        }
    }

    /// On glibc (x86-64 with FMA) every one of the 2^32 inputs gives libm's
    /// bits, one at a time and through the slice path (on two threads, about
    /// 20 s in release).
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    fn f32_is_glibcs_expf_for_every_input() {
        if !std::is_x86_feature_detected!("fma") {
            return;
        }
        let half = |his: std::ops::Range<u32>| {
            let mut buf = vec![0f32; 1 << 16];
            for hi in his {
                buf.iter_mut()
                    .enumerate()
                    .for_each(|(lo, v)| *v = f32::from_bits(hi << 16 | lo as u32));
                let xs = buf.clone();
                exp_f32_in_place(&mut buf);
                for (&x, &y) in xs.iter().zip(&buf) {
                    let want = x.exp();
                    assert!(same32(y, want), "exp({x:e}) = {y:e} over a slice, libm {want:e}");
                    assert!(same32(exp_f32(x), want), "exp({x:e}) = {:e}, libm {want:e}", exp_f32(x));
                }
            }
        };
        std::thread::scope(|s| {
            s.spawn(|| half(0..1 << 15));
            half(1 << 15..1 << 16);
        });
    }
}
