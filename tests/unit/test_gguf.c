/* test_gguf.c: the GGUF reader on the three llama.cpp fixtures: every tensor's type and shape as the
 * fixture JSON lists them, the hyperparameters and canonical tensors of the model mapping, and the
 * tokenizer metadata. */
#include "../test.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

static const char *const fixture_names[] = {"sotu-6m.Q8_0", "sotu-6m.Q4_K_M", "tiny-llama-spm.Q4_K_M"};

static bool fixture_path(char *buf, size_t cap, const char *name, const char *ext)
{
    const char *root = dg_test_fixtures();
    if (!root)
        return false;
    snprintf(buf, cap, "%s/gguf/%s.%s", root, name, ext);
    return true;
}

DG_TEST(gguf_fixtures_match_llama_cpp_tables)
{
    for (size_t f = 0; f < sizeof fixture_names / sizeof fixture_names[0]; f++) {
        char gpath[4096], jpath[4096];
        if (!fixture_path(gpath, sizeof gpath, fixture_names[f], "gguf") ||
            !fixture_path(jpath, sizeof jpath, fixture_names[f], "json"))
            return;
        size_t jlen;
        char *jtext = dg_test_read_file(jpath, &jlen);
        CHECK_MSG(jtext, "cannot read %s", jpath);
        cJSON *j = jtext ? cJSON_Parse(jtext) : NULL;
        free(jtext);
        CHECK_MSG(j, "%s: not JSON", jpath);
        struct dg_gguf *g = NULL;
        CHECK_OK(dg_gguf_open(gpath, &g));
        if (!g || !j) {
            cJSON_Delete(j);
            dg_gguf_close(g);
            continue;
        }
        CHECK(g->version == 3);
        CHECK(g->alignment == 32);
        CHECK(g->data_offset % 32 == 0);
        const cJSON *types = cJSON_GetObjectItem(j, "tensor_types");
        const cJSON *shapes = cJSON_GetObjectItem(j, "tensor_shapes");
        CHECK(cJSON_GetArraySize(types) == (int)g->n_tensors);
        CHECK(cJSON_GetArraySize(shapes) == (int)g->n_tensors);
        const cJSON *it;
        cJSON_ArrayForEach(it, types)
        {
            const struct dg_gguf_tensor *t = dg_gguf_find_tensor(g, it->string);
            CHECK_MSG(t, "%s: tensor %s missing", fixture_names[f], it->string);
            if (t)
                CHECK_MSG(strcmp(dg_gguf_type_name(t->ggml_type), it->valuestring) == 0, "%s: %s is %s, want %s",
                          fixture_names[f], t->name, dg_gguf_type_name(t->ggml_type), it->valuestring);
        }
        cJSON_ArrayForEach(it, shapes)
        {
            const struct dg_gguf_tensor *t = dg_gguf_find_tensor(g, it->string);
            if (!t)
                continue;
            int nd = cJSON_GetArraySize(it);
            CHECK_MSG(t->n_dims == nd, "%s: %s has %d dims, want %d", fixture_names[f], t->name, t->n_dims, nd);
            for (int d = 0; d < nd && d < t->n_dims; d++)
                CHECK_MSG(t->ne[d] == (uint64_t)cJSON_GetArrayItem(it, d)->valuedouble, "%s: %s ne[%d] = %llu",
                          fixture_names[f], t->name, d, (unsigned long long)t->ne[d]);
            /* data inside the file and where the offset says */
            CHECK((const uint8_t *)t->data == g->base + g->data_offset + t->offset);
            CHECK(g->data_offset + t->offset + t->nbytes <= g->size);
        }
        /* The norm weights are real numbers near 1 (1 + 0.15 N(0,1) for tiny-llama, trained for sotu). */
        const struct dg_gguf_tensor *norm = dg_gguf_find_tensor(g, "output_norm.weight");
        CHECK(norm && norm->dtype == DG_DT_F32 && norm->nbytes == 256 * 4);
        if (norm) {
            float w;
            memcpy(&w, norm->data, 4);
            CHECK_MSG(w > 0.0f && w < 5.0f, "output_norm[0] = %g", w);
        }
        cJSON_Delete(j);
        dg_gguf_close(g);
    }
}

