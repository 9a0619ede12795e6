#version 310 es
// add_rmsnorm.glsl: the fused residual step: r += (HAS_NORM_A ? rmsnorm_a(x) : x); out = rmsnorm_b(r).
// For Gemma's sandwich norms (post-attention norm, residual add, pre-FFN norm) it is one dispatch instead
// of two, and the hidden state is read once. One workgroup per token.
// Bindings: 0 x, 1 w_a (post norm), 2 r (residual, read and written), 3 w_b, 4 out.

#ifndef DIM
#define DIM 64
#endif
#ifndef EPS
#define EPS 1e-6
#endif
#ifndef GEMMA
#define GEMMA 0
#endif
#ifndef HAS_NORM_A
#define HAS_NORM_A 0
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Xb { float X[]; };
#if HAS_NORM_A
layout(std430, binding = 1) readonly buffer Ab { float Wa[]; };
#endif
layout(std430, binding = 2) buffer Rb { float R[]; };
layout(std430, binding = 3) readonly buffer Wbb { float Wb[]; };
layout(std430, binding = 4) writeonly buffer Ob { float O[]; };

#include "reduce.inc.glsl"

float gw(float w)
{
#if GEMMA
    return w + 1.0;
#else
    return w;
#endif
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = gl_WorkGroupID.y * uint(DIM);
#if HAS_NORM_A
    float sa = 0.0;
    for (uint i = lid; i < uint(DIM); i += uint(WG_SIZE))
        sa += X[base + i] * X[base + i];
    float inva = inversesqrt(wg_sum(sa) / float(DIM) + float(EPS));
#endif
    float sb = 0.0;
    for (uint i = lid; i < uint(DIM); i += uint(WG_SIZE)) {
#if HAS_NORM_A
        float r = R[base + i] + X[base + i] * inva * gw(Wa[i]);
#else
        float r = R[base + i] + X[base + i];
#endif
        R[base + i] = r;
        sb += r * r;
    }
    float invb = inversesqrt(wg_sum(sb) / float(DIM) + float(EPS));
    for (uint i = lid; i < uint(DIM); i += uint(WG_SIZE))
        O[base + i] = R[base + i] * invb * gw(Wb[i]);
}
