/* test_generate.c: the generation loop end to end on the GPU (llvmpipe): greedy decoding of sotu-6m
 * through the f32 path reproduces transformers' greedy continuations in samples.json up to the first
 * step whose top-two gap is under 0.05 (a near-tie that float rounding may flip); several EOS ids stop
 * generation at the first one sampled; the same seed gives the same tokens, for every --sync-every; a second
 * turn continues the KV cache the first left (what `chat` does). */
#include "test.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "conf_util.h"
#include "gl_fixture.h"
#include "pipe/generate.h"

struct collect {
    int32_t ids[256];
    int n;
};

static bool collect_id(void *user, int32_t id)
{
    struct collect *c = user;
    if (c->n < 256)
        c->ids[c->n++] = id;
    return false;
}

struct gen_setup {
    struct dg_model m;
    struct dg_kpath path;
    struct dg_kplan plan;
    struct dg_exec *ex;
    struct dg_sampler *smp;
};

static bool setup(struct dg_gl *gl, const char *dir, const char *path_id, const uint32_t *eos, int n_eos,
                  const struct dg_sample_params *sp, struct gen_setup *g)
{
    memset(g, 0, sizeof *g);
    CHECK_OK(dg_model_open(dir, &g->m));
    if (dg_test_failed())
        return false;
    const struct dg_kp_registry *rg = conf_registry();
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_kp_caps kc = {c->subgroup, c->is_software, c->max_invocations, c->max_shared_memory};
    dg_kplan_init(&g->plan);
    CHECK_OK(dg_kplan_apply_profile(&g->plan, dg_kplan_auto_profile(&kc)));
    dg_kp_choice_set(&g->plan.kernel_path, path_id, "test");
    CHECK_OK(dg_kplan_load_path(&g->plan, rg, &kc, dg_arch_name(g->m.hp.arch), "f32", &g->path));
    struct dg_exec_options eo = {.ctx = 128};
    if (!dg_test_failed())
        CHECK_OK(dg_exec_create(gl, &g->m, &g->plan, rg, &g->path, &eo, &g->ex));
    struct dg_sampler_options so = {.vocab = g->m.hp.vocab, .history_cap = 128, .eos = eos, .n_eos = n_eos};
    if (!dg_test_failed()) {
        CHECK_OK(dg_sampler_create(gl, &so, &g->smp));
        CHECK_OK(dg_sampler_set_params(g->smp, sp));
        CHECK_OK(dg_sampler_reset(g->smp, NULL, 0));
    }
    return !dg_test_failed();
}

static void teardown(struct gen_setup *g)
{
    dg_sampler_destroy(g->smp);
    dg_exec_destroy(g->ex);
    dg_kpath_free(&g->path);
    dg_model_close(&g->m);
}

static void greedy(struct dg_sample_params *sp)
{
    dg_sample_params_default(sp);
    sp->temp = 0;
}

