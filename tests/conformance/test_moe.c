/* test_moe.c: the four mixture-of-experts fixture families (Mixtral, Qwen3-MoE, GPT-OSS, PhiMoE) through
 * their built-in kernel paths against the transformers logits, both ways (prefill 12 + 28 decodes, one
 * prefill of 40); the poison tests (decode, and the grouped prefill of two tokens, read only the experts the
 * GPU router selects); stacked expert tensors split into SSBO ranges; moe_group's lists; and the MXFP4
 * GPU dequant against the CPU reference.
 *
 * Tolerances (relative to max(1, max |logit|) of each position), as test_dense.c:
 * - f32: 1e-3 (the bound).
 * - f16-native: 5e-3, the dense tests' bound: BF16 weights convert to f16 exactly in f16's normal range;
 *   the f16 KV cache (relative rounding 2^-11) is the difference. The router stays f32 on every path.
 * Routing is discrete: a GPU/CPU rounding difference at a near-tied router choice would flip an expert and
 * show as a large error, so these bounds also check the routing. Logits are compared, not greedy ids (some
 * fixtures' top-1 margins are below 0.01). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_util.h"
#include "core/half.h"
#include "gl/kt.h"
#include "gl_fixture.h"
#include "model/quant.h"
#include "pipe/exec.h"
#include "ref/cpu_forward.h"
#include "test.h"

static const char *const moe_dirs[] = {"mixtral", "qwen3_moe", "gpt_oss", "phimoe"};

static bool open_fixture(int fi, struct dg_model *m, char *dir, size_t n)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return false;
    snprintf(dir, n, "%s/models/%s", fx, moe_dirs[fi]);
    dg_status st = dg_model_open(dir, m);
    CHECK_MSG(st == DG_OK, "%s: %s", dir, dg_last_error());
    return st == DG_OK;
}

static void run_moe(int fi, const char *fmt, double tol)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_model m;
    char dir[1024];
    if (!open_fixture(fi, &m, dir, sizeof dir))
        return;
    CHECK(m.hp.n_experts > 0);
    struct conf_ref r;
    CHECK(conf_ref_load(dir, m.hp.vocab, &r) && r.logits);
    if (r.logits) {
        char pid[64];
        snprintf(pid, sizeof pid, "%s-%s", dg_arch_name(m.hp.arch), fmt);
        float *lg = malloc((size_t)r.n_tokens * (size_t)m.hp.vocab * 4);
        for (int mode = 0; mode < 2 && lg; mode++) {
            memset(lg, 0, (size_t)r.n_tokens * (size_t)m.hp.vocab * 4);
            dg_status st = conf_run(gl, &m, pid, &r, mode, lg);
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

#define MOE_TESTS(i, name)                                                      \
    DG_TEST(conf_##name##_f32) { run_moe(i, "f32", 1e-3); }                     \
    DG_TEST(conf_##name##_f16) { run_moe(i, "f16-native", 5e-3); }

MOE_TESTS(0, mixtral)
MOE_TESTS(1, qwen3_moe)
MOE_TESTS(2, gpt_oss)
MOE_TESTS(3, phimoe)

/* GPT-OSS through attention_fused with 16 splits (forced through the plan on top of the nvidia profile):
 * the learned sinks (started as a pseudo-key in split 0) and alternating sliding-window layers; same
 * tolerance as the f32 path. */
DG_TEST(conf_gpt_oss_f32_fused_attention)
{
    conf_profile = "nvidia";
    conf_plan_json = "{\"variants\": {\"attention\": {\"decode\": \"fused\"}}}";
    run_moe(2, "f32", 1e-3);
    conf_profile = NULL;
    conf_plan_json = NULL;
}

/* ---- stacked expert tensors larger than the SSBO block limit ---- */

