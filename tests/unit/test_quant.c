/* test_quant.c: the CPU dequantizers against hand-built GGUF blocks, and quantize → dequantize error bounds
 * for every quantizer.
 *
 * Bounds and why:
 *   q8_0  |err| ≤ d/2 + 127·|d − f16(d)| ≤ 0.5625·d, d = amax/127: rounding to the nearest level, plus the
 *         f16 rounding of d (relative 2^-11) times the largest level.
 *   q4_0  |err| ≤ |d|·(1 + 8·2^-11), |d| = amax/8: the signed extreme maps to level −8 exactly, so the other
 *         side can clip from +8 to +7 (one step); interior values round to within |d|/2.
 *   q5_0  the same with 16 levels a side: |err| ≤ |d|·(1 + 16·2^-11), |d| = amax/16.
 *   q4_k, q5_k, q6_k: the scale search trades the largest error for the smallest weighted squared error, so
 *         no per-element bound in terms of the input alone holds; two checks instead: (1) every element
 *         decodes to the nearest value representable with its sub-block's stored (quantized) scale and min,
 *         i.e. the levels are optimal for the stored scales (within 1e-5 relative for float rounding);
 *         (2) relative RMSE on N(0,1) data with outliers below 0.100 (q4_k), 0.050 (q5_k), 0.027 (q6_k),
 *         10-20% above what this implementation measures (0.086, 0.043, 0.023), near ggml's figures. */
#include "../test.h"

#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "model/quant.h"

