/* test_moe_quant.c: the mixture-of-experts Q4_K paths (q4k-fused, q4k-dequant-f16, q4k-dequant-f32) of the
 * four MoE fixture families, and an end-to-end GPT-OSS run with MXFP4 experts (gpt_oss-mxfp4).
 *
 * Q4_K: copies of the fixtures quantized in the test the way the converter's q4_k_m mix does it (Q4_K,
 * falling back to Q5_0, Q8_0 and f16 when a row is not whole blocks, as llama.cpp and weights.c do; Q6_K ->
 * Q8_0 for the embedding / LM head); routers and biases stay as they are (the executor keeps them f32).
 * Reference: the f32 path on the same weights dequantized on the CPU, as test_quant_paths.c does for the
 * dense families (the f32 path is itself pinned to transformers by test_moe.c).
 *
 * MXFP4: the GPT-OSS fixture's experts are quantized to MXFP4 in the test and written as a Hugging Face
 * checkpoint with *_blocks / *_scales tensors (the form the hub's gpt-oss checkpoints ship), which the
 * reader repacks into GGUF-layout blocks; the GPU reads those blocks in the expert kernels. Reference: the
 * CPU forward (ref/cpu_forward.c) on the same loaded model, which dequantizes the same bytes.
 *
 * Tolerance 5e-3 relative to max(1, max |logit|) per position, the dense quantized paths' bound: the
 * weights are identical, the f16 KV cache (and f16 rounding of dequantized weights on dequant-f16, of the
 * BF16 non-expert weights on mxfp4: exact in f16's normal range) is the difference. Routing is discrete:
 * a near-tied router choice may flip under those roundings (test_moe.c's Mixtral Q8_0 case); one position
 * over 5e-3 but under 0.1 is allowed and reported, as there. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/plan_opts.h"
#include "conf_util.h"
#include "core/half.h"
#include "gl/kt.h"
#include "gl_fixture.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "pipe/exec.h"
#include "ref/cpu_forward.h"
#include "st_writer.h"
#include "test.h"

static const char *const dirs[] = {"mixtral", "qwen3_moe", "gpt_oss", "phimoe"};

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static enum dg_dtype pick(const struct dg_tensor *t)
{
    uint64_t cols = (uint64_t)t->shape[t->ndim - 1];
    bool head = !strcmp(t->name, "embed_tokens") || !strcmp(t->name, "lm_head");
    static const enum dg_dtype body[] = {DG_DT_Q4_K, DG_DT_Q5_0, DG_DT_Q8_0}, hd[] = {DG_DT_Q6_K, DG_DT_Q8_0};
    const enum dg_dtype *c = head ? hd : body;
    for (int i = 0; i < (head ? 2 : 3); i++)
        if (dg_dtype_row_ok(c[i], cols))
            return c[i];
    return DG_DT_F16;
}

/* q: matrices quantized as pick() says; dq: the same dequantized to f32. Buffers go to owned[]. */
static bool make_models(const struct dg_model *src, struct dg_model *q, struct dg_model *dq, void **owned, int *no,
                        int *n_q4k)
{
    *q = *src;
    *dq = *src;
    q->priv = dq->priv = NULL;
    q->tensors = calloc((size_t)src->n_tensors, sizeof *q->tensors);
    dq->tensors = calloc((size_t)src->n_tensors, sizeof *dq->tensors);
    owned[(*no)++] = q->tensors;
    owned[(*no)++] = dq->tensors;
    if (!q->tensors || !dq->tensors)
        return false;
    *n_q4k = 0;
    for (int i = 0; i < src->n_tensors; i++) {
        const struct dg_tensor *t = &src->tensors[i];
        q->tensors[i] = *t;
        dq->tensors[i] = *t;
        if (t->ndim < 2 || ends_with(t->name, ".bias") || ends_with(t->name, ".mlp.router"))
            continue;
        uint64_t n = (uint64_t)dg_tensor_nelems(t), cols = (uint64_t)t->shape[t->ndim - 1];
        enum dg_dtype dt = pick(t);
        *n_q4k += dt == DG_DT_Q4_K;
        uint64_t bytes = dg_dtype_row_bytes(dt, cols) * (n / cols);
        float *f = malloc(n * 4);
        void *qb = malloc(bytes);
        owned[(*no)++] = f;
        owned[(*no)++] = qb;
        if (!f || !qb || dg_dequantize(t->dtype, t->data, f, n) != DG_OK || dg_quantize(dt, f, qb, n) != DG_OK ||
            dg_dequantize(dt, qb, f, n) != DG_OK)
            return false;
        q->tensors[i].dtype = dt;
        q->tensors[i].data = qb;
        q->tensors[i].nbytes = bytes;
        dq->tensors[i].dtype = DG_DT_F32;
        dq->tensors[i].data = f;
        dq->tensors[i].nbytes = n * 4;
    }
    return true;
}

