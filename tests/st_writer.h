/* st_writer.h: tests that build Hugging Face checkpoints on the fly (other expert forms, MXFP4 blocks):
 * a minimal safetensors writer and helpers to copy a fixture's tensors and config. */
#ifndef DG_TESTS_ST_WRITER_H
#define DG_TESTS_ST_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/safetensors.h"

struct wt {
    char name[128];
    const char *dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
};

/* Writes tensors t[0..n) to a safetensors file at path; false on an I/O failure. */
bool st_write(const char *path, const struct wt *t, int n);
/* Copies src/config.json to dst/config.json. */
void st_copy_config(const char *src, const char *dst);
/* A struct wt pointing at a loaded safetensors tensor (renamed when name is non-NULL). */
struct wt st_from_tensor(const struct dg_st_tensor *s, const char *name);

#endif
