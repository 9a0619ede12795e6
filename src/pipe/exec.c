/* exec.c: builds the dispatch lists of a kernel path for a model (once, at load) and replays them.
 *
 * Each resolved step becomes, per layer, one dispatch record {program, SSBO ranges, row uniforms, group
 * counts, barrier-before} (one per row range when a weight is split). Auto knobs (shapes, eps, window...)
 * come from the model; dispatch sizes and bytes moved come from the registry's formulas. A barrier goes
 * before a dispatch only when it touches a slot in a way that conflicts with a dispatch since the last
 * barrier (read-after-write, write-after-write, write-after-read). Per token the CPU writes one small
 * uniform block and the token ids, then replays the records. */
#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/log.h"
#include "pipe/exec_internal.h"
#include <GLES2/gl2ext.h> /* GL_TIME_ELAPSED_EXT (the replay diagnostics) */

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define MAX_ENV 48
#define REPLAY_BINDINGS 32 /* binding points whose bound range the replay remembers */
#define REPLAY_PROGRAMS 64 /* programs whose row0 / nrows uniforms the replay remembers */
#define MAX_SLOTS 24
#define MAX_TENSORS 1024

struct env_var {
    char name[DG_KP_NAME];
    int64_t v;
};

struct slot {
    char name[DG_KP_NAME];
    struct dg_buffer *buf;
    uint64_t bytes;
    int64_t width; /* elements per token */
};

/* what the replay loop last bound at a binding point, and last set in a program's uniforms */
struct bound_range {
    const struct dg_buffer *buf;
    uint64_t off, size;
};
struct prog_uniforms {
    GLuint prog;
    uint32_t row0, nrows;
};

struct bindrec {
    GLuint binding;
    const struct dg_buffer *buf;
    uint64_t off, size;
    GLuint view;     /* non-zero: the range is also bound as this image view (plan imageReads) */
    GLuint unit;     /* its image unit */
    GLenum view_fmt; /* GL_RGBA32UI or GL_RGBA32F */
};

struct disp {
    GLuint prog;
    const struct dg_kp_kernel *k;
    const struct dg_kp_entry *e;
    char op[DG_KP_NAME]; /* a copy: the resolved steps it comes from are freed after the build */
    struct bindrec b[DG_KP_MAX_BINDINGS];
    int nb;
    GLint loc_row0, loc_nrows;
    GLint loc_t0; /* u_t0 (matmul's decode GEMVs: the token row they read and write), -1 without */
    uint32_t row0, nrows;
    bool barrier;
    GLuint groups[3];
    uint64_t bytes;
    uint64_t wbytes; /* weight bytes this dispatch reads per token (MoE experts: the selected ones only) */
    struct env_var env[MAX_ENV];
    int nenv;
    int layer;
    int capture;            /* > 0: after this dispatch, copy capture_slot into hidden[capture - 1] */
    struct slot *capture_slot;
    /* > 0: replayed only in passes of at least min_T / at most max_T tokens. A DQ step has two variants in
     * the prefill list, the quantized kernel for short passes and dequant + f16 kernel for long ones. */
    int min_T, max_T;
};

struct phase {
    struct disp *d;
    int n, cap;
    int cur_T;
    int per_layer0; /* dispatches in layer 0 */
};

struct dg_exec {
    struct dg_gl *gl;
    const struct dg_model *m;
    const struct dg_kp_registry *reg;
    const struct dg_kpath *path;
    struct dg_kplan plan;
    int ctx, max_batch, pos;
    bool bf16_buffers;
    bool kv_f16;
    bool split_blocks; /* Q8_0 / Q6_K matrices uploaded in the split layout (decode_wants_split_blocks) */
    struct dg_gpu_tensor *tensors;
    int n_tensors;
    struct slot slots[MAX_SLOTS];
    int n_slots;
    struct dg_buffer **kcache, **vcache;
    struct dg_buffer *rope_global, *rope_local;
    int rope_half;
    struct dg_buffer *ubo;
    struct phase ph[2]; /* 0 decode, 1 prefill */
    /* The decode list's LM head dispatches (one per row range), replayed in a prefill pass whose logits
     * nobody reads back in place of the prefill's: only the last token's row is then computed (its
     * sampling reads nothing else), a GEMV instead of a vocabulary-wide GEMM over every prompt token.
     * lm_first / lm_count: where the prefill list's own LM head dispatches are. */
    struct phase lm_last;
    int lm_first, lm_count;
    uint64_t weight_bytes, kv_bytes, slot_bytes;
    int last_T_ids;
    uint64_t submit_ns, submit_passes; /* CPU time issuing decode passes (the replay loop), and their count */
    /* image views of bound ranges (plan imageReads), created at build and shared by the steps binding the
     * same range (every GEMV of a layer reads one x slot) */
    struct image_view {
        const struct dg_buffer *buf;
        uint64_t off, size;
        GLenum fmt;
        GLuint id;
    } *views;
    int n_views, cap_views;
    /* DQ prefill steps: f16 copies of quantized layer weights, written by kernel dequant into two sets of
     * two regions (a step's weight and, for gate/up, its second weight). Steps alternate between the sets,
     * so a step's dequant has no hazard with the previous step's matmul and the two can overlap. Regions
     * grow at build as steps need; a buffer outgrown stays alive for the records that point at it. */
    struct dg_buffer *dq[2][2];
    uint64_t dq_size[2][2];
    struct dg_buffer *dq_old[32];
    int n_dq_old, dq_set;
};

/* ---- small helpers ---- */

/* The image view of [off, off + size) of buf as fmt texels, created on first use. */
static dg_status image_view_get(struct dg_exec *ex, const struct dg_buffer *buf, uint64_t off, uint64_t size,
                                GLenum fmt, GLuint *out)
{
    for (int i = 0; i < ex->n_views; i++) {
        const struct image_view *v = &ex->views[i];
        if (v->buf == buf && v->off == off && v->size == size && v->fmt == fmt) {
            *out = v->id;
            return DG_OK;
        }
    }
    if (ex->n_views == ex->cap_views) {
        int cap = ex->cap_views ? 2 * ex->cap_views : 64;
        struct image_view *nv = realloc(ex->views, (size_t)cap * sizeof *nv);
        if (!nv)
            return dg_fail(DG_E_NOMEM, "out of memory for image views");
        ex->views = nv;
        ex->cap_views = cap;
    }
    dg_status st = dg_image_view_create(ex->gl, buf, off, size, fmt, out);
    if (st)
        return st;
    ex->views[ex->n_views++] = (struct image_view){buf, off, size, fmt, *out};
    dg_gl_barrier_images(ex->gl, true);
    return DG_OK;
}

static uint64_t round16(uint64_t n) { return (n + 15) / 16 * 16; }

static bool reads_images(const struct disp *d)
{
    for (int b = 0; b < d->nb; b++)
        if (d->b[b].view)
            return true;
    return false;
}

static const struct env_var *env_find(const struct env_var *env, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(env[i].name, name) == 0)
            return &env[i];
    return NULL;
}

struct lookup_ctx {
    const struct env_var *env;
    int n;
    int64_t T;
    int64_t n_override; /* >= 0: value of N for a split dispatch */
};

static bool lookup(void *vctx, const char *name, int64_t *out)
{
    struct lookup_ctx *c = vctx;
    if (strcmp(name, "T") == 0) {
        *out = c->T;
        return true;
    }
    if (strcmp(name, "N") == 0 && c->n_override >= 0) {
        *out = c->n_override;
        return true;
    }
    const struct env_var *v = env_find(c->env, c->n, name);
    if (!v)
        return false;
    *out = v->v;
    return true;
}

static dg_status eval_groups(struct disp *d, int64_t T)
{
    struct lookup_ctx c = {d->env, d->nenv, T, d->nrows && d->loc_row0 >= 0 ? (int64_t)d->nrows : -1};
    for (int i = 0; i < 3; i++) {
        int64_t v;
        char what[128];
        snprintf(what, sizeof what, "registry %s.entries.%s.dispatch[%d]", d->k->name, d->e->name, i);
        dg_status st = dg_expr_eval(d->e->dispatch[i], lookup, &c, what, &v);
        if (st)
            return st;
        if (v < 1 || v > 65535)
            return dg_fail(DG_E_UNSUPPORTED, "%s: %lld workgroups (expected 1..65535)", what, (long long)v);
        d->groups[i] = (GLuint)v;
    }
    int64_t b = 0;
    char what[128];
    snprintf(what, sizeof what, "registry %s.bytes", d->k->name);
    if (dg_expr_eval(d->k->bytes, lookup, &c, what, &b) == DG_OK && b > 0)
        d->bytes = (uint64_t)b;
    else
        dg_clear_error();
    return DG_OK;
}

static struct dg_gpu_tensor *tensor_find(struct dg_exec *ex, const char *name)
{
    for (int i = 0; i < ex->n_tensors; i++)
        if (strcmp(ex->tensors[i].name, name) == 0)
            return &ex->tensors[i];
    return NULL;
}

/* Uploads `t` as the next GPU tensor: f32 when `f32` (routers, biases), else the path's weight format;
 * a bias is a vector to the kernels whatever its stored shape. */
static struct dg_gpu_tensor *tensor_add(struct dg_exec *ex, const struct dg_tensor *t, bool f32, bool bias,
                                        dg_status *st)
{
    if (ex->n_tensors >= MAX_TENSORS) {
        *st = dg_fail(DG_E_UNSUPPORTED, "more than %d weight tensors", MAX_TENSORS);
        return NULL;
    }
    struct dg_gpu_tensor *g = &ex->tensors[ex->n_tensors];
    *st = dg_exec_upload_tensor(ex->gl, f32 ? "f32" : ex->path->weight_format, t, ex->split_blocks, g);
    if (*st)
        return NULL;
    if (bias)
        g->ndim = 1;
    ex->n_tensors++;
    ex->weight_bytes += g->row_bytes * (uint64_t)g->rows;
    return g;
}

static struct dg_gpu_tensor *tensor_get(struct dg_exec *ex, const char *name, dg_status *st)
{
    *st = DG_OK;
    struct dg_gpu_tensor *g = tensor_find(ex, name);
    if (g)
        return g;
    const struct dg_tensor *t = dg_model_find(ex->m, name);
    if (!t)
        return NULL;
    /* MoE: the router stays f32 in every format (a rounded router can flip near-tied expert choices, as
     * llama.cpp also keeps ffn_gate_inp in f32); stacked expert biases [E, out] are vectors to the kernels. */
    size_t nl = strlen(name);
    bool router = nl >= 11 && !strcmp(name + nl - 11, ".mlp.router");
    bool bias = nl >= 5 && !strcmp(name + nl - 5, ".bias");
    return tensor_add(ex, t, router || bias, bias, st);
}

/* The q, k and v projections (or their biases) of a layer as one tensor, rows in that order, for
 * matmul_qkv (n 3), or q and k alone for matmul_qk (n 2). The source bytes are concatenated row-major and
 * uploaded as one tensor, so conversion or quantization at load is the same per row as for the parts
 * apart; the parts are never uploaded alone when every step that reads them is fused. NULL with *st set
 * when they differ in format or width. */
