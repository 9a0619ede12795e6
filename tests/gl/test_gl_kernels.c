/* test_gl_kernels.c: glsl/reduce_sum.glsl and glsl/gemv_f16.glsl against C references. */
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "gl_fixture.h"
#include "test.h"

static uint32_t rng_state = 12345;
static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

/* Sums n floats on the GPU in two passes of reduce_sum; returns NAN on failure. */
static float gpu_sum(struct dg_gl *gl, const float *x, uint32_t n, int wg)
{
    char wgs[16];
    snprintf(wgs, sizeof wgs, "%d", wg);
    struct dg_define d[] = {{"WG_SIZE", wgs}};
    GLuint prog;
    if (dg_gl_program(gl, "reduce_sum.glsl", d, 1, &prog) != DG_OK) {
        CHECK_MSG(0, "reduce_sum: %s", dg_last_error());
        return NAN;
    }
    uint32_t groups = n / (uint32_t)wg / 4 + 1;
    if (groups > 256)
        groups = 256;
    struct dg_buffer *in = NULL, *part = NULL, *out = NULL;
    float r = NAN;
    CHECK_OK(dg_buffer_alloc(gl, n * sizeof(float), x, &in));
    CHECK_OK(dg_buffer_alloc(gl, groups * sizeof(float), NULL, &part));
    CHECK_OK(dg_buffer_alloc(gl, sizeof(float), NULL, &out));
    if (in && part && out) {
        glUseProgram(prog);
        CHECK_OK(dg_buffer_bind(gl, 0, in, 0, in->size));
        CHECK_OK(dg_buffer_bind(gl, 1, part, 0, part->size));
        glUniform1ui(0, n);
        struct dg_dispatch_info info = {"reduce_sum", "reduce", (uint64_t)n * 4};
        dg_gl_dispatch(gl, groups, 1, 1, &info);
        dg_gl_barrier(gl);
        CHECK_OK(dg_buffer_bind(gl, 0, part, 0, part->size));
        CHECK_OK(dg_buffer_bind(gl, 1, out, 0, out->size));
        glUniform1ui(0, groups);
        dg_gl_dispatch(gl, 1, 1, 1, &info);
        CHECK_OK(dg_gl_check("reduce_sum dispatch"));
        CHECK_OK(dg_buffer_download(gl, out, 0, sizeof r, &r));
    }
    dg_buffer_release(gl, in);
    dg_buffer_release(gl, part);
    dg_buffer_release(gl, out);
    return r;
}

DG_TEST(gl_reduce_sum_matches_c)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    static const uint32_t sizes[] = {1, 63, 64, 1000, 65537};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint32_t n = sizes[s];
        float *x = malloc(n * sizeof *x);
        double ref = 0, mag = 0;
        for (uint32_t i = 0; i < n; i++) {
            x[i] = frand();
            ref += x[i];
            mag += fabs(x[i]);
        }
        for (int wg = 8; wg <= 256; wg *= 8) {
            float got = gpu_sum(gl, x, n, wg);
            /* f32 accumulation in a different order: error bounded by ~n*eps*sum|x| in the worst case;
             * a tree keeps it near log2(n)*eps*sum|x|. Allow 1e-5 * sum|x|. */
            CHECK_MSG(fabs(got - ref) <= 1e-5 * mag + 1e-6, "n=%u wg=%d: gpu %.7g, c %.7g", n, wg, got, ref);
        }
        free(x);
    }
}

/* Packs a rows x K f32 matrix to f16 pairs in uints, rows padded to whole uints. */
static uint32_t *pack_f16(const float *w, uint32_t rows, uint32_t K, float *rounded)
{
    uint32_t per = (K + 1) / 2;
    uint32_t *p = calloc((size_t)rows * per, 4);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t k = 0; k < K; k++) {
            uint16_t h = dg_f32_to_f16(w[(size_t)r * K + k]);
            rounded[(size_t)r * K + k] = dg_f16_to_f32(h);
            p[(size_t)r * per + k / 2] |= (uint32_t)h << (16 * (k & 1));
        }
    return p;
}

