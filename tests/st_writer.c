/* st_writer.c: see st_writer.h. */
#include "st_writer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

bool st_write(const char *path, const struct wt *t, int n)
{
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, t[i].name);
        cJSON_AddStringToObject(e, "dtype", t[i].dtype);
        cJSON *s = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++)
            cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + t[i].nbytes)));
        off += t[i].nbytes;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    FILE *f = fopen(path, "wb");
    if (!f || !js) {
        free(js);
        return false;
    }
    uint64_t hl = strlen(js);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(js, 1, hl, f);
    for (int i = 0; i < n; i++)
        fwrite(t[i].data, 1, t[i].nbytes, f);
    fclose(f);
    free(js);
    return true;
}

void st_copy_config(const char *src, const char *dst)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/config.json", src);
    size_t len;
    char *c = dg_test_read_file(p, &len);
    snprintf(p, sizeof p, "%s/config.json", dst);
    FILE *f = fopen(p, "wb");
    if (f && c)
        fwrite(c, 1, len, f);
    if (f)
        fclose(f);
    free(c);
}

struct wt st_from_tensor(const struct dg_st_tensor *s, const char *name)
{
    struct wt w = {.dtype = dg_st_dtype_name(s->dtype), .ndim = s->ndim, .data = s->data, .nbytes = s->nbytes};
    snprintf(w.name, sizeof w.name, "%s", name ? name : s->name);
    for (int i = 0; i < s->ndim; i++)
        w.shape[i] = s->shape[i];
    return w;
}

