/* convert.h: any model dg_model_open reads (or random weights at a config's shape) → a doppler-gl model
 * folder (docs/FORMAT.md), quantized as asked, written to a temporary folder and renamed at the end. */
#ifndef DG_MODEL_CONVERT_H
#define DG_MODEL_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "model/model.h"

enum dg_quant_scheme { DG_Q_F32 = 0, DG_Q_F16, DG_Q_BF16, DG_Q_Q8_0, DG_Q_Q4_K_M };

struct dg_convert_progress {
    int tensors_done, n_tensors;
    uint64_t bytes_done, total_bytes; /* output bytes */
};

struct dg_convert_opts {
    const char *input;         /* model path for dg_model_open; NULL when random_config is set */
    const char *random_config; /* a Hugging Face config.json: random weights at its shape */
    uint64_t seed;             /* random weights: same seed, same bytes */
    const char *output;
    enum dg_quant_scheme scheme;
    /* Every tensor keeps the type it has in the source, bytes copied (a GGUF converted without
     * requantizing); only vectors and MoE routers become f32, which is exact. `scheme` is then ignored and
     * the manifest names the scheme the kept types amount to. Re-laying-out a quantized tensor
     * (transpose, --fuse-gate-up, a Q4_K layout other than row) would requantize it: refused. */
    bool keep_types;
    enum dg_layout q4k_layout; /* layout of the Q4_K tensors */
    bool transpose;            /* store linear weights as W^T */
    bool fuse_gate_up;         /* dense FFNs: one gate_up_proj [2I, hidden] (gate rows first) */
    bool force;                /* replace an existing OUTPUT */
    uint64_t shard_size;       /* 0 = default (1 GiB) */
    int threads;               /* 0 = one per online CPU */
    void (*progress)(void *ctx, const struct dg_convert_progress *p);
    void *progress_ctx;
};

struct dg_convert_summary {
    int n_tensors;
    int tensors[DG_DT_COUNT];
    uint64_t bytes[DG_DT_COUNT];  /* tensor bytes per dtype */
    uint64_t elems[DG_DT_COUNT];
    uint64_t total_bytes;         /* sum of tensor bytes */
    uint64_t params;
    int n_fallbacks;              /* tensors stored in another type than the scheme wanted (row length) */
    double seconds;
};

bool dg_quant_scheme_from_name(const char *name, enum dg_quant_scheme *out);
const char *dg_quant_scheme_name(enum dg_quant_scheme s);

/* Parses "1G", "512M", "64K", "4096" (bytes). */
bool dg_parse_size(const char *s, uint64_t *out);

dg_status dg_convert(const struct dg_convert_opts *o, struct dg_convert_summary *sum);

/* Asks a running dg_convert to stop at the next chunk (it then removes its temporary folder and returns
 * DG_E_IO). Async-signal-safe: the CLI calls it from its SIGINT/SIGTERM handler. */
void dg_convert_cancel(void);

/* The dtype the scheme stores for tensor `name` of `shape` (layer index from the name), after llama.cpp's
 * row-length fallbacks. `wanted` receives the type before fallback. Exposed for tests. */
enum dg_dtype dg_convert_pick_dtype(enum dg_quant_scheme s, const struct dg_hparams *hp, const char *name, int ndim,
                                    const int64_t *shape, enum dg_layout q4k_layout, enum dg_dtype *wanted);

#endif
