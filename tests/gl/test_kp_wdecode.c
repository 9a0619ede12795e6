/* test_kp_wdecode.c: the GPU weight decoders of glsl/wdecode.inc.glsl against the CPU reference
 * (dg_dequantize, model/quant.c) for every tensor type a GGUF file may hold: F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K and MXFP4.
 *
 * The weights are random blocks (every quant, nibble and high bit pattern occurs; the f16 scale fields are
 * set to finite values of both signs, so no block decodes to inf/NaN), read through matmul.glsl's GEMV_ROW
 * with x = the identity (T = K tokens): y[t][n] = sum_k W[n][k] x[t][k] = W[n][t], i.e. the GPU's decoded
 * matrix. The sum adds exact zeros to the one product, so what remains is the decoder's own arithmetic:
 * d * q + m may be contracted into an fma on the GPU where C rounds twice, one rounding of a product of
 * magnitude <= |d q| + |m|. Tolerance: 2^-22 (two f32 ulps) of that magnitude bound per element, taken
 * as 1e-6 of the largest |value| of the matrix (the bound over all elements). Types without inexact
 * arithmetic (F32, F16, BF16, Q8_0, Q4_0, Q5_0) must match exactly: one product d * q, rounded once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "gl_fixture.h"
#include "kt.h"
#include "model/quant.h"
#include "test.h"

static uint32_t rs = 12345;
static uint32_t rnd32(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 17;
    rs ^= rs << 5;
    return rs;
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = dg_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* a scale of either sign between 2^-12 and 2^-4 (ordinary weight scales) */
static float rnd_scale(void)
{
    float s = ldexpf(1.0f + (float)(rnd32() & 1023) / 1024.0f, -4 - (int)(rnd32() % 9));
    return rnd32() & 1 ? -s : s;
}

/* Fills `n` elements of random `dt` data. */
static void random_weights(enum dg_dtype dt, uint8_t *dst, uint64_t n)
{
    const struct dg_dtype_info *info = dg_dtype_info(dt);
    uint64_t bytes = dg_dtype_row_bytes(dt, n);
    for (uint64_t i = 0; i < bytes; i++)
        dst[i] = (uint8_t)rnd32();
    uint64_t nb = n / info->block_elems;
    for (uint64_t b = 0; b < nb; b++) {
        uint8_t *p = dst + b * info->block_bytes;
        switch (dt) {
        case DG_DT_F32:
            ((float *)dst)[b] = (float)((int32_t)rnd32()) / 2147483648.0f;
            break;
        case DG_DT_F16:
            put_f16(p, (float)((int32_t)rnd32()) / 2147483648.0f);
            break;
        case DG_DT_BF16: {
            uint16_t h = dg_f32_to_bf16((float)((int32_t)rnd32()) / 2147483648.0f);
            p[0] = (uint8_t)h;
            p[1] = (uint8_t)(h >> 8);
            break;
        }
        case DG_DT_Q8_0: case DG_DT_Q4_0: case DG_DT_Q5_0:
            put_f16(p, rnd_scale());
            break;
        case DG_DT_Q4_1: case DG_DT_Q5_1: case DG_DT_Q4_K: case DG_DT_Q5_K:
            put_f16(p, rnd_scale());     /* d */
            put_f16(p + 2, rnd_scale()); /* m (Q4_1/Q5_1) or dmin (K types) */
            break;
        case DG_DT_Q6_K:
            put_f16(p + 208, rnd_scale());
            break;
        case DG_DT_MXFP4:
            p[0] = (uint8_t)(118 + rnd32() % 16); /* 2^-10 .. 2^5: normal results on every GPU */
            break;
        default:
            break;
        }
    }
}

static void check_type(struct dg_gl *gl, enum dg_dtype dt)
{
    const bool kq = dg_dtype_info(dt)->block_elems == 256;
    const int N = 5, K = kq ? 512 : 64; /* two super-blocks per row for the K types */
    uint64_t rb = dg_dtype_row_bytes(dt, (uint64_t)K);
    uint64_t wbytes = rb * (uint64_t)N + 16; /* kernels may read a word past a row's end */
    uint8_t *w = calloc(1, wbytes);
    float *ref = malloc(sizeof(float) * (size_t)N * K), *x = calloc((size_t)K * K, sizeof(float)),
          *y = malloc(sizeof(float) * (size_t)K * N);
    if (!w || !ref || !x || !y) {
        dg_test_fail(__FILE__, __LINE__, "out of memory");
        goto out;
    }
    random_weights(dt, w, (uint64_t)N * K);
    CHECK_OK(dg_dequantize(dt, w, ref, (uint64_t)N * K));
    for (int t = 0; t < K; t++)
        x[(size_t)t * K + t] = 1.0f;
    char ns[16], ks[16], wts[8], rbs[24];
    snprintf(ns, sizeof ns, "%d", N);
    snprintf(ks, sizeof ks, "%d", K);
    snprintf(wts, sizeof wts, "%d", (int)dt);
    snprintf(rbs, sizeof rbs, "%llu", (unsigned long long)rb);
    struct dg_define d[] = {{"N", ns}, {"K", ks}, {"WTYPE", wts}, {"WROWBYTES", rbs}, {"GEMV_ROW", "1"}};
    struct kt_buf bufs[] = {{0, x, sizeof(float) * (uint64_t)K * K, NULL}, {1, w, wbytes, NULL},
                            {3, NULL, sizeof(float) * (uint64_t)K * N, y}};
    uint32_t ubo[4] = {0, (uint32_t)K, 0, 0};
    if (!kt_run(gl, "matmul.glsl", d, 5, bufs, 3, ubo, 1, (unsigned)K, 1, 0, (uint32_t)N))
        goto out;
    double mx = 0;
    for (int i = 0; i < N * K; i++)
        mx = fmax(mx, fabs(ref[i]));
    const bool exact = dt == DG_DT_F32 || dt == DG_DT_F16 || dt == DG_DT_BF16 || dt == DG_DT_Q8_0 ||
                       dt == DG_DT_Q4_0 || dt == DG_DT_Q5_0 || dt == DG_DT_MXFP4;
    const double tol = exact ? 0.0 : 1e-6 * mx;
    int bad = 0;
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double e = fabs((double)y[(size_t)k * N + n] - ref[(size_t)n * K + k]);
            worst = fmax(worst, e);
            if (e > tol && bad++ < 4)
                printf("    %s row %d col %d: gpu %.9g cpu %.9g\n", dg_dtype_info(dt)->name, n, k,
                       (double)y[(size_t)k * N + n], (double)ref[(size_t)n * K + k]);
        }
    CHECK_MSG(bad == 0, "%s: %d of %d values differ from dg_dequantize (worst %g, tolerance %g)",
              dg_dtype_info(dt)->name, bad, N * K, worst, tol);
    CHECK_MSG(mx > 0, "%s: the random weights decoded to all zeros", dg_dtype_info(dt)->name);
