#version 310 es
// l2-prefetch.glsl: a measurement kernel for tools/chain-bench.c (CB_PREFETCH), not shipped. It reads a
// weight range (and with HAS_U a second one) one word per 32-byte sector and throws the words away, so
// that the range is in the GPU's L2 cache when the GEMV that needs it runs. chain-bench issues it right
// after each GEMV with no barrier between, on the next copy's weights, to test whether the decode GEMVs
// wait on DRAM latency. On the H200 they do not (bench-results/2026-12-04-nvidia-h200-l2-prefetch.txt):
// prefetching made every GEMV slower and even L2-resident weights gained 0-20%, so the executor has no
// prefetch step. It changes no result: the sink is written only when u_key is non-zero and equals the
// words' sum (chain-bench sets 0).
// Bindings: 1 the weights (the same range the GEMV binds there), 4 the up weights (HAS_U), 2 the sink.

#ifndef WG_SIZE
#define WG_SIZE 256
#endif
#ifndef UNROLL
#define UNROLL 4 // loads a thread has in flight per loop trip
#endif
#ifndef HAS_U
#define HAS_U 0
#endif
#define SECTOR_WORDS 8u // 32 bytes: the unit the L2 fills

layout(local_size_x = WG_SIZE) in;
layout(std430, binding = 1) readonly buffer Wb { uint W[]; };
#if HAS_U
layout(std430, binding = 4) readonly buffer Ub { uint U[]; };
#endif
layout(std430, binding = 2) writeonly buffer Sb { uint Sink[]; };
layout(location = 0) uniform uint u_key;

// the sum of one word of each sector of a buffer of nw words, this invocation's share
#define TOUCH(BUF, nw, acc)                                                                               \
    for (uint i = gl_GlobalInvocationID.x * SECTOR_WORDS; i < (nw); i += stride * uint(UNROLL)) {         \
        for (uint u = 0u; u < uint(UNROLL); u++) {                                                        \
            uint j = i + u * stride;                                                                      \
            if (j < (nw))                                                                                 \
                acc += BUF[j];                                                                            \
        }                                                                                                 \
    }

void main()
{
    uint stride = gl_NumWorkGroups.x * uint(WG_SIZE) * SECTOR_WORDS;
    uint acc = 0u;
    uint nw = uint(W.length());
    TOUCH(W, nw, acc)
#if HAS_U
    uint nu = uint(U.length());
    TOUCH(U, nu, acc)
#endif
    // a data-dependent store the compiler cannot prove dead, which never happens at u_key 0
    if (u_key != 0u && acc == u_key)
        Sink[gl_GlobalInvocationID.x & 3u] = acc;
}
