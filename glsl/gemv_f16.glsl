#version 310 es
// gemv_f16.glsl: y[out_row0 + r] = sum_k W[r][k] * x[k] for r in [0, n_rows): W is f16, stored as pairs
// in uints (packHalf2x16 order, low half first), each row padded to a whole uint ((K+1)/2 uints a row).
// One workgroup per row; its invocations stride over the row, then reduce in shared memory.
// Bindings: 0 = W rows (read), 1 = x[K] (f32, read), 2 = y (f32, written).
// Uniforms: location 0 = K, 1 = n_rows, 2 = out_row0 (first output row, for tensors split into ranges).
// Dispatch: (min(n_rows, 65535), ceil(n_rows / 65535), 1) workgroups.

// Knobs:
#ifndef WG_SIZE
#define WG_SIZE 64 // invocations per row; a power of two
#endif
#ifndef VEC4
#define VEC4 0 // 1: read W as uvec4 (8 halves a load); needs K % 8 == 0 so every row starts 16-byte aligned
#endif

#if (WG_SIZE & (WG_SIZE - 1)) != 0
#error WG_SIZE must be a power of two
#endif

layout(local_size_x = WG_SIZE) in;
#if VEC4
layout(std430, binding = 0) readonly buffer W { uvec4 w[]; };
#else
layout(std430, binding = 0) readonly buffer W { uint w[]; };
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(location = 0) uniform uint K;
layout(location = 1) uniform uint n_rows;
layout(location = 2) uniform uint out_row0;

shared float s[WG_SIZE];

void main()
{
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= n_rows)
        return; // the whole workgroup leaves together, so the barriers below stay uniform
    uint tid = gl_LocalInvocationID.x;
    float acc = 0.0;
#if VEC4
    uint per_row = K / 8u;
    uint base = row * per_row;
    for (uint i = tid; i < per_row; i += uint(WG_SIZE)) {
        uvec4 q = w[base + i];
        uint k = i * 8u;
        vec2 a = unpackHalf2x16(q.x), b = unpackHalf2x16(q.y), c = unpackHalf2x16(q.z), d = unpackHalf2x16(q.w);
        acc += a.x * x[k] + a.y * x[k + 1u] + b.x * x[k + 2u] + b.y * x[k + 3u] + c.x * x[k + 4u] +
               c.y * x[k + 5u] + d.x * x[k + 6u] + d.y * x[k + 7u];
    }
#else
    uint per_row = (K + 1u) / 2u;
    uint base = row * per_row;
    for (uint i = tid; i < per_row; i += uint(WG_SIZE)) {
        vec2 h = unpackHalf2x16(w[base + i]);
        uint k = i * 2u;
        acc += h.x * x[k];
        if (k + 1u < K)
            acc += h.y * x[k + 1u];
    }
#endif
    s[tid] = acc;
    barrier();
    for (uint k = uint(WG_SIZE) / 2u; k > 0u; k >>= 1) {
        if (tid < k)
            s[tid] += s[tid + k];
        barrier();
    }
    if (tid == 0u)
        y[out_row0 + row] = s[0];
}
