/* path.c: loading a kernel path (kernel-paths/<id>.json) and validating it against the registry: every
 * kernel, entry, knob, weight name, slot and op must exist, capabilities must be present, and no step may
 * read a slot before some earlier step wrote it. Messages name the file and the JSON field. */
/* snprintf truncation into fixed name fields is intended (lengths are validated where it matters). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpath/kpath.h"

char *dg_kp_slurp(const char *path, size_t max);

static const struct dg_kp_slot_info slots[] = {
    {"token_ids", "[T] uint: input token ids"},
    {"hidden_state", "[T, hidden]: the residual stream"},
    {"norm_out", "[T, hidden]: normalized hidden state"},
    {"q", "[T, heads*head_dim]"},
    {"k", "[T, kv_heads*head_dim]"},
    {"v", "[T, kv_heads*head_dim]"},
    {"attn_out", "[T, heads*head_dim]: attention output before o_proj"},
    {"attn_part", "[T, heads, NSPLIT, head_dim+2]: split-attention partials"},
    {"attn_count", "[T, heads] uint: attention_fused's per-head count of finished workgroups (kept at zero)"},
    {"proj_out", "[T, hidden]: o_proj / down_proj output before a post-norm"},
    {"gate", "[T, intermediate]"},
    {"up", "[T, intermediate]"},
    {"ffn_act", "[T, intermediate]: activated FFN input of down_proj"},
    {"logits", "[T, vocab]"},
    {"token_out", "[T] uint: sampled ids"},
    {"k_cache", "[ctx, kv_heads*head_dim] per layer (f16 pairs or f32)"},
    {"v_cache", "[ctx, kv_heads*head_dim] per layer (f16 pairs or f32)"},
    {"router_logits", "[T, experts]: MoE router logits"},
    {"moe_sel", "[T, 2*top_k]: selected expert ids (uint) and gate weights, written on the GPU"},
    {"moe_act", "[T, top_k, moe_intermediate]: activated inputs of the selected experts' down projections"},
    {"moe_groups", "[experts] counts, then [experts, T] (token, slot) pairs per expert: prefill's grouping"},
    {"moe_out", "[T, top_k, hidden]: the selected experts' down projections (prefill, before the combine)"},
    {NULL, NULL},
};

const struct dg_kp_slot_info *dg_kp_slots(void) { return slots; }

bool dg_kp_slot_known(const char *name)
{
    for (int i = 0; slots[i].name; i++)
        if (strcmp(slots[i].name, name) == 0)
            return true;
    return false;
}

static const char *const canonical[] = {
    "embed_tokens", "lm_head", "lm_head.bias", "norm", "norm.bias",
    "layer.{L}.input_layernorm", "layer.{L}.input_layernorm.bias",
    "layer.{L}.post_attention_layernorm", "layer.{L}.post_attention_layernorm.bias",
    "layer.{L}.pre_feedforward_layernorm", "layer.{L}.post_feedforward_layernorm",
    "layer.{L}.self_attn.q_proj", "layer.{L}.self_attn.k_proj", "layer.{L}.self_attn.v_proj",
    "layer.{L}.self_attn.o_proj", "layer.{L}.self_attn.q_proj.bias", "layer.{L}.self_attn.k_proj.bias",
    "layer.{L}.self_attn.v_proj.bias", "layer.{L}.self_attn.o_proj.bias", "layer.{L}.self_attn.q_norm",
    "layer.{L}.self_attn.k_norm", "layer.{L}.self_attn.sinks",
    "layer.{L}.mlp.gate_proj", "layer.{L}.mlp.up_proj", "layer.{L}.mlp.down_proj",
    "layer.{L}.mlp.gate_proj.bias", "layer.{L}.mlp.up_proj.bias", "layer.{L}.mlp.down_proj.bias",
    "layer.{L}.mlp.gate_up_proj", "layer.{L}.mlp.router", "layer.{L}.mlp.router.bias",
    "layer.{L}.mlp.experts.gate_proj", "layer.{L}.mlp.experts.up_proj", "layer.{L}.mlp.experts.down_proj",
    "layer.{L}.mlp.experts.gate_proj.bias", "layer.{L}.mlp.experts.up_proj.bias",
    "layer.{L}.mlp.experts.down_proj.bias", NULL,
};

/* A template may list alternatives separated by '|' (the first present tensor is used: lm_head|embed_tokens
 * for tied embeddings); each must be canonical. */
