// Host-emulation check of every kernel in kernels/*.cu against C++ references (double
// precision where it matters), on random inputs (seed printed; argv[1] replays one),
// outputs NaN-poisoned before each launch. Built and run by scripts/emulate-kernels.sh.
// This emulates CUDA's execution model on CPU threads; it is NOT a GPU run.
#include "runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

thread_local EmuThread emu;
#include "kernels.h"

static u32 g1(size_t n, u32 cap = 6) { return (u32)std::clamp<size_t>((n + 255) / 256, 1, cap); }
static u32 grows(size_t rows) { return (u32)std::max<size_t>((rows + 7) / 8, 1); }

// ---------------------------------------------------------------- helpers
static std::mt19937_64 rng;
static int failures = 0;
static void check(bool ok, const char* what, double v = 0) {
    if (!ok) {
        failures++;
        std::printf("FAIL %s (%g)\n", what, v);
    }
}
static std::vector<float> randn(size_t n, float s) {
    std::normal_distribution<float> d(0.0f, s);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}
static std::vector<u8> rmask(size_t rows, size_t cols, double p) {
    std::bernoulli_distribution b(p);
    std::vector<u8> m(rows * cols);
    for (auto& x : m) x = b(rng);
    for (size_t r = 0; r < rows; r++) {
        bool any = false;
        for (size_t j = 0; j < cols; j++) any |= m[r * cols + j] != 0;
        if (!any) m[r * cols + rng() % cols] = 1;
    }
    return m;
}
template <class T> static std::vector<T> poison(size_t n) {
    std::vector<T> v(n);
    std::memset(v.data(), 0xff, n * sizeof(T)); // NaN for floats
    return v;
}

// ---------------------------------------------------------------- checks
static void check_gemm() {
    size_t sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {129, 130, 17}, {200, 77, 140}, {33, 300, 21}};
    for (auto& s : sizes) {
        size_t m = s[0], n = s[1], k = s[2];
        for (int op = 0; op < 3; op++)
            for (int bf = 0; bf < 2; bf++) {
                auto a = randn(m * k, 1), b = randn(k * n, 1);
                std::vector<u16> ah(m * k), bh(k * n);
                for (size_t i = 0; i < a.size(); i++) ah[i] = f32_to_bf16(a[i]);
                for (size_t i = 0; i < b.size(); i++) bh[i] = f32_to_bf16(b[i]);
                auto A = [&](size_t i, size_t kk) { return (double)(op == 2 ? a[kk * m + i] : a[i * k + kk]); };
                auto B = [&](size_t kk, size_t j) { return (double)(op == 1 ? b[j * k + kk] : b[kk * n + j]); };
                for (int ab = 0; ab < 2; ab++) {
                    float alpha = ab ? 1.5f : 1.0f, beta = ab ? 0.5f : 0.0f;
                    auto c0 = randn(m * n, 1);
                    auto c = ab ? c0 : poison<float>(m * n);
                    u32 gx = (u32)((n + 127) / 128), gy = (u32)((m + 127) / 128);
                    launch(gx, gy, 256, [&] {
                        u32 M = m, N = n, K = k;
                        if (!bf) {
                            if (op == 0) gemm_nn_f32(M, N, K, alpha, a.data(), b.data(), beta, c.data());
                            if (op == 1) gemm_nt_f32(M, N, K, alpha, a.data(), b.data(), beta, c.data());
                            if (op == 2) gemm_tn_f32(M, N, K, alpha, a.data(), b.data(), beta, c.data());
                        } else {
                            if (op == 0) gemm_nn_bf16(M, N, K, alpha, ah.data(), bh.data(), beta, c.data());
                            if (op == 1) gemm_nt_bf16(M, N, K, alpha, ah.data(), bh.data(), beta, c.data());
                            if (op == 2) gemm_tn_bf16(M, N, K, alpha, ah.data(), bh.data(), beta, c.data());
                        }
                    });
                    double worst = 0, scale = 1e-30;
                    for (size_t i = 0; i < m; i++)
                        for (size_t j = 0; j < n; j++) {
                            double r = 0, sa = 0;
                            for (size_t kk = 0; kk < k; kk++) r += A(i, kk) * B(kk, j), sa += std::fabs(A(i, kk) * B(kk, j));
                            r = alpha * r + beta * c0[i * n + j];
                            sa = alpha * sa + beta * std::fabs(c0[i * n + j]);
                            double g = c[i * n + j];
                            worst = std::max(worst, std::isnan(g) ? INFINITY : std::fabs(g - r));
                            scale = std::max(scale, sa);
                        }
                    char what[96];
                    std::snprintf(what, sizeof what, "gemm op %d %s %zux%zux%zu beta %g", op, bf ? "bf16" : "f32", m, n, k, beta);
                    check(worst / scale < (bf ? 1e-2 : 1e-6), what, worst / scale);
                }
            }
    }
    // f32 -> bf16: round to nearest even, checked against a rounding done in double
    auto x = randn(5000, 100);
    x.push_back(0.0f), x.push_back(-0.0f), x.push_back(INFINITY), x.push_back(3.4e38f), x.push_back(1e-40f);
    auto y = poison<u16>(x.size());
    launch(g1(x.size()), 1, 256, [&] { f32_to_bf16((u32)x.size(), x.data(), y.data()); });
    for (size_t i = 0; i < x.size(); i++) {
        u32 u;
        std::memcpy(&u, &x[i], 4);
        u16 lo = (u16)(u >> 16), hi = (u16)(lo + 1);
        double dl = std::fabs((double)bf16_to_f32(lo) - x[i]), dh = std::fabs((double)bf16_to_f32(hi) - x[i]);
        if (std::isinf(bf16_to_f32(hi)) && !std::isinf(x[i])) // the next step up is inf: the half-way point decides
            dh = std::fabs(std::ldexp(1.0, 128) - std::fabs((double)x[i]));
        u16 want = (dl < dh || (dl == dh && (lo & 1) == 0)) ? lo : hi;
        if (std::isinf(x[i])) want = lo;
        check(y[i] == want, "f32_to_bf16", x[i]);
    }
}

