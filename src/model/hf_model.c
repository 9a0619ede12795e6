/* hf_model.c: a Hugging Face folder (config.json + safetensors) as a struct dg_model.
 *
 * Tensor names are mapped to the canonical names of model.h. Plain tensors stay zero-copy (data points into
 * the safetensors mapping, dtype as stored); only tensors that must change shape get owned buffers: Phi-3's
 * fused qkv_proj / gate_up_proj (split), per-expert MoE weights (stacked), GPT-OSS experts (stored
 * [E, in, out] with gate/up interleaved: de-interleaved and transposed to [E, out, in]) and MXFP4
 * blocks/scales (repacked into GGUF-layout MXFP4 blocks). Shapes are then checked against the config, so
 * consumers can trust them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "model/safetensors.h"

struct hf_priv {
    struct dg_model_priv base;
    struct dg_safetensors st;
    void **owned;
    int n_owned;
    int cap_tensors;
};

static void hf_close(struct dg_model *m)
{
    struct hf_priv *p = m->priv;
    if (p) {
        for (int i = 0; i < p->n_owned; i++)
            free(p->owned[i]);
        free(p->owned);
        dg_safetensors_close(&p->st);
        free(p);
    }
    free(m->tensors);
    m->tensors = NULL;
    m->n_tensors = 0;
    m->priv = NULL;
}

static void *own(struct hf_priv *p, size_t n)
{
    void **no = realloc(p->owned, ((size_t)p->n_owned + 1) * sizeof *no);
    if (!no)
        return NULL;
    p->owned = no;
    void *b = calloc(1, n ? n : 1);
    if (b)
        p->owned[p->n_owned++] = b;
    return b;
}

static struct dg_tensor *add(struct dg_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static struct dg_tensor *add(struct dg_model *m, const char *fmt, ...)
{
    struct hf_priv *p = m->priv;
    if (m->n_tensors == p->cap_tensors) {
        int nc = p->cap_tensors ? p->cap_tensors * 2 : 256;
        struct dg_tensor *nt = realloc(m->tensors, (size_t)nc * sizeof *nt);
        if (!nt)
            return NULL;
        m->tensors = nt;
        p->cap_tensors = nc;
    }
    struct dg_tensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof t->name)
        return NULL;
    m->n_tensors++;
    return t;
}

static int plain_dtype(enum dg_st_dtype sd, enum dg_dtype *out)
{
    switch (sd) {
    case DG_ST_F32: *out = DG_DT_F32; return 1;
    case DG_ST_F16: *out = DG_DT_F16; return 1;
    case DG_ST_BF16: *out = DG_DT_BF16; return 1;
    default: return 0;
    }
}

static dg_status need_plain(const struct dg_st_tensor *s, const char *file, enum dg_dtype *dt)
{
    if (!plain_dtype(s->dtype, dt))
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: dtype %s is only accepted for MXFP4 blocks/scales; "
                       "expected F32, F16 or BF16", file, s->name, dg_st_dtype_name(s->dtype));
    return DG_OK;
}

/* A zero-copy entry for a whole source tensor. */
static dg_status add_view(struct dg_model *m, const struct dg_st_tensor *s, const char *file, const char *name)
{
    enum dg_dtype dt;
    dg_status rc = need_plain(s, file, &dt);
    if (rc)
        return rc;
    if (s->ndim > DG_MAX_DIMS)
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s has %d dimensions, expected at most %d", file, s->name,
                       s->ndim, DG_MAX_DIMS);
    struct dg_tensor *t = add(m, "%s", name);
    if (!t)
        return dg_fail(DG_E_NOMEM, "%s: tensor %s: out of memory or canonical name too long", file, s->name);
    t->dtype = dt;
    t->ndim = s->ndim;
    for (int i = 0; i < s->ndim; i++)
        t->shape[i] = s->shape[i];
    t->data = s->data;
    t->nbytes = s->nbytes;
    return DG_OK;
}

