/* cmd_info.c: `doppler-gl info [--json]`: the GL platform and device chosen, the driver's strings,
 * capabilities and limits, the timing source and program caches; then a self-test that compiles and runs
 * glsl/reduce_sum.glsl, so a broken install (shaders not found) shows here. */
#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/version.h"
#include "gl/gl.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: doppler-gl info [options]\n\n"
                 "Shows the GPU doppler-gl would use: EGL platform, device, GL strings, capabilities, limits,\n"
                 "timing source and program caches; then compiles and runs one shader as a self-test.\n\n"
                 "Options:\n"
                 "  --json             print the same as one JSON object\n" DG_CLI_COMMON_HELP
                 "  -h, --help         show this help\n");
}

/* Runs reduce_sum over 4096 known values; fills the self-test object. */
static bool self_test(struct dg_gl *gl, cJSON *o)
{
    enum { N = 4096 };
    static float x[N];
    double want = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)(i % 17) - 8.0f;
        want += x[i];
    }
    cJSON_AddStringToObject(o, "shader", "reduce_sum.glsl");
    GLuint prog;
    dg_status st = dg_gl_program(gl, "reduce_sum.glsl", NULL, 0, &prog);
    if (st) {
        cJSON_AddBoolToObject(o, "ok", 0);
        cJSON_AddStringToObject(o, "error", dg_last_error());
        return false;
    }
    struct dg_buffer *in = NULL, *out = NULL;
    float got = 0;
    if (!(st = dg_buffer_alloc(gl, sizeof x, x, &in)) && !(st = dg_buffer_alloc(gl, sizeof got, NULL, &out))) {
        glUseProgram(prog);
        dg_buffer_bind(gl, 0, in, 0, in->size);
        dg_buffer_bind(gl, 1, out, 0, out->size);
        glUniform1ui(0, N);
        dg_gl_profiling(gl, true);
        struct dg_dispatch_info info = {"reduce_sum", "reduce", sizeof x + sizeof got};
        dg_gl_dispatch(gl, 1, 1, 1, &info);
        st = dg_buffer_download(gl, out, 0, sizeof got, &got);
    }
    dg_buffer_release(gl, in);
    dg_buffer_release(gl, out);
    const struct dg_profile_row *rows;
    int n = dg_gl_profile_rows(gl, false, &rows);
    if (n > 0)
        cJSON_AddNumberToObject(o, "dispatch_ms", rows[0].total_ms);
    bool ok = !st && got == (float)want;
    cJSON_AddBoolToObject(o, "ok", ok);
    if (!ok) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", st ? dg_last_error() : "wrong sum");
        cJSON_AddStringToObject(o, "error", msg);
    }
    return ok;
}

static cJSON *caps_json(const struct dg_gl_caps *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "software", c->is_software);
    cJSON_AddBoolToObject(o, "timer_query", c->timer_query);
    cJSON_AddBoolToObject(o, "time_elapsed_works", c->time_elapsed_works);
    cJSON *sg = cJSON_AddObjectToObject(o, "subgroup");
    cJSON_AddBoolToObject(sg, "usable", c->subgroup);
    cJSON_AddNumberToObject(sg, "size", c->subgroup_size);
    cJSON_AddNumberToObject(sg, "stages", c->subgroup_stages);
    cJSON_AddNumberToObject(sg, "features", c->subgroup_features);
    cJSON_AddNumberToObject(o, "program_binary_formats", c->n_program_binary_formats);
    cJSON *tb = cJSON_AddObjectToObject(o, "texture_buffer");
    cJSON_AddBoolToObject(tb, "usable", c->texture_buffer);
    cJSON_AddNumberToObject(tb, "max_texels", (double)c->max_texture_buffer_texels);
    cJSON_AddNumberToObject(tb, "offset_alignment", c->texture_buffer_offset_alignment);
    cJSON_AddNumberToObject(tb, "max_compute_image_uniforms", c->max_compute_image_uniforms);
    cJSON *l = cJSON_AddObjectToObject(o, "limits");
    cJSON_AddNumberToObject(l, "max_ssbo_block_size", (double)c->max_ssbo_block_size);
    cJSON_AddNumberToObject(l, "ssbo_offset_alignment", c->ssbo_offset_alignment);
    cJSON_AddNumberToObject(l, "max_ssbo_bindings", c->max_ssbo_bindings);
    cJSON_AddNumberToObject(l, "max_compute_ssbo_blocks", c->max_compute_ssbo_blocks);
    cJSON_AddNumberToObject(l, "max_shared_memory", c->max_shared_memory);
    cJSON_AddNumberToObject(l, "max_invocations", c->max_invocations);
    cJSON_AddItemToObject(l, "max_workgroup_size", cJSON_CreateIntArray(c->max_wg_size, 3));
    cJSON_AddItemToObject(l, "max_workgroup_count", cJSON_CreateIntArray(c->max_wg_count, 3));
    cJSON_AddNumberToObject(l, "max_uniform_block_size", c->max_uniform_block_size);
    return o;
}

