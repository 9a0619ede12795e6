/* tensor_spec.c: the canonical tensor list implied by a configuration (the same rules the Hugging Face
 * reader validates), used to generate random weights and to check manifests against their config. */
#include "model/tensor_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct specs {
    struct dg_tensor_spec *v;
    int n, cap;
    dg_status st;
};

static void add(struct specs *s, bool cond, const char *name, int nd, int64_t a, int64_t b, int64_t c)
{
    if (!cond || s->st != DG_OK)
        return;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        struct dg_tensor_spec *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            s->st = dg_fail(DG_E_NOMEM, "tensor list: out of memory");
            return;
        }
        s->v = v, s->cap = cap;
    }
    struct dg_tensor_spec *t = &s->v[s->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = nd;
    t->shape[0] = a, t->shape[1] = b, t->shape[2] = c;
}

dg_status dg_tensor_specs(const struct dg_hparams *hp, struct dg_tensor_spec **out, int *n_out)
{
    const int64_t H = hp->hidden, V = hp->vocab, D = hp->head_dim, QD = (int64_t)hp->n_heads * D,
                  KD = (int64_t)hp->n_kv_heads * D;
    const bool ln = hp->norm_style == DG_NORM_LAYER;
    struct specs s = {0};
    char n[DG_TENSOR_NAME_MAX];
#define N(fmt) (snprintf(n, sizeof n, "layer.%d." fmt, L), n)
    add(&s, true, "embed_tokens", 2, V, H, 0);
    for (int L = 0; L < hp->n_layers; L++) {
        add(&s, true, N("input_layernorm"), 1, H, 0, 0);
        add(&s, ln, N("input_layernorm.bias"), 1, H, 0, 0);
        add(&s, true, N("self_attn.q_proj"), 2, QD, H, 0);
        add(&s, true, N("self_attn.k_proj"), 2, KD, H, 0);
        add(&s, true, N("self_attn.v_proj"), 2, KD, H, 0);
        add(&s, hp->attn_qkv_bias, N("self_attn.q_proj.bias"), 1, QD, 0, 0);
        add(&s, hp->attn_qkv_bias, N("self_attn.k_proj.bias"), 1, KD, 0, 0);
        add(&s, hp->attn_qkv_bias, N("self_attn.v_proj.bias"), 1, KD, 0, 0);
        add(&s, hp->qk_norm, N("self_attn.q_norm"), 1, D, 0, 0);
        add(&s, hp->qk_norm, N("self_attn.k_norm"), 1, D, 0, 0);
        add(&s, true, N("self_attn.o_proj"), 2, H, QD, 0);
        add(&s, hp->attn_o_bias, N("self_attn.o_proj.bias"), 1, H, 0, 0);
        add(&s, hp->attn_sinks, N("self_attn.sinks"), 1, hp->n_heads, 0, 0);
        add(&s, true, N("post_attention_layernorm"), 1, H, 0, 0);
        add(&s, ln, N("post_attention_layernorm.bias"), 1, H, 0, 0);
        add(&s, hp->sandwich_norm, N("pre_feedforward_layernorm"), 1, H, 0, 0);
        add(&s, hp->sandwich_norm, N("post_feedforward_layernorm"), 1, H, 0, 0);
        if (hp->n_experts && hp->layer_moe[L]) {
            const int64_t X = hp->n_experts, I = hp->moe_intermediate;
            bool eb = hp->arch == DG_ARCH_GPT_OSS;
            add(&s, true, N("mlp.router"), 2, X, H, 0);
            add(&s, hp->router == DG_ROUTER_TOPK_SOFTMAX, N("mlp.router.bias"), 1, X, 0, 0);
            add(&s, true, N("mlp.experts.gate_proj"), 3, X, I, H);
            add(&s, true, N("mlp.experts.up_proj"), 3, X, I, H);
            add(&s, true, N("mlp.experts.down_proj"), 3, X, H, I);
            add(&s, eb, N("mlp.experts.gate_proj.bias"), 2, X, I, 0);
            add(&s, eb, N("mlp.experts.up_proj.bias"), 2, X, I, 0);
            add(&s, eb, N("mlp.experts.down_proj.bias"), 2, X, H, 0);
        } else {
            const int64_t I = hp->intermediate;
            add(&s, true, N("mlp.gate_proj"), 2, I, H, 0);
            add(&s, true, N("mlp.up_proj"), 2, I, H, 0);
            add(&s, true, N("mlp.down_proj"), 2, H, I, 0);
            add(&s, hp->mlp_bias, N("mlp.gate_proj.bias"), 1, I, 0, 0);
            add(&s, hp->mlp_bias, N("mlp.up_proj.bias"), 1, I, 0, 0);
            add(&s, hp->mlp_bias, N("mlp.down_proj.bias"), 1, H, 0, 0);
        }
    }
    add(&s, true, "norm", 1, H, 0, 0);
    add(&s, ln, "norm.bias", 1, H, 0, 0);
    add(&s, !hp->tie_embeddings, "lm_head", 2, V, H, 0);
    add(&s, hp->lm_head_bias, "lm_head.bias", 1, V, 0, 0);
#undef N
    if (s.st != DG_OK) {
        free(s.v);
        return s.st;
    }
    *out = s.v;
    *n_out = s.n;
    return DG_OK;
}

