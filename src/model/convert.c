/* convert.c: the converter behind `doppler-gl convert`. A model from dg_model_open (or random weights at a
 * config's shape) is streamed tensor by tensor, in row chunks, through f32 → (transpose) → quantize → the
 * shard writer, so no more than one chunk of f32 is held per tensor (whole-tensor buffers only for the
 * column-wise Q4_K layout, which reorders blocks). Output goes to a temporary folder beside OUTPUT that
 * is renamed into place only when everything succeeded. */
#include "model/convert.h"

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "model/hf_config.h"
#include "model/manifest.h"
#include "model/quant.h"
#include "model/tensor_spec.h"

#define CHUNK_ELEMS (8u << 20) /* f32 elements per chunk: 32 MiB */
#define DEFAULT_SHARD_SIZE (1ull << 30)
#define MAX_PARTS 2

static volatile sig_atomic_t cancelled;

void dg_convert_cancel(void) { cancelled = 1; }

static const char *const scheme_names[] = {"f32", "f16", "bf16", "q8_0", "q4_k_m"};

bool dg_quant_scheme_from_name(const char *name, enum dg_quant_scheme *out)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(name, scheme_names[i]) == 0) {
            *out = (enum dg_quant_scheme)i;
            return true;
        }
    return false;
}

const char *dg_quant_scheme_name(enum dg_quant_scheme s) { return (unsigned)s < 5 ? scheme_names[s] : "?"; }

bool dg_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0)
        return false;
    uint64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = 1ull << 10; break;
        case 'm': case 'M': mul = 1ull << 20; break;
        case 'g': case 'G': mul = 1ull << 30; break;
        case 't': case 'T': mul = 1ull << 40; break;
        default: return false;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return false;
    }
    double b = v * (double)mul;
    if (b < DG_SHARD_ALIGN || b > 9.0e15)
        return false;
    *out = (uint64_t)b;
    return true;
}

/* ---- which dtype each tensor gets ---- */

