#version 310 es
// moe_ffn.glsl: the selected experts' FFNs. Expert weights are stacked [NE * rows, cols] in any WTYPE of
// wdecode.inc.glsl; the expert of each (token, slot) is read from the routing buffer sel written by
// moe_route.glsl, so only the selected experts' rows are read and the CPU never sees the choice.
// MOE_STAGE 1 (gate+up): act[t][k][i] = act(x[t] . Wg[e*EI + i] + bg) * (x[t] . Wu[e*EI + i] + bu),
//   e = sel[t].ids[k]; ACT 0 silu, 1 gelu_tanh, 2 gelu, 3 GPT-OSS clamped SwiGLU:
//   g = min(g, LIMIT), u = clamp(u, -LIMIT, LIMIT), (u + 1) * g * sigmoid(ALPHA * g).
// MOE_STAGE 2 (down + weighted combine): y[t][h] += sum_k w_k (act[t][k] . Wd[e_k*HID + h] + bd), the
//   scatter-add into the residual stream fused in (one invocation owns each (t, h): no atomics).
// Prefill runs the same per-token loop (each token reads its own k experts); grouping tokens by expert
// so each expert's rows are read once per batch is not done yet.
// Bindings: 0 x, 1 W (gate / down), 2 bias, 3 out (stage 1) / y (stage 2, read and written),
// 4 Wu (stage 1), 5 sel, 6 up bias (stage 1).

#ifndef MOE_STAGE
#define MOE_STAGE 1
#endif
#ifndef NE
#define NE 8
#endif
#ifndef TOPK
#define TOPK 2
#endif
#ifndef EI
#define EI 64 // expert FFN width
#endif
#ifndef HID
#define HID 64
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef HAS_BIAS2
#define HAS_BIAS2 0
#endif
#ifndef ACT
#define ACT 0
#endif
#ifndef LIMIT
#define LIMIT 7.0
#endif
#ifndef ALPHA
#define ALPHA 1.702
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

#include "common.inc.glsl"
#if MOE_STAGE == 1
#define WSEL2 1
#endif
#include "wdecode.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Xb { vec4 X4[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly buffer Bb { float Bias[]; };
#endif
#if MOE_STAGE == 1
layout(std430, binding = 3) writeonly buffer Ob { float O[]; };
#if HAS_BIAS2
layout(std430, binding = 6) readonly buffer B2b { float Bias2[]; };
#endif
#else
layout(std430, binding = 3) buffer Yb { float Y[]; };
#endif
layout(std430, binding = 5) readonly buffer Sb { uint Sel[]; };

float dotw(float w[WCH], uint xv)
{
    float s = 0.0;
    for (uint j = 0u; j < uint(WCH) / 4u; j++)
        s += dot(vec4(w[4u * j], w[4u * j + 1u], w[4u * j + 2u], w[4u * j + 3u]), X4[xv + j]);
    return s;
}

#if MOE_STAGE == 1
float act(float g, float u)
{
#if ACT == 3
    g = min(g, float(LIMIT));
    u = clamp(u, -float(LIMIT), float(LIMIT));
    return (u + 1.0) * (g / (1.0 + exp(-g * float(ALPHA))));
#elif ACT == ACT_GELU_TANH
    return act_gelu_tanh(g) * u;
#elif ACT == ACT_GELU
    return act_gelu(g) * u;
#else
    return act_silu(g) * u;
#endif
}

void main()
{
    uint i = gl_GlobalInvocationID.x, k = gl_WorkGroupID.y, t = gl_WorkGroupID.z;
    if (i >= uint(EI) || t >= u_ntok)
        return;
    uint e = min(Sel[t * uint(2 * TOPK) + k], uint(NE - 1));
    uint row = e * uint(EI) + i;
    uint rb = row * uint(WROWBYTES);
    uint xb = t * (uint(HID) / 4u);
    float g = 0.0, u = 0.0;
    for (uint c = 0u; c < uint(HID) / uint(WCH); c++) {
        float w[WCH];
        wchunk(0u, rb, c, w);
        g += dotw(w, xb + c * (uint(WCH) / 4u));
        wchunk(1u, rb, c, w);
        u += dotw(w, xb + c * (uint(WCH) / 4u));
    }
#if HAS_BIAS
    g += Bias[row];
#endif
#if HAS_BIAS2
    u += Bias2[row];
#endif
    O[(t * uint(TOPK) + k) * uint(EI) + i] = act(g, u);
}

#else
void main()
{
    uint h = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (h >= uint(HID) || t >= u_ntok)
        return;
    float y = 0.0;
    for (uint k = 0u; k < uint(TOPK); k++) {
        uint sb = t * uint(2 * TOPK);
        uint e = min(Sel[sb + k], uint(NE - 1));
        float gw = uintBitsToFloat(Sel[sb + uint(TOPK) + k]);
        uint row = e * uint(HID) + h;
        uint rb = row * uint(WROWBYTES);
        uint xb = (t * uint(TOPK) + k) * (uint(EI) / 4u);
        float o = 0.0;
        for (uint c = 0u; c < uint(EI) / uint(WCH); c++) {
            float w[WCH];
            wchunk(0u, rb, c, w);
            o += dotw(w, xb + c * (uint(WCH) / 4u));
        }
#if HAS_BIAS
        o += Bias[row];
#endif
        y += o * gw;
    }
    Y[t * uint(HID) + h] += y;
}
#endif