DG_TEST(generate_sotu_greedy_matches_transformers_samples)
{
    const char *models = dg_test_models();
    struct dg_gl *gl = models ? dg_test_gl() : NULL;
    if (!gl)
        return;
    char dir[1024], file[1100];
    snprintf(dir, sizeof dir, "%s/sotu-6m", models);
    snprintf(file, sizeof file, "%s/samples.json", dir);
    char *text = dg_test_read_file(file, NULL);
    CHECK(text);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *samples = cJSON_GetObjectItem(j, "samples");
    CHECK(cJSON_IsArray(samples));
    struct dg_sample_params sp;
    greedy(&sp);
    struct gen_setup g;
    if (samples && setup(gl, dir, "llama-f32", NULL, 0, &sp, &g)) {
        cJSON *s;
        cJSON_ArrayForEach(s, samples)
        {
            cJSON *pids = cJSON_GetObjectItem(s, "prompt_ids"), *gids = cJSON_GetObjectItem(s, "generated_ids");
            cJSON *top5 = cJSON_GetObjectItem(s, "top5");
            int np = cJSON_GetArraySize(pids), ng = cJSON_GetArraySize(gids);
            /* compare up to (and including) the first step whose top-two gap is < 0.05 is excluded */
            int upto = ng;
            for (int i = 0; i < ng; i++) {
                cJSON *t = cJSON_GetArrayItem(top5, i);
                double a = cJSON_GetArrayItem(cJSON_GetArrayItem(t, 0), 1)->valuedouble;
                double b = cJSON_GetArrayItem(cJSON_GetArrayItem(t, 1), 1)->valuedouble;
                if (a - b < 0.05) {
                    upto = i;
                    break;
                }
            }
            int32_t prompt[64];
            for (int i = 0; i < np && i < 64; i++)
                prompt[i] = cJSON_GetArrayItem(pids, i)->valueint;
            dg_exec_reset(g.ex);
            CHECK_OK(dg_sampler_reset(g.smp, NULL, 0));
            struct collect c = {0};
            struct dg_generate_opts go = {.n_predict = upto > 0 ? upto : 1, .sync_every = 8};
            struct dg_generate_stats gs;
            CHECK_OK(dg_generate(g.ex, g.smp, prompt, np, &go, collect_id, &c, &gs));
            int agree = 0;
            while (agree < c.n && agree < upto && c.ids[agree] == cJSON_GetArrayItem(gids, agree)->valueint)
                agree++;
            printf("#   \"%s\": %d of %d greedy ids agree (compared up to step %d, the first near-tie)\n",
                   cJSON_GetObjectItem(s, "prompt")->valuestring, agree, upto, upto);
            CHECK_MSG(agree == upto, "\"%s\": greedy ids part at step %d (before the near-tie at %d)",
                      cJSON_GetObjectItem(s, "prompt")->valuestring, agree, upto);
        }
        teardown(&g);
    }
    cJSON_Delete(j);
}

DG_TEST(generate_stops_at_the_first_of_several_eos_ids)
{
    const char *models = dg_test_models();
    struct dg_gl *gl = models ? dg_test_gl() : NULL;
    if (!gl)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sotu-6m", models);
    struct dg_sample_params sp;
    greedy(&sp);
    int32_t prompt[] = {0, 5608, 1100, 268, 260, 1135, 328}; /* "The state of the Union is" */
    /* llama.cpp's greedy continuation starts 259 ("a") 1162 ... : make its 3rd and 5th ids EOS */
    struct gen_setup g;
    struct collect ref = {0};
    struct dg_generate_stats gs;
    struct dg_generate_opts go = {.n_predict = 8, .sync_every = 8};
    if (!setup(gl, dir, "llama-f32", NULL, 0, &sp, &g))
        return;
    CHECK_OK(dg_generate(g.ex, g.smp, prompt, 7, &go, collect_id, &ref, &gs));
    CHECK(gs.stop == DG_STOP_LENGTH && ref.n == 8);
    teardown(&g);
    uint32_t eos[3] = {(uint32_t)ref.ids[4], 7, (uint32_t)ref.ids[2]};
    if (!setup(gl, dir, "llama-f32", eos, 3, &sp, &g))
        return;
    struct collect c = {0};
    CHECK_OK(dg_generate(g.ex, g.smp, prompt, 7, &go, collect_id, &c, &gs));
    CHECK_MSG(gs.stop == DG_STOP_EOS && c.n == 2, "stop %s after %d tokens, expected eos after 2",
              dg_stop_reason_name(gs.stop), c.n);
    /* the cache keeps the prompt and the kept ids minus the last: 7 + 2 - 1 */
    CHECK(dg_exec_pos(g.ex) == 8);
    teardown(&g);
}

