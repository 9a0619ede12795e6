/* context.c: the headless EGL/GLES 3.1 context. Tries GBM on each render node, then EGL devices
 * (hardware before Mesa's software device), then Mesa's surfaceless platform, then the default display;
 * records the capabilities once; and reports every platform it tried when none works. */
#include "gl/gl_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gbm.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifdef DG_SANITIZE
#include <dlfcn.h>
#include <link.h>
#endif

#include "core/log.h"

#define TRIED_MAX 4096
/* Linux's DRM character-device major (drm.h's DRM_MAJOR); render nodes are /dev/dri/renderD128 and up. */
#define DG_DRM_MAJOR 226

/* Accumulates "platform: reason" lines for the final error message. */
struct tried {
    char buf[TRIED_MAX];
    size_t len;
};

static void tried_add(struct tried *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tried_add(struct tried *t, const char *fmt, ...)
{
    if (t->len >= sizeof t->buf - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
    DG_DEBUG("GL: %s", t->buf + t->len - (size_t)(n > 0 ? n : 0));
}

static bool has_ext(const char *list, const char *name)
{
    if (!list)
        return false;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

static const char *egl_error_name(EGLint e)
{
    switch (e) {
    case EGL_SUCCESS: return "EGL_SUCCESS";
    case EGL_NOT_INITIALIZED: return "EGL_NOT_INITIALIZED";
    case EGL_BAD_ACCESS: return "EGL_BAD_ACCESS";
    case EGL_BAD_ALLOC: return "EGL_BAD_ALLOC";
    case EGL_BAD_ATTRIBUTE: return "EGL_BAD_ATTRIBUTE";
    case EGL_BAD_CONFIG: return "EGL_BAD_CONFIG";
    case EGL_BAD_CONTEXT: return "EGL_BAD_CONTEXT";
    case EGL_BAD_DISPLAY: return "EGL_BAD_DISPLAY";
    case EGL_BAD_MATCH: return "EGL_BAD_MATCH";
    case EGL_BAD_PARAMETER: return "EGL_BAD_PARAMETER";
    case EGL_BAD_SURFACE: return "EGL_BAD_SURFACE";
    default: return "EGL error";
    }
}

#ifdef DG_SANITIZE
/* LeakSanitizer cannot symbolize a leak inside a DRI driver that eglTerminate already unloaded, so no
 * suppression matches it; keeping the driver loaded lets tests/lsan.supp name it (notes/gles-facts.md). */
static int pin_dri(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size, (void)data;
    const char *n = info->dlpi_name;
    size_t l = n ? strlen(n) : 0;
    if (l > 7 && strcmp(n + l - 7, "_dri.so") == 0)
        (void)dlopen(n, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
    return 0;
}
#endif

/* eglInitialize + a GLES 3.1 context made current; on failure leaves nothing behind and says why. */
static bool init_context(struct dg_gl *gl, EGLDisplay dpy, char *why, size_t why_len)
{
    EGLint major = 0, minor = 0;
    if (dpy == EGL_NO_DISPLAY) {
        snprintf(why, why_len, "no display (%s)", egl_error_name(eglGetError()));
        return false;
    }
    if (!eglInitialize(dpy, &major, &minor)) {
        snprintf(why, why_len, "eglInitialize failed (%s)", egl_error_name(eglGetError()));
        return false;
    }
#ifdef DG_SANITIZE
    dl_iterate_phdr(pin_dri, NULL);
#endif
    const char *exts = eglQueryString(dpy, EGL_EXTENSIONS);
    if (!eglBindAPI(EGL_OPENGL_ES_API)) {
        snprintf(why, why_len, "EGL %d.%d has no OpenGL ES API", major, minor);
        goto fail;
    }
    bool no_config = has_ext(exts, "EGL_KHR_no_config_context") || has_ext(exts, "EGL_MESA_configless_context");
    bool surfaceless = has_ext(exts, "EGL_KHR_surfaceless_context");
    static const EGLint ctx_attr[] = {EGL_CONTEXT_MAJOR_VERSION, 3, EGL_CONTEXT_MINOR_VERSION, 1, EGL_NONE};
    EGLConfig cfg = EGL_NO_CONFIG_KHR;
    EGLContext ctx = EGL_NO_CONTEXT;
    if (no_config && surfaceless)
        ctx = eglCreateContext(dpy, EGL_NO_CONFIG_KHR, EGL_NO_CONTEXT, ctx_attr);
    if (ctx == EGL_NO_CONTEXT) {
        /* Without EGL_KHR_no_config_context: a config that can make a pbuffer (surfaceless platforms
         * list no configs for EGL_OPENGL_ES3_BIT alone). */
        static const EGLint cfg_attr[] = {EGL_RENDERABLE_TYPE, EGL_OPENGL_ES3_BIT, EGL_SURFACE_TYPE,
                                          EGL_PBUFFER_BIT, EGL_NONE};
        EGLint n = 0;
        if (!eglChooseConfig(dpy, cfg_attr, &cfg, 1, &n) || n < 1) {
            snprintf(why, why_len, "no EGL_KHR_no_config_context and no ES3 pbuffer config (%s)",
                     egl_error_name(eglGetError()));
            goto fail;
        }
        ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, ctx_attr);
        if (ctx == EGL_NO_CONTEXT) {
            snprintf(why, why_len, "eglCreateContext(GLES 3.1) failed (%s)", egl_error_name(eglGetError()));
            goto fail;
        }
    }
    EGLSurface surf = EGL_NO_SURFACE;
    if (!surfaceless) {
        static const EGLint pb_attr[] = {EGL_WIDTH, 1, EGL_HEIGHT, 1, EGL_NONE};
        if (cfg == EGL_NO_CONFIG_KHR) {
            snprintf(why, why_len, "no EGL_KHR_surfaceless_context and no config for a pbuffer");
            eglDestroyContext(dpy, ctx);
            goto fail;
        }
        surf = eglCreatePbufferSurface(dpy, cfg, pb_attr);
        if (surf == EGL_NO_SURFACE) {
            snprintf(why, why_len, "no EGL_KHR_surfaceless_context and eglCreatePbufferSurface failed (%s)",
                     egl_error_name(eglGetError()));
            eglDestroyContext(dpy, ctx);
            goto fail;
        }
    }
    if (!eglMakeCurrent(dpy, surf, surf, ctx)) {
        snprintf(why, why_len, "eglMakeCurrent failed (%s)", egl_error_name(eglGetError()));
        if (surf != EGL_NO_SURFACE)
            eglDestroySurface(dpy, surf);
        eglDestroyContext(dpy, ctx);
        goto fail;
    }
    GLint gmaj = 0, gmin = 0;
    glGetIntegerv(GL_MAJOR_VERSION, &gmaj);
    glGetIntegerv(GL_MINOR_VERSION, &gmin);
    if (gmaj < 3 || (gmaj == 3 && gmin < 1)) {
        const char *v = (const char *)glGetString(GL_VERSION);
        snprintf(why, why_len, "context is %s, need OpenGL ES 3.1", v ? v : "unknown");
        eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
        if (surf != EGL_NO_SURFACE)
            eglDestroySurface(dpy, surf);
        eglDestroyContext(dpy, ctx);
        goto fail;
    }
    gl->dpy = dpy;
    gl->ctx = ctx;
    gl->surf = surf;
    return true;
fail:
    eglTerminate(dpy);
    return false;
}

/* Index given as --gl-device INDEX, or -1 when the device is a path (or not given). */
static int device_index(const char *dev)
{
    if (!dev || !*dev)
        return -1;
    char *end;
    long v = strtol(dev, &end, 10);
    return (*end == 0 && v >= 0 && v < 1000) ? (int)v : -1;
}

static bool try_gbm(struct dg_gl *gl, PFNEGLGETPLATFORMDISPLAYEXTPROC get_dpy, const char *dev, struct tried *t)
{
    glob_t g = {0};
    int idx = device_index(dev);
    const char *pattern = (dev && *dev && idx < 0) ? dev : "/dev/dri/renderD*";
    int gr = glob(pattern, idx < 0 && dev && *dev ? GLOB_NOCHECK : 0, NULL, &g);
    if (gr != 0 || g.gl_pathc == 0) {
        tried_add(t, "  gbm: no render node matches /dev/dri/renderD* (%s); this machine has no DRM GPU "
                     "driver loaded\n",
                  access("/dev/dri", F_OK) == 0 ? "/dev/dri has none" : "/dev/dri does not exist");
        globfree(&g);
        return false;
    }
    if (idx >= (int)g.gl_pathc) {
        tried_add(t, "  gbm: --gl-device %d but only %zu render nodes in /dev/dri\n", idx, g.gl_pathc);
        globfree(&g);
        return false;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (idx >= 0 && (int)i != idx)
            continue;
        const char *path = g.gl_pathv[i];
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            tried_add(t, "  gbm: %s: %s\n", path, strerror(errno));
            continue;
        }
        /* Mesa's GBM accepts any fd and falls back to its software renderer, so a wrong path (a file,
         * /dev/null) would "work" without the GPU the user asked for: only DRM devices are tried. */
        struct stat sb;
        if (fstat(fd, &sb) != 0 || !S_ISCHR(sb.st_mode) || major(sb.st_rdev) != DG_DRM_MAJOR) {
            tried_add(t, "  gbm: %s is not a DRM device (render nodes are /dev/dri/renderD*)\n", path);
            close(fd);
            continue;
        }
        struct gbm_device *gbm = gbm_create_device(fd);
        if (!gbm) {
            tried_add(t, "  gbm: %s: gbm_create_device failed\n", path);
            close(fd);
            continue;
        }
        char why[512];
        if (init_context(gl, get_dpy(EGL_PLATFORM_GBM_KHR, gbm, NULL), why, sizeof why)) {
            gl->gbm = gbm;
            gl->gbm_fd = fd;
            snprintf(gl->platform, sizeof gl->platform, "gbm");
            snprintf(gl->device, sizeof gl->device, "%s", path);
            globfree(&g);
            return true;
        }
        tried_add(t, "  gbm: %s: %s\n", path, why);
        gbm_device_destroy(gbm);
        close(fd);
    }
    globfree(&g);
    return false;
}

/* Describes an EGL device: its DRM node when it has one, else its renderer name, plus "(software)". */
static void describe_device(EGLDeviceEXT d, PFNEGLQUERYDEVICESTRINGEXTPROC qs, int index, char *out, size_t n,
                            bool *software)
{
    const char *exts = qs(d, EGL_EXTENSIONS);
    *software = has_ext(exts, "EGL_MESA_device_software");
    const char *name = NULL;
    if (has_ext(exts, "EGL_EXT_device_drm_render_node"))
        name = qs(d, EGL_DRM_RENDER_NODE_FILE_EXT);
    if (!name && has_ext(exts, "EGL_EXT_device_drm"))
        name = qs(d, EGL_DRM_DEVICE_FILE_EXT);
    if (!name && has_ext(exts, "EGL_EXT_device_query_name"))
        name = qs(d, EGL_RENDERER_EXT);
    snprintf(out, n, "EGL device %d%s%s%s", index, name ? " " : "", name ? name : "",
             *software ? " (software)" : "");
}

static bool try_device(struct dg_gl *gl, PFNEGLGETPLATFORMDISPLAYEXTPROC get_dpy, const char *client_exts,
                       const char *dev, struct tried *t)
{
    if (!has_ext(client_exts, "EGL_EXT_platform_device")) {
        tried_add(t, "  device: EGL has no EGL_EXT_platform_device\n");
        return false;
    }
    PFNEGLQUERYDEVICESEXTPROC qd = (PFNEGLQUERYDEVICESEXTPROC)eglGetProcAddress("eglQueryDevicesEXT");
    PFNEGLQUERYDEVICESTRINGEXTPROC qs =
        (PFNEGLQUERYDEVICESTRINGEXTPROC)eglGetProcAddress("eglQueryDeviceStringEXT");
    EGLDeviceEXT devs[16];
    EGLint n = 0;
    if (!qd || !qs || !qd(16, devs, &n) || n <= 0) {
        tried_add(t, "  device: eglQueryDevicesEXT found no devices\n");
        return false;
    }
    int idx = device_index(dev);
    if (idx >= n) {
        tried_add(t, "  device: --gl-device %d but EGL lists only %d devices (0..%d)\n", idx, n, n - 1);
        return false;
    }
    /* Hardware devices first, then Mesa's software device. */
    bool matched = false;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            char desc[256];
            bool sw;
            describe_device(devs[i], qs, i, desc, sizeof desc, &sw);
            if (sw != (pass == 1))
                continue;
            if (idx >= 0 && i != idx)
                continue;
            if (idx < 0 && dev && *dev && !strstr(desc, dev))
                continue;
            matched = true;
            char why[512];
            if (init_context(gl, get_dpy(EGL_PLATFORM_DEVICE_EXT, devs[i], NULL), why, sizeof why)) {
                snprintf(gl->platform, sizeof gl->platform, "device");
                snprintf(gl->device, sizeof gl->device, "%s", desc);
                gl->caps.is_software = sw;
                return true;
            }
            tried_add(t, "  device: %s: %s\n", desc, why);
        }
    }
    if (!matched)
        tried_add(t, "  device: no EGL device matches --gl-device %s (%d devices)\n", dev, n);
    return false;
}

