#version 310 es
// moe_combine.glsl: prefill's weighted combine of the grouped experts' outputs into the residual:
// y[t][h] += sum_k w_k * out[t][k][h], slots in order, the gate weights w_k read from sel [T][2 * TOPK]
// (moe_route.glsl). Decode fuses this into moe_ffn.glsl stage 2; prefill cannot, because the grouped down
// projection runs experts in parallel and GLSL ES has no float atomics for the scatter-add.
// Bindings: 0 out [T][TOPK][HID] (read), 1 y (read and written), 2 sel (read).

#ifndef TOPK
#define TOPK 2
#endif
#ifndef HID
#define HID 64
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif

#include "common.inc.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Ob { float O[]; };
layout(std430, binding = 1) buffer Yb { float Y[]; };
layout(std430, binding = 2) readonly buffer Sb { uint Sel[]; };

void main()
{
    uint h = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (h >= uint(HID) || t >= u_ntok)
        return;
    float y = 0.0;
    for (uint k = 0u; k < uint(TOPK); k++)
        y += O[(t * uint(TOPK) + k) * uint(HID) + h] * uintBitsToFloat(Sel[t * uint(2 * TOPK) + uint(TOPK) + k]);
    Y[t * uint(HID) + h] += y;
}
