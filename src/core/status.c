/* status.c: the thread-local last-error buffer behind dg_fail(). */
#include "core/status.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[2048];

dg_status dg_vfail(dg_status st, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return st;
}

dg_status dg_fail(dg_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dg_vfail(st, fmt, ap);
    va_end(ap);
    return st;
}

dg_status dg_fail_context(dg_status st, const char *fmt, ...)
{
    char prefix[1024], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t np = strlen(prefix);
    if (np >= sizeof last_error)
        np = sizeof last_error - 1;
    memcpy(last_error, prefix, np);
    size_t room = sizeof last_error - 1 - np, no = strnlen(old, room);
    memcpy(last_error + np, old, no);
    last_error[np + no] = 0;
    return st;
}

const char *dg_last_error(void) { return last_error[0] ? last_error : "unknown error"; }
void dg_clear_error(void) { last_error[0] = 0; }

const char *dg_status_name(dg_status st)
{
    switch (st) {
    case DG_OK: return "ok";
    case DG_E_USAGE: return "usage error";
    case DG_E_IO: return "I/O error";
    case DG_E_FORMAT: return "format error";
    case DG_E_UNSUPPORTED: return "unsupported";
    case DG_E_NOMEM: return "out of memory";
    case DG_E_GL: return "GL error";
    case DG_E_NODEVICE: return "no GL device";
    case DG_E_VERIFY: return "verification failed";
    case DG_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}

int dg_status_exit_code(dg_status st)
{
    switch (st) {
    case DG_OK: return 0;
    case DG_E_USAGE: return 2;
    case DG_E_NODEVICE: return 3;
    case DG_E_VERIFY: return 4;
    default: return 1;
    }
}
