/* plan.c: kernel plans. A plan is built from a profile, then a config file, then the command line (each
 * later source overrides the earlier), picks the kernel path for a model and the variant of each step, and
 * remembers who set every choice so --print-plan can say so. */
/* snprintf truncation into fixed name fields is intended (lengths are validated where it matters). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kpath/kpath.h"

char *dg_kp_slurp(const char *path, size_t max);

void dg_kp_choice_set(struct dg_kp_choice *c, const char *value, const char *src)
{
    snprintf(c->value, sizeof c->value, "%s", value);
    snprintf(c->src, sizeof c->src, "%s", src);
}

void dg_kplan_init(struct dg_kplan *plan)
{
    memset(plan, 0, sizeof *plan);
    dg_kp_choice_set(&plan->q4k_strategy, "auto", "default");
    dg_kp_choice_set(&plan->strict, "false", "default");
    dg_kp_choice_set(&plan->tuner, "true", "default");
    dg_kp_choice_set(&plan->qkv_fusion, "false", "default");
    dg_kp_choice_set(&plan->image_reads, "false", "default");
    plan->fused_allowed = true;
}

void dg_kplan_veto_fused(struct dg_kplan *plan, const char *reason)
{
    plan->fused_allowed = false;
    snprintf(plan->fused_veto_reason, sizeof plan->fused_veto_reason, "%s", reason);
}

static struct dg_kp_variants *variants_for(struct dg_kplan *plan, const char *key)
{
    for (int i = 0; i < plan->n_variants; i++)
        if (strcmp(plan->variants[i].key, key) == 0)
            return &plan->variants[i].v;
    if (plan->n_variants >= DG_KP_MAX_VARIANTS)
        return NULL;
    struct dg_kp_opvariants *ov = &plan->variants[plan->n_variants++];
    memset(ov, 0, sizeof *ov);
    snprintf(ov->key, sizeof ov->key, "%s", key);
    return &ov->v;
}

static const struct dg_kp_variants *variants_find(const struct dg_kplan *plan, const char *op)
{
    const char *key = op;
    if (strcmp(op, "lm_head") == 0 || strcmp(op, "ffn_gate_up") == 0)
        key = "matmul";
    for (int i = 0; i < plan->n_variants; i++)
        if (strcmp(plan->variants[i].key, key) == 0)
            return &plan->variants[i].v;
    return NULL;
}

static const char *const profiles[] = {"fast", "safe", "debug", "fused", "llvmpipe", "nvidia", "mali", "v3d", "adreno", NULL};

/* wformat: the path weight format the preference is for, op: the step op ("" any) */
static void add_knob_pref_where(struct dg_kplan *plan, const char *wformat, const char *op, const char *kernel,
                                const char *entry, const char *name, const char *value)
{
    if (plan->n_knob_prefs == (int)(sizeof plan->knob_prefs / sizeof plan->knob_prefs[0]))
        return;
    struct dg_kp_knob_pref *k = &plan->knob_prefs[plan->n_knob_prefs++];
    snprintf(k->wformat, sizeof k->wformat, "%s", wformat);
    snprintf(k->op, sizeof k->op, "%s", op);
    snprintf(k->kernel, sizeof k->kernel, "%s", kernel);
    snprintf(k->entry, sizeof k->entry, "%s", entry);
    snprintf(k->c.name, sizeof k->c.name, "%s", name);
    snprintf(k->c.value, sizeof k->c.value, "%s", value);
}

static void add_knob_pref_for(struct dg_kplan *plan, const char *wformat, const char *kernel, const char *entry,
                              const char *name, const char *value)
{
    add_knob_pref_where(plan, wformat, "", kernel, entry, name, value);
}

static void add_knob_pref(struct dg_kplan *plan, const char *kernel, const char *entry, const char *name,
                          const char *value)
{
    add_knob_pref_where(plan, "", "", kernel, entry, name, value);
}

/* Index of the step's constant `name`, or -1. */
static int const_index(const struct dg_kp_step *s, const char *name)
{
    for (int c = 0; c < s->n_consts; c++)
        if (strcmp(s->consts[c].name, name) == 0)
            return c;
    return -1;
}

/* Sets the plan's forced knob values ("knobs") on the step, replacing whatever set them before (a tuner
 * value it replaces is no longer the tuner's). */
static void apply_forced_knobs(const struct dg_kplan *plan, struct dg_kp_step *s)
{
    for (int i = 0; i < plan->n_knob_force; i++) {
        const struct dg_kp_knob_force *f = &plan->knob_force[i];
        if (strcmp(f->kernel, s->kernel) || strcmp(f->entry, s->entry))
            continue;
        int c = const_index(s, f->c.name);
        if (c < 0) {
            if (s->n_consts == DG_KP_MAX_CONSTS)
                continue; /* no room: the step keeps its value (a path step with 16 constants) */
            c = s->n_consts++;
        }
        s->consts[c] = f->c;
        s->tuned_consts &= ~(1u << c);
    }
}

/* "knobs": {"<kernel>": {"<entry>": {"<KNOB>": "value" or number}}} */
static dg_status parse_knobs(struct dg_kplan *plan, const cJSON *o, const char *src)
{
    if (!cJSON_IsObject(o))
        return dg_fail(DG_E_FORMAT, "%s: knobs: expected an object {\"kernel\": {\"entry\": {\"KNOB\": value}}}", src);
    const cJSON *k, *e, *v;
    cJSON_ArrayForEach(k, o)
    {
        if (!cJSON_IsObject(k))
            return dg_fail(DG_E_FORMAT, "%s: knobs.%s: expected an object of entries", src, k->string);
        cJSON_ArrayForEach(e, k)
        {
            if (!cJSON_IsObject(e))
                return dg_fail(DG_E_FORMAT, "%s: knobs.%s.%s: expected an object of knob values", src, k->string,
                               e->string);
            cJSON_ArrayForEach(v, e)
            {
                char val[DG_KP_NAME];
                if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) < sizeof val)
                    snprintf(val, sizeof val, "%s", v->valuestring);
                else if (cJSON_IsNumber(v))
                    snprintf(val, sizeof val, "%.17g", v->valuedouble);
                else
                    return dg_fail(DG_E_FORMAT, "%s: knobs.%s.%s.%s: expected a number or a non-empty string", src,
                                   k->string, e->string, v->string);
                if (strlen(k->string) >= DG_KP_NAME || strlen(e->string) >= DG_KP_NAME ||
                    strlen(v->string) >= sizeof plan->knob_force[0].c.name)
                    return dg_fail(DG_E_FORMAT, "%s: knobs.%s.%s.%s: name too long", src, k->string, e->string, v->string);
                int i = 0;
                while (i < plan->n_knob_force &&
                       (strcmp(plan->knob_force[i].kernel, k->string) || strcmp(plan->knob_force[i].entry, e->string) ||
                        strcmp(plan->knob_force[i].c.name, v->string)))
                    i++;
                if (i == plan->n_knob_force) {
                    if (i == (int)(sizeof plan->knob_force / sizeof plan->knob_force[0]))
                        return dg_fail(DG_E_FORMAT, "%s: knobs: more than %d knob values", src, i);
                    plan->n_knob_force++;
                }
                struct dg_kp_knob_force *f = &plan->knob_force[i];
                snprintf(f->kernel, sizeof f->kernel, "%s", k->string);
                snprintf(f->entry, sizeof f->entry, "%s", e->string);
                snprintf(f->c.name, sizeof f->c.name, "%s", v->string);
                snprintf(f->c.value, sizeof f->c.value, "%s", val);
                snprintf(f->src, sizeof f->src, "%s", src);
            }
        }
    }
    return DG_OK;
}

