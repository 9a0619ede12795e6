#version 310 es
// moe_route.glsl: mixture-of-experts routing on the GPU. From each token's router logits [NE] it writes
// the TOPK selected expert ids and their gate weights to sel[t] = {ids[TOPK] (uint), weights[TOPK] (f32
// bits)}, which the expert kernels read: the CPU never learns which experts were chosen. One invocation
// per token: NE is at most a few hundred, so a serial selection costs less than a reduction's barriers.
// ROUTER 1: softmax over all experts, top-k of the probabilities, renormalized when NORM_TOPK (Mixtral,
// Qwen3-MoE). 2: top-k of the logits, softmax over the k (GPT-OSS). 3: PhiMoE's sparsemixer as
// transformers evaluates it at inference (two rounds of: mask experts whose relative gap to the current
// maximum exceeds 2 * JITTER, softmax what is left, keep the maximum's probability), exactly as
// ref/cpu_moe.c. Ties keep the lower expert index, as the CPU reference does.
// Bindings: 0 router logits [T][NE], 1 sel [T][2 * TOPK].

#ifndef NE
#define NE 8
#endif
#ifndef TOPK
#define TOPK 2
#endif
#ifndef ROUTER
#define ROUTER 1
#endif
#ifndef NORM_TOPK
#define NORM_TOPK 0
#endif
#ifndef JITTER
#define JITTER 0.01
#endif

#include "common.inc.glsl"

layout(local_size_x = 1) in;
layout(std430, binding = 0) readonly buffer Lb { float Lg[]; };
layout(std430, binding = 1) writeonly buffer Sb { uint Sel[]; };

float v[NE];
bool used[NE];
uint idx[TOPK];
float w[TOPK];

void topk()
{
    for (uint e = 0u; e < uint(NE); e++)
        used[e] = false;
    for (uint j = 0u; j < uint(TOPK); j++) {
        int best = -1;
        for (int e = 0; e < NE; e++)
            if (!used[e] && (best < 0 || v[e] > v[best]))
                best = e;
        idx[j] = uint(best);
        used[best] = true;
    }
}

void main()
{
    uint t = gl_WorkGroupID.y;
    uint lb = t * uint(NE);
#if ROUTER == 3
    // sparsemixer (top-2)
    for (uint rnd = 0u; rnd < 2u; rnd++) {
        float m = -3.0e38;
        uint mi = 0u;
        for (uint e = 0u; e < uint(NE); e++) {
            bool ex = rnd == 1u && e == idx[0];
            float s = Lg[lb + e];
            if (!ex && s > m) {
                m = s;
                mi = e;
            }
        }
        float sum = 0.0;
        for (uint e = 0u; e < uint(NE); e++) {
            float s = Lg[lb + e];
            float factor = max(abs(s), m);
            bool drop = (m - s) / factor > 2.0 * float(JITTER);
            if (!(drop || (rnd == 1u && e == idx[0])))
                sum += exp(s - m);
        }
        idx[rnd] = mi;
        w[rnd] = 1.0 / sum; // exp(m - m) / sum: the maximum is never masked (its gap is 0)
    }
#elif ROUTER == 2
    for (uint e = 0u; e < uint(NE); e++)
        v[e] = Lg[lb + e];
    topk();
    float m = v[idx[0]], s = 0.0;
    for (uint k = 0u; k < uint(TOPK); k++) {
        w[k] = exp(v[idx[k]] - m);
        s += w[k];
    }
    for (uint k = 0u; k < uint(TOPK); k++)
        w[k] /= s;
#else
    float m = -3.0e38, s = 0.0;
    for (uint e = 0u; e < uint(NE); e++)
        m = max(m, Lg[lb + e]);
    for (uint e = 0u; e < uint(NE); e++) {
        v[e] = exp(Lg[lb + e] - m);
        s += v[e];
    }
    for (uint e = 0u; e < uint(NE); e++)
        v[e] /= s;
    topk();
    float sk = 0.0;
    for (uint k = 0u; k < uint(TOPK); k++) {
        w[k] = v[idx[k]];
        sk += w[k];
    }
#if NORM_TOPK
    for (uint k = 0u; k < uint(TOPK); k++)
        w[k] /= sk;
#endif
#endif
    uint ob = t * uint(2 * TOPK);
    for (uint k = 0u; k < uint(TOPK); k++) {
        Sel[ob + k] = idx[k];
        Sel[ob + uint(TOPK) + k] = floatBitsToUint(w[k]);
    }
}