DG_TEST(generate_same_seed_same_tokens_for_any_sync_every)
{
    const char *models = dg_test_models();
    struct dg_gl *gl = models ? dg_test_gl() : NULL;
    if (!gl)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sotu-6m", models);
    struct dg_sample_params sp;
    dg_sample_params_default(&sp);
    sp.seed = 1234;
    int32_t prompt[] = {0, 5608, 1100, 268, 260, 1135, 328};
    struct collect runs[3];
    int syncs[3] = {1, 5, 16};
    for (int r = 0; r < 3; r++) {
        struct gen_setup g;
        if (!setup(gl, dir, "llama-f32", NULL, 0, &sp, &g))
            return;
        memset(&runs[r], 0, sizeof runs[r]);
        struct dg_generate_opts go = {.n_predict = 20, .sync_every = syncs[r]};
        struct dg_generate_stats gs;
        CHECK_OK(dg_generate(g.ex, g.smp, prompt, 7, &go, collect_id, &runs[r], &gs));
        CHECK(runs[r].n == 20);
        teardown(&g);
    }
    CHECK(memcmp(runs[0].ids, runs[1].ids, sizeof runs[0].ids) == 0);
    CHECK(memcmp(runs[0].ids, runs[2].ids, sizeof runs[0].ids) == 0);
}

static bool stop_after_3(void *user, int32_t id)
{
    struct collect *c = user;
    collect_id(user, id);
    return c->n == 3;
}

/* What `doppler-gl chat` relies on: a second turn continues the KV cache a first dg_generate left. Turn 1
 * stops (as a stop string would) after 3 ids while the GPU ran 8 steps per read-back, so the position must
 * be rolled back over the steps run past the stop; turn 2 runs the pending last id and "We must" (no BOS)
 * after the cache. Its logits must equal a fresh pass over the whole conversation. Tolerance 1e-4 of
 * max(1, max |logit|): the same f32 weights, only the split into prefill passes and decode steps differs. */
DG_TEST(generate_second_turn_continues_the_kv_cache)
{
    const char *models = dg_test_models();
    struct dg_gl *gl = models ? dg_test_gl() : NULL;
    if (!gl)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sotu-6m", models);
    struct dg_sample_params sp;
    greedy(&sp);
    struct gen_setup g;
    if (!setup(gl, dir, "llama-f32", NULL, 0, &sp, &g))
        return;
    int32_t p1[] = {0, 5608, 1100, 268, 260, 1135, 328}; /* "The state of the Union is" */
    struct collect c = {0};
    struct dg_generate_opts go = {.n_predict = 20, .sync_every = 8};
    struct dg_generate_stats gs;
    CHECK_OK(dg_generate(g.ex, g.smp, p1, 7, &go, stop_after_3, &c, &gs));
    CHECK(gs.stop == DG_STOP_CALLER && c.n == 3);
    CHECK_MSG(dg_exec_pos(g.ex) == 7 + 3 - 1, "position %d after the first turn, expected 9", dg_exec_pos(g.ex));
    int V = dg_exec_vocab(g.ex);
    int32_t t2[3] = {c.ids[2], 7087, 588}; /* the pending id, then "We must" */
    float *a = malloc(sizeof(float) * 3 * (size_t)V), *b = malloc(sizeof(float) * 13 * (size_t)V);
    CHECK_OK(dg_exec_forward(g.ex, t2, 3, a, NULL));
    int32_t all[13];
    memcpy(all, p1, sizeof p1);
    memcpy(all + 7, c.ids, 3 * sizeof(int32_t));
    all[10] = 7087, all[11] = 588;
    dg_exec_reset(g.ex);
    CHECK_OK(dg_exec_forward(g.ex, all, 12, b, NULL));
    double worst = 0, mx = 1;
    for (int r = 0; r < 3; r++)
        for (int v = 0; v < V; v++) {
            double y = b[(size_t)(9 + r) * V + v];
            mx = fmax(mx, fabs(y));
            worst = fmax(worst, fabs(a[(size_t)r * V + v] - y));
        }
    printf("#   second turn vs one pass over the conversation: worst logit difference %.3g (max |logit| %.3g)\n",
           worst, mx);
    CHECK_MSG(worst <= 1e-4 * mx, "worst %g, max %g", worst, mx);
    free(a);
    free(b);
    teardown(&g);
}
