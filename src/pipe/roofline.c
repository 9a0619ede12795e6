/* roofline.c: measures the device's read bandwidth with glsl/bandwidth_read.glsl (see roofline.h). */
#include "pipe/roofline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

#define FILL_CHUNK (4u << 20)

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

uint64_t dg_roofline_n_sums(uint64_t bytes, int span)
{
    uint64_t words = bytes / 16;
    return span > 0 ? (words + (uint64_t)span - 1) / (uint64_t)span : 0;
}

dg_status dg_roofline_pass(struct dg_gl *gl, int wg_size, int span, bool image, struct dg_buffer *data,
                           uint64_t bytes, struct dg_buffer *sums, int *n_ranges)
{
    if (bytes == 0 || bytes % 16 || bytes > data->size || span <= 0 || wg_size <= 0)
        return dg_fail(DG_E_INTERNAL, "bandwidth pass: %llu bytes of a %llu-byte buffer, span %d, workgroup %d",
                       (unsigned long long)bytes, (unsigned long long)data->size, span, wg_size);
    uint64_t n_sums = dg_roofline_n_sums(bytes, span);
    if (sums->size < n_sums * 4)
        return dg_fail(DG_E_INTERNAL, "bandwidth pass: sums buffer of %llu bytes for %llu sums",
                       (unsigned long long)sums->size, (unsigned long long)n_sums);
    const struct dg_gl_caps *caps = dg_gl_caps(gl);
    if (image && !caps->texture_buffer)
        return dg_fail(DG_E_UNSUPPORTED, "bandwidth probe: image reads need GL_EXT_texture_buffer, which the device "
                                         "lacks");
    char wg[16], sp[16];
    snprintf(wg, sizeof wg, "%d", wg_size);
    snprintf(sp, sizeof sp, "%d", span);
    struct dg_define defs[] = {{"WG_SIZE", wg}, {"SPAN", sp}, {"IMG", image ? "1" : "0"}};
    GLuint prog = 0;
    dg_status st = dg_gl_program(gl, "bandwidth_read.glsl", defs, 3, &prog);
    if (st)
        return st;
    /* Ranges of whole spans (the last span may be short), each within one SSBO binding. */
    int max_parts = (int)(n_sums < 4096 ? n_sums : 4096);
    struct dg_row_range *parts = malloc(sizeof *parts * (size_t)max_parts);
    GLuint *views = image ? calloc((size_t)max_parts, sizeof *views) : NULL;
    if (!parts || (image && !views)) {
        free(parts);
        free(views);
        return dg_fail(DG_E_NOMEM, "bandwidth pass: out of memory");
    }
    int np = dg_buffer_split_rows(gl, n_sums, (uint64_t)span * 16, parts, max_parts);
    if (np < 0) {
        free(parts);
        free(views);
        return dg_fail_context(DG_E_UNSUPPORTED, "bandwidth probe: ");
    }
    glUseProgram(prog);
    if ((st = dg_buffer_bind(gl, 1, sums, 0, sums->size < n_sums * 4 ? sums->size : n_sums * 4)))
        goto out;
    for (int p = 0; p < np; p++) {
        uint64_t off = parts[p].first_row * (uint64_t)span * 16;
        uint64_t len = parts[p].n_rows * (uint64_t)span * 16;
        if (off + len > bytes)
            len = bytes - off;
        if (parts[p].n_rows > (uint64_t)caps->max_wg_count[0]) {
            st = dg_fail(DG_E_UNSUPPORTED, "bandwidth probe: %llu workgroups in one range exceed the device's %d",
                         (unsigned long long)parts[p].n_rows, caps->max_wg_count[0]);
            goto out;
        }
        if (image) {
            /* The ranges follow the SSBO limits; the texture-buffer ones (texel count, offset alignment) may
             * be stricter. */
            if (!dg_buffer_image_ok(gl, off, len)) {
                st = dg_fail(DG_E_UNSUPPORTED, "bandwidth probe: bytes [%llu, +%llu) cannot be read as an image "
                             "(at most %lld texels of 16 bytes, offsets aligned to %d)", (unsigned long long)off,
                             (unsigned long long)len, (long long)caps->max_texture_buffer_texels,
                             caps->texture_buffer_offset_alignment);
                goto out;
            }
            if ((st = dg_image_view_create(gl, data, off, len, GL_RGBA32UI, &views[p])))
                goto out;
            dg_image_view_bind(gl, 0, views[p], GL_RGBA32UI);
        } else if ((st = dg_buffer_bind(gl, 0, data, off, len))) {
            goto out;
        }
        glUniform1ui(0, (GLuint)(len / 16));
        glUniform1ui(1, (GLuint)parts[p].first_row);
        struct dg_dispatch_info info = {"bandwidth_read", "roofline", len + parts[p].n_rows * 4};
        dg_gl_dispatch(gl, (GLuint)parts[p].n_rows, 1, 1, &info);
    }
    st = dg_gl_check("bandwidth probe dispatch");
    if (n_ranges)
        *n_ranges = np;
out:
    /* GL defers deleting a view until the dispatches that read it are done. */
    if (views)
        for (int p = 0; p < np; p++)
            dg_image_view_delete(gl, views[p]);
    free(views);
    free(parts);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The fill pattern: distinct, cheap, and not a constant a driver could fold. */
static inline uint32_t pattern(uint64_t i) { return (uint32_t)(i * 2654435761u) ^ (uint32_t)(i >> 9); }

/* Times one read path: a warm-up pass (compiles the program, faults the pages in) and `reps` timed ones,
 * into ms[]; then checks the sums (poisoned first, so a path that wrote nothing cannot pass on the sums the
 * other left) and fills best/median. */
static dg_status time_path(struct dg_gl *gl, bool image, int wg, int span, int reps, struct dg_buffer *data,
                           uint64_t bytes, struct dg_buffer *sums, uint32_t *host_sums, uint32_t expect, double *ms,
                           double *best, double *median, struct dg_roofline *out)
{
    uint64_t n_sums = dg_roofline_n_sums(bytes, span);
    memset(host_sums, 0xA5, n_sums * 4);
    dg_status st = dg_buffer_upload(gl, sums, 0, n_sums * 4, host_sums);
    if (st)
        return st;
    bool gpu_timers = strcmp(dg_gl_timing_source(gl), "wall-clock") != 0;
    for (int r = -1; r < reps; r++) {
        dg_gl_profile_reset(gl);
        dg_gl_profiling(gl, gpu_timers);
        glFinish();
        double t0 = now_ms();
        st = dg_roofline_pass(gl, wg, span, image, data, bytes, sums, &out->n_ranges);
        glFinish();
        double wall = now_ms() - t0;
        dg_gl_profiling(gl, false);
        if (st)
            break;
        double t = wall;
        if (gpu_timers) {
            const struct dg_profile_row *rows;
            int n = dg_gl_profile_rows(gl, false, &rows);
            double gpu = 0;
            for (int i = 0; i < n; i++)
                if (!strcmp(rows[i].kernel, "bandwidth_read"))
                    gpu += rows[i].total_ms;
            if (gpu > 0)
                t = gpu;
            else
                snprintf(out->timing, sizeof out->timing, "wall-clock");
        }
        if (r >= 0)
            ms[r] = t > 1e-6 ? t : 1e-6;
    }
    dg_gl_profile_reset(gl);
    if (st)
        return st;
    if ((st = dg_buffer_download(gl, sums, 0, n_sums * 4, host_sums)))
        return st;
    uint32_t got = 0;
    for (uint64_t i = 0; i < n_sums; i++)
        got += host_sums[i];
    out->checksum = got;
    if (got != expect)
        return dg_fail(DG_E_VERIFY, "bandwidth probe (%s loads): the GPU summed %llu bytes to 0x%08x, the host to "
                       "0x%08x: the kernel did not read the buffer as written", image ? "image" : "SSBO",
                       (unsigned long long)bytes, got, expect);
    double sorted[DG_ROOFLINE_MAX_REPS];
    memcpy(sorted, ms, sizeof(double) * (size_t)reps);
    qsort(sorted, (size_t)reps, sizeof *sorted, cmp_double);
    double med = reps % 2 ? sorted[reps / 2] : (sorted[reps / 2 - 1] + sorted[reps / 2]) / 2;
    *best = (double)bytes / (sorted[0] * 1e6);
    *median = (double)bytes / (med * 1e6);
    DG_VERBOSE("bandwidth probe, %s loads: %llu MiB x %d in %d range(s), workgroup %d, span %d: best %.1f GB/s, "
               "median %.1f GB/s (%s)", image ? "image" : "SSBO", (unsigned long long)(bytes >> 20), reps,
               out->n_ranges, wg, span, *best, *median, out->timing);
    return DG_OK;
}

dg_status dg_roofline_measure(struct dg_gl *gl, const struct dg_roofline_options *opt, struct dg_roofline *out)
{
    memset(out, 0, sizeof *out);
    const struct dg_gl_caps *caps = dg_gl_caps(gl);
    uint64_t bytes = opt && opt->bytes ? opt->bytes : (caps->is_software ? 64ull << 20 : 256ull << 20);
    int reps = opt && opt->reps > 0 ? opt->reps : 5;
    /* llvmpipe runs a workgroup's invocations as SIMD rows of 8 with the barrier between them costly: on 2
     * cores 8 invocations read 2-4 GB/s where 64 read 0.7 GB/s. The image path is fastest at 8 too: 42 GB/s,
     * against 27 at 16, 19 at 64 and 11 at 256 (64 MiB, best of 5). */
    int wg = opt && opt->wg_size > 0 ? opt->wg_size : (caps->is_software ? 8 : 256);
    int span = opt && opt->span > 0 ? opt->span : 4096;
    int paths = opt ? opt->paths : DG_ROOFLINE_ALL;
    bool do_ssbo = paths != DG_ROOFLINE_IMAGE;
    bool do_image = paths != DG_ROOFLINE_SSBO && caps->texture_buffer;
    if (paths == DG_ROOFLINE_IMAGE && !caps->texture_buffer)
        return dg_fail(DG_E_UNSUPPORTED, "bandwidth probe: image reads need GL_EXT_texture_buffer, which the device "
                                         "lacks");
    if (reps > DG_ROOFLINE_MAX_REPS)
        reps = DG_ROOFLINE_MAX_REPS;
    if (wg > caps->max_invocations)
        wg = caps->max_invocations;
    uint64_t span_bytes = (uint64_t)span * 16;
    bytes = (bytes + span_bytes - 1) / span_bytes * span_bytes;
    out->bytes = bytes;
    out->reps = reps;
    out->wg_size = wg;
    out->span = span;
    snprintf(out->timing, sizeof out->timing, "%s", dg_gl_timing_source(gl));

    struct dg_buffer *data = NULL, *sums = NULL;
    uint64_t n_sums = dg_roofline_n_sums(bytes, span);
    uint32_t *chunk = malloc(FILL_CHUNK);
    uint32_t *host_sums = malloc(n_sums * 4);
    double ssbo_ms[DG_ROOFLINE_MAX_REPS], image_ms[DG_ROOFLINE_MAX_REPS];
    dg_status st = DG_OK;
    if (!chunk || !host_sums) {
        st = dg_fail(DG_E_NOMEM, "bandwidth probe: out of memory");
        goto out;
    }
    if ((st = dg_buffer_alloc(gl, bytes, NULL, &data)) || (st = dg_buffer_alloc(gl, n_sums * 4, NULL, &sums)))
        goto out;
    uint32_t expect = 0;
    for (uint64_t off = 0; off < bytes; off += FILL_CHUNK) {
        uint64_t len = bytes - off < FILL_CHUNK ? bytes - off : FILL_CHUNK;
        uint64_t w0 = off / 4;
        for (uint64_t j = 0; j < len / 4; j++) {
            chunk[j] = pattern(w0 + j);
            expect += chunk[j];
        }
        if ((st = dg_buffer_upload(gl, data, off, len, chunk)))
            goto out;
    }
    if (do_ssbo && (st = time_path(gl, false, wg, span, reps, data, bytes, sums, host_sums, expect, ssbo_ms,
                                   &out->ssbo_best_gbps, &out->ssbo_median_gbps, out)))
        goto out;
    if (do_image && (st = time_path(gl, true, wg, span, reps, data, bytes, sums, host_sums, expect, image_ms,
                                    &out->image_best_gbps, &out->image_median_gbps, out))) {
        /* A range the device cannot view is a range decode cannot read through images either: it falls back
         * to SSBOs, and so does the roofline. */
        if (st != DG_E_UNSUPPORTED || !do_ssbo)
            goto out;
        DG_WARN("bandwidth probe: image loads not measured: %s", dg_last_error());
        dg_clear_error();
        out->image_best_gbps = out->image_median_gbps = 0;
        st = DG_OK;
    }
    bool img = out->image_best_gbps > out->ssbo_best_gbps;
    snprintf(out->path, sizeof out->path, "%s", img ? "image" : "ssbo");
    out->best_gbps = img ? out->image_best_gbps : out->ssbo_best_gbps;
    out->median_gbps = img ? out->image_median_gbps : out->ssbo_median_gbps;
    memcpy(out->ms, img ? image_ms : ssbo_ms, sizeof(double) * (size_t)reps);
out:
    free(chunk);
    free(host_sums);
    if (data)
        dg_buffer_release(gl, data);
    if (sums)
        dg_buffer_release(gl, sums);
    return st;
}
