/* test_gguf_llamacpp.c: the GPU executor on the fixture GGUF files against llama.cpp's own outputs
 * (../shared/fixtures/gguf/NAME.json, made by llama.cpp b10573 on CPU) and against the CPU reference on the
 * same GGUF.
 *
 * What is checked, per file:
 * - teacher-forced on prompt_ids + generated_ids (prefill of the prompt, then one decode per generated id,
 *   as llama.cpp ran it), the logits of the five `top5` ids of every step. Tolerances from the fixture
 *   README: sotu-6m Q8_0 0.1 and Q4_K_M 0.5 (its top-1 logits run 7..19; llama.cpp's own F16 vs Q4_K_M
 *   differs by 0.47 there); tiny-llama-spm 0.05 ("a few 1e-2": llama.cpp's CPU and CUDA backends differ by
 *   up to 4e-2 on it). Both implementations read the same quantized bytes, so the measured errors are far
 *   below these bounds; the bounds are the README's, so a regression to "merely quantization-close" fails
 *   only when it is worse than llama.cpp's own spread.
 * - greedy decoding from prompt_ids with the path's GPU argmax gives llama.cpp's generated ids: all 24 for
 *   sotu-6m; for tiny-llama-spm only up to its fragile step 5 (top-1/top-2 gap 0.0011), exclusive.
 * - GPU logits vs the CPU reference (ref/cpu_forward.c) on the same GGUF, every position and every vocab
 *   entry: relative error (max |diff| / max(1, max |logit|)) at most 5e-3. The weights are identical; what
 *   differs is the GPU's f16 KV cache and summation order, so a kernel bug shows here, not in quantization.
 * - perplexity (eval/perplexity.c, llama.cpp's method) of ../shared/models/sotu-6m/valid.txt with chunks of
 *   256: llama.cpp gives 86.3256 (Q8_0) and 86.5987 (Q4_K_M) over all 420 chunks; ours must be within 0.5%.
 *   The full text takes minutes on llvmpipe (one 256-token prefill per chunk, about 1 s each on 2 cores),
 *   so under ASan (DG_SANITIZE builds) only the first PPL_ASAN_CHUNKS chunks run and are compared, within
 *   0.5%, with the figure the plain build measured for them (there is no llama.cpp figure for a subset).
 *   DG_TEST_PPL_CHUNKS=N runs N chunks in any build (checked against llama.cpp only when N is 420). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "cli/plan_opts.h"
#include "conf_util.h"
#include "eval/perplexity.h"
#include "gl_fixture.h"
#include "pipe/exec.h"
#include "ref/cpu_forward.h"
#include "test.h"
#include "tok/model_tokenizer.h"

#define GG_MAX 64

struct llref {
    int prompt[GG_MAX], gen[GG_MAX];
    int n_prompt, n_gen;
    int top_id[GG_MAX][5];
    float top_logit[GG_MAX][5];
};

static bool llref_load(const char *path, struct llref *r)
{
    memset(r, 0, sizeof *r);
    char *text = dg_test_read_file(path, NULL);
    if (!text)
        return false;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "prompt_ids")) if (r->n_prompt < GG_MAX) r->prompt[r->n_prompt++] =
        it->valueint;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "generated_ids")) if (r->n_gen < GG_MAX) r->gen[r->n_gen++] =
        it->valueint;
    int s = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "steps"))
    {
        const cJSON *t5 = cJSON_GetObjectItem(it, "top5"), *p;
        int j = 0;
        cJSON_ArrayForEach(p, t5)
        {
            if (s < GG_MAX && j < 5 && cJSON_GetArraySize(p) == 2) {
                r->top_id[s][j] = cJSON_GetArrayItem(p, 0)->valueint;
                r->top_logit[s][j] = (float)cJSON_GetArrayItem(p, 1)->valuedouble;
                j++;
            }
        }
        s++;
    }
    cJSON_Delete(root);
    return r->n_prompt > 0 && r->n_gen > 0 && s == r->n_gen && r->n_prompt + r->n_gen <= GG_MAX;
}

static dg_status make_exec(struct dg_gl *gl, const struct dg_model *m, int ctx, int max_batch, struct dg_kpath *p,
                           struct dg_exec **ex)
{
    const struct dg_kp_registry *rg = conf_registry();
    if (!rg)
        return DG_E_IO;
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_kp_caps kc = {c->subgroup, c->is_software, c->max_invocations, c->max_shared_memory};
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    dg_status st = dg_kplan_apply_profile(&plan, dg_kplan_auto_profile(&kc));
    /* the built-in path is chosen from the file's tensor types, as the CLI does */
    if (!st)
        st = dg_kplan_load_path(&plan, rg, &kc, dg_arch_name(m->hp.arch), dg_cli_model_weight_format(m), p);
    if (st)
        return st;
    struct dg_exec_options opt = {.ctx = ctx, .max_batch = max_batch};
    st = dg_exec_create(gl, m, &plan, rg, p, &opt, ex);
    if (st)
        dg_kpath_free(p);
    return st;
}

