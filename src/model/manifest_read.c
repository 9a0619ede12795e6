/* manifest_read.c: opens a doppler-gl model folder (manifest.json + shards) as a struct dg_model.
 *
 * The folder is untrusted: every shard name, size and hash field, and every tensor's shard, offset, size,
 * dtype, shape and layout is checked against the manifest's own rules and the shard files' real sizes
 * before any pointer is formed. Shards are mapped read-only; tensors point into the mappings. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "model/manifest.h"
#include "model/tensor_spec.h"

#define MAX_MANIFEST_BYTES (64u << 20)
#define MAX_SHARDS 4096
#define MAX_TENSORS (1 << 20)
#define MAX_DIM (1ll << 40)

struct manifest_priv {
    struct dg_model_priv base; /* first, so dg_model_close can find the close hook */
    int n_maps;
    void **maps;
    uint64_t *lens;
};

dg_status dg_manifest_load_json(const char *dir, cJSON **out)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return dg_fail(DG_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_MANIFEST_BYTES) {
        fclose(f);
        return dg_fail(DG_E_FORMAT, "%s: not a regular file of at most %u bytes", path, MAX_MANIFEST_BYTES);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return dg_fail(DG_E_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    buf[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - buf) : 0;
        free(buf);
        return dg_fail(DG_E_FORMAT, "%s: invalid JSON near byte %zu", path, at);
    }
    free(buf);
    *out = root;
    return DG_OK;
}

/* A non-negative integer JSON number up to 2^53 (exact in a double). */
static bool get_u64(const cJSON *o, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

static bool plain_file_name(const char *s)
{
    if (!s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 255)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == '\\')
            return false;
    return true;
}

static bool hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Checks the "shards" array; fills names/sizes (arrays of count n). */
static dg_status check_shards(const char *path, const cJSON *root, int *n_out, const cJSON **arr_out)
{
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    int n = cJSON_IsArray(shards) ? cJSON_GetArraySize(shards) : -1;
    if (n < 0 || n > MAX_SHARDS)
        return dg_fail(DG_E_FORMAT, "%s: \"shards\" must be an array of at most %d entries", path, MAX_SHARDS);
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, shards)
    {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(s, "file");
        const cJSON *hash = cJSON_GetObjectItemCaseSensitive(s, "sha256");
        uint64_t size;
        if (!cJSON_IsString(file) || !plain_file_name(file->valuestring))
            return dg_fail(DG_E_FORMAT, "%s: shards[%d].file must be a file name inside the model folder", path, i);
        if (!get_u64(s, "size", &size))
            return dg_fail(DG_E_FORMAT, "%s: shards[%d].size must be a non-negative integer", path, i);
        if (!cJSON_IsString(hash) || !hex64(hash->valuestring))
            return dg_fail(DG_E_FORMAT, "%s: shards[%d].sha256 must be 64 lower-case hex digits", path, i);
        i++;
    }
    *n_out = n;
    *arr_out = shards;
    return DG_OK;
}

static const char *shard_file(const cJSON *shards, int i)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(shards, i), "file")->valuestring;
}

static uint64_t shard_size(const cJSON *shards, int i)
{
    uint64_t v = 0;
    get_u64(cJSON_GetArrayItem(shards, i), "size", &v);
    return v;
}

static dg_status check_header(const char *path, const cJSON *root)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "doppler-gl") != 0)
        return dg_fail(DG_E_FORMAT, "%s: \"format\" must be \"doppler-gl\"", path);
    uint64_t ver;
    if (!get_u64(root, "formatVersion", &ver) || ver != DG_FORMAT_VERSION)
        return dg_fail(DG_E_UNSUPPORTED, "%s: formatVersion must be %d (this build reads only that)", path,
                       DG_FORMAT_VERSION);
    return DG_OK;
}

/* inference.kernelPath: optional; a built-in path id (letters, digits, '-', '_', '.'), never a file name, so
 * a manifest cannot make the loader read an arbitrary path. Whether that path exists is the plan's concern
 * (it falls back to the default for the weights). */