/* The limit is lowered to 40000 bytes (the driver's is far larger) so every stacked expert tensor of the
 * fixture is bound as several row ranges, with range boundaries inside experts (checked below), as a real
 * Mixtral's 940 MB f16 projections would be on a GPU with a 128 MB or 2 GB limit. max_batch 16 keeps
 * every activation slot under the limit (slots are bound whole); the 40-token prefill then runs as
 * batches of 16, 16 and 8. Same tolerance as the unsplit f32 path (1e-3): the ranges change which
 * dispatch adds which experts' shares into the residual in decode, not the arithmetic of any one. */
static void run_moe_split(int fi)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_model m;
    char dir[1024];
    if (!open_fixture(fi, &m, dir, sizeof dir))
        return;
    struct conf_ref r;
    CHECK(conf_ref_load(dir, m.hp.vocab, &r) && r.logits);
    const int64_t limit = 40000;
    dg_gl_set_max_ssbo_block(gl, limit);
    /* the gate/up [E * EI rows of HID f32] and down [E * HID rows of EI f32] tensors: split, inside experts */
    const struct dg_hparams *hp = &m.hp;
    struct dg_row_range parts[64];
    int64_t shapes[2][2] = {{hp->moe_intermediate, hp->hidden}, {hp->hidden, hp->moe_intermediate}};
    for (int s = 0; s < 2; s++) {
        int n = dg_buffer_split_rows(gl, (uint64_t)(hp->n_experts * shapes[s][0]), (uint64_t)shapes[s][1] * 4, parts,
                                     64);
        bool inside = false;
        for (int i = 1; i < n; i++)
            inside |= parts[i].first_row % (uint64_t)shapes[s][0] != 0;
        CHECK_MSG(n > 1 && inside, "%s: expert tensor %d: %d ranges under a %lld-byte limit, none inside an expert",
                  moe_dirs[fi], s, n, (long long)limit);
    }
    if (r.logits) {
        char pid[64];
        snprintf(pid, sizeof pid, "%s-f32", dg_arch_name(hp->arch));
        float *lg = calloc((size_t)r.n_tokens * (size_t)hp->vocab, 4);
        conf_max_batch = 16;
        for (int mode = 0; mode < 2 && lg; mode++) {
            dg_status st = conf_run(gl, &m, pid, &r, mode, lg);
            CHECK_MSG(st == DG_OK, "%s split, mode %d: %s", pid, mode, dg_last_error());
            if (st)
                continue;
            int row;
            double w = conf_worst(lg, r.logits, r.n_tokens, hp->vocab, &row);
            printf("    %-22s %-28s experts in ranges of <= %lld bytes: worst %.2e (position %d)\n", pid,
                   mode ? "prefill 40 (16+16+8)" : "prefill 12 + 28 decodes", (long long)limit, w, row);
            CHECK_MSG(w <= 1e-3, "%s split, mode %d: worst error %.3e at position %d", pid, mode, w, row);
        }
        conf_max_batch = 0;
        free(lg);
    }
    dg_gl_set_max_ssbo_block(gl, 0);
    conf_ref_free(&r);
    dg_model_close(&m);
}

DG_TEST(conf_moe_split_mixtral) { run_moe_split(0); }
DG_TEST(conf_moe_split_gpt_oss) { run_moe_split(2); }

/* ---- prefill grouping: moe_group.glsl's per-expert lists against a CPU grouping ---- */

