/* test_dense.c: the seven dense fixture families through their built-in kernel paths against the
 * transformers logits (../shared/fixtures/models/<arch>/logits.f32), computed two ways: prefill of the
 * prompt then one decode per token, and one prefill of all 40 tokens.
 *
 * Tolerances (relative to max(1, max |logit|) of each position):
 * - f32 paths: 1e-3 (the bound; measured ~7e-7 once the rope inverse frequencies are rounded to
 *   bf16 as transformers did for these bf16 checkpoints: dg_exec_options.bf16_buffers; without it 4e-4..1.2e-3).
 * - f16 paths: 5e-3 (measured worst 4.7e-4, a 10x margin). The weights are BF16 in the checkpoint; converting BF16 to f16 keeps them exactly
 *   when |w| is in f16's normal range (8 exponent bits to 5, 7 mantissa bits fit in 10), so the f16
 *   path differs from f32 only by the f16 KV cache (relative rounding 2^-11 ~ 4.9e-4 per element),
 *   which after a few layers of attention gives ~1e-3..1e-2 on logits of magnitude ~1..10. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_util.h"
#include "pipe/exec.h"
#include "gl_fixture.h"
#include "test.h"

static const struct {
    const char *dir, *family;
} fams[] = {
    {"llama", "llama"}, {"mistral", "mistral"}, {"qwen2", "qwen2"}, {"qwen3", "qwen3"},
    {"gemma2", "gemma2"}, {"gemma3_text", "gemma3"}, {"phi3", "phi3"},
};

static void run_family_format(int fi, const char *fmt, double tol)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/%s", fx, fams[fi].dir);
    struct dg_model m;
    dg_status st = dg_model_open(dir, &m);
    CHECK_MSG(st == DG_OK, "%s: %s", dir, dg_last_error());
    if (st)
        return;
    struct conf_ref r;
    CHECK(conf_ref_load(dir, m.hp.vocab, &r) && r.logits);
    if (r.logits) {
        char pid[64];
        if (fmt[0] == 47) snprintf(pid, sizeof pid, "%s.json", fmt); else snprintf(pid, sizeof pid, "%s-%s", fams[fi].family, fmt);
        float *lg = malloc((size_t)r.n_tokens * (size_t)m.hp.vocab * 4);
        for (int mode = 0; mode < 2 && lg; mode++) {
            memset(lg, 0, (size_t)r.n_tokens * (size_t)m.hp.vocab * 4);
            st = conf_run(gl, &m, pid, &r, mode, lg);
            CHECK_MSG(st == DG_OK, "%s mode %d: %s", pid, mode, dg_last_error());
            if (st)
                continue;
            int row;
            double w = conf_worst(lg, r.logits, r.n_tokens, m.hp.vocab, &row);
            printf("    %-22s %-28s worst relative logit error %.2e (position %d)\n", pid,
                   mode ? "prefill all 40" : "prefill 12 + 28 decodes", w, row);
            CHECK_MSG(w <= tol, "%s mode %d: worst error %.3e at position %d > %.1e", pid, mode, w, row, tol);
            if (w > tol && mode == 1)
                conf_hidden_report(gl, &m, dir, pid, &r);
        }
        free(lg);
    }
    conf_ref_free(&r);
    dg_model_close(&m);
}

#define FAM_TESTS(i, name)                                                   \
    DG_TEST(conf_##name##_f32) { run_family_format(i, "f32", 1e-3); }        \
    DG_TEST(conf_##name##_f16) { run_family_format(i, "f16-native", 5e-3); }

FAM_TESTS(0, llama)
FAM_TESTS(1, mistral)
FAM_TESTS(2, qwen2)
FAM_TESTS(3, qwen3)
FAM_TESTS(4, gemma2)
FAM_TESTS(5, gemma3)
FAM_TESTS(6, phi3)

/* The other variants (workgroup GEMV with shared-memory reduction, split attention + combine) and
 * attention_fused (rope, the KV write, split attention and the combine in one dispatch; the nvidia
 * profile's default, with 16 splits, so the last-workgroup combine runs; the fused_plan forces it so these
 * cases keep testing it if that default moves) on several families: the profiles change entries, not
 * results. split_plan keeps split attention + attn_combine (and separate q/k/v) covered now that no
 * profile chooses them. Gemma 2 covers the soft-cap and sliding window, Gemma 3 the
 * local rope table and q/k norms, Phi-3 the su/longrope factors, the f16 run the f16 KV cache rows the
 * fused kernel packs itself. (The llvmpipe profile's own fused attention, one workgroup a head, runs in
 * every test above.) */
