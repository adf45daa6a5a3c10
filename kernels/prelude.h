// Minimal device prelude for clang's CUDA mode without the CUDA headers
// (compiled with -nocudainc -nocudalib; libdevice is linked as bitcode).
// Only what the kernels in this folder use.
#pragma once

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __attribute__((always_inline)) inline
#define DEV static __device__ __forceinline__
#define KERNEL extern "C" __global__ void

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef float float4v __attribute__((ext_vector_type(4)));

DEV u32 tid_x() { return __nvvm_read_ptx_sreg_tid_x(); }
DEV u32 tid_y() { return __nvvm_read_ptx_sreg_tid_y(); }
DEV u32 bid_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
DEV u32 bid_y() { return __nvvm_read_ptx_sreg_ctaid_y(); }
DEV u32 bdim_x() { return __nvvm_read_ptx_sreg_ntid_x(); }
DEV u32 bdim_y() { return __nvvm_read_ptx_sreg_ntid_y(); }
DEV u32 gdim_x() { return __nvvm_read_ptx_sreg_nctaid_x(); }
DEV void sync_threads() { __syncthreads(); }

// libdevice (IEEE-accurate f32 math; linked with -mlink-builtin-bitcode)
extern "C" __device__ float __nv_expf(float);
extern "C" __device__ float __nv_expm1f(float);
extern "C" __device__ float __nv_logf(float);
extern "C" __device__ float __nv_tanhf(float);
extern "C" __device__ float __nv_sinhf(float);
extern "C" __device__ float __nv_sqrtf(float);
DEV float expf_(float x) { return __nv_expf(x); }
DEV float expm1f_(float x) { return __nv_expm1f(x); }
DEV float logf_(float x) { return __nv_logf(x); }
DEV float tanhf_(float x) { return __nv_tanhf(x); }
DEV float sinhf_(float x) { return __nv_sinhf(x); }
DEV float sqrtf_(float x) { return __nv_sqrtf(x); }

DEV float inf_f() { return __builtin_inff(); }
DEV float nan_f() { return __builtin_nanf(""); }
DEV float fmaxf_(float a, float b) { return a > b ? a : b; }
DEV float fminf_(float a, float b) { return a < b ? a : b; }

// warp shuffles (full mask)
DEV float shfl_xor_f(float v, int lane_mask) { return __nvvm_shfl_sync_bfly_f32(0xffffffffu, v, lane_mask, 0x1f); }
DEV float shfl_up_f(float v, int delta) { return __nvvm_shfl_sync_up_f32(0xffffffffu, v, delta, 0); }
DEV float shfl_idx_f(float v, int lane) { return __nvvm_shfl_sync_idx_f32(0xffffffffu, v, lane, 0x1f); }
DEV u32 ballot(bool p) { return __nvvm_vote_ballot_sync(0xffffffffu, p); }

#include "common.h"