/* Worst relative error over positions; at most one near-tie position (over 5e-3, under 0.1) allowed. */
static void compare(const char *pid, const char *what, const float *got, const float *ref, int n, int V)
{
    int row, over = 0;
    double w = conf_worst(got, ref, n, V, &row);
    printf("    %-26s %-24s worst %.2e (position %d)\n", pid, what, w, row);
    for (int t = 0; t < n; t++) {
        double e = conf_worst(got + (size_t)t * V, ref + (size_t)t * V, 1, V, NULL);
        if (e > 5e-3) {
            over++;
            printf("      position %d: %.2e (an expert choice differs: near-tied router)\n", t, e);
        }
    }
    CHECK_MSG(over <= 1 && w < 0.1, "%s %s: worst %.3e at position %d, %d positions over 5e-3", pid, what, w, row,
              over);
}

static void run_q4k(int fi)
{
    struct dg_gl *gl = dg_test_gl();
    const char *fx = dg_test_fixtures();
    if (!gl || !fx)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/%s", fx, dirs[fi]);
    struct dg_model m;
    if (dg_model_open(dir, &m) != DG_OK) {
        CHECK_MSG(false, "%s: %s", dir, dg_last_error());
        return;
    }
    struct conf_ref r;
    CHECK(conf_ref_load(dir, m.hp.vocab, &r));
    size_t sz = (size_t)r.n_tokens * (size_t)m.hp.vocab * 4;
    float *ref = malloc(sz), *got = malloc(sz);
    void **owned = calloc((size_t)m.n_tensors * 2 + 2, sizeof *owned);
    int no = 0, n_q4k = 0;
    struct dg_model q, dq;
    if (ref && got && owned && make_models(&m, &q, &dq, owned, &no, &n_q4k)) {
        /* the fixtures' 64-wide rows are not whole 256-blocks: only wider rows (if any) become Q4_K; the
         * expert kernels' Q4_K reads are checked on 256-wide experts by kp_moe_q4k below */
        printf("    %s: %d matrices in Q4_K, the others in their fallbacks\n", dirs[fi], n_q4k);
        char pid[64];
        snprintf(pid, sizeof pid, "%s-f32", dg_arch_name(m.hp.arch));
        dg_status st = conf_run(gl, &dq, pid, &r, 1, ref);
        CHECK_MSG(st == DG_OK, "%s on dequantized weights: %s", pid, dg_last_error());
        static const char *const fmts[] = {"q4k-fused", "q4k-dequant-f16", "q4k-dequant-f32"};
        for (int f = 0; f < 3 && !st; f++) {
            snprintf(pid, sizeof pid, "%s-%s", dg_arch_name(m.hp.arch), fmts[f]);
            for (int mode = 0; mode < 2; mode++) {
                dg_status s2 = conf_run(gl, &q, pid, &r, mode, got);
                CHECK_MSG(s2 == DG_OK, "%s mode %d: %s", pid, mode, dg_last_error());
                if (!s2)
                    compare(pid, mode ? "prefill all 40" : "prefill 12 + decodes", got, ref, r.n_tokens, m.hp.vocab);
            }
        }
    } else {
        CHECK_MSG(false, "quantizing the fixture failed: %s", dg_last_error());
    }
    for (int i = 0; i < no; i++)
        free(owned[i]);
    free(owned);
    free(ref);
    free(got);
    conf_ref_free(&r);
    dg_model_close(&m);
}

