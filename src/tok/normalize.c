/* normalize.c: the normalizer stages of a tokenizer (NFC/NFD/NFKC/NFKD via utf8proc, Replace, Prepend,
 * Lowercase, Strip), applied in order to one piece of text that is not an added token. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/tok_internal.h"

dg_status tok_compile_regex(const char *pattern, size_t len, const char *where, pcre2_code **out)
{
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return dg_fail(DG_E_FORMAT, "%s: regex \"%.*s\" does not compile at offset %zu: %s", where,
                       (int)(len > 200 ? 200 : len), pattern, (size_t)erroff, (const char *)msg);
    }
    /* JIT is an optimisation only: matching falls back to the interpreter when it is unavailable. */
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return DG_OK;
}

static dg_status replace_literal(const char *s, size_t n, const struct tok_norm *st, struct tok_buf *out)
{
    size_t i = 0;
    if (st->pat_len == 0)
        return tok_buf_put(out, s, n) ? DG_OK : dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
    while (i < n) {
        const char *hit = memmem(s + i, n - i, st->pat, st->pat_len);
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (!tok_buf_put(out, s + i, stop - i))
            return dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
        if (!hit)
            break;
        if (!tok_buf_put(out, st->content, st->content_len))
            return dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
        i = stop + st->pat_len;
    }
    return DG_OK;
}

static dg_status replace_regex(const char *s, size_t n, const struct tok_norm *st, struct tok_buf *out)
{
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md)
        return dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
    size_t pos = 0, prev = 0;
    dg_status rcst = DG_OK;
    while (pos <= n) {
        int rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            rcst = dg_fail(DG_E_INTERNAL, "tokenizer: normalizer regex match failed (%d)", rc);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* an empty match replaces nothing; step over one character */
            uint32_t cp;
            size_t l = tok_utf8_decode(s + ms, n - ms, &cp);
            pos = ms + (l ? l : 1);
            continue;
        }
        if (!tok_buf_put(out, s + prev, ms - prev) || !tok_buf_put(out, st->content, st->content_len)) {
            rcst = dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
            break;
        }
        prev = pos = me;
    }
    if (rcst == DG_OK && !tok_buf_put(out, s + prev, n - prev))
        rcst = dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
    pcre2_match_data_free(md);
    return rcst;
}

static dg_status unicode_form(const char *s, size_t n, utf8proc_option_t opt, struct tok_buf *out)
{
    if (n == 0)
        return DG_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, opt);
    if (r < 0)
        return dg_fail(DG_E_FORMAT, "tokenizer: Unicode normalization failed: %s", utf8proc_errmsg(r));
    bool ok = tok_buf_put(out, dst, (size_t)r);
    free(dst);
    return ok ? DG_OK : dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
}

static bool is_ws(uint32_t cp)
{
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    return cp == ' ' || (cp >= 9 && cp <= 13) || p->category == UTF8PROC_CATEGORY_ZS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_WS;
}

static dg_status apply(const struct tok_norm *st, const char *s, size_t n, struct tok_buf *out)
{
    switch (st->kind) {
    case TN_NFC:
        return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE, out);
    case TN_NFD:
        return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, out);
    case TN_NFKC:
        return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case TN_NFKD:
        return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case TN_REPLACE:
        return st->re ? replace_regex(s, n, st, out) : replace_literal(s, n, st, out);
    case TN_PREPEND:
        /* `tokenizers` prepends only to non-empty text. */
        if (n && !tok_buf_put(out, st->content, st->content_len))
            return dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
        return tok_buf_put(out, s, n) ? DG_OK : dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
    case TN_LOWERCASE:
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t l = tok_utf8_decode(s + i, n - i, &cp);
            if (!l)
                return dg_fail(DG_E_FORMAT, "tokenizer: invalid UTF-8 at byte %zu", i);
            char enc[4];
            size_t el = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
            if (!tok_buf_put(out, enc, el))
                return dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
            i += l;
        }
        return DG_OK;
    case TN_STRIP: {
        size_t a = 0, b = n;
        uint32_t cp;
        size_t l;
        while (st->left && a < b && (l = tok_utf8_decode(s + a, b - a, &cp)) && is_ws(cp))
            a += l;
        while (st->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80)
                k--;
            if (!tok_utf8_decode(s + k, b - k, &cp) || !is_ws(cp))
                break;
            b = k;
        }
        return tok_buf_put(out, s + a, b - a) ? DG_OK : dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
    }
    }
    return dg_fail(DG_E_INTERNAL, "tokenizer: unknown normalizer stage");
}

dg_status tok_normalize(const struct dg_tokenizer *tok, const char *s, size_t n, struct tok_buf *out)
{
    if (tok->n_norms == 0)
        return tok_buf_put(out, s, n) ? DG_OK : dg_fail(DG_E_NOMEM, "tokenizer: out of memory");
    struct tok_buf a = {0}, b = {0};
    const char *cur = s;
    size_t cur_n = n;
    dg_status st = DG_OK;
    for (size_t i = 0; i < tok->n_norms && st == DG_OK; i++) {
        struct tok_buf *dst = (i % 2 == 0) ? &a : &b;
        dst->len = 0;
        if (i + 1 == tok->n_norms)
            dst = out;
        st = apply(&tok->norms[i], cur, cur_n, dst);
        if (dst != out) {
            cur = dst->p ? dst->p : "";
            cur_n = dst->len;
        }
    }
    free(a.p);
    free(b.p);
    return st;
}
