/* test_compat.c: the fused-kernel compatibility checker. Synthetic in-memory models (F32 norm tensors we
 * build) cover every status band, each sub-score deciding, Gemma's 1 + w, F16/BF16/quantized reads and
 * malformed tensors; the decision and the plan hook (veto → fallback path, said once; WARNING allowed with a
 * warning; --force-fused); JSON round trips and hostile cache files; the fixtures (all COMPATIBLE), the
 * qwen3 fixture with one K-norm weight patched to 96.5x its median (INCOMPATIBLE, falls back); and the
 * cache (written once beside the model, reused, re-checked when the model changes, XDG fallback for a
 * read-only folder, <file>.compat.json for GGUF). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compat/compat.h"
#include "core/half.h"
#include "kpath/kpath.h"
#include "model/model.h"
#include "model/quant.h"
#include "test.h"

/* ---- synthetic models ---- */

#define SYN_N 32      /* elements per norm tensor */
#define SYN_MAX_T 64

struct synth {
    struct dg_model m;
    struct dg_tensor t[SYN_MAX_T];
    float w[SYN_MAX_T][SYN_N];
};

static void add_norm(struct synth *s, const char *name, float center)
{
    int i = s->m.n_tensors++;
    struct dg_tensor *t = &s->t[i];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = DG_DT_F32;
    t->ndim = 1;
    t->shape[0] = SYN_N;
    t->nbytes = sizeof s->w[i];
    t->data = s->w[i];
    /* a spread like trained norm weights: ratio max/median about 1.2 */
    for (int k = 0; k < SYN_N; k++)
        s->w[i][k] = center + 0.1f * sinf(0.7f * (float)(k + 3 * i));
}

/* n_layers layers with input/post-attention norms and (qk) q/k norms, plus the final norm. Weights around
 * 1 (around 0 for Gemma-style storage). No path: the cache is not involved. */
static void synth_init(struct synth *s, int n_layers, bool qk, enum dg_norm_style style)
{
    memset(s, 0, sizeof *s);
    dg_hparams_defaults(&s->m.hp);
    s->m.hp.arch = qk ? DG_ARCH_QWEN3 : DG_ARCH_LLAMA;
    s->m.hp.n_layers = n_layers;
    s->m.hp.norm_style = style;
    s->m.tensors = s->t;
    float c = style == DG_NORM_RMS_GEMMA ? 0.0f : 1.0f;
    char name[DG_TENSOR_NAME_MAX];
    for (int L = 0; L < n_layers; L++) {
        snprintf(name, sizeof name, "layer.%d.input_layernorm", L);
        add_norm(s, name, c);
        snprintf(name, sizeof name, "layer.%d.post_attention_layernorm", L);
        add_norm(s, name, c);
        if (qk) {
            snprintf(name, sizeof name, "layer.%d.self_attn.q_norm", L);
            add_norm(s, name, c);
            snprintf(name, sizeof name, "layer.%d.self_attn.k_norm", L);
            add_norm(s, name, c);
        }
    }
    add_norm(s, "norm", c);
}

static float *synth_w(struct synth *s, const char *name)
{
    for (int i = 0; i < s->m.n_tensors; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return s->w[i];
    return NULL;
}

static double median_abs(const float *w, int n)
{
    float v[SYN_MAX_T * SYN_N];
    for (int i = 0; i < n; i++)
        v[i] = fabsf(w[i]);
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            float x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
}

/* Sets the largest element of `name` to `ratio` times the tensor's median |w|. */
static void spike(struct synth *s, const char *name, double ratio)
{
    float *w = synth_w(s, name);
    if (!w) {
        dg_test_fail(__FILE__, __LINE__, "no tensor %s", name);
        return;
    }
    int k = 0;
    for (int i = 1; i < SYN_N; i++) /* the largest element: raising it keeps the median where it was */
        if (w[i] > w[k])
            k = i;
    w[k] = (float)(ratio * median_abs(w, SYN_N));
}

static const struct dg_compat_tensor *find_ct(const struct dg_compat_report *r, const char *name)
{
    for (int i = 0; i < r->n_tensors; i++)
        if (strcmp(r->tensors[i].name, name) == 0)
            return &r->tensors[i];
    return NULL;
}

DG_TEST(compat_subscore_knots)
{
    /* the documented knots of compat.h, exactly */
    CHECK_NEAR(dg_compat_score_ratio(1.0), 1.0, 1e-12);
    CHECK_NEAR(dg_compat_score_ratio(10.0), 1.0, 1e-12);
    CHECK_NEAR(dg_compat_score_ratio(15.0), 0.8, 1e-12);
    CHECK_NEAR(dg_compat_score_ratio(20.0), 0.5, 1e-12);
    CHECK_NEAR(dg_compat_score_ratio(30.0), 0.25, 1e-12);
    CHECK_NEAR(dg_compat_score_ratio(40.0), 0.0, 1e-12);
    CHECK_NEAR(dg_compat_score_ratio(96.5), 0.0, 1e-12);
    CHECK_NEAR(dg_compat_score_share(0.0), 1.0, 1e-12);
    CHECK_NEAR(dg_compat_score_share(0.25), 0.8, 1e-12);
    CHECK_NEAR(dg_compat_score_share(0.5), 0.5, 1e-12);
    CHECK_NEAR(dg_compat_score_share(1.0), 0.0, 1e-12);
    CHECK_NEAR(dg_compat_score_amp(1.0), 1.0, 1e-12);
    CHECK_NEAR(dg_compat_score_amp(sqrt(10.0)), 0.8, 1e-9);
    CHECK_NEAR(dg_compat_score_amp(10.0), 0.5, 1e-9);
    CHECK_NEAR(dg_compat_score_amp(100.0), 0.0, 1e-9);
    CHECK(dg_compat_score_ratio(NAN) == 0.0);
    CHECK(dg_compat_status_of(0.81) == DG_COMPAT_COMPATIBLE);
    CHECK(dg_compat_status_of(0.8) == DG_COMPAT_WARNING);
    CHECK(dg_compat_status_of(0.5) == DG_COMPAT_WARNING);
    CHECK(dg_compat_status_of(0.49) == DG_COMPAT_INCOMPATIBLE);
    /* the thresholds of the guide live in one table */
    CHECK(dg_compat_limits.extreme_ratio == 10 && dg_compat_limits.warn_ratio == 15 &&
          dg_compat_limits.safe_ratio == 20 && dg_compat_limits.share_max == 0.5 && dg_compat_limits.amp_max == 10);
}

DG_TEST(compat_synthetic_compatible)
{
    static struct synth s;
    synth_init(&s, 8, true, DG_NORM_RMS);
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_COMPATIBLE);
    CHECK(r.n_tensors == 8 * 4 + 1 && r.n_layers == 8 && r.n_extreme == 0);
    CHECK(r.worst_ratio > 1.0 && r.worst_ratio < 1.5);
    CHECK_NEAR(r.amplification, 1.0, 0);
    CHECK_NEAR(r.score, 1.0, 1e-12);
    CHECK(strstr(r.reason, "below the 10x extreme threshold") != NULL);
    /* the layer table points at every kind the model has */
    CHECK(r.layers[3].tensor[DG_CN_K_NORM] >= 0 && r.layers[3].tensor[DG_CN_PRE_FFN] == -1);
    dg_compat_report_free(&r);
}

