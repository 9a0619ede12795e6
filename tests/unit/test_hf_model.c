/* test_hf_model.c: every fixture folder opens through dg_model_open with the canonical tensor names, shapes
 * checked against its config; the config values that matter per family are spot-checked. */
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "test.h"

static const char *const fixture_models[] = {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text",
                                             "phi3", "mixtral", "qwen3_moe", "gpt_oss", "phimoe"};

DG_TEST(hf_model_opens_every_fixture)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    for (size_t i = 0; i < sizeof fixture_models / sizeof fixture_models[0]; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/models/%s", fx, fixture_models[i]);
        struct dg_model m;
        dg_status st = dg_model_open(dir, &m);
        CHECK_MSG(st == DG_OK, "%s: %s", fixture_models[i], dg_last_error());
        if (st)
            continue;
        CHECK(m.source == DG_SRC_HF);
        CHECK(dg_model_find(&m, "embed_tokens") != NULL);
        CHECK(dg_model_find(&m, "layer.0.self_attn.q_proj") != NULL);
        CHECK(m.hp.n_eos == 1 && m.hp.eos_ids[0] == 2 && m.hp.bos_id == 1);
        const struct dg_tensor *e = dg_model_find(&m, "embed_tokens");
        CHECK(e && e->dtype == DG_DT_BF16 && e->shape[0] == 512);
        dg_model_close(&m);
    }
}

DG_TEST(hf_model_family_details)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char dir[1024];
    struct dg_model m;
    snprintf(dir, sizeof dir, "%s/models/phi3", fx);
    CHECK_OK(dg_model_open(dir, &m));
    if (m.priv) {
        const struct dg_tensor *k = dg_model_find(&m, "layer.2.self_attn.k_proj");
        CHECK(k && k->shape[0] == 64 && k->shape[1] == 64);
        const struct dg_tensor *u = dg_model_find(&m, "layer.1.mlp.up_proj");
        CHECK(u && u->shape[0] == 160);
        CHECK(dg_model_find(&m, "layer.0.self_attn.qkv_proj") == NULL);
        dg_model_close(&m);
    }
    snprintf(dir, sizeof dir, "%s/models/gpt_oss", fx);
    CHECK_OK(dg_model_open(dir, &m));
    if (m.priv) {
        const struct dg_tensor *g = dg_model_find(&m, "layer.0.mlp.experts.gate_proj");
        CHECK(g && g->ndim == 3 && g->shape[0] == 4 && g->shape[1] == 64 && g->shape[2] == 64);
        CHECK(dg_model_find(&m, "layer.3.mlp.experts.up_proj.bias") != NULL);
        CHECK(dg_model_find(&m, "layer.3.mlp.router.bias") != NULL);
        CHECK(m.hp.router == DG_ROUTER_TOPK_SOFTMAX && m.hp.attn_sinks && m.hp.rope.type == DG_ROPE_YARN);
        CHECK(m.hp.layer_sliding[0] && !m.hp.layer_sliding[1] && m.hp.sliding_window == 8);
        dg_model_close(&m);
    }
    snprintf(dir, sizeof dir, "%s/models/mixtral", fx);
    CHECK_OK(dg_model_open(dir, &m));
    if (m.priv) {
        const struct dg_tensor *d = dg_model_find(&m, "layer.2.mlp.experts.down_proj");
        CHECK(d && d->shape[0] == 8 && d->shape[1] == 64 && d->shape[2] == 96);
        CHECK(dg_model_find(&m, "layer.2.mlp.router") != NULL);
        CHECK(m.hp.norm_topk_prob && m.hp.n_experts_used == 2);
        dg_model_close(&m);
    }
    snprintf(dir, sizeof dir, "%s/models/gemma3_text", fx);
    CHECK_OK(dg_model_open(dir, &m));
    if (m.priv) {
        CHECK(m.hp.rope.theta == 1e6f && m.hp.rope_local.theta == 10000.0f);
        CHECK(m.hp.layer_sliding[4] && !m.hp.layer_sliding[5]);
        CHECK(m.hp.norm_style == DG_NORM_RMS_GEMMA && m.hp.qk_norm && m.hp.sandwich_norm);
        CHECK_NEAR(m.hp.attn_scale, 1.0 / sqrt(32.0), 1e-7);
        CHECK_NEAR(m.hp.embed_scale, sqrt(96.0), 1e-5);
        dg_model_close(&m);
    }
}

DG_TEST(model_open_rejects_other_paths)
{
    struct dg_model m;
    CHECK(dg_model_open("/nonexistent/model", &m) == DG_E_IO);
    const char *tmp = dg_test_tmpdir();
    CHECK(dg_model_open(tmp, &m) == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "not a model folder") != NULL);
}
