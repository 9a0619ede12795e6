/* plan_opts.h: the kernel-plan options shared by every command that runs a model (eval, and later infer,
 * bench, profile): --kernel-path, --kernel-profile, --config, --kernel-plan, --print-plan. */
#ifndef DG_CLI_PLAN_OPTS_H
#define DG_CLI_PLAN_OPTS_H

#include <stdbool.h>

#include "gl/gl.h"
#include "kpath/kpath.h"
#include "model/model.h"

#define DG_CLI_PLAN_HELP                                                                             \
    "  --kernel-path ID|FILE   kernel path to run (default: <family>-<weight format>)\n"             \
    "  --kernel-profile P      fast, safe, debug, fused, or a GPU family: llvmpipe, nvidia, mali,\n"  \
    "                          v3d, adreno (default: chosen from the device's capabilities)\n"      \
    "  --config FILE           JSON with runtime.inference.kernelPlan / kernelPath\n"               \
    "  --kernel-plan JSON      a kernelPlan object (overrides the config file)\n"                   \
    "  --print-plan            print the resolved plan and path (every step, kernel, defines, and\n" \
    "                          who set each choice) on stdout and exit\n"                    \
    "  --force-fused           use fused kernels even when check-compat finds the model\n"        \
    "                          INCOMPATIBLE (for testing fused kernels)\n"

struct dg_cli_plan_opts {
    const char *kernel_path, *profile, *config, *plan_json;
    bool print_plan;
    bool force_fused; /* skip the compatibility checker's veto (testing) */
};

/* 1 consumed, 0 not a plan option, -1 usage error printed. */
int dg_cli_plan_option(const char *cmd, int argc, char **argv, int *i, struct dg_cli_plan_opts *o);
/* Builds the plan (profile < config < command line) and loads the path for the model. */
dg_status dg_cli_plan_build(const struct dg_cli_plan_opts *o, const struct dg_gl_caps *caps, const struct dg_model *m,
                            const struct dg_kp_registry *reg, struct dg_kplan *plan, struct dg_kpath *path);
/* The model's weight format name for path choice: the dtype of most 2-D weights ("bf16", "q4_k"...). */
const char *dg_cli_model_weight_format(const struct dg_model *m);

#endif