DG_TEST(compat_synthetic_warning_band)
{
    /* one K-norm at 17x: ratio sub-score 0.8 - 0.3 * 2/5 = 0.68; 1 of 8 layers extreme (share score 0.9);
     * amplification 1.7 (score > 0.8): the ratio decides, WARNING */
    static struct synth s;
    synth_init(&s, 8, true, DG_NORM_RMS);
    spike(&s, "layer.2.self_attn.k_norm", 17.0);
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK_MSG(r.status == DG_COMPAT_WARNING, "status %s score %g", dg_compat_status_name(r.status), r.score);
    CHECK_NEAR(r.worst_ratio, 17.0, 17.0 * 1e-6); /* f32 rounding of the spiked element */
    CHECK_NEAR(r.score, 0.68, 1e-5);
    CHECK_NEAR(r.amplification, 1.7, 1e-5);
    CHECK(r.n_extreme == 1 && r.layers[2].extreme && !r.layers[1].extreme);
    CHECK(strstr(r.reason, "layer.2.self_attn.k_norm") != NULL);
    dg_compat_report_free(&r);
}

DG_TEST(compat_synthetic_incompatible_by_ratio)
{
    static struct synth s;
    synth_init(&s, 8, true, DG_NORM_RMS);
    spike(&s, "layer.0.self_attn.k_norm", 96.5);
    spike(&s, "layer.5.self_attn.q_norm", 30.0);
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE);
    CHECK(r.score_ratio == 0.0 && r.score == 0.0);
    CHECK_NEAR(r.worst_ratio, 96.5, 96.5 * 1e-6);
    CHECK(strcmp(r.tensors[r.worst_tensor].name, "layer.0.self_attn.k_norm") == 0);
    /* amplification = 9.65 * 3.0: the product of the per-layer gains max(1, ratio / 10) */
    CHECK_NEAR(r.amplification, 9.65 * 3.0, 1e-4);
    /* the reason names the worst tensors, worst first */
    const char *a = strstr(r.reason, "layer.0.self_attn.k_norm"), *b = strstr(r.reason, "layer.5.self_attn.q_norm");
    CHECK_MSG(a && b && a < b, "reason: %s", r.reason);
    CHECK(strstr(r.reason, "96.5x") != NULL);
    dg_compat_report_free(&r);
}

DG_TEST(compat_synthetic_incompatible_by_share)
{
    /* 5 of 8 layers at 12x: every ratio is below the warning band (score 0.92) and the amplification is
     * 1.2^5 = 2.49 (score 0.84), but more than half the layers are extreme: share 0.625 scores 0.375 */
    static struct synth s;
    synth_init(&s, 8, false, DG_NORM_RMS);
    char name[64];
    for (int L = 0; L < 5; L++) {
        snprintf(name, sizeof name, "layer.%d.post_attention_layernorm", L);
        spike(&s, name, 12.0);
    }
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE);
    CHECK(r.n_extreme == 5);
    CHECK_NEAR(r.extreme_share, 0.625, 1e-12);
    CHECK_NEAR(r.score, 0.375, 1e-9);
    CHECK(r.score_ratio > 0.8 && r.score_amp > 0.8);
    CHECK(strstr(r.reason, "5 of 8 layers") != NULL && strstr(r.reason, "more than 50%") != NULL);
    dg_compat_report_free(&r);
}

DG_TEST(compat_synthetic_incompatible_by_amplification)
{
    /* 4 of 8 layers at 19x: ratio score 0.56 and share score 0.5 (both WARNING), amplification 1.9^4 = 13.0
     * scores 0.5 - 0.5 * log10(1.303) = 0.4425: INCOMPATIBLE */
    static struct synth s;
    synth_init(&s, 8, false, DG_NORM_RMS);
    char name[64];
    for (int L = 0; L < 8; L += 2) {
        snprintf(name, sizeof name, "layer.%d.input_layernorm", L);
        spike(&s, name, 19.0);
    }
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE);
    CHECK_NEAR(r.amplification, pow(1.9, 4), 1e-4);
    CHECK(r.score_ratio >= 0.5 && r.score_share >= 0.5);
    CHECK_NEAR(r.score, 0.5 - 0.5 * log10(pow(1.9, 4) / 10.0), 1e-5);
    CHECK(strstr(r.reason, "amplification") != NULL && strstr(r.reason, "safe below 10x") != NULL);
    dg_compat_report_free(&r);
}