static dg_status read_inference(const char *path, const cJSON *root, struct dg_model *m)
{
    m->kernel_path[0] = 0;
    const cJSON *inf = cJSON_GetObjectItemCaseSensitive(root, "inference");
    if (!inf)
        return DG_OK;
    if (!cJSON_IsObject(inf))
        return dg_fail(DG_E_FORMAT, "%s: \"inference\" must be an object", path);
    const cJSON *kp = cJSON_GetObjectItemCaseSensitive(inf, "kernelPath");
    if (!kp)
        return DG_OK;
    bool ok = cJSON_IsString(kp) && kp->valuestring[0] && strlen(kp->valuestring) < sizeof m->kernel_path &&
              strcmp(kp->valuestring, ".") && strcmp(kp->valuestring, "..");
    for (const char *c = ok ? kp->valuestring : ""; *c && ok; c++)
        ok = isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.';
    if (!ok)
        return dg_fail(DG_E_FORMAT, "%s: inference.kernelPath: expected a built-in kernel path id (letters, digits, "
                       "'-', '_', '.'; under %d bytes)", path, (int)sizeof m->kernel_path);
    snprintf(m->kernel_path, sizeof m->kernel_path, "%s", kp->valuestring);
    return DG_OK;
}

/* Validates one tensor entry against the manifest's rules and the shard sizes; fills t (no data yet). */
static dg_status parse_tensor(const char *path, const cJSON *e, const cJSON *shards, int n_shards,
                              struct dg_tensor *t, int *shard_out, uint64_t *off_out)
{
    const char *name = e->string;
    if (!name || !name[0] || strlen(name) >= DG_TENSOR_NAME_MAX)
        return dg_fail(DG_E_FORMAT, "%s: a tensor name is empty or longer than %d bytes", path, DG_TENSOR_NAME_MAX - 1);
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!cJSON_IsObject(e))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s must be an object", path, name);
    uint64_t shard, off, size;
    if (!get_u64(e, "shard", &shard) || shard >= (uint64_t)n_shards)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: shard must be an index below %d", path, name, n_shards);
    if (!get_u64(e, "offset", &off) || off % DG_SHARD_ALIGN)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: offset must be a non-negative multiple of %d", path, name,
                       DG_SHARD_ALIGN);
    if (!get_u64(e, "size", &size))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: size must be a non-negative integer", path, name);
    uint64_t ssize = shard_size(shards, (int)shard);
    if (off > ssize || size > ssize - off)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: bytes [%llu, %llu) lie past the end of %s (%llu bytes)", path,
                       name, (unsigned long long)off, (unsigned long long)off + size, shard_file(shards, (int)shard),
                       (unsigned long long)ssize);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt) || !dg_dtype_from_name(dt->valuestring, &t->dtype))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: unknown dtype \"%s\" (expected f32, f16, bf16, q8_0, q4_k, ...)",
                       path, name, cJSON_IsString(dt) ? dt->valuestring : "?");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int nd = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (nd < 1 || nd > DG_MAX_DIMS)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: shape must be an array of 1 to %d dimensions", path, name,
                       DG_MAX_DIMS);
    t->ndim = nd;
    uint64_t nel = 1;
    for (int i = 0; i < nd; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > (double)MAX_DIM ||
            d->valuedouble != floor(d->valuedouble))
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: shape[%d] must be an integer in [1, 2^40]", path, name, i);
        t->shape[i] = (int64_t)d->valuedouble;
        if (nel > (UINT64_C(1) << 50) / (uint64_t)t->shape[i])
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: more than 2^50 elements", path, name);
        nel *= (uint64_t)t->shape[i];
    }
    const cJSON *lay = cJSON_GetObjectItemCaseSensitive(e, "layout");
    if (!cJSON_IsString(lay))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: layout must be a string", path, name);
    if (strcmp(lay->valuestring, "row") == 0)
        t->layout = DG_LAYOUT_ROW;
    else if (strcmp(lay->valuestring, "column") == 0)
        t->layout = DG_LAYOUT_COLUMN;
    else if (strcmp(lay->valuestring, "flat") == 0)
        t->layout = DG_LAYOUT_FLAT;
    else
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: layout \"%s\" is not row, column or flat", path, name,
                       lay->valuestring);
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(e, "transposed");
    if (!cJSON_IsBool(tr))
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: transposed must be true or false", path, name);
    t->transposed = cJSON_IsTrue(tr);
    const struct dg_dtype_info *info = dg_dtype_info(t->dtype);
    uint64_t want;
    if (t->layout == DG_LAYOUT_FLAT) {
        if (nel % info->block_elems)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: %llu elements is not a multiple of %s's block of %u", path,
                           name, (unsigned long long)nel, info->name, info->block_elems);
        want = nel / info->block_elems * info->block_bytes;
    } else {
        uint64_t row = (uint64_t)t->shape[nd - 1];
        if (row % info->block_elems)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: row length %llu is not a multiple of %s's block of %u", path,
                           name, (unsigned long long)row, info->name, info->block_elems);
        if (t->layout == DG_LAYOUT_COLUMN && (!info->quantized || nd < 2))
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: column layout needs a quantized matrix", path, name);
        want = nel / row * (row / info->block_elems * info->block_bytes);
    }
    if (size != want)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: size %llu does not match shape and dtype %s (%llu bytes)", path,
                       name, (unsigned long long)size, info->name, (unsigned long long)want);
    t->nbytes = size;
    *shard_out = (int)shard;
    *off_out = off;
    return DG_OK;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void dg_model_close_manifest(struct dg_model *m)
{
    struct manifest_priv *p = m->priv;
    if (p) {
        for (int i = 0; i < p->n_maps; i++)
            if (p->maps[i])
                munmap(p->maps[i], p->lens[i]);
        free(p->maps);
        free(p->lens);
        free(p);
    }
    free(m->tensors);
    m->tensors = NULL;
    m->n_tensors = 0;
    m->priv = NULL;
}

