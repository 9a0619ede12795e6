/* chain-bench.c: what one dependent dispatch costs on this GPU, kernel by kernel. Each case runs a chain
 * of R dispatches of one program with glMemoryBarrier between them (the way a decode token's steps
 * depend on each other) and prints the GPU time per dispatch (one GL_TIME_ELAPSED query around the
 * chain, when the driver has one), the wall time per dispatch (glFinish at the end) and the CPU time
 * spent issuing them. Cases: trivial kernels at 1, 256 and 2048 workgroups (the launch + barrier floor),
 * a kernel that only reads x and reduces it, and the decode GEMVs of glsl/matmul.glsl at Llama-3.2-1B
 * shapes with the workgroup shapes the profiles and the tuner use.
 * Build after `make` (links the library objects of build/):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc tools/chain-bench.c $(find build/obj/src -name '*.o' ! -name main.o) \
 *      -o build/chain-bench $(pkg-config --libs egl glesv2 gbm inih libcjson libpcre2-8 libutf8proc libcrypto) \
 *      -lm -ldl -pthread
 * Usage: [CB_FILES=a.glsl,b.glsl] [CB_CFGS=WG/ROWS/RPT,...] build/chain-bench [R] [FILTER]
 *   R dispatches a chain (default 1000); FILTER: only cases whose label contains it; CB_FILES: variants of
 *   matmul.glsl to compare at each shape and workgroup shape (each one's output is checked against the
 *   first's, printed as "rel err"); CB_CFGS: the workgroup shapes (default: 16 of them).
 * The floor kernel is tools/chain-floor.glsl, found through DOPPLER_GL_DATADIR like the shipped ones: set
 * DOPPLER_GL_DATADIR to a directory whose glsl/ holds the shipped shaders, it and any variants.
 * Each GEMV chain cycles through copies of its weights (160 MB or more, beyond the L2) so the weights come
 * from memory as in a model; even so its large-matrix figures varied 2x between two H200 machines, so
 * compare cases of one run only. CB_COPIES=n: cycle through n copies instead (1: the weights stay in the
 * L2 where they fit, the best a GEMV could do from cache). CB_PREFETCH=G: after each GEMV, with no barrier
 * between, tools/l2-prefetch.glsl reads the next copy's weights on G workgroups (a measurement-only kernel),
 * so each GEMV reads weights prefetched beside the one before it. */
#include <GLES3/gl31.h>
#include <GLES2/gl2ext.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gl/gl.h"
#include "model/dtype.h"
#include "model/quant.h"
#include "pipe/split_blocks.h"

/* A shape's dtype is a dg_dtype or a split-layout WTYPE code (DG_WTYPE_*_SPLIT: the same quantization,
 * repacked as the executor uploads it for kernels that want it) */
