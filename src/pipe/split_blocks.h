/* split_blocks.h: the split GPU layout of Q8_0 and Q6_K rows, built at upload from the GGUF bytes when the
 * decode plan's GEMV prefers it (docs/FORMAT.md, "GPU reading of 34- and 210-byte blocks"). Per group of 8
 * blocks of a row: the 8 f16 scales (16 bytes; Q8_0's d, Q6_K's trailing d), then each block without its
 * scale (Q8_0: 32 quants, Q6_K: 208 bytes of ql/qh/scales); a row's last group may hold fewer than 8 blocks
 * and keeps its 16-byte scale slot, so every row is a whole number of uvec4s and every load is aligned.
 * glsl/wdecode.inc.glsl reads it as DT_Q8_0_SPLIT / DT_Q6_K_SPLIT. Files never hold it. */
#ifndef DG_PIPE_SPLIT_BLOCKS_H
#define DG_PIPE_SPLIT_BLOCKS_H

#include <stdint.h>

#include "model/dtype.h"

#define DG_WTYPE_Q8_0_SPLIT 64 /* glsl/common.inc.glsl DT_Q8_0_SPLIT */
#define DG_WTYPE_Q6_K_SPLIT 65 /* DT_Q6_K_SPLIT */

/* The kernels' WTYPE for a dtype in the split layout, or -1 when the dtype has none. */
int dg_split_blocks_wtype(enum dg_dtype dt);

/* Bytes of one split row of `cols` elements; 0 when dt has no split layout or cols is not whole blocks. */
uint64_t dg_split_blocks_row_bytes(enum dg_dtype dt, uint64_t cols);

/* Repacks `rows` GGUF rows of `cols` elements (src, dg_dtype_row_bytes each) into the split layout (dst,
 * dg_split_blocks_row_bytes each; the padding of short last groups is zeroed). dt must have a split layout. */
void dg_split_blocks_repack(enum dg_dtype dt, const void *src, void *dst, uint64_t rows, uint64_t cols);

#endif