DG_TEST(conf_mixtral_q4k) { run_q4k(0); }
DG_TEST(conf_qwen3_moe_q4k) { run_q4k(1); }
DG_TEST(conf_gpt_oss_q4k) { run_q4k(2); }
DG_TEST(conf_phimoe_q4k) { run_q4k(3); }

/* ---- MXFP4 end to end ---- */

/* llama.cpp's quantize_row_mxfp4_ref for one block of 32: E8M0 exponent from the largest |x|, each value the
 * nearest of the E2M1 grid (stored doubled: {0, 1, 2, 3, 4, 6, 8, 12} x 2^(e - 128)), lowest code on ties.
 * Codes land in Hugging Face's layout: byte j holds element 2j (low nibble) and 2j + 1 (high). */
static void mxfp4_quant_hf(const float *x, uint8_t *scale, uint8_t qs[16])
{
    static const float kv[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    int e = amax > 0 ? (int)floorf(log2f(amax)) - 2 + 127 : 0;
    e = e < 0 ? 0 : e > 254 ? 254 : e;
    *scale = (uint8_t)e;
    float d = dg_e8m0_to_f32_half((uint8_t)e);
    memset(qs, 0, 16);
    for (int j = 0; j < 32; j++) {
        int best = 0;
        float be = fabsf(x[j] - kv[0] * d);
        for (int c = 1; c < 16; c++) {
            float err = fabsf(x[j] - kv[c] * d);
            if (err < be) {
                be = err;
                best = c;
            }
        }
        qs[j / 2] |= (uint8_t)(best << (4 * (j & 1)));
    }
}

/* Writes `dst`/model.safetensors + config.json: the GPT-OSS fixture with gate_up_proj [E, H, 2I] and
 * down_proj [E, I, H] (BF16, [in, out]) replaced by MXFP4 *_blocks [E, out, in/32, 16] / *_scales. */
static bool write_mxfp4_checkpoint(const char *src, const char *dst)
{
    struct dg_safetensors st;
    if (dg_safetensors_open(src, &st) != DG_OK)
        return false;
    struct wt *out = calloc((size_t)st.n_tensors * 2 + 2, sizeof *out);
    uint8_t **bufs = calloc((size_t)st.n_tensors * 2 + 2, sizeof *bufs);
    int n = 0, nb = 0;
    bool ok = out && bufs;
    for (int i = 0; ok && i < st.n_tensors; i++) {
        const struct dg_st_tensor *t = &st.tensors[i];
        bool gu = ends_with(t->name, "experts.gate_up_proj"), dn = ends_with(t->name, "experts.down_proj");
        if (!gu && !dn) {
            out[n++] = st_from_tensor(t, NULL);
            continue;
        }
        ok = t->dtype == DG_ST_BF16 && t->ndim == 3 && t->shape[1] % 32 == 0;
        if (!ok)
            break;
        int64_t E = t->shape[0], in = t->shape[1], rows = t->shape[2], nblk = in / 32;
        uint8_t *blk = malloc((size_t)(E * rows * nblk * 16)), *sc = malloc((size_t)(E * rows * nblk));
        bufs[nb++] = blk;
        bufs[nb++] = sc;
        ok = blk && sc;
        const uint16_t *w = (const uint16_t *)t->data;
        for (int64_t e = 0; ok && e < E; e++)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t k = 0; k < nblk; k++) {
                    float x[32];
                    for (int j = 0; j < 32; j++)
                        x[j] = dg_bf16_to_f32(w[(size_t)((e * in + k * 32 + j) * rows + r)]);
                    size_t bi = (size_t)((e * rows + r) * nblk + k);
                    mxfp4_quant_hf(x, &sc[bi], &blk[bi * 16]);
                }
        char base[96];
        snprintf(base, sizeof base, "%.95s", t->name);
        out[n] = (struct wt){.dtype = "U8", .ndim = 4, .shape = {E, rows, nblk, 16}, .data = blk,
                             .nbytes = (size_t)(E * rows * nblk * 16)};
        snprintf(out[n++].name, 128, "%s_blocks", base);
        out[n] = (struct wt){.dtype = "U8", .ndim = 3, .shape = {E, rows, nblk}, .data = sc,
                             .nbytes = (size_t)(E * rows * nblk)};
        snprintf(out[n++].name, 128, "%s_scales", base);
    }
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    ok = ok && st_write(p, out, n);
    if (ok)
        st_copy_config(src, dst);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    free(bufs);
    free(out);
    dg_safetensors_close(&st);
    return ok;
}

