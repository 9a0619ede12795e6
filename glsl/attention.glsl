#version 310 es
// attention.glsl: causal attention of each query (token t at position u_pos0 + t, head h) over the
// layer's KV cache: keys [lo, pos] with lo = pos - WINDOW + 1 for sliding-window layers (WINDOW > 0).
// GQA (kv head = h / (NH / NKV)), score = q.k * SCALE, soft-capped when SOFTCAP > 0, softmax, sum of v.
// Keys are visited in blocks of CHUNK with an online softmax, so any context length works.
// main: one workgroup per (head, token), writes out[t][h][:].
// ATTN_SPLIT (flash-decoding): NSPLIT workgroups per (head, token) take every NSPLIT-th block and write
// (max, sum, unnormalized acc[HD]) to part[t][h][s]; attn_combine.glsl merges them.
// HAS_SINKS (GPT-OSS): a learned per-head logit joins the softmax denominator only; it is started as a
// pseudo-key of zero value (m = sink, l = 1) in split 0, so split attention's combine needs no change.
// ATTN_FUSED (kernel attention_fused, decode of one token): rope_kv, split attention and attn_combine in
// one dispatch. Each workgroup ropes q and the new k itself (from the raw projections) and uses the new
// k/v from shared memory for the current position, so no workgroup reads a cache row another one writes;
// one workgroup per kv head stores them in the cache for later tokens. Partials go to `part`; the last
// workgroup of a head to finish (an atomic counter per head, reset by that workgroup) combines them;
// with NSPLIT 1 the one workgroup of a head writes the output itself (no partials, no counter).
// Three dependent dispatches a layer become one (two with NSPLIT 1, which had no combine).
// VEC_V (f16 cache): the v rows are read 8 halves to a uvec4 load, HD / 8 invocations across a head's
// dims and WG_SIZE / (HD / 8) key phases, combined once at the end (the scalar loop reads each half with
// its own load, which dominated attention on llvmpipe).
// HAS_QK_NORM (fused only; Qwen3, Gemma 3): the per-head RMS norms of q and k (w, GEMMA: 1 + w) are applied
// to the raw projections before the rotation, so the two qk_norm dispatches go too.
// Bindings: 0 q, 1 k cache, 2 v cache, 3 out (or part), 4 sinks [NH] (HAS_SINKS);
// fused: 5 k, 6 v (this token's projections), 7 rope table, 8 part, 9 per-head counters (zeroed at load),
// 10 / 11 q / k norm weights [HD] (HAS_QK_NORM).

#ifndef NH
#define NH 4
#endif
#ifndef NKV
#define NKV 4
#endif
#ifndef HD
#define HD 16
#endif
#ifndef CTX
#define CTX 64
#endif
#ifndef SCALE
#define SCALE 0.25
#endif
#ifndef SOFTCAP
#define SOFTCAP 0.0
#endif
#ifndef WINDOW
#define WINDOW 0
#endif
#ifndef KV_F16
#define KV_F16 1
#endif
#ifndef KVBYTES
#define KVBYTES 2
#endif
#ifndef CHUNK
#define CHUNK 128
#endif
#ifndef NSPLIT
#define NSPLIT 8
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#ifndef HAS_SINKS
#define HAS_SINKS 0
#endif
#ifndef ROT
#define ROT HD
#endif
#ifndef NEOX
#define NEOX 1
#endif
#ifndef MSCALE
#define MSCALE 1.0
#endif
#ifndef HAS_QK_NORM
#define HAS_QK_NORM 0
#endif
#ifndef VEC_V
#define VEC_V 0
#endif
#ifndef EPS
#define EPS 1e-6
#endif
#ifndef GEMMA
#define GEMMA 0
#endif
#ifdef ATTN_FUSED
#define ATTN_SPLIT 1
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Qb { float Q[]; };
#ifdef ATTN_FUSED
layout(std430, binding = 1) buffer KCb { uint KC[]; };
layout(std430, binding = 2) buffer VCb { uint VC[]; };
layout(std430, binding = 5) readonly buffer Kb { float Kx[]; };
layout(std430, binding = 6) readonly buffer Vb { float Vx[]; };
layout(std430, binding = 7) readonly buffer Tb { float invf[]; };
// coherent: the combining workgroup reads what the other workgroups of the dispatch wrote
layout(std430, binding = 8) coherent buffer Pb { float P[]; };
layout(std430, binding = 9) coherent buffer Cb { uint Cnt[]; };
#if HAS_QK_NORM
layout(std430, binding = 10) readonly buffer QNb { float QN[]; };
layout(std430, binding = 11) readonly buffer KNb { float KN[]; };
#endif
#else
layout(std430, binding = 1) readonly buffer KCb { uint KC[]; };
layout(std430, binding = 2) readonly buffer VCb { uint VC[]; };
#endif
layout(std430, binding = 3) writeonly buffer Ob { float O[]; };
#if HAS_SINKS
layout(std430, binding = 4) readonly buffer Sb { float Sinks[]; };
#endif

