/* cmd_tune.c: `doppler-gl tune`: runs the workgroup auto-tuner (tune/tune.h) for a model on this device
 * and caches the winners, which every later plan for the same device, driver, model and kernel path
 * uses (--print-plan shows them as "tuner"). Without --force, results already cached are shown. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan_opts.h"
#include "core/log.h"
#include "core/paths.h"
#include "tune/tune.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl tune [-m MODEL] [--kernels LIST] [--json] [--force] [options]\n\n"
            "Tries candidate workgroup sizes and variants of each tunable decode kernel on the model's\n"
            "shapes, verifies each against the default variant, times them with GPU timer queries and\n"
            "caches the winners for this device; later runs use them automatically.\n\n"
            "Options:\n"
            "  -m, --model PATH        model folder or GGUF file (default: the bundled models/sotu-6m-q8_0)\n"
            "  --kernels LIST          comma-separated kernels to tune: matmul, ffn_gate_up, rmsnorm,\n"
            "                          add_rmsnorm, attention (default: all the path uses)\n"
            "  --force                 tune again even when results are cached\n"
            "  --json                  print the result as JSON\n"
            "  -p, --n-prompt N        prompt tokens before the timed decode tokens (default 64; 16 on a\n"
            "                          software rasterizer)\n"
            "  -r, --repetitions N     timed decode tokens per candidate, median kept (default 16; 4 in\n"
            "                          software)\n"
            "%s%s"
            "  -h, --help              show this help\n",
            DG_CLI_PLAN_HELP, DG_CLI_COMMON_HELP);
}

static void knobs_text(const struct dg_tune_knobset *ks, char *out, size_t n)
{
    int w = snprintf(out, n, "%s", ks->entry);
    for (int i = 0; i < ks->n_knobs && w > 0 && (size_t)w < n; i++)
        w += snprintf(out + w, n - (size_t)w, " %s=%s", ks->knobs[i].name, ks->knobs[i].value);
}

static void print_result(const struct dg_tune_result *r, bool cached, bool verbose)
{
    printf("%s tuner results for %s (%s), kernel path %s, on %s (%s); timing: %s\n", cached ? "cached" : "new",
           r->model, r->shape_desc, r->path_id, r->renderer, r->gl_version, r->timing_source);
    if (!cached)
        printf("%d prompt tokens, median of %d decode tokens per candidate, %.1f s\n", r->prompt, r->reps, r->seconds);
    printf("\n  %-26s %-12s %-18s %-32s %10s %-32s %10s %6s\n", "step", "kernel", "shape", "baseline", "us/token",
           "winner", "us/token", "gain");
    for (int t = 0; t < r->n_targets; t++) {
        const struct dg_tune_target *tg = &r->targets[t];
        char b[160], w[160];
        const struct dg_tune_candidate *base = &tg->cand[0], *win = &tg->cand[tg->winner];
        knobs_text(&base->ks, b, sizeof b);
        knobs_text(&win->ks, w, sizeof w);
        if (cached) {
            printf("  %-26s %-12s %-18s %-32s %10s %-32s %10.1f %6s\n", tg->role, tg->kernel, tg->shape, "-", "-", w,
                   win->us, "");
            continue;
        }
        int rejected = 0;
        for (int i = 1; i < tg->n_cand; i++)
            rejected += tg->cand[i].status != DG_TC_OK;
        printf("  %-26s %-12s %-18s %-32s %10.1f %-32s %10.1f %5.1f%%", tg->role, tg->kernel, tg->shape, b, base->us,
               tg->winner ? w : "(baseline)", win->us, base->us > 0 ? 100 * (1 - win->us / base->us) : 0);
        if (base->status != DG_TC_OK)
            printf("  baseline %s: %s", dg_tune_status_name(base->status), base->why);
        else if (rejected)
            printf("  (%d of %d candidates rejected)", rejected, tg->n_cand - 1);
        printf("\n");
        for (int i = 1; verbose && i < tg->n_cand; i++) {
            const struct dg_tune_candidate *c = &tg->cand[i];
            knobs_text(&c->ks, b, sizeof b);
            printf("      %-40s %-13s %10.1f us  err %.2g%s%s\n", b, dg_tune_status_name(c->status), c->us, c->max_err,
                   c->why[0] ? "  " : "", c->why);
        }
    }
    if (!cached && r->e2e_checked)
        printf("\nend to end (decode tokens per second, baseline / winners): %.1f / %.1f%s\n", r->e2e_base_tok_s,
               r->e2e_tuned_tok_s, r->e2e_reverted ? ": not faster, every step keeps its baseline" : "");
    printf("\n%s %s\n", cached ? "cache file:" : "saved to", r->file);
}

/* True when every kernel in `list` (all tunable ones when NULL) that the cached result could hold does. */
static bool cached_covers(const struct dg_tune_result *r, const char *list)
{
    if (!list)
        return r->n_targets > 0;
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        bool found = false;
        for (int t = 0; t < r->n_targets && !found; t++)
            found = strlen(r->targets[t].kernel) == l && !strncmp(r->targets[t].kernel, p, l);
        if (!found)
            return false;
        p += l + (p[l] == ',');
    }
    return true;
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return dg_usage_error("tune", "%s: '%s' is not an integer in [%d, %d]", opt, v, lo, hi);
    *out = (int)x;
    return 0;
}

