/* log.h: leveled logging to stderr. Results go to stdout; everything else (progress, warnings, stats) here. */
#ifndef DG_CORE_LOG_H
#define DG_CORE_LOG_H

#include <stdbool.h>

enum dg_log_level { DG_LOG_ERROR = 0, DG_LOG_WARN, DG_LOG_INFO, DG_LOG_VERBOSE, DG_LOG_DEBUG };

void dg_log_set_level(enum dg_log_level level);
enum dg_log_level dg_log_get_level(void);
void dg_log(enum dg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a warning once per process for a given key (e.g. the fused-kernel fallback notice). */
void dg_warn_once(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DG_ERROR(...) dg_log(DG_LOG_ERROR, __VA_ARGS__)
#define DG_WARN(...) dg_log(DG_LOG_WARN, __VA_ARGS__)
#define DG_INFO(...) dg_log(DG_LOG_INFO, __VA_ARGS__)
#define DG_VERBOSE(...) dg_log(DG_LOG_VERBOSE, __VA_ARGS__)
#define DG_DEBUG(...) dg_log(DG_LOG_DEBUG, __VA_ARGS__)

#endif
