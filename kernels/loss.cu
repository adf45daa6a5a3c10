// Trajectory-balance residuals, the regression losses g and their clipped
// gradients, segment broadcasts and deterministic sum reductions.
//
// Residual (log backward flow minus log forward flow):
//   t_b = log R_b + sum_{rows of b} log P_B - log Z - sum_{rows of b} log P_F
// Losses (kind): 0 squared t^2; 1 Linex(a) (exp(a t) - a t - 1) / a^2;
//   2 shifted cosh exp(t) + exp(-t) - 2.
// value = g(t); grad = scale * g'(clamp(t, -clip, clip)).
#include "prelude.h"

#define LOSS_SQUARED 0u
#define LOSS_LINEX 1u
#define LOSS_COSH 2u

KERNEL tb_residual(u32 batch, const u32* offsets, const float* log_pf, const float* log_pb, const float* log_r,
                   const float* log_z, float* resid) {
    for (u32 b = bid_x() * bdim_x() + tid_x(); b < batch; b += gdim_x() * bdim_x()) {
        float s = 0.0f;
        for (u32 r = offsets[b]; r < offsets[b + 1]; r++) s += log_pb[r] - log_pf[r];
        resid[b] = log_r[b] - log_z[0] + s;
    }
}

// exp(x) - 1 - x, accurate near 0 (series), as the CPU objective computes it.
DEV float expm1_minus_x(float x) {
    if (x > -0.1f && x < 0.1f) {
        float term = 0.5f * x * x, sum = term;
#pragma unroll
        for (int k = 3; k <= 9; k++) {
            term *= x / (float)k;
            sum += term;
        }
        return sum;
    }
    return expm1f_(x) - x;
}

KERNEL regression_loss(u32 n, const float* t, u32 kind, float alpha, float clip, float scale, float* value,
                       float* grad) {
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < n; i += gdim_x() * bdim_x()) {
        const float x = t[i];
        const float xc = fminf_(fmaxf_(x, -clip), clip);
        float v, d;
        if (kind == LOSS_SQUARED) {
            v = x * x;
            d = 2.0f * xc;
        } else if (kind == LOSS_LINEX) {
            v = expm1_minus_x(alpha * x) / (alpha * alpha);
            d = expm1f_(alpha * xc) / alpha;
        } else {
            float s = sinhf_(0.5f * x);
            v = 4.0f * s * s;
            d = 2.0f * sinhf_(xc);
        }
        value[i] = v;
        grad[i] = scale * d;
    }
}

// per_row[r] = sign * per_seg[b] for every row r of segment b.
KERNEL segment_broadcast(u32 batch, const u32* offsets, const float* per_seg, float sign, float* per_row) {
    for (u32 b = bid_x() * bdim_x() + tid_x(); b < batch; b += gdim_x() * bdim_x()) {
        const float v = sign * per_seg[b];
        for (u32 r = offsets[b]; r < offsets[b + 1]; r++) per_row[r] = v;
    }
}

// out[block] = scale * sum over this block's grid-stride share of x (of x^2 when square != 0).
// One block gives the whole sum; many blocks give partials for a second pass.
// Fixed order for a fixed launch shape: deterministic. Block size 256.
KERNEL reduce_sum(u32 n, const float* x, u32 square, float scale, float* out) {
    __shared__ float part[8];
    float s = 0.0f;
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < n; i += gdim_x() * bdim_x()) {
        float v = x[i];
        s += square ? v * v : v;
    }
    s = warp_sum(s);
    if (tid_x() % 32 == 0) part[tid_x() / 32] = s;
    sync_threads();
    if (tid_x() < 32) {
        float v = tid_x() < bdim_x() / 32 ? part[tid_x()] : 0.0f;
        v = warp_sum(v);
        if (tid_x() == 0) out[bid_x()] = scale * v;
    }
}

// out[block] = sum of x[i]^2 over this block's grid-stride share, accumulated in f64
// (gradient norms: the CPU engine sums squares in f64, and f32 squares overflow early).
KERNEL reduce_sum_sq_f64(u32 n, const float* x, double* out) {
    __shared__ double part[256];
    double s = 0.0;
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < n; i += gdim_x() * bdim_x()) {
        double v = (double)x[i];
        s += v * v;
    }
    part[tid_x()] = s;
    sync_threads();
    for (u32 w = 128; w > 0; w >>= 1) {
        if (tid_x() < w) part[tid_x()] += part[tid_x() + w];
        sync_threads();
    }
    if (tid_x() == 0) out[bid_x()] = part[0];
}

// out[0] = sum x[i] over n doubles, one block of 256 threads, fixed order.
KERNEL reduce_f64(u32 n, const double* x, double* out) {
    __shared__ double part[256];
    double s = 0.0;
    for (u32 i = tid_x(); i < n; i += bdim_x()) s += x[i];
    part[tid_x()] = s;
    sync_threads();
    for (u32 w = 128; w > 0; w >>= 1) {
        if (tid_x() < w) part[tid_x()] += part[tid_x() + w];
        sync_threads();
    }
    if (tid_x() == 0) out[0] = part[0];
}
