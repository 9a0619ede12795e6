/* test_prefill_dq.c: the DQ knob of the tiled prefill matmuls (the nvidia profile sets it): a prefill pass of
 * at least DQ tokens dequantizes each quantized layer weight to f16 (glsl/dequant.glsl) and runs the f16
 * tiled kernel on it; a shorter pass keeps the quantized kernel. Each model runs a 16-token prompt and 8
 * decode steps four times under the llvmpipe profile (prefill on `tiled`): DQ off, DQ 32 (over the
 * prompt: the quantized variant, so the logits must equal the first run's exactly) and DQ 8 (the f16
 * variant), and DQ 1 (no quantized variant built: must equal DQ 8 exactly). The f16 copies round each weight once (relative error <= 2^-11), which moves a logit by about
 * 2^-11 * sqrt(K) * |w||x| summed over the layers; for these 6-layer, 256-wide models that is about 1e-3 of the
 * largest logit at most, and the bound is 2e-3 of max(1, max |logit|) (measured: see the printed figure).
 * The decode rows after the prompt run on the quantized GEMVs in every run but read a KV cache the
 * prefill wrote, so they are held to the same bound. The f16 run must also replay the dequant dispatches
 * (prefill dispatch count up) and leave decode alone. Models: sotu-6m Q4_K_M (Q4_K; split Q6_K, which
 * the llvmpipe profile uploads) and Q8_0 (split Q8_0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_util.h"
#include "gl_fixture.h"
#include "pipe/exec.h"
#include "test.h"

#define DQ_PROMPT 16
#define DQ_TOKENS 24

static const char *plan_dq(int dq, char *buf, size_t n)
{
    snprintf(buf, n,
             "{\"knobs\": {\"matmul\": {\"tiled\": {\"DQ\": %d}}, \"matmul_qkv\": {\"tiled\": {\"DQ\": %d}}, "
             "\"matmul_qk\": {\"tiled\": {\"DQ\": %d}}, \"ffn_gate_up\": {\"tiled\": {\"DQ\": %d}}}}",
             dq, dq, dq, dq);
    return buf;
}

static void check(const char *rel)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fx, rel);
    struct dg_model m;
    CHECK_OK(dg_model_open(path, &m));
    if (dg_test_failed())
        return;
    size_t n = (size_t)DQ_TOKENS * (size_t)m.hp.vocab;
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b), *c = calloc(n, sizeof *c), *d = calloc(n, sizeof *d);
    CHECK(a && b && c && d);
    struct dg_exec_stats sa, sb, sc, sd;
    memset(&sd, 0, sizeof sd);
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    memset(&sc, 0, sizeof sc);
    char pj[512];
    if (a && b && c && d) {
        struct dg_exec_options opt = {.ctx = 64, .max_batch = DQ_PROMPT};
        CHECK_OK(conf_run_ids(gl, &m, "llvmpipe", plan_dq(0, pj, sizeof pj), &opt, DQ_PROMPT, DQ_TOKENS, a, &sa));
        CHECK_OK(conf_run_ids(gl, &m, "llvmpipe", plan_dq(32, pj, sizeof pj), &opt, DQ_PROMPT, DQ_TOKENS, b, &sb));
        CHECK_OK(conf_run_ids(gl, &m, "llvmpipe", plan_dq(8, pj, sizeof pj), &opt, DQ_PROMPT, DQ_TOKENS, c, &sc));
        CHECK_OK(conf_run_ids(gl, &m, "llvmpipe", plan_dq(1, pj, sizeof pj), &opt, DQ_PROMPT, DQ_TOKENS, d, &sd));
    }
    if (!dg_test_failed()) {
        int row;
        double wq = conf_worst(b, a, DQ_TOKENS, m.hp.vocab, &row);
        CHECK_MSG(wq == 0, "%s: DQ 32 over a 16-token prompt must run the quantized kernels, but the logits moved "
                  "by %.3e (position %d)", rel, wq, row);
        double w = conf_worst(c, a, DQ_TOKENS, m.hp.vocab, &row);
        printf("    %-28s prefill dispatches %d -> %d with DQ; logits differ by %.2e of max(1, |max|)\n", rel,
               sa.dispatches_prefill, sc.dispatches_prefill, w);
        CHECK_MSG(w <= 2e-3, "%s: logits with f16 prefill weights differ by %.3e (position %d; bound 2e-3)", rel, w,
                  row);
        CHECK_MSG(w > 0, "%s: DQ 8 left the logits bit-identical: the f16 variant did not run", rel);
        /* DQ 1 has no quantized variant at all: the same f16 programs as DQ 8, run once each */
        double w1 = conf_worst(d, c, DQ_TOKENS, m.hp.vocab, &row);
        CHECK_MSG(w1 == 0 && sd.dispatches_prefill == sc.dispatches_prefill, "%s: DQ 1 against DQ 8: logits differ "
                  "by %.3e (position %d), %d / %d prefill dispatches", rel, w1, row, sd.dispatches_prefill,
                  sc.dispatches_prefill);
        /* a layer's quantized matrices: q/k/v (one, or two with q/k fused), o, gate/up (two), down */
        CHECK_MSG(sc.dispatches_prefill >= sa.dispatches_prefill + 5 * m.hp.n_layers,
                  "%s: %d prefill dispatches with DQ against %d without: the dequant dispatches are missing", rel,
                  sc.dispatches_prefill, sa.dispatches_prefill);
        CHECK_MSG(sb.dispatches_prefill == sa.dispatches_prefill && sc.dispatches_decode == sa.dispatches_decode,
                  "%s: dispatch counts prefill %d / %d, decode %d / %d", rel, sa.dispatches_prefill,
                  sb.dispatches_prefill, sa.dispatches_decode, sc.dispatches_decode);
    }
    free(a);
    free(b);
    free(c);
    free(d);
    dg_model_close(&m);
}

DG_TEST(conf_prefill_dq_q4_k_m) { check("gguf/sotu-6m.Q4_K_M.gguf"); }
DG_TEST(conf_prefill_dq_q8_0) { check("gguf/sotu-6m.Q8_0.gguf"); }