/* Adds the profile's preferred knob values the step does not set itself; wformat is the path's weight
 * format. */
static void apply_knob_prefs(const struct dg_kplan *plan, const struct dg_kp_registry *reg, const char *wformat,
                             struct dg_kp_step *s)
{
    const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, s->kernel);
    for (int i = 0; k && i < plan->n_knob_prefs; i++) {
        const struct dg_kp_knob_pref *kp = &plan->knob_prefs[i];
        if (strcmp(kp->kernel, s->kernel) || strcmp(kp->entry, s->entry) || !dg_kp_knob_find(k, kp->c.name) ||
            (kp->wformat[0] && strcmp(kp->wformat, wformat)) || (kp->op[0] && strcmp(kp->op, s->op)))
            continue;
        if (const_index(s, kp->c.name) < 0 && s->n_consts < DG_KP_MAX_CONSTS)
            s->consts[s->n_consts++] = kp->c;
    }
}

void dg_kplan_step_prefs(const struct dg_kplan *plan, const struct dg_kp_registry *reg, const char *wformat,
                         struct dg_kp_step *s)
{
    apply_knob_prefs(plan, reg, wformat, s);
}

dg_status dg_kplan_apply_profile(struct dg_kplan *plan, const char *profile)
{
    bool known = false;
    for (int i = 0; profiles[i]; i++)
        known |= strcmp(profiles[i], profile) == 0;
    if (!known)
        return dg_fail(DG_E_USAGE,
                       "--kernel-profile: \"%s\" is not a profile (known: fast, safe, debug, fused, llvmpipe, nvidia, "
                       "mali, v3d, adreno)",
                       profile);
    char src[DG_KP_NAME];
    snprintf(src, sizeof src, "profile %s", profile);
    dg_kp_choice_set(&plan->profile, profile, plan->profile.src[0] ? plan->profile.src : src);
    struct dg_kp_variants *mm = variants_for(plan, "matmul"), *at = variants_for(plan, "attention");
    if (!mm || !at)
        return dg_fail(DG_E_INTERNAL, "kernel plan: too many variant sets");
    /* Prefill always benefits from reusing each weight row across tokens. */
    dg_kp_choice_set(&mm->prefill, "tiled", src);
    if (strcmp(profile, "fast") == 0 || strcmp(profile, "fused") == 0) {
        dg_kp_choice_set(&plan->q4k_strategy, "fused_q4k", src);
    } else if (strcmp(profile, "safe") == 0) {
        dg_kp_choice_set(&plan->q4k_strategy, "dequant_f16", src);
        dg_kp_choice_set(&mm->def, "main", src);
        dg_kp_choice_set(&at->def, "main", src);
    } else if (strcmp(profile, "debug") == 0) {
        dg_kp_choice_set(&plan->q4k_strategy, "dequant_f32", src);
        dg_kp_choice_set(&plan->kv_dtype, "f32", src);
        dg_kp_choice_set(&plan->strict, "true", src);
        dg_kp_choice_set(&mm->def, "main", src);
        dg_kp_choice_set(&at->def, "main", src);
    } else if (strcmp(profile, "llvmpipe") == 0) {
        /* measured: barriers cost most on a CPU rasterizer, one invocation per row avoids them */
        dg_kp_choice_set(&mm->decode, "row", src);
        dg_kp_choice_set(&at->def, "main", src);
        /* decode: rope_kv folded into attention (attention_fused with one workgroup a head, so no
         * workgroup waits on another): one dispatch less a layer, each ~65 us of CPU on llvmpipe */
        dg_kp_choice_set(&at->decode, "fused", src);
        /* q, k and v in one dispatch: two dispatches less a layer, and the small k/v GEMVs no longer run
         * on one core (k and v of sotu-6m are 128 rows: one or two workgroups) */
        dg_kp_choice_set(&plan->qkv_fusion, "true", src);
        /* the row GEMVs read weights, x and the fused norm's weights through image buffers: Mesa runs an SSBO
         * load lane by lane with a branch each, an image load as one vector fetch. sotu-6m Q8_0 decode
         * (`profile -p 8 -n 32`, 5 alternating runs, best) 7.35 -> 3.41 ms a token (2026-12-05) */
        dg_kp_choice_set(&plan->image_reads, "true", src);
        add_knob_pref(plan, "attention_fused", "main", "NSPLIT", "1");
        add_knob_pref(plan, "attention_fused", "main", "CHUNK", "128");
        /* 32 invocations (4 SIMD rows of llvmpipe's 8) measured best for it: `eval --decode` of 400 tokens
         * on sotu-6m Q8_0, user CPU 4.66 / 4.84 / 4.90 s against 5.14 / 5.85 / 5.06 s at 64 (2026-12-01,
         * load average 4 from other work); 2 or 4 splits a head were slower (17-29% of decode against 17-19%) */
        add_knob_pref(plan, "attention_fused", "main", "WG_SIZE", "32");
        add_knob_pref(plan, "attention_fused", "main", "VEC_V", "1");
        add_knob_pref(plan, "attention", "main", "VEC_V", "1");
        /* Four rows an invocation, each chunk of x (and of the fused norm's weights) loaded once for the
         * four: bench tg128 on sotu-6m (2026-12-01, load average 3-4 from other work) Q8_0 69-83 ->
         * 92-95 tok/s, Q4_K_M 68-72 -> 93-97 tok/s against one row; eight rows were slower (73-85 on Q8_0). */
        add_knob_pref(plan, "matmul", "row", "RPT", "4");
        add_knob_pref(plan, "ffn_gate_up", "row", "RPT", "4");
    } else if (strcmp(profile, "nvidia") == 0) {
        /* many SMs: split long-context attention across workgroups (flash-decoding) */
        dg_kp_choice_set(&mm->decode, "main", src);
        /* Decode attention: attention_fused (rope_kv, split attention and the last-workgroup combine in
         * one dispatch, 3 -> 1 dependent dispatches a layer). Measured on the H200 (2026-12-02, bench
         * tg128 -r 3 and -r 5, random-weight shapes) against split attention + attn_combine:
         * Llama-3.2-1B Q4_K_M 657 -> 681 / 653, Qwen3-0.6B Q4_K_M 498 -> 595 / 593, Llama-3.2-1B F16
         * 493 -> 512 / 515 tok/s; `dg-tests conf_` (with the fused-attention conformance cases) passed
         * there, so the driver honours the coherent partials + atomic counter ordering the combine needs. */
        dg_kp_choice_set(&at->decode, "fused", src);
        /* q, k and v in one dispatch where the three share a format (fused + this, same runs): 1B Q4_K_M
         * 663 / 679, Qwen3-0.6B 600 / 608, 1B F16 511 / 512 tok/s: the same within noise as fused alone,
         * with 116 -> 100 dispatches a token and the CPU's issue time 369 -> 235 us on the 1B Q4_K_M */
        dg_kp_choice_set(&plan->qkv_fusion, "true", src);
        dg_kp_choice_set(&plan->q4k_strategy, "fused_q4k", src);
        /* Measured on an H100 (bench-results/, Llama-3.2-1B shape, tg64): 256-thread GEMV workgroups of 8
         * rows (32 threads = one subgroup per row, so the reduction is one subgroupAdd) and 256-thread
         * norms: 218 -> 256 tok/s on Q4_K_M and 273 -> 357 tok/s on F16 against the 64x4 defaults. */
        /* except the LM head (128k rows), which reads faster at 16 rows a workgroup: tools/chain-bench.c
         * on the H200 (2026-12-03), the Llama-3.2-1B Q6_K head in the split layout, 256 threads, 2 rows a
         * thread: 101.0 -> 92.5 us (x staged in shared memory was slower there: 116.4 / 104.0 us) */
        add_knob_pref_where(plan, "", "lm_head", "matmul", "main", "ROWS_PER_WG", "16");
        add_knob_pref(plan, "matmul", "main", "WG_SIZE", "256");
        add_knob_pref(plan, "matmul", "main", "ROWS_PER_WG", "8");
        add_knob_pref(plan, "ffn_gate_up", "main", "WG_SIZE", "256");
        /* gate/up at 16 rows a workgroup: each workgroup's staging of x (XSH, H16) then serves twice the
         * weights. tools/chain-bench.c on the H200 (bench-results/2026-12-04-nvidia-h200-h16.txt, x staged):
         * 1B 8192x2048 16.2 -> 16.0 us, 8B 14336x4096 47.5 -> 43.4 us; with H16 16.7 -> 14.5 and 37.7 -> 34.1 */
        add_knob_pref(plan, "ffn_gate_up", "main", "ROWS_PER_WG", "16");
        add_knob_pref(plan, "rmsnorm", "main", "WG_SIZE", "256");
        /* Measured on an H200 (tools/gemv-variants.py sweep, Llama-3.2-1B shape Q4_K_M, tg128): two rows
         * per thread (RPT 2) share each x segment: 496 -> 507 tok/s, and F16 385 -> 400 tok/s; four rows
         * were slower (register pressure). */
        add_knob_pref(plan, "matmul", "main", "RPT", "2");
        add_knob_pref(plan, "ffn_gate_up", "main", "RPT", "2");
        /* x staged once a workgroup in shared memory (XSH) for gate/up, whose fused norm then reads no
         * norm weights per row group: H200 bench tg128 -r 3 (2026-12-02, untuned, same run): 1B Q4_K_M
         * 680 -> 719 tok/s, 8B Q4_K_M 170 -> 171; on the q/k/v/o/down projections as well 688 (the
         * ACCUMULATE projections are slower with it, tools/chain-bench.c), so not on those */
        add_knob_pref(plan, "ffn_gate_up", "main", "XSH", "1");
        /* and for the other GEMVs whose norm is fused (q, k, v, q/k/v as one), not the ACCUMULATE o and
         * down projections (XSH 2: staged only with HAS_NORM_IN; a fused q/k/v step takes the q step's
         * constants, so this covers matmul_qkv too). H200 bench tg128 -r 3 (2026-12-03, two
         * alternating runs each, untuned; bench-results/2026-12-03-nvidia-h200-xsh2-e2e.txt): 1B Q4_K_M
         * 760 / 774 -> 789 / 795 tok/s, 8B Q4_K_M 184 / 194 -> 198 / 200; tools/chain-bench.c: the 8B
         * q 4096x4096 with its norm 15.1 -> 11.1 us */
        add_knob_pref(plan, "matmul", "main", "XSH", "2");
        /* Q4_K GEMVs in f16 arithmetic where the device has it (H16, glsl/matmul.glsl; the f32 path where
         * it has not): gate/up everywhere, the matmul steps only without a fused norm and K <= 8192 (H16
         * 2). tools/chain-bench.c on the H200 (bench-results/2026-12-04-nvidia-h200-h16.txt, us, f32 ->
         * f16): 1B down 2048x8192 11.8 -> 9.9, o 2048x2048 5.8 -> 5.7, 8B gate/up 43.4 -> 34.1; the 8B
         * down 4096x14336 is slower (26.4 -> 32.9), and so is the 1B's norm-fused q (5.8 -> 6.6) where the
         * k (5.1 -> 4.9) and the 8B q (11.3 -> 10.6) gain little: the norm-fused steps stay f32. End to end
         * (1B Q4_K_M tg128, same machine, two A/B pairs): about +3%. Split Q6_K the same way
         * (bench-results/2026-12-04-nvidia-h200-h16-q6k.txt): the 1B LM head 92.3 -> 85.7 us, its Q6_K down
         * 12.3 -> 11.3; the 8B Q6_K down (K 14336, left out by H16 2) 27.5 -> 38.8; 1B tg128 810 -> 826 */
        add_knob_pref(plan, "ffn_gate_up", "main", "H16", "1");
        add_knob_pref(plan, "matmul", "main", "H16", "2");
        add_knob_pref(plan, "add_rmsnorm", "main", "WG_SIZE", "256");
        /* One 1024-invocation workgroup reads a 128k vocabulary in a few microseconds; the 64-wide
         * default took 200 us a token on the H100 (8% of a Llama-3.2-1B decode token). */
        add_knob_pref(plan, "argmax", "main", "WG_SIZE", "1024");
        /* Split decode attention over short blocks so a context of a few hundred keys already spreads
         * over all NSPLIT workgroups (with 128-key blocks a 128-key context ran on one of the 8). */
        add_knob_pref(plan, "attention", "split", "CHUNK", "16");
        add_knob_pref(plan, "attention", "split", "NSPLIT", "16");
        add_knob_pref(plan, "attention_fused", "main", "CHUNK", "16");
        add_knob_pref(plan, "attention_fused", "main", "NSPLIT", "16");
        /* and 128 invocations reading v as uvec4s of 8 halves (VEC_V): tools/replay-bench.c on the H200
         * (2026-12-04, Llama-3.2-1B shape Q4_K_M, us a token / of which attention_fused, at 64 -> 128
         * invocations with VEC_V): 1124 / 151 -> 1096 / 132 at position 64, 1365 / 286 -> 1240 / 209 at
         * 1000, 1959 / 957 -> 1592 / 536 at 3000; bench tg128 814 / 838 -> 863, Qwen3-0.6B 691 -> 726.
         * 8 splits were faster at position 64 (1080) and as slow as before from 1000 on; 256 invocations
         * matched 128 (bench-results/2026-12-04-nvidia-h200-attention-sweep.txt) */
        add_knob_pref(plan, "attention_fused", "main", "WG_SIZE", "128");
        add_knob_pref(plan, "attention_fused", "main", "VEC_V", "1");
        /* Prefill: the tiled entry with 128 threads of 16 tokens each, measured on the H200 (Llama-3.2-1B
         * shape Q4_K_M, pp512): 3274 tok/s at the defaults (64 x 8), 3633 at 128 x 8, 4621 at 128 x 16,
         * 4529 at 256 x 16, 3764 at 64 x 16; TM 32 with KS 512 exceeds the shared memory. */
        add_knob_pref(plan, "matmul", "tiled", "WG_SIZE", "128");
        add_knob_pref(plan, "matmul", "tiled", "TM", "16");
        add_knob_pref(plan, "ffn_gate_up", "tiled", "WG_SIZE", "128");
        add_knob_pref(plan, "ffn_gate_up", "tiled", "TM", "16");
        /* and two rows an invocation on f16 weights (each x vec4 from shared memory feeds both rows' FMAs):
         * pp512 on the 1B F16 shape 7698 / 7700 -> 11965 / 11931 tok/s (4 rows 10221, 2 rows at TM 8
         * 8646). Not on the quantized paths: Q4_K at 2 rows fell to 1072 tok/s against 7935 (8B Q4_K_M
         * 1297 -> 154), and to 3541 against 9129 once its scale decode used selects, most likely its
         * decoded chunks spilling out of the registers.
         * (bench-results/2026-12-03-nvidia-h200-tiled-rpt.txt, ...-tiled-rpt-q4k.txt) */
        add_knob_pref_for(plan, "f16", "matmul", "tiled", "RPT", "2");
        add_knob_pref_for(plan, "f16", "ffn_gate_up", "tiled", "RPT", "2");
        /* q/k/v fused in one prefill dispatch (qkvFusion) take the same tile shape as matmul */
        add_knob_pref(plan, "matmul_qkv", "tiled", "WG_SIZE", "128");
        add_knob_pref(plan, "matmul_qkv", "tiled", "TM", "16");
        add_knob_pref(plan, "matmul_qk", "tiled", "WG_SIZE", "128");
        add_knob_pref(plan, "matmul_qk", "tiled", "TM", "16");
        add_knob_pref_for(plan, "f16", "matmul_qkv", "tiled", "RPT", "2");
        add_knob_pref_for(plan, "f16", "matmul_qk", "tiled", "RPT", "2");
        /* DQ: a full prefill pass (512 tokens, the executor's batch) dequantizes each quantized layer matrix
         * to f16 just before its matmul (kernel dequant, into scratch that alternates between two sets so
         * the next matrix's dequant overlaps this matmul) and runs the f16 tiled kernel above, at 2 rows a
         * thread, on it. H100, same machine, A/B (bench-results/2026-12-05-nvidia-h100-round11.txt):
         * Llama-3.2-1B Q4_K_M pp512 9285 / 9285 -> 11184 / 11273 tok/s, the dequant dispatches 2.3 ms of a
         * 45.8 ms pass; Qwen3-0.6B Q4_K_M 16070 / 15949 -> 15515 / 15162 (its 1024-row o and down
         * matrices at 2 rows a thread fill only 128 workgroups). At 64 tokens both lose 40% (the f16
         * kernel's grid is 8x smaller there), so shorter passes keep the quantized kernel; where between
         * 64 and 512 it starts to pay was not measured. */
        add_knob_pref(plan, "matmul", "tiled", "DQ", "512");
        add_knob_pref(plan, "ffn_gate_up", "tiled", "DQ", "512");
        add_knob_pref(plan, "matmul_qkv", "tiled", "DQ", "512");
        add_knob_pref(plan, "matmul_qk", "tiled", "DQ", "512");
        /* Prefill stays on `tiled`: on the H200 the register-blocked tiled_rb (64 x 64 tiles, 256
         * threads) reached pp512 2582 tok/s on the Llama-3.2-1B Q4_K_M shape against tiled's 3403, and
         * 4362 against 5167 on F16 (32 x 32 tiles: 1255 / 1720); its single-buffered slabs leave the
         * decode and the FMAs serialized. */
    } else { /* mali, v3d, adreno: no subgroups, small caches */
        dg_kp_choice_set(&mm->decode, "main", src);
        dg_kp_choice_set(&at->def, "main", src);
    }
    return DG_OK;
}

