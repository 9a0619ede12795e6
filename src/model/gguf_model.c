/* gguf_model.c: a GGUF file as a dg_model: `general.architecture` → family, `<arch>.*` keys → dg_hparams,
 * llama.cpp tensor names → model.h's canonical names, ggml shapes (ne0 first) → ours (outermost first).
 *
 * Conventions that differ from Hugging Face, and what we do about them:
 *   - llama.cpp's converter permutes the rows of Q and K for llama-family models (llama, Mistral, Mixtral)
 *     so that RoPE rotates adjacent pairs: hp.rope.pairing = DG_ROPE_NORM for them. Qwen, Gemma, Phi-3
 *     and GPT-OSS keep Hugging Face's order: DG_ROPE_NEOX.
 *   - Llama 3's rope scaling is baked into a `rope_freqs.weight` tensor (one divisor per rotary pair):
 *     it goes to hp.rope.freq_factors, and the rope type stays DEFAULT.
 *   - Gemma's converter adds 1 to every RMSNorm weight, so the file holds (1 + w): hp.norm_style is
 *     DG_NORM_RMS (plain x / rms(x) * w), not DG_NORM_RMS_GEMMA. No weight is rewritten.
 *   - Phi-3's fused attn_qkv and ffn_up (gate and up stacked) are split by rows into q/k/v_proj and
 *     gate/up_proj. Rows of any block type are contiguous, so the parts are views into the mapping, not
 *     copies.
 *   - No `output.weight`: the embeddings are tied (hp.tie_embeddings, no lm_head tensor).
 * Tensor data is never copied or requantized: every dg_tensor points into the file mapping. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

struct gguf_model_priv {
    struct dg_model_priv base; /* first, so dg_model_close finds the close hook */
    struct dg_gguf *g;
};

/* ---- keys ----------------------------------------------------------------------------------------- */

struct keys {
    const struct dg_gguf *g;
    const char *arch; /* the file's architecture string: the prefix of its keys */
};

static const char *akey(const struct keys *k, const char *suffix, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.%s", k->arch, suffix);
    return buf;
}

/* An integer `<arch>.<suffix>` in [lo, hi]; `required` decides whether absence is an error. */
static dg_status key_int(const struct keys *k, const char *suffix, bool required, int64_t lo, int64_t hi, int *out)
{
    char key[256];
    akey(k, suffix, key, sizeof key);
    if (!dg_gguf_find(k->g, key)) {
        if (required)
            return dg_fail(DG_E_FORMAT, "%s: missing required key %s", k->g->path, key);
        return DG_OK;
    }
    int32_t v;
    dg_status st = dg_gguf_get_i32(k->g, key, &v);
    if (st)
        return st;
    if (v < lo || v > hi)
        return dg_fail(DG_E_FORMAT, "%s: key %s is %d but must be in [%" PRId64 ", %" PRId64 "]", k->g->path, key, v,
                       lo, hi);
    *out = v;
    return DG_OK;
}

static dg_status key_float(const struct keys *k, const char *suffix, bool required, double lo, double hi, float *out)
{
    char key[256];
    akey(k, suffix, key, sizeof key);
    if (!dg_gguf_find(k->g, key)) {
        if (required)
            return dg_fail(DG_E_FORMAT, "%s: missing required key %s", k->g->path, key);
        return DG_OK;
    }
    float v;
    dg_status st = dg_gguf_get_f32(k->g, key, &v);
    if (st)
        return st;
    if (!(v >= lo && v <= hi))
        return dg_fail(DG_E_FORMAT, "%s: key %s is %g but must be in [%g, %g]", k->g->path, key, v, lo, hi);
    *out = v;
    return DG_OK;
}

/* ---- hyperparameters ------------------------------------------------------------------------------ */

static const struct {
    const char *gguf;
    enum dg_arch arch;
} arch_map[] = {
    {"llama", DG_ARCH_LLAMA},   {"qwen2", DG_ARCH_QWEN2},   {"qwen3", DG_ARCH_QWEN3},      {"qwen3moe", DG_ARCH_QWEN3_MOE},
    {"gemma2", DG_ARCH_GEMMA2}, {"gemma3", DG_ARCH_GEMMA3}, {"phi3", DG_ARCH_PHI3},        {"gpt-oss", DG_ARCH_GPT_OSS},
};

static bool is_gemma(enum dg_arch a) { return a == DG_ARCH_GEMMA2 || a == DG_ARCH_GEMMA3; }