static int argmax_row(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static void run_file(const char *name, const char *want_path, double top5_tol, int greedy_steps)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char gguf[1200], js[1200];
    snprintf(gguf, sizeof gguf, "%s/gguf/%s.gguf", fx, name);
    snprintf(js, sizeof js, "%s/gguf/%s.json", fx, name);
    struct llref r;
    CHECK_MSG(llref_load(js, &r), "%s: cannot read the llama.cpp reference", js);
    if (dg_test_failed())
        return;
    struct dg_model m;
    CHECK_OK(dg_model_open(gguf, &m));
    if (dg_test_failed())
        return;
    struct dg_kpath p;
    struct dg_exec *ex = NULL;
    CHECK_OK(make_exec(gl, &m, GG_MAX, GG_MAX, &p, &ex));
    if (dg_test_failed()) {
        dg_model_close(&m);
        return;
    }
    CHECK_MSG(!strcmp(p.id, want_path), "%s: path %s chosen, expected %s", name, p.id, want_path);
    int n = r.n_prompt + r.n_gen, V = m.hp.vocab;
    int32_t ids[GG_MAX];
    for (int i = 0; i < r.n_prompt; i++)
        ids[i] = r.prompt[i];
    for (int i = 0; i < r.n_gen; i++)
        ids[r.n_prompt + i] = r.gen[i];
    float *lg = malloc((size_t)n * (size_t)V * 4), *cpu = malloc((size_t)n * (size_t)V * 4);
    CHECK(lg && cpu);

    /* teacher-forced: prefill the prompt, then decode each generated id (llama.cpp's order) */
    dg_status st = dg_exec_forward(ex, ids, r.n_prompt, lg, NULL);
    for (int i = r.n_prompt; !st && i < n; i++)
        st = dg_exec_forward(ex, ids + i, 1, lg + (size_t)i * (size_t)V, NULL);
    CHECK_MSG(st == DG_OK, "%s: forward: %s", name, dg_last_error());
    double worst = 0;
    int worst_step = 0, tf_agree = 0;
    for (int s = 0; !st && s < r.n_gen; s++) {
        const float *row = lg + (size_t)(r.n_prompt - 1 + s) * (size_t)V;
        for (int j = 0; j < 5; j++) {
            double d = fabs((double)row[r.top_id[s][j]] - r.top_logit[s][j]);
            if (!(d <= worst)) {
                worst = d;
                worst_step = s;
            }
        }
        tf_agree += argmax_row(row, V) == r.gen[s];
    }
    printf("#   %s (%s): worst top-5 logit error vs llama.cpp %.4f (step %d; bound %.2f); teacher-forced argmax "
           "agreement %d/%d\n", name, p.id, worst, worst_step, top5_tol, tf_agree, r.n_gen);
    CHECK_MSG(worst <= top5_tol, "%s: top-5 logit error %.4f at step %d > %.2f", name, worst, worst_step, top5_tol);

    /* greedy from the prompt with the path's own argmax */
    dg_exec_reset(ex);
    int32_t tok[GG_MAX];
    for (int i = 0; i < r.n_prompt; i++)
        tok[i] = r.prompt[i];
    int agree = 0;
    bool parted = false;
    st = dg_exec_forward(ex, tok, r.n_prompt, NULL, NULL);
    for (int s = 0; !st && s < r.n_gen; s++) {
        uint32_t out[GG_MAX];
        st = dg_exec_read_tokens(ex, out, s == 0 ? r.n_prompt : 1);
        if (st)
            break;
        tok[0] = (int32_t)out[s == 0 ? r.n_prompt - 1 : 0];
        if (!parted && tok[0] == r.gen[s])
            agree++;
        else
            parted = true;
        if (s + 1 < r.n_gen)
            st = dg_exec_forward(ex, tok, 1, NULL, NULL);
    }
    CHECK_MSG(st == DG_OK, "%s: greedy: %s", name, dg_last_error());
    printf("#   %s: greedy ids agree with llama.cpp for the first %d/%d steps (required %d)\n", name, agree, r.n_gen,
           greedy_steps);
    CHECK_MSG(agree >= greedy_steps, "%s: greedy parts from llama.cpp at step %d (required %d)", name, agree,
              greedy_steps);

    /* GPU vs the CPU reference on the same weights */
    struct dg_cpu_model *c = NULL;
    CHECK_OK(dg_cpu_init(&m, GG_MAX, &c));
    if (c) {
        CHECK_OK(dg_cpu_forward(c, ids, n, cpu, NULL));
        int row;
        double rel = conf_worst(lg, cpu, n, V, &row);
        printf("#   %s: GPU vs CPU reference (same GGUF) worst relative error %.2e (position %d; bound 5e-3)\n", name,
               rel, row);
        CHECK_MSG(rel <= 5e-3, "%s: GPU vs CPU reference relative error %.3g at position %d", name, rel, row);
        dg_cpu_free(c);
    }
    free(lg);
    free(cpu);
    dg_exec_destroy(ex);
    dg_kpath_free(&p);
    dg_model_close(&m);
}

