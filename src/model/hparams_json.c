/* hparams_json.c: struct dg_hparams <-> the manifest's "config" object. Every field is written, and the
 * reader requires every field back (a manifest is written by us, so a missing key means corruption or a
 * format change), checking types and ranges and naming the key in each error. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/manifest.h"

static const char *const norm_names[] = {"rms", "rms_gemma", "layer"};
static const char *const act_names[] = {"silu", "gelu_tanh", "gelu", "gpt_oss_swiglu"};
static const char *const rope_names[] = {"default", "linear", "llama3", "yarn", "longrope"};
static const char *const pairing_names[] = {"neox", "norm"};
static const char *const router_names[] = {"none", "softmax_topk", "topk_softmax", "sparsemixer"};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void add_floats(cJSON *o, const char *key, const float *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
}

static void add_bools(cJSON *o, const char *key, const bool *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateBool(v[i]));
}

static cJSON *rope_to_json(const struct dg_rope *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", rope_names[r->type]);
    cJSON_AddStringToObject(o, "pairing", pairing_names[r->pairing]);
    cJSON_AddNumberToObject(o, "theta", r->theta);
    cJSON_AddNumberToObject(o, "factor", r->factor);
    cJSON_AddNumberToObject(o, "low_freq_factor", r->low_freq_factor);
    cJSON_AddNumberToObject(o, "high_freq_factor", r->high_freq_factor);
    cJSON_AddNumberToObject(o, "original_max_pos", r->original_max_pos);
    cJSON_AddNumberToObject(o, "beta_fast", r->beta_fast);
    cJSON_AddNumberToObject(o, "beta_slow", r->beta_slow);
    cJSON_AddNumberToObject(o, "attention_factor", r->attention_factor);
    cJSON_AddBoolToObject(o, "truncate", r->truncate);
    cJSON_AddNumberToObject(o, "rotary_dim", r->rotary_dim);
    add_floats(o, "short_factor", r->short_factor, r->n_factors);
    add_floats(o, "long_factor", r->long_factor, r->n_factors);
    add_floats(o, "freq_factors", r->freq_factors, r->n_freq_factors);
    return o;
}

cJSON *dg_hparams_to_json(const struct dg_hparams *hp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", dg_arch_name(hp->arch));
    cJSON_AddStringToObject(o, "model_type", hp->model_type);
    cJSON_AddNumberToObject(o, "hidden", hp->hidden);
    cJSON_AddNumberToObject(o, "n_layers", hp->n_layers);
    cJSON_AddNumberToObject(o, "n_heads", hp->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", hp->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(o, "intermediate", hp->intermediate);
    cJSON_AddNumberToObject(o, "vocab", hp->vocab);
    cJSON_AddNumberToObject(o, "max_pos", hp->max_pos);
    cJSON_AddNumberToObject(o, "norm_eps", hp->norm_eps);
    cJSON_AddStringToObject(o, "norm_style", norm_names[hp->norm_style]);
    cJSON_AddStringToObject(o, "act", act_names[hp->act]);
    cJSON_AddNumberToObject(o, "swiglu_limit", hp->swiglu_limit);
    cJSON_AddNumberToObject(o, "swiglu_alpha", hp->swiglu_alpha);
    cJSON_AddItemToObject(o, "rope", rope_to_json(&hp->rope));
    cJSON_AddItemToObject(o, "rope_local", rope_to_json(&hp->rope_local));
    cJSON_AddNumberToObject(o, "sliding_window", hp->sliding_window);
    add_bools(o, "layer_sliding", hp->layer_sliding, hp->n_layers);
    cJSON_AddNumberToObject(o, "attn_softcap", hp->attn_softcap);
    cJSON_AddNumberToObject(o, "final_softcap", hp->final_softcap);
    cJSON_AddNumberToObject(o, "attn_scale", hp->attn_scale);
    cJSON_AddNumberToObject(o, "embed_scale", hp->embed_scale);
    cJSON_AddBoolToObject(o, "tie_embeddings", hp->tie_embeddings);
    cJSON_AddBoolToObject(o, "attn_qkv_bias", hp->attn_qkv_bias);
    cJSON_AddBoolToObject(o, "attn_o_bias", hp->attn_o_bias);
    cJSON_AddBoolToObject(o, "mlp_bias", hp->mlp_bias);
    cJSON_AddBoolToObject(o, "lm_head_bias", hp->lm_head_bias);
    cJSON_AddBoolToObject(o, "qk_norm", hp->qk_norm);
    cJSON_AddBoolToObject(o, "sandwich_norm", hp->sandwich_norm);
    cJSON_AddBoolToObject(o, "attn_sinks", hp->attn_sinks);
    cJSON_AddNumberToObject(o, "n_experts", hp->n_experts);
    cJSON_AddNumberToObject(o, "n_experts_used", hp->n_experts_used);
    cJSON_AddNumberToObject(o, "moe_intermediate", hp->moe_intermediate);
    cJSON_AddBoolToObject(o, "norm_topk_prob", hp->norm_topk_prob);
    cJSON_AddStringToObject(o, "router", router_names[hp->router]);
    add_bools(o, "layer_moe", hp->layer_moe, hp->n_layers);
    cJSON_AddNumberToObject(o, "bos_id", hp->bos_id);
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_ids");
    for (int i = 0; i < hp->n_eos; i++)
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(hp->eos_ids[i]));
    return o;
}

/* ---- reading ---- */

