/* settings.c: the settings table, the INI reader (libinih) and the environment overlay. */
#include "core/settings.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

#define SYSTEM_FILE "/etc/doppler-gl.ini"

typedef dg_status (*setter)(struct dg_settings *s, const char *v, const char *key, const char *origin);

static dg_status bad(const char *origin, const char *key, const char *v, const char *expected)
{
    return dg_fail(DG_E_USAGE, "%s: %s = '%s' is not valid: expected %s", origin, key, v, expected);
}

static dg_status set_platform(struct dg_settings *s, const char *v, const char *key, const char *origin)
{
    static const char *const ok[] = {"auto", "gbm", "device", "surfaceless", "default"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(v, ok[i]) == 0) {
            snprintf(s->gl_platform, sizeof s->gl_platform, "%s", v);
            return DG_OK;
        }
    return bad(origin, key, v, "auto, gbm, device, surfaceless or default");
}

static dg_status set_device(struct dg_settings *s, const char *v, const char *key, const char *origin)
{
    if (strlen(v) >= sizeof s->gl_device)
        return bad(origin, key, v, "a path shorter than 256 bytes or an EGL device index");
    snprintf(s->gl_device, sizeof s->gl_device, "%s", v);
    return DG_OK;
}

static int parse_bool(const char *v)
{
    static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false", "no", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

static dg_status set_cache(struct dg_settings *s, const char *v, const char *key, const char *origin)
{
    int b = parse_bool(v);
    if (b < 0)
        return bad(origin, key, v, "on or off");
    s->gl_program_cache = b;
    return DG_OK;
}

static dg_status set_max_block(struct dg_settings *s, const char *v, const char *key, const char *origin)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1ull << 30, end++;
    if (end == v || *end || errno || v[0] == '-' || n > (unsigned long long)INT64_MAX / mul ||
        (n * mul != 0 && n * mul < 1024))
        return bad(origin, key, v, "a byte count of at least 1024 (suffix K, M or G allowed), or 0 for the "
                                   "driver's limit");
    s->gl_max_ssbo_block = (int64_t)(n * mul);
    return DG_OK;
}

static dg_status set_verbose(struct dg_settings *s, const char *v, const char *key, const char *origin)
{
    int b = parse_bool(v);
    if (b >= 0) {
        s->log_verbose = b;
        return DG_OK;
    }
    if (strcmp(v, "2") == 0 || strcasecmp(v, "debug") == 0) {
        s->log_verbose = 2;
        return DG_OK;
    }
    if (strcmp(v, "-1") == 0 || strcasecmp(v, "quiet") == 0) {
        s->log_verbose = -1;
        return DG_OK;
    }
    return bad(origin, key, v, "quiet, off, on or debug (-1, 0, 1, 2)");
}

static const struct {
    const char *key, *env;
    setter set;
} table[] = {
    {"gl.platform", "DOPPLER_GL_PLATFORM", set_platform},
    {"gl.device", "DOPPLER_GL_DEVICE", set_device},
    {"gl.program_cache", "DOPPLER_GL_PROGRAM_CACHE", set_cache},
    {"gl.max_ssbo_block", "DOPPLER_GL_MAX_SSBO_BLOCK", set_max_block},
    {"log.verbose", "DOPPLER_GL_VERBOSE", set_verbose},
};

dg_status dg_settings_set(struct dg_settings *s, const char *key, const char *value, const char *origin)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].key, key) == 0)
            return table[i].set(s, value, key, origin);
    char known[256] = "";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", table[i].key);
    return dg_fail(DG_E_USAGE, "%s: unknown setting '%s' (known: %s)", origin, key, known);
}

struct ini_ctx {
    struct dg_settings *s;
    const char *path;
    dg_status st;
    char msg[1024];
};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", section, *section ? "." : "", name);
    dg_status st = dg_settings_set(c->s, key, value, "");
    if (st && !c->st) {
        c->st = st;
        /* Drop the empty origin's ": " so the caller can prefix "file:line: ". */
        const char *m = dg_last_error();
        snprintf(c->msg, sizeof c->msg, "%s", strncmp(m, ": ", 2) == 0 ? m + 2 : m);
    }
    return st ? 0 : 1;
}

static dg_status read_file(struct dg_settings *s, const char *path, int slot)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return DG_OK;
        return dg_fail(DG_E_IO, "settings file %s: cannot open: %s", path, strerror(errno));
    }
    struct ini_ctx c = {.s = s, .path = path};
    int line = ini_parse_file(f, on_ini, &c);
    fclose(f);
    if (line > 0) {
        if (c.st)
            return dg_fail(DG_E_FORMAT, "%s:%d: %s", path, line, c.msg);
        return dg_fail(DG_E_FORMAT, "%s:%d: not an INI line (expected [section] or name = value, at most 200 "
                                    "characters)", path, line);
    }
    if (line < 0)
        return dg_fail(DG_E_IO, "settings file %s: cannot read", path);
    snprintf(s->files_read[slot], sizeof s->files_read[slot], "%s", path);
    return DG_OK;
}

const char *dg_settings_user_file(void)
{
    static char path[PATH_MAX];
    const char *dir = getenv("DOPPLER_GL_CONFIG_DIR"), *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (dir && *dir)
        snprintf(path, sizeof path, "%.4000s/config.ini", dir);
    else if (x && *x)
        snprintf(path, sizeof path, "%.4000s/doppler-gl/config.ini", x);
    else if (home && *home)
        snprintf(path, sizeof path, "%.4000s/.config/doppler-gl/config.ini", home);
    else
        return NULL;
    return path;
}

dg_status dg_settings_load(struct dg_settings *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->gl_platform, sizeof s->gl_platform, "auto");
    s->gl_program_cache = true;
    const char *dir = getenv("DOPPLER_GL_CONFIG_DIR");
    dg_status st;
    if (!(dir && *dir) && (st = read_file(s, SYSTEM_FILE, 0)))
        return st;
    const char *user = dg_settings_user_file();
    if (user && (st = read_file(s, user, 1)))
        return st;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *v = getenv(table[i].env);
        if (v && *v) {
            char origin[96];
            snprintf(origin, sizeof origin, "environment %s", table[i].env);
            if ((st = table[i].set(s, v, table[i].key, origin)))
                return st;
        }
    }
    return DG_OK;
}

void dg_settings_apply_log(const struct dg_settings *s)
{
    int v = s->log_verbose;
    dg_log_set_level(v < 0 ? DG_LOG_WARN : v == 0 ? DG_LOG_INFO : v == 1 ? DG_LOG_VERBOSE : DG_LOG_DEBUG);
}
