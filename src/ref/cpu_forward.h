/* cpu_forward.h: the float32 CPU reference forward pass for every family in hparams.h, with a KV cache.
 *
 * This is what the GPU paths are debugged against: it follows transformers' eager implementations step by
 * step (see cpu_forward.c), converts every weight to float32 once at init, and computes in float32.
 * Prefill of n tokens and single-token decode are the same call: tokens are appended at the current
 * position. Not thread-safe per instance; it uses up to `threads` worker threads inside large matmuls. */
#ifndef DG_REF_CPU_FORWARD_H
#define DG_REF_CPU_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "model/model.h"

struct dg_cpu_model;

/* Converts the model's weights to float32 and allocates a KV cache of `max_ctx` positions. The model must
 * outlive the returned instance only during this call (weights are copied). */
dg_status dg_cpu_init(const struct dg_model *m, int max_ctx, struct dg_cpu_model **out);
void dg_cpu_free(struct dg_cpu_model *c);
/* Worker threads for matmuls (default 2; 1 = single-threaded). */
void dg_cpu_set_threads(struct dg_cpu_model *c, int threads);
/* Emulates transformers running a model that was materialized in bfloat16 and then cast to float32 (how the
 * shared fixtures were made): its non-persistent buffers, the rotary inverse frequencies (all families but
 * PhiMoE, which computes them in forward()) and Gemma 3's embedding scale, then hold bf16-rounded values.
 * Off by default (exact float32 values, as a model loaded straight in float32 has). */
void dg_cpu_set_bf16_buffers(struct dg_cpu_model *c, bool on);
/* Forgets the KV cache: the next token is at position 0. */
void dg_cpu_reset(struct dg_cpu_model *c);
/* The position the next token will take (tokens processed so far). */
int dg_cpu_pos(const struct dg_cpu_model *c);
const struct dg_hparams *dg_cpu_hparams(const struct dg_cpu_model *c);

/* Runs `n` tokens at positions pos .. pos+n-1 (causal over the cache plus these tokens) and appends them to
 * the KV cache. Optional outputs:
 *   logits [n, vocab]                  next-token logits per position
 *   hidden [n_layers + 1, n, hidden]   [0] embeddings after the embedding scale, [l] the output of layer l
 *                                      (1-based), and [n_layers] after the final norm, as transformers returns
 *                                      output_hidden_states. */
dg_status dg_cpu_forward(struct dg_cpu_model *c, const int32_t *tokens, int n, float *logits, float *hidden);

#endif