static dg_status read_rope_scaling(const struct keys *k, struct dg_hparams *hp)
{
    char key[256];
    const char *type = NULL;
    dg_status st;
    if ((st = dg_gguf_opt_str(k->g, akey(k, "rope.scaling.type", key, sizeof key), &type)))
        return st;
    struct dg_rope *r = &hp->rope;
    if ((st = key_float(k, "rope.scaling.factor", false, 1e-6, 1e6, &r->factor)) ||
        (st = key_int(k, "rope.scaling.original_context_length", false, 0, INT32_MAX, &r->original_max_pos)) ||
        (st = key_float(k, "rope.scaling.attn_factor", false, 0, 1e6, &r->attention_factor)) ||
        (st = key_float(k, "rope.scaling.yarn_beta_fast", false, 0, 1e6, &r->beta_fast)) ||
        (st = key_float(k, "rope.scaling.yarn_beta_slow", false, 0, 1e6, &r->beta_slow)))
        return st;
    if (!type || strcmp(type, "none") == 0) {
        r->type = DG_ROPE_DEFAULT;
        r->factor = 1.0f;
    } else if (strcmp(type, "linear") == 0) {
        r->type = DG_ROPE_LINEAR;
    } else if (strcmp(type, "yarn") == 0) {
        r->type = DG_ROPE_YARN;
        if (!dg_gguf_find(k->g, akey(k, "rope.scaling.attn_factor", key, sizeof key)))
            r->attention_factor = 0.0f; /* derive from the factor, as transformers does */
        if (r->beta_fast == 0.0f)
            r->beta_fast = 32.0f; /* llama.cpp's and transformers' defaults */
        if (r->beta_slow == 0.0f)
            r->beta_slow = 1.0f;
    } else if (strcmp(type, "longrope") == 0) {
        r->type = DG_ROPE_LONGROPE;
    } else {
        return dg_fail(DG_E_UNSUPPORTED, "%s: key %s.rope.scaling.type is \"%s\" but must be one of none, linear,"
                       " yarn, longrope", k->g->path, k->arch, type);
    }
    return DG_OK;
}

/* A small f32 vector tensor copied into a hparams array (rope factors). */
static dg_status read_factors(const struct dg_gguf *g, const char *name, int want, float *dst, bool *found)
{
    const struct dg_gguf_tensor *t = dg_gguf_find_tensor(g, name);
    *found = t != NULL;
    if (!t)
        return DG_OK;
    if (t->dtype != DG_DT_F32 || t->n_dims != 1 || t->nelems != (uint64_t)want)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s is %s with %" PRIu64 " elements but must be f32 with %d (rotary"
                       " dimensions / 2)", g->path, name, dg_gguf_type_name(t->ggml_type), t->nelems, want);
    memcpy(dst, t->data, (size_t)want * sizeof(float));
    for (int i = 0; i < want; i++)
        if (!isfinite(dst[i]) || dst[i] <= 0.0f)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: entry %d is %g but must be a positive finite number", g->path,
                           name, i, dst[i]);
    return DG_OK;
}

