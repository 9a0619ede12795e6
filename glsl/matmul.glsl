#version 310 es
#if defined(IMG) && IMG != 0
#extension GL_EXT_texture_buffer : require
#endif
#if defined(H16) && defined(HAS_NV_GPU_SHADER5)
#if H16 != 0
#extension GL_NV_gpu_shader5 : require
#endif
#endif
// matmul.glsl: y[t][n] = sum_k x[t][k] W[n][k] (+ bias[n]), for decode (GEMV) and prefill (tiled).
// With GLU the kernel computes gate and up rows together and writes act(gate) * up (fused FFN input).
// Weights: any WTYPE of wdecode.inc.glsl, rows of WROWBYTES bytes; x and y are f32. K % WCH == 0.
// Entries: main (default: ROWS_PER_WG rows a workgroup, WG_SIZE / ROWS_PER_WG threads a row, subgroup
// or shared-memory reduction), GEMV_ROW (one invocation per row: fastest where barriers are costly, as on
// llvmpipe), MATMUL_TILED (prefill: one invocation per RPT rows and TM tokens, x tiles of TM x KS in
// shared), MATMUL_TILED_RB (prefill, register-blocked: TB x TB output tiles, weights decoded once per slab into
// shared memory).
// Uniforms: location 0 u_row0 / 1 u_nrows: the rows of W this dispatch sees (tensors split by rows to fit
// the SSBO size limit); output row = u_row0 + local row. 2 u_t0: the first token row (main and row).
// HAS_NORM_IN: the RMS norm that produces x is fused in: the kernel reads x as x * w (GEMMA: * (1 + w))
// and scales by 1 / rms(x), which it reduces itself (main: alongside the dot products; row: once per
// workgroup; both apply it to the dot products at the end; prefill: per token before the tiles), so a
// layer has no separate norm dispatches.
// OUT3 (kernel matmul_qkv): W is the q, k and v projections' rows one after the other; output rows below
// N1 go to y, the next N2 to y2 and the rest to y3, so one dispatch computes all three. OUT2 (kernel
// matmul_qk, for layers whose v has another format than q and k): rows below N1 go to y, the rest to y2.
// Bindings: 0 x (read), 1 W, 2 bias, 3 y (written; read too with ACCUMULATE), 4 up weights (GLU),
// 5 norm weights (HAS_NORM_IN), 6 y2 / 7 y3 (OUT3).

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
#ifndef HAS_NORM_IN
#define HAS_NORM_IN 0
#endif
#ifndef EPS
#define EPS 1e-6
#endif
#ifndef GEMMA
#define GEMMA 0
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
#if defined(OUT3) || defined(OUT2)
#if ACCUMULATE || GLU
#error OUT3 and OUT2 write plain projections (no ACCUMULATE, no GLU)
#endif
layout(std430, binding = 6) writeonly buffer Y2b { float Y2[]; };
#endif
#ifdef OUT3
layout(std430, binding = 7) writeonly buffer Y3b { float Y3[]; };
#endif
layout(location = 0) uniform uint u_row0;
layout(location = 1) uniform uint u_nrows;
// the decode GEMVs (main, row): token row of x and y they compute is u_t0 + the workgroup's y (0 in
// decode; a prefill pass that needs only its last token's logits runs the decode LM head at row T - 1)
layout(location = 2) uniform uint u_t0;

#define NCH (uint(K) / uint(WCH))

// x as the kernel reads it. With HAS_NORM_IN it is scaled by the norm weight only, and the decode GEMVs
// (main, row) multiply their dot products by 1 / rms(x) at the end: the norm is linear, so no reduction
// has to finish before the weight loads start. g_xb is the vec4 index where the token's row of x starts;
// g_ss accumulates the sum of squares of the x a thread loaded with xin_ss.
uint g_xb = 0u;
float g_ss = 0.0;
// IMG (the row GEMV under the plan's imageReads): x, the weights (wdecode.inc.glsl) and the norm weights are
// read through image buffers on units 2, 0 / 1 and 3 (the registry's imageUnit), which llvmpipe loads as
// vectors where it loads an SSBO one lane at a time; the SSBOs stay bound and declared for the other
// entries.
#if IMG
#ifndef GEMV_ROW
#error IMG is for the row entry only (the registry marks it imageReads)
#endif
layout(rgba32f, binding = 2) readonly uniform highp imageBuffer XI;
vec4 xraw(uint i) { return imageLoad(XI, int(i)); }
#else
vec4 xraw(uint i) { return X4[i]; }
#endif
#if HAS_NORM_IN
#if IMG
layout(rgba32f, binding = 3) readonly uniform highp imageBuffer NWI;
#else
layout(std430, binding = 5) readonly buffer NWb { vec4 NW4[]; };
#endif
#include "reduce.inc.glsl"
// inverse RMS of token t's row of x; every invocation must call it (it reduces over the workgroup)
float x_inv_rms(uint t)
{
    uint xb = t * (uint(K) / 4u);
    float s = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < uint(K) / 4u; i += uint(WG_SIZE)) {
        vec4 v = xraw(xb + i);
        s += dot(v, v);
    }
    return inversesqrt(wg_sum(s) / float(K) + float(EPS));
}
vec4 norm_w(uint k4)
{
#if IMG
    vec4 w = imageLoad(NWI, int(k4));
#else
    vec4 w = NW4[k4];
#endif
#if GEMMA
    return w + 1.0;
#else
    return w;
#endif
}
vec4 xin(uint i) { return xraw(i) * norm_w(i - g_xb); }
vec4 xin_ss(uint i)
{
    vec4 v = X4[i];
    g_ss += dot(v, v);
    return v * norm_w(i - g_xb);
}
#else
vec4 xin(uint i) { return xraw(i); }
vec4 xin_ss(uint i) { return X4[i]; }
#endif

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
#ifdef OUT3
    if (n >= uint(N1 + N2))
        Y3[t * uint(N - N1 - N2) + n - uint(N1 + N2)] = v;
    else if (n >= uint(N1))
        Y2[t * uint(N2) + n - uint(N1)] = v;
    else
        Y[t * uint(N1) + n] = v;
#elif defined(OUT2)
    if (n >= uint(N1))
        Y2[t * uint(N - N1) + n - uint(N1)] = v;
    else
        Y[t * uint(N1) + n] = v;
#else
    uint o = t * uint(N) + n;
#if ACCUMULATE
    Y[o] += v;
#else
    Y[o] = v;
#endif
#endif
}

#if defined(MATMUL_TILED)
shared vec4 xs[TM * (KS / 4)];
// RPT (tiled): rows an invocation. Invocation u of a workgroup computes rows base + u + i * WG_SIZE for
// i < RPT (base: the workgroup's first of WG_SIZE * RPT rows), and each x vec4 it reads from shared memory
// feeds all RPT rows' decoded chunks, so the shared-memory reads per FMA drop by RPT (one vec4 read a
// 4-FMA dot product at RPT 1). The nvidia profile uses 2 on f16 weights only (src/kpath/plan.c).
#ifndef RPT
#define RPT 1
#endif