DG_TEST(compat_gemma_uses_one_plus_w)
{
    /* stored around 0 (effective 1 + w around 1) with one weight of 12.5: as 1 + w that is 13.5x, extreme but
     * below the warning band; taken as stored it would be hundreds of times the median (~0.07) */
    static struct synth s;
    synth_init(&s, 8, true, DG_NORM_RMS_GEMMA);
    synth_w(&s, "layer.1.self_attn.k_norm")[5] = 12.5f;
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK_MSG(r.status == DG_COMPAT_COMPATIBLE && r.gemma_norm && r.worst_ratio > 12.5 && r.worst_ratio < 15,
              "%s ratio %g", dg_compat_status_name(r.status), r.worst_ratio);
    dg_compat_report_free(&r);
    s.m.hp.norm_style = DG_NORM_RMS;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE && r.worst_ratio > 100);
    dg_compat_report_free(&r);
    /* a Gemma weight of 95.5 is an effective 96.5 */
    s.m.hp.norm_style = DG_NORM_RMS_GEMMA;
    float *w = synth_w(&s, "layer.1.self_attn.k_norm");
    for (int i = 0; i < SYN_N; i++)
        w[i] = 0.0f;
    w[7] = 95.5f;
    CHECK_OK(dg_compat_check(&s.m, &r));
    const struct dg_compat_tensor *t = find_ct(&r, "layer.1.self_attn.k_norm");
    CHECK(t && t->ratio == 96.5 && t->argmax == 7 && t->median_abs == 1.0);
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE);
    dg_compat_report_free(&r);
}

DG_TEST(compat_reads_f16_bf16_and_quantized)
{
    static struct synth s;
    synth_init(&s, 2, false, DG_NORM_RMS);
    spike(&s, "layer.1.input_layernorm", 12.0);
    struct dg_compat_report ref;
    CHECK_OK(dg_compat_check(&s.m, &ref));
    struct dg_tensor *t = &s.t[2]; /* layer.1.input_layernorm */
    CHECK(strcmp(t->name, "layer.1.input_layernorm") == 0);
    uint16_t h[SYN_N];
    uint8_t q[64];
    const float *src = s.w[2];
    for (int pass = 0; pass < 3; pass++) {
        enum dg_dtype dt = pass == 0 ? DG_DT_F16 : pass == 1 ? DG_DT_BF16 : DG_DT_Q8_0;
        if (dt == DG_DT_Q8_0) {
            CHECK_OK(dg_quantize(dt, src, q, SYN_N));
            t->data = q;
            t->nbytes = dg_dtype_row_bytes(dt, SYN_N);
        } else {
            for (int i = 0; i < SYN_N; i++)
                h[i] = dt == DG_DT_F16 ? dg_f32_to_f16(src[i]) : dg_f32_to_bf16(src[i]);
            t->data = h;
            t->nbytes = sizeof h;
        }
        t->dtype = dt;
        struct dg_compat_report r;
        CHECK_OK(dg_compat_check(&s.m, &r));
        /* tolerance: bf16 keeps 8 significant bits (0.4% per value, two values in a ratio), q8_0 1/127 of the
         * block maximum on the median */
        double tol = dt == DG_DT_F16 ? 2e-3 : dt == DG_DT_BF16 ? 1e-2 : 0.25;
        CHECK_MSG(fabs(r.tensors[2].ratio - ref.tensors[2].ratio) <= tol * ref.tensors[2].ratio, "%s ratio %g vs %g",
                  dg_dtype_info(dt)->name, r.tensors[2].ratio, ref.tensors[2].ratio);
        CHECK(r.status == ref.status);
        dg_compat_report_free(&r);
    }
    dg_compat_report_free(&ref);
}

DG_TEST(compat_malformed_tensors)
{
    static struct synth s;
    synth_init(&s, 2, false, DG_NORM_RMS);
    snprintf(s.m.path, sizeof s.m.path, "synthetic");
    struct dg_compat_report r;
    s.t[1].nbytes = 16; /* 4 floats for 32 elements */
    dg_status st = dg_compat_check(&s.m, &r);
    CHECK(st == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "layer.0.post_attention_layernorm") && strstr(dg_last_error(), "16 bytes"),
              "%s", dg_last_error());
    s.t[1].nbytes = sizeof s.w[1];
    s.t[1].dtype = DG_DT_I32;
    CHECK(dg_compat_check(&s.m, &r) == DG_E_FORMAT);
    s.t[1].dtype = DG_DT_F32;
    s.t[1].shape[0] = 0;
    CHECK(dg_compat_check(&s.m, &r) == DG_E_FORMAT);
    s.t[1].shape[0] = SYN_N;
    s.m.hp.n_layers = DG_MAX_LAYERS + 1;
    CHECK(dg_compat_check(&s.m, &r) == DG_E_FORMAT);
    s.m.hp.n_layers = 2;
    /* non-finite weights: capped ratio, INCOMPATIBLE, said in the reason */
    s.w[1][3] = NAN;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE && r.tensors[1].nonfinite);
    CHECK(strstr(r.reason, "non-finite") != NULL);
    dg_compat_report_free(&r);
    /* all-zero weights: no outlier (ratio 1) */
    for (int i = 0; i < SYN_N; i++)
        s.w[1][i] = 0.0f;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK_MSG(r.tensors[1].ratio == 1.0 && r.status == DG_COMPAT_COMPATIBLE, "ratio %g status %s: %s", r.tensors[1].ratio, dg_compat_status_name(r.status), r.reason);
    dg_compat_report_free(&r);
    /* a model without any norm tensor is COMPATIBLE and says so */
    s.m.n_tensors = 0;
    CHECK_OK(dg_compat_check(&s.m, &r));
    CHECK(r.status == DG_COMPAT_COMPATIBLE && r.worst_tensor == -1 && strstr(r.reason, "no normalization"));
    dg_compat_report_free(&r);
}

