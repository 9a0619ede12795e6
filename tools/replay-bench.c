/* replay-bench.c: where a decode token's GPU time goes between the kernels, measured on the real
 * dispatch list. The model's decode list (as `bench` and `infer` run it, kernel plan from the usual
 * options) is replayed many times at one position inside one GPU timer query, without the per-token
 * read-back, and again in variants:
 *   all            the whole list: a token's GPU time with the CPU out of the way
 *   no barriers    every glMemoryBarrier dropped (results wrong): what the barriers and the drains they
 *                  force cost
 *   only K         just kernel K's dispatches, each behind a barrier: its own time in the token
 *   all but K      the list without kernel K: all - (all but K) is what K adds in place
 *   no barriers before K   the barriers before kernel K's dispatches dropped (results wrong)
 * Comparing "only K" summed over the kernels with "all" shows whether the kernels cost more together
 * (program switches, bindings, caches) than one at a time.
 * Build after `make` (links the library objects of build/):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc tools/replay-bench.c $(find build/obj/src -name '*.o' ! -name main.o) \
 *      -o build/replay-bench $(pkg-config --libs egl glesv2 gbm inih libcjson libpcre2-8 libutf8proc libcrypto) \
 *      -lm -ldl -pthread
 * Usage: build/replay-bench MODEL [CONTEXT [PASSES]] [plan options: --kernel-plan JSON ...]
 *   CONTEXT: tokens prefilled before the replays (default 64), PASSES: replays a variant (default 200). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "cli/plan_opts.h"
#include "core/log.h"
#include "core/settings.h"
#include "pipe/exec.h"

static int variant(struct dg_exec *ex, int passes, const char *label, const char *only, const char *skip, const char *nb,
                   double *gpu)
{
    double g = 0, w = 0, best_g = 1e30, best_w = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        if (dg_exec_replay_decode(ex, passes, only, skip, nb, &g, &w)) {
            fprintf(stderr, "replay-bench: %s: %s\n", label, dg_last_error());
            return 1;
        }
        best_g = g < best_g ? g : best_g;
        best_w = w < best_w ? w : best_w;
    }
    printf("%-40s %10.1f %10.1f\n", label, best_g, best_w);
    *gpu = best_g > 0 ? best_g : best_w; /* no GPU timer (llvmpipe): the wall clock */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [CONTEXT [PASSES]] [--kernel-plan JSON ...]\n", argv[0]);
        return 2;
    }
    struct dg_settings s;
    if (dg_cli_begin("replay-bench", &s))
        return 2;
    struct dg_cli_plan_opts po = {0};
    int ctx = 64, passes = 200, npos = 0;
    for (int i = 2; i < argc; i++) {
        int k = dg_cli_plan_option("replay-bench", argc, argv, &i, &po);
        if (k < 0)
            return 2;
        if (k == 0) {
            if (npos == 0)
                ctx = atoi(argv[i]);
            else
                passes = atoi(argv[i]);
            npos++;
        }
    }
    if (ctx < 1 || ctx > 4096 || passes < 1) {
        fprintf(stderr, "replay-bench: CONTEXT must be 1..4096 and PASSES positive\n");
        return 2;
    }
    struct dg_model m;
    struct dg_gl *gl = NULL;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_exec *ex = NULL;
    dg_status st = dg_model_open(argv[1], &m);
    if (!st)
        st = dg_cli_gl_open(&s, &gl);
    if (!st)
        st = dg_kp_registry_load_default(&reg);
    if (!st)
        st = dg_cli_plan_build(&po, dg_gl_caps(gl), &m, &reg, &plan, &path);
    struct dg_exec_options eo = {.ctx = ctx + 8};
    if (!st)
        st = dg_exec_create(gl, &m, &plan, &reg, &path, &eo, &ex);
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    if (!st && !ids)
        st = dg_fail(DG_E_NOMEM, "out of memory");
    for (int i = 0; !st && i < ctx; i++)
        ids[i] = (int32_t)((1103515245u * (unsigned)i + 12345u) % (unsigned)m.hp.vocab);
    if (!st)
        st = dg_exec_forward(ex, ids, ctx, NULL, NULL);
    if (st) {
        fprintf(stderr, "replay-bench: %s\n", dg_last_error());
        return 1;
    }
    struct dg_exec_stats es;
    dg_exec_stats(ex, &es);
    printf("%s: decode list of %d dispatches, %d barriers, at position %d; %d passes a variant, best of 3\n",
           argv[1], es.dispatches_decode, es.barriers_decode, ctx, passes);
    printf("%-40s %10s %10s\n", "variant", "GPU us", "wall us");
    /* "in place" and the sums below use the GPU time, or the wall time where there is no GPU timer */
    double all = 0, nb = 0, g = 0;
    int rc = variant(ex, passes, "all", NULL, NULL, NULL, &all) || variant(ex, passes, "no barriers", NULL, NULL, "", &nb);
    const char *names[64];
    int nk = dg_exec_decode_kernels(ex, names, 64);
    double sum_only = 0;
    for (int k = 0; !rc && k < nk; k++) {
        char lab[96];
        snprintf(lab, sizeof lab, "only %s", names[k]);
        rc = variant(ex, passes, lab, names[k], NULL, NULL, &g);
        sum_only += g;
        snprintf(lab, sizeof lab, "all but %s", names[k]);
        if (!rc && !(rc = variant(ex, passes, lab, NULL, names[k], NULL, &g)))
            printf("%-40s %10.1f\n", "  -> in place", all - g);
        snprintf(lab, sizeof lab, "no barriers before %s", names[k]);
        if (!rc && !(rc = variant(ex, passes, lab, NULL, NULL, names[k], &g)))
            printf("%-40s %10.1f\n", "  -> those barriers", all - g);
    }
    if (!rc)
        printf("sum of the 'only' variants %.1f us against all %.1f; no barriers %.1f\n", sum_only, all, nb);
    dg_exec_destroy(ex);
    free(ids);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    dg_gl_close(gl);
    return rc;
}
