/* gguf_writer.h: a tiny GGUF writer for tests and fuzz seeds. It builds small, valid files for each
 * architecture the reader maps (llama with Llama 3 rope factors, mixtral, qwen2, qwen3, qwen3moe, gemma2,
 * gemma3, phi3 with fused tensors, gpt-oss with MXFP4 experts), so the mapping can be tested without
 * multi-gigabyte downloads. Header-only (static functions) so the unit tests and tests/fuzz share it. */
#ifndef DG_TESTS_GGUF_WRITER_H
#define DG_TESTS_GGUF_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/dtype.h"

struct gw {
    uint8_t *p;
    size_t n, cap;
    uint64_t count; /* key-value pairs written */
};

static void gw_put(struct gw *w, const void *src, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 256;
        w->p = realloc(w->p, w->cap);
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}
static void gw_u32(struct gw *w, uint32_t v) { gw_put(w, &v, 4); }
static void gw_u64(struct gw *w, uint64_t v) { gw_put(w, &v, 8); }
static void gw_f32(struct gw *w, float v) { gw_put(w, &v, 4); }
static void gw_s(struct gw *w, const char *s)
{
    gw_u64(w, strlen(s));
    gw_put(w, s, strlen(s));
}
static void gw_key(struct gw *w, const char *key, uint32_t type)
{
    gw_s(w, key);
    gw_u32(w, type);
    w->count++;
}
static void gw_kv_str(struct gw *w, const char *key, const char *v) { gw_key(w, key, 8), gw_s(w, v); }
static void gw_kv_u32(struct gw *w, const char *key, uint32_t v) { gw_key(w, key, 4), gw_u32(w, v); }
static void gw_kv_f32(struct gw *w, const char *key, float v) { gw_key(w, key, 6), gw_f32(w, v); }
static void gw_kv_bool(struct gw *w, const char *key, bool v)
{
    uint8_t b = v;
    gw_key(w, key, 7), gw_put(w, &b, 1);
}
/* "pre.<arch>.suffix" helpers take the arch prefix. */
static void gw_kv_au32(struct gw *w, const char *arch, const char *suffix, uint32_t v)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gw_kv_u32(w, key, v);
}
static void gw_kv_af32(struct gw *w, const char *arch, const char *suffix, float v)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gw_kv_f32(w, key, v);
}

struct gw_tensor {
    char name[80];
    uint32_t type; /* ggml id */
    int nd;
    uint64_t ne[4];
};

struct gw_tensors {
    struct gw_tensor t[256];
    int n;
};

static void gw_t(struct gw_tensors *ts, uint32_t type, int nd, uint64_t a, uint64_t b, uint64_t c, const char *fmt,
                 int layer)
{
    struct gw_tensor *t = &ts->t[ts->n++];
    snprintf(t->name, sizeof t->name, fmt, layer);
    t->type = type;
    t->nd = nd;
    t->ne[0] = a, t->ne[1] = b, t->ne[2] = c, t->ne[3] = 1;
}

static enum dg_dtype gw_dtype(uint32_t ggml)
{
    switch (ggml) {
    case 0: return DG_DT_F32;
    case 1: return DG_DT_F16;
    case 8: return DG_DT_Q8_0;
    case 12: return DG_DT_Q4_K;
    case 39: return DG_DT_MXFP4;
    default: return DG_DT_F32;
    }
}

/* Header (magic, version 3, counts, the pairs in kv), tensor infos, padding, data. F32 data is 1.0 so
 * rope factors and norms are valid; other types get a byte pattern. Returns a malloc'd file. */
static uint8_t *gw_finish(struct gw *kv, const struct gw_tensors *ts, uint32_t align, size_t *len)
{
    struct gw w = {0};
    gw_put(&w, "GGUF", 4);
    gw_u32(&w, 3);
    gw_u64(&w, (uint64_t)ts->n);
    gw_u64(&w, kv->count);
    gw_put(&w, kv->p, kv->n);
    uint64_t off = 0, sizes[256];
    for (int i = 0; i < ts->n; i++) {
        const struct gw_tensor *t = &ts->t[i];
        gw_s(&w, t->name);
        gw_u32(&w, (uint32_t)t->nd);
        uint64_t nel = 1;
        for (int d = 0; d < t->nd; d++)
            gw_u64(&w, t->ne[d]), nel *= t->ne[d];
        gw_u32(&w, t->type);
        gw_u64(&w, off);
        sizes[i] = dg_dtype_row_bytes(gw_dtype(t->type), t->ne[0]) * (nel / t->ne[0]);
        off += (sizes[i] + align - 1) / align * align;
    }
    while (w.n % align)
        gw_put(&w, "", 1);
    for (int i = 0; i < ts->n; i++) {
        size_t start = w.n;
        if (ts->t[i].type == 0) {
            for (uint64_t k = 0; k < sizes[i] / 4; k++)
                gw_f32(&w, 1.0f);
        } else {
            for (uint64_t k = 0; k < sizes[i]; k++) {
                uint8_t b = (uint8_t)(k * 7 + i);
                gw_put(&w, &b, 1);
            }
        }
        while ((w.n - start) % align)
            gw_put(&w, "", 1);
    }
    free(kv->p);
    *len = w.n;
    return w.p;
}