static int layer_of(const char *name)
{
    int L;
    return sscanf(name, "layer.%d.", &L) == 1 ? L : -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

enum dg_dtype dg_convert_pick_dtype(enum dg_quant_scheme s, const struct dg_hparams *hp, const char *name, int ndim,
                                    const int64_t *shape, enum dg_layout q4k_layout, enum dg_dtype *wanted)
{
    enum dg_dtype want;
    /* vectors (norms, biases, sinks) and the MoE router stay f32: tiny, and precision-sensitive */
    bool matrix = ndim >= 2 && !ends_with(name, "mlp.router");
    if (!matrix)
        want = DG_DT_F32;
    else
        switch (s) {
        case DG_Q_F32: want = DG_DT_F32; break;
        case DG_Q_F16: want = DG_DT_F16; break;
        case DG_Q_BF16: want = DG_DT_BF16; break;
        case DG_Q_Q8_0: want = DG_DT_Q8_0; break;
        default: {
            int L = layer_of(name);
            want = DG_DT_Q4_K;
            if (strcmp(name, "lm_head") == 0 || (strcmp(name, "embed_tokens") == 0 && hp->tie_embeddings))
                want = DG_DT_Q6_K;
            else if (L >= 0 && (ends_with(name, "self_attn.v_proj") || ends_with(name, "mlp.down_proj") ||
                                ends_with(name, "mlp.experts.down_proj")) &&
                     use_more_bits(L, hp->n_layers))
                want = DG_DT_Q6_K;
            /* llama.cpp gives an 8-expert model's attn_v Q8_0 in every layer ("trades just ~128MB" for
             * Mixtral). Its other 8-expert rule, attn_output → Q5_K, is not followed: no kernel reads Q5_K. */
            if (L >= 0 && hp->n_experts == 8 && ends_with(name, "self_attn.v_proj"))
                want = DG_DT_Q8_0;
            break;
        }
        }
    if (wanted)
        *wanted = want;
    /* flat: each matrix (each expert of a stack) is one block stream, so its element count must divide */
    int64_t row = shape[ndim - 1], nel = ndim >= 2 ? shape[ndim - 1] * shape[ndim - 2] : shape[0];
    if (want == DG_DT_Q4_K && q4k_layout == DG_LAYOUT_FLAT)
        return nel % 256 == 0 ? DG_DT_Q4_K : row % 32 == 0 ? DG_DT_Q5_0 : DG_DT_F16;
    if (want == DG_DT_Q4_K && row % 256)
        return row % 32 == 0 ? DG_DT_Q5_0 : DG_DT_F16;
    if (want == DG_DT_Q6_K && row % 256)
        return row % 32 == 0 ? DG_DT_Q8_0 : DG_DT_F16;
    if (want == DG_DT_Q8_0 && row % 32)
        return DG_DT_F16;
    return want;
}

/* ---- tensor sources ---- */

/* One output tensor: a stack of `batch` matrices [rows, cols] (canonical orientation), made of up to two
 * parts stacked along rows (fused gate_up), each either a model tensor or random. */
struct part {
    const struct dg_tensor *src; /* NULL: random */
    char name[DG_TENSOR_NAME_MAX];
    int64_t rows;
    int kind;    /* random: 0 matrix N(0, 1/fan_in), 1 N(0,1), 2 norm around 1, 3 norm around 0, 4 small */
    double std;
};

struct job {
    char name[DG_TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[DG_MAX_DIMS]; /* canonical */
    int64_t batch, rows, cols;
    struct part parts[MAX_PARTS];
    int n_parts;
    enum dg_dtype dtype, wanted;
    enum dg_layout layout;
    bool transpose;
    uint64_t out_bytes;
};

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: only to derive a per-tensor stream */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Elements 2p and 2p+1 of a random tensor: a counter-based Box-Muller pair, so any access order (row
 * chunks, transposed column chunks, any thread count) gives the same values. */
static void random_pair(uint64_t key, uint64_t pair, double *z0, double *z1)
{
    uint64_t a = splitmix(key ^ (2 * pair)), b = splitmix(key ^ (2 * pair + 1));
    double u1 = ((double)(a >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);
    double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
    *z0 = r * cos(t);
    *z1 = r * sin(t);
}

static float random_value(double z, int kind, double std)
{
    switch (kind) {
    case 2: return (float)(1.0 + 0.1 * z);
    case 3: return (float)(0.1 * z);
    case 4: return (float)(0.02 * z);
    default: return (float)(std * z);
    }
}

struct fetch_ctx {
    const struct job *j;
    uint64_t seed;
    int64_t b, r0, r1, c0, c1; /* the block of canonical matrix b to produce */
    float *out;                /* [(r1-r0) * (c1-c0)] */
    dg_status st;
    char err[512];
};

/* Rows [r0, r1) of the sub-block, for one worker. */
static void fetch_rows(struct fetch_ctx *f, int64_t a0, int64_t a1)
{
    const struct job *j = f->j;
    int64_t w = f->c1 - f->c0;
    float *rowbuf = NULL;
    for (int64_t r = a0; r < a1; r++) {
        /* which part holds row r */
        int64_t rr = r;
        int p = 0;
        while (p < j->n_parts - 1 && rr >= j->parts[p].rows)
            rr -= j->parts[p++].rows;
        const struct part *pt = &j->parts[p];
        float *dst = f->out + (r - f->r0) * w;
        if (!pt->src) {
            uint64_t key = splitmix(f->seed ^ name_hash(pt->name));
            uint64_t base = ((uint64_t)f->b * (uint64_t)pt->rows + (uint64_t)rr) * (uint64_t)j->cols;
            uint64_t have = UINT64_MAX;
            double z[2] = {0, 0};
            for (int64_t c = f->c0; c < f->c1; c++) {
                uint64_t idx = base + (uint64_t)c;
                if (idx >> 1 != have) {
                    have = idx >> 1;
                    random_pair(key, have, &z[0], &z[1]);
                }
                dst[c - f->c0] = random_value(z[idx & 1], pt->kind, pt->std);
            }
            continue;
        }
        const struct dg_tensor *t = pt->src;
        uint64_t rb = dg_dtype_row_bytes(t->dtype, (uint64_t)j->cols);
        const uint8_t *row = (const uint8_t *)t->data + ((uint64_t)f->b * (uint64_t)pt->rows + (uint64_t)rr) * rb;
        const struct dg_dtype_info *info = dg_dtype_info(t->dtype);
        dg_status st;
        if (!info->quantized) {
            st = dg_dequantize(t->dtype, row + (uint64_t)f->c0 * info->block_bytes, dst, (uint64_t)w);
        } else {
            if (!rowbuf && !(rowbuf = malloc((size_t)j->cols * sizeof(float)))) {
                f->st = dg_fail(DG_E_NOMEM, "convert: out of memory");
                break;
            }
            st = dg_dequantize(t->dtype, row, rowbuf, (uint64_t)j->cols);
            memcpy(dst, rowbuf + f->c0, (size_t)w * sizeof(float));
        }
        if (st != DG_OK) {
            f->st = st;
            snprintf(f->err, sizeof f->err, "%s", dg_last_error());
            break;
        }
    }
    free(rowbuf);
}

struct fetch_worker {
    struct fetch_ctx *f;
    int64_t a0, a1;
    struct fetch_ctx local;
};

static void *fetch_thread(void *arg)
{
    struct fetch_worker *w = arg;
    fetch_rows(&w->local, w->a0, w->a1);
    return NULL;
}

static dg_status fetch(struct fetch_ctx *f, int threads)
{
    int64_t n = f->r1 - f->r0;
    if (threads > 16)
        threads = 16;
    if ((int64_t)threads > n)
        threads = (int)(n > 0 ? n : 1);
    if ((f->r1 - f->r0) * (f->c1 - f->c0) < 65536)
        threads = 1;
    struct fetch_worker w[16];
    pthread_t tid[16];
    bool started[16] = {0};
    for (int t = 0; t < threads; t++) {
        w[t].f = f;
        w[t].local = *f;
        w[t].a0 = f->r0 + n * t / threads;
        w[t].a1 = f->r0 + n * (t + 1) / threads;
        if (t > 0)
            started[t] = pthread_create(&tid[t], NULL, fetch_thread, &w[t]) == 0;
        if (t > 0 && !started[t])
            fetch_thread(&w[t]);
    }
    fetch_thread(&w[0]);
    for (int t = 1; t < threads; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++)
        if (w[t].local.st != DG_OK)
            return dg_fail(w[t].local.st, "%s", w[t].local.err[0] ? w[t].local.err : dg_last_error());
    return DG_OK;
}

/* ---- the list of output tensors ---- */

static void set_shape(struct job *j, int ndim, const int64_t *shape)
{
    j->ndim = ndim;
    memcpy(j->shape, shape, sizeof(int64_t) * (size_t)ndim);
    j->cols = shape[ndim - 1];
    j->rows = ndim >= 2 ? shape[ndim - 2] : 1;
    j->batch = 1;
    for (int i = 0; i < ndim - 2; i++)
        j->batch *= shape[i];
}

static bool is_linear_weight(const char *name, int ndim)
{
    return ndim >= 2 && strcmp(name, "embed_tokens") != 0;
}

static int random_kind(const struct dg_hparams *hp, const char *name, int ndim, double *std, int64_t cols)
{
    *std = 1.0;
    if (strcmp(name, "embed_tokens") == 0)
        return 1;
    if (ndim >= 2) {
        *std = 1.0 / sqrt((double)cols);
        return 0;
    }
    if (ends_with(name, "norm") || ends_with(name, "layernorm"))
        return hp->norm_style == DG_NORM_RMS_GEMMA ? 3 : 2;
    return 4; /* biases, sinks */
}

struct joblist {
    struct job *v;
    int n, cap;
};

static struct job *push_job(struct joblist *l)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        struct job *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v, l->cap = cap;
    }
    struct job *j = &l->v[l->n++];
    memset(j, 0, sizeof *j);
    return j;
}

/* Random weights: the canonical tensors of a model with these hyperparameters (tensor_spec.c). */
static dg_status random_jobs(const struct dg_hparams *hp, struct joblist *l)
{
    struct dg_tensor_spec *sp;
    int n;
    dg_status st = dg_tensor_specs(hp, &sp, &n);
    for (int i = 0; i < n && st == DG_OK; i++) {
        struct job *j = push_job(l);
        if (!j) {
            st = dg_fail(DG_E_NOMEM, "convert: out of memory");
            break;
        }
        snprintf(j->name, sizeof j->name, "%s", sp[i].name);
        set_shape(j, sp[i].ndim, sp[i].shape);
        j->n_parts = 1;
        snprintf(j->parts[0].name, sizeof j->parts[0].name, "%s", sp[i].name);
        j->parts[0].rows = j->rows;
        j->parts[0].kind = random_kind(hp, sp[i].name, sp[i].ndim, &j->parts[0].std, j->cols);
    }
    free(sp);
    return st;
}

static dg_status model_jobs(const struct dg_model *m, struct joblist *l)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const struct dg_tensor *t = &m->tensors[i];
        if (t->ndim < 1 || t->ndim > DG_MAX_DIMS || t->transposed)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: %s", m->path, t->name,
                           t->transposed ? "already transposed (convert from the original instead)" : "bad rank");
        struct job *j = push_job(l);
        if (!j)
            return dg_fail(DG_E_NOMEM, "convert: out of memory");
        snprintf(j->name, sizeof j->name, "%s", t->name);
        set_shape(j, t->ndim, t->shape);
        const struct dg_dtype_info *info = dg_dtype_info(t->dtype);
        if (!info || t->dtype == DG_DT_I32)
            return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: dtype %d cannot be converted", m->path, t->name,
                           (int)t->dtype);
        uint64_t rb = dg_dtype_row_bytes(t->dtype, (uint64_t)j->cols);
        if (!rb || t->layout != DG_LAYOUT_ROW ||
            rb * (uint64_t)j->rows * (uint64_t)j->batch != t->nbytes || (!t->data && t->nbytes))
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: %llu bytes do not hold shape x dtype %s row-wise", m->path,
                           t->name, (unsigned long long)t->nbytes, info->name);
        j->n_parts = 1;
        j->parts[0].src = t;
        j->parts[0].rows = j->rows;
        snprintf(j->parts[0].name, sizeof j->parts[0].name, "%s", t->name);
    }
    return DG_OK;
}

