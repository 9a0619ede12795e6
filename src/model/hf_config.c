/* hf_config.c: config.json → dg_hparams for the eleven supported families.
 *
 * The rules follow transformers' configuration classes (defaults, derived layer types, which family has
 * which biases) so a checkpoint means here what it means there. A JSON null counts as "absent", as it does
 * for transformers. Every error names the file and the key. */
#include "model/hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cfg {
    const char *label;
    const cJSON *root;
};

static const cJSON *get(const cJSON *obj, const char *key)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* Integer key within [lo, hi]; `*out` keeps its value when the key is absent and not required. */
static dg_status get_int(const struct cfg *c, const cJSON *obj, const char *key, int required, long lo, long hi,
                         int *out)
{
    const cJSON *v = get(obj, key);
    if (!v) {
        if (required)
            return dg_fail(DG_E_FORMAT, "%s: required key \"%s\" is missing", c->label, key);
        return DG_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return dg_fail(DG_E_FORMAT, "%s: \"%s\" is %s, expected an integer in [%ld, %ld]", c->label, key,
                       cJSON_IsNumber(v) ? "out of range or not whole" : "not a number", lo, hi);
    *out = (int)v->valuedouble;
    return DG_OK;
}

static dg_status get_float(const struct cfg *c, const cJSON *obj, const char *key, double lo, double hi,
                           float *out)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return DG_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return dg_fail(DG_E_FORMAT, "%s: \"%s\" is %s, expected a number in [%g, %g]", c->label, key,
                       cJSON_IsNumber(v) ? "out of range" : "not a number", lo, hi);
    *out = (float)v->valuedouble;
    return DG_OK;
}

static dg_status get_bool(const struct cfg *c, const cJSON *obj, const char *key, bool *out)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return DG_OK;
    if (!cJSON_IsBool(v))
        return dg_fail(DG_E_FORMAT, "%s: \"%s\" is not true or false", c->label, key);
    *out = cJSON_IsTrue(v);
    return DG_OK;
}

#define TRY(x)                                                                                                 \
    do {                                                                                                       \
        dg_status st_ = (x);                                                                                   \
        if (st_)                                                                                               \
            return st_;                                                                                        \
    } while (0)

static const struct {
    const char *model_type;
    enum dg_arch arch;
} families[] = {
    {"llama", DG_ARCH_LLAMA},       {"mistral", DG_ARCH_MISTRAL},     {"qwen2", DG_ARCH_QWEN2},
    {"qwen3", DG_ARCH_QWEN3},       {"gemma2", DG_ARCH_GEMMA2},       {"gemma3_text", DG_ARCH_GEMMA3},
    {"gemma3", DG_ARCH_GEMMA3},     {"phi3", DG_ARCH_PHI3},           {"mixtral", DG_ARCH_MIXTRAL},
    {"qwen3_moe", DG_ARCH_QWEN3_MOE}, {"gpt_oss", DG_ARCH_GPT_OSS}, {"phimoe", DG_ARCH_PHIMOE},
};

/* One rope configuration. `p` is the dictionary holding the rope keys (rope_parameters, one of its per-layer
 * entries, or the old rope_scaling, possibly NULL); keys absent there fall back to the top level, which is
 * where the old style keeps rope_theta, partial_rotary_factor and original_max_position_embeddings. */
