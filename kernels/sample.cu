// Categorical sampling from masked logits with a counter-based RNG.
//
// Row i draws one uniform u from Philox4x32-10 keyed by the 64-bit seed, with
// counter (traj[i] low, traj[i] high, step, 0): the draw depends only on
// (seed, trajectory, step), never on batching or launch shape, so GPU sampling
// is reproducible (src/cuda/rng.rs is the bit-exact host twin). u = (w0 >> 8) * 2^-24.
//
// Action: the first valid j with u < sum_{k <= j} q_k, where
// q = (1 - epsilon) * softmax(inv_temp * logits) + epsilon * uniform(valid),
// masked entries excluded (the last valid j if rounding leaves u above the total).
// logp[i] = log_softmax(logits)[i, action] at temperature 1 (the policy's own).
// One warp per row, 8 rows per 256-thread block.
#include "prelude.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

DEV u32 philox_w0(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
#pragma unroll
    for (int r = 0; r < 10; r++) {
        u64 p0 = (u64)PHILOX_M0 * c0;
        u64 p1 = (u64)PHILOX_M1 * c2;
        u32 n0 = (u32)(p1 >> 32) ^ c1 ^ k0;
        u32 n2 = (u32)(p0 >> 32) ^ c3 ^ k1;
        c1 = (u32)p1;
        c3 = (u32)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    return c0;
}

// Philox4x32-10 first output word, for tests of the host twin: out[i] for counter (i, hi, step, 0).
KERNEL philox_test(u32 n, u32 hi, u32 step, u32 seed_lo, u32 seed_hi, u32* out) {
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < n; i += gdim_x() * bdim_x())
        out[i] = philox_w0(i, hi, step, 0, seed_lo, seed_hi);
}

KERNEL sample_categorical(u32 rows, u32 cols, const float* logits, const u8* mask, const u64* traj, u32 step,
                          u32 seed_lo, u32 seed_hi, float inv_temp, float epsilon, u32* action, float* logp) {
    const u32 i = bid_x() * 8 + tid_x() / 32;
    const u32 lane = tid_x() % 32;
    if (i >= rows) return;
    const float* x = logits + (u64)i * cols;
    const u8* m = mask + (u64)i * cols;

    float mx1 = -inf_f(), mxt = -inf_f(), nv = 0.0f;
    for (u32 j = lane; j < cols; j += 32)
        if (m[j]) {
            mx1 = fmaxf_(mx1, x[j]);
            mxt = fmaxf_(mxt, x[j] * inv_temp);
            nv += 1.0f;
        }
    mx1 = warp_max(mx1);
    mxt = warp_max(mxt);
    nv = warp_sum(nv);
    if (nv == 0.0f) { // no valid action: report it, never index out of range
        if (lane == 0) { action[i] = 0xffffffffu; logp[i] = nan_f(); }
        return;
    }
    float s1 = 0.0f, st = 0.0f;
    for (u32 j = lane; j < cols; j += 32)
        if (m[j]) {
            s1 += expf_(x[j] - mx1);
            st += expf_(x[j] * inv_temp - mxt);
        }
    s1 = warp_sum(s1);
    st = warp_sum(st);
    const float lse1 = mx1 + logf_(s1);

    const u64 t = traj[i];
    const u32 w = philox_w0((u32)t, (u32)(t >> 32), step, 0, seed_lo, seed_hi);
    const float u = (float)(w >> 8) * 5.9604644775390625e-8f; // 2^-24

    const float keep = 1.0f - epsilon, unif = epsilon / nv;
    float base = 0.0f;
    int chosen = -1, last_valid = -1;
    for (u32 j0 = 0; j0 < cols && chosen < 0; j0 += 32) {
        const u32 j = j0 + lane;
        const bool valid = j < cols && m[j];
        float q = valid ? keep * (expf_(x[j] * inv_temp - mxt) / st) + unif : 0.0f;
        // inclusive warp scan
        for (int o = 1; o < 32; o <<= 1) {
            float y = shfl_up_f(q, o);
            if ((int)lane >= o) q += y;
        }
        const float acc = base + q;
        const u32 hit = ballot(valid && u < acc);
        const u32 vb = ballot(valid);
        if (hit) chosen = (int)(j0 + __builtin_ctz(hit));
        else if (vb) last_valid = (int)(j0 + 31 - __builtin_clz(vb));
        base += shfl_idx_f(q, 31);
    }
    if (chosen < 0) chosen = last_valid;
    if (lane == 0) {
        action[i] = (u32)chosen;
        logp[i] = x[chosen] - lse1;
    }
}