const char *dg_kplan_auto_profile(const struct dg_kp_caps *caps)
{
    if (!caps)
        return "fast";
    if (caps->is_software)
        return "llvmpipe";
    /* the nvidia profile's knob preferences are 256-invocation workgroups: a device with subgroups but a
     * smaller limit (GLES 3.1 only promises 128) would fail to compile them */
    if (caps->subgroup && caps->max_invocations >= 256)
        return "nvidia";
    return "mali";
}

static dg_status parse_variant_set(const char *src, const char *key, const cJSON *o, struct dg_kp_variants *v)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (strcmp(it->string, "roles") == 0) {
            if (!cJSON_IsObject(it))
                return dg_fail(DG_E_FORMAT, "%s: variants.%s.roles: expected an object of role: entry", src, key);
            const cJSON *r;
            cJSON_ArrayForEach(r, it)
            {
                if (!cJSON_IsString(r))
                    return dg_fail(DG_E_FORMAT, "%s: variants.%s.roles.%s: expected an entry name", src, key, r->string);
                struct dg_kp_role *role = NULL;
                for (int i = 0; i < v->n_roles; i++)
                    if (strcmp(v->roles[i].role, r->string) == 0)
                        role = &v->roles[i];
                if (!role) {
                    if (v->n_roles >= DG_KP_MAX_ROLES)
                        return dg_fail(DG_E_FORMAT, "%s: variants.%s.roles: more than %d roles", src, key, DG_KP_MAX_ROLES);
                    role = &v->roles[v->n_roles++];
                    snprintf(role->role, sizeof role->role, "%s", r->string);
                }
                dg_kp_choice_set(&role->entry, r->valuestring, src);
            }
            continue;
        }
        struct dg_kp_choice *c = strcmp(it->string, "default") == 0   ? &v->def
                                 : strcmp(it->string, "prefill") == 0 ? &v->prefill
                                 : strcmp(it->string, "decode") == 0  ? &v->decode
                                                                      : NULL;
        if (!c)
            return dg_fail(DG_E_FORMAT, "%s: variants.%s.%s: unknown field (known: default, prefill, decode, roles)", src,
                           key, it->string);
        if (!cJSON_IsString(it))
            return dg_fail(DG_E_FORMAT, "%s: variants.%s.%s: expected an entry name", src, key, it->string);
        dg_kp_choice_set(c, it->valuestring, src);
    }
    return DG_OK;
}

