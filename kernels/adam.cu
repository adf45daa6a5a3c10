// Adam / AdamW update, the same f32 arithmetic as the CPU engine's nn::Adam:
//   g' = grad_scale * g (+ wd * w when coupled)
//   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
//   w *= decay (decoupled only);  w -= step_size * m / (sqrt(v) * inv_bc2_sqrt + eps)
// with step_size = lr / (1 - b1^t), inv_bc2_sqrt = 1 / sqrt(1 - b2^t), decay = 1 - lr wd,
// all computed on the host in f64 and rounded to f32, as the CPU does.
#include "prelude.h"

KERNEL adam_step(u32 n, float* w, const float* g, float* m, float* v, float grad_scale, float b1, float b2,
                 float step_size, float inv_bc2_sqrt, float eps, float wd, float decay, u32 coupled) {
    const float ob1 = 1.0f - b1, ob2 = 1.0f - b2;
    for (u32 i = bid_x() * bdim_x() + tid_x(); i < n; i += gdim_x() * bdim_x()) {
        float gi = g[i];
        if (grad_scale != 1.0f) gi = gi * grad_scale;
        float wi = w[i];
        if (coupled) gi = gi + wd * wi;
        float mi = b1 * m[i] + ob1 * gi;
        float vi = b2 * v[i] + ob2 * gi * gi;
        if (!coupled) wi *= decay;
        wi -= step_size * mi / (sqrtf_(vi) * inv_bc2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
    }
}
