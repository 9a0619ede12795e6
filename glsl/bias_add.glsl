#version 310 es
// bias_add.glsl: y[t][i] += bias[i]. Bindings: 0 y, 1 bias.
#ifndef N
#define N 64
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) buffer Yb { float Y[]; };
layout(std430, binding = 1) readonly buffer Bb { float Bias[]; };
void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i < uint(N))
        Y[gl_WorkGroupID.y * uint(N) + i] += Bias[i];
}
