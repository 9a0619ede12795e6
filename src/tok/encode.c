/* encode.c: text → ids (added tokens, normalizer, pre-tokenizer, model, post-processor, in the order of
 * `tokenizers`' Tokenizer::encode), plus the tokenizer's accessors and its teardown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

static bool push_ids(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k)
{
    if (*n + k > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *n + k)
            c *= 2;
        int32_t *v = realloc(*ids, c * sizeof *v);
        if (!v)
            return false;
        *ids = v;
        *cap = c;
    }
    if (k)
        memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return true;
}

dg_status dg_tokenizer_encode(const struct dg_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids_out, size_t *n_out)
{
    *ids_out = NULL;
    *n_out = 0;
    if (len > UINT32_MAX / 4)
        return dg_fail(DG_E_UNSUPPORTED, "tokenizer: input of %zu bytes is too long (limit %u)", len, UINT32_MAX / 4);
    size_t bad = tok_utf8_check(text, len);
    if (bad != len)
        return dg_fail(DG_E_FORMAT, "tokenizer: input is not valid UTF-8 (byte 0x%02x at offset %zu)",
                       (unsigned)(uint8_t)text[bad], bad);
    bool parse_special = !(flags & DG_TOK_NO_PARSE_SPECIAL);
    struct tok_spans raw = {0}, spans = {0};
    struct tok_buf buf = {0};
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    dg_status rc = tok_split_added(tok, &tok->trie_raw, text, len, 0, parse_special, &raw);
    bool norm_trie = tok->trie_norm.n_nodes > 1;
    for (size_t i = 0; rc == DG_OK && i < raw.n; i++) {
        struct tok_span sp = raw.v[i];
        if (sp.added_id >= 0) {
            if (!tok_spans_push(&spans, 0, 0, sp.added_id))
                rc = OOM();
            continue;
        }
        size_t noff = buf.len;
        rc = tok_normalize(tok, text + sp.off, sp.len, &buf);
        if (rc)
            break;
        if (buf.len > UINT32_MAX)
            rc = dg_fail(DG_E_UNSUPPORTED, "tokenizer: normalized text too long");
        else if (norm_trie)
            rc = tok_split_added(tok, &tok->trie_norm, buf.p + noff, buf.len - noff, (uint32_t)noff, parse_special,
                                 &spans);
        else if (buf.len > noff && !tok_spans_push(&spans, (uint32_t)noff, (uint32_t)(buf.len - noff), -1))
            rc = OOM();
    }
    if (rc == DG_OK)
        rc = tok_pretokenize(tok, &buf, &spans);
    if (rc == DG_OK && (flags & DG_TOK_ADD_SPECIAL) && !push_ids(&ids, &n_ids, &cap, tok->post_pre, tok->n_post_pre))
        rc = OOM();
    for (size_t i = 0; rc == DG_OK && i < spans.n; i++) {
        if (spans.v[i].added_id >= 0) {
            if (!push_ids(&ids, &n_ids, &cap, &spans.v[i].added_id, 1))
                rc = OOM();
        } else {
            rc = tok_model_encode(tok, buf.p + spans.v[i].off, spans.v[i].len, &ids, &n_ids, &cap);
        }
    }
    if (rc == DG_OK && (flags & DG_TOK_ADD_SPECIAL) &&
        !push_ids(&ids, &n_ids, &cap, tok->post_post, tok->n_post_post))
        rc = OOM();
    free(raw.v);
    free(spans.v);
    free(buf.p);
    if (rc) {
        free(ids);
        return rc;
    }
    if (!ids && !(ids = malloc(sizeof *ids)))
        return OOM();
    *ids_out = ids;
    *n_out = n_ids;
    return DG_OK;
}

/* ---- accessors ---- */
const char *dg_tokenizer_token_str(const struct dg_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_vocab || !tok->id_str[id])
        return NULL;
    if (len)
        *len = tok->id_len[id];
    return tok->id_str[id];
}

int32_t dg_tokenizer_token_id(const struct dg_tokenizer *tok, const char *str, size_t len)
{
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && memcmp(tok->added[i].content, str, len) == 0)
            return tok->added[i].id;
    return tok_strmap_get(&tok->vocab, str, len);
}

bool dg_tokenizer_is_special(const struct dg_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab && (tok->id_flags[id] & TOKF_SPECIAL);
}

int32_t dg_tokenizer_n_vocab(const struct dg_tokenizer *tok) { return tok->n_vocab; }
int32_t dg_tokenizer_bos(const struct dg_tokenizer *tok) { return tok->bos_id; }
int32_t dg_tokenizer_eos(const struct dg_tokenizer *tok) { return tok->eos_id; }

size_t dg_tokenizer_eog_ids(const struct dg_tokenizer *tok, const int32_t **ids)
{
    *ids = tok->eog;
    return tok->n_eog;
}

