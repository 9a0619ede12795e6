/* test_qk_fusion.c: qkvFusion on a model whose layers do not all share one q/k/v format. llama.cpp's
 * Q4_K_M keeps some layers' v projection in Q6_K (sotu-6m.Q4_K_M.gguf: layers 2 and 5 of 6); there the
 * executor fuses q and k alone (matmul_qk) and v stays its own dispatch, elsewhere all three run as
 * matmul_qkv. Run under the nvidia profile (main GEMV entry) and the llvmpipe one (row entry): 16 prompt
 * tokens, then 8 decode steps, with qkvFusion true and false. The decode pass must have 2 dispatches fewer
 * for each all-Q4_K layer and 1 fewer for each mixed one, and the logits must equal the unfused run's
 * within 1e-6 of max(1, max |logit|): each row's products are summed in the same order whichever
 * dispatch computes it (conf_qkv_fusion_* hold the f32 paths to the same bound). */
#include <stdlib.h>

#include "conf_util.h"
#include "gl_fixture.h"
#include "pipe/exec.h"
#include "test.h"

#define QK_PROMPT 16
#define QK_TOKENS 24

static void check(const char *profile)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char path[1200];
    snprintf(path, sizeof path, "%s/gguf/sotu-6m.Q4_K_M.gguf", fx);
    struct dg_model m;
    CHECK_OK(dg_model_open(path, &m));
    if (dg_test_failed())
        return;
    int same = 0, mixed = 0;
    for (int L = 0; L < m.hp.n_layers; L++) {
        const struct dg_tensor *q = dg_model_findf(&m, "layer.%d.self_attn.q_proj", L);
        const struct dg_tensor *k = dg_model_findf(&m, "layer.%d.self_attn.k_proj", L);
        const struct dg_tensor *v = dg_model_findf(&m, "layer.%d.self_attn.v_proj", L);
        CHECK(q && k && v && q->dtype == k->dtype);
        if (q && k && v)
            *(v->dtype == q->dtype ? &same : &mixed) += 1;
    }
    /* the fixture must hold both kinds of layer, or this tests less than it says */
    CHECK_MSG(same > 0 && mixed > 0, "sotu-6m.Q4_K_M: %d layers with one q/k/v format, %d mixed", same, mixed);
    size_t n = (size_t)QK_TOKENS * (size_t)m.hp.vocab;
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    int da = 0, db = 0;
    CHECK(a && b);
    if (a && b && !dg_test_failed()) {
        struct dg_exec_options opt = {.ctx = 64, .max_batch = QK_PROMPT};
        struct dg_exec_stats sa, sb;
        CHECK_OK(conf_run_ids(gl, &m, profile, "{\"qkvFusion\": false}", &opt, QK_PROMPT, QK_TOKENS, a, &sa));
        CHECK_OK(conf_run_ids(gl, &m, profile, "{\"qkvFusion\": true}", &opt, QK_PROMPT, QK_TOKENS, b, &sb));
        da = sa.dispatches_decode;
        db = sb.dispatches_decode;
    }
    if (!dg_test_failed()) {
        CHECK_MSG(da - db == 2 * same + mixed, "%s: %d decode dispatches unfused, %d fused (expected %d fewer)",
                  profile, da, db, 2 * same + mixed);
        int row;
        double w = conf_worst(b, a, QK_TOKENS, m.hp.vocab, &row);
        CHECK_MSG(w <= 1e-6, "%s: fused q/k(/v) logits differ from unfused by %.3e (token %d)", profile, w, row);
    }
    free(a);
    free(b);
    dg_model_close(&m);
}

DG_TEST(conf_qk_fusion_sotu_6m_q4_k_m_nvidia) { check("nvidia"); }
DG_TEST(conf_qk_fusion_sotu_6m_q4_k_m_llvmpipe) { check("llvmpipe"); }
