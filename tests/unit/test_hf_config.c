/* test_hf_config.c: config.json in both key styles (transformers 5 rope_parameters, older rope_theta +
 * rope_scaling), derived layer types, and errors that name the file and the key. The old-style llama and
 * gemma3 configs are the fixtures' configs rewritten, and must give the same hyperparameters and, through the
 * CPU reference, bit-identical logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/hf_config.h"
#include "model/model.h"
#include "ref/cpu_forward.h"
#include "test.h"

static dg_status parse(const char *json, struct dg_hparams *hp)
{
    return dg_hf_config_parse("config.json", json, strlen(json), NULL, NULL, 0, hp);
}

static bool msg_has(const char *s) { return strstr(dg_last_error(), s) != NULL; }

#define BASE "\"hidden_size\":64,\"num_hidden_layers\":6,\"num_attention_heads\":4,\"num_key_value_heads\":2," \
             "\"intermediate_size\":160,\"vocab_size\":512,\"max_position_embeddings\":2048,\"head_dim\":16,"

static const char *const OLD_LLAMA =
    "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":3,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"head_dim\":16,\"intermediate_size\":160,\"vocab_size\":512,"
    "\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-05,\"hidden_act\":\"silu\",\"tie_word_embeddings\":true,"
    "\"bos_token_id\":1,\"eos_token_id\":[2],\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":32.0,"
    "\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,\"original_max_position_embeddings\":64,"
    "\"rope_type\":\"llama3\"}}";

static const char *const OLD_GEMMA3 =
    "{\"model_type\":\"gemma3_text\",\"hidden_size\":96,\"num_hidden_layers\":6,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":1,\"head_dim\":32,\"intermediate_size\":192,\"vocab_size\":512,"
    "\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-06,\"hidden_activation\":\"gelu_pytorch_tanh\","
    "\"query_pre_attn_scalar\":32,\"sliding_window\":8,\"sliding_window_pattern\":6,\"rope_theta\":1000000.0,"
    "\"rope_local_base_freq\":10000.0,\"rope_scaling\":null,\"final_logit_softcapping\":null,"
    "\"attn_logit_softcapping\":null,\"bos_token_id\":1,\"eos_token_id\":2}";

DG_TEST(hf_config_old_style_llama3)
{
    struct dg_hparams hp;
    CHECK_OK(parse(OLD_LLAMA, &hp));
    CHECK(hp.arch == DG_ARCH_LLAMA && hp.rope.type == DG_ROPE_LLAMA3);
    CHECK(hp.rope.theta == 500000.0f && hp.rope.factor == 32.0f && hp.rope.low_freq_factor == 1.0f &&
          hp.rope.high_freq_factor == 4.0f && hp.rope.original_max_pos == 64 && hp.rope.rotary_dim == 16);
    CHECK(hp.tie_embeddings && hp.n_eos == 1 && hp.eos_ids[0] == 2 && hp.bos_id == 1);
    CHECK_NEAR(hp.attn_scale, 0.25, 1e-7);
}

DG_TEST(hf_config_old_style_gemma3)
{
    struct dg_hparams hp;
    CHECK_OK(parse(OLD_GEMMA3, &hp));
    CHECK(hp.arch == DG_ARCH_GEMMA3 && hp.rope.theta == 1e6f && hp.rope_local.theta == 10000.0f);
    CHECK(hp.rope.type == DG_ROPE_DEFAULT && hp.rope_local.type == DG_ROPE_DEFAULT);
    for (int i = 0; i < 6; i++)
        CHECK(hp.layer_sliding[i] == (i != 5));
    CHECK(hp.attn_softcap == 0 && hp.final_softcap == 0 && hp.act == DG_ACT_GELU_TANH);
    /* rope_scaling applies to the global layers only */
    const char *lin = "{\"model_type\":\"gemma3_text\"," BASE "\"rope_theta\":1000000.0,\"rope_local_base_freq\":"
                      "10000.0,\"sliding_window\":512,\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}}";
    CHECK_OK(parse(lin, &hp));
    CHECK(hp.rope.type == DG_ROPE_LINEAR && hp.rope.factor == 8.0f);
    CHECK(hp.rope_local.type == DG_ROPE_DEFAULT && hp.rope_local.theta == 10000.0f);
    /* transformers 5 per-layer-type rope_parameters */
    const char *v5 = "{\"model_type\":\"gemma3_text\"," BASE "\"sliding_window\":512,\"rope_parameters\":{"
                     "\"full_attention\":{\"rope_type\":\"linear\",\"factor\":8.0,\"rope_theta\":1000000.0},"
                     "\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000.0}}}";
    CHECK_OK(parse(v5, &hp));
    CHECK(hp.rope.type == DG_ROPE_LINEAR && hp.rope.theta == 1e6f && hp.rope_local.theta == 10000.0f);
}