static struct dg_gpu_tensor *tensor_get_qkv(struct dg_exec *ex, const char *names[3], int n, dg_status *st)
{
    *st = DG_OK;
    char key[DG_TENSOR_NAME_MAX];
    if (snprintf(key, sizeof key, "%s+%s", names[0], n == 3 ? "kv" : "k") >= (int)sizeof key) {
        *st = dg_fail(DG_E_UNSUPPORTED, "tensor %s: name too long to fuse q/k/v", names[0]);
        return NULL;
    }
    struct dg_gpu_tensor *got = tensor_find(ex, key);
    if (got)
        return got;
    const struct dg_tensor *t[3];
    uint64_t nbytes = 0;
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        t[i] = dg_model_find(ex->m, names[i]);
        if (!t[i] || t[i]->dtype != t[0]->dtype || t[i]->ndim != t[0]->ndim || t[i]->layout != t[0]->layout ||
            t[i]->transposed || (t[i]->ndim >= 2 && t[i]->shape[t[i]->ndim - 1] != t[0]->shape[t[0]->ndim - 1])) {
            *st = dg_fail(DG_E_INTERNAL, "tensors %s, %s%s%s: cannot be fused (missing, or different format or width)",
                          names[0], names[1], n == 3 ? ", " : "", n == 3 ? names[2] : "");
            return NULL;
        }
        nbytes += t[i]->nbytes;
        rows += t[i]->ndim >= 2 ? dg_tensor_nelems(t[i]) / t[i]->shape[t[i]->ndim - 1] : t[i]->shape[0];
    }
    unsigned char *data = malloc(nbytes ? nbytes : 1);
    if (!data) {
        *st = dg_fail(DG_E_NOMEM, "tensor %s: out of memory", key);
        return NULL;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(data + off, t[i]->data, t[i]->nbytes);
        off += t[i]->nbytes;
    }
    struct dg_tensor cat = *t[0];
    snprintf(cat.name, sizeof cat.name, "%s", key);
    cat.ndim = t[0]->ndim >= 2 ? 2 : 1;
    cat.shape[0] = rows;
    if (cat.ndim == 2)
        cat.shape[1] = t[0]->shape[t[0]->ndim - 1];
    cat.data = data;
    cat.nbytes = nbytes;
    bool bias = cat.ndim == 1;
    struct dg_gpu_tensor *g = tensor_add(ex, &cat, bias, bias, st);
    free(data);
    return g;
}

/* Elements per token of a slot (attn_part depends on the step's NSPLIT). */
static int64_t slot_width(const struct dg_hparams *hp, const char *name, int64_t nsplit)
{
    int64_t hd = hp->head_dim;
    if (!strcmp(name, "token_ids") || !strcmp(name, "token_out"))
        return 1;
    if (!strcmp(name, "hidden_state") || !strcmp(name, "norm_out") || !strcmp(name, "proj_out"))
        return hp->hidden;
    if (!strcmp(name, "q") || !strcmp(name, "attn_out"))
        return hp->n_heads * hd;
    if (!strcmp(name, "k") || !strcmp(name, "v"))
        return hp->n_kv_heads * hd;
    if (!strcmp(name, "attn_part"))
        return hp->n_heads * nsplit * (hd + 2);
    if (!strcmp(name, "attn_count"))
        return hp->n_heads;
    if (!strcmp(name, "gate") || !strcmp(name, "up") || !strcmp(name, "ffn_act"))
        return hp->intermediate;
    if (!strcmp(name, "logits"))
        return hp->vocab;
    if (!strcmp(name, "router_logits"))
        return hp->n_experts > 0 ? hp->n_experts : 1;
    if (!strcmp(name, "moe_sel"))
        return 2 * (hp->n_experts_used > 0 ? hp->n_experts_used : 1);
    if (!strcmp(name, "moe_act"))
        return (int64_t)(hp->n_experts_used > 0 ? hp->n_experts_used : 1) * (hp->moe_intermediate > 0 ? hp->moe_intermediate : 1);
    if (!strcmp(name, "moe_groups")) /* NE counts + NE lists of T: 2 * NE per token holds it for T >= 1 */
        return 2 * (int64_t)(hp->n_experts > 0 ? hp->n_experts : 1);
    if (!strcmp(name, "moe_out"))
        return (int64_t)(hp->n_experts_used > 0 ? hp->n_experts_used : 1) * hp->hidden;
    return 0;
}

static dg_status slot_get(struct dg_exec *ex, const char *name, int64_t nsplit, struct slot **out)
{
    int64_t w = slot_width(&ex->m->hp, name, nsplit);
    for (int i = 0; i < ex->n_slots; i++)
        if (strcmp(ex->slots[i].name, name) == 0) {
            if (ex->slots[i].width < w)
                return dg_fail(DG_E_UNSUPPORTED, "slot %s: a later step needs %lld elements per token, it was "
                               "allocated for %lld", name, (long long)w, (long long)ex->slots[i].width);
            *out = &ex->slots[i];
            return DG_OK;
        }
    if (w <= 0)
        return dg_fail(DG_E_INTERNAL, "slot %s has no size", name);
    if (ex->n_slots >= MAX_SLOTS)
        return dg_fail(DG_E_INTERNAL, "too many slots");
    struct slot *s = &ex->slots[ex->n_slots];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->width = w;
    s->bytes = ((uint64_t)w * (uint64_t)ex->max_batch * 4 + 15) / 16 * 16;
    /* attention_fused's per-head counters start at zero; the kernel leaves them at zero */
    void *zero = !strcmp(name, "attn_count") ? calloc(1, s->bytes) : NULL;
    if (!strcmp(name, "attn_count") && !zero)
        return dg_fail(DG_E_NOMEM, "slot %s: out of memory", name);
    dg_status st = dg_buffer_alloc(ex->gl, s->bytes, zero, &s->buf);
    free(zero);
    if (st)
        return dg_fail_context(st, "slot %s: ", name);
    ex->n_slots++;
    ex->slot_bytes += s->bytes;
    *out = s;
    return DG_OK;
}

static bool is_kv(const char *slot) { return !strcmp(slot, "k_cache") || !strcmp(slot, "v_cache"); }

/* ---- building one step ---- */

struct hazards {
    char written[MAX_SLOTS + 6][DG_KP_NAME], read[MAX_SLOTS + 6][DG_KP_NAME]; /* + the 4 DQ regions */
    int nw, nr;
};

static bool in_set(char set[][DG_KP_NAME], int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(set[i], s))
            return true;
    return false;
}

static void add_set(char set[][DG_KP_NAME], int *n, const char *s)
{
    if (!in_set(set, *n, s) && *n < MAX_SLOTS + 6)
        snprintf(set[(*n)++], DG_KP_NAME, "%s", s);
}

struct stepctx {
    struct dg_exec *ex;
    const struct dg_kp_step *s;
    const struct dg_kp_kernel *k;
    int layer;
    const char *where;
    struct dg_gpu_tensor *w[DG_KP_MAX_BINDINGS]; /* by binding index */
    struct slot *sl[DG_KP_MAX_BINDINGS];
    const char *slotname[DG_KP_MAX_BINDINGS];
    struct dg_gpu_tensor *primary;
    int64_t in_width; /* first input slot's width */
};

static void fmt_float(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.9g", v);
    if (!strpbrk(buf, ".eEn"))
        strncat(buf, ".0", n - strlen(buf) - 1);
}

static bool hparam_ref(const struct dg_hparams *hp, const char *name, char *val, size_t n)
{
    double v;
    if (!strcmp(name, "final_softcap"))
        v = hp->final_softcap;
    else if (!strcmp(name, "attn_softcap"))
        v = hp->attn_softcap;
    else if (!strcmp(name, "embed_scale"))
        v = hp->embed_scale;
    else if (!strcmp(name, "norm_eps"))
        v = hp->norm_eps;
    else if (!strcmp(name, "attn_scale"))
        v = hp->attn_scale;
    else if (!strcmp(name, "sliding_window")) {
        snprintf(val, n, "%d", hp->sliding_window);
        return true;
    } else
        return false;
    fmt_float(val, n, v);
    return true;
}

