// HOST EMULATION of kernels/prelude.h: the same kernel sources compiled as C++ for the
// CPU, one OS thread per CUDA thread, blocks run one after another (so `static` storage
// stands in for __shared__). Warp shuffles and votes go through a per-warp exchange
// buffer and barrier; __syncthreads is a block barrier. Used by scripts/emulate-kernels.sh
// to check the kernels' index arithmetic and algorithms without a GPU. It says nothing
// about the real memory model, scheduling, the PTX or the driver.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __shared__ static
#define __forceinline__ inline
#define __restrict__
#define DEV static inline
#define KERNEL extern "C" void

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef float float4v __attribute__((ext_vector_type(4)));

struct EmuWarp {
    std::barrier<>* bar;
    float f[32];
    u32 u[32];
};
struct EmuThread {
    u32 tid, bx, by, bdx, gdx, gdy;
    std::barrier<>* block_bar;
    EmuWarp* warp;
};
extern thread_local EmuThread emu;

DEV u32 tid_x() { return emu.tid; }
DEV u32 bid_x() { return emu.bx; }
DEV u32 bid_y() { return emu.by; }
DEV u32 bdim_x() { return emu.bdx; }
DEV u32 gdim_x() { return emu.gdx; }
DEV void sync_threads() { emu.block_bar->arrive_and_wait(); }

DEV float expf_(float x) { return std::exp(x); }
DEV float expm1f_(float x) { return std::expm1(x); }
DEV float logf_(float x) { return std::log(x); }
DEV float tanhf_(float x) { return std::tanh(x); }
DEV float sinhf_(float x) { return std::sinh(x); }
DEV float sqrtf_(float x) { return std::sqrt(x); }
DEV float inf_f() { return __builtin_inff(); }
DEV float nan_f() { return __builtin_nanf(""); }
DEV float fmaxf_(float a, float b) { return a > b ? a : b; }
DEV float fminf_(float a, float b) { return a < b ? a : b; }

DEV u32 lane_id() { return emu.tid % 32; }
DEV float emu_exchange(float v, int src) {
    EmuWarp* w = emu.warp;
    w->f[lane_id()] = v;
    w->bar->arrive_and_wait();
    float r = w->f[src];
    w->bar->arrive_and_wait();
    return r;
}
DEV float shfl_xor_f(float v, int m) { return emu_exchange(v, (int)(lane_id() ^ (u32)m)); }
DEV float shfl_up_f(float v, int d) { return emu_exchange(v, (int)lane_id() >= d ? (int)lane_id() - d : (int)lane_id()); }
DEV float shfl_idx_f(float v, int l) { return emu_exchange(v, l); }
DEV u32 ballot(bool p) {
    EmuWarp* w = emu.warp;
    w->u[lane_id()] = p;
    w->bar->arrive_and_wait();
    u32 m = 0;
    for (int i = 0; i < 32; i++) m |= (w->u[i] ? 1u : 0u) << i;
    w->bar->arrive_and_wait();
    return m;
}
#include "common.h"
