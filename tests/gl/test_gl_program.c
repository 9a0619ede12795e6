/* test_gl_program.c: every shader in glsl/ compiles with no extra defines; the preamble, includes and
 * error-line mapping; the on-disk program cache (cold, warm, corrupt entries). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "gl_fixture.h"
#include "test.h"

DG_TEST(gl_every_shader_compiles_with_defaults)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    DIR *d = opendir(dg_gl_shader_dir());
    CHECK_MSG(d != NULL, "cannot open %s", dg_gl_shader_dir());
    if (!d)
        return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        /* Files meant only for #include have no main(); they end in .inc.glsl. */
        if (l < 6 || strcmp(e->d_name + l - 5, ".glsl") != 0 || (l > 9 && !strcmp(e->d_name + l - 9, ".inc.glsl")))
            continue;
        GLuint p = 0;
        dg_status st = dg_gl_program(gl, e->d_name, NULL, 0, &p);
        CHECK_MSG(st == DG_OK && p != 0, "%s: %s", e->d_name, dg_last_error());
        n++;
    }
    closedir(d);
    CHECK_MSG(n >= 2, "only %d shaders found in %s", n, dg_gl_shader_dir());
}

DG_TEST(gl_program_is_compiled_once_per_file_and_sorted_defines)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_define a[] = {{"VEC4", "1"}, {"WG_SIZE", "16"}}, b[] = {{"WG_SIZE", "16"}, {"VEC4", "1"}};
    struct dg_define c[] = {{"WG_SIZE", "32"}, {"VEC4", "1"}};
    GLuint pa = 0, pb = 0, pc = 0;
    CHECK_OK(dg_gl_program(gl, "gemv_f16.glsl", a, 2, &pa));
    CHECK_OK(dg_gl_program(gl, "gemv_f16.glsl", b, 2, &pb));
    CHECK_OK(dg_gl_program(gl, "gemv_f16.glsl", c, 2, &pc));
    CHECK(pa != 0 && pa == pb);
    CHECK(pc != 0 && pc != pa);
}

DG_TEST(gl_program_rejects_bad_requests_with_clear_messages)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    GLuint p = 0;
    CHECK(dg_gl_program(gl, "no_such_kernel.glsl", NULL, 0, &p) == DG_E_IO);
    CHECK_MSG(strstr(dg_last_error(), "no_such_kernel.glsl") != NULL, "%s", dg_last_error());
    struct dg_define typo[] = {{"WG_SIZ", "8"}};
    CHECK(dg_gl_program(gl, "reduce_sum.glsl", typo, 1, &p) == DG_E_USAGE);
    CHECK_MSG(strstr(dg_last_error(), "WG_SIZ") != NULL, "%s", dg_last_error());
    struct dg_define badname[] = {{"A B", "1"}};
    CHECK(dg_gl_program(gl, "reduce_sum.glsl", badname, 1, &p) == DG_E_USAGE);
    struct dg_define twice[] = {{"WG_SIZE", "8"}, {"WG_SIZE", "16"}};
    CHECK(dg_gl_program(gl, "reduce_sum.glsl", twice, 2, &p) == DG_E_USAGE);
    CHECK(dg_gl_program(gl, "../reduce_sum.glsl", NULL, 0, &p) == DG_E_USAGE);
    /* A knob value that breaks the shader: the message names the real file and line of the #error. */
    struct dg_define odd[] = {{"WG_SIZE", "48"}};
    CHECK(dg_gl_program(gl, "reduce_sum.glsl", odd, 1, &p) == DG_E_GL);
    CHECK_MSG(strstr(dg_last_error(), "reduce_sum.glsl:12") != NULL, "expected reduce_sum.glsl:12 in: %s",
              dg_last_error());
}

/* Writes a shader pair into a scratch data dir: main includes a helper with an error on a known line. */
static void write_file(const char *dir, const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/glsl/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

DG_TEST(gl_program_includes_map_errors_to_the_included_file)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    /* A scratch data dir: main includes a helper; each has an error on a known line. */
    const char *base = dg_test_tmpdir();
    char glsl[1024];
    snprintf(glsl, sizeof glsl, "%s/glsl", base);
    mkdir(glsl, 0700);
    write_file(base, "dg_inc.inc.glsl", "// helper\nfloat helper(float v) { return v * 2.0; }\n"
                                        "float broken() { return vec2(1.0); }\n");
    write_file(base, "dg_main.glsl", "#version 310 es\nlayout(local_size_x = 1) in;\n"
                                     "#include \"dg_inc.inc.glsl\"\n"
                                     "layout(std430, binding = 0) buffer B { float v[]; };\n"
                                     "void main() { v[0] = helper(1.0) + nope; }\n");
    write_file(base, "dg_cycle.glsl", "#version 310 es\n#include \"dg_cycle.glsl\"\n");
    write_file(base, "dg_escape.glsl", "#version 310 es\n#include \"../etc/passwd\"\n");
    write_file(base, "dg_noversion.glsl", "layout(local_size_x = 1) in;\nvoid main() {}\n");
    const char *old = getenv("DOPPLER_GL_DATADIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("DOPPLER_GL_DATADIR", base, 1);
    GLuint p = 0;
    CHECK(dg_gl_program(gl, "dg_main.glsl", NULL, 0, &p) == DG_E_GL);
    const char *m = dg_last_error();
    CHECK_MSG(strstr(m, "dg_inc.inc.glsl:3") != NULL, "error in the include should say line 3: %s", m);
    CHECK_MSG(strstr(m, "dg_main.glsl:5") != NULL, "error in the main file should say line 5: %s", m);
    CHECK(dg_gl_program(gl, "dg_cycle.glsl", NULL, 0, &p) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "nested deeper") != NULL, "%s", dg_last_error());
    CHECK(dg_gl_program(gl, "dg_escape.glsl", NULL, 0, &p) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "glsl/ itself") != NULL, "%s", dg_last_error());
    CHECK(dg_gl_program(gl, "dg_noversion.glsl", NULL, 0, &p) == DG_E_FORMAT);
    CHECK_MSG(strstr(dg_last_error(), "#version 310 es") != NULL, "%s", dg_last_error());
    if (saved)
        setenv("DOPPLER_GL_DATADIR", saved, 1);
    else
        unsetenv("DOPPLER_GL_DATADIR");
    free(saved);
}

