#version 310 es
// kv_write.glsl: copies the batch's k and v rows into the layer's cache at positions u_pos0 + t. The
// cache is [CTX][KVDIM], f16 pairs in uints (KV_F16 1, the default) or f32 bits. Invocation per
// (element pair, token). Bindings: 0 k, 1 v, 2 k cache, 3 v cache.

#ifndef KVDIM
#define KVDIM 32 // kv_heads * head_dim (even)
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
#define WG_SIZE 64
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Kb { vec2 Kx[]; };
layout(std430, binding = 1) readonly buffer Vb { vec2 Vx[]; };
layout(std430, binding = 2) writeonly buffer KCb { uint KC[]; };
layout(std430, binding = 3) writeonly buffer VCb { uint VC[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    uint p = u_pos0 + t;
    if (i >= uint(KVDIM) / 2u || p >= uint(CTX))
        return;
    vec2 k = Kx[t * (uint(KVDIM) / 2u) + i], v = Vx[t * (uint(KVDIM) / 2u) + i];
#if KV_F16
    uint o = p * (uint(KVDIM) / 2u) + i;
    KC[o] = packHalf2x16(k);
    VC[o] = packHalf2x16(v);
#else
    uint o = p * uint(KVDIM) + 2u * i;
    KC[o] = floatBitsToUint(k.x);
    KC[o + 1u] = floatBitsToUint(k.y);
    VC[o] = floatBitsToUint(v.x);
    VC[o + 1u] = floatBitsToUint(v.y);
#endif
}
