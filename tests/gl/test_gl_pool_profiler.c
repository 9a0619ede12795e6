/* test_gl_pool_profiler.c: the SSBO pool (size classes, reuse, counters), range binding limits, row
 * splitting, and the profiler (timer-query ring, per-kernel and per-op aggregation). */
#include <stdlib.h>
#include <string.h>

#include "gl_fixture.h"
#include "test.h"

DG_TEST(gl_pool_reuses_buffers_and_counts)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* Sizes no other test uses, so their size classes start empty. */
    enum { A = 777777, B = 5555555, C = 770000 };
    struct dg_pool_stats s0, s1, s2;
    dg_gl_pool_stats(gl, &s0);
    struct dg_buffer *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(dg_buffer_alloc(gl, A, NULL, &a));
    CHECK_OK(dg_buffer_alloc(gl, B, NULL, &b));
    if (!a || !b)
        return;
    CHECK(a->size == A && a->capacity >= A && a->capacity <= A * 9ull / 8);
    CHECK(b->capacity >= B && b->capacity <= B * 9ull / 8);
    dg_gl_pool_stats(gl, &s1);
    /* Two buffers handed out: new allocations, or reuses of buffers an earlier test released in the same
     * size class (the suite shares one context). */
    CHECK(s1.allocations + s1.reuse_hits == s0.allocations + s0.reuse_hits + 2);
    CHECK(s1.bytes_live == s0.bytes_live + a->capacity + b->capacity);
    CHECK(s1.bytes_peak >= s1.bytes_live);
    GLuint a_id = a->id;
    uint64_t a_cap = a->capacity;
    dg_buffer_release(gl, a);
    /* A little smaller, same size class: the released buffer comes back, with the new data in it. */
    uint32_t *data = malloc(C), *back = malloc(C);
    for (int i = 0; i < C / 4; i++)
        data[i] = (uint32_t)i * 7u;
    CHECK_OK(dg_buffer_alloc(gl, C, data, &c));
    dg_gl_pool_stats(gl, &s2);
    if (c) {
        CHECK(c->id == a_id && c->capacity == a_cap && c->size == C);
        CHECK_OK(dg_buffer_download(gl, c, 0, C, back));
        CHECK(memcmp(back, data, C) == 0);
        uint32_t patch[2] = {0xdeadbeef, 0xfeedface};
        CHECK_OK(dg_buffer_upload(gl, c, 8, sizeof patch, patch));
        CHECK_OK(dg_buffer_download(gl, c, 0, 32, back));
        CHECK(back[1] == 7 && back[2] == 0xdeadbeef && back[3] == 0xfeedface && back[4] == 28);
        CHECK(dg_buffer_upload(gl, c, c->capacity - 4, 8, patch) != DG_OK); /* past the end */
    }
    free(data);
    free(back);
    CHECK(s2.reuse_hits == s1.reuse_hits + 1 && s2.allocations == s1.allocations && s2.releases == s1.releases + 1);
    CHECK(s2.bytes_pooled == s1.bytes_pooled);
    dg_buffer_release(gl, b);
    dg_buffer_release(gl, c);
    struct dg_pool_stats s3;
    dg_gl_pool_stats(gl, &s3);
    CHECK(s3.bytes_live == s0.bytes_live);
    CHECK(s3.bytes_pooled >= s2.bytes_pooled + a_cap);
    struct dg_buffer *z = NULL;
    CHECK(dg_buffer_alloc(gl, 0, NULL, &z) != DG_OK && z == NULL);
}

DG_TEST(gl_buffer_bind_enforces_block_size_and_alignment)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    struct dg_buffer *b = NULL;
    CHECK_OK(dg_buffer_alloc(gl, 256 << 10, NULL, &b));
    if (!b)
        return;
    dg_gl_set_max_ssbo_block(gl, 64 << 10);
    CHECK(c->max_ssbo_block_size == 64 << 10);
    CHECK_OK(dg_buffer_bind(gl, 0, b, 0, 64 << 10));
    CHECK(dg_buffer_bind(gl, 0, b, 0, (64 << 10) + 16) == DG_E_UNSUPPORTED);
    CHECK_MSG(strstr(dg_last_error(), "split") != NULL, "%s", dg_last_error());
    if (c->ssbo_offset_alignment > 1)
        CHECK(dg_buffer_bind(gl, 0, b, (uint64_t)c->ssbo_offset_alignment / 2, 1024) != DG_OK);
    CHECK(dg_buffer_bind(gl, 0, b, 0, b->capacity + 16) != DG_OK);
    CHECK(dg_buffer_bind(gl, (GLuint)c->max_ssbo_bindings, b, 0, 16) != DG_OK);
    dg_gl_set_max_ssbo_block(gl, (int64_t)1 << 62); /* can only lower: stays the driver's */
    CHECK(c->max_ssbo_block_size < (int64_t)1 << 62);
    dg_gl_set_max_ssbo_block(gl, 0);
    dg_buffer_release(gl, b);
}

