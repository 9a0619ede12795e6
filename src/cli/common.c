/* common.c: shared option parsing for GL-using subcommands; see common.h. */
#include "cli/common.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int dg_cli_begin(const char *cmd, struct dg_settings *s)
{
    dg_status st = dg_settings_load(s);
    if (st) {
        fprintf(stderr, "doppler-gl %s: error: %s\n", cmd, dg_last_error());
        return dg_status_exit_code(st);
    }
    dg_settings_apply_log(s);
    return 0;
}

int dg_cli_option_value(const char *cmd, const char *name, int argc, char **argv, int *i, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != 0)
        return 0;
    if (*i + 1 >= argc) {
        dg_usage_error(cmd, "option %s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int dg_cli_common_option(const char *cmd, int argc, char **argv, int *i, struct dg_settings *s)
{
    static const struct {
        const char *opt, *key;
    } valued[] = {{"--gl-platform", "gl.platform"}, {"--gl-device", "gl.device"}};
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
        const char *v;
        int r = dg_cli_option_value(cmd, valued[k].opt, argc, argv, i, &v);
        if (r < 0)
            return -1;
        if (r > 0) {
            if (dg_settings_set(s, valued[k].key, v, valued[k].opt) != DG_OK) {
                dg_usage_error(cmd, "%s", dg_last_error());
                return -1;
            }
            return 1;
        }
    }
    const char *a = argv[*i];
    if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
        s->log_verbose = s->log_verbose < 0 ? 1 : s->log_verbose + 1 > 2 ? 2 : s->log_verbose + 1;
        dg_settings_apply_log(s);
        return 1;
    }
    if (strcmp(a, "-vv") == 0) {
        s->log_verbose = 2;
        dg_settings_apply_log(s);
        return 1;
    }
    if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
        s->log_verbose = -1;
        dg_settings_apply_log(s);
        return 1;
    }
    return 0;
}

dg_status dg_cli_gl_open(const struct dg_settings *s, struct dg_gl **out)
{
    struct dg_gl_options opt = {
        .platform = s->gl_platform,
        .device = s->gl_device[0] ? s->gl_device : NULL,
        .max_ssbo_block = s->gl_max_ssbo_block,
        .program_cache = s->gl_program_cache ? 1 : -1,
    };
    return dg_gl_open(&opt, out);
}
