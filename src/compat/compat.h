/* compat.h: the fused-kernel compatibility checker (issue 5). It scores a model's normalization weights
 * and vetoes fused kernel paths for models whose extreme norm weights would amplify the small numerical
 * differences of fused kernels into wrong output (the seeds' case: Qwen3-0.6B, K-norm weights up to 96.5×
 * the median, produced gibberish with fused RMSNorm+QKV kernels).
 *
 * Metrics (see man/doppler-gl.1, section check-compat):
 *   ratio r(t)   for every norm tensor t (layer.{L}.input_layernorm, post_attention_layernorm,
 *                pre/post_feedforward_layernorm, self_attn.q_norm / k_norm, and the final `norm`):
 *                max |w| / median |w| over its elements, where w is the effective weight (1 + w for
 *                Gemma-style norms). The median of an even count is the mean of the two middle values.
 *                A zero median or a non-finite element gives the cap `ratio_cap`.
 *   layer ratio  r(L) = the largest r(t) of layer L's norm tensors; the layer is "extreme" when
 *                r(L) > extreme_ratio. The final norm is reported but is not a layer.
 *   share        extreme layers / layers.
 *   amplification A = product over the layers and the final norm of g = max(1, r / extreme_ratio),
 *                capped at amp_cap. Why: a fused kernel differs from the reference by a small relative error
 *                per element; a norm multiplies element i by w_i, so the worst element's error grows by
 *                max|w| / median|w| relative to the typical element. Gains up to the extreme ratio are what
 *                ordinary models show and what the kernels' tolerances absorb, so only the excess counts;
 *                errors that pass through the residual stream compound layer after layer, so the worst case
 *                is the product. It is an estimate of a bound, not a measurement.
 * Score: three sub-scores, each a piecewise-linear map of one metric that is 1 at its "fine" knot, 0.8 at
 * its warning knot, 0.5 at its limit and 0 at its "zero" knot; the score is the smallest of the three
 * (one unsafe metric is enough to make fused kernels unsafe). Status: COMPATIBLE when score > 0.8, WARNING
 * for 0.5..0.8, INCOMPATIBLE below 0.5.
 *
 * Implementation: compat/compat.c (metrics, score, decision, plan hook), compat/cache.c (cache key and
 * cache files), compat/report.c (text and JSON). */
#ifndef DG_COMPAT_COMPAT_H
#define DG_COMPAT_COMPAT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "model/model.h"

struct dg_kplan;
typedef struct cJSON cJSON;

/* Every threshold of the checker, in ONE place (values in compat.c, documented in the man page). The
 * ratio thresholds and the status bands follow the seeds' Braidinfer compatibility guide: extreme > 10×,
 * warning 15-20×, safe < 20×, more than 50% extreme layers is unsafe, amplification < 10× is safe. */
struct dg_compat_limits {
    double extreme_ratio; /* 10: a layer whose worst ratio exceeds this is "extreme"; ratio sub-score 1 below */
    double warn_ratio;    /* 15: ratio sub-score 0.8 (WARNING from here) */
    double safe_ratio;    /* 20: ratio sub-score 0.5 (INCOMPATIBLE above) */
    double zero_ratio;    /* 40: ratio sub-score 0 */
    double share_warn;    /* 0.25: extreme-layer share with sub-score 0.8 (0 extreme layers: 1) */
    double share_max;     /* 0.5: share with sub-score 0.5 (more than half the layers: INCOMPATIBLE) */
    double amp_warn;      /* sqrt(10): amplification with sub-score 0.8 (1×: 1; log-linear between knots) */
    double amp_max;       /* 10: amplification with sub-score 0.5 (INCOMPATIBLE above) */
    double amp_zero;      /* 100: amplification with sub-score 0 */
    double amp_cap;       /* 1e6: the amplification reported is at most this */
    double ratio_cap;     /* 1e9: ratio reported for a zero median or non-finite weights */
    double score_compatible;   /* 0.8: score above this is COMPATIBLE */
    double score_incompatible; /* 0.5: score below this is INCOMPATIBLE */
};
extern const struct dg_compat_limits dg_compat_limits;

/* Bumped whenever the metrics or limits change, so cached reports of an older checker are recomputed. */
#define DG_COMPAT_VERSION 1

enum dg_compat_status { DG_COMPAT_COMPATIBLE = 0, DG_COMPAT_WARNING, DG_COMPAT_INCOMPATIBLE };
const char *dg_compat_status_name(enum dg_compat_status s); /* "COMPATIBLE", "WARNING", "INCOMPATIBLE" */

/* The kinds of norm tensors, in per-layer table order. */
enum dg_compat_norm {
    DG_CN_INPUT = 0, /* input_layernorm */
    DG_CN_POST_ATTN, /* post_attention_layernorm */
    DG_CN_PRE_FFN,   /* pre_feedforward_layernorm */
    DG_CN_POST_FFN,  /* post_feedforward_layernorm */
    DG_CN_Q_NORM,    /* self_attn.q_norm */
    DG_CN_K_NORM,    /* self_attn.k_norm */
    DG_CN_FINAL,     /* norm (layer -1) */
    DG_CN_COUNT
};

struct dg_compat_tensor {
    char name[DG_TENSOR_NAME_MAX];
    int layer; /* -1 for the final norm */
    enum dg_compat_norm kind;
    int64_t n;         /* elements */
    double max_abs;    /* max |w| (effective weight) */
    double median_abs; /* median |w| */
    double ratio;      /* max_abs / median_abs, or ratio_cap */
    int64_t argmax;    /* element holding max_abs */
    bool nonfinite;    /* some element is NaN or infinite */
};

