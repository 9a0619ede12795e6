/* report.c: compatibility reports as JSON (the cache format and `check-compat --json`), read back with
 * validation, and as text (the summary and the per-layer table of `check-compat --verbose`). */
/* snprintf truncation into fixed message and path fields is intended (they only get long for odd input). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compat/compat.h"

dg_status dg_compat_finalize(struct dg_compat_report *r); /* compat.c */

static const char *const kind_names[DG_CN_COUNT] = {
    [DG_CN_INPUT] = "input_layernorm",
    [DG_CN_POST_ATTN] = "post_attention_layernorm",
    [DG_CN_PRE_FFN] = "pre_feedforward_layernorm",
    [DG_CN_POST_FFN] = "post_feedforward_layernorm",
    [DG_CN_Q_NORM] = "q_norm",
    [DG_CN_K_NORM] = "k_norm",
    [DG_CN_FINAL] = "norm",
};

static const char *tensor_name(const struct dg_compat_report *r, int i)
{
    return i >= 0 && i < r->n_tensors ? r->tensors[i].name : "";
}

cJSON *dg_compat_report_json(const struct dg_compat_report *r)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "checker_version", DG_COMPAT_VERSION);
    if (r->key[0])
        cJSON_AddStringToObject(o, "key", r->key);
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "arch", r->arch);
    cJSON_AddBoolToObject(o, "gemma_norm", r->gemma_norm);
    cJSON_AddStringToObject(o, "status", dg_compat_status_name(r->status));
    cJSON_AddNumberToObject(o, "score", r->score);
    cJSON *sc = cJSON_AddObjectToObject(o, "scores");
    cJSON_AddNumberToObject(sc, "ratio", r->score_ratio);
    cJSON_AddNumberToObject(sc, "extreme_share", r->score_share);
    cJSON_AddNumberToObject(sc, "amplification", r->score_amp);
    cJSON_AddStringToObject(o, "reason", r->reason);
    cJSON_AddNumberToObject(o, "worst_ratio", r->worst_ratio);
    cJSON_AddStringToObject(o, "worst_tensor", tensor_name(r, r->worst_tensor));
    cJSON_AddNumberToObject(o, "layers_total", r->n_layers);
    cJSON_AddNumberToObject(o, "layers_extreme", r->n_extreme);
    cJSON_AddNumberToObject(o, "extreme_share", r->extreme_share);
    cJSON_AddNumberToObject(o, "amplification", r->amplification);
    cJSON *lim = cJSON_AddObjectToObject(o, "limits");
    cJSON_AddNumberToObject(lim, "extreme_ratio", l->extreme_ratio);
    cJSON_AddNumberToObject(lim, "warn_ratio", l->warn_ratio);
    cJSON_AddNumberToObject(lim, "safe_ratio", l->safe_ratio);
    cJSON_AddNumberToObject(lim, "zero_ratio", l->zero_ratio);
    cJSON_AddNumberToObject(lim, "share_warn", l->share_warn);
    cJSON_AddNumberToObject(lim, "share_max", l->share_max);
    cJSON_AddNumberToObject(lim, "amp_warn", l->amp_warn);
    cJSON_AddNumberToObject(lim, "amp_max", l->amp_max);
    cJSON_AddNumberToObject(lim, "amp_zero", l->amp_zero);
    cJSON_AddNumberToObject(lim, "amp_cap", l->amp_cap);
    cJSON_AddNumberToObject(lim, "score_compatible", l->score_compatible);
    cJSON_AddNumberToObject(lim, "score_incompatible", l->score_incompatible);
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    for (int i = 0; i < r->n_tensors; i++) {
        const struct dg_compat_tensor *t = &r->tensors[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", t->name);
        cJSON_AddNumberToObject(j, "layer", t->layer);
        cJSON_AddStringToObject(j, "kind", kind_names[t->kind]);
        cJSON_AddNumberToObject(j, "elements", (double)t->n);
        cJSON_AddNumberToObject(j, "max_abs", t->max_abs);
        cJSON_AddNumberToObject(j, "median_abs", t->median_abs);
        cJSON_AddNumberToObject(j, "ratio", t->ratio);
        cJSON_AddNumberToObject(j, "argmax", (double)t->argmax);
        cJSON_AddBoolToObject(j, "nonfinite", t->nonfinite);
        cJSON_AddItemToArray(ts, j);
    }
    cJSON *ls = cJSON_AddArrayToObject(o, "layers");
    for (int L = 0; L < r->n_layers; L++) {
        const struct dg_compat_layer *ly = &r->layers[L];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "layer", L);
        cJSON_AddNumberToObject(j, "ratio", ly->ratio);
        cJSON_AddStringToObject(j, "worst", tensor_name(r, ly->worst));
        cJSON_AddBoolToObject(j, "extreme", ly->extreme);
        cJSON_AddNumberToObject(j, "gain", ly->gain);
        cJSON_AddItemToArray(ls, j);
    }
    return o;
}