bool dg_kpath_weight_name_known(const char *tmpl)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", tmpl);
    char *save = NULL;
    int n = 0;
    for (char *alt = strtok_r(buf, "|", &save); alt; alt = strtok_r(NULL, "|", &save), n++) {
        bool ok = false;
        for (int i = 0; canonical[i] && !ok; i++)
            ok = strcmp(canonical[i], alt) == 0;
        if (!ok)
            return false;
    }
    return n > 0;
}

dg_status dg_kpath_weight_name(const char *tmpl, int layer, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = tmpl; *p; p++) {
        char num[16];
        const char *ins = NULL;
        if (p[0] == '{' && p[1] == 'L' && p[2] == '}') {
            snprintf(num, sizeof num, "%d", layer);
            ins = num;
            p += 2;
        }
        const char *s = ins ? ins : p;
        size_t len = ins ? strlen(ins) : 1;
        if (o + len + 1 > out_size)
            return dg_fail(DG_E_FORMAT, "weight template \"%s\": resolved name too long", tmpl);
        memcpy(out + o, s, len);
        o += len;
    }
    out[o] = 0;
    return DG_OK;
}

const char *dg_kp_section_name(enum dg_kp_section_id s)
{
    static const char *const names[] = {"preLayer", "decode.steps", "prefill.steps", "postLayer", "sampling"};
    return (unsigned)s < DG_KS_COUNT ? names[s] : "?";
}

void dg_kpath_free(struct dg_kpath *p)
{
    for (int s = 0; s < DG_KS_COUNT; s++) {
        free(p->sec[s].steps);
        p->sec[s].steps = NULL;
        p->sec[s].n_steps = 0;
    }
}

/* ---- parsing ---- */

static dg_status get_str(const char *file, const char *field, const cJSON *v, char *dst, size_t n)
{
    if (!cJSON_IsString(v))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected a string", file, field);
    if (strlen(v->valuestring) >= n)
        return dg_fail(DG_E_FORMAT, "%s: %s: \"%.40s...\" is longer than %zu characters", file, field,
                       v->valuestring, n - 1);
    strcpy(dst, v->valuestring);
    return DG_OK;
}

static dg_status get_slots(const char *file, const char *field, const cJSON *v, char dst[][DG_KP_NAME], int *n)
{
    *n = 0;
    if (!v)
        return DG_OK;
    if (cJSON_IsString(v)) {
        *n = 1;
        return get_str(file, field, v, dst[0], DG_KP_NAME);
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > DG_KP_MAX_IO)
        return dg_fail(DG_E_FORMAT, "%s: %s: expected a slot name or an array of at most %d", file, field, DG_KP_MAX_IO);
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char f[200];
        snprintf(f, sizeof f, "%s[%d]", field, *n);
        dg_status st = get_str(file, f, it, dst[*n], DG_KP_NAME);
        if (st)
            return st;
        (*n)++;
    }
    return DG_OK;
}

