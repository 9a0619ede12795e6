/* test_kpath.c: the registry and every built-in kernel path load and validate; hand-broken paths give
 * the validation errors the issue specifies; plans merge profile < config < command line and the fused
 * veto falls back; formulas evaluate. No GL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpath/kpath.h"
#include "test.h"

static bool load_reg(struct dg_kp_registry *r)
{
    dg_status st = dg_kp_registry_load_default(r);
    CHECK_MSG(st == DG_OK, "registry: %s", dg_last_error());
    return st == DG_OK;
}

/* Loads the built-in path `id` into p and starts plan under the nvidia profile; false (the test failed)
 * when the path does not load. */
static bool nvidia_path(const struct dg_kp_registry *reg, const char *id, struct dg_kpath *p, struct dg_kplan *plan)
{
    char file[1200];
    CHECK_OK(dg_kpath_resolve_file(id, file, sizeof file));
    if (dg_kpath_load(file, reg, NULL, p) != DG_OK) {
        CHECK_MSG(false, "%s: %s", id, dg_last_error());
        return false;
    }
    dg_kplan_init(plan);
    CHECK_OK(dg_kplan_apply_profile(plan, "nvidia"));
    return true;
}

static const char *families[] = {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"};
static const char *formats[] = {"f32", "f16-native", "q8_0", "q4k-fused", "q4k-dequant-f16", "q4k-dequant-f32"};

static const char *moe_families[] = {"mixtral", "qwen3_moe", "gpt_oss", "phimoe"};

static void validate_path(const struct dg_kp_registry *reg, const char *id)
{
    struct dg_kp_caps caps = {false, true, 1024, 32768};
    char file[1200];
    CHECK_OK(dg_kpath_resolve_file(id, file, sizeof file));
    struct dg_kpath p;
    dg_status st = dg_kpath_load(file, reg, &caps, &p);
    CHECK_MSG(st == DG_OK, "%s: %s", id, dg_last_error());
    if (st)
        return;
    CHECK(!strcmp(p.id, id));
    /* nvidia (attention_fused with splits, fused q/k/v), llvmpipe (attention_fused, one workgroup a head)
     * and nvidia with the split variant (split attention + combine): every path resolves and re-validates
     * under each */
    for (int pi = 0; pi < 3; pi++) {
        struct dg_kplan plan;
        dg_kplan_init(&plan);
        CHECK_OK(dg_kplan_apply_profile(&plan, pi == 1 ? "llvmpipe" : "nvidia"));
        if (pi == 2)
            CHECK_OK(dg_kplan_apply_json(&plan, "{\"variants\": {\"attention\": {\"decode\": \"split\"}}}", "test"));
        for (int prefill = 0; prefill < 2; prefill++) {
            struct dg_kp_resolved r;
            st = dg_kplan_resolve(&plan, reg, NULL, &p, prefill, &r);
            CHECK_MSG(st == DG_OK, "%s resolve (%s, plan %d): %s", id, prefill ? "prefill" : "decode", pi,
                      dg_last_error());
            if (!st)
                dg_kp_resolved_free(&r);
        }
    }
    dg_kpath_free(&p);
}

/* Decode under the attention variant "fused": rope_kv + attention (+ Qwen3's two qk_norm steps) become one
 * attention_fused step reading the raw q, k, v and writing the caches, the output and its scratch slots;
 * prefill keeps rope_kv and attention (one workgroup a head there); a layerPipeline that separates rope_kv from
 * attention leaves them unfused (split + combine). */
/* the value of the step's constant `name`, or NULL */
static const char *step_const(const struct dg_kp_step *s, const char *name)
{
    for (int c = 0; c < s->n_consts; c++)
        if (!strcmp(s->consts[c].name, name))
            return s->consts[c].value;
    return NULL;
}

static void step_list(const struct dg_kp_section *sec, char *out, size_t n)
{
    out[0] = 0;
    for (int i = 0; i < sec->n_steps; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", sec->steps[i].kernel);
}

DG_TEST(kpath_fused_attention_plan)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    static const char *const ids[2] = {"llama-q4k-fused", "qwen3-f32"};
    static const char *const want[2] = {"matmul,matmul,matmul,attention_fused,matmul,ffn_gate_up,matmul",
                                        "matmul,matmul,matmul,attention_fused,matmul,ffn_gate_up,matmul"};
    for (int i = 0; i < 2; i++) {
        char got[1024];
        struct dg_kpath p;
        struct dg_kplan plan;
        if (!nvidia_path(&reg, ids[i], &p, &plan))
            continue;
        CHECK_OK(dg_kplan_apply_json(&plan, "{\"variants\": {\"attention\": {\"decode\": \"fused\"}}}", "test"));
        struct dg_kp_resolved r;
        CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
        step_list(&r.sec[1], got, sizeof got);
        CHECK_MSG(!strcmp(got, want[i]), "%s decode: %s", ids[i], got);
        for (int s = 0; s < r.sec[1].n_steps; s++) {
            const struct dg_kp_step *st = &r.sec[1].steps[s];
            /* the decode GEMVs stage x in shared memory where their norm is fused (XSH 2) */
            if (!strcmp(st->kernel, "matmul") && !strcmp(st->entry, "main")) {
                const char *xsh = step_const(st, "XSH");
                CHECK_MSG(xsh && !strcmp(xsh, "2"), "%s %s: XSH %s, the nvidia profile's 2", ids[i], st->role,
                          xsh ? xsh : "unset");
            }
            if (strcmp(st->kernel, "attention_fused"))
                continue;
            CHECK(st->n_input == 3 && !strcmp(st->input[0], "q") && !strcmp(st->input[1], "k") &&
                  !strcmp(st->input[2], "v"));
            CHECK(st->n_output == 5 && !strcmp(st->output[0], "k_cache") && !strcmp(st->output[2], "attn_out") &&
                  !strcmp(st->output[4], "attn_count"));
            int norms = 0;
            for (int w = 0; w < st->n_weights; w++)
                norms += !strcmp(st->weights[w].role, "q_norm") || !strcmp(st->weights[w].role, "k_norm");
            CHECK_MSG(norms == (i == 1 ? 2 : 0), "%s: %d q/k norm weights", ids[i], norms);
            const char *nsplit = step_const(st, "NSPLIT");
            CHECK_MSG(nsplit && !strcmp(nsplit, "16"), "%s: the nvidia profile's 16 splits", ids[i]);
        }
        dg_kp_resolved_free(&r);
        CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, true, &r));
        step_list(&r.sec[1], got, sizeof got);
        CHECK_MSG(strstr(got, "rope_kv,attention,") != NULL && !strstr(got, "attention_fused"), "%s prefill: %s",
                  ids[i], got);
        dg_kp_resolved_free(&r);
        dg_kpath_free(&p);
    }
    /* rope_kv moved away from attention: no fusion */
    char got[1024];
    struct dg_kpath p;
    struct dg_kplan plan;
    if (nvidia_path(&reg, "llama-f32", &p, &plan)) {
        CHECK_OK(dg_kplan_apply_json(&plan,
                                     "{\"variants\": {\"attention\": {\"decode\": \"fused\"}}, \"layerPipeline\": "
                                     "{\"decode\": [\"q_proj\", \"k_proj\", \"v_proj\", \"rope_kv\", \"o_proj\", "
                                     "\"attention\", \"gate_up_proj\", \"down_proj\"]}}",
                                     "test"));
        struct dg_kp_resolved r;
        if (dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r) == DG_OK) {
            step_list(&r.sec[1], got, sizeof got);
            CHECK_MSG(strstr(got, "attention_fused") == NULL && strstr(got, "attention,attn_combine") != NULL,
                      "separated rope_kv: %s", got);
            dg_kp_resolved_free(&r);
        } else {
            /* o_proj before attention reads attn_out before it is written: the validator's error is fine too */
            CHECK_MSG(strstr(dg_last_error(), "attn_out") != NULL, "%s", dg_last_error());
            dg_clear_error();
        }
        dg_kpath_free(&p);
    }
    dg_kp_registry_free(&reg);
}