void main()
{
    uint lr0 = gl_WorkGroupID.x * uint(WG_SIZE * RPT) + gl_LocalInvocationID.x;
    uint t0 = gl_WorkGroupID.y * uint(TM);
    float acc[TM * RPT];
#if GLU
    float accu[TM * RPT];
#endif
    for (int i = 0; i < TM * RPT; i++) {
        acc[i] = 0.0;
#if GLU
        accu[i] = 0.0;
#endif
    }
    // rows past the end decode the last row (never stored) rather than branch around the FMAs
    uint rb[RPT];
    for (uint r = 0u; r < uint(RPT); r++)
        rb[r] = min(lr0 + r * uint(WG_SIZE), u_nrows - 1u) * uint(WROWBYTES);
#if HAS_NORM_IN
    float tinv[TM];
    for (uint tt = 0u; tt < uint(TM); tt++)
        tinv[tt] = x_inv_rms(min(t0 + tt, u_ntok - 1u));
#endif
    for (uint k0 = 0u; k0 < uint(K); k0 += uint(KS)) {
        uint kn = min(uint(KS), uint(K) - k0);
        for (uint i = gl_LocalInvocationID.x; i < uint(TM) * (uint(KS) / 4u); i += uint(WG_SIZE)) {
            uint tt = i / (uint(KS) / 4u), kk = i % (uint(KS) / 4u);
            uint t = t0 + tt;
            vec4 v = (t < u_ntok && kk * 4u < kn) ? X4[(t * uint(K) + k0) / 4u + kk] : vec4(0.0);
#if HAS_NORM_IN
            if (kk * 4u < kn)
                v *= tinv[tt] * norm_w(k0 / 4u + kk);
#endif
            xs[i] = v;
        }
        WG_BARRIER();
        for (uint c = k0 / uint(WCH); c < (k0 + kn) / uint(WCH); c++) {
            uint sv = (c * uint(WCH) - k0) / 4u;
            for (uint sel = 0u; sel < uint(1 + GLU); sel++) {
                vec4 w[RPT * (WCH / 4)];
                for (uint r = 0u; r < uint(RPT); r++) {
                    float wc[WCH];
                    wchunk(sel, rb[r], c, wc);
                    for (uint j = 0u; j < uint(WCH) / 4u; j++)
                        w[r * uint(WCH / 4) + j] = vec4(wc[4u * j], wc[4u * j + 1u], wc[4u * j + 2u], wc[4u * j + 3u]);
                }
                for (uint tt = 0u; tt < uint(TM); tt++) {
                    float d[RPT];
                    for (uint r = 0u; r < uint(RPT); r++)
                        d[r] = 0.0;
                    for (uint j = 0u; j < uint(WCH) / 4u; j++) {
                        vec4 xv = xs[tt * (uint(KS) / 4u) + sv + j];
                        for (uint r = 0u; r < uint(RPT); r++)
                            d[r] += dot(w[r * uint(WCH / 4) + j], xv);
                    }
                    for (uint r = 0u; r < uint(RPT); r++) {
#if GLU
                        if (sel == 1u)
                            accu[r * uint(TM) + tt] += d[r];
                        else
#endif
                            acc[r * uint(TM) + tt] += d[r];
                    }
                }
            }
        }
        WG_BARRIER();
    }
    for (uint r = 0u; r < uint(RPT); r++) {
        uint lr = lr0 + r * uint(WG_SIZE);
        if (lr >= u_nrows)
            break;
        for (uint tt = 0u; tt < uint(TM); tt++)
            if (t0 + tt < u_ntok) {
#if GLU
                store(u_row0 + lr, t0 + tt, acc[r * uint(TM) + tt], accu[r * uint(TM) + tt]);
#else
                store(u_row0 + lr, t0 + tt, acc[r * uint(TM) + tt], 0.0);
#endif
            }
    }
}

#elif defined(MATMUL_TILED_RB)
// Prefill, register-blocked: a workgroup computes a TB x TB tile (TB rows of W by TB tokens), each
// invocation a 4 x 4 block of it. K is walked in slabs of 32: the slab of TB weight rows is decoded once
// into shared memory (f32), the slab of x for TB tokens is staged beside it, and every invocation
// accumulates 16 products per pair of vec4 shared loads. Each weight is decoded once per TB tokens (the
// tiled entry: once per TM) and shared-memory traffic per product drops 8-fold.
#ifndef TB
#define TB 32
#endif
#define TT (TB / 4)
#if (TT * TT) != WG_SIZE || (TB % 4) != 0
#error tiled_rb needs WG_SIZE == (TB / 4)^2
#endif
#define BK 32u
#define CPS (BK / uint(WCH)) // weight chunks per row in a slab
shared vec4 ws4[BK * uint(TT)]; // [k][row / 4]: rows 4q .. 4q + 3 at slab column k
#if GLU
shared vec4 us4[BK * uint(TT)];
#endif
shared vec4 xs4[BK * uint(TT)]; // [k][token / 4]
#if HAS_NORM_IN
shared float tinv_s[TB];
shared float tpart[WG_SIZE];
#endif

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint tx = lid % uint(TT), ty = lid / uint(TT);
    uint n0 = gl_WorkGroupID.x * uint(TB), t0 = gl_WorkGroupID.y * uint(TB);
#if HAS_NORM_IN
    {
        // each token's inverse RMS: WG_SIZE / TB invocations per token, one shared round
        uint tpt = uint(WG_SIZE / TB), tt = lid / tpt, part = lid % tpt;
        uint t = min(t0 + tt, u_ntok - 1u);
        float ss = 0.0;
        for (uint k4 = part; k4 < uint(K) / 4u; k4 += tpt) {
            vec4 v = X4[t * (uint(K) / 4u) + k4];
            ss += dot(v, v);
        }
        tpart[lid] = ss;
        WG_BARRIER();
        if (part == 0u) {
            float a = 0.0;
            for (uint i = 0u; i < tpt; i++)
                a += tpart[lid + i];
            tinv_s[tt] = inversesqrt(a / float(K) + float(EPS));
        }
        WG_BARRIER();
    }
#endif
    vec4 acc[4], accu[4]; // acc[i][j]: row n0 + 4 tx + i, token t0 + 4 ty + j
    for (int i = 0; i < 4; i++) {
        acc[i] = vec4(0.0);
        accu[i] = vec4(0.0);
    }
    for (uint k0 = 0u; k0 < uint(K); k0 += BK) {
        // decode the slab's weights: TB rows x CPS chunks
        for (uint ci = lid; ci < uint(TB) * CPS; ci += uint(WG_SIZE)) {
            uint r = ci / CPS, cc = ci % CPS;
            uint c = k0 / uint(WCH) + cc;
            float w[WCH];
            bool ok = n0 + r < u_nrows && c < NCH;
            uint rb = (n0 + r) * uint(WROWBYTES);
            if (ok)
                wchunk(0u, rb, c, w);
            for (uint j = 0u; j < uint(WCH); j++)
                ws4[(cc * uint(WCH) + j) * uint(TT) + (r >> 2)][r & 3u] = ok ? w[j] : 0.0;
#if GLU
            if (ok)
                wchunk(1u, rb, c, w);
            for (uint j = 0u; j < uint(WCH); j++)
                us4[(cc * uint(WCH) + j) * uint(TT) + (r >> 2)][r & 3u] = ok ? w[j] : 0.0;
#endif
        }
        // stage x: TB tokens x 32 columns
        for (uint i = lid; i < uint(TB) * (BK / 4u); i += uint(WG_SIZE)) {
            uint tt = i / (BK / 4u), kq = i % (BK / 4u);
            uint t = t0 + tt, k4 = k0 / 4u + kq;
            vec4 v = (t < u_ntok && k4 < uint(K) / 4u) ? X4[t * (uint(K) / 4u) + k4] : vec4(0.0);
#if HAS_NORM_IN
            if (k4 < uint(K) / 4u)
                v *= tinv_s[tt] * norm_w(k4);
#endif
            for (uint j = 0u; j < 4u; j++)
                xs4[(4u * kq + j) * uint(TT) + (tt >> 2)][tt & 3u] = v[j];
        }
        WG_BARRIER();
        for (uint k = 0u; k < BK; k++) {
            vec4 a = ws4[k * uint(TT) + tx], b = xs4[k * uint(TT) + ty];
            acc[0] += a.x * b; acc[1] += a.y * b; acc[2] += a.z * b; acc[3] += a.w * b;
#if GLU
            vec4 au = us4[k * uint(TT) + tx];
            accu[0] += au.x * b; accu[1] += au.y * b; accu[2] += au.z * b; accu[3] += au.w * b;
#endif
        }
        WG_BARRIER();
    }
    for (uint i = 0u; i < 4u; i++) {
        uint lr = n0 + 4u * tx + i;
        if (lr >= u_nrows)
            continue;
        for (uint j = 0u; j < 4u; j++) {
            uint t = t0 + 4u * ty + j;
            if (t < u_ntok)
                store(u_row0 + lr, t, acc[i][j], accu[i][j]);
        }
    }
}

