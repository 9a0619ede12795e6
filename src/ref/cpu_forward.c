/* cpu_forward.c: the CPU reference's weights (converted to float32 once), KV cache, attention and the
 * decoder loop. One layer, as transformers runs it:
 *
 *   h = norm(x, input_layernorm)
 *   q, k, v = h·Wq (+b), h·Wk (+b), h·Wv (+b); per-head q/k norm (Qwen3, Gemma 3); rope (local base on
 *   Gemma 3 sliding layers); k, v appended to the cache
 *   a = softmax(softcap(q·k * attn_scale) over the causal (and sliding) window [+ sink]) · v; a = a·Wo (+b)
 *   Gemma: a = norm(a, post_attention_layernorm)
 *   x = x + a
 *   h = norm(x, Gemma ? pre_feedforward_layernorm : post_attention_layernorm)
 *   f = dense GLU FFN or MoE; Gemma: f = norm(f, post_feedforward_layernorm)
 *   x = x + f
 *
 * then norm(x) · lm_head (+bias) and the final soft-cap. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "model/quant.h"
#include "ref/cpu_internal.h"

/* quant.c may not be linked in yet: resolve dg_dequantize weakly and report its absence as an error. */
#pragma weak dg_dequantize

static void *ref_alloc(struct dg_cpu_model *c, size_t n)
{
    void **na = realloc(c->allocs, ((size_t)c->n_allocs + 1) * sizeof *na);
    if (!na)
        return NULL;
    c->allocs = na;
    void *p = calloc(1, n ? n : 1);
    if (p)
        c->allocs[c->n_allocs++] = p;
    return p;
}

/* The tensor as float32 (NULL in *out when absent and optional). */
static dg_status to_f32(struct dg_cpu_model *c, const struct dg_model *m, const char *name, bool required,
                        float **out)
{
    *out = NULL;
    const struct dg_tensor *t = dg_model_find(m, name);
    if (!t) {
        if (required)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s is missing", m->path, name);
        return DG_OK;
    }
    int64_t n = dg_tensor_nelems(t);
    float *f = ref_alloc(c, sizeof(float) * (size_t)n);
    if (!f)
        return dg_fail(DG_E_NOMEM, "%s: tensor %s: out of memory for %lld floats", m->path, name, (long long)n);
    const struct dg_dtype_info *di = dg_dtype_info(t->dtype);
    switch (t->dtype) {
    case DG_DT_F32:
        if (t->nbytes != (uint64_t)n * 4)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: %llu bytes, expected %lld", m->path, name,
                           (unsigned long long)t->nbytes, (long long)n * 4);
        memcpy(f, t->data, (size_t)n * 4);
        break;
    case DG_DT_F16:
    case DG_DT_BF16: {
        if (t->nbytes != (uint64_t)n * 2)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: %llu bytes, expected %lld", m->path, name,
                           (unsigned long long)t->nbytes, (long long)n * 2);
        const uint8_t *p = t->data;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            f[i] = t->dtype == DG_DT_F16 ? dg_f16_to_f32(h) : dg_bf16_to_f32(h);
        }
        break;
    }
    default:
        if (!di || !di->quantized)
            return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: dtype %s cannot be converted to float32", m->path, name,
                           di ? di->name : "?");
        if (!dg_dequantize)
            return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: dtype %s not supported until quant.c lands (no "
                           "dg_dequantize linked in)", m->path, name, di->name);
        if (t->layout != DG_LAYOUT_ROW)
            return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: only row-wise %s blocks can be dequantized on the CPU",
                           m->path, name, di->name);
        if (!dg_dtype_row_ok(t->dtype, (uint64_t)t->shape[t->ndim - 1]) ||
            t->nbytes != dg_dtype_row_bytes(t->dtype, (uint64_t)t->shape[t->ndim - 1]) *
                             (uint64_t)(n / t->shape[t->ndim - 1]))
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: %llu bytes do not hold %lld %s elements", m->path, name,
                           (unsigned long long)t->nbytes, (long long)n, di->name);
        dg_status rc = dg_dequantize(t->dtype, t->data, f, (uint64_t)n);
        if (rc)
            return dg_fail_context(rc, "%s: tensor %s: ", m->path, name);
        break;
    }
    *out = f;
    return DG_OK;
}

