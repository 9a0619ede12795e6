/* cli.h: how subcommands plug into the doppler-gl binary.
 *
 * Each subcommand lives in its own src/cli/cmd_*.c and registers itself with DG_COMMAND, so adding one
 * touches no central table. A command returns a process exit code (see dg_status_exit_code and the man
 * page's EXIT STATUS): 0 success, 1 runtime error, 2 usage error, 3 no GL device, 4 verification failed. */
#ifndef DG_CLI_CLI_H
#define DG_CLI_CLI_H

#include "core/status.h"

struct dg_command {
    const char *name;
    const char *summary; /* one line for `doppler-gl --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};

void dg_command_register(const struct dg_command *cmd);
const struct dg_command *dg_command_find(const char *name);
/* Commands sorted by name; returns the count. */
int dg_command_list(const struct dg_command ***out);

#define DG_COMMAND(ident, name_, summary_, fn_)                                        \
    static const struct dg_command dg_cmd_##ident = {name_, summary_, fn_};            \
    __attribute__((constructor)) static void dg_cmd_register_##ident(void)             \
    {                                                                                  \
        dg_command_register(&dg_cmd_##ident);                                          \
    }

/* Prints "doppler-gl CMD: message" and a hint to run --help on stderr; returns exit code 2. */
int dg_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the last library error for a failed status on stderr; returns its exit code. */
int dg_report_status(dg_status st);

#endif
