/* exec.h: the executor. Turns a model and a resolved kernel path into pre-built dispatch lists (one for
 * decode, one for prefill) at load, then replays them per token: no allocation, no glFinish and no
 * read-back inside a token except the logits the caller asks for.
 *
 * Implementation: pipe/exec.c (build and replay), pipe/weights.c (weights to the GPU in the path's
 * format), pipe/split_blocks.c (the split layout of Q8_0 / Q6_K rows), pipe/rope_table.c
 * (inverse-frequency tables for every rope scaling). */
#ifndef DG_PIPE_EXEC_H
#define DG_PIPE_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "gl/gl.h"
#include "kpath/kpath.h"
#include "model/model.h"

struct dg_exec_options {
    int ctx;           /* context length (KV cache positions); 0 = min(max_pos, 4096) */
    int max_batch;     /* prefill tokens per pass (longer prompts run in several passes); 0 = min(ctx, 512) */
    /* Round the rope inverse frequencies (and Gemma 3's embedding scale) to bfloat16, as transformers does
     * when a checkpoint is loaded in bf16 and its non-persistent buffers follow the model dtype: the
     * fixtures' reference logits were made that way (see ref/cpu_forward.h dg_cpu_set_bf16_buffers). */
    bool bf16_buffers;
    /* Keep Q8_0 / Q6_K matrices in their GGUF bytes even where the decode GEMV prefers the split layout
     * (pipe/split_blocks.h): for comparing the two layouts. */
    bool gguf_blocks;
};

struct dg_exec;

/* Loads the model's weights in the path's format, allocates every slot and the KV cache, and builds the
 * dispatch lists. `plan` must already hold the path choice (dg_kplan_load_path). */
dg_status dg_exec_create(struct dg_gl *gl, const struct dg_model *m, const struct dg_kplan *plan,
                         const struct dg_kp_registry *reg, const struct dg_kpath *path,
                         const struct dg_exec_options *opt, struct dg_exec **out);
void dg_exec_destroy(struct dg_exec *ex);

/* Runs `n` tokens at the current position (one prefill pass per max_batch tokens when n > 1, the decode
 * list when n == 1) and advances the position. When `logits` is non-NULL it receives n rows of vocab
 * floats; when both `logits` and `hidden` are NULL a prefill pass computes only its last token's logits
 * (row n - 1 of the logits slot, the one sampling reads: the decode LM head at that row) and its other
 * rows of the slot are stale. When `hidden` is non-NULL it receives [n_layers + 1][n][hidden]: the embedding output, each
 * layer's output, and for the last entry the final norm's output (as transformers reports them); this
 * reads back after every layer and is for debugging only. Going past the context length is an error. */
dg_status dg_exec_forward(struct dg_exec *ex, const int32_t *ids, int n, float *logits, float *hidden);
/* One decode step whose input id is already in the token_ids slot's element 0 on the GPU (written there
 * by the sampler): the GPU-only decode loop, no upload and no read-back. */
dg_status dg_exec_forward_gpu_token(struct dg_exec *ex);
/* Diagnostics (tools/replay-bench.c): replays the decode list reps times at the current position, only
 * one kernel's dispatches or all but one (names as the registry's), or without the barriers before one
 * kernel's dispatches ("": all barriers); GPU (0: no timer) and wall microseconds a pass. */
dg_status dg_exec_replay_decode(struct dg_exec *ex, int reps, const char *only, const char *skip, const char *nobar,
                                double *gpu_us, double *wall_us);
int dg_exec_decode_kernels(const struct dg_exec *ex, const char **names, int max);
/* A slot's buffer ("logits": rows of vocab f32 for the last pass; "token_ids": the pass's input ids), or
 * NULL when the path has no such slot. */
const struct dg_buffer *dg_exec_slot(const struct dg_exec *ex, const char *name);
/* Elements per token of a slot (its buffer may be larger: pool size classes), 0 when there is none. */
int64_t dg_exec_slot_width(const struct dg_exec *ex, const char *name);
/* The ids chosen by the path's sampling steps for the last forward (token_out slot), n values. */
dg_status dg_exec_read_tokens(struct dg_exec *ex, uint32_t *ids, int n);
void dg_exec_reset(struct dg_exec *ex); /* position back to 0 */
/* Moves the position back (to drop cache entries past it, e.g. decode steps run past a stop). */
void dg_exec_set_pos(struct dg_exec *ex, int pos);
int dg_exec_max_batch(const struct dg_exec *ex); /* tokens per prefill pass */
int dg_exec_pos(const struct dg_exec *ex);
int dg_exec_ctx(const struct dg_exec *ex);
int dg_exec_vocab(const struct dg_exec *ex);

struct dg_exec_stats {
    int dispatches_decode, barriers_decode; /* per decode token */
    int dispatches_prefill, barriers_prefill;
    int dispatches_per_layer_decode;       /* in the first layer */
    uint64_t weight_bytes, kv_bytes, slot_bytes;
    /* Weight bytes one decoded token reads: every matrix a decode dispatch binds, one embedding row, and of
     * stacked MoE experts only the top-k selected experts' rows (so it scales with the active experts). */
    uint64_t active_weight_bytes;
    /* Mean CPU time of issuing one decode pass (binding, uniforms, dispatch calls; not GPU time), in us,
     * over the passes run so far: when it approaches the time per token, decode is bound by the CPU. */
    double submit_us_decode;
    /* plan imageReads: decode dispatches that read through image views, and the views the executor made */
    int image_reads_decode, image_views;
};
void dg_exec_stats(const struct dg_exec *ex, struct dg_exec_stats *st);
/* Prints the decode and prefill dispatch lists of the first layer and the pre/post steps: kernel, entry,
 * every define, bindings, dispatch size, barrier. */
void dg_exec_print(const struct dg_exec *ex, FILE *out);

/* ---- helpers shared with tests ---- */

/* inv_freq for one rope config: out[0..rot/2) short, out[rot/2..rot) long (equal unless longrope).
 * Returns rot/2. */
int dg_rope_inv_freq(const struct dg_rope *r, int head_dim, float *out);
/* The weight dtype the path wants for a 2-D tensor of dtype `src` ("f32" path: f32, ...). */
enum dg_dtype dg_exec_gpu_dtype(const char *weight_format, enum dg_dtype src, bool is_matrix);

#endif
