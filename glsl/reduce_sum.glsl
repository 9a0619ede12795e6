#version 310 es
// reduce_sum.glsl: sums n floats into one partial sum per workgroup: a grid-stride loop per invocation,
// then a shared-memory tree. Dispatch it again over the partials (n = number of workgroups) to finish.
// Bindings: 0 = x[n] (f32, read), 1 = partial[workgroups] (f32, written). Uniform location 0: n.

// Knobs:
#ifndef WG_SIZE
#define WG_SIZE 64 // invocations per workgroup; a power of two (small is fastest on llvmpipe)
#endif

#if (WG_SIZE & (WG_SIZE - 1)) != 0
#error WG_SIZE must be a power of two
#endif

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer In { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float partial[]; };
layout(location = 0) uniform uint n;

shared float s[WG_SIZE];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint stride = gl_NumWorkGroups.x * uint(WG_SIZE);
    float acc = 0.0;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += stride)
        acc += x[i];
    s[tid] = acc;
    barrier();
    for (uint k = uint(WG_SIZE) / 2u; k > 0u; k >>= 1) {
        if (tid < k)
            s[tid] += s[tid + k];
        barrier();
    }
    if (tid == 0u)
        partial[gl_WorkGroupID.x] = s[0];
}
