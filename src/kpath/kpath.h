/* kpath.h: the kernel registry, declarative kernel paths and kernel plans (no GL here).
 *
 * - The registry (kernel-paths/registry.json) describes every GLSL kernel file: its variants (a step's
 *   `entry` becomes a #define), its knobs (#defines with defaults; "auto" knobs are computed by the
 *   executor from the model), its bindings, its workgroup size, dispatch size and bytes moved as formulas
 *   of the defines and T (tokens in the batch), and the capabilities it needs.
 * - A kernel path (kernel-paths/<id>.json) is the ordered list of steps a model runs: preLayer once,
 *   decode.steps / prefill.steps per layer, postLayer once, sampling once.
 * - A kernel plan (profile < config file < command line) picks the path and variants; every choice
 *   remembers which source set it, for --print-plan.
 *
 * Implementation: kpath/expr.c (formulas), kpath/registry.c, kpath/path.c (load + validate),
 * kpath/plan.c (profiles, merging, resolution, printing). */
#ifndef DG_KPATH_KPATH_H
#define DG_KPATH_KPATH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#define DG_KP_NAME 48
#define DG_KP_VALUE 64
#define DG_KP_EXPR 160
#define DG_KP_MAX_KNOBS 24
#define DG_KP_MAX_ENTRIES 8
#define DG_KP_MAX_BINDINGS 12
#define DG_KP_MAX_OPS 6
#define DG_KP_MAX_CONSTS 16
#define DG_KP_MAX_WEIGHTS 8
#define DG_KP_MAX_IO 6
#define DG_KP_MAX_REQ 4

/* ---- formulas: integer expressions over named values (+ - * / % parentheses, cdiv(a,b), min, max) ---- */

typedef bool (*dg_expr_lookup)(void *ctx, const char *name, int64_t *out);
/* Evaluates `expr`; unknown names, division by zero and syntax errors fail with a message naming `what`. */
dg_status dg_expr_eval(const char *expr, dg_expr_lookup lookup, void *ctx, const char *what, int64_t *out);

/* ---- registry ---- */

enum dg_kp_bind_kind {
    DG_KB_INPUT = 0, /* a slot the kernel reads */
    DG_KB_OUTPUT,    /* a slot it writes */
    DG_KB_INOUT,     /* a slot it reads and writes (in-place) */
    DG_KB_WEIGHT,    /* a model tensor named by the step's `weights` */
    DG_KB_TABLE,     /* a per-model table the executor provides (rope frequencies) */
};

struct dg_kp_binding {
    int binding;
    char role[DG_KP_NAME];
    enum dg_kp_bind_kind kind;
    bool optional; /* weights: bound only when the model has the tensor (biases) */
    /* "imageUnit" / "imageFormat": where an entry with imageReads runs under the plan's imageReads, this
     * binding is read through a texture-buffer view bound to image unit image_unit instead of an SSBO
     * (-1: always an SSBO) */
    int image_unit;
    enum dg_kp_image_format { DG_KP_IMG_RGBA32UI = 1, DG_KP_IMG_RGBA32F } image_format;
};

struct dg_kp_knob {
    char name[DG_KP_NAME];
    char def[DG_KP_VALUE]; /* default value as written after #define */
    bool is_auto;          /* computed by the executor from the model and slot shapes */
};

struct dg_kp_entry {
    char name[DG_KP_NAME];
    char define[DG_KP_NAME]; /* "" for main when it needs no define */
    char dispatch[3][DG_KP_EXPR];
    char requires[DG_KP_MAX_REQ][DG_KP_NAME];
    int n_requires;
    bool split_blocks; /* "splitBlocks": reads Q8_0 / Q6_K fastest in the split layout (pipe/split_blocks.h) */
    bool image_reads;  /* "imageReads": can read its bindings that name an imageUnit through images (IMG 1) */
};

struct dg_kp_kernel {
    char name[DG_KP_NAME];
    char file[DG_KP_VALUE];
    char description[512];
    char ops[DG_KP_MAX_OPS][DG_KP_NAME];
    int n_ops;
    struct dg_kp_knob knobs[DG_KP_MAX_KNOBS];
    int n_knobs;
    struct dg_kp_entry entries[DG_KP_MAX_ENTRIES];
    int n_entries;
    struct dg_kp_binding bindings[DG_KP_MAX_BINDINGS];
    int n_bindings;
    struct dg_kp_const_def {
        char name[DG_KP_NAME], value[DG_KP_VALUE];
    } file_defines[4]; /* fixed defines of this registry entry (two entries may share one file) */
    int n_file_defines;
    char reads_output_when[DG_KP_NAME]; /* knob that makes the output slot also an input (ACCUMULATE) */
    char workgroup[DG_KP_EXPR]; /* invocations per workgroup (formula) */
    char bytes[DG_KP_EXPR * 2]; /* bytes read + written per dispatch (formula; WBYTES(x) known) */
};