DG_TEST(gguf_typed_getters)
{
    char path[4096];
    if (!fixture_path(path, sizeof path, "sotu-6m.Q8_0", "gguf"))
        return;
    struct dg_gguf *g = NULL;
    CHECK_OK(dg_gguf_open(path, &g));
    if (!g)
        return;
    const char *s = NULL;
    uint32_t u = 0;
    int32_t i = 0;
    float f = 0;
    bool b = false;
    CHECK_OK(dg_gguf_get_str(g, "general.architecture", &s));
    CHECK(s && strcmp(s, "llama") == 0);
    CHECK_OK(dg_gguf_get_u32(g, "llama.block_count", &u));
    CHECK(u == 6);
    CHECK_OK(dg_gguf_get_i32(g, "llama.feed_forward_length", &i));
    CHECK(i == 704);
    CHECK_OK(dg_gguf_get_f32(g, "llama.rope.freq_base", &f));
    CHECK(f == 10000.0f);
    CHECK_OK(dg_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b));
    CHECK(b);
    const struct dg_gguf_array *a = NULL;
    CHECK_OK(dg_gguf_get_array(g, "tokenizer.ggml.token_type", DG_GGUF_I32, &a));
    CHECK(a && a->n == 8192 && dg_gguf_array_i64(a, 0) == 3 && dg_gguf_array_i64(a, 1) == 1);
    /* wrong type, missing key, optional key */
    CHECK(dg_gguf_get_u32(g, "general.architecture", &u) == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "general.architecture has type string but must be an integer"));
    CHECK(dg_gguf_get_f32(g, "llama.block_count", &f) == DG_E_FORMAT);
    CHECK(dg_gguf_get_str(g, "no.such.key", &s) == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "missing key no.such.key"));
    CHECK(dg_gguf_get_array(g, "tokenizer.ggml.tokens", DG_GGUF_F32, &a) == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "array of string but must be an array of f32"));
    u = 77;
    CHECK_OK(dg_gguf_opt_u32(g, "no.such.key", &u));
    CHECK(u == 77);
    CHECK(dg_gguf_find(g, "no.such.key") == NULL);
    dg_gguf_close(g);
}

DG_TEST(gguf_model_sotu_hparams_and_tensors)
{
    const char *files[2] = {"sotu-6m.Q8_0", "sotu-6m.Q4_K_M"};
    for (int f = 0; f < 2; f++) {
        char path[4096];
        if (!fixture_path(path, sizeof path, files[f], "gguf"))
            return;
        struct dg_model m;
        CHECK_OK(dg_model_open_gguf(path, &m));
        if (!m.priv)
            return;
        const struct dg_hparams *hp = &m.hp;
        CHECK(m.source == DG_SRC_GGUF);
        CHECK(hp->arch == DG_ARCH_LLAMA);
        CHECK(strcmp(hp->model_type, "llama") == 0);
        CHECK(hp->hidden == 256 && hp->n_layers == 6 && hp->n_heads == 4 && hp->n_kv_heads == 2);
        CHECK(hp->head_dim == 64 && hp->intermediate == 704 && hp->vocab == 8192 && hp->max_pos == 512);
        CHECK_NEAR(hp->norm_eps, 1e-5, 1e-12);
        CHECK(hp->rope.theta == 10000.0f && hp->rope.type == DG_ROPE_DEFAULT && hp->rope.rotary_dim == 64);
        CHECK(hp->rope.pairing == DG_ROPE_NORM); /* llama.cpp permuted Q/K */
        CHECK(hp->rope.n_freq_factors == 0);
        CHECK(hp->norm_style == DG_NORM_RMS && hp->act == DG_ACT_SILU);
        CHECK(hp->tie_embeddings);
        CHECK(!hp->attn_qkv_bias && !hp->qk_norm && !hp->sandwich_norm && hp->n_experts == 0);
        CHECK(hp->sliding_window == 0);
        CHECK_NEAR(hp->attn_scale, 0.125, 1e-7);
        CHECK(hp->bos_id == 0 && hp->n_eos == 1 && hp->eos_ids[0] == 0);
        /* 1 embedding + 1 norm + 6 layers x 9 */
        CHECK(m.n_tensors == 2 + 6 * 9);
        CHECK(dg_model_find(&m, "lm_head") == NULL);
        const struct dg_tensor *e = dg_model_find(&m, "embed_tokens");
        CHECK(e && e->ndim == 2 && e->shape[0] == 8192 && e->shape[1] == 256);
        CHECK(e && e->dtype == (f == 0 ? DG_DT_Q8_0 : DG_DT_Q6_K));
        const struct dg_tensor *t = dg_model_findf(&m, "layer.%d.self_attn.k_proj", 5);
        CHECK(t && t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 256);
        t = dg_model_findf(&m, "layer.%d.mlp.down_proj", 0);
        CHECK(t && t->shape[0] == 256 && t->shape[1] == 704);
        CHECK(t && t->dtype == (f == 0 ? DG_DT_Q8_0 : DG_DT_Q5_0));
        CHECK(t && t->nbytes == dg_dtype_row_bytes(t->dtype, 704) * 256);
        t = dg_model_find(&m, "layer.2.mlp.down_proj");
        CHECK(t && t->dtype == DG_DT_Q8_0);
        CHECK(dg_model_find(&m, "layer.3.post_attention_layernorm") != NULL); /* from ffn_norm */
        CHECK(dg_model_find(&m, "layer.3.input_layernorm") != NULL);
        CHECK(dg_model_find(&m, "norm") != NULL);
        const struct dg_gguf *g = dg_model_gguf(&m);
        const struct dg_gguf_tensor *src = g ? dg_gguf_find_tensor(g, "blk.0.ffn_down.weight") : NULL;
        CHECK(src && dg_model_find(&m, "layer.0.mlp.down_proj")->data == src->data); /* no copy */
        dg_model_close_gguf(&m);
        CHECK(m.priv == NULL && m.tensors == NULL);
    }
}

