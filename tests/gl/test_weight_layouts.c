/* test_weight_layouts.c: the two GPU layouts of Q8_0 (34-byte) and Q6_K (210-byte) blocks of docs/FORMAT.md.
 * matmul.glsl reads the same weights in GGUF bytes and in the split layout the executor uploads for
 * one-row-per-invocation GEMVs (scales apart from quants, every load an aligned uvec4: DT_Q8_0_SPLIT /
 * DT_Q6_K_SPLIT of wdecode.inc.glsl, built by pipe/split_blocks.c, including rows whose last group holds
 * fewer than 8 blocks); both must give C's answer (tolerance 1e-4 of the row's largest |y|: only the f32
 * summation order differs). With DG_LAYOUT_BENCH=ROWSxCOLS set (tools/layout-bench.sh), the test also
 * times both layouts at that shape with the profiler and prints the figures FORMAT.md quotes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gl_fixture.h"
#include "model/dtype.h"
#include "model/quant.h"
#include "pipe/split_blocks.h"
#include "test.h"

/* The H16 knob setup gives the main entry (NULL: none), and x with runs of 16 in the thousands and near
 * 1e-4 (real models' FFN inputs), for gl_weight_layouts_q6k_split_h16 */
static const char *layout_h16;
static bool layout_outliers;

struct layout_run {
    GLuint prog;
    struct dg_buffer *x, *w, *y, *ubo;
    unsigned gx;
};

static bool setup(struct dg_gl *gl, struct layout_run *r, int wtype, uint64_t rowbytes, const void *w, int64_t N,
                  int64_t K, const float *x, const char *entry, const char *wg, const char *rows_per_wg,
                  const char *rpt)
{
    char ns[24], ks[24], wts[8], rbs[24];
    snprintf(ns, sizeof ns, "%lld", (long long)N);
    snprintf(ks, sizeof ks, "%lld", (long long)K);
    snprintf(wts, sizeof wts, "%d", wtype);
    snprintf(rbs, sizeof rbs, "%llu", (unsigned long long)rowbytes);
    struct dg_define d[9] = {{"N", ns}, {"K", ks}, {"WTYPE", wts}, {"WROWBYTES", rbs}};
    int nd = 4;
    if (entry)
        d[nd++] = (struct dg_define){entry, "1"};
    else {
        d[nd++] = (struct dg_define){"WG_SIZE", wg};
        d[nd++] = (struct dg_define){"ROWS_PER_WG", rows_per_wg};
        d[nd++] = (struct dg_define){"RPT", rpt};
        if (layout_h16)
            d[nd++] = (struct dg_define){"H16", layout_h16};
    }
    memset(r, 0, sizeof *r);
    uint32_t ubo[4] = {0, 1, 0, 0};
    if (dg_gl_program(gl, "matmul.glsl", d, nd, &r->prog) != DG_OK ||
        dg_buffer_alloc(gl, (uint64_t)K * 4, x, &r->x) != DG_OK ||
        /* 16 bytes of slack past the last row, as the executor uploads (pipe/weights.c): GGUF rows of
         * 2-byte-aligned blocks end inside a word the kernels read whole */
        dg_buffer_alloc(gl, (rowbytes * (uint64_t)N + 15) / 16 * 16 + 16, NULL, &r->w) != DG_OK ||
        dg_buffer_upload(gl, r->w, 0, rowbytes * (uint64_t)N, w) != DG_OK ||
        dg_buffer_alloc(gl, (uint64_t)N * 4, NULL, &r->y) != DG_OK || dg_buffer_alloc(gl, 16, ubo, &r->ubo) != DG_OK)
        return false;
    r->gx = entry ? (unsigned)((N + 63) / 64) : (unsigned)((N + atoi(rows_per_wg) - 1) / atoi(rows_per_wg));
    return true;
}