/* --fuse-gate-up: each dense layer's gate_proj and up_proj become one gate_up_proj [2I, hidden]. */
static void fuse_gate_up(struct joblist *l)
{
    for (int i = 0; i < l->n; i++) {
        struct job *g = &l->v[i];
        if (!ends_with(g->name, ".mlp.gate_proj") || g->ndim != 2)
            continue;
        char up_name[DG_TENSOR_NAME_MAX];
        snprintf(up_name, sizeof up_name, "%.*s.mlp.up_proj", (int)(strlen(g->name) - strlen(".mlp.gate_proj")),
                 g->name);
        for (int k = 0; k < l->n; k++) {
            struct job *u = &l->v[k];
            if (strcmp(u->name, up_name) != 0 || u->ndim != 2 || u->cols != g->cols)
                continue;
            g->parts[1] = u->parts[0];
            g->n_parts = 2;
            g->rows += u->rows;
            g->shape[0] = g->rows;
            memcpy(g->name + strlen(g->name) - strlen("gate_proj"), "gate_up_proj", strlen("gate_up_proj") + 1);
            memmove(u, u + 1, (size_t)(l->n - k - 1) * sizeof *u);
            l->n--;
            if (k < i)
                i--;
            break;
        }
    }
}

/* ---- writing one tensor ---- */

