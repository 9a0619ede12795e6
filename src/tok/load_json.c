/* load_json.c: builds a tokenizer from Hugging Face files: tokenizer.json (model, added tokens, normalizer,
 * pre-tokenizer, post-processor, decoder) and tokenizer_config.json / generation_config.json (BOS/EOS,
 * add_bos_token, chat template, extra EOS ids). Every error names the file and the JSON field. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "tokenizer: out of memory")

/* Files larger than this are refused before reading (the largest real tokenizer.json is ~35 MB). */
#define TOK_MAX_FILE (1u << 30)

static dg_status read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dg_fail(DG_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fileno(f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        fclose(f);
        return dg_fail(DG_E_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)stt.st_size > TOK_MAX_FILE) {
        fclose(f);
        return dg_fail(DG_E_FORMAT, "%s: %lld bytes is larger than the %u-byte limit", path, (long long)stt.st_size,
                       TOK_MAX_FILE);
    }
    size_t n = (size_t)stt.st_size;
    char *p = malloc(n + 1);
    if (!p) {
        fclose(f);
        return OOM();
    }
    size_t got = fread(p, 1, n, f);
    fclose(f);
    if (got != n) {
        free(p);
        return dg_fail(DG_E_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    p[n] = 0;
    *data = p;
    *len = n;
    return DG_OK;
}

static dg_status parse_json(const char *path, cJSON **out)
{
    char *data = NULL;
    size_t len = 0;
    dg_status rc = read_file(path, &data, &len);
    if (rc)
        return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(data, len, &end, false);
    if (!j) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        if (!end) {
            const char *e = cJSON_GetErrorPtr();
            off = e && e >= data && e <= data + len ? (size_t)(e - data) : 0;
        }
        free(data);
        return dg_fail(DG_E_FORMAT, "%s: not valid JSON (error near byte %zu)", path, off);
    }
    free(data);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return dg_fail(DG_E_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = j;
    return DG_OK;
}

/* ---- field helpers ---- */
struct ctx {
    const char *path;
    struct dg_tokenizer *tok;
};

static dg_status bad(const struct ctx *c, const char *field, const char *what)
{
    return dg_fail(DG_E_FORMAT, "%s: field %s: %s", c->path, field, what);
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static bool is_null(const cJSON *j) { return !j || cJSON_IsNull(j); }

static dg_status get_bool(const struct ctx *c, const cJSON *o, const char *key, const char *where, bool dflt,
                          bool *out)
{
    const cJSON *j = get(o, key);
    if (is_null(j)) {
        *out = dflt;
        return DG_OK;
    }
    if (!cJSON_IsBool(j))
        return dg_fail(DG_E_FORMAT, "%s: field %s.%s: expected true or false", c->path, where, key);
    *out = cJSON_IsTrue(j);
    return DG_OK;
}

static dg_status get_str(const struct ctx *c, const cJSON *o, const char *key, const char *where, bool required,
                         const char **out)
{
    const cJSON *j = get(o, key);
    *out = NULL;
    if (is_null(j)) {
        if (required)
            return dg_fail(DG_E_FORMAT, "%s: field %s.%s is missing (expected a string)", c->path, where, key);
        return DG_OK;
    }
    if (!cJSON_IsString(j))
        return dg_fail(DG_E_FORMAT, "%s: field %s.%s: expected a string", c->path, where, key);
    *out = j->valuestring;
    return DG_OK;
}

static dg_status get_id(const struct ctx *c, const cJSON *j, const char *where, int32_t *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 0x7FFFFFF || j->valuedouble != (double)(int64_t)j->valuedouble)
        return dg_fail(DG_E_FORMAT, "%s: field %s: expected a token id (integer in [0, %d])", c->path, where, 0x7FFFFFF);
    *out = (int32_t)j->valuedouble;
    return DG_OK;
}

/* A pattern object {"String": s} or {"Regex": r}. */
static dg_status get_pattern(const struct ctx *c, const cJSON *o, const char *where, char **lit, size_t *lit_len,
                             pcre2_code **re)
{
    const cJSON *p = get(o, "pattern");
    const cJSON *s = p ? get(p, "String") : NULL, *r = p ? get(p, "Regex") : NULL;
    *lit = NULL;
    *lit_len = 0;
    *re = NULL;
    if (cJSON_IsString(s)) {
        *lit_len = strlen(s->valuestring);
        *lit = tok_arena_dup(&c->tok->arena, s->valuestring, *lit_len);
        return *lit ? DG_OK : OOM();
    }
    if (cJSON_IsString(r)) {
        char w[256];
        snprintf(w, sizeof w, "%s: field %s.pattern.Regex", c->path, where);
        return tok_compile_regex(r->valuestring, strlen(r->valuestring), w, re);
    }
    return dg_fail(DG_E_FORMAT, "%s: field %s.pattern: expected {\"String\": ...} or {\"Regex\": ...}", c->path, where);
}

static char *arena_str(const struct ctx *c, const char *s) { return tok_arena_dup(&c->tok->arena, s, strlen(s)); }

/* ---- normalizer ---- */
static dg_status add_norm(struct dg_tokenizer *tok, struct tok_norm st)
{
    struct tok_norm *v = realloc(tok->norms, (tok->n_norms + 1) * sizeof *v);
    if (!v) {
        pcre2_code_free(st.re);
        return OOM();
    }
    tok->norms = v;
    tok->norms[tok->n_norms++] = st;
    return DG_OK;
}

static dg_status parse_normalizer(const struct ctx *c, const cJSON *j, const char *where, int depth)
{
    if (is_null(j))
        return DG_OK;
    if (depth > 8)
        return bad(c, where, "normalizers nested too deeply");
    const char *type;
    dg_status rc = get_str(c, j, "type", where, true, &type);
    if (rc)
        return rc;
    struct tok_norm st = {0};
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = get(j, "normalizers");
        if (!cJSON_IsArray(arr))
            return bad(c, where, "Sequence without a \"normalizers\" array");
        int i = 0;
        for (const cJSON *e = arr->child; e; e = e->next, i++) {
            char w[128];
            snprintf(w, sizeof w, "%s.normalizers[%d]", where, i);
            if ((rc = parse_normalizer(c, e, w, depth + 1)))
                return rc;
        }
        return DG_OK;
    }
    if (strcmp(type, "NFC") == 0) st.kind = TN_NFC;
    else if (strcmp(type, "NFD") == 0) st.kind = TN_NFD;
    else if (strcmp(type, "NFKC") == 0) st.kind = TN_NFKC;
    else if (strcmp(type, "NFKD") == 0) st.kind = TN_NFKD;
    else if (strcmp(type, "Lowercase") == 0) st.kind = TN_LOWERCASE;
    else if (strcmp(type, "Strip") == 0) {
        st.kind = TN_STRIP;
        if ((rc = get_bool(c, j, "strip_left", where, true, &st.left)) || (rc = get_bool(c, j, "strip_right", where, true, &st.right)))
            return rc;
    } else if (strcmp(type, "Prepend") == 0) {
        const char *p;
        if ((rc = get_str(c, j, "prepend", where, true, &p)))
            return rc;
        st.kind = TN_PREPEND;
        st.content_len = strlen(p);
        if (!(st.content = arena_str(c, p)))
            return OOM();
    } else if (strcmp(type, "Replace") == 0) {
        const char *content;
        st.kind = TN_REPLACE;
        if ((rc = get_str(c, j, "content", where, true, &content)) ||
            (rc = get_pattern(c, j, where, &st.pat, &st.pat_len, &st.re)))
            return rc;
        st.content_len = strlen(content);
        if (!(st.content = arena_str(c, content))) {
            pcre2_code_free(st.re);
            return OOM();
        }
    } else {
        return dg_fail(DG_E_UNSUPPORTED, "%s: field %s.type: normalizer \"%s\" is not supported (supported: "
                       "Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace)", c->path, where, type);
    }
    return add_norm(c->tok, st);
}

/* ---- pre-tokenizer ---- */
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static dg_status add_pre(struct dg_tokenizer *tok, struct tok_pre st)
{
    struct tok_pre *v = realloc(tok->pres, (tok->n_pres + 1) * sizeof *v);
    if (!v) {
        pcre2_code_free(st.re);
        return OOM();
    }
    tok->pres = v;
    tok->pres[tok->n_pres++] = st;
    return DG_OK;
}

static dg_status get_utf8_char(const struct ctx *c, const cJSON *j, const char *key, const char *where, char *out,
                               const char *dflt)
{
    const char *s;
    dg_status rc = get_str(c, j, key, where, false, &s);
    if (rc)
        return rc;
    if (!s)
        s = dflt;
    uint32_t cp;
    size_t l = tok_utf8_decode(s, strlen(s), &cp);
    if (!l || s[l] != 0)
        return dg_fail(DG_E_FORMAT, "%s: field %s.%s: expected one character, got \"%s\"", c->path, where, key, s);
    memcpy(out, s, l);
    out[l] = 0;
    return DG_OK;
}

static dg_status parse_pre(const struct ctx *c, const cJSON *j, const char *where, int depth)
{
    if (is_null(j))
        return DG_OK;
    if (depth > 8)
        return bad(c, where, "pre-tokenizers nested too deeply");
    const char *type;
    dg_status rc = get_str(c, j, "type", where, true, &type);
    if (rc)
        return rc;
    struct tok_pre st = {0};
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = get(j, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return bad(c, where, "Sequence without a \"pretokenizers\" array");
        int i = 0;
        for (const cJSON *e = arr->child; e; e = e->next, i++) {
            char w[128];
            snprintf(w, sizeof w, "%s.pretokenizers[%d]", where, i);
            if ((rc = parse_pre(c, e, w, depth + 1)))
                return rc;
        }
        return DG_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *b;
        st.kind = TP_SPLIT;
        if ((rc = get_str(c, j, "behavior", where, true, &b)) || (rc = get_bool(c, j, "invert", where, false, &st.invert)))
            return rc;
        if (strcmp(b, "Removed") == 0) st.behavior = SB_REMOVED;
        else if (strcmp(b, "Isolated") == 0) st.behavior = SB_ISOLATED;
        else if (strcmp(b, "MergedWithPrevious") == 0) st.behavior = SB_MERGED_PREV;
        else if (strcmp(b, "MergedWithNext") == 0) st.behavior = SB_MERGED_NEXT;
        else if (strcmp(b, "Contiguous") == 0) st.behavior = SB_CONTIGUOUS;
        else
            return dg_fail(DG_E_FORMAT, "%s: field %s.behavior: \"%s\" is not one of Removed, Isolated, "
                           "MergedWithPrevious, MergedWithNext, Contiguous", c->path, where, b);
        if ((rc = get_pattern(c, j, where, &st.lit, &st.lit_len, &st.re)))
            return rc;
    } else if (strcmp(type, "ByteLevel") == 0) {
        st.kind = TP_BYTELEVEL;
        if ((rc = get_bool(c, j, "add_prefix_space", where, true, &st.add_prefix_space)) ||
            (rc = get_bool(c, j, "use_regex", where, true, &st.use_regex)))
            return rc;
        st.behavior = SB_ISOLATED;
        if (st.use_regex && (rc = tok_compile_regex(GPT2_REGEX, sizeof GPT2_REGEX - 1, "ByteLevel", &st.re)))
            return rc;
    } else if (strcmp(type, "Metaspace") == 0) {
        st.kind = TP_METASPACE;
        const char *scheme;
        bool add_prefix;
        if ((rc = get_utf8_char(c, j, "replacement", where, st.repl, "\xE2\x96\x81")) ||
            (rc = get_bool(c, j, "split", where, true, &st.split)) ||
            (rc = get_str(c, j, "prepend_scheme", where, false, &scheme)) ||
            (rc = get_bool(c, j, "add_prefix_space", where, true, &add_prefix)))
            return rc;
        st.prepend_scheme = add_prefix ? 0 : 2;
        if (scheme) {
            if (strcmp(scheme, "always") == 0) st.prepend_scheme = 0;
            else if (strcmp(scheme, "first") == 0) st.prepend_scheme = 1;
            else if (strcmp(scheme, "never") == 0) st.prepend_scheme = 2;
            else
                return dg_fail(DG_E_FORMAT, "%s: field %s.prepend_scheme: \"%s\" is not always, first or never",
                               c->path, where, scheme);
        }
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        st.kind = TP_WHITESPACE_SPLIT;
        st.behavior = SB_REMOVED;
        if ((rc = tok_compile_regex("\\s+", 3, "WhitespaceSplit", &st.re)))
            return rc;
    } else if (strcmp(type, "Digits") == 0) {
        st.kind = TP_DIGITS;
        st.behavior = SB_ISOLATED;
        if ((rc = get_bool(c, j, "individual_digits", where, false, &st.individual_digits)))
            return rc;
        const char *re = st.individual_digits ? "\\p{N}" : "\\p{N}+";
        if ((rc = tok_compile_regex(re, strlen(re), "Digits", &st.re)))
            return rc;
    } else {
        return dg_fail(DG_E_UNSUPPORTED, "%s: field %s.type: pre-tokenizer \"%s\" is not supported (supported: "
                       "Sequence, Split, ByteLevel, Metaspace, WhitespaceSplit, Digits)", c->path, where, type);
    }
    return add_pre(c->tok, st);
}

/* ---- decoder ---- */
static dg_status add_dec(struct dg_tokenizer *tok, struct tok_dec st)
{
    struct tok_dec *v = realloc(tok->decs, (tok->n_decs + 1) * sizeof *v);
    if (!v)
        return OOM();
    tok->decs = v;
    tok->decs[tok->n_decs++] = st;
    return DG_OK;
}

static dg_status parse_decoder(const struct ctx *c, const cJSON *j, const char *where, int depth)
{
    if (is_null(j))
        return DG_OK;
    if (depth > 8)
        return bad(c, where, "decoders nested too deeply");
    c->tok->has_decoder = true;
    const char *type;
    dg_status rc = get_str(c, j, "type", where, true, &type);
    if (rc)
        return rc;
    struct tok_dec st = {0};
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = get(j, "decoders");
        if (!cJSON_IsArray(arr))
            return bad(c, where, "Sequence without a \"decoders\" array");
        int i = 0;
        for (const cJSON *e = arr->child; e; e = e->next, i++) {
            char w[128];
            snprintf(w, sizeof w, "%s.decoders[%d]", where, i);
            if ((rc = parse_decoder(c, e, w, depth + 1)))
                return rc;
        }
        return DG_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        st.kind = TD_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        st.kind = TD_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        st.kind = TD_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        const char *content;
        pcre2_code *re = NULL;
        st.kind = TD_REPLACE;
        if ((rc = get_str(c, j, "content", where, true, &content)) ||
            (rc = get_pattern(c, j, where, &st.pat, &st.pat_len, &re)))
            return rc;
        if (re) {
            pcre2_code_free(re);
            return dg_fail(DG_E_UNSUPPORTED, "%s: field %s.pattern: Regex patterns in the Replace decoder are not "
                           "supported (String only)", c->path, where);
        }
        st.content_len = strlen(content);
        if (!(st.content = arena_str(c, content)))
            return OOM();
    } else if (strcmp(type, "Strip") == 0) {
        const cJSON *s = get(j, "start"), *e = get(j, "stop");
        char ch[8];
        st.kind = TD_STRIP;
        if ((rc = get_utf8_char(c, j, "content", where, ch, " ")))
            return rc;
        tok_utf8_decode(ch, strlen(ch), &st.strip_cp);
        if ((s && !cJSON_IsNumber(s)) || (e && !cJSON_IsNumber(e)))
            return bad(c, where, "Strip start/stop must be numbers");
        st.start = s ? (int)s->valuedouble : 0;
        st.stop = e ? (int)e->valuedouble : 0;
        if (st.start < 0 || st.stop < 0 || st.start > 1024 || st.stop > 1024)
            return bad(c, where, "Strip start/stop out of range [0, 1024]");
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *scheme;
        bool add_prefix;
        st.kind = TD_METASPACE;
        if ((rc = get_utf8_char(c, j, "replacement", where, st.repl, "\xE2\x96\x81")) ||
            (rc = get_str(c, j, "prepend_scheme", where, false, &scheme)) ||
            (rc = get_bool(c, j, "add_prefix_space", where, true, &add_prefix)))
            return rc;
        st.prepend = scheme ? strcmp(scheme, "never") != 0 : add_prefix;
    } else {
        return dg_fail(DG_E_UNSUPPORTED, "%s: field %s.type: decoder \"%s\" is not supported (supported: Sequence, "
                       "ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace)", c->path, where, type);
    }
    return add_dec(c->tok, st);
}