struct dg_compat_layer {
    int layer;
    int tensor[DG_CN_COUNT]; /* index into report.tensors per kind, -1 when the model has none */
    double ratio;            /* worst ratio of the layer's tensors (1 when it has none) */
    int worst;               /* index of that tensor, -1 when none */
    bool extreme;            /* ratio > extreme_ratio */
    double gain;             /* max(1, ratio / extreme_ratio) */
};

struct dg_compat_report {
    char model[4096];  /* the model's path as opened */
    char arch[32];     /* dg_arch_name */
    bool gemma_norm;   /* ratios were taken of 1 + w */
    struct dg_compat_tensor *tensors;
    int n_tensors;
    struct dg_compat_layer *layers;
    int n_layers;
    int n_extreme;        /* extreme layers */
    double extreme_share; /* n_extreme / n_layers (0 without layers) */
    double worst_ratio;   /* over every norm tensor, the final norm included */
    int worst_tensor;     /* index, -1 when the model has no norm tensors */
    double amplification;
    double score_ratio, score_share, score_amp; /* the three sub-scores */
    double score;                               /* their minimum */
    enum dg_compat_status status;
    char reason[768]; /* plain words, naming the worst tensors */
    /* Filled by dg_compat_get: */
    char key[65];         /* cache key (hex SHA-256), "" when the model has no files (in-memory) */
    bool from_cache;      /* the report was read from a cache file */
    char cache_file[4200]; /* where it was read from or written to, "" when none */
};

/* Computes the report from the model's norm tensors (F32, F16, BF16 or quantized). No cache involved. */
dg_status dg_compat_check(const struct dg_model *m, struct dg_compat_report *out);
void dg_compat_report_free(struct dg_compat_report *r);

/* Sub-score of one metric value (exposed for tests and the man page's examples). */
double dg_compat_score_ratio(double ratio);
double dg_compat_score_share(double share);
double dg_compat_score_amp(double amplification);
enum dg_compat_status dg_compat_status_of(double score);

/* ---- cache (compat/cache.c) ----
 * The report is cached next to the model: <dir>/compat.json for a folder, <file>.compat.json for a GGUF
 * file. A folder that is read-only (no write permission bits, or not writable by this process: ../shared
 * is both) falls back to $XDG_CACHE_HOME/doppler-gl/compat/<key>.json. The key is the SHA-256 of the
 * checker version and the name, size and modification time of every file of the model (for a folder:
 * every regular file in it but compat.json and temporary files), so a changed model is re-checked.
 * Writes go to a temporary name and are renamed into place. */

/* The key for a model path (folder or file). */
dg_status dg_compat_cache_key(const char *model_path, char key[65]);
/* Where a model's cached report may be (for `doppler-gl cache`): beside it (folder/compat.json or
 * FILE.compat.json) and the per-user fallback for its current key ("" when the key or the cache folder
 * cannot be had). Neither file need exist. */
void dg_compat_cache_files(const char *model_path, char *beside, size_t bsz, char *fallback, size_t fsz);
/* The report for `m` from a cache whose key matches, else computed and written to the cache. A model
 * without a path (built in memory) is computed and not cached. A cache that cannot be written is only
 * logged (verbose): the report is still returned. */
dg_status dg_compat_get(const struct dg_model *m, struct dg_compat_report *out);

/* ---- reports (compat/report.c) ---- */

/* The report as a JSON object (per-tensor and per-layer data included). Caller frees with cJSON_Delete. */
cJSON *dg_compat_report_json(const struct dg_compat_report *r);
/* Parses what dg_compat_report_json wrote, validating every field (cache files are untrusted input). */
dg_status dg_compat_report_from_json(const char *what, const cJSON *o, struct dg_compat_report *out);
/* Human-readable summary; `verbose` adds the per-layer table. */
void dg_compat_report_text(FILE *out, const struct dg_compat_report *r, bool verbose);
/* Writes the report to `file` atomically: JSON when `json`, else the text (verbose form). */
dg_status dg_compat_export(const struct dg_compat_report *r, const char *file, bool json);
/* Writes `len` bytes to `file` through a temporary name in the same folder and a rename. */
dg_status dg_compat_write_atomic(const char *file, const void *data, size_t len);

/* ---- decision (compat/compat.c) ---- */

struct dg_compat_decision {
    bool allow_fused;  /* false: use the standard path */
    bool warn;         /* WARNING, or INCOMPATIBLE forced: say so */
    char message[1024]; /* what to tell the user ("" for a plain COMPATIBLE) */
};
/* What to do with a fused path for this report; pure (prints nothing). */
void dg_compat_decide(const struct dg_compat_report *r, bool force_fused, struct dg_compat_decision *d);

/* Makes `plan` consult the checker before it uses a fused path (a `fused` profile, q4kStrategy fused_q4k, or
 * any path marked "fused"): installs plan->fused_check, so the check runs (through the cache) only when
 * dg_kplan_load_path actually picks a fused path. INCOMPATIBLE: the plan falls back to the path's
 * `fallback` and dg_kplan_load_path says so once on stderr; WARNING: the fused path is used and a warning
 * is printed once; `force_fused` (--force-fused, for testing) uses fused kernels whatever the status, with
 * a warning when the model is not COMPATIBLE. A check that fails (unreadable weights) vetoes fused kernels.
 * `m` must outlive the plan's use. */
void dg_compat_apply(const struct dg_model *m, struct dg_kplan *plan, bool force_fused);

#endif
