/* perplexity.c: see perplexity.h. Each chunk runs as two passes, the unscored first half without logits
 * and the scored second half with them, so only ctx/2 rows of logits are read back (the result is the
 * same as one pass: attention is causal over the KV cache). */
#include "eval/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dg_status dg_perplexity(struct dg_exec *ex, const int32_t *tokens, size_t n_tokens, const struct dg_ppl_options *o,
                        struct dg_ppl_result *r)
{
    memset(r, 0, sizeof *r);
    int ctx = o->ctx;
    if (ctx < 4 || ctx > dg_exec_ctx(ex))
        return dg_fail(DG_E_USAGE, "perplexity: chunk size %d must be in [4, %d] (the executor's context)", ctx,
                       dg_exec_ctx(ex));
    size_t n_chunks = n_tokens / (size_t)ctx;
    if (n_chunks == 0)
        return dg_fail(DG_E_USAGE, "perplexity: %zu tokens are fewer than one chunk of %d (lower -c)", n_tokens, ctx);
    if (o->max_chunks > 0 && (size_t)o->max_chunks < n_chunks)
        n_chunks = (size_t)o->max_chunks;
    int V = dg_exec_vocab(ex), first = ctx / 2;
    int rows = ctx - first;
    float *lg = malloc((size_t)rows * (size_t)V * sizeof *lg);
    int32_t *chunk = malloc((size_t)ctx * sizeof *chunk);
    if (!lg || !chunk) {
        free(lg);
        free(chunk);
        return dg_fail(DG_E_NOMEM, "perplexity: out of memory for %d rows of %d logits", rows, V);
    }
    double nll = 0, nll2 = 0;
    long count = 0;
    dg_status st = DG_OK;
    for (size_t c = 0; c < n_chunks && !st; c++) {
        memcpy(chunk, tokens + c * (size_t)ctx, (size_t)ctx * sizeof *chunk);
        if (o->bos >= 0)
            chunk[0] = o->bos;
        dg_exec_reset(ex);
        st = dg_exec_forward(ex, chunk, first, NULL, NULL);
        if (!st)
            st = dg_exec_forward(ex, chunk + first, rows, lg, NULL);
        /* rows 0 .. rows-2 are positions first .. ctx-2; the last row would predict past the chunk */
        for (int i = 0; !st && i < rows - 1; i++) {
            const float *row = lg + (size_t)i * (size_t)V;
            int32_t want = chunk[first + i + 1];
            if (want < 0 || want >= V) {
                st = dg_fail(DG_E_USAGE, "perplexity: token id %d outside the vocabulary [0, %d)", want, V);
                break;
            }
            float mx = row[0];
            for (int j = 1; j < V; j++)
                if (row[j] > mx)
                    mx = row[j];
            double sum = 0;
            for (int j = 0; j < V; j++)
                sum += exp((double)row[j] - mx);
            double v = log(sum) - ((double)row[want] - mx);
            if (!isfinite(v)) {
                st = dg_fail(DG_E_FORMAT, "perplexity: non-finite log-probability in chunk %zu, position %d", c,
                             first + i);
                break;
            }
            nll += v;
            nll2 += v * v;
            count++;
        }
        if (!st && o->progress)
            o->progress(o->arg, (int)c + 1, (int)n_chunks, exp(nll / (double)count));
    }
    free(lg);
    free(chunk);
    dg_exec_reset(ex);
    if (st)
        return st;
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    r->n_chunks = (int)n_chunks;
    r->n_scored = count;
    r->nll_mean = mean;
    r->ppl = exp(mean);
    r->ppl_err = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * r->ppl : 0;
    return DG_OK;
}