#define KVDIM (NKV * HD)
#define NACC ((HD + WG_SIZE - 1) / WG_SIZE)

shared float qs[HD];
shared float sc[CHUNK];
shared float red[WG_SIZE];
#if VEC_V
// only where the rows allow it (an f32 cache, HD % 8 or a workgroup narrower than HD / 8: the scalar loop)
#if KV_F16 == 0 || (HD % 8) != 0 || (WG_SIZE % (HD / 8)) != 0
#undef VEC_V
#define VEC_V 0
#endif
#endif
#if VEC_V
#define VG (HD / 8)
#define KPH (WG_SIZE / VG)
layout(std430, binding = 2) readonly buffer VC4b { uvec4 VC4[]; };
shared float vfin[KPH * HD];
#endif
#ifdef ATTN_FUSED
#if NSPLIT > 1
#include "attn_combine.inc.glsl"
#endif
shared float kcur[HD], vcur[HD], qraw[HD], kraw[HD];
shared uint last_wg;

// element d of a rotated head held raw in ARR (rope.glsl's rotation: NEOX halves or interleaved pairs,
// the first ROT elements, the angle pos x inverse frequency, cos/sin times MSCALE)
#define ROPE_AT(ARR, d, pos, toff, out)                                    \
    {                                                                      \
        uint half_rot_ = uint(ROT) / 2u;                                   \
        if ((d) >= uint(ROT)) {                                            \
            out = ARR[d];                                                  \
        } else {                                                           \
            uint i_ = NEOX != 0 ? (d) % half_rot_ : (d) / 2u;              \
            uint i0_ = NEOX != 0 ? i_ : 2u * i_;                           \
            uint i1_ = NEOX != 0 ? i_ + half_rot_ : 2u * i_ + 1u;          \
            vec2 cs_ = rope_cs((pos) * invf[(toff) + i_]) * float(MSCALE); \
            float x0_ = ARR[i0_], x1_ = ARR[i1_];                         \
            out = (d) == i0_ ? x0_ * cs_.x - x1_ * cs_.y : x1_ * cs_.x + x0_ * cs_.y; \
        }                                                                  \
    }
#endif

float kv_at(uint p, uint e, bool is_v) // element e of row p of the cache
{
#if KV_F16
    uint w = is_v ? VC[(p * uint(KVDIM) + e) >> 1] : KC[(p * uint(KVDIM) + e) >> 1];
    return unpackHalf2x16(w)[e & 1u];
#else
    return uintBitsToFloat(is_v ? VC[p * uint(KVDIM) + e] : KC[p * uint(KVDIM) + e]);
#endif
}

