/* conf_util.c: see conf_util.h. */
#include "conf_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/plan_opts.h"
#include "pipe/exec.h"
#include "test.h"

const char *conf_profile;
const char *conf_plan_json;
int conf_max_batch;
static struct dg_kp_registry reg;
static bool reg_loaded;

static void free_reg(void) { dg_kp_registry_free(&reg); }

const struct dg_kp_registry *conf_registry(void)
{
    if (!reg_loaded) {
        if (dg_kp_registry_load_default(&reg) != DG_OK)
            return NULL;
        reg_loaded = true;
        atexit(free_reg);
    }
    return &reg;
}

dg_status conf_run_ids(struct dg_gl *gl, const struct dg_model *m, const char *profile, const char *plan_json,
                       const struct dg_exec_options *opt, int prompt, int tokens, float *logits,
                       struct dg_exec_stats *stats)
{
    const struct dg_kp_registry *rg = conf_registry();
    if (!rg)
        return DG_E_IO;
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_kp_caps kc = {c->subgroup, c->is_software, c->max_invocations, c->max_shared_memory};
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    struct dg_kpath p;
    dg_status st = dg_kplan_apply_profile(&plan, profile);
    if (!st && plan_json)
        st = dg_kplan_apply_json(&plan, plan_json, "test");
    if (!st)
        st = dg_kplan_load_path(&plan, rg, &kc, dg_arch_name(m->hp.arch), dg_cli_model_weight_format(m), &p);
    if (st)
        return st;
    struct dg_exec *ex = NULL;
    st = dg_exec_create(gl, m, &plan, rg, &p, opt, &ex);
    int32_t *ids = malloc((size_t)tokens * sizeof *ids);
    if (!st && !ids)
        st = DG_E_NOMEM;
    for (int i = 0; ids && i < tokens; i++)
        ids[i] = (int32_t)((i * 977 + 13) % m->hp.vocab);
    size_t V = (size_t)m->hp.vocab;
    if (!st)
        st = dg_exec_forward(ex, ids, prompt, logits, NULL);
    for (int i = prompt; !st && i < tokens; i++)
        st = dg_exec_forward(ex, ids + i, 1, logits + (size_t)i * V, NULL);
    if (!st)
        dg_exec_stats(ex, stats);
    free(ids);
    dg_exec_destroy(ex);
    dg_kpath_free(&p);
    return st;
}

bool conf_ref_load(const char *dir, int vocab, struct conf_ref *r)
{
    memset(r, 0, sizeof *r);
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = dg_test_read_file(path, NULL);
    if (!text)
        return false;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return false;
    const cJSON *toks = cJSON_GetObjectItem(root, "tokens"), *it;
    cJSON_ArrayForEach(it, toks)
    {
        if (r->n_tokens < CONF_MAX_TOK)
            r->tokens[r->n_tokens++] = it->valueint;
    }
    r->prompt_len = cJSON_GetObjectItem(root, "prompt_len") ? cJSON_GetObjectItem(root, "prompt_len")->valueint : 1;
    cJSON_Delete(root);
    r->vocab = vocab;
    snprintf(path, sizeof path, "%s/logits.f32", dir);
    size_t len = 0;
    char *lg = dg_test_read_file(path, &len);
    if (lg && len == (size_t)r->n_tokens * (size_t)vocab * 4) {
        r->logits = (float *)lg;
    } else {
        free(lg);
    }
    return r->n_tokens > 0;
}

void conf_ref_free(struct conf_ref *r)
{
    free(r->logits);
    r->logits = NULL;
}

static dg_status conf_run_h(struct dg_gl *gl, const struct dg_model *m, const char *path_id, const struct conf_ref *r,
                            int mode, float *logits, float *hidden);

dg_status conf_run(struct dg_gl *gl, const struct dg_model *m, const char *path_id, const struct conf_ref *r, int mode,
                   float *logits)
{
    return conf_run_h(gl, m, path_id, r, mode, logits, NULL);
}

