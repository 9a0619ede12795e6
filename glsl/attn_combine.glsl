#version 310 es
// attn_combine.glsl: merges the NSPLIT partial results of split attention for each (head, token):
// out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s. Bindings: 0 part, 1 out.
#ifndef NH
#define NH 4
#endif
#ifndef HD
#define HD 16
#endif
#ifndef NSPLIT
#define NSPLIT 8
#endif
#ifndef WG_SIZE
#define WG_SIZE 64
#endif
#include "common.inc.glsl"
layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 0) readonly buffer Pb { float P[]; };
layout(std430, binding = 1) writeonly buffer Ob { float O[]; };
#include "attn_combine.inc.glsl"
void main() { combine_partials(gl_WorkGroupID.y, gl_WorkGroupID.x); }