static dg_status auto_knob(struct stepctx *c, const char *name, char *val, size_t n)
{
    const struct dg_hparams *hp = &c->ex->m->hp;
    const struct dg_gpu_tensor *p = c->primary;
    const struct dg_rope *rope = hp->layer_sliding[c->layer < 0 ? 0 : c->layer] ? &hp->rope_local : &hp->rope;
    int rot = rope->rotary_dim > 0 ? rope->rotary_dim : hp->head_dim;
#define SETI(x) snprintf(val, n, "%lld", (long long)(x))
    if (!strcmp(name, "WTYPE")) {
        if (!p)
            return dg_fail(DG_E_INTERNAL, "%s: WTYPE without a weight", c->where);
        SETI(p->wtype);
    } else if (!strcmp(name, "WROWBYTES")) {
        SETI(p ? p->row_bytes : 0);
    } else if (!strcmp(name, "N")) {
        if (p && p->ndim >= 2)
            SETI(p->rows);
        else if (c->k->n_bindings > 0 && c->sl[0])
            SETI(c->sl[0]->width);
        else
            return dg_fail(DG_E_INTERNAL, "%s: cannot size N", c->where);
    } else if (!strcmp(name, "K")) {
        SETI(p ? p->cols : 0);
    } else if (!strcmp(name, "N1") || !strcmp(name, "N2")) {
        /* matmul_qkv: the widths of its first two output slots (q, k) */
        const char *role = name[1] == '1' ? "out" : "out2";
        int64_t w = 0;
        for (int i = 0; i < c->k->n_bindings; i++)
            if (!strcmp(c->k->bindings[i].role, role) && c->sl[i])
                w = c->sl[i]->width;
        if (w <= 0)
            return dg_fail(DG_E_INTERNAL, "%s: cannot size %s", c->where, name);
        SETI(w);
    } else if (!strcmp(name, "DIM")) {
        SETI(p ? (p->ndim >= 2 ? p->cols : p->cols * p->rows) : hp->hidden);
    } else if (!strcmp(name, "ROWS")) {
        int64_t dim = p ? p->cols * (p->ndim >= 2 ? 1 : p->rows) : hp->hidden;
        if (dim <= 0 || c->in_width % dim)
            return dg_fail(DG_E_FORMAT, "%s: input width %lld is not a multiple of the norm width %lld", c->where,
                           (long long)c->in_width, (long long)dim);
        SETI(c->in_width / dim);
    } else if (!strcmp(name, "EPS")) {
        fmt_float(val, n, hp->norm_eps);
    } else if (!strcmp(name, "GEMMA")) {
        SETI(hp->norm_style == DG_NORM_RMS_GEMMA);
    } else if (!strcmp(name, "LAYERNORM")) {
        SETI(hp->norm_style == DG_NORM_LAYER);
    } else if (!strcmp(name, "HAS_BIAS") || !strcmp(name, "HAS_NORM_A") || !strcmp(name, "HAS_BIAS2") ||
               !strcmp(name, "HAS_SINKS") || !strcmp(name, "HAS_NORM_IN") || !strcmp(name, "HAS_QK_NORM")) {
        const char *role = !strcmp(name, "HAS_BIAS")      ? "bias"
                           : !strcmp(name, "HAS_BIAS2")   ? "up_bias"
                           : !strcmp(name, "HAS_SINKS")   ? "sinks"
                           : !strcmp(name, "HAS_NORM_IN") ? "norm_in"
                           : !strcmp(name, "HAS_QK_NORM") ? "q_norm"
                                                          : "post_norm";
        bool has = false;
        for (int i = 0; i < c->k->n_bindings; i++)
            if (!strcmp(c->k->bindings[i].role, role))
                has = c->w[i] != NULL;
        if (has && !strcmp(role, "norm_in") && hp->norm_style == DG_NORM_LAYER)
            return dg_fail(DG_E_FORMAT, "%s: a norm_in weight fuses an RMS norm into kernel %s, but this model "
                           "normalizes with LayerNorm (use a separate rmsnorm step)", c->where, c->k->name);
        SETI(has);
    } else if (!strcmp(name, "SCALE")) {
        double es = hp->embed_scale;
        if (c->ex->bf16_buffers && hp->arch == DG_ARCH_GEMMA3)
            es = dg_bf16_to_f32(dg_f32_to_bf16(hp->embed_scale));
        fmt_float(val, n, !strcmp(c->s->op, "embed") ? es : hp->attn_scale);
    } else if (!strcmp(name, "NH")) {
        SETI(hp->n_heads);
    } else if (!strcmp(name, "NKV")) {
        SETI(hp->n_kv_heads);
    } else if (!strcmp(name, "HD")) {
        SETI(hp->head_dim);
    } else if (!strcmp(name, "KVDIM")) {
        SETI(hp->n_kv_heads * hp->head_dim);
    } else if (!strcmp(name, "ROT")) {
        SETI(rot);
    } else if (!strcmp(name, "NEOX")) {
        SETI(rope->pairing == DG_ROPE_NEOX);
    } else if (!strcmp(name, "MSCALE")) {
        fmt_float(val, n, rope->attention_factor > 0 ? rope->attention_factor : 1.0);
    } else if (!strcmp(name, "CTX")) {
        SETI(c->ex->ctx);
    } else if (!strcmp(name, "KV_F16")) {
        SETI(c->ex->kv_f16);
    } else if (!strcmp(name, "KVBYTES")) {
        SETI(c->ex->kv_f16 ? 2 : 4);
    } else if (!strcmp(name, "SOFTCAP")) {
        fmt_float(val, n, hp->attn_softcap);
    } else if (!strcmp(name, "WINDOW")) {
        SETI(c->layer >= 0 && hp->layer_sliding[c->layer] ? hp->sliding_window : 0);
    } else if (!strcmp(name, "ACT") && hp->act == DG_ACT_GPT_OSS_SWIGLU && dg_kp_knob_find(c->k, "LIMIT")) {
        SETI(3);
    } else if (!strcmp(name, "NE") || !strcmp(name, "TOPK")) {
        int ne = hp->n_experts, k = hp->n_experts_used;
        if (ne < 1 || ne > 1024 || k < 1 || k > ne || k > 64 || (hp->router == DG_ROUTER_SPARSEMIXER && k != 2))
            return dg_fail(DG_E_UNSUPPORTED, "%s: %d experts, %d used per token: kernel %s needs 1..1024 experts and "
                           "1..min(64, experts) used (exactly 2 for sparsemixer)", c->where, ne, k, c->k->name);
        SETI(!strcmp(name, "NE") ? ne : k);
    } else if (!strcmp(name, "EI")) {
        SETI(hp->moe_intermediate);
    } else if (!strcmp(name, "HID")) {
        SETI(hp->hidden);
    } else if (!strcmp(name, "ROUTER")) {
        if (hp->router == DG_ROUTER_NONE)
            return dg_fail(DG_E_UNSUPPORTED, "%s: the model has no router kind", c->where);
        SETI(hp->router == DG_ROUTER_SOFTMAX_TOPK ? 1 : hp->router == DG_ROUTER_TOPK_SOFTMAX ? 2 : 3);
    } else if (!strcmp(name, "NORM_TOPK")) {
        SETI(hp->norm_topk_prob);
    } else if (!strcmp(name, "JITTER")) {
        fmt_float(val, n, hp->router_jitter);
    } else if (!strcmp(name, "LIMIT")) {
        fmt_float(val, n, hp->swiglu_limit > 0 ? hp->swiglu_limit : 7.0);
    } else if (!strcmp(name, "ALPHA")) {
        fmt_float(val, n, hp->swiglu_alpha > 0 ? hp->swiglu_alpha : 1.702);
    } else if (!strcmp(name, "ACT")) {
        if (hp->act != DG_ACT_SILU && hp->act != DG_ACT_GELU_TANH && hp->act != DG_ACT_GELU)
            return dg_fail(DG_E_UNSUPPORTED, "%s: activation %d is not supported by kernel %s", c->where, hp->act,
                           c->k->name);
        SETI(hp->act == DG_ACT_SILU ? 0 : hp->act == DG_ACT_GELU_TANH ? 1 : 2);
    } else {
        return dg_fail(DG_E_INTERNAL, "%s: the executor does not know how to compute auto knob %s of kernel %s",
                       c->where, name, c->k->name);
    }
#undef SETI
    return DG_OK;
}

static dg_status phase_push(struct phase *ph, struct disp *d)
{
    if (ph->n == ph->cap) {
        int nc = ph->cap ? ph->cap * 2 : 256;
        struct disp *nd = realloc(ph->d, (size_t)nc * sizeof *nd);
        if (!nd)
            return dg_fail(DG_E_NOMEM, "dispatch list: out of memory");
        ph->d = nd;
        ph->cap = nc;
    }
    ph->d[ph->n++] = *d;
    return DG_OK;
}

/* NSPLIT of a step: its constant, else the kernel's default, else 8 (sizes attn_part). */
static int64_t step_nsplit(const struct dg_kp_kernel *k, const struct dg_kp_step *s)
{
    const struct dg_kp_knob *nsk = k ? dg_kp_knob_find(k, "NSPLIT") : NULL;
    int64_t n = nsk ? atoll(nsk->def) : 8;
    for (int i = 0; i < s->n_consts; i++)
        if (!strcmp(s->consts[i].name, "NSPLIT"))
            n = atoll(s->consts[i].value);
    return n;
}

/* A DQ variant being built: the f16 stand-ins of the step's quantized weights and the regions they live in */
struct dq_ctx {
    struct dg_gpu_tensor scr[2];
    char region[2][DG_KP_NAME];
    int n;
};

/* The f16 region `sub` of DQ set `set`, at least `bytes` long. */
static dg_status dq_region(struct dg_exec *ex, int set, int sub, uint64_t bytes, struct dg_buffer **out)
{
    if (ex->dq_size[set][sub] < bytes) {
        if (ex->dq[set][sub]) {
            if (ex->n_dq_old == (int)(sizeof ex->dq_old / sizeof ex->dq_old[0]))
                return dg_fail(DG_E_INTERNAL, "DQ scratch regions grew more than %d times",
                               (int)(sizeof ex->dq_old / sizeof ex->dq_old[0]));
            ex->dq_old[ex->n_dq_old++] = ex->dq[set][sub];
            ex->dq[set][sub] = NULL;
        }
        dg_status st = dg_buffer_alloc(ex->gl, bytes, NULL, &ex->dq[set][sub]);
        if (st)
            return dg_fail_context(st, "DQ scratch region of %llu bytes: ", (unsigned long long)bytes);
        ex->dq_size[set][sub] = bytes;
        ex->slot_bytes += bytes;
    }
    *out = ex->dq[set][sub];
    return DG_OK;
}

/* Pushes a dequant dispatch: tensor g (quantized, one row range) to f16 rows in dst (region `region`). */
static dg_status push_dequant(struct dg_exec *ex, struct phase *ph, const struct dg_gpu_tensor *g, struct dg_buffer *dst,
                              const char *region, struct hazards *hz, int layer, int64_t T, const char *where)
{
    const struct dg_kp_kernel *k = dg_kp_kernel_find(ex->reg, "dequant");
    const struct dg_kp_entry *e = k ? dg_kp_entry_find(k, "main") : NULL;
    if (!e)
        return dg_fail(DG_E_FORMAT, "%s: the registry has no kernel dequant with an entry main, which the DQ knob "
                       "needs", where);
    const struct dg_kp_knob *wg = dg_kp_knob_find(k, "WG_SIZE");
    static const char *names[5] = {"WTYPE", "WROWBYTES", "K", "N", "WG_SIZE"};
    char vals[5][DG_KP_VALUE];
    snprintf(vals[0], sizeof vals[0], "%d", g->wtype);
    snprintf(vals[1], sizeof vals[1], "%llu", (unsigned long long)g->row_bytes);
    snprintf(vals[2], sizeof vals[2], "%lld", (long long)g->cols);
    snprintf(vals[3], sizeof vals[3], "%lld", (long long)g->rows);
    snprintf(vals[4], sizeof vals[4], "%s", wg ? wg->def : "256");
    struct dg_define defs[5];
    struct disp d;
    memset(&d, 0, sizeof d);
    for (int i = 0; i < 5; i++) {
        defs[i].name = names[i];
        defs[i].value = vals[i];
        snprintf(d.env[i].name, DG_KP_NAME, "%s", names[i]);
        d.env[i].v = strtoll(vals[i], NULL, 10);
    }
    d.nenv = 5;
    dg_status st = dg_gl_program(ex->gl, k->file, defs, 5, &d.prog);
    if (st)
        return dg_fail_context(st, "%s (kernel dequant for %s): ", where, g->name);
    d.k = k;
    d.e = e;
    snprintf(d.op, sizeof d.op, "dequant");
    d.layer = layer;
    d.loc_row0 = d.loc_nrows = d.loc_t0 = -1;
    d.b[0] = (struct bindrec){1, g->buf, 0, round16(g->row_bytes * (uint64_t)g->rows), 0, 0, 0};
    d.b[1] = (struct bindrec){3, dst, 0, (uint64_t)g->rows * (uint64_t)g->cols * 2, 0, 0, 0};
    d.nb = 2;
    if (in_set(hz->written, hz->nw, region) || in_set(hz->read, hz->nr, region)) {
        d.barrier = true;
        hz->nw = hz->nr = 0;
    }
    add_set(hz->written, &hz->nw, region);
    if ((st = eval_groups(&d, T)))
        return st;
    return phase_push(ph, &d);
}

