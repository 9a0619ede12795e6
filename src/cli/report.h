/* report.h: what `bench` and `profile` record about a run: the device, the model's shape and
 * quantization (as cJSON objects), names safe for file names, and result files written atomically
 * (a new bench result never replaces an older one). */
#ifndef DG_CLI_REPORT_H
#define DG_CLI_REPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "gl/gl.h"
#include "model/model.h"

/* Lower-case [a-z0-9._] runs joined by single '-', trimmed; "unknown" when nothing is left. */
void dg_report_sanitize(const char *in, char *out, size_t n);
/* The GPU's short name for file names: the renderer up to " (" or '/', sanitized ("llvmpipe",
 * "nvidia-h100-80gb-hbm3"). */
void dg_report_gpu_name(const struct dg_gl_caps *c, char *out, size_t n);
/* The driver: GL_VERSION after "OpenGL ES N.N " ("Mesa 24.0.5", "NVIDIA 550.54.15"), else the vendor. */
void dg_report_driver(const struct dg_gl_caps *c, char *out, size_t n);
/* The model's name: the last component of its path without ".gguf", sanitized. */
void dg_report_model_name(const char *path, char *out, size_t n);
/* The weights' quantization as one label: the dtype holding most matrix bytes, "q4_k_m" for a Q4_K mix
 * with 6-bit tensors. */
const char *dg_report_quant_label(const struct dg_model *m);
/* Total elements of every tensor. */
uint64_t dg_report_params(const struct dg_model *m);

cJSON *dg_report_device_json(const struct dg_gl *gl);
/* name, path, arch and the shape: layers, hidden, heads, kv_heads, head_dim, ffn, vocab, params, ... */
cJSON *dg_report_model_json(const struct dg_model *m);
/* label, bits per weight, and tensors/bytes per dtype. */
cJSON *dg_report_quant_json(const struct dg_model *m);

/* Local date "YYYY-MM-DD" and UTC time "YYYY-MM-DDTHH:MM:SSZ". */
void dg_report_date(char *date, size_t dn, char *iso, size_t in);

/* Creates `dir` (and its parents), then writes DIR/STEM.EXT, or STEM-2.EXT, STEM-3.EXT... when taken,
 * through a temporary file linked into place, so readers never see half a file and no earlier result
 * is replaced. The name used goes to `path_out`. */
dg_status dg_report_write_new(const char *dir, const char *stem, const char *ext, const char *text, char *path_out,
                              size_t path_n);
/* Writes `path` atomically (temporary file, then rename), replacing it. */
dg_status dg_report_write_file(const char *path, const char *text);

#endif