DG_TEST(conf_gpt_oss_mxfp4)
{
    struct dg_gl *gl = dg_test_gl();
    const char *fx = dg_test_fixtures();
    if (!gl || !fx)
        return;
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/models/gpt_oss", fx);
    snprintf(dst, sizeof dst, "%s", dg_test_tmpdir());
    CHECK(write_mxfp4_checkpoint(src, dst));
    struct dg_model m;
    if (dg_model_open(dst, &m) != DG_OK) {
        CHECK_MSG(false, "%s: %s", dst, dg_last_error());
        return;
    }
    const struct dg_tensor *g = dg_model_find(&m, "layer.0.mlp.experts.gate_proj");
    CHECK(g && g->dtype == DG_DT_MXFP4);
    /* the CLI picks the MXFP4 path for it, and that path keeps the experts in their blocks */
    CHECK_MSG(!strcmp(dg_cli_model_weight_format(&m), "mxfp4"), "weight format %s", dg_cli_model_weight_format(&m));
    CHECK(dg_exec_gpu_dtype("mxfp4", DG_DT_MXFP4, true) == DG_DT_MXFP4);
    CHECK(dg_exec_gpu_dtype("mxfp4", DG_DT_BF16, true) == DG_DT_F16);
    struct conf_ref r;
    CHECK(conf_ref_load(src, m.hp.vocab, &r));
    size_t sz = (size_t)r.n_tokens * (size_t)m.hp.vocab * 4;
    float *ref = malloc(sz), *got = malloc(sz);
    struct dg_cpu_model *c = NULL;
    if (ref && got && dg_cpu_init(&m, r.n_tokens, &c) == DG_OK) {
        dg_cpu_set_bf16_buffers(c, true); /* as conf_run's executor (bf16_buffers) */
        int32_t ids[CONF_MAX_TOK];
        for (int i = 0; i < r.n_tokens; i++)
            ids[i] = r.tokens[i];
        CHECK_OK(dg_cpu_forward(c, ids, r.n_tokens, ref, NULL));
        /* the MXFP4 weights are not the BF16 ones: the run differs from transformers' logits */
        if (r.logits)
            printf("    MXFP4 experts vs the BF16 fixture (transformers): %.2e relative\n",
                   conf_worst(ref, r.logits, r.n_tokens, m.hp.vocab, NULL));
        for (int mode = 0; mode < 2; mode++) {
            dg_status st = conf_run(gl, &m, "gpt_oss-mxfp4", &r, mode, got);
            CHECK_MSG(st == DG_OK, "gpt_oss-mxfp4 mode %d: %s", mode, dg_last_error());
            if (!st)
                compare("gpt_oss-mxfp4 vs CPU", mode ? "prefill all 40" : "prefill 12 + decodes", got, ref,
                        r.n_tokens, m.hp.vocab);
        }
    } else {
        CHECK_MSG(false, "CPU reference on the MXFP4 model: %s", dg_last_error());
    }
    dg_cpu_free(c);
    free(ref);
    free(got);
    conf_ref_free(&r);
    dg_model_close(&m);
}

/* ---- the expert kernels on Q4_K weights (256-wide rows, which the fixtures do not have) ---- */

