/* generate.h: the generation loop: prefill a prompt, then decode on the GPU with the sampler feeding each
 * sampled id straight into the next step's token slot, reading ids back once per group of steps.
 *
 * Per decode step the CPU only replays the pre-built dispatch list and bumps the position uniform; the
 * only read-back is the group's sampled ids (4 bytes each) after one fence. A group ends early on the
 * CPU side at the first stop (an EOS id flagged by the GPU, a stop string, -n, the context limit); the
 * steps the GPU ran past it are discarded (their KV entries are overwritten by the next turn). */
#ifndef DG_PIPE_GENERATE_H
#define DG_PIPE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "pipe/exec.h"
#include "pipe/sampler.h"

struct dg_generate_opts {
    int n_predict;   /* tokens to generate at most (<= 0: until a stop or the context limit) */
    int sync_every;  /* decode steps recorded between two read-backs (>= 1); the first token is read alone */
};

enum dg_stop_reason { DG_STOP_NONE = 0, DG_STOP_EOS, DG_STOP_LENGTH, DG_STOP_CONTEXT, DG_STOP_CALLER };

struct dg_generate_stats {
    int n_prompt, n_generated;
    double prefill_ms; /* prompt in until the first sampled id is known */
    double decode_ms;  /* the remaining generated tokens */
    int readbacks;
    enum dg_stop_reason stop;
};

/* Called for each generated id in order (the EOS id itself is not passed). Return true to stop. */
typedef bool (*dg_token_fn)(void *user, int32_t id);

/* Runs `prompt` (appended at the executor's current position, so a chat can continue its KV cache) and
 * generates. The sampler's history must already hold every id before the prompt (dg_sampler_reset /
 * dg_sampler_push); this call appends the prompt itself. */
dg_status dg_generate(struct dg_exec *ex, struct dg_sampler *smp, const int32_t *prompt, int n_prompt,
                      const struct dg_generate_opts *opt, dg_token_fn on_token, void *user,
                      struct dg_generate_stats *stats);
const char *dg_stop_reason_name(enum dg_stop_reason r);

#endif