/* Names the device behind a display from a platform that chose it itself (surfaceless, default). */
static void describe_display(struct dg_gl *gl, const char *client_exts)
{
    snprintf(gl->device, sizeof gl->device, "chosen by EGL");
    if (!has_ext(client_exts, "EGL_EXT_device_query") && !has_ext(client_exts, "EGL_EXT_device_base"))
        return;
    PFNEGLQUERYDISPLAYATTRIBEXTPROC qa =
        (PFNEGLQUERYDISPLAYATTRIBEXTPROC)eglGetProcAddress("eglQueryDisplayAttribEXT");
    PFNEGLQUERYDEVICESTRINGEXTPROC qs =
        (PFNEGLQUERYDEVICESTRINGEXTPROC)eglGetProcAddress("eglQueryDeviceStringEXT");
    EGLAttrib a = 0;
    if (!qa || !qs || !qa(gl->dpy, EGL_DEVICE_EXT, &a) || !a)
        return;
    bool sw;
    describe_device((EGLDeviceEXT)a, qs, 0, gl->device, sizeof gl->device, &sw);
    /* "EGL device 0 ..." is misleading here: the index is not an enumeration index. */
    memmove(gl->device, gl->device + 13, strlen(gl->device + 13) + 1);
    if (!gl->device[0] || gl->device[0] == '(')
        snprintf(gl->device, sizeof gl->device, "%s", sw ? "EGL software device" : "chosen by EGL");
    gl->caps.is_software |= sw;
}