static dg_status build_step_one(struct dg_exec *ex, struct phase *ph, const struct dg_kp_step *s, int layer,
                                const char *where, struct hazards *hz, int64_t T, struct dq_ctx *dq)
{
    const struct dg_kp_kernel *k = dg_kp_kernel_find(ex->reg, s->kernel);
    const struct dg_kp_entry *e = k ? dg_kp_entry_find(k, s->entry) : NULL;
    if (!k || !e)
        return dg_fail(DG_E_INTERNAL, "%s: kernel %s/%s vanished", where, s->kernel, s->entry);
    struct stepctx c = {ex, s, k, layer, where};
    const struct dg_hparams *hp = &ex->m->hp;

    /* NSPLIT of this step (sizes attn_part) */
    int64_t nsplit = step_nsplit(k, s);
    if (nsplit < 1 || nsplit > 256)
        return dg_fail(DG_E_FORMAT, "%s: NSPLIT %lld (expected 1..256)", where, (long long)nsplit);

    /* weights and slots per binding */
    int ii = 0, oo = 0;
    for (int bi = 0; bi < k->n_bindings; bi++) {
        const struct dg_kp_binding *b = &k->bindings[bi];
        if (b->kind == DG_KB_WEIGHT) {
            const struct dg_kp_weight *sw = NULL;
            for (int i = 0; i < s->n_weights; i++)
                if (!strcmp(s->weights[i].role, b->role))
                    sw = &s->weights[i];
            if (!sw)
                continue;
            /* matmul_qkv: the role's k and v companions name the other two tensors to concatenate
             * (matmul_qk: the k companion alone) */
            char rk[DG_KP_NAME + 2], rv[DG_KP_NAME + 2];
            snprintf(rk, sizeof rk, "%s_k", b->role);
            snprintf(rv, sizeof rv, "%s_v", b->role);
            const struct dg_kp_weight *swk = NULL, *swv = NULL;
            for (int i = 0; i < s->n_weights; i++) {
                if (!strcmp(s->weights[i].role, rk))
                    swk = &s->weights[i];
                if (!strcmp(s->weights[i].role, rv))
                    swv = &s->weights[i];
            }
            if (swk) {
                char nm[3][DG_TENSOR_NAME_MAX] = {"", "", ""};
                const char *names[3] = {nm[0], nm[1], nm[2]};
                const struct dg_kp_weight *parts[3] = {sw, swk, swv};
                int nparts = swv ? 3 : 2;
                dg_status st = DG_OK;
                for (int i = 0; i < nparts && !st; i++)
                    st = dg_kpath_weight_name(parts[i]->tmpl, layer, nm[i], sizeof nm[i]);
                if (!st)
                    c.w[bi] = tensor_get_qkv(ex, names, nparts, &st);
                if (st)
                    return dg_fail_context(st, "%s: ", where);
                if (!c.primary)
                    c.primary = c.w[bi];
                continue;
            }
            char alts[128];
            snprintf(alts, sizeof alts, "%s", sw->tmpl);
            char *save = NULL, tried[256] = "";
            for (char *alt = strtok_r(alts, "|", &save); alt && !c.w[bi]; alt = strtok_r(NULL, "|", &save)) {
                char name[DG_TENSOR_NAME_MAX];
                dg_status st = dg_kpath_weight_name(alt, layer, name, sizeof name);
                if (st)
                    return st;
                c.w[bi] = tensor_get(ex, name, &st);
                if (st)
                    return dg_fail_context(st, "%s: ", where);
                snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%s%s", tried[0] ? ", " : "", name);
            }
            if (!c.w[bi] && !b->optional)
                return dg_fail(DG_E_FORMAT, "%s: %s.weights.%s: tensor %s is not in the model %s", ex->path->file,
                               where, b->role, tried, ex->m->path);
            if (c.w[bi] && !c.primary)
                c.primary = c.w[bi];
        } else if (b->kind == DG_KB_TABLE) {
            /* only rope tables exist */
        } else {
            const char *name;
            if (b->kind == DG_KB_OUTPUT)
                name = s->n_output ? s->output[oo] : "hidden_state";
            else
                name = s->n_input ? s->input[ii] : "hidden_state";
            ii += b->kind == DG_KB_INPUT || b->kind == DG_KB_INOUT;
            oo += b->kind == DG_KB_OUTPUT || b->kind == DG_KB_INOUT;
            c.slotname[bi] = name;
            if (!is_kv(name)) {
                dg_status st = slot_get(ex, name, nsplit, &c.sl[bi]);
                if (st)
                    return dg_fail_context(st, "%s: ", where);
                if (!c.in_width && b->kind != DG_KB_OUTPUT)
                    c.in_width = c.sl[bi]->width;
            }
        }
    }

    /* DQ variant: each quantized matrix (one row range, an f16 copy within the SSBO block limit) is read
     * as the f16 rows a dequant dispatch writes just before this step; the rest of the step is built as
     * for an f16 path */
    for (int bi = 0; dq && bi < k->n_bindings; bi++) {
        struct dg_gpu_tensor *g = c.w[bi];
        if (k->bindings[bi].kind != DG_KB_WEIGHT || !g || g->ndim < 2 || g->n_parts > 1 ||
            dg_dtype_info(g->dtype)->block_elems < 32 || g->cols % 32)
            continue;
        uint64_t bytes = (uint64_t)g->rows * (uint64_t)g->cols * 2;
        if (dq->n == 2 || (int64_t)bytes > dg_gl_caps(ex->gl)->max_ssbo_block_size)
            continue;
        struct dg_buffer *buf = NULL;
        snprintf(dq->region[dq->n], DG_KP_NAME, "dq.%d.%d", ex->dq_set, dq->n);
        dg_status st = dq_region(ex, ex->dq_set, dq->n, bytes, &buf);
        if (!st)
            st = push_dequant(ex, ph, g, buf, dq->region[dq->n], hz, layer, T, where);
        if (st)
            return st;
        struct dg_gpu_tensor *f = &dq->scr[dq->n++];
        *f = *g;
        f->buf = buf;
        f->dtype = DG_DT_F16;
        f->wtype = DG_DT_F16;
        f->row_bytes = (uint64_t)g->cols * 2;
        f->n_parts = 1;
        if (c.primary == g)
            c.primary = f;
        c.w[bi] = f;
    }
    if (dq && dq->n)
        ex->dq_set ^= 1;

    /* defines */
    struct dg_define defs[DG_KP_MAX_KNOBS + 8];
    char vals[DG_KP_MAX_KNOBS + 8][DG_KP_VALUE];
    int nd = 0;
    struct disp d;
    memset(&d, 0, sizeof d);
    for (int i = 0; i < k->n_file_defines; i++) {
        defs[nd].name = k->file_defines[i].name;
        defs[nd].value = k->file_defines[i].value;
        nd++;
    }
    if (e->define[0]) {
        defs[nd].name = e->define;
        defs[nd].value = "1";
        nd++;
    }
    for (int i = 0; i < k->n_knobs; i++) {
        const struct dg_kp_knob *kn = &k->knobs[i];
        const char *v = NULL;
        if (kn->is_auto) {
            dg_status st = auto_knob(&c, kn->name, vals[nd], sizeof vals[nd]);
            if (st)
                return st;
            v = vals[nd];
        } else {
            for (int j = 0; j < s->n_consts; j++)
                if (!strcmp(s->consts[j].name, kn->name))
                    v = s->consts[j].value;
            if (v && v[0] == '$') {
                if (!hparam_ref(hp, v + 1, vals[nd], sizeof vals[nd]))
                    return dg_fail(DG_E_FORMAT, "%s: %s.constants.%s: \"%s\" is not a known hparam reference "
                                   "($final_softcap, $attn_softcap, $embed_scale, $norm_eps, $attn_scale, "
                                   "$sliding_window)", ex->path->file, where, kn->name, v);
                v = vals[nd];
            }
        }
        if (d.nenv < MAX_ENV) {
            const char *ev = v ? v : kn->def;
            char *end;
            long long iv = strtoll(ev, &end, 10);
            if (*ev && *end == 0) {
                snprintf(d.env[d.nenv].name, DG_KP_NAME, "%s", kn->name);
                d.env[d.nenv].v = iv;
                d.nenv++;
            }
        }
        /* DQ is the executor's (build_step), not the shader's: programs stay shared across its values */
        if (v && strcmp(kn->name, "DQ")) {
            defs[nd].name = kn->name;
            defs[nd].value = v;
            nd++;
        }
    }

    /* shape checks the kernels rely on */
    const struct dg_kp_knob *wt = dg_kp_knob_find(k, "WTYPE");
    if (wt && c.primary) {
        int64_t wch = c.primary->dtype == DG_DT_F32 ? 4 : dg_dtype_info(c.primary->dtype)->block_elems == 1 ? 8 : 32;
        if (c.primary->cols % wch)
            return dg_fail(DG_E_UNSUPPORTED, "%s: weight %s has %lld columns; kernel %s reads %s rows in chunks of %lld",
                           where, c.primary->name, (long long)c.primary->cols, k->name,
                           dg_dtype_info(c.primary->dtype)->name, (long long)wch);
        if (dg_kp_knob_find(k, "K") && c.in_width != c.primary->cols)
            return dg_fail(DG_E_FORMAT, "%s: weight %s has %lld columns but the input slot holds %lld per token", where,
                           c.primary->name, (long long)c.primary->cols, (long long)c.in_width);
    }
    for (int bi = 0; bi < k->n_bindings; bi++)
        if (k->bindings[bi].kind == DG_KB_WEIGHT && c.w[bi] && c.w[bi]->wtype != (int)c.w[bi]->dtype && !wt)
            return dg_fail(DG_E_UNSUPPORTED, "%s: weight %s is uploaded in the split layout, which kernel %s (no "
                           "WTYPE knob) cannot read", where, c.w[bi]->name, k->name);
    for (int bi = 0; bi < k->n_bindings; bi++)
        if (k->bindings[bi].kind == DG_KB_WEIGHT && c.w[bi] && c.primary && c.w[bi] != c.primary &&
            c.w[bi]->ndim >= 2 && c.primary->ndim >= 2 &&
            (c.w[bi]->rows != c.primary->rows || c.w[bi]->dtype != c.primary->dtype ||
             c.w[bi]->wtype != c.primary->wtype))
            return dg_fail(DG_E_UNSUPPORTED, "%s: weights %s and %s differ in shape or format", where, c.primary->name,
                           c.w[bi]->name);

    /* Image reads: the plan asks for them, the entry can do them (IMG), the device has texture buffers and
     * every range this step binds at an imageUnit fits one view; else the step reads SSBOs as usual. */
    bool img = !strcmp(ex->plan.image_reads.value, "true") && e->image_reads &&
               dg_gl_caps(ex->gl)->texture_buffer && dg_gl_caps(ex->gl)->max_compute_image_uniforms >= 4;
    for (int bi = 0; img && bi < k->n_bindings; bi++) {
        if (k->bindings[bi].image_unit < 0)
            continue;
        const struct dg_gpu_tensor *g = c.w[bi];
        if (k->bindings[bi].kind == DG_KB_WEIGHT) {
            if (!g)
                continue;
            if (g->ndim >= 2 && g->n_parts > 1) {
                for (int p = 0; p < g->n_parts && img; p++)
                    img = dg_buffer_image_ok(ex->gl, g->parts[p].first_row * g->row_bytes,
                                             round16(g->parts[p].n_rows * g->row_bytes));
            } else {
                img = dg_buffer_image_ok(ex->gl, 0, round16(g->row_bytes * (uint64_t)g->rows));
            }
        } else if (c.sl[bi]) {
            img = dg_buffer_image_ok(ex->gl, 0, round16(c.sl[bi]->bytes));
        } else {
            img = false; /* KV caches and tables are not read through images */
        }
    }
    if (img) {
        defs[nd].name = "IMG";
        defs[nd].value = "1";
        nd++;
    }
    dg_status st = dg_gl_program(ex->gl, k->file, defs, nd, &d.prog);
    if (st)
        return dg_fail_context(st, "%s (kernel %s/%s): ", where, k->name, e->name);
    d.k = k;
    d.e = e;
    snprintf(d.op, sizeof d.op, "%s", s->op);
    d.layer = layer;
    d.loc_row0 = glGetUniformLocation(d.prog, "u_row0");
    d.loc_nrows = glGetUniformLocation(d.prog, "u_nrows");
    d.loc_t0 = glGetUniformLocation(d.prog, "u_t0");

    /* hazards: does this step need a barrier before it? */
    bool barrier = false;
    bool acc = k->reads_output_when[0] && env_find(d.env, d.nenv, k->reads_output_when) &&
               env_find(d.env, d.nenv, k->reads_output_when)->v != 0;
    for (int bi = 0; bi < k->n_bindings; bi++) {
        const char *nm = c.slotname[bi];
        if (!nm)
            continue;
        enum dg_kp_bind_kind kd = k->bindings[bi].kind;
        bool reads = kd == DG_KB_INPUT || kd == DG_KB_INOUT || (kd == DG_KB_OUTPUT && acc);
        bool writes = kd == DG_KB_OUTPUT || kd == DG_KB_INOUT;
        if (reads && in_set(hz->written, hz->nw, nm))
            barrier = true;
        if (writes && (in_set(hz->written, hz->nw, nm) || in_set(hz->read, hz->nr, nm)))
            barrier = true;
    }
    for (int i = 0; dq && i < dq->n; i++)
        barrier |= in_set(hz->written, hz->nw, dq->region[i]);
    if (barrier)
        hz->nw = hz->nr = 0;
    for (int i = 0; dq && i < dq->n; i++)
        add_set(hz->read, &hz->nr, dq->region[i]);
    for (int bi = 0; bi < k->n_bindings; bi++) {
        const char *nm = c.slotname[bi];
        if (!nm)
            continue;
        enum dg_kp_bind_kind kd = k->bindings[bi].kind;
        if (kd == DG_KB_INPUT || kd == DG_KB_INOUT || (kd == DG_KB_OUTPUT && acc))
            add_set(hz->read, &hz->nr, nm);
        if (kd == DG_KB_OUTPUT || kd == DG_KB_INOUT)
            add_set(hz->written, &hz->nw, nm);
    }
    d.barrier = barrier;

    /* bindings (weights possibly split: one record per row range) */
    int n_parts = 1;
    for (int bi = 0; bi < k->n_bindings; bi++)
        if (c.w[bi] && c.w[bi]->ndim >= 2 && c.w[bi]->n_parts > n_parts)
            n_parts = c.w[bi]->n_parts;
    /* Row ranges of a split weight are disjoint outputs for most kernels (no barrier between them); a kernel
     * that adds every range's share into the same elements of an inout slot (MoE down in decode: each
     * range holds some experts' rows) needs a barrier between its dispatches. */
    bool rmw = false;
    for (int bi = 0; bi < k->n_bindings; bi++)
        rmw |= k->bindings[bi].kind == DG_KB_INOUT && c.slotname[bi] && !is_kv(c.slotname[bi]);
    for (int part = 0; part < n_parts; part++) {
        struct disp dp = d;
        if (part > 0)
            dp.barrier = rmw;
        dp.nb = 0;
        dp.row0 = 0;
        dp.nrows = c.primary ? (uint32_t)c.primary->rows : 0;
        for (int bi = 0; bi < k->n_bindings; bi++) {
            const struct dg_kp_binding *b = &k->bindings[bi];
            struct bindrec *r = &dp.b[dp.nb];
            r->binding = (GLuint)b->binding;
            if (b->kind == DG_KB_WEIGHT) {
                struct dg_gpu_tensor *g = c.w[bi];
                if (!g)
                    continue;
                r->buf = g->buf;
                if (g->ndim >= 2 && g->n_parts > 1) {
                    if (g->n_parts != n_parts)
                        return dg_fail(DG_E_UNSUPPORTED, "%s: weights split into different row ranges", where);
                    r->off = g->parts[part].first_row * g->row_bytes;
                    r->size = (g->parts[part].n_rows * g->row_bytes + 15) / 16 * 16;
                    if (g == c.primary) {
                        dp.row0 = (uint32_t)g->parts[part].first_row;
                        dp.nrows = (uint32_t)g->parts[part].n_rows;
                    }
                } else {
                    r->off = 0;
                    r->size = (g->row_bytes * (uint64_t)g->rows + 15) / 16 * 16;
                }
                {
                    uint64_t wb = (uint64_t)r->size;
                    const struct env_var *ne = env_find(dp.env, dp.nenv, "NE"), *tk = env_find(dp.env, dp.nenv, "TOPK");
                    if (!strcmp(s->op, "embed"))
                        wb = g->row_bytes;
                    else if (ne && tk && ne->v > 0 && g->ndim >= 2) /* this range's rows, k of NE experts */
                        wb = (uint64_t)(g->n_parts > 1 ? g->parts[part].n_rows : (uint64_t)g->rows) *
                             (uint64_t)tk->v * g->row_bytes / (uint64_t)ne->v;
                    else if (ne && tk && ne->v > 0)
                        wb = (uint64_t)r->size / (uint64_t)ne->v * (uint64_t)tk->v;
                    dp.wbytes += wb;
                }
            } else if (b->kind == DG_KB_TABLE) {
                bool local = layer >= 0 && hp->layer_sliding[layer];
                r->buf = local ? ex->rope_local : ex->rope_global;
                r->off = 0;
                r->size = r->buf->size;
            } else if (is_kv(c.slotname[bi])) {
                if (layer < 0)
                    return dg_fail(DG_E_FORMAT, "%s: the KV cache is per layer; use it in decode/prefill steps", where);
                r->buf = !strcmp(c.slotname[bi], "k_cache") ? ex->kcache[layer] : ex->vcache[layer];
                r->off = 0;
                r->size = r->buf->size;
            } else {
                r->buf = c.sl[bi]->buf;
                r->off = 0;
                r->size = c.sl[bi]->bytes;
            }
            if (img && b->image_unit >= 0) {
                r->unit = (GLuint)b->image_unit;
                r->view_fmt = b->image_format == DG_KP_IMG_RGBA32UI ? GL_RGBA32UI : GL_RGBA32F;
                if ((st = image_view_get(ex, r->buf, r->off, round16(r->size), r->view_fmt, &r->view)))
                    return dg_fail_context(st, "%s: ", where);
            }
            dp.nb++;
        }
        if (c.primary && (dp.loc_row0 < 0) && n_parts > 1)
            return dg_fail(DG_E_UNSUPPORTED, "%s: weight %s is split into %d ranges but kernel %s cannot be dispatched "
                           "per range", where, c.primary->name, n_parts, k->name);
        if (dp.loc_row0 < 0)
            dp.nrows = 0;
        st = eval_groups(&dp, T);
        if (st)
            return st;
        st = phase_push(ph, &dp);
        if (st)
            return st;
    }
    return DG_OK;
}

