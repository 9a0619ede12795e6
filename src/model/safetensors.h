/* safetensors.h: a read-only, validating reader for Hugging Face safetensors files (one file, or the shards
 * listed by model.safetensors.index.json). Files are mapped, never copied; every tensor's header entry is
 * checked (dtype known, shape sane, data_offsets ordered, inside the data section and matching the shape)
 * before anything points into the mapping. No GL, so it can be fuzzed. */
#ifndef DG_MODEL_SAFETENSORS_H
#define DG_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define DG_ST_MAX_DIMS 8
/* The safetensors format caps the JSON header at 100 MB; anything larger is refused before reading it. */
#define DG_ST_MAX_HEADER (100u * 1024u * 1024u)
#define DG_ST_MAX_FILES 4096

/* Element types we accept. U8/I8/U32 exist for MXFP4 blocks and scales (GPT-OSS checkpoints). */
enum dg_st_dtype { DG_ST_F32 = 0, DG_ST_F16, DG_ST_BF16, DG_ST_U8, DG_ST_I8, DG_ST_U32, DG_ST_COUNT };

struct dg_st_tensor {
    char *name; /* owned */
    enum dg_st_dtype dtype;
    int ndim;
    int64_t shape[DG_ST_MAX_DIMS];
    const uint8_t *data; /* inside the file's mapping */
    uint64_t nbytes;
    int file; /* index into dg_safetensors.files */
};

struct dg_st_file {
    char *path;       /* owned */
    const void *base; /* mapping (or caller's buffer when mapped == 0) */
    size_t size;
    int mapped;
};

struct dg_safetensors {
    struct dg_st_file *files;
    int n_files;
    struct dg_st_tensor *tensors;
    int n_tensors;
};

const char *dg_st_dtype_name(enum dg_st_dtype dt);
size_t dg_st_dtype_size(enum dg_st_dtype dt);

/* Opens `path`: a single .safetensors file, or a folder holding model.safetensors.index.json (whose shards
 * are all opened) or model.safetensors. On failure `st` is left empty (nothing to close). */
dg_status dg_safetensors_open(const char *path, struct dg_safetensors *st);
/* Parses an in-memory file image (not copied: it must outlive `st`), appending its tensors; `label` names it
 * in error messages. For fuzzing and tests. */
dg_status dg_safetensors_add_buffer(struct dg_safetensors *st, const char *label, const void *buf, size_t size);
void dg_safetensors_close(struct dg_safetensors *st);
/* NULL when absent. */
const struct dg_st_tensor *dg_safetensors_find(const struct dg_safetensors *st, const char *name);

#endif
