/* progcache.h: the on-disk program-binary cache behind dg_gl_program (progcache.c). */
#ifndef DG_GL_PROGCACHE_H
#define DG_GL_PROGCACHE_H

#include "gl/gl_internal.h"

/* Loads a linked program for (key, expanded source) from the cache; false when absent, stale, corrupt or
 * the cache is off (a bad entry is deleted so it is rebuilt). */
bool dg_progcache_load(struct dg_gl *gl, const char *key, const char *src, GLuint *prog);
/* Stores the program's binary (atomically); failures only log. */
void dg_progcache_store(struct dg_gl *gl, const char *key, const char *src, GLuint prog);

#endif
