/* stop.c: EOS ids, and the stop-string matcher for streamed text (stop.h). */
#include "pipe/stop.h"

#include <stdlib.h>
#include <string.h>

struct dg_stop {
    uint32_t *eos;
    int n_eos;
    char *str[DG_STOP_MAX_STRINGS];
    size_t len[DG_STOP_MAX_STRINGS];
    int n_str;
    char *pend; /* text not yet released */
    size_t n_pend, cap_pend;
    char *out; /* what the last call released */
    size_t cap_out;
    bool stopped;
};

dg_status dg_stop_create(const uint32_t *eos, int n_eos, const char *const *strings, int n_strings,
                         struct dg_stop **out)
{
    *out = NULL;
    if (n_eos < 0 || n_strings < 0 || n_strings > DG_STOP_MAX_STRINGS)
        return dg_fail(DG_E_USAGE, "stop: %d stop strings: at most %d", n_strings, DG_STOP_MAX_STRINGS);
    struct dg_stop *s = calloc(1, sizeof *s);
    if (!s)
        return dg_fail(DG_E_NOMEM, "stop: out of memory");
    if (n_eos > 0) {
        s->eos = malloc((size_t)n_eos * sizeof *s->eos);
        if (!s->eos) {
            dg_stop_destroy(s);
            return dg_fail(DG_E_NOMEM, "stop: out of memory");
        }
        memcpy(s->eos, eos, (size_t)n_eos * sizeof *eos);
        s->n_eos = n_eos;
    }
    for (int i = 0; i < n_strings; i++) {
        size_t l = strlen(strings[i]);
        if (l == 0 || l > DG_STOP_MAX_LEN) {
            dg_stop_destroy(s);
            return dg_fail(DG_E_USAGE, "stop string %d is %zu bytes long: expected 1..%d", i + 1, l, DG_STOP_MAX_LEN);
        }
        s->str[i] = strdup(strings[i]);
        if (!s->str[i]) {
            dg_stop_destroy(s);
            return dg_fail(DG_E_NOMEM, "stop: out of memory");
        }
        s->len[i] = l;
        s->n_str = i + 1;
    }
    *out = s;
    return DG_OK;
}

void dg_stop_destroy(struct dg_stop *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_str; i++)
        free(s->str[i]);
    free(s->eos);
    free(s->pend);
    free(s->out);
    free(s);
}

bool dg_stop_is_eos(const struct dg_stop *s, uint32_t id)
{
    for (int i = 0; i < s->n_eos; i++)
        if (s->eos[i] == id)
            return true;
    return false;
}

int dg_stop_first_eos(const struct dg_stop *s, const uint32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (dg_stop_is_eos(s, ids[i]))
            return i;
    return -1;
}

size_t dg_utf8_complete_prefix(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    /* Walk back over at most 3 continuation bytes to the last lead byte. */
    size_t i = len, cont = 0;
    while (i > 0 && cont < 4 && (s[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0 || cont > 3)
        return len;
    unsigned char lead = s[i - 1];
    size_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xC2 && lead <= 0xDF ? 2 : 0;
    if (need == 0)
        return len; /* ASCII or an invalid lead: complete as far as printing goes */
    return cont + 1 < need ? i - 1 : len;
}

static dg_status reserve(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return DG_OK;
    size_t nc = *cap ? *cap : 256;
    while (nc < need)
        nc *= 2;
    char *np = realloc(*p, nc);
    if (!np)
        return dg_fail(DG_E_NOMEM, "stop: out of memory");
    *p = np;
    *cap = nc;
    return DG_OK;
}

/* Releases pend[0, n) into out and keeps the rest pending. */
static dg_status release(struct dg_stop *s, size_t n, const char **out, size_t *out_len)
{
    dg_status st = reserve(&s->out, &s->cap_out, n + 1);
    if (st)
        return st;
    memcpy(s->out, s->pend, n);
    s->out[n] = 0;
    memmove(s->pend, s->pend + n, s->n_pend - n);
    s->n_pend -= n;
    *out = s->out;
    *out_len = n;
    return DG_OK;
}

dg_status dg_stop_feed(struct dg_stop *s, const char *text, size_t len, const char **out, size_t *out_len,
                       bool *stopped)
{
    *out = "";
    *out_len = 0;
    *stopped = s->stopped;
    if (s->stopped)
        return DG_OK;
    dg_status st = reserve(&s->pend, &s->cap_pend, s->n_pend + len + 1);
    if (st)
        return st;
    memcpy(s->pend + s->n_pend, text, len);
    s->n_pend += len;
    /* The earliest match of any stop string ends the reply there. */
    size_t cut = s->n_pend;
    for (int i = 0; i < s->n_str; i++) {
        const char *m = memmem(s->pend, s->n_pend, s->str[i], s->len[i]);
        if (m && (size_t)(m - s->pend) < cut)
            cut = (size_t)(m - s->pend);
    }
    if (cut < s->n_pend) {
        s->stopped = *stopped = true;
        st = release(s, cut, out, out_len);
        s->n_pend = 0;
        return st;
    }
    /* Hold back the longest tail that is a proper prefix of a stop string. */
    size_t hold = 0;
    for (int i = 0; i < s->n_str; i++)
        for (size_t k = s->len[i] - 1; k > hold; k--)
            if (k <= s->n_pend && memcmp(s->pend + s->n_pend - k, s->str[i], k) == 0) {
                hold = k;
                break;
            }
    return release(s, dg_utf8_complete_prefix(s->pend, s->n_pend - hold), out, out_len);
}

void dg_stop_flush(struct dg_stop *s, const char **out, size_t *out_len)
{
    *out = "";
    *out_len = 0;
    if (s->stopped || s->n_pend == 0)
        return;
    if (release(s, s->n_pend, out, out_len) != DG_OK) {
        *out = s->pend; /* no memory for a copy: hand out the pending text itself */
        *out_len = s->n_pend;
        s->n_pend = 0;
    }
}

void dg_stop_reset(struct dg_stop *s)
{
    s->n_pend = 0;
    s->stopped = false;
}
