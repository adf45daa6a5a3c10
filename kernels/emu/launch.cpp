// The emulation backend of src/cuda (feature `cuda-emu`): gfn_emu_launch runs a kernel by
// name on the host, unpacking the launcher's argument array (pointers to the values, as
// cuLaunchKernel takes them) with the kernel's own C++ parameter types.
#include "runtime.h"

#include <cstring>
#include <tuple>
#include <utility>

thread_local EmuThread emu;
#include "kernels.h"

template <class... A, size_t... I>
static void call_with(void (*k)(A...), void** args, u32 gx, u32 gy, u32 b, std::index_sequence<I...>) {
    std::tuple<std::decay_t<A>...> vals{*static_cast<std::decay_t<A>*>(args[I])...};
    launch(gx, gy, b, [k, vals] { std::apply(k, vals); });
}
template <class... A> static void call(void (*k)(A...), void** args, u32 gx, u32 gy, u32 b) {
    call_with(k, args, gx, gy, b, std::index_sequence_for<A...>{});
}

typedef void (*Dispatch)(void**, u32, u32, u32);
#define K(name) {#name, [](void** a, u32 gx, u32 gy, u32 b) { call(name, a, gx, gy, b); }}
static const std::pair<const char*, Dispatch> table[] = {
    K(gemm_nn_f32), K(gemm_nt_f32), K(gemm_tn_f32), K(gemm_nn_bf16), K(gemm_nt_bf16), K(gemm_tn_bf16),
    K(f32_to_bf16), K(bias_act_fwd), K(act_bwd), K(col_sum), K(masked_log_softmax_fwd), K(masked_log_softmax_bwd),
    K(gather_cols), K(logsoftmax_gather_bwd), K(philox_test), K(sample_categorical), K(tb_residual),
    K(regression_loss), K(segment_broadcast), K(reduce_sum), K(reduce_sum_sq_f64), K(reduce_f64), K(adam_step),
};

// 0: done; 1: no such kernel; 2: a block size the kernels do not use.
extern "C" int gfn_emu_launch(const char* name, u32 gx, u32 gy, u32 block, void** args) {
    if (block == 0 || block % 32 != 0 || block > 1024) return 2;
    for (auto& [n, f] : table)
        if (std::strcmp(n, name) == 0) {
            f(args, gx, gy, block);
            return 0;
        }
    return 1;
}