/* Splits a 2-D [rows, cols] tensor along rows into `n` owned parts of rows[i] rows each. */
static dg_status split_rows(struct dg_model *m, const struct dg_st_tensor *s, const char *file, int n,
                            const int64_t *rows, const char *const *names)
{
    enum dg_dtype dt;
    dg_status rc = need_plain(s, file, &dt);
    if (rc)
        return rc;
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += rows[i];
    if (s->ndim != 2 || s->shape[0] != total)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: shape [%lld, ...] (%d dims), expected [%lld, hidden] from the "
                       "config", file, s->name, (long long)s->shape[0], s->ndim, (long long)total);
    size_t row_bytes = (size_t)s->shape[1] * dg_st_dtype_size(s->dtype);
    const uint8_t *src = s->data;
    for (int i = 0; i < n; i++) {
        size_t nb = (size_t)rows[i] * row_bytes;
        void *buf = own(m->priv, nb);
        struct dg_tensor *t = buf ? add(m, "%s", names[i]) : NULL;
        if (!t)
            return dg_fail(DG_E_NOMEM, "%s: tensor %s: out of memory", file, s->name);
        memcpy(buf, src, nb);
        src += nb;
        t->dtype = dt;
        t->ndim = 2;
        t->shape[0] = rows[i];
        t->shape[1] = s->shape[1];
        t->data = buf;
        t->nbytes = nb;
    }
    return DG_OK;
}

/* Per-expert tensors (Mixtral/PhiMoE w1/w2/w3, Qwen3-MoE experts.N.*_proj) stacked into [E, rows, cols]. */
static dg_status stack_experts(struct dg_model *m, const char *file, int layer, int n_exp, const char *fmt_src,
                               const char *dst)
{
    struct hf_priv *p = m->priv;
    char name[256];
    const struct dg_st_tensor *first = NULL;
    uint8_t *buf = NULL;
    for (int e = 0; e < n_exp; e++) {
        snprintf(name, sizeof name, fmt_src, layer, e);
        const struct dg_st_tensor *s = dg_safetensors_find(&p->st, name);
        if (!s)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s is missing (config.json says %d experts)", file, name, n_exp);
        enum dg_dtype dt;
        dg_status rc = need_plain(s, file, &dt);
        if (rc)
            return rc;
        if (!first) {
            first = s;
            if (s->ndim != 2)
                return dg_fail(DG_E_FORMAT, "%s: tensor %s has %d dimensions, expected 2", file, name, s->ndim);
            buf = own(p, (size_t)s->nbytes * (size_t)n_exp);
            struct dg_tensor *t = buf ? add(m, "layer.%d.mlp.experts.%s", layer, dst) : NULL;
            if (!t)
                return dg_fail(DG_E_NOMEM, "%s: stacking %s: out of memory", file, name);
            t->dtype = dt;
            t->ndim = 3;
            t->shape[0] = n_exp;
            t->shape[1] = s->shape[0];
            t->shape[2] = s->shape[1];
            t->data = buf;
            t->nbytes = s->nbytes * (uint64_t)n_exp;
        } else if (s->dtype != first->dtype || s->ndim != 2 || s->shape[0] != first->shape[0] ||
                   s->shape[1] != first->shape[1]) {
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: dtype/shape differ from %s (all experts must match)", file,
                           name, first->name);
        }
        memcpy(buf + (size_t)e * s->nbytes, s->data, s->nbytes);
    }
    return DG_OK;
}

static dg_status add_owned(struct dg_model *m, const char *file, enum dg_dtype dt, int ndim, const int64_t *shape,
                           uint64_t nbytes, void **out, const char *fmt, int layer, const char *what)
{
    void *buf = own(m->priv, nbytes);
    struct dg_tensor *t = buf ? add(m, fmt, layer, what) : NULL;
    if (!t)
        return dg_fail(DG_E_NOMEM, "%s: layer %d %s: out of memory", file, layer, what);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = buf;
    t->nbytes = nbytes;
    *out = buf;
    return DG_OK;
}

/* GPT-OSS experts as transformers stores them: gate_up_proj [E, H, 2I] with gate in even and up in odd
 * columns, down_proj [E, I, H]; biases [E, 2I] (interleaved alike) and [E, H]. */
