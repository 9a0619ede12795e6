/* sampler.h: the GPU sampler. From a logits row (f32 [vocab] in a dg_buffer) and the token history it
 * picks the next id on the GPU (greedy, temperature, top-k, top-p, min-p, repetition / presence /
 * frequency penalties, a seed for reproducible runs), writes it into a token slot and appends it to the
 * history, with no CPU read-back: several decode steps can be recorded between two read-backs, and the
 * stop flag (an EOS id was sampled) lets the CPU trim the group at the first stop.
 *
 * Semantics, the candidate bound and the RNG: docs/SAMPLING.md. Kernels: glsl/sample_*.glsl.
 * CPU reference with the same semantics and RNG stream: dg_sampler_ref (sampler_ref.c). */
#ifndef DG_PIPE_SAMPLER_H
#define DG_PIPE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "gl/gl.h"

#define DG_SAMPLER_MAX_EOS 16       /* EOS ids checked on the GPU */
#define DG_SAMPLER_MAX_LAST_N 4096  /* penalty window bound (the penalty kernel is O(window^2)) */
#define DG_SAMPLER_DEFAULT_CAND 256 /* default candidate bound: top-k <= it, top-p within it */
#define DG_SAMPLER_MIN_CAND 64
#define DG_SAMPLER_MAX_CAND 1024
#define DG_SAMPLER_NONE 0xffffffffu  /* "no stop" / "no token slot" */

/* The history buffer's layout (uint32): a header, then the ids. The embedding gather of the next step
 * reads the id at DG_SAMPLER_HIST_IDS + n - 1, or the token slot the sampler also writes. */
enum {
    DG_SAMPLER_HIST_N = 0,     /* ids in the history (prompt + sampled) */
    DG_SAMPLER_HIST_DRAWS = 1, /* sampler runs so far: the RNG counter */
    DG_SAMPLER_HIST_STOP = 2,  /* history index of the first EOS sampled, DG_SAMPLER_NONE if none */
    DG_SAMPLER_HIST_CAP = 3,   /* capacity in ids */
    DG_SAMPLER_HIST_IDS = 4,   /* first id */
};

/* llama.cpp's sampler options, in the order llama.cpp applies them: penalties, top-k, top-p, min-p,
 * temperature. */
struct dg_sample_params {
    float temp;              /* <= 0: greedy (argmax after penalties, lowest id on ties) */
    int top_k;               /* <= 0: off; at most the candidate bound */
    float top_p;             /* in [0, 1]; >= 1: off */
    float min_p;             /* in [0, 1]; <= 0: off */
    float repeat_penalty;    /* > 0; 1: off */
    int penalty_last_n;      /* history ids the penalties look at: 0 off, -1 all (up to MAX_LAST_N) */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;
};

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off (last_n 64), seed 0. */
void dg_sample_params_default(struct dg_sample_params *p);
/* Checks ranges against a candidate bound; DG_E_USAGE naming the option, the value and the range. */
dg_status dg_sample_params_check(const struct dg_sample_params *p, int candidates);

struct dg_sampler_options {
    int vocab;             /* logits per row */
    int candidates;        /* candidate bound, a power of two in [64, 1024]; 0 = 256 */
    int history_cap;       /* history capacity in ids (prompt + generated; usually the context length) */
    const uint32_t *eos;   /* EOS ids (stop flag), up to DG_SAMPLER_MAX_EOS */
    int n_eos;
};

struct dg_sampler;

dg_status dg_sampler_create(struct dg_gl *gl, const struct dg_sampler_options *opt, struct dg_sampler **out);
void dg_sampler_destroy(struct dg_sampler *s);

/* Sets the sampling options for the following dg_sampler_record calls (compiles the kernels they need
 * on first use). */
dg_status dg_sampler_set_params(struct dg_sampler *s, const struct dg_sample_params *p);