static dg_status apply_obj(struct dg_kplan *plan, const cJSON *o, const char *src)
{
    if (!cJSON_IsObject(o))
        return dg_fail(DG_E_FORMAT, "%s: kernel plan: expected a JSON object", src);
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        const char *k = it->string;
        if (strcmp(k, "kernelPath") == 0 || strcmp(k, "q4kStrategy") == 0 || strcmp(k, "kvDtype") == 0 ||
            strcmp(k, "profile") == 0) {
            if (!cJSON_IsString(it))
                return dg_fail(DG_E_FORMAT, "%s: %s: expected a string", src, k);
            const char *v = it->valuestring;
            if (strcmp(k, "kernelPath") == 0) {
                dg_kp_choice_set(&plan->kernel_path, v, src);
            } else if (strcmp(k, "profile") == 0) {
                dg_status st = dg_kplan_apply_profile(plan, v);
                if (st)
                    return dg_fail_context(st, "%s: ", src);
            } else if (strcmp(k, "q4kStrategy") == 0) {
                if (strcmp(v, "auto") && strcmp(v, "fused_q4k") && strcmp(v, "dequant_f16") && strcmp(v, "dequant_f32"))
                    return dg_fail(DG_E_FORMAT,
                                   "%s: q4kStrategy: \"%s\" (expected auto, fused_q4k, dequant_f16 or dequant_f32)", src, v);
                dg_kp_choice_set(&plan->q4k_strategy, v, src);
            } else {
                if (strcmp(v, "f16") && strcmp(v, "f32"))
                    return dg_fail(DG_E_FORMAT, "%s: kvDtype: \"%s\" (expected f16 or f32)", src, v);
                dg_kp_choice_set(&plan->kv_dtype, v, src);
            }
        } else if (strcmp(k, "strict") == 0 || strcmp(k, "tuner") == 0 || strcmp(k, "qkvFusion") == 0 ||
                   strcmp(k, "imageReads") == 0) {
            if (!cJSON_IsBool(it))
                return dg_fail(DG_E_FORMAT, "%s: %s: expected true or false", src, k);
            dg_kp_choice_set(strcmp(k, "strict") == 0      ? &plan->strict
                             : strcmp(k, "tuner") == 0     ? &plan->tuner
                             : strcmp(k, "qkvFusion") == 0 ? &plan->qkv_fusion
                                                           : &plan->image_reads,
                             cJSON_IsTrue(it) ? "true" : "false", src);
        } else if (strcmp(k, "variants") == 0) {
            if (!cJSON_IsObject(it))
                return dg_fail(DG_E_FORMAT, "%s: variants: expected an object (attention, matmul, or an op name)", src);
            const cJSON *vs;
            cJSON_ArrayForEach(vs, it)
            {
                if (!cJSON_IsObject(vs))
                    return dg_fail(DG_E_FORMAT, "%s: variants.%s: expected an object", src, vs->string);
                struct dg_kp_variants *v = variants_for(plan, vs->string);
                if (!v)
                    return dg_fail(DG_E_FORMAT, "%s: variants: more than %d op keys", src, DG_KP_MAX_VARIANTS);
                dg_status st = parse_variant_set(src, vs->string, vs, v);
                if (st)
                    return st;
            }
        } else if (strcmp(k, "knobs") == 0) {
            dg_status st = parse_knobs(plan, it, src);
            if (st)
                return st;
        } else if (strcmp(k, "layerPipeline") == 0) {
            /* an array: both phases; an object {"decode": [...], "prefill": [...]}: each phase its own */
            const cJSON *ph[2] = {it, it};
            if (cJSON_IsObject(it)) {
                const cJSON *f;
                cJSON_ArrayForEach(f, it)
                {
                    if (strcmp(f->string, "decode") != 0 && strcmp(f->string, "prefill") != 0)
                        return dg_fail(DG_E_FORMAT, "%s: layerPipeline.%s: unknown field (known: decode, prefill)", src,
                                       f->string);
                }
                ph[0] = cJSON_GetObjectItemCaseSensitive(it, "decode");
                ph[1] = cJSON_GetObjectItemCaseSensitive(it, "prefill");
            } else if (!cJSON_IsArray(it)) {
                return dg_fail(DG_E_FORMAT, "%s: layerPipeline: expected an array of step roles or an object with "
                               "decode / prefill arrays", src);
            }
            for (int i = 0; i < 2; i++) {
                const char *fld = ph[0] == ph[1] ? "layerPipeline" : i ? "layerPipeline.prefill" : "layerPipeline.decode";
                if (!ph[i])
                    continue;
                if (!cJSON_IsArray(ph[i]) || cJSON_GetArraySize(ph[i]) > 32)
                    return dg_fail(DG_E_FORMAT, "%s: %s: expected an array of at most 32 step roles", src, fld);
                plan->n_layer_pipeline[i] = 0;
                const cJSON *r;
                cJSON_ArrayForEach(r, ph[i])
                {
                    if (!cJSON_IsString(r))
                        return dg_fail(DG_E_FORMAT, "%s: %s[%d]: expected a step role", src, fld,
                                       plan->n_layer_pipeline[i]);
                    snprintf(plan->layer_pipeline[i][plan->n_layer_pipeline[i]++], DG_KP_NAME, "%s", r->valuestring);
                }
            }
            snprintf(plan->layer_pipeline_src, sizeof plan->layer_pipeline_src, "%s", src);
        } else {
            return dg_fail(DG_E_FORMAT,
                           "%s: %s: unknown kernel plan field (known: kernelPath, profile, q4kStrategy, strict, tuner, "
                           "qkvFusion, imageReads, kvDtype, variants, layerPipeline, knobs)",
                           src, k);
        }
    }
    return DG_OK;
}