/* The 67 built-in paths: 7 dense and 4 MoE families x 6 formats, and gpt_oss-mxfp4. */
DG_TEST(kpath_builtin_paths_validate)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    char id[64];
    for (int f = 0; f < 11; f++)
        for (int w = 0; w < 6; w++) {
            snprintf(id, sizeof id, "%s-%s", f < 7 ? families[f] : moe_families[f - 7], formats[w]);
            validate_path(&reg, id);
        }
    validate_path(&reg, "gpt_oss-mxfp4");
    dg_kp_registry_free(&reg);
}

static const char *good =
    "{\"id\":\"t\",\"preLayer\":[{\"op\":\"embed\",\"kernel\":\"embed\",\"weights\":{\"table\":\"embed_tokens\"},"
    "\"input\":\"token_ids\"}],\"decode\":{\"steps\":["
    "{\"op\":\"rmsnorm\",\"kernel\":\"rmsnorm\",\"weights\":\"layer.{L}.input_layernorm\",\"output\":\"norm_out\"},"
    "{\"op\":\"matmul\",\"kernel\":\"matmul\",\"weights\":\"layer.{L}.mlp.down_proj\",\"input\":\"norm_out\","
    "\"constants\":{\"ACCUMULATE\":1}}]}}";

static void expect_error(const struct dg_kp_registry *reg, const char *from, const char *to, const char *want)
{
    char json[4096];
    const char *p = strstr(good, from);
    if (!p) {
        CHECK_MSG(0, "bad test: %s", from);
        return;
    }
    snprintf(json, sizeof json, "%.*s%s%s", (int)(p - good), good, to, p + strlen(from));
    struct dg_kpath k;
    dg_status st = dg_kpath_parse("broken.json", json, reg, NULL, &k);
    CHECK_MSG(st != DG_OK, "expected an error for %s", to);
    if (st == DG_OK) {
        dg_kpath_free(&k);
        return;
    }
    CHECK_MSG(strstr(dg_last_error(), want) != NULL, "error \"%s\" lacks \"%s\"", dg_last_error(), want);
}

