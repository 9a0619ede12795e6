/* compat.c: the compatibility metrics over a model's norm tensors, the score and status, the decision for
 * a fused path, and the hook that makes a kernel plan consult it. The definitions are in compat.h. */
/* snprintf truncation into fixed message and path fields is intended (they only get long for odd input). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include "compat/compat.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/log.h"
#include "kpath/kpath.h"
#include "model/quant.h"

const struct dg_compat_limits dg_compat_limits = {
    .extreme_ratio = 10.0,
    .warn_ratio = 15.0,
    .safe_ratio = 20.0,
    .zero_ratio = 40.0,
    .share_warn = 0.25,
    .share_max = 0.5,
    .amp_warn = 3.1622776601683795, /* sqrt(10): halfway to amp_max on a log scale */
    .amp_max = 10.0,
    .amp_zero = 100.0,
    .amp_cap = 1e6,
    .ratio_cap = 1e9,
    .score_compatible = 0.8,
    .score_incompatible = 0.5,
};

/* Largest norm tensor we read: far beyond any hidden size, small enough that a corrupt shape cannot make us
 * allocate gigabytes. */
#define MAX_NORM_ELEMS (1 << 24)

static const struct {
    const char *suffix; /* after "layer.{L}." */
} norm_names[DG_CN_COUNT] = {
    [DG_CN_INPUT] = {"input_layernorm"},
    [DG_CN_POST_ATTN] = {"post_attention_layernorm"},
    [DG_CN_PRE_FFN] = {"pre_feedforward_layernorm"},
    [DG_CN_POST_FFN] = {"post_feedforward_layernorm"},
    [DG_CN_Q_NORM] = {"self_attn.q_norm"},
    [DG_CN_K_NORM] = {"self_attn.k_norm"},
    [DG_CN_FINAL] = {"norm"},
};

const char *dg_compat_status_name(enum dg_compat_status s)
{
    switch (s) {
    case DG_COMPAT_COMPATIBLE:
        return "COMPATIBLE";
    case DG_COMPAT_WARNING:
        return "WARNING";
    case DG_COMPAT_INCOMPATIBLE:
        return "INCOMPATIBLE";
    }
    return "?";
}

/* Piecewise-linear through (k[0], 1), (k[1], 0.8), (k[2], 0.5), (k[3], 0); 1 below k[0], 0 above k[3]. */
static double band(double x, const double k[4])
{
    static const double s[4] = {1.0, 0.8, 0.5, 0.0};
    if (!(x > k[0])) /* NaN lands on the unsafe side below */
        return isnan(x) ? 0.0 : 1.0;
    for (int i = 0; i < 3; i++)
        if (x <= k[i + 1])
            return s[i] + (s[i + 1] - s[i]) * (x - k[i]) / (k[i + 1] - k[i]);
    return 0.0;
}

double dg_compat_score_ratio(double ratio)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    const double k[4] = {l->extreme_ratio, l->warn_ratio, l->safe_ratio, l->zero_ratio};
    return band(ratio, k);
}

double dg_compat_score_share(double share)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    const double k[4] = {0.0, l->share_warn, l->share_max, 1.0};
    return band(share, k);
}

double dg_compat_score_amp(double amplification)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    const double k[4] = {0.0, log10(l->amp_warn), log10(l->amp_max), log10(l->amp_zero)};
    return band(amplification > 0 ? log10(amplification) : 0.0, k);
}

enum dg_compat_status dg_compat_status_of(double score)
{
    if (score > dg_compat_limits.score_compatible)
        return DG_COMPAT_COMPATIBLE;
    if (score >= dg_compat_limits.score_incompatible)
        return DG_COMPAT_WARNING;
    return DG_COMPAT_INCOMPATIBLE;
}