/* ---- post-processor ---- */
static dg_status push_id(int32_t **v, size_t *n, int32_t id)
{
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p)
        return OOM();
    *v = p;
    p[(*n)++] = id;
    return DG_OK;
}

static dg_status parse_post(const struct ctx *c, const cJSON *j, const char *where, int depth)
{
    if (is_null(j))
        return DG_OK;
    if (depth > 8)
        return bad(c, where, "post-processors nested too deeply");
    struct dg_tokenizer *tok = c->tok;
    const char *type;
    dg_status rc = get_str(c, j, "type", where, true, &type);
    if (rc)
        return rc;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = get(j, "processors");
        if (!cJSON_IsArray(arr))
            return bad(c, where, "Sequence without a \"processors\" array");
        int i = 0;
        for (const cJSON *e = arr->child; e; e = e->next, i++) {
            char w[128];
            snprintf(w, sizeof w, "%s.processors[%d]", where, i);
            if ((rc = parse_post(c, e, w, depth + 1)))
                return rc;
        }
        return DG_OK;
    }
    if (strcmp(type, "ByteLevel") == 0)
        return DG_OK; /* only adjusts offsets */
    if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *single = get(j, "single"), *specials = get(j, "special_tokens");
        if (!cJSON_IsArray(single))
            return bad(c, where, "TemplateProcessing without a \"single\" array");
        bool seen_a = false;
        int i = 0;
        for (const cJSON *e = single->child; e; e = e->next, i++) {
            const cJSON *sp = get(e, "SpecialToken"), *sq = get(e, "Sequence");
            if (sq) {
                seen_a = true;
                continue;
            }
            const cJSON *name = sp ? get(sp, "id") : NULL;
            if (!cJSON_IsString(name))
                return dg_fail(DG_E_FORMAT, "%s: field %s.single[%d]: expected {\"SpecialToken\": {\"id\": ...}} or "
                               "{\"Sequence\": ...}", c->path, where, i);
            const cJSON *def = specials ? get(specials, name->valuestring) : NULL;
            const cJSON *ids = def ? get(def, "ids") : NULL;
            if (!cJSON_IsArray(ids))
                return dg_fail(DG_E_FORMAT, "%s: field %s.special_tokens: no entry with \"ids\" for \"%s\"", c->path,
                               where, name->valuestring);
            for (const cJSON *x = ids->child; x; x = x->next) {
                int32_t id;
                if ((rc = get_id(c, x, "post_processor.special_tokens.ids", &id)) ||
                    (rc = seen_a ? push_id(&tok->post_post, &tok->n_post_post, id)
                                 : push_id(&tok->post_pre, &tok->n_post_pre, id)))
                    return rc;
            }
        }
        return DG_OK;
    }
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        const cJSON *cls = get(j, "cls"), *sep = get(j, "sep");
        int32_t a, b;
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || cJSON_GetArraySize(cls) != 2 || cJSON_GetArraySize(sep) != 2)
            return bad(c, where, "cls and sep must be [token, id] pairs");
        if ((rc = get_id(c, cJSON_GetArrayItem(cls, 1), "post_processor.cls[1]", &a)) ||
            (rc = get_id(c, cJSON_GetArrayItem(sep, 1), "post_processor.sep[1]", &b)) ||
            (rc = push_id(&tok->post_pre, &tok->n_post_pre, a)) || (rc = push_id(&tok->post_post, &tok->n_post_post, b)))
            return rc;
        return DG_OK;
    }
    return dg_fail(DG_E_UNSUPPORTED, "%s: field %s.type: post-processor \"%s\" is not supported (supported: "
                   "TemplateProcessing, ByteLevel, Sequence, RobertaProcessing, BertProcessing)", c->path, where, type);
}