struct dg_kp_registry {
    char path[1024];
    struct dg_kp_kernel *kernels;
    int n_kernels;
};

dg_status dg_kp_registry_load(const char *path, struct dg_kp_registry *reg);
/* Loads <datadir>/kernel-paths/registry.json. */
dg_status dg_kp_registry_load_default(struct dg_kp_registry *reg);
void dg_kp_registry_free(struct dg_kp_registry *reg);
const struct dg_kp_kernel *dg_kp_kernel_find(const struct dg_kp_registry *reg, const char *name);
const struct dg_kp_entry *dg_kp_entry_find(const struct dg_kp_kernel *k, const char *name);
const struct dg_kp_knob *dg_kp_knob_find(const struct dg_kp_kernel *k, const char *name);

/* The directory holding glsl/ and kernel-paths/ (core/paths.h dg_data_dir). */
const char *dg_kp_datadir(void);

/* ---- slots: the named activation buffers (and KV cache) steps read and write ---- */

struct dg_kp_slot_info {
    const char *name;
    const char *shape; /* documentation: "[T, hidden]" */
};
/* The known slots, NULL-terminated. */
const struct dg_kp_slot_info *dg_kp_slots(void);
bool dg_kp_slot_known(const char *name);

/* ---- kernel paths ---- */

struct dg_kp_const {
    char name[DG_KP_NAME];
    char value[DG_KP_VALUE]; /* may be "$hparam" (resolved by the executor: $final_softcap, ...) */
};

struct dg_kp_weight {
    char role[DG_KP_NAME];
    char tmpl[96]; /* "layer.{L}.self_attn.q_proj" */
};

enum dg_kp_layers { DG_KL_ALL = 0, DG_KL_SLIDING, DG_KL_FULL, DG_KL_DENSE, DG_KL_MOE };

struct dg_kp_step {
    char op[DG_KP_NAME];
    char kernel[DG_KP_NAME];
    char entry[DG_KP_NAME];
    char role[DG_KP_NAME]; /* for plan variants.*.roles: defaults to the weight's last name component */
    struct dg_kp_const consts[DG_KP_MAX_CONSTS];
    int n_consts;
    struct dg_kp_weight weights[DG_KP_MAX_WEIGHTS];
    int n_weights;
    char input[DG_KP_MAX_IO][DG_KP_NAME];
    int n_input;
    char output[DG_KP_MAX_IO][DG_KP_NAME];
    int n_output;
    enum dg_kp_layers layers; /* which layers run this step ("layers" field) */
    char entry_src[DG_KP_NAME]; /* who chose `entry`: "path", "profile fast", "config", "cli", "tuner"... */
    uint32_t tuned_consts;      /* bit i set: consts[i] came from the tuner (shown by --print-plan) */
};

struct dg_kp_section {
    struct dg_kp_step *steps;
    int n_steps;
};

enum dg_kp_section_id { DG_KS_PRE = 0, DG_KS_DECODE, DG_KS_PREFILL, DG_KS_POST, DG_KS_SAMPLING, DG_KS_COUNT };
const char *dg_kp_section_name(enum dg_kp_section_id s); /* "preLayer", "decode.steps", ... */

struct dg_kpath {
    char file[1024];
    char id[DG_KP_VALUE];
    char name[128];
    char description[512];
    char family[DG_KP_NAME];        /* "llama" ... (informational; checked against the model) */
    char weight_format[DG_KP_NAME]; /* what matmul weights are on the GPU: f32 f16 q8_0 q4_k */
    char kv_dtype[DG_KP_NAME];      /* f16 (default) or f32 */
    bool fused;                     /* uses fused kernels (the compatibility checker may veto) */
    char fallback[DG_KP_VALUE];     /* id of the path to use when fused kernels are vetoed */
    struct dg_kp_section sec[DG_KS_COUNT];
};

/* Device capabilities a path may require (from dg_gl_caps; kept GL-free here). */
struct dg_kp_caps {
    bool subgroup;
    bool is_software;
    int max_invocations;
    int max_shared_memory;
};

/* Parses and validates a path against the registry. `caps` NULL skips the capability check. Errors read
 * `FILE: decode.steps[4].kernel: "x" is not in the registry (known: a, b, ...)`. */
dg_status dg_kpath_load(const char *file, const struct dg_kp_registry *reg, const struct dg_kp_caps *caps,
                        struct dg_kpath *out);
