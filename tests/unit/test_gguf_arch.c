/* test_gguf_arch.c: the GGUF → dg_model mapping for every family, on small files written by
 * tests/gguf_writer.h: hyperparameters, RoPE pairing, Gemma norms, fused Phi-3 splits, MoE tensors. */
#include "../test.h"

#include <stdlib.h>
#include <string.h>

#include "../gguf_writer.h"
#include "model/gguf.h"

struct built {
    uint8_t *file;
    struct dg_model m;
    bool ok;
};

static void build(const char *arch, struct built *b)
{
    size_t len = 0;
    memset(b, 0, sizeof *b);
    b->file = gw_make_model(arch, &len);
    CHECK_MSG(b->file, "no writer for %s", arch);
    if (!b->file)
        return;
    struct dg_gguf *g = NULL;
    dg_status st = dg_gguf_open_buffer(b->file, len, arch, &g);
    CHECK_MSG(st == DG_OK, "%s: %s", arch, dg_last_error());
    if (st)
        return;
    st = dg_model_from_gguf(g, &b->m);
    CHECK_MSG(st == DG_OK, "%s: %s", arch, dg_last_error());
    if (st) {
        dg_gguf_close(g);
        return;
    }
    b->ok = true;
}

static void release(struct built *b)
{
    if (b->ok)
        dg_model_close_gguf(&b->m);
    free(b->file);
}

static bool shape_is(const struct dg_tensor *t, int nd, int64_t a, int64_t b, int64_t c)
{
    int64_t want[3] = {a, b, c};
    if (!t || t->ndim != nd)
        return false;
    for (int d = 0; d < nd; d++)
        if (t->shape[d] != want[d])
            return false;
    return true;
}

DG_TEST(gguf_arch_llama_rope_freqs_and_pairing)
{
    struct built b;
    build("llama", &b);
    if (!b.ok) {
        release(&b);
        return;
    }
    const struct dg_hparams *hp = &b.m.hp;
    CHECK(hp->arch == DG_ARCH_LLAMA && hp->rope.pairing == DG_ROPE_NORM);
    CHECK(hp->rope.n_freq_factors == GW_HD / 2 && hp->rope.freq_factors[0] == 1.0f);
    CHECK(hp->rope.theta == 5e5f && hp->rope.type == DG_ROPE_DEFAULT);
    CHECK(!hp->tie_embeddings && dg_model_find(&b.m, "rope_freqs") == NULL);
    CHECK(hp->bos_id == 0 && hp->n_eos == 2 && hp->eos_ids[0] == 1 && hp->eos_ids[1] == 3); /* eos + eot */
    CHECK(shape_is(dg_model_find(&b.m, "lm_head"), 2, GW_V, GW_H, 0));
    CHECK(shape_is(dg_model_find(&b.m, "layer.1.mlp.down_proj"), 2, GW_H, GW_FF, 0));
    CHECK(dg_model_find(&b.m, "layer.1.mlp.up_proj")->dtype == DG_DT_F16);
    CHECK(hp->sliding_window == 0 && !hp->layer_sliding[0]);
    release(&b);
}

DG_TEST(gguf_arch_qwen)
{
    struct built b;
    build("qwen2", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_QWEN2 && hp->rope.pairing == DG_ROPE_NEOX);
        CHECK(hp->attn_qkv_bias && !hp->attn_o_bias && !hp->qk_norm);
        CHECK(shape_is(dg_model_find(&b.m, "layer.0.self_attn.k_proj.bias"), 1, GW_NKV * GW_HD, 0, 0));
    }
    release(&b);
    build("qwen3", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_QWEN3 && hp->rope.pairing == DG_ROPE_NEOX);
        CHECK(hp->qk_norm && !hp->attn_qkv_bias);
        CHECK(shape_is(dg_model_find(&b.m, "layer.1.self_attn.q_norm"), 1, GW_HD, 0, 0));
    }
    release(&b);
}

