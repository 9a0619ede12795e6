#version 310 es
// argmax.glsl: greedy sampling: token[t] = index of the largest logits[t][*] (lowest index on ties).
// One workgroup per token. Bindings: 0 logits, 1 token (uint).
#ifndef N
#define N 64
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Lb { float L[]; };
layout(std430, binding = 1) writeonly buffer Tb { uint tok[]; };
shared float bv[WG_SIZE];
shared uint bi[WG_SIZE];
void main()
{
    uint lid = gl_LocalInvocationID.x, t = gl_WorkGroupID.y;
    float best = -3.402823e38;
    uint idx = 0xffffffffu;
    for (uint i = lid; i < uint(N); i += uint(WG_SIZE)) {
        float v = L[t * uint(N) + i];
        if (v > best) { // strided ascending: the first maximum seen has the lowest index
            best = v;
            idx = i;
        }
    }
    bv[lid] = best;
    bi[lid] = idx;
    WG_BARRIER();
    for (uint s = uint(WG_SIZE) / 2u; s > 0u; s >>= 1) {
        if (lid < s) {
            float o = bv[lid + s];
            uint oi = bi[lid + s];
            if (o > bv[lid] || (o == bv[lid] && oi < bi[lid])) {
                bv[lid] = o;
                bi[lid] = oi;
            }
        }
        WG_BARRIER();
    }
    if (lid == 0u)
        tok[t] = bi[0] == 0xffffffffu ? 0u : bi[0];
}
