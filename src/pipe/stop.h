/* stop.h: when generation stops, on the CPU side: the model's EOS ids (several: Llama 3 has
 * <|eot_id|> and <|end_of_text|>), the first stop in a group of ids read back from the GPU loop, and
 * stop strings over the decoded text for streaming: text that could be the start of a stop string is
 * held back until it cannot be, a matched stop string and everything after it are dropped, and a UTF-8
 * character split across tokens is printed whole. -n and the context limit are the caller's. */
#ifndef DG_PIPE_STOP_H
#define DG_PIPE_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define DG_STOP_MAX_STRINGS 16
#define DG_STOP_MAX_LEN 256 /* bytes per stop string */

struct dg_stop;

/* Copies the EOS ids and the (non-empty) stop strings. */
dg_status dg_stop_create(const uint32_t *eos, int n_eos, const char *const *strings, int n_strings,
                         struct dg_stop **out);
void dg_stop_destroy(struct dg_stop *s);

bool dg_stop_is_eos(const struct dg_stop *s, uint32_t id);
/* Index of the first EOS id in ids[0, n), or -1: where a multi-step group is trimmed. */
int dg_stop_first_eos(const struct dg_stop *s, const uint32_t *ids, int n);

/* Feeds the text of the next token(s). On return [*out, *out + *out_len) may be printed now (valid until
 * the next call); *stopped is true once a stop string has matched (the text from its first byte on is
 * dropped, and later feeds print nothing). */
dg_status dg_stop_feed(struct dg_stop *s, const char *text, size_t len, const char **out, size_t *out_len,
                       bool *stopped);
/* End of generation (EOS, -n, context): whatever is still held back (a partial stop string, or an
 * incomplete UTF-8 sequence the model never finished), unless a stop string matched. */
void dg_stop_flush(struct dg_stop *s, const char **out, size_t *out_len);
/* Starts a new reply (chat turn): forgets held-back text and the matched state. */
void dg_stop_reset(struct dg_stop *s);

/* The longest prefix of s[0, len) that does not end inside a UTF-8 sequence that later bytes could still
 * complete. Invalid bytes count as complete (they are printed as they are). */
size_t dg_utf8_complete_prefix(const char *s, size_t len);

#endif
