#version 310 es
// moe_group.glsl: prefill's expert-major grouping. From the routing buffer sel [T][2 * TOPK] written by
// moe_route.glsl it builds, per expert, the list of (token, slot) pairs that chose it, so the grouped
// expert kernels (moe_ffn.glsl MOE_GROUPED) read each expert's rows once for a batch of its tokens.
// Output layout (uint): groups[e] = count of expert e (0..NE-1), then groups[NE + e * T + j] = pair
// t * TOPK + k, j < count, in token order (a token picks an expert at most once, so T entries suffice).
// One invocation per expert scans all pairs: no atomics, so the order, and with it every sum the expert
// kernels compute, is the same on every run. The ids stay on the GPU; the CPU never sees them.
// Ids are clamped to NE - 1 as the expert kernels clamp them.
// Bindings: 0 sel (read), 1 groups (written).

#ifndef NE
#define NE 8
#endif
#ifndef TOPK
#define TOPK 2
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Sb { uint Sel[]; };
layout(std430, binding = 1) writeonly buffer Gb { uint G[]; };

void main()
{
    uint e = gl_GlobalInvocationID.x;
    if (e >= uint(NE))
        return;
    uint n = 0u, base = uint(NE) + e * u_ntok;
    for (uint t = 0u; t < u_ntok; t++)
        for (uint k = 0u; k < uint(TOPK); k++)
            if (min(Sel[t * uint(2 * TOPK) + k], uint(NE - 1)) == e) {
                G[base + n] = t * uint(TOPK) + k;
                n++;
            }
    G[e] = n;
}
