/* sampler_ref.c: the CPU reference of the GPU sampler (glsl/sample_*.glsl): the same penalties, the
 * same candidate bound, the same order of truncations and the same Philox/Gumbel stream, so a test can
 * ask which id the GPU must have drawn. Sums are in double here (the GPU sums f32 in another order);
 * docs/SAMPLING.md says where that can matter. */
#include "pipe/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint32_t dg_sampler_philox(uint64_t seed, uint32_t draw, uint32_t id)
{
    uint32_t c0 = draw, c1 = id, c2 = 0x73616d70u, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

float dg_sampler_gumbel(uint64_t seed, uint32_t draw, uint32_t id)
{
    uint32_t r = dg_sampler_philox(seed, draw, id);
    float u = ((float)(r >> 8) + 0.5f) * 5.9604644775390625e-8f;
    return -logf(-logf(u));
}

static bool before(float av, uint32_t ai, float bv, uint32_t bi)
{
    return av > bv || (av == bv && ai < bi);
}

static float clean(float x) { return isnan(x) ? -INFINITY : x; }

static void penalize(const struct dg_sample_params *p, float *logits, int vocab, const uint32_t *hist, int n_hist)
{
    if (p->penalty_last_n == 0 ||
        (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f))
        return;
    int w = p->penalty_last_n < 0 ? DG_SAMPLER_MAX_LAST_N : p->penalty_last_n;
    if (w > n_hist)
        w = n_hist;
    int start = n_hist - w;
    for (int j = start; j < n_hist; j++) {
        uint32_t t = hist[j];
        if (t >= (uint32_t)vocab)
            continue;
        bool first = true;
        for (int q = start; q < j && first; q++)
            first = hist[q] != t;
        if (!first)
            continue;
        int c = 0;
        for (int q = j; q < n_hist; q++)
            c += hist[q] == t;
        float x = logits[t];
        if (x <= 0.0f)
            x *= p->repeat_penalty;
        else
            x /= p->repeat_penalty;
        x -= (float)c * p->frequency_penalty + p->presence_penalty;
        logits[t] = x;
    }
}

/* Gumbel-max over the listed (value, id) pairs; fills id and info. */
static void gumbel_pick(const struct dg_sample_params *p, uint32_t draw, const float *v, const uint32_t *ids, int n,
                        uint32_t *id, struct dg_sample_ref_info *info)
{
    float inv_t = 1.0f / p->temp;
    float best = -INFINITY, second = -INFINITY;
    uint32_t bi = DG_SAMPLER_NONE;
    for (int j = 0; j < n; j++) {
        float key = v[j] * inv_t + dg_sampler_gumbel(p->seed, draw, ids[j]);
        if (before(key, ids[j], best, bi)) {
            second = best;
            best = key;
            bi = ids[j];
        } else if (key > second)
            second = key;
    }
    *id = bi == DG_SAMPLER_NONE ? 0 : bi;
    info->key = best;
    info->runner_up = second;
}

dg_status dg_sampler_ref(const struct dg_sample_params *p, int candidates, float *logits, int vocab,
                         const uint32_t *hist, int n_hist, uint32_t draw, uint32_t *id,
                         struct dg_sample_ref_info *info)
{
    struct dg_sample_ref_info tmp;
    if (!info)
        info = &tmp;
    dg_status st = dg_sample_params_check(p, candidates);
    if (st)
        return st;
    if (vocab <= 0)
        return dg_fail(DG_E_USAGE, "reference sampler: vocabulary size %d", vocab);
    penalize(p, logits, vocab, hist, n_hist);
    for (int i = 0; i < vocab; i++)
        logits[i] = clean(logits[i]);

    if (p->temp <= 0) {
        float best = -INFINITY, second = -INFINITY;
        uint32_t bi = DG_SAMPLER_NONE;
        for (int i = 0; i < vocab; i++) {
            if (before(logits[i], (uint32_t)i, best, bi)) {
                second = best;
                best = logits[i];
                bi = (uint32_t)i;
            } else if (logits[i] > second)
                second = logits[i];
        }
        *id = bi;
        *info = (struct dg_sample_ref_info){vocab, best, second};
        return DG_OK;
    }

    if (p->top_k <= 0 && p->top_p >= 1) {
        /* Untruncated (min-p at most): Gumbel-max over the whole vocabulary. */
        float M = -INFINITY;
        for (int i = 0; i < vocab; i++)
            M = logits[i] > M ? logits[i] : M;
        float thr = p->min_p > 0 ? M + logf(p->min_p) : -INFINITY;
        float *v = malloc((size_t)vocab * sizeof *v);
        uint32_t *ids = malloc((size_t)vocab * sizeof *ids);
        if (!v || !ids) {
            free(v);
            free(ids);
            return dg_fail(DG_E_NOMEM, "reference sampler: out of memory");
        }
        int n = 0;
        for (int i = 0; i < vocab; i++)
            if (logits[i] != -INFINITY && logits[i] >= thr) {
                v[n] = logits[i];
                ids[n++] = (uint32_t)i;
            }
        info->kept = n;
        gumbel_pick(p, draw, v, ids, n, id, info);
        free(v);
        free(ids);
        return DG_OK;
    }

    /* The best `candidates` in the token order, by insertion into a sorted array. */
    int C = candidates < vocab ? candidates : vocab;
    float *cv = malloc((size_t)C * sizeof *cv);
    uint32_t *ci = malloc((size_t)C * sizeof *ci);
    if (!cv || !ci) {
        free(cv);
        free(ci);
        return dg_fail(DG_E_NOMEM, "reference sampler: out of memory");
    }
    int nc = 0;
    for (int i = 0; i < vocab; i++) {
        float x = logits[i];
        if (nc == C && !before(x, (uint32_t)i, cv[C - 1], ci[C - 1]))
            continue;
        int lo = 0, hi = nc;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (before(cv[mid], ci[mid], x, (uint32_t)i))
                lo = mid + 1;
            else
                hi = mid;
        }
        int move = (nc == C ? C - 1 : nc) - lo;
        memmove(cv + lo + 1, cv + lo, (size_t)move * sizeof *cv);
        memmove(ci + lo + 1, ci + lo, (size_t)move * sizeof *ci);
        cv[lo] = x;
        ci[lo] = (uint32_t)i;
        if (nc < C)
            nc++;
    }
    float M = cv[0];
    int K = nc;
    if (p->top_k > 0 && p->top_k < K)
        K = p->top_k;
    if (p->top_p < 1) {
        double D = 0;
        if (p->top_k > 0)
            for (int j = 0; j < K; j++)
                D += exp((double)cv[j] - M);
        else
            for (int i = 0; i < vocab; i++)
                D += logits[i] == -INFINITY ? 0 : exp((double)logits[i] - M);
        double cum = 0, target = (double)p->top_p * D;
        for (int j = 0; j < K; j++) {
            cum += exp((double)cv[j] - M);
            if (cum >= target) {
                K = j + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        float thr = M + logf(p->min_p);
        for (int j = 1; j < K; j++)
            if (cv[j] < thr) {
                K = j;
                break;
            }
    }
    info->kept = K;
    gumbel_pick(p, draw, cv, ci, K, id, info);
    free(cv);
    free(ci);
    return DG_OK;
}
