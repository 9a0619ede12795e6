/* gguf_vocab.c: a tokenizer from GGUF vocabulary arrays (tokenizer.ggml.*), set up to behave as
 * llama.cpp does: "llama" = SentencePiece (score-ordered merges, byte fallback, ▁ for spaces) and
 * "gpt2" = byte-level BPE with the pre-tokenizer regex named by tokenizer.ggml.pre. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static size_t slen(const char *const *s, const uint32_t *lens, uint32_t i)
{
    return lens ? lens[i] : strlen(s[i]);
}

static dg_status push_id(int32_t **v, size_t *n, int32_t id)
{
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p)
        return OOM();
    *v = p;
    p[(*n)++] = id;
    return DG_OK;
}

static dg_status setup_llama(struct dg_tokenizer *tok, const struct dg_vocab_arrays *v, const char *src)
{
    if (!v->scores)
        return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.scores is missing (required for model \"llama\")", src);
    tok->model = TM_SPM_SCORES;
    tok->byte_fallback = true;
    tok->scores = malloc(v->n_tokens * sizeof *tok->scores);
    tok->norms = calloc(2, sizeof *tok->norms);
    tok->decs = calloc(4, sizeof *tok->decs);
    if (!tok->scores || !tok->norms || !tok->decs)
        return OOM();
    memcpy(tok->scores, v->scores, v->n_tokens * sizeof *tok->scores);
    static char space[] = " ", meta[] = "\xE2\x96\x81";
    bool prefix = v->add_space_prefix != 0; /* absent (-1) means true, as in llama.cpp */
    if (prefix)
        tok->norms[tok->n_norms++] = (struct tok_norm){.kind = TN_PREPEND, .content = meta, .content_len = 3};
    tok->norms[tok->n_norms++] = (struct tok_norm){.kind = TN_REPLACE, .pat = space, .pat_len = 1, .content = meta,
                                                   .content_len = 3};
    tok->has_decoder = true;
    tok->decs[tok->n_decs++] = (struct tok_dec){.kind = TD_REPLACE, .pat = meta, .pat_len = 3, .content = space,
                                                .content_len = 1};
    tok->decs[tok->n_decs++] = (struct tok_dec){.kind = TD_BYTEFALLBACK};
    tok->decs[tok->n_decs++] = (struct tok_dec){.kind = TD_FUSE};
    if (prefix)
        tok->decs[tok->n_decs++] = (struct tok_dec){.kind = TD_STRIP, .strip_cp = ' ', .start = 1};
    return DG_OK;
}

static dg_status setup_gpt2(struct dg_tokenizer *tok, const struct dg_vocab_arrays *v, const char *src)
{
    const char *pre = v->pre ? v->pre : "default";
    const char *re;
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "smaug-bpe") ||
        !strcmp(pre, "dbrx")) {
        re = LLAMA3_REGEX;
        tok->ignore_merges = true; /* llama.cpp takes a pre-token that is itself a token whole */
    } else if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) {
        re = QWEN2_REGEX;
    } else if (!strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        re = GPT2_REGEX;
    } else {
        return dg_fail(DG_E_UNSUPPORTED, "%s: tokenizer.ggml.pre \"%s\" is not supported (supported: llama-bpe, "
                       "llama3, smaug-bpe, dbrx, qwen2, deepseek-r1-qwen, default, gpt2)", src, pre);
    }
    if (!v->merges && v->n_merges)
        return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.merges is missing", src);
    tok->model = TM_BPE;
    tok->pres = calloc(2, sizeof *tok->pres);
    tok->decs = calloc(1, sizeof *tok->decs);
    if (!tok->pres || !tok->decs)
        return OOM();
    dg_status rc = tok_compile_regex(re, strlen(re), "tokenizer.ggml.pre", &tok->pres[0].re);
    if (rc)
        return rc;
    tok->pres[0].kind = TP_SPLIT;
    tok->pres[0].behavior = SB_ISOLATED;
    tok->pres[1] = (struct tok_pre){.kind = TP_BYTELEVEL};
    tok->n_pres = 2;
    tok->has_decoder = true;
    tok->decs[tok->n_decs++] = (struct tok_dec){.kind = TD_BYTELEVEL};
    if (!tok_pairmap_init(&tok->merges, v->n_merges))
        return OOM();
    struct tok_buf cat = {0};
    for (uint32_t i = 0; i < v->n_merges; i++) {
        const char *m = v->merges[i];
        size_t ml = m ? slen(v->merges, v->merge_lens, i) : 0;
        const char *sp = m ? memchr(m, ' ', ml) : NULL;
        if (!sp) {
            free(cat.p);
            return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.merges[%u]: \"%.*s\" is not two tokens separated by a space",
                           src, i, (int)(ml > 64 ? 64 : ml), m ? m : "");
        }
        size_t al = (size_t)(sp - m), bl = ml - al - 1;
        int32_t a = tok_strmap_get(&tok->vocab, m, al), b = tok_strmap_get(&tok->vocab, sp + 1, bl);
        cat.len = 0;
        if (!tok_buf_put(&cat, m, al) || !tok_buf_put(&cat, sp + 1, bl)) {
            free(cat.p);
            return OOM();
        }
        int32_t c = tok_strmap_get(&tok->vocab, cat.p, cat.len);
        if (a < 0 || b < 0 || c < 0) {
            free(cat.p);
            return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.merges[%u]: \"%.*s\" names a token that is not in "
                           "tokenizer.ggml.tokens", src, i, (int)(ml > 64 ? 64 : ml), m);
        }
        if (!tok_pairmap_put(&tok->merges, a, b, (int32_t)i, c)) {
            free(cat.p);
            return OOM();
        }
    }
    free(cat.p);
    return DG_OK;
}

