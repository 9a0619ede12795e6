/* kt.h: a tiny harness for kernel-path kernel tests: run one glsl/ file with defines over buffers bound
 * at given points, with the per-token uniform block set, and read an output back. */
#ifndef DG_TESTS_KT_H
#define DG_TESTS_KT_H

#include <stdint.h>

#include "gl/gl.h"

struct kt_buf {
    int binding;
    const void *data; /* NULL: zero-filled */
    uint64_t bytes;
    void *out;        /* non-NULL: read back into it after the dispatch */
};

/* Returns false (after recording a test failure) when anything fails. */
bool kt_run(struct dg_gl *gl, const char *file, const struct dg_define *defs, int n_defs, struct kt_buf *bufs,
            int n_bufs, const uint32_t ubo[4], unsigned gx, unsigned gy, unsigned gz, uint32_t row0, uint32_t nrows);

#endif
