/* exec_internal.h: types shared by the executor's files (not a public contract). */
#ifndef DG_PIPE_EXEC_INTERNAL_H
#define DG_PIPE_EXEC_INTERNAL_H

#include "pipe/exec.h"

#define DG_EXEC_MAX_PARTS 64

/* A weight on the GPU: rows of row_bytes in dtype, possibly in several row ranges (SSBO size limit). */
struct dg_gpu_tensor {
    char name[DG_TENSOR_NAME_MAX];
    struct dg_buffer *buf;
    enum dg_dtype dtype;
    int ndim;
    int64_t rows, cols;
    uint64_t row_bytes;
    int n_parts;
    struct dg_row_range parts[DG_EXEC_MAX_PARTS];
};

dg_status dg_exec_upload_tensor(struct dg_gl *gl, const char *weight_format, const struct dg_tensor *t,
                                struct dg_gpu_tensor *g);

#endif
