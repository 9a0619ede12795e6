/* tok_internal.h: the tokenizer's in-memory layout, shared by the files of src/tok (not a public API).
 *
 * Strings live in one arena; the vocabulary and the merge table are open-addressing hash maps. The
 * pipeline stages are small tagged structs in arrays, applied in order like the `tokenizers` library. */
#ifndef DG_TOK_INTERNAL_H
#define DG_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "tok/tokenizer.h"

/* ---- arena: bump allocator of stable strings ---- */
struct tok_arena_block;
struct tok_arena {
    struct tok_arena_block *head;
};
char *tok_arena_dup(struct tok_arena *a, const char *s, size_t len); /* NUL-terminated copy, NULL on OOM */
void tok_arena_free(struct tok_arena *a);

/* ---- string → int32 map (keys point into the arena) ---- */
struct tok_strmap {
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
    size_t cap, count; /* cap is a power of two */
};
uint64_t tok_hash(const char *s, size_t len);
bool tok_strmap_init(struct tok_strmap *m, size_t expected);
/* Inserts or overwrites; the key must outlive the map. Returns false on OOM. */
bool tok_strmap_put(struct tok_strmap *m, const char *key, size_t len, int32_t val);
int32_t tok_strmap_get(const struct tok_strmap *m, const char *key, size_t len); /* -1 when absent */
void tok_strmap_free(struct tok_strmap *m);

/* ---- (id, id) → (rank, merged id) map ---- */
struct tok_pairmap {
    uint64_t *keys;
    int32_t *rank, *merged;
    size_t cap, count;
};
bool tok_pairmap_init(struct tok_pairmap *m, size_t expected);
bool tok_pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged); /* keeps first */
bool tok_pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void tok_pairmap_free(struct tok_pairmap *m);

/* ---- growable byte buffer and span list used by the pipeline ---- */
struct tok_buf {
    char *p;
    size_t len, cap;
};
bool tok_buf_put(struct tok_buf *b, const void *s, size_t n);
bool tok_buf_putc(struct tok_buf *b, char c);
bool tok_buf_reserve(struct tok_buf *b, size_t extra); /* room for `extra` more bytes and a NUL */

struct tok_span {
    uint32_t off, len; /* into a buffer */
    int32_t added_id;  /* >= 0: this span is an added token already resolved */
};
struct tok_spans {
    struct tok_span *v;
    size_t n, cap;
};
bool tok_spans_push(struct tok_spans *s, uint32_t off, uint32_t len, int32_t added_id);

/* ---- pipeline stages ---- */
enum tok_norm_kind { TN_NFC, TN_NFD, TN_NFKC, TN_NFKD, TN_REPLACE, TN_PREPEND, TN_LOWERCASE, TN_STRIP };
struct tok_norm {
    enum tok_norm_kind kind;
    char *pat, *content; /* REPLACE: literal pattern or regex; PREPEND: content */
    size_t pat_len, content_len;
    pcre2_code *re;      /* REPLACE with a Regex pattern */
    bool left, right;    /* STRIP */
};

enum tok_split_behavior { SB_REMOVED, SB_ISOLATED, SB_MERGED_PREV, SB_MERGED_NEXT, SB_CONTIGUOUS };
enum tok_pre_kind { TP_SPLIT, TP_BYTELEVEL, TP_METASPACE, TP_WHITESPACE_SPLIT, TP_DIGITS };
struct tok_pre {
    enum tok_pre_kind kind;
    pcre2_code *re;           /* SPLIT with Regex; BYTELEVEL with use_regex (the GPT-2 pattern) */
    char *lit;                /* SPLIT with a String pattern */
    size_t lit_len;
    enum tok_split_behavior behavior;
    bool invert;
    bool add_prefix_space;    /* BYTELEVEL */
    bool use_regex;           /* BYTELEVEL */
    char repl[8];             /* METASPACE replacement, UTF-8 */
    int prepend_scheme;       /* METASPACE: 0 always, 1 first, 2 never */
    bool split;               /* METASPACE */
    bool individual_digits;   /* DIGITS */
};

enum tok_dec_kind { TD_BYTELEVEL, TD_REPLACE, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP, TD_METASPACE };
struct tok_dec {
    enum tok_dec_kind kind;
    char *pat, *content;
    size_t pat_len, content_len;
    uint32_t strip_cp; /* STRIP: the code point to strip */
    int start, stop;   /* STRIP */
    char repl[8];      /* METASPACE */
    bool prepend;      /* METASPACE: strip the leading space of the first token */
};