bool dg_tokenizer_is_eog(const struct dg_tokenizer *tok, int32_t id)
{
    for (size_t i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id)
            return true;
    return false;
}

const char *dg_tokenizer_chat_template(const struct dg_tokenizer *tok) { return tok->chat_template; }
const char *dg_tokenizer_bos_str(const struct dg_tokenizer *tok) { return tok->bos_str ? tok->bos_str : ""; }
const char *dg_tokenizer_eos_str(const struct dg_tokenizer *tok) { return tok->eos_str ? tok->eos_str : ""; }

struct dg_tokenizer *tok_alloc(const char *source)
{
    tok_byte_map_init();
    struct dg_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return NULL;
    tok->source = strdup(source ? source : "tokenizer");
    tok->unk_id = tok->bos_id = tok->eos_id = tok->eot_id = -1;
    for (int i = 0; i < 256; i++)
        tok->byte_ids[i] = -1;
    if (!tok->source) {
        free(tok);
        return NULL;
    }
    return tok;
}

void dg_tokenizer_free(struct dg_tokenizer *tok)
{
    if (!tok)
        return;
    for (size_t i = 0; i < tok->n_norms; i++)
        pcre2_code_free(tok->norms[i].re);
    for (size_t i = 0; i < tok->n_pres; i++)
        pcre2_code_free(tok->pres[i].re);
    free(tok->norms);
    free(tok->pres);
    free(tok->decs);
    free(tok->added);
    tok_trie_free(&tok->trie_raw);
    tok_trie_free(&tok->trie_norm);
    tok_strmap_free(&tok->vocab);
    tok_pairmap_free(&tok->merges);
    free(tok->id_str);
    free(tok->id_len);
    free(tok->id_flags);
    free(tok->scores);
    free(tok->post_pre);
    free(tok->post_post);
    free(tok->eog);
    tok_arena_free(&tok->arena);
    free(tok->source);
    free(tok);
}

/* Ids that end generation: the declared EOS/EOT plus the end-of-turn markers the families use. */
static bool eog_add(struct dg_tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_vocab || dg_tokenizer_is_eog(tok, id))
        return true;
    int32_t *v = realloc(tok->eog, (tok->n_eog + 1) * sizeof *v);
    if (!v)
        return false;
    tok->eog = v;
    tok->eog[tok->n_eog++] = id;
    return true;
}

dg_status tok_eog_add(struct dg_tokenizer *tok, int32_t id) { return eog_add(tok, id) ? DG_OK : OOM(); }

dg_status tok_finish(struct dg_tokenizer *tok)
{
    /* id table: model vocabulary first, then added tokens (which win, as in `tokenizers`' id_to_token). */
    int32_t n = 0;
    for (size_t i = 0; i < tok->vocab.cap; i++)
        if (tok->vocab.keys[i] && tok->vocab.vals[i] + 1 > n)
            n = tok->vocab.vals[i] + 1;
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].id + 1 > n)
            n = tok->added[i].id + 1;
    tok->n_vocab = n;
    tok->id_str = calloc((size_t)n + 1, sizeof *tok->id_str);
    tok->id_len = calloc((size_t)n + 1, sizeof *tok->id_len);
    tok->id_flags = calloc((size_t)n + 1, 1);
    if (!tok->id_str || !tok->id_len || !tok->id_flags)
        return OOM();
    for (size_t i = 0; i < tok->vocab.cap; i++) {
        if (!tok->vocab.keys[i])
            continue;
        int32_t id = tok->vocab.vals[i];
        tok->id_str[id] = tok->vocab.keys[i];
        tok->id_len[id] = tok->vocab.lens[i];
    }
    for (size_t i = 0; i < tok->n_added; i++) {
        int32_t id = tok->added[i].id;
        tok->id_str[id] = tok->added[i].content;
        tok->id_len[id] = tok->added[i].len;
        tok->id_flags[id] |= TOKF_ADDED | (tok->added[i].special ? TOKF_SPECIAL : 0);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_ids[b] = tok_strmap_get(&tok->vocab, name, 6);
        if (tok->byte_ids[b] >= 0)
            tok->id_flags[tok->byte_ids[b]] |= TOKF_BYTE;
    }
    dg_status rc = tok_trie_build(&tok->trie_raw, tok->added, tok->n_added, false);
    if (rc == DG_OK)
        rc = tok_trie_build(&tok->trie_norm, tok->added, tok->n_added, true);
    if (rc)
        return rc;
    if (!eog_add(tok, tok->eos_id) || !eog_add(tok, tok->eot_id))
        return OOM();
    static const char *const markers[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|eom_id|>",
                                          "<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"};
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
        int32_t id = dg_tokenizer_token_id(tok, markers[i], strlen(markers[i]));
        if (id >= 0 && (tok->id_flags[id] & TOKF_SPECIAL) && !eog_add(tok, id))
            return OOM();
    }
    return DG_OK;
}
