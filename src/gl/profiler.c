/* profiler.c: per-dispatch GPU time from a ring of timer queries (elapsed queries, or timestamp pairs
 * where elapsed queries read 0 as on llvmpipe), collected later without waiting so profiling does not
 * stall the GPU; a wall-clock fallback; aggregation per kernel and per op. */
#include "gl/gl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

#define RING_SIZE 512

struct dg_prof_slot {
    GLuint q[2];
    bool pending;
    int agg_kernel, agg_op;
    uint64_t bytes;
};

struct dg_prof_agg {
    char name[64];
    bool is_op;
    uint64_t calls, ns, bytes;
};

double dg_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

const char *dg_gl_timing_source(const struct dg_gl *gl)
{
    switch (gl->timing) {
    case DG_TIMING_ELAPSED: return "time-elapsed";
    case DG_TIMING_TIMESTAMP: return "timestamp";
    default: return "wall-clock";
    }
}

static int agg_index(struct dg_gl *gl, const char *name, bool is_op)
{
    if (!name || !*name)
        name = "(unnamed)";
    for (int i = 0; i < gl->n_aggs; i++)
        if (gl->aggs[i].is_op == is_op && strncmp(gl->aggs[i].name, name, sizeof gl->aggs[i].name - 1) == 0)
            return i;
    if (gl->n_aggs == gl->cap_aggs) {
        int nc = gl->cap_aggs ? gl->cap_aggs * 2 : 32;
        struct dg_prof_agg *na = realloc(gl->aggs, sizeof *na * (size_t)nc);
        if (!na)
            return -1;
        gl->aggs = na;
        gl->cap_aggs = nc;
    }
    struct dg_prof_agg *a = &gl->aggs[gl->n_aggs];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->is_op = is_op;
    return gl->n_aggs++;
}

static void account(struct dg_gl *gl, int k, int o, uint64_t ns, uint64_t bytes)
{
    if (k >= 0) {
        gl->aggs[k].calls++;
        gl->aggs[k].ns += ns;
        gl->aggs[k].bytes += bytes;
    }
    if (o >= 0) {
        gl->aggs[o].calls++;
        gl->aggs[o].ns += ns;
        gl->aggs[o].bytes += bytes;
    }
}

/* Reads the oldest pending slots; without `wait` stops at the first whose result is not there yet. */
static void collect(struct dg_gl *gl, bool wait, bool discard)
{
    if (!gl->ring_pending)
        return;
    GLint disjoint = 0;
    glGetIntegerv(GL_GPU_DISJOINT_EXT, &disjoint);
    if (disjoint)
        discard = true; /* the GPU's clock jumped: every pending result is unreliable */
    while (gl->ring_pending) {
        int tail = (gl->ring_head - gl->ring_pending + gl->ring_size) % gl->ring_size;
        struct dg_prof_slot *s = &gl->ring[tail];
        GLuint last = gl->timing == DG_TIMING_TIMESTAMP ? s->q[1] : s->q[0];
        if (!wait && !discard) {
            GLuint avail = 0;
            gl->tq.get_uiv(last, GL_QUERY_RESULT_AVAILABLE_EXT, &avail);
            if (!avail)
                break;
        }
        if (discard) {
            gl->n_disjoint_dropped += disjoint ? 1 : 0;
        } else {
            uint64_t ns = 0;
            if (gl->timing == DG_TIMING_TIMESTAMP) {
                GLuint64 t0 = 0, t1 = 0;
                gl->tq.get_ui64v(s->q[0], GL_QUERY_RESULT_EXT, &t0);
                gl->tq.get_ui64v(s->q[1], GL_QUERY_RESULT_EXT, &t1);
                ns = t1 > t0 ? t1 - t0 : 0;
            } else {
                GLuint64 el = 0;
                gl->tq.get_ui64v(s->q[0], GL_QUERY_RESULT_EXT, &el);
                ns = el;
            }
            account(gl, s->agg_kernel, s->agg_op, ns, s->bytes);
        }
        s->pending = false;
        gl->ring_pending--;
    }
}

static bool ensure_ring(struct dg_gl *gl)
{
    if (gl->ring)
        return true;
    gl->ring = calloc(RING_SIZE, sizeof *gl->ring);
    if (!gl->ring)
        return false;
    gl->ring_size = RING_SIZE;
    for (int i = 0; i < RING_SIZE; i++)
        gl->tq.gen(2, gl->ring[i].q);
    return true;
}