static dg_status gpt_oss_experts(struct dg_model *m, const char *file, int layer, const struct dg_hparams *hp)
{
    struct hf_priv *p = m->priv;
    char name[256];
    const int64_t E = hp->n_experts, H = hp->hidden, I = hp->moe_intermediate;
    const struct dg_st_tensor *gu, *dn, *gub, *dnb;
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", layer);
    gu = dg_safetensors_find(&p->st, name);
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj", layer);
    dn = dg_safetensors_find(&p->st, name);
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj_bias", layer);
    gub = dg_safetensors_find(&p->st, name);
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj_bias", layer);
    dnb = dg_safetensors_find(&p->st, name);
    if (!gu || !dn)
        return DG_OK; /* not this form (MXFP4, or missing: the shape check reports it) */
    enum dg_dtype dt;
    dg_status rc;
    if ((rc = need_plain(gu, file, &dt)) || (rc = need_plain(dn, file, &dt)))
        return rc;
    if (gu->ndim != 3 || gu->shape[0] != E || gu->shape[1] != H || gu->shape[2] != 2 * I)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: expected shape [%lld, %lld, %lld] (experts, hidden, "
                       "2 x intermediate)", file, gu->name, (long long)E, (long long)H, (long long)(2 * I));
    if (dn->ndim != 3 || dn->shape[0] != E || dn->shape[1] != I || dn->shape[2] != H)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: expected shape [%lld, %lld, %lld] (experts, intermediate, "
                       "hidden)", file, dn->name, (long long)E, (long long)I, (long long)H);
    size_t es = dg_st_dtype_size(gu->dtype), esd = dg_st_dtype_size(dn->dtype);
    enum dg_dtype dtd = DG_DT_F32;
    plain_dtype(gu->dtype, &dt);
    plain_dtype(dn->dtype, &dtd);
    int64_t shp[3] = {E, I, H};
    uint8_t *g = NULL, *u = NULL, *d = NULL;
    if ((rc = add_owned(m, file, dt, 3, shp, (uint64_t)(E * I * H) * es, (void **)&g, "layer.%d.mlp.experts.%s",
                        layer, "gate_proj")) ||
        (rc = add_owned(m, file, dt, 3, shp, (uint64_t)(E * I * H) * es, (void **)&u, "layer.%d.mlp.experts.%s",
                        layer, "up_proj")))
        return rc;
    int64_t shd[3] = {E, H, I};
    if ((rc = add_owned(m, file, dtd, 3, shd, (uint64_t)(E * I * H) * esd, (void **)&d, "layer.%d.mlp.experts.%s",
                        layer, "down_proj")))
        return rc;
    const uint8_t *s = gu->data, *sd = dn->data;
    for (int64_t e = 0; e < E; e++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < I; i++) {
                const uint8_t *row = s + ((size_t)(e * H + h) * (size_t)(2 * I)) * es;
                memcpy(g + ((size_t)(e * I + i) * (size_t)H + (size_t)h) * es, row + (size_t)(2 * i) * es, es);
                memcpy(u + ((size_t)(e * I + i) * (size_t)H + (size_t)h) * es, row + (size_t)(2 * i + 1) * es, es);
                /* down: source [e][i][h] → canonical [e][h][i] */
                memcpy(d + ((size_t)(e * H + h) * (size_t)I + (size_t)i) * esd,
                       sd + ((size_t)(e * I + i) * (size_t)H + (size_t)h) * esd, esd);
            }
    if (gub) {
        if ((rc = need_plain(gub, file, &dt)))
            return rc;
        if (gub->ndim != 2 || gub->shape[0] != E || gub->shape[1] != 2 * I)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: expected shape [%lld, %lld]", file, gub->name, (long long)E,
                           (long long)(2 * I));
        es = dg_st_dtype_size(gub->dtype);
        int64_t sb[2] = {E, I};
        uint8_t *gb = NULL, *ub = NULL;
        if ((rc = add_owned(m, file, dt, 2, sb, (uint64_t)(E * I) * es, (void **)&gb, "layer.%d.mlp.experts.%s",
                            layer, "gate_proj.bias")) ||
            (rc = add_owned(m, file, dt, 2, sb, (uint64_t)(E * I) * es, (void **)&ub, "layer.%d.mlp.experts.%s",
                            layer, "up_proj.bias")))
            return rc;
        const uint8_t *b = gub->data;
        for (int64_t k = 0; k < E * I; k++) {
            memcpy(gb + (size_t)k * es, b + (size_t)(2 * k) * es, es);
            memcpy(ub + (size_t)k * es, b + (size_t)(2 * k + 1) * es, es);
        }
    }
    if (dnb) {
        snprintf(name, sizeof name, "layer.%d.mlp.experts.down_proj.bias", layer);
        if ((rc = add_view(m, dnb, file, name)))
            return rc;
    }
    return DG_OK;
}