void dg_compat_report_free(struct dg_compat_report *r)
{
    free(r->tensors);
    free(r->layers);
    r->tensors = NULL;
    r->layers = NULL;
    r->n_tensors = r->n_layers = 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Reads tensor `t` as float32 into a malloc'd array of n elements. */
static dg_status read_f32(const struct dg_model *m, const struct dg_tensor *t, int64_t n, float **out)
{
    *out = NULL;
    if (n <= 0 || n > MAX_NORM_ELEMS)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: %lld elements (expected 1 to %d for a norm weight)", m->path,
                       t->name, (long long)n, MAX_NORM_ELEMS);
    uint64_t need = dg_dtype_row_bytes(t->dtype, (uint64_t)n);
    if (need == 0 || t->dtype == DG_DT_I32)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: dtype %s cannot hold %lld norm weights", m->path, t->name,
                       dg_dtype_info(t->dtype) ? dg_dtype_info(t->dtype)->name : "?", (long long)n);
    if (!t->data || t->nbytes < need)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: %llu bytes of data, expected %llu for %lld %s elements", m->path,
                       t->name, (unsigned long long)t->nbytes, (unsigned long long)need, (long long)n,
                       dg_dtype_info(t->dtype)->name);
    float *v = malloc(sizeof *v * (size_t)n);
    if (!v)
        return dg_fail(DG_E_NOMEM, "%s: tensor %s: out of memory", m->path, t->name);
    dg_status st = DG_OK;
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case DG_DT_F32:
        memcpy(v, p, sizeof *v * (size_t)n);
        break;
    case DG_DT_F16:
    case DG_DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v[i] = t->dtype == DG_DT_F16 ? dg_f16_to_f32(h) : dg_bf16_to_f32(h);
        }
        break;
    default:
        st = dg_dequantize(t->dtype, p, v, (uint64_t)n);
        if (st)
            dg_fail_context(st, "%s: tensor %s: ", m->path, t->name);
    }
    if (st) {
        free(v);
        return st;
    }
    *out = v;
    return DG_OK;
}

static dg_status measure(const struct dg_model *m, const struct dg_tensor *t, bool gemma, struct dg_compat_tensor *ct)
{
    int64_t n = dg_tensor_nelems(t);
    float *v;
    dg_status st = read_f32(m, t, n, &v);
    if (st)
        return st;
    double mx = 0;
    int64_t arg = 0;
    bool nonfinite = false;
    for (int64_t i = 0; i < n; i++) {
        float w = gemma ? 1.0f + v[i] : v[i];
        if (!isfinite(w)) {
            nonfinite = true;
            w = INFINITY;
        }
        v[i] = fabsf(w);
        if (v[i] > mx) {
            mx = v[i];
            arg = i;
        }
    }
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    double med = n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + (double)v[n / 2]);
    free(v);
    ct->n = n;
    ct->nonfinite = nonfinite;
    ct->argmax = arg;
    ct->max_abs = isfinite(mx) ? mx : dg_compat_limits.ratio_cap;
    ct->median_abs = isfinite(med) ? med : dg_compat_limits.ratio_cap;
    if (nonfinite || !(med > 0))
        ct->ratio = mx > 0 || nonfinite ? dg_compat_limits.ratio_cap : 1.0; /* all zero: no outlier */
    else
        ct->ratio = fmin(mx / med, dg_compat_limits.ratio_cap);
    return DG_OK;
}

static int cmp_ratio_desc(const void *a, const void *b, void *ctx)
{
    const struct dg_compat_tensor *t = ctx;
    double x = t[*(const int *)a].ratio, y = t[*(const int *)b].ratio;
    return (x < y) - (x > y);
}

/* Appends to a fixed buffer, truncating. */
static void append(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

static void describe(struct dg_compat_report *r)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    char *s = r->reason;
    size_t n = sizeof r->reason;
    s[0] = 0;
    if (r->n_tensors == 0) {
        append(s, n, "the model has no normalization weights to check");
        return;
    }
    /* the worst tensors: up to three above the extreme ratio, else the single worst */
    int *idx = malloc(sizeof *idx * (size_t)r->n_tensors);
    int shown = 0;
    if (idx) {
        for (int i = 0; i < r->n_tensors; i++)
            idx[i] = i;
        qsort_r(idx, (size_t)r->n_tensors, sizeof *idx, cmp_ratio_desc, r->tensors);
        for (int i = 0; i < r->n_tensors && shown < 3; i++) {
            const struct dg_compat_tensor *t = &r->tensors[idx[i]];
            if (!(t->ratio > l->extreme_ratio))
                break;
            append(s, n, "%s%s %s", shown ? "; " : "", t->name,
                   t->nonfinite ? "has non-finite weights" : "");
            if (!t->nonfinite) {
                if (t->ratio >= l->ratio_cap)
                    append(s, n, "has a zero median |w|");
                else
                    append(s, n, "has max |w%s| %.1fx its median", r->gemma_norm ? " + 1" : "", t->ratio);
            }
            shown++;
        }
        free(idx);
    }
    if (shown == 0 && r->worst_tensor >= 0)
        append(s, n, "every norm weight is within %.1fx of its tensor's median (largest: %s), below the %.0fx "
                     "extreme threshold",
               r->worst_ratio, r->tensors[r->worst_tensor].name, l->extreme_ratio);
    else if (r->worst_ratio > l->safe_ratio)
        append(s, n, " (safe below %.0fx)", l->safe_ratio);
    else if (r->worst_ratio >= l->warn_ratio)
        append(s, n, " (%.0f-%.0fx is the warning band)", l->warn_ratio, l->safe_ratio);
    append(s, n, "; %d of %d layers (%.0f%%) above %.0fx", r->n_extreme, r->n_layers, 100.0 * r->extreme_share,
           l->extreme_ratio);
    if (r->extreme_share > l->share_max)
        append(s, n, " (more than %.0f%% is unsafe)", 100.0 * l->share_max);
    append(s, n, "; estimated error amplification %.3gx", r->amplification);
    if (r->amplification >= l->amp_cap)
        append(s, n, " (capped)");
    if (r->amplification > l->amp_max)
        append(s, n, " (safe below %.0fx)", l->amp_max);
}