struct conv {
    const struct dg_convert_opts *o;
    struct dg_manifest_writer *w;
    int threads;
    struct dg_convert_progress prog;
    float *buf, *tbuf; /* chunk and its transpose */
    uint8_t *qbuf;
};

static uint64_t job_bytes(const struct job *j)
{
    uint64_t nel = (uint64_t)j->batch * (uint64_t)j->rows * (uint64_t)j->cols;
    const struct dg_dtype_info *info = dg_dtype_info(j->dtype);
    if (j->layout == DG_LAYOUT_FLAT)
        return nel / info->block_elems * info->block_bytes;
    uint64_t out_cols = j->transpose ? (uint64_t)j->rows : (uint64_t)j->cols;
    return nel / out_cols * dg_dtype_row_bytes(j->dtype, out_cols);
}

static dg_status emit(struct conv *c, const void *data, uint64_t len)
{
    dg_status st = dg_manifest_writer_write(c->w, data, len);
    c->prog.bytes_done += len;
    if (c->o->progress)
        c->o->progress(c->o->progress_ctx, &c->prog);
    return st;
}

/* Output rows per chunk: about CHUNK_ELEMS elements; for the flat layout a multiple of the rows that keep a
 * chunk's element count block-aligned (block / gcd(ocols, block)). */
static int64_t chunk_rows(const struct job *j)
{
    int64_t ocols = j->transpose ? j->rows : j->cols;
    int64_t step = (int64_t)(CHUNK_ELEMS / (uint64_t)ocols);
    if (step < 1)
        step = 1;
    if (j->layout == DG_LAYOUT_FLAT) {
        int64_t g = dg_dtype_info(j->dtype)->block_elems, a = ocols, b = g;
        while (b) {
            int64_t t = a % b;
            a = b, b = t;
        }
        int64_t unit = g / a;
        step = step / unit * unit;
        if (step < unit)
            step = unit;
    }
    return step;
}

