/* tune.h: the workgroup auto-tuner (`doppler-gl tune`, the seeds' kernel-tuner) and its per-device cache.
 *
 * For each tunable decode step of a model's kernel path (the GEMVs `matmul` / `ffn_gate_up` of every
 * weight role, the norms `rmsnorm` / `add_rmsnorm`, `attention`), the tuner tries candidate knob sets
 * (entry such as main / row / split, WG_SIZE, ROWS_PER_WG, NSPLIT) on the model's real shapes:
 *   1. verification: the path cut after that step, on the model's first layer(s), runs one decode token
 *      with the candidate and with the baseline (what the plan chooses without the tuner); the step's
 *      output must match the baseline's to 1e-3 of its largest magnitude, or the candidate is rejected
 *      (so a wrong-but-fast variant can never win);
 *   2. timing: the full model with every step's verified candidate i, each tuned step dispatched as a
 *      registry clone "<kernel>@<role>" so the GPU timer queries (gl/profiler.c) separate them; after a
 *      prompt and warm-up tokens, the median GPU time per decode token over the repetitions, in two
 *      rounds (the second in reverse order) keeping the lower median.
 * A candidate wins only when it is at least 3% faster than the baseline (timing noise must not flip
 * choices), and the winners together must then beat the baseline in plain decode tokens per second
 * (wall clock, A B B A), else every step keeps its baseline: per-dispatch times taken one at a time need
 * not add up to pipelined decoding. Winners are cached in $XDG_CACHE_HOME/doppler-gl/tuner/<key>.json, the key a SHA-256 of the
 * GL renderer, the driver (GL version string), the model's shape signature, the kernel path id and the
 * tuned kernels' sources (registry.json and their GLSL: a kernel change makes old winners stale), and
 * plans pick them up automatically (dg_tune_apply_cached; priority in kpath.h struct dg_kplan).
 *
 * Implementation: tune/candidates.c (candidate sets per kernel and device), tune/tune.c (verification and
 * timing), tune/cache.c (signature, key, cache files, applying winners to a plan). */
#ifndef DG_TUNE_TUNE_H
#define DG_TUNE_TUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "gl/gl.h"
#include "kpath/kpath.h"
#include "model/model.h"

typedef struct cJSON cJSON;

#define DG_TUNE_FORMAT 1
#define DG_TUNE_MAX_KNOBS 6
#define DG_TUNE_MAX_CAND 24
#define DG_TUNE_MAX_TARGETS 32
/* Verification tolerance: max |candidate - baseline| over the step's output row, relative to the row's
 * largest |baseline|. Correct variants differ only in f32 summation order (about 1e-6 relative here);
 * a wrong one differs by O(1). */
#define DG_TUNE_VERIFY_TOL 1e-3
/* A candidate must beat the baseline's median by this fraction to win. */
#define DG_TUNE_MIN_GAIN 0.03

/* An entry and the knob values it runs with. */
struct dg_tune_knobset {
    char entry[DG_KP_NAME];
    struct dg_kp_const knobs[DG_TUNE_MAX_KNOBS];
    int n_knobs;
};

enum dg_tune_status { DG_TC_UNTESTED = 0, DG_TC_OK, DG_TC_WRONG, DG_TC_FAILED };
const char *dg_tune_status_name(enum dg_tune_status s); /* "untested", "ok", "wrong output", "failed" */

struct dg_tune_candidate {
    struct dg_tune_knobset ks;
    enum dg_tune_status status;
    char why[200];  /* failure or mismatch detail */
    double max_err; /* verification: relative error against the baseline */
    double us;      /* median GPU microseconds per decode token (all layers), 0 = not timed */
    bool injected;  /* added by dg_tune_options.extra (tests) */
};

struct dg_tune_target {
    char kernel[DG_KP_NAME]; /* registry kernel */
    char role[DG_KP_NAME];   /* step role (q_proj, lm_head, input_layernorm, attention...) */
    char shape[96];          /* what it computes: "q8_0 256x704", "dim 256", "heads 4/2 x 64" */
    int calls;               /* dispatches of it per decode token */
    struct dg_tune_candidate cand[DG_TUNE_MAX_CAND]; /* [0] is the baseline */
    int n_cand;
    int winner; /* index into cand */
};