static bool try_surfaceless(struct dg_gl *gl, PFNEGLGETPLATFORMDISPLAYEXTPROC get_dpy, const char *client_exts,
                            struct tried *t)
{
    if (!has_ext(client_exts, "EGL_MESA_platform_surfaceless")) {
        tried_add(t, "  surfaceless: EGL has no EGL_MESA_platform_surfaceless\n");
        return false;
    }
    char why[512];
    if (!init_context(gl, get_dpy(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL), why, sizeof why)) {
        tried_add(t, "  surfaceless: %s\n", why);
        return false;
    }
    snprintf(gl->platform, sizeof gl->platform, "surfaceless");
    describe_display(gl, client_exts);
    return true;
}

static bool try_default(struct dg_gl *gl, const char *client_exts, struct tried *t)
{
    char why[512];
    if (!init_context(gl, eglGetDisplay(EGL_DEFAULT_DISPLAY), why, sizeof why)) {
        tried_add(t, "  default: eglGetDisplay(EGL_DEFAULT_DISPLAY): %s%s\n", why,
                  getenv("EGL_PLATFORM") ? "" : " (Mesa's default platform is X11; EGL_PLATFORM=surfaceless picks "
                                                "another)");
        return false;
    }
    snprintf(gl->platform, sizeof gl->platform, "default");
    describe_display(gl, client_exts);
    return true;
}