/* Builds a step. A tiled prefill step of a layer with knob DQ > 0 gets two variants: its own kernel on the
 * quantized weights for passes under DQ tokens, and for longer passes the weights dequantized to f16 by
 * kernel dequant and the step built as on an f16 path (the plan's f16 knob preferences): the f16 tiled
 * kernel runs faster than the quantized one by more than the dequantization costs once a pass is long
 * enough (measured: src/kpath/plan.c, nvidia profile). Each variant's barriers are computed from the
 * same state before the step; the state after is the union of both. */
static dg_status build_step(struct dg_exec *ex, struct phase *ph, const struct dg_kp_step *s, int layer,
                            const char *where, struct hazards *hz, int64_t T)
{
    int64_t dqmin = 0;
    for (int i = 0; i < s->n_consts; i++)
        if (!strcmp(s->consts[i].name, "DQ"))
            dqmin = strtoll(s->consts[i].value, NULL, 10);
    if (dqmin <= 0 || dqmin > T || T <= 1 || layer < 0 || strcmp(s->entry, "tiled"))
        return build_step_one(ex, ph, s, layer, where, hz, T, NULL);
    if (dqmin > INT32_MAX)
        return dg_fail(DG_E_FORMAT, "%s: DQ %lld is too large", where, (long long)dqmin);
    struct hazards before = *hz, after_q;
    int n0 = ph->n;
    dg_status st = DG_OK;
    /* DQ 1: every pass takes the f16 variant, so there is no quantized one (a record's max_T of 0 would
     * mean "any pass", and both would run) */
    if (dqmin > 1 && (st = build_step_one(ex, ph, s, layer, where, hz, T, NULL)))
        return st;
    after_q = *hz;
    *hz = before;
    int n1 = ph->n;
    struct dg_kp_step f16 = *s;
    dg_kplan_step_prefs(&ex->plan, ex->reg, "f16", &f16);
    struct dq_ctx dq;
    memset(&dq, 0, sizeof dq);
    if ((st = build_step_one(ex, ph, &f16, layer, where, hz, T, &dq)))
        return st;
    if (!dq.n) { /* nothing quantized to dequantize: the step as written serves every pass */
        ph->n = n1;
        *hz = after_q;
        return dqmin > 1 ? DG_OK : build_step_one(ex, ph, s, layer, where, hz, T, NULL);
    }
    for (int i = n0; i < n1; i++)
        ph->d[i].max_T = (int)dqmin - 1;
    for (int i = n1; i < ph->n; i++)
        ph->d[i].min_T = (int)dqmin;
    for (int i = 0; i < after_q.nw; i++)
        add_set(hz->written, &hz->nw, after_q.written[i]);
    for (int i = 0; i < after_q.nr; i++)
        add_set(hz->read, &hz->nr, after_q.read[i]);
    return DG_OK;
}

static bool layer_selected(const struct dg_hparams *hp, enum dg_kp_layers sel, int layer)
{
    switch (sel) {
    case DG_KL_ALL:
        return true;
    case DG_KL_SLIDING:
        return hp->layer_sliding[layer];
    case DG_KL_FULL:
        return !hp->layer_sliding[layer];
    case DG_KL_MOE:
        return hp->n_experts > 0 && hp->layer_moe[layer];
    case DG_KL_DENSE:
        return !(hp->n_experts > 0 && hp->layer_moe[layer]);
    }
    return true;
}

/* The largest NSPLIT of the split attention steps of either phase (0 when none splits), so the prefill
 * batch cap can count the attn_part slot before any step is built. */
static int64_t max_attention_nsplit(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                                    const struct dg_kpath *path)
{
    int64_t best = 0;
    for (int prefill = 0; prefill < 2; prefill++) {
        struct dg_kp_resolved r;
        if (dg_kplan_resolve(plan, reg, NULL, path, prefill, &r) != DG_OK) {
            dg_clear_error(); /* build_phase reports it */
            continue;
        }
        for (int sc = 0; sc < 4; sc++)
            for (int i = 0; i < r.sec[sc].n_steps; i++) {
                const struct dg_kp_step *st = &r.sec[sc].steps[i];
                if (strcmp(st->kernel, "attention_fused") &&
                    (strcmp(st->kernel, "attention") || strcmp(st->entry, "split")))
                    continue;
                int64_t n = step_nsplit(dg_kp_kernel_find(reg, st->kernel), st);
                best = n > best ? n : best;
            }
        dg_kp_resolved_free(&r);
    }
    return best;
}

/* Under the plan's qkvFusion: steps i, i+1, i+2 of a layer are plain matmuls of one input writing q, k
 * and v with the same entry, constants (the tuner's aside) and norm. Where the layer's three weights (and
 * biases, all or none) share a format and width, fills `out` with one matmul_qkv step for them and returns
 * 3; where only q's and k's do (Q4_K_M keeps some layers' v in Q6_K), one matmul_qk step for those two,
 * returning 2 (v stays its own step); else 0. */