DG_TEST(kp_moe_group)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* 37 tokens, top-3 of 8 experts, ids from a fixed LCG (a token's k ids distinct, as top-k makes them);
     * token 5 slot 1 holds an out-of-range id 11, which every MoE kernel clamps to NE - 1 = 7. */
    enum { T = 37, K = 3, NE = 8 };
    uint32_t sel[T * 2 * K], groups[NE + NE * T], want_n[NE] = {0}, want[NE][T];
    uint32_t x = 12345;
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < K; k++) {
            uint32_t e;
            bool dup;
            do {
                x = x * 1103515245u + 12345u;
                e = (x >> 16) % NE;
                dup = false;
                for (int j = 0; j < k; j++)
                    dup |= sel[t * 2 * K + j] == e;
            } while (dup);
            sel[t * 2 * K + k] = e;
            sel[t * 2 * K + K + k] = 0x3f000000u; /* weights: unused by the grouping */
        }
        if (t == 5) {
            bool has7 = sel[t * 2 * K] == 7 || sel[t * 2 * K + 2] == 7;
            sel[t * 2 * K + 1] = has7 ? sel[t * 2 * K + 1] : 11;
        }
    }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            uint32_t e = sel[t * 2 * K + k] < NE ? sel[t * 2 * K + k] : NE - 1;
            want[e][want_n[e]++] = (uint32_t)(t * K + k);
        }
    struct dg_define d[] = {{"NE", "8"}, {"TOPK", "3"}};
    struct kt_buf bufs[] = {{0, sel, sizeof sel, NULL}, {1, NULL, sizeof groups, groups}};
    uint32_t ubo[4] = {0, T, 0, 0};
    if (!kt_run(gl, "moe_group.glsl", d, 2, bufs, 2, ubo, 1, 1, 1, 0, 0))
        return;
    int bad = 0, total = 0;
    for (int e = 0; e < NE; e++) {
        total += (int)groups[e];
        if (groups[e] != want_n[e]) {
            CHECK_MSG(false, "expert %d: count %u, expected %u", e, groups[e], want_n[e]);
            continue;
        }
        for (uint32_t j = 0; j < want_n[e]; j++)
            bad += groups[NE + e * T + j] != want[e][j];
    }
    CHECK_MSG(bad == 0, "%d list entries differ from the CPU grouping (token order)", bad);
    CHECK(total == T * K);
}

/* ---- poison: decode reads only the selected experts ---- */

#define MAXE 64


/* A shallow copy of `m` whose stacked expert tensors are private copies with expert e of layer L set to
 * NaN wherever poison[L][e]. Returns the owned buffers through *bufs (freed by the caller). */