static void check_act() {
    size_t sizes[][2] = {{1, 1}, {5, 33}, {257, 129}, {100, 7}};
    for (auto& s : sizes) {
        size_t rows = s[0], cols = s[1], n = rows * cols;
        for (int act = 0; act < 4; act++) {
            u32 code = act == 0 ? 0 : act == 3 ? 2 : 1;
            float slope = act == 2 ? 0.01f : 0.0f;
            auto x = randn(n, 2), bias = randn(cols, 1), dy = randn(n, 1);
            auto y = poison<float>(n), dx = poison<float>(n);
            launch(g1(n), 1, 256, [&] { bias_act_fwd(rows, cols, x.data(), bias.data(), code, slope, y.data()); });
            launch(g1(n), 1, 256, [&] { act_bwd(rows, cols, y.data(), dy.data(), code, slope, dx.data()); });
            double worst = 0, worst_d = 0;
            for (size_t e = 0; e < n; e++) {
                float pre = x[e] + bias[e % cols];
                double want = code == 0 ? pre : code == 1 ? (pre > 0 ? pre : slope * (double)pre) : std::tanh((double)pre);
                worst = std::max(worst, std::fabs(y[e] - want) / std::max(1.0, std::fabs((double)pre)));
                double d = code == 0 ? 1 : code == 1 ? (pre > 0 ? 1 : slope) : 1 - (double)y[e] * y[e];
                worst_d = std::max(worst_d, std::fabs(dx[e] - dy[e] * d) / std::max(1.0, std::fabs((double)dy[e])));
            }
            check(worst < 1e-6, "bias_act_fwd", worst);
            check(worst_d < 1e-6, "act_bwd", worst_d);
        }
        auto x = randn(n, 1);
        for (int beta = 0; beta < 2; beta++) {
            auto out = beta ? std::vector<float>(cols, 1.0f) : poison<float>(cols);
            launch((u32)((cols + 31) / 32), 1, 256, [&] { col_sum(rows, cols, x.data(), (float)beta, out.data()); });
            for (size_t j = 0; j < cols; j++) {
                double r = beta, sa = 1;
                for (size_t i = 0; i < rows; i++) r += x[i * cols + j], sa += std::fabs(x[i * cols + j]);
                check(std::fabs(out[j] - r) < 1e-6 * sa, "col_sum", out[j] - r);
            }
        }
    }
}

