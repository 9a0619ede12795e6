/* cmd_cache.c: `doppler-gl cache list|purge`: what doppler-gl keeps between runs, and clearing it.
 *
 * Three kinds of files, each recognised by its folder, its name pattern and its content, so purge never
 * deletes anything doppler-gl did not write:
 *   program   $XDG_CACHE_HOME/doppler-gl/programs/<64 hex>.bin, starting with the "DGPBIN01" magic
 *             (gl/progcache.c); shared by every model, so --model leaves them out;
 *   tuner     $XDG_CACHE_HOME/doppler-gl/tuner/<32 hex>.json (or $DOPPLER_GL_TUNER_DIR) with the
 *             "doppler_gl_tuner" marker (tune/cache.c); --model: those recorded for the model's shape;
 *   compat    $XDG_CACHE_HOME/doppler-gl/compat/<64 hex>.json and, with --model, the report beside the
 *             model (MODEL/compat.json or MODEL.compat.json), holding "checker_version"
 *             (compat/cache.c); --model: those whose recorded model is that path, or whose name is its
 *             current key;
 * plus the temporaries of interrupted writes of those names ("<name>.tmp.<pid>[.<n>]"). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "compat/compat.h"
#include "core/log.h"
#include "core/paths.h"
#include "tune/tune.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: doppler-gl cache list|purge [--model M] [--json]\n\n"
                 "Lists (path, kind, size, age) or deletes what doppler-gl keeps between runs: program binaries,\n"
                 "tuner results and compatibility reports.\n\n"
                 "Options:\n"
                 "  --model M   only model M's entries: its tuner results and compatibility reports (also the\n"
                 "              one kept beside the model); program binaries are shared and left out\n"
                 "  --json      print the entries (and for purge what was deleted) as JSON\n"
                 "  -v, --verbose, -q, --quiet   more or less detail on stderr\n"
                 "  -h, --help  show this help\n");
}

struct entry {
    char path[PATH_MAX];
    const char *kind;
    long long size;
    double age_s;
};

struct list {
    struct entry *e;
    int n, cap;
};

static dg_status add(struct list *l, const char *path, const char *kind, const struct stat *st)
{
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        struct entry *ne = realloc(l->e, sizeof *ne * (size_t)nc);
        if (!ne)
            return dg_fail(DG_E_NOMEM, "out of memory");
        l->e = ne;
        l->cap = nc;
    }
    struct entry *e = &l->e[l->n++];
    snprintf(e->path, sizeof e->path, "%s", path);
    e->kind = kind;
    e->size = (long long)st->st_size;
    e->age_s = difftime(time(NULL), st->st_mtime);
    if (e->age_s < 0)
        e->age_s = 0;
    return DG_OK;
}

/* `name` is exactly `nhex` lowercase hex digits followed by `suffix`, optionally then a temporary tail
 * ".tmp.<digits>[.<digits>]"; *tmp says which. */
static bool name_matches(const char *name, int nhex, const char *suffix, bool *tmp)
{
    for (int i = 0; i < nhex; i++)
        if (!isxdigit((unsigned char)name[i]) || isupper((unsigned char)name[i]))
            return false;
    const char *p = name + nhex;
    size_t sl = strlen(suffix);
    if (strncmp(p, suffix, sl))
        return false;
    p += sl;
    *tmp = false;
    if (!*p)
        return true;
    if (strncmp(p, ".tmp.", 5))
        return false;
    p += 5;
    int dots = 0;
    if (!isdigit((unsigned char)*p))
        return false;
    for (; *p; p++) {
        if (*p == '.' && dots == 0 && isdigit((unsigned char)p[1]))
            dots++;
        else if (!isdigit((unsigned char)*p))
            return false;
    }
    *tmp = true;
    return true;
}