static const cJSON *need(const cJSON *o, const char *what, const char *key, dg_status *st)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v && *st == DG_OK)
        *st = dg_fail(DG_E_FORMAT, "%s: key \"%s\" is missing", what, key);
    return v;
}

static void get_int(const cJSON *o, const char *what, const char *key, int *out, double lo, double hi, dg_status *st)
{
    const cJSON *v = need(o, what, key, st);
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        if (*st == DG_OK)
            *st = dg_fail(DG_E_FORMAT, "%s: \"%s\" must be an integer in [%.0f, %.0f]", what, key, lo, hi);
        return;
    }
    *out = (int)v->valuedouble;
}

static void get_float(const cJSON *o, const char *what, const char *key, float *out, dg_status *st)
{
    const cJSON *v = need(o, what, key, st);
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.0e38) {
        if (*st == DG_OK)
            *st = dg_fail(DG_E_FORMAT, "%s: \"%s\" must be a finite number", what, key);
        return;
    }
    *out = (float)v->valuedouble;
}

static void get_bool(const cJSON *o, const char *what, const char *key, bool *out, dg_status *st)
{
    const cJSON *v = need(o, what, key, st);
    if (!v)
        return;
    if (!cJSON_IsBool(v)) {
        if (*st == DG_OK)
            *st = dg_fail(DG_E_FORMAT, "%s: \"%s\" must be true or false", what, key);
        return;
    }
    *out = cJSON_IsTrue(v);
}

static int get_enum(const cJSON *o, const char *what, const char *key, const char *const *names, int n, dg_status *st)
{
    const cJSON *v = need(o, what, key, st);
    if (!v)
        return 0;
    if (cJSON_IsString(v))
        for (int i = 0; i < n; i++)
            if (strcmp(v->valuestring, names[i]) == 0)
                return i;
    if (*st == DG_OK)
        *st = dg_fail(DG_E_FORMAT, "%s: \"%s\" is %s, expected one of %s%s%s%s%s...", what, key,
                      cJSON_IsString(v) ? v->valuestring : "not a string", names[0], n > 1 ? ", " : "",
                      n > 1 ? names[1] : "", n > 2 ? ", " : "", n > 2 ? names[2] : "");
    return 0;
}

/* A number array of exactly `want` entries (want < 0: any length up to max, returned). */
static int get_float_array(const cJSON *o, const char *what, const char *key, float *out, int max, dg_status *st)
{
    const cJSON *a = need(o, what, key, st);
    if (!a)
        return 0;
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n < 0 || n > max) {
        if (*st == DG_OK)
            *st = dg_fail(DG_E_FORMAT, "%s: \"%s\" must be an array of at most %d numbers", what, key, max);
        return 0;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
            if (*st == DG_OK)
                *st = dg_fail(DG_E_FORMAT, "%s: \"%s\"[%d] is not a finite number", what, key, i);
            return 0;
        }
        out[i++] = (float)e->valuedouble;
    }
    return n;
}