/* MXFP4 experts as the GPT-OSS hub checkpoints ship them: *_blocks [E, rows, in/32, 16] (E2M1 pairs, low nibble
 * = even element) and *_scales [E, rows, in/32] (E8M0). Rows are already [out]; gate/up rows interleave.
 * Repacked to GGUF's MXFP4 block (scale byte, then 16 bytes with element j in the low nibble of byte j and
 * element j + 16 in its high nibble). */
static void mxfp4_block(uint8_t *dst, uint8_t scale, const uint8_t *src)
{
    dst[0] = scale;
    memset(dst + 1, 0, 16);
    for (int k = 0; k < 32; k++) {
        uint8_t v = (uint8_t)((src[k / 2] >> (4 * (k & 1))) & 15);
        dst[1 + k % 16] |= (uint8_t)(v << (4 * (k / 16)));
    }
}

static dg_status gpt_oss_mxfp4(struct dg_model *m, const char *file, int layer, const struct dg_hparams *hp)
{
    struct hf_priv *p = m->priv;
    const int64_t E = hp->n_experts, H = hp->hidden, I = hp->moe_intermediate;
    static const char *const srcs[2] = {"gate_up_proj", "down_proj"};
    for (int w = 0; w < 2; w++) {
        char bn[256], sn[256];
        snprintf(bn, sizeof bn, "model.layers.%d.mlp.experts.%s_blocks", layer, srcs[w]);
        snprintf(sn, sizeof sn, "model.layers.%d.mlp.experts.%s_scales", layer, srcs[w]);
        const struct dg_st_tensor *b = dg_safetensors_find(&p->st, bn), *s = dg_safetensors_find(&p->st, sn);
        if (!b && !s)
            continue;
        if (!b || !s)
            return dg_fail(DG_E_FORMAT, "%s: %s needs both %s and %s", file, srcs[w], bn, sn);
        int64_t rows = w == 0 ? 2 * I : H, in = w == 0 ? H : I;
        if (in % 32)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: input width %lld is not a multiple of 32", file, bn,
                           (long long)in);
        int64_t nb = in / 32;
        if (b->dtype != DG_ST_U8 || b->ndim != 4 || b->shape[0] != E || b->shape[1] != rows || b->shape[2] != nb ||
            b->shape[3] != 16)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: expected U8 [%lld, %lld, %lld, 16]", file, bn, (long long)E,
                           (long long)rows, (long long)nb);
        if (s->dtype != DG_ST_U8 || s->ndim != 3 || s->shape[0] != E || s->shape[1] != rows || s->shape[2] != nb)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: expected U8 [%lld, %lld, %lld]", file, sn, (long long)E,
                           (long long)rows, (long long)nb);
        size_t row_bytes = (size_t)nb * 17;
        int64_t out_rows = w == 0 ? I : H;
        int64_t shape[3] = {E, out_rows, in};
        uint8_t *dst[2] = {NULL, NULL};
        dg_status rc;
        if (w == 0) {
            if ((rc = add_owned(m, file, DG_DT_MXFP4, 3, shape, (uint64_t)(E * I) * row_bytes, (void **)&dst[0],
                                "layer.%d.mlp.experts.%s", layer, "gate_proj")) ||
                (rc = add_owned(m, file, DG_DT_MXFP4, 3, shape, (uint64_t)(E * I) * row_bytes, (void **)&dst[1],
                                "layer.%d.mlp.experts.%s", layer, "up_proj")))
                return rc;
        } else if ((rc = add_owned(m, file, DG_DT_MXFP4, 3, shape, (uint64_t)(E * H) * row_bytes, (void **)&dst[0],
                                   "layer.%d.mlp.experts.%s", layer, "down_proj"))) {
            return rc;
        }
        for (int64_t e = 0; e < E; e++)
            for (int64_t r = 0; r < rows; r++) {
                /* gate_up: row 2i is gate i, row 2i + 1 is up i */
                uint8_t *o = w == 0 ? dst[r & 1] + (size_t)(e * I + r / 2) * row_bytes
                                    : dst[0] + (size_t)(e * H + r) * row_bytes;
                for (int64_t k = 0; k < nb; k++)
                    mxfp4_block(o + (size_t)k * 17, s->data[(size_t)((e * rows + r) * nb + k)],
                                b->data + (size_t)((e * rows + r) * nb + k) * 16);
            }
    }
    return DG_OK;
}

