/* dtype.h: the element and block types a tensor can hold, on disk and on the GPU.
 *
 * Quantized types are stored in blocks along the innermost (contiguous) dimension; the byte layouts of
 * Q4_0..Q6_K, Q8_0 and MXFP4 are GGUF's, so GGUF data and our shards share one set of dequantizers. */
#ifndef DG_MODEL_DTYPE_H
#define DG_MODEL_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dg_dtype {
    DG_DT_F32 = 0,
    DG_DT_F16,
    DG_DT_BF16,
    DG_DT_Q8_0,  /* 34 bytes / 32: f16 d, 32 x int8 */
    DG_DT_Q4_K,  /* 144 bytes / 256: f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes */
    DG_DT_Q6_K,  /* 210 bytes / 256: 128 ql, 64 qh, 16 int8 scales, f16 d (last) */
    DG_DT_Q4_0,  /* 18 bytes / 32 */
    DG_DT_Q4_1,  /* 20 bytes / 32 */
    DG_DT_Q5_0,  /* 22 bytes / 32 */
    DG_DT_Q5_1,  /* 24 bytes / 32 */
    DG_DT_Q5_K,  /* 176 bytes / 256 */
    DG_DT_MXFP4, /* 17 bytes / 32: E8M0 scale, 16 bytes of E2M1 pairs */
    DG_DT_I32,
    DG_DT_COUNT
};

struct dg_dtype_info {
    const char *name;     /* lower-case name used in manifests and on the command line: "q4_k" */
    uint32_t block_elems; /* elements per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
    bool quantized;
};

const struct dg_dtype_info *dg_dtype_info(enum dg_dtype dt);
/* Parses a name as written by dg_dtype_info()->name (case-insensitive). Returns false when unknown. */
bool dg_dtype_from_name(const char *name, enum dg_dtype *out);
/* Bytes of a row of `n` elements; 0 (and false from dg_dtype_row_ok) when n is not a block multiple. */
uint64_t dg_dtype_row_bytes(enum dg_dtype dt, uint64_t n);
bool dg_dtype_row_ok(enum dg_dtype dt, uint64_t n);

#endif