static double gauss(uint64_t *s)
{
    /* xorshift64* → two uniforms → Box-Muller; deterministic across platforms */
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
        u[i] = ((double)((*s * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static float *random_data(uint64_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    for (uint64_t i = 0; i < n; i++)
        x[i] = (float)gauss(&seed) * (i % 37 == 0 ? 4.0f : 1.0f); /* some outliers, as real weights have */
    return x;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

DG_TEST(quant_known_q8_0)
{
    uint8_t b[34];
    put16(b, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)(j * 8 - 128);
    float y[32];
    CHECK_OK(dg_dequantize(DG_DT_Q8_0, b, y, 32));
    CHECK(y[0] == -64.0f);
    CHECK(y[16] == 0.0f);
    CHECK(y[31] == 0.5f * 120);
}

DG_TEST(quant_known_q4_0_q4_1)
{
    uint8_t b[20];
    put16(b, 0x4000); /* d = 2 */
    for (int j = 0; j < 16; j++)
        b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    CHECK_OK(dg_dequantize(DG_DT_Q4_0, b, y, 32));
    CHECK(y[0] == 2.0f * (0 - 8));   /* low nibble of byte 0 */
    CHECK(y[5] == 2.0f * (5 - 8));
    CHECK(y[16] == 2.0f * (15 - 8)); /* high nibble of byte 0 */
    CHECK(y[31] == 2.0f * (0 - 8));
    put16(b, 0x3c00);                /* d = 1 */
    put16(b + 2, 0xbc00);            /* m = -1 */
    for (int j = 0; j < 16; j++)
        b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK_OK(dg_dequantize(DG_DT_Q4_1, b, y, 32));
    CHECK(y[3] == 3 - 1.0f);
    CHECK(y[19] == 12 - 1.0f);
}

DG_TEST(quant_known_q5_0_q5_1)
{
    uint8_t b[24] = {0};
    put16(b, 0x3c00); /* d = 1 */
    /* qh bit j = 5th bit of element j; set for elements 1 and 17 (high half of byte 1) */
    uint32_t qh = 1u << 1 | 1u << 17;
    memcpy(b + 2, &qh, 4);
    b[6 + 1] = 0x3 | 0x7 << 4; /* element 1 low nibble 3, element 17 low nibble 7 */
    float y[32];
    CHECK_OK(dg_dequantize(DG_DT_Q5_0, b, y, 32));
    CHECK(y[0] == -16.0f);
    CHECK(y[1] == (16 + 3) - 16.0f);
    CHECK(y[17] == (16 + 7) - 16.0f);
    CHECK(y[16] == -16.0f);
    memset(b, 0, sizeof b);
    put16(b, 0x3800);     /* d = 0.5 */
    put16(b + 2, 0x4000); /* m = 2 */
    memcpy(b + 4, &qh, 4);
    b[8 + 1] = 0x3 | 0x7 << 4;
    CHECK_OK(dg_dequantize(DG_DT_Q5_1, b, y, 32));
    CHECK(y[0] == 2.0f);
    CHECK(y[1] == 0.5f * 19 + 2);
    CHECK(y[17] == 0.5f * 23 + 2);
}

/* Packs 8 six-bit scales and mins the way GGUF's Q4_K/Q5_K define (written out bit by bit here, separately
 * from the quantizer's packer, so a shared mistake would not cancel out). */
static void k4_scales(uint8_t *q, const int *sc, const int *mn)
{
    memset(q, 0, 12);
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) & 3) << 6);
        q[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) & 3) << 6);
        q[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

DG_TEST(quant_known_q4_k)
{
    uint8_t b[144];
    int sc[8] = {1, 2, 3, 63, 17, 33, 48, 62}, mn[8] = {0, 5, 10, 15, 20, 40, 60, 63};
    put16(b, 0x3c00);     /* d = 1 */
    put16(b + 2, 0x3400); /* dmin = 0.25 */
    k4_scales(b + 4, sc, mn);
    for (int i = 0; i < 128; i++)
        b[16 + i] = (uint8_t)((i % 16) | ((i * 7) % 16) << 4);
    float y[256];
    CHECK_OK(dg_dequantize(DG_DT_Q4_K, b, y, 256));
    /* element e: 64-group g = e/64; within it, the first 32 are low nibbles of q[32g + l] (sub-block 2g),
     * the next 32 the high nibbles (sub-block 2g+1) */
    for (int e = 0; e < 256; e++) {
        int g = e / 64, l = e % 32, hi = (e % 64) >= 32, s = 2 * g + hi;
        int byte = b[16 + 32 * g + l], q = hi ? byte >> 4 : byte & 15;
        float want = 1.0f * sc[s] * q - 0.25f * mn[s];
        if (y[e] != want) {
            CHECK_MSG(0, "q4_k element %d: got %g want %g", e, y[e], want);
            break;
        }
    }
    CHECK(y[0] == 0.0f);                        /* sc 1, q 0, min 0 */
    CHECK(y[255] == 62.0f * ((127 * 7) % 16) - 0.25f * 63);
}

DG_TEST(quant_known_q5_k)
{
    uint8_t b[176];
    int sc[8] = {1, 2, 3, 4, 5, 6, 7, 8}, mn[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    put16(b, 0x3800);     /* d = 0.5 */
    put16(b + 2, 0x3c00); /* dmin = 1 */
    k4_scales(b + 4, sc, mn);
    for (int i = 0; i < 32; i++)
        b[16 + i] = (uint8_t)(i * 37); /* qh */
    for (int i = 0; i < 128; i++)
        b[48 + i] = (uint8_t)(i * 13);
    float y[256];
    CHECK_OK(dg_dequantize(DG_DT_Q5_K, b, y, 256));
    for (int e = 0; e < 256; e++) {
        int g = e / 64, l = e % 32, hi = (e % 64) >= 32, s = 2 * g + hi;
        int byte = b[48 + 32 * g + l], q = (hi ? byte >> 4 : byte & 15) | ((b[16 + l] >> s) & 1) << 4;
        float want = 0.5f * sc[s] * q - 1.0f * mn[s];
        if (y[e] != want) {
            CHECK_MSG(0, "q5_k element %d: got %g want %g", e, y[e], want);
            break;
        }
    }
}

DG_TEST(quant_known_q6_k)
{
    uint8_t b[210];
    for (int i = 0; i < 128; i++)
        b[i] = (uint8_t)(i * 29 + 3);
    for (int i = 0; i < 64; i++)
        b[128 + i] = (uint8_t)(i * 53 + 1);
    for (int i = 0; i < 16; i++)
        b[192 + i] = (uint8_t)(int8_t)(i * 9 - 70);
    put16(b + 208, 0x3400); /* d = 0.25, stored last */
    float y[256];
    CHECK_OK(dg_dequantize(DG_DT_Q6_K, b, y, 256));
    /* element e: half h = e/128, r = e%128, k = r/32, l = r%32; low 4 bits from ql[64h + l + 32(k&1)]
     * (low nibble for k < 2, high for k ≥ 2), top 2 bits from qh[32h + l] bits 2k; scale index e/16 */
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
        int lo = b[64 * h + l + 32 * (k & 1)];
        lo = k < 2 ? lo & 15 : lo >> 4;
        int top = (b[128 + 32 * h + l] >> (2 * k)) & 3;
        float want = 0.25f * (float)(int8_t)b[192 + e / 16] * (float)((lo | top << 4) - 32);
        if (y[e] != want) {
            CHECK_MSG(0, "q6_k element %d: got %g want %g", e, y[e], want);
            break;
        }
    }
}

DG_TEST(quant_known_mxfp4)
{
    /* every E2M1 code, at exponents from the smallest (0, a subnormal scale) to the largest */
    static const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    const int exps[] = {0, 1, 2, 100, 127, 128, 200, 254};
    for (size_t t = 0; t < sizeof exps / sizeof exps[0]; t++) {
        uint8_t b[17];
        b[0] = (uint8_t)exps[t];
        for (int j = 0; j < 16; j++)
            b[1 + j] = (uint8_t)(j | (15 - j) << 4);
        float y[32];
        CHECK_OK(dg_dequantize(DG_DT_MXFP4, b, y, 32));
        double scale = ldexp(1.0, exps[t] - 127); /* E8M0: 2^(e - 127) */
        for (int j = 0; j < 16; j++) {
            CHECK_MSG(y[j] == (float)(e2m1[j] * scale), "mxfp4 e=%d code %d: %g vs %g", exps[t], j, y[j],
                      e2m1[j] * scale);
            CHECK(y[j + 16] == (float)(e2m1[15 - j] * scale));
        }
    }
}

DG_TEST(quant_plain_roundtrip)
{
    float x[64];
    uint64_t s = 7;
    for (int i = 0; i < 64; i++)
        x[i] = (float)gauss(&s);
    uint8_t buf[256];
    float y[64];
    CHECK_OK(dg_quantize(DG_DT_F32, x, buf, 64));
    CHECK_OK(dg_dequantize(DG_DT_F32, buf, y, 64));
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK_OK(dg_quantize(DG_DT_F16, x, buf, 64));
    CHECK_OK(dg_dequantize(DG_DT_F16, buf, y, 64));
    for (int i = 0; i < 64; i++)
        CHECK(y[i] == dg_f16_to_f32(dg_f32_to_f16(x[i])));
    CHECK_OK(dg_quantize(DG_DT_BF16, x, buf, 64));
    CHECK_OK(dg_dequantize(DG_DT_BF16, buf, y, 64));
    for (int i = 0; i < 64; i++)
        CHECK(y[i] == dg_bf16_to_f32(dg_f32_to_bf16(x[i])));
}

/* For the legacy 32-element types: max error per block against the bound in the header comment. */
static void legacy_bound(enum dg_dtype dt, double levels, double bound_in_d)
{
    const uint64_t n = 32 * 2048;
    float *x = random_data(n, 11 + dt), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(dg_dtype_row_bytes(dt, n));
    CHECK_OK(dg_quantize(dt, x, q, n));
    CHECK_OK(dg_dequantize(dt, q, y, n));
    double worst = 0;
    for (uint64_t b = 0; b < n / 32; b++) {
        double amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmax(amax, fabs(x[32 * b + j]));
        double d = amax / levels;
        for (int j = 0; j < 32; j++) {
            double e = fabs(x[32 * b + j] - y[32 * b + j]);
            worst = fmax(worst, e / d);
            if (e > bound_in_d * d + 1e-7) {
                CHECK_MSG(0, "%s block %llu elem %d: |err| %g > %g·d (d %g)", dg_dtype_info(dt)->name,
                          (unsigned long long)b, j, e, bound_in_d, d);
                goto out;
            }
        }
    }
    printf("  %s: max |err| = %.3f d (bound %.3f d)\n", dg_dtype_info(dt)->name, worst, bound_in_d);
out:
    free(x), free(y), free(q);
}

DG_TEST(quant_bound_q8_0) { legacy_bound(DG_DT_Q8_0, 127, 0.5 + 127.0 / 2048); }
DG_TEST(quant_bound_q4_0) { legacy_bound(DG_DT_Q4_0, 8, 1 + 8.0 / 2048); }
DG_TEST(quant_bound_q5_0) { legacy_bound(DG_DT_Q5_0, 16, 1 + 16.0 / 2048); }

/* The representable values of one element of a k-quant block, read from the stored header. */
static void kq_grid(enum dg_dtype dt, const uint8_t *blk, int e, double *step, double *offset, int *lmin, int *lmax)
{
    if (dt == DG_DT_Q6_K) {
        double d = dg_f16_to_f32((uint16_t)(blk[208] | blk[209] << 8));
        *step = d * (int8_t)blk[192 + e / 16];
        *offset = 0;
        *lmin = -32, *lmax = 31;
        return;
    }
    /* decode scale/min of sub-block e/32 through the dequantizer itself would be circular: decode the
     * 6-bit fields here with the GGUF rule */
    const uint8_t *q = blk + 4;
    int j = e / 32, sc, mn;
    if (j < 4)
        sc = q[j] & 63, mn = q[j + 4] & 63;
    else
        sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4, mn = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    double d = dg_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)), dmin = dg_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
    *step = d * sc;
    *offset = -dmin * mn;
    *lmin = 0, *lmax = dt == DG_DT_Q4_K ? 15 : 31;
}