static dg_status read_hparams(const struct dg_gguf *g, struct dg_hparams *hp)
{
    dg_status st;
    const char *arch_s;
    if ((st = dg_gguf_get_str(g, "general.architecture", &arch_s)))
        return st;
    dg_hparams_defaults(hp);
    size_t ai = 0, na = sizeof arch_map / sizeof arch_map[0];
    while (ai < na && strcmp(arch_map[ai].gguf, arch_s) != 0)
        ai++;
    if (ai == na)
        return dg_fail(DG_E_UNSUPPORTED, "%s: general.architecture is \"%s\" but must be one of llama, qwen2, qwen3,"
                       " qwen3moe, gemma2, gemma3, phi3, gpt-oss", g->path, arch_s);
    hp->arch = arch_map[ai].arch;
    snprintf(hp->model_type, sizeof hp->model_type, "%s", arch_s);
    struct keys k = {g, arch_s};

    int ctx = 0, n_expert = 0;
    if ((st = key_int(&k, "context_length", true, 1, INT32_MAX, &ctx)) ||
        (st = key_int(&k, "embedding_length", true, 1, 1 << 20, &hp->hidden)) ||
        (st = key_int(&k, "block_count", true, 1, DG_MAX_LAYERS, &hp->n_layers)) ||
        (st = key_int(&k, "attention.head_count", true, 1, 4096, &hp->n_heads)) ||
        (st = key_int(&k, "expert_count", false, 0, 4096, &n_expert)))
        return st;
    hp->max_pos = ctx;
    if (hp->arch == DG_ARCH_LLAMA && n_expert > 0) {
        hp->arch = DG_ARCH_MIXTRAL; /* llama.cpp writes Mixtral as llama with experts */
        snprintf(hp->model_type, sizeof hp->model_type, "mixtral");
    }
    bool moe = dg_arch_is_moe(hp->arch);
    if (moe && n_expert < 1)
        return dg_fail(DG_E_FORMAT, "%s: missing required key %s.expert_count (a mixture-of-experts family)", g->path,
                       arch_s);

    /* Dense FFN width: required for dense models; MoE families use the expert width instead. */
    if ((st = key_int(&k, "feed_forward_length", !moe, 1, 1 << 24, &hp->intermediate)))
        return st;
    hp->n_kv_heads = hp->n_heads;
    hp->head_dim = hp->hidden / hp->n_heads;
    int v_dim = 0;
    if ((st = key_int(&k, "attention.head_count_kv", false, 1, hp->n_heads, &hp->n_kv_heads)) ||
        (st = key_int(&k, "attention.key_length", false, 1, 4096, &hp->head_dim)) ||
        (st = key_int(&k, "attention.value_length", false, 1, 4096, &v_dim)))
        return st;
    if (hp->head_dim < 1)
        return dg_fail(DG_E_FORMAT, "%s: head size %d / %d is 0; %s.attention.key_length is needed", g->path,
                       hp->hidden, hp->n_heads, arch_s);
    if (v_dim && v_dim != hp->head_dim)
        return dg_fail(DG_E_UNSUPPORTED, "%s: %s.attention.value_length %d differs from key_length %d", g->path,
                       arch_s, v_dim, hp->head_dim);
    if (hp->n_heads % hp->n_kv_heads)
        return dg_fail(DG_E_FORMAT, "%s: %s.attention.head_count %d is not a multiple of head_count_kv %d", g->path,
                       arch_s, hp->n_heads, hp->n_kv_heads);
    if ((st = key_float(&k, "attention.layer_norm_rms_epsilon", true, 1e-12, 1.0, &hp->norm_eps)))
        return st;

    struct dg_rope *r = &hp->rope;
    r->rotary_dim = hp->head_dim;
    if ((st = key_float(&k, "rope.freq_base", false, 1e-3, 1e12, &r->theta)) ||
        (st = key_int(&k, "rope.dimension_count", false, 2, hp->head_dim, &r->rotary_dim)))
        return st;
    if (r->rotary_dim % 2 || r->rotary_dim / 2 > DG_MAX_ROPE_FACTORS)
        return dg_fail(DG_E_FORMAT, "%s: %s.rope.dimension_count is %d but must be even and at most %d", g->path,
                       arch_s, r->rotary_dim, 2 * DG_MAX_ROPE_FACTORS);
    if ((st = read_rope_scaling(&k, hp)))
        return st;
    bool llama_family = hp->arch == DG_ARCH_LLAMA || hp->arch == DG_ARCH_MIXTRAL;
    r->pairing = llama_family ? DG_ROPE_NORM : DG_ROPE_NEOX;

    bool found;
    int n_pairs = r->rotary_dim / 2;
    if ((st = read_factors(g, "rope_freqs.weight", n_pairs, r->freq_factors, &found)))
        return st;
    if (found)
        r->n_freq_factors = n_pairs;
    bool found_long = false, found_short = false;
    if ((st = read_factors(g, "rope_factors_long.weight", n_pairs, r->long_factor, &found_long)) ||
        (st = read_factors(g, "rope_factors_short.weight", n_pairs, r->short_factor, &found_short)))
        return st;
    if (found_long != found_short)
        return dg_fail(DG_E_FORMAT, "%s: rope_factors_long.weight and rope_factors_short.weight must come together",
                       g->path);
    if (found_long) {
        r->type = DG_ROPE_LONGROPE;
        r->n_factors = n_pairs;
    }

    if ((st = key_int(&k, "attention.sliding_window", false, 0, INT32_MAX, &hp->sliding_window)))
        return st;
    int pattern = 0; /* every `pattern`-th layer is global; 0: none sliding, 1: all sliding */
    switch (hp->arch) {
    case DG_ARCH_GEMMA2: pattern = 2; break;
    case DG_ARCH_GEMMA3: pattern = 6; break;
    case DG_ARCH_GPT_OSS: pattern = 2; break;
    case DG_ARCH_PHI3: pattern = 1; break; /* Phi-3's window, when it has one, applies to every layer */
    default: pattern = 0; break;           /* llama.cpp ignores Mistral v0.1's window for llama files */
    }
    if ((st = key_int(&k, "attention.sliding_window_pattern", false, 1, DG_MAX_LAYERS, &pattern)))
        return st;
    if (hp->sliding_window > 0 && pattern > 0)
        for (int l = 0; l < hp->n_layers; l++)
            hp->layer_sliding[l] = pattern == 1 || l % pattern < pattern - 1;
    hp->rope_local = hp->rope;
    if (hp->arch == DG_ARCH_GEMMA3) {
        /* Gemma 3's local layers use base 10000 without scaling; the file only stores the global base. */
        hp->rope_local.type = DG_ROPE_DEFAULT;
        hp->rope_local.factor = 1.0f;
        hp->rope_local.theta = 10000.0f;
        if ((st = key_float(&k, "rope.freq_base_swa", false, 1e-3, 1e12, &hp->rope_local.theta)))
            return st;
    }

    if (is_gemma(hp->arch)) {
        hp->norm_style = DG_NORM_RMS; /* the file holds 1 + w (see the top of this file) */
        hp->act = DG_ACT_GELU_TANH;
        hp->sandwich_norm = true;
        hp->embed_scale = sqrtf((float)hp->hidden);
        /* query_pre_attn_scalar is not in the file: llama.cpp uses hidden / heads for the 27B models
         * (46 layers for Gemma 2, 62 for Gemma 3) and the head size otherwise. */
        bool big = (hp->arch == DG_ARCH_GEMMA2 && hp->n_layers == 46) ||
                   (hp->arch == DG_ARCH_GEMMA3 && hp->n_layers == 62);
        hp->attn_scale = 1.0f / sqrtf((float)(big ? hp->hidden / hp->n_heads : hp->head_dim));
        if ((st = key_float(&k, "attn_logit_softcapping", false, 0, 1e6, &hp->attn_softcap)) ||
            (st = key_float(&k, "final_logit_softcapping", false, 0, 1e6, &hp->final_softcap)))
            return st;
    } else {
        hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    }
    if ((st = key_float(&k, "attention.scale", false, 1e-9, 1e6, &hp->attn_scale)))
        return st;

    if (moe) {
        hp->n_experts = n_expert;
        hp->moe_intermediate = hp->intermediate;
        if ((st = key_int(&k, "expert_used_count", true, 1, n_expert, &hp->n_experts_used)) ||
            (st = key_int(&k, "expert_feed_forward_length", hp->moe_intermediate == 0, 1, 1 << 24,
                          &hp->moe_intermediate)))
            return st;
        hp->router = hp->arch == DG_ARCH_GPT_OSS ? DG_ROUTER_TOPK_SOFTMAX : DG_ROUTER_SOFTMAX_TOPK;
        hp->norm_topk_prob = hp->arch != DG_ARCH_GPT_OSS; /* Mixtral and Qwen3-MoE renormalize the top k */
        char key[256];
        if ((st = dg_gguf_opt_bool(g, akey(&k, "expert_weights_norm", key, sizeof key), &hp->norm_topk_prob)))
            return st;
        for (int l = 0; l < hp->n_layers; l++)
            hp->layer_moe[l] = true;
    }
    if (hp->arch == DG_ARCH_GPT_OSS) {
        /* Not in the file; llama.cpp and transformers both use these constants. */
        hp->act = DG_ACT_GPT_OSS_SWIGLU;
        hp->swiglu_limit = 7.0f;
        hp->swiglu_alpha = 1.702f;
        hp->attn_sinks = true;
        hp->rope.truncate = hp->rope_local.truncate = false; /* gpt-oss's yarn config: truncate false */
    }
    return DG_OK;
}

