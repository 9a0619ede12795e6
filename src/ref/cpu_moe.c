/* cpu_moe.c: mixture-of-experts FFN on the CPU: the three routers (softmax → top-k (→ renormalize) for
 * Mixtral / Qwen3-MoE, top-k → softmax with a router bias for GPT-OSS, and PhiMoE's sparsemixer as
 * transformers evaluates it at inference) and the selected experts' FFNs, weighted and summed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/cpu_internal.h"

#define MAX_TOPK 64

/* Indices of the k largest values, largest first; ties keep the lower index (as torch.topk does on CPU for
 * the small sizes used here). */
static void topk(const float *v, int n, int k, int *idx)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool used = false;
            for (int u = 0; u < j; u++)
                used |= idx[u] == i;
            if (!used && (best < 0 || v[i] > v[best]))
                best = i;
        }
        idx[j] = best;
    }
}

/* PhiMoE sparsemixer at inference (training=False): two rounds of "mask every expert whose relative gap to
 * the current maximum exceeds 2 * jitter_eps, softmax what is left, take the maximum's probability". */
static void sparsemixer(const float *scores, int n, float eps, int *idx, float *w)
{
    float masked[1024];
    for (int round = 0; round < 2; round++) {
        /* round 0 works on the scores; round 1 on the scores with the first pick set to -inf */
        float m = -INFINITY;
        int mi = 0;
        for (int i = 0; i < n; i++) {
            float s = round == 1 && i == idx[0] ? -INFINITY : scores[i];
            if (s > m) {
                m = s;
                mi = i;
            }
        }
        float sum = 0;
        for (int i = 0; i < n; i++) {
            float s = round == 1 && i == idx[0] ? -INFINITY : scores[i];
            float factor = fabsf(scores[i]) > m ? fabsf(scores[i]) : m; /* scores.abs().clamp(min=max) */
            bool drop = (m - scores[i]) / factor > 2.0f * eps;
            masked[i] = drop ? -INFINITY : s;
        }
        for (int i = 0; i < n; i++)
            sum += masked[i] == -INFINITY ? 0.0f : expf(masked[i] - m);
        idx[round] = mi;
        w[round] = expf(masked[mi] - m) / sum;
    }
}

void ref_moe(const struct dg_cpu_model *c, const struct ref_layer *l, const float *x, float *y, int n)
{
    const struct dg_hparams *hp = &c->hp;
    const int H = hp->hidden, E = hp->n_experts, K = hp->n_experts_used, I = hp->moe_intermediate;
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)E);
    float *g = malloc(sizeof(float) * (size_t)I * 2), *u = g + I;
    float *o = malloc(sizeof(float) * (size_t)H);
    if (!logits || !g || !o || E > 1024 || K > MAX_TOPK) {
        /* An allocation failure here would be a host problem; poison the output rather than crash. */
        for (int i = 0; i < n * H; i++)
            y[i] = NAN;
        free(logits), free(g), free(o);
        return;
    }
    ref_matmul(c, logits, x, l->router, l->router_b, n, H, E);
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * H, *lg = logits + (size_t)t * E;
        float *yt = y + (size_t)t * H;
        int idx[MAX_TOPK];
        float w[MAX_TOPK];
        if (hp->router == DG_ROUTER_SPARSEMIXER) {
            sparsemixer(lg, E, hp->router_jitter, idx, w);
        } else if (hp->router == DG_ROUTER_TOPK_SOFTMAX) {
            topk(lg, E, K, idx);
            float m = lg[idx[0]], s = 0;
            for (int k = 0; k < K; k++)
                s += w[k] = expf(lg[idx[k]] - m);
            for (int k = 0; k < K; k++)
                w[k] /= s;
        } else {
            float p[1024], m = -INFINITY, s = 0;
            for (int e = 0; e < E; e++)
                m = lg[e] > m ? lg[e] : m;
            for (int e = 0; e < E; e++)
                s += p[e] = expf(lg[e] - m);
            for (int e = 0; e < E; e++)
                p[e] /= s;
            topk(p, E, K, idx);
            float sk = 0;
            for (int k = 0; k < K; k++)
                sk += w[k] = p[idx[k]];
            if (hp->norm_topk_prob)
                for (int k = 0; k < K; k++)
                    w[k] /= sk;
        }
        memset(yt, 0, sizeof(float) * (size_t)H);
        for (int k = 0; k < K; k++) {
            const int e = idx[k];
            const size_t wo = (size_t)e * (size_t)I * (size_t)H;
            ref_matmul(c, g, xt, l->egate + wo, l->egate_b ? l->egate_b + (size_t)e * I : NULL, 1, H, I);
            ref_matmul(c, u, xt, l->eup + wo, l->eup_b ? l->eup_b + (size_t)e * I : NULL, 1, H, I);
            if (hp->act == DG_ACT_GPT_OSS_SWIGLU) {
                const float lim = hp->swiglu_limit, al = hp->swiglu_alpha;
                for (int i = 0; i < I; i++) {
                    float gg = g[i] > lim ? lim : g[i];
                    float uu = u[i] > lim ? lim : u[i] < -lim ? -lim : u[i];
                    float glu = gg / (1.0f + expf(-gg * al)); /* gate * sigmoid(alpha * gate) */
                    g[i] = (uu + 1.0f) * glu;
                }
            } else {
                for (int i = 0; i < I; i++)
                    g[i] = ref_act(hp->act, g[i]) * u[i];
            }
            ref_matmul(c, o, g, l->edown + wo, l->edown_b ? l->edown_b + (size_t)e * H : NULL, 1, I, H);
            for (int h = 0; h < H; h++)
                yt[h] += o[h] * w[k];
        }
    }
    free(logits);
    free(g);
    free(o);
}
