/* test_sampler.c: the GPU sampler (glsl/sample_*.glsl, src/pipe/sampler.c) on llvmpipe against the
 * properties it promises and against the CPU reference (sampler_ref.c), with fixed seeds. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gl_fixture.h"
#include "pipe/sampler.h"
#include "test.h"

static uint32_t lcg = 2024;
static float frand(void) /* [-1, 1) */
{
    lcg = lcg * 1664525u + 1013904223u;
    return (float)((lcg >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static void rand_logits(float *x, int n, float scale)
{
    for (int i = 0; i < n; i++)
        x[i] = frand() * scale;
}

static struct dg_sample_params greedy(void)
{
    struct dg_sample_params p;
    dg_sample_params_default(&p);
    p.temp = 0;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    return p;
}

/* A sampler and a logits buffer for one vocabulary. */
struct rig {
    struct dg_gl *gl;
    struct dg_sampler *s;
    struct dg_buffer *lg;
    int vocab;
};

static bool rig_open(struct rig *r, int vocab, int cap, const uint32_t *eos, int n_eos)
{
    memset(r, 0, sizeof *r);
    r->gl = dg_test_gl();
    if (!r->gl)
        return false;
    r->vocab = vocab;
    struct dg_sampler_options o = {.vocab = vocab, .history_cap = cap, .eos = eos, .n_eos = n_eos};
    dg_status st = dg_sampler_create(r->gl, &o, &r->s);
    CHECK_MSG(st == DG_OK, "sampler create: %s", dg_last_error());
    if (st == DG_OK)
        CHECK_OK(dg_buffer_alloc(r->gl, (uint64_t)vocab * 4, NULL, &r->lg));
    return st == DG_OK && r->lg;
}

static void rig_close(struct rig *r)
{
    if (r->gl) {
        dg_sampler_destroy(r->s);
        dg_buffer_release(r->gl, r->lg);
    }
}

static void rig_logits(struct rig *r, const float *x)
{
    CHECK_OK(dg_buffer_upload(r->gl, r->lg, 0, (uint64_t)r->vocab * 4, x));
}

/* Records n steps over the same logits (no penalties: they would change them) and reads the ids. */
static bool draw_many(struct rig *r, const struct dg_sample_params *p, int n, uint32_t *ids)
{
    dg_status st = dg_sampler_set_params(r->s, p);
    CHECK_MSG(st == DG_OK, "set_params: %s", dg_last_error());
    if (st)
        return false;
    CHECK_OK(dg_sampler_reset(r->s, NULL, 0));
    for (int i = 0; i < n && !st; i++)
        st = dg_sampler_record(r->s, r->lg, 0, NULL, 0);
    CHECK_MSG(st == DG_OK, "record: %s", dg_last_error());
    struct dg_sampler_state ss;
    if (!st)
        st = dg_sampler_read(r->s, 0, n, ids, &ss);
    CHECK_MSG(st == DG_OK, "read: %s", dg_last_error());
    if (!st) {
        CHECK(ss.n_hist == (uint32_t)n && ss.draws == (uint32_t)n && ss.stop_at == DG_SAMPLER_NONE);
        for (int i = 0; i < n; i++)
            CHECK_MSG(ids[i] < (uint32_t)r->vocab, "draw %d: id %u outside the vocabulary", i, ids[i]);
    }
    return st == DG_OK;
}

/* The CPU's greedy id (after no penalties). */
static uint32_t argmax(const float *x, int n)
{
    uint32_t b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = (uint32_t)i;
    return b;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

DG_TEST(gl_sampler_greedy_is_argmax_lowest_id_on_ties)
{
    static const int sizes[] = {1, 7, 300, 8192, 65537};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int v = sizes[k];
        struct rig r;
        if (!rig_open(&r, v, 64, NULL, 0)) {
            rig_close(&r);
            return;
        }
        float *x = malloc((size_t)v * 4);
        for (int trial = 0; trial < 3; trial++) {
            rand_logits(x, v, 8);
            if (trial == 1 && v > 5) { /* a tie: the lower id must win */
                int a = v / 3, b = v - 2;
                x[a] = x[b] = 20;
            }
            if (trial == 2) /* the maximum at the very end */
                x[v - 1] = 30;
            rig_logits(&r, x);
            uint32_t ids[3];
            /* temp 0 is greedy whatever the truncations say */
            struct dg_sample_params p = greedy();
            p.top_k = 5;
            p.top_p = 0.5f;
            if (!draw_many(&r, &p, 3, ids))
                break;
            for (int i = 0; i < 3; i++)
                CHECK_MSG(ids[i] == argmax(x, v), "vocab %d trial %d: GPU %u, argmax %u", v, trial, ids[i],
                          argmax(x, v));
        }
        free(x);
        rig_close(&r);
    }
}

DG_TEST(gl_sampler_large_vocab_262144)
{
    const int v = 262144;
    struct rig r;
    if (!rig_open(&r, v, 64, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float *x = malloc((size_t)v * 4), *y = malloc((size_t)v * 4);
    rand_logits(x, v, 10);
    x[200001] = 15;
    x[123] = 14.5f;
    rig_logits(&r, x);
    uint32_t ids[4];
    struct dg_sample_params p = greedy();
    if (draw_many(&r, &p, 2, ids))
        CHECK_MSG(ids[0] == 200001 && ids[1] == 200001, "greedy over 262144: %u %u", ids[0], ids[1]);
    /* the candidate path at full size against the reference */
    dg_sample_params_default(&p);
    p.seed = 77;
    if (draw_many(&r, &p, 4, ids))
        for (uint32_t d = 0; d < 4; d++) {
            memcpy(y, x, (size_t)v * 4);
            uint32_t want;
            struct dg_sample_ref_info info;
            CHECK_OK(dg_sampler_ref(&p, dg_sampler_candidates(r.s), y, v, ids, (int)d, d, &want, &info));
            CHECK_MSG(ids[d] == want || info.key - info.runner_up < 1e-3f, "draw %u: GPU %u, reference %u", d,
                      ids[d], want);
        }
    free(x);
    free(y);
    rig_close(&r);
}

DG_TEST(gl_sampler_top_k_never_leaves_the_top_k)
{
    const int v = 8192, n = 300;
    struct rig r;
    if (!rig_open(&r, v, n, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float *x = malloc((size_t)v * 4), *sorted = malloc((size_t)v * 4);
    rand_logits(x, v, 3);
    memcpy(sorted, x, (size_t)v * 4);
    qsort(sorted, (size_t)v, 4, cmp_desc);
    rig_logits(&r, x);
    static const int ks[] = {1, 10, 200};
    for (size_t t = 0; t < 3; t++) {
        struct dg_sample_params p = greedy();
        p.temp = 5; /* flat: without top-k most draws would leave the top k */
        p.top_k = ks[t];
        p.seed = 1 + t;
        uint32_t ids[300];
        if (!draw_many(&r, &p, n, ids))
            break;
        float kth = sorted[ks[t] - 1];
        int bad = 0, distinct = 0;
        char *seen = calloc((size_t)v, 1);
        for (int i = 0; i < n; i++) {
            bad += x[ids[i]] < kth;
            distinct += !seen[ids[i]];
            seen[ids[i]] = 1;
        }
        free(seen);
        CHECK_MSG(bad == 0, "top-k %d: %d of %d draws outside the top k", ks[t], bad, n);
        /* and it does sample: with k = 10 at temp 5 all ten show up in 300 draws (p(miss) < 1e-10) */
        if (ks[t] == 1)
            CHECK(distinct == 1);
        else if (ks[t] == 10)
            CHECK_MSG(distinct == 10, "top-k 10: %d distinct ids", distinct);
        else
            CHECK_MSG(distinct > 100, "top-k 200: only %d distinct ids in 300 draws", distinct);
    }
    free(x);
    free(sorted);
    rig_close(&r);
}

DG_TEST(gl_sampler_top_p_keeps_the_smallest_set_over_p)
{
    const int v = 5000, n = 400;
    struct rig r;
    if (!rig_open(&r, v, n, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float *x = malloc((size_t)v * 4);
    rand_logits(x, v, 1);
    /* a head of 12 tokens with known mass, well away from the p values below */
    for (int i = 0; i < 12; i++)
        x[(i * 397) % v] = 9.0f - 0.25f * (float)i;
    rig_logits(&r, x);
    uint32_t order[12];
    for (int i = 0; i < 12; i++)
        order[i] = (uint32_t)((i * 397) % v);
    double M = 9, Z = 0;
    for (int i = 0; i < v; i++)
        Z += exp((double)x[i] - M);
    static const float ps[] = {0.3f, 0.6f, 0.8f};
    for (size_t t = 0; t < 3; t++) {
        /* the smallest prefix of the sorted head whose mass reaches p (top-p runs at temperature 1) */
        double cum = 0;
        int need = 0;
        while (need < 12 && cum < ps[t] * Z)
            cum += exp((double)x[order[need++]] - M);
        CHECK_MSG(cum >= ps[t] * Z, "test setup: the head should hold mass %g", ps[t]);
        double prev = cum - exp((double)x[order[need - 1]] - M);
        CHECK_MSG(fabs(prev / Z - ps[t]) > 1e-3 && fabs(cum / Z - ps[t]) > 1e-3, "test setup: p near a boundary");
        struct dg_sample_params p = greedy();
        p.temp = 3;
        p.top_p = ps[t];
        p.seed = 100 + t;
        uint32_t ids[400];
        if (!draw_many(&r, &p, n, ids))
            break;
        int bad = 0, last_seen = 0;
        for (int i = 0; i < n; i++) {
            int pos = -1;
            for (int j = 0; j < need; j++)
                if (order[j] == ids[i])
                    pos = j;
            bad += pos < 0;
            last_seen += pos == need - 1;
        }
        CHECK_MSG(bad == 0, "top-p %g: %d of %d draws outside the smallest set (%d tokens)", ps[t], bad, n, need);
        CHECK_MSG(last_seen > 0, "top-p %g: the set's last token (%d of %d) was never drawn", ps[t], need, need);
    }
    free(x);
    rig_close(&r);
}

DG_TEST(gl_sampler_min_p_on_both_paths)
{
    const int v = 3000, n = 300;
    struct rig r;
    if (!rig_open(&r, v, n, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float *x = malloc((size_t)v * 4);
    rand_logits(x, v, 4);
    rig_logits(&r, x);
    float M = x[argmax(x, v)];
    for (int path = 0; path < 2; path++) {
        struct dg_sample_params p = greedy();
        p.temp = 4;
        p.min_p = 0.2f;
        p.top_k = path ? 100 : 0; /* candidate path, or the whole-vocabulary Gumbel path */
        p.seed = 9;
        uint32_t ids[300];
        if (!draw_many(&r, &p, n, ids))
            break;
        int allowed = 0, bad = 0, distinct = 0;
        for (int i = 0; i < v; i++)
            allowed += x[i] >= M + logf(0.2f);
        char *seen = calloc((size_t)v, 1);
        for (int i = 0; i < n; i++) {
            bad += x[ids[i]] < M + logf(0.2f);
            distinct += !seen[ids[i]];
            seen[ids[i]] = 1;
        }
        free(seen);
        CHECK_MSG(bad == 0, "min-p path %d: %d draws below max + ln(0.2)", path, bad);
        /* 300 draws at temperature 4 spread widely: over the ~600 allowed tokens, or the 100 of top-k */
        if (path == 0)
            CHECK_MSG(distinct > 150, "min-p: %d distinct of %d allowed", distinct, allowed);
        else
            CHECK_MSG(distinct > 60 && distinct <= 100, "min-p + top-k 100: %d distinct", distinct);
    }
    free(x);
    rig_close(&r);
}

DG_TEST(gl_sampler_same_seed_same_ids)
{
    const int v = 4096, n = 64;
    struct rig r;
    if (!rig_open(&r, v, n, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float *x = malloc((size_t)v * 4);
    rand_logits(x, v, 2);
    rig_logits(&r, x);
    for (int path = 0; path < 2; path++) {
        struct dg_sample_params p = greedy();
        p.temp = 1;
        p.top_k = path ? 50 : 0;
        p.seed = 0x123456789abcull;
        uint32_t a[64], b[64], c[64];
        draw_many(&r, &p, n, a);
        draw_many(&r, &p, n, b);
        p.seed++;
        draw_many(&r, &p, n, c);
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "path %d: the same seed gave different ids", path);
        int same = 0;
        for (int i = 0; i < n; i++)
            same += a[i] == c[i];
        /* at temp 1 over 4096 (or 50) flat-ish tokens, agreeing on > 32 of 64 draws is essentially impossible */
        CHECK_MSG(same < n / 2, "path %d: seeds 1 apart agree on %d of %d draws", path, same, n);
    }
    free(x);
    rig_close(&r);
}

/* Runs `steps` decode steps on the GPU and on the reference with the same prompt history and penalties
 * (logits re-uploaded each step, since penalties change them in place); ids must agree unless the
 * reference's margin is within float rounding. */
static void compare_with_reference(struct rig *r, const struct dg_sample_params *p, const float *x, int steps,
                                   const char *what)
{
    int v = r->vocab;
    uint32_t hist[64 + 16];
    int n0 = 16;
    for (int i = 0; i < n0; i++)
        hist[i] = (uint32_t)((i * 7919) % v);
    CHECK_OK(dg_sampler_set_params(r->s, p));
    CHECK_OK(dg_sampler_reset(r->s, hist, n0));
    float *y = malloc((size_t)v * 4);
    int n = n0;
    for (int step = 0; step < steps; step++) {
        rig_logits(r, x);
        CHECK_OK(dg_sampler_record(r->s, r->lg, 0, NULL, 0));
        uint32_t got;
        struct dg_sampler_state ss;
        CHECK_OK(dg_sampler_read(r->s, (uint32_t)n, 1, &got, &ss));
        memcpy(y, x, (size_t)v * 4);
        uint32_t want;
        struct dg_sample_ref_info info;
        CHECK_OK(dg_sampler_ref(p, dg_sampler_candidates(r->s), y, v, hist, n, (uint32_t)step, &want, &info));
        if (got != want) {
            CHECK_MSG(info.key - info.runner_up < 1e-3f, "%s, step %d: GPU %u, reference %u (margin %g)", what, step,
                      got, want, info.key - info.runner_up);
            break; /* the histories differ from here */
        }
        hist[n++] = got;
    }
    free(y);
}

DG_TEST(gl_sampler_matches_cpu_reference)
{
    const int v = 2000;
    struct rig r;
    if (!rig_open(&r, v, 128, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float *x = malloc((size_t)v * 4);
    rand_logits(x, v, 3);
    for (int i = 0; i < 16; i++) /* the prompt's tokens are likely, so penalties matter */
        x[(i * 7919) % v] += 4;
    struct {
        const char *what;
        float temp, top_p, min_p, rep, pres, freq;
        int top_k, last_n;
    } cases[] = {
        {"temperature", 1.0f, 1, 0, 1, 0, 0, 0, 64},
        {"temperature + min-p", 0.7f, 1, 0.1f, 1, 0, 0, 0, 64},
        {"top-k", 1.2f, 1, 0, 1, 0, 0, 40, 64},
        {"top-p", 1.0f, 0.9f, 0, 1, 0, 0, 0, 64},
        {"llama.cpp defaults", 0.8f, 0.95f, 0.05f, 1, 0, 0, 40, 64},
        {"penalties", 0.9f, 0.95f, 0, 1.3f, 0.5f, 0.25f, 100, 64},
        {"penalties, whole history", 1.0f, 1, 0, 1.1f, -0.2f, 0.3f, 0, -1},
        {"greedy + penalties", 0, 1, 0, 1.5f, 0.2f, 0.4f, 0, 8},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct dg_sample_params p = {.temp = cases[c].temp, .top_k = cases[c].top_k, .top_p = cases[c].top_p,
                                     .min_p = cases[c].min_p, .repeat_penalty = cases[c].rep,
                                     .penalty_last_n = cases[c].last_n, .presence_penalty = cases[c].pres,
                                     .frequency_penalty = cases[c].freq, .seed = 4242 + c};
        compare_with_reference(&r, &p, x, 24, cases[c].what);
    }
    free(x);
    rig_close(&r);
}

DG_TEST(gl_sampler_penalties_change_the_argmax)
{
    const int v = 100;
    struct rig r;
    if (!rig_open(&r, v, 16, NULL, 0)) {
        rig_close(&r);
        return;
    }
    float x[100];
    for (int i = 0; i < v; i++)
        x[i] = -5.0f + 0.01f * (float)i;
    x[10] = 3.0f;  /* best, in the history: 3 / 1.5 = 2 */
    x[20] = 2.5f;  /* second, not in the history: wins under the repeat penalty */
    x[30] = -0.5f; /* negative and repeated: multiplied, -0.75 */
    uint32_t hist[3] = {10, 30, 10};
    struct {
        float rep, pres, freq;
        uint32_t want;
    } cases[] = {{1.0f, 0, 0, 10}, {1.5f, 0, 0, 20}, {1.0f, 0.6f, 0, 20}, {1.0f, 0, 0.3f, 20}, {1.1f, 0, 0, 10}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct dg_sample_params p = greedy();
        p.repeat_penalty = cases[c].rep;
        p.presence_penalty = cases[c].pres;
        p.frequency_penalty = cases[c].freq;
        p.penalty_last_n = 64;
        CHECK_OK(dg_sampler_set_params(r.s, &p));
        CHECK_OK(dg_sampler_reset(r.s, hist, 3));
        rig_logits(&r, x);
        CHECK_OK(dg_sampler_record(r.s, r.lg, 0, NULL, 0));
        uint32_t got;
        CHECK_OK(dg_sampler_read(r.s, 3, 1, &got, NULL));
        float y[100], g[100];
        memcpy(y, x, sizeof y);
        uint32_t want;
        CHECK_OK(dg_sampler_ref(&p, 256, y, v, hist, 3, 0, &want, NULL));
        CHECK_MSG(got == cases[c].want && want == cases[c].want, "case %zu: GPU %u, reference %u, expected %u", c, got,
                  want, cases[c].want);
        /* the penalised logits themselves, in place on the GPU */
        CHECK_OK(dg_buffer_download(r.gl, r.lg, 0, sizeof g, g));
        for (int i = 0; i < v; i++)
            CHECK_MSG(g[i] == y[i], "case %zu: logit %d is %g on the GPU, %g on the CPU", c, i, g[i], y[i]);
    }
    /* the rules themselves: 3 / 1.5, -0.5 * 1.5, count 2 with frequency 0.3 and presence 0.6 */
    float y[100];
    memcpy(y, x, sizeof y);
    struct dg_sample_params p = greedy();
    p.repeat_penalty = 1.5f;
    p.presence_penalty = 0.6f;
    p.frequency_penalty = 0.3f;
    p.penalty_last_n = 64;
    uint32_t id;
    CHECK_OK(dg_sampler_ref(&p, 256, y, v, hist, 3, 0, &id, NULL));
    CHECK_NEAR(y[10], 3.0 / 1.5 - 2 * 0.3 - 0.6, 1e-6);
    CHECK_NEAR(y[30], -0.5 * 1.5 - 0.3 - 0.6, 1e-6);
    CHECK(y[20] == 2.5f);
    rig_close(&r);
}

/* Pearson's chi-square of observed counts against probabilities (cells with expectation >= 5). */
static double chi_square(const int *obs, const double *prob, int k, int n, int *dof)
{
    double chi = 0;
    *dof = -1;
    for (int i = 0; i < k; i++) {
        double e = prob[i] * n;
        if (e < 5) {
            CHECK_MSG(obs[i] <= (e < 1e-9 ? 0 : n), "cell %d: %d draws where the probability is %g", i, obs[i], prob[i]);
            continue;
        }
        chi += (obs[i] - e) * (obs[i] - e) / e;
        (*dof)++;
    }
    return chi;
}

DG_TEST(gl_sampler_distribution_matches_softmax)
{
    enum { V = 8, N = 3000 };
    struct rig r;
    if (!rig_open(&r, V, N, NULL, 0)) {
        rig_close(&r);
        return;
    }
    const float x[V] = {1.0f, 2.0f, 0.5f, 1.5f, -1.0f, 2.2f, 0.0f, 1.8f};
    rig_logits(&r, x);
    /* chi-square critical values at p = 0.001 for 1..7 degrees of freedom: a correct sampler fails one
     * of these fixed-seed checks with probability about 0.1% each */
    static const double crit[8] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
    struct {
        const char *what;
        float temp, top_p, min_p;
        int top_k;
    } cases[] = {
        {"temperature 0.7", 0.7f, 1, 0, 0},
        {"temperature 1.5, top-k 4", 1.5f, 1, 0, 4},
        {"top-p 0.7", 1.0f, 0.7f, 0, 0},
        {"min-p 0.3", 1.3f, 1, 0.3f, 0},
    };
    static uint32_t ids[N];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct dg_sample_params p = greedy();
        p.temp = cases[c].temp;
        p.top_k = cases[c].top_k;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.seed = 31337 + c;
        if (!draw_many(&r, &p, N, ids))
            break;
        /* the kept set by the documented order (top-k, top-p at temperature 1, min-p), then softmax(x/T) */
        int order[V];
        for (int i = 0; i < V; i++)
            order[i] = i;
        for (int i = 0; i < V; i++)
            for (int j = i + 1; j < V; j++)
                if (x[order[j]] > x[order[i]]) {
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        int K = p.top_k > 0 ? p.top_k : V;
        double M = x[order[0]], Z = 0, cum = 0;
        for (int j = 0; j < V; j++)
            Z += exp(x[j] - M);
        if (p.top_p < 1)
            for (int j = 0; j < K; j++) {
                cum += exp(x[order[j]] - M);
                if (cum >= p.top_p * Z) {
                    K = j + 1;
                    break;
                }
            }
        if (p.min_p > 0)
            for (int j = 1; j < K; j++)
                if (x[order[j]] < M + log(p.min_p)) {
                    K = j;
                    break;
                }
        double prob[V] = {0}, zt = 0;
        for (int j = 0; j < K; j++)
            zt += exp((x[order[j]] - M) / p.temp);
        for (int j = 0; j < K; j++)
            prob[order[j]] = exp((x[order[j]] - M) / p.temp) / zt;
        int obs[V] = {0};
        for (int i = 0; i < N; i++)
            obs[ids[i]]++;
        int dof;
        double chi = chi_square(obs, prob, V, N, &dof);
        CHECK_MSG(dof >= 1 && chi < crit[dof], "%s: chi-square %.2f with %d dof (critical %.2f at p=0.001), kept %d",
                  cases[c].what, chi, dof, crit[dof > 0 ? dof : 0], K);
    }
    rig_close(&r);
}

DG_TEST(gl_sampler_token_slot_and_unaligned_logits)
{
    /* logits row 1 of [2][1001]: byte offset 4004 is not 16-aligned */
    const int v = 1001;
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_sampler *s = NULL;
    struct dg_sampler_options o = {.vocab = v, .history_cap = 8};
    CHECK_OK(dg_sampler_create(gl, &o, &s));
    if (!s)
        return;
    float *x = malloc(2 * (size_t)v * 4);
    rand_logits(x, 2 * v, 5);
    x[17] = 50;          /* row 0's best: must not be picked */
    x[v + 999] = 40;     /* row 1's best */
    struct dg_buffer *lg = NULL, *tok = NULL;
    uint32_t init[9];
    for (int i = 0; i < 9; i++)
        init[i] = 1000 + (uint32_t)i;
    CHECK_OK(dg_buffer_alloc(gl, 2 * (uint64_t)v * 4, x, &lg));
    CHECK_OK(dg_buffer_alloc(gl, sizeof init, init, &tok));
    CHECK_OK(dg_sampler_record(s, lg, (uint64_t)v * 4, tok, 5));
    uint32_t back[9];
    CHECK_OK(dg_gl_read_u32_fenced(gl, tok, 0, 9, back));
    for (int i = 0; i < 9; i++)
        CHECK_MSG(back[i] == (i == 5 ? 999u : init[i]), "token slot element %d: %u", i, back[i]);
    uint32_t h;
    struct dg_sampler_state ss;
    CHECK_OK(dg_sampler_read(s, 0, 1, &h, &ss));
    CHECK(h == 999 && ss.n_hist == 1 && ss.draws == 1);
    /* misaligned or out-of-range logits are refused */
    CHECK(dg_sampler_record(s, lg, 2, NULL, 0) == DG_E_USAGE);
    CHECK(dg_sampler_record(s, lg, (uint64_t)v * 4 + 4, NULL, 0) == DG_E_USAGE);
    free(x);
    dg_buffer_release(gl, lg);
    dg_buffer_release(gl, tok);
    dg_sampler_destroy(s);
}

DG_TEST(gl_sampler_eos_stop_flag_trims_a_multi_step_group)
{
    const int v = 32, steps = 40;
    const uint32_t eos[3] = {5, 9, 31};
    struct rig r;
    if (!rig_open(&r, v, 64, eos, 3)) {
        rig_close(&r);
        return;
    }
    float x[32];
    for (int i = 0; i < v; i++)
        x[i] = 1.0f;
    x[5] = x[9] = x[31] = -1.5f; /* EOS ids are unlikely but not rare: a stop comes within a few dozen draws */
    rig_logits(&r, x);
    struct dg_sample_params p = greedy();
    p.temp = 1;
    p.seed = 5;
    CHECK_OK(dg_sampler_set_params(r.s, &p));
    uint32_t prompt[2] = {1, 2};
    CHECK_OK(dg_sampler_reset(r.s, prompt, 2));
    /* where the reference says the first EOS comes */
    uint32_t hist[64] = {1, 2}, ref_stop = DG_SAMPLER_NONE;
    for (int d = 0; d < steps && ref_stop == DG_SAMPLER_NONE; d++) {
        float y[32];
        memcpy(y, x, sizeof y);
        uint32_t id;
        CHECK_OK(dg_sampler_ref(&p, 256, y, v, hist, 2 + d, (uint32_t)d, &id, NULL));
        hist[2 + d] = id;
        if (id == 5 || id == 9 || id == 31)
            ref_stop = (uint32_t)(2 + d);
    }
    CHECK_MSG(ref_stop != DG_SAMPLER_NONE && ref_stop < 2 + steps - 1, "test setup: no EOS within %d draws", steps);
    for (int d = 0; d < steps; d++)
        CHECK_OK(dg_sampler_record(r.s, r.lg, 0, NULL, 0));
    CHECK_OK(dg_sampler_fence(r.s));
    uint32_t ids[40];
    struct dg_sampler_state ss;
    CHECK_OK(dg_sampler_read(r.s, 2, steps, ids, &ss));
    CHECK_MSG(ss.stop_at == ref_stop, "stop at %u, reference %u", ss.stop_at, ref_stop);
    CHECK_MSG(ss.n_hist == ref_stop + 1, "history ends at %u, expected just after the stop (%u)", ss.n_hist, ref_stop + 1);
    CHECK(ss.draws == (uint32_t)steps);
    for (uint32_t i = 2; i <= ref_stop && i < 2 + (uint32_t)steps; i++)
        CHECK_MSG(ids[i - 2] == hist[i], "history %u: GPU %u, reference %u", i, ids[i - 2], hist[i]);
    CHECK(ids[ref_stop + 1 - 2] == DG_SAMPLER_NONE);
    /* a chat turn after the stop: push clears the flag and sampling appends again */
    uint32_t turn[3] = {3, 4, 6};
    CHECK_OK(dg_sampler_push(r.s, turn, 3));
    CHECK_OK(dg_sampler_record(r.s, r.lg, 0, NULL, 0));
    CHECK_OK(dg_sampler_read(r.s, ss.n_hist, 4, ids, &ss));
    CHECK(ids[0] == 3 && ids[1] == 4 && ids[2] == 6 && ids[3] < (uint32_t)v);
    CHECK(ss.n_hist == ref_stop + 1 + 4);
    CHECK(ss.stop_at == DG_SAMPLER_NONE || ss.stop_at == ref_stop + 4);
    rig_close(&r);
}

DG_TEST(gl_sampler_append_kernel_flags_external_ids)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const uint32_t eos[2] = {128001, 128009};
    struct dg_sampler *s = NULL;
    struct dg_sampler_options o = {.vocab = 128256, .history_cap = 8, .eos = eos, .n_eos = 2};
    CHECK_OK(dg_sampler_create(gl, &o, &s));
    if (!s)
        return;
    uint32_t toks[6] = {7, 8, 128009, 11, 12, 13};
    struct dg_buffer *tb = NULL;
    CHECK_OK(dg_buffer_alloc(gl, sizeof toks, toks, &tb));
    for (uint32_t i = 0; i < 5; i++)
        CHECK_OK(dg_sampler_record_append(s, tb, i));
    uint32_t ids[5];
    struct dg_sampler_state ss;
    CHECK_OK(dg_sampler_read(s, 0, 5, ids, &ss));
    CHECK(ss.stop_at == 2 && ss.n_hist == 3 && ids[0] == 7 && ids[1] == 8 && ids[2] == 128009);
    CHECK(ids[3] == DG_SAMPLER_NONE);
    /* the capacity holds on the CPU side */
    CHECK_OK(dg_sampler_reset(s, toks, 6));
    CHECK_OK(dg_sampler_record_append(s, tb, 0));
    CHECK_OK(dg_sampler_record_append(s, tb, 1));
    CHECK(dg_sampler_record_append(s, tb, 3) == DG_E_USAGE);
    dg_buffer_release(gl, tb);
    dg_sampler_destroy(s);
}

DG_TEST(gl_sampler_rejects_bad_options)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_sampler *s = NULL;
    struct dg_sampler_options o = {.vocab = 100, .history_cap = 8, .candidates = 100};
    CHECK(dg_sampler_create(gl, &o, &s) == DG_E_USAGE && !s);
    CHECK(strstr(dg_last_error(), "power of two") != NULL);
    o.candidates = 64;
    CHECK_OK(dg_sampler_create(gl, &o, &s));
    if (!s)
        return;
    struct dg_sample_params p;
    dg_sample_params_default(&p);
    p.top_k = 65;
    CHECK(dg_sampler_set_params(s, &p) == DG_E_USAGE);
    CHECK(strstr(dg_last_error(), "top-k 65") != NULL);
    dg_sample_params_default(&p);
    p.top_p = 1.5f;
    CHECK(dg_sampler_set_params(s, &p) == DG_E_USAGE);
    dg_sample_params_default(&p);
    p.repeat_penalty = 0;
    CHECK(dg_sampler_set_params(s, &p) == DG_E_USAGE);
    dg_sample_params_default(&p);
    p.penalty_last_n = DG_SAMPLER_MAX_LAST_N + 1;
    CHECK(dg_sampler_set_params(s, &p) == DG_E_USAGE);
    uint32_t many[9] = {0};
    CHECK(dg_sampler_reset(s, many, 9) == DG_E_USAGE);
    dg_sampler_destroy(s);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Not a pass/fail bound on speed (llvmpipe on a shared machine varies): prints the sampler's cost per
 * token for the figures in docs/SAMPLING.md, and checks the ids stay valid while doing so. */
DG_TEST(gl_sampler_cost_per_token)
{
    static const int sizes[] = {8192, 262144};
    for (int k = 0; k < 2; k++) {
        int v = sizes[k], n = 16;
        struct rig r;
        if (!rig_open(&r, v, 64, NULL, 0)) {
            rig_close(&r);
            return;
        }
        float *x = malloc((size_t)v * 4);
        rand_logits(x, v, 6);
        rig_logits(&r, x);
        struct {
            const char *what;
            float temp;
            int top_k;
            float top_p, min_p, rep;
        } cases[] = {{"greedy", 0, 0, 1, 0, 1},
                     {"temperature", 0.8f, 0, 1, 0, 1},
                     {"llama.cpp defaults (top-k 40, top-p 0.95, min-p 0.05)", 0.8f, 40, 0.95f, 0.05f, 1},
                     {"top-p 0.9 + repeat penalty (last 64)", 0.8f, 0, 0.9f, 0, 1.1f}};
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            struct dg_sample_params p = greedy();
            p.temp = cases[c].temp;
            p.top_k = cases[c].top_k;
            p.top_p = cases[c].top_p;
            p.min_p = cases[c].min_p;
            p.repeat_penalty = cases[c].rep;
            uint32_t ids[16];
            draw_many(&r, &p, 2, ids); /* compile and warm up */
            double t0 = now_ms();
            draw_many(&r, &p, n, ids);
            double ms = (now_ms() - t0) / n;
            printf("#   sampler vocab %6d, %-55s %2d dispatches, %7.3f ms/token\n", v, cases[c].what,
                   dg_sampler_dispatches(r.s), ms);
        }
        free(x);
        rig_close(&r);
    }
}