static void check_softmax() {
    size_t sizes[][2] = {{1, 1}, {3, 2}, {60, 21}, {17, 33}, {9, 100}};
    for (auto& s : sizes) {
        size_t rows = s[0], cols = s[1], n = rows * cols;
        auto x = randn(n, 3);
        auto m = rmask(rows, cols, 0.6);
        auto lp = poison<float>(n);
        launch(grows(rows), 1, 256, [&] { masked_log_softmax_fwd(rows, cols, x.data(), m.data(), lp.data()); });
        std::vector<double> ref(n);
        for (size_t i = 0; i < rows; i++) {
            double mx = -INFINITY, sum = 0;
            for (size_t j = 0; j < cols; j++)
                if (m[i * cols + j]) mx = std::max(mx, (double)x[i * cols + j]);
            for (size_t j = 0; j < cols; j++)
                if (m[i * cols + j]) sum += std::exp(x[i * cols + j] - mx);
            for (size_t j = 0; j < cols; j++) {
                size_t e = i * cols + j;
                ref[e] = m[e] ? x[e] - mx - std::log(sum) : -INFINITY;
                if (m[e]) check(std::fabs(lp[e] - ref[e]) <= 1e-5 * (1 + std::fabs(ref[e])), "log_softmax fwd", lp[e] - ref[e]);
                else check(lp[e] == -INFINITY, "log_softmax masked entry");
            }
        }
        auto g = randn(n, 1);
        auto dx = poison<float>(n);
        launch(grows(rows), 1, 256, [&] { masked_log_softmax_bwd(rows, cols, lp.data(), m.data(), g.data(), dx.data()); });
        std::vector<u32> act(rows);
        auto coef = randn(rows, 1);
        for (size_t i = 0; i < rows; i++) {
            double t = 0, sa = 1;
            for (size_t j = 0; j < cols; j++)
                if (m[i * cols + j]) t += g[i * cols + j], sa += std::fabs(g[i * cols + j]);
            for (size_t j = 0; j < cols; j++) {
                size_t e = i * cols + j;
                double want = m[e] ? g[e] - std::exp(ref[e]) * t : 0;
                check(std::fabs(dx[e] - want) <= 1e-5 * sa, "log_softmax bwd", dx[e] - want);
            }
            do act[i] = rng() % cols;
            while (!m[i * cols + act[i]]);
        }
        auto picked = poison<float>(rows), d2 = poison<float>(n);
        launch(g1(rows), 1, 256, [&] { gather_cols(rows, cols, lp.data(), act.data(), picked.data()); });
        launch(grows(rows), 1, 256,
               [&] { logsoftmax_gather_bwd(rows, cols, lp.data(), m.data(), act.data(), coef.data(), d2.data()); });
        for (size_t i = 0; i < rows; i++) {
            check(picked[i] == lp[i * cols + act[i]], "gather_cols");
            for (size_t j = 0; j < cols; j++) {
                size_t e = i * cols + j;
                double want = m[e] ? coef[i] * ((j == act[i] ? 1.0 : 0.0) - std::exp(ref[e])) : 0;
                check(std::fabs(d2[e] - want) <= 1e-5 * (1 + std::fabs(coef[i])), "logsoftmax_gather_bwd", d2[e] - want);
            }
        }
    }
}

