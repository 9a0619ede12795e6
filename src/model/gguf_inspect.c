/* gguf_inspect.c: the listing behind `doppler-gl inspect model.gguf`: header, metadata (arrays summarized
 * by element type, count and their first few entries) and tensors (name, type, shape in ggml order, bytes),
 * as aligned text or as one JSON object. Strings from the file are shown safely: control bytes escaped and
 * invalid UTF-8 replaced, long text values cut in the text form. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <utf8proc.h>

#include "model/gguf.h"

#define ARRAY_HEAD 8      /* array entries shown */
#define TEXT_STR_MAX 80   /* bytes of a string value shown in the text form */

/* A printable copy of file bytes: valid UTF-8 kept, invalid bytes → U+FFFD; `escape` also escapes control
 * characters C-style (for the text form; cJSON escapes them itself). Returns a malloc'd string. */
static char *clean(const char *p, uint64_t len, uint64_t max, bool escape)
{
    uint64_t n = len < max ? len : max;
    char *out = malloc(n * 4 + 16), *o = out;
    if (!out)
        return NULL;
    uint64_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i++;
            continue;
        }
        if (escape && cp < 0x20) {
            o += sprintf(o, cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : "\\x%02x", (unsigned)cp);
        } else if (escape && (cp == '"' || cp == '\\')) {
            *o++ = '\\';
            *o++ = (char)cp;
        } else {
            memcpy(o, p + i, (size_t)k);
            o += k;
        }
        i += (uint64_t)k;
    }
    *o = 0;
    return out;
}

static void print_scalar(FILE *out, const struct dg_gguf_kv *kv)
{
    switch (kv->type) {
    case DG_GGUF_U8: case DG_GGUF_U16: case DG_GGUF_U32: case DG_GGUF_U64:
        fprintf(out, "%" PRIu64, kv->num.u);
        break;
    case DG_GGUF_I8: case DG_GGUF_I16: case DG_GGUF_I32: case DG_GGUF_I64:
        fprintf(out, "%" PRId64, kv->num.i);
        break;
    case DG_GGUF_F32: case DG_GGUF_F64:
        fprintf(out, "%.9g", kv->num.f);
        break;
    case DG_GGUF_BOOL:
        fputs(kv->num.u ? "true" : "false", out);
        break;
    case DG_GGUF_STRING: {
        char *s = clean(kv->str.ptr, kv->str.len, TEXT_STR_MAX, true);
        fprintf(out, "\"%s\"", s ? s : "");
        if (kv->str.len > TEXT_STR_MAX)
            fprintf(out, "... (%" PRIu64 " bytes)", kv->str.len);
        free(s);
        break;
    }
    default:
        break;
    }
}

static void print_array(FILE *out, const struct dg_gguf_array *a)
{
    fprintf(out, "[%s x %" PRIu64 "]", dg_gguf_vtype_name(a->type), a->n);
    for (uint64_t i = 0; i < a->n && i < ARRAY_HEAD; i++) {
        fputs(i ? ", " : " ", out);
        if (a->type == DG_GGUF_STRING) {
            char *s = clean(a->strs[i].ptr, a->strs[i].len, TEXT_STR_MAX, true);
            fprintf(out, "\"%s\"", s ? s : "");
            free(s);
        } else if (a->type == DG_GGUF_F32 || a->type == DG_GGUF_F64) {
            fprintf(out, "%g", dg_gguf_array_f64(a, i));
        } else if (a->type == DG_GGUF_BOOL) {
            fputs(dg_gguf_array_i64(a, i) ? "true" : "false", out);
        } else if (a->type == DG_GGUF_U64) {
            fprintf(out, "%" PRIu64, (uint64_t)dg_gguf_array_i64(a, i));
        } else {
            fprintf(out, "%" PRId64, dg_gguf_array_i64(a, i));
        }
    }
    if (a->n > ARRAY_HEAD)
        fputs(", ...", out);
}

static void shape_text(const struct dg_gguf_tensor *t, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int d = 0; d < t->n_dims; d++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%" PRIu64, d ? ", " : "[", t->ne[d]);
    snprintf(buf + strlen(buf), cap - strlen(buf), "]");
}

static uint64_t total_bytes(const struct dg_gguf *g)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        sum += g->tensors[i].nbytes;
    return sum;
}

static dg_status inspect_text(const struct dg_gguf *g, FILE *out)
{
    fprintf(out, "file: %s\n", g->path);
    fprintf(out, "gguf version: %u\nfile bytes: %" PRIu64 "\nalignment: %u\ndata offset: %" PRIu64 "\n", g->version,
            g->size, g->alignment, g->data_offset);
    fprintf(out, "\nmetadata (%" PRIu64 " keys):\n", g->n_kv);
    size_t w = 0;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strlen(g->kv[i].key) > w)
            w = strlen(g->kv[i].key);
    if (w > 60)
        w = 60;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct dg_gguf_kv *kv = &g->kv[i];
        char *key = clean(kv->key, strlen(kv->key), 4096, true);
        fprintf(out, "  %-*s  %-6s  ", (int)w, key ? key : "", dg_gguf_vtype_name(kv->type));
        free(key);
        if (kv->type == DG_GGUF_ARRAY)
            print_array(out, &kv->arr);
        else
            print_scalar(out, kv);
        fputc('\n', out);
    }
    fprintf(out, "\ntensors (%" PRIu64 ", %" PRIu64 " bytes), shapes in ggml order (ne0 first):\n", g->n_tensors,
            total_bytes(g));
    size_t nw = 4;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strlen(g->tensors[i].name) > nw)
            nw = strlen(g->tensors[i].name);
    fprintf(out, "  %-*s  %-6s  %-24s  %12s\n", (int)nw, "name", "type", "shape", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dg_gguf_tensor *t = &g->tensors[i];
        char shape[128];
        shape_text(t, shape, sizeof shape);
        fprintf(out, "  %-*s  %-6s  %-24s  %12" PRIu64 "\n", (int)nw, t->name, dg_gguf_type_name(t->ggml_type), shape,
                t->nbytes);
    }
    return ferror(out) ? dg_fail(DG_E_IO, "%s: writing the listing failed", g->path) : DG_OK;
}

