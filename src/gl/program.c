/* program.c: compute programs from glsl/ files. Expands `#include "x.glsl"` (GLSL ES has none), puts a
 * preamble of #defines after `#version 310 es`, compiles each (file, sorted defines) once per process,
 * maps compile-log source numbers back to file names, and keeps program binaries on disk (progcache.c). */
#include "gl/gl_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/paths.h"
#include "gl/progcache.h"

#define MAX_INCLUDE_DEPTH 8
#define MAX_SOURCE_FILES 32
#define MAX_SHADER_BYTES (4u << 20)

struct dg_program_entry {
    struct dg_program_entry *next;
    uint64_t hash;
    char *key;
    GLuint prog;
};

const char *dg_gl_shader_dir(void)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s/glsl", PATH_MAX - 8, dg_data_dir());
    return dir;
}

/* A growing string. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

struct srcset {
    char names[MAX_SOURCE_FILES][128]; /* index = GLSL source-string number used in #line */
    int n;
};

static dg_status read_shader(const char *name, char **out, size_t *len)
{
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%.200s", dg_gl_shader_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return dg_fail(DG_E_IO, "shader %s: cannot open (%m); shaders are read from %s (set DOPPLER_GL_DATADIR "
                                "to the directory holding glsl/)", path, dg_gl_shader_dir());
    char *buf = malloc(MAX_SHADER_BYTES + 1);
    if (!buf) {
        fclose(f);
        return dg_fail(DG_E_NOMEM, "shader %s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_SHADER_BYTES + 1, f);
    fclose(f);
    if (n > MAX_SHADER_BYTES) {
        free(buf);
        return dg_fail(DG_E_FORMAT, "shader %s: larger than %u bytes", path, MAX_SHADER_BYTES);
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        free(buf);
        return dg_fail(DG_E_FORMAT, "shader %s: contains a NUL byte", path);
    }
    *out = buf;
    *len = n;
    return DG_OK;
}

/* Parses `#include "name"` on a line; returns true and fills name when the line is one. */
static bool parse_include(const char *line, size_t n, char *name, size_t name_len)
{
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= n || line[i] != '#')
        return false;
    i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (n - i < 7 || strncmp(line + i, "include", 7) != 0)
        return false;
    i += 7;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= n || line[i] != '"')
        return false;
    size_t s = ++i;
    while (i < n && line[i] != '"')
        i++;
    if (i >= n || i - s == 0 || i - s >= name_len)
        return false;
    memcpy(name, line + s, i - s);
    name[i - s] = 0;
    return true;
}

/* Appends file `name` (source-string number `idx`) to out, expanding includes. The main file's first
 * line (`#version`) is dropped by the caller. */
static dg_status expand(const char *name, const char *text, int idx, int depth, struct srcset *ss,
                        struct sbuf *out, int first_line)
{
    const char *p = text;
    int line = 1;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char inc[128];
        if (line >= first_line) {
            if (parse_include(p, n, inc, sizeof inc)) {
                if (strchr(inc, '/') || strstr(inc, ".."))
                    return dg_fail(DG_E_FORMAT, "%s:%d: #include \"%s\": only files in glsl/ itself may be "
                                                "included", name, line, inc);
                if (depth >= MAX_INCLUDE_DEPTH)
                    return dg_fail(DG_E_FORMAT, "%s:%d: #include \"%s\": nested deeper than %d (a cycle?)",
                                   name, line, inc, MAX_INCLUDE_DEPTH);
                if (ss->n >= MAX_SOURCE_FILES)
                    return dg_fail(DG_E_FORMAT, "%s:%d: more than %d included files", name, line,
                                   MAX_SOURCE_FILES);
                char *sub;
                size_t sub_len;
                dg_status st = read_shader(inc, &sub, &sub_len);
                if (st)
                    return dg_fail_context(st, "%s:%d: ", name, line);
                int sub_idx = ss->n++;
                snprintf(ss->names[sub_idx], sizeof ss->names[0], "%s", inc);
                sb_printf(out, "#line 1 %d\n", sub_idx);
                st = expand(inc, sub, sub_idx, depth + 1, ss, out, 1);
                free(sub);
                if (st)
                    return st;
                sb_printf(out, "#line %d %d\n", line + 1, idx);
            } else {
                sb_put(out, p, n);
                sb_put(out, "\n", 1);
            }
        }
        line++;
        p = e ? e + 1 : p + n;
    }
    return out->oom ? dg_fail(DG_E_NOMEM, "%s: out of memory expanding includes", name) : DG_OK;
}

