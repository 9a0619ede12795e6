/* test_settings.c: settings files, environment overlay, and the errors for unknown keys and bad values. */
#include <stdlib.h>
#include <string.h>

#include "core/settings.h"
#include "test.h"

static void write_cfg(const char *dir, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/config.ini", dir);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *const env_vars[] = {"DOPPLER_GL_PLATFORM", "DOPPLER_GL_DEVICE", "DOPPLER_GL_PROGRAM_CACHE",
                                       "DOPPLER_GL_MAX_SSBO_BLOCK", "DOPPLER_GL_VERBOSE", "DOPPLER_GL_CONFIG_DIR"};
static char *saved_env[6];

/* Points DOPPLER_GL_CONFIG_DIR at a scratch dir and clears the DOPPLER_GL_* settings variables. */
static void isolate(const char *dir)
{
    for (int i = 0; i < 6; i++) {
        const char *v = getenv(env_vars[i]);
        saved_env[i] = v ? strdup(v) : NULL;
        unsetenv(env_vars[i]);
    }
    setenv("DOPPLER_GL_CONFIG_DIR", dir, 1);
}

static void restore(void)
{
    for (int i = 0; i < 6; i++) {
        if (saved_env[i])
            setenv(env_vars[i], saved_env[i], 1);
        else
            unsetenv(env_vars[i]);
        free(saved_env[i]);
        saved_env[i] = NULL;
    }
}

DG_TEST(settings_defaults_file_env_and_command_line_in_order)
{
    const char *dir = dg_test_tmpdir();
    isolate(dir);
    struct dg_settings s;
    CHECK_OK(dg_settings_load(&s)); /* no file: defaults */
    CHECK(!strcmp(s.gl_platform, "auto") && s.gl_device[0] == 0 && s.gl_program_cache && s.gl_max_ssbo_block == 0 &&
          s.log_verbose == 0);
    write_cfg(dir, "; comment\n[gl]\nplatform = surfaceless\ndevice = /dev/dri/renderD129\nprogram_cache = off\n"
                   "max_ssbo_block = 64K\n[log]\nverbose = on\n");
    CHECK_OK(dg_settings_load(&s));
    CHECK(!strcmp(s.gl_platform, "surfaceless") && !strcmp(s.gl_device, "/dev/dri/renderD129"));
    CHECK(!s.gl_program_cache && s.gl_max_ssbo_block == 65536 && s.log_verbose == 1);
    CHECK(strstr(s.files_read[1], "config.ini") != NULL);
    setenv("DOPPLER_GL_PLATFORM", "device", 1); /* the environment beats the file */
    setenv("DOPPLER_GL_MAX_SSBO_BLOCK", "2M", 1);
    CHECK_OK(dg_settings_load(&s));
    CHECK(!strcmp(s.gl_platform, "device") && s.gl_max_ssbo_block == 2 << 20);
    CHECK_OK(dg_settings_set(&s, "gl.platform", "gbm", "--gl-platform")); /* the command line beats both */
    CHECK(!strcmp(s.gl_platform, "gbm"));
    restore();
}

DG_TEST(settings_errors_name_file_line_key_and_value)
{
    const char *dir = dg_test_tmpdir();
    isolate(dir);
    struct dg_settings s;
    write_cfg(dir, "[gl]\nplatform = device\n\n[gl]\nplatfrom = gbm\n");
    CHECK(dg_settings_load(&s) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "config.ini:5:") && strstr(dg_last_error(), "gl.platfrom"), "%s",
              dg_last_error());
    write_cfg(dir, "[gl]\nprogram_cache = maybe\n");
    CHECK(dg_settings_load(&s) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "config.ini:2:") && strstr(dg_last_error(), "maybe") &&
                  strstr(dg_last_error(), "on or off"), "%s", dg_last_error());
    write_cfg(dir, "[gl]\nmax_ssbo_block = 12Q\n");
    CHECK(dg_settings_load(&s) == DG_E_FORMAT);
    write_cfg(dir, "[gl]\nmax_ssbo_block = 100\n"); /* below 1024: nonsense */
    CHECK(dg_settings_load(&s) == DG_E_FORMAT);
    write_cfg(dir, "this is not ini\n");
    CHECK(dg_settings_load(&s) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "config.ini:1:") != NULL, "%s", dg_last_error());
    write_cfg(dir, "platform = gbm\n"); /* outside a section: key "platform" is unknown */
    CHECK(dg_settings_load(&s) == DG_E_FORMAT);
    write_cfg(dir, "");
    setenv("DOPPLER_GL_PLATFORM", "vulkan", 1);
    CHECK(dg_settings_load(&s) == DG_E_USAGE);
    CHECK_MSG(strstr(dg_last_error(), "DOPPLER_GL_PLATFORM") && strstr(dg_last_error(), "vulkan"), "%s",
              dg_last_error());
    restore();
    CHECK(dg_settings_set(&s, "gl.nope", "1", "--x") == DG_E_USAGE);
}
