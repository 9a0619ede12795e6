/* tune.c: the tuner's measurement (see tune.h for the method): finding the tunable decode steps of a
 * plan, verifying each candidate against the baseline on a cut path over the first layer(s), and timing
 * the verified candidates on the full model with registry clones so each step's GPU time is separate. */
/* snprintf truncation into fixed name fields is intended (lengths are validated where it matters). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "pipe/exec.h"
#include "tune/tune.h"

const char *dg_tune_status_name(enum dg_tune_status s)
{
    switch (s) {
    case DG_TC_OK: return "ok";
    case DG_TC_WRONG: return "wrong output";
    case DG_TC_FAILED: return "failed";
    default: return "untested";
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The knobs the tuner varies per kernel (others keep what the plan gives them). */
static const char *const *tuned_knobs(const char *kernel)
{
    static const char *const mm[] = {"WG_SIZE", "ROWS_PER_WG", NULL}, *const nm[] = {"WG_SIZE", NULL},
                             *const at[] = {"WG_SIZE", "NSPLIT", NULL};
    if (!strcmp(kernel, "matmul") || !strcmp(kernel, "ffn_gate_up"))
        return mm;
    if (!strcmp(kernel, "attention"))
        return at;
    return nm;
}

static bool in_list(const char *list, const char *name)
{
    if (!list)
        return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == n && !strncmp(p, name, n))
            return true;
        p += l + (p[l] == ',');
    }
    return false;
}

/* The base registry kernel of a step kernel (clones are "base@role"). */
static bool is_kernel(const char *step_kernel, const char *base)
{
    size_t n = strlen(base);
    return !strncmp(step_kernel, base, n) && (step_kernel[n] == 0 || step_kernel[n] == '@');
}

/* The value a resolved step runs knob `name` with. */
static const char *knob_value(const struct dg_kp_step *s, const struct dg_kp_kernel *k, const char *name)
{
    for (int c = 0; c < s->n_consts; c++)
        if (!strcmp(s->consts[c].name, name))
            return s->consts[c].value;
    const struct dg_kp_knob *kn = dg_kp_knob_find(k, name);
    return kn ? kn->def : NULL;
}

/* True when the path's own step (not the plan) sets one of the knobs the tuner varies: it is pinned. */
static bool path_pins(const struct dg_kpath *p, const char *kernel, const char *role)
{
    const char *const *kn = tuned_knobs(kernel);
    for (int sec = 0; sec < DG_KS_COUNT; sec++)
        for (int i = 0; i < p->sec[sec].n_steps; i++) {
            const struct dg_kp_step *s = &p->sec[sec].steps[i];
            if (strcmp(s->kernel, kernel) || strcmp(s->role, role))
                continue;
            for (int c = 0; c < s->n_consts; c++)
                for (int j = 0; kn[j]; j++)
                    if (!strcmp(s->consts[c].name, kn[j]))
                        return true;
        }
    return false;
}

static void describe_shape(const struct dg_model *m, const struct dg_kpath *p, const struct dg_kp_step *s,
                           struct dg_tune_target *t)
{
    const struct dg_hparams *hp = &m->hp;
    if (!strcmp(s->kernel, "attention")) {
        snprintf(t->shape, sizeof t->shape, "heads %d/%d x %d", hp->n_heads, hp->n_kv_heads, hp->head_dim);
        return;
    }
    const struct dg_tensor *w = NULL;
    for (int i = 0; i < s->n_weights && !w; i++) {
        char alts[128];
        snprintf(alts, sizeof alts, "%s", s->weights[i].tmpl);
        char *save = NULL;
        for (char *a = strtok_r(alts, "|", &save); a && !w; a = strtok_r(NULL, "|", &save)) {
            char name[DG_TENSOR_NAME_MAX];
            if (dg_kpath_weight_name(a, 0, name, sizeof name) == DG_OK)
                w = dg_model_find(m, name);
        }
    }
    if (!w) {
        snprintf(t->shape, sizeof t->shape, "?");
        return;
    }
    if (w->ndim >= 2) {
        enum dg_dtype gd = dg_exec_gpu_dtype(p->weight_format, w->dtype, true);
        snprintf(t->shape, sizeof t->shape, "%s %lldx%lld", dg_dtype_info(gd)->name, (long long)w->shape[0],
                 (long long)w->shape[1]);
    } else {
        snprintf(t->shape, sizeof t->shape, "dim %lld", (long long)dg_tensor_nelems(w));
    }
}

