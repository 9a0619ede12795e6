/* weights.c: puts a model tensor on the GPU in the format the kernel path wants: norms and biases as f32;
 * matrices as f32 or f16 (converted from BF16/F16/F32, or dequantized) for float paths, quantized on
 * the CPU at load for q8_0 / q4_k paths when the source is float (with llama.cpp's fallbacks when a row
 * is not a whole number of 256-blocks), and uploaded as-is when already quantized; Q8_0 and Q6_K
 * matrices repacked into the split layout (pipe/split_blocks.h) when the caller asks. Tensors larger
 * than the SSBO block limit are split by rows. */
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "model/quant.h"
#include "pipe/exec.h"
#include "pipe/exec_internal.h"
#include "pipe/split_blocks.h"

enum dg_dtype dg_exec_gpu_dtype(const char *wf, enum dg_dtype src, bool is_matrix)
{
    if (!is_matrix)
        return DG_DT_F32;
    bool src_q = dg_dtype_info(src)->quantized;
    if (strcmp(wf, "f32") == 0)
        return DG_DT_F32;
    if (strcmp(wf, "f16") == 0)
        return DG_DT_F16;
    if (src_q)
        return src;
    if (strcmp(wf, "mxfp4") == 0) /* MXFP4 applies to the experts a checkpoint ships in it; no quantizer */
        return DG_DT_F16;
    if (strcmp(wf, "q8_0") == 0)
        return DG_DT_Q8_0;
    if (strcmp(wf, "q4_k") == 0)
        return DG_DT_Q4_K;
    if (strcmp(wf, "q6_k") == 0)
        return DG_DT_Q6_K;
    if (strcmp(wf, "q5_0") == 0)
        return DG_DT_Q5_0;
    return DG_DT_F32;
}

/* llama.cpp's fallbacks for rows that are not whole 256-element super-blocks. */
static enum dg_dtype fallback(enum dg_dtype dt, int64_t cols)
{
    if (dg_dtype_row_ok(dt, (uint64_t)cols))
        return dt;
    if (dt == DG_DT_Q4_K && dg_dtype_row_ok(DG_DT_Q5_0, (uint64_t)cols))
        return DG_DT_Q5_0;
    if ((dt == DG_DT_Q6_K || dt == DG_DT_Q5_0 || dt == DG_DT_Q4_K) && dg_dtype_row_ok(DG_DT_Q8_0, (uint64_t)cols))
        return DG_DT_Q8_0;
    return DG_DT_F16;
}

static bool is_head_tensor(const char *name)
{
    return strcmp(name, "lm_head") == 0 || strcmp(name, "embed_tokens") == 0;
}