static dg_status read_special_ids(const struct dg_gguf *g, struct dg_hparams *hp)
{
    if (!dg_gguf_find(g, "tokenizer.ggml.tokens"))
        return DG_OK;
    struct dg_gguf_vocab v;
    dg_status st = dg_gguf_vocab_get(g, &v);
    if (st)
        return st;
    hp->bos_id = v.bos_id;
    int ids[3] = {v.eos_id, v.eot_id, v.eom_id};
    for (int i = 0; i < 3; i++) {
        bool dup = ids[i] < 0;
        for (int j = 0; j < hp->n_eos && !dup; j++)
            dup = hp->eos_ids[j] == ids[i];
        if (!dup && hp->n_eos < DG_MAX_EOS)
            hp->eos_ids[hp->n_eos++] = ids[i];
    }
    dg_gguf_vocab_free(&v);
    return DG_OK;
}

/* ---- tensors -------------------------------------------------------------------------------------- */

struct table {
    struct dg_tensor *t;
    int n, cap;
};

static dg_status add_view(const struct dg_gguf *g, struct table *tb, const char *name,
                          const struct dg_gguf_tensor *src, uint64_t row0, uint64_t rows)
{
    if (tb->n == tb->cap)
        return dg_fail(DG_E_INTERNAL, "%s: tensor table full", g->path);
    struct dg_tensor *t = &tb->t[tb->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = src->dtype;
    t->layout = DG_LAYOUT_ROW;
    t->ndim = src->n_dims;
    for (int d = 0; d < src->n_dims; d++)
        t->shape[d] = (int64_t)src->ne[src->n_dims - 1 - d];
    uint64_t row_bytes = dg_dtype_row_bytes(src->dtype, src->ne[0]);
    if (rows != UINT64_MAX) { /* a row range of a 2-D tensor */
        t->shape[0] = (int64_t)rows;
        t->data = (const uint8_t *)src->data + row0 * row_bytes;
        t->nbytes = rows * row_bytes;
    } else {
        t->data = src->data;
        t->nbytes = src->nbytes;
    }
    return DG_OK;
}

/* Per-layer suffix → canonical name ("%d" is the layer). `ffn_norm` depends on the family. */
static const struct {
    const char *gguf;
    const char *ours;
} layer_names[] = {
    {"attn_norm", "input_layernorm"},
    {"post_attention_norm", "post_attention_layernorm"},
    {"post_ffw_norm", "post_feedforward_layernorm"},
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"attn_q_norm", "self_attn.q_norm"},
    {"attn_k_norm", "self_attn.k_norm"},
    {"attn_sinks", "self_attn.sinks"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
    {"ffn_gate_inp", "mlp.router"},
    {"ffn_gate_exps", "mlp.experts.gate_proj"},
    {"ffn_up_exps", "mlp.experts.up_proj"},
    {"ffn_down_exps", "mlp.experts.down_proj"},
};

static dg_status map_layer_tensor(const struct dg_gguf *g, const struct dg_hparams *hp, struct table *tb,
                                  const struct dg_gguf_tensor *t)
{
    /* "blk.<layer>." with a canonical decimal layer, so that two names cannot map to one of ours. */
    int layer = 0, pos = 4;
    char part[DG_GGUF_NAME_MAX + 1];
    const char *s = t->name;
    bool ok = strncmp(s, "blk.", 4) == 0 && s[pos] >= '0' && s[pos] <= '9' && !(s[pos] == '0' && s[pos + 1] != '.');
    while (ok && s[pos] >= '0' && s[pos] <= '9' && layer <= DG_MAX_LAYERS)
        layer = layer * 10 + (s[pos++] - '0');
    if (!ok || s[pos] != '.')
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: no mapping for this name (architecture %s)", g->path,
                       t->name, hp->model_type);
    pos++;
    if (layer >= hp->n_layers)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: layer %d but must be in [0, %d)", g->path, t->name, layer,
                       hp->n_layers);
    snprintf(part, sizeof part, "%s", t->name + pos);
    const char *suffix;
    char *dot = strrchr(part, '.');
    if (dot && strcmp(dot, ".weight") == 0)
        suffix = "";
    else if (dot && strcmp(dot, ".bias") == 0)
        suffix = ".bias";
    else
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: no mapping for this name (expected .weight or .bias)",
                       g->path, t->name);
    *dot = 0;
    char name[DG_TENSOR_NAME_MAX];
    const char *ours = NULL;
    if (strcmp(part, "ffn_norm") == 0)
        ours = is_gemma(hp->arch) ? "pre_feedforward_layernorm" : "post_attention_layernorm";
    for (size_t i = 0; !ours && i < sizeof layer_names / sizeof layer_names[0]; i++)
        if (strcmp(part, layer_names[i].gguf) == 0)
            ours = layer_names[i].ours;

    /* Phi-3's fused tensors, split by rows (q, k, v and gate, up). */
    if (strcmp(part, "attn_qkv") == 0 && t->n_dims == 2 && !suffix[0]) {
        uint64_t q = (uint64_t)hp->n_heads * hp->head_dim, kv = (uint64_t)hp->n_kv_heads * hp->head_dim;
        if (t->ne[1] != q + 2 * kv)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s has %" PRIu64 " rows but must have %" PRIu64 " (q + k + v)",
                           g->path, t->name, t->ne[1], q + 2 * kv);
        static const char *const parts[3] = {"q_proj", "k_proj", "v_proj"};
        uint64_t rows[3] = {q, kv, kv}, row0 = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "layer.%d.self_attn.%s", layer, parts[i]);
            dg_status st = add_view(g, tb, name, t, row0, rows[i]);
            if (st)
                return st;
            row0 += rows[i];
        }
        return DG_OK;
    }
    if (hp->arch == DG_ARCH_PHI3 && strcmp(part, "ffn_up") == 0 && t->n_dims == 2 && !suffix[0] &&
        t->ne[1] == 2 * (uint64_t)hp->intermediate && !dg_gguf_find_tensor(g, "blk.0.ffn_gate.weight")) {
        uint64_t ff = (uint64_t)hp->intermediate;
        dg_status st;
        snprintf(name, sizeof name, "layer.%d.mlp.gate_proj", layer);
        if ((st = add_view(g, tb, name, t, 0, ff)))
            return st;
        snprintf(name, sizeof name, "layer.%d.mlp.up_proj", layer);
        return add_view(g, tb, name, t, ff, ff);
    }
    if (!ours) {
        if (strncmp(part, "ffn_", 4) == 0 && strchr(part, '.'))
            return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: per-expert tensors (an old Mixtral conversion) are not"
                           " supported; convert the model again with a current llama.cpp", g->path, t->name);
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: no mapping for this name (architecture %s)", g->path,
                       t->name, hp->model_type);
    }
    /* The sinks are a plain vector in the file ("attn_sinks.weight"), named without a suffix by us. */
    snprintf(name, sizeof name, "layer.%d.%s%s", layer, ours, suffix);
    return add_view(g, tb, name, t, 0, UINT64_MAX);
}