/* ---- reading back (cache files are untrusted) ---- */

static dg_status get_num(const char *what, const cJSON *o, const char *key, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected a number", what, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return dg_fail(DG_E_FORMAT, "%s: %s: %g is out of range (expected %g to %g)", what, key, v->valuedouble, lo,
                       hi);
    *out = v->valuedouble;
    return DG_OK;
}

static dg_status get_str(const char *what, const cJSON *o, const char *key, char *dst, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected a string", what, key);
    if (strlen(v->valuestring) >= size)
        return dg_fail(DG_E_FORMAT, "%s: %s: longer than %zu bytes", what, key, size - 1);
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return DG_OK;
}

static dg_status read_tensor(const char *what, int idx, const cJSON *j, int n_layers, struct dg_compat_tensor *t)
{
    char w[512];
    snprintf(w, sizeof w, "%s: tensors[%d]", what, idx);
    const double cap = dg_compat_limits.ratio_cap;
    double layer, n, mx, med, ratio, arg;
    char kind[64];
    dg_status st;
    if (!cJSON_IsObject(j))
        return dg_fail(DG_E_FORMAT, "%s: expected an object", w);
    if ((st = get_str(w, j, "name", t->name, sizeof t->name)) || (st = get_str(w, j, "kind", kind, sizeof kind)) ||
        (st = get_num(w, j, "layer", -1, n_layers - 1, &layer)) || (st = get_num(w, j, "elements", 1, 1 << 24, &n)) ||
        (st = get_num(w, j, "max_abs", 0, cap, &mx)) || (st = get_num(w, j, "median_abs", 0, cap, &med)) ||
        (st = get_num(w, j, "ratio", 0, cap, &ratio)) || (st = get_num(w, j, "argmax", 0, n - 1, &arg)))
        return st;
    if (layer != floor(layer) || n != floor(n) || arg != floor(arg))
        return dg_fail(DG_E_FORMAT, "%s: layer, elements and argmax must be integers", w);
    int k = 0;
    while (k < DG_CN_COUNT && strcmp(kind_names[k], kind) != 0)
        k++;
    if (k == DG_CN_COUNT || (k == DG_CN_FINAL) != (layer < 0))
        return dg_fail(DG_E_FORMAT, "%s: kind \"%s\" does not fit layer %g", w, kind, layer);
    const cJSON *nf = cJSON_GetObjectItemCaseSensitive(j, "nonfinite");
    if (!cJSON_IsBool(nf))
        return dg_fail(DG_E_FORMAT, "%s: nonfinite: expected true or false", w);
    t->layer = (int)layer;
    t->kind = (enum dg_compat_norm)k;
    t->n = (int64_t)n;
    t->max_abs = mx;
    t->median_abs = med;
    t->ratio = ratio;
    t->argmax = (int64_t)arg;
    t->nonfinite = cJSON_IsTrue(nf);
    return DG_OK;
}

dg_status dg_compat_report_from_json(const char *what, const cJSON *o, struct dg_compat_report *out)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(o))
        return dg_fail(DG_E_FORMAT, "%s: expected a JSON object", what);
    double nl;
    dg_status st;
    if ((st = get_str(what, o, "model", out->model, sizeof out->model)) ||
        (st = get_str(what, o, "arch", out->arch, sizeof out->arch)) ||
        (st = get_num(what, o, "layers_total", 0, DG_MAX_LAYERS, &nl)))
        return st;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "gemma_norm");
    if (!cJSON_IsBool(g))
        return dg_fail(DG_E_FORMAT, "%s: gemma_norm: expected true or false", what);
    out->gemma_norm = cJSON_IsTrue(g);
    out->n_layers = (int)nl;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "tensors");
    int n = cJSON_GetArraySize(ts);
    if (!cJSON_IsArray(ts) || n > out->n_layers * (DG_CN_COUNT - 1) + 1)
        return dg_fail(DG_E_FORMAT, "%s: tensors: expected an array of at most %d entries", what,
                       out->n_layers * (DG_CN_COUNT - 1) + 1);
    out->tensors = calloc((size_t)n + 1, sizeof *out->tensors);
    if (!out->tensors)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", what);
    bool seen[DG_MAX_LAYERS + 1][DG_CN_COUNT];
    memset(seen, 0, sizeof seen);
    const cJSON *j;
    cJSON_ArrayForEach(j, ts)
    {
        struct dg_compat_tensor *t = &out->tensors[out->n_tensors];
        if ((st = read_tensor(what, out->n_tensors, j, out->n_layers, t)))
            break;
        if (seen[t->layer + 1][t->kind]) {
            st = dg_fail(DG_E_FORMAT, "%s: tensors[%d]: a second %s for layer %d", what, out->n_tensors,
                         kind_names[t->kind], t->layer);
            break;
        }
        seen[t->layer + 1][t->kind] = true;
        out->n_tensors++;
    }
    if (!st)
        st = dg_compat_finalize(out);
    if (st)
        dg_compat_report_free(out);
    return st;
}