/* Layer aggregates, amplification, scores, status and reason from r->tensors (used by the check and when a
 * cached report is read back, so both agree). */
static dg_status finalize(struct dg_compat_report *r)
{
    const struct dg_compat_limits *l = &dg_compat_limits;
    free(r->layers);
    r->layers = NULL;
    if (r->n_layers < 0 || r->n_layers > DG_MAX_LAYERS)
        return dg_fail(DG_E_FORMAT, "%s: %d layers (expected 0 to %d)", r->model, r->n_layers, DG_MAX_LAYERS);
    if (r->n_layers) {
        r->layers = calloc((size_t)r->n_layers, sizeof *r->layers);
        if (!r->layers)
            return dg_fail(DG_E_NOMEM, "%s: out of memory", r->model);
    }
    for (int L = 0; L < r->n_layers; L++) {
        struct dg_compat_layer *ly = &r->layers[L];
        ly->layer = L;
        ly->ratio = 1.0;
        ly->worst = -1;
        for (int k = 0; k < DG_CN_COUNT; k++)
            ly->tensor[k] = -1;
    }
    double amp = 1.0, final_gain = 1.0;
    r->worst_ratio = 1.0;
    r->worst_tensor = -1;
    for (int i = 0; i < r->n_tensors; i++) {
        const struct dg_compat_tensor *t = &r->tensors[i];
        if (r->worst_tensor < 0 || t->ratio > r->worst_ratio) {
            r->worst_ratio = t->ratio;
            r->worst_tensor = i;
        }
        if (t->layer < 0) {
            final_gain = fmax(final_gain, t->ratio / l->extreme_ratio);
            continue;
        }
        struct dg_compat_layer *ly = &r->layers[t->layer];
        ly->tensor[t->kind] = i;
        if (ly->worst < 0 || t->ratio > ly->ratio) {
            ly->ratio = t->ratio;
            ly->worst = i;
        }
    }
    r->n_extreme = 0;
    for (int L = 0; L < r->n_layers; L++) {
        struct dg_compat_layer *ly = &r->layers[L];
        ly->extreme = ly->ratio > l->extreme_ratio;
        ly->gain = fmax(1.0, ly->ratio / l->extreme_ratio);
        r->n_extreme += ly->extreme;
        amp = fmin(amp * ly->gain, l->amp_cap);
    }
    r->amplification = fmin(amp * final_gain, l->amp_cap);
    r->extreme_share = r->n_layers ? (double)r->n_extreme / r->n_layers : 0.0;
    r->score_ratio = dg_compat_score_ratio(r->worst_ratio);
    r->score_share = dg_compat_score_share(r->extreme_share);
    r->score_amp = dg_compat_score_amp(r->amplification);
    r->score = fmin(r->score_ratio, fmin(r->score_share, r->score_amp));
    r->status = dg_compat_status_of(r->score);
    describe(r);
    return DG_OK;
}

/* Exposed to report.c, which rebuilds a report from its per-tensor data. */
dg_status dg_compat_finalize(struct dg_compat_report *r);
dg_status dg_compat_finalize(struct dg_compat_report *r) { return finalize(r); }