dg_status dg_kplan_apply_json(struct dg_kplan *plan, const char *json, const char *src)
{
    cJSON *root = cJSON_Parse(json);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: kernel plan is not valid JSON (near \"%.30s\")", src,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    dg_status st = apply_obj(plan, root, src);
    cJSON_Delete(root);
    return st;
}

dg_status dg_kplan_apply_config(struct dg_kplan *plan, const char *file)
{
    char *text = dg_kp_slurp(file, 4u << 20);
    if (!text)
        return dg_fail(DG_E_IO, "%s: cannot read the config file", file);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: not valid JSON (near \"%.30s\")", file,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    char src[DG_KP_NAME];
    const char *base = strrchr(file, '/');
    snprintf(src, sizeof src, "config %s", base ? base + 1 : file);
    dg_status st = DG_OK;
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "runtime");
    const cJSON *in = rt ? cJSON_GetObjectItemCaseSensitive(rt, "inference") : NULL;
    if (!in) {
        st = dg_fail(DG_E_FORMAT, "%s: runtime.inference: missing (expected kernelPlan and/or kernelPath there)", file);
        goto out;
    }
    const cJSON *kp = cJSON_GetObjectItemCaseSensitive(in, "kernelPlan");
    if (kp && (st = apply_obj(plan, kp, src)))
        goto out;
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(in, "kernelPath");
    if (path) {
        if (!cJSON_IsString(path)) {
            st = dg_fail(DG_E_FORMAT, "%s: runtime.inference.kernelPath: expected a path id or file", file);
            goto out;
        }
        dg_kp_choice_set(&plan->kernel_path, path->valuestring, src);
    }
out:
    cJSON_Delete(root);
    return st;
}

dg_status dg_kplan_choose_path(const struct dg_kplan *plan, const char *family, const char *weight_dtype, char *out,
                               size_t out_size, char *src, size_t src_size)
{
    if (plan->kernel_path.value[0]) {
        snprintf(out, out_size, "%s", plan->kernel_path.value);
        snprintf(src, src_size, "%s", plan->kernel_path.src);
        return DG_OK;
    }
    const char *suffix;
    const char *why = "default for the weights";
    if (strcmp(weight_dtype, "f32") == 0)
        suffix = "f32";
    else if (strcmp(weight_dtype, "f16") == 0 || strcmp(weight_dtype, "bf16") == 0)
        suffix = "f16-native";
    else if (strcmp(weight_dtype, "q8_0") == 0)
        suffix = "q8_0";
    else if (strcmp(weight_dtype, "mxfp4") == 0)
        suffix = "mxfp4";
    else if (strcmp(weight_dtype, "q4_k") == 0) {
        const char *s = plan->q4k_strategy.value;
        why = plan->q4k_strategy.src;
        if (strcmp(s, "dequant_f16") == 0)
            suffix = "q4k-dequant-f16";
        else if (strcmp(s, "dequant_f32") == 0)
            suffix = "q4k-dequant-f32";
        else
            suffix = "q4k-fused";
    } else
        return dg_fail(DG_E_UNSUPPORTED, "no built-in kernel path for %s weights of family %s (use --kernel-path)",
                       weight_dtype, family);
    snprintf(out, out_size, "%s-%s", family, suffix);
    snprintf(src, src_size, "%s", why);
    return DG_OK;
}

dg_status dg_kplan_load_path(struct dg_kplan *plan, const struct dg_kp_registry *reg, const struct dg_kp_caps *caps,
                             const char *family, const char *weight_dtype, struct dg_kpath *out)
{
    char id[1024], src[DG_KP_NAME], file[1200];
    dg_status st = dg_kplan_choose_path(plan, family, weight_dtype, id, sizeof id, src, sizeof src);
    if (st)
        return st;
    if (!plan->kernel_path.value[0])
        dg_kp_choice_set(&plan->kernel_path, id, src);
    if ((st = dg_kpath_resolve_file(id, file, sizeof file)) || (st = dg_kpath_load(file, reg, caps, out)))
        return st;
    if (out->fused && plan->fused_allowed && plan->fused_check) {
        char reason[256] = "";
        if (!plan->fused_check(plan->fused_check_ctx, out->id, reason, sizeof reason))
            dg_kplan_veto_fused(plan, reason[0] ? reason : "the compatibility checker vetoed fused kernels");
    }
    if (out->fused && !plan->fused_allowed) {
        if (!out->fallback[0])
            return dg_fail(DG_E_UNSUPPORTED, "%s: fused kernels are vetoed (%s) and the path names no fallback",
                           out->file, plan->fused_veto_reason);
        dg_warn_once("fused-veto", "not using fused path %s: %s; using %s instead", out->id, plan->fused_veto_reason,
                     out->fallback);
        char fb[DG_KP_VALUE];
        snprintf(fb, sizeof fb, "%s", out->fallback);
        dg_kpath_free(out);
        dg_kp_choice_set(&plan->kernel_path, fb, "fused veto");
        if ((st = dg_kpath_resolve_file(fb, file, sizeof file)) || (st = dg_kpath_load(file, reg, caps, out)))
            return st;
    }
    return DG_OK;
}

void dg_kp_resolved_free(struct dg_kp_resolved *r)
{
    for (int i = 0; i < 4; i++) {
        free(r->sec[i].steps);
        r->sec[i].steps = NULL;
        r->sec[i].n_steps = 0;
    }
}

/* The plan's variant choice for a step (roles > phase > default), NULL when the plan leaves it alone. */
static const struct dg_kp_choice *variant_choice(const struct dg_kplan *plan, const struct dg_kp_step *s, bool prefill)
{
    const struct dg_kp_variants *v = variants_find(plan, s->op);
    if (!v)
        return NULL;
    const struct dg_kp_choice *c = NULL;
    for (int i = 0; i < v->n_roles && !c; i++)
        if (strcmp(v->roles[i].role, s->role) == 0)
            c = &v->roles[i].entry;
    if (!c && prefill && v->prefill.value[0])
        c = &v->prefill;
    if (!c && !prefill && v->decode.value[0])
        c = &v->decode;
    if (!c && v->def.value[0])
        c = &v->def;
    return c;
}

/* The attention variant "fused" is the attention_fused kernel, which replaces rope_kv + split attention +
 * attn_combine in decode (resolve_section fuses them); wherever that cannot happen it means "split". */
static bool wants_fused_attention(const struct dg_kplan *plan, const struct dg_kp_step *s, bool prefill)
{
    const struct dg_kp_choice *c = variant_choice(plan, s, prefill);
    return c && strcmp(s->kernel, "attention") == 0 && strcmp(c->value, "fused") == 0;
}

/* Picks the entry for one step; returns an error only under strict. */
static dg_status resolve_entry(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                               const struct dg_kp_caps *caps, const char *file, const char *where, bool prefill,
                               struct dg_kp_step *s)
{
    const struct dg_kp_choice *c = variant_choice(plan, s, prefill);
    if (!c)
        return DG_OK;
    bool strict = strcmp(plan->strict.value, "true") == 0;
    const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, s->kernel);
    const char *value = wants_fused_attention(plan, s, prefill) ? "split" : c->value;
    const struct dg_kp_entry *e = k ? dg_kp_entry_find(k, value) : NULL;
    /* "split" attention is only meaningful for the attention kernel; other mismatches are invalid variants */
    if (!e) {
        if (strict)
            return dg_fail(DG_E_FORMAT, "%s: %s: variant \"%s\" (set by %s) is not an entry of kernel %s", file, where,
                           c->value, c->src, s->kernel);
        dg_warn_once(c->value, "%s: %s: variant \"%s\" (set by %s) is not an entry of kernel %s; keeping \"%s\"", file,
                     where, c->value, c->src, s->kernel, s->entry);
        return DG_OK;
    }
    for (int r = 0; caps && r < e->n_requires; r++)
        if (strcmp(e->requires[r], "subgroup") == 0 && !caps->subgroup) {
            if (strict)
                return dg_fail(DG_E_UNSUPPORTED, "%s: %s: variant \"%s\" (set by %s) needs subgroups, which this device lacks",
                               file, where, c->value, c->src);
            dg_warn_once(c->value, "%s: variant \"%s\" needs subgroups, which this device lacks; keeping \"%s\"", where,
                         c->value, s->entry);
            return DG_OK;
        }
    snprintf(s->entry, sizeof s->entry, "%s", value);
    snprintf(s->entry_src, sizeof s->entry_src, "%s", c->src);
    return DG_OK;
}