/* ---- model ---- */
static dg_status parse_model(const struct ctx *c, const cJSON *m)
{
    struct dg_tokenizer *tok = c->tok;
    if (!cJSON_IsObject(m))
        return bad(c, "model", "missing or not an object");
    const char *type;
    dg_status rc = get_str(c, m, "type", "model", false, &type);
    if (rc)
        return rc;
    if (type && strcmp(type, "BPE") != 0)
        return dg_fail(DG_E_UNSUPPORTED, "%s: field model.type: \"%s\" is not supported (only BPE)", c->path, type);
    const cJSON *vocab = get(m, "vocab"), *merges = get(m, "merges");
    if (!cJSON_IsObject(vocab))
        return bad(c, "model.vocab", "missing or not an object of token → id");
    if (!cJSON_IsArray(merges))
        return bad(c, "model.merges", "missing or not an array");
    if ((rc = get_bool(c, m, "byte_fallback", "model", false, &tok->byte_fallback)) ||
        (rc = get_bool(c, m, "fuse_unk", "model", false, &tok->fuse_unk)) ||
        (rc = get_bool(c, m, "ignore_merges", "model", false, &tok->ignore_merges)))
        return rc;
    const char *cp, *eow, *unk;
    if ((rc = get_str(c, m, "continuing_subword_prefix", "model", false, &cp)) ||
        (rc = get_str(c, m, "end_of_word_suffix", "model", false, &eow)) ||
        (rc = get_str(c, m, "unk_token", "model", false, &unk)))
        return rc;
    if (cp && *cp) {
        tok->cont_prefix_len = strlen(cp);
        if (!(tok->cont_prefix = arena_str(c, cp)))
            return OOM();
    }
    if (eow && *eow) {
        tok->eow_suffix_len = strlen(eow);
        if (!(tok->eow_suffix = arena_str(c, eow)))
            return OOM();
    }
    int nv = cJSON_GetArraySize(vocab);
    if (!tok_strmap_init(&tok->vocab, (size_t)nv))
        return OOM();
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 0x7FFFFFF ||
            e->valuedouble != (double)(int64_t)e->valuedouble)
            return dg_fail(DG_E_FORMAT, "%s: field model.vocab[\"%.64s\"]: expected a token id (integer in [0, %d])",
                           c->path, e->string ? e->string : "", 0x7FFFFFF);
        id = (int32_t)e->valuedouble;
        size_t l = strlen(e->string);
        char *k = tok_arena_dup(&tok->arena, e->string, l);
        if (!k || !tok_strmap_put(&tok->vocab, k, l, id))
            return OOM();
    }
    if (unk) {
        tok->unk_id = tok_strmap_get(&tok->vocab, unk, strlen(unk));
        if (tok->unk_id < 0)
            return dg_fail(DG_E_FORMAT, "%s: field model.unk_token: \"%s\" is not in model.vocab", c->path, unk);
    }
    int nm = cJSON_GetArraySize(merges);
    if (!tok_pairmap_init(&tok->merges, (size_t)nm))
        return OOM();
    struct tok_buf cat = {0};
    int rank = 0;
    for (const cJSON *e = merges->child; e; e = e->next, rank++) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(e)) {
            /* Legacy form "a b": the space separates the two parts (tokens never contain a raw space). */
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return dg_fail(DG_E_FORMAT, "%s: field model.merges[%d]: \"%.64s\" is not two tokens separated by "
                               "one space", c->path, rank, e->valuestring);
            a = e->valuestring, al = (size_t)(sp - a), b = sp + 1, bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring, al = strlen(a), b = e->child->next->valuestring, bl = strlen(b);
        } else {
            return dg_fail(DG_E_FORMAT, "%s: field model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", c->path, rank);
        }
        int32_t ia = tok_strmap_get(&tok->vocab, a, al), ib = tok_strmap_get(&tok->vocab, b, bl);
        if (ia < 0 || ib < 0)
            return dg_fail(DG_E_FORMAT, "%s: field model.merges[%d]: token \"%.*s\" is not in model.vocab", c->path,
                           rank, (int)(ia < 0 ? al : bl), ia < 0 ? a : b);
        /* The merged token drops b's continuing-subword prefix, as `tokenizers` does. */
        if (tok->cont_prefix && bl >= tok->cont_prefix_len && memcmp(b, tok->cont_prefix, tok->cont_prefix_len) == 0) {
            b += tok->cont_prefix_len;
            bl -= tok->cont_prefix_len;
        }
        cat.len = 0;
        if (!tok_buf_put(&cat, a, al) || !tok_buf_put(&cat, b, bl)) {
            free(cat.p);
            return OOM();
        }
        int32_t im = tok_strmap_get(&tok->vocab, cat.p, cat.len);
        if (im < 0) {
            dg_status r = dg_fail(DG_E_FORMAT, "%s: field model.merges[%d]: merged token \"%.*s\" is not in model.vocab",
                                  c->path, rank, (int)(cat.len > 64 ? 64 : cat.len), cat.p);
            free(cat.p);
            return r;
        }
        if (!tok_pairmap_put(&tok->merges, ia, ib, rank, im)) {
            free(cat.p);
            return OOM();
        }
    }
    free(cat.p);
    return DG_OK;
}