static dg_status parse_step(const char *file, const char *where, const cJSON *j, struct dg_kp_step *s)
{
    char f[200];
    dg_status st;
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(j))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected an object", file, where);
    static const char *const keys[] = {"op", "kernel", "entry", "constants", "weights", "input", "output",
                                       "role", "layers", "comment", NULL};
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        bool ok = false;
        for (int i = 0; keys[i] && !ok; i++)
            ok = strcmp(keys[i], it->string) == 0;
        if (!ok)
            return dg_fail(DG_E_FORMAT,
                           "%s: %s.%s: unknown field (known: op, kernel, entry, constants, weights, input, output, "
                           "role, layers, comment)",
                           file, where, it->string);
    }
    snprintf(f, sizeof f, "%s.op", where);
    if ((st = get_str(file, f, cJSON_GetObjectItemCaseSensitive(j, "op"), s->op, sizeof s->op)))
        return st;
    snprintf(f, sizeof f, "%s.kernel", where);
    if ((st = get_str(file, f, cJSON_GetObjectItemCaseSensitive(j, "kernel"), s->kernel, sizeof s->kernel)))
        return st;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "entry");
    snprintf(f, sizeof f, "%s.entry", where);
    if (e) {
        if ((st = get_str(file, f, e, s->entry, sizeof s->entry)))
            return st;
    } else {
        strcpy(s->entry, "main");
    }
    strcpy(s->entry_src, "path");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "constants");
    if (c && !cJSON_IsObject(c))
        return dg_fail(DG_E_FORMAT, "%s: %s.constants: expected an object", file, where);
    cJSON_ArrayForEach(it, c)
    {
        snprintf(f, sizeof f, "%s.constants.%s", where, it->string);
        if (s->n_consts >= DG_KP_MAX_CONSTS)
            return dg_fail(DG_E_FORMAT, "%s: %s: more than %d constants", file, f, DG_KP_MAX_CONSTS);
        struct dg_kp_const *k = &s->consts[s->n_consts++];
        if (strlen(it->string) >= sizeof k->name)
            return dg_fail(DG_E_FORMAT, "%s: %s: name too long", file, f);
        strcpy(k->name, it->string);
        if (cJSON_IsNumber(it)) {
            if (it->valuedouble == (double)(long long)it->valuedouble)
                snprintf(k->value, sizeof k->value, "%lld", (long long)it->valuedouble);
            else
                snprintf(k->value, sizeof k->value, "%.9g", it->valuedouble);
        } else if (cJSON_IsBool(it)) {
            strcpy(k->value, cJSON_IsTrue(it) ? "1" : "0");
        } else if ((st = get_str(file, f, it, k->value, sizeof k->value))) {
            return st;
        }
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "weights");
    snprintf(f, sizeof f, "%s.weights", where);
    if (cJSON_IsString(w)) {
        s->n_weights = 1;
        strcpy(s->weights[0].role, "weight");
        if ((st = get_str(file, f, w, s->weights[0].tmpl, sizeof s->weights[0].tmpl)))
            return st;
    } else if (cJSON_IsObject(w)) {
        cJSON_ArrayForEach(it, w)
        {
            char wf[260];
            snprintf(wf, sizeof wf, "%s.%s", f, it->string);
            if (s->n_weights >= DG_KP_MAX_WEIGHTS)
                return dg_fail(DG_E_FORMAT, "%s: %s: more than %d weights", file, wf, DG_KP_MAX_WEIGHTS);
            struct dg_kp_weight *kw = &s->weights[s->n_weights++];
            if (strlen(it->string) >= sizeof kw->role)
                return dg_fail(DG_E_FORMAT, "%s: %s: role name too long", file, wf);
            strcpy(kw->role, it->string);
            if ((st = get_str(file, wf, it, kw->tmpl, sizeof kw->tmpl)))
                return st;
        }
    } else if (w) {
        return dg_fail(DG_E_FORMAT, "%s: %s: expected a tensor name template or an object of role: template", file, f);
    }
    snprintf(f, sizeof f, "%s.input", where);
    if ((st = get_slots(file, f, cJSON_GetObjectItemCaseSensitive(j, "input"), s->input, &s->n_input)))
        return st;
    snprintf(f, sizeof f, "%s.output", where);
    if ((st = get_slots(file, f, cJSON_GetObjectItemCaseSensitive(j, "output"), s->output, &s->n_output)))
        return st;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "role");
    snprintf(f, sizeof f, "%s.role", where);
    if (r) {
        if ((st = get_str(file, f, r, s->role, sizeof s->role)))
            return st;
    } else if (s->n_weights > 0) {
        /* default role: the last component of the first weight ("q_proj", "input_layernorm") */
        const char *t = s->weights[0].tmpl, *dot = strrchr(t, '.');
        const char *base = dot ? dot + 1 : t;
        if (strcmp(base, "bias") == 0 && dot > t) { /* "x.bias": use x */
            const char *p = dot - 1;
            while (p > t && *p != '.')
                p--;
            snprintf(s->role, sizeof s->role, "%.*s", (int)(dot - p - (*p == '.')), p + (*p == '.'));
        } else {
            snprintf(s->role, sizeof s->role, "%.*s", (int)strcspn(base, "|"), base);
        }
    } else {
        snprintf(s->role, sizeof s->role, "%s", s->op);
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "layers");
    if (l) {
        static const char *const ln[] = {"all", "sliding", "full", "dense", "moe"};
        char lv[16];
        snprintf(f, sizeof f, "%s.layers", where);
        if ((st = get_str(file, f, l, lv, sizeof lv)))
            return st;
        int li = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(ln[i], lv) == 0)
                li = i;
        if (li < 0)
            return dg_fail(DG_E_FORMAT, "%s: %s: \"%s\" is not a layer set (known: all, sliding, full, dense, moe)",
                           file, f, lv);
        s->layers = (enum dg_kp_layers)li;
    }
    return DG_OK;
}

