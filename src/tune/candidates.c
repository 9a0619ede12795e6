/* candidates.c: which knob sets the tuner tries per kernel on a device. On a GPU: the GEMV's rows per
 * workgroup and threads per row (main) and one invocation per row (row), norm workgroup sizes, attention
 * one workgroup per head (main) or flash-decoding splits (split). On a software rasterizer the set is kept
 * small (every candidate is a program build, slow there). GEMV candidates also vary RPT (rows per thread). Workgroup sizes never exceed the device's limit,
 * and every value is a power of two, which the kernels' reductions require. */
#include <stdio.h>
#include <string.h>

#include "tune/tune.h"

/* attention_fused is not tuned: the plan builds it from a path's rope_kv and attention steps, which the
 * tuner's per-step clones would no longer fuse; it runs the profile's knobs */
static const char *const tunable[] = {"matmul", "ffn_gate_up", "rmsnorm", "add_rmsnorm", "attention", NULL};

bool dg_tune_kernel_tunable(const char *kernel)
{
    for (int i = 0; tunable[i]; i++)
        if (!strcmp(tunable[i], kernel))
            return true;
    return false;
}

static bool same(const struct dg_tune_knobset *a, const struct dg_tune_knobset *b)
{
    if (strcmp(a->entry, b->entry))
        return false;
    /* knobs a set does not name are at the registry default: compare the named ones both ways */
    for (int pass = 0; pass < 2; pass++) {
        const struct dg_tune_knobset *x = pass ? b : a, *y = pass ? a : b;
        for (int i = 0; i < x->n_knobs; i++) {
            bool found = false;
            for (int j = 0; j < y->n_knobs && !found; j++)
                if (!strcmp(x->knobs[i].name, y->knobs[j].name)) {
                    if (strcmp(x->knobs[i].value, y->knobs[j].value))
                        return false;
                    found = true;
                }
            if (!found)
                return false;
        }
    }
    return true;
}

/* Adds (entry, WG_SIZE=wg, names[i]=vals[i] for i < n) unless it repeats an earlier candidate or exceeds
 * the device; knobs it does not name keep the baseline's value. */
static void addk(struct dg_tune_target *t, const struct dg_gl_caps *caps, const char *entry, int wg,
                 const char *const *names, const int *vals, int n)
{
    if (t->n_cand >= DG_TUNE_MAX_CAND || wg > caps->max_invocations || wg > caps->max_wg_size[0])
        return;
    struct dg_tune_knobset ks = {0};
    snprintf(ks.entry, sizeof ks.entry, "%s", entry);
    const struct dg_tune_knobset *base = &t->cand[0].ks;
    /* start from the baseline's knobs so each candidate names the same set */
    for (int i = 0; i < base->n_knobs; i++)
        ks.knobs[ks.n_knobs++] = base->knobs[i];
    for (int s = -1; s < n; s++) {
        const char *name = s < 0 ? "WG_SIZE" : names[s];
        int v = s < 0 ? wg : vals[s];
        int j = 0;
        while (j < ks.n_knobs && strcmp(ks.knobs[j].name, name))
            j++;
        if (j == ks.n_knobs) {
            if (ks.n_knobs == DG_TUNE_MAX_KNOBS)
                return;
            snprintf(ks.knobs[j].name, sizeof ks.knobs[j].name, "%s", name);
            ks.n_knobs++;
        }
        snprintf(ks.knobs[j].value, sizeof ks.knobs[j].value, "%d", v);
    }
    for (int i = 0; i < t->n_cand; i++)
        if (same(&t->cand[i].ks, &ks))
            return;
    struct dg_tune_candidate *c = &t->cand[t->n_cand++];
    memset(c, 0, sizeof *c);
    c->ks = ks;
}

/* (entry, WG_SIZE=wg, n2=v2, n3=v3); n2/n3 NULL: not set */
static void add3(struct dg_tune_target *t, const struct dg_gl_caps *caps, const char *entry, int wg, const char *n2,
                 int v2, const char *n3, int v3)
{
    const char *names[2] = {n2, n3};
    int vals[2] = {v2, v3};
    addk(t, caps, entry, wg, names, vals, n2 ? (n3 ? 2 : 1) : 0);
}

static void add(struct dg_tune_target *t, const struct dg_gl_caps *caps, const char *entry, int wg, const char *n2,
                int v2)
{
    add3(t, caps, entry, wg, n2, v2, NULL, 0);
}

/* The baseline's value of knob `name` into *v (left alone when the baseline does not name it). */
static void base_knob(const struct dg_tune_target *t, const char *name, int *v)
{
    const struct dg_tune_knobset *b = &t->cand[0].ks;
    for (int i = 0; i < b->n_knobs; i++) {
        int x = 0;
        if (!strcmp(b->knobs[i].name, name) && sscanf(b->knobs[i].value, "%d", &x) == 1 && x > 0)
            *v = x;
    }
}

/* XSH candidates: (WG_SIZE, ROWS_PER_WG, RPT), the shapes where x in shared memory won on the H200
 * (tools/chain-bench.c). The slack is the shared memory of the kernel's reductions (a few hundred bytes to
 * 2 KiB at the largest workgroups), as the kernel's own fallback test (glsl/matmul.glsl) counts it. */
