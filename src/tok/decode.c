/* decode.c: ids → text through the decoder chain (ByteLevel, Replace, ByteFallback, Fuse, Strip,
 * Metaspace), each working on a list of token strings exactly as `tokenizers`' decoders do; and the raw
 * bytes of one token for streaming output. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

struct strlist {
    struct tok_buf *v;
    size_t n, cap;
};

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].p);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static bool strlist_push(struct strlist *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct tok_buf *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = (struct tok_buf){0};
    if (!tok_buf_put(&l->v[l->n], s, n))
        return false;
    l->n++;
    return true;
}

/* Appends s as UTF-8, replacing each maximal invalid subsequence with U+FFFD (Rust's from_utf8_lossy). */
static bool put_lossy(struct tok_buf *out, const char *s, size_t n)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (l) {
            if (!tok_buf_put(out, s + i, l))
                return false;
            i += l;
            continue;
        }
        /* Skip the longest prefix of a well-formed sequence, at least one byte. */
        uint8_t b0 = (uint8_t)s[i];
        size_t need = b0 >= 0xF0 && b0 <= 0xF4 ? 4 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xC2 && b0 <= 0xDF ? 2 : 1;
        size_t k = 1;
        while (k < need && i + k < n) {
            uint8_t b = (uint8_t)s[i + k];
            uint8_t lo = 0x80, hi = 0xBF;
            if (k == 1) {
                if (b0 == 0xE0) lo = 0xA0;
                if (b0 == 0xED) hi = 0x9F;
                if (b0 == 0xF0) lo = 0x90;
                if (b0 == 0xF4) hi = 0x8F;
            }
            if (b < lo || b > hi)
                break;
            k++;
        }
        if (!tok_buf_put(out, fffd, 3))
            return false;
        i += k;
    }
    return true;
}

static bool byte_level_bytes(const char *s, size_t n, struct tok_buf *out)
{
    /* A token with a character outside the byte map contributes its own UTF-8 bytes. */
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        int b = l ? tok_cp_to_byte(cp) : -1;
        if (b < 0) {
            out->len = start;
            return tok_buf_put(out, s, n);
        }
        if (!tok_buf_putc(out, (char)b))
            return false;
        i += l;
    }
    return true;
}

static bool replace_all(const struct tok_buf *in, const char *pat, size_t pl, const char *rep, size_t rl,
                        struct tok_buf *out)
{
    size_t i = 0;
    if (!pl)
        return tok_buf_put(out, in->p, in->len);
    while (i < in->len) {
        const char *hit = memmem(in->p + i, in->len - i, pat, pl);
        size_t stop = hit ? (size_t)(hit - in->p) : in->len;
        if (!tok_buf_put(out, in->p + i, stop - i))
            return false;
        if (!hit)
            break;
        if (!tok_buf_put(out, rep, rl))
            return false;
        i = stop + pl;
    }
    return true;
}

