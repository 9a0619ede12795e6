#version 310 es
#if defined(IMG) && IMG != 0
#extension GL_EXT_texture_buffer : require
#endif
// bandwidth_read.glsl: the read-bandwidth probe behind `bench`'s roofline. Each workgroup streams one
// contiguous span of uvec4 words (consecutive invocations read consecutive 16-byte words, so every load
// is coalesced) and writes the wrapping uint sum of its span, so the driver cannot drop a load and the
// host can check the result. The reduction is a shared-memory tree: it runs once per SPAN words and is
// noise next to the loads. The words are read from an SSBO or, with IMG, through a texture-buffer image
// (the kernels' other read path: llvmpipe runs SSBO loads lane by lane and image loads as vector fetches).
// Bindings: 0 = data[n] (uvec4 SSBO, read; with IMG: image unit 0, an rgba32ui view of n texels),
// 1 = sums[] (uint SSBO, written at out_offset + workgroup).
// Uniform locations: 0 = n (uvec4 words in the bound range or view), 1 = out_offset.

// Knobs:
#ifndef WG_SIZE
#define WG_SIZE 256 // invocations per workgroup; a power of two
#endif
#ifndef SPAN
#define SPAN 4096 // uvec4 words per workgroup (64 KiB); a multiple of 4 * WG_SIZE keeps the loop unrolled
#endif
#ifndef IMG
#define IMG 0 // 1: read the data with imageLoad from a uimageBuffer (GL_EXT_texture_buffer), not the SSBO
#endif

#if (WG_SIZE & (WG_SIZE - 1)) != 0
#error WG_SIZE must be a power of two
#endif

layout(local_size_x = WG_SIZE) in;
#if IMG
layout(rgba32ui, binding = 0) readonly uniform highp uimageBuffer data_img;
uvec4 word(uint i) { return imageLoad(data_img, int(i)); }
#else
layout(std430, binding = 0) readonly buffer Data { uvec4 data[]; };
uvec4 word(uint i) { return data[i]; }
#endif
layout(std430, binding = 1) writeonly buffer Sums { uint sums[]; };
layout(location = 0) uniform uint n;
layout(location = 1) uniform uint out_offset;

shared uint partial[WG_SIZE];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint base = gl_WorkGroupID.x * uint(SPAN);
    uint end = min(base + uint(SPAN), n);
    const uint W = uint(WG_SIZE);
    // Four independent accumulators keep four loads in flight per invocation.
    uvec4 a0 = uvec4(0u), a1 = uvec4(0u), a2 = uvec4(0u), a3 = uvec4(0u);
    uint i = base + tid;
    for (; i + 3u * W < end; i += 4u * W) {
        a0 += word(i);
        a1 += word(i + W);
        a2 += word(i + 2u * W);
        a3 += word(i + 3u * W);
    }
    for (; i < end; i += W)
        a0 += word(i);
    uvec4 a = (a0 + a1) + (a2 + a3);
    partial[tid] = (a.x + a.y) + (a.z + a.w);
    memoryBarrierShared();
    barrier();
    for (uint k = W / 2u; k > 0u; k >>= 1) {
        if (tid < k)
            partial[tid] += partial[tid + k];
        memoryBarrierShared();
        barrier();
    }
    if (tid == 0u)
        sums[out_offset + gl_WorkGroupID.x] = partial[0];
}