// Philox4x32-10 written from the Random123 description (mulhilo, round, bumpkey).
static void mulhilo(u32 a, u32 b, u32& hi, u32& lo) {
    u64 p = (u64)a * b;
    hi = (u32)(p >> 32), lo = (u32)p;
}
static void philox_ref(u32 c[4], u32 k[2]) {
    for (int r = 0; r < 10; r++) {
        if (r) k[0] += 0x9E3779B9u, k[1] += 0xBB67AE85u;
        u32 hi0, lo0, hi1, lo1;
        mulhilo(0xD2511F53u, c[0], hi0, lo0);
        mulhilo(0xCD9E8D57u, c[2], hi1, lo1);
        u32 o[4] = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
        std::memcpy(c, o, sizeof o);
    }
}

static void check_sample() {
    u32 w0 = 0;
    launch(1, 1, 256, [&] { philox_test(1, 0, 0, 0, 0, &w0); });
    check(w0 == 0x6627e8d5u, "philox known answer (Random123 kat_vectors)", w0);
    {
        u32 n = 700, hi = (u32)rng(), step = (u32)rng() % 100;
        u64 seed = rng();
        auto out = poison<u32>(n);
        launch(g1(n), 1, 256, [&] { philox_test(n, hi, step, (u32)seed, (u32)(seed >> 32), out.data()); });
        for (u32 i = 0; i < n; i++) {
            u32 c[4] = {i, hi, step, 0}, k[2] = {(u32)seed, (u32)(seed >> 32)};
            philox_ref(c, k);
            check(out[i] == c[0], "philox_test vs reference", i);
        }
    }
    size_t sizes[][2] = {{1, 1}, {120, 5}, {48, 21}, {24, 33}, {8, 300}};
    float temps[] = {1.0f, 2.0f, 0.5f}, eps[] = {0.0f, 0.1f, 0.0f};
    int near = 0, total = 0;
    for (auto& s : sizes)
        for (int v = 0; v < 3; v++) {
            size_t rows = s[0], cols = s[1];
            auto x = randn(rows * cols, 2);
            auto m = rmask(rows, cols, 0.5);
            std::vector<u64> traj(rows);
            for (auto& t : traj) t = rng();
            u64 seed = rng();
            u32 step = (u32)(rng() % 64);
            auto act = poison<u32>(rows);
            auto lp = poison<float>(rows);
            launch(grows(rows), 1, 256, [&] {
                sample_categorical(rows, cols, x.data(), m.data(), traj.data(), step, (u32)seed, (u32)(seed >> 32),
                                   1.0f / temps[v], eps[v], act.data(), lp.data());
            });
            for (size_t i = 0; i < rows; i++) {
                total++;
                u32 c[4] = {(u32)traj[i], (u32)(traj[i] >> 32), step, 0}, k[2] = {(u32)seed, (u32)(seed >> 32)};
                philox_ref(c, k);
                double u = (double)(c[0] >> 8) / 16777216.0;
                const float* xr = &x[i * cols];
                const u8* mr = &m[i * cols];
                double it = 1.0 / temps[v], mx = -INFINITY, tot = 0, nv = 0, mx1 = -INFINITY, s1 = 0;
                for (size_t j = 0; j < cols; j++)
                    if (mr[j]) mx = std::max(mx, xr[j] * it), mx1 = std::max(mx1, (double)xr[j]), nv++;
                for (size_t j = 0; j < cols; j++)
                    if (mr[j]) tot += std::exp(xr[j] * it - mx), s1 += std::exp(xr[j] - mx1);
                double acc = 0, dist = INFINITY;
                long want = -1, last = -1;
                for (size_t j = 0; j < cols; j++) {
                    if (!mr[j]) continue;
                    last = (long)j;
                    acc += (1 - eps[v]) * std::exp(xr[j] * it - mx) / tot + eps[v] / nv;
                    dist = std::min(dist, std::fabs(acc - u));
                    if (want < 0 && u < acc) want = (long)j;
                }
                if (want < 0) want = last;
                check(act[i] < cols && mr[act[i]], "sample: valid action", act[i]);
                if ((long)act[i] != want) {
                    near++;
                    check(dist < 1e-5, "sample: differs from the reference away from a boundary", dist);
                }
                if (act[i] < cols) {
                    double want_lp = xr[act[i]] - mx1 - std::log(s1);
                    check(std::fabs(lp[i] - want_lp) <= 1e-5 * (1 + std::fabs(want_lp)), "sample: log p", lp[i] - want_lp);
                }
            }
        }
    check(near * 1000 <= total, "sample: too many near-tie differences", near);
}

