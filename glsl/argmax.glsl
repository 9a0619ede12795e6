#version 310 es
// argmax.glsl: greedy sampling: token[t] = index of the largest logits[t][*] (lowest index on ties).
// One workgroup per token (a vocabulary is read in a few microseconds by one big workgroup; the
// two-dispatch alternative costs a dependent dispatch more). Each invocation scans a strided slice
// (vec4 loads when N % 4 == 0), then the workgroup reduces (value, index) pairs: subgroup max/min and
// one shared-memory round with HAS_SUBGROUP, a shared-memory tree without.
// Bindings: 0 logits, 1 token (uint).
#ifndef N
#define N 64
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Lb { float L[]; };
layout(std430, binding = 0) readonly buffer L4b { vec4 L4[]; };
layout(std430, binding = 1) writeonly buffer Tb { uint tok[]; };
shared float bv[WG_SIZE];
shared uint bi[WG_SIZE];

// (v, i) beats (bestv, besti): larger value, or the same value at a lower index
bool better(float v, uint i, float bestv, uint besti) { return v > bestv || (v == bestv && i < besti); }

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
void main()
{
    uint lid = gl_LocalInvocationID.x, t = gl_WorkGroupID.y;
    float best = -3.402823e38;
    uint idx = 0xffffffffu;
#if (N % 4) == 0
    uint b4 = t * uint(N / 4);
    for (uint i = lid; i < uint(N / 4); i += uint(WG_SIZE)) {
        vec4 v = L4[b4 + i];
        for (uint c = 0u; c < 4u; c++)
            if (v[c] > best) { // ascending within the slice: the first maximum seen has the lowest index
                best = v[c];
                idx = 4u * i + c;
            }
    }
#else
    for (uint i = lid; i < uint(N); i += uint(WG_SIZE)) {
        float v = L[t * uint(N) + i];
        if (v > best) {
            best = v;
            idx = i;
        }
    }
#endif
#if WG_SUBGROUPS
    float sm = subgroupMax(best);
    uint si = subgroupMin(best == sm ? idx : 0xffffffffu);
    uint sg = lid / uint(SUBGROUP_SIZE);
    if (subgroupElect()) {
        bv[sg] = sm;
        bi[sg] = si;
    }
    WG_BARRIER();
    if (lid == 0u) {
        float b = bv[0];
        uint bx = bi[0];
        for (uint s = 1u; s < uint(WG_SIZE / SUBGROUP_SIZE); s++)
            if (better(bv[s], bi[s], b, bx)) {
                b = bv[s];
                bx = bi[s];
            }
        tok[t] = bx == 0xffffffffu ? 0u : bx;
    }
#else
    bv[lid] = best;
    bi[lid] = idx;
    WG_BARRIER();
    for (uint s = uint(WG_SIZE) / 2u; s > 0u; s >>= 1) {
        if (lid < s && better(bv[lid + s], bi[lid + s], bv[lid], bi[lid])) {
            bv[lid] = bv[lid + s];
            bi[lid] = bi[lid + s];
        }
        WG_BARRIER();
    }
    if (lid == 0u)
        tok[t] = bi[0] == 0xffffffffu ? 0u : bi[0];
#endif
}