#elif defined(GEMV_ROW)
#if WTYPE == DT_Q6_K_SPLIT
// One split Q6_K super-block (256 weights) of the row at a time, every uvec4 of it loaded once: wchunk's
// per-chunk decode reloads the scale and qh words for each of the 8 chunks, and on llvmpipe each load is
// a gather across the SIMD lanes. Measured on sotu-6m Q4_K_M's LM head (8192 x 256): 2.5-2.6 -> 2.3 ms.
// (The same for Q4_K was slower in ffn_gate_up, 470 -> 800 us, so Q4_K keeps wchunk.) xv: vec4 index
// of the block's x. Same formulas as wchunk (GGUF dequantize_row_q6_K).
#define ROW_BLOCKS 1
float rowblk(uint sel, uint rb, uint b, uint xv)
{
    float acc = 0.0;
    uint g = (rb >> 4) + (b >> 3) * 105u, sb = b & 7u;
    uvec4 dv = wvec(sel, g); // components by selects: no run-time vector index (see the main entry)
    vec2 dd = unpackHalf2x16(sb < 4u ? (sb < 2u ? dv.x : dv.y) : (sb < 6u ? dv.z : dv.w));
    float d = (sb & 1u) != 0u ? dd.y : dd.x;
    uint base = g + 1u + sb * 13u; // ql: 8 uvec4, qh: 4, scales: 1
    uvec4 scv = wvec(sel, base + 12u);
    for (uint n = 0u; n < 2u; n++) { // halves of 128: ql[64n ..], qh[32n ..], scales[8n ..]
        uvec4 la0 = wvec(sel, base + 4u * n), la1 = wvec(sel, base + 4u * n + 1u);
        uvec4 lc0 = wvec(sel, base + 4u * n + 2u), lc1 = wvec(sel, base + 4u * n + 3u);
        uvec4 h0 = wvec(sel, base + 8u + 2u * n), h1 = wvec(sel, base + 9u + 2u * n);
        vec4 s0 = vec4(0.0), s1 = vec4(0.0); // the four runs' sums for l < 16 (scale is 0) and l >= 16 (1)
        for (uint w = 0u; w < 8u; w++) {
            uvec4 a = uvec4(w < 4u ? la0[w] : la1[w - 4u]) >> uvec4(0u, 8u, 16u, 24u);
            uvec4 c = uvec4(w < 4u ? lc0[w] : lc1[w - 4u]) >> uvec4(0u, 8u, 16u, 24u);
            uvec4 hq = uvec4(w < 4u ? h0[w] : h1[w - 4u]) >> uvec4(0u, 8u, 16u, 24u);
            uint xo = xv + 32u * n + w; // element 128n + 4w, and the runs at +32, +64, +96
            vec4 r = vec4(dot(vec4(ivec4((a & 15u) | ((hq & 3u) << 4)) - 32), xin(xo)),
                          dot(vec4(ivec4((c & 15u) | (((hq >> 2) & 3u) << 4)) - 32), xin(xo + 8u)),
                          dot(vec4(ivec4(((a >> 4) & 15u) | (((hq >> 4) & 3u) << 4)) - 32), xin(xo + 16u)),
                          dot(vec4(ivec4(((c >> 4) & 15u) | (((hq >> 6) & 3u) << 4)) - 32), xin(xo + 24u)));
            if (w < 4u)
                s0 += r;
            else
                s1 += r;
        }
        uint e = scv[2u * n], f = scv[2u * n + 1u]; // run k, half is: scale byte is + 2k
        vec4 c0 = vec4(float(sbyte(e, 0u)), float(sbyte(e, 2u)), float(sbyte(f, 0u)), float(sbyte(f, 2u)));
        vec4 c1 = vec4(float(sbyte(e, 1u)), float(sbyte(e, 3u)), float(sbyte(f, 1u)), float(sbyte(f, 3u)));
        acc += d * (dot(c0, s0) + dot(c1, s1));
    }
    return acc;
}
#endif

#ifndef RPT
#define RPT 1
#endif
// RPT rows an invocation: invocation i of workgroup g owns rows g * WG_SIZE * RPT + i + r * WG_SIZE
// (r < RPT) and applies each chunk of x it loads to all of them (loads of x, and with HAS_NORM_IN of the
// norm weights, outnumber the weight loads of a 32-weight chunk).
void main()
{
    uint t = gl_WorkGroupID.y + u_t0;
    uint lr0 = gl_WorkGroupID.x * uint(WG_SIZE * RPT) + gl_LocalInvocationID.x;
    uint xb = t * (uint(K) / 4u);
    g_xb = xb;
#if HAS_NORM_IN
    float inv = x_inv_rms(t); // one reduction per workgroup, before the early return (it has barriers)
#else
    float inv = 1.0;
#endif
    if (lr0 >= u_nrows)
        return;
    uint rb[RPT];
    float acc[RPT], accu[RPT];
    for (uint r = 0u; r < uint(RPT); r++) {
        // past-the-end rows recompute the last row, never stored
        rb[r] = min(lr0 + r * uint(WG_SIZE), u_nrows - 1u) * uint(WROWBYTES);
        acc[r] = 0.0;
        accu[r] = 0.0;
    }
#ifdef ROW_BLOCKS
    for (uint b = 0u; b < uint(K) / 256u; b++)
        for (uint r = 0u; r < uint(RPT); r++) {
            acc[r] += rowblk(0u, rb[r], b, xb + 64u * b);
#if GLU
            accu[r] += rowblk(1u, rb[r], b, xb + 64u * b);
#endif
        }
#else
    for (uint c = 0u; c < NCH; c++) {
        vec4 xs[WCH / 4];
        for (uint j = 0u; j < uint(WCH) / 4u; j++)
            xs[j] = xin(xb + c * (uint(WCH) / 4u) + j);
        for (uint r = 0u; r < uint(RPT); r++) {
            float w[WCH];
            wchunk(0u, rb[r], c, w);
            for (uint j = 0u; j < uint(WCH) / 4u; j++)
                acc[r] += dot(vec4(w[4u * j], w[4u * j + 1u], w[4u * j + 2u], w[4u * j + 3u]), xs[j]);
#if GLU
            wchunk(1u, rb[r], c, w);
            for (uint j = 0u; j < uint(WCH) / 4u; j++)
                accu[r] += dot(vec4(w[4u * j], w[4u * j + 1u], w[4u * j + 2u], w[4u * j + 3u]), xs[j]);
#endif
        }
    }
#endif
    for (uint r = 0u; r < uint(RPT); r++)
        if (lr0 + r * uint(WG_SIZE) < u_nrows)
            store(u_row0 + lr0 + r * uint(WG_SIZE), t, acc[r] * inv, accu[r] * inv);
}