dg_status dg_kpath_parse(const char *file, const char *json, const struct dg_kp_registry *reg,
                         const struct dg_kp_caps *caps, struct dg_kpath *out);
/* Re-runs validation (after a plan changed entries or order). */
dg_status dg_kpath_validate(const struct dg_kpath *p, const struct dg_kp_registry *reg,
                            const struct dg_kp_caps *caps);
void dg_kpath_free(struct dg_kpath *p);
/* ID (looked up as <datadir>/kernel-paths/ID.json) or a file path (contains '/' or ends in .json). */
dg_status dg_kpath_resolve_file(const char *id_or_file, char *out, size_t out_size);
/* Replaces {L} in a weight template with the layer index. */
dg_status dg_kpath_weight_name(const char *tmpl, int layer, char *out, size_t out_size);
/* True when a (resolved) weight name matches a canonical tensor name pattern of model.h. */
bool dg_kpath_weight_name_known(const char *tmpl);

/* ---- kernel plans ---- */

#define DG_KP_MAX_ROLES 16

struct dg_kp_choice {
    char value[DG_KP_VALUE];
    char src[DG_KP_NAME]; /* "" = unset; else "profile fast", "config FILE", "cli", "manifest", "default" */
};

struct dg_kp_role {
    char role[DG_KP_NAME];
    struct dg_kp_choice entry;
};

struct dg_kp_variants {
    struct dg_kp_choice def, prefill, decode;
    struct dg_kp_role roles[DG_KP_MAX_ROLES];
    int n_roles;
};

#define DG_KP_MAX_VARIANTS 8
#define DG_KP_MAX_TUNED 32

/* Variants for steps of one op: key "matmul" covers the matmul, lm_head and ffn_gate_up ops, any other
 * key the op of that name ("attention", ...). Values are kernel entries ("row", "tiled", "split"). */
struct dg_kp_opvariants {
    char key[DG_KP_NAME];
    struct dg_kp_variants v;
};

struct dg_kplan {
    struct dg_kp_choice profile;
    struct dg_kp_choice kernel_path;   /* id or file */
    struct dg_kp_choice q4k_strategy;  /* auto | fused_q4k | dequant_f16 | dequant_f32 */
    struct dg_kp_choice strict;        /* "true" / "false" */
    struct dg_kp_choice kv_dtype;      /* f16 | f32 */
    /* "true": the executor runs a layer's q, k and v projections as one matmul_qkv dispatch where the three
     * weights share a format and width, and q and k as one matmul_qk dispatch where only those two do (the
     * layers of Q4_K_M files whose v is Q6_K) */
    struct dg_kp_choice qkv_fusion;
    /* "true": kernels whose entry has imageReads read their weights and input through image buffers where
     * the device has GL_EXT_texture_buffer (the llvmpipe profile: Mesa's SSBO loads run a lane at a time) */
    struct dg_kp_choice image_reads;
    struct dg_kp_opvariants variants[DG_KP_MAX_VARIANTS];
    int n_variants;
    /* per-layer step order, by step role, for decode [0] and prefill [1] (a path's prefill steps may differ,
     * as MoE paths' do); empty = path order */
    char layer_pipeline[2][32][DG_KP_NAME];
    int n_layer_pipeline[2];
    char layer_pipeline_src[DG_KP_NAME];
    /* Knob values a profile measured best on its device family, for steps of `kernel` whose resolved entry
     * is `entry` (and, where `wformat` is set, only in paths of that weight format; where `op` is set, only
     * steps of that op, e.g. lm_head); a path step's own constants win over them, and of two preferences
     * for one knob the first that applies. */
    struct dg_kp_knob_pref {
        char kernel[DG_KP_NAME], entry[DG_KP_NAME], wformat[DG_KP_NAME], op[DG_KP_NAME];
        struct dg_kp_const c;
    } knob_prefs[64];
    int n_knob_prefs;
    /* "knobs" of a config file or the command line: values forced on every step of `kernel` whose resolved
     * entry is `entry`, over the path's constants, the profile's preferences and tuner winners (for
     * measuring a knob the tuner does not cover, or pinning one). A later source replaces an earlier
     * value of the same knob. */
    struct dg_kp_knob_force {
        char kernel[DG_KP_NAME], entry[DG_KP_NAME];
        struct dg_kp_const c;
        char src[DG_KP_NAME];
    } knob_force[32];
    int n_knob_force;

