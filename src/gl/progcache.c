/* progcache.c: program binaries on disk (not written yet in this first cut: always misses). */
#include "gl/progcache.h"

bool dg_progcache_load(struct dg_gl *gl, const char *key, const char *src, GLuint *prog)
{
    (void)gl, (void)key, (void)src, (void)prog;
    return false;
}

void dg_progcache_store(struct dg_gl *gl, const char *key, const char *src, GLuint prog)
{
    (void)gl, (void)key, (void)src, (void)prog;
}
