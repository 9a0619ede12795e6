/* hf_config.h: Hugging Face config.json (+ generation_config.json) → struct dg_hparams, for every family in
 * hparams.h, in both key styles: transformers 5 `rope_parameters` (flat, or per layer type for Gemma 3) and
 * the older `rope_theta` + `rope_scaling` (+ `rope_local_base_freq`, `partial_rotary_factor`,
 * `original_max_position_embeddings`) that most hub checkpoints still carry. */
#ifndef DG_MODEL_HF_CONFIG_H
#define DG_MODEL_HF_CONFIG_H

#include <stddef.h>

#include "core/status.h"
#include "model/hparams.h"

/* Reads DIR/config.json and, when present, DIR/generation_config.json. */
dg_status dg_hf_config_load(const char *dir, struct dg_hparams *hp);

/* Parses config text `cfg` (named `cfg_label` in errors) and optional generation config text `gen` (may be
 * NULL). */
dg_status dg_hf_config_parse(const char *cfg_label, const char *cfg, size_t cfg_len, const char *gen_label,
                             const char *gen, size_t gen_len, struct dg_hparams *hp);

#endif