static void load_timer_fns(struct dg_gl *gl)
{
    struct dg_gl_timer_fns *f = &gl->tq;
    f->gen = (PFNGLGENQUERIESEXTPROC)eglGetProcAddress("glGenQueriesEXT");
    f->del = (PFNGLDELETEQUERIESEXTPROC)eglGetProcAddress("glDeleteQueriesEXT");
    f->begin = (PFNGLBEGINQUERYEXTPROC)eglGetProcAddress("glBeginQueryEXT");
    f->end = (PFNGLENDQUERYEXTPROC)eglGetProcAddress("glEndQueryEXT");
    f->counter = (PFNGLQUERYCOUNTEREXTPROC)eglGetProcAddress("glQueryCounterEXT");
    f->get_uiv = (PFNGLGETQUERYOBJECTUIVEXTPROC)eglGetProcAddress("glGetQueryObjectuivEXT");
    f->get_ui64v = (PFNGLGETQUERYOBJECTUI64VEXTPROC)eglGetProcAddress("glGetQueryObjectui64vEXT");
    f->get_i64v = (PFNGLGETINTEGER64VEXTPROC)eglGetProcAddress("glGetInteger64vEXT");
    if (!f->gen || !f->del || !f->begin || !f->end || !f->counter || !f->get_uiv || !f->get_ui64v)
        gl->caps.timer_query = false;
}