static bool has_magic(const char *path, const char *magic)
{
    char buf[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(buf, 1, strlen(magic), f);
    fclose(f);
    return n == strlen(magic) && !memcmp(buf, magic, n);
}

/* A compatibility report: JSON with checker_version; its recorded model path in `model` (may be NULL). */
static bool is_compat(const char *path, char *model, size_t mn)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char *buf = malloc((16u << 20) + 1);
    size_t n = buf ? fread(buf, 1, 16u << 20, f) : 0;
    fclose(f);
    if (!buf)
        return false;
    buf[n] = 0;
    cJSON *o = cJSON_Parse(buf);
    free(buf);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "checker_version");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
    bool ok = cJSON_IsNumber(v);
    if (model && mn)
        snprintf(model, mn, "%s", ok && cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(o);
    return ok;
}

static bool same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!a[0] || !b[0] || !realpath(a, ra) || !realpath(b, rb))
        return false;
    return !strcmp(ra, rb);
}

struct filter {
    bool model;
    const char *model_path;
    char sig[65];
    char compat_fallback[PATH_MAX + 96];
};

static dg_status scan(struct list *l, const char *dir, const char *sub, const struct filter *f)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    if (!strcmp(sub, "tuner") && !dg_tune_dir(d, sizeof d))
        return DG_OK;
    DIR *dh = opendir(d);
    if (!dh)
        return errno == ENOENT ? DG_OK : dg_fail(DG_E_IO, "%s: cannot list: %s", d, strerror(errno));
    struct dirent *de;
    dg_status st = DG_OK;
    while (!st && (de = readdir(dh)) != NULL) {
        char p[PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue; /* links and folders are never ours to delete */
        bool tmp = false;
        const char *kind = NULL;
        if (!strcmp(sub, "programs") && name_matches(de->d_name, 64, ".bin", &tmp)) {
            if (f->model)
                continue;
            kind = tmp ? "program (partial write)" : has_magic(p, "DGPBIN01") ? "program" : NULL;
        } else if (!strcmp(sub, "tuner") && name_matches(de->d_name, 32, ".json", &tmp)) {
            char sig[65];
            if (tmp)
                kind = f->model ? NULL : "tuner (partial write)";
            else if (dg_tune_file_is_ours(p, sig) && (!f->model || !strcmp(sig, f->sig)))
                kind = "tuner";
        } else if (!strcmp(sub, "compat") && name_matches(de->d_name, 64, ".json", &tmp)) {
            char model[4096];
            if (tmp)
                kind = f->model ? NULL : "compat (partial write)";
            else if (is_compat(p, model, sizeof model) &&
                     (!f->model || !strcmp(p, f->compat_fallback) || same_file(model, f->model_path)))
                kind = "compat";
        }
        if (kind)
            st = add(l, p, kind, &sb);
    }
    closedir(dh);
    return st;
}

static void human_age(double s, char *out, size_t n)
{
    if (s < 120)
        snprintf(out, n, "%.0fs", s);
    else if (s < 7200)
        snprintf(out, n, "%.0fm", s / 60);
    else if (s < 172800)
        snprintf(out, n, "%.0fh", s / 3600);
    else
        snprintf(out, n, "%.0fd", s / 86400);
}

static cJSON *entry_json(const struct entry *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", e->path);
    cJSON_AddStringToObject(o, "kind", e->kind);
    cJSON_AddNumberToObject(o, "size", (double)e->size);
    cJSON_AddNumberToObject(o, "age_s", e->age_s);
    return o;
}