/* Starts a sequence: history := ids[0, n) (the prompt, for penalties), draws := 0, no stop. */
dg_status dg_sampler_reset(struct dg_sampler *s, const uint32_t *ids, int n);
/* Appends ids on the CPU (the next user turn in a chat) and clears the stop flag. Call only after a
 * read-back (dg_sampler_read), so the CPU knows the history length. */
dg_status dg_sampler_push(struct dg_sampler *s, const uint32_t *ids, int n);

/* Records one sampling step: reads vocab floats at byte `logits_offset` of `logits` (a multiple of 4;
 * penalties are applied to them IN PLACE), writes the id to element `out_index` of `out` (out may be
 * NULL: history only), appends it to the history and raises the stop flag on an EOS id. No read-back,
 * no glFinish: call it once per decode step, between the forward passes. Fails (DG_E_USAGE) when the
 * history would pass its capacity. */
dg_status dg_sampler_record(struct dg_sampler *s, const struct dg_buffer *logits, uint64_t logits_offset,
                            const struct dg_buffer *out, uint32_t out_index);
/* For ids chosen by another kernel (the kernel path's own argmax): appends tok[index] to the history
 * and raises the stop flag on an EOS id (glsl/sample_append.glsl). */
dg_status dg_sampler_record_append(struct dg_sampler *s, const struct dg_buffer *tok, uint32_t index);

/* The history buffer (layout above), for the next step's embedding gather. */
const struct dg_buffer *dg_sampler_history(const struct dg_sampler *s);

/* Puts a fence after the recorded steps (call it right after the last step of a group, then do CPU
 * work such as detokenizing the previous group). dg_sampler_read waits on it. */
dg_status dg_sampler_fence(struct dg_sampler *s);

struct dg_sampler_state {
    uint32_t n_hist;  /* ids in the history */
    uint32_t draws;   /* sampler runs since reset */
    uint32_t stop_at; /* history index of the first EOS sampled, or DG_SAMPLER_NONE */
};
/* Waits for the fence (placing one if none is pending; never glFinish), then reads the header and the
 * history ids [first, first + n) with one mapping each. ids past the history's end (after a stop, say)
 * are returned as DG_SAMPLER_NONE. */
dg_status dg_sampler_read(struct dg_sampler *s, uint32_t first, int n, uint32_t *ids, struct dg_sampler_state *st);

/* Reads n uint32 at byte `offset` of any buffer written by shaders: one fence, glClientWaitSync, one
 * glMapBufferRange (GLES has no glGetBufferSubData). For a token slot outside the sampler. */
dg_status dg_gl_read_u32_fenced(struct dg_gl *gl, const struct dg_buffer *buf, uint64_t offset, int n, uint32_t *out);

/* Dispatches one dg_sampler_record issues with the current params (penalties + passes). */
int dg_sampler_dispatches(const struct dg_sampler *s);
int dg_sampler_candidates(const struct dg_sampler *s);

/* ---- the CPU reference (sampler_ref.c): same semantics, same candidate bound, same RNG ---- */

/* Philox4x32-10 keyed by the seed, counter (draw, id, "samp", 0): the first output word. */
uint32_t dg_sampler_philox(uint64_t seed, uint32_t draw, uint32_t id);
/* The Gumbel noise the GPU adds to token `id` at draw `draw`. */
float dg_sampler_gumbel(uint64_t seed, uint32_t draw, uint32_t id);

struct dg_sample_ref_info {
    int kept;         /* tokens the draw chose among (vocab when untruncated) */
    float key;        /* the winner's key (logit / temp + Gumbel, or the logit when greedy) */
    float runner_up;  /* the best key among the others (-inf if none): key - runner_up is the margin
                       * within which float rounding on the GPU could pick the other token */
};
/* Applies the penalties to `logits` in place (as the GPU does), then samples one id for draw `draw`
 * from history ids hist[0, n_hist). `candidates` is the bound the GPU sampler was created with. */
dg_status dg_sampler_ref(const struct dg_sample_params *p, int candidates, float *logits, int vocab,
                         const uint32_t *hist, int n_hist, uint32_t draw, uint32_t *id,
                         struct dg_sample_ref_info *info);

#endif