DG_TEST(gl_split_rows_fits_limit_and_alignment)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    dg_gl_set_max_ssbo_block(gl, 64 << 10);
    static const uint64_t row_bytes[] = {4, 34, 1024, 4100, 65536};
    for (size_t t = 0; t < sizeof row_bytes / sizeof row_bytes[0]; t++) {
        uint64_t rb = row_bytes[t], rows = 1001;
        struct dg_row_range parts[2048];
        int n = dg_buffer_split_rows(gl, rows, rb, parts, 2048);
        CHECK_MSG(n > 0, "row_bytes %llu: %s", (unsigned long long)rb, dg_last_error());
        uint64_t next = 0;
        for (int i = 0; i < n; i++) {
            CHECK(parts[i].first_row == next && parts[i].n_rows > 0);
            CHECK(parts[i].n_rows * rb <= 64 << 10);
            CHECK(parts[i].first_row * rb % (uint64_t)c->ssbo_offset_alignment == 0);
            next += parts[i].n_rows;
        }
        CHECK(next == rows);
    }
    struct dg_row_range one[4];
    CHECK(dg_buffer_split_rows(gl, 2, (64 << 10) + 4, one, 4) == -1); /* one row too big */
    CHECK(dg_buffer_split_rows(gl, 100000, 1024, one, 4) == -1);      /* too many parts */
    CHECK(dg_buffer_split_rows(gl, 10, 1024, one, 4) == 1 && one[0].n_rows == 10);
    dg_gl_set_max_ssbo_block(gl, 0);
}

/* A trivial dispatch target: reduce_sum over a small buffer. */
static GLuint setup_reduce(struct dg_gl *gl, struct dg_buffer **in, struct dg_buffer **out)
{
    GLuint p = 0;
    CHECK_OK(dg_gl_program(gl, "reduce_sum.glsl", NULL, 0, &p));
    static float x[16384];
    CHECK_OK(dg_buffer_alloc(gl, sizeof x, x, in));
    CHECK_OK(dg_buffer_alloc(gl, 64 * 4, NULL, out));
    if (!p || !*in || !*out)
        return 0;
    glUseProgram(p);
    dg_buffer_bind(gl, 0, *in, 0, (*in)->size);
    dg_buffer_bind(gl, 1, *out, 0, (*out)->size);
    glUniform1ui(0, 16384);
    return p;
}

DG_TEST(gl_profiler_times_and_aggregates_dispatches)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_buffer *in = NULL, *out = NULL;
    if (!setup_reduce(gl, &in, &out))
        return;
    dg_gl_profile_reset(gl);
    dg_gl_profiling(gl, true);
    uint64_t d0 = dg_gl_dispatch_count(gl), b0 = dg_gl_barrier_count(gl);
    struct dg_dispatch_info ka = {"kern_a", "op_x", 1 << 20}, kb = {"kern_b", "op_x", 1 << 10},
                            kc = {"kern_c", "op_y", 0};
    /* More dispatches than the ring holds (512), so slots are recycled. */
    for (int i = 0; i < 600; i++) {
        dg_gl_dispatch(gl, 4, 1, 1, i % 3 == 0 ? &ka : i % 3 == 1 ? &kb : &kc);
        dg_gl_barrier(gl);
    }
    CHECK(dg_gl_dispatch_count(gl) == d0 + 600 && dg_gl_barrier_count(gl) == b0 + 600);
    const struct dg_profile_row *rows;
    int n = dg_gl_profile_rows(gl, false, &rows);
    CHECK(n == 3);
    double share = 0;
    for (int i = 0; i < n; i++) {
        CHECK_MSG(rows[i].calls == 200, "%s: %llu calls", rows[i].kernel, (unsigned long long)rows[i].calls);
        /* Every source gives real time here: timestamps on llvmpipe, elapsed queries on GPUs, and the
         * wall clock around synchronous llvmpipe dispatches. */
        CHECK_MSG(rows[i].total_ms > 0 && rows[i].mean_us > 0, "%s: total %g ms (timing: %s)", rows[i].kernel,
                  rows[i].total_ms, dg_gl_timing_source(gl));
        CHECK_NEAR(rows[i].mean_us, rows[i].total_ms * 1e3 / 200, 1e-6 * rows[i].mean_us + 1e-9);
        if (i)
            CHECK(rows[i].total_ms <= rows[i - 1].total_ms);
        share += rows[i].share;
        if (!strcmp(rows[i].kernel, "kern_a"))
            CHECK_NEAR(rows[i].gbps, 200.0 * (1 << 20) / (rows[i].total_ms * 1e6), 1e-6 * rows[i].gbps);
        if (!strcmp(rows[i].kernel, "kern_c"))
            CHECK(rows[i].gbps == 0);
    }
    CHECK_NEAR(share, 1.0, 1e-9);
    n = dg_gl_profile_rows(gl, true, &rows);
    CHECK(n == 2);
    for (int i = 0; i < n; i++) {
        if (!strcmp(rows[i].op, "op_x"))
            CHECK(rows[i].calls == 400);
        else
            CHECK(!strcmp(rows[i].op, "op_y") && rows[i].calls == 200);
    }
    if (!strcmp(dg_gl_timing_source(gl), "wall-clock") && dg_gl_caps(gl)->timer_query)
        CHECK_MSG(0, "the driver has timer queries but the profiler fell back to the wall clock");
    dg_gl_profile_reset(gl);
    CHECK(dg_gl_profile_rows(gl, false, &rows) == 0);
    /* Off: dispatches are counted but not timed. */
    dg_gl_profiling(gl, false);
    dg_gl_dispatch(gl, 1, 1, 1, &ka);
    CHECK(dg_gl_profile_rows(gl, false, &rows) == 0);
    dg_buffer_release(gl, in);
    dg_buffer_release(gl, out);
}