DG_TEST(compat_json_round_trip_and_hostile_input)
{
    static struct synth s;
    synth_init(&s, 8, true, DG_NORM_RMS);
    spike(&s, "layer.0.self_attn.k_norm", 96.5);
    struct dg_compat_report r, back;
    CHECK_OK(dg_compat_check(&s.m, &r));
    cJSON *o = dg_compat_report_json(&r);
    CHECK(o != NULL);
    char *text = cJSON_PrintUnformatted(o);
    cJSON *p = cJSON_Parse(text);
    CHECK_OK(dg_compat_report_from_json("t.json", p, &back));
    CHECK(back.status == r.status && back.n_tensors == r.n_tensors && back.n_layers == r.n_layers);
    CHECK_NEAR(back.score, r.score, 1e-12);
    CHECK_NEAR(back.amplification, r.amplification, 1e-9 * r.amplification);
    CHECK(strcmp(back.reason, r.reason) == 0);
    dg_compat_report_free(&back);
    cJSON_Delete(p);
    /* each corruption is refused with a message naming the field */
    static const struct {
        const char *from, *to, *msg;
    } bad[] = {
        {"\"layer\":0,", "\"layer\":99,", "layer"},
        {"\"kind\":\"k_norm\"", "\"kind\":\"bogus\"", "kind"},
        {"\"kind\":\"k_norm\"", "\"kind\":\"norm\"", "kind"},
        {"\"ratio\":96.5", "\"ratio\":-1", "ratio"},
        {"\"layers_total\":8", "\"layers_total\":1e9", "layers_total"},
        {"\"gemma_norm\":false", "\"gemma_norm\":0", "gemma_norm"},
        {"\"elements\":32", "\"elements\":\"32\"", "elements"},
        {"\"nonfinite\":false", "\"nonfinite\":null", "nonfinite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *at = strstr(text, bad[i].from);
        CHECK_MSG(at != NULL, "fixture text lacks %s", bad[i].from);
        if (!at)
            continue;
        char buf[1 << 16];
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - text), text, bad[i].to, at + strlen(bad[i].from));
        cJSON *q = cJSON_Parse(buf);
        CHECK(q != NULL);
        dg_status st = dg_compat_report_from_json("cache.json", q, &back);
        CHECK_MSG(st == DG_E_FORMAT && strstr(dg_last_error(), bad[i].msg) && strstr(dg_last_error(), "cache.json"),
                  "corruption %s -> %s: status %d, %s", bad[i].from, bad[i].to, st, dg_last_error());
        if (!st)
            dg_compat_report_free(&back);
        cJSON_Delete(q);
    }
    /* a duplicated tensor entry */
    cJSON *q = cJSON_Parse(text);
    cJSON *ts = cJSON_GetObjectItem(q, "tensors");
    cJSON_AddItemToArray(ts, cJSON_Duplicate(cJSON_GetArrayItem(ts, 0), 1));
    CHECK(dg_compat_report_from_json("cache.json", q, &back) == DG_E_FORMAT);
    cJSON_Delete(q);
    CHECK(dg_compat_report_from_json("cache.json", NULL, &back) == DG_E_FORMAT);
    free(text);
    cJSON_Delete(o);
    dg_compat_report_free(&r);
}

/* ---- decision and plan ---- */

DG_TEST(compat_decision_per_status)
{
    static struct synth s;
    struct dg_compat_report r;
    struct dg_compat_decision d;
    synth_init(&s, 8, true, DG_NORM_RMS);
    CHECK_OK(dg_compat_check(&s.m, &r));
    dg_compat_decide(&r, false, &d);
    CHECK(d.allow_fused && !d.warn);
    dg_compat_report_free(&r);

    spike(&s, "layer.2.self_attn.k_norm", 17.0);
    CHECK_OK(dg_compat_check(&s.m, &r));
    dg_compat_decide(&r, false, &d);
    CHECK(d.allow_fused && d.warn && strstr(d.message, "WARNING") && strstr(d.message, "layer.2.self_attn.k_norm"));
    dg_compat_report_free(&r);

    spike(&s, "layer.2.self_attn.k_norm", 96.5);
    CHECK_OK(dg_compat_check(&s.m, &r));
    dg_compat_decide(&r, false, &d);
    CHECK(!d.allow_fused && strstr(d.message, "INCOMPATIBLE") && strstr(d.message, "layer.2.self_attn.k_norm") &&
          strstr(d.message, "--force-fused"));
    CHECK(strlen(d.message) < 256); /* it travels in the plan's 256-byte veto reason */
    dg_compat_decide(&r, true, &d);
    CHECK(d.allow_fused && d.warn && strstr(d.message, "--force-fused") && strstr(d.message, "testing"));
    dg_compat_report_free(&r);
}

