#version 310 es
// matmul.glsl: y[t][n] = sum_k x[t][k] W[n][k] (+ bias[n]), for decode (GEMV) and prefill (tiled).
// With GLU the kernel computes gate and up rows together and writes act(gate) * up (fused FFN input).
// Weights: any WTYPE of wdecode.inc.glsl, rows of WROWBYTES bytes; x and y are f32. K % WCH == 0.
// Entries: main (default: ROWS_PER_WG rows a workgroup, WG_SIZE / ROWS_PER_WG threads a row, subgroup
// or shared-memory reduction), GEMV_ROW (one invocation per row: fastest where barriers are costly, as on
// llvmpipe), MATMUL_TILED (prefill: one invocation per row and TM tokens, x tiles of TM x KS in shared).
// Uniforms: location 0 u_row0 / 1 u_nrows: the rows of W this dispatch sees (tensors split by rows to fit
// the SSBO size limit); output row = u_row0 + local row.
// Bindings: 0 x (read), 1 W, 2 bias, 3 y (written; read too with ACCUMULATE), 4 up weights (GLU).

#ifndef N
#define N 64 // output rows (full tensor)
#endif
#ifndef K
#define K 64 // input width
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef ACCUMULATE
#define ACCUMULATE 0 // 1: y += result (residual add fused into the projection)
#endif
#ifndef SOFTCAP
#define SOFTCAP 0.0 // > 0: y = SOFTCAP * tanh(y / SOFTCAP) (final logit soft-capping)
#endif
#ifndef GLU
#define GLU 0
#endif
#ifndef ACT
#define ACT 0 // GLU activation: 0 silu, 1 gelu_tanh, 2 gelu
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#ifndef ROWS_PER_WG
#define ROWS_PER_WG 4
#endif
#ifndef TM
#define TM 8 // tokens per invocation (tiled)
#endif
#ifndef KS
#define KS 256 // K slice held in shared memory (tiled); a multiple of 32
#endif

#include "common.inc.glsl"
#if GLU
#define WSEL2 1
#endif
#include "wdecode.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Xb { vec4 X4[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly buffer Bb { float Bias[]; };
#endif
#if ACCUMULATE
layout(std430, binding = 3) buffer Yb { float Y[]; };
#else
layout(std430, binding = 3) writeonly buffer Yb { float Y[]; };
#endif
layout(location = 0) uniform uint u_row0;
layout(location = 1) uniform uint u_nrows;

#define NCH (uint(K) / uint(WCH))

float act(float g)
{
#if ACT == ACT_GELU_TANH
    return act_gelu_tanh(g);
#elif ACT == ACT_GELU
    return act_gelu(g);
#else
    return act_silu(g);
#endif
}

void store(uint n, uint t, float g, float u)
{
    float v = g;
#if HAS_BIAS
    v += Bias[n];
#endif
#if GLU
    v = act(v) * u;
#endif
    if (float(SOFTCAP) > 0.0)
        v = float(SOFTCAP) * stable_tanh(v / float(SOFTCAP));
    uint o = t * uint(N) + n;
#if ACCUMULATE
    Y[o] += v;
#else
    Y[o] = v;
#endif
}

float dotw(float w[WCH], uint xv) // xv: vec4 index of the chunk's x
{
    float s = 0.0;
    for (uint j = 0u; j < uint(WCH) / 4u; j++)
        s += dot(vec4(w[4u * j], w[4u * j + 1u], w[4u * j + 2u], w[4u * j + 3u]), X4[xv + j]);
    return s;
}

#if defined(MATMUL_TILED)
shared vec4 xs[TM * (KS / 4)];

float dots(float w[WCH], uint sv)
{
    float s = 0.0;
    for (uint j = 0u; j < uint(WCH) / 4u; j++)
        s += dot(vec4(w[4u * j], w[4u * j + 1u], w[4u * j + 2u], w[4u * j + 3u]), xs[sv + j]);
    return s;
}