static void kquant_check(enum dg_dtype dt, double max_rel_rmse)
{
    const uint64_t n = 256 * 1024;
    float *x = random_data(n, 100 + dt), *y = malloc(n * sizeof *y);
    uint64_t bytes = dg_dtype_row_bytes(dt, n);
    uint8_t *q = malloc(bytes);
    CHECK_OK(dg_quantize_rows(dt, x, q, 1024, 256, 2)); /* the threaded driver must give the same bytes */
    uint8_t *q1 = malloc(bytes);
    CHECK_OK(dg_quantize(dt, x, q1, n));
    CHECK(memcmp(q, q1, bytes) == 0);
    CHECK_OK(dg_dequantize(dt, q, y, n));
    double se = 0, sx = 0;
    int bad = 0;
    uint32_t bb = dg_dtype_info(dt)->block_bytes;
    for (uint64_t i = 0; i < n; i++) {
        se += (x[i] - y[i]) * (double)(x[i] - y[i]);
        sx += (double)x[i] * x[i];
        double step, off;
        int lmin, lmax;
        kq_grid(dt, q + i / 256 * bb, (int)(i % 256), &step, &off, &lmin, &lmax);
        double best = INFINITY;
        for (int l = lmin; l <= lmax; l++)
            best = fmin(best, fabs(x[i] - (step * l + off)));
        double err = fabs(x[i] - y[i]);
        if (err > best + 1e-5 * (fabs(x[i]) + fabs(step) * 32 + fabs(off)) && bad++ < 3)
            CHECK_MSG(0, "%s element %llu: |err| %g but the stored scales allow %g", dg_dtype_info(dt)->name,
                      (unsigned long long)i, err, best);
    }
    double rel = sqrt(se / sx);
    printf("  %s: relative RMSE %.4f (bound %.3f)\n", dg_dtype_info(dt)->name, rel, max_rel_rmse);
    CHECK_MSG(rel <= max_rel_rmse, "%s relative RMSE %g > %g", dg_dtype_info(dt)->name, rel, max_rel_rmse);
    free(x), free(y), free(q), free(q1);
}

