/* gl_internal.h: the inside of struct dg_gl, shared by the files in src/gl and nothing else. */
#ifndef DG_GL_INTERNAL_H
#define DG_GL_INTERNAL_H

#include "gl/gl.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2platform.h>
#ifndef GL_APIENTRYP
#define GL_APIENTRYP GL_APIENTRY *
#endif
#include <GLES2/gl2ext.h>

struct gbm_device;
struct dg_program_entry;
struct dg_pool_class;
struct dg_prof_slot;
struct dg_prof_agg;

/* Timer-query entry points come from GL_EXT_disjoint_timer_query through eglGetProcAddress. */
struct dg_gl_timer_fns {
    PFNGLGENQUERIESEXTPROC gen;
    PFNGLDELETEQUERIESEXTPROC del;
    PFNGLBEGINQUERYEXTPROC begin;
    PFNGLENDQUERYEXTPROC end;
    PFNGLQUERYCOUNTEREXTPROC counter;
    PFNGLGETQUERYOBJECTUIVEXTPROC get_uiv;
    PFNGLGETQUERYOBJECTUI64VEXTPROC get_ui64v;
    PFNGLGETINTEGER64VEXTPROC get_i64v;
};

enum dg_timing { DG_TIMING_WALL = 0, DG_TIMING_TIMESTAMP, DG_TIMING_ELAPSED };

struct dg_gl {
    EGLDisplay dpy;
    EGLContext ctx;
    EGLSurface surf; /* EGL_NO_SURFACE unless the pbuffer fallback was needed */
    int gbm_fd;
    struct gbm_device *gbm;
    char platform[16];
    char device[256];
    struct dg_gl_caps caps;
    struct dg_gl_timer_fns tq;
    enum dg_timing timing;
    PFNGLTEXBUFFERRANGEEXTPROC tex_buffer_range; /* glTexBufferRangeEXT; NULL without caps.texture_buffer */
    GLbitfield barrier_bits;                 /* what dg_gl_barrier waits for */

    /* programs (program.c) */
    struct dg_program_entry **prog_buckets;
    int n_prog_buckets, n_programs;
    int program_cache; /* 1 on, 0 off: the on-disk binary cache */
    struct dg_program_cache_info prog_stats;

    /* pool (pool.c) */
    struct dg_pool_class *pool;
    int n_pool_classes;
    struct dg_pool_stats pool_stats;

    /* profiler (profiler.c) */
    bool profiling;
    struct dg_prof_slot *ring;
    int ring_size, ring_head, ring_pending;
    struct dg_prof_agg *aggs;
    int n_aggs, cap_aggs;
    struct dg_profile_row *rows;
    int cap_rows;
    uint64_t n_dispatch, n_barrier, n_disjoint_dropped;
};

/* profiler.c hooks used by dispatch.c */
void dg_prof_before(struct dg_gl *gl, int *slot, double *wall_t0);
void dg_prof_after(struct dg_gl *gl, int slot, double wall_t0, const struct dg_dispatch_info *info);
void dg_prof_free(struct dg_gl *gl);
void dg_pool_free_all(struct dg_gl *gl);
void dg_programs_free(struct dg_gl *gl);
double dg_now_ms(void);

#endif