/* Runs reduce_sum (WG_SIZE 4: a variant no other test uses) over 1..100 and checks 5050. */
static bool reduce_works(struct dg_gl *gl)
{
    struct dg_define d[] = {{"WG_SIZE", "4"}};
    GLuint p = 0;
    if (dg_gl_program(gl, "reduce_sum.glsl", d, 1, &p) != DG_OK)
        return false;
    float x[100], got = 0;
    for (int i = 0; i < 100; i++)
        x[i] = (float)(i + 1);
    struct dg_buffer *in = NULL, *out = NULL;
    bool ok = dg_buffer_alloc(gl, sizeof x, x, &in) == DG_OK && dg_buffer_alloc(gl, 4, NULL, &out) == DG_OK;
    if (ok) {
        glUseProgram(p);
        dg_buffer_bind(gl, 0, in, 0, in->size);
        dg_buffer_bind(gl, 1, out, 0, 4);
        glUniform1ui(0, 100);
        dg_gl_dispatch(gl, 1, 1, 1, NULL);
        ok = dg_buffer_download(gl, out, 0, 4, &got) == DG_OK && got == 5050.0f;
    }
    dg_buffer_release(gl, in);
    dg_buffer_release(gl, out);
    return ok;
}

static int find_entry(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    int count = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".bin") && !strstr(e->d_name, ".tmp")) {
            snprintf(out, n, "%s/%s", dir, e->d_name);
            count++;
        }
    if (d)
        closedir(d);
    return count;
}

DG_TEST(gl_program_disk_cache_cold_warm_corrupt)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    struct dg_program_cache_info pc;
    dg_gl_program_cache_info(gl, &pc);
    if (!pc.enabled)
        SKIP("program cache is off (setting, or the driver has no binary formats)");
    const char *old = getenv("XDG_CACHE_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CACHE_HOME", dg_test_tmpdir(), 1);
    char dir[1024], entry[1400];
    snprintf(dir, sizeof dir, "%s/doppler-gl/programs", getenv("XDG_CACHE_HOME"));

    dg_gl_program_forget_all(gl);
    struct dg_program_cache_info a, b;
    dg_gl_program_cache_info(gl, &a);
    CHECK(reduce_works(gl)); /* cold: compiled and stored */
    dg_gl_program_cache_info(gl, &b);
    CHECK(b.compiled == a.compiled + 1 && b.stored == a.stored + 1 && b.loaded == a.loaded);
    CHECK_MSG(find_entry(dir, entry, sizeof entry) == 1, "expected one cache file in %s", dir);

    dg_gl_program_forget_all(gl);
    a = b;
    CHECK(reduce_works(gl)); /* warm: loaded from the binary, and it runs correctly */
    dg_gl_program_cache_info(gl, &b);
    CHECK(b.loaded == a.loaded + 1 && b.compiled == a.compiled);

    /* Corruptions: a flipped payload byte, a truncated file, a foreign file. Each is detected, deleted,
     * recompiled and stored again, and the program still works. */
    for (int kind = 0; kind < 3; kind++) {
        size_t len = 0;
        char *data = dg_test_read_file(entry, &len);
        CHECK(data != NULL && len > 200);
        if (!data)
            break;
        FILE *f = fopen(entry, "wb");
        if (kind == 0) {
            data[len - 7] ^= 0x5a;
            fwrite(data, 1, len, f);
        } else if (kind == 1) {
            fwrite(data, 1, len / 2, f);
        } else {
            fputs("not a program binary at all, but long enough to hold a header of the expected size....", f);
        }
        fclose(f);
        free(data);
        dg_gl_program_forget_all(gl);
        a = b;
        CHECK_MSG(reduce_works(gl), "corruption %d", kind);
        dg_gl_program_cache_info(gl, &b);
        CHECK_MSG(b.rejected == a.rejected + 1 && b.compiled == a.compiled + 1 && b.stored == a.stored + 1,
                  "corruption %d: rejected %llu->%llu compiled %llu->%llu", kind, (unsigned long long)a.rejected,
                  (unsigned long long)b.rejected, (unsigned long long)a.compiled, (unsigned long long)b.compiled);
    }
    CHECK(find_entry(dir, entry, sizeof entry) == 1);
    if (saved)
        setenv("XDG_CACHE_HOME", saved, 1);
    else
        unsetenv("XDG_CACHE_HOME");
    free(saved);
}
