/* log.c: stderr logging with a process-wide level and a small set of warn-once keys. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum dg_log_level current_level = DG_LOG_INFO;

void dg_log_set_level(enum dg_log_level level) { current_level = level; }
enum dg_log_level dg_log_get_level(void) { return current_level; }

static void vlog(enum dg_log_level level, const char *fmt, va_list ap)
{
    static const char *const prefix[] = {"error: ", "warning: ", "", "", "debug: "};
    fprintf(stderr, "doppler-gl: %s", prefix[level]);
    vfprintf(stderr, fmt, ap);
    size_t n = strlen(fmt);
    if (n == 0 || fmt[n - 1] != '\n')
        fputc('\n', stderr);
}

void dg_log(enum dg_log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void dg_warn_once(const char *key, const char *fmt, ...)
{
    static char seen[32][64];
    static int nseen;
    for (int i = 0; i < nseen; i++)
        if (strncmp(seen[i], key, sizeof seen[i] - 1) == 0)
            return;
    if (nseen < 32)
        snprintf(seen[nseen++], sizeof seen[0], "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vlog(DG_LOG_WARN, fmt, ap);
    va_end(ap);
}