void conf_hidden_report(struct dg_gl *gl, const struct dg_model *m, const char *dir, const char *path_id,
                        const struct conf_ref *r)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/hidden.f32", dir);
    size_t len = 0;
    float *ref = (float *)dg_test_read_file(path, &len);
    size_t H = (size_t)m->hp.hidden, n = (size_t)r->n_tokens, nl = (size_t)m->hp.n_layers + 1;
    float *hid = calloc(nl * n * H, 4), *lg = malloc(n * (size_t)m->hp.vocab * 4);
    if (ref && len == nl * n * H * 4 && hid && lg && conf_run_h(gl, m, path_id, r, 1, lg, hid) == DG_OK) {
        for (size_t l = 0; l < nl; l++) {
            int row;
            double w = conf_worst(hid + l * n * H, ref + l * n * H, (int)n, (int)H, &row);
            printf("      hidden[%zu] worst relative error %.2e (position %d); per position:", l, w, row);
            for (size_t t = 0; t < n && t < 12; t++)
                printf(" %.1e", conf_worst(hid + (l * n + t) * H, ref + (l * n + t) * H, 1, (int)H, NULL));
            printf("\n");
        }
    }
    free(ref);
    free(hid);
    free(lg);
}

static dg_status conf_run_h(struct dg_gl *gl, const struct dg_model *m, const char *path_id, const struct conf_ref *r,
                            int mode, float *logits, float *hidden)
{
    const struct dg_kp_registry *rg = conf_registry();
    if (!rg)
        return DG_E_IO; /* message left by the registry loader */
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_kp_caps kc = {c->subgroup, c->is_software, c->max_invocations, c->max_shared_memory};
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    dg_status st = dg_kplan_apply_profile(&plan, conf_profile ? conf_profile : dg_kplan_auto_profile(&kc));
    if (!st && conf_plan_json)
        st = dg_kplan_apply_json(&plan, conf_plan_json, "test");
    if (st)
        return st;
    dg_kp_choice_set(&plan.kernel_path, path_id, "test");
    struct dg_kpath p;
    st = dg_kplan_load_path(&plan, rg, &kc, dg_arch_name(m->hp.arch), "f32", &p);
    if (st)
        return st;
    struct dg_exec_options opt = {.ctx = 64, .max_batch = conf_max_batch > 0 ? conf_max_batch : 64,
                                  .bf16_buffers = true};
    struct dg_exec *ex = NULL;
    st = dg_exec_create(gl, m, &plan, rg, &p, &opt, &ex);
    if (!st) {
        int32_t ids[CONF_MAX_TOK];
        for (int i = 0; i < r->n_tokens; i++)
            ids[i] = r->tokens[i];
        size_t V = (size_t)m->hp.vocab;
        if (mode == 1) {
            st = dg_exec_forward(ex, ids, r->n_tokens, logits, hidden);
        } else {
            st = dg_exec_forward(ex, ids, r->prompt_len, logits, NULL);
            for (int i = r->prompt_len; !st && i < r->n_tokens; i++)
                st = dg_exec_forward(ex, ids + i, 1, logits + (size_t)i * V, NULL);
        }
    }
    dg_exec_destroy(ex);
    dg_kpath_free(&p);
    return st;
}

double conf_worst(const float *a, const float *b, int rows, int vocab, int *worst_row)
{
    double worst = 0;
    if (worst_row)
        *worst_row = 0;
    for (int i = 0; i < rows; i++) {
        double mx = 1, err = 0;
        for (int j = 0; j < vocab; j++)
            if (fabs(b[(size_t)i * vocab + j]) > mx)
                mx = fabs(b[(size_t)i * vocab + j]);
        for (int j = 0; j < vocab; j++) {
            double d = fabs((double)a[(size_t)i * vocab + j] - b[(size_t)i * vocab + j]);
            if (!(d <= err)) /* NaN counts as worst */
                err = isnan(d) ? INFINITY : d;
        }
        if (err / mx > worst || isnan(err)) {
            worst = err / mx;
            if (worst_row)
                *worst_row = i;
        }
    }
    return worst;
}