static const char *const fused_plan = "{\"variants\": {\"attention\": {\"decode\": \"fused\"}}}";
static const char *const split_plan = "{\"variants\": {\"attention\": {\"decode\": \"split\"}}, \"qkvFusion\": false}";
static void with_profile(const char *prof, const char *plan_json, int fi, const char *fmt, double tol)
{
    conf_profile = prof;
    conf_plan_json = plan_json;
    run_family_format(fi, fmt, tol);
    conf_profile = NULL;
    conf_plan_json = NULL;
}
DG_TEST(conf_llama_f32_profile_nvidia) { with_profile("nvidia", NULL, 0, "f32", 1e-3); }
DG_TEST(conf_gemma2_f32_profile_safe) { with_profile("safe", NULL, 4, "f32", 1e-3); }
DG_TEST(conf_qwen3_f32_profile_nvidia) { with_profile("nvidia", NULL, 3, "f32", 1e-3); }
DG_TEST(conf_llama_f32_split_attention) { with_profile("nvidia", split_plan, 0, "f32", 1e-3); }
DG_TEST(conf_qwen3_f32_split_attention) { with_profile("nvidia", split_plan, 3, "f32", 1e-3); }
DG_TEST(conf_llama_f32_fused_attention) { with_profile("nvidia", fused_plan, 0, "f32", 1e-3); }
DG_TEST(conf_llama_f16_fused_attention) { with_profile("nvidia", fused_plan, 0, "f16-native", 5e-3); }
DG_TEST(conf_gemma2_f32_fused_attention) { with_profile("nvidia", fused_plan, 4, "f32", 1e-3); }
DG_TEST(conf_gemma3_f32_fused_attention) { with_profile("nvidia", fused_plan, 5, "f32", 1e-3); }
DG_TEST(conf_phi3_f32_fused_attention) { with_profile("nvidia", fused_plan, 6, "f32", 1e-3); }
DG_TEST(conf_qwen3_f32_fused_attention) { with_profile("nvidia", fused_plan, 3, "f32", 1e-3); }
/* attention_fused hands key blocks to its splits round robin. With the nvidia profile's CHUNK 16 /
 * NSPLIT 16 the decodes at positions 12-39 have 1-3 blocks, so most splits have none and no split has two.
 * CHUNK 2 / NSPLIT 4 gives them 7-20 blocks: every split takes several, and the combine merges four
 * non-empty partials; on Gemma 2 as well, whose sliding window moves the first key. Same tolerance as the
 * other f32 cases. */
static const char *const fused_wrap_plan = "{\"variants\": {\"attention\": {\"decode\": \"fused\"}}, "
                                           "\"knobs\": {\"attention_fused\": {\"main\": {\"CHUNK\": 2, \"NSPLIT\": 4}}}}";
DG_TEST(conf_llama_f32_fused_attention_wrap) { with_profile("nvidia", fused_wrap_plan, 0, "f32", 1e-3); }
DG_TEST(conf_gemma2_f32_fused_attention_wrap) { with_profile("nvidia", fused_wrap_plan, 4, "f32", 1e-3); }

/* qkvFusion (on in the llvmpipe profile): a layer's q, k and v projections run as one matmul_qkv dispatch,
 * in decode and in prefill; Qwen2 has q/k/v biases, which are concatenated with the weights. The decode
 * layer is 5 dispatches fused against 7 (q, k, v, attention, o, gate/up, down), and the logits equal the
 * unfused run's within 1e-6 of the largest (the same products summed in the same order; only the
 * dispatch that computes each row changes). */
static void qkv_fusion_case(int fi)
{
    struct dg_gl *gl = dg_test_gl();
    const char *fx = dg_test_fixtures();
    if (!gl || !fx)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/%s", fx, fams[fi].dir);
    struct dg_model m;
    CHECK_OK(dg_model_open(dir, &m));
    const struct dg_kp_registry *rg = conf_registry();
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_kp_caps kc = {c->subgroup, c->is_software, c->max_invocations, c->max_shared_memory};
    int32_t ids[6] = {1, 17, 42, 99, 7, 3};
    size_t V = (size_t)m.hp.vocab;
    float *lg[2] = {malloc(V * 4 * 6), malloc(V * 4 * 6)};
    int per_layer[2] = {0, 0};
    for (int f = 0; f < 2 && rg && lg[0] && lg[1]; f++) {
        struct dg_kplan plan;
        dg_kplan_init(&plan);
        CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
        CHECK_OK(dg_kplan_apply_json(&plan, f ? "{\"qkvFusion\": true}" : "{\"qkvFusion\": false}", "test"));
        char pid[64];
        snprintf(pid, sizeof pid, "%s-f32", fams[fi].family);
        dg_kp_choice_set(&plan.kernel_path, pid, "test");
        struct dg_kpath p;
        CHECK_OK(dg_kplan_load_path(&plan, rg, &kc, dg_arch_name(m.hp.arch), "f32", &p));
        struct dg_exec_options opt = {.ctx = 16, .max_batch = 8};
        struct dg_exec *ex = NULL;
        dg_status st = dg_exec_create(gl, &m, &plan, rg, &p, &opt, &ex);
        CHECK_MSG(st == DG_OK, "%s: %s", pid, dg_last_error());
        if (!st) {
            /* a 3-token prefill (fused tiled matmul) then three decode tokens */
            CHECK_OK(dg_exec_forward(ex, ids, 3, lg[f], NULL));
            for (int i = 3; i < 6; i++)
                CHECK_OK(dg_exec_forward(ex, ids + i, 1, lg[f] + (size_t)i * V, NULL));
            struct dg_exec_stats es;
            dg_exec_stats(ex, &es);
            per_layer[f] = es.dispatches_per_layer_decode;
        }
        dg_exec_destroy(ex);
        dg_kpath_free(&p);
    }
    CHECK_MSG(per_layer[0] == 7 && per_layer[1] == 5, "%s: %d dispatches a decode layer unfused, %d fused",
              fams[fi].dir, per_layer[0], per_layer[1]);
    if (lg[0] && lg[1]) {
        int row;
        double w = conf_worst(lg[1], lg[0], 6, (int)V, &row);
        CHECK_MSG(w <= 1e-6, "%s: fused q/k/v logits differ from unfused by %.3e (position %d)", fams[fi].dir, w, row);
    }
    free(lg[0]);
    free(lg[1]);
    dg_model_close(&m);
}
DG_TEST(conf_qkv_fusion_llama) { qkv_fusion_case(0); }
DG_TEST(conf_qkv_fusion_qwen2_biases) { qkv_fusion_case(2); }

