// common.inc.glsl: what every kernel-path kernel shares: the per-token uniform block (updated once per
// token or batch, binding 0), the dtype codes of model/dtype.h, and the activation functions.

layout(std140, binding = 0) uniform Tok {
    uint u_pos0;      // position of the batch's first token
    uint u_ntok;      // tokens in the batch (T)
    uint u_long_rope; // 1: longrope uses its long factors (sequence longer than the original context)
    uint u_pad;
};

#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_Q8_0 3
#define DT_Q4_K 4
#define DT_Q6_K 5
#define DT_Q4_0 6
#define DT_Q4_1 7
#define DT_Q5_0 8
#define DT_Q5_1 9
#define DT_Q5_K 10
#define DT_MXFP4 11
// GPU-only layouts (docs/FORMAT.md, "GPU reading of 34- and 210-byte blocks"; built at upload by
// src/pipe/split_blocks.c for one-row-per-invocation GEMVs): the same Q8_0 / Q6_K numbers with scales split
// from quants so every load is an aligned uvec4. No model file stores these.
#define DT_Q8_0_SPLIT 64
#define DT_Q6_K_SPLIT 65

#define ACT_SILU 0
#define ACT_GELU_TANH 1
#define ACT_GELU 2

float act_silu(float x) { return x / (1.0 + exp(-x)); }

float act_gelu_tanh(float x)
{
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh written with exp so large |x| cannot overflow
    float u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    float e = exp(-2.0 * abs(u));
    float t = (1.0 - e) / (1.0 + e);
    return 0.5 * x * (1.0 + sign(u) * t);
}

// erf by Abramowitz-Stegun 7.1.26 is too coarse (1.5e-7 abs is fine, but it is relative error on small
// x that matters): use the series / continued form through exp of W. J. Cody's rational fit.
float erf_approx(float x)
{
    float a = abs(x);
    float t = 1.0 / (1.0 + 0.5 * a);
    float y = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
              t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
              t * (-0.82215223 + t * 0.17087277)))))))));
    return sign(x) * (1.0 - y);
}

float act_gelu(float x) { return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476)); }

float stable_tanh(float x)
{
    float e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// Workgroup barrier that also orders shared-memory accesses. GLES 3.1's barrier() alone let Mesa move a
// shared load across it (a second reduction read stale values), so every kernel uses this.
#define WG_BARRIER() \
    memoryBarrierShared(); \
    barrier()

// cos and sin of a rope angle. The angle (position x inverse frequency, rounded to float as transformers
// does) is first reduced to [-pi, pi] with a two-part 2*pi (Cody-Waite): llvmpipe's cos/sin lose
// accuracy on large arguments and the error grew with the position (1e-3 on logits at position 30).
vec2 rope_cs(float a)
{
    float k = floor(a * 0.15915494309189535 + 0.5);
    float r = (a - k * 6.28125) - k * 1.9353071795864769e-3;
    return vec2(cos(r), sin(r));
}