static cJSON *json_str(const char *p, uint64_t len)
{
    char *s = clean(p, len, len, false);
    cJSON *j = cJSON_CreateString(s ? s : "");
    free(s);
    return j;
}

static cJSON *json_num_elem(const struct dg_gguf_array *a, uint64_t i)
{
    if (a->type == DG_GGUF_BOOL)
        return cJSON_CreateBool(dg_gguf_array_i64(a, i) != 0);
    if (a->type == DG_GGUF_F32 || a->type == DG_GGUF_F64)
        return cJSON_CreateNumber(dg_gguf_array_f64(a, i));
    if (a->type == DG_GGUF_U64)
        return cJSON_CreateNumber((double)(uint64_t)dg_gguf_array_i64(a, i));
    return cJSON_CreateNumber((double)dg_gguf_array_i64(a, i));
}

static cJSON *json_kv(const struct dg_gguf_kv *kv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "key", json_str(kv->key, strlen(kv->key)));
    cJSON_AddStringToObject(o, "type", dg_gguf_vtype_name(kv->type));
    switch (kv->type) {
    case DG_GGUF_U8: case DG_GGUF_U16: case DG_GGUF_U32: case DG_GGUF_U64:
        cJSON_AddNumberToObject(o, "value", (double)kv->num.u);
        break;
    case DG_GGUF_I8: case DG_GGUF_I16: case DG_GGUF_I32: case DG_GGUF_I64:
        cJSON_AddNumberToObject(o, "value", (double)kv->num.i);
        break;
    case DG_GGUF_F32: case DG_GGUF_F64:
        cJSON_AddNumberToObject(o, "value", kv->num.f);
        break;
    case DG_GGUF_BOOL:
        cJSON_AddBoolToObject(o, "value", kv->num.u != 0);
        break;
    case DG_GGUF_STRING:
        cJSON_AddItemToObject(o, "value", json_str(kv->str.ptr, kv->str.len));
        break;
    case DG_GGUF_ARRAY: {
        const struct dg_gguf_array *a = &kv->arr;
        cJSON_AddStringToObject(o, "element_type", dg_gguf_vtype_name(a->type));
        cJSON_AddNumberToObject(o, "count", (double)a->n);
        cJSON *head = cJSON_AddArrayToObject(o, "head");
        for (uint64_t i = 0; i < a->n && i < ARRAY_HEAD; i++)
            cJSON_AddItemToArray(head, a->type == DG_GGUF_STRING ? json_str(a->strs[i].ptr, a->strs[i].len)
                                                                  : json_num_elem(a, i));
        break;
    }
    default:
        break;
    }
    return o;
}

static dg_status inspect_json(const struct dg_gguf *g, FILE *out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "path", g->path);
    cJSON_AddStringToObject(root, "format", "gguf");
    cJSON_AddNumberToObject(root, "version", g->version);
    cJSON_AddNumberToObject(root, "file_bytes", (double)g->size);
    cJSON_AddNumberToObject(root, "alignment", g->alignment);
    cJSON_AddNumberToObject(root, "data_offset", (double)g->data_offset);
    cJSON *meta = cJSON_AddArrayToObject(root, "metadata");
    for (uint64_t i = 0; i < g->n_kv; i++)
        cJSON_AddItemToArray(meta, json_kv(&g->kv[i]));
    cJSON_AddNumberToObject(root, "tensor_bytes", (double)total_bytes(g));
    cJSON *tens = cJSON_AddArrayToObject(root, "tensors");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dg_gguf_tensor *t = &g->tensors[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", dg_gguf_type_name(t->ggml_type));
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddNumberToObject(o, "offset", (double)t->offset);
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        cJSON_AddItemToArray(tens, o);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s)
        return dg_fail(DG_E_NOMEM, "%s: out of memory building the JSON listing", g->path);
    fputs(s, out);
    fputc('\n', out);
    free(s);
    return ferror(out) ? dg_fail(DG_E_IO, "%s: writing the listing failed", g->path) : DG_OK;
}

dg_status dg_gguf_inspect_file(const struct dg_gguf *g, bool json, FILE *out)
{
    return json ? inspect_json(g, out) : inspect_text(g, out);
}

dg_status dg_gguf_inspect(const char *path, bool json, FILE *out)
{
    struct dg_gguf *g;
    dg_status st = dg_gguf_open(path, &g);
    if (st)
        return st;
    st = dg_gguf_inspect_file(g, json, out);
    dg_gguf_close(g);
    return st;
}
