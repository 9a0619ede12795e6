/* settings.h: user settings from, in order (later wins): /etc/doppler-gl.ini,
 * $XDG_CONFIG_HOME/doppler-gl/config.ini (default ~/.config/doppler-gl/config.ini), the environment
 * (DOPPLER_GL_*), and the command line. $DOPPLER_GL_CONFIG_DIR replaces both files by
 * $DOPPLER_GL_CONFIG_DIR/config.ini (tests). Unknown keys and bad values are errors naming the file and
 * line (or the variable, or the option). Keys are "section.name"; see the SETTINGS section of the man page. */
#ifndef DG_CORE_SETTINGS_H
#define DG_CORE_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

struct dg_settings {
    char gl_platform[16];    /* gl.platform: auto, gbm, device, surfaceless, default */
    char gl_device[256];     /* gl.device: "" = first usable, a /dev/dri path or an EGL device index */
    bool gl_program_cache;   /* gl.program_cache: keep program binaries on disk */
    int64_t gl_max_ssbo_block; /* gl.max_ssbo_block: bytes; 0 = the driver's limit (lower it for tests) */
    int log_verbose;         /* log.verbose: -1 quiet, 0 normal, 1 verbose, 2 debug */
    char files_read[2][512]; /* the config files that existed and were read, for `info` */
};

/* Defaults, then the two files, then the environment. */
dg_status dg_settings_load(struct dg_settings *s);
/* Sets "section.name" to `value`; `origin` names where it came from, for messages
 * ("/etc/doppler-gl.ini:3", "DOPPLER_GL_PLATFORM", "--gl-platform"). */
dg_status dg_settings_set(struct dg_settings *s, const char *key, const char *value, const char *origin);
/* Applies log.verbose to the logger. */
void dg_settings_apply_log(const struct dg_settings *s);
/* The user config file path this process would read (for messages and `info`). */
const char *dg_settings_user_file(void);

#endif
