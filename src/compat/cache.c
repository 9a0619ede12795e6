/* cache.c: where compatibility reports are cached (next to the model, else in the user's cache folder), the
 * key that ties a cached report to the exact model files, and atomic writes. Rules are in compat.h. */
/* snprintf truncation into fixed message and path fields is intended (they only get long for odd input). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/readfile.h"
#include "compat/compat.h"
#include "core/log.h"
#include "core/paths.h"

#define CACHE_NAME "compat.json"
#define MAX_CACHE_BYTES (16u << 20)

dg_status dg_compat_write_atomic(const char *file, const void *data, size_t len)
{
    static int seq;
    char tmp[PATH_MAX + 64];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%d", file, (long)getpid(), __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    if (n < 0 || (size_t)n >= sizeof tmp)
        return dg_fail(DG_E_IO, "%s: path too long", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return dg_fail(DG_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return dg_fail(DG_E_IO, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return dg_fail(DG_E_IO, "%s: cannot flush: %s", tmp, strerror(e));
    }
    if (rename(tmp, file) != 0) {
        int e = errno;
        unlink(tmp);
        return dg_fail(DG_E_IO, "%s: cannot rename %s into place: %s", file, tmp, strerror(e));
    }
    return DG_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void hash_file_entry(EVP_MD_CTX *h, const char *name, const struct stat *st)
{
    char line[PATH_MAX + 96];
    int n = snprintf(line, sizeof line, "%s\t%lld\t%lld.%09ld\n", name, (long long)st->st_size,
                     (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
    EVP_DigestUpdate(h, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

dg_status dg_compat_cache_key(const char *path, char key[65])
{
    key[0] = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return dg_fail(DG_E_IO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h);
        return dg_fail(DG_E_INTERNAL, "SHA-256 is not available from libcrypto");
    }
    char head[64];
    int hn = snprintf(head, sizeof head, "doppler-gl compat %d\n", DG_COMPAT_VERSION);
    EVP_DigestUpdate(h, head, (size_t)hn);
    dg_status rc = DG_OK;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            EVP_MD_CTX_free(h);
            return dg_fail(DG_E_IO, "%s: cannot list the folder: %s", path, strerror(errno));
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            /* our own cache file and its temporaries are not part of the model */
            if (e->d_name[0] == '.' || strncmp(e->d_name, CACHE_NAME, strlen(CACHE_NAME)) == 0)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 32;
                char **nn = realloc(names, sizeof *names * cap);
                if (!nn) {
                    rc = dg_fail(DG_E_NOMEM, "%s: out of memory", path);
                    break;
                }
                names = nn;
            }
            if (!(names[n] = strdup(e->d_name))) {
                rc = dg_fail(DG_E_NOMEM, "%s: out of memory", path);
                break;
            }
            n++;
        }
        closedir(d);
        if (!rc)
            qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            char full[PATH_MAX * 2];
            struct stat fs;
            snprintf(full, sizeof full, "%s/%s", path, names[i]);
            if (!rc && stat(full, &fs) == 0 && S_ISREG(fs.st_mode))
                hash_file_entry(h, names[i], &fs);
            free(names[i]);
        }
        free(names);
    } else {
        const char *base = strrchr(path, '/');
        hash_file_entry(h, base ? base + 1 : path, &st);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!rc && !EVP_DigestFinal_ex(h, md, &mdlen))
        rc = dg_fail(DG_E_INTERNAL, "SHA-256 failed");
    EVP_MD_CTX_free(h);
    if (rc)
        return rc;
    for (unsigned i = 0; i < 32 && i < mdlen; i++)
        snprintf(key + 2 * i, 3, "%02x", md[i]);
    return DG_OK;
}

/* A folder we may write into: some write permission bit set (a folder marked read-only stays untouched even
 * for root, who passes access(2)) and writable by this process. */
static bool dir_writable(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return false;
    if (!(st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))
        return false;
    return access(dir, W_OK) == 0;
}

static dg_status mkdirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return dg_fail(DG_E_IO, "%s: path too long", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return dg_fail(DG_E_IO, "%s: cannot create the folder: %s", p, strerror(errno));
            *s = c;
            if (!c)
                break;
        }
    }
    return DG_OK;
}

/* The two cache locations for a model path: next to it (with the folder that must be writable) and the
 * per-user fallback (empty when there is no cache folder). */
