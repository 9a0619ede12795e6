/* roofline.h: the device's measured read bandwidth (the roofline `bench` compares decode against),
 * from a streaming kernel (glsl/bandwidth_read.glsl) over a buffer larger than the caches.
 *
 * Read paths: the kernels read buffers as SSBOs or, where the device has GL_EXT_texture_buffer, through
 * image views (imageLoad). Both are measured, on the same buffer, and the faster one is the roofline: the
 * device's bandwidth is what the fastest kernel read path can stream. They differ most on llvmpipe, which
 * runs an SSBO load lane by lane (a branch per lane and component) and an image load as one vector fetch;
 * against the SSBO figure alone, decode kernels reading through images would show an inflated share.
 *
 * Timing: the GL profiler's GPU timer queries (elapsed or timestamp pairs) around each dispatch, so only
 * GPU time counts; on a device without usable timers, wall clock around glFinish. A measurement turns
 * profiling off and resets the profiler's aggregates when it returns. */
#ifndef DG_PIPE_ROOFLINE_H
#define DG_PIPE_ROOFLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "gl/gl.h"

#define DG_ROOFLINE_MAX_REPS 64

/* dg_roofline_options.paths */
enum { DG_ROOFLINE_ALL = 0, DG_ROOFLINE_SSBO = 1, DG_ROOFLINE_IMAGE = 2 };

struct dg_roofline_options {
    uint64_t bytes; /* buffer size; 0 = 256 MiB on a GPU, 64 MiB on a software device */
    int reps;       /* timed repetitions after one warm-up pass (per read path); 0 = 5 */
    int wg_size;    /* invocations per workgroup; 0 = 256 on a GPU, 8 (one SIMD row) on a software device */
    int span;       /* uvec4 words per workgroup; 0 = 4096 (64 KiB) */
    int paths;      /* DG_ROOFLINE_ALL (0): SSBO, and image where caps.texture_buffer; or just one of them
                     * (DG_ROOFLINE_IMAGE without texture buffers is DG_E_UNSUPPORTED) */
};

struct dg_roofline {
    uint64_t bytes;      /* bytes read per repetition */
    int reps;
    int wg_size, span;
    int n_ranges;        /* SSBO ranges (image views) bound per repetition (max_ssbo_block_size) */
    char path[8];        /* the faster read path: "image" or "ssbo"; the three figures below are its own */
    double ms[DG_ROOFLINE_MAX_REPS]; /* time of each repetition */
    double best_gbps;    /* bytes / fastest repetition (1 GB = 1e9 bytes) */
    double median_gbps;  /* bytes / median repetition */
    double ssbo_best_gbps, ssbo_median_gbps;   /* per read path; 0 where not measured */
    double image_best_gbps, image_median_gbps;
    char timing[16];     /* "time-elapsed", "timestamp" or "wall-clock" */
    uint32_t checksum;   /* wrapping sum of every word read, as the GPU computed it (verified for each path) */
};

/* Allocates the buffer, fills it with a known pattern, and for each read path runs one warm-up pass and
 * `reps` timed passes and checks that the GPU's sum equals the host's (DG_E_VERIFY otherwise: the kernel
 * did not read what was written). The buffer goes back to the pool. */
dg_status dg_roofline_measure(struct dg_gl *gl, const struct dg_roofline_options *opt, struct dg_roofline *out);

/* One pass of the kernel over the first `bytes` (a multiple of 16) of `data`, bound in ranges that fit
 * max_ssbo_block_size: one uint32 sum per span, in order, written to `sums` (at least
 * dg_roofline_n_sums(bytes, span) entries). A span never crosses a range. With `image`, each range is read
 * through an rgba32ui texture-buffer view at image unit 0 (created for the pass and deleted after it;
 * DG_E_UNSUPPORTED where a range cannot be viewed). Timed when profiling is on (kernel "bandwidth_read",
 * op "roofline"). For tests and dg_roofline_measure. */
dg_status dg_roofline_pass(struct dg_gl *gl, int wg_size, int span, bool image, struct dg_buffer *data,
                           uint64_t bytes, struct dg_buffer *sums, int *n_ranges);
uint64_t dg_roofline_n_sums(uint64_t bytes, int span);

#endif
