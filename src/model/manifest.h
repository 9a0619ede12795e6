/* manifest.h: doppler-gl's own model format (docs/FORMAT.md): a manifest.json plus 256-byte-aligned shards.
 *   - hparams_json.c   struct dg_hparams <-> the manifest's "config" object (every field)
 *   - manifest_write.c streaming writer used by the converter (shards, SHA-256, manifest.json)
 *   - manifest_read.c  mmap + validate a model folder into a struct dg_model */
#ifndef DG_MODEL_MANIFEST_H
#define DG_MODEL_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "core/status.h"
#include "model/model.h"

#define DG_FORMAT_VERSION 1
#define DG_SHARD_ALIGN 256

/* Opens a doppler-gl model folder `dir` (holding manifest.json): validates every tensor's shard, offset,
 * size, dtype and shape against the manifest and the shard files, maps the shards read-only and fills `m`
 * (source DG_SRC_MANIFEST). Release with dg_model_close_manifest (or dg_model_close once it dispatches). */
dg_status dg_model_open_manifest(const char *dir, struct dg_model *m);
void dg_model_close_manifest(struct dg_model *m);

/* Checks every shard's size and SHA-256 against the manifest in `dir` (DG_E_VERIFY on a mismatch). */
dg_status dg_manifest_verify(const char *dir);

/* Reads manifest.json of `dir` (parsed, not validated beyond JSON syntax). Caller frees with cJSON_Delete. */
dg_status dg_manifest_load_json(const char *dir, cJSON **out);

/* struct dg_hparams <-> JSON object. The reader checks types and ranges and names the bad key. */
cJSON *dg_hparams_to_json(const struct dg_hparams *hp);
dg_status dg_hparams_from_json(const cJSON *obj, const char *what, struct dg_hparams *hp);

/* ---- streaming writer ---- */

struct dg_manifest_writer;

/* Writes shards named shard-NNNNN.bin into `dir` (which must exist), starting a new shard before a tensor
 * that would take the current one past `shard_size` bytes (a tensor larger than that gets its own). */
dg_status dg_manifest_writer_open(struct dg_manifest_writer **w, const char *dir, uint64_t shard_size);
/* Starts a tensor of `nbytes` bytes; its data follows through dg_manifest_writer_write calls. */
dg_status dg_manifest_writer_begin(struct dg_manifest_writer *w, const struct dg_tensor *meta);
dg_status dg_manifest_writer_write(struct dg_manifest_writer *w, const void *data, uint64_t len);
dg_status dg_manifest_writer_end(struct dg_manifest_writer *w);
/* Closes the last shard and writes manifest.json: `root` (owned by the writer from here on) receives the
 * "shards" and "tensors" members and is written as it is. Frees the writer whatever the outcome. */
dg_status dg_manifest_writer_finish(struct dg_manifest_writer *w, cJSON *root);
/* Frees a writer after a failure (files stay; the caller removes its temporary folder). */
void dg_manifest_writer_abort(struct dg_manifest_writer *w);

const char *dg_layout_name(enum dg_layout l); /* "row", "column", "flat" */

#endif