DG_TEST(hf_config_rope_variants)
{
    struct dg_hparams hp;
    /* Phi-3 longrope, old style: factor from max / original, magnitude scale sqrt(1 + ln f / ln orig) */
    char buf[4096];
    char sf[512] = "", lf[512] = "";
    for (int i = 0; i < 6; i++) {
        strcat(sf, i ? ",1.0" : "1.0");
        strcat(lf, i ? ",4.0" : "4.0");
    }
    snprintf(buf, sizeof buf,
             "{\"model_type\":\"phi3\",\"hidden_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
             "\"intermediate_size\":64,\"vocab_size\":512,\"max_position_embeddings\":131072,"
             "\"original_max_position_embeddings\":4096,\"partial_rotary_factor\":0.5,\"rope_theta\":10000.0,"
             "\"rope_scaling\":{\"type\":\"su\",\"short_factor\":[%s],\"long_factor\":[%s]}}", sf, lf);
    CHECK_OK(parse(buf, &hp));
    CHECK(hp.rope.type == DG_ROPE_LONGROPE && hp.rope.rotary_dim == 12 && hp.rope.n_factors == 6);
    CHECK(hp.rope.long_factor[5] == 4.0f && hp.rope.original_max_pos == 4096);
    CHECK_NEAR(hp.rope.attention_factor, sqrt(1 + log(32.0) / log(4096.0)), 1e-6);
    /* wrong factor count */
    snprintf(buf, sizeof buf,
             "{\"model_type\":\"phi3\",\"hidden_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
             "\"intermediate_size\":64,\"vocab_size\":512,\"rope_scaling\":{\"type\":\"longrope\","
             "\"short_factor\":[1.0],\"long_factor\":[1.0]}}");
    CHECK(parse(buf, &hp) == DG_E_FORMAT);
    CHECK_MSG(msg_has("config.json") && msg_has("short_factor") && msg_has("expected 12"), "%s", dg_last_error());
    /* yarn: attention factor 0.1 ln(factor) + 1 */
    const char *yarn = "{\"model_type\":\"gpt_oss\"," BASE "\"num_local_experts\":4,\"rope_theta\":150000,"
                       "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":32.0,\"beta_fast\":32.0,\"beta_slow\":1.0,"
                       "\"original_max_position_embeddings\":4096,\"truncate\":false}}";
    CHECK_OK(parse(yarn, &hp));
    CHECK(hp.rope.type == DG_ROPE_YARN && !hp.rope.truncate && hp.rope.theta == 150000.0f);
    CHECK_NEAR(hp.rope.attention_factor, 0.1 * log(32.0) + 1.0, 1e-6);
    CHECK(hp.act == DG_ACT_GPT_OSS_SWIGLU && hp.swiglu_limit == 7.0f && hp.n_experts_used == 4);
    for (int i = 0; i < 6; i++) /* GPT-OSS alternates sliding / full when layer_types is absent */
        CHECK(hp.layer_sliding[i] == false); /* ...but without a sliding_window no layer slides */
    CHECK(parse("{\"model_type\":\"llama\"," BASE "\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2}}", &hp) ==
          DG_E_UNSUPPORTED);
    CHECK(msg_has("dynamic"));
}

DG_TEST(hf_config_layer_types_and_moe)
{
    struct dg_hparams hp;
    CHECK_OK(parse("{\"model_type\":\"gemma2\"," BASE "\"sliding_window\":4096}", &hp));
    CHECK(hp.layer_sliding[0] && !hp.layer_sliding[1] && hp.layer_sliding[4] && !hp.layer_sliding[5]);
    CHECK(hp.attn_softcap == 50.0f && hp.final_softcap == 30.0f && hp.norm_style == DG_NORM_RMS_GEMMA);
    CHECK_NEAR(hp.attn_scale, 1.0 / 16.0, 1e-7); /* query_pre_attn_scalar defaults to 256 */
    CHECK_OK(parse("{\"model_type\":\"mistral\"," BASE "\"sliding_window\":4096}", &hp));
    for (int i = 0; i < 6; i++)
        CHECK(hp.layer_sliding[i]);
    CHECK_OK(parse("{\"model_type\":\"qwen2\"," BASE "\"sliding_window\":4096,\"use_sliding_window\":true,"
                   "\"max_window_layers\":4}", &hp));
    CHECK(!hp.layer_sliding[3] && hp.layer_sliding[4] && hp.layer_sliding[5] && hp.attn_qkv_bias && !hp.attn_o_bias);
    CHECK_OK(parse("{\"model_type\":\"qwen2\"," BASE "\"sliding_window\":4096,\"use_sliding_window\":false}", &hp));
    CHECK(hp.sliding_window == 0 && !hp.layer_sliding[5]);
    CHECK_OK(parse("{\"model_type\":\"qwen3_moe\"," BASE "\"num_experts\":8,\"num_experts_per_tok\":2,"
                   "\"moe_intermediate_size\":32,\"decoder_sparse_step\":2,\"mlp_only_layers\":[3],"
                   "\"norm_topk_prob\":true}", &hp));
    CHECK(!hp.layer_moe[0] && hp.layer_moe[1] && !hp.layer_moe[3] && hp.layer_moe[5]);
    CHECK(hp.n_experts == 8 && hp.moe_intermediate == 32 && hp.norm_topk_prob && hp.router == DG_ROUTER_SOFTMAX_TOPK);
    CHECK_OK(parse("{\"model_type\":\"phimoe\"," BASE "\"num_local_experts\":8,\"lm_head_bias\":true,"
                   "\"attention_bias\":true}", &hp));
    CHECK(hp.norm_style == DG_NORM_LAYER && hp.router == DG_ROUTER_SPARSEMIXER && hp.lm_head_bias && hp.attn_o_bias);
    CHECK_NEAR(hp.router_jitter, 0.01, 1e-9);
    /* eos ids merge config and generation_config, int or list */
    const char *cfg = "{\"model_type\":\"llama\"," BASE "\"eos_token_id\":[2,7]}";
    const char *gen = "{\"eos_token_id\":[7,9],\"bos_token_id\":5}";
    CHECK_OK(dg_hf_config_parse("config.json", cfg, strlen(cfg), "generation_config.json", gen, strlen(gen), &hp));
    CHECK(hp.n_eos == 3 && hp.eos_ids[0] == 2 && hp.eos_ids[1] == 7 && hp.eos_ids[2] == 9 && hp.bos_id == 5);
}

