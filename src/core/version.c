/* version.c: the git commit the binary was built from. The Makefile rebuilds this one file on every
 * build, so bench and profile results never carry a stale commit. */
#include "core/version.h"

const char *dg_git_commit(void) { return DG_GIT_COMMIT; }
