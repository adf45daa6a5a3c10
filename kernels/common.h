// Helpers shared by the device prelude (prelude.h) and its host emulation
// (emu/prelude.h): written only in terms of the primitives those two define.
#pragma once

DEV float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += shfl_xor_f(v, o);
    return v;
}
DEV float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf_(v, shfl_xor_f(v, o));
    return v;
}

// bf16 storage: the high half of an f32 (round to nearest even on the way in)
DEV float bf16_to_f32(u16 h) { return __builtin_bit_cast(float, ((u32)h) << 16); }
DEV u16 f32_to_bf16(float f) {
    u32 u = __builtin_bit_cast(u32, f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u); // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16)(u >> 16);
}