static const char probe_src[] =
    "#version 310 es\n"
    "layout(local_size_x = 64) in;\n"
    "layout(std430, binding = 0) buffer B { uint v[]; };\n"
    "void main() {\n"
    "  uint x = gl_GlobalInvocationID.x;\n"
    "  for (int k = 0; k < 256; k++) x = x * 1664525u + 1013904223u;\n"
    "  v[gl_GlobalInvocationID.x] = x;\n"
    "}\n";

/* Finds out which timer works: elapsed queries return 0 on llvmpipe while timestamps work. */
static void probe_timers(struct dg_gl *gl)
{
    gl->timing = DG_TIMING_WALL;
    if (!gl->caps.timer_query)
        return;
    GLuint sh = glCreateShader(GL_COMPUTE_SHADER);
    const char *src = probe_src;
    glShaderSource(sh, 1, &src, NULL);
    glCompileShader(sh);
    GLuint prog = glCreateProgram();
    glAttachShader(prog, sh);
    glLinkProgram(prog);
    glDeleteShader(sh);
    GLint ok = 0;
    glGetProgramiv(prog, GL_LINK_STATUS, &ok);
    if (!ok) {
        glDeleteProgram(prog);
        DG_VERBOSE("GL: timer probe shader failed to link; using wall-clock timing");
        return;
    }
    GLuint buf;
    glGenBuffers(1, &buf);
    glBindBuffer(GL_SHADER_STORAGE_BUFFER, buf);
    glBufferData(GL_SHADER_STORAGE_BUFFER, 4 * 64 * 64, NULL, GL_DYNAMIC_COPY);
    glBindBufferBase(GL_SHADER_STORAGE_BUFFER, 0, buf);
    glUseProgram(prog);
    GLuint q[3];
    gl->tq.gen(3, q);
    glGetError();
    /* A zero difference between two timestamps says what GL_QUERY_COUNTER_BITS_EXT would. */
    for (int attempt = 0; attempt < 2; attempt++) {
        GLint disjoint = 0;
        glGetIntegerv(GL_GPU_DISJOINT_EXT, &disjoint); /* clears the flag */
        glDispatchCompute(64, 1, 1); /* warm: llvmpipe compiles at the first dispatch */
        glMemoryBarrier(GL_SHADER_STORAGE_BARRIER_BIT);
        gl->tq.counter(q[1], GL_TIMESTAMP_EXT);
        gl->tq.begin(GL_TIME_ELAPSED_EXT, q[0]);
        glDispatchCompute(64, 1, 1);
        gl->tq.end(GL_TIME_ELAPSED_EXT);
        gl->tq.counter(q[2], GL_TIMESTAMP_EXT);
        glFinish();
        GLuint64 el = 0, t0 = 0, t1 = 0;
        gl->tq.get_ui64v(q[0], GL_QUERY_RESULT_EXT, &el);
        gl->tq.get_ui64v(q[1], GL_QUERY_RESULT_EXT, &t0);
        gl->tq.get_ui64v(q[2], GL_QUERY_RESULT_EXT, &t1);
        glGetIntegerv(GL_GPU_DISJOINT_EXT, &disjoint);
        if (glGetError() != GL_NO_ERROR)
            break;
        if (disjoint)
            continue;
        DG_DEBUG("timer probe: elapsed %llu ns, timestamps %llu..%llu", (unsigned long long)el, (unsigned long long)t0, (unsigned long long)t1);
        /* llvmpipe answers 0 or 1 ns: call elapsed queries working only when they see at least a tenth of
         * what the timestamps around them saw. */
        gl->caps.time_elapsed_works = el > 0 && (t1 <= t0 || el * 10 >= t1 - t0);
        if (gl->caps.time_elapsed_works)
            gl->timing = DG_TIMING_ELAPSED;
        else if (t1 > t0)
            gl->timing = DG_TIMING_TIMESTAMP;
        break;
    }
    gl->tq.del(3, q);
    glUseProgram(0);
    glDeleteBuffers(1, &buf);
    glDeleteProgram(prog);
    glGetError();
}

