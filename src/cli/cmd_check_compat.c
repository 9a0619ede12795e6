/* cmd_check_compat.c: `doppler-gl check-compat MODEL`: scores a model's normalization weights for fused
 * kernels (compat/compat.h) and prints the status, the reason and, with --verbose, the per-layer table.
 * The status is data: every status exits 0; errors (unreadable model, unwritable export) exit 1. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "compat/compat.h"
#include "core/log.h"
#include "model/model.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: doppler-gl check-compat MODEL [options]\n\n"
                 "Checks whether MODEL (a Hugging Face folder, a converted doppler-gl folder or a GGUF file) is safe\n"
                 "for fused kernels: per norm tensor the ratio max|w| / median|w|, the share of layers above 10x\n"
                 "and an error-amplification estimate give a score and a status (COMPATIBLE, WARNING,\n"
                 "INCOMPATIBLE). The result is cached next to the model. Every status exits 0.\n\n"
                 "Options:\n"
                 "  --verbose          also print the per-layer table of ratios\n"
                 "  --json             print the report as one JSON object (and export JSON)\n"
                 "  --export FILE      also write the report to FILE (text, or JSON with --json)\n"
                 "  --no-cache         compute the report without reading or writing the cache\n"
                 "  -q, --quiet        only warnings and errors on stderr\n"
                 "  -h, --help         show this help\n");
}

static int run(int argc, char **argv)
{
    const char *cmd = "check-compat";
    struct dg_settings s;
    int rc = dg_cli_begin(cmd, &s);
    if (rc)
        return rc;
    const char *model = NULL, *export_file = NULL;
    bool verbose = false, json = false, no_cache = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--verbose") == 0)
            verbose = true;
        else if (strcmp(a, "--json") == 0)
            json = true;
        else if (strcmp(a, "--no-cache") == 0)
            no_cache = true;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
            dg_log_set_level(DG_LOG_WARN);
        else if ((r = dg_cli_option_value(cmd, "--export", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            if (!*v)
                return dg_usage_error(cmd, "--export needs a file name");
            export_file = v;
        } else if (a[0] == '-' && a[1])
            return dg_usage_error(cmd, "unknown option %s", a);
        else if (model)
            return dg_usage_error(cmd, "one MODEL only (got %s and %s)", model, a);
        else
            model = a;
    }
    if (!model)
        return dg_usage_error(cmd, "missing MODEL (a model folder or a GGUF file)");

    struct dg_model m;
    dg_status st = dg_model_open(model, &m);
    if (st) {
        /* make sure the message names the path, whatever the reader said */
        if (!strstr(dg_last_error(), model))
            dg_fail_context(st, "%s: ", model);
        return dg_report_status(st);
    }
    struct dg_compat_report r;
    st = no_cache ? dg_compat_check(&m, &r) : dg_compat_get(&m, &r);
    dg_model_close(&m);
    if (st)
        return dg_report_status(dg_fail_context(st, "checking %s: ", model));

    int exit_code = 0;
    if (json) {
        cJSON *o = dg_compat_report_json(&r);
        if (o) {
            cJSON_AddStringToObject(o, "cache_file", r.cache_file);
            cJSON_AddBoolToObject(o, "from_cache", r.from_cache);
        }
        char *text = o ? cJSON_Print(o) : NULL;
        cJSON_Delete(o);
        if (!text) {
            fprintf(stderr, "doppler-gl %s: error: out of memory\n", cmd);
            exit_code = 1;
        } else {
            printf("%s\n", text);
            free(text);
        }
    } else {
        dg_compat_report_text(stdout, &r, verbose);
        if (r.cache_file[0])
            printf("Cache:            %s (%s)\n", r.cache_file, r.from_cache ? "read" : "written");
    }
    if (export_file && !exit_code) {
        if ((st = dg_compat_export(&r, export_file, json)))
            exit_code = dg_report_status(st);
        else
            DG_INFO("report written to %s", export_file);
    }
    dg_compat_report_free(&r);
    return exit_code;
}

DG_COMMAND(check_compat, "check-compat", "check whether a model is safe for fused kernels", run)
