/* plan_opts.c: see plan_opts.h. */
#include "cli/plan_opts.h"

#include <stdio.h>
#include <string.h>

#include "cli/common.h"
#include "compat/compat.h"
#include "core/log.h"
#include "tune/tune.h"

int dg_cli_plan_option(const char *cmd, int argc, char **argv, int *i, struct dg_cli_plan_opts *o)
{
    int r;
    if ((r = dg_cli_option_value(cmd, "--kernel-path", argc, argv, i, &o->kernel_path)))
        return r;
    if ((r = dg_cli_option_value(cmd, "--kernel-profile", argc, argv, i, &o->profile)))
        return r;
    if ((r = dg_cli_option_value(cmd, "--config", argc, argv, i, &o->config)))
        return r;
    if ((r = dg_cli_option_value(cmd, "--kernel-plan", argc, argv, i, &o->plan_json)))
        return r;
    if (!strcmp(argv[*i], "--print-plan")) {
        o->print_plan = true;
        return 1;
    }
    if (!strcmp(argv[*i], "--force-fused")) {
        o->force_fused = true;
        return 1;
    }
    return 0;
}

const char *dg_cli_model_weight_format(const struct dg_model *m)
{
    int count[DG_DT_COUNT] = {0};
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].ndim >= 2 && (unsigned)m->tensors[i].dtype < DG_DT_COUNT)
            count[m->tensors[i].dtype]++;
    int best = DG_DT_F32;
    for (int d = 0; d < DG_DT_COUNT; d++)
        if (count[d] > count[best])
            best = d;
    /* a Q4_K_M mix is mostly q4_k with some q6_k / q5_0: any q4_k makes it a q4_k model */
    if (count[DG_DT_Q4_K] > 0)
        best = DG_DT_Q4_K;
    /* GPT-OSS ships its experts in MXFP4 and the rest in BF16: keep the experts in their blocks */
    else if (count[DG_DT_MXFP4] > 0)
        best = DG_DT_MXFP4;
    return dg_dtype_info((enum dg_dtype)best)->name;
}

dg_status dg_cli_plan_build(const struct dg_cli_plan_opts *o, const struct dg_gl_caps *caps, const struct dg_model *m,
                            const struct dg_kp_registry *reg, struct dg_kplan *plan, struct dg_kpath *path)
{
    struct dg_kp_caps kc = {caps->subgroup, caps->is_software, caps->max_invocations, caps->max_shared_memory};
    dg_kplan_init(plan);
    const char *prof = o->profile ? o->profile : dg_kplan_auto_profile(&kc);
    dg_status st = dg_kplan_apply_profile(plan, prof);
    if (st)
        return st;
    if (!o->profile)
        snprintf(plan->profile.src, sizeof plan->profile.src, "auto: device capabilities");
    else
        snprintf(plan->profile.src, sizeof plan->profile.src, "cli");
    if (o->config && (st = dg_kplan_apply_config(plan, o->config)))
        return st;
    if (o->plan_json && (st = dg_kplan_apply_json(plan, o->plan_json, "cli --kernel-plan")))
        return st;
    if (o->kernel_path)
        dg_kp_choice_set(&plan->kernel_path, o->kernel_path, "cli");
    /* A model may name its default path (manifest inference.kernelPath): it replaces the default for the
     * weights when nothing chose a path (nor, for Q4_K weights, a Q4_K strategy), and is skipped with a
     * warning when this build has no such path. */
    bool q4k_chosen = !strcmp(dg_cli_model_weight_format(m), "q4_k") && plan->q4k_strategy.value[0] &&
                      strcmp(plan->q4k_strategy.value, "auto") != 0;
    if (!plan->kernel_path.value[0] && m->kernel_path[0] && !q4k_chosen) {
        char file[1200];
        FILE *f = dg_kpath_resolve_file(m->kernel_path, file, sizeof file) == DG_OK ? fopen(file, "r") : NULL;
        if (f) {
            fclose(f);
            dg_kp_choice_set(&plan->kernel_path, m->kernel_path, "model manifest");
        } else {
            dg_clear_error();
            dg_warn_once("manifest-path", "%s names kernel path %s, which this build does not have; using the default "
                         "for the weights", m->path, m->kernel_path);
        }
    }
    /* The checker only runs if the plan ends up choosing a fused path (it installs the plan's veto hook). */
    dg_compat_apply(m, plan, o->force_fused);
    st = dg_kplan_load_path(plan, reg, &kc, dg_arch_name(m->hp.arch), dg_cli_model_weight_format(m), path);
    /* cached `doppler-gl tune` winners for this device, model and path (below config/CLI choices) */
    if (!st)
        dg_tune_apply_cached(plan, caps, m, path->id);
    return st;
}
