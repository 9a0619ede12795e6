/* test_tune_plan.c: how plans use cached tuner winners, without GL: a winner saved for (device, model,
 * path) is found again and changes exactly the decode steps of its role (shown as "tuner"), not prefill;
 * an explicit config/CLI variant, "tuner": false, a path step setting the knob itself, another device, a
 * damaged file and out-of-range knob values all keep the tuner out. Also: the GPU-family profile is chosen
 * from capabilities (subgroups, invocation limit, software device), with no vendor input at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpath/kpath.h"
#include "test.h"
#include "tune/tune.h"

DG_TEST(tune_auto_profile_from_capabilities)
{
    /* dg_kp_caps has no vendor or renderer field: the choice cannot depend on them */
    struct dg_kp_caps nv = {true, false, 1024, 49152}, small = {true, false, 128, 16384},
                      nosg = {false, false, 1024, 32768}, sw = {true, true, 1024, 32768};
    CHECK(!strcmp(dg_kplan_auto_profile(&nv), "nvidia"));
    /* subgroups but a 128-invocation limit: the nvidia profile's 256-thread workgroups would not build */
    CHECK(!strcmp(dg_kplan_auto_profile(&small), "mali"));
    CHECK(!strcmp(dg_kplan_auto_profile(&nosg), "mali"));
    CHECK(!strcmp(dg_kplan_auto_profile(&sw), "llvmpipe"));
}

static const struct dg_kp_step *find_step(const struct dg_kp_resolved *r, const char *role)
{
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < r->sec[s].n_steps; i++)
            if (!strcmp(r->sec[s].steps[i].role, role))
                return &r->sec[s].steps[i];
    return NULL;
}

static const char *const_of(const struct dg_kp_step *s, const char *name, bool *tuned)
{
    for (int c = 0; c < s->n_consts; c++)
        if (!strcmp(s->consts[c].name, name)) {
            if (tuned)
                *tuned = (s->tuned_consts >> c) & 1u;
            return s->consts[c].value;
        }
    return NULL;
}

/* The q_proj step of the decode (or prefill) phase under `plan`. */
static bool q_proj(const struct dg_kplan *plan, const struct dg_kp_registry *reg, const struct dg_kpath *p, bool prefill,
                   struct dg_kp_step *out)
{
    struct dg_kp_resolved r;
    if (dg_kplan_resolve(plan, reg, NULL, p, prefill, &r) != DG_OK) {
        CHECK_MSG(0, "resolve: %s", dg_last_error());
        return false;
    }
    const struct dg_kp_step *s = find_step(&r, "q_proj");
    if (s)
        *out = *s;
    dg_kp_resolved_free(&r);
    CHECK(s != NULL);
    return s != NULL;
}