#define XSH_SHAPES {{128, 4, 2}, {256, 8, 2}, {256, 4, 1}}
#define XSH_SHARED_SLACK 4096

void dg_tune_candidates(const struct dg_tune_target *t, const struct dg_gl_caps *caps, struct dg_tune_target *out)
{
    if (out != t)
        *out = *t;
    out->n_cand = 1;
    bool sw = caps->is_software;
    const char *k = t->kernel;
    if (!strcmp(k, "matmul") || !strcmp(k, "ffn_gate_up")) {
        if (sw) {
            /* measured on llvmpipe: one invocation per row is fastest; check its neighbours and main */
            add(out, caps, "row", 32, NULL, 0);
            add(out, caps, "row", 64, NULL, 0);
            add(out, caps, "row", 128, NULL, 0);
            add(out, caps, "main", 64, "ROWS_PER_WG", 4);
        } else {
            static const int mains[][2] = {{64, 2}, {64, 4}, {128, 4}, {128, 8}, {256, 4}, {256, 8}, {256, 16},
                                           {512, 8}, {512, 16}};
            for (size_t i = 0; i < sizeof mains / sizeof mains[0]; i++)
                add(out, caps, "main", mains[i][0], "ROWS_PER_WG", mains[i][1]);
            /* rows per thread (each x segment applied to RPT rows) at the baseline's workgroup shape; RPT
             * must divide ROWS_PER_WG (the kernel refuses to compile otherwise) */
            static const int rpts[] = {1, 2, 4};
            int wg0 = 64, rows0 = 4;
            base_knob(t, "WG_SIZE", &wg0);
            base_knob(t, "ROWS_PER_WG", &rows0);
            for (int i = 0; i < 3; i++)
                if (rows0 % rpts[i] == 0)
                    add(out, caps, "main", wg0, "RPT", rpts[i]);
            /* one or two rows a workgroup, one a thread: more workgroups with more threads a row. On the
             * H200 (tools/chain-bench.c, weights cycled through more than the L2) these were the fastest
             * shapes for the Q6_K matrices: 512x2048 in 12.7 us at 64 x 1 against 21.7 at 256 x 8 x 2,
             * 2048x8192 in 14.0 at 128 x 1 against 20.5 */
            add3(out, caps, "main", 64, "ROWS_PER_WG", 1, "RPT", 1);
            add3(out, caps, "main", 128, "ROWS_PER_WG", 1, "RPT", 1);
            add3(out, caps, "main", 128, "ROWS_PER_WG", 2, "RPT", 1);
            add3(out, caps, "main", 64, "ROWS_PER_WG", 2, "RPT", 2);
            /* Q4_K: the x-coalesced segment order at the baseline's shape (the knob is ignored by the other
             * formats, which would only time the baseline again) */
            if (!strncmp(t->shape, "q4_k ", 5))
                add(out, caps, "main", wg0, "XCO", 1);
            /* x staged in shared memory (XSH) toggled against the baseline (every candidate above keeps
             * the baseline's XSH), where the token's K floats fit beside the reductions' arrays: at the
             * baseline's shape and at XSH_SHAPES */
            long n_rows = 0, kdim = 0;
            int xsh0 = 0;
            base_knob(t, "XSH", &xsh0);
            if (sscanf(t->shape, "%*s %ldx%ld", &n_rows, &kdim) == 2 && kdim > 0 &&
                kdim * 4 + XSH_SHARED_SLACK <= (long)caps->max_shared_memory) {
                static const int xsh[][3] = XSH_SHAPES;
                static const char *const names[] = {"ROWS_PER_WG", "RPT", "XSH"};
                add(out, caps, "main", wg0, "XSH", !xsh0);
                for (size_t i = 0; i < sizeof xsh / sizeof xsh[0]; i++) {
                    int vals[3] = {xsh[i][1], xsh[i][2], !xsh0};
                    addk(out, caps, "main", xsh[i][0], names, vals, 3);
                }
            }
            add(out, caps, "row", 64, NULL, 0);
            add(out, caps, "row", 128, NULL, 0);
        }
    } else if (!strcmp(k, "rmsnorm") || !strcmp(k, "add_rmsnorm")) {
        static const int gpu[] = {64, 128, 256, 512, 1024}, soft[] = {32, 128};
        const int *v = sw ? soft : gpu;
        int n = sw ? 2 : 5;
        for (int i = 0; i < n; i++)
            add(out, caps, "main", v[i], NULL, 0);
    } else if (!strcmp(k, "attention")) {
        if (sw) {
            add(out, caps, "main", 32, NULL, 0);
            add(out, caps, "main", 128, NULL, 0);
        } else {
            add(out, caps, "main", 64, NULL, 0);
            add(out, caps, "main", 128, NULL, 0);
            static const int splits[] = {4, 8, 16, 32};
            for (int i = 0; i < 4; i++) {
                add(out, caps, "split", 64, "NSPLIT", splits[i]);
                add(out, caps, "split", 128, "NSPLIT", splits[i]);
            }
        }
    }
}