#else
// Decode GEMV. A workgroup owns ROWS_PER_WG rows, split into RG = ROWS_PER_WG / RPT row groups of TPR
// threads; each thread walks the row's 32-weight segments l, l + TPR, ... and applies each x segment it
// loaded to its RPT rows, so x is read from cache once per RPT rows (at 4.5 bits a weight, reading x
// as f32 for every row costs 7x the weight bytes in L1 traffic and was what bounded the old kernel).
// Q4_K, Q6_K and Q8_0 (GGUF blocks or the split layout) decode a segment with whole-word loads and fold
// the block minimum / offset into
// one product with the sum of the segment's x (sum (d*q - m) x = d sum q x - m sum x).
#ifndef RPT
#define RPT 1
#endif
#define RG (ROWS_PER_WG / RPT)
#define TPR (WG_SIZE / RG)
#if (RG * RPT) != ROWS_PER_WG || (TPR * RG) != WG_SIZE || (TPR & (TPR - 1)) != 0
#error ROWS_PER_WG must be a multiple of RPT and WG_SIZE / (ROWS_PER_WG / RPT) a power of two
#endif

// The weights as 32-bit words too (the same binding): Q6_K and Q8_0 blocks are 2-byte aligned.
layout(std430, binding = 1) readonly buffer Wb1 { uint W1[]; };
#ifdef WSEL2
layout(std430, binding = 4) readonly buffer Ub1 { uint U1[]; };
uint wu(uint sel, uint i) { return sel == 0u ? W1[i] : U1[i]; }
#else
uint wu(uint sel, uint i) { return W1[i]; }
#endif
// the word at byte offset 4*wi + sh/8 (sh 0 or 16), from two aligned loads, without a branch
uint funnel(uint lo, uint hi, uint sh) { return (lo >> sh) | ((hi << 1u) << (31u - sh)); }

#if WTYPE == DT_Q4_K || WTYPE == DT_Q6_K || WTYPE == DT_Q8_0 || WTYPE == DT_Q6_K_SPLIT || WTYPE == DT_Q8_0_SPLIT
#define SEGW 32u
#else
#define SEGW uint(WCH)
#endif
#define NSEG (uint(K) / SEGW)
#define XV (SEGW / 4u)

// XCO (Q4_K only): the x-coalesced segment order. Segment s is lane q = s % 8 of block s / 8 and holds
// qs words q, q + 8, q + 16, q + 24 of the block: x positions 4q .. 4q + 3 of each of the 8 sub-blocks, so
// the 8 lanes of a block read 8 consecutive vec4s of x for every sub-block (whole 128-byte lines). The
// default order (16 consecutive x a lane, 64 bytes apart across lanes) touches 4x the cache lines per
// load instruction. The price: every lane decodes all 8 scale/min pairs of its block, not 2.
#ifndef XCO
#define XCO 0
#endif
#if XCO && WTYPE != DT_Q4_K
#undef XCO
#define XCO 0
#endif

// XSH: the token's x is staged once a workgroup in shared memory (scaled by the norm weight with
// HAS_NORM_IN, whose 1 / rms the staging loop reduces too), so the segment loops read no global x and no
// norm weights: every row group re-read both from the cache for each of its segments. The shared array
// is swizzled (vec4 i at i ^ ((i >> 4) & 7)) so the lanes of a subgroup, whose segments are 64 bytes
// (Q4_K) or 128 bytes (Q8_0) apart, spread over the banks. Where K * 4 bytes and the reductions' arrays
// would not fit the device's shared memory (MAX_SHARED_BYTES, from the program preamble) the kernel
// reads x from global memory as without XSH, so a profile can ask for it whatever the model's width.
// Measured on the H200 (tools/chain-bench.c): it helps the steps with a fused norm on quantized weights
// (the norm weight loads go too), not the ACCUMULATE projections nor F16.
// XSH 2: x staged only where the norm is fused (HAS_NORM_IN), so one knob serves a kernel whose steps are
// partly norm-fused GEMVs (q, k, v: faster staged) and partly ACCUMULATE ones (o, down: slower staged).
#ifndef XSH
#define XSH 0
#endif
#if XSH == 2 && !HAS_NORM_IN
#undef XSH
#define XSH 0
#endif
#ifndef MAX_SHARED_BYTES
#define MAX_SHARED_BYTES 16384 // GLES 3.1's minimum
#endif
#if XSH && (K * 4 + 4096) > MAX_SHARED_BYTES
#undef XSH
#define XSH 0
#endif
// H16 (Q4_K, and Q6_K in the split layout, on devices with GL_NV_gpu_shader5's f16vec2 arithmetic; elsewhere the f32 path runs
// whatever the knob says): x staged in shared memory as f16 pairs and each 32-bit word of quants turned
// into four f16 pairs by masking its nibbles into the mantissa of 1024.0 (0x6400: 1024 + n exactly) and
// subtracting 1024, so a pair of weights costs one mask, one subtract and one fused multiply-add of two
// halves, where the f32 path spends a byte extract, an int-to-float conversion and an FMA on each weight
// (the conversions alone were 20% of the 8B gate/up GEMV on the H200). Products are summed in f16 over
// one word per sub-block half (8 a lane), in f32 from there on; the sums of x that the block minimums
// multiply are staged in f32. x in f16 keeps 11 significant bits (llama.cpp's CUDA GEMVs round x to 8).
// Each run of 16 x is staged scaled by a power of two that brings its largest magnitude into [16, 32),
// undone in f32 on the run's partial sum: real models' FFN inputs hold runs in the thousands ("massive
// activations"), where 8 products of nibbles up to 15 would pass f16's 65504, and tiny runs would
// otherwise lose bits to f16's subnormals; a power of two changes no significant bit.
// H16 1: every Q4_K and split Q6_K GEMV of the kernel. H16 2: only those without a fused norm and with
// K <= 8192 (the o and down projections of 1B-class models, the LM head after its norm step), where tools/chain-bench.c measured it faster on the
// H200 (bench-results/2026-12-04-nvidia-h200-h16.txt): the norm-fused q GEMV of K 2048 and the 8B down
// projection (K 14336) were slower, their staging (K / 16 invocations convert x, 2 K bytes of shared
// memory a workgroup) outweighing the gain, and the other norm-fused ones gained under 6%.
#ifndef H16
#define H16 0
#endif
#if H16 == 2 && (HAS_NORM_IN || K > 8192)
#undef H16
#define H16 0
#endif
#if H16 && defined(HAS_NV_GPU_SHADER5) && (WTYPE == DT_Q4_K || WTYPE == DT_Q6_K_SPLIT) && \
    (K * 2 + K / 2 + 4096) <= MAX_SHARED_BYTES
#define USE_H16 1
#undef XSH
#define XSH 0
#else
#define USE_H16 0
#endif
#if USE_H16
shared uvec4 xh[K / 8];    // uvec4 m: x vec4s 2m and 2m + 1, each as halves (x, z) then (y, w)
shared vec2 xs16[K / 16]; // each run of 16 x: its sum, and the power of two its staged halves are divided by
// swizzle: the 8 lanes of a load phase (segments p = 0..7 of one block) differ in h (bit 1) and j (bits 3-4);
// j's bits go to bits 0 and 2, so the 8 land on distinct 16-byte bank groups
uint hsw(uint i) { return i ^ (((i >> 3) & 1u) | (((i >> 4) & 1u) << 2)); }
#endif
#if XSH
shared vec4 xsh[K / 4];
uint xsw(uint i) { return i ^ ((i >> 4) & 7u); }
#define XLD(i) xsh[xsw((i) - g_xb)]
#else
#define XLD(i) xin_ss(i)
#endif

