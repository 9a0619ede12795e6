/* quant.c: CPU dequantizers for every dtype, following GGUF/ggml's block definitions byte for byte.
 * These are the reference the GPU dequant kernels are tested against, so they favour clarity over speed:
 * each block type is decoded exactly as ggml's dequantize_row_* formulas define it. */
#include "model/quant.h"

#include <string.h>

#include "core/half.h"

static inline float f16_at(const uint8_t *p) { return dg_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* Q8_0: f16 d | int8 q[32];  y = d * q */
static void deq_q8_0(const uint8_t *b, float *y)
{
    float d = f16_at(b);
    for (int j = 0; j < 32; j++)
        y[j] = d * (float)(int8_t)b[2 + j];
}

/* Q4_0: f16 d | 16 bytes; low nibbles are elements 0..15, high nibbles 16..31; y = d * (q - 8) */
static void deq_q4_0(const uint8_t *b, float *y)
{
    float d = f16_at(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0x0f) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

/* Q4_1: f16 d | f16 m | 16 bytes;  y = d * q + m */
static void deq_q4_1(const uint8_t *b, float *y)
{
    float d = f16_at(b), m = f16_at(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b[4 + j] & 0x0f) + m;
        y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
    }
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Q5_0: f16 d | u32 qh (bit j = 5th bit of element j) | 16 nibble bytes;  y = d * (q - 16) */
static void deq_q5_0(const uint8_t *b, float *y)
{
    float d = f16_at(b);
    uint32_t qh = le32(b + 2);
    for (int j = 0; j < 16; j++) {
        int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
        y[j] = d * (float)(((b[6 + j] & 0x0f) | h0 << 4) - 16);
        y[j + 16] = d * (float)(((b[6 + j] >> 4) | h1 << 4) - 16);
    }
}

/* Q5_1: f16 d | f16 m | u32 qh | 16 nibble bytes;  y = d * q + m */
static void deq_q5_1(const uint8_t *b, float *y)
{
    float d = f16_at(b), m = f16_at(b + 2);
    uint32_t qh = le32(b + 4);
    for (int j = 0; j < 16; j++) {
        int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
        y[j] = d * (float)((b[8 + j] & 0x0f) | h0 << 4) + m;
        y[j + 16] = d * (float)((b[8 + j] >> 4) | h1 << 4) + m;
    }
}

/* The 12 scale bytes of Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit mins (ggml's get_scale_min_k4):
 * sub-blocks 0..3 use the low 6 bits of bytes 0..3 (scale) and 4..7 (min); sub-blocks 4..7 take their
 * low 4 bits from bytes 8..11 and their top 2 bits from the top bits of bytes 0..3 / 4..7. */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: f16 d | f16 dmin | 12 scale bytes | 128 bytes. Each 64 elements share 32 bytes: low nibbles are
 * sub-block 2i, high nibbles sub-block 2i+1.  y = d * sc * q - dmin * m */
static void deq_q4_k(const uint8_t *b, float *y)
{
    float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int g = 0; g < 4; g++) {
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * g, scales, &sc0, &m0);
        scale_min_k4(2 * g + 1, scales, &sc1, &m1);
        float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            y[64 * g + l] = d0 * (float)(q[32 * g + l] & 0x0f) - mm0;
            y[64 * g + 32 + l] = d1 * (float)(q[32 * g + l] >> 4) - mm1;
        }
    }
}

/* Q5_K: f16 d | f16 dmin | 12 scale bytes | 32 qh bytes | 128 ql bytes. Element l of sub-block s takes its
 * 5th bit from bit s of qh[l].  y = d * sc * q - dmin * m */
static void deq_q5_k(const uint8_t *b, float *y)
{
    float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    for (int g = 0; g < 4; g++) {
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * g, scales, &sc0, &m0);
        scale_min_k4(2 * g + 1, scales, &sc1, &m1);
        float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            int h0 = (qh[l] >> (2 * g)) & 1, h1 = (qh[l] >> (2 * g + 1)) & 1;
            y[64 * g + l] = d0 * (float)((ql[32 * g + l] & 0x0f) | h0 << 4) - mm0;
            y[64 * g + 32 + l] = d1 * (float)((ql[32 * g + l] >> 4) | h1 << 4) - mm1;
        }
    }
}

/* Q6_K: 128 ql bytes | 64 qh bytes | 16 int8 scales | f16 d. Each half (128 elements) uses 64 ql and
 * 32 qh bytes: element l + 32k (k = 0..3) takes low 4 bits from ql[l] / ql[l+32] (low nibble for k = 0, 1,
 * high for k = 2, 3) and its top 2 bits from qh[l] bits 2k..2k+1; scales are per 16 elements.
 * y = d * scale * (q - 32) */
static void deq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16_at(b + 208);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/* E2M1 code → value, doubled so that it is an integer (ggml's kvalues_mxfp4); the E8M0 scale is halved to
 * compensate (2^(e - 128)). */
static const int8_t mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

float dg_e8m0_to_f32_half(uint8_t e)
{
    /* 2^(e-128): e = 0 and 1 are f32 subnormals (ggml's GGML_E8M0_TO_FP32_HALF) */
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    return dg_f32_from_bits(bits);
}

/* MXFP4: u8 E8M0 exponent | 16 bytes of E2M1 codes (low nibble element j, high nibble element j + 16). */
static void deq_mxfp4(const uint8_t *b, float *y)
{
    float d = dg_e8m0_to_f32_half(b[0]);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)mxfp4_values[b[1 + j] & 0x0f];
        y[j + 16] = d * (float)mxfp4_values[b[1 + j] >> 4];
    }
}

dg_status dg_dequantize(enum dg_dtype dt, const void *src, float *dst, uint64_t n)
{
    const struct dg_dtype_info *info = dg_dtype_info(dt);
    if (!info)
        return dg_fail(DG_E_UNSUPPORTED, "dequantize: unknown dtype %d", (int)dt);
    if (n % info->block_elems)
        return dg_fail(DG_E_INTERNAL, "dequantize %s: %llu elements is not a multiple of the block size %u",
                       info->name, (unsigned long long)n, info->block_elems);
    const uint8_t *s = src;
    switch (dt) {
    case DG_DT_F32:
        memcpy(dst, src, n * 4);
        return DG_OK;
    case DG_DT_F16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = dg_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return DG_OK;
    case DG_DT_BF16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = dg_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return DG_OK;
    case DG_DT_I32:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = (float)(int32_t)le32(s + 4 * i);
        return DG_OK;
    default:
        break;
    }
    void (*fn)(const uint8_t *, float *) = NULL;
    switch (dt) {
    case DG_DT_Q8_0: fn = deq_q8_0; break;
    case DG_DT_Q4_0: fn = deq_q4_0; break;
    case DG_DT_Q4_1: fn = deq_q4_1; break;
    case DG_DT_Q5_0: fn = deq_q5_0; break;
    case DG_DT_Q5_1: fn = deq_q5_1; break;
    case DG_DT_Q4_K: fn = deq_q4_k; break;
    case DG_DT_Q5_K: fn = deq_q5_k; break;
    case DG_DT_Q6_K: fn = deq_q6_k; break;
    case DG_DT_MXFP4: fn = deq_mxfp4; break;
    default:
        return dg_fail(DG_E_UNSUPPORTED, "dequantize: no dequantizer for dtype %s", info->name);
    }
    uint64_t nb = n / info->block_elems;
    for (uint64_t i = 0; i < nb; i++)
        fn(s + i * info->block_bytes, dst + i * info->block_elems);
    return DG_OK;
}
