/* tokenizer.h: text ↔ token ids, from a Hugging Face tokenizer.json or from a GGUF vocabulary.
 *
 * One engine serves both kinds of BPE in use: byte-level (GPT-2 byte map, regex pre-tokenizer: Llama 3,
 * Qwen, sotu-6m) and SentencePiece-style (▁ for spaces, byte fallback <0xNN>: Gemma, Mistral, Llama 2).
 * The pipeline follows the `tokenizers` library step by step (added tokens → normalizer → pre-tokenizer →
 * model → post-processor; decoders in reverse) so ids agree with it exactly. A loaded tokenizer is
 * immutable: encode/decode may run from several threads at once. */
#ifndef DG_TOK_TOKENIZER_H
#define DG_TOK_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct dg_tokenizer;

/* Loads a tokenizer.json; `config_json` (tokenizer_config.json: BOS/EOS strings, add_bos_token,
 * chat_template) may be NULL. Errors name the file and the JSON field. */
dg_status dg_tokenizer_load(const char *tokenizer_json, const char *config_json, struct dg_tokenizer **out);
/* Loads DIR/tokenizer.json with DIR/tokenizer_config.json and DIR/generation_config.json when present. */
dg_status dg_tokenizer_load_dir(const char *dir, struct dg_tokenizer **out);
void dg_tokenizer_free(struct dg_tokenizer *tok);

/* A GGUF vocabulary (tokenizer.ggml.*), as arrays the GGUF reader hands over. Strings are not assumed
 * NUL-terminated: give lengths, or NULL lengths for NUL-terminated strings. */
struct dg_vocab_arrays {
    const char *model;            /* tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE) */
    const char *pre;              /* tokenizer.ggml.pre: "llama-bpe", "qwen2", "default", ... (NULL: default) */
    uint32_t n_tokens;
    const char *const *tokens;    /* [n_tokens] */
    const uint32_t *token_lens;   /* [n_tokens] or NULL */
    const float *scores;          /* [n_tokens]; required for "llama" */
    const int32_t *token_types;   /* [n_tokens] or NULL: 1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte */
    uint32_t n_merges;            /* "gpt2": merges as "a b" */
    const char *const *merges;
    const uint32_t *merge_lens;   /* [n_merges] or NULL */
    int32_t bos_id, eos_id, eot_id, unk_id, pad_id; /* -1 when absent */
    int add_bos, add_eos;         /* tokenizer.ggml.add_bos_token / add_eos_token; -1 when absent */
    int add_space_prefix;         /* tokenizer.ggml.add_space_prefix ("llama"); -1 when absent (= true) */
    const char *chat_template;    /* tokenizer.chat_template or NULL */
    const char *source;           /* file name for error messages (may be NULL) */
};
/* Builds a tokenizer from a GGUF vocabulary. "llama" uses llama.cpp's SentencePiece algorithm (merge the
 * adjacent pair whose concatenation has the best score); "gpt2" uses rank-ordered BPE over the byte map. */
dg_status dg_tokenizer_from_gguf_vocab(const struct dg_vocab_arrays *v, struct dg_tokenizer **out);

/* Encoding options. */
enum {
    DG_TOK_ADD_SPECIAL = 1u << 0,   /* add BOS/EOS as the tokenizer's post-processor says */
    DG_TOK_NO_PARSE_SPECIAL = 1u << 1, /* treat the text of special tokens as plain text */
};
/* Encodes `len` bytes of UTF-8 text; *ids is malloc'd (free it), *n_ids its length. */
dg_status dg_tokenizer_encode(const struct dg_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids);

enum { DG_TOK_SKIP_SPECIAL = 1u << 0 };
/* Decodes ids to text through the tokenizer's decoders; *text is malloc'd and NUL-terminated. */
dg_status dg_tokenizer_decode(const struct dg_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char **text, size_t *len);

/* The vocabulary string of a token as stored (e.g. "Ġstate", "▁hi", "<0x0A>"), or NULL if id is out of range. */
const char *dg_tokenizer_token_str(const struct dg_tokenizer *tok, int32_t id, size_t *len);
/* The raw bytes this token contributes to the output (byte map undone, ▁ → space, <0xNN> → the byte),
 * for streaming. No start-of-text stripping. Returns the byte count written (at most cap) or -1. */
int dg_tokenizer_token_bytes(const struct dg_tokenizer *tok, int32_t id, char *buf, size_t cap);
int32_t dg_tokenizer_token_id(const struct dg_tokenizer *tok, const char *str, size_t len); /* -1 if none */
bool dg_tokenizer_is_special(const struct dg_tokenizer *tok, int32_t id);

int32_t dg_tokenizer_n_vocab(const struct dg_tokenizer *tok); /* highest id + 1 */
int32_t dg_tokenizer_bos(const struct dg_tokenizer *tok);     /* -1 when none */
int32_t dg_tokenizer_eos(const struct dg_tokenizer *tok);     /* -1 when none */
/* Every id that ends generation (EOS, EOT, <|eot_id|>, <|im_end|>, <end_of_turn>, generation_config's
 * eos_token_id list); returns the count and sets *ids (owned by the tokenizer). */
size_t dg_tokenizer_eog_ids(const struct dg_tokenizer *tok, const int32_t **ids);
bool dg_tokenizer_is_eog(const struct dg_tokenizer *tok, int32_t id);
/* The chat template string (tokenizer_config.json or GGUF), NULL when the model has none. */
const char *dg_tokenizer_chat_template(const struct dg_tokenizer *tok);
/* The BOS/EOS token text used by chat templates ("<bos>", "<|begin_of_text|>"), "" when none. */
const char *dg_tokenizer_bos_str(const struct dg_tokenizer *tok);
const char *dg_tokenizer_eos_str(const struct dg_tokenizer *tok);

#endif