static void record_caps(struct dg_gl *gl)
{
    struct dg_gl_caps *c = &gl->caps;
    const char *s;
#define STR(field, e)                                                                  \
    s = (const char *)glGetString(e);                                                  \
    snprintf(c->field, sizeof c->field, "%s", s ? s : "");
    STR(vendor, GL_VENDOR)
    STR(renderer, GL_RENDERER)
    STR(version, GL_VERSION)
    STR(glsl_version, GL_SHADING_LANGUAGE_VERSION)
#undef STR
    glGetIntegerv(GL_MAJOR_VERSION, &c->gl_major);
    glGetIntegerv(GL_MINOR_VERSION, &c->gl_minor);
    GLint n_ext = 0;
    glGetIntegerv(GL_NUM_EXTENSIONS, &n_ext);
    size_t len = 0;
    c->extensions[0] = 0;
    for (GLint i = 0; i < n_ext; i++) {
        const char *e = (const char *)glGetStringi(GL_EXTENSIONS, (GLuint)i);
        size_t el = e ? strlen(e) : 0;
        if (!el || len + el + 2 > sizeof c->extensions)
            continue;
        if (len)
            c->extensions[len++] = ' ';
        memcpy(c->extensions + len, e, el + 1);
        len += el;
    }
    if (strstr(c->renderer, "llvmpipe") || strstr(c->renderer, "softpipe") || strstr(c->renderer, "swrast"))
        c->is_software = true;
    c->timer_query = has_ext(c->extensions, "GL_EXT_disjoint_timer_query");
    if (has_ext(c->extensions, "GL_KHR_shader_subgroup")) {
        GLint v = 0;
        glGetIntegerv(GL_SUBGROUP_SIZE_KHR, &v);
        c->subgroup_size = (unsigned)v;
        v = 0;
        glGetIntegerv(GL_SUBGROUP_SUPPORTED_STAGES_KHR, &v);
        c->subgroup_stages = (unsigned)v;
        v = 0;
        glGetIntegerv(GL_SUBGROUP_SUPPORTED_FEATURES_KHR, &v);
        c->subgroup_features = (unsigned)v;
        unsigned need = GL_SUBGROUP_FEATURE_BASIC_BIT_KHR | GL_SUBGROUP_FEATURE_ARITHMETIC_BIT_KHR;
        c->subgroup = (c->subgroup_stages & GL_COMPUTE_SHADER_BIT) && (c->subgroup_features & need) == need &&
                      c->subgroup_size > 0;
    }
    c->f16_arith = has_ext(c->extensions, "GL_NV_gpu_shader5");
    glGetIntegerv(GL_NUM_PROGRAM_BINARY_FORMATS, &c->n_program_binary_formats);
    GLint64 v64 = 0;
    glGetInteger64v(GL_MAX_SHADER_STORAGE_BLOCK_SIZE, &v64);
    c->max_ssbo_block_size = v64;
    glGetIntegerv(GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT, &c->ssbo_offset_alignment);
    if (c->ssbo_offset_alignment <= 0)
        c->ssbo_offset_alignment = 256;
    glGetIntegerv(GL_MAX_SHADER_STORAGE_BUFFER_BINDINGS, &c->max_ssbo_bindings);
    glGetIntegerv(GL_MAX_COMPUTE_SHADER_STORAGE_BLOCKS, &c->max_compute_ssbo_blocks);
    glGetIntegerv(GL_MAX_COMPUTE_SHARED_MEMORY_SIZE, &c->max_shared_memory);
    glGetIntegerv(GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS, &c->max_invocations);
    for (GLuint i = 0; i < 3; i++) {
        glGetIntegeri_v(GL_MAX_COMPUTE_WORK_GROUP_SIZE, i, &c->max_wg_size[i]);
        glGetIntegeri_v(GL_MAX_COMPUTE_WORK_GROUP_COUNT, i, &c->max_wg_count[i]);
    }
    glGetIntegerv(GL_MAX_UNIFORM_BLOCK_SIZE, &c->max_uniform_block_size);
    glGetIntegerv(GL_MAX_COMPUTE_IMAGE_UNIFORMS, &c->max_compute_image_uniforms);
    if (has_ext(c->extensions, "GL_EXT_texture_buffer")) {
        gl->tex_buffer_range = (PFNGLTEXBUFFERRANGEEXTPROC)eglGetProcAddress("glTexBufferRangeEXT");
        GLint texels = 0, align = 0;
        glGetIntegerv(GL_MAX_TEXTURE_BUFFER_SIZE_EXT, &texels);
        glGetIntegerv(GL_TEXTURE_BUFFER_OFFSET_ALIGNMENT_EXT, &align);
        c->max_texture_buffer_texels = texels;
        c->texture_buffer_offset_alignment = align > 0 ? align : 256;
        c->texture_buffer = gl->tex_buffer_range && texels > 0;
    }
    glGetError();
    load_timer_fns(gl);
}

