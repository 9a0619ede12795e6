#version 310 es
// glu.glsl: out = act(gate) * up (SwiGLU, GeGLU-tanh, GeGLU-erf). Bindings: 0 gate, 1 up, 2 out.
#ifndef N
#define N 64
#endif
#ifndef ACT
#define ACT 0
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Gb { float G[]; };
layout(std430, binding = 1) readonly buffer Ub { float U[]; };
layout(std430, binding = 2) writeonly buffer Ob { float O[]; };
void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i >= uint(N))
        return;
    uint o = gl_WorkGroupID.y * uint(N) + i;
    float g = G[o];
#if ACT == ACT_GELU_TANH
    g = act_gelu_tanh(g);
#elif ACT == ACT_GELU
    g = act_gelu(g);
#else
    g = act_silu(g);
#endif
    O[o] = g * U[o];
}
