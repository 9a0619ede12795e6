/* datadir.c: where glsl/ and kernel-paths/ are found. Order: $DOPPLER_GL_DATADIR; the source tree next to
 * the executable (build/doppler-gl -> ..); the working directory; <exe>/../share/doppler-gl (installed);
 * /usr/local/share/doppler-gl; /usr/share/doppler-gl. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kpath/kpath.h"

static char datadir[PATH_MAX];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int has_registry(const char *dir)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/kernel-paths/registry.json", dir);
    return access(p, R_OK) == 0;
}

static void find_datadir(void)
{
    const char *env = getenv("DOPPLER_GL_DATADIR");
    if (env && *env) {
        snprintf(datadir, sizeof datadir, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char cand[PATH_MAX + 32];
            static const char *const rel[] = {"/..", "/../share/doppler-gl"};
            for (int i = 0; i < 2; i++) {
                if (strlen(exe) + strlen(rel[i]) >= sizeof datadir)
                    continue;
                snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
                if (has_registry(cand)) {
                    memcpy(datadir, cand, strlen(cand) + 1);
                    return;
                }
            }
        }
    }
    if (has_registry(".")) {
        snprintf(datadir, sizeof datadir, ".");
        return;
    }
    if (has_registry("/usr/local/share/doppler-gl")) {
        snprintf(datadir, sizeof datadir, "/usr/local/share/doppler-gl");
        return;
    }
    snprintf(datadir, sizeof datadir, "/usr/share/doppler-gl");
}

const char *dg_kp_datadir(void)
{
    pthread_once(&once, find_datadir);
    return datadir;
}