out:
    free(w);
    free(ref);
    free(x);
    free(y);
}

DG_TEST(kp_wdecode_every_gguf_type)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    static const enum dg_dtype types[] = {DG_DT_F32,  DG_DT_F16,  DG_DT_BF16, DG_DT_Q8_0, DG_DT_Q4_0, DG_DT_Q4_1,
                                          DG_DT_Q5_0, DG_DT_Q5_1, DG_DT_Q4_K, DG_DT_Q5_K, DG_DT_Q6_K, DG_DT_MXFP4};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        check_type(gl, types[i]);
}

/* glsl/dequant.glsl (the DQ prefill path's weights to f16) for every type it takes (block formats read in
 * 32-element chunks), on the same random blocks as above: each element must be dg_dequantize's value
 * rounded to f16. Tolerance per element: 2^-10 of |value| (one f16 ulp: packHalf2x16 may round to nearest
 * or toward zero, the spec leaves it to the implementation), plus 2^-24 (f16's subnormal spacing, for the
 * K types' d * q - m near zero), plus the decoder's own 1e-6 of the largest |value| (see above). */
static void check_dequant(struct dg_gl *gl, enum dg_dtype dt)
{
    const bool kq = dg_dtype_info(dt)->block_elems == 256;
    const int N = 7, K = kq ? 512 : 96;
    uint64_t rb = dg_dtype_row_bytes(dt, (uint64_t)K);
    uint64_t wbytes = rb * (uint64_t)N + 16;
    uint8_t *w = calloc(1, wbytes);
    float *ref = malloc(sizeof(float) * (size_t)N * K);
    uint16_t *h = malloc(2 * (size_t)N * K);
    if (!w || !ref || !h) {
        dg_test_fail(__FILE__, __LINE__, "out of memory");
        goto out;
    }
    random_weights(dt, w, (uint64_t)N * K);
    CHECK_OK(dg_dequantize(dt, w, ref, (uint64_t)N * K));
    char ns[16], ks[16], wts[8], rbs[24];
    snprintf(ns, sizeof ns, "%d", N);
    snprintf(ks, sizeof ks, "%d", K);
    snprintf(wts, sizeof wts, "%d", (int)dt);
    snprintf(rbs, sizeof rbs, "%llu", (unsigned long long)rb);
    struct dg_define d[] = {{"N", ns}, {"K", ks}, {"WTYPE", wts}, {"WROWBYTES", rbs}, {"WG_SIZE", "16"}};
    struct kt_buf bufs[] = {{1, w, wbytes, NULL}, {3, NULL, 2 * (uint64_t)N * K, h}};
    uint32_t ubo[4] = {0, 1, 0, 0};
    unsigned groups = (unsigned)((N * (K / 32) + 15) / 16); /* 16-invocation groups: the last one partly idle */
    if (!kt_run(gl, "dequant.glsl", d, 5, bufs, 2, ubo, groups, 1, 1, 0, (uint32_t)N))
        goto out;
    double mx = 0;
    for (int i = 0; i < N * K; i++)
        mx = fmax(mx, fabs(ref[i]));
    int bad = 0;
    for (int i = 0; i < N * K; i++) {
        double g = dg_f16_to_f32(h[i]), r = ref[i];
        double tol = ldexp(fabs(r), -10) + ldexp(1.0, -24) + 1e-6 * mx;
        if (fabs(g - r) > tol && bad++ < 4)
            printf("    dequant %s element %d (row %d): gpu %.9g cpu %.9g\n", dg_dtype_info(dt)->name, i, i / K, g, r);
    }
    CHECK_MSG(bad == 0, "dequant %s: %d of %d elements are not the CPU value in f16", dg_dtype_info(dt)->name, bad,
              N * K);
    CHECK_MSG(mx > 0, "%s: the random weights decoded to all zeros", dg_dtype_info(dt)->name);
out:
    free(w);
    free(ref);
    free(h);
}

DG_TEST(kp_dequant_f16_every_block_type)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    static const enum dg_dtype types[] = {DG_DT_Q8_0, DG_DT_Q4_0, DG_DT_Q4_1, DG_DT_Q5_0, DG_DT_Q5_1,
                                          DG_DT_Q4_K, DG_DT_Q5_K, DG_DT_Q6_K, DG_DT_MXFP4};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        check_dequant(gl, types[i]);
}