DG_TEST(compat_plan_hook)
{
    static struct synth s;
    struct dg_kplan plan;
    char reason[256];
    synth_init(&s, 8, true, DG_NORM_RMS);
    dg_kplan_init(&plan);
    dg_compat_apply(&s.m, &plan, false);
    CHECK(plan.fused_check != NULL && plan.fused_check_ctx == &s.m);
    reason[0] = 0;
    CHECK(plan.fused_check(plan.fused_check_ctx, "qwen3-q4k-fused", reason, sizeof reason));
    spike(&s, "layer.4.self_attn.k_norm", 96.5);
    CHECK(!plan.fused_check(plan.fused_check_ctx, "qwen3-q4k-fused", reason, sizeof reason));
    CHECK_MSG(strstr(reason, "INCOMPATIBLE") && strstr(reason, "layer.4.self_attn.k_norm"), "reason: %s", reason);
    /* (--force-fused prints its warning once per process: it is checked in a child, below) */
    dg_compat_apply(&s.m, &plan, true);
    CHECK(plan.fused_check != NULL && plan.fused_check_ctx == &s.m);
}

/* Writes a minimal valid kernel path (one sampling step) to dir/name.json. */
static void write_path(const char *dir, const char *id, bool fused, const char *fallback_file, char *out,
                       size_t out_size)
{
    snprintf(out, out_size, "%s/%s.json", dir, id);
    FILE *f = fopen(out, "w");
    if (!f) {
        dg_test_fail(__FILE__, __LINE__, "cannot write %s", out);
        return;
    }
    fprintf(f, "{\"id\": \"%s\", \"fused\": %s,%s%s%s \"weightFormat\": \"f32\",\n"
               " \"preLayer\": [{\"op\": \"embed\", \"kernel\": \"embed\", \"weights\": {\"table\": \"embed_tokens\"},"
               " \"input\": \"token_ids\", \"output\": \"hidden_state\"}],\n"
               " \"decode\": {\"steps\": [{\"op\": \"rmsnorm\", \"kernel\": \"rmsnorm\","
               " \"weights\": {\"weight\": \"layer.{L}.input_layernorm\"}, \"input\": \"hidden_state\","
               " \"output\": \"norm_out\"}, {\"op\": \"matmul\", \"kernel\": \"matmul\","
               " \"weights\": {\"weight\": \"layer.{L}.mlp.down_proj\"}, \"input\": \"norm_out\","
               " \"output\": \"hidden_state\", \"constants\": {\"ACCUMULATE\": 1}}]},\n"
               " \"postLayer\": [{\"op\": \"lm_head\", \"kernel\": \"matmul\", \"weights\": {\"weight\": \"lm_head\"},"
               " \"input\": \"hidden_state\", \"output\": \"logits\"}],\n"
               " \"sampling\": [{\"op\": \"argmax\", \"kernel\": \"argmax\", \"input\": \"logits\","
               " \"output\": \"token_out\"}]}\n",
            id, fused ? "true" : "false", fallback_file ? " \"fallback\": \"" : "", fallback_file ? fallback_file : "",
            fallback_file ? "\"," : "");
    fclose(f);
}

/* A registry with the four kernels write_path uses, taken from the real one (descriptions shortened, so
 * the test does not depend on the rest of the registry). */