/* True when a per-layer step with this layer selector runs on some layer of the model. */
static bool runs_somewhere(const struct dg_hparams *hp, enum dg_kp_layers sel)
{
    for (int L = 0; L < hp->n_layers; L++) {
        bool moe = hp->n_experts > 0 && hp->layer_moe[L];
        if (sel == DG_KL_ALL || (sel == DG_KL_SLIDING && hp->layer_sliding[L]) ||
            (sel == DG_KL_FULL && !hp->layer_sliding[L]) || (sel == DG_KL_DENSE && !moe) || (sel == DG_KL_MOE && moe))
            return true;
    }
    return false;
}

/* ---- paths, plans and registries for the measurement ---- */

static dg_status path_copy(const struct dg_kpath *src, struct dg_kpath *dst)
{
    *dst = *src;
    for (int s = 0; s < DG_KS_COUNT; s++) {
        dst->sec[s].steps = NULL;
        size_t n = (size_t)src->sec[s].n_steps;
        dst->sec[s].steps = malloc((n ? n : 1) * sizeof *dst->sec[s].steps);
        if (!dst->sec[s].steps) {
            dg_kpath_free(dst);
            return dg_fail(DG_E_NOMEM, "tune: out of memory");
        }
        if (n)
            memcpy(dst->sec[s].steps, src->sec[s].steps, n * sizeof *dst->sec[s].steps);
    }
    return DG_OK;
}

/* The decode-phase position of a target's last step: (section, index) in pre/decode/post order. */
static bool last_step(const struct dg_kpath *p, const struct dg_tune_target *t, int *sec, int *idx)
{
    static const enum dg_kp_section_id order[] = {DG_KS_PRE, DG_KS_DECODE, DG_KS_POST};
    bool found = false;
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < p->sec[order[o]].n_steps; i++) {
            const struct dg_kp_step *s = &p->sec[order[o]].steps[i];
            if (is_kernel(s->kernel, t->kernel) && !strcmp(s->role, t->role)) {
                *sec = order[o];
                *idx = i;
                found = true;
            }
        }
    return found;
}

static void set_tuned(struct dg_kplan *plan, const char *kernel, const char *role, const struct dg_tune_knobset *ks)
{
    if (plan->n_tuned >= DG_KP_MAX_TUNED)
        return;
    struct dg_kp_tuned *t = &plan->tuned[plan->n_tuned++];
    memset(t, 0, sizeof *t);
    snprintf(t->kernel, sizeof t->kernel, "%s", kernel);
    snprintf(t->role, sizeof t->role, "%s", role);
    snprintf(t->entry, sizeof t->entry, "%s", ks->entry);
    for (int i = 0; i < ks->n_knobs && i < (int)(sizeof t->knobs / sizeof t->knobs[0]); i++)
        t->knobs[t->n_knobs++] = ks->knobs[i];
}

/* Deterministic prompt ids. */
static void prompt_ids(int32_t *ids, int n, int vocab)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)vocab);
    }
}

struct ctx {
    struct dg_gl *gl;
    const struct dg_model *m;
    const struct dg_kplan *plan; /* baseline plan: tuner off */
    const struct dg_kp_registry *reg;
    const struct dg_kpath *path;
    const struct dg_tune_options *o;
    int prompt, reps;
    int32_t *ids;
};

/* Runs the prompt and one decode token through `ex`, reads row 0 of slot `slot` (width floats). */
static dg_status run_verify(struct ctx *c, struct dg_exec *ex, const char *slot, float **out, int *width)
{
    dg_status st = dg_exec_forward(ex, c->ids, c->prompt, NULL, NULL);
    if (!st)
        st = dg_exec_forward(ex, c->ids + c->prompt, 1, NULL, NULL);
    if (st)
        return st;
    const struct dg_buffer *b = dg_exec_slot(ex, slot);
    if (!b)
        return dg_fail(DG_E_INTERNAL, "tune: slot %s not allocated", slot);
    /* row 0 only: the buffer itself comes from a pool size class and may hold more than the slot's
     * max_batch rows, so its size does not give the row width */
    int64_t w64 = dg_exec_slot_width(ex, slot);
    if (w64 <= 0 || (uint64_t)w64 * 4 > b->size)
        return dg_fail(DG_E_INTERNAL, "tune: slot %s is empty", slot);
    int w = (int)w64;
    float *v = malloc((size_t)w * 4);
    if (!v)
        return dg_fail(DG_E_NOMEM, "tune: out of memory");
    glMemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT | GL_SHADER_STORAGE_BARRIER_BIT);
    if ((st = dg_buffer_download(c->gl, (struct dg_buffer *)b, 0, (uint64_t)w * 4, v))) {
        free(v);
        return st;
    }
    *out = v;
    *width = w;
    return DG_OK;
}

