#version 310 es
// rmsnorm.glsl: per row of DIM: y = x / sqrt(mean(x^2) + EPS) * w (GEMMA: * (1 + w)), or LayerNorm
// y = (x - mean) / sqrt(var + EPS) * w (+ b). ROWS rows per token (q/k norm: one per head; may run in
// place). ACCUMULATE adds the result to y (Gemma's post-norms feeding the residual).
// One workgroup per (row, token). Bindings: 0 x, 1 w, 2 bias (HAS_BIAS), 3 y.

#ifndef DIM
#define DIM 64
#endif
#ifndef ROWS
#define ROWS 1
#endif
#ifndef EPS
#define EPS 1e-6
#endif
#ifndef GEMMA
#define GEMMA 0
#endif
#ifndef LAYERNORM
#define LAYERNORM 0
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef ACCUMULATE
#define ACCUMULATE 0
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Xb { float X[]; };
layout(std430, binding = 1) readonly buffer Wb { float Wt[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly buffer Bb { float Bias[]; };
#endif
layout(std430, binding = 3) buffer Yb { float Y[]; };

#include "reduce.inc.glsl"

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (gl_WorkGroupID.y * uint(ROWS) + gl_WorkGroupID.x) * uint(DIM);
    float mean = 0.0;
#if LAYERNORM
    float s1 = 0.0;
    for (uint i = lid; i < uint(DIM); i += uint(WG_SIZE))
        s1 += X[base + i];
    mean = wg_sum(s1) / float(DIM);
#endif
    float s2 = 0.0;
    for (uint i = lid; i < uint(DIM); i += uint(WG_SIZE)) {
        float d = X[base + i] - mean;
        s2 += d * d;
    }
    float inv = inversesqrt(wg_sum(s2) / float(DIM) + float(EPS));
    for (uint i = lid; i < uint(DIM); i += uint(WG_SIZE)) {
        float w = Wt[i];
#if GEMMA
        w += 1.0;
#endif
        float v = (X[base + i] - mean) * inv * w;
#if HAS_BIAS
        v += Bias[i];
#endif
#if ACCUMULATE
        Y[base + i] += v;
#else
        Y[base + i] = v;
#endif
    }
}
