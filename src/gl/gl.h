/* gl.h: the GL layer's public contract: a headless GLES 3.1 context with its recorded capabilities,
 * programs compiled from glsl/ files with a #define preamble, a pooled SSBO allocator, and a dispatch
 * helper that the profiler can time. Nothing here knows about models or kernel paths.
 *
 * Implementation files: gl/context.c (EGL platforms, capabilities), gl/program.c (preamble, compile,
 * in-process and on-disk program cache), gl/pool.c (SSBO pool, oversized-tensor ranges),
 * gl/profiler.c (timer-query ring, aggregation), gl/dispatch.c. */
#ifndef DG_GL_GL_H
#define DG_GL_GL_H

#include <GLES3/gl31.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

/* ---- context and capabilities ---- */

struct dg_gl_options {
    const char *platform; /* NULL or "auto" = try gbm, device, surfaceless, default in turn */
    const char *device;   /* a /dev/dri/renderD* path or an EGL device index; NULL = first usable */
    /* Added after the first contract (zero = default, so older initializers keep working): */
    int64_t max_ssbo_block; /* > 0: lower the max SSBO block size to this many bytes (testing the split
                             * path on llvmpipe, which does not enforce its limit); 0 = the driver's */
    int program_cache;      /* on-disk program-binary cache: 0 = default, 1 = on, -1 = off */
};

struct dg_gl_caps {
    char vendor[128], renderer[256], version[256], glsl_version[128];
    int gl_major, gl_minor;
    bool timer_query;       /* GL_EXT_disjoint_timer_query */
    bool time_elapsed_works; /* elapsed queries return non-zero (false on llvmpipe: use timestamps) */
    bool subgroup;          /* GL_KHR_shader_subgroup with compute stage and basic+arithmetic */
    unsigned subgroup_size;
    unsigned subgroup_stages, subgroup_features; /* GL_SUBGROUP_SUPPORTED_{STAGES,FEATURES}_KHR bits */
    bool f16_arith;         /* GL_NV_gpu_shader5: f16vec2 arithmetic in shaders (matmul's H16) */
    int n_program_binary_formats;
    int64_t max_ssbo_block_size;   /* GL_MAX_SHADER_STORAGE_BLOCK_SIZE (possibly lowered for tests) */
    int ssbo_offset_alignment;     /* GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT */
    int max_ssbo_bindings;         /* GL_MAX_SHADER_STORAGE_BUFFER_BINDINGS */
    int max_compute_ssbo_blocks;   /* GL_MAX_COMPUTE_SHADER_STORAGE_BLOCKS */
    int max_shared_memory;         /* GL_MAX_COMPUTE_SHARED_MEMORY_SIZE */
    int max_invocations;           /* GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS */
    int max_wg_size[3], max_wg_count[3];
    int max_uniform_block_size;
    /* GL_EXT_texture_buffer with glTexBufferRangeEXT: buffers read through imageLoad (the kernels' image
     * reads, which llvmpipe runs as vector loads where it runs SSBO loads one lane at a time) */
    bool texture_buffer;
    int64_t max_texture_buffer_texels; /* GL_MAX_TEXTURE_BUFFER_SIZE_EXT */
    int texture_buffer_offset_alignment; /* GL_TEXTURE_BUFFER_OFFSET_ALIGNMENT_EXT */
    int max_compute_image_uniforms;      /* GL_MAX_COMPUTE_IMAGE_UNIFORMS */
    bool is_software;              /* llvmpipe/softpipe/swrast (EGL_MESA_device_software or renderer) */
    char extensions[8192];         /* space-separated GL extensions */
};

struct dg_gl; /* opaque: display, context, caches, pool, profiler */

dg_status dg_gl_open(const struct dg_gl_options *opt, struct dg_gl **out);
void dg_gl_close(struct dg_gl *gl);
const struct dg_gl_caps *dg_gl_caps(const struct dg_gl *gl);
const char *dg_gl_platform_name(const struct dg_gl *gl); /* "gbm", "device", "surfaceless", "default" */
const char *dg_gl_device_name(const struct dg_gl *gl);   /* render node path or EGL device description */
/* Lowers (never raises) max_ssbo_block_size on an open context; bytes <= 0 restores the driver's value.
 * For tests of the oversized-tensor path. */
void dg_gl_set_max_ssbo_block(struct dg_gl *gl, int64_t bytes);
/* Checks glGetError; on error records "<what>: GL error 0x…" and returns DG_E_GL. */
dg_status dg_gl_check(const char *what);

/* ---- programs ---- */

struct dg_define {
    const char *name;
    const char *value; /* NULL or "" = defined without a value */
};

/* Returns the program for glsl/<file> with the given defines (order irrelevant), compiling it on first
 * use. Capability defines (HAS_SUBGROUP, SUBGROUP_SIZE, ...) are added by the loader. Compile errors come
 * back as DG_E_GL with the file name, real line numbers and the info log. */
dg_status dg_gl_program(struct dg_gl *gl, const char *file, const struct dg_define *defs, int n_defs,
                        GLuint *out);
/* The program caches' state, for `info` and tests. */
struct dg_program_cache_info {
    bool enabled;          /* on-disk binaries in use (setting on and the driver has binary formats) */
    char dir[512];         /* where they live ("" when no cache directory could be found) */
    int n_programs;        /* distinct (file, defines) programs in this process */
    uint64_t compiled;     /* compiled from source */
    uint64_t loaded;       /* loaded from a disk binary */
    uint64_t stored;       /* binaries written */
    uint64_t rejected;     /* stale or corrupt entries found (deleted and rebuilt) */
    double build_ms;       /* wall time in compile/link/binary load (llvmpipe compiles at first dispatch) */
};
void dg_gl_program_cache_info(const struct dg_gl *gl, struct dg_program_cache_info *out);
/* Deletes every program this process compiled and forgets them, so the next dg_gl_program goes to the
 * disk cache or the compiler again. Program ids obtained before become invalid: for tests of the cache. */