static const char *yn(bool b) { return b ? "yes" : "no"; }

static void print_text(const struct dg_gl *gl, const cJSON *root, const struct dg_settings *s, bool verbose)
{
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    printf("doppler-gl %s\n", DG_VERSION);
    printf("platform:              %s\n", dg_gl_platform_name(gl));
    printf("device:                %s\n", dg_gl_device_name(gl));
    printf("vendor:                %s\n", c->vendor);
    printf("renderer:              %s\n", c->renderer);
    printf("version:               %s\n", c->version);
    printf("GLSL:                  %s\n", c->glsl_version);
    printf("software renderer:     %s\n", yn(c->is_software));
    printf("timer queries:         %s (elapsed queries %s); timing source: %s\n", yn(c->timer_query),
           c->time_elapsed_works ? "work" : "read 0", dg_gl_timing_source(gl));
    if (c->subgroup || c->subgroup_features)
        printf("subgroups:             %s (size %u, stages 0x%x, features 0x%x)\n", yn(c->subgroup),
               c->subgroup_size, c->subgroup_stages, c->subgroup_features);
    else
        printf("subgroups:             no\n");
    printf("f16 arithmetic:        %s\n", c->f16_arith ? "yes (GL_NV_gpu_shader5)" : "no");
    if (c->texture_buffer)
        printf("texture buffers:       yes (GL_EXT_texture_buffer; %lld texels max, offsets aligned to %d; %d compute "
               "image uniforms)\n",
               (long long)c->max_texture_buffer_texels, c->texture_buffer_offset_alignment,
               c->max_compute_image_uniforms);
    else
        printf("texture buffers:       no (image reads fall back to storage buffers)\n");
    printf("program binary formats: %d\n", c->n_program_binary_formats);
    printf("limits:\n");
    printf("  max SSBO block:      %lld bytes (%.0f MiB)%s\n", (long long)c->max_ssbo_block_size,
           (double)c->max_ssbo_block_size / (1 << 20), s->gl_max_ssbo_block ? " (lowered by gl.max_ssbo_block)" : "");
    printf("  SSBO offset align:   %d\n", c->ssbo_offset_alignment);
    printf("  SSBO bindings:       %d (compute blocks %d)\n", c->max_ssbo_bindings, c->max_compute_ssbo_blocks);
    printf("  shared memory:       %d bytes\n", c->max_shared_memory);
    printf("  invocations:         %d\n", c->max_invocations);
    printf("  workgroup size:      %d x %d x %d\n", c->max_wg_size[0], c->max_wg_size[1], c->max_wg_size[2]);
    printf("  workgroup count:     %d x %d x %d\n", c->max_wg_count[0], c->max_wg_count[1], c->max_wg_count[2]);
    printf("  uniform block:       %d bytes\n", c->max_uniform_block_size);
    struct dg_program_cache_info pc;
    dg_gl_program_cache_info(gl, &pc);
    printf("program cache:         %s%s%s (loaded %llu, compiled %llu, stored %llu, rejected %llu)\n",
           pc.enabled ? "on, " : "off", pc.enabled ? pc.dir : "",
           !pc.enabled && s->gl_program_cache ? " (the driver offers no binary formats)" : "",
           (unsigned long long)pc.loaded, (unsigned long long)pc.compiled, (unsigned long long)pc.stored,
           (unsigned long long)pc.rejected);
    printf("data directory:        %s\n", dg_data_dir());
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "self_test");
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(st, "ok"), *err = cJSON_GetObjectItemCaseSensitive(st, "error");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(st, "dispatch_ms");
    printf("self-test:             reduce_sum.glsl %s", cJSON_IsTrue(ok) ? "ok" : "FAILED");
    if (cJSON_IsNumber(ms))
        printf(" (build %.1f ms, dispatch %.3f ms)", pc.build_ms, ms->valuedouble);
    if (cJSON_IsString(err))
        printf(": %s", err->valuestring);
    printf("\n");
    if (verbose) {
        struct dg_pool_stats ps;
        dg_gl_pool_stats(gl, &ps);
        printf("buffer pool:           live %llu B, peak %llu B, pooled %llu B, allocations %llu, reuse hits "
               "%llu, releases %llu\n",
               (unsigned long long)ps.bytes_live, (unsigned long long)ps.bytes_peak,
               (unsigned long long)ps.bytes_pooled, (unsigned long long)ps.allocations,
               (unsigned long long)ps.reuse_hits, (unsigned long long)ps.releases);
        printf("settings files read:   %s%s%s\n", s->files_read[0][0] ? s->files_read[0] : "",
               s->files_read[0][0] && s->files_read[1][0] ? ", " : "",
               s->files_read[0][0] || s->files_read[1][0] ? s->files_read[1] : "none");
        printf("extensions:            %s\n", c->extensions);
    }
}