struct dg_tune_result {
    char renderer[256], gl_version[256];
    char model[4096];
    char signature[65];   /* model shape signature (hex) */
    char shape_desc[256]; /* readable summary of it */
    char path_id[DG_KP_VALUE];
    char profile[DG_KP_VALUE];
    char timing_source[32];
    int prompt, reps;
    double seconds;
    /* End-to-end check of the winners against the baseline (plain decode tokens per second, A B B A);
     * reverted: they were not faster, so every step kept its baseline. */
    bool e2e_checked, e2e_reverted;
    double e2e_base_tok_s, e2e_tuned_tok_s;
    struct dg_tune_target targets[DG_TUNE_MAX_TARGETS];
    int n_targets;
    char file[4096]; /* where it was saved or read */
};

struct dg_tune_options {
    const char *kernels; /* comma-separated registry kernels to tune; NULL = all tunable */
    int prompt;          /* prompt tokens before the timed decode tokens (0 = 64 on a GPU, 16 in software) */
    int reps;            /* timed decode tokens per candidate (0 = 16 on a GPU, 4 in software) */
    bool progress;       /* one line per candidate on stderr */
    /* Tests: a candidate appended to every target of kernel `extra_kernel`; with extra_fast its measured
     * time is divided by 1e6, so it wins unless verification rejects it. */
    const struct dg_tune_knobset *extra;
    const char *extra_kernel;
    bool extra_fast;
    bool only_extra; /* tests: try only the baseline and the extra candidate (fewer program builds) */
    bool no_end_to_end; /* tests: skip the end-to-end check (it would see through extra_fast) */
};

/* The kernels the tuner knows how to vary. */
bool dg_tune_kernel_tunable(const char *kernel);
/* Fills the candidates of a target after cand[0] (the baseline, already set) for this device. */
void dg_tune_candidates(const struct dg_tune_target *t, const struct dg_gl_caps *caps, struct dg_tune_target *out);

/* Runs the tuner for the model under `plan` (as built for a normal run; cached winners in it are ignored)
 * and fills `out` (not saved). */
dg_status dg_tune_run(struct dg_gl *gl, const struct dg_model *m, const struct dg_kplan *plan,
                      const struct dg_kp_registry *reg, const struct dg_kpath *path, const struct dg_tune_options *o,
                      struct dg_tune_result *out);

/* ---- cache (tune/cache.c) ---- */

/* Shape signature of a model: SHA-256 over its architecture, hyperparameters and every tensor's name,
 * dtype and dimensions (hex, 64 characters); `desc` gets a readable summary. */
void dg_tune_model_signature(const struct dg_model *m, char sig[65], char *desc, size_t desc_size);
/* The tuner's folder: $DOPPLER_GL_TUNER_DIR, else $XDG_CACHE_HOME/doppler-gl/tuner (false: none). */
bool dg_tune_dir(char *out, size_t n);
/* The cache file for (device, model, kernel path); false when there is no cache folder. */
bool dg_tune_cache_file(const struct dg_gl_caps *caps, const struct dg_model *m, const char *path_id, char *out,
                        size_t out_size);
/* Writes the result to its cache file (temporary name, then rename) and records the file in r->file. */
dg_status dg_tune_save(struct dg_tune_result *r, const struct dg_gl_caps *caps, const struct dg_model *m);
/* Reads a cache file; errors name the file and field. Each target's winner is cand[0] (winner = 0), the
 * candidates it recorded follow it. */
dg_status dg_tune_load(const char *file, struct dg_tune_result *out);
/* Adds the cached winners for this device, model and the plan's chosen path to the plan (nothing when the
 * plan has "tuner": false or none are cached; an unreadable cache file is a warning, not an error). */
void dg_tune_apply_cached(struct dg_kplan *plan, const struct dg_gl_caps *caps, const struct dg_model *m,
                          const char *path_id);
/* True when `file` is a tuner cache file written by doppler-gl (format marker present); `sig` (may be
 * NULL) receives its model signature. */
bool dg_tune_file_is_ours(const char *file, char sig[65]);
/* JSON of a result (as saved). */
cJSON *dg_tune_result_json(const struct dg_tune_result *r);

#endif
