/* registry.c: the subcommand table filled by DG_COMMAND constructors, and the shared error printers. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct dg_command *commands[64];
static int n_commands;

void dg_command_register(const struct dg_command *cmd)
{
    if (n_commands < (int)(sizeof commands / sizeof commands[0]))
        commands[n_commands++] = cmd;
}

const struct dg_command *dg_command_find(const char *name)
{
    for (int i = 0; i < n_commands; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static int cmp_cmd(const void *a, const void *b)
{
    return strcmp((*(const struct dg_command *const *)a)->name, (*(const struct dg_command *const *)b)->name);
}

int dg_command_list(const struct dg_command ***out)
{
    qsort(commands, (size_t)n_commands, sizeof commands[0], cmp_cmd);
    *out = commands;
    return n_commands;
}

int dg_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "doppler-gl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'doppler-gl %s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

int dg_report_status(dg_status st)
{
    if (st == DG_OK)
        return 0;
    fprintf(stderr, "doppler-gl: error: %s\n", dg_last_error());
    return dg_status_exit_code(st);
}