static dg_status parse_added(const struct ctx *c, const cJSON *arr)
{
    struct dg_tokenizer *tok = c->tok;
    if (is_null(arr))
        return DG_OK;
    if (!cJSON_IsArray(arr))
        return bad(c, "added_tokens", "not an array");
    int n = cJSON_GetArraySize(arr), i = 0;
    tok->added = calloc((size_t)n + 1, sizeof *tok->added);
    if (!tok->added)
        return OOM();
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char w[64];
        snprintf(w, sizeof w, "added_tokens[%d]", i);
        struct tok_added *a = &tok->added[tok->n_added];
        const char *content;
        dg_status rc;
        if (!cJSON_IsObject(e))
            return bad(c, w, "not an object");
        char wid[80];
        snprintf(wid, sizeof wid, "%s.id", w);
        if ((rc = get_id(c, get(e, "id"), wid, &a->id)) || (rc = get_str(c, e, "content", w, true, &content)) ||
            (rc = get_bool(c, e, "special", w, false, &a->special)) ||
            (rc = get_bool(c, e, "lstrip", w, false, &a->lstrip)) ||
            (rc = get_bool(c, e, "rstrip", w, false, &a->rstrip)) ||
            (rc = get_bool(c, e, "single_word", w, false, &a->single_word)) ||
            (rc = get_bool(c, e, "normalized", w, !a->special, &a->normalized)))
            return rc;
        a->len = (uint32_t)strlen(content);
        if (!(a->content = arena_str(c, content)))
            return OOM();
        tok->n_added++;
    }
    return DG_OK;
}