void dg_gl_program_forget_all(struct dg_gl *gl);
/* Directory the shaders are read from (DOPPLER_GL_DATADIR/glsl, installed share dir, or the source tree). */
const char *dg_gl_shader_dir(void);

/* ---- buffers ---- */

struct dg_buffer {
    GLuint id;
    uint64_t size;     /* bytes requested */
    uint64_t capacity; /* bytes allocated (size class) */
};

/* Allocates (or reuses from the pool) a buffer of at least `size` bytes; uploads `data` when non-NULL,
 * else the contents are undefined. Released buffers go back to the pool. */
dg_status dg_buffer_alloc(struct dg_gl *gl, uint64_t size, const void *data, struct dg_buffer **out);
void dg_buffer_release(struct dg_gl *gl, struct dg_buffer *buf);
dg_status dg_buffer_upload(struct dg_gl *gl, struct dg_buffer *buf, uint64_t offset, uint64_t size,
                           const void *data);
/* Synchronous read-back (tests, and the one sampled-id read per token group). */
dg_status dg_buffer_download(struct dg_gl *gl, struct dg_buffer *buf, uint64_t offset, uint64_t size,
                             void *out);
/* Binds [offset, offset+size) of buf to SSBO binding point `binding`. Fails with a clear message when the
 * range exceeds max_ssbo_block_size or the offset is not aligned; callers split large tensors with
 * dg_buffer_split_rows. */
dg_status dg_buffer_bind(struct dg_gl *gl, GLuint binding, const struct dg_buffer *buf, uint64_t offset,
                         uint64_t size);

/* Splits a tensor of `rows` rows of `row_bytes` each into row ranges that each fit one SSBO binding and
 * start at an aligned offset. Fills up to max_parts {first_row, n_rows}; returns the count, or -1 (with
 * dg_fail) when a single row does not fit or max_parts is too small. */
struct dg_row_range {
    uint64_t first_row, n_rows;
};
int dg_buffer_split_rows(const struct dg_gl *gl, uint64_t rows, uint64_t row_bytes, struct dg_row_range *parts,
                         int max_parts);

struct dg_pool_stats {
    uint64_t bytes_live, bytes_peak, bytes_pooled;
    uint64_t allocations, reuse_hits, releases;
};
void dg_gl_pool_stats(const struct dg_gl *gl, struct dg_pool_stats *out);

/* ---- dispatch and profiling ---- */

struct dg_dispatch_info {
    const char *kernel; /* registry name, for the profiler */
    const char *op;     /* kernel-path op ("attention", "matmul"...) */
    uint64_t bytes;     /* bytes the dispatch reads + writes (for GB/s) */
};

/* glDispatchCompute with the program already bound by the caller; timed when profiling is on. */
void dg_gl_dispatch(struct dg_gl *gl, GLuint groups_x, GLuint groups_y, GLuint groups_z,
                    const struct dg_dispatch_info *info);
/* glMemoryBarrier(GL_SHADER_STORAGE_BARRIER_BIT), counted; with images on (dg_gl_barrier_images), also
 * GL_SHADER_IMAGE_ACCESS_BARRIER_BIT, since a kernel may then read through an image what the previous one
 * wrote to a storage buffer. */
void dg_gl_barrier(struct dg_gl *gl);
void dg_gl_barrier_images(struct dg_gl *gl, bool on);

/* ---- buffers read as images (caps.texture_buffer) ---- */

/* A texture-buffer view of [offset, offset + size) of buf, as texels of format (GL_RGBA32UI or
 * GL_RGBA32F: 16 bytes each). Fails with a clear message where the device has no texture buffers, the
 * range holds more than max_texture_buffer_texels texels, or offset is not a multiple of
 * texture_buffer_offset_alignment; dg_buffer_image_ok says whether it would succeed. The caller deletes
 * the view with dg_image_view_delete before releasing buf. */
bool dg_buffer_image_ok(const struct dg_gl *gl, uint64_t offset, uint64_t size);
dg_status dg_image_view_create(struct dg_gl *gl, const struct dg_buffer *buf, uint64_t offset, uint64_t size,
                               GLenum format, GLuint *out);
void dg_image_view_delete(struct dg_gl *gl, GLuint view);
/* Binds a view to image unit `unit`, read-only. */
void dg_image_view_bind(struct dg_gl *gl, GLuint unit, GLuint view, GLenum format);

void dg_gl_profiling(struct dg_gl *gl, bool on);
struct dg_profile_row {
    char kernel[64], op[32];
    uint64_t calls;
    double total_ms, mean_us, share, gbps;
};
/* Collects every pending timer result (may wait) and returns aggregated rows sorted by total time,
 * per kernel (by_op false) or per op (by_op true). The array is owned by gl until the next call. */
int dg_gl_profile_rows(struct dg_gl *gl, bool by_op, const struct dg_profile_row **rows);
void dg_gl_profile_reset(struct dg_gl *gl);
const char *dg_gl_timing_source(const struct dg_gl *gl); /* "time-elapsed", "timestamp", "wall-clock" */
uint64_t dg_gl_dispatch_count(const struct dg_gl *gl);
uint64_t dg_gl_barrier_count(const struct dg_gl *gl);

#endif
