/* gl_fixture.h: the one GL context the GL tests share (opening one costs ~50 ms on llvmpipe). */
#ifndef DG_TESTS_GL_FIXTURE_H
#define DG_TESTS_GL_FIXTURE_H

#include "gl/gl.h"

/* The shared context, opened on first use with the same settings as the CLI (environment included) and
 * closed at exit. Returns NULL after marking the test skipped when no context can be created; the
 * caller should `return`. */
struct dg_gl *dg_test_gl(void);

#endif