DG_TEST(kpath_validation_errors)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    struct dg_kpath k;
    dg_status st = dg_kpath_parse("good.json", good, &reg, NULL, &k);
    CHECK_MSG(st == DG_OK, "good path: %s", dg_last_error());
    if (!st)
        dg_kpath_free(&k);
    expect_error(&reg, "\"kernel\":\"matmul\"", "\"kernel\":\"matmull\"",
                 "broken.json: decode.steps[1].kernel: \"matmull\" is not in the registry (known: embed, rmsnorm");
    expect_error(&reg, "\"op\":\"matmul\"", "\"op\":\"attention\"", "decode.steps[1].op: \"attention\" is not an op of kernel matmul");
    expect_error(&reg, "\"kernel\":\"matmul\"", "\"kernel\":\"matmul\",\"entry\":\"fast\"",
                 "decode.steps[1].entry: \"fast\" is not an entry of kernel matmul (known: main, row, tiled, tiled_rb)");
    expect_error(&reg, "\"ACCUMULATE\":1", "\"ACCUMULATE\":1,\"TILE\":4", "decode.steps[1].constants.TILE: not a knob");
    expect_error(&reg, "\"ACCUMULATE\":1", "\"K\":4", "constants.K: set by the executor");
    expect_error(&reg, "\"output\":\"norm_out\"", "\"output\":\"normout\"", "decode.steps[0].output[0]: \"normout\" is not a slot");
    expect_error(&reg, "\"input\":\"norm_out\"", "\"input\":\"q\"", "decode.steps[1].input[0]: slot \"q\" is read before any step writes it");
    expect_error(&reg, "layer.{L}.mlp.down_proj", "layer.{L}.mlp.dwn_proj", "is not a canonical tensor name");
    expect_error(&reg, "embed_tokens", "layer.{L}.mlp.up_proj", "uses {L} outside a per-layer section");
    expect_error(&reg, "\"id\":\"t\"", "\"id\":\"t\",\"colour\":1", "colour: unknown field");
    dg_kp_registry_free(&reg);
}

DG_TEST(kpath_capability_check)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    /* a registry entry that requires subgroups is refused on a device without them */
    for (int i = 0; i < reg.n_kernels; i++)
        if (!strcmp(reg.kernels[i].name, "matmul")) {
            struct dg_kp_entry *e = &reg.kernels[i].entries[1];
            snprintf(e->requires[0], DG_KP_NAME, "subgroup");
            e->n_requires = 1;
        }
    char json[2048];
    const char *from = "\"kernel\":\"matmul\"", *p = strstr(good, from);
    snprintf(json, sizeof json, "%.*s%s%s", (int)(p - good), good, "\"kernel\":\"matmul\",\"entry\":\"row\"",
             p + strlen(from));
    struct dg_kp_caps no_sg = {false, false, 256, 16384}, sg = {true, false, 1024, 49152};
    struct dg_kpath k;
    CHECK(dg_kpath_parse("x.json", json, &reg, &no_sg, &k) == DG_E_UNSUPPORTED);
    CHECK(strstr(dg_last_error(), "requires subgroup") != NULL);
    CHECK_OK(dg_kpath_parse("x.json", json, &reg, &sg, &k));
    dg_kpath_free(&k);
    dg_kp_registry_free(&reg);
}

/* layerPipeline reorders a layer's steps by role: an array applies to both phases; an object gives decode
 * and prefill their own lists (MoE paths' prefill has other steps); a list that does not match the
 * section's steps is an error naming the field. */