/* A candidate the plan would not apply (a knob the path sets itself, an entry the device lacks) would
 * measure as the baseline: refuse it instead. */
static dg_status applies(const struct dg_kplan *plan, const struct dg_kp_registry *reg, const struct dg_kpath *p,
                         const struct dg_tune_target *t)
{
    struct dg_kp_resolved r;
    dg_status st = dg_kplan_resolve(plan, reg, NULL, p, false, &r);
    if (st)
        return st;
    bool found = false;
    for (int s = 0; s < 4 && !found; s++)
        for (int i = 0; i < r.sec[s].n_steps && !found; i++)
            found = is_kernel(r.sec[s].steps[i].kernel, t->kernel) && !strcmp(r.sec[s].steps[i].role, t->role) &&
                    !strcmp(r.sec[s].steps[i].entry_src, "tuner");
    dg_kp_resolved_free(&r);
    return found ? DG_OK
                 : dg_fail(DG_E_UNSUPPORTED, "the plan does not apply this candidate to %s (the path sets one of its "
                           "knobs, or the entry is not available)", t->role);
}

/* Verifies every candidate of target `t` (cand[0] is the reference) on the path cut after its last step. */
static void verify_target(struct ctx *c, struct dg_tune_target *t)
{
    int sec = 0, idx = 0;
    if (!last_step(c->path, t, &sec, &idx)) {
        for (int i = 0; i < t->n_cand; i++)
            t->cand[i].status = DG_TC_FAILED;
        return;
    }
    struct dg_kpath cut;
    if (path_copy(c->path, &cut) != DG_OK) {
        for (int i = 0; i < t->n_cand; i++)
            t->cand[i].status = DG_TC_FAILED;
        return;
    }
    const struct dg_kp_step *last = &c->path->sec[sec].steps[idx];
    const char *slot = last->n_output ? last->output[0] : "hidden_state";
    if (sec == DG_KS_PRE) {
        cut.sec[DG_KS_PRE].n_steps = idx + 1;
        cut.sec[DG_KS_DECODE].n_steps = 0;
        cut.sec[DG_KS_POST].n_steps = 0;
    } else if (sec == DG_KS_DECODE) {
        cut.sec[DG_KS_DECODE].n_steps = idx + 1;
        cut.sec[DG_KS_POST].n_steps = 0;
    } else {
        cut.sec[DG_KS_POST].n_steps = idx + 1;
    }
    cut.sec[DG_KS_SAMPLING].n_steps = 0;
    /* The first layers, up to the first one of another kind (sliding/full, dense/MoE), so every kernel
     * variant a layer kind compiles is checked; one layer for uniform models. */
    struct dg_model vm = *c->m;
    const struct dg_hparams *hp = &c->m->hp;
    int nl = 1;
    while (nl < hp->n_layers && hp->layer_sliding[nl] == hp->layer_sliding[0] && hp->layer_moe[nl] == hp->layer_moe[0])
        nl++;
    vm.hp.n_layers = nl < hp->n_layers ? nl + 1 : 1;
    struct dg_exec_options eo = {.ctx = c->prompt + 2, .max_batch = c->prompt < 256 ? c->prompt : 256};
    float *ref = NULL;
    int width = 0;
    double scale = 0;
    for (int i = 0; i < t->n_cand; i++) {
        struct dg_tune_candidate *cd = &t->cand[i];
        struct dg_kplan plan = *c->plan;
        plan.n_tuned = 0;
        dg_kp_choice_set(&plan.tuner, "true", "tune");
        set_tuned(&plan, t->kernel, t->role, &cd->ks);
        struct dg_exec *ex = NULL;
        float *out = NULL;
        int w = 0;
        dg_status st = applies(&plan, c->reg, &cut, t);
        if (!st)
            st = dg_exec_create(c->gl, &vm, &plan, c->reg, &cut, &eo, &ex);
        if (!st)
            st = run_verify(c, ex, slot, &out, &w);
        dg_exec_destroy(ex);
        if (st) {
            cd->status = DG_TC_FAILED;
            snprintf(cd->why, sizeof cd->why, "%s", dg_last_error());
            dg_clear_error();
            if (i == 0)
                break;
            continue;
        }
        if (i == 0) {
            ref = out;
            width = w;
            bool finite = true;
            for (int j = 0; j < w; j++) {
                finite &= isfinite(ref[j]) != 0;
                scale = fmax(scale, fabs(ref[j]));
            }
            cd->status = finite ? DG_TC_OK : DG_TC_FAILED;
            if (!finite) {
                snprintf(cd->why, sizeof cd->why, "the baseline's output is not finite: nothing to verify against");
                break;
            }
            continue;
        }
        double err = 0;
        bool finite = w == width;
        for (int j = 0; finite && j < w; j++) {
            if (!isfinite(out[j]))
                finite = false;
            else
                err = fmax(err, fabs((double)out[j] - ref[j]));
        }
        free(out);
        cd->max_err = scale > 0 ? err / scale : err;
        if (!finite || cd->max_err > DG_TUNE_VERIFY_TOL) {
            cd->status = DG_TC_WRONG;
            snprintf(cd->why, sizeof cd->why, finite ? "output differs from the baseline by %.3g of its largest value"
                                                     : "output is not finite (or of another size)",
                     cd->max_err);
        } else {
            cd->status = DG_TC_OK;
        }
    }
    if (t->cand[0].status != DG_TC_OK)
        for (int i = 1; i < t->n_cand; i++)
            if (t->cand[i].status == DG_TC_UNTESTED) {
                t->cand[i].status = DG_TC_FAILED;
                snprintf(t->cand[i].why, sizeof t->cand[i].why, "the baseline could not be run");
            }
    free(ref);
    dg_kpath_free(&cut);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times candidate index `ci` of every target in one full-model executor. */
static dg_status time_index(struct ctx *c, struct dg_tune_result *r, int ci, const struct dg_kp_registry *reg2,
                            const struct dg_kpath *path2, const char clone[][DG_KP_NAME])
{
    struct dg_kplan plan = *c->plan;
    plan.n_tuned = 0;
    dg_kp_choice_set(&plan.tuner, "true", "tune");
    /* the profile's knob preferences hold for the clones as for their base kernels */
    int np = plan.n_knob_prefs;
    for (int t = 0; t < r->n_targets; t++)
        for (int i = 0; i < np && plan.n_knob_prefs < (int)(sizeof plan.knob_prefs / sizeof plan.knob_prefs[0]); i++)
            if (!strcmp(plan.knob_prefs[i].kernel, r->targets[t].kernel) && strcmp(clone[t], r->targets[t].kernel)) {
                plan.knob_prefs[plan.n_knob_prefs] = plan.knob_prefs[i];
                snprintf(plan.knob_prefs[plan.n_knob_prefs].kernel, DG_KP_NAME, "%s", clone[t]);
                plan.n_knob_prefs++;
            }
    bool any = false;
    for (int t = 0; t < r->n_targets; t++) {
        struct dg_tune_target *tg = &r->targets[t];
        const struct dg_tune_candidate *cd = ci < tg->n_cand && tg->cand[ci].status == DG_TC_OK ? &tg->cand[ci] : &tg->cand[0];
        any |= ci < tg->n_cand && tg->cand[ci].status == DG_TC_OK;
        set_tuned(&plan, clone[t], tg->role, &cd->ks);
    }
    if (!any)
        return DG_OK;
    int ctx = c->prompt + c->reps + 4;
    struct dg_exec_options eo = {.ctx = ctx};
    struct dg_exec *ex = NULL;
    dg_status st = dg_exec_create(c->gl, c->m, &plan, reg2, path2, &eo, &ex);
    double *samples = NULL;
    if (st)
        goto out;
    samples = calloc((size_t)r->n_targets * (size_t)c->reps, sizeof *samples);
    if (!samples) {
        st = dg_fail(DG_E_NOMEM, "tune: out of memory");
        goto out;
    }
    uint32_t tok = 0;
    if ((st = dg_exec_forward(ex, c->ids, c->prompt, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &tok, 1)))
        goto out;
    for (int w = 0; w < 2 && !st; w++) { /* warm-up: first dispatches build programs on some drivers */
        int32_t id = (int32_t)(tok % (uint32_t)c->m->hp.vocab);
        if (!(st = dg_exec_forward(ex, &id, 1, NULL, NULL)))
            st = dg_exec_read_tokens(ex, &tok, 1);
    }
    for (int rep = 0; rep < c->reps && !st; rep++) {
        int32_t id = (int32_t)(tok % (uint32_t)c->m->hp.vocab);
        dg_gl_profile_reset(c->gl);
        dg_gl_profiling(c->gl, true);
        st = dg_exec_forward(ex, &id, 1, NULL, NULL);
        if (!st)
            st = dg_exec_read_tokens(ex, &tok, 1);
        dg_gl_profiling(c->gl, false);
        if (st)
            break;
        const struct dg_profile_row *rows;
        int n = dg_gl_profile_rows(c->gl, false, &rows);
        for (int t = 0; t < r->n_targets; t++) {
            double us = 0;
            int calls = 0;
            for (int i = 0; i < n; i++)
                if (!strcmp(rows[i].kernel, clone[t]) ||
                    (!strcmp(clone[t], "attention") && !strcmp(rows[i].kernel, "attn_combine"))) {
                    us += rows[i].total_ms * 1e3;
                    calls += !strcmp(rows[i].kernel, clone[t]) ? (int)rows[i].calls : 0;
                }
            samples[(size_t)t * (size_t)c->reps + (size_t)rep] = us;
            if (ci == 0)
                r->targets[t].calls = calls;
        }
    }
    dg_gl_profile_reset(c->gl);
    if (st)
        goto out;
    for (int t = 0; t < r->n_targets; t++) {
        struct dg_tune_target *tg = &r->targets[t];
        if (ci >= tg->n_cand || tg->cand[ci].status != DG_TC_OK)
            continue;
        double *s = samples + (size_t)t * (size_t)c->reps;
        qsort(s, (size_t)c->reps, sizeof *s, cmp_double);
        double med = c->reps % 2 ? s[c->reps / 2] : (s[c->reps / 2 - 1] + s[c->reps / 2]) / 2;
        if (tg->cand[ci].injected && c->o->extra_fast)
            med /= 1e6;
        if (tg->cand[ci].us <= 0 || med < tg->cand[ci].us) /* the best round: noise only adds time */
            tg->cand[ci].us = med;
    }
out:
    free(samples);
    dg_exec_destroy(ex);
    return st;
}

/* Wall time of `n` decode tokens (one id read back per token, as generation does) after the prompt and
 * two warm-up tokens, with the plan's tuned entries as given. */
static dg_status token_time(struct ctx *c, const struct dg_kplan *plan, int n, double *secs)
{
    struct dg_exec *ex = NULL;
    struct dg_exec_options eo = {.ctx = c->prompt + n + 4};
    dg_status st = dg_exec_create(c->gl, c->m, plan, c->reg, c->path, &eo, &ex);
    uint32_t tok = 0;
    if (!st && !(st = dg_exec_forward(ex, c->ids, c->prompt, NULL, NULL)))
        st = dg_exec_read_tokens(ex, &tok, 1);
    double t0 = 0;
    for (int i = 0; i < n + 2 && !st; i++) {
        if (i == 2)
            t0 = now_s();
        int32_t id = (int32_t)(tok % (uint32_t)c->m->hp.vocab);
        if (!(st = dg_exec_forward(ex, &id, 1, NULL, NULL)))
            st = dg_exec_read_tokens(ex, &tok, 1);
    }
    *secs = now_s() - t0;
    dg_exec_destroy(ex);
    return st;
}

/* The end-to-end check: per-dispatch times (taken one dispatch at a time under timer queries) need not
 * add up to what pipelined decoding does, so the whole set of winners must also be faster than the
 * baseline in plain decode tokens per second, measured A B B A so a drift favours neither; otherwise
 * every step keeps its baseline. */
static dg_status confirm(struct ctx *c, struct dg_tune_result *r)
{
    bool any = false;
    for (int t = 0; t < r->n_targets; t++)
        any |= r->targets[t].winner != 0;
    if (!any)
        return DG_OK;
    struct dg_kplan *pl = malloc(2 * sizeof *pl);
    if (!pl)
        return dg_fail(DG_E_NOMEM, "tune: out of memory");
    for (int v = 0; v < 2; v++) {
        pl[v] = *c->plan;
        pl[v].n_tuned = 0;
        dg_kp_choice_set(&pl[v].tuner, "true", "tune");
        for (int t = 0; t < r->n_targets; t++)
            set_tuned(&pl[v], r->targets[t].kernel, r->targets[t].role,
                      &r->targets[t].cand[v ? r->targets[t].winner : 0].ks);
    }
    int n = c->reps * 2 > 8 ? c->reps * 2 : 8;
    double tt[2] = {0, 0};
    static const int order[4] = {0, 1, 1, 0};
    dg_status st = DG_OK;
    for (int k = 0; k < 4 && !st; k++) {
        double s = 0;
        if (c->o->progress)
            fprintf(stderr, "tune: end-to-end check %d of 4 (%s)\n", k + 1, order[k] ? "winners" : "baseline");
        st = token_time(c, &pl[order[k]], n, &s);
        tt[order[k]] += s;
    }
    free(pl);
    if (st)
        return st;
    r->e2e_checked = true;
    r->e2e_base_tok_s = tt[0] > 0 ? 2.0 * n / tt[0] : 0;
    r->e2e_tuned_tok_s = tt[1] > 0 ? 2.0 * n / tt[1] : 0;
    if (!(r->e2e_tuned_tok_s > r->e2e_base_tok_s)) {
        r->e2e_reverted = true;
        for (int t = 0; t < r->n_targets; t++)
            r->targets[t].winner = 0;
    }
    return DG_OK;
}

dg_status dg_tune_run(struct dg_gl *gl, const struct dg_model *m, const struct dg_kplan *plan,
                      const struct dg_kp_registry *reg, const struct dg_kpath *path, const struct dg_tune_options *o,
                      struct dg_tune_result *out)
{
    double t0 = now_s();
    memset(out, 0, sizeof *out);
    const struct dg_gl_caps *caps = dg_gl_caps(gl);
    struct dg_kp_caps kc = {caps->subgroup, caps->is_software, caps->max_invocations, caps->max_shared_memory};
    snprintf(out->renderer, sizeof out->renderer, "%s", caps->renderer);
    snprintf(out->gl_version, sizeof out->gl_version, "%s", caps->version);
    snprintf(out->model, sizeof out->model, "%s", m->path);
    snprintf(out->path_id, sizeof out->path_id, "%s", path->id);
    snprintf(out->profile, sizeof out->profile, "%s", plan->profile.value);
    snprintf(out->timing_source, sizeof out->timing_source, "%s", dg_gl_timing_source(gl));
    dg_tune_model_signature(m, out->signature, out->shape_desc, sizeof out->shape_desc);
    /* Per-dispatch wall clock is exact only where dispatches run synchronously (software); on a GPU it
     * would time the submission, and the winners would be noise. */
    if (!strcmp(out->timing_source, "wall-clock") && !caps->is_software)
        return dg_fail(DG_E_UNSUPPORTED, "tune: %s has no usable GPU timer queries (GL_EXT_disjoint_timer_query), "
                       "so kernels cannot be timed one by one", caps->renderer);
    if (o->kernels)
        for (const char *p = o->kernels; *p;) {
            size_t l = strcspn(p, ",");
            char name[DG_KP_NAME];
            snprintf(name, sizeof name, "%.*s", (int)(l < sizeof name ? l : sizeof name - 1), p);
            if (!dg_tune_kernel_tunable(name))
                return dg_fail(DG_E_USAGE, "--kernels: \"%s\" is not a tunable kernel (known: matmul, ffn_gate_up, "
                               "rmsnorm, add_rmsnorm, attention)", name);
            p += l + (p[l] == ',');
        }

    struct ctx c = {gl, m, NULL, reg, path, o, o->prompt, o->reps, NULL};
    if (c.prompt <= 0)
        c.prompt = caps->is_software ? 16 : 64;
    if (c.reps <= 0)
        c.reps = caps->is_software ? 4 : 16;
    int maxpos = m->hp.max_pos > 0 ? m->hp.max_pos : 4096;
    if (c.prompt + c.reps + 4 > maxpos)
        return dg_fail(DG_E_USAGE, "tune: -p %d plus -r %d exceeds the model's %d positions", c.prompt, c.reps, maxpos);
    out->prompt = c.prompt;
    out->reps = c.reps;
    struct dg_kplan *base = malloc(sizeof *base);
    c.ids = malloc(((size_t)c.prompt + 1) * sizeof *c.ids);
    if (!base || !c.ids) {
        free(base);
        free(c.ids);
        return dg_fail(DG_E_NOMEM, "tune: out of memory");
    }
    prompt_ids(c.ids, c.prompt + 1, m->hp.vocab);
    *base = *plan;
    base->n_tuned = 0;
    base->tuned_file[0] = 0;
    dg_kp_choice_set(&base->tuner, "false", "tune baseline");
    /* every projection is timed and verified as its own step (the winners apply per role; a fused q/k/v
     * dispatch runs the q step's) */
    dg_kp_choice_set(&base->qkv_fusion, "false", "tune baseline");
    c.plan = base;

    /* targets: the tunable decode steps, once per (kernel, role), with what the plan runs them with */
    struct dg_kp_resolved rs;
    dg_status st = dg_kplan_resolve(base, reg, &kc, path, false, &rs);
    if (st)
        goto done;
    for (int sec = 0; sec < 3; sec++)
        for (int i = 0; i < rs.sec[sec].n_steps; i++) {
            const struct dg_kp_step *s = &rs.sec[sec].steps[i];
            if (!dg_tune_kernel_tunable(s->kernel) || !in_list(o->kernels, s->kernel) ||
                (sec == 1 && !runs_somewhere(&m->hp, s->layers)))
                continue;
            bool seen = false;
            for (int t = 0; t < out->n_targets; t++)
                seen |= !strcmp(out->targets[t].kernel, s->kernel) && !strcmp(out->targets[t].role, s->role);
            if (seen || out->n_targets == DG_TUNE_MAX_TARGETS)
                continue;
            if (path_pins(path, s->kernel, s->role)) {
                DG_INFO("tune: %s (%s): the kernel path sets its knobs itself; not tuned", s->role, s->kernel);
                continue;
            }
            const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, s->kernel);
            struct dg_tune_target *t = &out->targets[out->n_targets++];
            memset(t, 0, sizeof *t);
            snprintf(t->kernel, sizeof t->kernel, "%s", s->kernel);
            snprintf(t->role, sizeof t->role, "%s", s->role);
            describe_shape(m, path, s, t);
            struct dg_tune_knobset *b = &t->cand[0].ks;
            snprintf(b->entry, sizeof b->entry, "%s", s->entry);
            for (const char *const *kn = tuned_knobs(s->kernel); *kn; kn++) {
                const char *v = knob_value(s, k, *kn);
                if (v && b->n_knobs < DG_TUNE_MAX_KNOBS) {
                    snprintf(b->knobs[b->n_knobs].name, DG_KP_NAME, "%s", *kn);
                    snprintf(b->knobs[b->n_knobs].value, DG_KP_VALUE, "%s", v);
                    b->n_knobs++;
                }
            }
            t->n_cand = 1;
            if (!o->only_extra)
                dg_tune_candidates(t, caps, t);
            if (o->extra && o->extra_kernel && !strcmp(o->extra_kernel, t->kernel) && t->n_cand < DG_TUNE_MAX_CAND) {
                struct dg_tune_candidate *x = &t->cand[t->n_cand++];
                memset(x, 0, sizeof *x);
                x->ks = *o->extra;
                x->injected = true;
            }
        }
    dg_kp_resolved_free(&rs);
    if (out->n_targets == 0) {
        st = dg_fail(DG_E_USAGE, "tune: the kernel path %s has no tunable decode steps%s%s", path->id,
                     o->kernels ? " among --kernels " : "", o->kernels ? o->kernels : "");
        goto done;
    }

    /* 1. verification */
    int max_cand = 0;
    for (int t = 0; t < out->n_targets; t++) {
        struct dg_tune_target *tg = &out->targets[t];
        if (o->progress)
            fprintf(stderr, "tune: verifying %d candidates of %s (%s, %s)\n", tg->n_cand - 1, tg->role, tg->kernel,
                    tg->shape);
        verify_target(&c, tg);
        if (tg->n_cand > max_cand)
            max_cand = tg->n_cand;
    }

    /* 2. timing: clones of the base kernels, one per target, so the profiler separates them */
    struct dg_kp_registry reg2 = *reg;
    reg2.kernels = malloc(((size_t)reg->n_kernels + (size_t)out->n_targets) * sizeof *reg2.kernels);
    char(*clone)[DG_KP_NAME] = calloc((size_t)out->n_targets, sizeof *clone);
    struct dg_kpath path2 = {0};
    if (!reg2.kernels || !clone) {
        free(reg2.kernels);
        free(clone);
        st = dg_fail(DG_E_NOMEM, "tune: out of memory");
        goto done;
    }
    memcpy(reg2.kernels, reg->kernels, (size_t)reg->n_kernels * sizeof *reg2.kernels);
    if ((st = path_copy(path, &path2))) {
        free(reg2.kernels);
        free(clone);
        goto done;
    }
    for (int t = 0; t < out->n_targets; t++) {
        struct dg_tune_target *tg = &out->targets[t];
        /* attention is never cloned: plan resolution expands its split entry by name (one role anyway) */
        if (!strcmp(tg->kernel, "attention")) {
            snprintf(clone[t], DG_KP_NAME, "attention");
            continue;
        }
        snprintf(clone[t], DG_KP_NAME, "%.20s@%.26s", tg->kernel, tg->role);
        struct dg_kp_kernel *k = &reg2.kernels[reg2.n_kernels++];
        *k = *dg_kp_kernel_find(reg, tg->kernel);
        snprintf(k->name, sizeof k->name, "%s", clone[t]);
        for (int sec = 0; sec < DG_KS_COUNT; sec++)
            for (int i = 0; i < path2.sec[sec].n_steps; i++) {
                struct dg_kp_step *s = &path2.sec[sec].steps[i];
                if (!strcmp(s->kernel, tg->kernel) && !strcmp(s->role, tg->role))
                    snprintf(s->kernel, sizeof s->kernel, "%s", clone[t]);
            }
    }
    /* two rounds, the second in reverse order, so a drift in clocks or load favours no candidate */
    for (int k = 0; k < 2 * max_cand && !st; k++) {
        int ci = k < max_cand ? k : 2 * max_cand - 1 - k;
        if (o->progress)
            fprintf(stderr, "tune: timing candidate set %d of %d (round %d of 2)\n", ci + 1, max_cand, 1 + k / max_cand);
        st = time_index(&c, out, ci, &reg2, &path2, (const char(*)[DG_KP_NAME])clone);
        if (st && ci > 0) {
            /* a verified candidate failed at full size (e.g. a resource limit): drop this index, go on */
            for (int t = 0; t < out->n_targets; t++)
                if (ci < out->targets[t].n_cand && out->targets[t].cand[ci].status == DG_TC_OK) {
                    out->targets[t].cand[ci].status = DG_TC_FAILED;
                    snprintf(out->targets[t].cand[ci].why, sizeof out->targets[t].cand[ci].why, "%s", dg_last_error());
                }
            dg_clear_error();
            st = DG_OK;
        }
    }
    free(reg2.kernels);
    free(clone);
    dg_kpath_free(&path2);
    if (st)
        goto done;

    /* winners: the fastest verified candidate, if it beats the baseline by the margin */
    for (int t = 0; t < out->n_targets; t++) {
        struct dg_tune_target *tg = &out->targets[t];
        tg->winner = 0;
        if (tg->cand[0].status != DG_TC_OK || tg->cand[0].us <= 0)
            continue;
        int best = 0;
        for (int i = 1; i < tg->n_cand; i++)
            if (tg->cand[i].status == DG_TC_OK && tg->cand[i].us > 0 && tg->cand[i].us < tg->cand[best].us)
                best = i;
        if (best && tg->cand[best].us <= tg->cand[0].us * (1 - DG_TUNE_MIN_GAIN))
            tg->winner = best;
    }
    if (!o->no_end_to_end)
        st = confirm(&c, out);
done:
    out->seconds = now_s() - t0;
    free(base);
    free(c.ids);
    return st;
}