// WG_SUBGROUPS: the workgroup is whole subgroups with arithmetic (nested: the preprocessor evaluates
// every operand, and SUBGROUP_SIZE exists only with HAS_SUBGROUP)
#ifndef WG_SUBGROUPS
#ifdef HAS_SUBGROUP
#if (WG_SIZE % SUBGROUP_SIZE) == 0
#define WG_SUBGROUPS 1
#endif
#endif
#ifndef WG_SUBGROUPS
#define WG_SUBGROUPS 0
#endif
#endif
float wg_reduce(float v, bool is_max)
{
    uint lid = gl_LocalInvocationID.x;
#if WG_SUBGROUPS
    // one subgroup operation and one shared-memory round instead of a log2(WG_SIZE)-barrier tree
    float sv = is_max ? subgroupMax(v) : subgroupAdd(v);
    if (subgroupElect())
        red[lid / uint(SUBGROUP_SIZE)] = sv;
    WG_BARRIER();
    float r = red[0];
    for (uint i = 1u; i < uint(WG_SIZE / SUBGROUP_SIZE); i++)
        r = is_max ? max(r, red[i]) : r + red[i];
    WG_BARRIER();
    return r;
#else
    red[lid] = v;
    WG_BARRIER();
    for (uint s = uint(WG_SIZE) / 2u; s > 0u; s >>= 1) {
        if (lid < s)
            red[lid] = is_max ? max(red[lid], red[lid + s]) : red[lid] + red[lid + s];
        WG_BARRIER();
    }
    float r = red[0];
    WG_BARRIER();
    return r;
#endif
}

// q . k for cache row p: f16 keys 8 at a time from uvec4 loads when the rows allow it
#if KV_F16 && (HD % 8) == 0 && (KVDIM % 8) == 0
layout(std430, binding = 1) readonly buffer KC4b { uvec4 KC4[]; };
float qk(uint p, uint kb)
{
    uint b = (p * uint(KVDIM) + kb) >> 3;
    float s = 0.0;
    for (uint i = 0u; i < uint(HD / 8); i++) {
        uvec4 w = KC4[b + i];
        uint d = 8u * i;
        s += dot(vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)), vec4(qs[d], qs[d + 1u], qs[d + 2u], qs[d + 3u]));
        s += dot(vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w)), vec4(qs[d + 4u], qs[d + 5u], qs[d + 6u], qs[d + 7u]));
    }
    return s;
}
#else
float qk(uint p, uint kb)
{
    float s = 0.0;
    for (uint d = 0u; d < uint(HD); d++)
        s += qs[d] * kv_at(p, kb + d, false);
    return s;
}
#endif

#ifdef ATTN_FUSED
float qk_cur()
{
    float s = 0.0;
    for (uint d = 0u; d < uint(HD); d++)
        s += qs[d] * kcur[d];
    return s;
}
#endif

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
#ifdef ATTN_SPLIT
    uint split = gl_WorkGroupID.z;
#else
    uint split = 0u;
#endif
    uint nsplit = uint(NSPLIT);
#ifndef ATTN_SPLIT
    nsplit = 1u;
#endif
    uint pos = u_pos0 + t;
    uint lo = 0u;
    if (uint(WINDOW) > 0u && pos + 1u > uint(WINDOW))
        lo = pos + 1u - uint(WINDOW);
    uint kvh = h / uint(NH / NKV);
    uint kb = kvh * uint(HD);
#ifdef ATTN_FUSED
    // this token's q and k, rotated here; k and v stay in shared memory for the current position
    float fpos = float(pos);
    uint toff = u_long_rope * (uint(ROT) / 2u);
    for (uint d = lid; d < uint(HD); d += uint(WG_SIZE)) {
        qraw[d] = Q[(t * uint(NH) + h) * uint(HD) + d];
        kraw[d] = Kx[(t * uint(NKV) + kvh) * uint(HD) + d];
        vcur[d] = Vx[(t * uint(NKV) + kvh) * uint(HD) + d];
    }
    WG_BARRIER();