/* Runs gemv_f16 over W (rows x K), binding row ranges from `parts`; fills y. */
static void gpu_gemv(struct dg_gl *gl, const uint32_t *wp, const float *x, uint32_t rows, uint32_t K, int vec4,
                     const struct dg_row_range *parts, int n_parts, float *y)
{
    char v[4];
    snprintf(v, sizeof v, "%d", vec4);
    struct dg_define d[] = {{"VEC4", v}, {"WG_SIZE", "32"}};
    GLuint prog;
    CHECK_OK(dg_gl_program(gl, "gemv_f16.glsl", d, 2, &prog));
    uint64_t row_bytes = (uint64_t)(K + 1) / 2 * 4;
    struct dg_buffer *bw = NULL, *bx = NULL, *by = NULL;
    CHECK_OK(dg_buffer_alloc(gl, rows * row_bytes, wp, &bw));
    CHECK_OK(dg_buffer_alloc(gl, K * sizeof(float), x, &bx));
    CHECK_OK(dg_buffer_alloc(gl, rows * sizeof(float), NULL, &by));
    if (bw && bx && by && prog) {
        glUseProgram(prog);
        CHECK_OK(dg_buffer_bind(gl, 1, bx, 0, bx->size));
        CHECK_OK(dg_buffer_bind(gl, 2, by, 0, by->size));
        glUniform1ui(0, K);
        for (int i = 0; i < n_parts; i++) {
            CHECK_OK(dg_buffer_bind(gl, 0, bw, parts[i].first_row * row_bytes, parts[i].n_rows * row_bytes));
            glUniform1ui(1, (GLuint)parts[i].n_rows);
            glUniform1ui(2, (GLuint)parts[i].first_row);
            GLuint gx = parts[i].n_rows < 65535 ? (GLuint)parts[i].n_rows : 65535;
            GLuint gy = (GLuint)((parts[i].n_rows + 65534) / 65535);
            struct dg_dispatch_info info = {"gemv_f16", "matmul", parts[i].n_rows * row_bytes + K * 4};
            dg_gl_dispatch(gl, gx, gy, 1, &info);
        }
        dg_gl_barrier(gl);
        CHECK_OK(dg_gl_check("gemv dispatch"));
        CHECK_OK(dg_buffer_download(gl, by, 0, rows * sizeof(float), y));
    }
    dg_buffer_release(gl, bw);
    dg_buffer_release(gl, bx);
    dg_buffer_release(gl, by);
}

static void check_gemv(struct dg_gl *gl, uint32_t rows, uint32_t K, int vec4, int64_t max_block)
{
    float *w = malloc((size_t)rows * K * sizeof *w), *wr = malloc((size_t)rows * K * sizeof *w);
    float *x = malloc(K * sizeof *x), *y = calloc(rows, sizeof *y);
    for (size_t i = 0; i < (size_t)rows * K; i++)
        w[i] = frand();
    for (uint32_t i = 0; i < K; i++)
        x[i] = frand();
    uint32_t *wp = pack_f16(w, rows, K, wr);
    dg_gl_set_max_ssbo_block(gl, max_block);
    struct dg_row_range parts[64];
    int n = dg_buffer_split_rows(gl, rows, (uint64_t)(K + 1) / 2 * 4, parts, 64);
    CHECK_MSG(n > 0, "split: %s", dg_last_error());
    if (max_block > 0)
        CHECK_MSG(n > 1, "rows=%u K=%u with a %lld-byte limit should need more than one part", rows, K,
                  (long long)max_block);
    if (n > 0)
        gpu_gemv(gl, wp, x, rows, K, vec4, parts, n, y);
    dg_gl_set_max_ssbo_block(gl, 0);
    int bad = 0;
    for (uint32_t r = 0; r < rows && bad < 5; r++) {
        double ref = 0, mag = 0;
        for (uint32_t k = 0; k < K; k++) {
            ref += (double)wr[(size_t)r * K + k] * x[k];
            mag += fabs((double)wr[(size_t)r * K + k] * x[k]);
        }
        /* Weights are exactly the f16-rounded values, so only f32 summation order differs: 1e-5 * sum|wx|. */
        if (!(fabs(y[r] - ref) <= 1e-5 * mag + 1e-6)) {
            CHECK_MSG(0, "gemv rows=%u K=%u vec4=%d row %u: gpu %.7g, c %.7g", rows, K, vec4, r, y[r], ref);
            bad++;
        }
    }
    free(w), free(wr), free(x), free(y), free(wp);
}

DG_TEST(gl_gemv_f16_matches_c)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    check_gemv(gl, 1, 1, 0, 0);
    check_gemv(gl, 7, 33, 0, 0);   /* odd K: a padded half at each row's end */
    check_gemv(gl, 64, 256, 0, 0);
    check_gemv(gl, 64, 256, 1, 0); /* uvec4 loads */
    check_gemv(gl, 3, 1000, 1, 0);
}

DG_TEST(gl_gemv_split_rows_over_lowered_block_limit)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* 300 rows x 512 halves = 1024 bytes a row, 300 KiB in all: five parts under a 64 KiB limit. */
    check_gemv(gl, 300, 512, 1, 64 << 10);
    /* Rows of 34 bytes (K=17): parts must still start 16-byte aligned (multiples of 8 rows). */
    check_gemv(gl, 5000, 17, 0, 64 << 10);
}
