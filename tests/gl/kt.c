/* kt.c: see kt.h. */
#include "kt.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

bool kt_run(struct dg_gl *gl, const char *file, const struct dg_define *defs, int n_defs, struct kt_buf *bufs,
            int n_bufs, const uint32_t ubo[4], unsigned gx, unsigned gy, unsigned gz, uint32_t row0, uint32_t nrows)
{
    GLuint prog;
    if (dg_gl_program(gl, file, defs, n_defs, &prog) != DG_OK) {
        CHECK_MSG(0, "%s: %s", file, dg_last_error());
        return false;
    }
    struct dg_buffer *b[16] = {0}, *u = NULL;
    bool ok = true;
    glUseProgram(prog);
    for (int i = 0; i < n_bufs && ok; i++) {
        uint64_t sz = (bufs[i].bytes + 15) / 16 * 16 + 16;
        void *z = calloc(1, sz);
        if (bufs[i].data)
            memcpy(z, bufs[i].data, bufs[i].bytes);
        ok = z && dg_buffer_alloc(gl, sz, z, &b[i]) == DG_OK &&
             dg_buffer_bind(gl, (GLuint)bufs[i].binding, b[i], 0, sz) == DG_OK;
        free(z);
    }
    ok = ok && dg_buffer_alloc(gl, 16, ubo, &u) == DG_OK;
    if (ok) {
        glBindBufferBase(GL_UNIFORM_BUFFER, 0, u->id);
        GLint l0 = glGetUniformLocation(prog, "u_row0"), l1 = glGetUniformLocation(prog, "u_nrows");
        if (l0 >= 0)
            glUniform1ui(l0, row0);
        if (l1 >= 0)
            glUniform1ui(l1, nrows);
        struct dg_dispatch_info info = {file, "test", 0};
        dg_gl_dispatch(gl, gx, gy, gz, &info);
        glMemoryBarrier(GL_ALL_BARRIER_BITS);
        for (int i = 0; i < n_bufs && ok; i++)
            if (bufs[i].out)
                ok = dg_buffer_download(gl, b[i], 0, bufs[i].bytes, bufs[i].out) == DG_OK;
        ok = ok && dg_gl_check(file) == DG_OK;
    }
    CHECK_MSG(ok, "%s: %s", file, dg_last_error());
    for (int i = 0; i < n_bufs; i++)
        dg_buffer_release(gl, b[i]);
    dg_buffer_release(gl, u);
    return ok;
}