static int qkv_fusable(const struct dg_exec *ex, const struct dg_kp_step *st, int n, int i, int L,
                       struct dg_kp_step *out)
{
    if (strcmp(ex->plan.qkv_fusion.value, "true") || i + 2 >= n || !dg_kp_kernel_find(ex->reg, "matmul_qkv"))
        return 0;
    const struct dg_hparams *hp = &ex->m->hp;
    static const char *const outs[3] = {"q", "k", "v"};
    const char *tmpl[3][3] = {{NULL}}; /* [step][weight, norm_in, bias] */
    for (int j = 0; j < 3; j++) {
        const struct dg_kp_step *s = &st[i + j];
        if (strcmp(s->kernel, "matmul") || strcmp(s->op, "matmul") || strcmp(s->entry, st[i].entry) ||
            !layer_selected(hp, s->layers, L) || s->n_input != 1 || strcmp(s->input[0], st[i].input[0]) ||
            s->n_output != 1 || strcmp(s->output[0], outs[j]))
            return 0;
        for (int w = 0; w < s->n_weights; w++) {
            const char *r = s->weights[w].role;
            int slot = !strcmp(r, "weight") ? 0 : !strcmp(r, "norm_in") ? 1 : !strcmp(r, "bias") ? 2 : -1;
            if (slot < 0 || strchr(s->weights[w].tmpl, '|'))
                return 0;
            tmpl[j][slot] = s->weights[w].tmpl;
        }
        if (!tmpl[j][0] || !tmpl[j][1] != !tmpl[0][1] || (tmpl[j][1] && strcmp(tmpl[j][1], tmpl[0][1])) ||
            !tmpl[j][2] != !tmpl[0][2])
            return 0;
        /* the same constants apart from tuner-chosen ones (the fused step runs the q step's) */
        for (int c = 0; c < s->n_consts; c++) {
            if (s->tuned_consts & (1u << c))
                continue;
            bool same = false;
            for (int d = 0; d < st[i].n_consts; d++)
                same |= !(st[i].tuned_consts & (1u << d)) && !strcmp(st[i].consts[d].name, s->consts[c].name) &&
                        !strcmp(st[i].consts[d].value, s->consts[c].value);
            if (!same || (!strcmp(s->consts[c].name, "ACCUMULATE") && strcmp(s->consts[c].value, "0")))
                return 0;
        }
    }
    /* how many of q, k, v (from q on) share the weights' (and biases') format and width: 1, 2 or 3 */
    int nshare = 3;
    for (int slot = 0; slot < 3; slot += 2) {
        if (!tmpl[0][slot])
            continue;
        const struct dg_tensor *t0 = NULL;
        for (int j = 0; j < 3; j++) {
            char nm[DG_TENSOR_NAME_MAX];
            if (dg_kpath_weight_name(tmpl[j][slot], L, nm, sizeof nm) != DG_OK) {
                dg_clear_error();
                return 0;
            }
            const struct dg_tensor *t = dg_model_find(ex->m, nm);
            if (!t || t->layout != DG_LAYOUT_ROW || t->transposed)
                return 0;
            if (!t0)
                t0 = t;
            else if ((t->dtype != t0->dtype || t->ndim != t0->ndim ||
                      (t->ndim >= 2 && t->shape[t->ndim - 1] != t0->shape[t0->ndim - 1])) && j < nshare)
                nshare = j; /* biases (1-D) only share the format */
        }
    }
    if (nshare < 2 || (nshare == 2 && !dg_kp_kernel_find(ex->reg, "matmul_qk")))
        return 0;
    *out = st[i];
    snprintf(out->kernel, sizeof out->kernel, nshare == 3 ? "matmul_qkv" : "matmul_qk");
    snprintf(out->role, sizeof out->role, nshare == 3 ? "qkv_proj" : "qk_proj");
    out->n_weights = 0;
    static const char *const roles[3][3] = {{"weight", "weight_k", "weight_v"}, {"norm_in", NULL, NULL},
                                            {"bias", "bias_k", "bias_v"}};
    for (int slot = 0; slot < 3; slot++)
        for (int j = 0; j < nshare && tmpl[0][slot]; j++) {
            if (!roles[slot][j])
                continue;
            struct dg_kp_weight *w = &out->weights[out->n_weights++];
            snprintf(w->role, sizeof w->role, "%s", roles[slot][j]);
            snprintf(w->tmpl, sizeof w->tmpl, "%s", tmpl[j][slot]);
        }
    for (int j = 0; j < nshare; j++)
        snprintf(out->output[j], DG_KP_NAME, "%s", outs[j]);
    out->n_output = nshare;
    return nshare;
}

/* True when a decode step runs a kernel entry that reads Q8_0 / Q6_K fastest in the split layout (the
 * registry's "splitBlocks", set on the one-row-per-invocation GEMV: measured 3-6x faster on llvmpipe,
 * docs/FORMAT.md; and on the workgroup GEMV "main": H200 tg128 on the Llama-3.2-1B Q4_K_M shape 710 ->
 * 741 tok/s, the Q6_K LM head 191 -> 151 us). Weights are uploaded once for both phases, so the decode
 * GEMV decides; every kernel with a WTYPE knob reads both layouts through glsl/wdecode.inc.glsl. */
static bool decode_wants_split_blocks(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                                      const struct dg_kpath *path)
{
    struct dg_kp_resolved r;
    if (dg_kplan_resolve(plan, reg, NULL, path, false, &r) != DG_OK) {
        dg_clear_error(); /* build_phase reports it */
        return false;
    }
    bool want = false;
    for (int sc = 0; sc < 4; sc++)
        for (int i = 0; i < r.sec[sc].n_steps; i++) {
            const struct dg_kp_step *st = &r.sec[sc].steps[i];
            const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, st->kernel);
            const struct dg_kp_entry *e = k ? dg_kp_entry_find(k, st->entry) : NULL;
            want |= e && e->split_blocks;
        }
    dg_kp_resolved_free(&r);
    return want;
}

static dg_status build_phase(struct dg_exec *ex, bool prefill)
{
    struct dg_kp_resolved r;
    dg_status st = dg_kplan_resolve(&ex->plan, ex->reg, NULL, ex->path, prefill, &r);
    if (st)
        return st;
    struct phase *ph = &ex->ph[prefill];
    struct hazards hz = {0};
    int64_t T = prefill ? ex->max_batch : 1;
    ph->cur_T = (int)T;
    const struct dg_hparams *hp = &ex->m->hp;
    char where[96];
    for (int i = 0; i < r.sec[0].n_steps && !st; i++) {
        snprintf(where, sizeof where, "preLayer[%d]", i);
        st = build_step(ex, ph, &r.sec[0].steps[i], -1, where, &hz, T);
    }
    if (!st && ph->n > 0) {
        ph->d[ph->n - 1].capture = 1;
        ph->d[ph->n - 1].capture_slot = NULL; /* hidden_state, looked up at replay */
    }
    for (int L = 0; L < hp->n_layers && !st; L++) {
        int n0 = ph->n;
        for (int i = 0; i < r.sec[1].n_steps && !st; i++) {
            if (!layer_selected(hp, r.sec[1].steps[i].layers, L))
                continue;
            snprintf(where, sizeof where, "%s[%d] (layer %d)", prefill ? "prefill.steps" : "decode.steps", i, L);
            struct dg_kp_step qkv;
            int nf = qkv_fusable(ex, r.sec[1].steps, r.sec[1].n_steps, i, L, &qkv);
            if (nf) {
                snprintf(where, sizeof where, "%s[%d..%d] (layer %d, %s fused)",
                         prefill ? "prefill.steps" : "decode.steps", i, i + nf - 1, L, nf == 3 ? "q/k/v" : "q/k");
                st = build_step(ex, ph, &qkv, L, where, &hz, T);
                i += nf - 1;
                continue;
            }
            st = build_step(ex, ph, &r.sec[1].steps[i], L, where, &hz, T);
        }
        if (L == 0)
            ph->per_layer0 = ph->n - n0;
        if (!st && L < hp->n_layers - 1 && ph->n > 0)
            ph->d[ph->n - 1].capture = L + 2;
    }
    for (int i = 0; i < r.sec[2].n_steps && !st; i++) {
        snprintf(where, sizeof where, "postLayer[%d]", i);
        int n0 = ph->n;
        st = build_step(ex, ph, &r.sec[2].steps[i], -1, where, &hz, T);
        if (!st && i == 0 && ph->n > n0) {
            /* transformers reports the final norm's output as the last hidden state */
            const struct dg_kp_step *s = &r.sec[2].steps[0];
            ph->d[ph->n - 1].capture = hp->n_layers + 1;
            struct slot *sl = NULL;
            if (slot_get(ex, s->n_output ? s->output[0] : "hidden_state", 8, &sl) == DG_OK)
                ph->d[ph->n - 1].capture_slot = sl;
        }
    }
    for (int i = 0; i < r.sec[3].n_steps && !st; i++) {
        snprintf(where, sizeof where, "sampling[%d]", i);
        st = build_step(ex, ph, &r.sec[3].steps[i], -1, where, &hz, T);
    }
    if (!st && ph->n > 0)
        ph->d[0].barrier = true; /* the previous token's last writes */
    dg_kp_resolved_free(&r);
    return st;
}

/* The last-row LM head of a prefill pass (struct dg_exec lm_last): a copy of the decode list's lm_head
 * dispatches when every one of them can be pointed at a token row (u_t0) and the prefill list has its own
 * lm_head dispatches, one block of them, to stand in for; otherwise none, and prefill keeps computing
 * every row. */
static dg_status build_lm_last(struct dg_exec *ex)
{
    const struct phase *dec = &ex->ph[0], *pre = &ex->ph[1];
    ex->lm_first = -1;
    ex->lm_count = 0;
    int n_dec = 0, first = -1, count = 0;
    for (int i = 0; i < dec->n; i++)
        if (!strcmp(dec->d[i].op, "lm_head")) {
            if (dec->d[i].loc_t0 < 0)
                return DG_OK;
            n_dec++;
        }
    for (int i = 0; i < pre->n; i++)
        if (!strcmp(pre->d[i].op, "lm_head")) {
            if (first >= 0 && i != first + count)
                return DG_OK; /* not one block */
            if (first < 0)
                first = i;
            count++;
        }
    if (!n_dec || first < 0)
        return DG_OK;
    ex->lm_last.d = calloc((size_t)n_dec, sizeof *ex->lm_last.d);
    if (!ex->lm_last.d)
        return dg_fail(DG_E_NOMEM, "out of memory");
    for (int i = 0; i < dec->n; i++)
        if (!strcmp(dec->d[i].op, "lm_head"))
            ex->lm_last.d[ex->lm_last.n++] = dec->d[i];
    ex->lm_last.d[0].barrier = pre->d[first].barrier;
    ex->lm_first = first;
    ex->lm_count = count;
    return DG_OK;
}

/* ---- create / destroy ---- */

void dg_exec_destroy(struct dg_exec *ex)
{
    if (!ex)
        return;
    for (int i = 0; i < ex->n_tensors; i++)
        dg_buffer_release(ex->gl, ex->tensors[i].buf);
    for (int i = 0; i < ex->n_slots; i++)
        dg_buffer_release(ex->gl, ex->slots[i].buf);
    for (int L = 0; ex->kcache && L < ex->m->hp.n_layers; L++) {
        dg_buffer_release(ex->gl, ex->kcache[L]);
        dg_buffer_release(ex->gl, ex->vcache[L]);
    }
    dg_buffer_release(ex->gl, ex->rope_global);
    dg_buffer_release(ex->gl, ex->rope_local);
    dg_buffer_release(ex->gl, ex->ubo);
    for (int i = 0; i < ex->n_views; i++)
        dg_image_view_delete(ex->gl, ex->views[i].id);
    for (int i = 0; i < 4; i++)
        dg_buffer_release(ex->gl, ex->dq[i / 2][i % 2]);
    for (int i = 0; i < ex->n_dq_old; i++)
        dg_buffer_release(ex->gl, ex->dq_old[i]);
    free(ex->views);
    free(ex->kcache);
    free(ex->vcache);
    free(ex->tensors);
    free(ex->ph[0].d);
    free(ex->ph[1].d);
    free(ex->lm_last.d);
    free(ex);
}