#if HAS_QK_NORM
    {
        float sq = 0.0, sk = 0.0;
        for (uint d = lid; d < uint(HD); d += uint(WG_SIZE)) {
            sq += qraw[d] * qraw[d];
            sk += kraw[d] * kraw[d];
        }
        float iq = inversesqrt(wg_reduce(sq, false) / float(HD) + float(EPS));
        float ik = inversesqrt(wg_reduce(sk, false) / float(HD) + float(EPS));
        for (uint d = lid; d < uint(HD); d += uint(WG_SIZE)) {
            float wq = QN[d], wk = KN[d];
#if GEMMA
            wq += 1.0;
            wk += 1.0;
#endif
            qraw[d] *= iq * wq;
            kraw[d] *= ik * wk;
        }
        WG_BARRIER();
    }
#endif
    for (uint d = lid; d < uint(HD); d += uint(WG_SIZE)) {
        float rq, rk;
        ROPE_AT(qraw, d, fpos, toff, rq);
        ROPE_AT(kraw, d, fpos, toff, rk);
        qs[d] = rq;
        kcur[d] = rk;
    }
    WG_BARRIER();
    // one workgroup per kv head stores the new row for the tokens after this one
    if (split == 0u && h % uint(NH / NKV) == 0u && pos < uint(CTX)) {
        for (uint j = lid; j < uint(HD) / 2u; j += uint(WG_SIZE)) {
            uint d = 2u * j;
#if KV_F16
            uint o = (pos * uint(KVDIM) + kb + d) / 2u;
            KC[o] = packHalf2x16(vec2(kcur[d], kcur[d + 1u]));
            VC[o] = packHalf2x16(vec2(vcur[d], vcur[d + 1u]));
#else
            uint o = pos * uint(KVDIM) + kb + d;
            KC[o] = floatBitsToUint(kcur[d]);
            KC[o + 1u] = floatBitsToUint(kcur[d + 1u]);
            VC[o] = floatBitsToUint(vcur[d]);
            VC[o + 1u] = floatBitsToUint(vcur[d + 1u]);
#endif
        }
    }
#else
    for (uint d = lid; d < uint(HD); d += uint(WG_SIZE))
        qs[d] = Q[(t * uint(NH) + h) * uint(HD) + d];
    WG_BARRIER();
#endif

    float m = -3.0e38, l = 0.0;
#if HAS_SINKS
    if (split == 0u) {
        m = Sinks[h];
        l = 1.0;
    }
#endif
    float acc[NACC];
    for (int i = 0; i < NACC; i++)
        acc[i] = 0.0;
#if VEC_V
    uint vg = lid % uint(VG), kp = lid / uint(VG);
    vec4 va0 = vec4(0.0), va1 = vec4(0.0); // dims 8 vg .. 8 vg + 7, keys kp, kp + KPH, ...
