#version 310 es
// softcap.glsl: x = CAP * tanh(x / CAP) (Gemma 2 final logit soft-capping). Binding 0 x.
#ifndef N
#define N 64
#endif
#ifndef CAP
#define CAP 30.0
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) buffer Xb { float X[]; };
void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i < uint(N)) {
        uint o = gl_WorkGroupID.y * uint(N) + i;
        X[o] = float(CAP) * stable_tanh(X[o] / float(CAP));
    }
}