dg_status dg_exec_create(struct dg_gl *gl, const struct dg_model *m, const struct dg_kplan *plan,
                         const struct dg_kp_registry *reg, const struct dg_kpath *path,
                         const struct dg_exec_options *opt, struct dg_exec **out)
{
    *out = NULL;
    const struct dg_hparams *hp = &m->hp;
    if (hp->n_layers <= 0 || hp->n_layers > DG_MAX_LAYERS || hp->head_dim <= 0 || hp->head_dim % 2 ||
        hp->n_heads <= 0 || hp->n_kv_heads <= 0 || hp->n_heads % hp->n_kv_heads || hp->hidden <= 0 || hp->vocab <= 0)
        return dg_fail(DG_E_FORMAT, "%s: hyperparameters the executor cannot run (layers %d, heads %d/%d, head_dim %d)",
                       m->path, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim);
    struct dg_exec *ex = calloc(1, sizeof *ex);
    if (!ex)
        return dg_fail(DG_E_NOMEM, "executor: out of memory");
    ex->gl = gl;
    ex->m = m;
    ex->reg = reg;
    ex->path = path;
    ex->plan = *plan;
    int maxpos = hp->max_pos > 0 ? hp->max_pos : 4096;
    ex->ctx = opt && opt->ctx > 0 ? opt->ctx : (maxpos < 4096 ? maxpos : 4096);
    ex->bf16_buffers = opt && opt->bf16_buffers;
    /* PhiMoE's rotary module computes its frequencies inside forward(): no buffer is cast to bf16 */
    bool bf16_rope = ex->bf16_buffers && hp->arch != DG_ARCH_PHIMOE;
    ex->max_batch = opt && opt->max_batch > 0 ? opt->max_batch : (ex->ctx < 512 ? ex->ctx : 512);
    if (ex->max_batch > ex->ctx)
        ex->max_batch = ex->ctx;
    /* Activation slots hold max_batch tokens and are bound whole, so the widest (usually the logits) must
     * fit one SSBO binding: cap the prefill batch (longer prompts already run in several passes). Weights
     * are split by rows instead (dg_exec_upload_tensor). 128 MiB drivers meet this at a 128k vocabulary. */
    static const char *const wide[] = {"hidden_state", "q", "k", "attn_out", "gate", "logits", "router_logits",
                                       "moe_sel", "moe_act", "moe_groups", "moe_out"};
    int64_t wmax = 1, max_block = dg_gl_caps(gl)->max_ssbo_block_size;
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        int64_t w = slot_width(hp, wide[i], 1);
        wmax = w > wmax ? w : wmax;
    }
    /* split attention's partials are NSPLIT times a token's heads wide (the nvidia profile splits 16 ways) */
    int64_t ns = max_attention_nsplit(plan, reg, path);
    if (ns > 0 && slot_width(hp, "attn_part", ns) > wmax)
        wmax = slot_width(hp, "attn_part", ns);
    if (max_block > 0 && (int64_t)ex->max_batch * wmax * 4 > max_block) {
        int cap = (int)(max_block / (wmax * 4));
        if (cap < 1) {
            dg_status e = dg_fail(DG_E_UNSUPPORTED, "one token's activations (%lld floats) exceed the device's "
                                  "max shader-storage block (%lld bytes)", (long long)wmax, (long long)max_block);
            dg_exec_destroy(ex);
            return e;
        }
        DG_VERBOSE("prefill batch %d -> %d tokens: %lld floats a token must fit the max SSBO block (%lld bytes)",
                   ex->max_batch, cap, (long long)wmax, (long long)max_block);
        ex->max_batch = cap;
    }
    ex->split_blocks = !(opt && opt->gguf_blocks) && decode_wants_split_blocks(plan, reg, path);
    const char *kvd = plan->kv_dtype.value[0] ? plan->kv_dtype.value : path->kv_dtype;
    ex->kv_f16 = strcmp(kvd, "f32") != 0;
    ex->tensors = calloc(MAX_TENSORS, sizeof *ex->tensors);
    ex->kcache = calloc((size_t)hp->n_layers, sizeof *ex->kcache);
    ex->vcache = calloc((size_t)hp->n_layers, sizeof *ex->vcache);
    dg_status st = DG_OK;
    if (!ex->tensors || !ex->kcache || !ex->vcache) {
        st = dg_fail(DG_E_NOMEM, "executor: out of memory");
        goto fail;
    }
    /* KV cache: [ctx][kv_heads * head_dim] per layer */
    uint64_t kvb = (uint64_t)ex->ctx * (uint64_t)(hp->n_kv_heads * hp->head_dim) * (ex->kv_f16 ? 2 : 4);
    kvb = (kvb + 15) / 16 * 16;
    if (max_block > 0 && kvb > (uint64_t)max_block) {
        uint64_t per_pos = (uint64_t)(hp->n_kv_heads * hp->head_dim) * (ex->kv_f16 ? 2 : 4);
        st = dg_fail(DG_E_UNSUPPORTED, "one layer's KV cache at -c %d (%llu bytes) exceeds the device's max "
                     "shader-storage block (%lld bytes); use -c %llu or less", ex->ctx, (unsigned long long)kvb,
                     (long long)max_block, (unsigned long long)((uint64_t)max_block / per_pos));
        goto fail;
    }
    for (int L = 0; L < hp->n_layers && !st; L++) {
        st = dg_buffer_alloc(gl, kvb, NULL, &ex->kcache[L]);
        if (!st)
            st = dg_buffer_alloc(gl, kvb, NULL, &ex->vcache[L]);
        ex->kv_bytes += 2 * kvb;
    }
    if (st)
        goto fail;
    /* rope tables: [short | long] per rope config */
    float tab[2 * DG_MAX_ROPE_FACTORS];
    int h = dg_rope_inv_freq(&hp->rope, hp->head_dim, tab);
    ex->rope_half = h;
    for (int i = 0; bf16_rope && i < 2 * h; i++)
        tab[i] = dg_bf16_to_f32(dg_f32_to_bf16(tab[i]));
    if ((st = dg_buffer_alloc(gl, (uint64_t)(2 * h) * 4, tab, &ex->rope_global)))
        goto fail;
    h = dg_rope_inv_freq(&hp->rope_local, hp->head_dim, tab);
    for (int i = 0; bf16_rope && i < 2 * h; i++)
        tab[i] = dg_bf16_to_f32(dg_f32_to_bf16(tab[i]));
    if ((st = dg_buffer_alloc(gl, (uint64_t)(2 * h) * 4, tab, &ex->rope_local)))
        goto fail;
    uint32_t ubo[4] = {0, 1, 0, 0};
    if ((st = dg_buffer_alloc(gl, sizeof ubo, ubo, &ex->ubo)))
        goto fail;
    if ((st = build_phase(ex, false)) || (st = build_phase(ex, true)) || (st = build_lm_last(ex)))
        goto fail;
    if ((st = dg_gl_check("building the dispatch lists")))
        goto fail;
    *out = ex;
    return DG_OK;
fail:
    dg_exec_destroy(ex);
    return st;
}

/* ---- replay ---- */

static struct slot *slot_find(struct dg_exec *ex, const char *name)
{
    for (int i = 0; i < ex->n_slots; i++)
        if (!strcmp(ex->slots[i].name, name))
            return &ex->slots[i];
    return NULL;
}

static dg_status download_rows(struct dg_exec *ex, struct slot *s, int n, float *dst)
{
    glMemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT | GL_SHADER_STORAGE_BARRIER_BIT);
    return dg_buffer_download(ex->gl, s->buf, 0, (uint64_t)n * (uint64_t)s->width * 4, dst);
}

/* What the replay knows the driver holds: the program in use, each binding point's range, each
 * program's row0 / nrows uniforms. */
struct replay {
    GLuint cur;
    GLuint image[4]; /* the view last bound at each image unit */
    struct bound_range bound[REPLAY_BINDINGS];
    struct prog_uniforms uni[REPLAY_PROGRAMS];
    int n_uni;
};

/* The uniform block of a pass: its first position, its token count and whether longrope's long factors apply */
static dg_status pass_uniforms(struct dg_exec *ex, int n)
{
    const struct dg_hparams *hp = &ex->m->hp;
    uint32_t ubo[4] = {(uint32_t)ex->pos, (uint32_t)n,
                       hp->rope.type == DG_ROPE_LONGROPE && ex->pos + n > hp->rope.original_max_pos, 0};
    dg_status st = dg_buffer_upload(ex->gl, ex->ubo, 0, sizeof ubo, ubo);
    if (st)
        return st;
    glBindBufferBase(GL_UNIFORM_BUFFER, 0, ex->ubo->id);
    return DG_OK;
}

/* Issues one dispatch of a list: its barrier, program, bindings and uniforms (those not already held).
 * t0 > 0: the dispatch computes token row t0 (u_t0), which is set back to 0 after it, since the decode
 * list runs the same program at row 0. */
static dg_status replay_one(struct dg_exec *ex, struct replay *rp, const struct disp *d, GLuint t0)
{
    dg_status st;
    if (d->barrier)
        dg_gl_barrier(ex->gl);
    if (d->prog != rp->cur) {
        glUseProgram(d->prog);
        rp->cur = d->prog;
    }
    if (t0)
        glUniform1ui(d->loc_t0, t0);
    for (int b = 0; b < d->nb; b++) {
        const struct bindrec *br = &d->b[b];
        struct bound_range *h = br->binding < REPLAY_BINDINGS ? &rp->bound[br->binding] : NULL;
        if (br->view && rp->image[br->unit] != br->view) {
            dg_image_view_bind(ex->gl, br->unit, br->view, br->view_fmt);
            rp->image[br->unit] = br->view;
        }
        if (h && h->buf == br->buf && h->off == br->off && h->size == br->size)
            continue;
        if ((st = dg_buffer_bind(ex->gl, br->binding, br->buf, br->off, br->size)))
            return st;
        if (h) {
            h->buf = br->buf;
            h->off = br->off;
            h->size = br->size;
        }
    }
    if (d->loc_row0 >= 0 || d->loc_nrows >= 0) {
        int u = 0;
        while (u < rp->n_uni && rp->uni[u].prog != d->prog)
            u++;
        bool known = u < rp->n_uni;
        if (!known && rp->n_uni < REPLAY_PROGRAMS)
            rp->uni[rp->n_uni++] = (struct prog_uniforms){d->prog, 0, 0};
        if (d->loc_row0 >= 0 && (!known || rp->uni[u].row0 != d->row0))
            glUniform1ui(d->loc_row0, d->row0);
        if (d->loc_nrows >= 0 && (!known || rp->uni[u].nrows != d->nrows))
            glUniform1ui(d->loc_nrows, d->nrows);
        if (u < rp->n_uni) {
            rp->uni[u].row0 = d->row0;
            rp->uni[u].nrows = d->nrows;
        }
    }
    struct dg_dispatch_info info = {d->k->name, d->op, d->bytes};
    dg_gl_dispatch(ex->gl, d->groups[0], d->groups[1], d->groups[2], &info);
    if (t0)
        glUniform1ui(d->loc_t0, 0);
    return DG_OK;
}

static bool disp_active(const struct disp *d, int n)
{
    return (d->min_T <= 0 || n >= d->min_T) && (d->max_T <= 0 || n <= d->max_T);
}