static int run(int argc, char **argv)
{
    struct dg_settings s;
    int rc = dg_cli_begin("cache", &s);
    if (rc)
        return rc;
    const char *action = NULL, *model = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int k;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if ((k = dg_cli_option_value("cache", "--model", argc, argv, &i, &model))) {
            if (k < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
            s.log_verbose = s.log_verbose < 2 ? s.log_verbose + 1 : 2;
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
            s.log_verbose = -1;
        else if (argv[i][0] == '-')
            return dg_usage_error("cache", "unknown option '%s'", argv[i]);
        else if (!action)
            action = argv[i];
        else
            return dg_usage_error("cache", "unexpected argument '%s'", argv[i]);
    }
    if (!action)
        return dg_usage_error("cache", "expected list or purge");
    bool purge = !strcmp(action, "purge");
    if (!purge && strcmp(action, "list"))
        return dg_usage_error("cache", "'%s': expected list or purge", action);
    if (model && !*model)
        return dg_usage_error("cache", "--model: empty path");
    dg_settings_apply_log(&s);

    const char *dir = dg_cache_dir();
    struct filter f = {.model = model != NULL, .model_path = model};
    struct list l = {0};
    dg_status st = DG_OK;
    char beside[PATH_MAX + 32] = "";
    if (model) {
        struct dg_model m;
        if ((st = dg_model_open(model, &m)))
            return dg_report_status(st);
        dg_tune_model_signature(&m, f.sig, NULL, 0);
        dg_model_close(&m);
        dg_compat_cache_files(model, beside, sizeof beside, f.compat_fallback, sizeof f.compat_fallback);
    }
    if (dir) {
        if (!st)
            st = scan(&l, dir, "programs", &f);
        if (!st)
            st = scan(&l, dir, "tuner", &f);
        if (!st)
            st = scan(&l, dir, "compat", &f);
    } else if (!model) {
        st = dg_fail(DG_E_IO, "no cache folder: neither XDG_CACHE_HOME nor HOME is set");
    }
    struct stat sb;
    if (!st && beside[0] && lstat(beside, &sb) == 0 && S_ISREG(sb.st_mode) && is_compat(beside, NULL, 0))
        st = add(&l, beside, "compat", &sb);
    if (st) {
        free(l.e);
        return dg_report_status(st);
    }
    int failed = 0;
    bool *ok = calloc((size_t)(l.n ? l.n : 1), sizeof *ok);
    if (!ok) {
        free(l.e);
        return dg_report_status(dg_fail(DG_E_NOMEM, "out of memory"));
    }
    for (int i = 0; purge && i < l.n; i++) {
        ok[i] = unlink(l.e[i].path) == 0 || errno == ENOENT;
        if (!ok[i]) {
            DG_WARN("cache purge: %s: %s", l.e[i].path, strerror(errno));
            failed++;
        }
    }
    long long total = 0;
    for (int i = 0; i < l.n; i++)
        total += ok[i] || !purge ? l.e[i].size : 0;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "cache_dir", dir ? dir : "");
        if (model)
            cJSON_AddStringToObject(root, "model", model);
        cJSON *a = cJSON_AddArrayToObject(root, purge ? "deleted" : "entries");
        for (int i = 0; i < l.n; i++)
            if (!purge || ok[i])
                cJSON_AddItemToArray(a, entry_json(&l.e[i]));
        if (purge) {
            cJSON *fa = cJSON_AddArrayToObject(root, "failed");
            for (int i = 0; i < l.n; i++)
                if (!ok[i])
                    cJSON_AddItemToArray(fa, entry_json(&l.e[i]));
        }
        cJSON_AddNumberToObject(root, "total_bytes", (double)total);
        cJSON_AddNumberToObject(root, "files", l.n - failed);
        char *text = cJSON_Print(root);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        if (!purge && l.n)
            printf("%-8s %10s %6s  %s\n", "kind", "bytes", "age", "path");
        for (int i = 0; i < l.n; i++) {
            char age[16];
            human_age(l.e[i].age_s, age, sizeof age);
            if (!purge)
                printf("%-8s %10lld %6s  %s\n", l.e[i].kind, l.e[i].size, age, l.e[i].path);
            else if (ok[i])
                printf("deleted %s\n", l.e[i].path);
        }
        printf("%s%d file%s, %lld bytes%s%s\n", purge ? "purged " : "", l.n - failed, l.n - failed == 1 ? "" : "s", total,
               model ? " for " : "", model ? model : "");
        if (!dir)
            printf("(no cache folder: neither XDG_CACHE_HOME nor HOME is set)\n");
    }
    free(ok);
    free(l.e);
    return failed ? 1 : 0;
}

DG_COMMAND(cache, "cache", "list or purge what doppler-gl keeps between runs (program binaries, tuner results, "
                           "compatibility reports)", run)
