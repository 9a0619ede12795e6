#version 310 es
// embed.glsl: out[t][i] = table[ids[t]][i] * SCALE, for any weight format of wdecode.inc.glsl (the table may
// be the tied, quantized LM head). Invocation per (element, token). A table split by rows is dispatched
// once per range (uniforms u_row0, u_nrows); tokens outside the range are left to the other dispatches.
// Bindings: 0 ids (uint), 1 table, 2 out (f32).

#ifndef DIM
#define DIM 64
#endif
#ifndef SCALE
#define SCALE 1.0
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

#include "common.inc.glsl"
#include "wdecode.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Ib { uint ids[]; };
layout(std430, binding = 2) writeonly buffer Ob { float O[]; };
layout(location = 0) uniform uint u_row0;
layout(location = 1) uniform uint u_nrows;

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (i >= uint(DIM))
        return;
    uint id = ids[t];
    if (id < u_row0 || id - u_row0 >= u_nrows)
        return;
    float w[WCH];
    wchunk(0u, (id - u_row0) * uint(WROWBYTES), i / uint(WCH), w);
    O[t * uint(DIM) + i] = w[i % uint(WCH)] * float(SCALE);
}