/* ---- text ---- */

static void ratio_cell(FILE *out, const struct dg_compat_report *r, int idx, int width)
{
    if (idx < 0)
        fprintf(out, " %*s", width, "-");
    else if (r->tensors[idx].ratio >= dg_compat_limits.ratio_cap)
        fprintf(out, " %*s", width, r->tensors[idx].nonfinite ? "nonfinite" : "inf");
    else
        fprintf(out, " %*.2f", width, r->tensors[idx].ratio);
}

void dg_compat_report_text(FILE *out, const struct dg_compat_report *r, bool verbose)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    fprintf(out, "Model:            %s\n", r->model);
    fprintf(out, "Architecture:     %s%s\n", r->arch, r->gemma_norm ? " (Gemma-style norms: ratios of |1 + w|)" : "");
    fprintf(out, "Status:           %s (score %.2f; COMPATIBLE above %.1f, INCOMPATIBLE below %.1f)\n",
            dg_compat_status_name(r->status), r->score, l->score_compatible, l->score_incompatible);
    fprintf(out, "Reason:           %s\n", r->reason);
    if (r->worst_tensor >= 0) {
        const struct dg_compat_tensor *t = &r->tensors[r->worst_tensor];
        fprintf(out, "Worst tensor:     %s: max |w| %.4g at element %lld, median |w| %.4g, ratio %.2fx\n", t->name,
                t->max_abs, (long long)t->argmax, t->median_abs, t->ratio);
    }
    fprintf(out, "Extreme layers:   %d of %d (%.0f%%) above %.0fx\n", r->n_extreme, r->n_layers, 100.0 * r->extreme_share,
            l->extreme_ratio);
    fprintf(out, "Amplification:    %.3gx (estimated; safe below %.0fx)\n", r->amplification, l->amp_max);
    fprintf(out, "Sub-scores:       ratio %.2f, extreme share %.2f, amplification %.2f\n", r->score_ratio,
            r->score_share, r->score_amp);
    fprintf(out, "Fused kernels:    %s\n",
            r->status == DG_COMPAT_COMPATIBLE ? "used when the plan selects them"
            : r->status == DG_COMPAT_WARNING  ? "used, with a warning"
                                              : "vetoed: the standard path is used (--force-fused overrides, for testing)");
    if (!verbose)
        return;
    static const char *const head[DG_CN_COUNT - 1] = {"input", "post_attn", "pre_ffn", "post_ffn", "q_norm",
                                                      "k_norm"};
    fprintf(out, "\nPer-layer max|w|/median|w| (- = no such tensor):\n%5s", "layer");
    for (int k = 0; k < DG_CN_COUNT - 1; k++)
        fprintf(out, " %9s", head[k]);
    fprintf(out, " %9s %7s %s\n", "worst", "gain", "extreme");
    for (int L = 0; L < r->n_layers; L++) {
        const struct dg_compat_layer *ly = &r->layers[L];
        fprintf(out, "%5d", L);
        for (int k = 0; k < DG_CN_COUNT - 1; k++)
            ratio_cell(out, r, ly->tensor[k], 9);
        ratio_cell(out, r, ly->worst, 9);
        fprintf(out, " %7.2f %s\n", ly->gain, ly->extreme ? "yes" : "no");
    }
    for (int i = 0; i < r->n_tensors; i++)
        if (r->tensors[i].layer < 0) {
            fprintf(out, "%5s", "final");
            ratio_cell(out, r, i, 9);
            fprintf(out, "  (%s)\n", r->tensors[i].name);
        }
}

dg_status dg_compat_export(const struct dg_compat_report *r, const char *file, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    if (json) {
        cJSON *o = dg_compat_report_json(r);
        char *text = o ? cJSON_Print(o) : NULL;
        cJSON_Delete(o);
        if (!text)
            return dg_fail(DG_E_NOMEM, "%s: out of memory", file);
        len = strlen(text);
        buf = malloc(len + 2);
        if (buf) {
            memcpy(buf, text, len);
            buf[len++] = '\n';
        }
        free(text);
    } else {
        FILE *m = open_memstream(&buf, &len);
        if (m) {
            dg_compat_report_text(m, r, true);
            fclose(m);
        }
    }
    if (!buf)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", file);
    dg_status st = dg_compat_write_atomic(file, buf, len);
    free(buf);
    return st;
}