static void role_order(const struct dg_kp_resolved *r, char *out, size_t n)
{
    out[0] = 0;
    for (int i = 0; i < r->sec[1].n_steps; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", r->sec[1].steps[i].role);
}

DG_TEST(kpath_layer_pipeline)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    struct dg_kpath p;
    char file[1200], order[1024];
    CHECK_OK(dg_kpath_resolve_file("mixtral-f32", file, sizeof file));
    if (dg_kpath_load(file, &reg, NULL, &p) != DG_OK) {
        CHECK_MSG(false, "%s", dg_last_error());
        dg_kp_registry_free(&reg);
        return;
    }
    /* decode folds the input norm into q/k/v (norm_in); prefill keeps it as a step */
    static const char dec[] = "[\"k_proj\",\"q_proj\",\"v_proj\",\"rope_kv\",\"attention\","
                              "\"o_proj\",\"post_attention_layernorm\",\"router\",\"moe_route\",\"experts_gate_up\","
                              "\"experts_down\"]";
    static const char pre[] = "[\"input_layernorm\",\"q_proj\",\"v_proj\",\"k_proj\",\"rope_kv\",\"attention\","
                              "\"o_proj\",\"post_attention_layernorm\",\"router\",\"moe_route\",\"experts_group\","
                              "\"experts_gate_up\",\"experts_down\",\"experts_combine\"]";
    char json[2048];
    struct dg_kplan plan;
    struct dg_kp_resolved r;
    /* one array: fits decode, not prefill (which has the grouping and combine steps) */
    dg_kplan_init(&plan);
    snprintf(json, sizeof json, "{\"layerPipeline\":%s}", dec);
    CHECK_OK(dg_kplan_apply_json(&plan, json, "cli"));
    CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
    role_order(&r, order, sizeof order);
    CHECK_MSG(!strncmp(order, "k_proj,q_proj,v_proj,", 21), "decode order %s", order);
    dg_kp_resolved_free(&r);
    CHECK(dg_kplan_resolve(&plan, &reg, NULL, &p, true, &r) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "layerPipeline (cli) names 11 steps; prefill.steps has 14"), "%s",
              dg_last_error());
    /* per phase */
    dg_kplan_init(&plan);
    snprintf(json, sizeof json, "{\"layerPipeline\":{\"decode\":%s,\"prefill\":%s}}", dec, pre);
    CHECK_OK(dg_kplan_apply_json(&plan, json, "cli"));
    CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
    role_order(&r, order, sizeof order);
    CHECK_MSG(!strncmp(order, "k_proj,q_proj,", 14), "decode order %s", order);
    dg_kp_resolved_free(&r);
    CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, true, &r));
    role_order(&r, order, sizeof order);
    CHECK_MSG(!strncmp(order, "input_layernorm,q_proj,v_proj,k_proj,", 37) && strstr(order, "experts_combine"),
              "prefill order %s", order);
    dg_kp_resolved_free(&r);
    /* errors name the field */
    CHECK(dg_kplan_apply_json(&plan, "{\"layerPipeline\":{\"decodes\":[]}}", "cli") == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "layerPipeline.decodes: unknown field (known: decode, prefill)") != NULL);
    CHECK(dg_kplan_apply_json(&plan, "{\"layerPipeline\":{\"prefill\":[1]}}", "cli") == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "layerPipeline.prefill[0]: expected a step role") != NULL);
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"layerPipeline\":[\"q_proj\"]}", "cli"));
    CHECK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r) == DG_E_FORMAT);
    dg_kpath_free(&p);
    dg_kp_registry_free(&reg);
}

static bool veto_all(void *ctx, const char *id, char *reason, size_t n)
{
    (void)ctx;
    snprintf(reason, n, "test veto of %s", id);
    return false;
}

