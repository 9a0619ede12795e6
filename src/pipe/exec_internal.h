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
    int wtype; /* the kernels' WTYPE: dtype, or DG_WTYPE_*_SPLIT when uploaded in the split layout */
    int ndim;
    int64_t rows, cols;
    uint64_t row_bytes;
    int n_parts;
    struct dg_row_range parts[DG_EXEC_MAX_PARTS];
};

/* split_blocks: upload Q8_0 / Q6_K matrices in the split layout (pipe/split_blocks.h) */
dg_status dg_exec_upload_tensor(struct dg_gl *gl, const char *weight_format, const struct dg_tensor *t,
                                bool split_blocks, struct dg_gpu_tensor *g);

#endif