/* 4 experts of 256 x 256 (gate, up, down in Q4_K), top-2, 6 tokens; both decode kernels (per token) and the
 * prefill ones (grouped, TB = 2 so lists take several passes; then moe_combine) against a double-precision
 * CPU computation on the dequantized weights. Bound: 1e-5 x sum |terms| + 1e-6 per output, f32 summation
 * order being the only difference (the weights are the same dequantized values). */
DG_TEST(kp_moe_q4k)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    enum { NE = 4, K = 2, H = 256, EI = 256, T = 6 };
    const uint64_t rb = dg_dtype_row_bytes(DG_DT_Q4_K, H); /* H == EI: one row size for all three */
    float *wf[3], *wd[3];
    uint8_t *wq[3];
    uint32_t s = 7;
    for (int w = 0; w < 3; w++) {
        wf[w] = malloc((size_t)NE * H * EI * 4);
        wd[w] = malloc((size_t)NE * H * EI * 4);
        wq[w] = calloc(1, (size_t)NE * H * rb / 1 + 64);
        for (int i = 0; i < NE * H * EI; i++) {
            s = s * 1664525u + 1013904223u;
            wf[w][i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
        CHECK_OK(dg_quantize(DG_DT_Q4_K, wf[w], wq[w], (uint64_t)NE * H * EI));
        CHECK_OK(dg_dequantize(DG_DT_Q4_K, wq[w], wd[w], (uint64_t)NE * H * EI));
    }
    float x[T * H], resid[T * H];
    uint32_t sel[T * 2 * K], groups[NE + NE * T] = {0};
    for (int i = 0; i < T * H; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        resid[i] = (float)(i % 17) * 0.01f;
    }
    for (int t = 0; t < T; t++) {
        uint32_t a = (uint32_t)t % NE, b = (uint32_t)(t * 3 + 1) % NE;
        if (b == a)
            b = (a + 1) % NE;
        float wa = 0.6f + 0.05f * (float)t, wb = 1.0f - wa;
        sel[t * 2 * K] = a;
        sel[t * 2 * K + 1] = b;
        memcpy(&sel[t * 2 * K + 2], &wa, 4);
        memcpy(&sel[t * 2 * K + 3], &wb, 4);
        for (int k = 0; k < K; k++) {
            uint32_t e = sel[t * 2 * K + k];
            groups[NE + e * T + groups[e]++] = (uint32_t)(t * K + k);
        }
    }
    /* CPU: act[t][k][i], y[t][h] */
    static float act[T * K * EI], yref[T * H], ymag[T * H], amag[T * K * EI];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            int e = (int)sel[t * 2 * K + k];
            for (int i = 0; i < EI; i++) {
                double g = 0, u = 0, m = 0;
                for (int h = 0; h < H; h++) {
                    g += (double)wd[0][((size_t)e * EI + i) * H + h] * x[t * H + h];
                    u += (double)wd[1][((size_t)e * EI + i) * H + h] * x[t * H + h];
                    m += fabs((double)wd[0][((size_t)e * EI + i) * H + h] * x[t * H + h]) +
                         fabs((double)wd[1][((size_t)e * EI + i) * H + h] * x[t * H + h]);
                }
                act[(t * K + k) * EI + i] = (float)(g / (1 + exp(-g)) * u);
                amag[(t * K + k) * EI + i] = (float)(m * (fabs(g) + fabs(u) + 1));
            }
        }
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            double y = resid[t * H + h], m = fabs(resid[t * H + h]);
            for (int k = 0; k < K; k++) {
                int e = (int)sel[t * 2 * K + k];
                float gw;
                memcpy(&gw, &sel[t * 2 * K + K + k], 4);
                for (int i = 0; i < EI; i++) {
                    double p = (double)wd[2][((size_t)e * H + h) * EI + i] * act[(t * K + k) * EI + i];
                    y += gw * p;
                    m += fabs(gw * p);
                }
            }
            yref[t * H + h] = (float)y;
            ymag[t * H + h] = (float)m;
        }
    char wt[8], rbs[16];
    snprintf(wt, sizeof wt, "%d", (int)DG_DT_Q4_K);
    snprintf(rbs, sizeof rbs, "%llu", (unsigned long long)rb);
    uint32_t ubo[4] = {0, T, 0, 0};
    uint64_t wbytes = (uint64_t)NE * H * rb;
    static float o1[T * K * EI], o2[T * K * EI], y1[T * H], y2[T * H], part[T * K * H];
    for (int grouped = 0; grouped < 2; grouped++) {
        const char *gs = grouped ? "1" : "0";
        struct dg_define d1[] = {{"MOE_STAGE", "1"}, {"MOE_GROUPED", gs}, {"NE", "4"}, {"TOPK", "2"}, {"EI", "256"},
                                 {"HID", "256"}, {"WTYPE", wt}, {"WROWBYTES", rbs}, {"TB", "2"}};
        struct kt_buf b1[] = {{0, x, sizeof x, NULL},
                              {1, wq[0], wbytes, NULL},
                              {3, NULL, sizeof o1, grouped ? o2 : o1},
                              {4, wq[1], wbytes, NULL},
                              {5, grouped ? (const void *)groups : sel, grouped ? sizeof groups : sizeof sel, NULL}};
        if (!kt_run(gl, "moe_ffn.glsl", d1, 9, b1, 5, ubo, EI / 64, grouped ? NE : K, grouped ? 1 : T, 0, NE * EI))
            break;
        struct dg_define d2[] = {{"MOE_STAGE", "2"}, {"MOE_GROUPED", gs}, {"NE", "4"}, {"TOPK", "2"}, {"EI", "256"},
                                 {"HID", "256"}, {"WTYPE", wt}, {"WROWBYTES", rbs}, {"TB", "2"}};
        memcpy(grouped ? y2 : y1, resid, sizeof resid);
        if (!grouped) {
            struct kt_buf b2[] = {{0, act, sizeof act, NULL},
                                  {1, wq[2], wbytes, NULL},
                                  {3, resid, sizeof resid, y1},
                                  {5, sel, sizeof sel, NULL}};
            if (!kt_run(gl, "moe_ffn.glsl", d2, 9, b2, 4, ubo, H / 64, T, 1, 0, NE * H))
                break;
        } else {
            struct kt_buf b2[] = {{0, act, sizeof act, NULL},
                                  {1, wq[2], wbytes, NULL},
                                  {3, NULL, sizeof part, part},
                                  {5, groups, sizeof groups, NULL}};
            if (!kt_run(gl, "moe_ffn.glsl", d2, 9, b2, 4, ubo, H / 64, NE, 1, 0, NE * H))
                break;
            struct dg_define d3[] = {{"TOPK", "2"}, {"HID", "256"}};
            struct kt_buf b3[] = {{0, part, sizeof part, NULL}, {1, resid, sizeof resid, y2}, {2, sel, sizeof sel, NULL}};
            if (!kt_run(gl, "moe_combine.glsl", d3, 2, b3, 3, ubo, H / 64, T, 1, 0, 0))
                break;
        }
        const float *o = grouped ? o2 : o1, *y = grouped ? y2 : y1;
        int bad = 0;
        for (int i = 0; i < T * K * EI; i++)
            if (!(fabsf(o[i] - act[i]) <= 1e-5f * amag[i] + 1e-6f) && bad++ < 3)
                printf("    %s gate_up [%d]: gpu %.7g, cpu %.7g\n", grouped ? "grouped" : "decode", i, o[i], act[i]);
        for (int i = 0; i < T * H; i++)
            if (!(fabsf(y[i] - yref[i]) <= 1e-5f * ymag[i] + 1e-6f) && bad++ < 6)
                printf("    %s down [%d]: gpu %.7g, cpu %.7g\n", grouped ? "grouped" : "decode", i, y[i], yref[i]);
        CHECK_MSG(bad == 0, "%s Q4_K expert kernels: %d outputs off", grouped ? "grouped" : "decode", bad);
    }
    for (int w = 0; w < 3; w++) {
        free(wf[w]);
        free(wd[w]);
        free(wq[w]);
    }
}
