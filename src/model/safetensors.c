/* safetensors.c: mapping and validating safetensors files and sharded index folders.
 *
 * Layout of a file: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
 * "__metadata__": {...}}, then the data section; data_offsets are relative to the data section. Everything
 * in the header is untrusted: each check below names the file, the tensor, the value and what was expected. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[DG_ST_COUNT] = {
    [DG_ST_F32] = {"F32", 4}, [DG_ST_F16] = {"F16", 2}, [DG_ST_BF16] = {"BF16", 2},
    [DG_ST_U8] = {"U8", 1},   [DG_ST_I8] = {"I8", 1},   [DG_ST_U32] = {"U32", 4},
};

const char *dg_st_dtype_name(enum dg_st_dtype dt) { return (unsigned)dt < DG_ST_COUNT ? dtypes[dt].name : "?"; }
size_t dg_st_dtype_size(enum dg_st_dtype dt) { return (unsigned)dt < DG_ST_COUNT ? dtypes[dt].size : 0; }

/* JSON numbers are doubles: accept only exact non-negative integers below 2^53. */
static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != (double)(uint64_t)d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct dg_st_tensor *)a)->name, ((const struct dg_st_tensor *)b)->name);
}

struct span {
    uint64_t begin, end;
    const char *name;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static dg_status parse_entry(const char *label, const cJSON *e, uint64_t data_size, const uint8_t *data,
                             struct dg_st_tensor *t, uint64_t *begin, uint64_t *end)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: header entry is not a JSON object", label, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: \"dtype\" missing or not a string", label, name);
    int dt = -1;
    for (int i = 0; i < DG_ST_COUNT; i++)
        if (strcmp(jd->valuestring, dtypes[i].name) == 0)
            dt = i;
    if (dt < 0)
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: dtype \"%.32s\" is not supported (expected F32, F16, BF16, "
                       "U8, I8 or U32)", label, name, jd->valuestring);
    if (!cJSON_IsArray(js))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: \"shape\" missing or not an array", label, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > DG_ST_MAX_DIMS)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: shape has %d dimensions, expected at most %d", label, name, nd,
                       DG_ST_MAX_DIMS);
    uint64_t nel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js)
    {
        uint64_t v;
        if (!json_u64(d, &v) || v > (uint64_t)INT64_MAX)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", label, name, i);
        if (v && nel > UINT64_MAX / v / 8)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: shape overflows (dimension %d = %llu)", label, name, i,
                           (unsigned long long)v);
        nel *= v;
        t->shape[i++] = (int64_t)v;
    }
    t->ndim = nd;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: \"data_offsets\" missing or not an array of 2", label, name);
    if (!json_u64(cJSON_GetArrayItem(jo, 0), begin) || !json_u64(cJSON_GetArrayItem(jo, 1), end))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: data_offsets are not non-negative integers", label, name);
    if (*begin > *end)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] are not ordered (begin > end)", label,
                       name, (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > data_size)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: data_offsets end %llu is past the data section (%llu bytes)",
                       label, name, (unsigned long long)*end, (unsigned long long)data_size);
    uint64_t want = nel * dtypes[dt].size;
    if (*end - *begin != want)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: data_offsets span %llu bytes, expected %llu (shape product %llu "
                       "x %zu bytes of %s)", label, name, (unsigned long long)(*end - *begin),
                       (unsigned long long)want, (unsigned long long)nel, dtypes[dt].size, dtypes[dt].name);
    t->dtype = (enum dg_st_dtype)dt;
    t->data = data + *begin;
    t->nbytes = want;
    return DG_OK;
}

dg_status dg_safetensors_add_buffer(struct dg_safetensors *st, const char *label, const void *buf, size_t size)
{
    const uint8_t *p = buf;
    if (size < 8)
        return dg_fail(DG_E_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length", label, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > size - 8)
        return dg_fail(DG_E_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", label,
                       (unsigned long long)hlen, size);
    if (hlen < 2 || hlen > DG_ST_MAX_HEADER)
        return dg_fail(DG_E_FORMAT, "%s: header length %llu is outside [2, %u]", label, (unsigned long long)hlen,
                       DG_ST_MAX_HEADER);
    if (st->n_files >= DG_ST_MAX_FILES)
        return dg_fail(DG_E_FORMAT, "%s: more than %d safetensors files", label, DG_ST_MAX_FILES);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: header is not valid JSON", label);
    dg_status rc = DG_OK;
    struct span *spans = NULL;
    struct dg_st_tensor *added = NULL;
    int n_added = 0;
    if (!cJSON_IsObject(root)) {
        rc = dg_fail(DG_E_FORMAT, "%s: header is not a JSON object", label);
        goto out;
    }
    int n = cJSON_GetArraySize(root);
    added = calloc((size_t)n + 1, sizeof *added);
    spans = calloc((size_t)n + 1, sizeof *spans);
    if (!added || !spans) {
        rc = dg_fail(DG_E_NOMEM, "%s: out of memory for %d header entries", label, n);
        goto out;
    }
    const uint8_t *data = p + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!e->string) {
            rc = dg_fail(DG_E_FORMAT, "%s: header entry without a name", label);
            goto out;
        }
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        struct dg_st_tensor *t = &added[n_added];
        rc = parse_entry(label, e, data_size, data, t, &spans[n_added].begin, &spans[n_added].end);
        if (rc)
            goto out;
        t->file = st->n_files;
        spans[n_added].name = e->string;
        if (!(t->name = strdup(e->string))) {
            rc = dg_fail(DG_E_NOMEM, "%s: out of memory", label);
            goto out;
        }
        n_added++;
    }
    /* Tensors must not share bytes: sort by offset and check each starts at or after the previous end. */
    qsort(spans, (size_t)n_added, sizeof *spans, cmp_span);
    for (int i = 1; i < n_added; i++)
        if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin) {
            rc = dg_fail(DG_E_FORMAT, "%s: tensor %s: data_offsets begin %llu overlaps tensor %s (ends at %llu)", label,
                         spans[i].name, (unsigned long long)spans[i].begin, spans[i - 1].name,
                         (unsigned long long)spans[i - 1].end);
            goto out;
        }
    struct dg_st_file *nf = realloc(st->files, ((size_t)st->n_files + 1) * sizeof *nf);
    struct dg_st_tensor *nt = realloc(st->tensors, ((size_t)st->n_tensors + (size_t)n_added + 1) * sizeof *nt);
    if (nf)
        st->files = nf;
    if (nt)
        st->tensors = nt;
    if (!nf || !nt) {
        rc = dg_fail(DG_E_NOMEM, "%s: out of memory", label);
        goto out;
    }
    memset(&st->files[st->n_files], 0, sizeof st->files[0]);
    st->files[st->n_files].path = strdup(label);
    st->files[st->n_files].base = buf;
    st->files[st->n_files].size = size;
    st->n_files++;
    memcpy(st->tensors + st->n_tensors, added, (size_t)n_added * sizeof *added);
    st->n_tensors += n_added;
    n_added = 0; /* ownership of names moved */
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, st->tensors[i - 1].name) == 0) {
            rc = dg_fail(DG_E_FORMAT, "%s: tensor %s appears twice (in %s and %s)", label, st->tensors[i].name,
                         st->files[st->tensors[i - 1].file].path, st->files[st->tensors[i].file].path);
            goto out;
        }