static dg_status run_pass(struct dg_exec *ex, const int32_t *ids, int n, float *logits, float *hidden, int hid_off,
                          int n_total)
{
    const struct dg_hparams *hp = &ex->m->hp;
    struct phase *ph = &ex->ph[n > 1];
    struct slot *tok = slot_find(ex, "token_ids");
    if (!tok)
        return dg_fail(DG_E_FORMAT, "%s: no step reads token_ids", ex->path->file);
    dg_status st = DG_OK;
    if (ids) { /* NULL: the ids are already in token_ids on the GPU (written by the sampler) */
        uint32_t idbuf[512];
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= hp->vocab)
                return dg_fail(DG_E_USAGE, "token id %d at position %d is outside the vocabulary [0, %d)", ids[i],
                               ex->pos + i, hp->vocab);
            idbuf[i] = (uint32_t)ids[i];
        }
        if ((st = dg_buffer_upload(ex->gl, tok->buf, 0, (uint64_t)n * 4, idbuf)))
            return st;
    }
    if ((st = pass_uniforms(ex, n)))
        return st;
    if (ph->cur_T != n) {
        for (int i = 0; i < ph->n; i++)
            if ((st = eval_groups(&ph->d[i], n)))
                return st;
        ph->cur_T = n;
    }
    struct slot *hs = hidden ? slot_find(ex, "hidden_state") : NULL;
    /* A decode token is ~180 dispatches on a 1B model, so the CPU cost of issuing one counts (the GPU
     * can run a small dispatch in ~3 us): skip buffer bindings and uniform values the driver already
     * holds. Both caches start empty each pass because other code (the sampler, tests, another
     * executor sharing a program) binds buffers and sets uniforms between passes. */
    struct replay rp;
    memset(&rp, 0, sizeof rp);
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    /* nobody reads this pass's logits back: its LM head computes the last token's row only */
    bool last_row = n > 1 && !logits && !hidden && ex->lm_last.n > 0;
    bool pending_barrier = false;
    for (int i = 0; i < ph->n; i++) {
        if (last_row && i == ex->lm_first) {
            if (pending_barrier && !ex->lm_last.d[0].barrier)
                dg_gl_barrier(ex->gl);
            pending_barrier = false;
            for (int j = 0; j < ex->lm_last.n; j++)
                if ((st = replay_one(ex, &rp, &ex->lm_last.d[j], (GLuint)(n - 1))))
                    return st;
            i += ex->lm_count - 1;
            continue;
        }
        struct disp *d = &ph->d[i];
        if (!disp_active(d, n)) {
            pending_barrier |= d->barrier; /* a skipped variant's barrier orders what comes after it too */
        } else {
            if (pending_barrier && !d->barrier)
                dg_gl_barrier(ex->gl);
            pending_barrier = false;
            if ((st = replay_one(ex, &rp, d, 0)))
                return st;
        }
        /* a layer's last record may be a skipped variant: its capture still marks the end of the layer */
        if (hidden && d->capture > 0) {
            struct slot *s = d->capture_slot ? d->capture_slot : hs;
            if (s) {
                float *tmp = malloc((size_t)n * (size_t)s->width * 4);
                if (!tmp)
                    return dg_fail(DG_E_NOMEM, "hidden capture: out of memory");
                st = download_rows(ex, s, n, tmp);
                for (int t = 0; !st && t < n; t++)
                    memcpy(hidden + ((size_t)(d->capture - 1) * (size_t)n_total + (size_t)(hid_off + t)) * (size_t)hp->hidden,
                           tmp + (size_t)t * (size_t)s->width, (size_t)hp->hidden * 4);
                free(tmp);
                if (st)
                    return st;
            }
        }
    }
    if (n == 1) {
        struct timespec ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        ex->submit_ns += (uint64_t)((ts1.tv_sec - ts0.tv_sec) * 1000000000LL + (ts1.tv_nsec - ts0.tv_nsec));
        ex->submit_passes++;
    }
    if ((st = dg_gl_check("replaying the dispatch list")))
        return st;
    ex->pos += n;
    if (logits) {
        struct slot *lg = slot_find(ex, "logits");
        if (!lg)
            return dg_fail(DG_E_FORMAT, "%s: no step writes logits", ex->path->file);
        if ((st = download_rows(ex, lg, n, logits)))
            return st;
    }
    return DG_OK;
}

dg_status dg_exec_forward(struct dg_exec *ex, const int32_t *ids, int n, float *logits, float *hidden)
{
    if (n <= 0)
        return dg_fail(DG_E_USAGE, "forward: no tokens");
    if (ex->pos + n > ex->ctx)
        return dg_fail(DG_E_USAGE, "context length %d exceeded: %d tokens are already in the cache and %d more were "
                       "given (raise -c)", ex->ctx, ex->pos, n);
    int batch = ex->max_batch < 512 ? ex->max_batch : 512;
    for (int done = 0; done < n;) {
        int c = n - done < batch ? n - done : batch;
        dg_status st = run_pass(ex, ids + done, c, logits ? logits + (size_t)done * (size_t)ex->m->hp.vocab : NULL,
                                hidden, done, n);
        if (st)
            return st;
        done += c;
    }
    return DG_OK;
}

/* Diagnostics for tools/replay-bench.c: the decode list replayed reps times at the current position
 * (which does not advance: every pass recomputes the same token), inside one GPU timer query where the
 * driver has one, so the GPU time of a token's dispatches is measured without the per-token read-back.
 * only: replay just the dispatches of that kernel (NULL: all), each still behind its barrier; skip: all
 * but that kernel's; nobar: drop the barriers before that kernel's dispatches ("": every barrier; NULL:
 * none), which makes the results wrong and measures what those barriers cost. */
dg_status dg_exec_replay_decode(struct dg_exec *ex, int reps, const char *only, const char *skip, const char *nobar,
                                double *gpu_us, double *wall_us)
{
    struct phase *ph = &ex->ph[0];
    dg_status st;
    if ((st = pass_uniforms(ex, 1)))
        return st;
    if (ph->cur_T != 1) {
        for (int i = 0; i < ph->n; i++)
            if ((st = eval_groups(&ph->d[i], 1)))
                return st;
        ph->cur_T = 1;
    }
    const struct dg_gl_caps *caps = dg_gl_caps(ex->gl);
    GLuint q = 0;
    if (caps->timer_query && caps->time_elapsed_works) {
        glGenQueries(1, &q);
        glBeginQuery(GL_TIME_ELAPSED_EXT, q);
    }
    glFinish();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct replay rp;
    memset(&rp, 0, sizeof rp);
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < ph->n; i++) {
            struct disp d = ph->d[i];
            bool mine = !strcmp(d.k->name, only ? only : skip ? skip : "");
            if ((only && !mine) || (skip && mine))
                continue;
            d.barrier = d.barrier || only != NULL;
            if (nobar && (!nobar[0] || !strcmp(d.k->name, nobar)))
                d.barrier = false;
            if ((st = replay_one(ex, &rp, &d, 0)))
                return st;
        }
    }
    if (q)
        glEndQuery(GL_TIME_ELAPSED_EXT);
    glFinish();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *wall_us = ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / reps;
    *gpu_us = 0;
    if (q) {
        GLuint ns = 0; /* 32 bits of nanoseconds: 4 s, far more than a diagnostic's passes take */
        glGetQueryObjectuiv(q, GL_QUERY_RESULT, &ns);
        *gpu_us = (double)ns / 1e3 / reps;
        glDeleteQueries(1, &q);
        if (*wall_us * reps > 4.0e6)
            *gpu_us = 0; /* the 32-bit count may have wrapped: the caller falls back to the wall time */
    }
    return dg_gl_check("replaying the decode list");
}

/* the distinct kernel names of the decode list, in order of first use; returns how many (at most max) */
int dg_exec_decode_kernels(const struct dg_exec *ex, const char **names, int max)
{
    int n = 0;
    for (int i = 0; i < ex->ph[0].n; i++) {
        const char *k = ex->ph[0].d[i].k->name;
        int j = 0;
        while (j < n && strcmp(names[j], k))
            j++;
        if (j == n && n < max)
            names[n++] = k;
    }
    return n;
}

dg_status dg_exec_forward_gpu_token(struct dg_exec *ex)
{
    if (ex->pos + 1 > ex->ctx)
        return dg_fail(DG_E_USAGE, "context length %d reached (raise -c)", ex->ctx);
    return run_pass(ex, NULL, 1, NULL, NULL, 0, 1);
}

int64_t dg_exec_slot_width(const struct dg_exec *ex, const char *name)
{
    struct slot *s = slot_find((struct dg_exec *)ex, name);
    return s ? s->width : 0;
}

const struct dg_buffer *dg_exec_slot(const struct dg_exec *ex, const char *name)
{
    struct slot *s = slot_find((struct dg_exec *)ex, name);
    return s ? s->buf : NULL;
}

dg_status dg_exec_read_tokens(struct dg_exec *ex, uint32_t *ids, int n)
{
    struct slot *s = slot_find(ex, "token_out");
    if (!s)
        return dg_fail(DG_E_FORMAT, "%s: the path has no sampling step writing token_out", ex->path->file);
    glMemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT);
    return dg_buffer_download(ex->gl, s->buf, 0, (uint64_t)n * 4, ids);
}

void dg_exec_reset(struct dg_exec *ex) { ex->pos = 0; }
void dg_exec_set_pos(struct dg_exec *ex, int pos) { ex->pos = pos < 0 ? 0 : pos > ex->ctx ? ex->ctx : pos; }
int dg_exec_max_batch(const struct dg_exec *ex) { return ex->max_batch < 512 ? ex->max_batch : 512; }
int dg_exec_pos(const struct dg_exec *ex) { return ex->pos; }
int dg_exec_ctx(const struct dg_exec *ex) { return ex->ctx; }
int dg_exec_vocab(const struct dg_exec *ex) { return ex->m->hp.vocab; }

void dg_exec_stats(const struct dg_exec *ex, struct dg_exec_stats *st)
{
    memset(st, 0, sizeof *st);
    for (int p = 0; p < 2; p++) {
        int nd = 0, nb = 0; /* the records a pass of the full batch replays (DQ variants: the long one) */
        for (int i = 0; i < ex->ph[p].n; i++)
            if (disp_active(&ex->ph[p].d[i], p ? ex->max_batch : 1)) {
                nd++;
                nb += ex->ph[p].d[i].barrier;
            }
        if (p == 0) {
            st->dispatches_decode = nd;
            st->barriers_decode = nb;
        } else {
            st->dispatches_prefill = nd;
            st->barriers_prefill = nb;
        }
    }
    st->dispatches_per_layer_decode = ex->ph[0].per_layer0;
    st->weight_bytes = ex->weight_bytes;
    st->kv_bytes = ex->kv_bytes;
    st->slot_bytes = ex->slot_bytes;
    for (int i = 0; i < ex->ph[0].n; i++)
        st->active_weight_bytes += ex->ph[0].d[i].wbytes;
    for (int i = 0; i < ex->ph[0].n; i++)
        st->image_reads_decode += reads_images(&ex->ph[0].d[i]);
    st->image_views = ex->n_views;
    st->submit_us_decode = ex->submit_passes ? (double)ex->submit_ns / 1e3 / (double)ex->submit_passes : 0;
}

void dg_exec_print(const struct dg_exec *ex, FILE *out)
{
    for (int p = 0; p < 2; p++) {
        const struct phase *ph = &ex->ph[p];
        fprintf(out, "%s dispatch list (%d dispatches; layers after the first are the same with their own weights):\n",
                p ? "prefill" : "decode", ph->n);
        for (int i = 0; i < ph->n; i++) {
            const struct disp *d = &ph->d[i];
            if (d->layer > 0)
                continue;
            fprintf(out, "  %s%-3d %-12s %s/%s  groups %u,%u,%u%s", d->barrier ? "| " : "  ", i, d->op, d->k->name,
                    d->e->name, d->groups[0], d->groups[1], d->groups[2], d->layer == 0 ? "  (layer 0)" : "");
            if (d->min_T > 0)
                fprintf(out, "  (passes of >= %d tokens)", d->min_T);
            if (d->max_T > 0)
                fprintf(out, "  (passes of <= %d tokens)", d->max_T);
            fprintf(out, "\n        ");
            for (int j = 0; j < d->nenv; j++)
                fprintf(out, "%s=%lld ", d->env[j].name, (long long)d->env[j].v);
            if (reads_images(d))
                fprintf(out, "IMG=1 (image reads)");
            fprintf(out, "\n");
        }
    }
    fprintf(out, "('|' marks a barrier before the dispatch)\n");
}
