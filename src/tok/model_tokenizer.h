/* model_tokenizer.h: the tokenizer that belongs to a model path, whatever the model's source: a folder's
 * tokenizer.json (Hugging Face or doppler-gl format) or a GGUF file's own tokenizer.ggml.* vocabulary. */
#ifndef DG_TOK_MODEL_TOKENIZER_H
#define DG_TOK_MODEL_TOKENIZER_H

#include "core/status.h"
#include "tok/tokenizer.h"

/* `path` is a model folder, a tokenizer.json file, or a .gguf file. */
dg_status dg_tokenizer_for_model_path(const char *path, struct dg_tokenizer **out);
/* From a GGUF file's vocabulary metadata. */
dg_status dg_tokenizer_from_gguf_file(const char *path, struct dg_tokenizer **out);

#endif
