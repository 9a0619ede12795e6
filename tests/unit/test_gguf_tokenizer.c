/* test_gguf_tokenizer.c: tokenizers built from the fixture GGUFs' own vocabularies give llama.cpp's
 * prompt ids (fixtures/gguf/<name>.json), and sotu-6m's GGUF vocabulary gives llama.cpp's 107,682 ids
 * (with BOS) on the whole validation text. */
#include "test.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tok/model_tokenizer.h"

static void check_prompt(const char *name, const char *prompt)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char gguf[1024], ref[1024];
    snprintf(gguf, sizeof gguf, "%s/gguf/%s.gguf", fx, name);
    snprintf(ref, sizeof ref, "%s/gguf/%s.json", fx, name);
    char *text = dg_test_read_file(ref, NULL);
    CHECK_MSG(text, "cannot read %s", ref);
    if (!text)
        return;
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *want = cJSON_GetObjectItem(j, "prompt_ids");
    CHECK(cJSON_IsArray(want));
    struct dg_tokenizer *tok = NULL;
    CHECK_OK(dg_tokenizer_for_model_path(gguf, &tok));
    if (tok && want) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dg_tokenizer_encode(tok, prompt, strlen(prompt), DG_TOK_ADD_SPECIAL, &ids, &n));
        CHECK_MSG(n == (size_t)cJSON_GetArraySize(want), "%s: %zu ids, llama.cpp has %d", name, n,
                  cJSON_GetArraySize(want));
        for (size_t i = 0; i < n && i < (size_t)cJSON_GetArraySize(want); i++)
            CHECK_MSG(ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint, "%s: id %zu is %d, llama.cpp %d",
                      name, i, ids[i], cJSON_GetArrayItem(want, (int)i)->valueint);
        free(ids);
    }
    dg_tokenizer_free(tok);
    cJSON_Delete(j);
}

DG_TEST(gguf_tokenizer_prompt_ids_match_llama_cpp)
{
    check_prompt("sotu-6m.Q8_0", "The state of the Union is");
    check_prompt("sotu-6m.Q4_K_M", "The state of the Union is");
    check_prompt("tiny-llama-spm.Q4_K_M", "Once upon a time, in a small village,");
}

DG_TEST(gguf_tokenizer_sotu_valid_txt_count)
{
    const char *fx = dg_test_fixtures(), *models = fx ? dg_test_models() : NULL;
    if (!models)
        return;
    char gguf[1024], valid[1024];
    snprintf(gguf, sizeof gguf, "%s/gguf/sotu-6m.Q8_0.gguf", fx);
    snprintf(valid, sizeof valid, "%s/sotu-6m/valid.txt", models);
    size_t len = 0;
    char *text = dg_test_read_file(valid, &len);
    CHECK(text);
    struct dg_tokenizer *tok = NULL;
    CHECK_OK(dg_tokenizer_for_model_path(gguf, &tok));
    if (text && tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dg_tokenizer_encode(tok, text, len, DG_TOK_ADD_SPECIAL, &ids, &n));
        CHECK_MSG(n == 107682, "sotu-6m GGUF vocabulary gives %zu ids on valid.txt, llama.cpp gives 107682", n);
        free(ids);
    }
    dg_tokenizer_free(tok);
    free(text);
}
