/* added.c: added and special tokens: a byte trie over their contents and the leftmost-longest scan that
 * cuts them out of the text before normalization (or after it, for tokens flagged `normalized`), with the
 * lstrip / rstrip / single_word rules of `tokenizers`. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    return x;
}

static int32_t edge_get(const struct tok_trie *t, int32_t node, uint8_t b)
{
    if (!t->ecap)
        return -1;
    uint64_t k = (((uint64_t)node << 8) | b) + 1;
    size_t mask = t->ecap - 1, i = mix(k) & mask;
    while (t->ekeys[i]) {
        if (t->ekeys[i] == k)
            return t->evals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

static bool edge_put_raw(uint64_t *keys, int32_t *vals, size_t cap, uint64_t k, int32_t v)
{
    size_t mask = cap - 1, i = mix(k) & mask;
    while (keys[i]) {
        if (keys[i] == k)
            return false;
        i = (i + 1) & mask;
    }
    keys[i] = k;
    vals[i] = v;
    return true;
}

static bool edge_put(struct tok_trie *t, int32_t node, uint8_t b, int32_t child)
{
    if ((t->ecount + 1) * 2 > t->ecap) {
        size_t cap = t->ecap ? t->ecap * 2 : 1024;
        uint64_t *keys = calloc(cap, sizeof *keys);
        int32_t *vals = malloc(cap * sizeof *vals);
        if (!keys || !vals) {
            free(keys);
            free(vals);
            return false;
        }
        for (size_t i = 0; i < t->ecap; i++)
            if (t->ekeys[i])
                edge_put_raw(keys, vals, cap, t->ekeys[i], t->evals[i]);
        free(t->ekeys);
        free(t->evals);
        t->ekeys = keys;
        t->evals = vals;
        t->ecap = cap;
    }
    if (edge_put_raw(t->ekeys, t->evals, t->ecap, (((uint64_t)node << 8) | b) + 1, child))
        t->ecount++;
    return true;
}

static int32_t new_node(struct tok_trie *t)
{
    if (t->n_nodes == t->cap_nodes) {
        size_t cap = t->cap_nodes ? t->cap_nodes * 2 : 256;
        int32_t *term = realloc(t->term, cap * sizeof *term);
        if (!term)
            return -1;
        t->term = term;
        t->cap_nodes = cap;
    }
    t->term[t->n_nodes] = -1;
    return (int32_t)t->n_nodes++;
}

dg_status tok_trie_build(struct tok_trie *t, const struct tok_added *added, size_t n_added, bool normalized)
{
    memset(t, 0, sizeof *t);
    if (new_node(t) < 0)
        return OOM();
    for (size_t i = 0; i < n_added; i++) {
        const struct tok_added *a = &added[i];
        if (a->normalized != normalized || a->len == 0)
            continue;
        int32_t node = 0;
        for (uint32_t k = 0; k < a->len; k++) {
            uint8_t b = (uint8_t)a->content[k];
            int32_t c = edge_get(t, node, b);
            if (c < 0) {
                c = new_node(t);
                if (c < 0 || !edge_put(t, node, b, c))
                    return OOM();
            }
            node = c;
        }
        t->term[node] = (int32_t)i; /* a later duplicate wins, as a later entry of a map would */
        t->first[(uint8_t)a->content[0]] = true;
    }
    return DG_OK;
}

void tok_trie_free(struct tok_trie *t)
{
    free(t->ekeys);
    free(t->evals);
    free(t->term);
    memset(t, 0, sizeof *t);
}

static bool cp_is_ws(uint32_t cp)
{
    if (cp == ' ' || (cp >= 9 && cp <= 13) || cp == 0x85)
        return true;
    if (cp < 0x80)
        return false;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool cp_is_word(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) ||
           (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_PC;
}

/* The code point that ends just before byte `i` (0 when none). */
static uint32_t cp_before(const char *s, size_t i, size_t lo)
{
    if (i <= lo)
        return 0;
    size_t k = i - 1;
    while (k > lo && ((uint8_t)s[k] & 0xC0) == 0x80)
        k--;
    uint32_t cp = 0;
    return tok_utf8_decode(s + k, i - k, &cp) ? cp : 0;
}

dg_status tok_split_added(const struct dg_tokenizer *tok, const struct tok_trie *trie, const char *s, size_t n,
                          uint32_t base, bool parse_special, struct tok_spans *out)
{
    size_t prev_end = 0, i = 0;
    while (i < n) {
        if (!trie->first[(uint8_t)s[i]]) {
            i++;
            continue;
        }
        int32_t node = 0, best = -1;
        size_t best_end = 0;
        for (size_t j = i; j < n; j++) {
            node = edge_get(trie, node, (uint8_t)s[j]);
            if (node < 0)
                break;
            int32_t t = trie->term[node];
            if (t >= 0 && (parse_special || !tok->added[t].special)) {
                best = t;
                best_end = j + 1;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        const struct tok_added *a = &tok->added[best];
        if (a->single_word) {
            uint32_t cb = cp_before(s, i, prev_end), ca = 0;
            if (best_end < n)
                tok_utf8_decode(s + best_end, n - best_end, &ca);
            if ((cb && cp_is_word(cb)) || (ca && cp_is_word(ca))) {
                i++;
                continue;
            }
        }
        size_t ms = i, me = best_end;
        if (a->lstrip) {
            uint32_t cp;
            while (ms > prev_end && (cp = cp_before(s, ms, prev_end)) && cp_is_ws(cp)) {
                char enc[4];
                ms -= tok_utf8_encode(cp, enc);
            }
        }
        if (a->rstrip) {
            uint32_t cp;
            size_t l;
            while (me < n && (l = tok_utf8_decode(s + me, n - me, &cp)) && cp_is_ws(cp))
                me += l;
        }
        if (ms > prev_end && !tok_spans_push(out, base + (uint32_t)prev_end, (uint32_t)(ms - prev_end), -1))
            return OOM();
        if (!tok_spans_push(out, base + (uint32_t)ms, (uint32_t)(me - ms), a->id))
            return OOM();
        prev_end = i = me;
    }
    if (n > prev_end && !tok_spans_push(out, base + (uint32_t)prev_end, (uint32_t)(n - prev_end), -1))
        return OOM();
    return DG_OK;
}