dg_status dg_model_open_manifest(const char *dir, struct dg_model *m)
{
    memset(m, 0, sizeof *m);
    m->source = DG_SRC_MANIFEST;
    snprintf(m->path, sizeof m->path, "%s", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cJSON *root;
    dg_status st = dg_manifest_load_json(dir, &root);
    if (st != DG_OK)
        return st;
    const cJSON *shards = NULL, *tensors;
    int n_shards = 0;
    struct manifest_priv *p = NULL;
    if ((st = check_header(path, root)) != DG_OK || (st = check_shards(path, root, &n_shards, &shards)) != DG_OK)
        goto fail;
    char what[4300];
    snprintf(what, sizeof what, "%s: config", path);
    if ((st = dg_hparams_from_json(cJSON_GetObjectItemCaseSensitive(root, "config"), what, &m->hp)) != DG_OK ||
        (st = read_inference(path, root, m)) != DG_OK)
        goto fail;
    tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    int nt = cJSON_IsObject(tensors) ? cJSON_GetArraySize(tensors) : -1;
    if (nt < 1 || nt > MAX_TENSORS) {
        st = dg_fail(DG_E_FORMAT, "%s: \"tensors\" must be an object of 1 to %d tensors", path, MAX_TENSORS);
        goto fail;
    }
    p = calloc(1, sizeof *p);
    if (p)
        p->base.close = dg_model_close_manifest;
    m->tensors = calloc((size_t)nt, sizeof *m->tensors);
    int *tshard = calloc((size_t)nt, sizeof *tshard);
    uint64_t *toff = calloc((size_t)nt, sizeof *toff);
    if (p) {
        p->maps = calloc((size_t)n_shards + 1, sizeof *p->maps);
        p->lens = calloc((size_t)n_shards + 1, sizeof *p->lens);
    }
    m->priv = p;
    if (!p || !m->tensors || !tshard || !toff || !p->maps || !p->lens) {
        free(tshard), free(toff);
        st = dg_fail(DG_E_NOMEM, "%s: out of memory for %d tensors", path, nt);
        goto fail;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, tensors)
    {
        st = parse_tensor(path, e, shards, n_shards, &m->tensors[i], &tshard[i], &toff[i]);
        if (st != DG_OK)
            break;
        i++;
        m->n_tensors = i;
    }
    if (st == DG_OK) { /* cJSON keeps duplicate keys: refuse them (sorted names, so n log n for any input) */
        const char **names = malloc((size_t)m->n_tensors * sizeof *names);
        if (!names)
            st = dg_fail(DG_E_NOMEM, "%s: out of memory", path);
        for (int k = 0; names && k < m->n_tensors; k++)
            names[k] = m->tensors[k].name;
        if (names)
            qsort(names, (size_t)m->n_tensors, sizeof *names, cmp_names);
        for (int k = 1; names && k < m->n_tensors && st == DG_OK; k++)
            if (strcmp(names[k - 1], names[k]) == 0)
                st = dg_fail(DG_E_FORMAT, "%s: tensor %s appears twice", path, names[k]);
        free(names);
    }
    /* map shards: each must exist with exactly the manifest's size */
    p->n_maps = n_shards;
    for (int s = 0; s < n_shards && st == DG_OK; s++) {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s", dir, shard_file(shards, s));
        uint64_t want = shard_size(shards, s);
        int fd = open(sp, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0) {
            st = dg_fail(DG_E_IO, "%s: cannot open: %s", sp, strerror(errno));
            break;
        }
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != want) {
            st = dg_fail(DG_E_FORMAT, "%s: size is %lld bytes, the manifest says %llu (truncated or replaced?)", sp,
                         (long long)sb.st_size, (unsigned long long)want);
            close(fd);
            break;
        }
        if (want > 0) {
            void *map = mmap(NULL, want, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED)
                st = dg_fail(DG_E_IO, "%s: mmap failed: %s", sp, strerror(errno));
            else {
                p->maps[s] = map;
                p->lens[s] = want;
            }
        }
        close(fd);
    }
    if (st == DG_OK) /* shapes against the config, so consumers can trust hp to describe the tensors */
        st = dg_tensor_specs_check(m, path);
    for (int t = 0; t < m->n_tensors && st == DG_OK; t++)
        m->tensors[t].data = p->maps[tshard[t]] ? (const uint8_t *)p->maps[tshard[t]] + toff[t] : NULL;
    free(tshard), free(toff);
    if (st != DG_OK)
        goto fail;
    cJSON_Delete(root);
    return DG_OK;
fail:
    cJSON_Delete(root);
    dg_model_close_manifest(m);
    return st;
}