    /* Winners of `doppler-gl tune` cached for this device and model (tune/tune.h dg_tune_apply_cached):
     * for decode steps of `kernel` with step role `role`, the entry and knob values measured fastest.
     * Priority: a step whose entry was chosen by a config file or the command line, or whose path step sets
     * one of the tuned knobs itself, keeps that; otherwise the tuned entry and knobs replace the profile's
     * variant and knob preferences. "tuner": false in a kernel plan turns them off. */
    struct dg_kp_choice tuner; /* "true" / "false" */
    struct dg_kp_tuned {
        char kernel[DG_KP_NAME], role[DG_KP_NAME], entry[DG_KP_NAME];
        struct dg_kp_const knobs[6];
        int n_knobs;
    } tuned[DG_KP_MAX_TUNED];
    int n_tuned;
    char tuned_file[256]; /* where they came from, for --print-plan */

    /* Veto hook for the fused-kernel compatibility checker (issue 5): when fused_allowed is false, a
     * fused path or fused_q4k strategy is replaced by its non-fused fallback and the reason is logged.
     * Set it with dg_kplan_veto_fused, or install `fused_check` to be asked with the chosen path id. */
    bool fused_allowed;
    char fused_veto_reason[256];
    bool (*fused_check)(void *ctx, const char *path_id, char *reason, size_t reason_size);
    void *fused_check_ctx;
};

/* One phase's resolved steps: variants applied, split attention expanded, layer order applied. */
struct dg_kp_resolved {
    struct dg_kp_section sec[4]; /* preLayer, per-layer, postLayer, sampling */
};

void dg_kplan_init(struct dg_kplan *plan);
/* Profiles: fast, safe, debug, fused, and GPU families llvmpipe, nvidia, mali, v3d, adreno. */
dg_status dg_kplan_apply_profile(struct dg_kplan *plan, const char *profile);
/* The profile that fits a device when none is named, from its capabilities alone (never the vendor
 * string): llvmpipe for software rasterizers; nvidia (256-thread GEMV workgroups reduced with subgroup
 * adds, split attention) for a hardware device with compute subgroups and at least 256 invocations per
 * workgroup; mali (small workgroups, shared-memory reductions) otherwise. */
const char *dg_kplan_auto_profile(const struct dg_kp_caps *caps);
/* Merges a kernelPlan JSON object (as text). `src` labels the choices ("config FILE", "cli"). */
dg_status dg_kplan_apply_json(struct dg_kplan *plan, const char *json, const char *src);
/* Reads runtime.inference.kernelPlan and runtime.inference.kernelPath from a config file. */
dg_status dg_kplan_apply_config(struct dg_kplan *plan, const char *file);
/* Sets one choice from the command line (kernel path, profile handled by the caller). */
void dg_kp_choice_set(struct dg_kp_choice *c, const char *value, const char *src);
/* Records a veto: fused kernels will not be used, for `reason`. */
void dg_kplan_veto_fused(struct dg_kplan *plan, const char *reason);

/* Picks the path id for a model family and weight dtype ("f32", "f16", "q8_0", "q4_k") under the plan:
 * an explicit kernel_path wins; else <family>-<format> with q4kStrategy deciding among the Q4_K paths,
 * and a veto replacing a fused choice by its dequant fallback. */
dg_status dg_kplan_choose_path(const struct dg_kplan *plan, const char *family, const char *weight_dtype,
                               char *out, size_t out_size, char *src, size_t src_size);
/* Chooses, loads and validates the path for a model (dg_kplan_choose_path; a fused path vetoed by the
 * plan or its fused_check is replaced by its `fallback`, with one warning). */
dg_status dg_kplan_load_path(struct dg_kplan *plan, const struct dg_kp_registry *reg, const struct dg_kp_caps *caps,
                             const char *family, const char *weight_dtype, struct dg_kpath *out);
/* Adds to `s` the plan's preferred knob values for a path of weight format `wformat` that it does not set
 * itself (what resolving does with the path's own format): the executor builds a DQ prefill step, which
 * reads f16 copies of quantized weights, with the f16 preferences. */
void dg_kplan_step_prefs(const struct dg_kplan *plan, const struct dg_kp_registry *reg, const char *wformat,
                         struct dg_kp_step *s);
/* Resolves one phase (prefill or decode): per-step entries from the plan's variants (roles > phase >
 * default > the path's entry), split attention expanded into attention + attn_combine, layerPipeline
 * order; re-validates. Invalid variants are errors under strict, else warnings that keep the path's. */
dg_status dg_kplan_resolve(const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                           const struct dg_kp_caps *caps, const struct dg_kpath *p, bool prefill,
                           struct dg_kp_resolved *out);
void dg_kp_resolved_free(struct dg_kp_resolved *r);
/* Writes the resolved plan and every step (kernel, entry, defines, weights, slots, source) to `out`. */
void dg_kplan_print(FILE *out, const struct dg_kplan *plan, const struct dg_kpath *p,
                    const struct dg_kp_registry *reg);

#endif