static dg_status parse_section(const char *file, const char *name, const cJSON *arr, struct dg_kp_section *sec)
{
    if (!arr)
        return DG_OK;
    if (!cJSON_IsArray(arr))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected an array of steps", file, name);
    int n = cJSON_GetArraySize(arr);
    if (n > 256)
        return dg_fail(DG_E_FORMAT, "%s: %s: %d steps (at most 256)", file, name, n);
    sec->steps = calloc((size_t)(n ? n : 1), sizeof *sec->steps);
    if (!sec->steps)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        char where[80];
        snprintf(where, sizeof where, "%s[%d]", name, sec->n_steps);
        dg_status st = parse_step(file, where, it, &sec->steps[sec->n_steps]);
        if (st)
            return st;
        sec->n_steps++;
    }
    return DG_OK;
}

/* ---- validation ---- */

static void list_known_kernels(const struct dg_kp_registry *reg, char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; i < reg->n_kernels; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", i ? ", " : "", reg->kernels[i].name);
}

static bool knob_value_nonzero(const struct dg_kp_step *s, const struct dg_kp_kernel *k, const char *knob)
{
    for (int i = 0; i < s->n_consts; i++)
        if (strcmp(s->consts[i].name, knob) == 0)
            return strcmp(s->consts[i].value, "0") != 0;
    const struct dg_kp_knob *kn = dg_kp_knob_find(k, knob);
    return kn && strcmp(kn->def, "0") != 0;
}

static bool is_value_ok(const char *v)
{
    if (v[0] == '$') /* hparam reference, resolved by the executor */
        return v[1] != 0;
    char *end;
    strtod(v, &end);
    return *v && *end == 0;
}

struct written {
    char names[32][DG_KP_NAME];
    int n;
};

static bool was_written(const struct written *w, const char *s)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->names[i], s) == 0)
            return true;
    return false;
}

static void mark_written(struct written *w, const char *s)
{
    if (!was_written(w, s) && w->n < 32)
        snprintf(w->names[w->n++], DG_KP_NAME, "%s", s);
}

