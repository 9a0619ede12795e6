/* version.h: the release version, and the git commit baked in by the Makefile (for bench JSON). */
#ifndef DG_CORE_VERSION_H
#define DG_CORE_VERSION_H

#define DG_VERSION "0.1.0"
#ifndef DG_GIT_COMMIT
#define DG_GIT_COMMIT "unknown"
#endif

const char *dg_git_commit(void);

#endif