out:
    for (int i = 0; i < n_added; i++)
        free(added[i].name);
    free(added);
    free(spans);
    cJSON_Delete(root);
    return rc;
}

static dg_status map_file(const char *path, const void **base, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dg_fail(DG_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dg_fail(DG_E_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return dg_fail(DG_E_FORMAT, "%s: file is %lld bytes, too short for the 8-byte header length", path,
                       (long long)sb.st_size);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return dg_fail(DG_E_IO, "%s: mmap failed: %s", path, strerror(errno));
    *base = m;
    *size = (size_t)sb.st_size;
    return DG_OK;
}

static dg_status open_one(struct dg_safetensors *st, const char *path)
{
    const void *base = NULL;
    size_t size = 0;
    dg_status rc = map_file(path, &base, &size);
    if (rc)
        return rc;
    int before = st->n_files;
    rc = dg_safetensors_add_buffer(st, path, base, size);
    if (st->n_files > before)
        st->files[before].mapped = 1; /* now owned by st: close unmaps it */
    else
        munmap((void *)base, size);
    return rc;
}

static char *read_small_file(const char *path, size_t limit, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && (size_t)n <= limit && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = 0;
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static dg_status open_index(struct dg_safetensors *st, const char *dir, const char *index)
{
    size_t len = 0;
    char *text = read_small_file(index, 64u << 20, &len);
    if (!text)
        return dg_fail(DG_E_IO, "%s: cannot read (or larger than 64 MiB)", index);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: not valid JSON", index);
    dg_status rc = DG_OK;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        rc = dg_fail(DG_E_FORMAT, "%s: \"weight_map\" missing or not an object", index);
        goto out;
    }
    const cJSON *e;
    /* First pass: open each distinct shard once (the map is name → file, files repeat). */
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
            strcmp(e->valuestring, "..") == 0 || strcmp(e->valuestring, ".") == 0) {
            rc = dg_fail(DG_E_FORMAT, "%s: weight_map[\"%s\"]: expected a file name in the same folder", index,
                         e->string ? e->string : "?");
            goto out;
        }
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->valuestring) >= sizeof path) {
            rc = dg_fail(DG_E_FORMAT, "%s: weight_map[\"%s\"]: path too long", index, e->string);
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < st->n_files && !seen; i++)
            seen = strcmp(st->files[i].path, path) == 0;
        if (!seen && (rc = open_one(st, path)))
            goto out;
    }
    /* Second pass: every listed tensor must be where the index says. */
    cJSON_ArrayForEach(e, wm)
    {
        const struct dg_st_tensor *t = dg_safetensors_find(st, e->string);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if (!t || strcmp(st->files[t->file].path, path) != 0) {
            rc = dg_fail(DG_E_FORMAT, "%s: weight_map lists tensor %s in %s, but that file %s", index, e->string,
                         e->valuestring, t ? "does not hold it" : "has no such tensor");
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    return rc;
}

dg_status dg_safetensors_open(const char *path, struct dg_safetensors *st)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dg_fail(DG_E_IO, "%s: %s", path, strerror(errno));
    dg_status rc;
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (access(p, F_OK) == 0) {
            rc = open_index(st, path, p);
        } else {
            snprintf(p, sizeof p, "%s/model.safetensors", path);
            if (access(p, F_OK) != 0)
                return dg_fail(DG_E_IO, "%s: neither model.safetensors.index.json nor model.safetensors is there",
                               path);
            rc = open_one(st, p);
        }
    } else {
        rc = open_one(st, path);
    }
    if (rc)
        dg_safetensors_close(st);
    return rc;
}

void dg_safetensors_close(struct dg_safetensors *st)
{
    for (int i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].mapped)
            munmap((void *)st->files[i].base, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->tensors);
    free(st->files);
    memset(st, 0, sizeof *st);
}

const struct dg_st_tensor *dg_safetensors_find(const struct dg_safetensors *st, const char *name)
{
    if (!st->n_tensors || !name)
        return NULL;
    struct dg_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof key, cmp_name);
}