dg_status dg_exec_upload_tensor(struct dg_gl *gl, const char *weight_format, const struct dg_tensor *t,
                                bool split_blocks, struct dg_gpu_tensor *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", t->name);
    if (t->layout != DG_LAYOUT_ROW || t->transposed)
        return dg_fail(DG_E_UNSUPPORTED, "tensor %s: only row-major, untransposed weights are supported by the "
                       "kernel paths (convert without --transpose-weights / column layouts)", t->name);
    bool matrix = t->ndim >= 2;
    int64_t cols = t->shape[t->ndim - 1];
    int64_t rows = cols ? dg_tensor_nelems(t) / cols : 0;
    if (rows <= 0 || cols <= 0)
        return dg_fail(DG_E_FORMAT, "tensor %s: empty shape", t->name);
    enum dg_dtype dt = dg_exec_gpu_dtype(weight_format, t->dtype, matrix);
    if (matrix && dt == DG_DT_Q4_K && is_head_tensor(t->name) && !dg_dtype_info(t->dtype)->quantized)
        dt = DG_DT_Q6_K; /* Q4_K_M keeps the embedding / LM head at 6 bits */
    if (matrix && !dg_dtype_info(t->dtype)->quantized)
        dt = fallback(dt, cols);
    g->dtype = dt;
    g->wtype = (int)dt;
    g->rows = rows;
    g->cols = cols;
    g->ndim = t->ndim;
    g->row_bytes = dg_dtype_row_bytes(dt, (uint64_t)cols);
    if (!g->row_bytes)
        return dg_fail(DG_E_FORMAT, "tensor %s: %lld columns are not whole %s blocks", t->name, (long long)cols,
                       dg_dtype_info(dt)->name);
    uint64_t bytes = g->row_bytes * (uint64_t)rows;
    /* 16 bytes of slack: kernels read whole uvec4s and unaligned words at row ends */
    uint64_t alloc = (bytes + 15) / 16 * 16 + 16;
    const void *src = t->data;
    void *tmp = NULL;
    float *f = NULL;
    dg_status st = DG_OK;
    if (dt != t->dtype) {
        uint64_t n = (uint64_t)rows * (uint64_t)cols;
        f = malloc(n * sizeof *f);
        if (!f)
            return dg_fail(DG_E_NOMEM, "tensor %s: out of memory converting %llu elements", t->name,
                           (unsigned long long)n);
        if (t->dtype == DG_DT_F32) {
            memcpy(f, t->data, n * 4);
        } else if (t->dtype == DG_DT_BF16) {
            const uint16_t *h = t->data;
            for (uint64_t i = 0; i < n; i++)
                f[i] = dg_bf16_to_f32(h[i]);
        } else if (t->dtype == DG_DT_F16) {
            const uint16_t *h = t->data;
            for (uint64_t i = 0; i < n; i++)
                f[i] = dg_f16_to_f32(h[i]);
        } else if ((st = dg_dequantize(t->dtype, t->data, f, n))) {
            free(f);
            return dg_fail_context(st, "tensor %s: ", t->name);
        }
        if (dt == DG_DT_F32) {
            src = f;
        } else {
            tmp = malloc(bytes);
            if (!tmp) {
                free(f);
                return dg_fail(DG_E_NOMEM, "tensor %s: out of memory", t->name);
            }
            if (dt == DG_DT_F16) {
                uint16_t *h = tmp;
                for (uint64_t i = 0; i < n; i++)
                    h[i] = dg_f32_to_f16(f[i]);
            } else if ((st = dg_quantize(dt, f, tmp, n))) {
                free(f);
                free(tmp);
                return dg_fail_context(st, "tensor %s: quantizing to %s: ", t->name, dg_dtype_info(dt)->name);
            }
            src = tmp;
        }
    } else if (t->nbytes < bytes) {
        return dg_fail(DG_E_FORMAT, "tensor %s: %llu bytes, expected %llu", t->name, (unsigned long long)t->nbytes,
                       (unsigned long long)bytes);
    }
    void *split = NULL;
    uint64_t srb = split_blocks && matrix ? dg_split_blocks_row_bytes(dt, (uint64_t)cols) : 0;
    if (srb) {
        split = malloc(srb * (uint64_t)rows);
        if (!split) {
            free(f);
            free(tmp);
            return dg_fail(DG_E_NOMEM, "tensor %s: out of memory repacking into the split layout", t->name);
        }
        dg_split_blocks_repack(dt, src, split, (uint64_t)rows, (uint64_t)cols);
        src = split;
        g->wtype = dg_split_blocks_wtype(dt);
        g->row_bytes = srb;
        bytes = srb * (uint64_t)rows;
        alloc = bytes + 16;
    }
    st = dg_buffer_alloc(gl, alloc, NULL, &g->buf);
    if (!st)
        st = dg_buffer_upload(gl, g->buf, 0, bytes, src);
    free(f);
    free(tmp);
    free(split);
    if (st)
        return dg_fail_context(st, "tensor %s: ", t->name);
    g->n_parts = dg_buffer_split_rows(gl, (uint64_t)rows, g->row_bytes, g->parts, DG_EXEC_MAX_PARTS);
    if (g->n_parts < 0)
        return dg_fail_context(DG_E_UNSUPPORTED, "tensor %s: ", t->name);
    return DG_OK;
}