DG_TEST(kpath_plan_priority_and_veto)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
    CHECK(dg_kplan_apply_profile(&plan, "turbo") == DG_E_USAGE);
    char *cfg = NULL;
    const char *dir = dg_test_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"runtime\":{\"inference\":{\"kernelPlan\":{\"q4kStrategy\":\"dequant_f32\",\"variants\":{\"matmul\":"
              "{\"decode\":\"main\",\"roles\":{\"lm_head\":\"row\"}}}},\"kernelPath\":\"llama-f32\"}}}",
              f);
        fclose(f);
    }
    CHECK_OK(dg_kplan_apply_config(&plan, path));
    CHECK(!strcmp(plan.q4k_strategy.value, "dequant_f32") && strstr(plan.q4k_strategy.src, "config"));
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"q4kStrategy\":\"fused_q4k\",\"strict\":true}", "cli"));
    CHECK(!strcmp(plan.q4k_strategy.value, "fused_q4k") && !strcmp(plan.q4k_strategy.src, "cli"));
    CHECK(dg_kplan_apply_json(&plan, "{\"q4kStrategy\":\"fastest\"}", "cli") == DG_E_FORMAT);
    CHECK(dg_kplan_apply_json(&plan, "{\"bogus\":1}", "cli") == DG_E_FORMAT);
    /* variants: role beats phase; the plan's decode entry reaches every matmul */
    struct dg_kpath p;
    char file[1200];
    plan.kernel_path.value[0] = 0;
    CHECK_OK(dg_kplan_load_path(&plan, &reg, NULL, "llama", "q4_k", &p));
    CHECK(!strcmp(p.id, "llama-q4k-fused"));
    struct dg_kp_resolved r;
    CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
    int rows = 0, mains = 0;
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < r.sec[s].n_steps; i++) {
            const struct dg_kp_step *st = &r.sec[s].steps[i];
            if (!strcmp(st->role, "lm_head"))
                rows += !strcmp(st->entry, "row");
            else if (!strcmp(st->kernel, "matmul"))
                mains += !strcmp(st->entry, "main");
        }
    CHECK(rows == 1 && mains > 0);
    dg_kp_resolved_free(&r);
    dg_kpath_free(&p);
    /* the compatibility checker's veto replaces the fused path by its fallback */
    plan.fused_check = veto_all;
    CHECK_OK(dg_kplan_load_path(&plan, &reg, NULL, "llama", "q4_k", &p));
    CHECK(!strcmp(p.id, "llama-q4k-dequant-f16"));
    CHECK(!plan.fused_allowed && strstr(plan.fused_veto_reason, "test veto of llama-q4k-fused"));
    dg_kpath_free(&p);
    /* strict: an invalid variant is an error */
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"variants\":{\"attention\":{\"decode\":\"warp\"}}}", "cli"));
    CHECK_OK(dg_kpath_resolve_file("llama-f32", file, sizeof file));
    CHECK_OK(dg_kpath_load(file, &reg, NULL, &p));
    CHECK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r) == DG_E_FORMAT);
    dg_kpath_free(&p);
    free(cfg);
    dg_kp_registry_free(&reg);
}

static bool lk(void *ctx, const char *name, int64_t *out)
{
    (void)ctx;
    if (!strcmp(name, "N")) {
        *out = 100;
        return true;
    }
    return false;
}

DG_TEST(kpath_formulas)
{
    int64_t v;
    CHECK_OK(dg_expr_eval("cdiv(N, 8) * 2 + max(3, 4) - (N % 7)", lk, NULL, "t", &v));
    CHECK(v == 13 * 2 + 4 - 2);
    CHECK(dg_expr_eval("N / 0", lk, NULL, "t", &v) == DG_E_FORMAT);
    CHECK(dg_expr_eval("M + 1", lk, NULL, "t", &v) == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "unknown name M") != NULL);
    CHECK(dg_expr_eval("(((1)", lk, NULL, "t", &v) == DG_E_FORMAT);
}

/* "knobs" forces a knob value on every step of a kernel and entry, over the path's constants and the
 * profile's preferences (the llvmpipe profile's NSPLIT 1 for attention_fused, RPT 4 for the row GEMV),
 * in both the plain steps and the plan-built attention_fused; a later source replaces an earlier value;
 * names the registry does not know and values that are neither numbers nor strings are errors that name
 * the field. */