static bool poisoned_copy(const struct dg_model *m, bool poison[][MAXE], struct dg_model *out, void ***bufs, int *nb)
{
    *out = *m;
    out->priv = NULL;
    out->tensors = malloc(sizeof *out->tensors * (size_t)m->n_tensors);
    *bufs = calloc((size_t)m->n_tensors, sizeof **bufs);
    *nb = 0;
    if (!out->tensors || !*bufs)
        return false;
    memcpy(out->tensors, m->tensors, sizeof *out->tensors * (size_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        struct dg_tensor *t = &out->tensors[i];
        int L = -1;
        char what[32];
        if (sscanf(t->name, "layer.%d.mlp.experts.%31s", &L, what) != 2 || strchr(what, '.') || L < 0 ||
            L >= m->hp.n_layers)
            continue;
        size_t es = dg_dtype_info(t->dtype)->block_bytes; /* element size (float types only here) */
        if (t->dtype != DG_DT_F32 && t->dtype != DG_DT_BF16 && t->dtype != DG_DT_F16)
            return false;
        uint8_t *c = malloc(t->nbytes);
        if (!c)
            return false;
        memcpy(c, t->data, t->nbytes);
        (*bufs)[(*nb)++] = c;
        int64_t per = dg_tensor_nelems(t) / t->shape[0];
        for (int e = 0; e < t->shape[0] && e < MAXE; e++) {
            if (!poison[L][e])
                continue;
            for (int64_t j = 0; j < per; j++) {
                uint8_t *p = c + ((size_t)e * (size_t)per + (size_t)j) * es;
                if (t->dtype == DG_DT_F32) {
                    float nan = NAN;
                    memcpy(p, &nan, 4);
                } else {
                    uint16_t h = t->dtype == DG_DT_BF16 ? 0x7fc0 : 0x7e00;
                    memcpy(p, &h, 2);
                }
            }
        }
        t->data = c;
    }
    return true;
}

static void free_copy(struct dg_model *c, void **bufs, int nb)
{
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    free(bufs);
    free(c->tensors);
}

/* CPU reference logits [n][vocab] of tokens at positions 0.. on `m`. */
static bool cpu_logits(const struct dg_model *m, const int32_t *tok, int n, float *lg)
{
    struct dg_cpu_model *c = NULL;
    if (dg_cpu_init(m, 4, &c) != DG_OK)
        return false;
    dg_cpu_set_bf16_buffers(c, true);
    bool ok = dg_cpu_forward(c, tok, n, lg, NULL) == DG_OK;
    dg_cpu_free(c);
    return ok;
}

static bool all_finite(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

/* n = 1: the decode dispatch list (one token). n = 2: the prefill list (grouped by expert), where an expert
 * neither token chose must not be read either. */
static void poison_family(int fi, int n)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_model m;
    char dir[1024];
    if (!open_fixture(fi, &m, dir, sizeof dir))
        return;
    const struct dg_hparams *hp = &m.hp;
    const int V = hp->vocab, E = hp->n_experts;
    const int32_t toks[2] = {81, 213}; /* fixed tokens (the fixtures' second and third prompt tokens) */
    static bool poison[DG_MAX_LAYERS][MAXE], used_tab[DG_MAX_LAYERS][MAXE];
    memset(used_tab, 0, sizeof used_tab);
    float *clean = malloc((size_t)V * 4 * 2), *lg = malloc((size_t)V * 4 * 2);
    struct dg_model pm;
    void **bufs = NULL;
    int nb = 0;
    CHECK(E <= MAXE && clean && lg);
    if (E > MAXE || !clean || !lg)
        goto out;
    CHECK(cpu_logits(&m, toks, n, clean) && all_finite(clean, n * V));
    /* which experts does the CPU reference pick? poison one at a time: NaN logits mean it was read */
    int picked_total = 0, moe_layers = 0;
    for (int L = 0; L < hp->n_layers; L++) {
        if (!hp->layer_moe[L])
            continue;
        moe_layers++;
        int picked = 0;
        for (int e = 0; e < E; e++) {
            memset(poison, 0, sizeof poison);
            poison[L][e] = true;
            bool ok = poisoned_copy(&m, poison, &pm, &bufs, &nb) && cpu_logits(&pm, toks, n, lg);
            free_copy(&pm, bufs, nb);
            CHECK(ok);
            if (!ok)
                goto out;
            bool used = !all_finite(lg, n * V);
            picked += used;
            used_tab[L][e] = used;
        }
        CHECK_MSG(n == 1 ? picked == hp->n_experts_used : picked >= hp->n_experts_used && picked <= n * hp->n_experts_used,
                  "%s layer %d: %d experts read by %d tokens choosing %d each", moe_dirs[fi], L, picked, n,
                  hp->n_experts_used);
        picked_total += picked;
    }
    CHECK(moe_layers > 0 && picked_total < moe_layers * E);
    /* poison every expert the reference did not pick, in every MoE layer */
    memset(poison, 0, sizeof poison);
    for (int L = 0; L < hp->n_layers; L++)
        for (int e = 0; e < E && hp->layer_moe[L]; e++)
            poison[L][e] = !used_tab[L][e];
    if (!poisoned_copy(&m, poison, &pm, &bufs, &nb)) {
        CHECK(false);
        free_copy(&pm, bufs, nb);
        goto out;
    }
    /* the CPU reference on the poisoned model is still the clean result */
    CHECK(cpu_logits(&pm, toks, n, lg) && all_finite(lg, n * V));
    /* the GPU run (one token: the decode dispatch list; two: the prefill list) on the poisoned weights */
    const struct dg_kp_registry *rg = conf_registry();
    const struct dg_gl_caps *gc = dg_gl_caps(gl);
    struct dg_kp_caps kc = {gc->subgroup, gc->is_software, gc->max_invocations, gc->max_shared_memory};
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, dg_kplan_auto_profile(&kc)));
    char pid[64];
    snprintf(pid, sizeof pid, "%s-f32", dg_arch_name(hp->arch));
    dg_kp_choice_set(&plan.kernel_path, pid, "test");
    struct dg_kpath p;
    struct dg_exec *ex = NULL;
    if (rg && dg_kplan_load_path(&plan, rg, &kc, dg_arch_name(hp->arch), "f32", &p) == DG_OK) {
        struct dg_exec_options opt = {.ctx = 8, .max_batch = 8, .bf16_buffers = true};
        dg_status st = dg_exec_create(gl, &pm, &plan, rg, &p, &opt, &ex);
        CHECK_MSG(st == DG_OK, "%s", dg_last_error());
        if (!st) {
            memset(lg, 0, (size_t)V * 4 * 2);
            CHECK_OK(dg_exec_forward(ex, toks, n, lg, NULL));
            CHECK_MSG(all_finite(lg, n * V), "%s: poisoned (unselected) experts reached the output", moe_dirs[fi]);
            double w = conf_worst(lg, clean, n, V, NULL);
            printf("    %-12s poisoned %d of %d experts: GPU %s finite, worst relative error %.2e\n", moe_dirs[fi],
                   moe_layers * E - picked_total, moe_layers * E, n == 1 ? "decode" : "prefill of 2 (grouped)", w);
            CHECK_MSG(w <= 1e-3, "%s poisoned: worst error %.3e", moe_dirs[fi], w);
            struct dg_exec_stats es;
            dg_exec_stats(ex, &es);
            CHECK(es.active_weight_bytes > 0 && es.active_weight_bytes < es.weight_bytes);
        }
        dg_exec_destroy(ex);
        dg_kpath_free(&p);
    } else {
        CHECK_MSG(false, "%s", dg_last_error());
    }
    free_copy(&pm, bufs, nb);