static double g_val(int kind, double a, double t) {
    if (kind == 0) return t * t;
    if (kind == 1) return (std::expm1(a * t) - a * t) / (a * a);
    // 2 (cosh t - 1) written without the cancellation that costs double precision
    // ~4e-4 relative error at |t| = 1e-6
    double s = std::sinh(t / 2);
    return 4 * s * s;
}
static double g_der(int kind, double a, double t) {
    if (kind == 0) return 2 * t;
    if (kind == 1) return std::expm1(a * t) / a;
    return 2 * std::sinh(t);
}

static void check_loss() {
    for (size_t batch : {1, 7, 256, 300}) {
        std::vector<u32> off{0};
        for (size_t b = 0; b < batch; b++) off.push_back(off.back() + 1 + rng() % 30);
        size_t rows = off.back();
        auto pf = randn(rows, 1), pb = randn(rows, 0.5), lr = randn(batch, 3);
        float lz = 1.7f;
        auto res = poison<float>(batch);
        launch(g1(batch), 1, 256, [&] { tb_residual(batch, off.data(), pf.data(), pb.data(), lr.data(), &lz, res.data()); });
        for (size_t b = 0; b < batch; b++) {
            double r = (double)lr[b] - lz, sa = std::fabs(lr[b]) + lz;
            for (u32 i = off[b]; i < off[b + 1]; i++) r += (double)pb[i] - pf[i], sa += std::fabs(pb[i]) + std::fabs(pf[i]);
            check(std::fabs(res[b] - r) <= 4e-6 * sa, "tb_residual", res[b] - r);
        }
        std::vector<float> t(batch);
        std::uniform_real_distribution<float> wide(-60, 60), tiny(-1e-3f, 1e-3f), mid(-4, 4);
        for (size_t i = 0; i < batch; i++) t[i] = i % 4 == 0 ? wide(rng) : i % 4 == 1 ? tiny(rng) : mid(rng);
        struct { int kind; float a; } losses[] = {{0, 0}, {1, 1}, {1, 0.5f}, {2, 0}, {1, -1}};
        for (auto L : losses) {
            auto val = poison<float>(batch), grad = poison<float>(batch);
            float scale = 1.0f / batch;
            launch(g1(batch), 1, 256, [&] { regression_loss(batch, t.data(), L.kind, L.a, 50.0f, scale, val.data(), grad.data()); });
            for (size_t i = 0; i < batch; i++) {
                double wv = g_val(L.kind, L.a, t[i]);
                double wd = scale * g_der(L.kind, L.a, std::clamp((double)t[i], -50.0, 50.0));
                check(std::fabs(val[i] - wv) <= 1e-5 * std::fabs(wv) + 1e-30, "regression value", (val[i] - wv) / wv);
                check(std::fabs(grad[i] - wd) <= 1e-5 * std::fabs(wd) + 1e-30, "regression grad", (grad[i] - wd) / wd);
            }
        }
        auto per = randn(batch, 1);
        auto out = poison<float>(rows);
        launch(g1(batch), 1, 256, [&] { segment_broadcast(batch, off.data(), per.data(), -1.0f, out.data()); });
        for (size_t b = 0; b < batch; b++)
            for (u32 i = off[b]; i < off[b + 1]; i++) check(out[i] == -per[b], "segment_broadcast");
        // two-pass sums as src/cuda/ops.rs launches them
        auto x = randn(rows, 1);
        u32 blocks = g1(rows, 512);
        auto part = poison<float>(blocks);
        float total = NAN;
        launch(blocks, 1, 256, [&] { reduce_sum(rows, x.data(), 0, 1.0f, part.data()); });
        launch(1, 1, 256, [&] { reduce_sum(blocks, part.data(), 0, 0.5f, &total); });
        double s = 0, sa = 0, sq = 0;
        for (float v : x) s += v, sa += std::fabs(v), sq += (double)v * v;
        check(std::fabs(total - 0.5 * s) <= 1e-6 * sa, "reduce_sum", total - 0.5 * s);
        launch(blocks, 1, 256, [&] { reduce_sum(rows, x.data(), 1, 1.0f, part.data()); });
        launch(1, 1, 256, [&] { reduce_sum(blocks, part.data(), 0, 1.0f, &total); });
        check(std::fabs(total - sq) <= 1e-6 * sq, "reduce_sum squares", total - sq);
        auto p64 = poison<double>(blocks);
        double t64 = NAN;
        launch(blocks, 1, 256, [&] { reduce_sum_sq_f64(rows, x.data(), p64.data()); });
        launch(1, 1, 256, [&] { reduce_f64(blocks, p64.data(), &t64); });
        check(std::fabs(t64 - sq) <= 1e-12 * sq, "reduce_sum_sq_f64", t64 - sq);
    }
}

