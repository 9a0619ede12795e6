/* cpu_ops.c: the CPU reference's numeric kernels: threaded matmul, norms and activations, each written to
 * mirror the transformers expression it stands for. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "ref/cpu_internal.h"

static float dot(const float *a, const float *b, int n)
{
    /* Eight partial sums: vectorizable without -ffast-math, and closer to BLAS's summation order than a
     * single running sum. */
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float t = 0;
    for (; i < n; i++)
        t += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

struct mm_job {
    float *y;
    const float *x, *w, *b;
    int n, in, out, r0, r1;
};

static void mm_rows(const struct mm_job *j)
{
    for (int t = 0; t < j->n; t++) {
        const float *xt = j->x + (size_t)t * (size_t)j->in;
        float *yt = j->y + (size_t)t * (size_t)j->out;
        for (int r = j->r0; r < j->r1; r++)
            yt[r] = dot(xt, j->w + (size_t)r * (size_t)j->in, j->in) + (j->b ? j->b[r] : 0.0f);
    }
}

static void *mm_thread(void *arg)
{
    mm_rows(arg);
    return NULL;
}

#define MM_MAX_THREADS 16

void ref_matmul(const struct dg_cpu_model *c, float *y, const float *x, const float *w, const float *b, int n,
                int in, int out)
{
    int nt = c->threads < 1 ? 1 : c->threads > MM_MAX_THREADS ? MM_MAX_THREADS : c->threads;
    /* Threads only pay off on large products (thread start-up is tens of microseconds). */
    if ((double)n * in * out < 1 << 18 || out < nt)
        nt = 1;
    struct mm_job jobs[MM_MAX_THREADS];
    pthread_t tid[MM_MAX_THREADS];
    bool started[MM_MAX_THREADS] = {false};
    for (int i = 0; i < nt; i++) {
        jobs[i] = (struct mm_job){y, x, w, b, n, in, out, (int)((int64_t)out * i / nt),
                                  (int)((int64_t)out * (i + 1) / nt)};
        if (i > 0)
            started[i] = pthread_create(&tid[i], NULL, mm_thread, &jobs[i]) == 0;
    }
    mm_rows(&jobs[0]);
    for (int i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            mm_rows(&jobs[i]); /* could not start a thread: do its share here */
    }
}

void ref_norm(const struct dg_hparams *hp, float *x, const float *w, const float *b, int d)
{
    if (hp->norm_style == DG_NORM_LAYER) {
        /* nn.LayerNorm: biased variance */
        float mean = 0, var = 0;
        for (int i = 0; i < d; i++)
            mean += x[i];
        mean /= (float)d;
        for (int i = 0; i < d; i++)
            var += (x[i] - mean) * (x[i] - mean);
        var /= (float)d;
        float inv = 1.0f / sqrtf(var + hp->norm_eps);
        for (int i = 0; i < d; i++)
            x[i] = (x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
        return;
    }
    float ss = 0;
    for (int i = 0; i < d; i++)
        ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)d + hp->norm_eps);
    if (hp->norm_style == DG_NORM_RMS_GEMMA)
        for (int i = 0; i < d; i++)
            x[i] = x[i] * inv * (1.0f + w[i]);
    else
        for (int i = 0; i < d; i++)
            x[i] = w[i] * (x[i] * inv);
}

float ref_act(enum dg_activation act, float g)
{
    switch (act) {
    case DG_ACT_GELU_TANH: {
        const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
        return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    }
    case DG_ACT_GELU:
        return 0.5f * g * (1.0f + erff(g * 0.7071067811865476f));
    case DG_ACT_SILU:
    case DG_ACT_GPT_OSS_SWIGLU: /* the clamped form is applied by the MoE code around this */
    default:
        return g / (1.0f + expf(-g));
    }
}
