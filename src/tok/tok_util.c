/* tok_util.c: the tokenizer's plumbing: string arena, hash maps for the vocabulary and merge ranks,
 * growable buffers, UTF-8 helpers and the GPT-2 byte ↔ code point map. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

/* ---- arena ---- */
struct tok_arena_block {
    struct tok_arena_block *next;
    size_t used, cap;
    char data[];
};

char *tok_arena_dup(struct tok_arena *a, const char *s, size_t len)
{
    size_t need = len + 1;
    struct tok_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > (1u << 20) ? need : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    char *p = b->data + b->used;
    if (len)
        memcpy(p, s, len);
    p[len] = 0;
    b->used += need;
    return p;
}

void tok_arena_free(struct tok_arena *a)
{
    struct tok_arena_block *b = a->head;
    while (b) {
        struct tok_arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* ---- hashing ---- */
uint64_t tok_hash(const char *s, size_t len)
{
    /* FNV-1a with a final mix: tokens are short, so this is as fast as anything fancier. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static size_t pow2_cap(size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap <<= 1;
    return cap;
}

bool tok_strmap_init(struct tok_strmap *m, size_t expected)
{
    m->cap = pow2_cap(expected);
    m->count = 0;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->lens = malloc(m->cap * sizeof *m->lens);
    m->vals = malloc(m->cap * sizeof *m->vals);
    return m->keys && m->lens && m->vals;
}

static bool strmap_grow(struct tok_strmap *m)
{
    struct tok_strmap n;
    if (!tok_strmap_init(&n, m->cap))
        return false;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            tok_strmap_put(&n, m->keys[i], m->lens[i], m->vals[i]);
    tok_strmap_free(m);
    *m = n;
    return true;
}

bool tok_strmap_put(struct tok_strmap *m, const char *key, size_t len, int32_t val)
{
    if ((m->count + 1) * 2 > m->cap && !strmap_grow(m))
        return false;
    size_t mask = m->cap - 1, i = tok_hash(key, len) & mask;
    while (m->keys[i]) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) {
            m->vals[i] = val;
            return true;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->lens[i] = (uint32_t)len;
    m->vals[i] = val;
    m->count++;
    return true;
}

int32_t tok_strmap_get(const struct tok_strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return -1;
    size_t mask = m->cap - 1, i = tok_hash(key, len) & mask;
    while (m->keys[i]) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0)
            return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void tok_strmap_free(struct tok_strmap *m)
{
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- pair map ---- */
#define PAIR_EMPTY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

bool tok_pairmap_init(struct tok_pairmap *m, size_t expected)
{
    m->cap = pow2_cap(expected);
    m->count = 0;
    m->keys = malloc(m->cap * sizeof *m->keys);
    m->rank = malloc(m->cap * sizeof *m->rank);
    m->merged = malloc(m->cap * sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged)
        return false;
    for (size_t i = 0; i < m->cap; i++)
        m->keys[i] = PAIR_EMPTY;
    return true;
}

static bool pairmap_grow(struct tok_pairmap *m)
{
    struct tok_pairmap n;
    if (!tok_pairmap_init(&n, m->cap))
        return false;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != PAIR_EMPTY)
            tok_pairmap_put(&n, (int32_t)(m->keys[i] >> 32), (int32_t)(uint32_t)m->keys[i], m->rank[i], m->merged[i]);
    tok_pairmap_free(m);
    *m = n;
    return true;
}

bool tok_pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if ((m->count + 1) * 2 > m->cap && !pairmap_grow(m))
        return false;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = mix64(k) & mask;
    while (m->keys[i] != PAIR_EMPTY) {
        if (m->keys[i] == k)
            return true; /* the first (best-ranked) merge of a pair wins, as in `tokenizers` */
        i = (i + 1) & mask;
    }
    m->keys[i] = k;
    m->rank[i] = rank;
    m->merged[i] = merged;
    m->count++;
    return true;
}

bool tok_pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    if (!m->cap)
        return false;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = mix64(k) & mask;
    while (m->keys[i] != PAIR_EMPTY) {
        if (m->keys[i] == k) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return true;
        }
        i = (i + 1) & mask;
    }
    return false;
}

void tok_pairmap_free(struct tok_pairmap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

/* ---- buffers ---- */
bool tok_buf_reserve(struct tok_buf *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p;
        b->cap = cap;
    }
    return true;
}

bool tok_buf_put(struct tok_buf *b, const void *s, size_t n)
{
    if (!tok_buf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

bool tok_buf_putc(struct tok_buf *b, char c) { return tok_buf_put(b, &c, 1); }

bool tok_spans_push(struct tok_spans *s, uint32_t off, uint32_t len, int32_t added_id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct tok_span *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return false;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct tok_span){off, len, added_id};
    return true;
}

/* ---- UTF-8 ---- */
size_t tok_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tok_utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const uint8_t *u = (const uint8_t *)s;
    if (n == 0)
        return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if ((u[0] & 0xE0) == 0xC0) {
        len = 2, c = u[0] & 0x1F, min = 0x80;
    } else if ((u[0] & 0xF0) == 0xE0) {
        len = 3, c = u[0] & 0x0F, min = 0x800;
    } else if ((u[0] & 0xF8) == 0xF0) {
        len = 4, c = u[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

size_t tok_utf8_check(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (!l)
            return i;
        i += l;
    }
    return n;
}

/* ---- GPT-2 byte map: printable bytes stand for themselves, the rest move to U+0100.. ---- */
uint32_t tok_byte_to_cp[256];
static int16_t cp_to_byte_tab[512];
static pthread_once_t byte_map_once = PTHREAD_ONCE_INIT;

static void byte_map_build(void)
{
    uint32_t next = 256;
    for (int i = 0; i < 512; i++)
        cp_to_byte_tab[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        tok_byte_to_cp[b] = keep ? (uint32_t)b : next++;
        cp_to_byte_tab[tok_byte_to_cp[b]] = (int16_t)b;
    }
}

void tok_byte_map_init(void) { pthread_once(&byte_map_once, byte_map_build); }

int tok_cp_to_byte(uint32_t cp) { return cp < 512 ? cp_to_byte_tab[cp] : -1; }