dg_status dg_tokenizer_from_gguf_vocab(const struct dg_vocab_arrays *v, struct dg_tokenizer **out)
{
    *out = NULL;
    const char *src = v->source ? v->source : "GGUF";
    if (!v->model)
        return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.model is missing", src);
    bool llama = strcmp(v->model, "llama") == 0, gpt2 = strcmp(v->model, "gpt2") == 0;
    if (!llama && !gpt2)
        return dg_fail(DG_E_UNSUPPORTED, "%s: tokenizer.ggml.model \"%s\" is not supported (supported: llama, gpt2)",
                       src, v->model);
    if (!v->tokens || v->n_tokens == 0 || v->n_tokens > 0x7FFFFFF)
        return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.tokens has %u entries (expected 1 to %d)", src, v->n_tokens,
                       0x7FFFFFF);
    int32_t ids[5] = {v->bos_id, v->eos_id, v->eot_id, v->unk_id, v->pad_id};
    static const char *const names[5] = {"bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id",
                                         "padding_token_id"};
    for (int i = 0; i < 5; i++)
        if (ids[i] < -1 || ids[i] >= (int32_t)v->n_tokens)
            return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.%s is %d (expected -1 or 0 to %u)", src, names[i], ids[i],
                           v->n_tokens - 1);
    struct dg_tokenizer *tok = tok_alloc(src);
    if (!tok)
        return OOM();
    dg_status rc = DG_OK;
    if (!tok_strmap_init(&tok->vocab, v->n_tokens) || !(tok->added = calloc(v->n_tokens, sizeof *tok->added))) {
        rc = OOM();
        goto fail;
    }
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        if (!v->tokens[i]) {
            rc = dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.tokens[%u] is missing", src, i);
            goto fail;
        }
        size_t l = slen(v->tokens, v->token_lens, i);
        char *k = tok_arena_dup(&tok->arena, v->tokens[i], l);
        if (!k) {
            rc = OOM();
            goto fail;
        }
        int32_t type = v->token_types ? v->token_types[i] : TT_NORMAL;
        /* Control and user-defined tokens are matched in the text before the model runs. */
        if ((type == TT_CONTROL || type == TT_USER) && l > 0)
            tok->added[tok->n_added++] = (struct tok_added){.content = k, .len = (uint32_t)l, .id = (int32_t)i,
                                                            .special = type == TT_CONTROL};
        if (tok_strmap_get(&tok->vocab, k, l) < 0 && !tok_strmap_put(&tok->vocab, k, l, (int32_t)i)) {
            rc = OOM();
            goto fail;
        }
        if (type == TT_UNKNOWN && v->unk_id < 0)
            tok->unk_id = (int32_t)i;
    }
    if (v->unk_id >= 0)
        tok->unk_id = v->unk_id;
    rc = llama ? setup_llama(tok, v, src) : setup_gpt2(tok, v, src);
    if (rc)
        goto fail;
    tok->bos_id = v->bos_id;
    tok->eos_id = v->eos_id;
    tok->eot_id = v->eot_id;
    bool add_bos = v->add_bos >= 0 ? v->add_bos != 0 : (llama || tok->ignore_merges);
    bool add_eos = v->add_eos > 0;
    if ((add_bos && tok->bos_id >= 0 && (rc = push_id(&tok->post_pre, &tok->n_post_pre, tok->bos_id))) ||
        (add_eos && tok->eos_id >= 0 && (rc = push_id(&tok->post_post, &tok->n_post_post, tok->eos_id))))
        goto fail;
    if (tok->bos_id >= 0 && !(tok->bos_str = tok_arena_dup(&tok->arena, v->tokens[tok->bos_id],
                                                          slen(v->tokens, v->token_lens, (uint32_t)tok->bos_id)))) {
        rc = OOM();
        goto fail;
    }
    if (tok->eos_id >= 0 && !(tok->eos_str = tok_arena_dup(&tok->arena, v->tokens[tok->eos_id],
                                                          slen(v->tokens, v->token_lens, (uint32_t)tok->eos_id)))) {
        rc = OOM();
        goto fail;
    }
    if (v->chat_template && !(tok->chat_template = tok_arena_dup(&tok->arena, v->chat_template, strlen(v->chat_template)))) {
        rc = OOM();
        goto fail;
    }
    if ((rc = tok_finish(tok)))
        goto fail;
    *out = tok;
    return DG_OK;
fail:
    /* setup_llama's stages point at static strings; nothing else needs care. */
    dg_tokenizer_free(tok);
    return rc;
}
