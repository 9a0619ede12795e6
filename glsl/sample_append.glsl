#version 310 es
// sample_append.glsl: the stop-flag kernel for ids chosen elsewhere (e.g. the kernel path's own argmax):
// one invocation reads the id at T[u_out_index], appends it to the history and raises the stop flag
// when it is an EOS id (sample_emit.inc.glsl). Bindings: 1 history, 4 token slot.
layout(local_size_x = 1) in;
layout(std430, binding = 1) buffer Hb { uint H[]; };
layout(std430, binding = 4) buffer Tb { uint T[]; };

#include "sample_common.inc.glsl"
#include "sample_emit.inc.glsl"

void main()
{
    if (u_out_index != S_INVALID)
        s_emit(T[u_out_index], false);
}