/* bos_token / eos_token in tokenizer_config.json: a string or an AddedToken object with "content". */
static const char *config_token(const cJSON *cfg, const char *key)
{
    const cJSON *j = get(cfg, key);
    if (cJSON_IsString(j))
        return j->valuestring;
    if (cJSON_IsObject(j) && cJSON_IsString(get(j, "content")))
        return get(j, "content")->valuestring;
    return NULL;
}

static dg_status apply_config(struct dg_tokenizer *tok, const char *path, const cJSON *cfg, bool has_post)
{
    struct ctx c = {path, tok};
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    if (bos && !(tok->bos_str = arena_str(&c, bos)))
        return OOM();
    if (eos && !(tok->eos_str = arena_str(&c, eos)))
        return OOM();
    tok->bos_id = bos ? dg_tokenizer_token_id(tok, bos, strlen(bos)) : -1;
    tok->eos_id = eos ? dg_tokenizer_token_id(tok, eos, strlen(eos)) : -1;
    const cJSON *ct = get(cfg, "chat_template");
    const char *tmpl = NULL;
    if (cJSON_IsString(ct)) {
        tmpl = ct->valuestring;
    } else if (cJSON_IsArray(ct)) {
        for (const cJSON *e = ct->child; e; e = e->next) {
            const cJSON *name = get(e, "name"), *t = get(e, "template");
            if (cJSON_IsString(t) && (!tmpl || (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0)))
                tmpl = t->valuestring;
        }
    } else if (!is_null(ct)) {
        return dg_fail(DG_E_FORMAT, "%s: field chat_template: expected a string or a list of {name, template}", path);
    }
    if (tmpl && !(tok->chat_template = arena_str(&c, tmpl)))
        return OOM();
    if (!has_post) {
        /* No post-processor: transformers adds BOS/EOS from these flags. */
        bool add_bos, add_eos;
        dg_status rc;
        if ((rc = get_bool(&c, cfg, "add_bos_token", "(top level)", false, &add_bos)) ||
            (rc = get_bool(&c, cfg, "add_eos_token", "(top level)", false, &add_eos)))
            return rc;
        if (add_bos && tok->bos_id >= 0 && (rc = push_id(&tok->post_pre, &tok->n_post_pre, tok->bos_id)))
            return rc;
        if (add_eos && tok->eos_id >= 0 && (rc = push_id(&tok->post_post, &tok->n_post_post, tok->eos_id)))
            return rc;
    }
    return DG_OK;
}