static bool dispatch(struct dg_gl *gl, const struct layout_run *r, int64_t N, const char *label, uint64_t bytes)
{
    glUseProgram(r->prog);
    if (dg_buffer_bind(gl, 0, r->x, 0, r->x->size) || dg_buffer_bind(gl, 1, r->w, 0, r->w->size) ||
        dg_buffer_bind(gl, 3, r->y, 0, r->y->size))
        return false;
    glBindBufferBase(GL_UNIFORM_BUFFER, 0, r->ubo->id);
    GLint l0 = glGetUniformLocation(r->prog, "u_row0"), l1 = glGetUniformLocation(r->prog, "u_nrows");
    if (l0 >= 0)
        glUniform1ui(l0, 0);
    if (l1 >= 0)
        glUniform1ui(l1, (GLuint)N);
    struct dg_dispatch_info info = {label, "layout", bytes};
    dg_gl_dispatch(gl, r->gx, 1, 1, &info);
    dg_gl_barrier(gl);
    return dg_gl_check(label) == DG_OK;
}

static void release(struct dg_gl *gl, struct layout_run *r)
{
    dg_buffer_release(gl, r->x);
    dg_buffer_release(gl, r->w);
    dg_buffer_release(gl, r->y);
    dg_buffer_release(gl, r->ubo);
}

