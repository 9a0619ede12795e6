/* test_roofline.c: the bandwidth probe: per-span sums equal the host's through SSBO and image loads (one
 * range, and split into many ranges under a lowered SSBO block limit, with a short last span), and a
 * measurement returns positive, ordered figures with a verified checksum for each read path, the faster
 * one as the roofline. */
#include <stdbool.h>
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

/* Without texture buffers the image path cannot run: a skip, except under CI=true, whose devices
 * (llvmpipe included) all have them, so a lost capability does not pass unnoticed. */
static bool have_images(struct dg_gl *gl)
{
    if (dg_gl_caps(gl)->texture_buffer)
        return true;
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true"))
        CHECK_MSG(0, "%s has no GL_EXT_texture_buffer: the image read path is untested (required under CI=true)",
                  dg_gl_caps(gl)->renderer);
    else
        dg_test_skip("%s has no GL_EXT_texture_buffer", dg_gl_caps(gl)->renderer);
    return false;
}

/* One pass over the same data through SSBO loads and, with `image`, one through image loads; each pass's
 * sums must equal the host's, and so each other's. */
static void check_pass(struct dg_gl *gl, int wg, int span, bool image, uint64_t n_words, int64_t block_limit,
                       int min_ranges)
{
    uint32_t *w = malloc(n_words * 4);
    uint64_t n_sums = dg_roofline_n_sums(n_words * 4, span);
    uint32_t *want = malloc(n_sums * 4), *got[2] = {malloc(n_sums * 4), malloc(n_sums * 4)};
    if (!w || !want || !got[0] || !got[1]) {
        CHECK(!"out of memory");
        free(w), free(want), free(got[0]), free(got[1]);
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
    for (int k = 0; data && sums && k <= (int)image; k++) {
        const char *what = k ? "image" : "SSBO";
        /* poisoned, so a pass that writes nothing cannot pass on the sums of the one before */
        memset(got[k], 0xA5, n_sums * 4);
        CHECK_OK(dg_buffer_upload(gl, sums, 0, n_sums * 4, got[k]));
        if (block_limit)
            dg_gl_set_max_ssbo_block(gl, block_limit);
        int ranges = 0;
        CHECK_OK(dg_roofline_pass(gl, wg, span, k == 1, data, n_words * 4, sums, &ranges));
        dg_gl_set_max_ssbo_block(gl, 0);
        dg_gl_set_max_ssbo_block(gl, saved);
        CHECK_MSG(ranges >= min_ranges, "%s: %d ranges bound, expected at least %d", what, ranges, min_ranges);
        CHECK_OK(dg_buffer_download(gl, sums, 0, n_sums * 4, got[k]));
        int bad = 0;
        for (uint64_t s = 0; s < n_sums; s++)
            if (got[k][s] != want[s] && bad++ < 4)
                CHECK_MSG(0, "%s wg %d span %d: sum %llu = 0x%08x, host 0x%08x", what, wg, span,
                          (unsigned long long)s, got[k][s], want[s]);
        CHECK_MSG(bad == 0, "%s: %d of %llu sums differ", what, bad, (unsigned long long)n_sums);
    }
    if (image && data && sums)
        CHECK_MSG(!memcmp(got[0], got[1], n_sums * 4), "wg %d span %d: image and SSBO sums differ", wg, span);
    if (data)
        dg_buffer_release(gl, data);
    if (sums)
        dg_buffer_release(gl, sums);
    free(w), free(want), free(got[0]), free(got[1]);
}

static void check_passes(struct dg_gl *gl, bool image)
{
    /* 5 full spans and a short one (3 words past the unrolled loop's reach); one range. */
    check_pass(gl, 64, 256, image, (5 * 256 + 7) * 4, 0, 1);
    /* A workgroup larger than the span's unroll step, and a span that is not a multiple of 4 * WG. */
    check_pass(gl, 256, 300, image, (3 * 300 + 1) * 4, 0, 1);
    /* Split into ranges: a 64 KiB block limit over ~256 KiB of 4 KiB spans. */
    int align = dg_gl_caps(gl)->ssbo_offset_alignment;
    if (align > 0 && align <= 4096)
        check_pass(gl, 64, 256, image, 64 * 256 * 4 + 12, 64 * 1024, 4);
}

DG_TEST(gl_roofline_sums_match_host)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    check_passes(gl, false);
}

/* The image path reads the same words as the SSBO path: the same cases, on the same data, must give the
 * same sums. */
DG_TEST(gl_roofline_image_sums_match_ssbo)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl || !have_images(gl))
        return;
    check_passes(gl, true);
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

DG_TEST(gl_roofline_measures_both_read_paths)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl || !have_images(gl))
        return;
    struct dg_roofline_options o = {.bytes = 4u << 20, .reps = 3};
    struct dg_roofline r;
    CHECK_OK(dg_roofline_measure(gl, &o, &r));
    if (dg_test_failed())
        return;
    CHECK_MSG(r.ssbo_best_gbps > 0 && r.ssbo_best_gbps >= r.ssbo_median_gbps, "SSBO best %g median %g",
              r.ssbo_best_gbps, r.ssbo_median_gbps);
    CHECK_MSG(r.image_best_gbps > 0 && r.image_best_gbps >= r.image_median_gbps, "image best %g median %g",
              r.image_best_gbps, r.image_median_gbps);
    bool img = r.image_best_gbps > r.ssbo_best_gbps;
    CHECK_MSG(!strcmp(r.path, img ? "image" : "ssbo"), "path \"%s\" with SSBO %g and image %g GB/s", r.path,
              r.ssbo_best_gbps, r.image_best_gbps);
    CHECK(r.best_gbps == (img ? r.image_best_gbps : r.ssbo_best_gbps));
    CHECK(r.median_gbps == (img ? r.image_median_gbps : r.ssbo_median_gbps));
    /* ms[] are the chosen path's: the fastest repetition gives best_gbps. */
    double fastest = r.ms[0];
    for (int i = 1; i < r.reps; i++)
        fastest = r.ms[i] < fastest ? r.ms[i] : fastest;
    CHECK_NEAR((double)r.bytes / (fastest * 1e6), r.best_gbps, 1e-9 * r.best_gbps);
    printf("    4 MiB: SSBO %.2f GB/s, image %.2f GB/s best -> %s\n", r.ssbo_best_gbps, r.image_best_gbps, r.path);

    /* Restricted to one path, the other is not measured. */
    o.paths = DG_ROOFLINE_SSBO;
    CHECK_OK(dg_roofline_measure(gl, &o, &r));
    CHECK(r.ssbo_best_gbps > 0 && r.image_best_gbps == 0 && !strcmp(r.path, "ssbo"));
    o.paths = DG_ROOFLINE_IMAGE;
    CHECK_OK(dg_roofline_measure(gl, &o, &r));
    CHECK(r.image_best_gbps > 0 && r.ssbo_best_gbps == 0 && !strcmp(r.path, "image"));
}
