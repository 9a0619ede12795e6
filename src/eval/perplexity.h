/* perplexity.h: perplexity of a token stream with llama.cpp's method (llama-perplexity), on the executor.
 *
 * The method, as examples/perplexity/perplexity.cpp does it:
 * - the stream is the whole text tokenized with BOS first (the caller tokenizes);
 * - it is cut into floor(n_tokens / ctx) chunks of `ctx` tokens (the remainder is dropped), each run from
 *   position 0 with an empty KV cache and its first token replaced by BOS;
 * - in each chunk only the second half is scored: the predictions at positions ctx/2 .. ctx-2, each of the
 *   next token of the chunk (ctx/2 - 1 predictions: 127 for ctx 256), with log-softmax in double;
 * - PPL = exp(mean NLL); its ± is PPL * sqrt((mean(NLL^2) - mean(NLL)^2) / (count - 1)).
 * Implementation: eval/perplexity.c. */
#ifndef DG_EVAL_PERPLEXITY_H
#define DG_EVAL_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "pipe/exec.h"

struct dg_ppl_options {
    int ctx;        /* tokens per chunk (>= 4); the executor needs ctx positions */
    int max_chunks; /* 0 = all */
    int32_t bos;    /* replaces the first token of every chunk; -1 = leave it */
    /* Called after every chunk with the running estimate (may be NULL). */
    void (*progress)(void *arg, int chunk, int n_chunks, double ppl);
    void *arg;
};

struct dg_ppl_result {
    int n_chunks;     /* chunks run */
    long n_scored;    /* predictions scored */
    double ppl, ppl_err;
    double nll_mean;
};

dg_status dg_perplexity(struct dg_exec *ex, const int32_t *tokens, size_t n_tokens, const struct dg_ppl_options *o,
                        struct dg_ppl_result *r);

#endif