void dg_gl_set_max_ssbo_block(struct dg_gl *gl, int64_t bytes)
{
    GLint64 v = 0;
    glGetInteger64v(GL_MAX_SHADER_STORAGE_BLOCK_SIZE, &v);
    gl->caps.max_ssbo_block_size = (bytes > 0 && bytes < v) ? bytes : v;
}

dg_status dg_gl_open(const struct dg_gl_options *opt, struct dg_gl **out)
{
    *out = NULL;
    const char *platform = opt && opt->platform && *opt->platform ? opt->platform : "auto";
    const char *dev = opt && opt->device && *opt->device ? opt->device : NULL;
    bool p_auto = strcmp(platform, "auto") == 0;
    if (!p_auto && strcmp(platform, "gbm") && strcmp(platform, "device") && strcmp(platform, "surfaceless") &&
        strcmp(platform, "default"))
        return dg_fail(DG_E_USAGE, "GL platform '%s' is not one of auto, gbm, device, surfaceless, default",
                       platform);
    /* surfaceless and default choose their device themselves; a device from the settings or the
     * environment may meet a --gl-platform from the command line, so this is a warning, not an error. */
    if (dev && (!strcmp(platform, "surfaceless") || !strcmp(platform, "default")))
        DG_WARN("GL device '%s' ignored: platform %s picks its device itself (use --gl-platform gbm or device "
                "to choose one)",
                dev, platform);
    struct dg_gl *gl = calloc(1, sizeof *gl);
    if (!gl)
        return dg_fail(DG_E_NOMEM, "out of memory for the GL context");
    gl->gbm_fd = -1;
    gl->barrier_bits = GL_SHADER_STORAGE_BARRIER_BIT;
    const char *client_exts = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS);
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_dpy =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    struct tried t = {.len = 0};
    t.buf[0] = 0;
    bool ok = false;
    if (!get_dpy || !has_ext(client_exts, "EGL_EXT_platform_base")) {
        tried_add(&t, "  gbm, device, surfaceless: EGL has no EGL_EXT_platform_base\n");
    } else {
        if (!ok && (p_auto || !strcmp(platform, "gbm"))) {
            if (has_ext(client_exts, "EGL_KHR_platform_gbm") || has_ext(client_exts, "EGL_MESA_platform_gbm"))
                ok = try_gbm(gl, get_dpy, dev, &t);
            else
                tried_add(&t, "  gbm: EGL has no EGL_KHR_platform_gbm\n");
        }
        if (!ok && (p_auto || !strcmp(platform, "device")))
            ok = try_device(gl, get_dpy, client_exts, dev, &t);
        /* These two pick their device themselves: with --gl-device, auto does not fall back to them. */
        if (!ok && p_auto && dev)
            tried_add(&t, "  surfaceless, default: skipped, they cannot select device %s\n", dev);
        else if (!ok && (p_auto || !strcmp(platform, "surfaceless")))
            ok = try_surfaceless(gl, get_dpy, client_exts, &t);
    }
    if (!ok && (p_auto ? !dev : !strcmp(platform, "default")))
        ok = try_default(gl, client_exts, &t);
    if (!ok) {
        free(gl);
        if (t.len && t.buf[t.len - 1] == '\n')
            t.buf[--t.len] = 0;
        return dg_fail(DG_E_NODEVICE,
                       "no OpenGL ES 3.1 context could be created (platform %s%s%s); tried:\n%s\n"
                       "Check that Mesa's EGL/GLES drivers are installed (make deps), that you may open "
                       "/dev/dri/renderD* (group 'render'), or choose another --gl-platform / --gl-device.",
                       platform, dev ? ", device " : "", dev ? dev : "", t.buf);
    }
    if (t.len)
        DG_VERBOSE("GL: before %s worked:\n%.*s", gl->platform, (int)t.len - 1, t.buf);
    record_caps(gl);
    if (opt && opt->max_ssbo_block > 0)
        dg_gl_set_max_ssbo_block(gl, opt->max_ssbo_block);
    gl->program_cache = !(opt && opt->program_cache < 0);
    probe_timers(gl);
    DG_VERBOSE("GL: %s on %s via %s (%s)", gl->caps.renderer, gl->device, gl->platform, gl->caps.version);
    *out = gl;
    return DG_OK;
}

