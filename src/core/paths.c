/* paths.c: the data-directory lookup (environment, installed layout, source tree) and the cache dir. */
#include "core/paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static int has_glsl(const char *dir)
{
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof p, "%s/glsl", dir);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *dg_data_dir(void)
{
    static char dir[PATH_MAX], env_dir[PATH_MAX];
    /* The environment is read on every call so tests can point it at a scratch tree. */
    const char *env = getenv("DOPPLER_GL_DATADIR");
    if (env && *env) {
        snprintf(env_dir, sizeof env_dir, "%s", env);
        return env_dir;
    }
    if (dir[0])
        return dir;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(dir, sizeof dir, ".");
        return dir;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    char cand[PATH_MAX];
    snprintf(cand, sizeof cand, "%.*s/../share/doppler-gl", PATH_MAX - 24, exe);
    if (!has_glsl(cand))
        snprintf(cand, sizeof cand, "%.*s/..", PATH_MAX - 8, exe);
    /* Canonical form so messages show a clean path. */
    if (!realpath(cand, dir))
        snprintf(dir, sizeof dir, "%s", cand);
    return dir;
}

const char *dg_cache_dir(void)
{
    static char dir[PATH_MAX];
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x)
        snprintf(dir, sizeof dir, "%s/doppler-gl", x);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/doppler-gl", home);
    else
        return NULL;
    return dir;
}