/* Stacked experts in transformers 5's own layout for Mixtral / Qwen3-MoE / PhiMoE: gate_up_proj [E, 2I, H]
 * (gate rows first, then up rows), down_proj [E, H, I]. */
static dg_status stacked_experts(struct dg_model *m, const char *file, int layer, const struct dg_hparams *hp)
{
    struct hf_priv *p = m->priv;
    char name[256];
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", layer);
    const struct dg_st_tensor *gu = dg_safetensors_find(&p->st, name);
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj", layer);
    const struct dg_st_tensor *dn = dg_safetensors_find(&p->st, name);
    const int64_t E = hp->n_experts, H = hp->hidden, I = hp->moe_intermediate;
    dg_status rc;
    if (gu) {
        enum dg_dtype dt;
        if ((rc = need_plain(gu, file, &dt)))
            return rc;
        if (gu->ndim != 3 || gu->shape[0] != E || gu->shape[1] != 2 * I || gu->shape[2] != H)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: expected shape [%lld, %lld, %lld] (experts, 2 x "
                           "intermediate, hidden)", file, gu->name, (long long)E, (long long)(2 * I), (long long)H);
        size_t half = (size_t)(I * H) * dg_st_dtype_size(gu->dtype);
        int64_t shp[3] = {E, I, H};
        uint8_t *g = NULL, *u = NULL;
        if ((rc = add_owned(m, file, dt, 3, shp, (uint64_t)(E * half), (void **)&g, "layer.%d.mlp.experts.%s",
                            layer, "gate_proj")) ||
            (rc = add_owned(m, file, dt, 3, shp, (uint64_t)(E * half), (void **)&u, "layer.%d.mlp.experts.%s",
                            layer, "up_proj")))
            return rc;
        for (int64_t e = 0; e < E; e++) {
            memcpy(g + (size_t)e * half, gu->data + (size_t)e * 2 * half, half);
            memcpy(u + (size_t)e * half, gu->data + (size_t)e * 2 * half + half, half);
        }
    }
    if (dn) {
        snprintf(name, sizeof name, "layer.%d.mlp.experts.down_proj", layer);
        if ((rc = add_view(m, dn, file, name)))
            return rc;
    }
    return DG_OK;
}

/* Parses "model.layers.N.rest" (or "layers.N.rest"); returns N and sets *rest, or -1. */
static int layer_of(const char *name, const char **rest)
{
    if (strncmp(name, "model.", 6) == 0)
        name += 6;
    if (strncmp(name, "layers.", 7) != 0)
        return -1;
    char *end;
    long n = strtol(name + 7, &end, 10);
    if (end == name + 7 || *end != '.' || n < 0 || n >= DG_MAX_LAYERS)
        return -1;
    *rest = end + 1;
    return (int)n;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Maps one source tensor. Handled-elsewhere tensors (experts) return DG_OK without adding. */
static dg_status map_tensor(struct dg_model *m, const char *file, const struct dg_st_tensor *s)
{
    const struct dg_hparams *hp = &m->hp;
    const char *rest;
    char base[256], canon[DG_TENSOR_NAME_MAX + 32];
    int L = layer_of(s->name, &rest);
    if (L < 0) {
        const char *n = s->name;
        if (strncmp(n, "model.", 6) == 0)
            n += 6;
        snprintf(base, sizeof base, "%s", n);
        if (ends_with(base, ".weight"))
            base[strlen(base) - 7] = 0;
        return add_view(m, s, file, base);
    }
    if (L >= hp->n_layers)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: layer %d, but config.json has num_hidden_layers %d", file,
                       s->name, L, hp->n_layers);
    /* Expert tensors in any form are gathered per layer later. */
    if (strstr(rest, "experts."))
        return DG_OK;
    snprintf(base, sizeof base, "%s", rest);
    if (ends_with(base, ".weight"))
        base[strlen(base) - 7] = 0;
    if (strcmp(base, "self_attn.qkv_proj") == 0) {
        int64_t q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
        int64_t rows[3] = {q, kv, kv};
        char n0[64], n1[64], n2[64];
        snprintf(n0, sizeof n0, "layer.%d.self_attn.q_proj", L);
        snprintf(n1, sizeof n1, "layer.%d.self_attn.k_proj", L);
        snprintf(n2, sizeof n2, "layer.%d.self_attn.v_proj", L);
        const char *names[3] = {n0, n1, n2};
        return split_rows(m, s, file, 3, rows, names);
    }
    if (strcmp(base, "mlp.gate_up_proj") == 0) {
        int64_t rows[2] = {hp->intermediate, hp->intermediate};
        char n0[64], n1[64];
        snprintf(n0, sizeof n0, "layer.%d.mlp.gate_proj", L);
        snprintf(n1, sizeof n1, "layer.%d.mlp.up_proj", L);
        const char *names[2] = {n0, n1};
        return split_rows(m, s, file, 2, rows, names);
    }
    if (strcmp(base, "block_sparse_moe.gate") == 0 || strcmp(base, "mlp.gate") == 0)
        snprintf(base, sizeof base, "mlp.router");
    snprintf(canon, sizeof canon, "layer.%d.%s", L, base);
    return add_view(m, s, file, canon);
}