static uint32_t lcg = 7;
static float rnd(void)
{
    lcg = lcg * 1664525u + 1013904223u;
    return (float)((lcg >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

/* Quantizes an N x K matrix of `dt`, returns GGUF bytes, split bytes and the C reference y = W x. */
static bool make_case(enum dg_dtype dt, int64_t N, int64_t K, uint8_t **gguf, uint8_t **split, uint64_t *rb,
                      uint64_t *srb, float **x, double **ref)
{
    *rb = dg_dtype_row_bytes(dt, K);
    float *w = malloc((size_t)(N * K) * 4), *wd = malloc((size_t)(N * K) * 4);
    *gguf = malloc(*rb * (size_t)N);
    *srb = dg_split_blocks_row_bytes(dt, (uint64_t)K);
    *split = malloc(*srb * (size_t)N + 1);
    *x = malloc((size_t)K * 4);
    *ref = calloc((size_t)N, sizeof **ref);
    if (!w || !wd || !*gguf || !*split || !*x || !*ref)
        return false;
    for (int64_t i = 0; i < N * K; i++)
        w[i] = rnd() * 0.5f;
    for (int64_t k = 0; k < K; k++)
        (*x)[k] = rnd() * (!layout_outliers ? 1.0f : (k / 16) % 7 == 2 ? 3000.0f : (k / 16) % 7 == 4 ? 1e-4f : 1.0f);
    bool ok = dg_quantize_rows(dt, w, *gguf, (uint64_t)N, (uint64_t)K, 2) == DG_OK &&
              dg_dequantize(dt, *gguf, wd, (uint64_t)(N * K)) == DG_OK;
    ok = ok && *srb;
    if (ok)
        dg_split_blocks_repack(dt, *gguf, *split, (uint64_t)N, (uint64_t)K);
    for (int64_t n = 0; ok && n < N; n++)
        for (int64_t k = 0; k < K; k++)
            (*ref)[n] += (double)wd[n * K + k] * (*x)[k];
    free(w);
    free(wd);
    /* whole groups of 8 blocks take GGUF's size; a short last group adds its 16-byte scale slot's padding */
    uint64_t nb = (uint64_t)K / dg_dtype_info(dt)->block_elems;
    return ok && *srb % 16 == 0 && (nb % 8 || *srb == *rb);
}

/* Runs one layout once at N x K (the main entry with WG_SIZE wg, ROWS_PER_WG rows, RPT rpt) and compares
 * with the reference. */
static void check_layout(struct dg_gl *gl, int wtype, const uint8_t *w, uint64_t rb, int64_t N, int64_t K,
                         const float *x, const double *ref, const char *entry, const char *const shape[3],
                         const char *what, double tol)
{
    struct layout_run r;
    float *y = malloc((size_t)N * 4);
    if (!setup(gl, &r, wtype, rb, w, N, K, x, entry, shape[0], shape[1], shape[2]) || !dispatch(gl, &r, N, what, 0) ||
        dg_buffer_download(gl, r.y, 0, (uint64_t)N * 4, y) != DG_OK) {
        CHECK_MSG(0, "%s: %s", what, dg_last_error());
    } else {
        double mx = 1e-30, worst = 0;
        for (int64_t n = 0; n < N; n++)
            mx = fmax(mx, fabs(ref[n]));
        for (int64_t n = 0; n < N; n++)
            worst = fmax(worst, fabs(y[n] - ref[n]));
        if (tol > 1e-4)
            printf("    %s: worst %.3g of max %.3g\n", what, worst / mx, mx);
        CHECK_MSG(worst <= tol * mx, "%s: max |y - ref| %g > %g x %g", what, worst, tol, mx);
    }
    release(gl, &r);
    free(y);
}

/* DG_LAYOUT_BENCH=ROWSxCOLS[:WG:ROWS_PER_WG]: times each layout with the default (shared-memory) entry and
 * with GEMV_ROW, and prints mean µs and GB/s per dispatch. */
static void bench(struct dg_gl *gl, enum dg_dtype dt, int split_code, const char *spec)
{
    long long N = 0, K = 0;
    char wg[16] = "64", rows[16] = "4";
    if (sscanf(spec, "%lldx%lld:%15[0-9]:%15[0-9]", &N, &K, wg, rows) < 2 || N <= 0 || K <= 0 || K % 2048) {
        CHECK_MSG(0, "DG_LAYOUT_BENCH=%s: expected ROWSxCOLS[:WG:ROWS_PER_WG] with COLS a multiple of 2048", spec);
        return;
    }
    uint8_t *gguf, *split;
    uint64_t rb, srb;
    float *x;
    double *ref;
    if (!make_case(dt, N, K, &gguf, &split, &rb, &srb, &x, &ref)) {
        CHECK_MSG(0, "bench: %s", dg_last_error());
        return;
    }
    int reps = dg_gl_caps(gl)->is_software ? 5 : 200;
    const char *entries[2] = {NULL, "GEMV_ROW"};
    for (int e = 0; e < 2; e++)
        for (int l = 0; l < 2; l++) {
            char label[96];
            snprintf(label, sizeof label, "%s %s %s", dg_dtype_info(dt)->name, l ? "split" : "gguf",
                     entries[e] ? "GEMV_ROW" : "main");
            struct layout_run r;
            if (!setup(gl, &r, l ? split_code : (int)dt, l ? srb : rb, l ? split : gguf, N, K, x, entries[e], wg, rows, "1")) {
                CHECK_MSG(0, "%s: %s", label, dg_last_error());
                release(gl, &r);
                continue;
            }
            dispatch(gl, &r, N, "warm-up", 0); /* the first dispatch compiles on llvmpipe */
            dg_gl_profile_reset(gl);
            dg_gl_profiling(gl, true);
            for (int i = 0; i < reps; i++)
                dispatch(gl, &r, N, label, rb * (uint64_t)N + (uint64_t)K * 4 + (uint64_t)N * 4);
            const struct dg_profile_row *pr;
            int n = dg_gl_profile_rows(gl, false, &pr);
            for (int i = 0; i < n; i++)
                if (!strcmp(pr[i].kernel, label))
                    printf("layout-bench: %-22s %lldx%lld WG %s x %s rows: %10.1f us %8.2f GB/s (%d runs, %s)\n",
                           label, N, K, entries[e] ? "64" : wg, entries[e] ? "64 (1 a thread)" : rows, pr[i].mean_us,
                           pr[i].gbps, reps, dg_gl_timing_source(gl));
            dg_gl_profiling(gl, false);
            dg_gl_profile_reset(gl);
            release(gl, &r);
        }
    free(gguf), free(split), free(x), free(ref);
}

DG_TEST(gl_weight_layouts_split_matches_gguf)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* 5 rows (not a multiple of the 4 rows a workgroup). K = 4096: whole groups (two Q6_K, 16 Q8_0);
     * K = 2304 (9 Q6_K blocks, 72 Q8_0: a short last Q6_K group) and 704 (sotu-6m's FFN width: 22 Q8_0
     * blocks, a last group of 6) exercise the padded last group. */
    const struct {
        enum dg_dtype dt;
        int code;
        int64_t K;
    } cases[] = {{DG_DT_Q8_0, DG_WTYPE_Q8_0_SPLIT, 4096}, {DG_DT_Q6_K, DG_WTYPE_Q6_K_SPLIT, 4096},
                 {DG_DT_Q6_K, DG_WTYPE_Q6_K_SPLIT, 2304}, {DG_DT_Q8_0, DG_WTYPE_Q8_0_SPLIT, 704}};
    const int64_t N = 5;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const enum dg_dtype dt = cases[t].dt;
        const int64_t K = cases[t].K;
        uint8_t *gguf, *split;
        uint64_t rb, srb;
        float *x;
        double *ref;
        if (!make_case(dt, N, K, &gguf, &split, &rb, &srb, &x, &ref)) {
            CHECK_MSG(0, "%s K %lld: %s", dg_dtype_info(dt)->name, (long long)K, dg_last_error());
            free(gguf), free(split), free(x), free(ref);
            continue;
        }
        /* main at the registry default, with 4 threads a row walking many segments (RPT 4) and with 128
         * threads a row, more than K = 704 has segments; then GEMV_ROW */
        static const char *const shapes[][3] = {{"64", "4", "1"}, {"32", "8", "4"}, {"128", "2", "2"}, {"-", "-", "-"}};
        for (int e = 0; e < 4; e++) {
            const char *entry = e == 3 ? "GEMV_ROW" : NULL;
            char what[96];
            snprintf(what, sizeof what, "%s K %lld gguf %s %s/%s/%s", dg_dtype_info(dt)->name, (long long)K,
                     entry ? entry : "main", shapes[e][0], shapes[e][1], shapes[e][2]);
            check_layout(gl, (int)dt, gguf, rb, N, K, x, ref, entry, shapes[e], what, 1e-4);
            snprintf(what, sizeof what, "%s K %lld split %s %s/%s/%s", dg_dtype_info(dt)->name, (long long)K,
                     entry ? entry : "main", shapes[e][0], shapes[e][1], shapes[e][2]);
            check_layout(gl, cases[t].code, split, srb, N, K, x, ref, entry, shapes[e], what, 1e-4);
        }
        free(gguf), free(split), free(x), free(ref);
    }
    const char *spec = getenv("DG_LAYOUT_BENCH");
    if (spec && *spec) {
        bench(gl, DG_DT_Q8_0, DG_WTYPE_Q8_0_SPLIT, spec);
        bench(gl, DG_DT_Q6_K, DG_WTYPE_Q6_K_SPLIT, spec);
    }
}

/* H16 on split Q6_K (glsl/matmul.glsl: f16 arithmetic where the device has GL_NV_gpu_shader5, the f32
 * path elsewhere): K = 4096 and 2304 (a short last group), the main entry at three workgroup shapes,
 * on plain x and on x with runs in the thousands and near 1e-4. In f16, x keeps 11 significant bits
 * (4.9e-4 relative) and each run's 8 products are summed in f16 at the same relative size, errors that
 * mostly cancel over K terms; 4e-3 of the largest |y| holds them (the Q4_K H16 bound, tests/gl/
 * test_kp_matmul.c) and is far below a wrong quant, scale or x pairing, off by the size of y itself. */
DG_TEST(gl_weight_layouts_q6k_split_h16)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    bool f16 = dg_gl_caps(gl)->f16_arith;
    printf("    device f16 arithmetic: %s\n", f16 ? "yes (f16 path)" : "no (f32 fallback)");
    static const int64_t ks[] = {4096, 2304};
    static const char *const shapes[][3] = {{"64", "4", "1"}, {"32", "8", "4"}, {"256", "8", "2"}};
    layout_h16 = "1";
    for (int o = 0; o < 2; o++)
        for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
            const int64_t N = 5, K = ks[t];
            uint8_t *gguf, *split;
            uint64_t rb, srb;
            float *x;
            double *ref;
            layout_outliers = o == 1;
            if (!make_case(DG_DT_Q6_K, N, K, &gguf, &split, &rb, &srb, &x, &ref)) {
                CHECK_MSG(0, "q6_k K %lld: %s", (long long)K, dg_last_error());
            } else {
                for (int e = 0; e < 3; e++) {
                    char what[96];
                    snprintf(what, sizeof what, "q6_k K %lld split H16 %s/%s/%s%s", (long long)K, shapes[e][0],
                             shapes[e][1], shapes[e][2], o ? " outlier x" : "");
                    check_layout(gl, DG_WTYPE_Q6_K_SPLIT, split, srb, N, K, x, ref, NULL, shapes[e], what,
                                 f16 ? 4e-3 : 1e-4);
                }
            }
            free(gguf), free(split), free(x), free(ref);
        }
    layout_h16 = NULL;
    layout_outliers = false;
}
