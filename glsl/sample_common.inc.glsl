// sample_common.inc.glsl: what the sampler kernels (sample_*.glsl) share: the token order (value
// descending, id ascending on ties), the counter-based RNG (Philox4x32-10 keyed by the 64-bit seed,
// counter = (draw, token id)), the Gumbel noise drawn from it, and the history-buffer layout with the
// append + stop-flag step. docs/SAMPLING.md describes the semantics; src/pipe/sampler_ref.c is the
// CPU reference that must agree with this file.

#ifndef WG_BARRIER
// barrier() alone let Mesa move a shared load across it; order shared memory explicitly.
#define WG_BARRIER() \
    memoryBarrierShared(); \
    barrier()
#endif

#define S_INVALID 0xffffffffu
#define S_NEG_INF uintBitsToFloat(0xff800000u)

// History buffer (binding 1), uints: [0] ids in the history, [1] draws so far (the RNG counter),
// [2] history index of the first stop id sampled (S_INVALID = none), [3] capacity (ids), [4 + i] ids.
#define H_N 0u
#define H_DRAWS 1u
#define H_STOP 2u
#define H_CAP 3u
#define H_IDS 4u

// True when (av, ai) comes before (bv, bi): larger value first, lower id on equal values.
bool s_before(float av, uint ai, float bv, uint bi)
{
    return av > bv || (av == bv && ai < bi);
}

// NaN logits never win: they count as -inf.
float s_clean(float x)
{
    return isnan(x) ? S_NEG_INF : x;
}

uvec4 s_philox(uvec4 c, uvec2 k)
{
    for (int r = 0; r < 10; r++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c.x, hi0, lo0);
        umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
        c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k += uvec2(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// Gumbel(0,1) noise for token `id` at draw `draw`: -log(-log(u)), u in (0,1) with 24 bits.
float s_gumbel(uvec2 seed, uint draw, uint id)
{
    uint r = s_philox(uvec4(draw, id, 0x73616d70u, 0u), seed).x;
    float u = (float(r >> 8) + 0.5) * 5.9604644775390625e-8;
    return -log(-log(u));
}
