/* gl_fixture.c: opens the shared test context once with the CLI's settings (files, DOPPLER_GL_* environment), and closes it at exit. */
#include "gl_fixture.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/common.h"
#include "core/settings.h"
#include "test.h"

static struct dg_gl *shared_gl;
static bool tried;
static char why[1024];

static void close_gl(void) { dg_gl_close(shared_gl); }

struct dg_gl *dg_test_gl(void)
{
    if (!tried) {
        tried = true;
        /* Same allocator tuning as main.c: llvmpipe page-faults badly under the default mmap threshold. */
        mallopt(M_MMAP_THRESHOLD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 128 << 20);
        struct dg_settings s;
        dg_status st = dg_settings_load(&s);
        if (st == DG_OK)
            st = dg_cli_gl_open(&s, &shared_gl);
        if (st == DG_OK)
            atexit(close_gl);
        else
            snprintf(why, sizeof why, "%s", dg_last_error());
    }
    if (!shared_gl)
        dg_test_skip("no GL context: %s", why);
    return shared_gl;
}