// x of segment s (token base xb, in vec4s), in the order the segment's weights are decoded
void load_x(uint xb, uint s, out vec4 xs[XV])
{
#if WTYPE == DT_Q4_K && XCO
    // sub-block i's x starts at vec4 8i of the block; lane q takes its vec4 q
    uint b = xb + (s >> 3) * 64u + (s & 7u);
    for (uint i = 0u; i < 8u; i++)
        xs[i] = XLD(b + 8u * i);
#elif WTYPE == DT_Q4_K
    // 16 low nibbles of sub-block 2j, then 16 high nibbles of sub-block 2j + 1, at the same offsets
    uint b = xb + (s >> 3) * 64u + ((s & 7u) >> 1) * 16u + (s & 1u) * 4u;
    for (uint i = 0u; i < 4u; i++) {
        xs[i] = XLD(b + i);
        xs[4u + i] = XLD(b + 8u + i);
    }
#elif WTYPE == DT_Q6_K || WTYPE == DT_Q6_K_SPLIT
    // half hh, l = 8g .. 8g + 7: the four runs of 8 at +0, +32, +64, +96
    uint t = s & 7u;
    uint b = xb + (s >> 3) * 64u + (t >> 2) * 32u + (t & 3u) * 2u;
    for (uint q = 0u; q < 4u; q++) {
        xs[2u * q] = XLD(b + 8u * q);
        xs[2u * q + 1u] = XLD(b + 8u * q + 1u);
    }
#else
    for (uint i = 0u; i < XV; i++)
        xs[i] = XLD(xb + s * XV + i);
#endif
}

