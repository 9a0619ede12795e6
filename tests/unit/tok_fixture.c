/* tok_fixture.c: see tok_fixture.h. The archive is ~7 MB of xz; extracting it costs ~0.4 s, once. */
#include "tok_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../test.h"

static char dir[1024];
static bool tried;

const char *tokt_dir(void)
{
    if (dir[0])
        return dir;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return NULL;
    if (tried) {
        CHECK_MSG(0, "fixture archive extraction failed earlier");
        return NULL;
    }
    tried = true;
    char tmp[512], cmd[2048];
    snprintf(tmp, sizeof tmp, "%s", dg_test_tmpdir());
    snprintf(cmd, sizeof cmd, "tar -xJf '%s/tokenizers/tokenizers.tar.xz' -C '%s'", fx, tmp);
    if (system(cmd) != 0) {
        CHECK_MSG(0, "'%s' failed", cmd);
        return NULL;
    }
    snprintf(dir, sizeof dir, "%s", tmp);
    return dir;
}

struct entry {
    char name[32];
    struct dg_tokenizer *tok;
    cJSON *cases;
};
static struct entry cache[8];

static struct entry *slot(const char *name)
{
    for (int i = 0; i < 8; i++) {
        if (strcmp(cache[i].name, name) == 0)
            return &cache[i];
        if (!cache[i].name[0]) {
            snprintf(cache[i].name, sizeof cache[i].name, "%s", name);
            return &cache[i];
        }
    }
    return NULL;
}

const struct dg_tokenizer *tokt_get(const char *name)
{
    struct entry *e = slot(name);
    if (e->tok)
        return e->tok;
    const char *d = tokt_dir();
    if (!d)
        return NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", d, name);
    dg_status st = dg_tokenizer_load_dir(path, &e->tok);
    CHECK_MSG(st == DG_OK, "loading %s: %s", path, dg_last_error());
    return e->tok;
}

const cJSON *tokt_cases(const char *name)
{
    struct entry *e = slot(name);
    if (e->cases)
        return e->cases;
    const char *fx = dg_test_fixtures();
    if (!fx)
        return NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizers/%s.cases.json", fx, name);
    char *txt = dg_test_read_file(path, NULL);
    CHECK_MSG(txt != NULL, "cannot read %s", path);
    if (!txt)
        return NULL;
    e->cases = cJSON_Parse(txt);
    free(txt);
    CHECK_MSG(e->cases != NULL, "%s is not valid JSON", path);
    return e->cases;
}

bool tokt_ids_equal(const char *what, const int32_t *ids, size_t n, const cJSON *arr)
{
    size_t m = (size_t)cJSON_GetArraySize(arr);
    bool eq = m == n;
    const cJSON *x = arr ? arr->child : NULL;
    for (size_t i = 0; eq && i < n; i++, x = x->next)
        eq = cJSON_IsNumber(x) && (int32_t)x->valuedouble == ids[i];
    if (!eq) {
        printf("#   %s\n#     got      [", what);
        for (size_t i = 0; i < n && i < 80; i++)
            printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n#     expected [");
        int i = 0;
        for (x = arr ? arr->child : NULL; x && i < 80; x = x->next, i++)
            printf("%s%d", i ? ", " : "", (int)x->valuedouble);
        printf("]\n");
    }
    return eq;
}

__attribute__((destructor)) static void tokt_cleanup(void)
{
    for (int i = 0; i < 8; i++) {
        dg_tokenizer_free(cache[i].tok);
        cJSON_Delete(cache[i].cases);
    }
}