void dg_cpu_free(struct dg_cpu_model *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_allocs; i++)
        free(c->allocs[i]);
    free(c->allocs);
    free(c->layers);
    free(c);
}

dg_status dg_cpu_init(const struct dg_model *m, int max_ctx, struct dg_cpu_model **out)
{
    *out = NULL;
    const struct dg_hparams *hp = &m->hp;
    if (max_ctx < 1)
        return dg_fail(DG_E_USAGE, "CPU reference: context length %d must be at least 1", max_ctx);
    if (hp->n_layers < 1 || hp->n_layers > DG_MAX_LAYERS || hp->n_heads < 1 || hp->n_kv_heads < 1 ||
        hp->n_heads % hp->n_kv_heads || hp->head_dim < 2 || hp->hidden < 1 || hp->vocab < 1)
        return dg_fail(DG_E_FORMAT, "%s: hyperparameters are inconsistent (layers %d, heads %d/%d, head_dim %d)",
                       m->path, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim);
    if (hp->n_experts > 1024 || hp->n_experts_used > 64 || hp->n_experts_used > hp->n_experts)
        return dg_fail(DG_E_UNSUPPORTED, "%s: %d experts with %d per token are beyond the CPU reference's limits "
                       "(1024, 64)", m->path, hp->n_experts, hp->n_experts_used);
    struct dg_cpu_model *c = calloc(1, sizeof *c);
    if (!c)
        return dg_fail(DG_E_NOMEM, "CPU reference: out of memory");
    c->hp = *hp;
    c->max_ctx = max_ctx;
    c->threads = 2;
    c->layers = calloc((size_t)hp->n_layers, sizeof *c->layers);
    dg_status rc = DG_OK;
    if (!c->layers) {
        rc = dg_fail(DG_E_NOMEM, "CPU reference: out of memory");
        goto fail;
    }
#define W(field, req, name)                                                                                    \
    do {                                                                                                       \
        if ((rc = to_f32(c, m, name, req, &(field))))                                                          \
            goto fail;                                                                                         \
    } while (0)
    W(c->embed, true, "embed_tokens");
    W(c->norm, true, "norm");
    W(c->norm_b, false, "norm.bias");
    if (hp->tie_embeddings)
        c->lm_head = c->embed;
    else
        W(c->lm_head, true, "lm_head");
    W(c->lm_head_b, false, "lm_head.bias");
    char n[DG_TENSOR_NAME_MAX];
    for (int L = 0; L < hp->n_layers; L++) {
        struct ref_layer *l = &c->layers[L];
#define LN(fmt) (snprintf(n, sizeof n, "layer.%d." fmt, L), n)
        W(l->attn_norm, true, LN("input_layernorm"));
        W(l->attn_norm_b, false, LN("input_layernorm.bias"));
        W(l->post_attn_norm, true, LN("post_attention_layernorm"));
        W(l->post_attn_norm_b, false, LN("post_attention_layernorm.bias"));
        W(l->pre_ffn_norm, hp->sandwich_norm, LN("pre_feedforward_layernorm"));
        W(l->post_ffn_norm, hp->sandwich_norm, LN("post_feedforward_layernorm"));
        W(l->wq, true, LN("self_attn.q_proj"));
        W(l->wk, true, LN("self_attn.k_proj"));
        W(l->wv, true, LN("self_attn.v_proj"));
        W(l->wo, true, LN("self_attn.o_proj"));
        W(l->bq, false, LN("self_attn.q_proj.bias"));
        W(l->bk, false, LN("self_attn.k_proj.bias"));
        W(l->bv, false, LN("self_attn.v_proj.bias"));
        W(l->bo, false, LN("self_attn.o_proj.bias"));
        W(l->q_norm, hp->qk_norm, LN("self_attn.q_norm"));
        W(l->k_norm, hp->qk_norm, LN("self_attn.k_norm"));
        W(l->sinks, hp->attn_sinks, LN("self_attn.sinks"));
        l->moe = hp->n_experts > 0 && hp->layer_moe[L];
        l->sliding = hp->sliding_window > 0 && hp->layer_sliding[L];
        if (l->moe) {
            W(l->router, true, LN("mlp.router"));
            W(l->router_b, false, LN("mlp.router.bias"));
            W(l->egate, true, LN("mlp.experts.gate_proj"));
            W(l->eup, true, LN("mlp.experts.up_proj"));
            W(l->edown, true, LN("mlp.experts.down_proj"));
            W(l->egate_b, false, LN("mlp.experts.gate_proj.bias"));
            W(l->eup_b, false, LN("mlp.experts.up_proj.bias"));
            W(l->edown_b, false, LN("mlp.experts.down_proj.bias"));
        } else {
            W(l->gate, true, LN("mlp.gate_proj"));
            W(l->up, true, LN("mlp.up_proj"));
            W(l->down, true, LN("mlp.down_proj"));
            W(l->gate_b, false, LN("mlp.gate_proj.bias"));
            W(l->up_b, false, LN("mlp.up_proj.bias"));
            W(l->down_b, false, LN("mlp.down_proj.bias"));
        }
        size_t kv = (size_t)max_ctx * (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
        l->k_cache = ref_alloc(c, kv * sizeof(float));
        l->v_cache = ref_alloc(c, kv * sizeof(float));
        if (!l->k_cache || !l->v_cache) {
            rc = dg_fail(DG_E_NOMEM, "CPU reference: out of memory for a %d-position KV cache", max_ctx);
            goto fail;
        }
#undef LN
    }
#undef W
    dg_cpu_set_bf16_buffers(c, false);
    *out = c;
    return DG_OK;
fail:
    dg_cpu_free(c);
    return rc;
}

void dg_cpu_set_bf16_buffers(struct dg_cpu_model *c, bool on)
{
    const struct dg_hparams *hp = &c->hp;
    /* PhiMoE's rotary module computes its frequencies inside forward(), so no buffer of it is ever cast. */
    bool rope_buf = on && hp->arch != DG_ARCH_PHIMOE;
    ref_rope_init(&c->rope, &hp->rope, hp->head_dim, rope_buf);
    ref_rope_init(&c->rope_local, &hp->rope_local, hp->head_dim, rope_buf);
    /* Gemma 3 keeps sqrt(hidden) in a buffer; Gemma 2 builds it in the activation dtype on every call. */
    c->embed_scale = on && hp->arch == DG_ARCH_GEMMA3 ? dg_bf16_to_f32(dg_f32_to_bf16(hp->embed_scale)) : hp->embed_scale;
}

void dg_cpu_set_threads(struct dg_cpu_model *c, int threads) { c->threads = threads < 1 ? 1 : threads; }
void dg_cpu_reset(struct dg_cpu_model *c) { c->pos = 0; }
int dg_cpu_pos(const struct dg_cpu_model *c) { return c->pos; }
const struct dg_hparams *dg_cpu_hparams(const struct dg_cpu_model *c) { return &c->hp; }

/* Attention of n new tokens (q [n, nh*D]) over the cache, which already holds their k and v. */
static void attention(const struct dg_cpu_model *c, const struct ref_layer *l, const float *q, float *out, int n,
                      int p0, float *scores)
{
    const struct dg_hparams *hp = &c->hp;
    const int D = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads, group = nh / nkv;
    for (int t = 0; t < n; t++) {
        const int pos = p0 + t;
        const int lo = l->sliding && pos - hp->sliding_window + 1 > 0 ? pos - hp->sliding_window + 1 : 0;
        for (int h = 0; h < nh; h++) {
            const float *qh = q + ((size_t)t * nh + h) * D;
            const int kvh = h / group;
            float m = -INFINITY;
            for (int j = lo; j <= pos; j++) {
                const float *kj = l->k_cache + ((size_t)j * nkv + kvh) * D;
                float s = 0;
                for (int d = 0; d < D; d++)
                    s += qh[d] * kj[d];
                s *= hp->attn_scale;
                if (hp->attn_softcap > 0)
                    s = tanhf(s / hp->attn_softcap) * hp->attn_softcap;
                scores[j - lo] = s;
                m = s > m ? s : m;
            }
            /* GPT-OSS: the per-head sink logit joins the softmax denominator only. */
            float sink = l->sinks ? l->sinks[h] : -INFINITY;
            if (sink > m)
                m = sink;
            float sum = l->sinks ? expf(sink - m) : 0.0f;
            for (int j = lo; j <= pos; j++)
                sum += scores[j - lo] = expf(scores[j - lo] - m);
            float *oh = out + ((size_t)t * nh + h) * D;
            memset(oh, 0, sizeof(float) * (size_t)D);
            for (int j = lo; j <= pos; j++) {
                const float p = scores[j - lo] / sum;
                const float *vj = l->v_cache + ((size_t)j * nkv + kvh) * D;
                for (int d = 0; d < D; d++)
                    oh[d] += p * vj[d];
            }
        }
    }
}

dg_status dg_cpu_forward(struct dg_cpu_model *c, const int32_t *tokens, int n, float *logits, float *hidden)
{
    const struct dg_hparams *hp = &c->hp;
    const int H = hp->hidden, D = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads, V = hp->vocab;
    const int QD = nh * D, KD = nkv * D;
    if (n < 1)
        return dg_fail(DG_E_USAGE, "CPU reference: %d tokens; expected at least 1", n);
    if (n > c->max_ctx - c->pos)
        return dg_fail(DG_E_USAGE, "CPU reference: %d tokens at position %d exceed the context of %d", n, c->pos,
                       c->max_ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return dg_fail(DG_E_USAGE, "CPU reference: token %d at index %d is outside the vocabulary [0, %d)",
                           tokens[t], t, V);
    int FI = hp->intermediate > hp->moe_intermediate ? hp->intermediate : hp->moe_intermediate;
    size_t big = (size_t)n * (size_t)(QD > H ? QD : H);
    float *x = malloc(sizeof(float) * (size_t)n * H), *h = malloc(sizeof(float) * (size_t)n * H);
    float *q = malloc(sizeof(float) * (size_t)n * QD), *k = malloc(sizeof(float) * (size_t)n * KD);
    float *v = malloc(sizeof(float) * (size_t)n * KD), *a = malloc(sizeof(float) * big);
    float *o = malloc(sizeof(float) * (size_t)n * H), *scores = malloc(sizeof(float) * (size_t)c->max_ctx);
    float *g = malloc(sizeof(float) * (size_t)n * FI), *u = malloc(sizeof(float) * (size_t)n * FI);
    dg_status rc = DG_OK;
    if (!x || !h || !q || !k || !v || !a || !o || !scores || !g || !u) {
        rc = dg_fail(DG_E_NOMEM, "CPU reference: out of memory for %d tokens", n);
        goto out;
    }
    const int p0 = c->pos;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < H; i++)
            x[(size_t)t * H + i] = c->embed[(size_t)tokens[t] * H + i] * c->embed_scale;
    if (hidden)
        memcpy(hidden, x, sizeof(float) * (size_t)n * H);
    /* Longrope picks its factor set per call from the furthest position, as transformers does. */
    const bool use_long = hp->rope.type == DG_ROPE_LONGROPE && p0 + n > hp->rope.original_max_pos;
    for (int L = 0; L < hp->n_layers; L++) {
        struct ref_layer *l = &c->layers[L];
        const struct ref_rope *rope = l->sliding && hp->arch == DG_ARCH_GEMMA3 ? &c->rope_local : &c->rope;
        memcpy(h, x, sizeof(float) * (size_t)n * H);
        for (int t = 0; t < n; t++)
            ref_norm(hp, h + (size_t)t * H, l->attn_norm, l->attn_norm_b, H);
        ref_matmul(c, q, h, l->wq, l->bq, n, H, QD);
        ref_matmul(c, k, h, l->wk, l->bk, n, H, KD);
        ref_matmul(c, v, h, l->wv, l->bv, n, H, KD);
        for (int t = 0; t < n; t++) {
            for (int hh = 0; hh < nh; hh++) {
                float *qh = q + ((size_t)t * nh + hh) * D;
                if (l->q_norm)
                    ref_norm(hp, qh, l->q_norm, NULL, D);
                ref_rope_apply(rope, hp->rope.pairing, qh, p0 + t, use_long);
            }
            for (int hh = 0; hh < nkv; hh++) {
                float *kh = k + ((size_t)t * nkv + hh) * D;
                if (l->k_norm)
                    ref_norm(hp, kh, l->k_norm, NULL, D);
                ref_rope_apply(rope, hp->rope.pairing, kh, p0 + t, use_long);
            }
            memcpy(l->k_cache + (size_t)(p0 + t) * KD, k + (size_t)t * KD, sizeof(float) * (size_t)KD);
            memcpy(l->v_cache + (size_t)(p0 + t) * KD, v + (size_t)t * KD, sizeof(float) * (size_t)KD);
        }
        attention(c, l, q, a, n, p0, scores);
        ref_matmul(c, o, a, l->wo, l->bo, n, QD, H);
        for (int t = 0; t < n; t++) {
            float *ot = o + (size_t)t * H, *xt = x + (size_t)t * H;
            if (hp->sandwich_norm)
                ref_norm(hp, ot, l->post_attn_norm, l->post_attn_norm_b, H);
            for (int i = 0; i < H; i++)
                xt[i] += ot[i];
        }
        memcpy(h, x, sizeof(float) * (size_t)n * H);
        for (int t = 0; t < n; t++)
            if (hp->sandwich_norm)
                ref_norm(hp, h + (size_t)t * H, l->pre_ffn_norm, NULL, H);
            else
                ref_norm(hp, h + (size_t)t * H, l->post_attn_norm, l->post_attn_norm_b, H);
        if (l->moe) {
            ref_moe(c, l, h, o, n);
        } else {
            const int I = hp->intermediate;
            ref_matmul(c, g, h, l->gate, l->gate_b, n, H, I);
            ref_matmul(c, u, h, l->up, l->up_b, n, H, I);
            for (size_t i = 0; i < (size_t)n * I; i++)
                g[i] = ref_act(hp->act, g[i]) * u[i];
            ref_matmul(c, o, g, l->down, l->down_b, n, I, H);
        }
        for (int t = 0; t < n; t++) {
            float *ot = o + (size_t)t * H, *xt = x + (size_t)t * H;
            if (hp->sandwich_norm)
                ref_norm(hp, ot, l->post_ffn_norm, NULL, H);
            for (int i = 0; i < H; i++)
                xt[i] += ot[i];
        }
        if (hidden && L + 1 < hp->n_layers)
            memcpy(hidden + (size_t)(L + 1) * n * H, x, sizeof(float) * (size_t)n * H);
    }
    for (int t = 0; t < n; t++)
        ref_norm(hp, x + (size_t)t * H, c->norm, c->norm_b, H);
    if (hidden)
        memcpy(hidden + (size_t)hp->n_layers * n * H, x, sizeof(float) * (size_t)n * H);
    if (logits) {
        ref_matmul(c, logits, x, c->lm_head, c->lm_head_b, n, H, V);
        if (hp->final_softcap > 0)
            for (size_t i = 0; i < (size_t)n * V; i++)
                logits[i] = tanhf(logits[i] / hp->final_softcap) * hp->final_softcap;
    }
    c->pos += n;
out:
    free(x), free(h), free(q), free(k), free(v), free(a), free(o), free(scores), free(g), free(u);
    return rc;
}
