/* chat.c: the built-in chat-template renderers declared in chat.h, each a transcription of its family's
 * Jinja template (comments quote the parts whose behaviour is easy to get wrong). */
#include "tok/chat.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tok/tok_internal.h"

#define OOM() dg_fail(DG_E_NOMEM, "chat: out of memory")

static bool put(struct tok_buf *b, const char *s) { return tok_buf_put(b, s, strlen(s)); }

static bool put_n(struct tok_buf *b, const char *s, size_t n) { return tok_buf_put(b, s, n); }

static bool jinja_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Jinja's `trim` / Python's str.strip(): ASCII whitespace at both ends. */
static bool put_trimmed(struct tok_buf *b, const char *s)
{
    size_t a = 0, e = strlen(s);
    while (a < e && jinja_ws(s[a]))
        a++;
    while (e > a && jinja_ws(s[e - 1]))
        e--;
    return put_n(b, s + a, e - a);
}

/* Python's s.strip(chars) / lstrip / rstrip for one character set. */
static void strip_chars(const char **s, size_t *n, const char *set, bool left, bool right)
{
    while (left && *n && strchr(set, (*s)[0]))
        (*s)++, (*n)--;
    while (right && *n && strchr(set, (*s)[*n - 1]))
        (*n)--;
}

static bool role_is(const struct dg_chat_msg *m, const char *r) { return m->role && strcmp(m->role, r) == 0; }

static const char *content(const struct dg_chat_msg *m) { return m->content ? m->content : ""; }

bool dg_chat_detect(const char *t, enum dg_chat_format *out)
{
    *out = DG_CHAT_CHATML;
    if (!t)
        return false;
    if (strstr(t, "<start_of_turn>"))
        *out = DG_CHAT_GEMMA;
    else if (strstr(t, "<|start_header_id|>") && strstr(t, "<|eot_id|>"))
        *out = DG_CHAT_LLAMA3;
    else if (strstr(t, "<|im_start|>"))
        *out = strstr(t, "<think>") ? DG_CHAT_QWEN3
             : strstr(t, "You are Qwen, created by Alibaba Cloud") ? DG_CHAT_QWEN25 : DG_CHAT_CHATML;
    else if (strstr(t, "[INST]"))
        *out = strstr(t, "<<SYS>>") ? DG_CHAT_LLAMA2 : DG_CHAT_MISTRAL;
    else
        return false;
    return true;
}

const char *dg_chat_format_name(enum dg_chat_format f)
{
    switch (f) {
    case DG_CHAT_CHATML: return "chatml";
    case DG_CHAT_QWEN3: return "qwen3";
    case DG_CHAT_QWEN25: return "qwen2.5";
    case DG_CHAT_LLAMA3: return "llama3";
    case DG_CHAT_GEMMA: return "gemma";
    case DG_CHAT_LLAMA2: return "llama2";
    case DG_CHAT_MISTRAL: return "mistral";
    }
    return "?";
}

