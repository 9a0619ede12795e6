/* progcache.c: program binaries on disk under $XDG_CACHE_HOME/doppler-gl/programs, one file per
 * SHA-256(renderer, version, key, expanded source). A file is trusted only when its header's magic, key,
 * length and payload checksum all match and the driver accepts it; anything else is deleted and rebuilt.
 * Writes go to a temporary name and are renamed into place, so a crash never leaves half a file. */
#include "gl/progcache.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/paths.h"

#define MAGIC "DGPBIN01"
#define MAX_BINARY (256u << 20)

struct header {
    char magic[8];
    unsigned char key[32];
    uint32_t format;
    uint32_t reserved;
    uint64_t length;
    unsigned char checksum[32];
};

static bool sha256(const void *a, size_t na, const void *b, size_t nb, unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned len = 0;
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, a, na) &&
              (!nb || EVP_DigestUpdate(c, b, nb)) && EVP_DigestFinal_ex(c, out, &len) && len == 32;
    EVP_MD_CTX_free(c);
    return ok;
}

static bool cache_key(const struct dg_gl *gl, const char *key, const char *src, unsigned char out[32])
{
    size_t n = strlen(MAGIC) + strlen(gl->caps.renderer) + strlen(gl->caps.version) + strlen(key) + 4;
    char *head = malloc(n);
    if (!head)
        return false;
    int m = snprintf(head, n, "%s%s%c%s%c%s%c", MAGIC, gl->caps.renderer, 0, gl->caps.version, 0, key, 0);
    bool ok = m > 0 && sha256(head, (size_t)m, src, strlen(src), out);
    free(head);
    return ok;
}

static bool enabled(const struct dg_gl *gl) { return gl->program_cache && gl->caps.n_program_binary_formats > 0; }

static bool entry_path(const unsigned char k[32], char *out, size_t n)
{
    const char *dir = dg_cache_dir();
    if (!dir)
        return false;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", k[i]);
    return snprintf(out, n, "%s/programs/%s.bin", dir, hex) < (int)n;
}

static void reject(struct dg_gl *gl, const char *path, const char *why)
{
    gl->prog_stats.rejected++;
    DG_VERBOSE("program cache: %s: %s; rebuilding", path, why);
    unlink(path);
}

bool dg_progcache_load(struct dg_gl *gl, const char *key, const char *src, GLuint *prog)
{
    unsigned char k[32];
    char path[4096];
    if (!enabled(gl) || !cache_key(gl, key, src, k) || !entry_path(k, path, sizeof path))
        return false;
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    struct header h;
    struct stat st;
    void *bin = NULL;
    const char *why = NULL;
    if (fstat(fileno(f), &st) != 0 || fread(&h, sizeof h, 1, f) != 1)
        why = "shorter than its header";
    else if (memcmp(h.magic, MAGIC, 8) != 0)
        why = "bad magic (not a doppler-gl program binary, or an older format)";
    else if (memcmp(h.key, k, 32) != 0)
        why = "key mismatch (a different program)";
    else if (h.length == 0 || h.length > MAX_BINARY || (uint64_t)st.st_size != sizeof h + h.length)
        why = "length in the header does not match the file size";
    else if (!(bin = malloc(h.length)) || fread(bin, 1, h.length, f) != h.length)
        why = "cannot read the payload";
    else {
        unsigned char sum[32];
        if (!sha256(bin, h.length, NULL, 0, sum) || memcmp(sum, h.checksum, 32) != 0)
            why = "payload checksum mismatch (corrupt)";
    }
    fclose(f);
    if (why) {
        free(bin);
        reject(gl, path, why);
        return false;
    }
    GLuint p = glCreateProgram();
    glGetError();
    glProgramBinary(p, h.format, bin, (GLsizei)h.length);
    free(bin);
    GLint ok = 0;
    glGetProgramiv(p, GL_LINK_STATUS, &ok);
    if (glGetError() != GL_NO_ERROR || !ok) {
        glDeleteProgram(p);
        reject(gl, path, "the driver refused the binary (driver update?)");
        return false;
    }
    gl->prog_stats.loaded++;
    *prog = p;
    return true;
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return (mkdir(tmp, 0755) != 0 && errno != EEXIST) ? -1 : 0;
}

void dg_progcache_store(struct dg_gl *gl, const char *key, const char *src, GLuint prog)
{
    unsigned char k[32];
    char path[4096];
    if (!enabled(gl) || !cache_key(gl, key, src, k) || !entry_path(k, path, sizeof path))
        return;
    GLint len = 0;
    glGetProgramiv(prog, GL_PROGRAM_BINARY_LENGTH, &len);
    if (len <= 0 || (unsigned)len > MAX_BINARY)
        return;
    struct header *h = calloc(1, sizeof *h + (size_t)len);
    if (!h)
        return;
    GLenum fmt = 0;
    GLsizei got = 0;
    glGetProgramBinary(prog, len, &got, &fmt, h + 1);
    if (glGetError() != GL_NO_ERROR || got <= 0) {
        free(h);
        return;
    }
    memcpy(h->magic, MAGIC, 8);
    memcpy(h->key, k, 32);
    h->format = fmt;
    h->length = (uint64_t)got;
    sha256(h + 1, (size_t)got, NULL, 0, h->checksum);
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = NULL;
    bool ok = mkdir_p(dir) == 0 && (f = fopen(tmp, "wb")) != NULL &&
              fwrite(h, 1, sizeof *h + (size_t)got, f) == sizeof *h + (size_t)got;
    if (f)
        ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) == 0) {
        gl->prog_stats.stored++;
    } else {
        DG_VERBOSE("program cache: cannot write %s: %s", path, strerror(errno));
        if (f)
            unlink(tmp);
    }
    free(h);
}

void dg_gl_program_cache_info(const struct dg_gl *gl, struct dg_program_cache_info *out)
{
    *out = gl->prog_stats;
    out->enabled = enabled(gl);
    out->n_programs = gl->n_programs;
    const char *d = dg_cache_dir();
    snprintf(out->dir, sizeof out->dir, "%s%s", d ? d : "", d ? "/programs" : "");
}
