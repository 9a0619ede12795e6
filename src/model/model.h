/* model.h: a model as the rest of doppler-gl sees it, whatever file it came from: normalized
 * hyperparameters plus a table of named tensors whose bytes are mapped read-only from disk.
 *
 * Sources (each in its own file, none touches GL so all can be fuzzed):
 *   - a Hugging Face folder (config.json + *.safetensors)      model/hf_*.c
 *   - a doppler-gl folder (manifest.json + shards)              model/manifest*.c
 *   - a GGUF file                                              model/gguf*.c
 * dg_model_open() picks by what the path is.
 *
 * Canonical tensor names (what kernel paths' `weights` templates refer to). Shapes are outermost first,
 * as torch writes them, so a linear layer is [out, in] and its rows are contiguous:
 *   embed_tokens [vocab, hidden]          lm_head [vocab, hidden] (absent when tied)   lm_head.bias
 *   norm, norm.bias                       final norm
 *   layer.{L}.input_layernorm(.bias)      layer.{L}.post_attention_layernorm(.bias)
 *   layer.{L}.pre_feedforward_layernorm   layer.{L}.post_feedforward_layernorm        (Gemma 2/3)
 *   layer.{L}.self_attn.{q,k,v,o}_proj(.bias)   layer.{L}.self_attn.{q,k}_norm   layer.{L}.self_attn.sinks
 *   layer.{L}.mlp.{gate,up,down}_proj(.bias)    layer.{L}.mlp.gate_up_proj (only when fused on purpose)
 *   MoE, experts stacked on the outermost axis:
 *   layer.{L}.mlp.router(.bias) [E, hidden]
 *   layer.{L}.mlp.experts.gate_proj [E, I, hidden]  .up_proj [E, I, hidden]  .down_proj [E, hidden, I]
 *   layer.{L}.mlp.experts.{gate,up,down}_proj.bias [E, I] / [E, hidden]
 * Norm weights keep the source's convention: hp.norm_style says whether (1 + w) applies. GGUF Gemma files
 * store 1 + w already: their reader sets hp.norm_style = DG_NORM_RMS instead of rewriting weights. Fused source tensors
 * (Phi-3 qkv_proj / gate_up_proj, GPT-OSS interleaved gate_up) are split by the reader into the names
 * above; readers that split must hold the split copies themselves (owned buffers). */
#ifndef DG_MODEL_MODEL_H
#define DG_MODEL_MODEL_H

#include <stdint.h>

#include "core/status.h"
#include "model/dtype.h"
#include "model/hparams.h"

#define DG_TENSOR_NAME_MAX 96
#define DG_MAX_DIMS 4

/* How a quantized matrix's blocks are arranged (the seeds' q4kLayout). Row-wise = GGUF order. */
enum dg_layout { DG_LAYOUT_ROW = 0, DG_LAYOUT_COLUMN, DG_LAYOUT_FLAT };

struct dg_tensor {
    char name[DG_TENSOR_NAME_MAX];
    enum dg_dtype dtype;
    enum dg_layout layout;
    int ndim;
    int64_t shape[DG_MAX_DIMS]; /* outermost first; shape[ndim-1] is contiguous */
    const void *data;           /* read-only bytes (mapped or owned by the model) */
    uint64_t nbytes;
    bool transposed; /* stored as W^T (shape [in, out]) by `convert --transpose-weights` */
};

enum dg_model_source { DG_SRC_HF = 0, DG_SRC_MANIFEST, DG_SRC_GGUF };

struct dg_model {
    struct dg_hparams hp;
    enum dg_model_source source;
    char path[4096];
    struct dg_tensor *tensors;
    int n_tensors;
    void *priv; /* the source's mappings and owned buffers, released by dg_model_close */
    char kernel_path[64]; /* a built-in kernel path id the model names as its default (manifest
                           * inference.kernelPath), or empty */
};

dg_status dg_model_open(const char *path, struct dg_model *m);
void dg_model_close(struct dg_model *m);

/* Per-source openers (dg_model_open picks one by what the path is). */
dg_status dg_model_open_hf(const char *dir, struct dg_model *m);      /* model/hf_model.c */
dg_status dg_model_open_manifest(const char *dir, struct dg_model *m); /* model/manifest*.c */
dg_status dg_model_open_gguf(const char *file, struct dg_model *m);    /* model/gguf*.c */

/* Every source's `priv` starts with this, so dg_model_close can release a model from any source: `close`
 * frees the source's mappings, owned buffers and m->tensors. */
struct dg_model_priv {
    void (*close)(struct dg_model *m);
};
/* NULL when absent. */
const struct dg_tensor *dg_model_find(const struct dg_model *m, const char *name);
/* Like dg_model_find but with a printf-style name: dg_model_findf(m, "layer.%d.mlp.up_proj", l). */
const struct dg_tensor *dg_model_findf(const struct dg_model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int64_t dg_tensor_nelems(const struct dg_tensor *t);

#endif