static dg_status map_tensors(const struct dg_gguf *g, const struct dg_hparams *hp, struct table *tb)
{
    dg_status st;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dg_gguf_tensor *t = &g->tensors[i];
        const char *n = t->name;
        if (strcmp(n, "rope_freqs.weight") == 0 || strcmp(n, "rope_factors_long.weight") == 0 ||
            strcmp(n, "rope_factors_short.weight") == 0)
            continue; /* already in hparams */
        if (strcmp(n, "token_embd.weight") == 0)
            st = add_view(g, tb, "embed_tokens", t, 0, UINT64_MAX);
        else if (strcmp(n, "output.weight") == 0)
            st = add_view(g, tb, "lm_head", t, 0, UINT64_MAX);
        else if (strcmp(n, "output.bias") == 0)
            st = add_view(g, tb, "lm_head.bias", t, 0, UINT64_MAX);
        else if (strcmp(n, "output_norm.weight") == 0)
            st = add_view(g, tb, "norm", t, 0, UINT64_MAX);
        else if (strcmp(n, "output_norm.bias") == 0)
            st = add_view(g, tb, "norm.bias", t, 0, UINT64_MAX);
        else
            st = map_layer_tensor(g, hp, tb, t);
        if (st)
            return st;
    }
    return DG_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct dg_tensor *)a)->name, ((const struct dg_tensor *)b)->name);
}

