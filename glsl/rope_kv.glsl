#version 310 es
// rope_kv.glsl: the fused QKV epilogue: rotates q in place, and rotates k and writes it with v into the
// layer's KV cache, in one dispatch (rope.glsl + kv_write.glsl in one). Same table and knobs as those.
// One workgroup per (head of q then kv head, token). Bindings: 0 q, 1 k, 2 v, 3 table, 4/5 k/v cache.

#ifndef NH
#define NH 4
#endif
#ifndef NKV
#define NKV 4
#endif
#ifndef HD
#define HD 16
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
#ifndef CTX
#define CTX 64
#endif
#ifndef KV_F16
#define KV_F16 1
#endif
#ifndef KVBYTES
#define KVBYTES 2
#endif
#ifndef WG_SIZE
#define WG_SIZE 32
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) buffer Qb { float Q[]; };
layout(std430, binding = 1) readonly buffer Kb { float Kx[]; };
layout(std430, binding = 2) readonly buffer Vb { float Vx[]; };
layout(std430, binding = 3) readonly buffer Tb { float invf[]; };
layout(std430, binding = 4) writeonly buffer KCb { uint KC[]; };
layout(std430, binding = 5) writeonly buffer VCb { uint VC[]; };

#define KVDIM (NKV * HD)

// rotated element d of the k head starting at b (reads only the input, so no hazards)
float rot_k(uint b, uint d, float pos, uint toff)
{
    uint half_rot = uint(ROT) / 2u;
    if (d >= uint(ROT))
        return Kx[b + d];
#if NEOX
    uint i = d % half_rot;
    uint i0 = i, i1 = i + half_rot;
#else
    uint i = d / 2u;
    uint i0 = 2u * i, i1 = 2u * i + 1u;
#endif
    float a = pos * invf[toff + i];
    vec2 cs = rope_cs(a) * float(MSCALE);
        float c = cs.x, s = cs.y;
    float x0 = Kx[b + i0], x1 = Kx[b + i1];
    return d == i0 ? x0 * c - x1 * s : x1 * c + x0 * s;
}

void main()
{
    uint hh = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    uint p = u_pos0 + t;
    float pos = float(p);
    uint half_rot = uint(ROT) / 2u, toff = u_long_rope * half_rot;
    if (hh < uint(NH)) {
        uint b = (t * uint(NH) + hh) * uint(HD);
        for (uint i = gl_LocalInvocationID.x; i < half_rot; i += uint(WG_SIZE)) {
            float a = pos * invf[toff + i];
            vec2 cs = rope_cs(a) * float(MSCALE);
        float c = cs.x, s = cs.y;
#if NEOX
            uint i0 = i, i1 = i + half_rot;
#else
            uint i0 = 2u * i, i1 = 2u * i + 1u;
#endif
            float x0 = Q[b + i0], x1 = Q[b + i1];
            Q[b + i0] = x0 * c - x1 * s;
            Q[b + i1] = x1 * c + x0 * s;
        }
        return;
    }
    if (p >= uint(CTX))
        return;
    uint kvh = hh - uint(NH);
    uint b = (t * uint(NKV) + kvh) * uint(HD);
    for (uint j = gl_LocalInvocationID.x; j < uint(HD) / 2u; j += uint(WG_SIZE)) {
        uint d = 2u * j;
        vec2 k = vec2(rot_k(b, d, pos, toff), rot_k(b, d + 1u, pos, toff));
        vec2 v = vec2(Vx[b + d], Vx[b + d + 1u]);
#if KV_F16
        uint o = (p * uint(KVDIM) + kvh * uint(HD) + d) / 2u;
        KC[o] = packHalf2x16(k);
        VC[o] = packHalf2x16(v);
#else
        uint o = p * uint(KVDIM) + kvh * uint(HD) + d;
        KC[o] = floatBitsToUint(k.x);
        KC[o + 1u] = floatBitsToUint(k.y);
        VC[o] = floatBitsToUint(v.x);
        VC[o + 1u] = floatBitsToUint(v.y);
#endif
    }
}
