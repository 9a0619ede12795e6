#version 310 es
// sample_penalty.glsl: repetition, frequency and presence penalties over the last u_last_n ids of the
// history, applied in place to the logits (llama.cpp's rule: for each distinct id t in the window with
// count c: logit /= r if logit > 0 else logit *= r; then logit -= c * freq + presence). One invocation
// per window position; the first occurrence of an id in the window applies it, so each id is changed
// once. The window is O(last_n^2) work, bounded by the sampler's DG_SAMPLER_MAX_LAST_N.
// Bindings: 0 logits (f32, element u_lbase + id), 1 history (sample_common.inc.glsl).

// Knobs:
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) buffer Lb { float L[]; };
layout(std430, binding = 1) readonly buffer Hb { uint H[]; };

uniform uint u_n;     // vocabulary size
uniform uint u_lbase;
uniform uint u_last_n;
uniform float u_repeat;
uniform float u_freq;
uniform float u_presence;

#include "sample_common.inc.glsl"

void main()
{
    uint nh = H[H_N];
    uint w = min(nh, u_last_n);
    uint start = nh - w;
    uint j = gl_GlobalInvocationID.x;
    if (j >= w)
        return;
    uint p = start + j;
    uint t = H[H_IDS + p];
    if (t >= u_n)
        return;
    for (uint q = start; q < p; q++)
        if (H[H_IDS + q] == t)
            return;
    uint c = 1u;
    for (uint q = p + 1u; q < nh; q++)
        if (H[H_IDS + q] == t)
            c++;
    float x = L[u_lbase + t];
    if (x <= 0.0)
        x *= u_repeat;
    else
        x /= u_repeat;
    x -= float(c) * u_freq + u_presence;
    L[u_lbase + t] = x;
}