static dg_status check_step(const char *file, const char *where, const struct dg_kp_step *s, bool per_layer,
                            const struct dg_kp_registry *reg, const struct dg_kp_caps *caps, struct written *w)
{
    char known[2048];
    const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, s->kernel);
    if (!k) {
        list_known_kernels(reg, known, sizeof known);
        return dg_fail(DG_E_FORMAT, "%s: %s.kernel: \"%s\" is not in the registry (known: %s)", file, where, s->kernel,
                       known);
    }
    bool op_ok = false;
    for (int i = 0; i < k->n_ops; i++)
        op_ok |= strcmp(k->ops[i], s->op) == 0;
    if (!op_ok) {
        known[0] = 0;
        for (int i = 0; i < k->n_ops; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", k->ops[i]);
        return dg_fail(DG_E_FORMAT, "%s: %s.op: \"%s\" is not an op of kernel %s (known: %s)", file, where, s->op,
                       k->name, known);
    }
    const struct dg_kp_entry *e = dg_kp_entry_find(k, s->entry);
    if (!e) {
        known[0] = 0;
        for (int i = 0; i < k->n_entries; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", k->entries[i].name);
        return dg_fail(DG_E_FORMAT, "%s: %s.entry: \"%s\" is not an entry of kernel %s (known: %s)", file, where,
                       s->entry, k->name, known);
    }
    for (int r = 0; caps && r < e->n_requires; r++)
        if (strcmp(e->requires[r], "subgroup") == 0 && !caps->subgroup)
            return dg_fail(DG_E_UNSUPPORTED,
                           "%s: %s.entry: \"%s\" of kernel %s requires subgroup operations, which this device lacks",
                           file, where, s->entry, k->name);
    for (int i = 0; i < s->n_consts; i++) {
        const struct dg_kp_knob *kn = dg_kp_knob_find(k, s->consts[i].name);
        if (!kn) {
            known[0] = 0;
            for (int j = 0, c = 0; j < k->n_knobs; j++)
                if (!k->knobs[j].is_auto)
                    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", c++ ? ", " : "",
                             k->knobs[j].name);
            return dg_fail(DG_E_FORMAT, "%s: %s.constants.%s: not a knob of kernel %s (known: %s)", file, where,
                           s->consts[i].name, k->name, known);
        }
        if (kn->is_auto)
            return dg_fail(DG_E_FORMAT,
                           "%s: %s.constants.%s: set by the executor from the model; a path cannot set it", file,
                           where, s->consts[i].name);
        if (!is_value_ok(s->consts[i].value))
            return dg_fail(DG_E_FORMAT, "%s: %s.constants.%s: \"%s\" is not a number or a $hparam reference", file,
                           where, s->consts[i].name, s->consts[i].value);
    }
    /* weights: each role must be a weight binding; every required weight binding must be given */
    for (int i = 0; i < s->n_weights; i++) {
        const struct dg_kp_binding *b = NULL;
        for (int j = 0; j < k->n_bindings; j++)
            if (k->bindings[j].kind == DG_KB_WEIGHT && strcmp(k->bindings[j].role, s->weights[i].role) == 0)
                b = &k->bindings[j];
        if (!b) {
            known[0] = 0;
            for (int j = 0, c = 0; j < k->n_bindings; j++)
                if (k->bindings[j].kind == DG_KB_WEIGHT)
                    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", c++ ? ", " : "",
                             k->bindings[j].role);
            return dg_fail(DG_E_FORMAT, "%s: %s.weights.%s: not a weight role of kernel %s (known: %s)", file, where,
                           s->weights[i].role, k->name, known);
        }
        if (!dg_kpath_weight_name_known(s->weights[i].tmpl))
            return dg_fail(DG_E_FORMAT,
                           "%s: %s.weights.%s: \"%s\" is not a canonical tensor name (see model.h: embed_tokens, "
                           "lm_head, norm, layer.{L}.self_attn.q_proj, layer.{L}.mlp.up_proj, ...)",
                           file, where, s->weights[i].role, s->weights[i].tmpl);
        bool has_l = strstr(s->weights[i].tmpl, "{L}") != NULL;
        if (has_l && !per_layer)
            return dg_fail(DG_E_FORMAT, "%s: %s.weights.%s: \"%s\" uses {L} outside a per-layer section", file, where,
                           s->weights[i].role, s->weights[i].tmpl);
    }
    for (int j = 0; j < k->n_bindings; j++) {
        const struct dg_kp_binding *b = &k->bindings[j];
        if (b->kind != DG_KB_WEIGHT || b->optional)
            continue;
        bool given = false;
        for (int i = 0; i < s->n_weights; i++)
            given |= strcmp(s->weights[i].role, b->role) == 0;
        if (!given)
            return dg_fail(DG_E_FORMAT, "%s: %s.weights: kernel %s needs a weight for role \"%s\"", file, where,
                           k->name, b->role);
    }
    /* slots: inputs cover input+inout bindings in order, outputs cover output+inout bindings in order */
    int n_in = 0, n_out = 0;
    for (int j = 0; j < k->n_bindings; j++) {
        n_in += k->bindings[j].kind == DG_KB_INPUT || k->bindings[j].kind == DG_KB_INOUT;
        n_out += k->bindings[j].kind == DG_KB_OUTPUT || k->bindings[j].kind == DG_KB_INOUT;
    }
    char in[DG_KP_MAX_IO][DG_KP_NAME], out[DG_KP_MAX_IO][DG_KP_NAME];
    int si = s->n_input, so = s->n_output;
    memcpy(in, s->input, sizeof in);
    memcpy(out, s->output, sizeof out);
    if (si == 0 && n_in == 1) {
        strcpy(in[0], "hidden_state");
        si = 1;
    }
    if (so == 0 && n_out == 1) {
        strcpy(out[0], "hidden_state");
        so = 1;
    }
    if (si != n_in)
        return dg_fail(DG_E_FORMAT, "%s: %s.input: kernel %s reads %d slot(s), the step names %d", file, where, k->name,
                       n_in, si);
    if (so != n_out)
        return dg_fail(DG_E_FORMAT, "%s: %s.output: kernel %s writes %d slot(s), the step names %d", file, where,
                       k->name, n_out, so);
    for (int i = 0; i < si; i++)
        if (!dg_kp_slot_known(in[i])) {
            known[0] = 0;
            for (int j = 0; slots[j].name; j++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", j ? ", " : "", slots[j].name);
            return dg_fail(DG_E_FORMAT, "%s: %s.input[%d]: \"%s\" is not a slot (known: %s)", file, where, i, in[i],
                           known);
        }
    for (int i = 0; i < so; i++)
        if (!dg_kp_slot_known(out[i])) {
            known[0] = 0;
            for (int j = 0; slots[j].name; j++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", j ? ", " : "", slots[j].name);
            return dg_fail(DG_E_FORMAT, "%s: %s.output[%d]: \"%s\" is not a slot (known: %s)", file, where, i, out[i],
                           known);
        }
    /* inout bindings: the same slot must appear in both lists at the matching position */
    for (int j = 0, ii = 0, oo = 0; j < k->n_bindings; j++) {
        enum dg_kp_bind_kind kd = k->bindings[j].kind;
        if (kd == DG_KB_INOUT && strcmp(in[ii], out[oo]) != 0)
            return dg_fail(DG_E_FORMAT, "%s: %s: kernel %s updates \"%s\" in place: input[%d] \"%s\" and output[%d] "
                           "\"%s\" must be the same slot", file, where, k->name, k->bindings[j].role, ii, in[ii], oo, out[oo]);
        ii += kd == DG_KB_INPUT || kd == DG_KB_INOUT;
        oo += kd == DG_KB_OUTPUT || kd == DG_KB_INOUT;
    }
    for (int i = 0; i < si; i++)
        if (!was_written(w, in[i]))
            return dg_fail(DG_E_FORMAT, "%s: %s.input[%d]: slot \"%s\" is read before any step writes it", file, where,
                           i, in[i]);
    if (k->reads_output_when[0] && knob_value_nonzero(s, k, k->reads_output_when))
        for (int i = 0; i < so; i++)
            if (!was_written(w, out[i]))
                return dg_fail(DG_E_FORMAT, "%s: %s.output[%d]: slot \"%s\" is accumulated into (%s) before any step "
                               "writes it", file, where, i, out[i], k->reads_output_when);
    for (int i = 0; i < so; i++)
        mark_written(w, out[i]);
    return DG_OK;
}

static dg_status check_sections(const struct dg_kpath *p, const struct dg_kp_registry *reg,
                                const struct dg_kp_caps *caps, enum dg_kp_section_id layer_sec)
{
    struct written w = {0};
    mark_written(&w, "token_ids");
    const enum dg_kp_section_id order[] = {DG_KS_PRE, layer_sec, DG_KS_POST, DG_KS_SAMPLING};
    for (int oi = 0; oi < 4; oi++) {
        const struct dg_kp_section *sec = &p->sec[order[oi]];
        for (int i = 0; i < sec->n_steps; i++) {
            char where[80];
            snprintf(where, sizeof where, "%s[%d]", dg_kp_section_name(order[oi]), i);
            dg_status st = check_step(p->file, where, &sec->steps[i], order[oi] == layer_sec, reg, caps, &w);
            if (st)
                return st;
        }
    }
    return DG_OK;
}

dg_status dg_kpath_validate(const struct dg_kpath *p, const struct dg_kp_registry *reg,
                            const struct dg_kp_caps *caps)
{
    if (p->sec[DG_KS_DECODE].n_steps == 0)
        return dg_fail(DG_E_FORMAT, "%s: decode.steps: a path needs at least one per-layer decode step", p->file);
    dg_status st = check_sections(p, reg, caps, DG_KS_DECODE);
    if (!st)
        st = check_sections(p, reg, caps, DG_KS_PREFILL);
    return st;
}

dg_status dg_kpath_parse(const char *file, const char *json, const struct dg_kp_registry *reg,
                         const struct dg_kp_caps *caps, struct dg_kpath *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->file, sizeof out->file, "%s", file);
    strcpy(out->kv_dtype, "f16");
    cJSON *root = cJSON_Parse(json);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: not valid JSON (near \"%.30s\")", file,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    dg_status st = DG_OK;
    const cJSON *it;
    if (!cJSON_IsObject(root)) {
        st = dg_fail(DG_E_FORMAT, "%s: expected a JSON object", file);
        goto out;
    }
    static const char *const keys[] = {"id", "name", "description", "family", "weightFormat", "kvDtype", "fused",
                                       "fallback", "preLayer", "decode", "prefill", "postLayer", "sampling",
                                       "comment", NULL};
    cJSON_ArrayForEach(it, root)
    {
        bool ok = false;
        for (int i = 0; keys[i] && !ok; i++)
            ok = strcmp(keys[i], it->string) == 0;
        if (!ok) {
            st = dg_fail(DG_E_FORMAT,
                         "%s: %s: unknown field (known: id, name, description, family, weightFormat, kvDtype, fused, "
                         "fallback, preLayer, decode, prefill, postLayer, sampling, comment)",
                         file, it->string);
            goto out;
        }
    }
    if ((st = get_str(file, "id", cJSON_GetObjectItemCaseSensitive(root, "id"), out->id, sizeof out->id)))
        goto out;
    struct {
        const char *key;
        char *dst;
        size_t n;
    } opt[] = {{"name", out->name, sizeof out->name},
               {"description", out->description, sizeof out->description},
               {"family", out->family, sizeof out->family},
               {"weightFormat", out->weight_format, sizeof out->weight_format},
               {"kvDtype", out->kv_dtype, sizeof out->kv_dtype},
               {"fallback", out->fallback, sizeof out->fallback}};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, opt[i].key);
        if (v && (st = get_str(file, opt[i].key, v, opt[i].dst, opt[i].n)))
            goto out;
    }
    if (!out->weight_format[0])
        strcpy(out->weight_format, "f32");
    static const char *const wf[] = {"f32", "f16", "q8_0", "q4_k", "q6_k", "q5_0", "mxfp4", NULL};
    bool wf_ok = false;
    for (int i = 0; wf[i]; i++)
        wf_ok |= strcmp(wf[i], out->weight_format) == 0;
    if (!wf_ok) {
        st = dg_fail(DG_E_FORMAT, "%s: weightFormat: \"%s\" is not supported (known: f32, f16, q8_0, q4_k, q6_k, "
                     "q5_0, mxfp4)", file, out->weight_format);
        goto out;
    }
    if (strcmp(out->kv_dtype, "f16") != 0 && strcmp(out->kv_dtype, "f32") != 0) {
        st = dg_fail(DG_E_FORMAT, "%s: kvDtype: \"%s\" (expected f16 or f32)", file, out->kv_dtype);
        goto out;
    }
    const cJSON *fu = cJSON_GetObjectItemCaseSensitive(root, "fused");
    if (fu && !cJSON_IsBool(fu)) {
        st = dg_fail(DG_E_FORMAT, "%s: fused: expected true or false", file);
        goto out;
    }
    out->fused = cJSON_IsTrue(fu);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decode");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "prefill");
    if (dec && !cJSON_IsObject(dec)) {
        st = dg_fail(DG_E_FORMAT, "%s: decode: expected an object with \"steps\"", file);
        goto out;
    }
    if (pre && !cJSON_IsObject(pre)) {
        st = dg_fail(DG_E_FORMAT, "%s: prefill: expected an object with \"steps\"", file);
        goto out;
    }
    if ((st = parse_section(file, "preLayer", cJSON_GetObjectItemCaseSensitive(root, "preLayer"), &out->sec[DG_KS_PRE])) ||
        (st = parse_section(file, "decode.steps", cJSON_GetObjectItemCaseSensitive(dec, "steps"),
                            &out->sec[DG_KS_DECODE])) ||
        (st = parse_section(file, "prefill.steps", cJSON_GetObjectItemCaseSensitive(pre, "steps"),
                            &out->sec[DG_KS_PREFILL])) ||
        (st = parse_section(file, "postLayer", cJSON_GetObjectItemCaseSensitive(root, "postLayer"),
                            &out->sec[DG_KS_POST])) ||
        (st = parse_section(file, "sampling", cJSON_GetObjectItemCaseSensitive(root, "sampling"),
                            &out->sec[DG_KS_SAMPLING])))
        goto out;
    /* prefill defaults to the decode steps (with the plan's prefill variants applied later) */
    if (!pre) {
        struct dg_kp_section *d = &out->sec[DG_KS_DECODE], *pf = &out->sec[DG_KS_PREFILL];
        pf->steps = calloc((size_t)(d->n_steps ? d->n_steps : 1), sizeof *pf->steps);
        if (!pf->steps) {
            st = dg_fail(DG_E_NOMEM, "%s: out of memory", file);
            goto out;
        }
        memcpy(pf->steps, d->steps, sizeof *d->steps * (size_t)d->n_steps);
        pf->n_steps = d->n_steps;
    }
    st = dg_kpath_validate(out, reg, caps);