DG_TEST(kpath_plan_knobs)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    char file[1200];
    CHECK_OK(dg_kpath_resolve_file("llama-q8_0", file, sizeof file));
    struct dg_kpath p;
    if (dg_kpath_load(file, &reg, NULL, &p) != DG_OK) {
        CHECK_MSG(false, "%s", dg_last_error());
        dg_kp_registry_free(&reg);
        return;
    }
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"knobs\": {\"attention_fused\": {\"main\": {\"NSPLIT\": 8, \"CHUNK\": \"64\"}},"
                                        " \"matmul\": {\"row\": {\"RPT\": 1}}}}", "config"));
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"knobs\": {\"attention_fused\": {\"main\": {\"NSPLIT\": 4}}}}", "cli"));
    struct dg_kp_resolved r;
    CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
    int fused = 0, rows = 0;
    for (int s = 0; s < r.sec[1].n_steps; s++) {
        const struct dg_kp_step *st = &r.sec[1].steps[s];
        if (!strcmp(st->kernel, "attention_fused")) {
            fused++;
            const char *ns = step_const(st, "NSPLIT"), *ch = step_const(st, "CHUNK");
            CHECK_MSG(ns && !strcmp(ns, "4") && ch && !strcmp(ch, "64"), "attention_fused NSPLIT %s CHUNK %s",
                      ns ? ns : "-", ch ? ch : "-");
        }
        if (!strcmp(st->kernel, "matmul") && !strcmp(st->entry, "row")) {
            rows++;
            const char *rpt = step_const(st, "RPT");
            CHECK_MSG(rpt && !strcmp(rpt, "1"), "%s RPT %s", st->role, rpt ? rpt : "-");
        }
    }
    CHECK_MSG(fused == 1 && rows >= 2, "%d attention_fused, %d row matmul steps", fused, rows);
    dg_kp_resolved_free(&r);

    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"knobs\": {\"matmull\": {\"main\": {\"RPT\": 2}}}}", "knobs.matmull: not a kernel"},
        {"{\"knobs\": {\"matmul\": {\"fast\": {\"RPT\": 2}}}}", "knobs.matmul.fast: matmul has no entry"},
        {"{\"knobs\": {\"matmul\": {\"main\": {\"TILE\": 2}}}}", "knobs.matmul.main.TILE: matmul has no knob TILE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dg_kplan b;
        dg_kplan_init(&b);
        CHECK_OK(dg_kplan_apply_json(&b, bad[i].json, "cli"));
        CHECK(dg_kplan_resolve(&b, &reg, NULL, &p, false, &r) == DG_E_FORMAT);
        CHECK_MSG(strstr(dg_last_error(), bad[i].want) != NULL, "%s: %s", bad[i].json, dg_last_error());
        dg_clear_error();
    }
    CHECK(dg_kplan_apply_json(&plan, "{\"knobs\": {\"matmul\": {\"main\": {\"RPT\": true}}}}", "cli") == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "knobs.matmul.main.RPT: expected a number or a non-empty string") != NULL);
    CHECK(dg_kplan_apply_json(&plan, "{\"knobs\": {\"matmul\": [1]}}", "cli") == DG_E_FORMAT);
    dg_clear_error();
    dg_kpath_free(&p);
    dg_kp_registry_free(&reg);
}

/* A profile's knob preference for one weight format: the nvidia profile's two rows an invocation in the
 * tiled prefill matmul hold for a path whose GPU weights are f16 and not for a Q4_K one (where they were
 * measured 7x slower). */
DG_TEST(kpath_knob_prefs_by_weight_format)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    static const char *const ids[2] = {"llama-f16-native", "llama-q4k-fused"};
    static const char *const want[2] = {"2", NULL};
    for (int i = 0; i < 2; i++) {
        struct dg_kpath p;
        struct dg_kplan plan;
        if (!nvidia_path(&reg, ids[i], &p, &plan))
            continue;
        struct dg_kp_resolved r;
        CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, true, &r));
        int tiled = 0;
        for (int s = 0; s < r.sec[1].n_steps; s++) {
            const struct dg_kp_step *st = &r.sec[1].steps[s];
            if (strcmp(st->entry, "tiled"))
                continue;
            tiled++;
            const char *rpt = step_const(st, "RPT");
            CHECK_MSG(want[i] ? rpt && !strcmp(rpt, want[i]) : !rpt, "%s prefill %s (%s): RPT %s", ids[i], st->role,
                      st->kernel, rpt ? rpt : "unset");
            const char *tm = step_const(st, "TM");
            CHECK_MSG(tm && !strcmp(tm, "16"), "%s prefill %s: TM %s", ids[i], st->role, tm ? tm : "unset");
        }
        CHECK_MSG(tiled >= 4, "%s: %d tiled prefill steps", ids[i], tiled);
        dg_kp_resolved_free(&r);
        dg_kpath_free(&p);
    }
    dg_kp_registry_free(&reg);
}

/* The nvidia profile's H16 (Q4_K and split Q6_K GEMVs in f16 arithmetic where the device has it): 1 on the
 * gate/up steps, at 16 rows a workgroup; 2 (only GEMVs without a fused norm, K <= 8192) on the matmul
 * steps; not on the llvmpipe profile */
DG_TEST(kpath_nvidia_h16_prefs)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    struct dg_kpath p;
    struct dg_kplan plan;
    if (nvidia_path(&reg, "llama-q4k-fused", &p, &plan)) {
        struct dg_kp_resolved r;
        CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
        int gu = 0, mm = 0;
        for (int s = 0; s < r.sec[1].n_steps; s++) {
            const struct dg_kp_step *st = &r.sec[1].steps[s];
            if (strcmp(st->entry, "main"))
                continue;
            const char *h = step_const(st, "H16"), *rows = step_const(st, "ROWS_PER_WG");
            if (!strcmp(st->kernel, "ffn_gate_up")) {
                CHECK_MSG(h && !strcmp(h, "1") && rows && !strcmp(rows, "16"), "gate/up: H16 %s, ROWS_PER_WG %s",
                          h ? h : "unset", rows ? rows : "unset");
                gu++;
            } else if (!strcmp(st->kernel, "matmul")) {
                CHECK_MSG(h && !strcmp(h, "2"), "decode matmul (%s): H16 %s", st->role, h ? h : "unset");
                mm++;
            }
        }
        CHECK_MSG(gu == 1 && mm >= 4, "%d gate/up and %d matmul decode steps", gu, mm);
        dg_kp_resolved_free(&r);
        struct dg_kplan soft;
        dg_kplan_init(&soft);
        CHECK_OK(dg_kplan_apply_profile(&soft, "llvmpipe"));
        CHECK_OK(dg_kplan_resolve(&soft, &reg, NULL, &p, false, &r));
        for (int s = 0; s < r.sec[1].n_steps; s++)
            CHECK_MSG(!step_const(&r.sec[1].steps[s], "H16"), "llvmpipe profile, step %d: H16 set", s);
        dg_kp_resolved_free(&r);
        dg_kpath_free(&p);
    }
    dg_kp_registry_free(&reg);
}

