#version 310 es
// sample_partial.glsl: the sampler's first pass: one workgroup per chunk of u_chunk logits, writing
// one record per workgroup to part[] (and, in MODE 3, its best CAND candidates to cand[]). The final
// pass (sample_final.glsl) combines them. Modes:
//   0 max:     part[g].z = max logit of the chunk
//   1 argmax:  part[g].xy = (best logit, its id) in the token order (greedy)
//   2 gumbel:  part[g].xy = (best key, id), key = logit * u_inv_temp + Gumbel(seed, draw, id), over the
//              tokens kept by min-p (USE_MINP: logit >= M + u_log_min_p, M from the mode-0 records)
//   3 cand:    cand[g * CAND + j] = the chunk's best CAND (logit, id) pairs, best-first;
//              part[g].zw = (chunk max m, sum of exp(logit - m)) for the full-vocabulary softmax
// Bindings: 0 logits (f32, element u_lbase + i), 1 history (sample_common.inc.glsl), 2 part (uvec4),
// 3 cand (uvec2: float bits, id). Logits are read as they are (penalties ran before, in place).

// Knobs:
#ifndef MODE
#define MODE 1 // 0 max, 1 argmax, 2 gumbel, 3 cand
#endif
#ifndef WG_SIZE
#define WG_SIZE 64 // invocations per workgroup, a power of two
#endif
#ifndef CAND
#define CAND 256 // candidates kept per workgroup in MODE 3 (the sampler's candidate bound)
#endif
#ifndef USE_MINP
#define USE_MINP 0 // MODE 2: apply min-p (needs the mode-0 records in part[].z)
#endif

#if (WG_SIZE & (WG_SIZE - 1)) != 0
#error WG_SIZE must be a power of two
#endif

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Lb { float L[]; };
layout(std430, binding = 1) readonly buffer Hb { uint H[]; };
layout(std430, binding = 2) buffer Pb { uvec4 part[]; };
layout(std430, binding = 3) writeonly buffer Cb { uvec2 cand[]; };

uniform uint u_n;      // vocabulary size
uniform uint u_lbase;  // element offset of logit 0 in binding 0
uniform uint u_chunk;  // logits per workgroup
uniform uint u_nparts; // workgroups of this pass (mode 2 with min-p reads that many mode-0 records)
uniform float u_inv_temp;
uniform float u_log_min_p;
uniform uvec2 u_seed;

#include "sample_common.inc.glsl"

float logit(uint i) { return s_clean(L[u_lbase + i]); }

#if MODE == 3
#define TOPC_LOAD(j, v, id) \
    v = logit(j);           \
    id = j
#include "sample_topc.inc.glsl"
#endif

shared float rv[WG_SIZE];
shared uint ri[WG_SIZE];

// Workgroup arg-best of (v, i) in the token order; every invocation gets the winner.
void wg_best(inout float v, inout uint i)
{
    uint lid = gl_LocalInvocationID.x;
    rv[lid] = v;
    ri[lid] = i;
    WG_BARRIER();
    for (uint s = uint(WG_SIZE) / 2u; s > 0u; s >>= 1) {
        if (lid < s && s_before(rv[lid + s], ri[lid + s], rv[lid], ri[lid])) {
            rv[lid] = rv[lid + s];
            ri[lid] = ri[lid + s];
        }
        WG_BARRIER();
    }
    v = rv[0];
    i = ri[0];
    WG_BARRIER();
}

float wg_sum(float v)
{
    uint lid = gl_LocalInvocationID.x;
    rv[lid] = v;
    WG_BARRIER();
    for (uint s = uint(WG_SIZE) / 2u; s > 0u; s >>= 1) {
        if (lid < s)
            rv[lid] += rv[lid + s];
        WG_BARRIER();
    }
    float r = rv[0];
    WG_BARRIER();
    return r;
}

void main()
{
    uint lid = gl_LocalInvocationID.x, g = gl_WorkGroupID.x;
    uint begin = g * u_chunk, end = min(begin + u_chunk, u_n);
#if MODE == 3
    topc_run(begin, end);
    for (uint j = lid; j < uint(CAND); j += uint(WG_SIZE))
        cand[g * uint(CAND) + j] = uvec2(floatBitsToUint(tv[j]), ti[j]);
    float m = tv[0];
    float s = 0.0;
    if (m != S_NEG_INF)
        for (uint i = begin + lid; i < end; i += uint(WG_SIZE))
            s += exp(logit(i) - m);
    s = wg_sum(s);
    if (lid == 0u)
        part[g].zw = uvec2(floatBitsToUint(m), floatBitsToUint(s));
#else
    float best = S_NEG_INF;
    uint bi = S_INVALID;
#if MODE == 2
    uint draw = H[H_DRAWS];
    float thr = S_NEG_INF;
#if USE_MINP
    float M = S_NEG_INF;
    for (uint q = lid; q < u_nparts; q += uint(WG_SIZE))
        M = max(M, uintBitsToFloat(part[q].z));
    uint dummy = 0u;
    wg_best(M, dummy);
    thr = M + u_log_min_p;
#endif
#endif
    for (uint i = begin + lid; i < end; i += uint(WG_SIZE)) {
        float x = logit(i);
#if MODE == 2
        if (x == S_NEG_INF || x < thr)
            continue;
        x = x * u_inv_temp + s_gumbel(u_seed, draw, i);
#endif
        // Strided ascending: the first best seen by an invocation has its lowest id.
        if (s_before(x, i, best, bi)) {
            best = x;
            bi = i;
        }
    }
    wg_best(best, bi);
    if (lid == 0u) {
#if MODE == 0
        part[g].z = floatBitsToUint(best);
#else
        part[g].xy = uvec2(floatBitsToUint(best), bi);
#endif
    }
#endif
}
