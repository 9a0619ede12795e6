/* dispatch.c: the one place compute work is issued, so every dispatch and barrier is counted and, when
 * profiling is on, timed. */
#include "gl/gl_internal.h"

void dg_gl_dispatch(struct dg_gl *gl, GLuint groups_x, GLuint groups_y, GLuint groups_z,
                    const struct dg_dispatch_info *info)
{
    gl->n_dispatch++;
    if (!gl->profiling) {
        glDispatchCompute(groups_x, groups_y, groups_z);
        return;
    }
    int slot;
    double t0;
    dg_prof_before(gl, &slot, &t0);
    glDispatchCompute(groups_x, groups_y, groups_z);
    dg_prof_after(gl, slot, t0, info);
}

void dg_gl_barrier(struct dg_gl *gl)
{
    gl->n_barrier++;
    glMemoryBarrier(gl->barrier_bits);
}

void dg_gl_barrier_images(struct dg_gl *gl, bool on)
{
    gl->barrier_bits = GL_SHADER_STORAGE_BARRIER_BIT | (on ? GL_SHADER_IMAGE_ACCESS_BARRIER_BIT : 0);
}

uint64_t dg_gl_dispatch_count(const struct dg_gl *gl) { return gl->n_dispatch; }
uint64_t dg_gl_barrier_count(const struct dg_gl *gl) { return gl->n_barrier; }