#if WTYPE == DT_Q4_K
// a Q4_K segment's weights: its block's header (d, dmin, the 12 bytes of scales and mins) and its 16 bytes
// of quants. Loaded apart from the arithmetic, so the f32 and f16 segment decoders share the loads.
struct q4seg {
    uvec4 h, q;
};
q4seg seg_load(uint sel, uint rb, uint s)
{
    uint blk = (rb >> 4) + (s >> 3) * 9u;
    return q4seg(wvec(sel, blk), wvec(sel, blk + 1u + (s & 7u)));
}
// the six-bit scales and mins of sub-blocks 2j and 2j + 1 (GGUF get_scale_min_k4): (sc0, sc1, m0, m1).
// Selects, not an if on j: with the branch the compiler issued the next row's loads only after it
// (H200, tools/chain-bench.c, 8B gate/up 14336x4096, 256/16/2 with XSH: 54.2 -> 47.1 us)
uvec4 q4k_scale_min(uvec4 h, uint j)
{
    uint b0 = 16u * (j & 1u);
    uint ys = h.y >> b0, zs = h.z >> b0, e = h.w >> b0;
    bool lowj = j < 2u;
    return uvec4(lowj ? ys & 63u : (e & 15u) | (((ys >> 6) & 3u) << 4),
                 lowj ? (ys >> 8) & 63u : ((e >> 8) & 15u) | (((ys >> 14) & 3u) << 4),
                 lowj ? zs & 63u : ((e >> 4) & 15u) | (((zs >> 6) & 3u) << 4),
                 lowj ? (zs >> 8) & 63u : ((e >> 12) & 15u) | (((zs >> 14) & 3u) << 4));
}
#endif
#if USE_H16 && WTYPE == DT_Q4_K
// segment s of a Q4_K row from f16 x: xq[0..1] the x pairs of its sub-block 2j run, xq[2..3] of 2j + 1's;
// w its weights (seg_load)
float segdot16w(q4seg w, uint s, uvec4 xq[4], vec4 xsum)
{
    uint j = (s & 7u) >> 1;
    uvec4 h = w.h, q = w.q;
    vec2 dm = unpackHalf2x16(h.x);
    uvec4 sm = q4k_scale_min(h, j);
    const f16vec2 B = f16vec2(1024.0);
    f16vec2 al = f16vec2(0.0), ah = f16vec2(0.0);
    for (uint k = 0u; k < 4u; k++) {
        uint w = q[k];
        uvec2 xl = (k & 1u) == 0u ? xq[k >> 1].xy : xq[k >> 1].zw;
        uvec2 xu = (k & 1u) == 0u ? xq[2u + (k >> 1)].xy : xq[2u + (k >> 1)].zw;
        // bytes 0 and 2, then 1 and 3: low nibbles are sub-block 2j, high nibbles 2j + 1
        al += (unpackFloat2x16((w & 0x000F000Fu) | 0x64006400u) - B) * unpackFloat2x16(xl.x);
        al += (unpackFloat2x16(((w >> 8) & 0x000F000Fu) | 0x64006400u) - B) * unpackFloat2x16(xl.y);
        ah += (unpackFloat2x16(((w >> 4) & 0x000F000Fu) | 0x64006400u) - B) * unpackFloat2x16(xu.x);
        ah += (unpackFloat2x16(((w >> 12) & 0x000F000Fu) | 0x64006400u) - B) * unpackFloat2x16(xu.y);
    }
    float sl = (float(al.x) + float(al.y)) * xsum.z, sh = (float(ah.x) + float(ah.y)) * xsum.w;
    return dm.x * (float(sm.x) * sl + float(sm.y) * sh) - dm.y * (float(sm.z) * xsum.x + float(sm.w) * xsum.y);
}
float segdot16(uint sel, uint rb, uint s, uvec4 xq[4], vec4 xsum) { return segdot16w(seg_load(sel, rb, s), s, xq, xsum); }
#endif
#if WTYPE == DT_Q6_K_SPLIT
// a split Q6_K segment's weights (the layout in wdecode.inc.glsl): every load an aligned uvec4, of which
// the segment uses one half (its neighbour g ^ 1 the other) for the ql and qh runs, and one word pair of
// the scales; d is the word of the group's scale vector that holds its sub-block's half. Components are
// picked by selects by the callers: a vector indexed by a run-time value went through local memory on the
// H200 (3x slower than the GGUF decode).
struct q6seg {
    uvec4 a, c, h, sc;
    uint d;
};
q6seg seg_load(uint sel, uint rb, uint s)
{
    uint blk = s >> 3, t = s & 7u, hh = t >> 2, g = t & 3u;
    uint g0 = (rb >> 4) + (blk >> 3) * 105u, sb = blk & 7u, base = g0 + 1u + sb * 13u, half4 = hh * 4u + (g >> 1);
    return q6seg(wvec(sel, base + half4), wvec(sel, base + half4 + 2u), wvec(sel, base + 8u + hh * 2u + (g >> 1)),
                 wvec(sel, base + 12u), wu(sel, 4u * g0 + (sb >> 1)));
}
#endif
#if USE_H16 && WTYPE == DT_Q6_K_SPLIT
// segment s of a split Q6_K row (w from seg_load) from f16 x: xq[q] the 8 x of its run q as halves (x, z),
// (y, w) of two vec4s, xsc[q] that run's staging scale. The 6-bit quants go into the mantissa of 1024.0
// like Q4_K's nibbles; subtracting 1056 leaves q - 32 exactly, so the offset needs no sum of x.
float segdot16w(q6seg w, uint s, uvec4 xq[4], vec4 xsc)
{
    uint blk = s >> 3, t = s & 7u, hh = t >> 2, g = t & 3u, sb = blk & 7u;
    uvec4 qa = w.a, qc = w.c, qh = w.h, sc4 = w.sc;
    vec2 dd = unpackHalf2x16(w.d);
    float d = (sb & 1u) != 0u ? dd.y : dd.x;
    bool odd = (g & 1u) != 0u;
    uvec2 A = odd ? qa.zw : qa.xy, C = odd ? qc.zw : qc.xy, H = odd ? qh.zw : qh.xy;
    uvec2 S = hh != 0u ? sc4.zw : sc4.xy;
    uint is = (g >> 1) * 8u;
    vec4 sc = vec4(float(int(S.x << (24u - is)) >> 24), float(int(S.x << (8u - is)) >> 24),
                   float(int(S.y << (24u - is)) >> 24), float(int(S.y << (8u - is)) >> 24));
    const f16vec2 B = f16vec2(1056.0);
    f16vec2 a0 = f16vec2(0.0), a1 = f16vec2(0.0), a2 = f16vec2(0.0), a3 = f16vec2(0.0);
    for (uint k = 0u; k < 2u; k++) { // each run's word k: its 4 quants, one a byte (as q6_segdot)
        uint a = A[k], c = C[k], hq = H[k];
        uint r0 = (a & 0x0F0F0F0Fu) | ((hq & 0x03030303u) << 4), r1 = (c & 0x0F0F0F0Fu) | ((hq & 0x0C0C0C0Cu) << 2);
        uint r2 = ((a >> 4) & 0x0F0F0F0Fu) | (hq & 0x30303030u), r3 = ((c >> 4) & 0x0F0F0F0Fu) | ((hq >> 2) & 0x30303030u);
        uvec2 x0 = k == 0u ? xq[0].xy : xq[0].zw, x1 = k == 0u ? xq[1].xy : xq[1].zw;
        uvec2 x2 = k == 0u ? xq[2].xy : xq[2].zw, x3 = k == 0u ? xq[3].xy : xq[3].zw;
        // bytes 0 and 2 pair with x halves (x, z), bytes 1 and 3 with (y, w)
        a0 += (unpackFloat2x16((r0 & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x0.x);
        a0 += (unpackFloat2x16(((r0 >> 8) & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x0.y);
        a1 += (unpackFloat2x16((r1 & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x1.x);
        a1 += (unpackFloat2x16(((r1 >> 8) & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x1.y);
        a2 += (unpackFloat2x16((r2 & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x2.x);
        a2 += (unpackFloat2x16(((r2 >> 8) & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x2.y);
        a3 += (unpackFloat2x16((r3 & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x3.x);
        a3 += (unpackFloat2x16(((r3 >> 8) & 0x00FF00FFu) | 0x64006400u) - B) * unpackFloat2x16(x3.y);
    }
    vec4 acc = vec4(float(a0.x) + float(a0.y), float(a1.x) + float(a1.y), float(a2.x) + float(a2.y),
                    float(a3.x) + float(a3.y));
    return d * dot(sc, acc * xsc);
}
float segdot16(uint sel, uint rb, uint s, uvec4 xq[4], vec4 xsc) { return segdot16w(seg_load(sel, rb, s), s, xq, xsc); }
#endif

#if WTYPE == DT_Q4_K && XCO
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2])
{
    uint blk = (rb >> 4) + (s >> 3) * 9u, wb = (rb >> 2) + (s >> 3) * 36u + 4u + (s & 7u);
    uvec4 h = wvec(sel, blk);
    uint w0 = wu(sel, wb), w1 = wu(sel, wb + 8u), w2 = wu(sel, wb + 16u), w3 = wu(sel, wb + 24u);
    vec2 dm = unpackHalf2x16(h.x);
    // the 8 six-bit scales and mins (GGUF get_scale_min_k4): sub-blocks 0-3 in the low 6 bits of bytes
    // 0-3 / 4-7, sub-blocks 4-7 from the nibbles of bytes 8-11 and the top 2 bits of bytes 0-7
    uvec4 by = (uvec4(h.y) >> uvec4(0u, 8u, 16u, 24u)) & 255u, bz = (uvec4(h.z) >> uvec4(0u, 8u, 16u, 24u)) & 255u;
    uvec4 bw = (uvec4(h.w) >> uvec4(0u, 8u, 16u, 24u)) & 255u;
    vec4 scA = vec4(by & 63u), mA = vec4(bz & 63u);
    vec4 scB = vec4((bw & 15u) | ((by >> 6) << 4)), mB = vec4((bw >> 4) | ((bz >> 6) << 4));
    // word j of the lane: low nibbles are sub-block 2j, high nibbles sub-block 2j + 1
    const uvec4 LO = uvec4(0u, 8u, 16u, 24u), HI = uvec4(4u, 12u, 20u, 28u);
    vec4 SA = vec4(dot(vec4((uvec4(w0) >> LO) & 15u), xs[0]), dot(vec4((uvec4(w0) >> HI) & 15u), xs[1]),
                   dot(vec4((uvec4(w1) >> LO) & 15u), xs[2]), dot(vec4((uvec4(w1) >> HI) & 15u), xs[3]));
    vec4 SB = vec4(dot(vec4((uvec4(w2) >> LO) & 15u), xs[4]), dot(vec4((uvec4(w2) >> HI) & 15u), xs[5]),
                   dot(vec4((uvec4(w3) >> LO) & 15u), xs[6]), dot(vec4((uvec4(w3) >> HI) & 15u), xs[7]));
    return dm.x * (dot(scA, SA) + dot(scB, SB)) - dm.y * (dot(mA, xsum[0]) + dot(mB, xsum[1]));
}
#elif WTYPE == DT_Q4_K
float segdotw(q4seg w, uint s, vec4 xs[XV], vec4 xsum[2])
{
    vec2 dm = unpackHalf2x16(w.h.x);
    uvec4 sm = q4k_scale_min(w.h, (s & 7u) >> 1);
    float sl = 0.0, sh = 0.0;
    for (uint k = 0u; k < 4u; k++) { // a word's 8 nibbles masked in place, its bytes then floats (ubytes)
        uint lo = w.q[k] & 0x0F0F0F0Fu, hi = (w.q[k] >> 4) & 0x0F0F0F0Fu;
        sl += dot(ubytes(lo), xs[k]);
        sh += dot(ubytes(hi), xs[4u + k]);
    }
    return dm.x * (float(sm.x) * sl + float(sm.y) * sh) - dm.y * (float(sm.z) * xsum[0].x + float(sm.w) * xsum[0].y);
}
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2]) { return segdotw(seg_load(sel, rb, s), s, xs, xsum); }
#elif WTYPE == DT_Q6_K || WTYPE == DT_Q6_K_SPLIT
// Segment t = s % 8 of a Q6_K block: half hh = t / 4 and l = 8g .. 8g + 7 (g = t % 4) of each of its four
// runs of 32. A: its ql bytes of runs 0 and 2 (low and high nibbles), C: those of runs 1 and 3, H: the 2-bit
// qh of all four, S0 / S1: the half's 8 int8 scales (byte g / 2 of each pair is this segment's).
float q6_segdot(uvec2 A, uvec2 C, uvec2 H, uint S0, uint S1, uint g, float d, vec4 xs[XV], vec4 xsum[2])
{
    uint is = (g >> 1) * 8u; // scale byte is (0 or 1) of each group of two
    vec4 sc = vec4(float(int(S0 << (24u - is)) >> 24), float(int(S0 << (8u - is)) >> 24),
                   float(int(S1 << (24u - is)) >> 24), float(int(S1 << (8u - is)) >> 24));
    vec4 acc = vec4(0.0);
    for (uint k = 0u; k < 2u; k++) { // each run's 6-bit quants assembled 4 at a time, one a byte
        uint a = A[k], c = C[k], hq = H[k];
        uint r0 = (a & 0x0F0F0F0Fu) | ((hq & 0x03030303u) << 4), r1 = (c & 0x0F0F0F0Fu) | ((hq & 0x0C0C0C0Cu) << 2);
        uint r2 = ((a >> 4) & 0x0F0F0F0Fu) | (hq & 0x30303030u), r3 = ((c >> 4) & 0x0F0F0F0Fu) | ((hq >> 2) & 0x30303030u);
        acc.x += dot(ubytes(r0), xs[k]);
        acc.y += dot(ubytes(r1), xs[2u + k]);
        acc.z += dot(ubytes(r2), xs[4u + k]);
        acc.w += dot(ubytes(r3), xs[6u + k]);
    }
    return d * dot(sc, acc - 32.0 * xsum[0]);
}
#if WTYPE == DT_Q6_K
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2])
{
    uint b = rb + (s >> 3) * 210u, t = s & 7u, hh = t >> 2, g = t & 3u;
    uint sh = (b & 3u) * 8u, bw = b >> 2; // the block's word and byte shift (blocks are 2-byte aligned)
    uint la = bw + hh * 16u + g * 2u, lb = la + 8u, qh = bw + 32u + hh * 8u + g * 2u, sw = bw + 48u + hh * 2u;
    uint a0 = wu(sel, la), a1 = wu(sel, la + 1u), a2 = wu(sel, la + 2u);
    uint c0 = wu(sel, lb), c1 = wu(sel, lb + 1u), c2 = wu(sel, lb + 2u);
    uint h0 = wu(sel, qh), h1 = wu(sel, qh + 1u), h2 = wu(sel, qh + 2u);
    uint s0 = wu(sel, sw), s1 = wu(sel, sw + 1u), s2 = wu(sel, sw + 2u);
    uint dw = wu(sel, bw + 52u), dw2 = wu(sel, bw + 53u);
    float d = unpackHalf2x16(funnel(dw, dw2, sh)).x;
    uvec2 A = uvec2(funnel(a0, a1, sh), funnel(a1, a2, sh)), C = uvec2(funnel(c0, c1, sh), funnel(c1, c2, sh));
    uvec2 H = uvec2(funnel(h0, h1, sh), funnel(h1, h2, sh));
    return q6_segdot(A, C, H, funnel(s0, s1, sh), funnel(s1, s2, sh), g, d, xs, xsum);
}
#else
// the split layout (seg_load above)
float segdotw(q6seg w, uint s, vec4 xs[XV], vec4 xsum[2])
{
    uint t = s & 7u, hh = t >> 2, g = t & 3u, sb = (s >> 3) & 7u;
    vec2 dd = unpackHalf2x16(w.d);
    float d = (sb & 1u) != 0u ? dd.y : dd.x;
    bool odd = (g & 1u) != 0u;
    uvec2 sc = hh != 0u ? w.sc.zw : w.sc.xy;
    return q6_segdot(odd ? w.a.zw : w.a.xy, odd ? w.c.zw : w.c.xy, odd ? w.h.zw : w.h.xy, sc.x, sc.y, g, d, xs, xsum);
}
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2]) { return segdotw(seg_load(sel, rb, s), s, xs, xsum); }
#endif
#elif WTYPE == DT_Q8_0
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2])
{
    uint b = rb + s * 34u;
    uint sh = ((b + 2u) & 3u) * 8u, qw = (b + 2u) >> 2;
    float d = whalf(sel, b);
    uint prev = wu(sel, qw);
    float acc = 0.0;
    for (uint k = 0u; k < 8u; k++) {
        uint nx = wu(sel, qw + k + 1u);
        uint w = funnel(prev, nx, sh);
        prev = nx;
        acc += dot(vec4(ivec4(uvec4(w) << uvec4(24u, 16u, 8u, 0u)) >> 24), xs[k]);
    }
    return d * acc;
}
#elif WTYPE == DT_Q8_0_SPLIT
// the split layout: the group's 8 scales in one uvec4, the block's 32 quants in two
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2])
{
    uint g = (rb >> 4) + (s >> 3) * 17u, j = s & 7u;
    vec2 dd = unpackHalf2x16(wu(sel, 4u * g + (j >> 1))); // a word load and a select, as for Q6_K above
    float d = (j & 1u) != 0u ? dd.y : dd.x;
    uvec4 q0 = wvec(sel, g + 1u + 2u * j), q1 = wvec(sel, g + 2u + 2u * j);
    float acc = 0.0;
    for (uint k = 0u; k < 4u; k++) {
        acc += dot(vec4(ivec4(uvec4(q0[k]) << uvec4(24u, 16u, 8u, 0u)) >> 24), xs[k]);
        acc += dot(vec4(ivec4(uvec4(q1[k]) << uvec4(24u, 16u, 8u, 0u)) >> 24), xs[4u + k]);
    }
    return d * acc;
}
#else
float segdot(uint sel, uint rb, uint s, vec4 xs[XV], vec4 xsum[2])
{
    float w[WCH];
    wchunk(sel, rb, s, w);
    float acc = 0.0;
    for (uint j = 0u; j < XV; j++)
        acc += dot(vec4(w[4u * j], w[4u * j + 1u], w[4u * j + 2u], w[4u * j + 3u]), xs[j]);
    return acc;
}
#endif

// the sums of x a segment's offsets multiply (computed once for the RPT rows): Q4_K its two sub-block
// halves (XCO: its 4 x of each of the 8 sub-blocks, [0] sub-blocks 0-3, [1] 4-7), Q6_K its four runs
void seg_xsum(vec4 xs[XV], out vec4 xsum[2])
{
    xsum[1] = vec4(0.0);
#if WTYPE == DT_Q4_K && XCO
    const vec4 one = vec4(1.0);
    xsum[0] = vec4(dot(xs[0], one), dot(xs[1], one), dot(xs[2], one), dot(xs[3], one));
    xsum[1] = vec4(dot(xs[4], one), dot(xs[5], one), dot(xs[6], one), dot(xs[7], one));
#elif WTYPE == DT_Q4_K
    xsum[0] = vec4(dot(xs[0] + xs[1] + xs[2] + xs[3], vec4(1.0)), dot(xs[4] + xs[5] + xs[6] + xs[7], vec4(1.0)), 0.0, 0.0);
#elif WTYPE == DT_Q6_K || WTYPE == DT_Q6_K_SPLIT
    xsum[0] = vec4(dot(xs[0] + xs[1], vec4(1.0)), dot(xs[2] + xs[3], vec4(1.0)), dot(xs[4] + xs[5], vec4(1.0)),
                   dot(xs[6] + xs[7], vec4(1.0)));
#else
    xsum[0] = vec4(0.0);
#endif
}

#ifdef HAS_SUBGROUP
#if (TPR % SUBGROUP_SIZE) == 0
#define USE_SUBGROUP_REDUCE 1
#endif
#endif
#ifdef USE_SUBGROUP_REDUCE
#define NPART (WG_SIZE / SUBGROUP_SIZE)
#else
#define NPART WG_SIZE
#endif
#if GLU
#define NACC 2
#else
#define NACC 1
#endif
// the values each thread reduces: RPT dot products (and RPT up-projection ones with GLU), and with
// HAS_NORM_IN the sum of squares of the x it read (a row group's threads read all of x between them)
// (with XSH the staging loop reduces the sum of squares instead)
#if HAS_NORM_IN && !XSH && !USE_H16
#define NORM_RED 1
#else
#define NORM_RED 0
#endif
#define NV (NACC * RPT + NORM_RED)
shared float mred[NV * NPART];


void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint g = lid / uint(TPR), l = lid % uint(TPR);
    uint t = gl_WorkGroupID.y + u_t0;
    uint xb = t * (uint(K) / 4u);
    g_xb = xb;
    float inv = 1.0;
#if USE_H16
    {
        float ss = 0.0;
        for (uint m = lid; m < uint(K) / 16u; m += uint(WG_SIZE)) {
            vec4 a[4];
            float s16 = 0.0;
            vec4 amax = vec4(0.0);
            for (uint i = 0u; i < 4u; i++) {
                a[i] = X4[xb + 4u * m + i];
#if HAS_NORM_IN
                ss += dot(a[i], a[i]);
                a[i] *= norm_w(4u * m + i);
#endif
                s16 += dot(a[i], vec4(1.0));
                amax = max(amax, abs(a[i]));
            }
            int e;
            frexp(max(max(amax.x, amax.y), max(amax.z, amax.w)), e); // the largest |x| < 2^e
            e = clamp(e - 5, -60, 60); // past 2^-60 a run's terms vanish next to any normal activation
            float down = exp2(float(-e));
            for (uint i = 0u; i < 4u; i++)
                a[i] *= down;
            xh[hsw(2u * m)] = uvec4(packHalf2x16(a[0].xz), packHalf2x16(a[0].yw), packHalf2x16(a[1].xz), packHalf2x16(a[1].yw));
            xh[hsw(2u * m + 1u)] = uvec4(packHalf2x16(a[2].xz), packHalf2x16(a[2].yw), packHalf2x16(a[3].xz), packHalf2x16(a[3].yw));
            xs16[m] = vec2(s16, exp2(float(e)));
        }
#if HAS_NORM_IN
        inv = inversesqrt(wg_sum(ss) / float(K) + float(EPS)); // wg_sum's barriers also publish xh
#else
        WG_BARRIER();
#endif
    }
#endif
#if XSH
    float ss = 0.0;
    for (uint i = lid; i < uint(K) / 4u; i += uint(WG_SIZE)) {
        vec4 a = X4[xb + i];
#if HAS_NORM_IN
        ss += dot(a, a);
        a *= norm_w(i);
#endif
        xsh[xsw(i)] = a;
    }
#if HAS_NORM_IN
    inv = inversesqrt(wg_sum(ss) / float(K) + float(EPS)); // wg_sum's barriers also publish xsh
#else
    WG_BARRIER();
#endif
#endif
    uint blk = gl_WorkGroupID.x;
    uint lr0 = blk * uint(ROWS_PER_WG) + g * uint(RPT);
    float v[NV];
    for (int i = 0; i < NV; i++)
        v[i] = 0.0;
    g_ss = 0.0;
#if USE_H16 && WTYPE == DT_Q6_K_SPLIT
    for (uint s = l; s < NSEG; s += uint(TPR)) {
        // run q of the segment: x vec4s 64 blk + 32 hh + 2 g + 8 q and the next (load_x), uvec4 m0 + 4 q of xh
        uint blk = s >> 3, sp = s & 7u, m0 = 32u * blk + 16u * (sp >> 2) + (sp & 3u);
        uvec4 xq[4];
        for (uint q = 0u; q < 4u; q++)
            xq[q] = xh[hsw(m0 + 4u * q)];
        uint i16 = 16u * blk + 8u * (sp >> 2) + ((sp & 3u) >> 1);
        vec4 xsc = vec4(xs16[i16].y, xs16[i16 + 2u].y, xs16[i16 + 4u].y, xs16[i16 + 6u].y);
        for (uint r = 0u; r < uint(RPT); r++) {
            uint lr = min(lr0 + r, u_nrows - 1u);
            v[r] += segdot16(0u, lr * uint(WROWBYTES), s, xq, xsc);
#if GLU
            v[RPT + int(r)] += segdot16(1u, lr * uint(WROWBYTES), s, xq, xsc);
#endif
        }
    }
#elif USE_H16
    for (uint s = l; s < NSEG; s += uint(TPR)) {
        uint blk = s >> 3, p = s & 7u, u0 = 32u * blk + 8u * (p >> 1) + 2u * (p & 1u);
        uvec4 xq[4];
        xq[0] = xh[hsw(u0)];
        xq[1] = xh[hsw(u0 + 1u)];
        xq[2] = xh[hsw(u0 + 4u)];
        xq[3] = xh[hsw(u0 + 5u)];
        uint i16 = 16u * blk + 4u * (p >> 1) + (p & 1u);
        vec2 x0 = xs16[i16], x1 = xs16[i16 + 2u];
        vec4 xsum = vec4(x0.x, x1.x, x0.y, x1.y); // the two runs' sums, then their scales
        for (uint r = 0u; r < uint(RPT); r++) {
            uint lr = min(lr0 + r, u_nrows - 1u);
            uint rb = lr * uint(WROWBYTES);
            v[r] += segdot16(0u, rb, s, xq, xsum);
#if GLU
            v[RPT + int(r)] += segdot16(1u, rb, s, xq, xsum);
#endif
        }
    }
#else
    for (uint s = l; s < NSEG; s += uint(TPR)) {
        vec4 xs[XV];
        load_x(xb, s, xs);
        vec4 xsum[2];
        seg_xsum(xs, xsum);
        for (uint r = 0u; r < uint(RPT); r++) {
            uint lr = min(lr0 + r, u_nrows - 1u); // past-the-end rows recompute the last row, never stored
            uint rb = lr * uint(WROWBYTES);
            v[r] += segdot(0u, rb, s, xs, xsum);
#if GLU
            v[RPT + int(r)] += segdot(1u, rb, s, xs, xsum);
#endif
        }
    }
#endif
#if NORM_RED
    v[NV - 1] = g_ss;
#endif
#ifdef USE_SUBGROUP_REDUCE
    for (int i = 0; i < NV; i++)
        v[i] = subgroupAdd(v[i]);
#if TPR > SUBGROUP_SIZE
    // one partial per subgroup; a row group's subgroups are consecutive
    uint sg = lid / uint(SUBGROUP_SIZE), per = uint(TPR / SUBGROUP_SIZE);
    if (subgroupElect())
        for (uint i = 0u; i < uint(NV); i++)
            mred[i * uint(NPART) + sg] = v[i];
    WG_BARRIER();
    if (l == 0u)
        for (uint i = 0u; i < uint(NV); i++) {
            float a = 0.0;
            for (uint j = 0u; j < per; j++)
                a += mred[i * uint(NPART) + sg + j];
            v[i] = a;
        }
#endif
#else
    for (uint i = 0u; i < uint(NV); i++)
        mred[i * uint(NPART) + lid] = v[i];
    WG_BARRIER();
    for (uint st = uint(TPR) / 2u; st > 0u; st >>= 1) {
        if (l < st)
            for (uint i = 0u; i < uint(NV); i++)
                mred[i * uint(NPART) + lid] += mred[i * uint(NPART) + lid + st];
        WG_BARRIER();
    }
    for (uint i = 0u; i < uint(NV); i++)
        v[i] = mred[i * uint(NPART) + lid];
#endif
    if (l == 0u) {
        // x / rms(x) * w: the norm weight was applied as x was loaded, the 1 / rms here (it is linear)
#if NORM_RED
        inv = inversesqrt(v[NV - 1] / float(K) + float(EPS));
#endif
        for (uint r = 0u; r < uint(RPT); r++)
            if (lr0 + r < u_nrows) {
#if GLU
                store(u_row0 + lr0 + r, t, v[r] * inv, v[uint(RPT) + r] * inv);
#else
                store(u_row0 + lr0 + r, t, v[r] * inv, 0.0);
#endif
            }
    }
}
#endif