/* Two file tensors landing on one of our names (a fused qkv beside a separate attn_q, say) are an error. */
static dg_status check_unique(const struct dg_gguf *g, struct table *tb)
{
    qsort(tb->t, (size_t)tb->n, sizeof *tb->t, cmp_tensor_name);
    for (int i = 1; i < tb->n; i++)
        if (strcmp(tb->t[i - 1].name, tb->t[i].name) == 0)
            return dg_fail(DG_E_FORMAT, "%s: two tensors of the file map to %s", g->path, tb->t[i].name);
    return DG_OK;
}

static const struct dg_tensor *find(const struct table *tb, const char *name)
{
    for (int i = 0; i < tb->n; i++)
        if (strcmp(tb->t[i].name, name) == 0)
            return &tb->t[i];
    return NULL;
}

/* Checks a canonical tensor's shape (outermost first); `required` decides whether absence is an error. */
static dg_status expect(const struct dg_gguf *g, const struct table *tb, const char *name, bool required, int ndim,
                        int64_t d0, int64_t d1, int64_t d2)
{
    const struct dg_tensor *t = find(tb, name);
    if (!t)
        return required ? dg_fail(DG_E_FORMAT, "%s: missing tensor %s", g->path, name) : DG_OK;
    int64_t want[3] = {d0, d1, d2};
    bool ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] == want[d];
    if (!ok) {
        char got[96] = "", exp[96] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%" PRId64, d ? ", " : "", t->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%" PRId64, d ? ", " : "", want[d]);
        return dg_fail(DG_E_FORMAT, "%s: tensor %s (ours) has shape [%s] but must be [%s]", g->path, name, got, exp);
    }
    return DG_OK;
}

