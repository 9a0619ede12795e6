/* bpe.c: the model step: one pre-token → ids. Rank-ordered BPE as in `tokenizers` (a binary heap of
 * candidate merges over a linked list of symbols: O(n log n), so a 450 KB SentencePiece "word" is fine),
 * with byte fallback, unk fusing and ignore_merges; and llama.cpp's score-ordered SentencePiece merge for
 * GGUF "llama" vocabularies. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

struct sym {
    int32_t id;
    int32_t prev, next;
    uint32_t off, len; /* bytes of the pre-token this symbol covers */
};

/* A candidate merge is one 64-bit key, priority in the high half and the left symbol's index in the low
 * half, so the heap compares integers and stays small in cache; everything else is re-read when it pops
 * (a stale candidate is one whose pair no longer has that priority). */
struct heap {
    uint64_t *v;
    size_t n, cap;
};

static bool heap_push(struct heap *h, uint64_t key)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        uint64_t *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return false;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p] <= key)
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = key;
    return true;
}

static uint64_t heap_pop(struct heap *h)
{
    uint64_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n)
            break;
        size_t m = (l + 1 < n && h->v[l + 1] < h->v[l]) ? l + 1 : l;
        if (h->v[m] >= last)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (n)
        h->v[i] = last;
    return top;
}

/* Maps a score to an unsigned key that sorts the highest score first. */
static uint32_t score_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending with the score */
    return ~u;
}

static bool ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *v = realloc(*ids, c * sizeof *v);
        if (!v)
            return false;
        *ids = v;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return true;
}

struct syms {
    struct sym *v;
    size_t n, cap;
};

static bool syms_push(struct syms *s, int32_t id, uint32_t off, uint32_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct sym *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return false;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n] = (struct sym){id, (int32_t)s->n - 1, (int32_t)s->n + 1, off, len};
    s->n++;
    return true;
}

/* The initial symbols of a word, as `tokenizers`' BPE::merge_word builds them. */
static dg_status initial_symbols(const struct dg_tokenizer *tok, const char *s, size_t n, struct syms *sy)
{
    char stackbuf[64];
    int32_t unk_id = -1;
    uint32_t unk_off = 0, unk_len = 0;
    bool have_unk = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (!l)
            l = 1; /* cannot happen on validated text; treat the byte as a character */
        int32_t id;
        bool first = i == 0, last = i + l == n;
        if ((tok->cont_prefix && !first) || (tok->eow_suffix && last)) {
            size_t pl = (tok->cont_prefix && !first) ? tok->cont_prefix_len : 0;
            size_t sl = (tok->eow_suffix && last) ? tok->eow_suffix_len : 0;
            if (pl + l + sl > sizeof stackbuf)
                return dg_fail(DG_E_UNSUPPORTED, "tokenizer: subword prefix/suffix too long");
            memcpy(stackbuf, tok->cont_prefix, pl);
            memcpy(stackbuf + pl, s + i, l);
            if (sl)
                memcpy(stackbuf + pl + l, tok->eow_suffix, sl);
            id = tok_strmap_get(&tok->vocab, stackbuf, pl + l + sl);
        } else {
            id = tok_strmap_get(&tok->vocab, s + i, l);
        }
        if (id >= 0) {
            if (have_unk) {
                if (!syms_push(sy, unk_id, unk_off, unk_len))
                    return OOM();
                have_unk = false;
            }
            if (!syms_push(sy, id, (uint32_t)i, (uint32_t)l))
                return OOM();
            i += l;
            continue;
        }
        if (tok->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < l; k++)
                all = all && tok->byte_ids[(uint8_t)s[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < l; k++)
                    if (!syms_push(sy, tok->byte_ids[(uint8_t)s[i + k]], (uint32_t)(i + k), 1))
                        return OOM();
                i += l;
                continue;
            }
        }
        if (tok->unk_id >= 0) {
            if (have_unk && tok->fuse_unk) {
                unk_len += (uint32_t)l;
            } else {
                if (have_unk && !syms_push(sy, unk_id, unk_off, unk_len))
                    return OOM();
                have_unk = true;
                unk_id = tok->unk_id;
                unk_off = (uint32_t)i;
                unk_len = (uint32_t)l;
            }
        }
        /* No unk token: `tokenizers` drops the character. */
        i += l;
    }
    if (have_unk && !syms_push(sy, unk_id, unk_off, unk_len))
        return OOM();
    if (sy->n)
        sy->v[sy->n - 1].next = -1;
    return DG_OK;
}

static bool bpe_try_push(const struct dg_tokenizer *tok, struct heap *h, const struct syms *sy, int32_t pos)
{
    if (pos < 0)
        return true;
    int32_t nx = sy->v[pos].next;
    if (nx < 0)
        return true;
    int32_t rank, merged;
    if (!tok_pairmap_get(&tok->merges, sy->v[pos].id, sy->v[nx].id, &rank, &merged))
        return true;
    (void)merged;
    return heap_push(h, ((uint64_t)(uint32_t)rank << 32) | (uint32_t)pos);
}