DG_TEST(gguf_arch_gemma)
{
    struct built b;
    build("gemma2", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_GEMMA2 && hp->rope.pairing == DG_ROPE_NEOX);
        CHECK(hp->norm_style == DG_NORM_RMS); /* the file already holds 1 + w */
        CHECK(hp->act == DG_ACT_GELU_TANH && hp->sandwich_norm && hp->tie_embeddings);
        CHECK(hp->attn_softcap == 50.0f && hp->final_softcap == 30.0f);
        CHECK_NEAR(hp->embed_scale, sqrt(GW_H), 1e-6);
        CHECK_NEAR(hp->attn_scale, 1.0 / sqrt(GW_HD), 1e-7);
        CHECK(hp->sliding_window == 512 && hp->layer_sliding[0] && !hp->layer_sliding[1]);
        CHECK(dg_model_find(&b.m, "layer.0.pre_feedforward_layernorm") != NULL); /* ffn_norm */
        CHECK(dg_model_find(&b.m, "layer.0.post_attention_layernorm") != NULL);  /* post_attention_norm */
        CHECK(dg_model_find(&b.m, "layer.0.post_feedforward_layernorm") != NULL); /* post_ffw_norm */
    }
    release(&b);
    build("gemma3", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_GEMMA3 && hp->qk_norm && hp->norm_style == DG_NORM_RMS);
        CHECK(hp->rope.theta == 1e6f && hp->rope.type == DG_ROPE_LINEAR && hp->rope.factor == 8.0f);
        CHECK(hp->rope_local.theta == 10000.0f && hp->rope_local.type == DG_ROPE_DEFAULT);
        CHECK(hp->layer_sliding[0] && hp->layer_sliding[1]); /* 5 local : 1 global; 2 layers are both local */
        CHECK(hp->attn_softcap == 0.0f && hp->final_softcap == 0.0f);
    }
    release(&b);
}

DG_TEST(gguf_arch_phi3_fused_split)
{
    struct built b;
    build("phi3", &b);
    if (!b.ok) {
        release(&b);
        return;
    }
    CHECK(b.m.hp.arch == DG_ARCH_PHI3 && b.m.hp.rope.pairing == DG_ROPE_NEOX);
    const struct dg_gguf *g = dg_model_gguf(&b.m);
    const struct dg_gguf_tensor *qkv = dg_gguf_find_tensor(g, "blk.1.attn_qkv.weight");
    const struct dg_tensor *q = dg_model_find(&b.m, "layer.1.self_attn.q_proj");
    const struct dg_tensor *k = dg_model_find(&b.m, "layer.1.self_attn.k_proj");
    const struct dg_tensor *v = dg_model_find(&b.m, "layer.1.self_attn.v_proj");
    uint64_t row = dg_dtype_row_bytes(DG_DT_Q8_0, GW_H);
    CHECK(qkv && shape_is(q, 2, GW_NH * GW_HD, GW_H, 0) && shape_is(k, 2, GW_HD, GW_H, 0) &&
          shape_is(v, 2, GW_HD, GW_H, 0));
    if (qkv && q && k && v) {
        CHECK(q->data == qkv->data);
        CHECK((const uint8_t *)k->data == (const uint8_t *)qkv->data + GW_NH * GW_HD * row);
        CHECK((const uint8_t *)v->data == (const uint8_t *)k->data + GW_HD * row);
        CHECK(q->nbytes + k->nbytes + v->nbytes == qkv->nbytes);
    }
    const struct dg_tensor *gate = dg_model_find(&b.m, "layer.0.mlp.gate_proj");
    const struct dg_tensor *up = dg_model_find(&b.m, "layer.0.mlp.up_proj");
    CHECK(shape_is(gate, 2, GW_FF, GW_H, 0) && shape_is(up, 2, GW_FF, GW_H, 0));
    if (gate && up)
        CHECK((const uint8_t *)up->data == (const uint8_t *)gate->data + GW_FF * row);
    release(&b);
}