static void get_bool_array(const cJSON *o, const char *what, const char *key, bool *out, int want, dg_status *st)
{
    const cJSON *a = need(o, what, key, st);
    if (!a)
        return;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != want) {
        if (*st == DG_OK)
            *st = dg_fail(DG_E_FORMAT, "%s: \"%s\" must be an array of n_layers (%d) booleans", what, key, want);
        return;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsBool(e)) {
            if (*st == DG_OK)
                *st = dg_fail(DG_E_FORMAT, "%s: \"%s\"[%d] is not a boolean", what, key, i);
            return;
        }
        out[i++] = cJSON_IsTrue(e);
    }
}

static void rope_from_json(const cJSON *o, const char *what, struct dg_rope *r, dg_status *st)
{
    if (!cJSON_IsObject(o)) {
        if (*st == DG_OK)
            *st = dg_fail(DG_E_FORMAT, "%s: must be an object", what);
        return;
    }
    r->type = (enum dg_rope_type)get_enum(o, what, "type", rope_names, N_OF(rope_names), st);
    r->pairing = (enum dg_rope_pairing)get_enum(o, what, "pairing", pairing_names, N_OF(pairing_names), st);
    get_float(o, what, "theta", &r->theta, st);
    get_float(o, what, "factor", &r->factor, st);
    get_float(o, what, "low_freq_factor", &r->low_freq_factor, st);
    get_float(o, what, "high_freq_factor", &r->high_freq_factor, st);
    get_int(o, what, "original_max_pos", &r->original_max_pos, 0, 1 << 30, st);
    get_float(o, what, "beta_fast", &r->beta_fast, st);
    get_float(o, what, "beta_slow", &r->beta_slow, st);
    get_float(o, what, "attention_factor", &r->attention_factor, st);
    get_bool(o, what, "truncate", &r->truncate, st);
    get_int(o, what, "rotary_dim", &r->rotary_dim, 0, 1 << 16, st);
    r->n_factors = get_float_array(o, what, "short_factor", r->short_factor, DG_MAX_ROPE_FACTORS, st);
    int nl = get_float_array(o, what, "long_factor", r->long_factor, DG_MAX_ROPE_FACTORS, st);
    if (*st == DG_OK && nl != r->n_factors)
        *st = dg_fail(DG_E_FORMAT, "%s: long_factor has %d entries but short_factor %d", what, nl, r->n_factors);
    r->n_freq_factors = get_float_array(o, what, "freq_factors", r->freq_factors, DG_MAX_ROPE_FACTORS, st);
}