void dg_prof_before(struct dg_gl *gl, int *slot, double *wall_t0)
{
    *slot = -1;
    *wall_t0 = 0;
    if (gl->timing == DG_TIMING_WALL || !ensure_ring(gl)) {
        *wall_t0 = dg_now_ms();
        return;
    }
    collect(gl, false, false);
    if (gl->ring_pending == gl->ring_size)
        collect(gl, true, false); /* ring full: the oldest results are long done in practice */
    int i = gl->ring_head;
    struct dg_prof_slot *s = &gl->ring[i];
    if (gl->timing == DG_TIMING_TIMESTAMP)
        gl->tq.counter(s->q[0], GL_TIMESTAMP_EXT);
    else
        gl->tq.begin(GL_TIME_ELAPSED_EXT, s->q[0]);
    *slot = i;
}

void dg_prof_after(struct dg_gl *gl, int slot, double wall_t0, const struct dg_dispatch_info *info)
{
    int k = agg_index(gl, info ? info->kernel : NULL, false);
    int o = agg_index(gl, info ? info->op : NULL, true);
    uint64_t bytes = info ? info->bytes : 0;
    if (slot < 0) {
        /* Wall clock: exact where dispatches are synchronous (llvmpipe); submission time elsewhere. */
        account(gl, k, o, (uint64_t)((dg_now_ms() - wall_t0) * 1e6), bytes);
        return;
    }
    struct dg_prof_slot *s = &gl->ring[slot];
    if (gl->timing == DG_TIMING_TIMESTAMP)
        gl->tq.counter(s->q[1], GL_TIMESTAMP_EXT);
    else
        gl->tq.end(GL_TIME_ELAPSED_EXT);
    s->pending = true;
    s->agg_kernel = k;
    s->agg_op = o;
    s->bytes = bytes;
    gl->ring_head = (gl->ring_head + 1) % gl->ring_size;
    gl->ring_pending++;
}

void dg_gl_profiling(struct dg_gl *gl, bool on) { gl->profiling = on; }

static int cmp_rows(const void *a, const void *b)
{
    const struct dg_profile_row *x = a, *y = b;
    if (x->total_ms != y->total_ms)
        return x->total_ms < y->total_ms ? 1 : -1;
    return strcmp(x->kernel, y->kernel);
}

int dg_gl_profile_rows(struct dg_gl *gl, bool by_op, const struct dg_profile_row **rows)
{
    if (gl->ring)
        collect(gl, true, false);
    int n = 0;
    uint64_t total_ns = 0;
    for (int i = 0; i < gl->n_aggs; i++)
        if (gl->aggs[i].is_op == by_op) {
            n++;
            total_ns += gl->aggs[i].ns;
        }
    if (n > gl->cap_rows) {
        struct dg_profile_row *nr = realloc(gl->rows, sizeof *nr * (size_t)n);
        if (!nr) {
            *rows = NULL;
            return 0;
        }
        gl->rows = nr;
        gl->cap_rows = n;
    }
    int j = 0;
    for (int i = 0; i < gl->n_aggs; i++) {
        const struct dg_prof_agg *a = &gl->aggs[i];
        if (a->is_op != by_op)
            continue;
        struct dg_profile_row *r = &gl->rows[j++];
        memset(r, 0, sizeof *r);
        snprintf(r->kernel, sizeof r->kernel, "%s", by_op ? "" : a->name);
        snprintf(r->op, sizeof r->op, "%.31s", by_op ? a->name : "");
        r->calls = a->calls;
        r->total_ms = (double)a->ns / 1e6;
        r->mean_us = a->calls ? (double)a->ns / 1e3 / (double)a->calls : 0;
        r->share = total_ns ? (double)a->ns / (double)total_ns : 0;
        r->gbps = a->ns ? (double)a->bytes / (double)a->ns : 0; /* bytes per ns = GB/s */
    }
    qsort(gl->rows, (size_t)n, sizeof *gl->rows, cmp_rows);
    *rows = gl->rows;
    return n;
}

void dg_gl_profile_reset(struct dg_gl *gl)
{
    if (gl->ring)
        collect(gl, true, true);
    gl->n_aggs = 0;
}

void dg_prof_free(struct dg_gl *gl)
{
    if (gl->ring) {
        for (int i = 0; i < gl->ring_size; i++)
            gl->tq.del(2, gl->ring[i].q);
        free(gl->ring);
        gl->ring = NULL;
    }
    free(gl->aggs);
    free(gl->rows);
    gl->aggs = NULL;
    gl->rows = NULL;
    gl->n_aggs = gl->cap_aggs = gl->cap_rows = 0;
}
