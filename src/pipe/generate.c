/* generate.c: see generate.h. */
#include "pipe/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

const char *dg_stop_reason_name(enum dg_stop_reason r)
{
    switch (r) {
    case DG_STOP_EOS: return "eos";
    case DG_STOP_LENGTH: return "length";
    case DG_STOP_CONTEXT: return "context";
    case DG_STOP_CALLER: return "stop-string";
    default: return "none";
    }
}

dg_status dg_generate(struct dg_exec *ex, struct dg_sampler *smp, const int32_t *prompt, int n_prompt,
                      const struct dg_generate_opts *opt, dg_token_fn on_token, void *user,
                      struct dg_generate_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    stats->n_prompt = n_prompt;
    if (n_prompt <= 0)
        return dg_fail(DG_E_USAGE, "generate: the prompt is empty");
    const struct dg_buffer *logits = dg_exec_slot(ex, "logits"), *tok = dg_exec_slot(ex, "token_ids");
    if (!logits || !tok)
        return dg_fail(DG_E_FORMAT, "generate: the kernel path has no logits or token_ids slot");
    int ctx = dg_exec_ctx(ex), V = dg_exec_vocab(ex);
    if (dg_exec_pos(ex) + n_prompt >= ctx)
        return dg_fail(DG_E_USAGE, "the prompt (%d tokens, %d already in the cache) does not fit the context of %d "
                       "tokens with room to generate (raise -c)", n_prompt, dg_exec_pos(ex), ctx);
    int sync = opt->sync_every > 0 ? opt->sync_every : 1;
    int limit = opt->n_predict > 0 ? opt->n_predict : ctx;

    /* The prompt joins the history (penalties see it) before its last logits are sampled. */
    uint32_t *hist_ids = malloc((size_t)n_prompt * 4);
    if (!hist_ids)
        return dg_fail(DG_E_NOMEM, "out of memory");
    for (int i = 0; i < n_prompt; i++)
        hist_ids[i] = (uint32_t)prompt[i];
    struct dg_sampler_state ss;
    uint32_t dummy;
    /* push needs the CPU to know the history length: read it (cheap: a header read after a fence) */
    dg_status st = dg_sampler_read(smp, 0, 0, &dummy, &ss);
    if (!st)
        st = dg_sampler_push(smp, hist_ids, n_prompt);
    free(hist_ids);
    if (st)
        return st;
    uint32_t first_gen = ss.n_hist + (uint32_t)n_prompt; /* history index of the first generated id */

    double t0 = now_ms();
    /* Prefill runs in passes of the executor's batch; the logits slot holds the last pass's rows. */
    if ((st = dg_exec_forward(ex, prompt, n_prompt, NULL, NULL)))
        return st;
    int batch = dg_exec_max_batch(ex);
    int last_rows = n_prompt - ((n_prompt - 1) / batch) * batch;
    if ((st = dg_sampler_record(smp, logits, (uint64_t)(last_rows - 1) * (uint64_t)V * 4, tok, 0)))
        return st;

    int generated = 0, recorded = 1, group = 1;
    uint32_t ids[256];
    double t_first = 0;
    for (;;) {
        /* read the group just recorded */
        if ((st = dg_sampler_fence(smp)) || (st = dg_sampler_read(smp, first_gen + (uint32_t)generated, group, ids, &ss)))
            return st;
        stats->readbacks++;
        if (generated == 0)
            t_first = now_ms();
        for (int i = 0; i < group; i++) {
            uint32_t hidx = first_gen + (uint32_t)(generated);
            if (ss.stop_at != DG_SAMPLER_NONE && hidx >= ss.stop_at) {
                stats->stop = DG_STOP_EOS;
                break;
            }
            generated++;
            if (on_token && on_token(user, (int32_t)ids[i])) {
                stats->stop = DG_STOP_CALLER;
                break;
            }
            if (generated >= limit) {
                stats->stop = DG_STOP_LENGTH;
                break;
            }
        }
        if (stats->stop)
            break;
        /* next group: as many steps as fit the limits */
        group = sync;
        if (group > limit - recorded)
            group = limit - recorded;
        if (group > ctx - dg_exec_pos(ex))
            group = ctx - dg_exec_pos(ex);
        if (group > (int)(sizeof ids / sizeof ids[0]))
            group = (int)(sizeof ids / sizeof ids[0]);
        if (group <= 0) {
            stats->stop = recorded >= limit ? DG_STOP_LENGTH : DG_STOP_CONTEXT;
            break;
        }
        for (int i = 0; i < group; i++) {
            if ((st = dg_exec_forward_gpu_token(ex)) || (st = dg_sampler_record(smp, logits, 0, tok, 0)))
                return st;
        }
        recorded += group;
    }
    double t1 = now_ms();
    stats->n_generated = generated;
    stats->prefill_ms = t_first - t0;
    stats->decode_ms = t1 - t_first;
    /* Steps the GPU ran past the stop left KV entries beyond the kept tokens; the position must follow
     * the kept ones (prompt + generated; the last generated id itself is not yet in the cache). */
    dg_exec_set_pos(ex, dg_exec_pos(ex) - (recorded - generated));
    return DG_OK;
}