DG_TEST(gguf_model_tiny_llama_spm_hparams)
{
    char path[4096];
    if (!fixture_path(path, sizeof path, "tiny-llama-spm.Q4_K_M", "gguf"))
        return;
    struct dg_model m;
    CHECK_OK(dg_model_open_gguf(path, &m));
    if (!m.priv)
        return;
    const struct dg_hparams *hp = &m.hp;
    CHECK(hp->arch == DG_ARCH_LLAMA);
    CHECK(hp->hidden == 256 && hp->n_layers == 2 && hp->n_heads == 4 && hp->n_kv_heads == 2);
    CHECK(hp->head_dim == 64 && hp->intermediate == 512 && hp->vocab == 32000 && hp->max_pos == 2048);
    CHECK_NEAR(hp->norm_eps, 1e-5, 1e-12);
    CHECK(hp->rope.theta == 10000.0f && hp->rope.pairing == DG_ROPE_NORM);
    CHECK(!hp->tie_embeddings);
    CHECK(hp->bos_id == 1 && hp->n_eos == 1 && hp->eos_ids[0] == 2);
    const struct dg_tensor *t = dg_model_find(&m, "lm_head");
    CHECK(t && t->dtype == DG_DT_Q6_K && t->shape[0] == 32000 && t->shape[1] == 256);
    t = dg_model_find(&m, "embed_tokens");
    CHECK(t && t->dtype == DG_DT_Q4_K && t->shape[0] == 32000);
    t = dg_model_find(&m, "layer.1.self_attn.v_proj");
    CHECK(t && t->dtype == DG_DT_Q6_K && t->shape[0] == 128 && t->shape[1] == 256);
    CHECK(m.n_tensors == 3 + 2 * 9);
    dg_model_close_gguf(&m);
}

static bool str_is(struct dg_gguf_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

DG_TEST(gguf_vocab_metadata)
{
    char path[4096];
    if (!fixture_path(path, sizeof path, "sotu-6m.Q4_K_M", "gguf"))
        return;
    struct dg_gguf *g = NULL;
    struct dg_gguf_vocab v;
    CHECK_OK(dg_gguf_open(path, &g));
    if (!g)
        return;
    CHECK_OK(dg_gguf_vocab_get(g, &v));
    CHECK(v.model && strcmp(v.model, "gpt2") == 0);
    CHECK(v.pre && strcmp(v.pre, "llama-bpe") == 0);
    CHECK(v.n_tokens == 8192 && str_is(v.tokens[0], "<|endoftext|>") && str_is(v.tokens[1], "!"));
    CHECK(v.token_type && v.token_type[0] == 3 && v.token_type[1] == 1 && v.token_type[8191] == 1);
    CHECK(v.scores == NULL);
    CHECK(v.n_merges == 7935 && str_is(v.merges[0], "\xc4\xa0 t"));
    CHECK(v.bos_id == 0 && v.eos_id == 0 && v.unk_id == -1 && v.eot_id == -1);
    CHECK(v.has_add_bos && v.add_bos && v.has_add_eos && !v.add_eos);
    CHECK(v.chat_template == NULL);
    dg_gguf_vocab_free(&v);
    dg_gguf_close(g);

    if (!fixture_path(path, sizeof path, "tiny-llama-spm.Q4_K_M", "gguf"))
        return;
    CHECK_OK(dg_gguf_open(path, &g));
    if (!g)
        return;
    CHECK_OK(dg_gguf_vocab_get(g, &v));
    CHECK(strcmp(v.model, "llama") == 0 && v.pre && strcmp(v.pre, "default") == 0);
    CHECK(v.n_tokens == 32000 && str_is(v.tokens[1], "<s>") && str_is(v.tokens[2], "</s>"));
    CHECK(v.n_tokens > 28705 && str_is(v.tokens[28705], "\xe2\x96\x81")); /* "▁" in the Mistral vocabulary */
    bool all = v.scores != NULL;
    for (uint32_t i = 0; all && i < v.n_tokens; i++)
        all = v.scores[i] == -1000.0f;
    CHECK_MSG(all, "every SPM score is the converter's -1000 placeholder");
    CHECK(v.token_type && v.token_type[0] == 3 && v.token_type[1] == 3);
    CHECK(v.n_merges == 0 && v.merges == NULL);
    CHECK(v.bos_id == 1 && v.eos_id == 2 && v.unk_id == 0 && v.pad_id == 0);
    CHECK(v.add_bos && !v.add_eos);
    dg_gguf_vocab_free(&v);
    dg_gguf_close(g);
}
