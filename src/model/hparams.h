/* hparams.h: the normalized model configuration every model source (Hugging Face config.json, our
 * manifest, GGUF metadata) is turned into, and the executor, CPU reference and converter read.
 *
 * One struct for all families: a field a family does not use keeps its neutral default (set by
 * dg_hparams_defaults), so code can apply every feature unconditionally where that is simpler. */
#ifndef DG_MODEL_HPARAMS_H
#define DG_MODEL_HPARAMS_H

#include <stdbool.h>
#include <stdint.h>

#define DG_MAX_LAYERS 256
#define DG_MAX_EOS 8
#define DG_MAX_ROPE_FACTORS 256 /* longrope short/long factors: one per rotary pair (head_dim/2) */

enum dg_arch {
    DG_ARCH_LLAMA = 0,
    DG_ARCH_MISTRAL,
    DG_ARCH_QWEN2,
    DG_ARCH_QWEN3,
    DG_ARCH_GEMMA2,
    DG_ARCH_GEMMA3,
    DG_ARCH_PHI3,
    DG_ARCH_MIXTRAL,
    DG_ARCH_QWEN3_MOE,
    DG_ARCH_GPT_OSS,
    DG_ARCH_PHIMOE,
    DG_ARCH_COUNT
};

enum dg_norm_style {
    DG_NORM_RMS = 0,  /* x / rms(x) * w */
    DG_NORM_RMS_GEMMA, /* x / rms(x) * (1 + w)  (weights as stored by Hugging Face) */
    DG_NORM_LAYER,     /* (x - mean) / std * w + b  (PhiMoE) */
};

enum dg_activation {
    DG_ACT_SILU = 0,      /* SwiGLU: silu(gate) * up */
    DG_ACT_GELU_TANH,     /* GeGLU with the tanh approximation (gelu_pytorch_tanh) */
    DG_ACT_GELU,          /* GeGLU with exact erf */
    DG_ACT_GPT_OSS_SWIGLU /* clamp(gate, max=limit), clamp(up, ±limit); (up + 1) * gate * sigmoid(alpha*gate) */
};

enum dg_rope_type {
    DG_ROPE_DEFAULT = 0,
    DG_ROPE_LINEAR,   /* positions divided by factor */
    DG_ROPE_LLAMA3,   /* frequency-band smoothing (factor, low/high_freq_factor, original_max_pos) */
    DG_ROPE_YARN,     /* NTK-by-parts with attention factor (beta_fast/slow, factor, original_max_pos) */
    DG_ROPE_LONGROPE, /* Phi-3 "su"/longrope: per-pair short/long factors and a magnitude scale */
};

/* Pairing of rotary dimensions: NEOX rotates (i, i + rot/2) as Hugging Face does; NORM rotates (2i, 2i+1)
 * as llama.cpp's llama-family GGUFs expect after the converter's Q/K permutation. */
enum dg_rope_pairing { DG_ROPE_NEOX = 0, DG_ROPE_NORM };

struct dg_rope {
    enum dg_rope_type type;
    enum dg_rope_pairing pairing;
    float theta;                /* base frequency */
    float factor;               /* scaling factor (linear, llama3, yarn) */
    float low_freq_factor;      /* llama3 */
    float high_freq_factor;     /* llama3 */
    int original_max_pos;       /* llama3, yarn, longrope */
    float beta_fast, beta_slow; /* yarn */
    float attention_factor;     /* yarn mscale / longrope magnitude scale; 1 when unused (0 = derive) */
    bool truncate;              /* yarn: floor/ceil the correction range (transformers default true) */
    int rotary_dim;             /* dimensions rotated per head (head_dim * partial_rotary_factor) */
    int n_factors;              /* longrope: entries in short_factor/long_factor (rotary_dim / 2) */
    float short_factor[DG_MAX_ROPE_FACTORS];
    float long_factor[DG_MAX_ROPE_FACTORS];
    float freq_factors[DG_MAX_ROPE_FACTORS]; /* GGUF rope_freqs.weight (divides each frequency); n_freq_factors */
    int n_freq_factors;
};

enum dg_router {
    DG_ROUTER_NONE = 0,
    DG_ROUTER_SOFTMAX_TOPK, /* Mixtral / Qwen3-MoE: softmax over all, top-k, renormalize if norm_topk_prob */
    DG_ROUTER_TOPK_SOFTMAX, /* GPT-OSS: top-k of the logits (router has a bias), softmax over the k */
    DG_ROUTER_SPARSEMIXER,  /* PhiMoE: sparsemixer top-2 as transformers computes it at inference */
};

struct dg_hparams {
    enum dg_arch arch;
    char model_type[32]; /* the source's name for the family ("gemma3_text") */

    int hidden;       /* hidden_size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;     /* may differ from hidden / n_heads (Qwen3, Gemma) */
    int intermediate; /* dense FFN width */
    int vocab;
    int max_pos;      /* max_position_embeddings */

    float norm_eps;
    enum dg_norm_style norm_style;
    enum dg_activation act;
    float swiglu_limit; /* GPT-OSS clamp (7.0); 0 when unused */
    float swiglu_alpha; /* GPT-OSS (1.702) */

    struct dg_rope rope;       /* global/full-attention layers */
    struct dg_rope rope_local; /* Gemma 3 sliding layers (own base); equals `rope` elsewhere */

    int sliding_window;                 /* 0 = none */
    bool layer_sliding[DG_MAX_LAYERS];  /* layer uses the sliding window (and rope_local) */

    float attn_softcap;  /* Gemma 2 attn_logit_softcapping; 0 = off */
    float final_softcap; /* final_logit_softcapping; 0 = off */
    float attn_scale;    /* multiplier on q·k: 1/sqrt(query_pre_attn_scalar or head_dim) */
    float embed_scale;   /* multiplier on embeddings: sqrt(hidden) for Gemma, else 1 */

    bool tie_embeddings;
    bool attn_qkv_bias;  /* q/k/v projections have biases (Qwen2, GPT-OSS, PhiMoE) */
    bool attn_o_bias;    /* o_proj has a bias (GPT-OSS, PhiMoE) */
    bool mlp_bias;
    bool lm_head_bias;   /* PhiMoE */
    bool qk_norm;        /* per-head RMSNorm on q and k (Qwen3, Gemma 3) */
    bool sandwich_norm;  /* post-attention and post-FFN norms (Gemma 2/3) */
    bool attn_sinks;     /* GPT-OSS learned per-head sink logits */

    /* Mixture of experts (n_experts == 0: dense). */
    int n_experts;
    int n_experts_used;   /* num_experts_per_tok */
    int moe_intermediate; /* expert FFN width */
    bool norm_topk_prob;
    enum dg_router router;
    float router_jitter; /* PhiMoE sparsemixer: router_jitter_noise, the relative gap that masks experts */
    bool layer_moe[DG_MAX_LAYERS]; /* from decoder_sparse_step / mlp_only_layers */

    int bos_id;                /* -1 when none */
    int eos_ids[DG_MAX_EOS];   /* every id that ends generation */
    int n_eos;
};

void dg_hparams_defaults(struct dg_hparams *hp);
const char *dg_arch_name(enum dg_arch arch); /* "llama", "gemma3", ... (our family names) */
bool dg_arch_from_name(const char *name, enum dg_arch *out);
bool dg_arch_is_moe(enum dg_arch arch);

#endif