dg_status dg_tokenizer_load(const char *tokenizer_json, const char *config_json, struct dg_tokenizer **out)
{
    *out = NULL;
    cJSON *root = NULL, *cfg = NULL;
    dg_status rc = parse_json(tokenizer_json, &root);
    if (rc)
        return rc;
    if (config_json && (rc = parse_json(config_json, &cfg))) {
        cJSON_Delete(root);
        return rc;
    }
    struct dg_tokenizer *tok = tok_alloc(tokenizer_json);
    if (!tok) {
        cJSON_Delete(root);
        cJSON_Delete(cfg);
        return OOM();
    }
    struct ctx c = {tokenizer_json, tok};
    tok->model = TM_BPE;
    const cJSON *post = get(root, "post_processor");
    if (!rc) rc = parse_model(&c, get(root, "model"));
    if (!rc) rc = parse_added(&c, get(root, "added_tokens"));
    if (!rc) rc = parse_normalizer(&c, get(root, "normalizer"), "normalizer", 0);
    if (!rc) rc = parse_pre(&c, get(root, "pre_tokenizer"), "pre_tokenizer", 0);
    if (!rc) rc = parse_decoder(&c, get(root, "decoder"), "decoder", 0);
    if (!rc) rc = parse_post(&c, post, "post_processor", 0);
    cJSON_Delete(root);
    if (!rc) rc = tok_finish(tok);
    if (!rc && cfg)
        rc = apply_config(tok, config_json, cfg, !is_null(post));
    if (!rc && (rc = tok_eog_add(tok, tok->eos_id)) == DG_OK && tok->bos_id < 0 && tok->n_post_pre == 1)
        tok->bos_id = tok->post_pre[0];
    cJSON_Delete(cfg);
    if (rc) {
        dg_tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return DG_OK;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

dg_status dg_tokenizer_load_dir(const char *dir, struct dg_tokenizer **out)
{
    size_t n = strlen(dir) + 32;
    char *tj = malloc(n), *tc = malloc(n), *gc = malloc(n);
    dg_status rc = DG_OK;
    if (!tj || !tc || !gc) {
        rc = OOM();
        goto done;
    }
    snprintf(tj, n, "%s/tokenizer.json", dir);
    snprintf(tc, n, "%s/tokenizer_config.json", dir);
    snprintf(gc, n, "%s/generation_config.json", dir);
    if (!file_exists(tj)) {
        rc = dg_fail(DG_E_IO, "%s: no tokenizer.json in this folder", dir);
        goto done;
    }
    rc = dg_tokenizer_load(tj, file_exists(tc) ? tc : NULL, out);
    if (rc == DG_OK && file_exists(gc)) {
        cJSON *g = NULL;
        if ((rc = parse_json(gc, &g)) == DG_OK) {
            const cJSON *e = get(g, "eos_token_id");
            if (cJSON_IsNumber(e)) {
                rc = tok_eog_add(*out, (int32_t)e->valuedouble);
            } else if (cJSON_IsArray(e)) {
                for (const cJSON *x = e->child; x && rc == DG_OK; x = x->next)
                    if (cJSON_IsNumber(x))
                        rc = tok_eog_add(*out, (int32_t)x->valuedouble);
            }
            cJSON_Delete(g);
        }
        if (rc) {
            dg_tokenizer_free(*out);
            *out = NULL;
        }
    }
done:
    free(tj);
    free(tc);
    free(gc);
    return rc;
}
