/* conf_util.h: shared helpers of the conformance tests: the registry loaded once, running a fixture
 * model through a kernel path in the two ways the issue asks for, and comparing logits. */
#ifndef DG_TESTS_CONF_UTIL_H
#define DG_TESTS_CONF_UTIL_H

#include "gl/gl.h"
#include "kpath/kpath.h"
#include "model/model.h"

#define CONF_MAX_TOK 64

struct conf_ref {
    int tokens[CONF_MAX_TOK];
    int n_tokens, prompt_len, vocab;
    float *logits; /* [n_tokens][vocab], NULL when the fixture has none */
};

/* Kernel profile conf_run applies (NULL: chosen from the device, as the CLI does). */
extern const char *conf_profile;
/* A kernelPlan object conf_run applies after the profile (NULL: none). */
extern const char *conf_plan_json;
/* Executor batch size (and so the activation slots' size) conf_run uses; 0: 64 (all fixture tokens). */
extern int conf_max_batch;
const struct dg_kp_registry *conf_registry(void);
/* Reads reference.json (tokens, prompt_len) and logits.f32 of a fixture folder. */
bool conf_ref_load(const char *dir, int vocab, struct conf_ref *r);
void conf_ref_free(struct conf_ref *r);
/* Runs `m` through path `path_id` (a built-in id or file): mode 0 = prefill of prompt_len tokens then one
 * decode per remaining token, mode 1 = one prefill of all tokens. Writes [n][vocab] logits. */
dg_status conf_run(struct dg_gl *gl, const struct dg_model *m, const char *path_id, const struct conf_ref *r, int mode,
                   float *logits);
/* Runs `m` under kernel profile `profile` (and kernelPlan `plan_json` after it, when not NULL) through the
 * built-in path for the file's weight format, as the CLI picks it: a prefill of `prompt` tokens, then one
 * decode per token up to `tokens`, on the ids (i * 977 + 13) % vocab (any ids: runs compared with each other
 * see the same ones). Writes [tokens][vocab] logits and the executor's counters to *stats. opt: the executor
 * options (ctx, max_batch, gguf_blocks). */
struct dg_exec_options;
struct dg_exec_stats;
dg_status conf_run_ids(struct dg_gl *gl, const struct dg_model *m, const char *profile, const char *plan_json,
                       const struct dg_exec_options *opt, int prompt, int tokens, float *logits,
                       struct dg_exec_stats *stats);
/* Prints the per-layer hidden-state error against hidden.f32 (to find where a path drifts). */
void conf_hidden_report(struct dg_gl *gl, const struct dg_model *m, const char *dir, const char *path_id,
                        const struct conf_ref *r);
/* Worst error over rows: max_i |a - b| / max(1, max_i |b|) per row; returns the max over rows and its row. */
double conf_worst(const float *a, const float *b, int rows, int vocab, int *worst_row);

#endif