static void shape_str(char *buf, size_t n, int nd, const int64_t *shape)
{
    size_t a = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && a < n; i++)
        a += (size_t)snprintf(buf + a, n - a, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (a < n)
        snprintf(buf + a, n - a, "]");
}

/* The stored shape a spec implies for tensor t (transposed: last two dims swapped). */
static dg_status check_one(const char *what, const struct dg_tensor *t, int nd, const int64_t *want_canon)
{
    int64_t want[3] = {want_canon[0], want_canon[1], want_canon[2]};
    if (t->transposed && nd >= 2) {
        int64_t x = want[nd - 1];
        want[nd - 1] = want[nd - 2];
        want[nd - 2] = x;
    }
    bool ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = t->shape[i] == want[i];
    if (ok)
        return DG_OK;
    char got[96], exp[96];
    shape_str(got, sizeof got, t->ndim, t->shape);
    shape_str(exp, sizeof exp, nd, want);
    return dg_fail(DG_E_FORMAT, "%s: tensor %s has shape %s, expected %s from the config%s", what, t->name, got, exp,
                   t->transposed ? " (transposed)" : "");
}

dg_status dg_tensor_specs_check(const struct dg_model *m, const char *what)
{
    struct dg_tensor_spec *sp;
    int n;
    dg_status st = dg_tensor_specs(&m->hp, &sp, &n);
    for (int i = 0; i < n && st == DG_OK; i++) {
        const struct dg_tensor *t = dg_model_find(m, sp[i].name);
        if (t) {
            st = check_one(what, t, sp[i].ndim, sp[i].shape);
            continue;
        }
        /* gate_proj / up_proj may live fused in gate_up_proj [2I, hidden] */
        size_t len = strlen(sp[i].name);
        const char *suf = len > 14 && strcmp(sp[i].name + len - 14, ".mlp.gate_proj") == 0 ? ".mlp.gate_proj"
                          : len > 12 && strcmp(sp[i].name + len - 12, ".mlp.up_proj") == 0 ? ".mlp.up_proj"
                                                                                          : NULL;
        if (suf) {
            char fused[DG_TENSOR_NAME_MAX];
            snprintf(fused, sizeof fused, "%.*s.mlp.gate_up_proj", (int)(len - strlen(suf)), sp[i].name);
            const struct dg_tensor *f = dg_model_find(m, fused);
            if (f) {
                int64_t want[3] = {2 * sp[i].shape[0], sp[i].shape[1], 0};
                st = check_one(what, f, 2, want);
                continue;
            }
        }
        st = dg_fail(DG_E_FORMAT, "%s: tensor %s is missing (the config implies it)", what, sp[i].name);
    }
    free(sp);
    return st;
}