static bool make_registry(char *out, size_t out_size)
{
    char real[1200];
    snprintf(real, sizeof real, "%s/kernel-paths/registry.json", dg_kp_datadir());
    snprintf(out, out_size, "%s/registry.json", dg_test_tmpdir());
    char *text = dg_test_read_file(real, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *ks = cJSON_GetObjectItem(root, "kernels"), *keep = cJSON_CreateObject();
    static const char *const names[] = {"embed", "rmsnorm", "matmul", "argmax"};
    bool ok = ks != NULL;
    for (int i = 0; i < 4 && ok; i++) {
        cJSON *k = cJSON_GetObjectItem(ks, names[i]);
        ok = k != NULL;
        if (ok) {
            k = cJSON_Duplicate(k, 1);
            cJSON_ReplaceItemInObject(k, "description", cJSON_CreateString("test copy"));
            cJSON_AddItemToObject(keep, names[i], k);
        }
    }
    cJSON *reg = cJSON_CreateObject();
    cJSON_AddItemToObject(reg, "kernels", keep);
    char *json = cJSON_Print(reg);
    FILE *f = ok ? fopen(out, "w") : NULL;
    ok = f && fputs(json, f) >= 0;
    if (f)
        ok &= fclose(f) == 0;
    free(json);
    cJSON_Delete(reg);
    cJSON_Delete(root);
    if (!ok)
        dg_test_fail(__FILE__, __LINE__, "cannot make a test registry from %s", real);
    return ok;
}

/* Runs dg_kplan_load_path twice in a child with stderr captured; returns the chosen path id of the second
 * run (via a file) and the captured stderr. */
static bool load_twice(const struct dg_model *m, bool force, const char *fused_file, char *chosen, size_t csz,
                       char *err, size_t esz)
{
    const char *tmp = dg_test_tmpdir();
    char errf[1024], idf[1024];
    snprintf(errf, sizeof errf, "%s/stderr.%d.txt", tmp, (int)force);
    snprintf(idf, sizeof idf, "%s/chosen.%d.txt", tmp, (int)force);
    char regf[1200];
    if (!make_registry(regf, sizeof regf))
        return false;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(fd);
        struct dg_kp_registry reg;
        if (dg_kp_registry_load(regf, &reg)) {
            fprintf(stderr, "registry: %s\n", dg_last_error());
            _exit(3);
        }
        char id[DG_KP_VALUE] = "";
        for (int run = 0; run < 2; run++) {
            struct dg_kplan plan;
            dg_kplan_init(&plan);
            dg_kp_choice_set(&plan.kernel_path, fused_file, "cli");
            dg_compat_apply(m, &plan, force);
            struct dg_kpath p;
            if (dg_kplan_load_path(&plan, &reg, NULL, "qwen3", "f32", &p)) {
                fprintf(stderr, "load: %s\n", dg_last_error());
                _exit(4);
            }
            snprintf(id, sizeof id, "%s", p.id);
            dg_kpath_free(&p);
        }
        dg_kp_registry_free(&reg);
        FILE *f = fopen(idf, "w");
        fprintf(f, "%s", id);
        fclose(f);
        _exit(0);
    }
    int wst = 0;
    waitpid(pid, &wst, 0);
    char *e = dg_test_read_file(errf, NULL), *c = dg_test_read_file(idf, NULL);
    snprintf(err, esz, "%s", e ? e : "");
    snprintf(chosen, csz, "%s", c ? c : "");
    free(e);
    free(c);
    return WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

DG_TEST(compat_plan_falls_back_once)
{
    const char *tmp = dg_test_tmpdir();
    char std_file[1024], fused_file[1024], chosen[128], err[8192];
    write_path(tmp, "t-standard", false, NULL, std_file, sizeof std_file);
    write_path(tmp, "t-fused", true, std_file, fused_file, sizeof fused_file);
    static struct synth s;
    synth_init(&s, 8, true, DG_NORM_RMS);

    /* COMPATIBLE: the fused path, silently */
    CHECK_MSG(load_twice(&s.m, false, fused_file, chosen, sizeof chosen, err, sizeof err), "child: %s", err);
    CHECK_MSG(strcmp(chosen, "t-fused") == 0, "chose %s", chosen);
    CHECK_MSG(err[0] == 0, "stderr: %s", err);

    /* WARNING: the fused path, one warning for two loads */
    spike(&s, "layer.2.self_attn.k_norm", 17.0);
    CHECK_MSG(load_twice(&s.m, false, fused_file, chosen, sizeof chosen, err, sizeof err), "child: %s", err);
    CHECK(strcmp(chosen, "t-fused") == 0);
    CHECK_MSG(count(err, "warning:") == 1 && strstr(err, "WARNING") && strstr(err, "t-fused"), "stderr: %s", err);

    /* INCOMPATIBLE: the fallback, said once for two loads, naming the worst tensor */
    spike(&s, "layer.2.self_attn.k_norm", 96.5);
    CHECK_MSG(load_twice(&s.m, false, fused_file, chosen, sizeof chosen, err, sizeof err), "child: %s", err);
    CHECK_MSG(strcmp(chosen, "t-standard") == 0, "chose %s", chosen);
    CHECK_MSG(count(err, "not using fused path t-fused") == 1 && count(err, "warning:") == 1 &&
                  strstr(err, "INCOMPATIBLE") && strstr(err, "layer.2.self_attn.k_norm"),
              "stderr: %s", err);

    /* --force-fused: the fused path, with one warning that says so */
    CHECK_MSG(load_twice(&s.m, true, fused_file, chosen, sizeof chosen, err, sizeof err), "child: %s", err);
    CHECK(strcmp(chosen, "t-fused") == 0);
    CHECK_MSG(count(err, "warning:") == 1 && strstr(err, "--force-fused"), "stderr: %s", err);
}

/* ---- fixtures ---- */

static const char *const fixture_models[] = {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text",
                                             "phi3", "mixtral", "qwen3_moe", "gpt_oss", "phimoe"};

DG_TEST(compat_unmodified_fixtures_are_compatible)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    int checked = 0;
    for (size_t i = 0; i < sizeof fixture_models / sizeof fixture_models[0] + 3; i++) {
        char path[1024];
        size_t nm = sizeof fixture_models / sizeof fixture_models[0];
        static const char *const ggufs[] = {"sotu-6m.Q8_0.gguf", "sotu-6m.Q4_K_M.gguf", "tiny-llama-spm.Q4_K_M.gguf"};
        if (i < nm)
            snprintf(path, sizeof path, "%s/models/%s", fx, fixture_models[i]);
        else
            snprintf(path, sizeof path, "%s/gguf/%s", fx, ggufs[i - nm]);
        struct dg_model m;
        dg_status st = dg_model_open(path, &m);
        CHECK_MSG(st == DG_OK, "%s: %s", path, dg_last_error());
        if (st)
            continue;
        struct dg_compat_report r;
        CHECK_OK(dg_compat_check(&m, &r));
        CHECK_MSG(r.status == DG_COMPAT_COMPATIBLE && r.n_tensors > 0, "%s: %s (score %g): %s", path,
                  dg_compat_status_name(r.status), r.score, r.reason);
        /* every layer has at least its input norm, and the final norm is there */
        CHECK(r.n_layers == m.hp.n_layers && r.layers[0].tensor[DG_CN_INPUT] >= 0);
        CHECK(find_ct(&r, "norm") != NULL);
        if (m.hp.qk_norm)
            CHECK(r.layers[0].tensor[DG_CN_K_NORM] >= 0);
        if (m.hp.norm_style == DG_NORM_RMS_GEMMA)
            CHECK(r.gemma_norm);
        checked++;
        dg_compat_report_free(&r);
        dg_model_close(&m);
    }
    CHECK(checked == (int)(sizeof fixture_models / sizeof fixture_models[0]) + 3);
}

static bool copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = dg_test_read_file(from, &len);
    if (!data)
        return false;
    FILE *f = fopen(to, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len;
    if (f)
        ok &= fclose(f) == 0;
    free(data);
    return ok;
}

/* Copies the qwen3 fixture into tmp/<name> (mode 0755). */
static bool copy_qwen3(const char *name, char *dir, size_t dsz)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return false;
    snprintf(dir, dsz, "%s/%s", dg_test_tmpdir(), name);
    mkdir(dir, 0755);
    static const char *const files[] = {"config.json", "generation_config.json", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/models/qwen3/%s", fx, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        if (!copy_file(a, b)) {
            dg_test_fail(__FILE__, __LINE__, "cannot copy %s to %s", a, b);
            return false;
        }
        chmod(b, 0644);
    }
    return true;
}