DG_TEST(quant_bound_q4_k) { kquant_check(DG_DT_Q4_K, 0.100); }
DG_TEST(quant_bound_q5_k) { kquant_check(DG_DT_Q5_K, 0.050); }
DG_TEST(quant_bound_q6_k) { kquant_check(DG_DT_Q6_K, 0.027); }

DG_TEST(quant_zero_and_constant_blocks)
{
    /* all-zero input must decode to exact zeros (no NaN from 0/0), a constant block close to the constant */
    enum dg_dtype ts[] = {DG_DT_Q8_0, DG_DT_Q4_0, DG_DT_Q5_0, DG_DT_Q4_K, DG_DT_Q5_K, DG_DT_Q6_K};
    float x[256], y[256];
    uint8_t q[512]; /* the largest: q8_0, 272 bytes for 256 elements */
    for (size_t t = 0; t < sizeof ts / sizeof ts[0]; t++) {
        memset(x, 0, sizeof x);
        CHECK_OK(dg_quantize(ts[t], x, q, 256));
        CHECK_OK(dg_dequantize(ts[t], q, y, 256));
        for (int i = 0; i < 256; i++)
            CHECK_MSG(y[i] == 0.0f, "%s zero input gives %g at %d", dg_dtype_info(ts[t])->name, y[i], i);
        for (int i = 0; i < 256; i++)
            x[i] = -0.75f;
        CHECK_OK(dg_quantize(ts[t], x, q, 256));
        CHECK_OK(dg_dequantize(ts[t], q, y, 256));
        for (int i = 0; i < 256; i++)
            CHECK_MSG(fabsf(y[i] + 0.75f) < 0.01f, "%s constant -0.75 gives %g", dg_dtype_info(ts[t])->name, y[i]);
    }
    x[3] = NAN;
    CHECK(dg_quantize(DG_DT_Q4_K, x, q, 256) == DG_E_FORMAT);
}
