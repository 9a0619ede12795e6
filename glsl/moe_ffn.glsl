#version 310 es
// moe_ffn.glsl: the selected experts' FFNs. Expert weights are stacked [NE * rows, cols] in any WTYPE of
// wdecode.inc.glsl; the expert of each (token, slot) is read from the routing buffer sel written by
// moe_route.glsl, so only the selected experts' rows are read and the CPU never sees the choice.
// MOE_STAGE 1 (gate+up): act[t][k][i] = act(x[t] . Wg[e*EI + i] + bg) * (x[t] . Wu[e*EI + i] + bu),
//   e = sel[t].ids[k]; ACT 0 silu, 1 gelu_tanh, 2 gelu, 3 GPT-OSS clamped SwiGLU:
//   g = min(g, LIMIT), u = clamp(u, -LIMIT, LIMIT), (u + 1) * g * sigmoid(ALPHA * g).
// MOE_STAGE 2 (down + weighted combine): y[t][h] += sum_k w_k (act[t][k] . Wd[e_k*HID + h] + bd), the
//   scatter-add into the residual stream fused in (one invocation owns each (t, h): no atomics).
// MOE_GROUPED 1 (prefill): expert-major. moe_group.glsl has listed, per expert, the (token, slot) pairs
//   that chose it (binding 5 is then that list, not sel). Workgroup column e = gl_WorkGroupID.y runs expert
//   e over its pairs TB at a time: each weight chunk is read once per TB pairs and dotted with each of
//   their inputs, so an expert's rows are read ceil(count / TB) times per batch (once for up to TB tokens)
//   instead of once per token, and an expert nobody chose reads nothing. Stage 1 writes act as above;
//   stage 2 writes each pair's down projection (+ bias), unweighted, to out [T, TOPK, HID] (binding 3):
//   experts run in parallel and GLSL ES has no float atomics, so moe_combine.glsl does the weighted sum
//   into the residual afterwards, in slot order, as stage 2 does in decode.
// Sums run in the same order in every form (chunk by chunk, slot by slot), so prefill and decode agree.
// Uniforms: location 0 u_row0 / 1 u_nrows: the rows of the stacked tensor this dispatch sees. A stacked
// tensor larger than the SSBO block limit is bound as several row ranges (the executor splits at any row,
// inside an expert too) with one dispatch each; an invocation whose row is outside the range leaves it to
// the dispatch that has it (stage 2 in decode adds its range's slots into y; the executor puts a barrier
// between those dispatches).
// Bindings: 0 x, 1 W (gate / down), 2 bias, 3 out (stage 1, grouped stage 2) / y (stage 2, read and
// written), 4 Wu (stage 1), 5 sel (grouped: the expert lists), 6 up bias (stage 1).

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
#ifndef MOE_GROUPED
#define MOE_GROUPED 0
#endif
#ifndef TB
#define TB 8 // grouped: pairs per weight pass
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
#if MOE_STAGE == 1 || MOE_GROUPED
layout(std430, binding = 3) writeonly buffer Ob { float O[]; };
#else
layout(std430, binding = 3) buffer Yb { float Y[]; };
#endif
#if MOE_STAGE == 1 && HAS_BIAS2
layout(std430, binding = 6) readonly buffer B2b { float Bias2[]; };
#endif
layout(std430, binding = 5) readonly buffer Sb { uint Sel[]; };
layout(location = 0) uniform uint u_row0;
layout(location = 1) uniform uint u_nrows;

// byte offset of stacked row `row` in this dispatch's range, or false when another dispatch has it
bool row_here(uint row, out uint rb)
{
    rb = (row - u_row0) * uint(WROWBYTES);
    return row >= u_row0 && row - u_row0 < u_nrows;
}

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

#if MOE_GROUPED
void main()
{
    uint i = gl_GlobalInvocationID.x, e = gl_WorkGroupID.y;
    uint row = e * uint(EI) + i, rb;
    if (i >= uint(EI) || !row_here(row, rb))
        return;
    uint n = Sel[e];
    for (uint j0 = 0u; j0 < n; j0 += uint(TB)) {
        uint nt = min(uint(TB), n - j0);
        uint pr[TB];
        float g[TB], u[TB];
        for (uint j = 0u; j < uint(TB); j++) {
            pr[j] = j < nt ? Sel[uint(NE) + e * u_ntok + j0 + j] : 0u;
            g[j] = 0.0;
            u[j] = 0.0;
        }
        for (uint c = 0u; c < uint(HID) / uint(WCH); c++) {
            float w[WCH], wu[WCH];
            wchunk(0u, rb, c, w);
            wchunk(1u, rb, c, wu);
            for (uint j = 0u; j < uint(TB); j++) {
                if (j >= nt)
                    break;
                uint xv = (pr[j] / uint(TOPK)) * (uint(HID) / 4u) + c * (uint(WCH) / 4u);
                g[j] += dotw(w, xv);
                u[j] += dotw(wu, xv);
            }
        }
        for (uint j = 0u; j < nt; j++) {
#if HAS_BIAS
            g[j] += Bias[row];
#endif
#if HAS_BIAS2
            u[j] += Bias2[row];
#endif
            O[pr[j] * uint(EI) + i] = act(g[j], u[j]);
        }
    }
}
#else
void main()
{
    uint i = gl_GlobalInvocationID.x, k = gl_WorkGroupID.y, t = gl_WorkGroupID.z;
    if (i >= uint(EI) || t >= u_ntok)
        return;
    uint e = min(Sel[t * uint(2 * TOPK) + k], uint(NE - 1));
    uint row = e * uint(EI) + i, rb;
    if (!row_here(row, rb))
        return;
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
#endif

#elif MOE_GROUPED
void main()
{
    uint h = gl_GlobalInvocationID.x, e = gl_WorkGroupID.y;
    uint row = e * uint(HID) + h, rb;
    if (h >= uint(HID) || !row_here(row, rb))
        return;
    uint n = Sel[e];
    for (uint j0 = 0u; j0 < n; j0 += uint(TB)) {
        uint nt = min(uint(TB), n - j0);
        uint pr[TB];
        float o[TB];
        for (uint j = 0u; j < uint(TB); j++) {
            pr[j] = j < nt ? Sel[uint(NE) + e * u_ntok + j0 + j] : 0u;
            o[j] = 0.0;
        }
        for (uint c = 0u; c < uint(EI) / uint(WCH); c++) {
            float w[WCH];
            wchunk(0u, rb, c, w);
            for (uint j = 0u; j < uint(TB); j++) {
                if (j >= nt)
                    break;
                o[j] += dotw(w, pr[j] * (uint(EI) / 4u) + c * (uint(WCH) / 4u));
            }
        }
        for (uint j = 0u; j < nt; j++) {
#if HAS_BIAS
            o[j] += Bias[row];
#endif
            O[pr[j] * uint(HID) + h] = o[j];
        }
    }
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
        uint row = e * uint(HID) + h, rb;
        if (!row_here(row, rb))
            continue;
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
