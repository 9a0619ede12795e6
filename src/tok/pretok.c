/* pretok.c: the pre-tokenizer stages (Split by regex or string with its five behaviours, ByteLevel with
 * the GPT-2 byte map and optional regex, Metaspace), cutting text into the pieces the model sees. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

struct piece {
    uint32_t s, e;
    bool match;
};
struct pieces {
    struct piece *v;
    size_t n, cap;
};

static bool pieces_push(struct pieces *p, uint32_t s, uint32_t e, bool match)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct piece *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return false;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = (struct piece){s, e, match};
    return true;
}

/* Finds every match of the stage's pattern in s[0..n), filling `out` with matched and unmatched pieces
 * that cover the text in order (offsets relative to s). */
static dg_status find_matches(const struct tok_pre *st, pcre2_code *re, pcre2_match_data *md, const char *s,
                              size_t n, struct pieces *out)
{
    out->n = 0;
    size_t prev = 0, pos = 0;
    while (pos < n) {
        size_t ms, me;
        if (re) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return dg_fail(DG_E_INTERNAL, "tokenizer: pre-tokenizer regex match failed (%d)", rc);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else {
            if (st->lit_len == 0)
                break;
            const char *hit = memmem(s + pos, n - pos, st->lit, st->lit_len);
            if (!hit)
                break;
            ms = (size_t)(hit - s);
            me = ms + st->lit_len;
        }
        if (me == ms) {
            uint32_t cp;
            size_t l = tok_utf8_decode(s + ms, n - ms, &cp);
            pos = ms + (l ? l : 1);
            continue;
        }
        if (ms > prev && !pieces_push(out, (uint32_t)prev, (uint32_t)ms, false))
            return OOM();
        if (!pieces_push(out, (uint32_t)ms, (uint32_t)me, true))
            return OOM();
        prev = pos = me;
    }
    if (prev < n && !pieces_push(out, (uint32_t)prev, (uint32_t)n, false))
        return OOM();
    return DG_OK;
}

/* Applies a Split behaviour to the pieces, in place (the `tokenizers` rules, including invert). */
static void apply_behavior(struct pieces *p, enum tok_split_behavior b, bool invert)
{
    if (invert)
        for (size_t i = 0; i < p->n; i++)
            p->v[i].match = !p->v[i].match;
    size_t w = 0;
    bool prev_match = false;
    switch (b) {
    case SB_ISOLATED:
        return;
    case SB_REMOVED:
        for (size_t i = 0; i < p->n; i++)
            if (!p->v[i].match)
                p->v[w++] = p->v[i];
        p->n = w;
        return;
    case SB_MERGED_PREV:
        for (size_t i = 0; i < p->n; i++) {
            bool m = p->v[i].match;
            if (m && !prev_match && w > 0)
                p->v[w - 1].e = p->v[i].e;
            else
                p->v[w++] = p->v[i];
            prev_match = m;
        }
        p->n = w;
        return;
    case SB_MERGED_NEXT: {
        /* Walk backwards: a delimiter joins the piece after it. */
        size_t n = p->n, r = n; /* write from the end */
        for (size_t k = n; k-- > 0;) {
            bool m = p->v[k].match;
            if (m && !prev_match && r < n)
                p->v[r].s = p->v[k].s;
            else
                p->v[--r] = p->v[k];
            prev_match = m;
        }
        memmove(p->v, p->v + r, (n - r) * sizeof *p->v);
        p->n = n - r;
        return;
    }
    case SB_CONTIGUOUS:
        for (size_t i = 0; i < p->n; i++) {
            bool m = p->v[i].match;
            if (w > 0 && m == prev_match)
                p->v[w - 1].e = p->v[i].e;
            else
                p->v[w++] = p->v[i];
            prev_match = m;
        }
        p->n = w;
        return;
    }
}

/* Appends s[0..n) mapped through the GPT-2 byte map to buf. */
static bool byte_map_append(struct tok_buf *buf, size_t off, size_t n)
{
    /* The source lives in buf itself, which may move: reserve first, then read through indices. */
    if (!tok_buf_reserve(buf, n * 2))
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)buf->p[off + i];
        char enc[4];
        size_t l = tok_utf8_encode(tok_byte_to_cp[c], enc);
        if (!tok_buf_put(buf, enc, l))
            return false;
    }
    return true;
}