/* Patches the largest |w| of layer 0's k_norm (BF16 in model.safetensors) to `ratio` times the median |w|.
 * Returns the ratio the file now holds (after bf16 rounding), 0 on failure. */
static double patch_k_norm(const char *dir, double ratio)
{
    char file[1200];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    size_t len;
    unsigned char *data = (unsigned char *)dg_test_read_file(file, &len);
    if (!data || len < 8)
        return 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    double got = 0;
    char *header = hlen < len ? strndup((char *)data + 8, hlen) : NULL;
    cJSON *h = header ? cJSON_Parse(header) : NULL;
    const cJSON *t = cJSON_GetObjectItem(h, "model.layers.0.self_attn.k_norm.weight");
    const cJSON *dt = cJSON_GetObjectItem(t, "dtype"), *off = cJSON_GetObjectItem(t, "data_offsets");
    if (cJSON_IsString(dt) && strcmp(dt->valuestring, "BF16") == 0 && cJSON_GetArraySize(off) == 2) {
        uint64_t a = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble, b = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        unsigned char *p = data + 8 + hlen + a;
        int n = (int)((b - a) / 2);
        float w[SYN_MAX_T * SYN_N];
        if (n > 0 && n <= SYN_MAX_T * SYN_N && 8 + hlen + b <= len) {
            int k = 0;
            for (int i = 0; i < n; i++) {
                uint16_t u = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
                w[i] = dg_bf16_to_f32(u);
                if (fabsf(w[i]) > fabsf(w[k]))
                    k = i;
            }
            double med = median_abs(w, n); /* raising the largest |w| leaves the median where it is */
            uint16_t u = dg_f32_to_bf16((float)(ratio * med));
            p[2 * k] = (unsigned char)(u & 0xff);
            p[2 * k + 1] = (unsigned char)(u >> 8);
            got = dg_bf16_to_f32(u) / med;
            FILE *f = fopen(file, "wb");
            if (!f || fwrite(data, 1, len, f) != len)
                got = 0;
            if (f)
                fclose(f);
        }
    }
    cJSON_Delete(h);
    free(header);
    free(data);
    return got;
}

DG_TEST(compat_patched_qwen3_k_norm_is_incompatible)
{
    char dir[1024];
    if (!copy_qwen3("qwen3-spiked", dir, sizeof dir))
        return;
    double want = patch_k_norm(dir, 96.5);
    CHECK(want > 0);
    /* bf16 keeps 8 significant bits: the stored spike is within 0.4% of 96.5x */
    CHECK_NEAR(want, 96.5, 96.5 * 4e-3);
    struct dg_model m;
    CHECK_OK(dg_model_open(dir, &m));
    if (!m.priv)
        return;
    struct dg_compat_report r;
    CHECK_OK(dg_compat_check(&m, &r));
    CHECK(r.status == DG_COMPAT_INCOMPATIBLE);
    CHECK(r.worst_tensor >= 0 && strcmp(r.tensors[r.worst_tensor].name, "layer.0.self_attn.k_norm") == 0);
    CHECK_NEAR(r.worst_ratio, want, want * 1e-6);
    CHECK(r.layers[0].extreme && r.n_extreme == 1);
    CHECK_MSG(strstr(r.reason, "layer.0.self_attn.k_norm") && strstr(r.reason, "96."), "reason: %s", r.reason);
    dg_compat_report_free(&r);
    /* and the plan falls back */
    struct dg_kplan plan;
    char reason[256] = "";
    dg_kplan_init(&plan);
    dg_compat_apply(&m, &plan, false);
    CHECK(!plan.fused_check(plan.fused_check_ctx, "qwen3-q4k-fused", reason, sizeof reason));
    CHECK(strstr(reason, "INCOMPATIBLE") && strstr(reason, "layer.0.self_attn.k_norm"));
    const char *tmp = dg_test_tmpdir();
    char std_file[1024], fused_file[1024], chosen[128], err[8192];
    write_path(tmp, "q-standard", false, NULL, std_file, sizeof std_file);
    write_path(tmp, "q-fused", true, std_file, fused_file, sizeof fused_file);
    CHECK_MSG(load_twice(&m, false, fused_file, chosen, sizeof chosen, err, sizeof err), "child: %s", err);
    CHECK_MSG(strcmp(chosen, "q-standard") == 0, "chose %s; stderr %s", chosen, err);
    CHECK(count(err, "not using fused path q-fused") == 1);
    dg_model_close(&m);
}

/* ---- cache ---- */

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static struct timespec mtime_of(const char *p)
{
    struct stat st;
    struct timespec z = {0, 0};
    return stat(p, &st) == 0 ? st.st_mtim : z;
}

