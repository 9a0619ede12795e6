/* test_kp_norm.c: rmsnorm.glsl (plain, Gemma, LayerNorm+bias, q/k-norm rows, accumulate) and
 * add_rmsnorm.glsl against C, with DIM not a multiple of the workgroup. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gl_fixture.h"
#include "kt.h"
#include "test.h"

static uint32_t seed = 7;
static float rnd(void)
{
    seed = seed * 1664525u + 1013904223u;
    return (float)((seed >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static void c_norm(const float *x, const float *w, const float *b, int dim, bool gemma, bool ln, float *y)
{
    double mean = 0, s2 = 0;
    if (ln) {
        for (int i = 0; i < dim; i++)
            mean += x[i];
        mean /= dim;
    }
    for (int i = 0; i < dim; i++)
        s2 += (x[i] - mean) * (x[i] - mean);
    double inv = 1.0 / sqrt(s2 / dim + 1e-6);
    for (int i = 0; i < dim; i++)
        y[i] = (float)((x[i] - mean) * inv * (gemma ? 1.0 + w[i] : w[i]) + (b ? b[i] : 0));
}

DG_TEST(kp_rmsnorm_variants)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    enum { DIM = 72, ROWS = 3, T = 2 };
    float x[T * ROWS * DIM], w[DIM], bias[DIM], y[T * ROWS * DIM], ref[T * ROWS * DIM];
    for (int i = 0; i < T * ROWS * DIM; i++)
        x[i] = rnd() * 3;
    for (int i = 0; i < DIM; i++) {
        w[i] = rnd();
        bias[i] = rnd() * 0.1f;
    }
    for (int v = 0; v < 4; v++) {
        bool gemma = v == 1, ln = v == 2, acc = v == 3;
        struct dg_define d[] = {{"DIM", "72"}, {"ROWS", "3"}, {"EPS", "1e-6"}, {"GEMMA", gemma ? "1" : "0"},
                                {"LAYERNORM", ln ? "1" : "0"}, {"HAS_BIAS", ln ? "1" : "0"},
                                {"ACCUMULATE", acc ? "1" : "0"}};
        float y0[T * ROWS * DIM];
        for (int i = 0; i < T * ROWS * DIM; i++)
            y0[i] = acc ? 0.5f : 0;
        struct kt_buf b[] = {{0, x, sizeof x, NULL}, {1, w, sizeof w, NULL}, {2, bias, sizeof bias, NULL},
                             {3, y0, sizeof y0, y}};
        uint32_t ubo[4] = {0, T, 0, 0};
        if (!kt_run(gl, "rmsnorm.glsl", d, 7, b, 4, ubo, ROWS, T, 1, 0, 0))
            return;
        for (int r = 0; r < T * ROWS; r++)
            c_norm(x + r * DIM, w, ln ? bias : NULL, DIM, gemma, ln, ref + r * DIM);
        double worst = 0;
        for (int i = 0; i < T * ROWS * DIM; i++)
            worst = fmax(worst, fabs(y[i] - (ref[i] + (acc ? 0.5f : 0))));
        CHECK_MSG(worst < 1e-5, "variant %d: worst %g", v, worst);
    }
}

DG_TEST(kp_add_rmsnorm)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    enum { DIM = 72, T = 3 };
    float x[T * DIM], r0[T * DIM], wa[DIM], wb[DIM], r[T * DIM], o[T * DIM];
    for (int i = 0; i < T * DIM; i++) {
        x[i] = rnd() * 2;
        r0[i] = rnd() * 4;
    }
    for (int i = 0; i < DIM; i++) {
        wa[i] = rnd();
        wb[i] = rnd();
    }
    for (int hasa = 0; hasa < 2; hasa++) {
        struct dg_define d[] = {{"DIM", "72"}, {"EPS", "1e-6"}, {"GEMMA", "1"}, {"HAS_NORM_A", hasa ? "1" : "0"}};
        struct kt_buf b[] = {{0, x, sizeof x, NULL}, {1, wa, sizeof wa, NULL}, {2, r0, sizeof r0, r},
                             {3, wb, sizeof wb, NULL}, {4, NULL, sizeof o, o}};
        uint32_t ubo[4] = {0, T, 0, 0};
        if (!kt_run(gl, "add_rmsnorm.glsl", d, 4, b, 5, ubo, 1, T, 1, 0, 0))
            return;
        double worst = 0;
        for (int t = 0; t < T; t++) {
            float na[DIM], rr[DIM], ob[DIM];
            c_norm(x + t * DIM, wa, NULL, DIM, true, false, na);
            for (int i = 0; i < DIM; i++)
                rr[i] = r0[t * DIM + i] + (hasa ? na[i] : x[t * DIM + i]);
            c_norm(rr, wb, NULL, DIM, true, false, ob);
            for (int i = 0; i < DIM; i++) {
                worst = fmax(worst, fabs(rr[i] - r[t * DIM + i]));
                worst = fmax(worst, fabs(ob[i] - o[t * DIM + i]));
            }
        }
        CHECK_MSG(worst < 1e-5, "HAS_NORM_A %d: worst %g", hasa, worst);
    }
}