struct tok_added {
    const char *content;
    uint32_t len;
    int32_t id;
    bool special, normalized, lstrip, rstrip, single_word;
};

/* Byte trie over added-token contents for leftmost-longest matching. */
struct tok_trie {
    uint64_t *ekeys;  /* edge (node << 8 | byte) + 1, 0 = empty slot */
    int32_t *evals;   /* edge → child node */
    size_t ecap, ecount;
    int32_t *term;    /* node → index into added[] or -1 */
    size_t n_nodes, cap_nodes;
    bool first[256];  /* bytes that can start a match: a cheap filter for the scan */
};

enum tok_model_kind { TM_BPE, TM_SPM_SCORES };

struct dg_tokenizer {
    char *source; /* file name for messages */
    struct tok_arena arena;
    enum tok_model_kind model;

    int32_t n_vocab;      /* highest id + 1 over the model vocabulary and added tokens */
    const char **id_str;  /* [n_vocab] token strings (model vocab, overridden by added tokens); may be NULL */
    uint32_t *id_len;
    uint8_t *id_flags;    /* [n_vocab] TOKF_* */
    struct tok_strmap vocab;  /* model vocabulary only */
    struct tok_pairmap merges;
    float *scores;        /* TM_SPM_SCORES: [n_vocab] */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    char *cont_prefix, *eow_suffix; /* NULL when empty */
    size_t cont_prefix_len, eow_suffix_len;
    int32_t byte_ids[256];  /* "<0xNN>" ids, or -1 */

    struct tok_norm *norms;
    size_t n_norms;
    struct tok_pre *pres;
    size_t n_pres;
    struct tok_dec *decs;
    size_t n_decs;
    bool has_decoder;

    struct tok_added *added;
    size_t n_added;
    struct tok_trie trie_raw, trie_norm; /* added tokens matched before / after normalization */

    int32_t *post_pre, *post_post; /* ids the post-processor puts before / after the sequence */
    size_t n_post_pre, n_post_post;

    int32_t bos_id, eos_id, eot_id;
    char *bos_str, *eos_str, *chat_template;
    int32_t *eog;
    size_t n_eog;
};

enum { TOKF_SPECIAL = 1, TOKF_ADDED = 2, TOKF_BYTE = 4 };

/* Internal steps (each file's entry points). */
void tok_byte_map_init(void);
extern uint32_t tok_byte_to_cp[256];   /* GPT-2 byte → code point */
int tok_cp_to_byte(uint32_t cp);       /* inverse, -1 when not a mapped code point */
size_t tok_utf8_encode(uint32_t cp, char *out); /* 1..4 bytes */
/* Decodes one code point at s[0..n); returns its length (1..4) or 0 on invalid UTF-8. */
size_t tok_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Offset of the first invalid UTF-8 byte, or n when valid. */
size_t tok_utf8_check(const char *s, size_t n);

dg_status tok_compile_regex(const char *pattern, size_t len, const char *where, pcre2_code **out);
dg_status tok_normalize(const struct dg_tokenizer *tok, const char *s, size_t n, struct tok_buf *out);
/* Applies the pre-tokenizers to the non-added spans (text in `buf`); stages that rewrite text (ByteLevel,
 * Metaspace) append to `buf`, so spans always refer to it. */
dg_status tok_pretokenize(const struct dg_tokenizer *tok, struct tok_buf *buf, struct tok_spans *spans);
/* Runs the model on one pre-token, appending ids. */
dg_status tok_model_encode(const struct dg_tokenizer *tok, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                           size_t *cap);
/* Builds the trie over the added tokens whose `normalized` flag equals `normalized`. */
dg_status tok_trie_build(struct tok_trie *t, const struct tok_added *added, size_t n_added, bool normalized);
void tok_trie_free(struct tok_trie *t);
/* Splits s[0..n) on added tokens of `trie`, appending spans (added ones with added_id set) to `out`
 * with offsets relative to `base`. */
dg_status tok_split_added(const struct dg_tokenizer *tok, const struct tok_trie *trie, const char *s, size_t n,
                          uint32_t base, bool parse_special, struct tok_spans *out);

/* Finishes a tokenizer after its vocabulary and stages are set: byte ids, id table, tries, EOG ids. */
dg_status tok_finish(struct dg_tokenizer *tok);
dg_status tok_eog_add(struct dg_tokenizer *tok, int32_t id); /* ignores -1 and duplicates */
struct dg_tokenizer *tok_alloc(const char *source);

#endif