dg_status dg_compat_check(const struct dg_model *m, struct dg_compat_report *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", m->path);
    snprintf(out->arch, sizeof out->arch, "%s", dg_arch_name(m->hp.arch));
    out->gemma_norm = m->hp.norm_style == DG_NORM_RMS_GEMMA;
    int nl = m->hp.n_layers;
    if (nl < 0 || nl > DG_MAX_LAYERS)
        return dg_fail(DG_E_FORMAT, "%s: %d layers (expected 0 to %d)", m->path, nl, DG_MAX_LAYERS);
    out->n_layers = nl;
    size_t cap = (size_t)nl * (DG_CN_COUNT - 1) + 1;
    out->tensors = calloc(cap, sizeof *out->tensors);
    if (!out->tensors)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", m->path);
    dg_status st = DG_OK;
    for (int li = 0; li <= nl && !st; li++) { /* the layers in order, then the final norm */
        int L = li < nl ? li : -1;
        for (int k = 0; k < DG_CN_COUNT && !st; k++) {
            if ((L < 0) != (k == DG_CN_FINAL))
                continue;
            const struct dg_tensor *t = L < 0 ? dg_model_find(m, norm_names[k].suffix)
                                              : dg_model_findf(m, "layer.%d.%s", L, norm_names[k].suffix);
            if (!t)
                continue;
            struct dg_compat_tensor *ct = &out->tensors[out->n_tensors];
            snprintf(ct->name, sizeof ct->name, "%s", t->name);
            ct->layer = L;
            ct->kind = (enum dg_compat_norm)k;
            if (!(st = measure(m, t, out->gemma_norm, ct)))
                out->n_tensors++;
        }
    }
    if (!st)
        st = finalize(out);
    if (st)
        dg_compat_report_free(out);
    return st;
}

/* ---- decision and plan hook ---- */

void dg_compat_decide(const struct dg_compat_report *r, bool force_fused, struct dg_compat_decision *d)
{
    memset(d, 0, sizeof *d);
    const char *worst = r->worst_tensor >= 0 ? r->tensors[r->worst_tensor].name : "none";
    const char *model = r->model[0] ? r->model : "(in memory)";
    switch (r->status) {
    case DG_COMPAT_COMPATIBLE:
        d->allow_fused = true;
        break;
    case DG_COMPAT_WARNING:
        d->allow_fused = true;
        d->warn = true;
        snprintf(d->message, sizeof d->message,
                 "model %s is on the edge of fused-kernel compatibility (WARNING, score %.2f): %s; check the "
                 "output, or use a non-fused path",
                 model, r->score, r->reason);
        break;
    case DG_COMPAT_INCOMPATIBLE:
        d->allow_fused = force_fused;
        d->warn = force_fused;
        if (force_fused)
            snprintf(d->message, sizeof d->message,
                     "--force-fused: using fused kernels although model %s is INCOMPATIBLE with them (score %.2f): "
                     "%s; expect wrong output (this override is for testing)",
                     model, r->score, r->reason);
        else /* short: the plan keeps it in a 256-byte reason */
            snprintf(d->message, sizeof d->message,
                     "the model is INCOMPATIBLE with fused kernels (score %.2f, worst %s at %.1fx its median; "
                     "see check-compat; --force-fused overrides, for testing)",
                     r->score, worst, r->worst_ratio);
        break;
    }
}

static bool fused_check(const struct dg_model *m, bool force, const char *path_id, char *reason, size_t size)
{
    struct dg_compat_report r;
    dg_status st = dg_compat_get(m, &r);
    if (st) {
        snprintf(reason, size, "the compatibility check failed (%s)", dg_last_error());
        return false;
    }
    struct dg_compat_decision d;
    dg_compat_decide(&r, force, &d);
    if (!d.allow_fused)
        snprintf(reason, size, "%s", d.message);
    else if (d.warn)
        dg_warn_once("compat-fused", "fused path %s: %s", path_id, d.message);
    else
        DG_VERBOSE("fused path %s: the model is COMPATIBLE with fused kernels (score %.2f)", path_id, r.score);
    dg_compat_report_free(&r);
    return d.allow_fused;
}

static bool check_normal(void *ctx, const char *path_id, char *reason, size_t size)
{
    return fused_check(ctx, false, path_id, reason, size);
}

static bool check_forced(void *ctx, const char *path_id, char *reason, size_t size)
{
    return fused_check(ctx, true, path_id, reason, size);
}

void dg_compat_apply(const struct dg_model *m, struct dg_kplan *plan, bool force_fused)
{
    plan->fused_check = force_fused ? check_forced : check_normal;
    plan->fused_check_ctx = (void *)m;
}