static void cache_paths(const char *model_path, const char *key, char *beside, size_t bsz, char *beside_dir,
                        size_t dsz, char *fallback, size_t fsz)
{
    struct stat st;
    bool is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir) {
        snprintf(beside, bsz, "%s/%s", model_path, CACHE_NAME);
        snprintf(beside_dir, dsz, "%s", model_path);
    } else {
        snprintf(beside, bsz, "%s.%s", model_path, CACHE_NAME);
        snprintf(beside_dir, dsz, "%s", model_path);
        char *slash = strrchr(beside_dir, '/');
        if (slash)
            *(slash == beside_dir ? slash + 1 : slash) = 0;
        else
            snprintf(beside_dir, dsz, ".");
    }
    const char *c = dg_cache_dir();
    if (c)
        snprintf(fallback, fsz, "%s/compat/%s.json", c, key);
    else
        fallback[0] = 0;
}

void dg_compat_cache_files(const char *model_path, char *beside, size_t bsz, char *fallback, size_t fsz)
{
    char key[65], dir[PATH_MAX + 32];
    if (dg_compat_cache_key(model_path, key) != DG_OK) {
        dg_clear_error();
        key[0] = 0;
    }
    cache_paths(model_path, key, beside, bsz, dir, sizeof dir, fallback, fsz);
    if (!key[0])
        fallback[0] = 0;
}

/* True when `file` holds a valid report of this checker version for `key` (read into *out). */
static bool try_read(const char *file, const char *key, struct dg_compat_report *out)
{
    if (!file[0])
        return false;
    char *text = dg_read_small_file(file, MAX_CACHE_BYTES);
    if (!text)
        return false;
    cJSON *o = cJSON_Parse(text);
    free(text);
    bool ok = false;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "checker_version");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "key");
    if (!cJSON_IsNumber(v) || v->valuedouble != DG_COMPAT_VERSION || !cJSON_IsString(k) ||
        strcmp(k->valuestring, key) != 0)
        DG_DEBUG("compat cache %s: not for this model or checker version; re-checking", file);
    else if (dg_compat_report_from_json(file, o, out) != DG_OK)
        DG_VERBOSE("compat cache %s is invalid (%s); re-checking", file, dg_last_error());
    else
        ok = true;
    cJSON_Delete(o);
    return ok;
}

static dg_status write_cache(const char *file, const struct dg_compat_report *r)
{
    cJSON *o = dg_compat_report_json(r);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", file);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON's buffer has room: replace the terminator, write len + 1 */
    dg_status st = dg_compat_write_atomic(file, text, len + 1);
    free(text);
    return st;
}

dg_status dg_compat_get(const struct dg_model *m, struct dg_compat_report *out)
{
    char key[65];
    if (!m->path[0] || dg_compat_cache_key(m->path, key) != DG_OK) {
        if (m->path[0])
            DG_VERBOSE("compat: no cache for %s (%s)", m->path, dg_last_error());
        return dg_compat_check(m, out);
    }
    char beside[PATH_MAX + 32], dir[PATH_MAX + 32], fallback[PATH_MAX + 96];
    cache_paths(m->path, key, beside, sizeof beside, dir, sizeof dir, fallback, sizeof fallback);
    const char *cands[2] = {beside, fallback};
    for (int i = 0; i < 2; i++) {
        if (try_read(cands[i], key, out)) {
            snprintf(out->model, sizeof out->model, "%s", m->path);
            snprintf(out->key, sizeof out->key, "%s", key);
            snprintf(out->cache_file, sizeof out->cache_file, "%s", cands[i]);
            out->from_cache = true;
            DG_VERBOSE("compat: using the cached report %s", cands[i]);
            return DG_OK;
        }
    }
    dg_status st = dg_compat_check(m, out);
    if (st)
        return st;
    snprintf(out->key, sizeof out->key, "%s", key);
    const char *target = NULL;
    if (dir_writable(dir) && write_cache(beside, out) == DG_OK)
        target = beside;
    else if (fallback[0]) {
        char fdir[PATH_MAX + 96];
        snprintf(fdir, sizeof fdir, "%s", fallback);
        *strrchr(fdir, '/') = 0;
        if (mkdirs(fdir) == DG_OK && write_cache(fallback, out) == DG_OK)
            target = fallback;
    }
    if (target) {
        snprintf(out->cache_file, sizeof out->cache_file, "%s", target);
        DG_VERBOSE("compat: report cached in %s", target);
    } else
        DG_VERBOSE("compat: the report for %s could not be cached (%s)", m->path, dg_last_error());
    dg_clear_error();
    return DG_OK;
}
