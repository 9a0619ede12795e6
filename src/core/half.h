/* half.h: IEEE binary16 and bfloat16 conversions on the CPU (round to nearest even), shared by the
 * readers, quantizers, CPU reference and tests so there is one definition of each rounding. */
#ifndef DG_CORE_HALF_H
#define DG_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline float dg_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t dg_bits_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float dg_bf16_to_f32(uint16_t h) { return dg_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t dg_f32_to_bf16(float f)
{
    uint32_t u = dg_bits_from_f32(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float dg_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0)
            return dg_f32_from_bits(sign);
        /* subnormal: normalize */
        float v = (float)man * (1.0f / 16777216.0f); /* man * 2^-24 */
        return sign ? -v : v;
    }
    if (exp == 31)
        return dg_f32_from_bits(sign | 0x7f800000u | (man << 13));
    return dg_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t dg_f32_to_f16(float f)
{
    uint32_t u = dg_bits_from_f32(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below the smallest normal: subnormal or zero, via float arithmetic */
        float af = dg_f32_from_bits(a);
        /* adding 0.5 (2^-1) aligns the mantissa so that the low bits hold round(af * 2^24) */
        float t = af + 0.5f;
        return (uint16_t)(sign | (dg_bits_from_f32(t) - 0x3f000000u));
    }
    uint32_t mant_odd = (a >> 13) & 1u;
    a += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (a >> 13));
}

#endif
