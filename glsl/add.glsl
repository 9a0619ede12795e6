#version 310 es
// add.glsl: residual add y[t][i] += x[t][i]. Bindings: 0 x, 1 y.
#ifndef N
#define N 64
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Xb { float X[]; };
layout(std430, binding = 1) buffer Yb { float Y[]; };
void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i < uint(N))
        Y[gl_WorkGroupID.y * uint(N) + i] += X[gl_WorkGroupID.y * uint(N) + i];
}