DG_TEST(tune_cached_winner_in_plan)
{
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
    struct dg_kp_registry reg;
    struct dg_kpath path;
    char file[1200];
    CHECK_OK(dg_kpath_resolve_file("llama-q8_0", file, sizeof file));
    if (dg_model_open(mp, &m) != DG_OK || dg_kp_registry_load_default(&reg) != DG_OK) {
        CHECK_MSG(0, "setup: %s", dg_last_error());
        goto restore;
    }
    CHECK_OK(dg_kpath_load(file, &reg, NULL, &path));

    struct dg_gl_caps caps = {0};
    snprintf(caps.renderer, sizeof caps.renderer, "Test GPU");
    snprintf(caps.version, sizeof caps.version, "OpenGL ES 3.2 Test 1.0");
    caps.max_invocations = 1024;
    struct dg_tune_result *r = calloc(1, sizeof *r);
    snprintf(r->renderer, sizeof r->renderer, "%s", caps.renderer);
    snprintf(r->gl_version, sizeof r->gl_version, "%s", caps.version);
    snprintf(r->path_id, sizeof r->path_id, "llama-q8_0");
    dg_tune_model_signature(&m, r->signature, r->shape_desc, sizeof r->shape_desc);
    struct dg_tune_target *t = &r->targets[r->n_targets++];
    snprintf(t->kernel, sizeof t->kernel, "matmul");
    snprintf(t->role, sizeof t->role, "q_proj");
    t->n_cand = 2;
    t->winner = 1;
    snprintf(t->cand[0].ks.entry, DG_KP_NAME, "row");
    struct dg_tune_knobset *w = &t->cand[1].ks;
    snprintf(w->entry, sizeof w->entry, "main");
    snprintf(w->knobs[0].name, DG_KP_NAME, "WG_SIZE");
    snprintf(w->knobs[0].value, DG_KP_VALUE, "32");
    snprintf(w->knobs[1].name, DG_KP_NAME, "ROWS_PER_WG");
    snprintf(w->knobs[1].value, DG_KP_VALUE, "2");
    w->n_knobs = 2;
    t->cand[1].status = DG_TC_OK;
    CHECK_OK(dg_tune_save(r, &caps, &m));
    CHECK(strstr(r->file, "/doppler-gl/tuner/") != NULL);
    CHECK(dg_tune_file_is_ours(r->file, NULL));

    struct dg_kplan plan;
    struct dg_kp_step s;
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
    dg_tune_apply_cached(&plan, &caps, &m, "llama-q8_0");
    CHECK(plan.n_tuned == 1);
    if (q_proj(&plan, &reg, &path, false, &s)) {
        bool tuned = false;
        const char *v = const_of(&s, "WG_SIZE", &tuned);
        CHECK(!strcmp(s.entry, "main"));
        CHECK(!strcmp(s.entry_src, "tuner"));
        CHECK(v && !strcmp(v, "32") && tuned);
    }
    /* a kernel plan's forced knob beats the tuner's value, which then is no longer marked the tuner's */
    struct dg_kplan forced = plan;
    CHECK_OK(dg_kplan_apply_json(&forced, "{\"knobs\":{\"matmul\":{\"main\":{\"WG_SIZE\":64}}}}", "cli --kernel-plan"));
    if (q_proj(&forced, &reg, &path, false, &s)) {
        bool tuned = true;
        const char *v = const_of(&s, "WG_SIZE", &tuned);
        CHECK(v && !strcmp(v, "64") && !tuned);
        CHECK((v = const_of(&s, "ROWS_PER_WG", &tuned)) && !strcmp(v, "2") && tuned);
    }
    if (q_proj(&plan, &reg, &path, true, &s)) /* prefill keeps the profile's tiled matmul */
        CHECK(!strcmp(s.entry, "tiled") && strcmp(s.entry_src, "tuner"));
    struct dg_kp_resolved rr;
    if (dg_kplan_resolve(&plan, &reg, NULL, &path, false, &rr) == DG_OK) {
        const struct dg_kp_step *k = find_step(&rr, "k_proj"); /* another role: untouched */
        CHECK(k && !strcmp(k->entry, "row") && strcmp(k->entry_src, "tuner"));
        dg_kp_resolved_free(&rr);
    }

    /* explicit command-line variant wins over the tuner */
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"variants\":{\"matmul\":{\"decode\":\"row\"}}}", "cli --kernel-plan"));
    if (q_proj(&plan, &reg, &path, false, &s)) {
        CHECK(!strcmp(s.entry, "row") && !strcmp(s.entry_src, "cli --kernel-plan"));
        CHECK(const_of(&s, "WG_SIZE", NULL) == NULL);
    }
    /* "tuner": false */
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"tuner\":false}", "cli --kernel-plan"));
    dg_tune_apply_cached(&plan, &caps, &m, "llama-q8_0");
    CHECK(plan.n_tuned == 0);
    /* a path step that sets a tuned knob itself keeps it */
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
    dg_tune_apply_cached(&plan, &caps, &m, "llama-q8_0");
    for (int i = 0; i < path.sec[DG_KS_DECODE].n_steps; i++) {
        struct dg_kp_step *ps = &path.sec[DG_KS_DECODE].steps[i];
        if (!strcmp(ps->role, "q_proj")) {
            snprintf(ps->consts[ps->n_consts].name, DG_KP_NAME, "WG_SIZE");
            snprintf(ps->consts[ps->n_consts].value, DG_KP_VALUE, "128");
            ps->n_consts++;
        }
    }
    if (q_proj(&plan, &reg, &path, false, &s)) {
        const char *v = const_of(&s, "WG_SIZE", NULL);
        CHECK(strcmp(s.entry_src, "tuner") && v && !strcmp(v, "128"));
    }
    /* another device or driver: another key, nothing applied */
    struct dg_gl_caps other = caps;
    snprintf(other.version, sizeof other.version, "OpenGL ES 3.2 Test 2.0");
    dg_tune_apply_cached(&plan, &other, &m, "llama-q8_0");
    CHECK(plan.n_tuned == 0);
    /* out-of-range knob values are not used */
    caps.max_invocations = 16;
    dg_tune_apply_cached(&plan, &caps, &m, "llama-q8_0");
    CHECK(plan.n_tuned == 0);
    caps.max_invocations = 1024;
    /* a damaged file: a warning, no winners, no crash */
    FILE *f = fopen(r->file, "w");
    if (f) {
        fputs("{\"doppler_gl_tuner\": 1, \"renderer\": 7, \"steps\": [", f);
        fclose(f);
    }
    dg_tune_apply_cached(&plan, &caps, &m, "llama-q8_0");
    CHECK(plan.n_tuned == 0);
    f = fopen(r->file, "w");
    if (f) {
        fprintf(f, "{\"doppler_gl_tuner\": 1, \"renderer\": \"Test GPU\", \"gl_version\": \"OpenGL ES 3.2 Test 1.0\", "
                   "\"model_signature\": \"%s\", \"kernel_path\": \"llama-q8_0\", \"steps\": [{\"kernel\": \"matmul\", "
                   "\"role\": \"q_proj\", \"winner\": {\"entry\": \"main\", \"knobs\": {\"WG_SIZE\": \"32; x\"}}}]}",
                r->signature);
        fclose(f);
    }
    dg_tune_apply_cached(&plan, &caps, &m, "llama-q8_0");
    CHECK(plan.n_tuned == 0);
    free(r);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    dg_model_close(&m);