dg_status dg_hparams_from_json(const cJSON *o, const char *what, struct dg_hparams *hp)
{
    dg_hparams_defaults(hp);
    if (!cJSON_IsObject(o))
        return dg_fail(DG_E_FORMAT, "%s: the config must be an object", what);
    dg_status st = DG_OK;
    const cJSON *arch = need(o, what, "arch", &st);
    if (arch && (!cJSON_IsString(arch) || !dg_arch_from_name(arch->valuestring, &hp->arch)))
        return dg_fail(DG_E_FORMAT, "%s: \"arch\" is %s, not a known family", what,
                       cJSON_IsString(arch) ? arch->valuestring : "not a string");
    const cJSON *mt = need(o, what, "model_type", &st);
    if (mt) {
        if (!cJSON_IsString(mt) || strlen(mt->valuestring) >= sizeof hp->model_type)
            return dg_fail(DG_E_FORMAT, "%s: \"model_type\" must be a string of at most %zu bytes", what,
                           sizeof hp->model_type - 1);
        snprintf(hp->model_type, sizeof hp->model_type, "%s", mt->valuestring);
    }
    get_int(o, what, "hidden", &hp->hidden, 1, 1 << 20, &st);
    get_int(o, what, "n_layers", &hp->n_layers, 1, DG_MAX_LAYERS, &st);
    get_int(o, what, "n_heads", &hp->n_heads, 1, 1 << 12, &st);
    get_int(o, what, "n_kv_heads", &hp->n_kv_heads, 1, 1 << 12, &st);
    get_int(o, what, "head_dim", &hp->head_dim, 1, 1 << 12, &st);
    get_int(o, what, "intermediate", &hp->intermediate, 0, 1 << 22, &st);
    get_int(o, what, "vocab", &hp->vocab, 1, 1 << 24, &st);
    get_int(o, what, "max_pos", &hp->max_pos, 0, 1 << 30, &st);
    get_float(o, what, "norm_eps", &hp->norm_eps, &st);
    hp->norm_style = (enum dg_norm_style)get_enum(o, what, "norm_style", norm_names, N_OF(norm_names), &st);
    hp->act = (enum dg_activation)get_enum(o, what, "act", act_names, N_OF(act_names), &st);
    get_float(o, what, "swiglu_limit", &hp->swiglu_limit, &st);
    get_float(o, what, "swiglu_alpha", &hp->swiglu_alpha, &st);
    char sub[256];
    snprintf(sub, sizeof sub, "%s: rope", what);
    const cJSON *r = need(o, what, "rope", &st);
    if (r)
        rope_from_json(r, sub, &hp->rope, &st);
    snprintf(sub, sizeof sub, "%s: rope_local", what);
    r = need(o, what, "rope_local", &st);
    if (r)
        rope_from_json(r, sub, &hp->rope_local, &st);
    get_int(o, what, "sliding_window", &hp->sliding_window, 0, 1 << 30, &st);
    if (st == DG_OK)
        get_bool_array(o, what, "layer_sliding", hp->layer_sliding, hp->n_layers, &st);
    get_float(o, what, "attn_softcap", &hp->attn_softcap, &st);
    get_float(o, what, "final_softcap", &hp->final_softcap, &st);
    get_float(o, what, "attn_scale", &hp->attn_scale, &st);
    get_float(o, what, "embed_scale", &hp->embed_scale, &st);
    get_bool(o, what, "tie_embeddings", &hp->tie_embeddings, &st);
    get_bool(o, what, "attn_qkv_bias", &hp->attn_qkv_bias, &st);
    get_bool(o, what, "attn_o_bias", &hp->attn_o_bias, &st);
    get_bool(o, what, "mlp_bias", &hp->mlp_bias, &st);
    get_bool(o, what, "lm_head_bias", &hp->lm_head_bias, &st);
    get_bool(o, what, "qk_norm", &hp->qk_norm, &st);
    get_bool(o, what, "sandwich_norm", &hp->sandwich_norm, &st);
    get_bool(o, what, "attn_sinks", &hp->attn_sinks, &st);
    get_int(o, what, "n_experts", &hp->n_experts, 0, 1 << 12, &st);
    get_int(o, what, "n_experts_used", &hp->n_experts_used, 0, 1 << 12, &st);
    get_int(o, what, "moe_intermediate", &hp->moe_intermediate, 0, 1 << 22, &st);
    get_bool(o, what, "norm_topk_prob", &hp->norm_topk_prob, &st);
    hp->router = (enum dg_router)get_enum(o, what, "router", router_names, N_OF(router_names), &st);
    if (st == DG_OK)
        get_bool_array(o, what, "layer_moe", hp->layer_moe, hp->n_layers, &st);
    get_int(o, what, "bos_id", &hp->bos_id, -1, 1 << 24, &st);
    float eos[DG_MAX_EOS];
    hp->n_eos = get_float_array(o, what, "eos_ids", eos, DG_MAX_EOS, &st);
    for (int i = 0; i < hp->n_eos && st == DG_OK; i++) {
        if (eos[i] < 0 || eos[i] >= (float)(1 << 24) || eos[i] != floorf(eos[i]))
            st = dg_fail(DG_E_FORMAT, "%s: eos_ids[%d] = %g is not a token id", what, i, (double)eos[i]);
        hp->eos_ids[i] = (int)eos[i];
    }
    if (st != DG_OK)
        return st;
    if (hp->n_experts_used > hp->n_experts)
        return dg_fail(DG_E_FORMAT, "%s: n_experts_used %d > n_experts %d", what, hp->n_experts_used, hp->n_experts);
    if (hp->n_heads % hp->n_kv_heads)
        return dg_fail(DG_E_FORMAT, "%s: n_heads %d is not a multiple of n_kv_heads %d", what, hp->n_heads,
                       hp->n_kv_heads);
    return DG_OK;
}