static dg_status split_span(const struct tok_pre *st, pcre2_code *re, pcre2_match_data *md, struct tok_buf *buf,
                            uint32_t off, uint32_t len, struct pieces *pc, struct tok_spans *out)
{
    dg_status rc = find_matches(st, re, md, buf->p + off, len, pc);
    if (rc)
        return rc;
    apply_behavior(pc, st->behavior, st->invert);
    for (size_t i = 0; i < pc->n; i++)
        if (pc->v[i].e > pc->v[i].s && !tok_spans_push(out, off + pc->v[i].s, pc->v[i].e - pc->v[i].s, -1))
            return OOM();
    return DG_OK;
}

static dg_status stage(const struct tok_pre *st, struct tok_buf *buf, const struct tok_spans *in,
                       struct tok_spans *out, pcre2_match_data *md, struct pieces *pc, struct tok_spans *tmp)
{
    bool first_piece = true;
    for (size_t i = 0; i < in->n; i++) {
        struct tok_span sp = in->v[i];
        if (sp.added_id >= 0) {
            if (!tok_spans_push(out, sp.off, sp.len, sp.added_id))
                return OOM();
            first_piece = false;
            continue;
        }
        dg_status rc = DG_OK;
        switch (st->kind) {
        case TP_SPLIT:
            rc = split_span(st, st->re, md, buf, sp.off, sp.len, pc, out);
            break;
        case TP_BYTELEVEL: {
            uint32_t off = sp.off, len = sp.len;
            if (st->add_prefix_space && !(len > 0 && buf->p[off] == ' ')) {
                size_t noff = buf->len;
                if (!tok_buf_reserve(buf, len + 1u))
                    return OOM();
                buf->p[buf->len++] = ' ';
                memcpy(buf->p + buf->len, buf->p + off, len);
                buf->len += len;
                buf->p[buf->len] = 0;
                off = (uint32_t)noff;
                len++;
            }
            tmp->n = 0;
            if (st->use_regex) {
                rc = split_span(st, st->re, md, buf, off, len, pc, tmp);
            } else if (!tok_spans_push(tmp, off, len, -1)) {
                return OOM();
            }
            for (size_t k = 0; k < tmp->n && rc == DG_OK; k++) {
                size_t noff = buf->len;
                if (!byte_map_append(buf, tmp->v[k].off, tmp->v[k].len))
                    return OOM();
                if (!tok_spans_push(out, (uint32_t)noff, (uint32_t)(buf->len - noff), -1))
                    return OOM();
            }
            break;
        }
        case TP_METASPACE: {
            size_t noff = buf->len, rl = strlen(st->repl);
            bool prepend = st->prepend_scheme == 0 || (st->prepend_scheme == 1 && first_piece && i == 0);
            bool starts = sp.len >= rl && memcmp(buf->p + sp.off, st->repl, rl) == 0;
            if (prepend && !starts && !(sp.len > 0 && buf->p[sp.off] == ' ') && !tok_buf_put(buf, st->repl, rl))
                return OOM();
            for (uint32_t k = 0; k < sp.len; k++) {
                char c = buf->p[sp.off + k];
                if (!(c == ' ' ? tok_buf_put(buf, st->repl, rl) : tok_buf_putc(buf, c)))
                    return OOM();
            }
            uint32_t nlen = (uint32_t)(buf->len - noff);
            if (st->split) {
                struct tok_pre s2 = {.kind = TP_SPLIT, .lit = (char *)st->repl, .lit_len = rl,
                                     .behavior = SB_MERGED_NEXT};
                rc = split_span(&s2, NULL, md, buf, (uint32_t)noff, nlen, pc, out);
            } else if (!tok_spans_push(out, (uint32_t)noff, nlen, -1)) {
                return OOM();
            }
            break;
        }
        case TP_WHITESPACE_SPLIT:
        case TP_DIGITS:
            rc = split_span(st, st->re, md, buf, sp.off, sp.len, pc, out);
            break;
        }
        if (rc)
            return rc;
        first_piece = false;
    }
    return DG_OK;
}

dg_status tok_pretokenize(const struct dg_tokenizer *tok, struct tok_buf *buf, struct tok_spans *spans)
{
    if (tok->n_pres == 0)
        return DG_OK;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    struct pieces pc = {0};
    struct tok_spans out = {0}, tmp = {0};
    dg_status rc = md ? DG_OK : OOM();
    for (size_t i = 0; i < tok->n_pres && rc == DG_OK; i++) {
        out.n = 0;
        rc = stage(&tok->pres[i], buf, spans, &out, md, &pc, &tmp);
        if (rc == DG_OK) {
            struct tok_spans t = *spans;
            *spans = out;
            out = t;
        }
    }
    free(out.v);
    free(tmp.v);
    free(pc.v);
    pcre2_match_data_free(md);
    return rc;
}