/* A step's entry counts as explicit when a config file or the command line chose it. */
static bool explicit_src(const char *src) { return strncmp(src, "config", 6) == 0 || strncmp(src, "cli", 3) == 0; }

/* Decode steps: the tuner's cached winner for (kernel, role) replaces the entry and knobs a profile or the
 * path chose, unless the entry is explicit or the path step sets a tuned knob itself (both win). */
static void apply_tuned(const struct dg_kplan *plan, const struct dg_kp_registry *reg, const struct dg_kp_caps *caps,
                        struct dg_kp_step *s)
{
    if (strcmp(plan->tuner.value, "false") == 0 || explicit_src(s->entry_src))
        return;
    for (int i = 0; i < plan->n_tuned; i++) {
        const struct dg_kp_tuned *t = &plan->tuned[i];
        if (strcmp(t->kernel, s->kernel) || strcmp(t->role, s->role))
            continue;
        const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, s->kernel);
        const struct dg_kp_entry *e = k ? dg_kp_entry_find(k, t->entry) : NULL;
        if (!e || s->n_consts + t->n_knobs > DG_KP_MAX_CONSTS)
            return;
        for (int r = 0; caps && r < e->n_requires; r++)
            if (strcmp(e->requires[r], "subgroup") == 0 && !caps->subgroup)
                return;
        for (int j = 0; j < t->n_knobs; j++) {
            const struct dg_kp_knob *kn = dg_kp_knob_find(k, t->knobs[j].name);
            if (!kn || kn->is_auto)
                return;
            if (const_index(s, t->knobs[j].name) >= 0)
                return;
        }
        snprintf(s->entry, sizeof s->entry, "%s", t->entry);
        snprintf(s->entry_src, sizeof s->entry_src, "tuner");
        for (int j = 0; j < t->n_knobs; j++) {
            s->tuned_consts |= 1u << s->n_consts;
            s->consts[s->n_consts++] = t->knobs[j];
        }
        return;
    }
}

/* Decode under the "fused" attention variant: when the step just emitted is rope_kv writing the q, k_cache
 * and v_cache this split attention reads, both become one attention_fused step (rope, KV write, attention
 * and the combine in one dispatch), with the q and k qk_norm steps right before rope_kv when present. It
 * takes rope_kv's inputs and the attention's path constants and weights, then the profile's knobs for
 * attention_fused itself (the tuner does not time this kernel, so no cached winner applies). */