out:
    cJSON_Delete(root);
    if (st)
        dg_kpath_free(out);
    return st;
}

dg_status dg_kpath_load(const char *file, const struct dg_kp_registry *reg, const struct dg_kp_caps *caps,
                        struct dg_kpath *out)
{
    char *text = dg_kp_slurp(file, 4u << 20);
    if (!text) {
        memset(out, 0, sizeof *out);
        return dg_fail(DG_E_IO, "%s: cannot read the kernel path (missing or larger than 4 MiB)", file);
    }
    dg_status st = dg_kpath_parse(file, text, reg, caps, out);
    free(text);
    return st;
}

dg_status dg_kpath_resolve_file(const char *id_or_file, char *out, size_t out_size)
{
    size_t n = strlen(id_or_file);
    if (strchr(id_or_file, '/') || (n > 5 && strcmp(id_or_file + n - 5, ".json") == 0)) {
        if ((size_t)snprintf(out, out_size, "%s", id_or_file) >= out_size)
            return dg_fail(DG_E_USAGE, "kernel path file name too long");
        return DG_OK;
    }
    for (const char *p = id_or_file; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return dg_fail(DG_E_USAGE, "kernel path id \"%s\": only letters, digits, '-', '_' and '.' are allowed",
                           id_or_file);
    if ((size_t)snprintf(out, out_size, "%s/kernel-paths/%s.json", dg_kp_datadir(), id_or_file) >= out_size)
        return dg_fail(DG_E_USAGE, "kernel path id too long");
    return DG_OK;
}
