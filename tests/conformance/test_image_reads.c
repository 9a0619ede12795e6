/* test_image_reads.c: the plan's imageReads (on in the llvmpipe profile): the row GEMVs read weights, x and
 * the fused norm's weights through texture-buffer image views instead of SSBOs. The loads return the same
 * words and every sum runs in the same order, so the logits must equal the SSBO run's within 1e-6 of
 * max(1, max |logit|) (measured: identical). Each model runs under the llvmpipe profile with imageReads
 * false and true: a 16-token prompt, then 8 decode steps. With true, every decode GEMV on the row entry
 * must read through images (the stats count them) and the dispatch count must not change.
 * Models: sotu-6m Q4_K_M (Q4_K, split Q6_K, q/k/v and q/k fusion), sotu-6m Q8_0 (split Q8_0), and the
 * Gemma 2 fixture (f32 weights; the fused norm's 1 + w). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_util.h"
#include "gl_fixture.h"
#include "pipe/exec.h"
#include "test.h"

#define IR_PROMPT 16
#define IR_TOKENS 24

static void check(const char *rel)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    if (!dg_gl_caps(gl)->texture_buffer) {
        printf("    %s: the device has no GL_EXT_texture_buffer; imageReads falls back to SSBOs (checked: no "
               "image reads)\n", rel);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fx, rel);
    struct dg_model m;
    CHECK_OK(dg_model_open(path, &m));
    if (dg_test_failed())
        return;
    size_t n = (size_t)IR_TOKENS * (size_t)m.hp.vocab;
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    CHECK(a && b);
    struct dg_exec_stats sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    if (a && b) {
        struct dg_exec_options opt = {.ctx = 64, .max_batch = IR_PROMPT};
        CHECK_OK(conf_run_ids(gl, &m, "llvmpipe", "{\"imageReads\": false}", &opt, IR_PROMPT, IR_TOKENS, a, &sa));
        CHECK_OK(conf_run_ids(gl, &m, "llvmpipe", "{\"imageReads\": true}", &opt, IR_PROMPT, IR_TOKENS, b, &sb));
    }
    if (!dg_test_failed()) {
        CHECK_MSG(sa.image_reads_decode == 0 && sa.image_views == 0, "%s: imageReads false still read %d dispatches "
                  "through %d views", rel, sa.image_reads_decode, sa.image_views);
        CHECK_MSG(sa.dispatches_decode == sb.dispatches_decode, "%s: %d decode dispatches with SSBOs, %d with images",
                  rel, sa.dispatches_decode, sb.dispatches_decode);
        if (dg_gl_caps(gl)->texture_buffer) {
            /* a layer's GEMVs (q/k/v or q/k + v, o, gate/up, down) and the LM head */
            int want = 4 * m.hp.n_layers + 1;
            CHECK_MSG(sb.image_reads_decode >= want, "%s: %d decode dispatches read through images (expected at least "
                      "%d)", rel, sb.image_reads_decode, want);
        } else {
            CHECK(sb.image_reads_decode == 0);
        }
        int row;
        double w = conf_worst(b, a, IR_TOKENS, m.hp.vocab, &row);
        printf("    %-34s image reads %d of %d decode dispatches, %d views; logits differ by %.2e\n", rel,
               sb.image_reads_decode, sb.dispatches_decode, sb.image_views, w);
        CHECK_MSG(w <= 1e-6, "%s: logits with image reads differ from the SSBO run by %.3e (position %d)", rel, w, row);
    }
    free(a);
    free(b);
    dg_model_close(&m);
}

DG_TEST(conf_image_reads_q4_k_m) { check("gguf/sotu-6m.Q4_K_M.gguf"); }
DG_TEST(conf_image_reads_q8_0) { check("gguf/sotu-6m.Q8_0.gguf"); }
DG_TEST(conf_image_reads_gemma2_f32) { check("models/gemma2"); }