/* The nvidia profile's decode attention: attention_fused at 16 splits of 16-key blocks, 128 invocations
 * reading v as uvec4s (VEC_V), the shape tools/replay-bench.c measured fastest on the H200 at positions 64
 * to 3000 (src/kpath/plan.c) */
DG_TEST(kpath_nvidia_attention_prefs)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    struct dg_kpath p;
    struct dg_kplan plan;
    if (nvidia_path(&reg, "llama-q4k-fused", &p, &plan)) {
        struct dg_kp_resolved r;
        CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
        int n = 0;
        for (int s = 0; s < r.sec[1].n_steps; s++) {
            const struct dg_kp_step *st = &r.sec[1].steps[s];
            if (strcmp(st->kernel, "attention_fused"))
                continue;
            static const char *const want[][2] = {{"NSPLIT", "16"}, {"CHUNK", "16"}, {"WG_SIZE", "128"}, {"VEC_V", "1"}};
            for (int i = 0; i < 4; i++) {
                const char *v = step_const(st, want[i][0]);
                CHECK_MSG(v && !strcmp(v, want[i][1]), "attention_fused %s: %s, want %s", want[i][0], v ? v : "unset",
                          want[i][1]);
            }
            n++;
        }
        CHECK_MSG(n == 1, "%d attention_fused decode steps", n);
        dg_kp_resolved_free(&r);
        dg_kpath_free(&p);
    }
    dg_kp_registry_free(&reg);
}

/* A knob preference can name the step op it is for: the nvidia profile gives the decode LM head 16 rows a
 * workgroup and every other decode matmul/main step 8, whichever order the steps come in. */
DG_TEST(kpath_knob_prefs_by_op)
{
    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    struct dg_kpath p;
    struct dg_kplan plan;
    if (nvidia_path(&reg, "llama-q4k-fused", &p, &plan)) {
        struct dg_kp_resolved r;
        CHECK_OK(dg_kplan_resolve(&plan, &reg, NULL, &p, false, &r));
        int heads = 0, others = 0;
        for (int sc = 0; sc < 4; sc++)
            for (int s = 0; s < r.sec[sc].n_steps; s++) {
                const struct dg_kp_step *st = &r.sec[sc].steps[s];
                if (strcmp(st->kernel, "matmul") || strcmp(st->entry, "main"))
                    continue;
                bool head = !strcmp(st->op, "lm_head");
                const char *rows = step_const(st, "ROWS_PER_WG");
                CHECK_MSG(rows && !strcmp(rows, head ? "16" : "8"), "decode %s (%s): ROWS_PER_WG %s", st->op,
                          st->role, rows ? rows : "unset");
                *(head ? &heads : &others) += 1;
            }
        CHECK_MSG(heads == 1 && others >= 4, "%d LM head and %d other decode matmul steps", heads, others);
        dg_kp_resolved_free(&r);
        dg_kpath_free(&p);
    }
    dg_kp_registry_free(&reg);
}

/* imageReads: the llvmpipe profile sets it, the command line can clear it, anything but a boolean is an
 * error; the registry marks the row GEMVs' entries and gives x, the weights and the norm weights distinct
 * image units with their formats; a registry with a bad imageUnit / imageFormat is refused with the field
 * named. */
static dg_status load_reg_text(const char *text, struct dg_kp_registry *reg)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/img-registry.json", dg_test_tmpdir());
    FILE *f = fopen(path, "w");
    if (!f)
        return DG_E_IO;
    fputs(text, f);
    fclose(f);
    return dg_kp_registry_load(path, reg);
}