out:
    free(clean);
    free(lg);
    dg_model_close(&m);
}

DG_TEST(conf_moe_poison_mixtral) { poison_family(0, 1); }
DG_TEST(conf_moe_poison_qwen3_moe) { poison_family(1, 1); }
DG_TEST(conf_moe_poison_gpt_oss) { poison_family(2, 1); }
DG_TEST(conf_moe_poison_phimoe) { poison_family(3, 1); }
DG_TEST(conf_moe_poison_prefill_mixtral) { poison_family(0, 2); }
DG_TEST(conf_moe_poison_prefill_qwen3_moe) { poison_family(1, 2); }
DG_TEST(conf_moe_poison_prefill_gpt_oss) { poison_family(2, 2); }
DG_TEST(conf_moe_poison_prefill_phimoe) { poison_family(3, 2); }

/* ---- MXFP4: GPU dequant (matmul.glsl, WTYPE MXFP4) against dg_dequantize ---- */

DG_TEST(kp_mxfp4_dequant)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* 9 rows x 64 columns = 18 blocks, one E8M0 exponent each (the smallest, 0, and 1 give subnormal
     * scales; 250 is near the top without overflowing 12 * 2^(e-128)); every block holds all 16 E2M1 codes
     * in both nibbles. x = identity (64 tokens), so y[t][n] = W[n][t]: the dequantized matrix. */
    enum { N = 9, K = 64, NB = N * K / 32 };
    static const uint8_t exps[NB] = {0, 1, 2, 3, 7, 50, 100, 120, 126, 127, 128, 129, 130, 140, 180, 200, 240, 250};
    uint8_t w[NB * 17];
    for (int b = 0; b < NB; b++) {
        w[b * 17] = exps[b];
        for (int j = 0; j < 16; j++)
            w[b * 17 + 1 + j] = (uint8_t)((j & 15) | (((j + 5 + b) & 15) << 4));
    }
    float ref[N * K], x[K * K], y[K * N];
    CHECK_OK(dg_dequantize(DG_DT_MXFP4, w, ref, N * K));
    memset(x, 0, sizeof x);
    for (int t = 0; t < K; t++)
        x[t * K + t] = 1.0f;
    char wts[8], rbs[16];
    snprintf(wts, sizeof wts, "%d", (int)DG_DT_MXFP4);
    snprintf(rbs, sizeof rbs, "%llu", (unsigned long long)dg_dtype_row_bytes(DG_DT_MXFP4, K));
    struct dg_define d[] = {{"N", "9"}, {"K", "64"}, {"WTYPE", wts}, {"WROWBYTES", rbs}, {"GEMV_ROW", "1"}};
    uint8_t wpad[NB * 17 + 16] = {0};
    memcpy(wpad, w, sizeof w);
    struct kt_buf bufs[] = {{0, x, sizeof x, NULL}, {1, wpad, sizeof wpad, NULL}, {3, NULL, sizeof y, y}};
    uint32_t ubo[4] = {0, K, 0, 0};
    if (!kt_run(gl, "matmul.glsl", d, 5, bufs, 3, ubo, 1, K, 1, 0, N))
        return;
    int bad = 0, sub = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float r = ref[n * K + k], g = y[k * N + n];
            /* GLSL ES lets a GPU flush subnormal results to zero: those may read 0; all others exactly */
            bool subn = r != 0 && fabsf(r) < 1.17549435e-38f;
            sub += subn;
            bool ok = g == r || (subn && g == 0.0f);
            if (!ok && bad++ < 5)
                printf("    mxfp4 row %d col %d (e8m0 %d, code %d): gpu %g, cpu %g\n", n, k, exps[(n * K + k) / 32],
                       (k % 32) < 16 ? w[((n * K + k) / 32) * 17 + 1 + k % 16] & 15
                                     : w[((n * K + k) / 32) * 17 + 1 + k % 16] >> 4,
                       g, r);
        }
    CHECK_MSG(bad == 0, "%d of %d MXFP4 values differ from dg_dequantize", bad, N * K);
    CHECK(sub > 0); /* the smallest exponents were exercised */
}

