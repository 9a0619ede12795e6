/* readfile.h: reading a small text file (a cache entry, a report) whole, with a size bound, for callers
 * that treat a missing, unreadable or oversized file alike (they fall back or rebuild). */
#ifndef DG_CORE_READFILE_H
#define DG_CORE_READFILE_H

#include <stddef.h>

/* The NUL-terminated contents of `path`, or NULL if it cannot be opened or read, or holds more than
 * `max_bytes` bytes. The caller frees it. */
char *dg_read_small_file(const char *path, size_t max_bytes);

#endif
