/* quant.h: CPU quantizers and dequantizers for every dtype in dtype.h, byte-compatible with GGUF's
 * block definitions. These are the reference the GPU dequant kernels are tested against.
 * Implementation: model/quant.c (dequantizers), model/quantize.c (quantizers). */
#ifndef DG_MODEL_QUANT_H
#define DG_MODEL_QUANT_H

#include <stdint.h>

#include "core/status.h"
#include "model/dtype.h"

/* Dequantizes `n` elements (a multiple of the block size) from `src` (dtype dt) to float32 `dst`. */
dg_status dg_dequantize(enum dg_dtype dt, const void *src, float *dst, uint64_t n);
/* Quantizes `n` float32 elements (a multiple of the block size) into dtype dt at `dst`
 * (dg_dtype_row_bytes(dt, n) bytes). Supported targets: f32, f16, bf16, q8_0, q4_k, q6_k, q4_0, q5_0, q5_k. */
dg_status dg_quantize(enum dg_dtype dt, const float *src, void *dst, uint64_t n);

/* Quantizes `n_rows` rows of `row_len` float32 elements each (row_len a multiple of the block size) on up to
 * `n_threads` threads; rows land back to back at dst (n_rows * dg_dtype_row_bytes(dt, row_len) bytes). */
dg_status dg_quantize_rows(enum dg_dtype dt, const float *src, void *dst, uint64_t n_rows, uint64_t row_len,
                           int n_threads);

/* An MXFP4 block's E8M0 scale, halved as ggml's GGML_E8M0_TO_FP32_HALF: 2^(e - 128). E2M1 codes are stored
 * doubled ({0, 1, 2, 3, 4, 6, 8, 12} and negatives), so value = code_value * this. */
float dg_e8m0_to_f32_half(uint8_t e);

#endif
