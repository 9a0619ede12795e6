/* test_tokenizer_cases.c: conformance with the Hugging Face `tokenizers` library on every fixture case
 * (ids, ids_with_special, decoded) for gemma3, llama3, mistral and qwen3. Exact equality: no tolerance. */
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "tok_fixture.h"

static void run_cases(const char *name)
{
    const struct dg_tokenizer *tok = tokt_get(name);
    const cJSON *cases = tokt_cases(name);
    if (!tok || !cases)
        return;
    const cJSON *arr = cJSON_GetObjectItem(cases, "cases");
    CHECK(cJSON_GetArraySize(arr) == 40);
    int i = 0, ok = 0;
    for (const cJSON *c = arr ? arr->child : NULL; c; c = c->next, i++) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        size_t len = strlen(text);
        /* "\x00\x01 control" has an embedded NUL: cJSON cuts it, so rebuild it. */
        static const char ctl[] = "\x00\x01 control";
        bool is_ctl = i == 35 && len == 0;
        if (is_ctl)
            text = ctl, len = sizeof ctl - 1;
        char what[160];
        int32_t *ids = NULL;
        size_t n = 0;
        bool good = true;
        snprintf(what, sizeof what, "%s case %d ids", name, i);
        dg_status st = dg_tokenizer_encode(tok, text, len, 0, &ids, &n);
        CHECK_MSG(st == DG_OK, "%s: %s", what, dg_last_error());
        good &= st == DG_OK && tokt_ids_equal(what, ids, n, cJSON_GetObjectItem(c, "ids"));
        CHECK_MSG(good, "%s differ", what);
        /* `decoded` is the decoding of `ids` (special tokens kept). */
        char *dec = NULL;
        size_t dl = 0;
        if (st == DG_OK) {
            st = dg_tokenizer_decode(tok, ids, n, 0, &dec, &dl);
            const char *exp = cJSON_GetObjectItem(c, "decoded")->valuestring;
            size_t el = is_ctl ? len : strlen(exp);
            if (is_ctl)
                exp = ctl;
            bool g3 = st == DG_OK && dl == el && memcmp(dec, exp, el) == 0;
            CHECK_MSG(g3, "%s case %d decoded: got \"%s\", expected \"%s\"", name, i, dec ? dec : "(null)", exp);
            good &= g3;
        }
        free(dec);
        free(ids);
        snprintf(what, sizeof what, "%s case %d ids_with_special", name, i);
        st = dg_tokenizer_encode(tok, text, len, DG_TOK_ADD_SPECIAL, &ids, &n);
        bool g2 = st == DG_OK && tokt_ids_equal(what, ids, n, cJSON_GetObjectItem(c, "ids_with_special"));
        CHECK_MSG(g2, "%s differ", what);
        good &= g2;
        free(ids);
        ok += good;
    }
    printf("#   %s: %d of %d cases agree\n", name, ok, i);
}

DG_TEST(tokenizer_cases_gemma3) { run_cases("gemma3"); }
DG_TEST(tokenizer_cases_llama3) { run_cases("llama3"); }
DG_TEST(tokenizer_cases_mistral) { run_cases("mistral"); }
DG_TEST(tokenizer_cases_qwen3) { run_cases("qwen3"); }
