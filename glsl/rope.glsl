#version 310 es
// rope.glsl: rotary position embedding of q and k in place. The table holds the inverse frequency of
// each rotary pair, with every scaling (linear, llama3, yarn, longrope, freq_factors) already folded in
// by the executor: [short ROT/2 | long ROT/2] (the halves are equal except for longrope; u_long_rope
// picks one). MSCALE multiplies cos and sin (yarn / longrope attention factor). NEOX pairs (i, i+ROT/2)
// as Hugging Face does; NEOX 0 pairs (2i, 2i+1). Dimensions past ROT are left alone (partial rotary).
// One workgroup per (head of q then k, token). Bindings: 0 q, 1 k, 2 table.

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
#ifndef WG_SIZE
#define WG_SIZE 32
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) buffer Qb { float Q[]; };
layout(std430, binding = 1) buffer Kb { float Kx[]; };
layout(std430, binding = 2) readonly buffer Tb { float invf[]; };

void main()
{
    uint hh = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    float pos = float(u_pos0 + t);
    uint half_rot = uint(ROT) / 2u, toff = u_long_rope * half_rot;
    for (uint i = gl_LocalInvocationID.x; i < half_rot; i += uint(WG_SIZE)) {
        float a = pos * invf[toff + i];
        vec2 cs = rope_cs(a) * float(MSCALE);
        float c = cs.x, s = cs.y;
#if NEOX
        uint i0 = i, i1 = i + half_rot;
#else
        uint i0 = 2u * i, i1 = 2u * i + 1u;
#endif
        if (hh < uint(NH)) {
            uint b = (t * uint(NH) + hh) * uint(HD);
            float x0 = Q[b + i0], x1 = Q[b + i1];
            Q[b + i0] = x0 * c - x1 * s;
            Q[b + i1] = x1 * c + x0 * s;
        } else {
            uint b = (t * uint(NKV) + (hh - uint(NH))) * uint(HD);
            float x0 = Kx[b + i0], x1 = Kx[b + i1];
            Kx[b + i0] = x0 * c - x1 * s;
            Kx[b + i1] = x1 * c + x0 * s;
        }
    }
}