static dg_status write_job(struct conv *c, const struct job *j)
{
    /* output matrix per batch: [orows, ocols] */
    int64_t orows = j->transpose ? j->cols : j->rows, ocols = j->transpose ? j->rows : j->cols;
    const struct dg_dtype_info *info = dg_dtype_info(j->dtype);
    uint64_t orow_bytes = j->layout == DG_LAYOUT_FLAT ? 0 : dg_dtype_row_bytes(j->dtype, (uint64_t)ocols);
    int64_t step = chunk_rows(j);
    const struct dg_tensor *src = j->n_parts == 1 ? j->parts[0].src : NULL;
    if (src && !j->transpose && j->layout == DG_LAYOUT_ROW && src->dtype == j->dtype && src->nbytes == j->out_bytes) {
        /* already in the wanted type (a GGUF's q8_0 into q8_0, bf16 into bf16): copy the bytes, never requantize */
        dg_status st = DG_OK;
        for (uint64_t off = 0; off < src->nbytes && st == DG_OK; off += 64u << 20) {
            if (cancelled)
                return dg_fail(DG_E_IO, "conversion interrupted; nothing was written to %s", c->o->output);
            uint64_t len = src->nbytes - off < (64u << 20) ? src->nbytes - off : 64u << 20;
            st = emit(c, (const uint8_t *)src->data + off, len);
        }
        return st;
    }
    uint8_t *colbuf = NULL, *colout = NULL; /* column layout: the whole batch's blocks, then reordered */
    uint64_t nbc = 0;
    if (j->layout == DG_LAYOUT_COLUMN) {
        nbc = (uint64_t)ocols / info->block_elems;
        colbuf = malloc((size_t)orows * orow_bytes);
        colout = malloc((size_t)orows * orow_bytes);
        if (!colbuf || !colout) {
            free(colbuf), free(colout);
            return dg_fail(DG_E_NOMEM, "convert: out of memory for %s", j->name);
        }
    }
    dg_status st = DG_OK;
    for (int64_t b = 0; b < j->batch && st == DG_OK; b++) {
        for (int64_t r0 = 0; r0 < orows && st == DG_OK; r0 += step) {
            if (cancelled) {
                st = dg_fail(DG_E_IO, "conversion interrupted; nothing was written to %s", c->o->output);
                break;
            }
            int64_t r1 = r0 + step < orows ? r0 + step : orows, nr = r1 - r0;
            struct fetch_ctx f = {.j = j, .seed = c->o->seed, .b = b, .out = c->buf};
            if (j->transpose)
                f.r0 = 0, f.r1 = j->rows, f.c0 = r0, f.c1 = r1;
            else
                f.r0 = r0, f.r1 = r1, f.c0 = 0, f.c1 = j->cols;
            if ((st = fetch(&f, c->threads)) != DG_OK)
                break;
            const float *rows = c->buf;
            if (j->transpose) { /* buf is [rows][nr] → tbuf [nr][rows] */
                for (int64_t i = 0; i < j->rows; i++)
                    for (int64_t k = 0; k < nr; k++)
                        c->tbuf[k * j->rows + i] = c->buf[i * nr + k];
                rows = c->tbuf;
            }
            uint64_t nel = (uint64_t)nr * (uint64_t)ocols, qbytes;
            if (j->layout == DG_LAYOUT_FLAT) {
                if (nel % info->block_elems) {
                    st = dg_fail(DG_E_INTERNAL, "convert: %s: flat chunk not block-aligned", j->name);
                    break;
                }
                qbytes = nel / info->block_elems * info->block_bytes;
                st = dg_quantize_rows(j->dtype, rows, c->qbuf, nel / info->block_elems, info->block_elems, c->threads);
            } else {
                qbytes = (uint64_t)nr * orow_bytes;
                st = dg_quantize_rows(j->dtype, rows, colbuf ? colbuf + (uint64_t)r0 * orow_bytes : c->qbuf,
                                      (uint64_t)nr, (uint64_t)ocols, c->threads);
            }
            if (st != DG_OK) {
                dg_fail_context(st, "tensor %s: ", j->name);
                break;
            }
            if (!colbuf)
                st = emit(c, c->qbuf, qbytes);
        }
        if (colbuf && st == DG_OK) { /* block (row r, block-column k) → position k * orows + r */
            for (uint64_t k = 0; k < nbc; k++)
                for (int64_t r = 0; r < orows; r++)
                    memcpy(colout + (k * (uint64_t)orows + (uint64_t)r) * info->block_bytes,
                           colbuf + (uint64_t)r * orow_bytes + k * info->block_bytes, info->block_bytes);
            st = emit(c, colout, (uint64_t)orows * orow_bytes);
        }
    }
    free(colbuf), free(colout);
    return st;
}

/* ---- the output folder ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static dg_status copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return DG_OK; /* optional files: absent is fine */
    FILE *out = fopen(to, "wb");
    dg_status st = DG_OK;
    if (!out)
        st = dg_fail(DG_E_IO, "%s: cannot create: %s", to, strerror(errno));
    char buf[65536];
    size_t n;
    while (st == DG_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            st = dg_fail(DG_E_IO, "%s: write failed: %s", to, strerror(errno));
    fclose(in);
    if (out && fclose(out) != 0 && st == DG_OK)
        st = dg_fail(DG_E_IO, "%s: close failed: %s", to, strerror(errno));
    return st;
}

static const char *kernel_fmt(enum dg_quant_scheme s)
{
    static const char *const f[] = {"f32", "f16-native", "f16-native", "q8_0", "q4k-fused"}; /* bf16 runs as f16 */
    return f[s];
}