/* ---- q8_0 MoE paths ---- */

/* A copy of `m` whose matrices hold what the q8_0 path puts on the GPU, dequantized to f32: Q8_0 where rows
 * are whole 32-blocks, else f16 (weights.c's fallback); routers and biases stay f32 as the executor keeps
 * them. The f32 path on this copy is the reference for the q8_0 path on `m` (as test_quant_paths.c). */
static bool q8_reference_model(const struct dg_model *m, struct dg_model *out, void ***bufs, int *nb)
{
    *out = *m;
    out->priv = NULL;
    out->tensors = malloc(sizeof *out->tensors * (size_t)m->n_tensors);
    *bufs = calloc((size_t)m->n_tensors, sizeof **bufs);
    *nb = 0;
    if (!out->tensors || !*bufs)
        return false;
    memcpy(out->tensors, m->tensors, sizeof *out->tensors * (size_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        struct dg_tensor *t = &out->tensors[i];
        size_t nl = strlen(t->name);
        if (t->ndim < 2 || (nl >= 5 && !strcmp(t->name + nl - 5, ".bias")) ||
            (nl >= 11 && !strcmp(t->name + nl - 11, ".mlp.router")))
            continue;
        if (t->dtype != DG_DT_BF16 && t->dtype != DG_DT_F32 && t->dtype != DG_DT_F16)
            return false;
        uint64_t n = (uint64_t)dg_tensor_nelems(t), cols = (uint64_t)t->shape[t->ndim - 1];
        float *f = malloc(n * 4);
        void *q = malloc(dg_dtype_row_bytes(DG_DT_Q8_0, n) + 64);
        if (!f || !q) {
            free(f);
            free(q);
            return false;
        }
        (*bufs)[(*nb)++] = f;
        for (uint64_t j = 0; j < n; j++)
            f[j] = t->dtype == DG_DT_F32   ? ((const float *)t->data)[j]
                   : t->dtype == DG_DT_BF16 ? dg_bf16_to_f32(((const uint16_t *)t->data)[j])
                                            : dg_f16_to_f32(((const uint16_t *)t->data)[j]);
        bool ok = true;
        if (dg_dtype_row_ok(DG_DT_Q8_0, cols))
            ok = dg_quantize(DG_DT_Q8_0, f, q, n) == DG_OK && dg_dequantize(DG_DT_Q8_0, q, f, n) == DG_OK;
        else
            for (uint64_t j = 0; j < n; j++)
                f[j] = dg_f16_to_f32(dg_f32_to_f16(f[j]));
        free(q);
        if (!ok)
            return false;
        t->dtype = DG_DT_F32;
        t->data = f;
        t->nbytes = n * 4;
    }
    return true;
}

static void run_moe_q8(int fi)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_model m, dq;
    char dir[1024];
    if (!open_fixture(fi, &m, dir, sizeof dir))
        return;
    struct conf_ref r;
    CHECK(conf_ref_load(dir, m.hp.vocab, &r));
    size_t sz = (size_t)r.n_tokens * (size_t)m.hp.vocab * 4;
    float *ref = malloc(sz), *got = malloc(sz);
    void **bufs = NULL;
    int nb = 0;
    if (ref && got && q8_reference_model(&m, &dq, &bufs, &nb)) {
        char ref_id[64], pid[64];
        snprintf(ref_id, sizeof ref_id, "%s-f32", dg_arch_name(m.hp.arch));
        snprintf(pid, sizeof pid, "%s-q8_0", dg_arch_name(m.hp.arch));
        dg_status st = conf_run(gl, &dq, ref_id, &r, 1, ref);
        CHECK_MSG(st == DG_OK, "%s on dequantized weights: %s", ref_id, dg_last_error());
        for (int mode = 0; mode < 2 && !st; mode++) {
            dg_status s2 = conf_run(gl, &m, pid, &r, mode, got);
            CHECK_MSG(s2 == DG_OK, "%s mode %d: %s", pid, mode, dg_last_error());
            if (s2)
                continue;
            int row;
            double w = conf_worst(got, ref, r.n_tokens, m.hp.vocab, &row);
            printf("    %-22s %-24s vs f32 on the same dequantized weights: worst %.2e (position %d)\n", pid,
                   mode ? "prefill all 40" : "prefill 12 + decodes", w, row);
            /* 5e-3 as test_quant_paths.c: same weights, the f16 KV cache is the difference. Routing is
             * discrete: on Mixtral's Q8_0 weights one router decision (position 8, last layer) is near-tied
             * and the f16 KV cache flips it (that position alone reads 6e-2; every other stays ~2e-4, so
             * no earlier layer differs). One such position is allowed, under 0.1, and reported. */
            int over = 0;
            for (int t = 0; t < r.n_tokens; t++) {
                double e = conf_worst(got + (size_t)t * m.hp.vocab, ref + (size_t)t * m.hp.vocab, 1, m.hp.vocab, NULL);
                if (e > 5e-3) {
                    over++;
                    printf("      position %d: %.2e (an expert choice differs: near-tied router)\n", t, e);
                }
            }
            CHECK_MSG(over <= 1 && w < 0.1, "%s mode %d: worst %.3e at position %d, %d positions over 5e-3", pid, mode,
                      w, row, over);
        }
    } else {
        CHECK_MSG(false, "building the q8_0 reference model failed");
    }
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    free(bufs);
    if (nb || dq.tensors != m.tensors)
        free(dq.tensors);
    free(ref);
    free(got);
    conf_ref_free(&r);
    dg_model_close(&m);
}

DG_TEST(conf_mixtral_q8_0) { run_moe_q8(0); }
DG_TEST(conf_qwen3_moe_q8_0) { run_moe_q8(1); }
DG_TEST(conf_gpt_oss_q8_0) { run_moe_q8(2); }
DG_TEST(conf_phimoe_q8_0) { run_moe_q8(3); }