static dg_status bpe_word(const struct dg_tokenizer *tok, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                          size_t *cap)
{
    if (tok->ignore_merges) {
        int32_t id = tok_strmap_get(&tok->vocab, s, n);
        if (id >= 0)
            return ids_push(ids, n_ids, cap, id) ? DG_OK : OOM();
    }
    struct syms sy = {0};
    struct heap h = {0};
    dg_status rc = initial_symbols(tok, s, n, &sy);
    for (size_t i = 0; rc == DG_OK && i + 1 < sy.n; i++)
        if (!bpe_try_push(tok, &h, &sy, (int32_t)i))
            rc = OOM();
    while (rc == DG_OK && h.n) {
        uint64_t key = heap_pop(&h);
        int32_t pos = (int32_t)(uint32_t)key;
        struct sym *a = &sy.v[pos];
        if (a->len == 0 || a->next < 0)
            continue;
        struct sym *b = &sy.v[a->next];
        int32_t rank, merged;
        if (!tok_pairmap_get(&tok->merges, a->id, b->id, &rank, &merged) || (uint32_t)rank != (uint32_t)(key >> 32))
            continue; /* stale: one side changed since this candidate was queued */
        a->id = merged;
        a->len += b->len;
        a->next = b->next;
        b->len = 0;
        if (a->next >= 0)
            sy.v[a->next].prev = pos;
        if (!bpe_try_push(tok, &h, &sy, a->prev) || !bpe_try_push(tok, &h, &sy, pos))
            rc = OOM();
    }
    for (int32_t i = sy.n ? 0 : -1; rc == DG_OK && i >= 0; i = sy.v[i].next)
        if (!ids_push(ids, n_ids, cap, sy.v[i].id))
            rc = OOM();
    free(sy.v);
    free(h.v);
    return rc;
}

/* llama.cpp's llm_tokenizer_spm: merge the adjacent pair whose concatenation is in the vocabulary with the
 * highest score; leftover symbols that are not tokens become byte tokens (or unk). */
static bool spm_try_push(const struct dg_tokenizer *tok, struct heap *h, const struct syms *sy, const char *s,
                         int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return true;
    uint32_t off = sy->v[l].off, size = sy->v[l].len + sy->v[r].len;
    (void)r;
    int32_t id = tok_strmap_get(&tok->vocab, s + off, size);
    if (id < 0)
        return true;
    return heap_push(h, ((uint64_t)score_key(tok->scores[id]) << 32) | (uint32_t)l);
}

static dg_status spm_text(const struct dg_tokenizer *tok, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                          size_t *cap)
{
    struct syms sy = {0};
    struct heap h = {0};
    dg_status rc = DG_OK;
    for (size_t i = 0; i < n && rc == DG_OK;) {
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (!l)
            l = 1;
        if (!syms_push(&sy, -1, (uint32_t)i, (uint32_t)l))
            rc = OOM();
        i += l;
    }
    if (sy.n)
        sy.v[sy.n - 1].next = -1;
    for (size_t i = 1; rc == DG_OK && i < sy.n; i++)
        if (!spm_try_push(tok, &h, &sy, s, (int32_t)i - 1, (int32_t)i))
            rc = OOM();
    while (rc == DG_OK && h.n) {
        uint64_t key = heap_pop(&h);
        int32_t pos = (int32_t)(uint32_t)key;
        struct sym *a = &sy.v[pos];
        if (a->len == 0 || a->next < 0)
            continue;
        struct sym *b = &sy.v[a->next];
        int32_t id = tok_strmap_get(&tok->vocab, s + a->off, a->len + b->len);
        if (id < 0 || score_key(tok->scores[id]) != (uint32_t)(key >> 32))
            continue; /* stale */
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0)
            sy.v[a->next].prev = pos;
        if (!spm_try_push(tok, &h, &sy, s, a->prev, pos) || !spm_try_push(tok, &h, &sy, s, pos, a->next))
            rc = OOM();
    }
    for (int32_t i = sy.n ? 0 : -1; rc == DG_OK && i >= 0; i = sy.v[i].next) {
        int32_t id = tok_strmap_get(&tok->vocab, s + sy.v[i].off, sy.v[i].len);
        if (id >= 0) {
            if (!ids_push(ids, n_ids, cap, id))
                rc = OOM();
            continue;
        }
        for (uint32_t k = 0; k < sy.v[i].len && rc == DG_OK; k++) {
            int32_t b = tok->byte_ids[(uint8_t)s[sy.v[i].off + k]];
            if (b < 0)
                b = tok->unk_id;
            if (b >= 0 && !ids_push(ids, n_ids, cap, b))
                rc = OOM();
        }
    }
    free(sy.v);
    free(h.v);
    return rc;
}

dg_status tok_model_encode(const struct dg_tokenizer *tok, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                           size_t *cap)
{
    if (n == 0)
        return DG_OK;
    if (tok->model == TM_SPM_SCORES)
        return spm_text(tok, s, n, ids, n_ids, cap);
    return bpe_word(tok, s, n, ids, n_ids, cap);
}
