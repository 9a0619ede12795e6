#version 310 es
// sample_final.glsl: the sampler's last pass, one workgroup: picks the token from sample_partial's
// records, writes it to the token slot, appends it to the history and sets the stop flag
// (sample_emit.inc.glsl). Modes:
//   0 combine: the best of part[0, u_nparts).xy (greedy argmax, or the Gumbel-max draw of mode 2)
//   1 cand:    merges the u_nparts lists of CAND candidates into the global best CAND, then top-k,
//              top-p (denominator: the top-k set when top-k is on, else the full vocabulary from the
//              part[].zw records), min-p, and a Gumbel-max draw at temperature 1/u_inv_temp among the
//              kept candidates
// Bindings: 1 history, 2 part (uvec4), 3 cand (uvec2), 4 token slot (uint).

// Knobs:
#ifndef MODE
#define MODE 0 // 0 combine, 1 cand
#endif
#ifndef WG_SIZE
#define WG_SIZE 64 // invocations, a power of two
#endif
#ifndef CAND
#define CAND 256 // the candidate bound (must match sample_partial's)
#endif

#if (WG_SIZE & (WG_SIZE - 1)) != 0
#error WG_SIZE must be a power of two
#endif

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 1) buffer Hb { uint H[]; };
layout(std430, binding = 2) readonly buffer Pb { uvec4 part[]; };
layout(std430, binding = 3) readonly buffer Cb { uvec2 cand[]; };
layout(std430, binding = 4) buffer Tb { uint T[]; };

uniform uint u_nparts;
uniform uint u_top_k;   // 0: off
uniform float u_top_p;  // >= 1: off
uniform float u_log_min_p; // -inf: off
uniform float u_inv_temp;
uniform uvec2 u_seed;

#include "sample_common.inc.glsl"
#include "sample_emit.inc.glsl"

shared float rv[WG_SIZE];
shared uint ri[WG_SIZE];

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

#if MODE == 1
#define TOPC_LOAD(j, v, id)          \
    uvec2 c_ = cand[j];              \
    v = uintBitsToFloat(c_.x);       \
    id = c_.y
#include "sample_topc.inc.glsl"
shared uint s_cut;
#endif

void main()
{
    uint lid = gl_LocalInvocationID.x;
#if MODE == 0
    float best = S_NEG_INF;
    uint bi = S_INVALID;
    for (uint q = lid; q < u_nparts; q += uint(WG_SIZE)) {
        uvec2 r = part[q].xy;
        if (s_before(uintBitsToFloat(r.x), r.y, best, bi)) {
            best = uintBitsToFloat(r.x);
            bi = r.y;
        }
    }
    wg_best(best, bi);
    if (lid == 0u)
        s_emit(bi == S_INVALID ? 0u : bi, true);
#else
    const uint C = uint(CAND);
    topc_run(0u, u_nparts * C);
    float M = tv[0];

    // K = valid candidates (vocabularies smaller than CAND leave S_INVALID padding), then top-k.
    if (lid == 0u)
        s_cut = C;
    WG_BARRIER();
    for (uint j = lid; j < C; j += uint(WG_SIZE))
        if (ti[j] == S_INVALID && (j == 0u || ti[j - 1u] != S_INVALID))
            atomicMin(s_cut, j);
    WG_BARRIER();
    uint K = s_cut;
    if (u_top_k > 0u)
        K = min(K, u_top_k);
    WG_BARRIER(); // every invocation has read s_cut

    if (u_top_p < 1.0) {
        // The scan lives in the staging half, which is free once topc_run has returned.
        for (uint j = lid; j < C; j += uint(WG_SIZE))
            tv[C + j] = j < K ? exp(tv[j] - M) : 0.0;
        float D = 0.0;
        if (u_top_k > 0u) {
            float s = 0.0;
            for (uint j = lid; j < K; j += uint(WG_SIZE))
                s += tv[C + j];
            D = wg_sum(s);
        } else {
            float s = 0.0;
            for (uint q = lid; q < u_nparts; q += uint(WG_SIZE)) {
                uvec2 r = part[q].zw;
                float m = uintBitsToFloat(r.x);
                if (m != S_NEG_INF)
                    s += uintBitsToFloat(r.y) * exp(m - M);
            }
            D = wg_sum(s);
        }
        // Inclusive prefix sum (Hillis-Steele), CAND / WG_SIZE elements per invocation.
        float tmp[CAND / WG_SIZE];
        for (uint d = 1u; d < C; d <<= 1) {
            for (uint j = lid, q = 0u; j < C; j += uint(WG_SIZE), q++)
                tmp[q] = j >= d ? tv[C + j - d] : 0.0;
            WG_BARRIER();
            for (uint j = lid, q = 0u; j < C; j += uint(WG_SIZE), q++)
                tv[C + j] += tmp[q];
            WG_BARRIER();
        }
        if (lid == 0u)
            s_cut = K;
        WG_BARRIER();
        float target = u_top_p * D;
        for (uint j = lid; j < K; j += uint(WG_SIZE))
            if (tv[C + j] >= target)
                atomicMin(s_cut, j + 1u);
        WG_BARRIER();
        K = s_cut;
    }

    if (u_log_min_p != S_NEG_INF) {
        float thr = M + u_log_min_p;
        WG_BARRIER(); // every invocation has read s_cut
        if (lid == 0u)
            s_cut = K;
        WG_BARRIER();
        for (uint j = lid; j < K; j += uint(WG_SIZE))
            if (tv[j] < thr)
                atomicMin(s_cut, j);
        WG_BARRIER();
        K = max(s_cut, 1u);
    }

    uint draw = H[H_DRAWS];
    float best = S_NEG_INF;
    uint bi = S_INVALID;
    for (uint j = lid; j < K; j += uint(WG_SIZE)) {
        float key = tv[j] * u_inv_temp + s_gumbel(u_seed, draw, ti[j]);
        if (s_before(key, ti[j], best, bi)) {
            best = key;
            bi = ti[j];
        }
    }
    wg_best(best, bi);
    if (lid == 0u)
        s_emit(bi == S_INVALID ? 0u : bi, true);
#endif
}