dg_status dg_manifest_verify(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cJSON *root;
    dg_status st = dg_manifest_load_json(dir, &root);
    if (st != DG_OK)
        return st;
    const cJSON *shards;
    int n = 0;
    if ((st = check_header(path, root)) != DG_OK || (st = check_shards(path, root, &n, &shards)) != DG_OK) {
        cJSON_Delete(root);
        return st;
    }
    unsigned char *buf = malloc(1 << 20);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!buf || !md)
        st = dg_fail(DG_E_NOMEM, "verify: out of memory");
    for (int s = 0; s < n && st == DG_OK; s++) {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s", dir, shard_file(shards, s));
        FILE *f = fopen(sp, "rb");
        if (!f) {
            st = dg_fail(DG_E_VERIFY, "%s: cannot open: %s", sp, strerror(errno));
            break;
        }
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        uint64_t total = 0;
        size_t got;
        while ((got = fread(buf, 1, 1 << 20, f)) > 0) {
            EVP_DigestUpdate(md, buf, got);
            total += got;
        }
        fclose(f);
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned hl = 0;
        EVP_DigestFinal_ex(md, h, &hl);
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned i = 0; i < hl; i++)
            snprintf(hex + 2 * i, 3, "%02x", h[i]);
        const char *want = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(shards, s), "sha256")->valuestring;
        if (total != shard_size(shards, s))
            st = dg_fail(DG_E_VERIFY, "%s: %llu bytes, the manifest says %llu", sp, (unsigned long long)total,
                         (unsigned long long)shard_size(shards, s));
        else if (strcmp(hex, want) != 0)
            st = dg_fail(DG_E_VERIFY, "%s: SHA-256 is %s, the manifest says %s", sp, hex, want);
    }
    EVP_MD_CTX_free(md);
    free(buf);
    cJSON_Delete(root);
    return st;
}
