// Bias + activation forward and backward, and column sums (bias gradients).
// Activation codes: 0 identity, 1 leaky ReLU with `slope` (ReLU: slope 0), 2 tanh.
// All matrices row-major [rows, cols].
#include "prelude.h"

#define ACT_IDENTITY 0u
#define ACT_LEAKY 1u
#define ACT_TANH 2u

// y[i,j] = act(x[i,j] + bias[j]); x and y may be the same buffer.
KERNEL bias_act_fwd(u32 rows, u32 cols, const float* x, const float* bias, u32 act, float slope, float* y) {
    const u64 total = (u64)rows * cols;
    for (u64 e = (u64)bid_x() * bdim_x() + tid_x(); e < total; e += (u64)gdim_x() * bdim_x()) {
        float v = x[e] + bias[e % cols];
        if (act == ACT_LEAKY) v = v > 0.0f ? v : slope * v;
        else if (act == ACT_TANH) v = tanhf_(v);
        y[e] = v;
    }
}

// dx = dy * act'(.) written from the activation's OUTPUT y: leaky ReLU (slope >= 0)
// has derivative 1 where y > 0 and `slope` elsewhere (the CPU engine's convention at 0),
// tanh has 1 - y^2. dx may alias dy.
KERNEL act_bwd(u32 rows, u32 cols, const float* y, const float* dy, u32 act, float slope, float* dx) {
    const u64 total = (u64)rows * cols;
    for (u64 e = (u64)bid_x() * bdim_x() + tid_x(); e < total; e += (u64)gdim_x() * bdim_x()) {
        float g = dy[e];
        if (act == ACT_LEAKY) g = y[e] > 0.0f ? g : slope * g;
        else if (act == ACT_TANH) g = g * (1.0f - y[e] * y[e]);
        dx[e] = g;
    }
}

// out[j] = sum_i x[i,j] + beta * out[j] (beta == 0: out is write-only).
// Block: 32 columns x 8 row lanes; grid.x covers the columns. Deterministic order.
KERNEL col_sum(u32 rows, u32 cols, const float* x, float beta, float* out) {
    __shared__ float part[8][33];
    const u32 lx = tid_x() % 32, ly = tid_x() / 32;
    const u32 j = bid_x() * 32 + lx;
    float s = 0.0f;
    if (j < cols)
        for (u32 i = ly; i < rows; i += 8) s += x[(u64)i * cols + j];
    part[ly][lx] = s;
    sync_threads();
    if (ly == 0 && j < cols) {
        float t = 0.0f;
#pragma unroll
        for (int q = 0; q < 8; q++) t += part[q][lx];
        if (beta != 0.0f) t += beta * out[j];
        out[j] = t;
    }
}