void main()
{
    uint lr = gl_GlobalInvocationID.x;
    uint t0 = gl_WorkGroupID.y * uint(TM);
    bool live = lr < u_nrows;
    float acc[TM];
#if GLU
    float accu[TM];
#endif
    for (int i = 0; i < TM; i++) {
        acc[i] = 0.0;
#if GLU
        accu[i] = 0.0;
#endif
    }
    uint rb = lr * uint(WROWBYTES);
    for (uint k0 = 0u; k0 < uint(K); k0 += uint(KS)) {
        uint kn = min(uint(KS), uint(K) - k0);
        for (uint i = gl_LocalInvocationID.x; i < uint(TM) * (uint(KS) / 4u); i += uint(WG_SIZE)) {
            uint tt = i / (uint(KS) / 4u), kk = i % (uint(KS) / 4u);
            uint t = t0 + tt;
            xs[i] = (t < u_ntok && kk * 4u < kn) ? X4[(t * uint(K) + k0) / 4u + kk] : vec4(0.0);
        }
        WG_BARRIER();
        if (live) {
            for (uint c = k0 / uint(WCH); c < (k0 + kn) / uint(WCH); c++) {
                float w[WCH];
                wchunk(0u, rb, c, w);
                uint sv = (c * uint(WCH) - k0) / 4u;
                for (uint tt = 0u; tt < uint(TM); tt++)
                    acc[tt] += dots(w, tt * (uint(KS) / 4u) + sv);
#if GLU
                wchunk(1u, rb, c, w);
                for (uint tt = 0u; tt < uint(TM); tt++)
                    accu[tt] += dots(w, tt * (uint(KS) / 4u) + sv);
#endif
            }
        }
        WG_BARRIER();
    }
    if (!live)
        return;
    for (uint tt = 0u; tt < uint(TM); tt++)
        if (t0 + tt < u_ntok) {
#if GLU
            store(u_row0 + lr, t0 + tt, acc[tt], accu[tt]);
#else
            store(u_row0 + lr, t0 + tt, acc[tt], 0.0);
#endif
        }
}

#elif defined(GEMV_ROW)
void main()
{
    uint lr = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (lr >= u_nrows)
        return;
    uint rb = lr * uint(WROWBYTES);
    uint xb = t * (uint(K) / 4u);
    float acc = 0.0, accu = 0.0;
    for (uint c = 0u; c < NCH; c++) {
        float w[WCH];
        wchunk(0u, rb, c, w);
        acc += dotw(w, xb + c * (uint(WCH) / 4u));
#if GLU
        wchunk(1u, rb, c, w);
        accu += dotw(w, xb + c * (uint(WCH) / 4u));
#endif
    }
    store(u_row0 + lr, t, acc, accu);
}

#else
#define TPR (WG_SIZE / ROWS_PER_WG)
#if (TPR * ROWS_PER_WG) != WG_SIZE || (TPR & (TPR - 1)) != 0
#error WG_SIZE / ROWS_PER_WG must be a power of two
#endif
shared float red[WG_SIZE];
#if GLU
shared float redu[WG_SIZE];
#endif

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint r = lid / uint(TPR), l = lid % uint(TPR);
    uint lr = gl_WorkGroupID.x * uint(ROWS_PER_WG) + r;
    uint t = gl_WorkGroupID.y;
    float acc = 0.0, accu = 0.0;
    if (lr < u_nrows) {
        uint rb = lr * uint(WROWBYTES);
        uint xb = t * (uint(K) / 4u);
        for (uint c = l; c < NCH; c += uint(TPR)) {
            float w[WCH];
            wchunk(0u, rb, c, w);
            acc += dotw(w, xb + c * (uint(WCH) / 4u));
#if GLU
            wchunk(1u, rb, c, w);
            accu += dotw(w, xb + c * (uint(WCH) / 4u));
#endif
        }
    }
#ifdef HAS_SUBGROUP
#if (TPR % SUBGROUP_SIZE) == 0
#define USE_SUBGROUP_REDUCE 1
#endif
#endif
#ifdef USE_SUBGROUP_REDUCE
    acc = subgroupAdd(acc);
#if GLU
    accu = subgroupAdd(accu);
#endif
#if TPR > SUBGROUP_SIZE
    if (subgroupElect()) {
        red[lid / uint(SUBGROUP_SIZE)] = acc;
#if GLU
        redu[lid / uint(SUBGROUP_SIZE)] = accu;
#endif
    }
    WG_BARRIER();
    if (l == 0u) {
        uint s0 = lid / uint(SUBGROUP_SIZE);
        for (uint i = 1u; i < uint(TPR / SUBGROUP_SIZE); i++) {
            acc += red[s0 + i];
#if GLU
            accu += redu[s0 + i];
#endif
        }
    }
#endif
#else
    red[lid] = acc;
#if GLU
    redu[lid] = accu;
#endif
    WG_BARRIER();
    for (uint s = uint(TPR) / 2u; s > 0u; s >>= 1) {
        if (l < s) {
            red[lid] += red[lid + s];
#if GLU
            redu[lid] += redu[lid + s];
#endif
        }
        WG_BARRIER();
    }
    acc = red[lid];
#if GLU
    accu = redu[lid];
#endif
#endif
    if (l == 0u && lr < u_nrows)
        store(u_row0 + lr, t, acc, accu);
}
#endif