static dg_status parse_rope(const struct cfg *c, const cJSON *p, const char *where, float default_theta,
                            const struct dg_hparams *hp, struct dg_rope *r)
{
    const cJSON *top = c->root;
    memset(r, 0, sizeof *r);
    r->factor = 1.0f;
    r->attention_factor = 1.0f;
    r->truncate = true;
    r->theta = default_theta;
    r->pairing = DG_ROPE_NEOX;

    const cJSON *jt = get(p, "rope_type");
    if (!jt)
        jt = get(p, "type");
    const char *type = "default";
    if (jt) {
        if (!cJSON_IsString(jt))
            return dg_fail(DG_E_FORMAT, "%s: %s.rope_type is not a string", c->label, where);
        type = jt->valuestring;
    }
    if (strcmp(type, "default") == 0)
        r->type = DG_ROPE_DEFAULT;
    else if (strcmp(type, "linear") == 0)
        r->type = DG_ROPE_LINEAR;
    else if (strcmp(type, "llama3") == 0)
        r->type = DG_ROPE_LLAMA3;
    else if (strcmp(type, "yarn") == 0)
        r->type = DG_ROPE_YARN;
    else if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0)
        r->type = DG_ROPE_LONGROPE;
    else
        return dg_fail(DG_E_UNSUPPORTED, "%s: %s.rope_type \"%.40s\" is not supported (expected default, linear, "
                       "llama3, yarn, longrope or su)", c->label, where, type);

    /* rope_theta: in the dict (new style) or at the top level (old style). */
    if (get(p, "rope_theta"))
        TRY(get_float(c, p, "rope_theta", 1e-3, 1e12, &r->theta));
    else
        TRY(get_float(c, top, "rope_theta", 1e-3, 1e12, &r->theta));

    float prf = 1.0f;
    if (get(p, "partial_rotary_factor"))
        TRY(get_float(c, p, "partial_rotary_factor", 0.0, 1.0, &prf));
    else
        TRY(get_float(c, top, "partial_rotary_factor", 0.0, 1.0, &prf));
    r->rotary_dim = (int)(hp->head_dim * (double)prf);
    r->rotary_dim &= ~1;
    if (r->rotary_dim <= 0 || r->rotary_dim / 2 > DG_MAX_ROPE_FACTORS)
        return dg_fail(DG_E_FORMAT, "%s: partial_rotary_factor %g with head_dim %d gives %d rotary dimensions, "
                       "expected 2..%d", c->label, prf, hp->head_dim, r->rotary_dim, 2 * DG_MAX_ROPE_FACTORS);

    int omax = hp->max_pos;
    if (get(p, "original_max_position_embeddings"))
        TRY(get_int(c, p, "original_max_position_embeddings", 0, 1, 1L << 30, &omax));
    else
        TRY(get_int(c, top, "original_max_position_embeddings", 0, 1, 1L << 30, &omax));
    r->original_max_pos = omax;

    switch (r->type) {
    case DG_ROPE_DEFAULT:
        break;
    case DG_ROPE_LINEAR:
        if (!get(p, "factor"))
            return dg_fail(DG_E_FORMAT, "%s: %s.factor is required for linear rope", c->label, where);
        TRY(get_float(c, p, "factor", 1e-6, 1e6, &r->factor));
        break;
    case DG_ROPE_LLAMA3:
        if (!get(p, "factor") || !get(p, "low_freq_factor") || !get(p, "high_freq_factor"))
            return dg_fail(DG_E_FORMAT, "%s: %s needs factor, low_freq_factor and high_freq_factor for llama3 rope",
                           c->label, where);
        TRY(get_float(c, p, "factor", 1e-6, 1e6, &r->factor));
        TRY(get_float(c, p, "low_freq_factor", 1e-6, 1e6, &r->low_freq_factor));
        TRY(get_float(c, p, "high_freq_factor", 1e-6, 1e6, &r->high_freq_factor));
        if (r->high_freq_factor == r->low_freq_factor)
            return dg_fail(DG_E_FORMAT, "%s: %s.high_freq_factor equals low_freq_factor (%g); expected them to differ",
                           c->label, where, r->low_freq_factor);
        break;
    case DG_ROPE_YARN: {
        if (!get(p, "factor"))
            return dg_fail(DG_E_FORMAT, "%s: %s.factor is required for yarn rope", c->label, where);
        TRY(get_float(c, p, "factor", 1e-6, 1e6, &r->factor));
        r->beta_fast = 32.0f;
        r->beta_slow = 1.0f;
        TRY(get_float(c, p, "beta_fast", 1e-6, 1e6, &r->beta_fast));
        TRY(get_float(c, p, "beta_slow", 1e-6, 1e6, &r->beta_slow));
        TRY(get_bool(c, p, "truncate", &r->truncate));
        float mscale = 0, mscale_all = 0;
        TRY(get_float(c, p, "mscale", 0, 1e6, &mscale));
        TRY(get_float(c, p, "mscale_all_dim", 0, 1e6, &mscale_all));
        /* transformers' get_mscale(): 1 for factor <= 1, else 0.1 * m * ln(factor) + 1 */
        double f = r->factor;
#define MSCALE(m) (f <= 1.0 ? 1.0 : 0.1 * (m) * log(f) + 1.0)
        if (get(p, "attention_factor"))
            TRY(get_float(c, p, "attention_factor", 0, 1e6, &r->attention_factor));
        else if (mscale != 0 && mscale_all != 0)
            r->attention_factor = (float)(MSCALE(mscale) / MSCALE(mscale_all));
        else
            r->attention_factor = (float)MSCALE(1.0);
#undef MSCALE
        break;
    }
    case DG_ROPE_LONGROPE: {
        const cJSON *sf = get(p, "short_factor"), *lf = get(p, "long_factor");
        int n = r->rotary_dim / 2;
        if (!cJSON_IsArray(sf) || !cJSON_IsArray(lf))
            return dg_fail(DG_E_FORMAT, "%s: %s.short_factor and long_factor must be arrays for longrope", c->label,
                           where);
        if (cJSON_GetArraySize(sf) != n || cJSON_GetArraySize(lf) != n)
            return dg_fail(DG_E_FORMAT, "%s: %s.short_factor has %d and long_factor %d entries, expected %d "
                           "(rotary dimensions / 2)", c->label, where, cJSON_GetArraySize(sf),
                           cJSON_GetArraySize(lf), n);
        for (int i = 0; i < n; i++) {
            const cJSON *a = cJSON_GetArrayItem(sf, i), *b = cJSON_GetArrayItem(lf, i);
            if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !(a->valuedouble > 0) || !(b->valuedouble > 0))
                return dg_fail(DG_E_FORMAT, "%s: %s.short_factor/long_factor[%d] is not a positive number", c->label,
                               where, i);
            r->short_factor[i] = (float)a->valuedouble;
            r->long_factor[i] = (float)b->valuedouble;
        }
        r->n_factors = n;
        /* factor: given, else the context extension ratio (what transformers derives for Phi-3). */
        if (get(p, "factor"))
            TRY(get_float(c, p, "factor", 1e-6, 1e6, &r->factor));
        else
            r->factor = (float)((double)hp->max_pos / omax);
        if (get(p, "attention_factor")) {
            TRY(get_float(c, p, "attention_factor", 0, 1e6, &r->attention_factor));
        } else if (get(p, "short_mscale")) {
            /* PhiMoE scales cos/sin by its own mscale instead of the derived attention factor. */
            float s = 1, l = 1;
            TRY(get_float(c, p, "short_mscale", 0, 1e6, &s));
            TRY(get_float(c, p, "long_mscale", 0, 1e6, &l));
            if (s != l)
                return dg_fail(DG_E_UNSUPPORTED, "%s: %s.short_mscale %g differs from long_mscale %g; only equal "
                               "values are supported", c->label, where, s, l);
            r->attention_factor = s;
        } else {
            double f = r->factor;
            r->attention_factor = f <= 1.0 ? 1.0f : (float)sqrt(1.0 + log(f) / log((double)omax));
        }
        break;
    }
    }
    return DG_OK;
}