static bool render_chatml(struct tok_buf *b, const struct dg_chat_msg *m, size_t n, const char *default_system)
{
    bool ok = true;
    if (default_system && !(n && role_is(&m[0], "system")))
        ok = put(b, "<|im_start|>system\n") && put(b, default_system) && put(b, "<|im_end|>\n");
    for (size_t i = 0; i < n && ok; i++)
        ok = put(b, "<|im_start|>") && put(b, m[i].role ? m[i].role : "") && put(b, "\n") && put(b, content(&m[i])) &&
             put(b, "<|im_end|>\n");
    return ok;
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool ends_with(const char *s, const char *p)
{
    size_t a = strlen(s), b = strlen(p);
    return a >= b && memcmp(s + a - b, p, b) == 0;
}

/* Qwen 3's template without tools. */
static bool render_qwen3(struct tok_buf *b, const struct dg_chat_msg *m, size_t n)
{
    bool ok = true;
    if (n && role_is(&m[0], "system"))
        ok = put(b, "<|im_start|>system\n") && put(b, content(&m[0])) && put(b, "<|im_end|>\n");
    /* last_query_index: the last user turn that is not a tool response. */
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        const char *c = content(&m[k]);
        if (role_is(&m[k], "user") && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n && ok; i++) {
        const char *c = content(&m[i]);
        if (role_is(&m[i], "user") || (role_is(&m[i], "system") && i != 0)) {
            ok = put(b, "<|im_start|>") && put(b, m[i].role) && put(b, "\n") && put(b, c) && put(b, "<|im_end|>\n");
        } else if (role_is(&m[i], "assistant")) {
            /* content.split('</think>')[-1].lstrip('\n'); reasoning = split[0].rstrip('\n').split('<think>')[-1]
             * .lstrip('\n') */
            const char *body = c, *reason = "";
            size_t body_n = strlen(c), reason_n = 0;
            const char *close = strstr(c, "</think>");
            if (close) {
                const char *lastclose = close, *p;
                while ((p = strstr(lastclose + 8, "</think>")))
                    lastclose = p;
                body = lastclose + 8;
                body_n = strlen(body);
                strip_chars(&body, &body_n, "\n", true, false);
                reason = c;
                reason_n = (size_t)(close - c);
                strip_chars(&reason, &reason_n, "\n", false, true);
                for (const char *q = reason; q + 7 <= reason + reason_n; q++)
                    if (memcmp(q, "<think>", 7) == 0) {
                        reason_n -= (size_t)(q + 7 - reason);
                        reason = q + 7;
                        q = reason - 1;
                    }
                strip_chars(&reason, &reason_n, "\n", true, false);
            }
            ok = put(b, "<|im_start|>assistant\n");
            if (i > last_query && (i + 1 == n || reason_n)) {
                strip_chars(&reason, &reason_n, "\n", true, true);
                strip_chars(&body, &body_n, "\n", true, false);
                ok = ok && put(b, "<think>\n") && put_n(b, reason, reason_n) && put(b, "\n</think>\n\n");
            }
            ok = ok && put_n(b, body, body_n) && put(b, "<|im_end|>\n");
        } else if (role_is(&m[i], "tool")) {
            if (i == 0 || !role_is(&m[i - 1], "tool"))
                ok = put(b, "<|im_start|>user");
            ok = ok && put(b, "\n<tool_response>\n") && put(b, c) && put(b, "\n</tool_response>");
            if (ok && (i + 1 == n || !role_is(&m[i + 1], "tool")))
                ok = put(b, "<|im_end|>\n");
        }
    }
    return ok;
}

dg_status dg_chat_render(enum dg_chat_format f, const struct dg_chat_opts *o, const struct dg_chat_msg *m, size_t n,
                         char **out)
{
    struct tok_buf b = {0};
    bool ok = tok_buf_put(&b, "", 0);
    const char *bos = o->bos ? o->bos : "", *eos = o->eos ? o->eos : "";
    dg_status rc = DG_OK;
    for (size_t i = 0; i < n; i++)
        if (!m[i].role) {
            free(b.p);
            return dg_fail(DG_E_USAGE, "chat: message %zu has no role", i);
        }
    switch (f) {
    case DG_CHAT_CHATML:
    case DG_CHAT_QWEN25:
        ok = ok && render_chatml(&b, m, n,
                                 f == DG_CHAT_QWEN25 ? "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                                                     : NULL);
        if (ok && o->add_generation_prompt)
            ok = put(&b, "<|im_start|>assistant\n");
        break;
    case DG_CHAT_QWEN3:
        ok = ok && render_qwen3(&b, m, n);
        if (ok && o->add_generation_prompt) {
            ok = put(&b, "<|im_start|>assistant\n");
            if (ok && o->enable_thinking == 0)
                ok = put(&b, "<think>\n\n</think>\n\n");
        }
        break;
    case DG_CHAT_LLAMA3:
        for (size_t i = 0; i < n && ok; i++) {
            /* '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>', BOS first */
            if (i == 0)
                ok = put(&b, bos);
            ok = ok && put(&b, "<|start_header_id|>") && put(&b, m[i].role) && put(&b, "<|end_header_id|>\n\n") &&
                 put_trimmed(&b, content(&m[i])) && put(&b, "<|eot_id|>");
        }
        if (ok && o->add_generation_prompt)
            ok = put(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case DG_CHAT_GEMMA: {
        /* A system message becomes a prefix of the first turn ("system\n\n"); roles must then alternate. */
        size_t first = 0;
        const char *prefix = NULL;
        if (n && role_is(&m[0], "system")) {
            prefix = content(&m[0]);
            first = 1;
        }
        ok = ok && put(&b, bos);
        for (size_t i = first; i < n && ok; i++) {
            bool user = role_is(&m[i], "user");
            if (user != ((i - first) % 2 == 0)) {
                rc = dg_fail(DG_E_USAGE, "chat: Gemma conversation roles must alternate user/assistant/user/... "
                             "(message %zu is \"%s\")", i, m[i].role);
                break;
            }
            ok = put(&b, "<start_of_turn>") && put(&b, role_is(&m[i], "assistant") ? "model" : m[i].role) &&
                 put(&b, "\n");
            if (ok && prefix && i == first)
                ok = put(&b, prefix) && put(&b, "\n\n");
            ok = ok && put_trimmed(&b, content(&m[i])) && put(&b, "<end_of_turn>\n");
        }
        if (ok && rc == DG_OK && o->add_generation_prompt)
            ok = put(&b, "<start_of_turn>model\n");
        break;
    }
    case DG_CHAT_LLAMA2:
    case DG_CHAT_MISTRAL: {
        size_t first = 0;
        const char *sys = NULL;
        if (n && role_is(&m[0], "system")) {
            sys = content(&m[0]);
            first = 1;
        }
        if (f == DG_CHAT_MISTRAL)
            ok = ok && put(&b, bos);
        for (size_t i = first; i < n && ok; i++) {
            bool user = role_is(&m[i], "user");
            if (user != ((i - first) % 2 == 0) || (!user && !role_is(&m[i], "assistant"))) {
                rc = dg_fail(DG_E_USAGE, "chat: [INST] conversation roles must alternate user/assistant/user/... "
                             "(message %zu is \"%s\")", i, m[i].role);
                break;
            }
            if (f == DG_CHAT_LLAMA2) {
                /* bos + '[INST] ' + content.strip() + ' [/INST]'; ' ' + answer.strip() + ' ' + eos */
                if (user) {
                    ok = put(&b, bos) && put(&b, "[INST] ");
                    if (ok && sys && i == first) {
                        struct tok_buf t = {0};
                        ok = put(&t, "<<SYS>>\n") && put(&t, sys) && put(&t, "\n<</SYS>>\n\n") && put(&t, content(&m[i])) &&
                             put_trimmed(&b, t.p);
                        free(t.p);
                    } else {
                        ok = ok && put_trimmed(&b, content(&m[i]));
                    }
                    ok = ok && put(&b, " [/INST]");
                } else {
                    ok = put(&b, " ") && put_trimmed(&b, content(&m[i])) && put(&b, " ") && put(&b, eos);
                }
            } else if (user) {
                ok = put(&b, "[INST] ");
                if (ok && sys && i == first)
                    ok = put(&b, sys) && put(&b, "\n\n");
                ok = ok && put(&b, content(&m[i])) && put(&b, " [/INST]");
            } else {
                ok = put(&b, content(&m[i])) && put(&b, eos);
            }
        }
        break;
    }
    }
    if (!ok && rc == DG_OK)
        rc = OOM();
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return DG_OK;
}

dg_status dg_chat_render_for(const struct dg_tokenizer *tok, const struct dg_chat_msg *msgs, size_t n,
                             bool add_generation_prompt, char **out)
{
    const char *t = dg_tokenizer_chat_template(tok);
    enum dg_chat_format f;
    if (!dg_chat_detect(t, &f))
        dg_warn_once("chat-template-fallback", "%s; using the built-in %s template instead",
                     t ? "the model's chat template is not one we recognise" : "the model has no chat template",
                     dg_chat_format_name(f));
    /* The original Llama 3 template always ends with the assistant header; it has no add_generation_prompt. */
    if (f == DG_CHAT_LLAMA3 && t && !strstr(t, "add_generation_prompt"))
        add_generation_prompt = true;
    struct dg_chat_opts o = {dg_tokenizer_bos_str(tok), dg_tokenizer_eos_str(tok), add_generation_prompt, -1};
    return dg_chat_render(f, &o, msgs, n, out);
}
