/* test_gguf_inspect.c: dg_gguf_inspect's text and JSON listings of a fixture, without the CLI. */
#include "../test.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

/* Runs the listing into memory. Returns a malloc'd NUL-terminated string, or NULL. */
static char *listing(const char *path, bool json, dg_status *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    *st = dg_gguf_inspect(path, json, f);
    fclose(f);
    return buf;
}

DG_TEST(gguf_inspect_text)
{
    const char *root = dg_test_fixtures();
    if (!root)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/gguf/sotu-6m.Q4_K_M.gguf", root);
    dg_status st = DG_E_INTERNAL;
    char *s = listing(path, false, &st);
    CHECK_OK(st);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(strstr(s, "gguf version: 3"));
    CHECK(strstr(s, "metadata (28 keys):"));
    CHECK(strstr(s, "general.architecture"));
    CHECK(strstr(s, "\"llama\""));
    CHECK(strstr(s, "[string x 8192] \"<|endoftext|>\", \"!\", \"\\\"\", ")); /* summarized, quote escaped */
    CHECK(strstr(s, "[string x 7935] \"\xc4\xa0 t\""));
    CHECK(strstr(s, "[i32 x 8192] 3, 1, 1,"));
    CHECK(strstr(s, "tokenizer.ggml.add_bos_token") && strstr(s, "true"));
    CHECK(strstr(s, "tensors (56, "));
    /* name, type, shape (ggml order), bytes: 256 x 8192 q6_K = 8192 rows x 210 bytes */
    const char *line = strstr(s, "  token_embd.weight ");
    CHECK(line && strstr(line, "q6_K") && strstr(line, "[256, 8192]") && strstr(line, "1720320"));
    line = strstr(s, "  blk.0.ffn_down.weight ");
    CHECK(line && strstr(line, "q5_0") && strstr(line, "[704, 256]") && strstr(line, "123904"));
    /* no array is printed whole */
    CHECK(strstr(s, "\"<|endoftext|>\"") == strstr(s, "[string x 8192]") + 16);
    CHECK(strlen(s) < 20000);
    free(s);

    s = listing("/nonexistent/model.gguf", false, &st);
    CHECK(st == DG_E_IO && strstr(dg_last_error(), "/nonexistent/model.gguf"));
    CHECK(!s || s[0] == 0);
    free(s);
}

DG_TEST(gguf_inspect_json)
{
    const char *root = dg_test_fixtures();
    if (!root)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/gguf/tiny-llama-spm.Q4_K_M.gguf", root);
    dg_status st = DG_E_INTERNAL;
    char *s = listing(path, true, &st);
    CHECK_OK(st);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    CHECK_MSG(j, "the listing is not JSON");
    free(s);
    if (!j)
        return;
    CHECK(cJSON_GetObjectItem(j, "version")->valueint == 3);
    CHECK(cJSON_GetObjectItem(j, "alignment")->valueint == 32);
    CHECK(cJSON_GetObjectItem(j, "file_bytes")->valuedouble == 12758112.0);
    const cJSON *meta = cJSON_GetObjectItem(j, "metadata");
    CHECK(cJSON_GetArraySize(meta) == 30);
    const cJSON *kv;
    bool saw_tokens = false, saw_arch = false, saw_eps = false;
    cJSON_ArrayForEach(kv, meta)
    {
        const char *key = cJSON_GetObjectItem(kv, "key")->valuestring;
        if (strcmp(key, "tokenizer.ggml.tokens") == 0) {
            saw_tokens = true;
            CHECK(strcmp(cJSON_GetObjectItem(kv, "type")->valuestring, "array") == 0);
            CHECK(strcmp(cJSON_GetObjectItem(kv, "element_type")->valuestring, "string") == 0);
            CHECK(cJSON_GetObjectItem(kv, "count")->valuedouble == 32000.0);
            const cJSON *head = cJSON_GetObjectItem(kv, "head");
            CHECK(cJSON_GetArraySize(head) == 8);
            CHECK(strcmp(cJSON_GetArrayItem(head, 1)->valuestring, "<s>") == 0);
        } else if (strcmp(key, "general.architecture") == 0) {
            saw_arch = strcmp(cJSON_GetObjectItem(kv, "value")->valuestring, "llama") == 0;
        } else if (strcmp(key, "llama.attention.layer_norm_rms_epsilon") == 0) {
            saw_eps = fabs(cJSON_GetObjectItem(kv, "value")->valuedouble - 1e-5) < 1e-11;
        }
    }
    CHECK(saw_tokens && saw_arch && saw_eps);
    const cJSON *tens = cJSON_GetObjectItem(j, "tensors");
    CHECK(cJSON_GetArraySize(tens) == 21);
    double sum = 0;
    const cJSON *t;
    bool saw_out = false;
    cJSON_ArrayForEach(t, tens)
    {
        sum += cJSON_GetObjectItem(t, "bytes")->valuedouble;
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, "output.weight") == 0) {
            saw_out = true;
            CHECK(strcmp(cJSON_GetObjectItem(t, "type")->valuestring, "q6_K") == 0);
            const cJSON *sh = cJSON_GetObjectItem(t, "shape");
            CHECK(cJSON_GetArraySize(sh) == 2 && cJSON_GetArrayItem(sh, 0)->valueint == 256 &&
                  cJSON_GetArrayItem(sh, 1)->valueint == 32000);
            CHECK(cJSON_GetObjectItem(t, "bytes")->valuedouble == 32000.0 * 210);
        }
    }
    CHECK(saw_out);
    CHECK(sum == cJSON_GetObjectItem(j, "tensor_bytes")->valuedouble);
    CHECK(sum < 12758112.0 && sum > 12000000.0);
    cJSON_Delete(j);
}
