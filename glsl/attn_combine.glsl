#version 310 es
// attn_combine.glsl: merges the NSPLIT partial results of split attention for each (head, token):
// out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s. Bindings: 0 part, 1 out.
#ifndef NH
#define NH 4
#endif
#ifndef HD
#define HD 16
#endif
#ifndef NSPLIT
#define NSPLIT 8
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Pb { float P[]; };
layout(std430, binding = 1) writeonly buffer Ob { float O[]; };
void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    uint pb = (t * uint(NH) + h) * uint(NSPLIT) * uint(HD + 2);
    float M = -3.0e38;
    for (uint s = 0u; s < uint(NSPLIT); s++)
        M = max(M, P[pb + s * uint(HD + 2)]);
    float L = 0.0;
    for (uint s = 0u; s < uint(NSPLIT); s++) {
        uint b = pb + s * uint(HD + 2);
        L += P[b + 1u] * exp(P[b] - M);
    }
    float inv = L > 0.0 ? 1.0 / L : 0.0;
    for (uint d = gl_LocalInvocationID.x; d < uint(HD); d += uint(WG_SIZE)) {
        float a = 0.0;
        for (uint s = 0u; s < uint(NSPLIT); s++) {
            uint b = pb + s * uint(HD + 2);
            a += P[b + 2u + d] * exp(P[b] - M);
        }
        O[(t * uint(NH) + h) * uint(HD) + d] = a * inv;
    }
}
