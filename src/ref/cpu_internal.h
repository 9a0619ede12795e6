/* cpu_internal.h: what the CPU reference's files share: the float32 weights, the KV cache and the small
 * numeric kernels (matmul, norms, activations, rope, MoE). Not a public interface. */
#ifndef DG_REF_CPU_INTERNAL_H
#define DG_REF_CPU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "model/hparams.h"
#include "ref/cpu_forward.h"

/* One decoder layer's weights, all float32 [out, in] row-major like torch's nn.Linear; NULL when absent. */
struct ref_layer {
    float *attn_norm, *attn_norm_b;           /* input_layernorm [H] */
    float *post_attn_norm, *post_attn_norm_b; /* post_attention_layernorm [H] */
    float *pre_ffn_norm, *post_ffn_norm;      /* Gemma sandwich norms [H] */
    float *wq, *wk, *wv, *wo;                 /* [nh*D, H] [nkv*D, H] [nkv*D, H] [H, nh*D] */
    float *bq, *bk, *bv, *bo;
    float *q_norm, *k_norm; /* [D] */
    float *sinks;           /* [nh] */
    float *gate, *up, *down, *gate_b, *up_b, *down_b; /* dense FFN [I, H] [I, H] [H, I] */
    float *router, *router_b;                         /* [E, H] [E] */
    float *egate, *eup, *edown;                       /* [E, MI, H] [E, MI, H] [E, H, MI] */
    float *egate_b, *eup_b, *edown_b;                 /* [E, MI] [E, MI] [E, H] */
    bool moe;
    bool sliding;
    float *k_cache, *v_cache; /* [max_ctx, nkv, D] */
};

struct ref_rope {
    const struct dg_rope *cfg;
    int rot;                                  /* rotary dims */
    float inv_freq[DG_MAX_ROPE_FACTORS];      /* as transformers computes it (float32) */
    float inv_freq_long[DG_MAX_ROPE_FACTORS]; /* longrope: used when the call reaches past original_max_pos */
    float scale;                              /* attention factor applied to cos and sin */
};

struct dg_cpu_model {
    struct dg_hparams hp;
    int max_ctx, pos, threads;
    float embed_scale; /* hp.embed_scale, or its bf16 rounding under dg_cpu_set_bf16_buffers */
    float *embed;   /* [V, H] */
    float *norm, *norm_b;
    float *lm_head; /* [V, H]; == embed when tied */
    float *lm_head_b;
    struct ref_layer *layers;
    struct ref_rope rope, rope_local;
    void **allocs;
    int n_allocs;
};

/* y[n, out] = x[n, in] · W[out, in]^T (+ b[out]); threads split the rows of W. */
void ref_matmul(const struct dg_cpu_model *c, float *y, const float *x, const float *w, const float *b, int n,
                int in, int out);
/* In-place norm of one vector of length d per hp's norm style (RMS, Gemma 1 + w, LayerNorm with bias). */
void ref_norm(const struct dg_hparams *hp, float *x, const float *w, const float *b, int d);
float ref_act(enum dg_activation act, float g);
/* bf16_buffer: round the inverse frequencies to bfloat16 (dg_cpu_set_bf16_buffers). */
void ref_rope_init(struct ref_rope *r, const struct dg_rope *cfg, int head_dim, bool bf16_buffer);
/* Rotates one head vector `x` (length head_dim) for position `pos`; `use_long` picks longrope's long factors. */
void ref_rope_apply(const struct ref_rope *r, enum dg_rope_pairing pairing, float *x, int pos, bool use_long);
/* MoE FFN for n token vectors x[n, H] into y[n, H]. */
void ref_moe(const struct dg_cpu_model *c, const struct ref_layer *l, const float *x, float *y, int n);

#endif
