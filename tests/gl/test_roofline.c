/* test_roofline.c: the bandwidth probe: per-span sums equal the host's (one range, and split into many
 * ranges under a lowered SSBO block limit, with a short last span), and a measurement returns positive,
 * ordered figures with a verified checksum. */
#include <stdlib.h>
#include <string.h>

#include "gl_fixture.h"
#include "pipe/roofline.h"
#include "test.h"

/* Sums of `words` uint32 per span of `span` uvec4, wrapping, as the kernel defines them. */
static void host_sums(const uint32_t *w, uint64_t n_words, int span, uint32_t *out, uint64_t n_sums)
{
    for (uint64_t s = 0; s < n_sums; s++) {
        uint32_t acc = 0;
        uint64_t a = s * (uint64_t)span * 4, b = a + (uint64_t)span * 4;
        for (uint64_t i = a; i < b && i < n_words; i++)
            acc += w[i];
        out[s] = acc;
    }
}

static void check_pass(struct dg_gl *gl, int wg, int span, uint64_t n_words, int64_t block_limit, int min_ranges)
{
    uint32_t *w = malloc(n_words * 4);
    uint64_t n_sums = dg_roofline_n_sums(n_words * 4, span);
    uint32_t *want = malloc(n_sums * 4), *got = malloc(n_sums * 4);
    if (!w || !want || !got) {
        CHECK(!"out of memory");
        free(w), free(want), free(got);
        return;
    }
    /* Large values so the uint additions wrap: the GPU must wrap the same way. */
    for (uint64_t i = 0; i < n_words; i++)
        w[i] = 0xF0000000u + (uint32_t)(i * 40503u);
    host_sums(w, n_words, span, want, n_sums);
    int64_t saved = dg_gl_caps(gl)->max_ssbo_block_size;
    struct dg_buffer *data = NULL, *sums = NULL;
    CHECK_OK(dg_buffer_alloc(gl, n_words * 4, w, &data));
    CHECK_OK(dg_buffer_alloc(gl, n_sums * 4, NULL, &sums));
    if (data && sums) {
        if (block_limit)
            dg_gl_set_max_ssbo_block(gl, block_limit);
        int ranges = 0;
        CHECK_OK(dg_roofline_pass(gl, wg, span, data, n_words * 4, sums, &ranges));
        dg_gl_set_max_ssbo_block(gl, 0);
        dg_gl_set_max_ssbo_block(gl, saved);
        CHECK_MSG(ranges >= min_ranges, "%d ranges bound, expected at least %d", ranges, min_ranges);
        CHECK_OK(dg_buffer_download(gl, sums, 0, n_sums * 4, got));
        int bad = 0;
        for (uint64_t s = 0; s < n_sums; s++)
            if (got[s] != want[s] && bad++ < 4)
                CHECK_MSG(0, "wg %d span %d: sum %llu = 0x%08x, host 0x%08x", wg, span, (unsigned long long)s,
                          got[s], want[s]);
        CHECK_MSG(bad == 0, "%d of %llu sums differ", bad, (unsigned long long)n_sums);
    }
    if (data)
        dg_buffer_release(gl, data);
    if (sums)
        dg_buffer_release(gl, sums);
    free(w), free(want), free(got);
}

DG_TEST(gl_roofline_sums_match_host)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* 5 full spans and a short one (3 words past the unrolled loop's reach); one range. */
    check_pass(gl, 64, 256, (5 * 256 + 7) * 4, 0, 1);
    /* A workgroup larger than the span's unroll step, and a span that is not a multiple of 4 * WG. */
    check_pass(gl, 256, 300, (3 * 300 + 1) * 4, 0, 1);
    /* Split into ranges: a 64 KiB block limit over ~256 KiB of 4 KiB spans. */
    int align = dg_gl_caps(gl)->ssbo_offset_alignment;
    if (align > 0 && align <= 4096)
        check_pass(gl, 64, 256, 64 * 256 * 4 + 12, 64 * 1024, 4);
}

DG_TEST(gl_roofline_measures_positive_bandwidth)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_roofline_options o = {.bytes = 4u << 20, .reps = 3};
    struct dg_roofline r;
    CHECK_OK(dg_roofline_measure(gl, &o, &r));
    CHECK(r.bytes == 4u << 20 && r.reps == 3 && r.n_ranges >= 1);
    CHECK_MSG(r.best_gbps > 0 && r.median_gbps > 0 && r.best_gbps >= r.median_gbps, "best %g median %g", r.best_gbps,
              r.median_gbps);
    /* Sanity bound, not a speed target: no device reads 4 MiB faster than 100 TB/s; a figure above it would
     * mean the timer measured nothing. */
    CHECK_MSG(r.best_gbps < 1e5, "best %g GB/s is not a real measurement", r.best_gbps);
    for (int i = 0; i < r.reps; i++)
        CHECK(r.ms[i] > 0);
    CHECK(r.timing[0] != 0);
}