static int parse_byte_token(const struct tok_buf *t)
{
    if (t->len != 6 || memcmp(t->p, "<0x", 3) != 0 || t->p[5] != '>')
        return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = t->p[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Applies one decoder to the list; `raw` (streaming one token) keeps bytes as they are and skips the
 * start-of-text rules. */
static dg_status apply(const struct tok_dec *d, struct strlist *l, bool raw)
{
    struct strlist o = {0};
    struct tok_buf acc = {0};
    bool ok = true;
    switch (d->kind) {
    case TD_BYTELEVEL: {
        for (size_t i = 0; i < l->n && ok; i++)
            ok = byte_level_bytes(l->v[i].p, l->v[i].len, &acc);
        if (ok && raw) {
            ok = strlist_push(&o, acc.p ? acc.p : "", acc.len);
        } else if (ok) {
            struct tok_buf t = {0};
            ok = put_lossy(&t, acc.p ? acc.p : "", acc.len) && strlist_push(&o, t.p ? t.p : "", t.len);
            free(t.p);
        }
        break;
    }
    case TD_REPLACE:
        for (size_t i = 0; i < l->n && ok; i++) {
            acc.len = 0;
            ok = replace_all(&l->v[i], d->pat, d->pat_len, d->content, d->content_len, &acc) &&
                 strlist_push(&o, acc.p ? acc.p : "", acc.len);
        }
        break;
    case TD_BYTEFALLBACK: {
        struct tok_buf bytes = {0};
        size_t nbytes = 0;
        for (size_t i = 0; i <= l->n && ok; i++) {
            int b = i < l->n ? parse_byte_token(&l->v[i]) : -1;
            if (b >= 0) {
                char c = (char)b;
                ok = tok_buf_put(&bytes, &c, 1);
                nbytes++;
                continue;
            }
            if (nbytes) {
                if (raw || tok_utf8_check(bytes.p, bytes.len) == bytes.len) {
                    ok = strlist_push(&o, bytes.p, bytes.len);
                } else {
                    for (size_t k = 0; k < nbytes && ok; k++)
                        ok = strlist_push(&o, "\xEF\xBF\xBD", 3);
                }
                bytes.len = 0;
                nbytes = 0;
            }
            if (i < l->n && ok)
                ok = strlist_push(&o, l->v[i].p, l->v[i].len);
        }
        free(bytes.p);
        break;
    }
    case TD_FUSE:
        for (size_t i = 0; i < l->n && ok; i++)
            ok = tok_buf_put(&acc, l->v[i].p, l->v[i].len);
        ok = ok && strlist_push(&o, acc.p ? acc.p : "", acc.len);
        break;
    case TD_STRIP:
        for (size_t i = 0; i < l->n && ok; i++) {
            const char *s = l->v[i].p;
            size_t a = 0, b = l->v[i].len;
            char enc[4];
            size_t el = tok_utf8_encode(d->strip_cp, enc);
            for (int k = 0; !raw && k < d->start && b - a >= el && memcmp(s + a, enc, el) == 0; k++)
                a += el;
            for (int k = 0; !raw && k < d->stop && b - a >= el && memcmp(s + b - el, enc, el) == 0; k++)
                b -= el;
            ok = strlist_push(&o, s + a, b - a);
        }
        break;
    case TD_METASPACE:
        for (size_t i = 0; i < l->n && ok; i++) {
            acc.len = 0;
            ok = replace_all(&l->v[i], d->repl, strlen(d->repl), " ", 1, &acc);
            size_t skip = (ok && !raw && i == 0 && d->prepend && acc.len && acc.p[0] == ' ') ? 1 : 0;
            ok = ok && strlist_push(&o, acc.p ? acc.p + skip : "", acc.len - skip);
        }
        break;
    }
    free(acc.p);
    if (!ok) {
        strlist_free(&o);
        return OOM();
    }
    strlist_free(l);
    *l = o;
    return DG_OK;
}

static dg_status run_chain(const struct dg_tokenizer *tok, struct strlist *l, bool raw, struct tok_buf *out)
{
    dg_status rc = DG_OK;
    if (!tok->has_decoder) {
        for (size_t i = 0; i < l->n; i++)
            if ((i && !raw && !tok_buf_putc(out, ' ')) || !tok_buf_put(out, l->v[i].p, l->v[i].len))
                return OOM();
        return DG_OK;
    }
    for (size_t k = 0; k < tok->n_decs && rc == DG_OK; k++)
        rc = apply(&tok->decs[k], l, raw);
    for (size_t i = 0; rc == DG_OK && i < l->n; i++)
        if (!tok_buf_put(out, l->v[i].p, l->v[i].len))
            rc = OOM();
    return rc;
}

dg_status dg_tokenizer_decode(const struct dg_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char **text, size_t *len)
{
    struct strlist l = {0};
    struct tok_buf out = {0};
    dg_status rc = DG_OK;
    for (size_t i = 0; i < n && rc == DG_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_vocab || !tok->id_str[id])
            continue; /* unknown ids are skipped, as `tokenizers` does */
        if ((flags & DG_TOK_SKIP_SPECIAL) && (tok->id_flags[id] & TOKF_SPECIAL))
            continue;
        if (!strlist_push(&l, tok->id_str[id], tok->id_len[id]))
            rc = OOM();
    }
    if (rc == DG_OK)
        rc = run_chain(tok, &l, false, &out);
    if (rc == DG_OK && !out.p && !tok_buf_put(&out, "", 0))
        rc = OOM();
    strlist_free(&l);
    if (rc) {
        free(out.p);
        return rc;
    }
    *text = out.p;
    if (len)
        *len = out.len;
    return DG_OK;
}

int dg_tokenizer_token_bytes(const struct dg_tokenizer *tok, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || id >= tok->n_vocab || !tok->id_str[id])
        return -1;
    struct strlist l = {0};
    struct tok_buf out = {0};
    int r = -1;
    if (tok->id_flags[id] & TOKF_ADDED) {
        /* Added tokens are text as written: no byte map, no ▁. */
        if (tok_buf_put(&out, tok->id_str[id], tok->id_len[id]))
            r = 0;
    } else if (strlist_push(&l, tok->id_str[id], tok->id_len[id]) && run_chain(tok, &l, true, &out) == DG_OK) {
        r = 0;
    }
    if (r == 0) {
        r = (int)(out.len < cap ? out.len : cap);
        if (r)
            memcpy(buf, out.p, (size_t)r);
    }
    strlist_free(&l);
    free(out.p);
    return r;
}
