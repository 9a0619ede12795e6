/* text_stream.h: turns generated token ids into text for streaming: whole UTF-8 characters only (a
 * character split across tokens is printed once complete), and text that could be the start of a stop
 * string is held back until it is known not to be one; a completed stop string ends the stream and is
 * not printed. */
#ifndef DG_CLI_TEXT_STREAM_H
#define DG_CLI_TEXT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct dg_text_stream {
    char *pending; /* decoded but not yet emitted */
    size_t len, cap;
    char *all;     /* everything emitted (for --json) */
    size_t all_len, all_cap;
    const char *const *stops;
    int n_stops;
    FILE *out;     /* NULL: collect only */
    bool stopped;
};

void dg_text_stream_init(struct dg_text_stream *ts, FILE *out, const char *const *stops, int n_stops);
/* Adds a token's bytes; returns true when a stop string completed (the caller stops generating). */
bool dg_text_stream_push(struct dg_text_stream *ts, const char *bytes, size_t n);
/* Emits what is held back (end of generation: an incomplete stop prefix is just text). */
void dg_text_stream_finish(struct dg_text_stream *ts);
void dg_text_stream_free(struct dg_text_stream *ts);
/* Length of the longest prefix of s[0, n) that ends on a UTF-8 character boundary. */
size_t dg_utf8_complete_prefix(const char *s, size_t n);

#endif