static bool fuse_rope_attention(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                                struct dg_kp_section *out, const struct dg_kp_step *s)
{
    if (out->n_steps < 1 || !dg_kp_kernel_find(reg, "attention_fused"))
        return false;
    struct dg_kp_step *r = &out->steps[out->n_steps - 1];
    if (strcmp(r->kernel, "rope_kv") || r->n_input != 3 || r->n_output != 3 || s->n_input != 3 ||
        s->n_output != 1 || r->layers != s->layers)
        return false;
    for (int i = 0; i < 3; i++)
        if (strcmp(r->output[i], s->input[i]))
            return false;
    if (strcmp(r->output[0], r->input[0]) || strcmp(r->output[1], "k_cache") || strcmp(r->output[2], "v_cache"))
        return false;
    struct dg_kp_step f = *s;
    /* the per-head q and k norms just before rope_kv (Qwen3, Gemma 3) move into the kernel too */
    int absorbed = 0;
    if (out->n_steps >= 3) {
        const struct dg_kp_step *qn = &out->steps[out->n_steps - 3], *kn = &out->steps[out->n_steps - 2];
        bool ok = true;
        for (int i = 0; i < 2 && ok; i++) {
            const struct dg_kp_step *n = i ? kn : qn;
            ok = !strcmp(n->op, "qk_norm") && !strcmp(n->kernel, "rmsnorm") && n->n_weights == 1 &&
                 !strcmp(n->weights[0].role, "weight") && n->n_input == 1 && n->n_output == 1 &&
                 !strcmp(n->input[0], r->input[i]) && !strcmp(n->output[0], r->input[i]) && n->layers == s->layers &&
                 f.n_weights < DG_KP_MAX_WEIGHTS;
            for (int c = 0; ok && c < n->n_consts; c++)
                ok = !strcmp(n->consts[c].name, "WG_SIZE"); /* nothing the fused norm would drop */
        }
        if (ok && f.n_weights + 2 <= DG_KP_MAX_WEIGHTS) {
            const char *roles[2] = {"q_norm", "k_norm"};
            for (int i = 0; i < 2; i++) {
                struct dg_kp_weight *w = &f.weights[f.n_weights++];
                snprintf(w->role, sizeof w->role, "%s", roles[i]);
                snprintf(w->tmpl, sizeof w->tmpl, "%s", (i ? kn : qn)->weights[0].tmpl);
            }
            absorbed = 2;
        }
    }
    snprintf(f.kernel, sizeof f.kernel, "attention_fused");
    snprintf(f.entry, sizeof f.entry, "main");
    for (int i = 0; i < 3; i++)
        snprintf(f.input[i], DG_KP_NAME, "%s", r->input[i]);
    const char *outs[5] = {"k_cache", "v_cache", s->output[0], "attn_part", "attn_count"};
    for (int i = 0; i < 5; i++)
        snprintf(f.output[i], DG_KP_NAME, "%s", outs[i]);
    f.n_output = 5;
    apply_knob_prefs(plan, reg, "", &f); /* no weights: the format-specific preferences are the GEMVs' */
    apply_forced_knobs(plan, &f);
    out->n_steps -= absorbed;
    out->steps[out->n_steps - 1] = f;
    return true;
}

static dg_status resolve_section(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                                 const struct dg_kp_caps *caps, const struct dg_kpath *p, enum dg_kp_section_id sid,
                                 bool prefill, bool per_layer, struct dg_kp_section *out)
{
    const struct dg_kp_section *in = &p->sec[sid];
    out->steps = calloc((size_t)in->n_steps * 2 + 1, sizeof *out->steps);
    if (!out->steps)
        return dg_fail(DG_E_NOMEM, "kernel plan: out of memory");
    out->n_steps = 0;
    /* order: layerPipeline (per-layer sections only) lists every step role exactly once */
    int order[256];
    for (int i = 0; i < in->n_steps; i++)
        order[i] = i;
    const int np = plan->n_layer_pipeline[prefill];
    const char(*lp)[DG_KP_NAME] = plan->layer_pipeline[prefill];
    if (per_layer && np > 0) {
        if (np != in->n_steps)
            return dg_fail(DG_E_FORMAT, "%s: layerPipeline (%s) names %d steps; %s has %d", p->file,
                           plan->layer_pipeline_src, np, dg_kp_section_name(sid), in->n_steps);
        bool used[256] = {0};
        for (int i = 0; i < np; i++) {
            int found = -1;
            for (int j = 0; j < in->n_steps && found < 0; j++)
                if (!used[j] && strcmp(in->steps[j].role, lp[i]) == 0)
                    found = j;
            if (found < 0)
                return dg_fail(DG_E_FORMAT, "%s: layerPipeline[%d] (%s): \"%s\" is not a (remaining) step role of %s",
                               p->file, i, plan->layer_pipeline_src, lp[i], dg_kp_section_name(sid));
            used[found] = true;
            order[i] = found;
        }
    }
    for (int i = 0; i < in->n_steps; i++) {
        struct dg_kp_step s = in->steps[order[i]];
        char where[80];
        snprintf(where, sizeof where, "%s[%d]", dg_kp_section_name(sid), order[i]);
        bool was_split = strcmp(s.entry, "split") == 0;
        bool fuse = !prefill && wants_fused_attention(plan, &s, prefill);
        dg_status st = resolve_entry(plan, reg, caps, p->file, where, prefill, &s);
        if (st)
            return st;
        if (fuse && strcmp(s.entry, "split") == 0 && fuse_rope_attention(plan, reg, out, &s))
            continue;
        if (!prefill)
            apply_tuned(plan, reg, caps, &s);
        apply_knob_prefs(plan, reg, p->weight_format, &s);
        apply_forced_knobs(plan, &s);
        if (strcmp(s.kernel, "attention") == 0 && strcmp(s.entry, "split") == 0 && !was_split && s.n_output == 1) {
            /* expand: attention writes partials, attn_combine writes the step's original output */
            struct dg_kp_step comb = {0};
            snprintf(comb.op, sizeof comb.op, "attn_combine");
            snprintf(comb.kernel, sizeof comb.kernel, "attn_combine");
            snprintf(comb.entry, sizeof comb.entry, "main");
            snprintf(comb.role, sizeof comb.role, "attn_combine");
            snprintf(comb.entry_src, sizeof comb.entry_src, "%s", s.entry_src);
            snprintf(comb.input[0], DG_KP_NAME, "attn_part");
            comb.n_input = 1;
            snprintf(comb.output[0], DG_KP_NAME, "%s", s.output[0]);
            comb.n_output = 1;
            comb.layers = s.layers;
            for (int c = 0; c < s.n_consts; c++)
                if (strcmp(s.consts[c].name, "NSPLIT") == 0)
                    comb.consts[comb.n_consts++] = s.consts[c];
            snprintf(s.output[0], DG_KP_NAME, "attn_part");
            out->steps[out->n_steps++] = s;
            out->steps[out->n_steps++] = comb;
        } else {
            out->steps[out->n_steps++] = s;
        }
    }
    return DG_OK;
}

dg_status dg_kplan_resolve(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                           const struct dg_kp_caps *caps, const struct dg_kpath *p, bool prefill,
                           struct dg_kp_resolved *out)
{
    memset(out, 0, sizeof *out);
    const enum dg_kp_section_id ids[4] = {DG_KS_PRE, prefill ? DG_KS_PREFILL : DG_KS_DECODE, DG_KS_POST,
                                          DG_KS_SAMPLING};
    /* forced knobs must name a registry kernel, one of its entries and one of its knobs: a typo would
     * otherwise silently measure the default */
    for (int i = 0; i < plan->n_knob_force; i++) {
        const struct dg_kp_knob_force *f = &plan->knob_force[i];
        const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, f->kernel);
        if (!k)
            return dg_fail(DG_E_FORMAT, "%s: knobs.%s: not a kernel of the registry", f->src, f->kernel);
        if (!dg_kp_entry_find(k, f->entry))
            return dg_fail(DG_E_FORMAT, "%s: knobs.%s.%s: %s has no entry \"%s\"", f->src, f->kernel, f->entry,
                           f->kernel, f->entry);
        if (!dg_kp_knob_find(k, f->c.name))
            return dg_fail(DG_E_FORMAT, "%s: knobs.%s.%s.%s: %s has no knob %s", f->src, f->kernel, f->entry, f->c.name,
                           f->kernel, f->c.name);
    }
    dg_status st = DG_OK;
    for (int i = 0; i < 4 && !st; i++)
        st = resolve_section(plan, reg, caps, p, ids[i], prefill, i == 1, &out->sec[i]);
    if (!st) {
        /* validate the resolved phase as a path of its own */
        struct dg_kpath tmp = *p;
        for (int s = 0; s < DG_KS_COUNT; s++)
            tmp.sec[s] = (struct dg_kp_section){0};
        tmp.sec[DG_KS_PRE] = out->sec[0];
        tmp.sec[DG_KS_DECODE] = out->sec[1];
        tmp.sec[DG_KS_PREFILL] = out->sec[1];
        tmp.sec[DG_KS_POST] = out->sec[2];
        tmp.sec[DG_KS_SAMPLING] = out->sec[3];
        st = dg_kpath_validate(&tmp, reg, caps);
    }
    if (st)
        dg_kp_resolved_free(out);
    return st;
}

