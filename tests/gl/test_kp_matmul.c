/* test_kp_matmul.c: matmul.glsl (main, row, tiled; plain and fused gate/up) for every weight format the
 * GEMV reads (f32, f16, q8_0, q4_k, q6_k, q5_0, q4_0, q5_k: GGUF byte layouts; every type is checked
 * element by element in test_kp_wdecode.c) against C on the CPU-dequantized
 * weights, at awkward shapes: 5 rows (not a multiple of ROWS_PER_WG), K = 512 (two Q4_K super-blocks,
 * more chunks than threads per row with WG 64 / 4 rows), 3 tokens (a partial tile of TM 8), a row
 * offset (u_row0) as used for split tensors, and one row. Tolerance 1e-4 relative: only summation order
 * differs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "gl_fixture.h"
#include "kt.h"
#include "model/quant.h"
#include "test.h"

static uint32_t seed = 99;
static float rnd(void)
{
    seed = seed * 1664525u + 1013904223u;
    return (float)((seed >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static void one(struct dg_gl *gl, enum dg_dtype dt, const char *entry_def, int N, int glu)
{
    enum { K = 512, T = 3 };
    float *w = malloc((size_t)N * K * 4), *u = malloc((size_t)N * K * 4), *wd = malloc((size_t)N * K * 4),
          *ud = malloc((size_t)N * K * 4), x[T * K], y[T * 8], ref[T * 8];
    uint64_t rb = dg_dtype_row_bytes(dt, K);
    uint8_t *wq = malloc(rb * (size_t)N), *uq = malloc(rb * (size_t)N);
    for (int i = 0; i < N * K; i++) {
        w[i] = rnd() * 0.5f;
        u[i] = rnd() * 0.5f;
    }
    for (int i = 0; i < T * K; i++)
        x[i] = rnd();
    if (dt == DG_DT_F32) {
        memcpy(wq, w, rb * (size_t)N);
        memcpy(uq, u, rb * (size_t)N);
    } else {
        CHECK_OK(dg_quantize(dt, w, wq, (uint64_t)N * K));
        CHECK_OK(dg_quantize(dt, u, uq, (uint64_t)N * K));
    }
    CHECK_OK(dg_dequantize(dt, wq, wd, (uint64_t)N * K));
    CHECK_OK(dg_dequantize(dt, uq, ud, (uint64_t)N * K));
    const uint32_t row0 = 2;
    double worst = 0, mx = 1;
    char ns[16], wts[8], rbs[16];
    snprintf(ns, sizeof ns, "%d", N + (int)row0);
    snprintf(wts, sizeof wts, "%d", (int)dt);
    snprintf(rbs, sizeof rbs, "%llu", (unsigned long long)rb);
    struct dg_define d[8] = {{"N", ns}, {"K", "512"}, {"WTYPE", wts}, {"WROWBYTES", rbs}, {"GLU", glu ? "1" : "0"},
                             {"ACT", "1"}};
    int nd = 6;
    if (entry_def)
        d[nd++] = (struct dg_define){entry_def, "1"};
    float yb[T * 8] = {0};
    struct kt_buf b[] = {{0, x, sizeof x, NULL}, {1, wq, rb * (size_t)N, NULL}, {3, yb, sizeof(float) * T * (N + row0), y},
                         {4, uq, rb * (size_t)N, NULL}};
    uint32_t ubo[4] = {0, T, 0, 0};
    unsigned gx = !entry_def ? (unsigned)(N + 3) / 4 : 1, gy = entry_def && !strcmp(entry_def, "MATMUL_TILED") ? 1 : T;
    if (!kt_run(gl, "matmul.glsl", d, nd, b, glu ? 4 : 3, ubo, gx, gy, 1, row0, (uint32_t)N))
        goto out;
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double g = 0, a = 0;
            for (int k = 0; k < K; k++) {
                g += (double)wd[n * K + k] * x[t * K + k];
                a += (double)ud[n * K + k] * x[t * K + k];
            }
            if (glu) {
                double c = 0.7978845608028654 * (g + 0.044715 * g * g * g);
                g = 0.5 * g * (1 + tanh(c)) * a;
            }
            ref[t * (N + row0) + row0 + n] = (float)g;
            mx = fmax(mx, fabs(g));
        }
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            int o = t * (N + (int)row0) + (int)row0 + n;
            worst = fmax(worst, fabs(y[o] - ref[o]));
        }
    CHECK_MSG(worst / mx < 1e-4, "%s %s N=%d glu=%d: worst %g (max %g)", dg_dtype_info(dt)->name,
              entry_def ? entry_def : "main", N, glu, worst, mx);
out:
    free(w);
    free(u);
    free(wd);
    free(ud);
    free(wq);
    free(uq);
}

DG_TEST(kp_matmul_formats_and_variants)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const enum dg_dtype dts[] = {DG_DT_F32, DG_DT_F16, DG_DT_Q8_0, DG_DT_Q4_K, DG_DT_Q6_K, DG_DT_Q5_0, DG_DT_Q4_0, DG_DT_Q5_K};
    const char *entries[] = {NULL, "GEMV_ROW", "MATMUL_TILED"};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++)
        for (int e = 0; e < 3; e++) {
            one(gl, dts[i], entries[e], 5, 0);
            if (e != 1)
                one(gl, dts[i], entries[e], 1, 1);
        }
}