static dg_status set_arch(const struct cfg *c, struct dg_hparams *hp)
{
    const cJSON *mt = get(c->root, "model_type");
    if (!cJSON_IsString(mt))
        return dg_fail(DG_E_FORMAT, "%s: required key \"model_type\" is missing or not a string", c->label);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(mt->valuestring, families[i].model_type) == 0) {
            hp->arch = families[i].arch;
            snprintf(hp->model_type, sizeof hp->model_type, "%s", mt->valuestring);
            return DG_OK;
        }
    return dg_fail(DG_E_UNSUPPORTED, "%s: model_type \"%.40s\" is not supported (expected llama, mistral, qwen2, "
                   "qwen3, gemma2, gemma3_text, phi3, mixtral, qwen3_moe, gpt_oss or phimoe)", c->label,
                   mt->valuestring);
}

static dg_status parse_layer_types(const struct cfg *c, struct dg_hparams *hp, bool *given)
{
    const cJSON *lt = get(c->root, "layer_types");
    *given = lt != NULL;
    if (!lt)
        return DG_OK;
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != hp->n_layers)
        return dg_fail(DG_E_FORMAT, "%s: \"layer_types\" must be an array of %d entries (num_hidden_layers)",
                       c->label, hp->n_layers);
    for (int i = 0; i < hp->n_layers; i++) {
        const cJSON *e = cJSON_GetArrayItem(lt, i);
        if (cJSON_IsString(e) && strcmp(e->valuestring, "full_attention") == 0)
            hp->layer_sliding[i] = false;
        else if (cJSON_IsString(e) && strcmp(e->valuestring, "sliding_attention") == 0)
            hp->layer_sliding[i] = true;
        else
            return dg_fail(DG_E_UNSUPPORTED, "%s: layer_types[%d] is %s%.40s%s, expected \"full_attention\" or "
                           "\"sliding_attention\"", c->label, i, cJSON_IsString(e) ? "\"" : "",
                           cJSON_IsString(e) ? e->valuestring : "not a string", cJSON_IsString(e) ? "\"" : "");
    }
    return DG_OK;
}

