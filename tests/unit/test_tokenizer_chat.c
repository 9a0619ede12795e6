/* test_tokenizer_chat.c: the built-in chat renderers against transformers' apply_chat_template renders in
 * the fixtures (text byte for byte, then the ids of that text), and the renderers' own rules. */
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "tok/chat.h"
#include "tok_fixture.h"

static void run_chat(const char *name, enum dg_chat_format want)
{
    const struct dg_tokenizer *tok = tokt_get(name);
    const cJSON *cases = tokt_cases(name);
    if (!tok || !cases)
        return;
    enum dg_chat_format f;
    CHECK(dg_chat_detect(dg_tokenizer_chat_template(tok), &f));
    CHECK_MSG(f == want, "%s: detected %s", name, dg_chat_format_name(f));
    const cJSON *chat = cJSON_GetObjectItem(cases, "chat");
    CHECK(cJSON_GetArraySize(chat) == 2);
    int k = 0;
    for (const cJSON *c = chat ? chat->child : NULL; c; c = c->next, k++) {
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
        struct dg_chat_msg m[16];
        size_t n = 0;
        for (const cJSON *x = msgs->child; x && n < 16; x = x->next, n++) {
            m[n].role = cJSON_GetObjectItem(x, "role")->valuestring;
            m[n].content = cJSON_GetObjectItem(x, "content")->valuestring;
        }
        char *text = NULL;
        bool gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        CHECK_OK(dg_chat_render_for(tok, m, n, gen, &text));
        const char *exp = cJSON_GetObjectItem(c, "text")->valuestring;
        CHECK_MSG(text && strcmp(text, exp) == 0, "%s chat %d:\n got: %s\n expected: %s", name, k, text, exp);
        int32_t *ids = NULL;
        size_t ni = 0;
        /* The fixture tokenized the render without adding special tokens (BOS is already in the text). */
        if (text) {
            CHECK_OK(dg_tokenizer_encode(tok, text, strlen(text), 0, &ids, &ni));
            char what[64];
            snprintf(what, sizeof what, "%s chat %d ids", name, k);
            CHECK_MSG(tokt_ids_equal(what, ids, ni, cJSON_GetObjectItem(c, "ids")), "%s differ", what);
        }
        free(ids);
        free(text);
    }
}

DG_TEST(chat_fixture_gemma3) { run_chat("gemma3", DG_CHAT_GEMMA); }
DG_TEST(chat_fixture_llama3) { run_chat("llama3", DG_CHAT_LLAMA3); }
DG_TEST(chat_fixture_qwen3) { run_chat("qwen3", DG_CHAT_QWEN3); }

static char *render(enum dg_chat_format f, const struct dg_chat_msg *m, size_t n, bool gen, int think)
{
    struct dg_chat_opts o = {"<s>", "</s>", gen, think};
    char *out = NULL;
    if (dg_chat_render(f, &o, m, n, &out) != DG_OK)
        return NULL;
    return out;
}

#define EXPECT_RENDER(f, m, n, gen, think, want)                                                          \
    do {                                                                                                  \
        char *got_ = render(f, m, n, gen, think);                                                         \
        CHECK_MSG(got_ && strcmp(got_, want) == 0, "%s render:\n got: %s\n expected: %s",                 \
                  dg_chat_format_name(f), got_ ? got_ : dg_last_error(), want);                           \
        free(got_);                                                                                       \
    } while (0)

DG_TEST(chat_renderers_inst_and_chatml)
{
    const struct dg_chat_msg conv[] = {{"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello"},
                                       {"user", "Bye"}};
    /* Mistral v0.1's template: bos, '[INST] ' + content + ' [/INST]', answer + eos. */
    EXPECT_RENDER(DG_CHAT_MISTRAL, conv + 1, 3, true, -1, "<s>[INST]  Hi  [/INST]Hello</s>[INST] Bye [/INST]");
    EXPECT_RENDER(DG_CHAT_MISTRAL, conv, 2, true, -1, "<s>[INST] Be brief.\n\n Hi  [/INST]");
    /* Llama 2: the system prompt in <<SYS>>, contents stripped, bos before every [INST]. */
    EXPECT_RENDER(DG_CHAT_LLAMA2, conv, 4, true, -1,
                  "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello </s><s>[INST] Bye [/INST]");
    EXPECT_RENDER(DG_CHAT_CHATML, conv, 2, true, -1,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n");
    EXPECT_RENDER(DG_CHAT_QWEN25, conv + 1, 1, false, -1,
                  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                  "<|im_start|>user\n Hi <|im_end|>\n");
    /* Roles out of order are refused, as the templates' raise_exception does. */
    const struct dg_chat_msg badc[] = {{"user", "a"}, {"user", "b"}};
    char *out = NULL;
    CHECK(dg_chat_render(DG_CHAT_GEMMA, &(struct dg_chat_opts){"<bos>", "", true, -1}, badc, 2, &out) == DG_E_USAGE);
    CHECK(dg_chat_render(DG_CHAT_MISTRAL, &(struct dg_chat_opts){"<s>", "</s>", true, -1}, badc, 2, &out) == DG_E_USAGE);
    enum dg_chat_format f;
    CHECK(!dg_chat_detect("{{ messages }}", &f) && f == DG_CHAT_CHATML);
    CHECK(!dg_chat_detect(NULL, &f));
    CHECK(dg_chat_detect("{{ '[INST] ' }} <<SYS>>", &f) && f == DG_CHAT_LLAMA2);
}

DG_TEST(chat_renderer_qwen3_thinking)
{
    /* A finished assistant turn after the last user query keeps its reasoning; earlier ones lose it. */
    const struct dg_chat_msg conv[] = {{"user", "Q1"}, {"assistant", "<think>\nr1\n</think>\n\nA1"}, {"user", "Q2"},
                                       {"assistant", "<think>\nr2\n</think>\n\nA2"}};
    EXPECT_RENDER(DG_CHAT_QWEN3, conv, 4, false, -1,
                  "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
                  "<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n");
    EXPECT_RENDER(DG_CHAT_QWEN3, conv, 1, true, 0,
                  "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}
