/* test_cli_info.c: `doppler-gl info --json` from the built binary ($DG_BUILD, set by tests/run.sh) parses
 * as JSON and carries the fields scripts rely on. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

DG_TEST(cli_info_json_is_valid)
{
    const char *build = getenv("DG_BUILD");
    if (!build)
        SKIP("DG_BUILD is not set (run through tests/run.sh)");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "./%s/doppler-gl info --json 2>/dev/null", build);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p)
        return;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    int rc = pclose(p);
    if (!buf)
        return;
    buf[len] = 0;
    CHECK_MSG(rc == 0, "%s exited with %d", cmd, rc);
    cJSON *j = cJSON_Parse(buf);
    CHECK_MSG(j != NULL, "not JSON near: %.80s", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : buf);
    static const char *const strs[] = {"platform", "device", "renderer", "version", "timing_source", "data_dir"};
    for (size_t i = 0; j && i < sizeof strs / sizeof strs[0]; i++)
        CHECK_MSG(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, strs[i])), "missing string %s", strs[i]);
    cJSON *caps = cJSON_GetObjectItemCaseSensitive(j, "caps");
    cJSON *lim = cJSON_GetObjectItemCaseSensitive(caps, "limits");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lim, "max_ssbo_block_size")));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lim, "max_workgroup_size")) == 3);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "self_test"), "ok")));
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "program_cache")));
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "pool")));
    cJSON_Delete(j);
    free(buf);
}
