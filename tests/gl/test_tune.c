/* test_tune.c: the tuner on the GL device (llvmpipe in CI) with the tiny llama fixture, GEMV steps only,
 * trying just the baseline and one injected candidate whose measured time is divided by 1e6 (so it wins
 * whenever verification lets it):
 *   - a wrong-but-fast candidate (SOFTCAP=0.001 clamps every output to +-0.001) must be rejected as
 *     "wrong output" for every GEMV step and never chosen;
 *   - the control: a correct candidate under the same speed-up (row entry, WG_SIZE=16, not in the normal
 *     set) must be verified and chosen for every step, so the first check fails if verification is gone;
 *   - the end-to-end check (plain decode tokens per second, winners against baseline) reverts a winner
 *     whose speed-up exists only in the per-dispatch figure: main with one row per 256-thread workgroup
 *     (the fixture's rows are 64 wide, so most threads idle and wait at the reduction's barriers) under
 *     the same faked speed-up decodes about 10x slower on llvmpipe, a margin no load noise closes; every
 *     step must keep its baseline (software only: the slowdown was measured there);
 *   - saved, the winner is what the next plan for this device and model runs: dg_cli_plan_build shows it
 *     as "tuner" on the decode steps, the executor builds it, and its logits match the untuned plan's
 *     (same tolerance as the verification: 1e-3 of the largest logit; only summation order differs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/plan_opts.h"
#include "gl_fixture.h"
#include "pipe/exec.h"
#include "test.h"
#include "tune/tune.h"

static void knobset(struct dg_tune_knobset *ks, const char *entry, const char *n1, const char *v1, const char *n2,
                    const char *v2)
{
    memset(ks, 0, sizeof *ks);
    snprintf(ks->entry, sizeof ks->entry, "%s", entry);
    snprintf(ks->knobs[0].name, DG_KP_NAME, "%s", n1);
    snprintf(ks->knobs[0].value, DG_KP_VALUE, "%s", v1);
    ks->n_knobs = 1;
    if (n2) {
        snprintf(ks->knobs[1].name, DG_KP_NAME, "%s", n2);
        snprintf(ks->knobs[1].value, DG_KP_VALUE, "%s", v2);
        ks->n_knobs = 2;
    }
}

static dg_status logits(struct dg_gl *gl, const struct dg_model *m, const struct dg_kplan *plan,
                        const struct dg_kp_registry *reg, const struct dg_kpath *path, float *out)
{
    struct dg_exec *ex = NULL;
    struct dg_exec_options eo = {.ctx = 16};
    int32_t ids[4] = {1, 17, 42, 99};
    dg_status st = dg_exec_create(gl, m, plan, reg, path, &eo, &ex);
    if (!st)
        st = dg_exec_forward(ex, ids, 3, NULL, NULL);
    if (!st)
        st = dg_exec_forward(ex, ids + 3, 1, out, NULL);
    dg_exec_destroy(ex);
    return st;
}

DG_TEST(tune_rejects_wrong_fast_variant_and_plans_use_winner)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char mp[1024], cache[1024];
    snprintf(mp, sizeof mp, "%s/models/llama", fx);
    snprintf(cache, sizeof cache, "%s/xdg", dg_test_tmpdir());
    char *old = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("XDG_CACHE_HOME", cache, 1);
    unsetenv("DOPPLER_GL_TUNER_DIR"); /* the tuner folder follows XDG_CACHE_HOME here */
    struct dg_model m;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_cli_plan_opts po = {0};
    struct dg_tune_result *r = calloc(1, sizeof *r);
    float *a = NULL, *b = NULL;
    if (dg_model_open(mp, &m) != DG_OK) {
        CHECK_MSG(0, "open %s: %s", mp, dg_last_error());
        goto restore;
    }
    if (!r || dg_kp_registry_load_default(&reg) != DG_OK ||
        dg_cli_plan_build(&po, dg_gl_caps(gl), &m, &reg, &plan, &path) != DG_OK) {
        CHECK_MSG(0, "setup: %s", dg_last_error());
        goto out;
    }
    struct dg_tune_knobset wrong, good;
    knobset(&wrong, "row", "WG_SIZE", "64", "SOFTCAP", "0.001");
    knobset(&good, "row", "WG_SIZE", "16", NULL, NULL);
    struct dg_tune_options o = {.kernels = "matmul", .prompt = 4, .reps = 2, .extra = &wrong, .extra_kernel = "matmul",
                                .extra_fast = true, .only_extra = true, .no_end_to_end = true};

    CHECK_OK(dg_tune_run(gl, &m, &plan, &reg, &path, &o, r));
    CHECK(r->n_targets >= 5); /* q, k, v, o, down (+ lm_head) */
    for (int t = 0; t < r->n_targets; t++) {
        const struct dg_tune_target *tg = &r->targets[t];
        CHECK_MSG(tg->n_cand == 2 && tg->cand[1].injected, "%s: %d candidates", tg->role, tg->n_cand);
        CHECK_MSG(tg->cand[0].status == DG_TC_OK, "%s: baseline %s (%s)", tg->role,
                  dg_tune_status_name(tg->cand[0].status), tg->cand[0].why);
        CHECK_MSG(tg->cand[1].status == DG_TC_WRONG, "%s: the clamped variant was %s (err %g)", tg->role,
                  dg_tune_status_name(tg->cand[1].status), tg->cand[1].max_err);
        CHECK_MSG(tg->winner == 0, "%s: a wrong variant was chosen", tg->role);
    }

    o.extra = &good;
    CHECK_OK(dg_tune_run(gl, &m, &plan, &reg, &path, &o, r));
    for (int t = 0; t < r->n_targets; t++) {
        const struct dg_tune_target *tg = &r->targets[t];
        CHECK_MSG(tg->n_cand == 2 && tg->cand[1].status == DG_TC_OK, "%s: the correct variant was %s (%s)", tg->role,
                  dg_tune_status_name(tg->cand[1].status), tg->cand[1].why);
        CHECK_MSG(tg->winner == 1, "%s: the faster correct variant did not win (%.1f vs %.1f us)", tg->role,
                  tg->cand[1].us, tg->cand[0].us);
        CHECK_MSG(tg->calls == m.hp.n_layers || !strcmp(tg->role, "lm_head"), "%s: %d calls per token", tg->role,
                  tg->calls);
    }
    CHECK_OK(dg_tune_save(r, dg_gl_caps(gl), &m));

    /* the end-to-end check sees through a per-dispatch speed-up that is not real */
    struct dg_tune_result *r2 = calloc(1, sizeof *r2);
    struct dg_tune_knobset slow;
    knobset(&slow, "main", "WG_SIZE", "256", "ROWS_PER_WG", "1");
    struct dg_tune_options o2 = o;
    o2.extra = &slow;
    o2.no_end_to_end = false;
    o2.reps = 8;
    if (r2 && dg_gl_caps(gl)->is_software) {
        CHECK_OK(dg_tune_run(gl, &m, &plan, &reg, &path, &o2, r2));
        CHECK_MSG(r2->e2e_checked && r2->e2e_reverted, "end to end: baseline %.1f, winners %.1f tok/s, %s",
                  r2->e2e_base_tok_s, r2->e2e_tuned_tok_s, r2->e2e_reverted ? "reverted" : "kept");
        for (int t = 0; t < r2->n_targets; t++)
            CHECK_MSG(r2->targets[t].winner == 0, "%s: kept a variant that is slower end to end", r2->targets[t].role);
    }
    free(r2);

    /* the next plan for this device and model runs the winner */
    struct dg_kplan p2;
    struct dg_kpath path2 = {0};
    CHECK_OK(dg_cli_plan_build(&po, dg_gl_caps(gl), &m, &reg, &p2, &path2));
    CHECK(p2.n_tuned == r->n_targets);
    struct dg_kp_resolved rs;
    if (dg_kplan_resolve(&p2, &reg, NULL, &path2, false, &rs) == DG_OK) {
        int tuned = 0;
        for (int s = 0; s < 4; s++)
            for (int i = 0; i < rs.sec[s].n_steps; i++) {
                const struct dg_kp_step *st = &rs.sec[s].steps[i];
                if (strcmp(st->kernel, "matmul"))
                    continue;
                CHECK_MSG(!strcmp(st->entry_src, "tuner") && !strcmp(st->entry, "row"), "%s: %s/%s (%s)", st->role,
                          st->kernel, st->entry, st->entry_src);
                for (int c = 0; c < st->n_consts; c++)
                    if (!strcmp(st->consts[c].name, "WG_SIZE") && !strcmp(st->consts[c].value, "16") &&
                        ((st->tuned_consts >> c) & 1u))
                        tuned++;
            }
        CHECK_MSG(tuned >= 5, "%d matmul steps run the tuned WG_SIZE=16", tuned);
        dg_kp_resolved_free(&rs);
    }
    size_t nv = (size_t)m.hp.vocab;
    a = malloc(nv * 4);
    b = malloc(nv * 4);
    struct dg_kplan p0 = p2;
    dg_kp_choice_set(&p0.tuner, "false", "test");
    if (a && b && logits(gl, &m, &p2, &reg, &path2, a) == DG_OK && logits(gl, &m, &p0, &reg, &path2, b) == DG_OK) {
        double mx = 0, err = 0;
        for (size_t i = 0; i < nv; i++) {
            mx = fmax(mx, fabs(b[i]));
            err = fmax(err, fabs((double)a[i] - b[i]));
        }
        CHECK_MSG(err <= 1e-3 * mx, "tuned logits differ by %g (largest %g)", err, mx);
    } else {
        CHECK_MSG(0, "running the tuned plan: %s", dg_last_error());
    }
    dg_kpath_free(&path2);
out:
    free(a);
    free(b);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    dg_model_close(&m);
restore:
    free(r);
    if (old) {
        setenv("XDG_CACHE_HOME", old, 1);
        free(old);
    } else {
        unsetenv("XDG_CACHE_HOME");
    }
}
