/* text_stream.c: see text_stream.h. */
#include "cli/text_stream.h"

#include <stdlib.h>
#include <string.h>

void dg_text_stream_init(struct dg_text_stream *ts, FILE *out, const char *const *stops, int n_stops)
{
    memset(ts, 0, sizeof *ts);
    ts->out = out;
    ts->stops = stops;
    ts->n_stops = n_stops;
}

static bool append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256);
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

size_t dg_utf8_complete_prefix(const char *s, size_t n)
{
    /* walk back over at most 3 continuation bytes to the last lead byte */
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return back ? 0 : n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 1;
    size_t have = (size_t)back + 1;
    return have >= need ? n : i - 1;
}

static void emit(struct dg_text_stream *ts, size_t n)
{
    if (!n)
        return;
    if (ts->out) {
        fwrite(ts->pending, 1, n, ts->out);
        fflush(ts->out);
    }
    append(&ts->all, &ts->all_len, &ts->all_cap, ts->pending, n);
    memmove(ts->pending, ts->pending + n, ts->len - n);
    ts->len -= n;
    ts->pending[ts->len] = 0;
}

bool dg_text_stream_push(struct dg_text_stream *ts, const char *bytes, size_t n)
{
    if (ts->stopped)
        return true;
    if (!append(&ts->pending, &ts->len, &ts->cap, bytes, n))
        return true;
    /* a complete stop string: emit what precedes it, drop the rest */
    for (int s = 0; s < ts->n_stops; s++) {
        char *hit = memmem(ts->pending, ts->len, ts->stops[s], strlen(ts->stops[s]));
        if (hit) {
            emit(ts, (size_t)(hit - ts->pending));
            ts->len = 0;
            ts->stopped = true;
            return true;
        }
    }
    /* hold back the longest tail that is a prefix of some stop string */
    size_t hold = 0;
    for (int s = 0; s < ts->n_stops; s++) {
        size_t sl = strlen(ts->stops[s]);
        for (size_t k = sl - 1 < ts->len ? sl - 1 : ts->len; k > hold; k--)
            if (memcmp(ts->pending + ts->len - k, ts->stops[s], k) == 0) {
                hold = k;
                break;
            }
    }
    size_t ready = dg_utf8_complete_prefix(ts->pending, ts->len - hold);
    emit(ts, ready);
    return false;
}

void dg_text_stream_finish(struct dg_text_stream *ts)
{
    if (!ts->stopped)
        emit(ts, ts->len);
}

void dg_text_stream_free(struct dg_text_stream *ts)
{
    free(ts->pending);
    free(ts->all);
    memset(ts, 0, sizeof *ts);
}
