// Masked row log-softmax, forward and backward; gather of one entry per row and
// the fused gradient of sum_t coef[t] * log_softmax(x)[t, action[t]].
// One warp per row (8 rows per 256-thread block); masks are u8 (nonzero = valid).
#include "prelude.h"

DEV u32 warp_row() { return bid_x() * 8 + tid_x() / 32; }
DEV u32 lane() { return tid_x() % 32; }

// log-sum-exp over the valid entries of one row (-inf when none is valid).
DEV float row_lse(u32 cols, const float* x, const u8* m) {
    float mx = -inf_f();
    for (u32 j = lane(); j < cols; j += 32)
        if (m[j]) mx = fmaxf_(mx, x[j]);
    mx = warp_max(mx);
    if (mx == -inf_f()) return -inf_f();
    float s = 0.0f;
    for (u32 j = lane(); j < cols; j += 32)
        if (m[j]) s += expf_(x[j] - mx);
    s = warp_sum(s);
    return mx + logf_(s);
}

// out[i,j] = x[i,j] - lse_i over valid j; -inf at masked entries; a row with no
// valid entry is all NaN (the CPU engine panics there).
KERNEL masked_log_softmax_fwd(u32 rows, u32 cols, const float* x, const u8* mask, float* out) {
    const u32 i = warp_row();
    if (i >= rows) return;
    const float* xr = x + (u64)i * cols;
    const u8* mr = mask + (u64)i * cols;
    float* o = out + (u64)i * cols;
    float lse = row_lse(cols, xr, mr);
    for (u32 j = lane(); j < cols; j += 32) {
        float v = mr[j] ? xr[j] - lse : -inf_f();
        o[j] = lse == -inf_f() ? nan_f() : v;
    }
}

// dx[i,j] = g[i,j] - exp(logp[i,j]) * sum_{valid k} g[i,k] at valid j, 0 elsewhere.
KERNEL masked_log_softmax_bwd(u32 rows, u32 cols, const float* logp, const u8* mask, const float* g, float* dx) {
    const u32 i = warp_row();
    if (i >= rows) return;
    const u64 o = (u64)i * cols;
    float t = 0.0f;
    for (u32 j = lane(); j < cols; j += 32)
        if (mask[o + j]) t += g[o + j];
    t = warp_sum(t);
    for (u32 j = lane(); j < cols; j += 32)
        dx[o + j] = mask[o + j] ? g[o + j] - expf_(logp[o + j]) * t : 0.0f;
}

// out[i] = x[i, index[i]].
KERNEL gather_cols(u32 rows, u32 cols, const float* x, const u32* index, float* out) {
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < rows; i += gdim_x() * bdim_x()) {
        u32 j = index[i];
        out[i] = j < cols ? x[(u64)i * cols + j] : nan_f();
    }
}

// Gradient w.r.t. the logits of sum_i coef[i] * logp[i, action[i]] where
// logp = masked_log_softmax(logits): dx[i,j] = coef[i] * (1[j == action[i]] - p[i,j])
// at valid j, 0 at masked j. (Gather backward fused with the log-softmax backward.)
KERNEL logsoftmax_gather_bwd(u32 rows, u32 cols, const float* logp, const u8* mask, const u32* action,
                             const float* coef, float* dx) {
    const u32 i = warp_row();
    if (i >= rows) return;
    const u64 o = (u64)i * cols;
    const float c = coef[i];
    const u32 a = action[i];
    for (u32 j = lane(); j < cols; j += 32)
        dx[o + j] = mask[o + j] ? c * ((j == a ? 1.0f : 0.0f) - expf_(logp[o + j])) : 0.0f;
}