DG_TEST(compat_cache_written_once_and_reused)
{
    char dir[1024], cache[1200];
    if (!copy_qwen3("qwen3-cache", dir, sizeof dir))
        return;
    snprintf(cache, sizeof cache, "%s/compat.json", dir);
    struct dg_model m;
    CHECK_OK(dg_model_open(dir, &m));
    if (!m.priv)
        return;
    struct dg_compat_report r1, r2;
    CHECK_OK(dg_compat_get(&m, &r1));
    CHECK(!r1.from_cache && strcmp(r1.cache_file, cache) == 0 && exists(cache) && strlen(r1.key) == 64);
    CHECK(r1.status == DG_COMPAT_COMPATIBLE);
    struct timespec t1 = mtime_of(cache);
    CHECK_OK(dg_compat_get(&m, &r2));
    struct timespec t2 = mtime_of(cache);
    CHECK(r2.from_cache && strcmp(r2.cache_file, cache) == 0);
    CHECK(t1.tv_sec == t2.tv_sec && t1.tv_nsec == t2.tv_nsec); /* not rewritten */
    CHECK(r2.status == r1.status && r2.score == r1.score && r2.n_tensors == r1.n_tensors);
    CHECK(strcmp(r2.reason, r1.reason) == 0 && strcmp(r2.model, dir) == 0);
    dg_compat_report_free(&r2);
    dg_model_close(&m);

    /* the model changes (new weights, new mtime): the key changes and the report is recomputed */
    CHECK(patch_k_norm(dir, 96.5) > 0);
    char st_file[1200];
    snprintf(st_file, sizeof st_file, "%s/model.safetensors", dir);
    struct timespec later[2] = {{time(NULL) + 5, 0}, {time(NULL) + 5, 0}};
    utimensat(AT_FDCWD, st_file, later, 0);
    CHECK_OK(dg_model_open(dir, &m));
    CHECK_OK(dg_compat_get(&m, &r2));
    CHECK(!r2.from_cache && r2.status == DG_COMPAT_INCOMPATIBLE && strcmp(r2.key, r1.key) != 0);
    dg_compat_report_free(&r2);
    /* the cache now holds the new report */
    CHECK_OK(dg_compat_get(&m, &r2));
    CHECK(r2.from_cache && r2.status == DG_COMPAT_INCOMPATIBLE);
    dg_compat_report_free(&r2);

    /* a damaged cache file is not trusted: recomputed and rewritten */
    FILE *f = fopen(cache, "w");
    fputs("{\"checker_version\": 1, \"key\": \"", f);
    fputs(r1.key, f); /* a key that no longer matches anyway; then a truncated body */
    fputs("\", \"tensors\": [", f);
    fclose(f);
    CHECK_OK(dg_compat_get(&m, &r2));
    CHECK(!r2.from_cache && r2.status == DG_COMPAT_INCOMPATIBLE);
    char *text = dg_test_read_file(cache, NULL);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    CHECK(o != NULL && cJSON_IsString(cJSON_GetObjectItem(o, "key")) &&
          strcmp(cJSON_GetObjectItem(o, "key")->valuestring, r2.key) == 0);
    cJSON_Delete(o);
    free(text);
    dg_compat_report_free(&r2);
    dg_compat_report_free(&r1);
    /* no temporary files left behind */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        CHECK_MSG(!strstr(e->d_name, ".tmp."), "left over: %s", e->d_name);
    if (d)
        closedir(d);
    dg_model_close(&m);
}

DG_TEST(compat_cache_read_only_folder_uses_xdg)
{
    char dir[1024], xdg[1200], want_dir[1300];
    if (!copy_qwen3("qwen3-ro", dir, sizeof dir))
        return;
    snprintf(xdg, sizeof xdg, "%s/xdg", dg_test_tmpdir());
    char *old = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("XDG_CACHE_HOME", xdg, 1);
    chmod(dir, 0555);
    struct dg_model m;
    CHECK_OK(dg_model_open(dir, &m));
    if (m.priv) {
        struct dg_compat_report r;
        CHECK_OK(dg_compat_get(&m, &r));
        snprintf(want_dir, sizeof want_dir, "%s/doppler-gl/compat/%s.json", xdg, r.key);
        CHECK_MSG(strcmp(r.cache_file, want_dir) == 0, "cached in %s", r.cache_file);
        CHECK(exists(want_dir) && !r.from_cache);
        char beside[1200];
        snprintf(beside, sizeof beside, "%s/compat.json", dir);
        CHECK(!exists(beside)); /* even root leaves a read-only folder alone */
        dg_compat_report_free(&r);
        CHECK_OK(dg_compat_get(&m, &r));
        CHECK(r.from_cache && strcmp(r.cache_file, want_dir) == 0);
        dg_compat_report_free(&r);
        dg_model_close(&m);
    }
    chmod(dir, 0755);
    if (old) {
        setenv("XDG_CACHE_HOME", old, 1);
        free(old);
    } else
        unsetenv("XDG_CACHE_HOME");
}

DG_TEST(compat_cache_gguf_beside_the_file)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char src[4096], link[1200], cache[1300];
    char rel[1024];
    snprintf(rel, sizeof rel, "%s/gguf/sotu-6m.Q4_K_M.gguf", fx);
    if (!realpath(rel, src)) { /* the link must not depend on the working directory */
        dg_test_fail(__FILE__, __LINE__, "%s: missing", rel);
        return;
    }
    snprintf(link, sizeof link, "%s/sotu.gguf", dg_test_tmpdir());
    CHECK(symlink(src, link) == 0); /* the file itself stays in the read-only fixtures */
    snprintf(cache, sizeof cache, "%s.compat.json", link);
    struct dg_model m;
    CHECK_OK(dg_model_open(link, &m));
    if (!m.priv)
        return;
    struct dg_compat_report r;
    CHECK_OK(dg_compat_get(&m, &r));
    CHECK(r.status == DG_COMPAT_COMPATIBLE && strcmp(r.cache_file, cache) == 0 && exists(cache));
    dg_compat_report_free(&r);
    CHECK_OK(dg_compat_get(&m, &r));
    CHECK(r.from_cache);
    dg_compat_report_free(&r);
    dg_model_close(&m);
    char k1[65], k2[65];
    CHECK_OK(dg_compat_cache_key(link, k1));
    CHECK_OK(dg_compat_cache_key(src, k2));
    CHECK(strcmp(k1, k2) != 0); /* the key includes the file name: sotu.gguf vs sotu-6m.Q4_K_M.gguf */
    CHECK(dg_compat_cache_key("/nonexistent/model", k1) == DG_E_IO && strstr(dg_last_error(), "/nonexistent/model"));
}
