/* manifest_write.c: the streaming shard writer behind `convert`. Tensors are appended to shard files at
 * 256-byte-aligned offsets while each shard's SHA-256 is computed on the fly (libcrypto EVP), so nothing is
 * read back; finish() adds "shards" and "tensors" to the caller's manifest and writes manifest.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "model/manifest.h"

struct dg_manifest_writer {
    char dir[4096];
    uint64_t shard_size;
    int shard;          /* index of the open shard, -1 before the first */
    FILE *f;
    EVP_MD_CTX *md;
    uint64_t off;       /* bytes written to the open shard */
    uint64_t remaining; /* bytes the current tensor still expects */
    bool in_tensor;
    char cur_name[DG_TENSOR_NAME_MAX];
    cJSON *shards, *tensors;
};

const char *dg_layout_name(enum dg_layout l)
{
    return l == DG_LAYOUT_COLUMN ? "column" : l == DG_LAYOUT_FLAT ? "flat" : "row";
}

dg_status dg_manifest_writer_open(struct dg_manifest_writer **out, const char *dir, uint64_t shard_size)
{
    struct dg_manifest_writer *w = calloc(1, sizeof *w);
    if (!w)
        return dg_fail(DG_E_NOMEM, "manifest writer: out of memory");
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    w->shard_size = shard_size ? shard_size : UINT64_MAX;
    w->shard = -1;
    w->shards = cJSON_CreateArray();
    w->tensors = cJSON_CreateObject();
    *out = w;
    return DG_OK;
}

static dg_status put(struct dg_manifest_writer *w, const void *p, uint64_t n)
{
    if (n == 0)
        return DG_OK;
    if (fwrite(p, 1, n, w->f) != n)
        return dg_fail(DG_E_IO, "%s/shard-%05d.bin: write failed: %s", w->dir, w->shard, strerror(errno));
    EVP_DigestUpdate(w->md, p, n);
    w->off += n;
    return DG_OK;
}

static dg_status close_shard(struct dg_manifest_writer *w)
{
    if (!w->f)
        return DG_OK;
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;
    EVP_DigestFinal_ex(w->md, h, &hl);
    EVP_MD_CTX_free(w->md);
    w->md = NULL;
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0)
        return dg_fail(DG_E_IO, "%s/shard-%05d.bin: close failed: %s", w->dir, w->shard, strerror(errno));
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < hl; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    char name[32];
    snprintf(name, sizeof name, "shard-%05d.bin", w->shard);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "file", name);
    cJSON_AddNumberToObject(s, "size", (double)w->off);
    cJSON_AddStringToObject(s, "sha256", hex);
    cJSON_AddItemToArray(w->shards, s);
    return DG_OK;
}

static dg_status open_shard(struct dg_manifest_writer *w)
{
    dg_status st = close_shard(w);
    if (st != DG_OK)
        return st;
    w->shard++;
    char path[4200];
    snprintf(path, sizeof path, "%s/shard-%05d.bin", w->dir, w->shard);
    w->f = fopen(path, "wb");
    if (!w->f)
        return dg_fail(DG_E_IO, "%s: cannot create: %s", path, strerror(errno));
    w->md = EVP_MD_CTX_new();
    if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
        return dg_fail(DG_E_INTERNAL, "SHA-256 context could not be created");
    w->off = 0;
    return DG_OK;
}

dg_status dg_manifest_writer_begin(struct dg_manifest_writer *w, const struct dg_tensor *t)
{
    if (w->in_tensor)
        return dg_fail(DG_E_INTERNAL, "manifest writer: tensor %s begun before %s ended", t->name, w->cur_name);
    if (cJSON_GetObjectItemCaseSensitive(w->tensors, t->name))
        return dg_fail(DG_E_FORMAT, "manifest writer: tensor %s written twice", t->name);
    uint64_t aligned = (w->off + DG_SHARD_ALIGN - 1) / DG_SHARD_ALIGN * DG_SHARD_ALIGN;
    dg_status st = DG_OK;
    if (!w->f || (w->off > 0 && aligned + t->nbytes > w->shard_size)) {
        st = open_shard(w);
        aligned = 0;
    } else {
        static const uint8_t zeros[DG_SHARD_ALIGN];
        st = put(w, zeros, aligned - w->off);
    }
    if (st != DG_OK)
        return st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "shard", w->shard);
    cJSON_AddNumberToObject(o, "offset", (double)aligned);
    cJSON_AddNumberToObject(o, "size", (double)t->nbytes);
    cJSON_AddStringToObject(o, "dtype", dg_dtype_info(t->dtype)->name);
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    for (int i = 0; i < t->ndim; i++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[i]));
    cJSON_AddStringToObject(o, "layout", dg_layout_name(t->layout));
    cJSON_AddBoolToObject(o, "transposed", t->transposed);
    cJSON_AddItemToObject(w->tensors, t->name, o);
    snprintf(w->cur_name, sizeof w->cur_name, "%s", t->name);
    w->remaining = t->nbytes;
    w->in_tensor = true;
    return DG_OK;
}

dg_status dg_manifest_writer_write(struct dg_manifest_writer *w, const void *data, uint64_t len)
{
    if (!w->in_tensor || len > w->remaining)
        return dg_fail(DG_E_INTERNAL, "manifest writer: %llu bytes written to %s beyond its size",
                       (unsigned long long)len, w->cur_name);
    w->remaining -= len;
    return put(w, data, len);
}

dg_status dg_manifest_writer_end(struct dg_manifest_writer *w)
{
    if (!w->in_tensor || w->remaining)
        return dg_fail(DG_E_INTERNAL, "manifest writer: tensor %s ended with %llu bytes missing", w->cur_name,
                       (unsigned long long)w->remaining);
    w->in_tensor = false;
    return DG_OK;
}

void dg_manifest_writer_abort(struct dg_manifest_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->md)
        EVP_MD_CTX_free(w->md);
    cJSON_Delete(w->shards);
    cJSON_Delete(w->tensors);
    free(w);
}

dg_status dg_manifest_writer_finish(struct dg_manifest_writer *w, cJSON *root)
{
    dg_status st = w->in_tensor ? dg_fail(DG_E_INTERNAL, "manifest writer: %s not ended", w->cur_name) : DG_OK;
    if (st == DG_OK)
        st = close_shard(w);
    if (st != DG_OK) {
        cJSON_Delete(root);
        dg_manifest_writer_abort(w);
        return st;
    }
    cJSON_AddItemToObject(root, "shards", w->shards);
    cJSON_AddItemToObject(root, "tensors", w->tensors);
    w->shards = w->tensors = NULL;
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", w->dir);
    FILE *f = text ? fopen(path, "wb") : NULL;
    if (!text)
        st = dg_fail(DG_E_NOMEM, "manifest.json: out of memory");
    else if (!f)
        st = dg_fail(DG_E_IO, "%s: cannot create: %s", path, strerror(errno));
    else {
        size_t n = strlen(text);
        if (fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF)
            st = dg_fail(DG_E_IO, "%s: write failed: %s", path, strerror(errno));
        if (fclose(f) != 0 && st == DG_OK)
            st = dg_fail(DG_E_IO, "%s: close failed: %s", path, strerror(errno));
    }
    free(text);
    dg_manifest_writer_abort(w);
    return st;
}