static cJSON *build_manifest(const struct dg_convert_opts *o, const struct dg_hparams *hp, const struct joblist *l,
                             const char **tok_files, int n_tok, const struct dg_convert_summary *sum)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "doppler-gl");
    cJSON_AddNumberToObject(root, "formatVersion", DG_FORMAT_VERSION);
    cJSON_AddStringToObject(root, "source", o->random_config ? "random" : "model");
    cJSON_AddStringToObject(root, "sourcePath", o->random_config ? o->random_config : o->input);
    if (o->random_config)
        cJSON_AddNumberToObject(root, "randomSeed", (double)o->seed);
    cJSON_AddItemToObject(root, "config", dg_hparams_to_json(hp));
    cJSON *tok = cJSON_AddObjectToObject(root, "tokenizer");
    cJSON *files = cJSON_AddArrayToObject(tok, "files");
    for (int i = 0; i < n_tok; i++)
        cJSON_AddItemToArray(files, cJSON_CreateString(tok_files[i]));
    cJSON_AddNumberToObject(tok, "bosId", hp->bos_id);
    cJSON *eos = cJSON_AddArrayToObject(tok, "eosIds");
    for (int i = 0; i < hp->n_eos; i++)
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(hp->eos_ids[i]));

    cJSON *q = cJSON_AddObjectToObject(root, "quantization");
    cJSON_AddStringToObject(q, "scheme", dg_quant_scheme_name(o->scheme));
    cJSON *per = cJSON_AddObjectToObject(q, "dtypes");
    uint64_t elems = 0;
    for (int d = 0; d < DG_DT_COUNT; d++) {
        if (!sum->tensors[d])
            continue;
        cJSON *e = cJSON_AddObjectToObject(per, dg_dtype_info((enum dg_dtype)d)->name);
        cJSON_AddNumberToObject(e, "tensors", sum->tensors[d]);
        cJSON_AddNumberToObject(e, "bytes", (double)sum->bytes[d]);
        cJSON_AddNumberToObject(e, "params", (double)sum->elems[d]);
        elems += sum->elems[d];
    }
    cJSON_AddNumberToObject(q, "params", (double)elems);
    cJSON_AddNumberToObject(q, "bytes", (double)sum->total_bytes);
    cJSON_AddNumberToObject(q, "bitsPerWeight", elems ? round(8000.0 * (double)sum->total_bytes / (double)elems) / 1000 : 0);
    cJSON *fb = cJSON_AddArrayToObject(q, "fallbacks");
    for (int i = 0; i < l->n; i++) {
        const struct job *j = &l->v[i];
        if (j->dtype == j->wanted)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "tensor", j->name);
        cJSON_AddStringToObject(e, "wanted", dg_dtype_info(j->wanted)->name);
        cJSON_AddStringToObject(e, "used", dg_dtype_info(j->dtype)->name);
        char why[96];
        snprintf(why, sizeof why, "row length %lld is not a multiple of %u", (long long)(j->transpose ? j->rows : j->cols),
                 dg_dtype_info(j->wanted)->block_elems);
        cJSON_AddStringToObject(e, "reason", why);
        cJSON_AddItemToArray(fb, e);
    }

    static const char *const lay[] = {"row_wise", "column_wise", "flat"};
    cJSON *layout = cJSON_AddObjectToObject(root, "layout");
    cJSON_AddStringToObject(layout, "q4kLayout", lay[o->q4k_layout]);
    cJSON_AddStringToObject(layout, "defaultWeightLayout", o->transpose ? "column" : "row");
    cJSON_AddBoolToObject(layout, "weightsTransposed", o->transpose);
    cJSON_AddBoolToObject(layout, "gateUpFused", o->fuse_gate_up);

    bool odd_blocks = false;
    int64_t max_row_bytes = 0;
    for (int i = 0; i < l->n; i++) {
        const struct dg_dtype_info *info = dg_dtype_info(l->v[i].dtype);
        odd_blocks |= info->block_bytes % 4 != 0;
        int64_t oc = l->v[i].transpose ? l->v[i].rows : l->v[i].cols;
        int64_t rb = (int64_t)dg_dtype_row_bytes(l->v[i].dtype, (uint64_t)oc);
        if (rb > max_row_bytes)
            max_row_bytes = rb;
    }
    cJSON *hints = cJSON_AddObjectToObject(root, "kernelHints");
    cJSON_AddStringToObject(hints, "matmul", o->scheme == DG_Q_Q4_K_M || o->scheme == DG_Q_Q8_0 ? "fused-dequant"
                                                                                                : "native");
    cJSON_AddBoolToObject(hints, "byteAddressedBlocks", odd_blocks);
    cJSON_AddNumberToObject(hints, "maxRowBytes", (double)max_row_bytes);
    cJSON_AddNumberToObject(hints, "tensorAlignment", DG_SHARD_ALIGN);

    cJSON *inf = cJSON_AddObjectToObject(root, "inference");
    char kp[64];
    snprintf(kp, sizeof kp, "%s-%s", dg_arch_name(hp->arch), kernel_fmt(o->scheme));
    cJSON_AddStringToObject(inf, "kernelPath", kp);
    return root;
}

/* --quantize keep: matrices stay in their source type (vectors and routers f32, as every scheme has them). */
static dg_status keep_type(const struct dg_convert_opts *o, struct job *j)
{
    enum dg_dtype sd = j->parts[0].src->dtype;
    if (j->ndim < 2 || ends_with(j->name, "mlp.router"))
        return DG_OK;
    bool same = j->n_parts == 1 || (j->parts[1].src && j->parts[1].src->dtype == sd);
    if (dg_dtype_info(sd)->quantized &&
        (j->transpose || !same || j->n_parts > 1 || (sd == DG_DT_Q4_K && o->q4k_layout != DG_LAYOUT_ROW)))
        return dg_fail(DG_E_USAGE, "convert: tensor %s is %s; keeping it as stored rules out %s (that would "
                       "requantize it): give --quantize TYPE to requantize, or drop the option", j->name,
                       dg_dtype_info(sd)->name, j->transpose ? "--transpose-weights" : j->n_parts > 1 ?
                       "--fuse-gate-up" : "--q4k-layout other than row_wise");
    if (!same) /* float gate and up of different types: the wider one holds both exactly */
        sd = DG_DT_F32;
    j->dtype = j->wanted = sd;
    return DG_OK;
}

