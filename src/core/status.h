/* status.h: the status codes every library call returns, and the one error-message buffer they fill.
 *
 * Library code never prints and never exits: it returns a dg_status and records a message with dg_fail().
 * The CLI layer prints dg_last_error() and maps the status to an exit code (see man/doppler-gl.1). */
#ifndef DG_CORE_STATUS_H
#define DG_CORE_STATUS_H

#include <stdarg.h>

typedef enum dg_status {
    DG_OK = 0,
    DG_E_USAGE,       /* bad command line or option value (exit 2) */
    DG_E_IO,          /* a file could not be opened, read or written */
    DG_E_FORMAT,      /* a file's contents are malformed or inconsistent */
    DG_E_UNSUPPORTED, /* well-formed, but asks for something we do not implement */
    DG_E_NOMEM,       /* an allocation failed */
    DG_E_GL,          /* a GL/EGL call or shader compile failed */
    DG_E_NODEVICE,    /* no GL context could be created on any platform (exit 3) */
    DG_E_VERIFY,      /* a check the user asked for failed (hash mismatch, test failure) (exit 4) */
    DG_E_INTERNAL,    /* a bug: an invariant did not hold */
} dg_status;

/* Records a printf-style message as the last error (thread-local) and returns `st`, so a failure site is
 * one line: `return dg_fail(DG_E_FORMAT, "%s: tensor %s: ...", path, name);` */
dg_status dg_fail(dg_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
dg_status dg_vfail(dg_status st, const char *fmt, va_list ap);

/* Prefixes the current message with more context ("loading model: " + old message) and returns `st`. */
dg_status dg_fail_context(dg_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *dg_last_error(void);
void dg_clear_error(void);
const char *dg_status_name(dg_status st);

/* Exit code the CLI uses for a status: 0 ok, 1 runtime error, 2 usage, 3 no GL device, 4 verification. */
int dg_status_exit_code(dg_status st);

#endif