restore:
    if (old) {
        setenv("XDG_CACHE_HOME", old, 1);
        free(old);
    } else {
        unsetenv("XDG_CACHE_HOME");
    }
}

/* The tuner's GEMV candidates on a GPU: x staged in shared memory (XSH) toggled against the baseline is
 * proposed only where the token's K floats fit the device's shared memory (K = 4096 in 48 KiB, not
 * K = 14336), never on a software device (whose candidate set is kept small); no two candidates are the
 * same and the list stays in bounds. */
static int count_xsh_is(const struct dg_tune_target *t, const char *v)
{
    int n = 0;
    for (int i = 0; i < t->n_cand; i++)
        for (int k = 0; k < t->cand[i].ks.n_knobs; k++)
            if (!strcmp(t->cand[i].ks.knobs[k].name, "XSH") && !strcmp(t->cand[i].ks.knobs[k].value, v))
                n++;
    return n;
}
static int count_xsh(const struct dg_tune_target *t) { return count_xsh_is(t, "1"); }

DG_TEST(tune_candidates_xsh_fit_shared_memory)
{
    struct dg_gl_caps gpu = {0}, sw = {0};
    gpu.max_invocations = 1024, gpu.max_wg_size[0] = 1024, gpu.max_shared_memory = 49152, gpu.subgroup = true;
    sw = gpu;
    sw.is_software = true;
    struct dg_tune_target base = {0}, out;
    snprintf(base.kernel, sizeof base.kernel, "ffn_gate_up");
    snprintf(base.cand[0].ks.entry, sizeof base.cand[0].ks.entry, "main");
    base.cand[0].ks.n_knobs = 2;
    snprintf(base.cand[0].ks.knobs[0].name, sizeof base.cand[0].ks.knobs[0].name, "WG_SIZE");
    snprintf(base.cand[0].ks.knobs[0].value, sizeof base.cand[0].ks.knobs[0].value, "256");
    snprintf(base.cand[0].ks.knobs[1].name, sizeof base.cand[0].ks.knobs[1].name, "ROWS_PER_WG");
    snprintf(base.cand[0].ks.knobs[1].value, sizeof base.cand[0].ks.knobs[1].value, "8");
    base.n_cand = 1;

    snprintf(base.shape, sizeof base.shape, "q4_k 14336x4096");
    dg_tune_candidates(&base, &gpu, &out);
    CHECK(out.n_cand > 10 && out.n_cand <= DG_TUNE_MAX_CAND);
    CHECK_MSG(count_xsh(&out) >= 2, "%d XSH candidates for K 4096", count_xsh(&out));
    for (int i = 0; i < out.n_cand; i++)
        for (int j = 0; j < i; j++) {
            bool same = !strcmp(out.cand[i].ks.entry, out.cand[j].ks.entry) && out.cand[i].ks.n_knobs == out.cand[j].ks.n_knobs;
            for (int k = 0; same && k < out.cand[i].ks.n_knobs; k++)
                same = !strcmp(out.cand[i].ks.knobs[k].name, out.cand[j].ks.knobs[k].name) &&
                       !strcmp(out.cand[i].ks.knobs[k].value, out.cand[j].ks.knobs[k].value);
            CHECK_MSG(!same, "candidates %d and %d are the same", i, j);
        }
    snprintf(base.shape, sizeof base.shape, "q6_k 4096x14336");
    dg_tune_candidates(&base, &gpu, &out);
    CHECK_MSG(count_xsh(&out) == 0, "K 14336 (56 KiB of x) in 48 KiB: %d XSH candidates", count_xsh(&out));
    snprintf(base.shape, sizeof base.shape, "q4_k 14336x4096");
    dg_tune_candidates(&base, &sw, &out);
    CHECK(count_xsh(&out) == 0);
    /* a baseline that stages x (a profile's preference): the tuner tries it off too */
    base.cand[0].ks.n_knobs = 3;
    snprintf(base.cand[0].ks.knobs[2].name, sizeof base.cand[0].ks.knobs[2].name, "XSH");
    snprintf(base.cand[0].ks.knobs[2].value, sizeof base.cand[0].ks.knobs[2].value, "1");
    dg_tune_candidates(&base, &gpu, &out);
    CHECK_MSG(count_xsh_is(&out, "0") >= 2, "%d candidates without XSH", count_xsh_is(&out, "0"));
}
