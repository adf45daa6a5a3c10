// The kernels of kernels/*.cu as host functions (emulation build).
#pragma once
#include "prelude.h"

KERNEL gemm_nn_f32(u32, u32, u32, float, const float*, const float*, float, float*);
KERNEL gemm_nt_f32(u32, u32, u32, float, const float*, const float*, float, float*);
KERNEL gemm_tn_f32(u32, u32, u32, float, const float*, const float*, float, float*);
KERNEL gemm_nn_bf16(u32, u32, u32, float, const u16*, const u16*, float, float*);
KERNEL gemm_nt_bf16(u32, u32, u32, float, const u16*, const u16*, float, float*);
KERNEL gemm_tn_bf16(u32, u32, u32, float, const u16*, const u16*, float, float*);
KERNEL f32_to_bf16(u32, const float*, u16*);
KERNEL bias_act_fwd(u32, u32, const float*, const float*, u32, float, float*);
KERNEL act_bwd(u32, u32, const float*, const float*, u32, float, float*);
KERNEL col_sum(u32, u32, const float*, float, float*);
KERNEL masked_log_softmax_fwd(u32, u32, const float*, const u8*, float*);
KERNEL masked_log_softmax_bwd(u32, u32, const float*, const u8*, const float*, float*);
KERNEL gather_cols(u32, u32, const float*, const u32*, float*);
KERNEL logsoftmax_gather_bwd(u32, u32, const float*, const u8*, const u32*, const float*, float*);
KERNEL philox_test(u32, u32, u32, u32, u32, u32*);
KERNEL sample_categorical(u32, u32, const float*, const u8*, const u64*, u32, u32, u32, float, float, u32*, float*);
KERNEL tb_residual(u32, const u32*, const float*, const float*, const float*, const float*, float*);
KERNEL regression_loss(u32, const float*, u32, float, float, float, float*, float*);
KERNEL segment_broadcast(u32, const u32*, const float*, float, float*);
KERNEL reduce_sum(u32, const float*, u32, float, float*);
KERNEL reduce_sum_sq_f64(u32, const float*, double*);
KERNEL reduce_f64(u32, const double*, double*);
KERNEL adam_step(u32, float*, const float*, float*, float*, float, float, float, float, float, float, float, float, u32);