static dg_status check_shapes(const struct dg_gguf *g, struct dg_hparams *hp, const struct table *tb)
{
    const struct dg_tensor *emb = find(tb, "embed_tokens");
    if (!emb)
        return dg_fail(DG_E_FORMAT, "%s: missing tensor token_embd.weight", g->path);
    if (emb->ndim != 2 || emb->shape[1] != hp->hidden || emb->shape[0] < 1 || emb->shape[0] > INT32_MAX)
        return dg_fail(DG_E_FORMAT, "%s: token_embd.weight must be [hidden %d, vocab] in ggml order", g->path,
                       hp->hidden);
    hp->vocab = (int)emb->shape[0];
    int vocab_key = 0;
    struct keys k = {g, hp->model_type};
    if (hp->arch == DG_ARCH_MIXTRAL)
        k.arch = "llama";
    dg_status st = key_int(&k, "vocab_size", false, 1, INT32_MAX, &vocab_key);
    if (st)
        return st;
    if (vocab_key && vocab_key != hp->vocab)
        return dg_fail(DG_E_FORMAT, "%s: %s.vocab_size is %d but token_embd.weight has %d rows", g->path, k.arch,
                       vocab_key, hp->vocab);
    hp->tie_embeddings = find(tb, "lm_head") == NULL;
    int64_t H = hp->hidden, q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    int64_t V = hp->vocab, I = hp->intermediate, E = hp->n_experts, EI = hp->moe_intermediate;
    char n[DG_TENSOR_NAME_MAX];
    if ((st = expect(g, tb, "lm_head", false, 2, V, H, 0)) || (st = expect(g, tb, "norm", true, 1, H, 0, 0)))
        return st;
    if (hp->bos_id >= V)
        return dg_fail(DG_E_FORMAT, "%s: BOS id %d is outside the %" PRId64 "-token embedding", g->path, hp->bos_id, V);
    for (int i = 0; i < hp->n_eos; i++)
        if (hp->eos_ids[i] >= V)
            return dg_fail(DG_E_FORMAT, "%s: EOS id %d is outside the %" PRId64 "-token embedding", g->path,
                           hp->eos_ids[i], V);
#define EXPECT(req, nd, a, b, c, ...)                                                                                \
    do {                                                                                                             \
        snprintf(n, sizeof n, __VA_ARGS__);                                                                          \
        if ((st = expect(g, tb, n, req, nd, a, b, c)))                                                               \
            return st;                                                                                               \
    } while (0)
    for (int l = 0; l < hp->n_layers; l++) {
        EXPECT(true, 1, H, 0, 0, "layer.%d.input_layernorm", l);
        EXPECT(true, 2, q, H, 0, "layer.%d.self_attn.q_proj", l);
        EXPECT(true, 2, kv, H, 0, "layer.%d.self_attn.k_proj", l);
        EXPECT(true, 2, kv, H, 0, "layer.%d.self_attn.v_proj", l);
        EXPECT(true, 2, H, q, 0, "layer.%d.self_attn.o_proj", l);
        EXPECT(false, 1, q, 0, 0, "layer.%d.self_attn.q_proj.bias", l);
        EXPECT(false, 1, kv, 0, 0, "layer.%d.self_attn.k_proj.bias", l);
        EXPECT(false, 1, kv, 0, 0, "layer.%d.self_attn.v_proj.bias", l);
        EXPECT(false, 1, H, 0, 0, "layer.%d.self_attn.o_proj.bias", l);
        EXPECT(hp->qk_norm, 1, hp->head_dim, 0, 0, "layer.%d.self_attn.q_norm", l);
        EXPECT(hp->qk_norm, 1, hp->head_dim, 0, 0, "layer.%d.self_attn.k_norm", l);
        EXPECT(true, 1, H, 0, 0, "layer.%d.post_attention_layernorm", l);
        EXPECT(hp->sandwich_norm, 1, H, 0, 0, "layer.%d.pre_feedforward_layernorm", l);
        EXPECT(hp->sandwich_norm, 1, H, 0, 0, "layer.%d.post_feedforward_layernorm", l);
        EXPECT(hp->attn_sinks, 1, hp->n_heads, 0, 0, "layer.%d.self_attn.sinks", l);
        if (hp->layer_moe[l]) {
            EXPECT(true, 2, E, H, 0, "layer.%d.mlp.router", l);
            EXPECT(true, 3, E, EI, H, "layer.%d.mlp.experts.gate_proj", l);
            EXPECT(true, 3, E, EI, H, "layer.%d.mlp.experts.up_proj", l);
            EXPECT(true, 3, E, H, EI, "layer.%d.mlp.experts.down_proj", l);
            EXPECT(false, 1, E, 0, 0, "layer.%d.mlp.router.bias", l);
            EXPECT(false, 2, E, EI, 0, "layer.%d.mlp.experts.gate_proj.bias", l);
            EXPECT(false, 2, E, EI, 0, "layer.%d.mlp.experts.up_proj.bias", l);
            EXPECT(false, 2, E, H, 0, "layer.%d.mlp.experts.down_proj.bias", l);
        } else {
            EXPECT(true, 2, I, H, 0, "layer.%d.mlp.gate_proj", l);
            EXPECT(true, 2, I, H, 0, "layer.%d.mlp.up_proj", l);
            EXPECT(true, 2, H, I, 0, "layer.%d.mlp.down_proj", l);
        }
    }
#undef EXPECT
    /* Optional parts are switched on by their presence in layer 0 (every layer then has them, as checked
     * above only for shape: require them everywhere). */
    static const char *const flags[] = {"self_attn.q_proj.bias", "self_attn.o_proj.bias", "mlp.up_proj.bias"};
    bool *dst[] = {&hp->attn_qkv_bias, &hp->attn_o_bias, &hp->mlp_bias};
    for (int f = 0; f < 3; f++) {
        snprintf(n, sizeof n, "layer.0.%s", flags[f]);
        bool has = find(tb, n) != NULL;
        *dst[f] = *dst[f] || has;
        for (int l = 1; l < hp->n_layers; l++) {
            snprintf(n, sizeof n, "layer.%d.%s", l, flags[f]);
            if ((find(tb, n) != NULL) != has)
                return dg_fail(DG_E_FORMAT, "%s: tensor %s is %s but layer 0 %s it", g->path, n,
                               has ? "missing" : "present", has ? "has" : "lacks");
        }
    }
    hp->lm_head_bias = find(tb, "lm_head.bias") != NULL;
    return DG_OK;
}

