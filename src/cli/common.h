/* common.h: the options every GL-using subcommand shares (--gl-platform, --gl-device, -v, -q), applied
 * over the settings files and environment, and opening the GL context from the result.
 *
 * A command's parsing loop:
 *     struct dg_settings s;
 *     int rc = dg_cli_begin("info", &s);          // loads settings; non-zero = exit code
 *     for (int i = 1; i < argc; i++) {
 *         int r = dg_cli_common_option("info", argc, argv, &i, &s);
 *         if (r < 0) return 2;                    // usage error already printed
 *         if (r > 0) continue;                    // consumed (with its value)
 *         ... the command's own options ...
 *     }
 *     dg_settings_apply_log(&s);
 * and its --help prints DG_CLI_COMMON_HELP. */
#ifndef DG_CLI_COMMON_H
#define DG_CLI_COMMON_H

#include "core/settings.h"
#include "gl/gl.h"

#define DG_CLI_COMMON_HELP                                                                         \
    "  --gl-platform P    EGL platform: auto (default), gbm, device, surfaceless or default\n"   \
    "  --gl-device D      a /dev/dri/renderD* path or an EGL device index\n"                     \
    "  -v, --verbose      more detail on stderr (twice: debug)\n"                                \
    "  -q, --quiet        only warnings and errors on stderr\n"

/* Loads the settings (files, environment); prints the error and returns its exit code on failure. */
int dg_cli_begin(const char *cmd, struct dg_settings *s);
/* Handles argv[*i] if it is a common option ("--opt VALUE" or "--opt=VALUE"): returns 1 and advances *i
 * past a separate value, 0 when it is not one, -1 after printing a usage error. */
int dg_cli_common_option(const char *cmd, int argc, char **argv, int *i, struct dg_settings *s);
/* For a command's own options: if argv[*i] is `name` ("--name V" or "--name=V"), sets *value and returns
 * 1; 0 when not; -1 after a usage error (missing value). */
int dg_cli_option_value(const char *cmd, const char *name, int argc, char **argv, int *i, const char **value);
/* Opens the GL context the settings ask for. */
dg_status dg_cli_gl_open(const struct dg_settings *s, struct dg_gl **out);

#endif