/* Shape check of one canonical tensor against the config. dims < 0 end the list. */
static dg_status expect(const struct dg_model *m, const char *file, bool required, const char *name, int ndim,
                        int64_t d0, int64_t d1, int64_t d2)
{
    const struct dg_tensor *t = dg_model_find(m, name);
    if (!t) {
        if (required)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s is missing (required by config.json for %s)", file, name,
                           m->hp.model_type);
        return DG_OK;
    }
    int64_t want[3] = {d0, d1, d2};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char got[96] = "", exp[96] = "";
        size_t a = 0, b = 0;
        for (int i = 0; i < t->ndim && a < sizeof got; i++)
            a += (size_t)snprintf(got + a, sizeof got - a, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim && b < sizeof exp; i++)
            b += (size_t)snprintf(exp + b, sizeof exp - b, "%s%lld", i ? ", " : "", (long long)want[i]);
        return dg_fail(DG_E_FORMAT, "%s: tensor %s has shape [%s], expected [%s] from config.json", file, name, got,
                       exp);
    }
    return DG_OK;
}

static dg_status validate(struct dg_model *m, const char *file)
{
    struct dg_hparams *hp = &m->hp;
    const int64_t H = hp->hidden, V = hp->vocab, D = hp->head_dim, QD = (int64_t)hp->n_heads * D,
                  KD = (int64_t)hp->n_kv_heads * D;
    const bool ln = hp->norm_style == DG_NORM_LAYER;
    dg_status rc;
#define E(...)                                                                                                 \
    do {                                                                                                       \
        if ((rc = expect(m, file, __VA_ARGS__)))                                                               \
            return rc;                                                                                         \
    } while (0)
    char n[DG_TENSOR_NAME_MAX];
    E(true, "embed_tokens", 2, V, H, 0);
    E(true, "norm", 1, H, 0, 0);
    E(ln, "norm.bias", 1, H, 0, 0);
    E(!hp->tie_embeddings, "lm_head", 2, V, H, 0);
    /* Bias flags follow the file where the config is silent or off: a present bias is always applied. */
    hp->lm_head_bias = hp->lm_head_bias || dg_model_find(m, "lm_head.bias");
    E(hp->lm_head_bias, "lm_head.bias", 1, V, 0, 0);
    for (int L = 0; L < hp->n_layers; L++) {
#define N(fmt) (snprintf(n, sizeof n, "layer.%d." fmt, L), n)
        E(true, N("input_layernorm"), 1, H, 0, 0);
        E(ln, N("input_layernorm.bias"), 1, H, 0, 0);
        E(true, N("post_attention_layernorm"), 1, H, 0, 0);
        E(ln, N("post_attention_layernorm.bias"), 1, H, 0, 0);
        if (hp->sandwich_norm) {
            E(true, N("pre_feedforward_layernorm"), 1, H, 0, 0);
            E(true, N("post_feedforward_layernorm"), 1, H, 0, 0);
        }
        E(true, N("self_attn.q_proj"), 2, QD, H, 0);
        E(true, N("self_attn.k_proj"), 2, KD, H, 0);
        E(true, N("self_attn.v_proj"), 2, KD, H, 0);
        E(true, N("self_attn.o_proj"), 2, H, QD, 0);
        if (dg_model_find(m, N("self_attn.q_proj.bias")))
            hp->attn_qkv_bias = true;
        if (dg_model_find(m, N("self_attn.o_proj.bias")))
            hp->attn_o_bias = true;
        E(hp->attn_qkv_bias, N("self_attn.q_proj.bias"), 1, QD, 0, 0);
        E(hp->attn_qkv_bias, N("self_attn.k_proj.bias"), 1, KD, 0, 0);
        E(hp->attn_qkv_bias, N("self_attn.v_proj.bias"), 1, KD, 0, 0);
        E(hp->attn_o_bias, N("self_attn.o_proj.bias"), 1, H, 0, 0);
        if (hp->qk_norm) {
            E(true, N("self_attn.q_norm"), 1, D, 0, 0);
            E(true, N("self_attn.k_norm"), 1, D, 0, 0);
        }
        E(hp->attn_sinks, N("self_attn.sinks"), 1, hp->n_heads, 0, 0);
        if (hp->n_experts && hp->layer_moe[L]) {
            const int64_t X = hp->n_experts, I = hp->moe_intermediate;
            bool rb = hp->router == DG_ROUTER_TOPK_SOFTMAX;
            E(true, N("mlp.router"), 2, X, H, 0);
            E(rb, N("mlp.router.bias"), 1, X, 0, 0);
            E(true, N("mlp.experts.gate_proj"), 3, X, I, H);
            E(true, N("mlp.experts.up_proj"), 3, X, I, H);
            E(true, N("mlp.experts.down_proj"), 3, X, H, I);
            bool eb = hp->arch == DG_ARCH_GPT_OSS;
            E(eb, N("mlp.experts.gate_proj.bias"), 2, X, I, 0);
            E(eb, N("mlp.experts.up_proj.bias"), 2, X, I, 0);
            E(eb, N("mlp.experts.down_proj.bias"), 2, X, H, 0);
        } else {
            const int64_t I = hp->intermediate;
            E(true, N("mlp.gate_proj"), 2, I, H, 0);
            E(true, N("mlp.up_proj"), 2, I, H, 0);
            E(true, N("mlp.down_proj"), 2, H, I, 0);
            E(hp->mlp_bias, N("mlp.gate_proj.bias"), 1, I, 0, 0);
            E(hp->mlp_bias, N("mlp.up_proj.bias"), 1, I, 0, 0);
            E(hp->mlp_bias, N("mlp.down_proj.bias"), 1, H, 0, 0);
        }
#undef N
    }
#undef E
    return DG_OK;
}