static int run_info(int argc, char **argv)
{
    struct dg_settings s;
    int rc = dg_cli_begin("info", &s);
    if (rc)
        return rc;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        int r = dg_cli_common_option("info", argc, argv, &i, &s);
        if (r < 0)
            return 2;
        if (r == 0)
            return dg_usage_error("info", "unknown option '%s'", argv[i]);
    }
    struct dg_gl *gl;
    dg_status st = dg_cli_gl_open(&s, &gl);
    if (st)
        return dg_report_status(st);
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "doppler_gl", DG_VERSION);
    cJSON_AddStringToObject(root, "platform", dg_gl_platform_name(gl));
    cJSON_AddStringToObject(root, "device", dg_gl_device_name(gl));
    cJSON_AddStringToObject(root, "vendor", c->vendor);
    cJSON_AddStringToObject(root, "renderer", c->renderer);
    cJSON_AddStringToObject(root, "version", c->version);
    cJSON_AddStringToObject(root, "glsl_version", c->glsl_version);
    cJSON_AddStringToObject(root, "timing_source", dg_gl_timing_source(gl));
    cJSON_AddItemToObject(root, "caps", caps_json(c));
    cJSON_AddStringToObject(root, "data_dir", dg_data_dir());
    bool ok = self_test(gl, cJSON_AddObjectToObject(root, "self_test"));
    struct dg_program_cache_info pc;
    dg_gl_program_cache_info(gl, &pc);
    cJSON *pcj = cJSON_AddObjectToObject(root, "program_cache");
    cJSON_AddBoolToObject(pcj, "enabled", pc.enabled);
    cJSON_AddStringToObject(pcj, "dir", pc.dir);
    cJSON_AddNumberToObject(pcj, "loaded", (double)pc.loaded);
    cJSON_AddNumberToObject(pcj, "compiled", (double)pc.compiled);
    cJSON_AddNumberToObject(pcj, "stored", (double)pc.stored);
    cJSON_AddNumberToObject(pcj, "rejected", (double)pc.rejected);
    cJSON_AddNumberToObject(pcj, "build_ms", pc.build_ms);
    struct dg_pool_stats ps;
    dg_gl_pool_stats(gl, &ps);
    cJSON *pj = cJSON_AddObjectToObject(root, "pool");
    cJSON_AddNumberToObject(pj, "bytes_live", (double)ps.bytes_live);
    cJSON_AddNumberToObject(pj, "bytes_peak", (double)ps.bytes_peak);
    cJSON_AddNumberToObject(pj, "bytes_pooled", (double)ps.bytes_pooled);
    cJSON_AddNumberToObject(pj, "allocations", (double)ps.allocations);
    cJSON_AddNumberToObject(pj, "reuse_hits", (double)ps.reuse_hits);
    cJSON_AddNumberToObject(pj, "releases", (double)ps.releases);
    cJSON_AddStringToObject(root, "extensions", c->extensions);
    if (json) {
        char *txt = cJSON_Print(root);
        if (txt)
            printf("%s\n", txt);
        cJSON_free(txt);
    } else {
        print_text(gl, root, &s, s.log_verbose > 0);
    }
    cJSON_Delete(root);
    dg_gl_close(gl);
    if (!ok) {
        fprintf(stderr, "doppler-gl: error: the self-test shader failed; shaders are read from %s/glsl "
                        "(set DOPPLER_GL_DATADIR to the directory holding glsl/)\n", dg_data_dir());
        return 1;
    }
    return 0;
}

DG_COMMAND(info, "info", "show the GPU, driver, capabilities and limits doppler-gl would use", run_info)