/* The scheme a model of kept types amounts to (manifest `quantization.scheme` and the kernel path hint). */
static enum dg_quant_scheme kept_scheme(const struct joblist *l)
{
    uint64_t by[DG_DT_COUNT] = {0};
    for (int i = 0; i < l->n; i++)
        by[l->v[i].dtype] += l->v[i].out_bytes;
    if (by[DG_DT_Q4_K] || by[DG_DT_Q5_K] || by[DG_DT_Q4_0] || by[DG_DT_Q4_1] || by[DG_DT_Q5_0] || by[DG_DT_Q5_1] ||
        by[DG_DT_Q6_K] || by[DG_DT_MXFP4])
        return DG_Q_Q4_K_M;
    if (by[DG_DT_Q8_0])
        return DG_Q_Q8_0;
    if (by[DG_DT_BF16] >= by[DG_DT_F16] && by[DG_DT_BF16])
        return DG_Q_BF16;
    return by[DG_DT_F16] ? DG_Q_F16 : DG_Q_F32;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static dg_status load_random_config(const char *path, struct dg_hparams *hp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dg_fail(DG_E_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(1 << 22);
    size_t n = buf ? fread(buf, 1, (1 << 22) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", path);
    /* generation_config.json beside the config, when there is one, for the EOS ids */
    char gp[4200], *gen = NULL;
    size_t gn = 0;
    snprintf(gp, sizeof gp, "%s", path);
    char *slash = strrchr(gp, '/');
    snprintf(slash ? slash + 1 : gp, sizeof gp - (size_t)(slash ? slash + 1 - gp : 0), "generation_config.json");
    FILE *g = fopen(gp, "rb");
    if (g) {
        gen = malloc(1 << 20);
        gn = gen ? fread(gen, 1, (1 << 20) - 1, g) : 0;
        fclose(g);
    }
    dg_status st = dg_hf_config_parse(path, buf, n, gen ? gp : NULL, gen, gn, hp);
    free(buf);
    free(gen);
    return st;
}

dg_status dg_convert(const struct dg_convert_opts *o, struct dg_convert_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    cancelled = 0;
    double t0 = now_s();
    struct stat sb;
    if (!o->force && lstat(o->output, &sb) == 0)
        return dg_fail(DG_E_USAGE, "%s already exists (use --force to replace it)", o->output);
    if ((unsigned)o->q4k_layout > DG_LAYOUT_FLAT || (unsigned)o->scheme > DG_Q_Q4_K_M)
        return dg_fail(DG_E_USAGE, "convert: bad layout or scheme");

    struct dg_model m;
    memset(&m, 0, sizeof m);
    bool have_model = false;
    struct dg_hparams hp;
    struct joblist l = {0};
    dg_status st;
    if (o->random_config) {
        st = load_random_config(o->random_config, &hp);
        if (st == DG_OK)
            st = random_jobs(&hp, &l);
    } else {
        st = dg_model_open(o->input, &m);
        have_model = st == DG_OK;
        if (st == DG_OK) {
            hp = m.hp;
            st = model_jobs(&m, &l);
        }
    }
    if (st != DG_OK) {
        free(l.v);
        if (have_model)
            dg_model_close(&m);
        return st;
    }
    if (o->fuse_gate_up)
        fuse_gate_up(&l);

    uint64_t total = 0, max_chunk = 0;
    for (int i = 0; i < l.n; i++) {
        struct job *j = &l.v[i];
        j->transpose = o->transpose && is_linear_weight(j->name, j->ndim);
        int64_t oshape[DG_MAX_DIMS];
        memcpy(oshape, j->shape, sizeof oshape);
        if (j->transpose) {
            oshape[j->ndim - 1] = j->rows;
            oshape[j->ndim - 2] = j->cols;
        }
        j->dtype = dg_convert_pick_dtype(o->scheme, &hp, j->name, j->ndim, oshape, o->q4k_layout, &j->wanted);
        if (o->keep_types && j->parts[0].src && (st = keep_type(o, j)) != DG_OK)
            break;
        j->layout = j->dtype == DG_DT_Q4_K ? o->q4k_layout : DG_LAYOUT_ROW;
        j->out_bytes = job_bytes(j);
        total += j->out_bytes;
        uint64_t chunk = (uint64_t)chunk_rows(j) * (uint64_t)(j->transpose ? j->rows : j->cols);
        if (chunk > max_chunk)
            max_chunk = chunk;
    }

    if (st != DG_OK) {
        free(l.v);
        if (have_model)
            dg_model_close(&m);
        return st;
    }
    struct dg_convert_opts eff = *o; /* what the manifest says: the scheme the kept types amount to */
    if (o->keep_types)
        eff.scheme = kept_scheme(&l);
    o = &eff;

    /* the temporary folder beside OUTPUT */
    char tmp[4200], outcopy[4096];
    snprintf(outcopy, sizeof outcopy, "%s", o->output);
    size_t ol = strlen(outcopy);
    while (ol > 1 && outcopy[ol - 1] == '/')
        outcopy[--ol] = 0;
    char *base = strrchr(outcopy, '/');
    if (base)
        snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp-%d", (int)(base - outcopy), outcopy, base + 1, (int)getpid());
    else
        snprintf(tmp, sizeof tmp, ".%s.tmp-%d", outcopy, (int)getpid());
    if (mkdir(tmp, 0755) != 0) {
        st = dg_fail(DG_E_IO, "%s: cannot create the temporary output folder: %s", tmp, strerror(errno));
        free(l.v);
        if (have_model)
            dg_model_close(&m);
        return st;
    }

    struct conv c = {.o = o};
    c.threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c.threads < 1)
        c.threads = 1;
    c.prog.n_tensors = l.n;
    c.prog.total_bytes = total;
    c.buf = malloc(max_chunk * sizeof(float));
    c.tbuf = o->transpose ? malloc(max_chunk * sizeof(float)) : NULL;
    c.qbuf = malloc(max_chunk * sizeof(float));
    if (!c.buf || !c.qbuf || (o->transpose && !c.tbuf))
        st = dg_fail(DG_E_NOMEM, "convert: out of memory for %llu-element chunks", (unsigned long long)max_chunk);
    if (st == DG_OK)
        st = dg_manifest_writer_open(&c.w, tmp, o->shard_size ? o->shard_size : DEFAULT_SHARD_SIZE);
    for (int i = 0; i < l.n && st == DG_OK; i++) {
        struct job *j = &l.v[i];
        struct dg_tensor meta = {.dtype = j->dtype, .layout = j->layout, .ndim = j->ndim, .nbytes = j->out_bytes,
                                 .transposed = j->transpose};
        snprintf(meta.name, sizeof meta.name, "%s", j->name);
        memcpy(meta.shape, j->shape, sizeof meta.shape);
        if (j->transpose) {
            meta.shape[j->ndim - 1] = j->rows;
            meta.shape[j->ndim - 2] = j->cols;
        }
        if ((st = dg_manifest_writer_begin(c.w, &meta)) == DG_OK && (st = write_job(&c, j)) == DG_OK)
            st = dg_manifest_writer_end(c.w);
        uint64_t nel = (uint64_t)j->batch * (uint64_t)j->rows * (uint64_t)j->cols;
        sum->tensors[j->dtype]++;
        sum->bytes[j->dtype] += j->out_bytes;
        sum->elems[j->dtype] += nel;
        sum->params += nel;
        sum->total_bytes += j->out_bytes;
        sum->n_fallbacks += j->dtype != j->wanted;
        c.prog.tensors_done = i + 1;
        if (o->progress)
            o->progress(o->progress_ctx, &c.prog);
    }
    sum->n_tensors = l.n;

    /* tokenizer and generation config travel with the model */
    const char *tok_names[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    const char *tok_present[3];
    int n_tok = 0;
    char srcdir[4096];
    if (o->random_config) {
        snprintf(srcdir, sizeof srcdir, "%s", o->random_config);
        char *s = strrchr(srcdir, '/');
        if (s)
            *s = 0;
        else
            snprintf(srcdir, sizeof srcdir, ".");
    } else
        snprintf(srcdir, sizeof srcdir, "%s", o->input);
    struct stat ssb;
    bool src_is_dir = stat(srcdir, &ssb) == 0 && S_ISDIR(ssb.st_mode);
    for (int i = 0; i < 3 && st == DG_OK && src_is_dir; i++) {
        char from[8400], to[8400];
        snprintf(from, sizeof from, "%s/%s", srcdir, tok_names[i]);
        snprintf(to, sizeof to, "%s/%s", tmp, tok_names[i]);
        if (access(from, R_OK) != 0)
            continue;
        st = copy_file(from, to);
        tok_present[n_tok++] = tok_names[i];
    }
    if (st == DG_OK) {
        cJSON *root = build_manifest(o, &hp, &l, tok_present, n_tok, sum);
        st = dg_manifest_writer_finish(c.w, root);
        c.w = NULL;
    }
    dg_manifest_writer_abort(c.w);
    free(c.buf), free(c.tbuf), free(c.qbuf);
    free(l.v);
    if (have_model)
        dg_model_close(&m);

    if (st == DG_OK) {
        char old[4300];
        snprintf(old, sizeof old, "%s.old-%d", tmp, (int)getpid());
        bool moved = false;
        if (o->force && lstat(o->output, &sb) == 0) {
            if (rename(o->output, old) != 0)
                st = dg_fail(DG_E_IO, "%s: cannot move the old output aside: %s", o->output, strerror(errno));
            moved = st == DG_OK;
        }
        if (st == DG_OK && rename(tmp, o->output) != 0) {
            st = dg_fail(DG_E_IO, "%s: cannot rename %s into place: %s", o->output, tmp, strerror(errno));
            if (moved)
                rename(old, o->output);
            moved = false;
        }
        if (moved)
            rm_tree(old);
    }
    if (st != DG_OK)
        rm_tree(tmp);
    sum->seconds = now_s() - t0;
    return st;
}