/* A prefill pass whose logits nobody reads back computes only its last token's row (the decode LM head at
 * row T - 1, struct dg_exec lm_last): that row, and the greedy id sampled from it, must be what the full
 * prefill gives. Llama and Gemma 2 (final logit soft-capping inside the LM head) under the llvmpipe and
 * nvidia profiles (row and main GEMV entries). Bound 1e-5 of max(1, max |logit|): f32 weights, the
 * same products summed in another order (a GEMV against the tiled prefill kernel); measured ~1e-7. */
static void last_row_case(int fi, const char *profile)
{
    struct dg_gl *gl = dg_test_gl();
    const char *fx = dg_test_fixtures();
    if (!gl || !fx)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/%s", fx, fams[fi].dir);
    struct dg_model m;
    CHECK_OK(dg_model_open(dir, &m));
    const struct dg_kp_registry *rg = conf_registry();
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_kp_caps kc = {c->subgroup, c->is_software, c->max_invocations, c->max_shared_memory};
    enum { T = 5 };
    int32_t ids[T] = {1, 17, 42, 99, 7};
    size_t V = (size_t)m.hp.vocab;
    float *all = malloc(V * 4 * T), *last = malloc(V * 4);
    uint32_t tok[T] = {0};
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, profile));
    char pid[64];
    snprintf(pid, sizeof pid, "%s-f32", fams[fi].family);
    dg_kp_choice_set(&plan.kernel_path, pid, "test");
    struct dg_kpath p;
    CHECK_OK(dg_kplan_load_path(&plan, rg, &kc, dg_arch_name(m.hp.arch), "f32", &p));
    struct dg_exec_options opt = {.ctx = 16, .max_batch = 8};
    struct dg_exec *ex = NULL;
    dg_status st = dg_exec_create(gl, &m, &plan, rg, &p, &opt, &ex);
    CHECK_MSG(st == DG_OK, "%s: %s", pid, dg_last_error());
    if (!st && rg && all && last) {
        /* the last-row pass first, on a fresh executor: its logits slot holds no full prefill's rows */
        CHECK_OK(dg_exec_forward(ex, ids, T, NULL, NULL));
        CHECK_OK(dg_buffer_download(gl, (struct dg_buffer *)dg_exec_slot(ex, "logits"),
                                    (uint64_t)(T - 1) * (uint64_t)dg_exec_slot_width(ex, "logits") * 4, V * 4, last));
        CHECK_OK(dg_exec_read_tokens(ex, tok, T));
        dg_exec_reset(ex);
        CHECK_OK(dg_exec_forward(ex, ids, T, all, NULL));
        int row;
        double w = conf_worst(last, all + (T - 1) * V, 1, (int)V, &row);
        CHECK_MSG(w <= 1e-5, "%s (%s): last-row logits differ from the full prefill's by %.3e", pid, profile, w);
        size_t best = 0;
        for (size_t i = 1; i < V; i++)
            if (all[(T - 1) * V + i] > all[(T - 1) * V + best])
                best = i;
        CHECK_MSG(tok[T - 1] == best, "%s (%s): greedy id %u after the last-row prefill, %zu from the full one", pid,
                  profile, tok[T - 1], best);
    }
    dg_exec_destroy(ex);
    dg_kpath_free(&p);
    free(all);
    free(last);
    dg_model_close(&m);
}
DG_TEST(conf_prefill_last_row_llama) { last_row_case(0, "llvmpipe"); last_row_case(0, "nvidia"); }
DG_TEST(conf_prefill_last_row_gemma2_softcap) { last_row_case(4, "llvmpipe"); last_row_case(4, "nvidia"); }
