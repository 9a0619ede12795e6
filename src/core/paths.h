/* paths.h: where doppler-gl finds its data (glsl/, kernel-paths/) and its per-user directories. */
#ifndef DG_CORE_PATHS_H
#define DG_CORE_PATHS_H

/* The directory holding glsl/ and kernel-paths/: $DOPPLER_GL_DATADIR, else <exe>/../share/doppler-gl
 * (the `make install` layout), else <exe>/.. (the source tree: build/doppler-gl -> repository root).
 * The environment is consulted on every call; the executable-relative answer is computed once. */
const char *dg_data_dir(void);

/* $XDG_CACHE_HOME/doppler-gl (default ~/.cache/doppler-gl); not created here. NULL if HOME is unset too. */
const char *dg_cache_dir(void);

#endif