static bool valid_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static bool word_in(const char *text, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = text; (p = strstr(p, w)) != NULL; p += n) {
        bool l = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool r = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (l && r)
            return true;
    }
    return false;
}

static int cmp_def(const void *a, const void *b)
{
    return strcmp(((const struct dg_define *)a)->name, ((const struct dg_define *)b)->name);
}

/* Rewrites "N:L(C): msg" (Mesa) and "N(L) : msg" (NVIDIA) log lines so N is the file name. */
static void map_log(const char *log, const struct srcset *ss, struct sbuf *out)
{
    const char *p = log;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        char *end;
        long idx = strtol(p, &end, 10);
        if (end > p && isdigit((unsigned char)*p) && (*end == ':' || *end == '(') && idx >= 0 && idx < ss->n) {
            sb_printf(out, "%s", ss->names[idx]);
            sb_put(out, end, n - (size_t)(end - p));
        } else {
            sb_put(out, p, n);
        }
        p += n;
    }
}

static dg_status compile_link(const char *file, const char *src, const struct srcset *ss, GLuint *out)
{
    GLuint sh = glCreateShader(GL_COMPUTE_SHADER);
    glShaderSource(sh, 1, &src, NULL);
    glCompileShader(sh);
    GLint ok = 0, len = 0;
    glGetShaderiv(sh, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        glGetShaderiv(sh, GL_INFO_LOG_LENGTH, &len);
        char *log = calloc(1, (size_t)len + 1);
        if (log)
            glGetShaderInfoLog(sh, len, NULL, log);
        struct sbuf m = {0};
        map_log(log ? log : "", ss, &m);
        DG_VERBOSE("compiling glsl/%s:\n%s", file, m.p ? m.p : "(no info log)");
        dg_status st = dg_fail(DG_E_GL, "glsl/%s: compile failed: %.1500s", file, m.p ? m.p : "(no info log)");
        free(m.p);
        free(log);
        glDeleteShader(sh);
        return st;
    }
    GLuint prog = glCreateProgram();
    glAttachShader(prog, sh);
    /* Lets glGetProgramBinary work for the disk cache. */
    glProgramParameteri(prog, GL_PROGRAM_BINARY_RETRIEVABLE_HINT, GL_TRUE);
    glLinkProgram(prog);
    glDetachShader(prog, sh);
    glDeleteShader(sh);
    glGetProgramiv(prog, GL_LINK_STATUS, &ok);
    if (!ok) {
        glGetProgramiv(prog, GL_INFO_LOG_LENGTH, &len);
        char *log = calloc(1, (size_t)len + 1);
        if (log)
            glGetProgramInfoLog(prog, len, NULL, log);
        struct sbuf m = {0};
        map_log(log ? log : "", ss, &m);
        DG_VERBOSE("linking glsl/%s:\n%s", file, m.p ? m.p : "(no info log)");
        dg_status st = dg_fail(DG_E_GL, "glsl/%s: link failed: %.1500s", file, m.p ? m.p : "(no info log)");
        free(m.p);
        free(log);
        glDeleteProgram(prog);
        return st;
    }
    *out = prog;
    return DG_OK;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Builds the full source text: #version, extensions, capability and caller defines, #line, the file. */
static dg_status build_source(struct dg_gl *gl, const char *file, const struct dg_define *sorted, int n_defs,
                              struct sbuf *src, struct srcset *ss)
{
    char *text;
    size_t len;
    dg_status st = read_shader(file, &text, &len);
    if (st)
        return st;
    const char *nl = strchr(text, '\n');
    size_t l1 = nl ? (size_t)(nl - text) : len;
    if (l1 < 15 || strncmp(text, "#version 310 es", 15) != 0 || strspn(text + 15, " \t\r") != l1 - 15) {
        free(text);
        return dg_fail(DG_E_FORMAT, "glsl/%s:1: the first line must be '#version 310 es' (the loader puts its "
                                    "#define preamble right after it)", file);
    }
    ss->n = 1;
    snprintf(ss->names[0], sizeof ss->names[0], "%s", file);
    struct sbuf body = {0};
    st = expand(file, text, 0, 0, ss, &body, 2);
    free(text);
    if (st) {
        free(body.p);
        return st;
    }
    for (int i = 0; i < n_defs; i++)
        if (!word_in(body.p ? body.p : "", sorted[i].name)) {
            free(body.p);
            return dg_fail(DG_E_USAGE, "glsl/%s: define %s is not a knob of this shader (it never mentions it; "
                                       "declare it with #ifndef %s)", file, sorted[i].name, sorted[i].name);
        }
    const struct dg_gl_caps *c = &gl->caps;
    sb_printf(src, "#version 310 es\n");
    if (c->subgroup) {
        static const struct {
            unsigned bit;
            const char *ext, *def;
        } feats[] = {
            {GL_SUBGROUP_FEATURE_BASIC_BIT_KHR, "basic", NULL},
            {GL_SUBGROUP_FEATURE_VOTE_BIT_KHR, "vote", "HAS_SUBGROUP_VOTE"},
            {GL_SUBGROUP_FEATURE_ARITHMETIC_BIT_KHR, "arithmetic", NULL},
            {GL_SUBGROUP_FEATURE_BALLOT_BIT_KHR, "ballot", "HAS_SUBGROUP_BALLOT"},
            {GL_SUBGROUP_FEATURE_SHUFFLE_BIT_KHR, "shuffle", "HAS_SUBGROUP_SHUFFLE"},
            {GL_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT_KHR, "shuffle_relative", "HAS_SUBGROUP_SHUFFLE_RELATIVE"},
            {GL_SUBGROUP_FEATURE_CLUSTERED_BIT_KHR, "clustered", "HAS_SUBGROUP_CLUSTERED"},
        };
        for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
            if (c->subgroup_features & feats[i].bit) {
                sb_printf(src, "#extension GL_KHR_shader_subgroup_%s : require\n", feats[i].ext);
                if (feats[i].def)
                    sb_printf(src, "#define %s 1\n", feats[i].def);
            }
        sb_printf(src, "#define HAS_SUBGROUP 1\n#define SUBGROUP_SIZE %u\n", c->subgroup_size);
    }
    /* kernels that can use f16 arithmetic (matmul's H16) enable the extension themselves, and only where a
     * knob asks for it: the preamble names the capability, so the same knob builds everywhere */
    if (c->f16_arith)
        sb_printf(src, "#define HAS_NV_GPU_SHADER5 1\n");
    /* kernels with an optional shared-memory variant (matmul's XSH) fall back where it would not fit */
    sb_printf(src, "#define MAX_SHARED_BYTES %d\n", c->max_shared_memory);
    for (int i = 0; i < n_defs; i++)
        sb_printf(src, "#define %s %s\n", sorted[i].name, sorted[i].value ? sorted[i].value : "");
    sb_printf(src, "#line 2 0\n");
    sb_put(src, body.p ? body.p : "", body.len);
    free(body.p);
    return src->oom ? dg_fail(DG_E_NOMEM, "glsl/%s: out of memory", file) : DG_OK;
}

dg_status dg_gl_program(struct dg_gl *gl, const char *file, const struct dg_define *defs, int n_defs,
                        GLuint *out)
{
    *out = 0;
    if (!file || !*file || strchr(file, '/') || n_defs < 0 || n_defs > 256)
        return dg_fail(DG_E_USAGE, "shader name '%s': expected a file name inside glsl/", file ? file : "");
    for (int i = 0; i < n_defs; i++)
        if (!defs[i].name)
            return dg_fail(DG_E_USAGE, "glsl/%s: define %d has no name", file, i);
    struct dg_define *sorted = calloc((size_t)n_defs + 1, sizeof *sorted);
    if (!sorted)
        return dg_fail(DG_E_NOMEM, "out of memory");
    if (n_defs)
        memcpy(sorted, defs, sizeof *defs * (size_t)n_defs);
    qsort(sorted, (size_t)n_defs, sizeof *sorted, cmp_def);
    struct sbuf key = {0};
    sb_printf(&key, "%s", file);
    for (int i = 0; i < n_defs; i++) {
        const char *v = sorted[i].value ? sorted[i].value : "";
        dg_status bad = DG_OK;
        if (!valid_ident(sorted[i].name) || strchr(v, '\n') || strchr(v, '\r'))
            bad = dg_fail(DG_E_USAGE, "glsl/%s: define '%s' = '%s' is not a valid name/value", file,
                          sorted[i].name ? sorted[i].name : "(null)", v);
        else if (i && strcmp(sorted[i].name, sorted[i - 1].name) == 0)
            bad = dg_fail(DG_E_USAGE, "glsl/%s: define %s given twice", file, sorted[i].name);
        if (bad) {
            free(key.p);
            free(sorted);
            return bad;
        }
        sb_printf(&key, "\n%s=%s", sorted[i].name, v);
    }
    if (key.oom) {
        free(sorted);
        return dg_fail(DG_E_NOMEM, "out of memory");
    }
    if (!gl->prog_buckets) {
        gl->n_prog_buckets = 256;
        gl->prog_buckets = calloc((size_t)gl->n_prog_buckets, sizeof *gl->prog_buckets);
        if (!gl->prog_buckets) {
            free(key.p);
            free(sorted);
            return dg_fail(DG_E_NOMEM, "out of memory");
        }
    }
    uint64_t h = fnv1a(key.p);
    struct dg_program_entry **bucket = &gl->prog_buckets[h % (uint64_t)gl->n_prog_buckets];
    for (struct dg_program_entry *e = *bucket; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key.p) == 0) {
            free(key.p);
            free(sorted);
            *out = e->prog;
            return DG_OK;
        }
    struct sbuf src = {0};
    struct srcset *ss = calloc(1, sizeof *ss);
    dg_status st = ss ? build_source(gl, file, sorted, n_defs, &src, ss) : dg_fail(DG_E_NOMEM, "out of memory");
    free(sorted);
    GLuint prog = 0;
    if (!st) {
        double t0 = dg_now_ms();
        if (!dg_progcache_load(gl, key.p, src.p, &prog)) {
            st = compile_link(file, src.p, ss, &prog);
            if (!st) {
                gl->prog_stats.compiled++;
                dg_progcache_store(gl, key.p, src.p, prog);
            }
        }
        gl->prog_stats.build_ms += dg_now_ms() - t0;
    }
    free(ss);
    free(src.p);
    if (st) {
        free(key.p);
        return st;
    }
    struct dg_program_entry *e = calloc(1, sizeof *e);
    if (!e) {
        glDeleteProgram(prog);
        free(key.p);
        return dg_fail(DG_E_NOMEM, "out of memory");
    }
    e->hash = h;
    e->key = key.p;
    e->prog = prog;
    e->next = *bucket;
    *bucket = e;
    gl->n_programs++;
    *out = prog;
    return DG_OK;
}

void dg_programs_free(struct dg_gl *gl)
{
    for (int i = 0; i < gl->n_prog_buckets; i++)
        for (struct dg_program_entry *e = gl->prog_buckets[i], *n; e; e = n) {
            n = e->next;
            glDeleteProgram(e->prog);
            free(e->key);
            free(e);
        }
    free(gl->prog_buckets);
    gl->prog_buckets = NULL;
    gl->n_programs = 0;
}

void dg_gl_program_forget_all(struct dg_gl *gl)
{
    glUseProgram(0);
    dg_programs_free(gl);
}