static enum dg_dtype base_dtype(int dt)
{
    return dt == DG_WTYPE_Q8_0_SPLIT ? DG_DT_Q8_0 : dt == DG_WTYPE_Q6_K_SPLIT ? DG_DT_Q6_K : (enum dg_dtype)dt;
}
static uint64_t row_bytes(int dt, uint64_t k)
{
    return base_dtype(dt) != (enum dg_dtype)dt ? dg_split_blocks_row_bytes(base_dtype(dt), k)
                                               : dg_dtype_row_bytes((enum dg_dtype)dt, k);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct bench_case {
    const char *label, *file;
    const char *defs[12][2];
    unsigned groups;
    int dtype;          /* weights to bind at 1 (and 4 for GLU): -1 none */
    long n, k;          /* weight shape */
    int no_barrier;
    int ref_case; /* index of the case whose output this one must match (the first variant of its shape and
                   * workgroup shape), or -1 */
};

static uint32_t lcg = 12345;
static float rnd(void)
{
    lcg = lcg * 1664525u + 1013904223u;
    return (float)((lcg >> 8) & 0xffff) / 65536.0f - 0.5f;
}

/* Quantized random weights (quantized once per shape, uploaded to `copy` distinct buffers so a chain can
 * cycle through more bytes than the L2 holds, as a model's layers do). */
static struct dg_buffer *weights(struct dg_gl *gl, int dt, long n, long k, int copy)
{
    static struct wcache { int dt; long n, k; int copy; struct dg_buffer *b; } cache[1024];
    static int nc;
    static struct { int dt; long n, k; uint8_t *q; } host[32];
    static int nh;
    for (int i = 0; i < nc; i++)
        if (cache[i].dt == dt && cache[i].n == n && cache[i].k == k && cache[i].copy == copy)
            return cache[i].b;
    uint64_t rb = dg_dtype_row_bytes(base_dtype(dt), (uint64_t)k), bytes = rb * (uint64_t)n;
    uint8_t *q = NULL;
    for (int i = 0; i < nh; i++)
        if (host[i].dt == dt && host[i].n == n && host[i].k == k)
            q = host[i].q;
    if (!q) {
        float *w = malloc((size_t)k * 4 * 64);
        q = calloc(1, bytes + 32);
        if (!w || !q || nh == 32)
            return NULL;
        for (long r0 = 0; r0 < n; r0 += 64) {
            long rows = n - r0 < 64 ? n - r0 : 64;
            for (long i = 0; i < rows * k; i++)
                w[i] = rnd();
            if (base_dtype(dt) == DG_DT_F16) {
                uint16_t *h = (uint16_t *)(q + rb * (uint64_t)r0);
                for (long i = 0; i < rows * k; i++)
                    h[i] = 0x3000; /* 0.125: the values do not change the time */
            } else if (dg_quantize_rows(base_dtype(dt), w, q + rb * (uint64_t)r0, (uint64_t)rows, (uint64_t)k, 1)) {
                fprintf(stderr, "quantize: %s\n", dg_last_error());
                return NULL;
            }
        }
        free(w);
        if (base_dtype(dt) != (enum dg_dtype)dt) {
            uint64_t srb = row_bytes(dt, (uint64_t)k);
            uint8_t *sp = calloc(1, srb * (uint64_t)n + 32);
            if (!sp)
                return NULL;
            dg_split_blocks_repack(base_dtype(dt), q, sp, (uint64_t)n, (uint64_t)k);
            free(q);
            q = sp;
        }
        host[nh].dt = dt, host[nh].n = n, host[nh].k = k, host[nh].q = q;
        nh++;
    }
    bytes = row_bytes(dt, (uint64_t)k) * (uint64_t)n;
    struct dg_buffer *b = NULL;
    if (dg_buffer_alloc(gl, (bytes + 31) / 16 * 16 + 16, NULL, &b) || dg_buffer_upload(gl, b, 0, bytes, q)) {
        fprintf(stderr, "upload: %s\n", dg_last_error());
        return NULL;
    }
    if (nc < 1024)
        cache[nc++] = (struct wcache){dt, n, k, copy, b};
    return b;
}

int main(int argc, char **argv)
{
    int R = argc > 1 ? atoi(argv[1]) : 1000;
    const char *filter = argc > 2 ? argv[2] : NULL;
    struct dg_gl *gl;
    struct dg_gl_options o = {0};
    if (dg_gl_open(&o, &gl)) {
        fprintf(stderr, "chain-bench: %s\n", dg_last_error());
        return 1;
    }
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    printf("renderer %s | %s | subgroup %s %u | %d dispatches a chain\n", c->renderer, c->version,
           c->subgroup ? "yes" : "no", c->subgroup_size, R);

    /* floors */
    static struct bench_case cases[1024];
    int nc = 0;
    static const struct bench_case floors[] = {
        {"floor 1 wg x 64", "chain-floor.glsl", {{"WG_SIZE", "64"}, {"MODE", "0"}}, 1, -1, 0, 0, 0, -1},
        {"floor 256 wg x 256", "chain-floor.glsl", {{"WG_SIZE", "256"}, {"MODE", "0"}}, 256, -1, 0, 0, 0, -1},
        {"floor 2048 wg x 256", "chain-floor.glsl", {{"WG_SIZE", "256"}, {"MODE", "0"}}, 2048, -1, 0, 0, 0, -1},
        {"floor 256 wg x 256 no barrier", "chain-floor.glsl", {{"WG_SIZE", "256"}, {"MODE", "0"}}, 256, -1, 0, 0, 1, -1},
        {"x read+reduce 256 wg x 256", "chain-floor.glsl", {{"WG_SIZE", "256"}, {"MODE", "1"}, {"K", "2048"}}, 256, -1, 0, 0, 0, -1},
    };
    for (size_t i = 0; i < sizeof floors / sizeof floors[0]; i++)
        cases[nc++] = floors[i];
    /* GEMVs at Llama-3.2-1B shapes (Q4_K_M: q/k/o/gate/up Q4_K, v and down Q6_K in half the layers);
     * norm 1: with HAS_NORM_IN, 0: ACCUMULATE, 2: neither (the LM head after its own norm step) */
    static const struct { const char *name; int dt; long n, k; int glu, norm; } shapes[] = {
        {"q4k q 2048x2048 norm", DG_DT_Q4_K, 2048, 2048, 0, 1},
        {"q4k o 2048x2048 acc", DG_DT_Q4_K, 2048, 2048, 0, 0},
        {"q4k k 512x2048 norm", DG_DT_Q4_K, 512, 2048, 0, 1},
        {"q6k v 512x2048 norm", DG_DT_Q6_K, 512, 2048, 0, 1},
        {"q4k gate_up 8192x2048 norm", DG_DT_Q4_K, 8192, 2048, 1, 1},
        {"q6k down 2048x8192 acc", DG_DT_Q6_K, 2048, 8192, 0, 0},
        {"q4k down 2048x8192 acc", DG_DT_Q4_K, 2048, 8192, 0, 0},
        {"q6k lm_head 128256x2048 norm", DG_DT_Q6_K, 128256, 2048, 0, 1},
        {"q6ks lm_head 128256x2048 norm", DG_WTYPE_Q6_K_SPLIT, 128256, 2048, 0, 1},
        {"q6ks lm_head 128256x2048 plain", DG_WTYPE_Q6_K_SPLIT, 128256, 2048, 0, 2},
        {"q6ks down 2048x8192 acc", DG_WTYPE_Q6_K_SPLIT, 2048, 8192, 0, 0},
        {"q6ks v 512x2048 norm", DG_WTYPE_Q6_K_SPLIT, 512, 2048, 0, 1},
        {"q8_0 q 2048x2048 norm", DG_DT_Q8_0, 2048, 2048, 0, 1},
        {"q8_0s q 2048x2048 norm", DG_WTYPE_Q8_0_SPLIT, 2048, 2048, 0, 1},
        {"f16 q 2048x2048 norm", DG_DT_F16, 2048, 2048, 0, 1},
        {"f16 gate_up 8192x2048 norm", DG_DT_F16, 8192, 2048, 1, 1},
        {"f16 down 2048x8192 acc", DG_DT_F16, 2048, 8192, 0, 0},
        /* Llama-3.1-8B: large enough that the GEMVs should be bandwidth-bound, not launch-bound */
        {"q4k q 4096x4096 norm", DG_DT_Q4_K, 4096, 4096, 0, 1},
        {"q4k gate_up 14336x4096 norm", DG_DT_Q4_K, 14336, 4096, 1, 1},
        {"q6k down 4096x14336 acc", DG_DT_Q6_K, 4096, 14336, 0, 0},
        {"q6ks down 4096x14336 acc", DG_WTYPE_Q6_K_SPLIT, 4096, 14336, 0, 0},
        {"q4k down 4096x14336 acc", DG_DT_Q4_K, 4096, 14336, 0, 0},
    };
    static const int cfg[][3] = {{64, 1, 1}, {64, 2, 1}, {64, 2, 2}, {128, 1, 1}, {128, 2, 1}, {128, 2, 2},
                                 {128, 4, 2}, {256, 1, 1}, {256, 2, 1}, {256, 4, 1}, {256, 4, 2}, {256, 8, 2},
                                 {256, 8, 1}, {512, 4, 1}, {512, 8, 2}, {512, 2, 1}};
    static char strs[1024][6][24];
    /* CB_FILES: comma-separated matmul.glsl variants to compare (default: matmul.glsl alone), each a file
     * name with optional knobs after colons (matmul.glsl:XSH=1:XCO=1);
     * CB_CFGS: WG/ROWS_PER_WG/RPT list (default: the 16 above) */
    char files[8][64], vlabel[8][64], vdefs[8][4][2][24];
    int nfiles = 0, nvdef[8] = {0};
    const char *fe = getenv("CB_FILES") ? getenv("CB_FILES") : "matmul.glsl";
    for (const char *p = fe; *p && nfiles < 8;) {
        size_t n = strcspn(p, ",");
        snprintf(vlabel[nfiles], 64, "%.*s", (int)n, p);
        char *f = vlabel[nfiles], *colon = strchr(f, ':');
        snprintf(files[nfiles], 64, "%.*s", colon ? (int)(colon - f) : (int)strlen(f), f);
        for (char *q = colon; q && nvdef[nfiles] < 4; q = strchr(q + 1, ':')) {
            char *eq = strchr(q + 1, '='), *end = strchr(q + 1, ':');
            if (!eq || (end && eq > end))
                break;
            snprintf(vdefs[nfiles][nvdef[nfiles]][0], 24, "%.*s", (int)(eq - q - 1), q + 1);
            snprintf(vdefs[nfiles][nvdef[nfiles]][1], 24, "%.*s", end ? (int)(end - eq - 1) : (int)strlen(eq + 1), eq + 1);
            nvdef[nfiles]++;
        }
        nfiles++;
        p += n + (p[n] == ',');
    }
    int ucfg[32][3], ncfg = 0;
    if (getenv("CB_CFGS")) {
        for (const char *p = getenv("CB_CFGS"); *p && ncfg < 32;) {
            if (sscanf(p, "%d/%d/%d", &ucfg[ncfg][0], &ucfg[ncfg][1], &ucfg[ncfg][2]) == 3)
                ncfg++;
            size_t n = strcspn(p, ",");
            p += n + (p[n] == ',');
        }
    } else
        for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++, ncfg++)
            memcpy(ucfg[ncfg], cfg[i], sizeof cfg[i]);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ci = 0; ci < ncfg; ci++)
            for (int un = 0; un < nfiles && nc < 1024; un++) {
                struct bench_case *bc = &cases[nc];
                char (*sv)[24] = strs[nc];
                memset(bc, 0, sizeof *bc);
                char *lab = malloc(160);
                snprintf(lab, 160, "%s %d/%d/%d %.63s", shapes[si].name, ucfg[ci][0], ucfg[ci][1], ucfg[ci][2], vlabel[un]);
                bc->label = lab;
                bc->file = files[un];
                snprintf(sv[0], 24, "%d", ucfg[ci][0]);
                snprintf(sv[1], 24, "%d", ucfg[ci][1]);
                snprintf(sv[2], 24, "%d", ucfg[ci][2]);
                snprintf(sv[3], 24, "%d", shapes[si].dt);
                snprintf(sv[4], 24, "%ld", shapes[si].n);
                snprintf(sv[5], 24, "%ld", shapes[si].k);
                int nd = 0;
                bc->defs[nd][0] = "WG_SIZE", bc->defs[nd++][1] = sv[0];
                bc->defs[nd][0] = "ROWS_PER_WG", bc->defs[nd++][1] = sv[1];
                bc->defs[nd][0] = "RPT", bc->defs[nd++][1] = sv[2];
                bc->defs[nd][0] = "WTYPE", bc->defs[nd++][1] = sv[3];
                bc->defs[nd][0] = "N", bc->defs[nd++][1] = sv[4];
                bc->defs[nd][0] = "K", bc->defs[nd++][1] = sv[5];
                if (shapes[si].glu)
                    bc->defs[nd][0] = "GLU", bc->defs[nd++][1] = "1";
                if (shapes[si].norm == 1)
                    bc->defs[nd][0] = "HAS_NORM_IN", bc->defs[nd++][1] = "1";
                else if (shapes[si].norm == 0)
                    bc->defs[nd][0] = "ACCUMULATE", bc->defs[nd++][1] = "1";
                for (int vd = 0; vd < nvdef[un] && nd < 11; vd++)
                    bc->defs[nd][0] = vdefs[un][vd][0], bc->defs[nd++][1] = vdefs[un][vd][1];
                bc->groups = (unsigned)((shapes[si].n + ucfg[ci][1] - 1) / ucfg[ci][1]);
                bc->dtype = shapes[si].dt;
                bc->n = shapes[si].n;
                bc->k = shapes[si].k;
                bc->ref_case = un ? nc - un : -1;
                nc++;
            }
    struct dg_buffer *x, *y, *y2, *nw, *ubo;
    float *xs = malloc(8192 * 4 * 4);
    for (int i = 0; i < 8192 * 4; i++)
        xs[i] = rnd();
    uint32_t u[4] = {0, 1, 0, 0};
    if (dg_buffer_alloc(gl, 8192 * 16, xs, &x) || dg_buffer_alloc(gl, 65536 * 4 * 2, NULL, &y) ||
        dg_buffer_alloc(gl, 65536 * 4 * 2, NULL, &y2) || dg_buffer_alloc(gl, 8192 * 16, xs, &nw) ||
        dg_buffer_alloc(gl, 16, u, &ubo)) {
        fprintf(stderr, "chain-bench: %s\n", dg_last_error());
        return 1;
    }
    int copies_env = getenv("CB_COPIES") ? atoi(getenv("CB_COPIES")) : 0;
    unsigned pf_groups = getenv("CB_PREFETCH") ? (unsigned)atoi(getenv("CB_PREFETCH")) : 0;
    GLuint pf_prog[2] = {0, 0};
    struct dg_buffer *sink = NULL;
    if (pf_groups) {
        struct dg_define pd[1] = {{"HAS_U", "1"}};
        if (dg_gl_program(gl, "l2-prefetch.glsl", NULL, 0, &pf_prog[0]) ||
            dg_gl_program(gl, "l2-prefetch.glsl", pd, 1, &pf_prog[1]) || dg_buffer_alloc(gl, 16, NULL, &sink)) {
            fprintf(stderr, "chain-bench: prefetch: %s\n", dg_last_error());
            return 1;
        }
        printf("each GEMV followed by an L2 prefetch of the next copy's weights on %u workgroups\n", pf_groups);
    }
    GLuint q = 0;
    if (c->timer_query && c->time_elapsed_works)
        glGenQueries(1, &q);
    printf("%-52s %10s %10s %10s %9s\n", "case", "GPU us", "wall us", "CPU us", "GB/s");
    for (int ci = 0; ci < nc; ci++) {
        const struct bench_case *bc = &cases[ci];
        if (filter && !strstr(bc->label, filter))
            continue;
        struct dg_define d[12];
        int nd = 0;
        while (nd < 12 && bc->defs[nd][0]) {
            d[nd] = (struct dg_define){bc->defs[nd][0], bc->defs[nd][1]};
            nd++;
        }
        char rb[32];
        if (bc->dtype >= 0) {
            snprintf(rb, sizeof rb, "%llu", (unsigned long long)row_bytes(bc->dtype, (uint64_t)bc->k));
            d[nd++] = (struct dg_define){"WROWBYTES", rb};
        }
        GLuint prog;
        if (dg_gl_program(gl, bc->file, d, nd, &prog)) {
            printf("%-38s compile failed: %s\n", bc->label, dg_last_error());
            continue;
        }
        if (getenv("CB_DUMP")) { /* the driver's program binary, for offline disassembly */
            GLint len = 0;
            glGetProgramiv(prog, GL_PROGRAM_BINARY_LENGTH, &len);
            void *bin = len > 0 ? malloc((size_t)len) : NULL;
            GLenum fmt = 0;
            GLsizei got = 0;
            char path[512];
            snprintf(path, sizeof path, "%s/case%03d.bin", getenv("CB_DUMP"), ci);
            FILE *f = bin ? fopen(path, "wb") : NULL;
            if (f) {
                glGetProgramBinary(prog, len, &got, &fmt, bin);
                fwrite(bin, 1, (size_t)got, f);
                fclose(f);
                printf("dumped %s: %s (%d bytes, format 0x%x)\n", path, bc->label, (int)got, fmt);
            }
            free(bin);
        }
        /* GLU reads gate rows at binding 1 and up rows at 4: two halves of one buffer, so the up rows
         * are not the gate rows again (which would be L2 hits) */
        int glu = strstr(bc->label, "gate_up") != NULL;
        struct dg_buffer *wc[32] = {0}, *w = NULL;
        int ncopy = 1;
        uint64_t half = 0;
        if (bc->dtype >= 0) {
            half = row_bytes(bc->dtype, (uint64_t)bc->k) * (uint64_t)bc->n;
            uint64_t all = half * (glu ? 2 : 1);
            ncopy = (int)((160ull << 20) / all) + 1;
            if (ncopy > 32)
                ncopy = 32;
            if (copies_env > 0 && copies_env <= 32)
                ncopy = copies_env;
            for (int i = 0; i < ncopy; i++)
                if (!(wc[i] = weights(gl, bc->dtype, bc->n * (glu ? 2 : 1), bc->k, i)))
                    return 1;
            w = wc[0];
        }
        glUseProgram(prog);
        glBindBufferBase(GL_UNIFORM_BUFFER, 0, ubo->id);
        dg_buffer_bind(gl, 0, x, 0, x->size);
        dg_buffer_bind(gl, 3, y, 0, y->size);
        dg_buffer_bind(gl, 5, nw, 0, nw->size);
        GLint l0 = glGetUniformLocation(prog, "u_row0"), l1 = glGetUniformLocation(prog, "u_nrows");
        if (l0 >= 0)
            glUniform1ui(l0, 0);
        if (l1 >= 0)
            glUniform1ui(l1, (GLuint)bc->n);
        struct dg_dispatch_info info = {bc->label, "chain", 0};
        struct dg_dispatch_info pinfo = {"l2_prefetch", "prefetch", 0};
        /* the next copy's weights into the L2, beside the GEMV just issued; the GEMV's program back */
#define PREFETCH_NEXT(i)                                                                                    \
    do {                                                                                                   \
        if (pf_groups && w) {                                                                              \
            glUseProgram(pf_prog[glu]);                                                                    \
            dg_buffer_bind(gl, 1, wc[((i) + 1) % ncopy], 0, glu ? half : w->size);                         \
            if (glu)                                                                                       \
                dg_buffer_bind(gl, 4, wc[((i) + 1) % ncopy], half, half);                                  \
            dg_buffer_bind(gl, 2, sink, 0, 16);                                                            \
            dg_gl_dispatch(gl, pf_groups, 1, 1, &pinfo);                                                   \
            glUseProgram(prog);                                                                            \
        }                                                                                                  \
    } while (0)
        /* Warm up for 300 ms of dispatching, not a fixed count: between cases the CPU quantizes the next
         * weights for seconds, the GPU idles and its clocks drop, and a short chain after that read up to
         * 5x slow on the H200 (the first workgroup shape of each matrix shape) */
        int bad = 0;
        for (double tw = now_us(); !bad && now_us() - tw < 300e3;) {
            for (int i = 0; i < 20 + ncopy && !bad; i++) {
                if (w && (dg_buffer_bind(gl, 1, wc[i % ncopy], 0, glu ? half : w->size) ||
                          (glu && dg_buffer_bind(gl, 4, wc[i % ncopy], half, half))))
                    bad = 1;
                dg_gl_dispatch(gl, bc->groups, 1, 1, &info);
                PREFETCH_NEXT(i);
                dg_gl_barrier(gl);
            }
            glFinish();
        }
        if (bad) {
            printf("%-38s bind: %s\n", bc->label, dg_last_error());
            continue;
        }
        double best_gpu = 1e30, best_wall = 1e30, best_cpu = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_us();
            if (q)
                glBeginQuery(GL_TIME_ELAPSED_EXT, q);
            for (int i = 0; i < R; i++) {
                if (!bc->no_barrier)
                    dg_gl_barrier(gl);
                if (w) {
                    dg_buffer_bind(gl, 1, wc[i % ncopy], 0, glu ? half : w->size);
                    if (glu)
                        dg_buffer_bind(gl, 4, wc[i % ncopy], half, half);
                }
                dg_gl_dispatch(gl, bc->groups, 1, 1, &info);
                PREFETCH_NEXT(i);
            }
            if (q)
                glEndQuery(GL_TIME_ELAPSED_EXT);
            double t1 = now_us();
            glFinish();
            double t2 = now_us();
            GLuint ns = 0;
            if (q)
                glGetQueryObjectuiv(q, GL_QUERY_RESULT, &ns);
            if (ns && ns / 1e3 / R < best_gpu)
                best_gpu = ns / 1e3 / R;
            if ((t2 - t0) / R < best_wall)
                best_wall = (t2 - t0) / R;
            if ((t1 - t0) / R < best_cpu)
                best_cpu = (t1 - t0) / R;
        }
        if (dg_gl_check(bc->label)) {
            printf("%-38s GL error: %s\n", bc->label, dg_last_error());
            continue;
        }
        /* one dispatch on zeroed y: the first variant of a (shape, workgroup shape) is the reference of
         * the others (variants change speed, not results) */
        float err = -1;
        if (w) {
            static float ref[131072], got[131072];
            size_t n = (size_t)bc->n;
            float *zero = calloc(n, 4);
            dg_buffer_upload(gl, y, 0, n * 4, zero);
            free(zero);
            dg_gl_barrier(gl);
            dg_buffer_bind(gl, 1, wc[0], 0, glu ? half : w->size);
            if (glu)
                dg_buffer_bind(gl, 4, wc[0], half, half);
            dg_gl_dispatch(gl, bc->groups, 1, 1, &info);
            dg_gl_barrier(gl);
            dg_buffer_download(gl, y, 0, n * 4, bc->ref_case < 0 ? ref : got);
            if (bc->ref_case >= 0) {
                double mx = 1e-30, worst = 0;
                for (size_t i = 0; i < n; i++)
                    mx = fmax(mx, fabs(ref[i]));
                for (size_t i = 0; i < n; i++)
                    worst = fmax(worst, fabs(got[i] - ref[i]));
                err = (float)(worst / mx);
            }
        }
        double bytes = w ? (double)row_bytes(bc->dtype, (uint64_t)bc->k) * (double)bc->n *
                               (strstr(bc->label, "gate_up") ? 2 : 1)
                         : 0;
        double t = best_gpu < 1e29 ? best_gpu : best_wall;
        printf("%-52s %10.2f %10.2f %10.2f %9.1f", bc->label, best_gpu < 1e29 ? best_gpu : 0.0, best_wall,
               best_cpu, bytes / t / 1e3);
        if (err >= 0)
            printf("  rel err vs %s %.2e", cases[bc->ref_case].file, err);
        printf("\n");
        fflush(stdout);
    }
    (void)y2;
    dg_gl_close(gl);
    return 0;
}