DG_TEST(hf_config_errors_name_the_key)
{
    struct dg_hparams hp;
    CHECK(parse("{\"model_type\":\"llama\",\"num_hidden_layers\":2}", &hp) == DG_E_FORMAT);
    CHECK_MSG(msg_has("config.json") && msg_has("\"hidden_size\""), "%s", dg_last_error());
    CHECK(parse("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":\"four\"}",
                &hp) == DG_E_FORMAT);
    CHECK(msg_has("num_attention_heads"));
    CHECK(parse("{\"model_type\":\"bert\"}", &hp) == DG_E_UNSUPPORTED);
    CHECK(msg_has("\"bert\""));
    CHECK(parse("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":100000}", &hp) == DG_E_FORMAT);
    CHECK(msg_has("num_hidden_layers"));
    CHECK(parse("{\"model_type\":\"gemma2\"," BASE "\"layer_types\":[\"full_attention\"]}", &hp) == DG_E_FORMAT);
    CHECK(msg_has("layer_types"));
    CHECK(parse("{\"model_type\":\"llama\"," BASE "\"hidden_act\":\"relu\"}", &hp) == DG_E_UNSUPPORTED);
    CHECK(msg_has("hidden_act"));
    CHECK(parse("not json", &hp) == DG_E_FORMAT);
    CHECK(parse("{\"model_type\":\"mixtral\"," BASE "\"num_experts_per_tok\":2}", &hp) == DG_E_FORMAT);
    CHECK(msg_has("num_local_experts"));
}

/* An old-style config beside the fixture's weights must give exactly the fixture's logits. */
static void same_logits(const char *fam, const char *old_cfg)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char src[1024], dst[1024], p[1200], q[1200];
    snprintf(src, sizeof src, "%s/models/%s", fx, fam);
    snprintf(dst, sizeof dst, "%s", dg_test_tmpdir());
    char abs[1024];
    if (!realpath(src, abs))
        return;
    snprintf(p, sizeof p, "%s/model.safetensors", abs);
    snprintf(q, sizeof q, "%s/model.safetensors", dst);
    CHECK(symlink(p, q) == 0);
    snprintf(q, sizeof q, "%s/config.json", dst);
    FILE *f = fopen(q, "w");
    if (f) {
        fputs(old_cfg, f);
        fclose(f);
    }
    struct dg_model a, b;
    CHECK_OK(dg_model_open(src, &a));
    CHECK_OK(dg_model_open(dst, &b));
    if (!a.priv || !b.priv)
        return;
    struct dg_cpu_model *ca = NULL, *cb = NULL;
    CHECK_OK(dg_cpu_init(&a, 16, &ca));
    CHECK_OK(dg_cpu_init(&b, 16, &cb));
    if (ca && cb) {
        int32_t toks[12] = {1, 81, 213, 287, 262, 424, 213, 75, 50, 75, 21, 475};
        float *la = malloc(sizeof(float) * 12 * 512), *lb = malloc(sizeof(float) * 12 * 512);
        CHECK_OK(dg_cpu_forward(ca, toks, 12, la, NULL));
        CHECK_OK(dg_cpu_forward(cb, toks, 12, lb, NULL));
        CHECK_MSG(memcmp(la, lb, sizeof(float) * 12 * 512) == 0, "%s: old-style config gives other logits", fam);
        free(la);
        free(lb);
    }
    dg_cpu_free(ca);
    dg_cpu_free(cb);
    dg_model_close(&a);
    dg_model_close(&b);
}

DG_TEST(hf_config_old_style_same_logits)
{
    same_logits("llama", OLD_LLAMA);
    same_logits("gemma3_text", OLD_GEMMA3);
}