dg_status dg_model_open_hf(const char *dir, struct dg_model *m)
{
    memset(m, 0, sizeof *m);
    m->source = DG_SRC_HF;
    snprintf(m->path, sizeof m->path, "%s", dir);
    dg_status rc = dg_hf_config_load(dir, &m->hp);
    if (rc)
        return rc;
    struct hf_priv *p = calloc(1, sizeof *p);
    if (!p)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", dir);
    p->base.close = hf_close;
    m->priv = p;
    if ((rc = dg_safetensors_open(dir, &p->st)))
        goto fail;
    char file[4200];
    for (int i = 0; i < p->st.n_tensors; i++) {
        const struct dg_st_tensor *s = &p->st.tensors[i];
        snprintf(file, sizeof file, "%s", p->st.files[s->file].path);
        if ((rc = map_tensor(m, file, s)))
            goto fail;
    }
    snprintf(file, sizeof file, "%s", p->st.n_files == 1 ? p->st.files[0].path : dir);
    const struct dg_hparams *hp = &m->hp;
    for (int L = 0; L < hp->n_layers && hp->n_experts; L++) {
        if (!hp->layer_moe[L])
            continue;
        char probe[256];
        snprintf(probe, sizeof probe, "model.layers.%d.block_sparse_moe.experts.0.w1.weight", L);
        if (dg_safetensors_find(&p->st, probe)) {
            if ((rc = stack_experts(m, file, L, hp->n_experts, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight",
                                    "gate_proj")) ||
                (rc = stack_experts(m, file, L, hp->n_experts, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight",
                                    "up_proj")) ||
                (rc = stack_experts(m, file, L, hp->n_experts, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight",
                                    "down_proj")))
                goto fail;
            continue;
        }
        snprintf(probe, sizeof probe, "model.layers.%d.mlp.experts.0.gate_proj.weight", L);
        if (dg_safetensors_find(&p->st, probe)) {
            if ((rc = stack_experts(m, file, L, hp->n_experts, "model.layers.%d.mlp.experts.%d.gate_proj.weight",
                                    "gate_proj")) ||
                (rc = stack_experts(m, file, L, hp->n_experts, "model.layers.%d.mlp.experts.%d.up_proj.weight",
                                    "up_proj")) ||
                (rc = stack_experts(m, file, L, hp->n_experts, "model.layers.%d.mlp.experts.%d.down_proj.weight",
                                    "down_proj")))
                goto fail;
            continue;
        }
        if (hp->arch == DG_ARCH_GPT_OSS) {
            if ((rc = gpt_oss_experts(m, file, L, hp)) || (rc = gpt_oss_mxfp4(m, file, L, hp)))
                goto fail;
            if (!dg_model_findf(m, "layer.%d.mlp.experts.down_proj.bias", L)) {
                /* MXFP4 checkpoints keep biases as plain tensors: map them too. */
                char bn[256];
                snprintf(bn, sizeof bn, "model.layers.%d.mlp.experts.gate_up_proj_bias", L);
                const struct dg_st_tensor *gub = dg_safetensors_find(&p->st, bn);
                snprintf(bn, sizeof bn, "model.layers.%d.mlp.experts.down_proj_bias", L);
                const struct dg_st_tensor *dnb = dg_safetensors_find(&p->st, bn);
                if (gub && !dg_model_findf(m, "layer.%d.mlp.experts.gate_proj.bias", L)) {
                    enum dg_dtype dt;
                    if ((rc = need_plain(gub, file, &dt)))
                        goto fail;
                    int64_t E = hp->n_experts, I = hp->moe_intermediate;
                    if (gub->ndim != 2 || gub->shape[0] != E || gub->shape[1] != 2 * I) {
                        rc = dg_fail(DG_E_FORMAT, "%s: tensor %s: expected shape [%lld, %lld]", file, gub->name,
                                     (long long)E, (long long)(2 * I));
                        goto fail;
                    }
                    size_t es = dg_st_dtype_size(gub->dtype);
                    int64_t sb[2] = {E, I};
                    uint8_t *gb = NULL, *ub = NULL;
                    if ((rc = add_owned(m, file, dt, 2, sb, (uint64_t)(E * I) * es, (void **)&gb,
                                        "layer.%d.mlp.experts.%s", L, "gate_proj.bias")) ||
                        (rc = add_owned(m, file, dt, 2, sb, (uint64_t)(E * I) * es, (void **)&ub,
                                        "layer.%d.mlp.experts.%s", L, "up_proj.bias")))
                        goto fail;
                    for (int64_t k = 0; k < E * I; k++) {
                        memcpy(gb + (size_t)k * es, gub->data + (size_t)(2 * k) * es, es);
                        memcpy(ub + (size_t)k * es, gub->data + (size_t)(2 * k + 1) * es, es);
                    }
                }
                if (dnb) {
                    char cn[DG_TENSOR_NAME_MAX];
                    snprintf(cn, sizeof cn, "layer.%d.mlp.experts.down_proj.bias", L);
                    if ((rc = add_view(m, dnb, file, cn)))
                        goto fail;
                }
            }
        } else if ((rc = stacked_experts(m, file, L, hp))) {
            goto fail;
        }
    }
    /* Canonical names must be unique (two source spellings of one tensor would be ambiguous). */
    for (int i = 0; i < m->n_tensors; i++)
        for (int j = i + 1; j < m->n_tensors; j++)
            if (strcmp(m->tensors[i].name, m->tensors[j].name) == 0) {
                rc = dg_fail(DG_E_FORMAT, "%s: two source tensors map to %s", dir, m->tensors[i].name);
                goto fail;
            }
    if ((rc = validate(m, file)))
        goto fail;
    DG_VERBOSE("%s: %s, %d layers, %d tensors from %d safetensors file(s)", dir, m->hp.model_type, m->hp.n_layers,
               m->n_tensors, p->st.n_files);
    return DG_OK;
fail:
    hf_close(m);
    return rc;
}