static void print_choice(FILE *out, const char *name, const struct dg_kp_choice *c, const char *unset)
{
    fprintf(out, "  %-22s %-20s (%s)\n", name, c->value[0] ? c->value : unset, c->src[0] ? c->src : "default");
}

static void print_steps(FILE *out, const char *title, const struct dg_kp_section *sec,
                        const struct dg_kp_registry *reg)
{
    for (int i = 0; i < sec->n_steps; i++) {
        const struct dg_kp_step *s = &sec->steps[i];
        const struct dg_kp_kernel *k = dg_kp_kernel_find(reg, s->kernel);
        const struct dg_kp_entry *e = k ? dg_kp_entry_find(k, s->entry) : NULL;
        fprintf(out, "    %s[%d] %-12s %s/%s", title, i, s->op, s->kernel, s->entry);
        fprintf(out, "  (%s: %s", k ? k->file : "?", s->entry_src);
        fprintf(out, ")\n      defines:");
        if (e && e->define[0])
            fprintf(out, " %s", e->define);
        for (int f = 0; k && f < k->n_file_defines; f++)
            fprintf(out, " %s=%s", k->file_defines[f].name, k->file_defines[f].value);
        for (int c = 0; c < s->n_consts; c++)
            fprintf(out, " %s=%s%s", s->consts[c].name, s->consts[c].value, (s->tuned_consts >> c) & 1u ? "(tuner)" : "");
        for (int kn = 0; k && kn < k->n_knobs; kn++) {
            bool set = false;
            for (int c = 0; c < s->n_consts; c++)
                set |= strcmp(s->consts[c].name, k->knobs[kn].name) == 0;
            if (!set)
                fprintf(out, " %s=%s", k->knobs[kn].name, k->knobs[kn].def);
        }
        fprintf(out, "\n      in:");
        for (int j = 0; j < s->n_input; j++)
            fprintf(out, " %s", s->input[j]);
        if (s->n_input == 0)
            fprintf(out, " hidden_state");
        fprintf(out, "  out:");
        for (int j = 0; j < s->n_output; j++)
            fprintf(out, " %s", s->output[j]);
        if (s->n_output == 0)
            fprintf(out, " hidden_state");
        for (int w = 0; w < s->n_weights; w++)
            fprintf(out, "  %s=%s", s->weights[w].role, s->weights[w].tmpl);
        if (s->layers != DG_KL_ALL) {
            static const char *const ln[] = {"all", "sliding", "full", "dense", "moe"};
            fprintf(out, "  layers=%s", ln[s->layers]);
        }
        fprintf(out, "\n");
    }
}

void dg_kplan_print(FILE *out, const struct dg_kplan *plan, const struct dg_kpath *p,
                    const struct dg_kp_registry *reg)
{
    fprintf(out, "kernel plan (choice, then who set it):\n");
    print_choice(out, "profile", &plan->profile, "none");
    print_choice(out, "kernelPath", &plan->kernel_path, "(by model)");
    print_choice(out, "q4kStrategy", &plan->q4k_strategy, "auto");
    print_choice(out, "strict", &plan->strict, "false");
    print_choice(out, "kvDtype", &plan->kv_dtype, p ? p->kv_dtype : "f16");
    print_choice(out, "tuner", &plan->tuner, "true");
    print_choice(out, "qkvFusion", &plan->qkv_fusion, "false");
    print_choice(out, "imageReads", &plan->image_reads, "false");
    if (strcmp(plan->tuner.value, "false") != 0)
        fprintf(out, "  %-22s %d decode step winner%s%s%s\n", "tuner results", plan->n_tuned, plan->n_tuned == 1 ? "" : "s",
                plan->tuned_file[0] ? " from " : " (none cached for this device and model)", plan->tuned_file);
    for (int i = 0; i < plan->n_variants; i++) {
        const struct dg_kp_opvariants *ov = &plan->variants[i];
        char name[96];
        snprintf(name, sizeof name, "variants.%s.default", ov->key);
        if (ov->v.def.value[0])
            print_choice(out, name, &ov->v.def, "");
        snprintf(name, sizeof name, "variants.%s.prefill", ov->key);
        if (ov->v.prefill.value[0])
            print_choice(out, name, &ov->v.prefill, "");
        snprintf(name, sizeof name, "variants.%s.decode", ov->key);
        if (ov->v.decode.value[0])
            print_choice(out, name, &ov->v.decode, "");
        for (int r = 0; r < ov->v.n_roles; r++) {
            snprintf(name, sizeof name, "variants.%s.roles.%s", ov->key, ov->v.roles[r].role);
            print_choice(out, name, &ov->v.roles[r].entry, "");
        }
    }
    for (int ph = 0; ph < 2; ph++) {
        if (!plan->n_layer_pipeline[ph])
            continue;
        fprintf(out, "  %-22s", ph ? "layerPipeline.prefill" : "layerPipeline.decode");
        for (int i = 0; i < plan->n_layer_pipeline[ph]; i++)
            fprintf(out, " %s", plan->layer_pipeline[ph][i]);
        fprintf(out, " (%s)\n", plan->layer_pipeline_src);
    }
    for (int i = 0; i < plan->n_knob_force; i++) {
        const struct dg_kp_knob_force *f = &plan->knob_force[i];
        char name[3 * DG_KP_NAME + 16];
        snprintf(name, sizeof name, "knobs.%s.%s.%s", f->kernel, f->entry, f->c.name);
        fprintf(out, "  %-22s %-20s (%s)\n", name, f->c.value, f->src);
    }
    fprintf(out, "  %-22s %s\n", "fused kernels", plan->fused_allowed ? "allowed" : plan->fused_veto_reason);
    if (!p)
        return;
    fprintf(out, "kernel path %s (%s)\n  %s\n  weights on the GPU: %s, KV cache: %s\n", p->id, p->file, p->name,
            p->weight_format, plan->kv_dtype.value[0] ? plan->kv_dtype.value : p->kv_dtype);
    for (int phase = 0; phase < 2; phase++) {
        struct dg_kp_resolved r;
        if (dg_kplan_resolve(plan, reg, NULL, p, phase == 0, &r) != DG_OK) {
            fprintf(out, "%s: cannot resolve: %s\n", phase == 0 ? "prefill" : "decode", dg_last_error());
            continue;
        }
        fprintf(out, "%s:\n", phase == 0 ? "prefill (all prompt tokens, T = prompt length)" : "decode (T = 1)");
        print_steps(out, "preLayer", &r.sec[0], reg);
        print_steps(out, "layer", &r.sec[1], reg);
        print_steps(out, "postLayer", &r.sec[2], reg);
        print_steps(out, "sampling", &r.sec[3], reg);
        dg_kp_resolved_free(&r);
    }
}
