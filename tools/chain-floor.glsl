#version 310 es
// chain-floor.glsl (tools/chain-bench.c): the cheapest kernels a dispatch can run, to measure the launch +
// barrier floor. MODE 0: one invocation a workgroup adds 1 to its own y. MODE 1: every invocation also
// reads its share of a K-wide x (vec4 loads) and the workgroup reduces it in shared memory, as a GEMV's
// x side does.
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#ifndef MODE
#define MODE 0
#endif
#ifndef K
#define K 2048
#endif
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 3) buffer Yb { float Y[]; };
shared float red[WG_SIZE];
void main()
{
    uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupID.x;
#if MODE == 0
    if (lid == 0u)
        Y[wg] = Y[wg] + 1.0;
#else
    float s = 0.0;
    for (uint i = lid; i < uint(K) / 4u; i += uint(WG_SIZE))
        s += dot(X4[i], vec4(1.0));
    red[lid] = s;
    barrier();
    for (uint st = uint(WG_SIZE) / 2u; st > 0u; st >>= 1) {
        if (lid < st)
            red[lid] += red[lid + st];
        barrier();
    }
    if (lid == 0u)
        Y[wg] = red[0];
#endif
}