/* ---- open / close --------------------------------------------------------------------------------- */

dg_status dg_model_from_gguf(struct dg_gguf *g, struct dg_model *m)
{
    memset(m, 0, sizeof *m);
    dg_status st = read_hparams(g, &m->hp);
    if (st)
        return st;
    /* qk_norm is a property of the file, not the name: Qwen3 and Gemma 3 carry the tensors. */
    m->hp.qk_norm = dg_gguf_find_tensor(g, "blk.0.attn_q_norm.weight") != NULL;
    if ((st = read_special_ids(g, &m->hp)))
        return st;
    struct table tb = {0};
    tb.cap = (int)(g->n_tensors * 3 + 1); /* a fused tensor becomes at most three */
    tb.t = calloc((size_t)tb.cap, sizeof *tb.t);
    struct gguf_model_priv *priv = calloc(1, sizeof *priv);
    if (!tb.t || !priv) {
        free(tb.t);
        free(priv);
        return dg_fail(DG_E_NOMEM, "%s: out of memory for the tensor table", g->path);
    }
    if ((st = map_tensors(g, &m->hp, &tb)) || (st = check_unique(g, &tb)) || (st = check_shapes(g, &m->hp, &tb))) {
        free(tb.t);
        free(priv);
        return st;
    }
    priv->base.close = dg_model_close_gguf;
    priv->g = g;
    m->source = DG_SRC_GGUF;
    snprintf(m->path, sizeof m->path, "%s", g->path);
    m->tensors = tb.t;
    m->n_tensors = tb.n;
    m->priv = priv;
    return DG_OK;
}

dg_status dg_model_open_gguf(const char *path, struct dg_model *m)
{
    memset(m, 0, sizeof *m);
    struct dg_gguf *g;
    dg_status st = dg_gguf_open(path, &g);
    if (st)
        return st;
    if ((st = dg_model_from_gguf(g, m)))
        dg_gguf_close(g);
    return st;
}

void dg_model_close_gguf(struct dg_model *m)
{
    struct gguf_model_priv *priv = m->priv;
    if (priv)
        dg_gguf_close(priv->g);
    free(priv);
    free(m->tensors);
    m->tensors = NULL;
    m->n_tensors = 0;
    m->priv = NULL;
}

const struct dg_gguf *dg_model_gguf(const struct dg_model *m)
{
    if (m->source != DG_SRC_GGUF || !m->priv)
        return NULL;
    return ((const struct gguf_model_priv *)m->priv)->g;
}