DG_TEST(gguf_llamacpp_sotu_6m_q8_0) { run_file("sotu-6m.Q8_0", "llama-q8_0", 0.1, 24); }
DG_TEST(gguf_llamacpp_sotu_6m_q4_k_m) { run_file("sotu-6m.Q4_K_M", "llama-q4k-fused", 0.5, 24); }
/* greedy required up to the fragile step 5 only */
DG_TEST(gguf_llamacpp_tiny_llama_spm_q4_k_m) { run_file("tiny-llama-spm.Q4_K_M", "llama-q4k-fused", 0.05, 5); }

#define PPL_CTX 256
#define PPL_ASAN_CHUNKS 6
/* this code's PPL on the first PPL_ASAN_CHUNKS chunks, measured by the plain build */
#define PPL_SUBSET_Q8_0 62.5000
#define PPL_SUBSET_Q4_K_M 62.7116

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* llama_cpp_ppl: llama.cpp's figure on the whole text; subset_ppl: ours on the first PPL_ASAN_CHUNKS chunks
 * (measured by the plain build). */
static void run_ppl(const char *name, double llama_cpp_ppl, double subset_ppl)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures(), *models = fx ? dg_test_models() : NULL;
    if (!models)
        return;
    char gguf[1200], txt[1200];
    snprintf(gguf, sizeof gguf, "%s/gguf/%s.gguf", fx, name);
    snprintf(txt, sizeof txt, "%s/sotu-6m/valid.txt", models);
    size_t len = 0;
    char *text = dg_test_read_file(txt, &len);
    if (!text)
        SKIP("%s missing", txt);
    struct dg_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(dg_tokenizer_for_model_path(gguf, &tok));
    if (tok)
        CHECK_OK(dg_tokenizer_encode(tok, text, len, DG_TOK_ADD_SPECIAL | DG_TOK_NO_PARSE_SPECIAL, &ids, &n));
    free(text);
    int32_t bos = tok ? dg_tokenizer_bos(tok) : -1;
    dg_tokenizer_free(tok);
    /* llama.cpp's tokenizer gives 107,682 ids with BOS (fixture README) */
    CHECK_MSG(n == 107682 && bos == 0 && ids && ids[0] == 0, "%s: %zu tokens (BOS %d), expected 107682 with BOS 0",
              txt, n, bos);
    if (dg_test_failed()) {
        free(ids);
        return;
    }
    int chunks = (int)(n / PPL_CTX);
#ifdef DG_SANITIZE
    chunks = PPL_ASAN_CHUNKS;
#endif
    const char *env = getenv("DG_TEST_PPL_CHUNKS");
    if (env && atoi(env) > 0 && atoi(env) < chunks)
        chunks = atoi(env);
    struct dg_model m;
    CHECK_OK(dg_model_open(gguf, &m));
    if (dg_test_failed()) {
        free(ids);
        return;
    }
    struct dg_kpath p;
    struct dg_exec *ex = NULL;
    CHECK_OK(make_exec(gl, &m, PPL_CTX, PPL_CTX / 2, &p, &ex));
    if (ex) {
        struct dg_ppl_options o = {.ctx = PPL_CTX, .max_chunks = chunks, .bos = bos};
        struct dg_ppl_result r;
        double t0 = now_s();
        CHECK_OK(dg_perplexity(ex, ids, n, &o, &r));
        double secs = now_s() - t0;
        if (!dg_test_failed()) {
            CHECK(r.n_chunks == chunks && r.n_scored == (long)chunks * (PPL_CTX / 2 - 1));
            bool full = chunks == (int)(n / PPL_CTX);
            double want = full ? llama_cpp_ppl : subset_ppl;
            printf("#   %s (%s): PPL %.4f +/- %.5f over %d chunks of %d (%ld scored) in %.1f s; %s %.4f (%+.3f%%)\n",
                   name, p.id, r.ppl, r.ppl_err, r.n_chunks, PPL_CTX, r.n_scored, secs,
                   full ? "llama.cpp" : chunks == PPL_ASAN_CHUNKS ? "plain build's subset figure" : "(no reference)",
                   want, 100.0 * (r.ppl - want) / want);
            if (full || chunks == PPL_ASAN_CHUNKS)
                CHECK_MSG(fabs(r.ppl - want) <= 0.005 * want, "%s: PPL %.4f, expected %.4f within 0.5%%", name, r.ppl,
                          want);
        }
        dg_exec_destroy(ex);
        dg_kpath_free(&p);
    }
    free(ids);
    dg_model_close(&m);
}

DG_TEST(gguf_perplexity_sotu_6m_q8_0) { run_ppl("sotu-6m.Q8_0", 86.3256, PPL_SUBSET_Q8_0); }
DG_TEST(gguf_perplexity_sotu_6m_q4_k_m) { run_ppl("sotu-6m.Q4_K_M", 86.5987, PPL_SUBSET_Q4_K_M); }