static int run(int argc, char **argv)
{
    struct dg_settings s;
    int rc = dg_cli_begin("tune", &s);
    if (rc)
        return rc;
    const char *model = NULL, *kernels = NULL, *ps = NULL, *rs = NULL;
    bool json = false, force = false;
    struct dg_cli_plan_opts po = {0};
    for (int i = 1; i < argc; i++) {
        int k;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if ((k = dg_cli_common_option("tune", argc, argv, &i, &s)) ||
            (k = dg_cli_plan_option("tune", argc, argv, &i, &po)) ||
            (k = dg_cli_option_value("tune", "--model", argc, argv, &i, &model)) ||
            (k = dg_cli_option_value("tune", "-m", argc, argv, &i, &model)) ||
            (k = dg_cli_option_value("tune", "--kernels", argc, argv, &i, &kernels)) ||
            (k = dg_cli_option_value("tune", "--n-prompt", argc, argv, &i, &ps)) ||
            (k = dg_cli_option_value("tune", "-p", argc, argv, &i, &ps)) ||
            (k = dg_cli_option_value("tune", "--repetitions", argc, argv, &i, &rs)) ||
            (k = dg_cli_option_value("tune", "-r", argc, argv, &i, &rs))) {
            if (k < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--force"))
            force = true;
        else
            return dg_usage_error("tune", "unknown option '%s'", argv[i]);
    }
    struct dg_tune_options o = {.kernels = kernels, .progress = !json};
    if ((ps && parse_int("-p", ps, 4, 4096, &o.prompt)) || (rs && parse_int("-r", rs, 1, 1000, &o.reps)))
        return 2;
    if (kernels) {
        if (!*kernels)
            return dg_usage_error("tune", "--kernels: empty list");
        for (const char *p = kernels; *p;) {
            size_t l = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(l < sizeof name ? l : sizeof name - 1), p);
            if (!dg_tune_kernel_tunable(name))
                return dg_usage_error("tune", "--kernels: \"%s\" is not a tunable kernel (known: matmul, ffn_gate_up, "
                                      "rmsnorm, add_rmsnorm, attention)", name);
            p += l + (p[l] == ',');
        }
    }
    dg_settings_apply_log(&s);
    char defmodel[4200];
    if (!model) {
        snprintf(defmodel, sizeof defmodel, "%s/models/sotu-6m-q8_0", dg_data_dir());
        model = defmodel;
    }

    struct dg_model m;
    dg_status st = dg_model_open(model, &m);
    if (st)
        return dg_report_status(st);
    struct dg_gl *gl = NULL;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_tune_result *r = calloc(1, sizeof *r), *old = calloc(1, sizeof *old);
    if (!r || !old) {
        st = dg_fail(DG_E_NOMEM, "out of memory");
        goto out;
    }
    if ((st = dg_cli_gl_open(&s, &gl)) || (st = dg_kp_registry_load_default(&reg)) ||
        (st = dg_cli_plan_build(&po, dg_gl_caps(gl), &m, &reg, &plan, &path)))
        goto out;
    if (po.print_plan) {
        dg_kplan_print(stdout, &plan, &path, &reg);
        goto out;
    }
    char file[4096];
    struct stat sb;
    bool have_old = dg_tune_cache_file(dg_gl_caps(gl), &m, path.id, file, sizeof file) && stat(file, &sb) == 0;
    if (have_old && dg_tune_load(file, old) != DG_OK) {
        DG_WARN("%s; tuning again", dg_last_error());
        dg_clear_error();
        have_old = false;
    }
    bool cached = have_old && !force && cached_covers(old, kernels);
    if (cached) {
        *r = *old;
    } else {
        if ((st = dg_tune_run(gl, &m, &plan, &reg, &path, &o, r)))
            goto out;
        /* --kernels: keep the cached winners of the kernels not tuned now */
        for (int t = 0; have_old && kernels && t < old->n_targets && r->n_targets < DG_TUNE_MAX_TARGETS; t++) {
            bool now = false;
            for (int u = 0; u < r->n_targets; u++)
                now |= !strcmp(r->targets[u].kernel, old->targets[t].kernel);
            if (!now) {
                r->targets[r->n_targets] = old->targets[t];
                r->targets[r->n_targets].n_cand = 1;
                r->targets[r->n_targets].winner = 0;
                r->n_targets++;
            }
        }
        if ((st = dg_tune_save(r, dg_gl_caps(gl), &m)))
            goto out;
    }
    if (json) {
        cJSON *root = dg_tune_result_json(r);
        cJSON_AddStringToObject(root, "file", r->file);
        cJSON_AddBoolToObject(root, "cached", cached);
        char *text = cJSON_Print(root);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        print_result(r, cached, dg_log_get_level() >= DG_LOG_VERBOSE);
        if (cached)
            printf("(use --force to tune again)\n");
    }
out:
    free(r);
    free(old);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    if (gl)
        dg_gl_close(gl);
    dg_model_close(&m);
    return dg_report_status(st);
}

DG_COMMAND(tune, "tune", "try workgroup sizes and variants of the decode kernels on this device; cache the winners", run)