/* Dimensions of the test models. */
enum { GW_H = 32, GW_NH = 2, GW_NKV = 1, GW_HD = 16, GW_FF = 64, GW_L = 2, GW_V = 16, GW_E = 4, GW_EU = 2,
       GW_EFF = 32 };

/* A complete small model of `arch` ("llama", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3",
 * "phi3", "gpt-oss"). NULL for an unknown name. */
static uint8_t *gw_make_model(const char *name, size_t *len)
{
    bool mixtral = strcmp(name, "mixtral") == 0;
    const char *arch = mixtral ? "llama" : name;
    bool gemma = strncmp(arch, "gemma", 5) == 0, phi3 = strcmp(arch, "phi3") == 0;
    bool oss = strcmp(arch, "gpt-oss") == 0, q3moe = strcmp(arch, "qwen3moe") == 0;
    bool moe = mixtral || oss || q3moe, qk_norm = strcmp(arch, "qwen3") == 0 || q3moe || strcmp(arch, "gemma3") == 0;
    bool qkv_bias = strcmp(arch, "qwen2") == 0 || oss;
    static const char *const known[] = {"llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "gpt-oss"};
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok = ok || strcmp(arch, known[i]) == 0;
    if (!ok)
        return NULL;

    struct gw kv = {0};
    gw_kv_str(&kv, "general.architecture", arch);
    gw_kv_str(&kv, "general.name", name);
    gw_kv_u32(&kv, "general.alignment", 64);
    gw_kv_au32(&kv, arch, "context_length", 4096);
    gw_kv_au32(&kv, arch, "embedding_length", GW_H);
    gw_kv_au32(&kv, arch, "block_count", GW_L);
    gw_kv_au32(&kv, arch, "feed_forward_length", mixtral ? GW_EFF : GW_FF); /* Mixtral: the expert width */
    gw_kv_au32(&kv, arch, "attention.head_count", GW_NH);
    gw_kv_au32(&kv, arch, "attention.head_count_kv", GW_NKV);
    gw_kv_au32(&kv, arch, "attention.key_length", GW_HD);
    gw_kv_au32(&kv, arch, "attention.value_length", GW_HD);
    gw_kv_af32(&kv, arch, "attention.layer_norm_rms_epsilon", 1e-6f);
    gw_kv_af32(&kv, arch, "rope.freq_base", gemma ? 1e6f : 5e5f);
    if (gemma || oss)
        gw_kv_au32(&kv, arch, "attention.sliding_window", gemma ? 512 : 128);
    if (strcmp(arch, "gemma2") == 0) {
        gw_kv_af32(&kv, arch, "attn_logit_softcapping", 50.0f);
        gw_kv_af32(&kv, arch, "final_logit_softcapping", 30.0f);
    }
    if (strcmp(arch, "gemma3") == 0) {
        char key[64];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        gw_kv_str(&kv, key, "linear");
        gw_kv_af32(&kv, arch, "rope.scaling.factor", 8.0f);
    }
    if (oss) {
        gw_kv_str(&kv, "gpt-oss.rope.scaling.type", "yarn");
        gw_kv_af32(&kv, arch, "rope.scaling.factor", 32.0f);
        gw_kv_au32(&kv, arch, "rope.scaling.original_context_length", 4096);
    }
    if (moe) {
        gw_kv_au32(&kv, arch, "expert_count", GW_E);
        gw_kv_au32(&kv, arch, "expert_used_count", GW_EU);
        if (!mixtral)
            gw_kv_au32(&kv, arch, "expert_feed_forward_length", GW_EFF);
    }
    gw_kv_str(&kv, "tokenizer.ggml.model", "gpt2");
    gw_kv_str(&kv, "tokenizer.ggml.pre", "qwen2");
    gw_key(&kv, "tokenizer.ggml.tokens", 9);
    gw_u32(&kv, 8);
    gw_u64(&kv, GW_V);
    for (int i = 0; i < GW_V; i++) {
        char tok[16];
        snprintf(tok, sizeof tok, i == 0 ? "<s>" : i == 1 ? "</s>" : "t%d", i);
        gw_s(&kv, tok);
    }
    gw_key(&kv, "tokenizer.ggml.token_type", 9);
    gw_u32(&kv, 5);
    gw_u64(&kv, GW_V);
    for (int i = 0; i < GW_V; i++)
        gw_u32(&kv, i < 2 ? 3 : 1);
    gw_key(&kv, "tokenizer.ggml.merges", 9);
    gw_u32(&kv, 8);
    gw_u64(&kv, 1);
    gw_s(&kv, "t t");
    gw_kv_u32(&kv, "tokenizer.ggml.bos_token_id", 0);
    gw_kv_u32(&kv, "tokenizer.ggml.eos_token_id", 1);
    gw_kv_u32(&kv, "tokenizer.ggml.eot_token_id", 3);
    gw_kv_bool(&kv, "tokenizer.ggml.add_bos_token", true);
    gw_kv_str(&kv, "tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");

    struct gw_tensors *ts = calloc(1, sizeof *ts);
    const uint32_t F32 = 0, F16 = 1, Q8 = 8, MX = 39;
    const int q = GW_NH * GW_HD, k = GW_NKV * GW_HD;
    gw_t(ts, Q8, 2, GW_H, GW_V, 0, "token_embd.weight", 0);
    gw_t(ts, F32, 1, GW_H, 0, 0, "output_norm.weight", 0);
    if (!gemma)
        gw_t(ts, F16, 2, GW_H, GW_V, 0, "output.weight", 0);
    if (strcmp(arch, "llama") == 0)
        gw_t(ts, F32, 1, GW_HD / 2, 0, 0, "rope_freqs.weight", 0);
    for (int l = 0; l < GW_L; l++) {
        gw_t(ts, F32, 1, GW_H, 0, 0, "blk.%d.attn_norm.weight", l);
        if (phi3) {
            gw_t(ts, Q8, 2, GW_H, q + 2 * k, 0, "blk.%d.attn_qkv.weight", l);
        } else {
            gw_t(ts, Q8, 2, GW_H, q, 0, "blk.%d.attn_q.weight", l);
            gw_t(ts, Q8, 2, GW_H, k, 0, "blk.%d.attn_k.weight", l);
            gw_t(ts, F16, 2, GW_H, k, 0, "blk.%d.attn_v.weight", l);
        }
        gw_t(ts, Q8, 2, q, GW_H, 0, "blk.%d.attn_output.weight", l);
        if (qkv_bias) {
            gw_t(ts, F32, 1, q, 0, 0, "blk.%d.attn_q.bias", l);
            gw_t(ts, F32, 1, k, 0, 0, "blk.%d.attn_k.bias", l);
            gw_t(ts, F32, 1, k, 0, 0, "blk.%d.attn_v.bias", l);
        }
        if (oss) {
            gw_t(ts, F32, 1, GW_H, 0, 0, "blk.%d.attn_output.bias", l);
            gw_t(ts, F32, 1, GW_NH, 0, 0, "blk.%d.attn_sinks.weight", l);
        }
        if (qk_norm) {
            gw_t(ts, F32, 1, GW_HD, 0, 0, "blk.%d.attn_q_norm.weight", l);
            gw_t(ts, F32, 1, GW_HD, 0, 0, "blk.%d.attn_k_norm.weight", l);
        }
        if (gemma) {
            gw_t(ts, F32, 1, GW_H, 0, 0, "blk.%d.post_attention_norm.weight", l);
            gw_t(ts, F32, 1, GW_H, 0, 0, "blk.%d.post_ffw_norm.weight", l);
        }
        gw_t(ts, F32, 1, GW_H, 0, 0, oss ? "blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", l);
        if (moe) {
            uint32_t et = oss ? MX : Q8;
            gw_t(ts, F32, 2, GW_H, GW_E, 0, "blk.%d.ffn_gate_inp.weight", l);
            gw_t(ts, et, 3, GW_H, GW_EFF, GW_E, "blk.%d.ffn_gate_exps.weight", l);
            gw_t(ts, et, 3, GW_H, GW_EFF, GW_E, "blk.%d.ffn_up_exps.weight", l);
            gw_t(ts, et, 3, GW_EFF, GW_H, GW_E, "blk.%d.ffn_down_exps.weight", l);
            if (oss) {
                gw_t(ts, F32, 1, GW_E, 0, 0, "blk.%d.ffn_gate_inp.bias", l);
                gw_t(ts, F32, 2, GW_EFF, GW_E, 0, "blk.%d.ffn_gate_exps.bias", l);
                gw_t(ts, F32, 2, GW_EFF, GW_E, 0, "blk.%d.ffn_up_exps.bias", l);
                gw_t(ts, F32, 2, GW_H, GW_E, 0, "blk.%d.ffn_down_exps.bias", l);
            }
        } else if (phi3) {
            gw_t(ts, Q8, 2, GW_H, 2 * GW_FF, 0, "blk.%d.ffn_up.weight", l);
            gw_t(ts, Q8, 2, GW_FF, GW_H, 0, "blk.%d.ffn_down.weight", l);
        } else {
            gw_t(ts, Q8, 2, GW_H, GW_FF, 0, "blk.%d.ffn_gate.weight", l);
            gw_t(ts, F16, 2, GW_H, GW_FF, 0, "blk.%d.ffn_up.weight", l);
            gw_t(ts, Q8, 2, GW_FF, GW_H, 0, "blk.%d.ffn_down.weight", l);
        }
    }
    uint8_t *file = gw_finish(&kv, ts, 64, len);
    free(ts);
    return file;
}

#endif