DG_TEST(gguf_arch_moe)
{
    struct built b;
    build("mixtral", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_MIXTRAL && hp->rope.pairing == DG_ROPE_NORM);
        CHECK(hp->n_experts == GW_E && hp->n_experts_used == GW_EU && hp->moe_intermediate == GW_EFF);
        CHECK(hp->router == DG_ROUTER_SOFTMAX_TOPK && hp->norm_topk_prob && hp->layer_moe[1]);
        CHECK(shape_is(dg_model_find(&b.m, "layer.0.mlp.experts.gate_proj"), 3, GW_E, GW_EFF, GW_H));
        CHECK(dg_model_find(&b.m, "layer.0.mlp.gate_proj") == NULL);
    }
    release(&b);
    build("qwen3moe", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_QWEN3_MOE && hp->rope.pairing == DG_ROPE_NEOX && hp->qk_norm);
        CHECK(hp->moe_intermediate == GW_EFF && hp->norm_topk_prob);
        CHECK(shape_is(dg_model_find(&b.m, "layer.1.mlp.router"), 2, GW_E, GW_H, 0));
        CHECK(shape_is(dg_model_find(&b.m, "layer.1.mlp.experts.down_proj"), 3, GW_E, GW_H, GW_EFF));
    }
    release(&b);
    build("gpt-oss", &b);
    if (b.ok) {
        const struct dg_hparams *hp = &b.m.hp;
        CHECK(hp->arch == DG_ARCH_GPT_OSS && hp->rope.pairing == DG_ROPE_NEOX);
        CHECK(hp->router == DG_ROUTER_TOPK_SOFTMAX && !hp->norm_topk_prob);
        CHECK(hp->act == DG_ACT_GPT_OSS_SWIGLU && hp->swiglu_limit == 7.0f && hp->attn_sinks);
        CHECK(hp->attn_qkv_bias && hp->attn_o_bias);
        CHECK(hp->rope.type == DG_ROPE_YARN && hp->rope.factor == 32.0f && hp->rope.original_max_pos == 4096);
        CHECK(hp->rope.beta_fast == 32.0f && hp->rope.beta_slow == 1.0f && !hp->rope.truncate);
        CHECK(hp->sliding_window == 128 && hp->layer_sliding[0] && !hp->layer_sliding[1]);
        const struct dg_tensor *e = dg_model_find(&b.m, "layer.0.mlp.experts.up_proj");
        CHECK(shape_is(e, 3, GW_E, GW_EFF, GW_H) && e->dtype == DG_DT_MXFP4);
        CHECK(e && e->nbytes == (uint64_t)GW_E * GW_EFF * GW_H / 32 * 17);
        CHECK(shape_is(dg_model_find(&b.m, "layer.0.mlp.experts.down_proj.bias"), 2, GW_E, GW_H, 0));
        CHECK(shape_is(dg_model_find(&b.m, "layer.0.self_attn.sinks"), 1, GW_NH, 0, 0));
        CHECK(dg_model_find(&b.m, "layer.0.post_attention_layernorm") != NULL);
    }
    release(&b);
}

DG_TEST(gguf_arch_vocab_from_writer)
{
    size_t len;
    uint8_t *file = gw_make_model("qwen3", &len);
    struct dg_gguf *g = NULL;
    CHECK_OK(dg_gguf_open_buffer(file, len, "qwen3", &g));
    if (g) {
        CHECK(g->alignment == 64 && g->data_offset % 64 == 0);
        struct dg_gguf_vocab v;
        CHECK_OK(dg_gguf_vocab_get(g, &v));
        CHECK(v.n_tokens == GW_V && v.eot_id == 3 && v.n_merges == 1 && !v.has_add_eos);
        CHECK(v.chat_template && strstr(v.chat_template, "messages"));
        dg_gguf_vocab_free(&v);
        dg_gguf_close(g);
    }
    free(file);
}