void dg_gl_close(struct dg_gl *gl)
{
    if (!gl)
        return;
    /* Every command's --verbose ends with the pool's counters (info prints them on stdout too). */
    DG_VERBOSE("GL: buffer pool: live %llu B, peak %llu B, pooled %llu B, allocations %llu, reuse hits %llu, "
               "releases %llu",
               (unsigned long long)gl->pool_stats.bytes_live, (unsigned long long)gl->pool_stats.bytes_peak,
               (unsigned long long)gl->pool_stats.bytes_pooled, (unsigned long long)gl->pool_stats.allocations,
               (unsigned long long)gl->pool_stats.reuse_hits, (unsigned long long)gl->pool_stats.releases);
    dg_prof_free(gl);
    dg_programs_free(gl);
    dg_pool_free_all(gl);
    eglMakeCurrent(gl->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    if (gl->surf != EGL_NO_SURFACE)
        eglDestroySurface(gl->dpy, gl->surf);
    eglDestroyContext(gl->dpy, gl->ctx);
    eglTerminate(gl->dpy);
    eglReleaseThread();
    if (gl->gbm)
        gbm_device_destroy(gl->gbm);
    if (gl->gbm_fd >= 0)
        close(gl->gbm_fd);
    free(gl);
}

const struct dg_gl_caps *dg_gl_caps(const struct dg_gl *gl) { return &gl->caps; }
const char *dg_gl_platform_name(const struct dg_gl *gl) { return gl->platform; }
const char *dg_gl_device_name(const struct dg_gl *gl) { return gl->device; }

dg_status dg_gl_check(const char *what)
{
    GLenum e = glGetError();
    if (e == GL_NO_ERROR)
        return DG_OK;
    while (glGetError() != GL_NO_ERROR) {
    }
    return dg_fail(DG_E_GL, "%s: GL error 0x%04x", what, (unsigned)e);
}