static void check_adam() {
    for (int coupled = 0; coupled < 2; coupled++) {
        size_t n = 1000;
        auto w = randn(n, 1);
        std::vector<float> m(n, 0), v(n, 0), rw = w, rm = m, rv = v;
        float b1 = 0.9f, b2 = 0.999f, lr = 1e-2f, wd = 0.1f, eps = 1e-8f;
        for (int t = 1; t <= 5; t++) {
            auto g = randn(n, 1);
            float scale = t == 3 ? 0.5f : 1.0f;
            float step_size = (float)(lr / (1 - std::pow(0.9, t))), ib = (float)(1 / std::sqrt(1 - std::pow(0.999, t)));
            float decay = 1 - lr * wd;
            launch(g1(n), 1, 256, [&] {
                adam_step(n, w.data(), g.data(), m.data(), v.data(), scale, b1, b2, step_size, ib, eps, wd, decay, coupled);
            });
            for (size_t i = 0; i < n; i++) {
                float gi = g[i] * scale;
                if (coupled) gi += wd * rw[i];
                rm[i] = b1 * rm[i] + (1 - b1) * gi;
                rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
                if (!coupled) rw[i] *= decay;
                rw[i] -= step_size * rm[i] / (std::sqrt(rv[i]) * ib + eps);
            }
        }
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = std::max(worst, std::fabs((double)w[i] - rw[i]) / std::max(1.0f, std::fabs(rw[i])));
        check(worst < 1e-6, "adam_step", worst);
    }
}

int main(int argc, char** argv) {
    u64 seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10)
                        : (u64)std::chrono::steady_clock::now().time_since_epoch().count();
    std::printf("emulated kernel check, seed %llu\n", seed);
    rng.seed(seed);
    struct { const char* name; void (*f)(); } parts[] = {
        {"gemm + f32_to_bf16", check_gemm}, {"activations + col_sum", check_act}, {"masked log-softmax", check_softmax},
        {"philox + sampling", check_sample}, {"TB residual, losses, reductions", check_loss}, {"adam", check_adam}};
    for (auto& p : parts) {
        int before = failures;
        auto t0 = std::chrono::steady_clock::now();
        p.f();
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%-36s %s (%.1f s)\n", p.name, failures == before ? "ok" : "FAILED", s);
    }
    std::printf("%s\n", failures ? "emulated kernel check FAILED" : "emulated kernel check passed");
    return failures ? 1 : 0;
}
