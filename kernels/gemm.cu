// Tiled GEMM, row-major, f32 accumulate:  C[m,n] = alpha * op(A) op(B) + beta * C
// (beta == 0: C is write-only, never read, so it may hold garbage or NaN).
//
//   nn: A [m,k], B [k,n]      (y = x W)
//   nt: A [m,k], B [n,k]      (dx = dy W^T)
//   tn: A [k,m], B [k,n]      (dW = x^T dy)
//
// Storage is f32 or bf16 (u16 bit patterns, `_bf16` entries); shared tiles and
// accumulators are f32. Block tile 128x128x8, 256 threads, 8x8 outputs per
// thread laid out as two 4-wide strips in each direction (conflict-free float4
// reads of the shared tiles). Edges (m, n, k not multiples of the tile) are
// zero-filled on load and guarded on store.
#include "prelude.h"

#define BM 128
#define BN 128
#define BK 8

DEV float ld(const float* p, u64 i) { return p[i]; }
DEV float ld(const u16* p, u64 i) { return bf16_to_f32(p[i]); }

template <bool TA, bool TB, typename T>
DEV void gemm_tile(u32 m, u32 n, u32 k, float alpha, const T* __restrict__ a, const T* __restrict__ b, float beta,
                   float* __restrict__ c) {
    __shared__ __attribute__((aligned(16))) float as[2][BK][BM];
    __shared__ __attribute__((aligned(16))) float bs[2][BK][BN];
    const u32 tid = tid_x();
    const u32 tx = tid % 16, ty = tid / 16;
    const u32 row0 = bid_y() * BM, col0 = bid_x() * BN;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

    // Each thread loads 4 elements of each tile. Consecutive threads walk the
    // operand's contiguous dimension (coalesced global reads).
    float ra[4], rb[4];
    auto load_a = [&](u32 k0) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            u32 e = tid + 256u * q; // 0..1023 over the BM x BK tile
            u32 r, kk;
            if (TA) { r = e % BM; kk = e / BM; } // A stored [k, m]: m contiguous
            else { kk = e % BK; r = e / BK; }    // A stored [m, k]: k contiguous
            u32 gr = row0 + r, gk = k0 + kk;
            float v = 0.0f;
            if (gr < m && gk < k) v = TA ? ld(a, (u64)gk * m + gr) : ld(a, (u64)gr * k + gk);
            ra[q] = v;
        }
    };
    auto load_b = [&](u32 k0) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            u32 e = tid + 256u * q;
            u32 cc, kk;
            if (TB) { kk = e % BK; cc = e / BK; } // B stored [n, k]: k contiguous
            else { cc = e % BN; kk = e / BN; }    // B stored [k, n]: n contiguous
            u32 gc = col0 + cc, gk = k0 + kk;
            float v = 0.0f;
            if (gc < n && gk < k) v = TB ? ld(b, (u64)gc * k + gk) : ld(b, (u64)gk * n + gc);
            rb[q] = v;
        }
    };
    auto store_tiles = [&](int buf) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            u32 e = tid + 256u * q;
            u32 r, kk;
            if (TA) { r = e % BM; kk = e / BM; } else { kk = e % BK; r = e / BK; }
            as[buf][kk][r] = ra[q];
            u32 cc;
            if (TB) { kk = e % BK; cc = e / BK; } else { cc = e % BN; kk = e / BN; }
            bs[buf][kk][cc] = rb[q];
        }
    };

    const u32 ntiles = (k + BK - 1) / BK;
    load_a(0);
    load_b(0);
    store_tiles(0);
    sync_threads();
    for (u32 t = 0; t < ntiles; t++) {
        const int buf = t & 1;
        if (t + 1 < ntiles) { // prefetch the next tile into registers while computing this one
            load_a((t + 1) * BK);
            load_b((t + 1) * BK);
        }
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float4v a0 = *(const float4v*)&as[buf][kk][ty * 4];
            float4v a1 = *(const float4v*)&as[buf][kk][64 + ty * 4];
            float4v b0 = *(const float4v*)&bs[buf][kk][tx * 4];
            float4v b1 = *(const float4v*)&bs[buf][kk][64 + tx * 4];
            float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] += av[i] * bv[j];
        }
        if (t + 1 < ntiles) {
            store_tiles(buf ^ 1);
        }
        sync_threads();
    }

#pragma unroll
    for (int i = 0; i < 8; i++) {
        u32 r = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
        if (r >= m) continue;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u32 cc = col0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + (j - 4));
            if (cc >= n) continue;
            u64 idx = (u64)r * n + cc;
            float v = alpha * acc[i][j];
            if (beta != 0.0f) v += beta * c[idx];
            c[idx] = v;
        }
    }
}

KERNEL gemm_nn_f32(u32 m, u32 n, u32 k, float alpha, const float* a, const float* b, float beta, float* c) {
    gemm_tile<false, false>(m, n, k, alpha, a, b, beta, c);
}
KERNEL gemm_nt_f32(u32 m, u32 n, u32 k, float alpha, const float* a, const float* b, float beta, float* c) {
    gemm_tile<false, true>(m, n, k, alpha, a, b, beta, c);
}
KERNEL gemm_tn_f32(u32 m, u32 n, u32 k, float alpha, const float* a, const float* b, float beta, float* c) {
    gemm_tile<true, false>(m, n, k, alpha, a, b, beta, c);
}
KERNEL gemm_nn_bf16(u32 m, u32 n, u32 k, float alpha, const u16* a, const u16* b, float beta, float* c) {
    gemm_tile<false, false>(m, n, k, alpha, a, b, beta, c);
}
KERNEL gemm_nt_bf16(u32 m, u32 n, u32 k, float alpha, const u16* a, const u16* b, float beta, float* c) {
    gemm_tile<false, true>(m, n, k, alpha, a, b, beta, c);
}
KERNEL gemm_tn_bf16(u32 m, u32 n, u32 k, float alpha, const u16* a, const u16* b, float beta, float* c) {
    gemm_tile<true, false>(m, n, k, alpha, a, b, beta, c);
}

// f32 -> bf16 (round to nearest even), n elements.
KERNEL f32_to_bf16(u32 n, const float* x, u16* y) {
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < n; i += gdim_x() * bdim_x()) y[i] = f32_to_bf16(x[i]);
}