DG_TEST(kpath_image_reads)
{
    struct dg_kplan plan;
    dg_kplan_init(&plan);
    CHECK(!strcmp(plan.image_reads.value, "false"));
    CHECK_OK(dg_kplan_apply_profile(&plan, "llvmpipe"));
    CHECK(!strcmp(plan.image_reads.value, "true"));
    CHECK_OK(dg_kplan_apply_json(&plan, "{\"imageReads\": false}", "cli"));
    CHECK(!strcmp(plan.image_reads.value, "false") && !strcmp(plan.image_reads.src, "cli"));
    CHECK(dg_kplan_apply_json(&plan, "{\"imageReads\": 1}", "cli") == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "imageReads"));
    dg_kplan_init(&plan);
    CHECK_OK(dg_kplan_apply_profile(&plan, "nvidia"));
    CHECK(!strcmp(plan.image_reads.value, "false"));

    struct dg_kp_registry reg;
    if (!load_reg(&reg))
        return;
    const char *kernels[] = {"matmul", "ffn_gate_up", "matmul_qkv", "matmul_qk"};
    for (int i = 0; i < 4; i++) {
        const struct dg_kp_kernel *k = dg_kp_kernel_find(&reg, kernels[i]);
        CHECK_MSG(k, "%s", kernels[i]);
        if (!k)
            continue;
        CHECK_MSG(dg_kp_entry_find(k, "row") && dg_kp_entry_find(k, "row")->image_reads, "%s/row", kernels[i]);
        CHECK_MSG(!dg_kp_entry_find(k, "main")->image_reads, "%s/main", kernels[i]);
        int units = 0;
        for (int b = 0; b < k->n_bindings; b++) {
            const struct dg_kp_binding *bd = &k->bindings[b];
            if (bd->image_unit < 0)
                continue;
            units |= 1 << bd->image_unit;
            bool raw = !strcmp(bd->role, "weight") || !strcmp(bd->role, "gate") || !strcmp(bd->role, "up");
            CHECK_MSG(bd->image_format == (raw ? DG_KP_IMG_RGBA32UI : DG_KP_IMG_RGBA32F), "%s.%s", kernels[i], bd->role);
        }
        CHECK_MSG(units == (i == 1 ? 0xf : 0xd), "%s: image units 0x%x", kernels[i], units);
    }
    dg_kp_registry_free(&reg);

    static const char head[] = "{\"kernels\": {\"k\": {\"file\": \"add.glsl\", \"ops\": [\"add\"], \"knobs\": {}, "
                               "\"workgroup\": \"64\", \"entries\": {\"main\": {\"define\": \"\", \"dispatch\": "
                               "[\"1\", \"1\", \"1\"]}}, \"bytes\": \"0\", \"bindings\": [";
    static const struct {
        const char *binding, *field;
    } bad[] = {
        {"{\"binding\": 0, \"role\": \"x\", \"kind\": \"input\", \"imageUnit\": 4, \"imageFormat\": \"rgba32f\"}",
         "imageUnit"},
        {"{\"binding\": 0, \"role\": \"x\", \"kind\": \"input\", \"imageUnit\": 1}", "imageFormat"},
        {"{\"binding\": 0, \"role\": \"x\", \"kind\": \"input\", \"imageUnit\": 1, \"imageFormat\": \"r32f\"}",
         "imageFormat"},
        {"{\"binding\": 0, \"role\": \"y\", \"kind\": \"output\", \"imageUnit\": 1, \"imageFormat\": \"rgba32f\"}",
         "imageUnit"},
        {"{\"binding\": 0, \"role\": \"x\", \"kind\": \"input\", \"imageUnit\": 1, \"imageFormat\": \"rgba32f\"}, "
         "{\"binding\": 1, \"role\": \"w\", \"kind\": \"weight\", \"imageUnit\": 1, \"imageFormat\": \"rgba32ui\"}",
         "image unit 1 used twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[2048];
        snprintf(text, sizeof text, "%s%s]}}}", head, bad[i].binding);
        struct dg_kp_registry r2;
        dg_status st = load_reg_text(text, &r2);
        CHECK_MSG(st == DG_E_FORMAT && strstr(dg_last_error(), bad[i].field), "case %zu: status %d, %s", i, (int)st,
                  dg_last_error());
        if (st == DG_OK)
            dg_kp_registry_free(&r2);
    }
    /* the same registry with a good binding loads */
    char text[2048];
    snprintf(text, sizeof text, "%s%s]}}}", head,
             "{\"binding\": 0, \"role\": \"x\", \"kind\": \"input\", \"imageUnit\": 2, \"imageFormat\": \"rgba32f\"}");
    struct dg_kp_registry r3;
    dg_status st = load_reg_text(text, &r3);
    CHECK_MSG(st == DG_OK, "good registry: %s", dg_last_error());
    if (st == DG_OK) {
        CHECK(r3.kernels[0].bindings[0].image_unit == 2);
        dg_kp_registry_free(&r3);
    }
}