#endif
    uint nkeys = pos + 1u - lo;
    uint nblocks = (nkeys + uint(CHUNK) - 1u) / uint(CHUNK);
    for (uint blk = split; blk < nblocks; blk += nsplit) {
        uint j0 = lo + blk * uint(CHUNK);
        uint jn = min(uint(CHUNK), pos + 1u - j0);
        float bmax = -3.0e38;
        for (uint jj = lid; jj < jn; jj += uint(WG_SIZE)) {
            uint p = j0 + jj;
#ifdef ATTN_FUSED
            float s = (p == pos ? qk_cur() : qk(p, kb)) * float(SCALE);
#else
            float s = qk(p, kb) * float(SCALE);
#endif
            if (float(SOFTCAP) > 0.0)
                s = float(SOFTCAP) * stable_tanh(s / float(SOFTCAP));
            sc[jj] = s;
            bmax = max(bmax, s);
        }
        bmax = wg_reduce(bmax, true);
        float mn = max(m, bmax);
        float f = exp(m - mn);
        float ps = 0.0;
        for (uint jj = lid; jj < jn; jj += uint(WG_SIZE)) {
            float e = exp(sc[jj] - mn);
            sc[jj] = e;
            ps += e;
        }
        ps = wg_reduce(ps, false); // its barriers also publish sc[]
        l = l * f + ps;
#if VEC_V
        va0 *= f;
        va1 *= f;
        for (uint jj = kp; jj < jn; jj += uint(KPH)) {
            uint p = j0 + jj, d = 8u * vg;
            vec4 lo4, hi4;
#ifdef ATTN_FUSED
            if (p == pos) {
                lo4 = vec4(vcur[d], vcur[d + 1u], vcur[d + 2u], vcur[d + 3u]);
                hi4 = vec4(vcur[d + 4u], vcur[d + 5u], vcur[d + 6u], vcur[d + 7u]);
            } else
#endif
            {
                uvec4 w = VC4[(p * uint(KVDIM) + kb + d) >> 3];
                lo4 = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                hi4 = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
            }
            va0 += sc[jj] * lo4;
            va1 += sc[jj] * hi4;
        }
#else
        for (int i = 0; i < NACC; i++) {
            uint d = lid + uint(i) * uint(WG_SIZE);
            if (d < uint(HD)) {
                float a = acc[i] * f;
#ifdef ATTN_FUSED
                // the block holding the current position takes its v from shared memory
                uint jc = j0 + jn - 1u == pos ? jn - 1u : jn;
                for (uint jj = 0u; jj < jc; jj++)
                    a += sc[jj] * kv_at(j0 + jj, kb + d, true);
                if (jc < jn)
                    a += sc[jc] * vcur[d];
#else
                for (uint jj = 0u; jj < jn; jj++)
                    a += sc[jj] * kv_at(j0 + jj, kb + d, true);
#endif
                acc[i] = a;
            }
        }
#endif
        m = mn;
        WG_BARRIER();
    }
#if VEC_V
    // sum the key phases' partial rows; acc[] then holds what the scalar loop would have
    for (uint i = 0u; i < 4u; i++) {
        vfin[kp * uint(HD) + 8u * vg + i] = va0[i];
        vfin[kp * uint(HD) + 8u * vg + 4u + i] = va1[i];
    }
    WG_BARRIER();
    for (int i = 0; i < NACC; i++) {
        uint d = lid + uint(i) * uint(WG_SIZE);
        if (d < uint(HD)) {
            float a = 0.0;
            for (uint q = 0u; q < uint(KPH); q++)
                a += vfin[q * uint(HD) + d];
            acc[i] = a;
        }
    }
#endif
#if defined(ATTN_SPLIT) && (!defined(ATTN_FUSED) || NSPLIT > 1)
    // this workgroup's partial: to the output slot (split: attn_combine merges them) or, fused, to part
#ifdef ATTN_FUSED
#define PART P
#else
#define PART O
#endif
    uint pb = ((t * uint(NH) + h) * uint(NSPLIT) + split) * uint(HD + 2);
    if (lid == 0u) {
        PART[pb] = m;
        PART[pb + 1u] = l;
    }
    for (int i = 0; i < NACC; i++) {
        uint d = lid + uint(i) * uint(WG_SIZE);
        if (d < uint(HD))
            PART[pb + 2u + d] = acc[i];
    }
#ifdef ATTN_FUSED
    // publish the partial, then count it; the workgroup that brings the count to NSPLIT combines
    memoryBarrierBuffer();
    WG_BARRIER();
    if (lid == 0u)
        last_wg = atomicAdd(Cnt[t * uint(NH) + h], 1u) == uint(NSPLIT) - 1u ? 1u : 0u;
    WG_BARRIER();
    if (last_wg == 0u)
        return;
    memoryBarrierBuffer();
    combine_partials(t, h);
    if (lid == 0u)
        Cnt[t * uint(NH) + h] = 0u; // ready for the next layer's dispatch (a barrier lies between)
#endif
#else
    float inv = l > 0.0 ? 1.0 / l : 0.0;
    for (int i = 0; i < NACC; i++) {
        uint d = lid + uint(i) * uint(WG_SIZE);
        if (d < uint(HD))
            O[(t * uint(NH) + h) * uint(HD) + d] = acc[i] * inv;
    }
#endif
}