static dg_status add_ids(const char *label, const cJSON *v, const char *key, struct dg_hparams *hp)
{
    if (!v)
        return DG_OK;
    const cJSON *e;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    for (int i = 0; i < n; i++) {
        e = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : v;
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= 2147483647.0 ||
            e->valuedouble != floor(e->valuedouble))
            return dg_fail(DG_E_FORMAT, "%s: \"%s\" must be a token id or a list of token ids", label, key);
        int id = (int)e->valuedouble, dup = 0;
        for (int j = 0; j < hp->n_eos; j++)
            dup |= hp->eos_ids[j] == id;
        if (dup)
            continue;
        if (hp->n_eos >= DG_MAX_EOS)
            return dg_fail(DG_E_UNSUPPORTED, "%s: more than %d distinct \"%s\" ids", label, DG_MAX_EOS, key);
        hp->eos_ids[hp->n_eos++] = id;
    }
    return DG_OK;
}

dg_status dg_hf_config_parse(const char *cfg_label, const char *text, size_t len, const char *gen_label,
                             const char *gen, size_t gen_len, struct dg_hparams *hp)
{
    dg_hparams_defaults(hp);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: not valid JSON", cfg_label);
    cJSON *groot = NULL;
    dg_status rc = DG_OK;
    struct cfg c = {cfg_label, root};
    if (!cJSON_IsObject(root)) {
        rc = dg_fail(DG_E_FORMAT, "%s: not a JSON object", cfg_label);
        goto out;
    }
    if ((rc = set_arch(&c, hp)))
        goto out;
    /* A multimodal Gemma 3 config nests the language model under text_config. */
    if (strcmp(hp->model_type, "gemma3") == 0) {
        const cJSON *tc = get(root, "text_config");
        if (!cJSON_IsObject(tc)) {
            rc = dg_fail(DG_E_FORMAT, "%s: model_type gemma3 needs a \"text_config\" object", cfg_label);
            goto out;
        }
        c.root = tc;
    }
    rc = DG_E_FORMAT;
#define T(x)                                                                                                   \
    do {                                                                                                       \
        if ((rc = (x)))                                                                                        \
            goto out;                                                                                          \
    } while (0)
    const cJSON *r = c.root;
    enum dg_arch a = hp->arch;
    bool gemma = a == DG_ARCH_GEMMA2 || a == DG_ARCH_GEMMA3;
    T(get_int(&c, r, "hidden_size", 1, 1, 1 << 20, &hp->hidden));
    T(get_int(&c, r, "num_hidden_layers", 1, 1, DG_MAX_LAYERS, &hp->n_layers));
    T(get_int(&c, r, "num_attention_heads", 1, 1, 4096, &hp->n_heads));
    hp->n_kv_heads = hp->n_heads;
    T(get_int(&c, r, "num_key_value_heads", 0, 1, 4096, &hp->n_kv_heads));
    if (hp->n_heads % hp->n_kv_heads) {
        rc = dg_fail(DG_E_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", cfg_label,
                     hp->n_heads, hp->n_kv_heads);
        goto out;
    }
    hp->head_dim = hp->hidden / hp->n_heads;
    if (a != DG_ARCH_PHIMOE && a != DG_ARCH_PHI3) /* these two always use hidden / heads */
        T(get_int(&c, r, "head_dim", 0, 1, 1 << 16, &hp->head_dim));
    if (hp->head_dim <= 0 || hp->head_dim % 2) {
        rc = dg_fail(DG_E_FORMAT, "%s: head_dim %d must be a positive even number", cfg_label, hp->head_dim);
        goto out;
    }
    T(get_int(&c, r, "intermediate_size", 1, 1, 1 << 24, &hp->intermediate));
    T(get_int(&c, r, "vocab_size", 1, 1, 1 << 24, &hp->vocab));
    hp->max_pos = 2048;
    T(get_int(&c, r, "max_position_embeddings", 0, 1, 1 << 30, &hp->max_pos));
    hp->norm_eps = gemma ? 1e-6f : 1e-5f;
    T(get_float(&c, r, "rms_norm_eps", 0, 1, &hp->norm_eps));
    if (a == DG_ARCH_PHIMOE)
        T(get_float(&c, r, "layer_norm_eps", 0, 1, &hp->norm_eps));

    /* Norms, activation. */
    hp->norm_style = gemma ? DG_NORM_RMS_GEMMA : a == DG_ARCH_PHIMOE ? DG_NORM_LAYER : DG_NORM_RMS;
    const cJSON *act = get(r, "hidden_activation");
    const char *act_key = "hidden_activation";
    if (!act) {
        act = get(r, "hidden_act");
        act_key = "hidden_act";
    }
    if (a == DG_ARCH_GPT_OSS) {
        hp->act = DG_ACT_GPT_OSS_SWIGLU;
        hp->swiglu_limit = 7.0f;
        hp->swiglu_alpha = 1.702f;
        T(get_float(&c, r, "swiglu_limit", 0, 1e6, &hp->swiglu_limit));
    } else if (act) {
        const char *s = cJSON_IsString(act) ? act->valuestring : "";
        if (strcmp(s, "silu") == 0 || strcmp(s, "swish") == 0)
            hp->act = DG_ACT_SILU;
        else if (strcmp(s, "gelu_pytorch_tanh") == 0 || strcmp(s, "gelu_new") == 0 ||
                 strcmp(s, "gelu_fast") == 0 || strcmp(s, "gelu_tanh") == 0)
            hp->act = DG_ACT_GELU_TANH;
        else if (strcmp(s, "gelu") == 0)
            hp->act = DG_ACT_GELU;
        else {
            rc = dg_fail(DG_E_UNSUPPORTED, "%s: %s \"%.40s\" is not supported (expected silu, gelu or "
                         "gelu_pytorch_tanh)", cfg_label, act_key, s);
            goto out;
        }
    } else {
        hp->act = gemma ? DG_ACT_GELU_TANH : DG_ACT_SILU;
    }

    /* Biases and per-family features. attention_bias puts a bias on q, k, v and o alike in transformers'
     * Llama-style attention; Qwen2 always has q/k/v biases and never an o bias. */
    bool attn_bias = a == DG_ARCH_GPT_OSS;
    T(get_bool(&c, r, "attention_bias", &attn_bias));
    hp->attn_qkv_bias = attn_bias || a == DG_ARCH_QWEN2;
    hp->attn_o_bias = attn_bias && a != DG_ARCH_QWEN2;
    if (a == DG_ARCH_LLAMA)
        T(get_bool(&c, r, "mlp_bias", &hp->mlp_bias));
    if (a == DG_ARCH_PHIMOE)
        T(get_bool(&c, r, "lm_head_bias", &hp->lm_head_bias));
    hp->qk_norm = a == DG_ARCH_QWEN3 || a == DG_ARCH_QWEN3_MOE || a == DG_ARCH_GEMMA3;
    hp->sandwich_norm = gemma;
    hp->attn_sinks = a == DG_ARCH_GPT_OSS;
    hp->tie_embeddings = gemma;
    T(get_bool(&c, r, "tie_word_embeddings", &hp->tie_embeddings));
    if (a == DG_ARCH_GEMMA2) {
        hp->attn_softcap = 50.0f;
        hp->final_softcap = 30.0f;
    }
    if (gemma) {
        /* Explicit null turns soft-capping off; absent keeps the family default. */
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(r, "attn_logit_softcapping");
        if (sc && cJSON_IsNull(sc))
            hp->attn_softcap = 0;
        sc = cJSON_GetObjectItemCaseSensitive(r, "final_logit_softcapping");
        if (sc && cJSON_IsNull(sc))
            hp->final_softcap = 0;
    }
    T(get_float(&c, r, "attn_logit_softcapping", 0, 1e9, &hp->attn_softcap));
    T(get_float(&c, r, "final_logit_softcapping", 0, 1e9, &hp->final_softcap));
    if (gemma) {
        int qpas = 256;
        T(get_int(&c, r, "query_pre_attn_scalar", 0, 1, 1 << 20, &qpas));
        hp->attn_scale = (float)(1.0 / sqrt((double)qpas));
        /* transformers casts the normalizer sqrt(hidden) to the activation dtype: float32 here */
        hp->embed_scale = (float)sqrt((double)hp->hidden);
    } else {
        hp->attn_scale = (float)(1.0 / sqrt((double)hp->head_dim));
    }

    /* RoPE: both key styles, and Gemma 3's two bases. */
    const cJSON *rp = get(r, "rope_parameters");
    if (rp && !cJSON_IsObject(rp)) {
        rc = dg_fail(DG_E_FORMAT, "%s: \"rope_parameters\" is not an object", cfg_label);
        goto out;
    }
    const cJSON *rs = get(r, "rope_scaling");
    if (rs && !cJSON_IsObject(rs)) {
        rc = dg_fail(DG_E_FORMAT, "%s: \"rope_scaling\" is not an object", cfg_label);
        goto out;
    }
    float def_theta = a == DG_ARCH_GEMMA3 ? 1e6f : 10000.0f;
    if (rp && get(rp, "full_attention")) {
        const cJSON *full = get(rp, "full_attention"), *slide = get(rp, "sliding_attention");
        if (!cJSON_IsObject(full) || (slide && !cJSON_IsObject(slide))) {
            rc = dg_fail(DG_E_FORMAT, "%s: rope_parameters.full_attention/sliding_attention must be objects",
                         cfg_label);
            goto out;
        }
        T(parse_rope(&c, full, "rope_parameters.full_attention", def_theta, hp, &hp->rope));
        if (slide)
            T(parse_rope(&c, slide, "rope_parameters.sliding_attention", 10000.0f, hp, &hp->rope_local));
        else
            hp->rope_local = hp->rope;
    } else if (rp) {
        T(parse_rope(&c, rp, "rope_parameters", def_theta, hp, &hp->rope));
        hp->rope_local = hp->rope;
    } else {
        T(parse_rope(&c, rs, "rope_scaling", def_theta, hp, &hp->rope));
        hp->rope_local = hp->rope;
        if (a == DG_ARCH_GEMMA3) {
            /* Old Gemma 3 configs: local layers use rope_local_base_freq with plain rope. */
            T(parse_rope(&c, NULL, "rope_local", 10000.0f, hp, &hp->rope_local));
            hp->rope_local.theta = 10000.0f;
            T(get_float(&c, r, "rope_local_base_freq", 1e-3, 1e12, &hp->rope_local.theta));
        }
    }

    /* Sliding window and layer types. */
    const cJSON *sw = get(r, "sliding_window");
    if (sw)
        T(get_int(&c, r, "sliding_window", 0, 1, 1 << 30, &hp->sliding_window));
    bool given = false;
    T(parse_layer_types(&c, hp, &given));
    bool qwen = a == DG_ARCH_QWEN2 || a == DG_ARCH_QWEN3 || a == DG_ARCH_QWEN3_MOE;
    if (qwen) {
        bool use_sw = false;
        int mwl = hp->n_layers;
        T(get_bool(&c, r, "use_sliding_window", &use_sw));
        T(get_int(&c, r, "max_window_layers", 0, 0, 1 << 20, &mwl));
        if (!use_sw)
            hp->sliding_window = 0;
        if (!given)
            for (int i = 0; i < hp->n_layers; i++)
                hp->layer_sliding[i] = hp->sliding_window > 0 && i >= mwl;
    } else if (!given) {
        int pattern = 0;
        if (a == DG_ARCH_GEMMA2 || a == DG_ARCH_GPT_OSS)
            pattern = 2;
        if (a == DG_ARCH_GEMMA3) {
            pattern = 6;
            T(get_int(&c, r, "sliding_window_pattern", 0, 1, 1 << 20, &pattern));
            T(get_int(&c, r, "_sliding_window_pattern", 0, 1, 1 << 20, &pattern));
        }
        for (int i = 0; i < hp->n_layers; i++)
            hp->layer_sliding[i] = pattern ? (i + 1) % pattern != 0 : true; /* else: the window applies to all */
    }
    if (hp->sliding_window == 0)
        for (int i = 0; i < hp->n_layers; i++)
            hp->layer_sliding[i] = false;
    if (a != DG_ARCH_GEMMA3) /* only Gemma 3 has a separate local rope */
        hp->rope_local = hp->rope;

    /* Mixture of experts. */
    if (dg_arch_is_moe(a)) {
        T(get_int(&c, r, "num_experts", 0, 1, 1 << 16, &hp->n_experts));
        T(get_int(&c, r, "num_local_experts", 0, 1, 1 << 16, &hp->n_experts));
        if (!hp->n_experts) {
            rc = dg_fail(DG_E_FORMAT, "%s: required key \"num_local_experts\" (or \"num_experts\") is missing",
                         cfg_label);
            goto out;
        }
        hp->n_experts_used = a == DG_ARCH_GPT_OSS ? 4 : 2;
        T(get_int(&c, r, "experts_per_token", 0, 1, 1 << 16, &hp->n_experts_used));
        T(get_int(&c, r, "num_experts_per_tok", 0, 1, 1 << 16, &hp->n_experts_used));
        if (hp->n_experts_used > hp->n_experts) {
            rc = dg_fail(DG_E_FORMAT, "%s: num_experts_per_tok %d exceeds the %d experts", cfg_label,
                         hp->n_experts_used, hp->n_experts);
            goto out;
        }
        hp->moe_intermediate = hp->intermediate;
        if (a == DG_ARCH_QWEN3_MOE)
            T(get_int(&c, r, "moe_intermediate_size", 1, 1, 1 << 24, &hp->moe_intermediate));
        hp->norm_topk_prob = a == DG_ARCH_MIXTRAL;
        if (a == DG_ARCH_QWEN3_MOE)
            T(get_bool(&c, r, "norm_topk_prob", &hp->norm_topk_prob));
        hp->router = a == DG_ARCH_GPT_OSS ? DG_ROUTER_TOPK_SOFTMAX
                     : a == DG_ARCH_PHIMOE ? DG_ROUTER_SPARSEMIXER
                                           : DG_ROUTER_SOFTMAX_TOPK;
        if (a == DG_ARCH_PHIMOE && hp->n_experts_used != 2) {
            rc = dg_fail(DG_E_UNSUPPORTED, "%s: num_experts_per_tok is %d; PhiMoE's sparsemixer needs 2", cfg_label,
                         hp->n_experts_used);
            goto out;
        }
        if (a == DG_ARCH_PHIMOE) {
            float jitter = 0.01f; /* PhimoeConfig default */
            T(get_float(&c, r, "router_jitter_noise", 0, 1e6, &jitter));
            hp->router_jitter = jitter;
        }
        for (int i = 0; i < hp->n_layers; i++)
            hp->layer_moe[i] = true;
        if (a == DG_ARCH_QWEN3_MOE) {
            int step = 1;
            T(get_int(&c, r, "decoder_sparse_step", 0, 1, 1 << 20, &step));
            const cJSON *mlo = get(r, "mlp_only_layers");
            if (mlo && !cJSON_IsArray(mlo)) {
                rc = dg_fail(DG_E_FORMAT, "%s: \"mlp_only_layers\" is not an array", cfg_label);
                goto out;
            }
            for (int i = 0; i < hp->n_layers; i++)
                hp->layer_moe[i] = (i + 1) % step == 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, mlo)
            {
                if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= hp->n_layers ||
                    e->valuedouble != floor(e->valuedouble)) {
                    rc = dg_fail(DG_E_FORMAT, "%s: mlp_only_layers holds a value that is not a layer index in "
                                 "[0, %d)", cfg_label, hp->n_layers);
                    goto out;
                }
                hp->layer_moe[(int)e->valuedouble] = false;
            }
        }
    }

    /* Token ids: BOS, and every EOS from config.json and generation_config.json. */
    T(get_int(&c, r, "bos_token_id", 0, 0, 1 << 30, &hp->bos_id));
    if (c.root != root)
        T(get_int(&c, root, "bos_token_id", 0, 0, 1 << 30, &hp->bos_id));
    T(add_ids(cfg_label, get(r, "eos_token_id"), "eos_token_id", hp));
    if (gen) {
        groot = cJSON_ParseWithLength(gen, gen_len);
        if (!groot || !cJSON_IsObject(groot)) {
            rc = dg_fail(DG_E_FORMAT, "%s: not a valid JSON object", gen_label);
            goto out;
        }
        struct cfg g = {gen_label, groot};
        if (hp->bos_id < 0)
            T(get_int(&g, groot, "bos_token_id", 0, 0, 1 << 30, &hp->bos_id));
        T(add_ids(gen_label, get(groot, "eos_token_id"), "eos_token_id", hp));
    }
    rc = DG_OK;
#undef T
out:
    cJSON_Delete(root);
    cJSON_Delete(groot);
    return rc;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        /* config files are small; a huge one is hostile or a mistake */
        if (n >= 0 && n <= (16L << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = 0;
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

dg_status dg_hf_config_load(const char *dir, struct dg_hparams *hp)
{
    char cpath[4096], gpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    snprintf(gpath, sizeof gpath, "%s/generation_config.json", dir);
    size_t clen = 0, glen = 0;
    char *ctext = slurp(cpath, &clen);
    if (!ctext)
        return dg_fail(DG_E_IO, "%s: cannot read (missing, unreadable or larger than 16 MiB)", cpath);
    char *gtext = slurp(gpath, &glen);
    dg_status rc = dg_hf_config_parse(cpath, ctext, clen, gpath, gtext, glen, hp);
    free(ctext);
    free(gtext);
    return rc;
}
