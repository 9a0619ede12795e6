#version 310 es
// dequant.glsl: W[N][K] in a quantized GPU format (any WTYPE of wdecode.inc.glsl with 32-element chunks)
// to f16 rows of K halves, so a prefill matmul can run its f16 kernel on a quantized model's weights (the
// executor's DQ knob on the tiled entries: src/pipe/exec.c). One invocation decodes one 32-element chunk
// with the same wchunk() the matmul kernels use, so the f16 values are the f32 dequantized weights
// rounded once to f16, and writes it as four uvec4s (64 bytes, next to its neighbour's chunk).
// Bindings: 1 W (read), 3 the f16 rows (written).

#ifndef N
#define N 64 // rows
#endif
#ifndef K
#define K 64 // elements per row
#endif
#ifndef WG_SIZE
#define WG_SIZE 256
#endif

#include "common.inc.glsl"
#ifndef WTYPE
#define WTYPE DT_Q8_0 // the executor always sets it; a default so the file compiles alone
#endif
#include "wdecode.inc.glsl"

#if WCH != 32
#error dequant.glsl: WTYPE must be a block format read in 32-element chunks
#endif

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 3) writeonly buffer Ob { uvec4 O4[]; };

#define NCH (uint(K) / 32u)

void main()
{
    // a dispatch wider than the per-dimension group limit runs as rows of groups in y
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * uint(WG_SIZE) + gl_LocalInvocationID.x;
    if (i >= uint(N) * NCH)
        return;
    uint row = i / NCH, c = i % NCH;
    float w[WCH];
    wchunk(0u, row * uint(WROWBYTES), c, w);
    uint o = i * 4u; // (row * K + c * 32) / 8 uvec4s
    for (uint j = 0u; j < 4u; j++)
        O4[o + j] = uvec4(packHalf2x16(vec2(w[8u * j], w[8u * j + 1u])), packHalf2x16(vec2(w[8u * j + 2u], w[8u * j + 3u])),
                          packHalf2x16(vec2(w[8u * j + 4u], w[8u * j + 5u])), packHalf2x16(vec2(w[8u * j + 6u], w[8u * j + 7u])));
}
