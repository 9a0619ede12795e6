/* cmd_profile.c: `doppler-gl profile`: where a token's GPU time goes. Runs a prefill and decode tokens with
 * the GL profiler on (timer queries around every dispatch) and reports, per kernel and per kernel-path op,
 * calls per token, total and mean time, share and GB/s: as tables, as JSON, and as an SVG bar chart. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan_opts.h"
#include "cli/report.h"
#include "core/log.h"
#include "core/version.h"
#include "pipe/exec.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl profile -m MODEL [options]\n\n"
            "Runs a prefill and decode tokens with GPU timer queries around every dispatch and reports the\n"
            "time per kernel and per kernel-path op.\n\n"
            "Options:\n"
            "  -m, --model PATH        model folder (Hugging Face or doppler-gl) or GGUF file\n"
            "  -p, --n-prompt N        prompt tokens in the profiled prefill (default 128; 0 skips it)\n"
            "  -n, --n-gen N           decode tokens profiled after the prefill (default 32; 0 skips them)\n"
            "  -c, --ctx N             context length (default: -p plus -n)\n"
            "  --json                  print the profile as JSON instead of tables\n"
            "  --svg FILE              also write the profile as an SVG bar chart\n"
            "%s%s"
            "  -h, --help              show this help\n",
            DG_CLI_PLAN_HELP, DG_CLI_COMMON_HELP);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* One profiled phase: the profiler's rows copied out (they belong to gl until its next call). */
struct phase {
    const char *name;
    long tokens;
    uint64_t dispatches;
    double wall_ms, gpu_ms;
    struct dg_profile_row *kernels, *ops;
    int n_kernels, n_ops;
};

static dg_status copy_rows(struct dg_gl *gl, bool by_op, struct dg_profile_row **out, int *n)
{
    const struct dg_profile_row *rows;
    *n = dg_gl_profile_rows(gl, by_op, &rows);
    *out = malloc(sizeof **out * (size_t)(*n > 0 ? *n : 1));
    if (!*out)
        return dg_fail(DG_E_NOMEM, "out of memory");
    if (*n > 0)
        memcpy(*out, rows, sizeof **out * (size_t)*n);
    return DG_OK;
}

static dg_status finish_phase(struct dg_gl *gl, struct phase *ph)
{
    dg_status st = copy_rows(gl, false, &ph->kernels, &ph->n_kernels);
    if (!st)
        st = copy_rows(gl, true, &ph->ops, &ph->n_ops);
    ph->gpu_ms = 0;
    for (int i = 0; i < ph->n_kernels; i++)
        ph->gpu_ms += ph->kernels[i].total_ms;
    return st;
}

static const char *row_name(const struct dg_profile_row *r, bool by_op) { return by_op ? r->op : r->kernel; }

/* ---- text ---- */

static void print_rows(const struct phase *ph, bool by_op)
{
    const struct dg_profile_row *rows = by_op ? ph->ops : ph->kernels;
    int n = by_op ? ph->n_ops : ph->n_kernels;
    printf("  %-24s %8s %9s %10s %10s %7s %9s\n", by_op ? "op" : "kernel", "calls", "calls/tok", "total ms",
           "mean us", "share", "GB/s");
    for (int i = 0; i < n; i++)
        printf("  %-24s %8llu %9.2f %10.3f %10.1f %6.1f%% %9.2f\n", row_name(&rows[i], by_op),
               (unsigned long long)rows[i].calls, (double)rows[i].calls / (double)ph->tokens, rows[i].total_ms,
               rows[i].mean_us, 100 * rows[i].share, rows[i].gbps);
}

static void print_phase(const struct phase *ph)
{
    printf("%s: %ld token%s, %llu dispatches, GPU %.3f ms (%.3f ms/token), wall %.3f ms\n", ph->name, ph->tokens,
           ph->tokens == 1 ? "" : "s", (unsigned long long)ph->dispatches, ph->gpu_ms, ph->gpu_ms / (double)ph->tokens,
           ph->wall_ms);
    print_rows(ph, false);
    printf("\n");
    print_rows(ph, true);
    printf("\n");
}

/* ---- JSON ---- */

static cJSON *rows_json(const struct phase *ph, bool by_op)
{
    const struct dg_profile_row *rows = by_op ? ph->ops : ph->kernels;
    int n = by_op ? ph->n_ops : ph->n_kernels;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, by_op ? "op" : "kernel", row_name(&rows[i], by_op));
        cJSON_AddNumberToObject(o, "calls", (double)rows[i].calls);
        cJSON_AddNumberToObject(o, "calls_per_token", (double)rows[i].calls / (double)ph->tokens);
        cJSON_AddNumberToObject(o, "total_ms", rows[i].total_ms);
        cJSON_AddNumberToObject(o, "mean_us", rows[i].mean_us);
        cJSON_AddNumberToObject(o, "share", rows[i].share);
        cJSON_AddNumberToObject(o, "gbps", rows[i].gbps);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *phase_json(const struct phase *ph)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tokens", (double)ph->tokens);
    cJSON_AddNumberToObject(o, "dispatches", (double)ph->dispatches);
    cJSON_AddNumberToObject(o, "gpu_ms", ph->gpu_ms);
    cJSON_AddNumberToObject(o, "gpu_ms_per_token", ph->gpu_ms / (double)ph->tokens);
    cJSON_AddNumberToObject(o, "wall_ms", ph->wall_ms);
    cJSON_AddItemToObject(o, "kernels", rows_json(ph, false));
    cJSON_AddItemToObject(o, "ops", rows_json(ph, true));
    return o;
}

/* ---- SVG ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 16384;
        while (nc < b->len + (size_t)n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

/* Text with XML's five special characters escaped. */
static void sb_text(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default:
            if ((unsigned char)*s >= 0x20)
                sb_printf(b, "%c", *s);
        }
    }
}

#define SVG_W 1040
#define SVG_LABEL 230
#define SVG_BAR 380
#define SVG_ROW 22

static int svg_section(struct sbuf *b, int y, const struct phase *ph, bool by_op)
{
    const struct dg_profile_row *rows = by_op ? ph->ops : ph->kernels;
    int n = by_op ? ph->n_ops : ph->n_kernels;
    sb_printf(b, "<text x=\"16\" y=\"%d\" class=\"h\">", y + 16);
    sb_text(b, ph->name);
    sb_printf(b, " per %s: %.3f ms GPU for %ld token%s (%.3f ms/token)</text>\n", by_op ? "op" : "kernel", ph->gpu_ms,
              ph->tokens, ph->tokens == 1 ? "" : "s", ph->gpu_ms / (double)ph->tokens);
    y += 28;
    double maxs = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].share > maxs)
            maxs = rows[i].share;
    for (int i = 0; i < n; i++) {
        double w = maxs > 0 ? rows[i].share / maxs * SVG_BAR : 0;
        sb_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\">", SVG_LABEL - 8, y + 15);
        sb_text(b, row_name(&rows[i], by_op));
        sb_printf(b, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" class=\"%s\"/>\n", SVG_LABEL, y + 3,
                  w < 1 ? 1 : w, SVG_ROW - 6, by_op ? "bo" : "bk");
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"v\">%.1f%%  %.3f ms  %.2f calls/tok  %.1f us  %.2f GB/s</text>\n",
                  SVG_LABEL + w + 6, y + 15, 100 * rows[i].share, rows[i].total_ms,
                  (double)rows[i].calls / (double)ph->tokens, rows[i].mean_us, rows[i].gbps);
        y += SVG_ROW;
    }
    return y + 12;
}

static char *svg_render(const struct phase *ph, int n_ph, const char *title, const char *subtitle)
{
    int rows = 0;
    for (int i = 0; i < n_ph; i++)
        rows += ph[i].n_kernels + ph[i].n_ops;
    int height = 70 + n_ph * 2 * 40 + rows * SVG_ROW + 16;
    struct sbuf b = {0};
    sb_printf(&b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n"
              "<style>text{font-family:DejaVu Sans Mono,Menlo,Consolas,monospace;font-size:12px;fill:#222}"
              ".t{font-size:15px;font-weight:bold}.s{fill:#555}.h{font-weight:bold}.l{text-anchor:end}"
              ".v{fill:#333}.bk{fill:#3b78c2}.bo{fill:#d9822b}</style>\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
              SVG_W, height, SVG_W, height);
    sb_printf(&b, "<text x=\"16\" y=\"24\" class=\"t\">");
    sb_text(&b, title);
    sb_printf(&b, "</text>\n<text x=\"16\" y=\"44\" class=\"s\">");
    sb_text(&b, subtitle);
    sb_printf(&b, "</text>\n");
    int y = 60;
    for (int i = 0; i < n_ph; i++) {
        y = svg_section(&b, y, &ph[i], false);
        y = svg_section(&b, y, &ph[i], true);
    }
    sb_printf(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- the command ---- */

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return dg_usage_error("profile", "%s: '%s' is not an integer in [%ld, %ld]", opt, v, lo, hi);
    *out = x;
    return 0;
}

static int run(int argc, char **argv)
{
    struct dg_settings s;
    int rc = dg_cli_begin("profile", &s);
    if (rc)
        return rc;
    const char *model = NULL, *ps = NULL, *ns = NULL, *cs = NULL, *svg = NULL;
    bool json = false;
    struct dg_cli_plan_opts po = {0};
    for (int i = 1; i < argc; i++) {
        int k;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if ((k = dg_cli_common_option("profile", argc, argv, &i, &s)) ||
            (k = dg_cli_plan_option("profile", argc, argv, &i, &po)) ||
            (k = dg_cli_option_value("profile", "--model", argc, argv, &i, &model)) ||
            (k = dg_cli_option_value("profile", "-m", argc, argv, &i, &model)) ||
            (k = dg_cli_option_value("profile", "--n-prompt", argc, argv, &i, &ps)) ||
            (k = dg_cli_option_value("profile", "-p", argc, argv, &i, &ps)) ||
            (k = dg_cli_option_value("profile", "--n-gen", argc, argv, &i, &ns)) ||
            (k = dg_cli_option_value("profile", "-n", argc, argv, &i, &ns)) ||
            (k = dg_cli_option_value("profile", "--ctx", argc, argv, &i, &cs)) ||
            (k = dg_cli_option_value("profile", "-c", argc, argv, &i, &cs)) ||
            (k = dg_cli_option_value("profile", "--svg", argc, argv, &i, &svg))) {
            if (k < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else
            return dg_usage_error("profile", "unknown option '%s'", argv[i]);
    }
    long p = 128, n = 32, ctx = 0;
    if ((ps && parse_long("-p", ps, 0, 1 << 20, &p)) || (ns && parse_long("-n", ns, 0, 1 << 20, &n)) ||
        (cs && parse_long("-c", cs, 1, 1 << 24, &ctx)))
        return 2;
    dg_settings_apply_log(&s);
    if (!model)
        return dg_usage_error("profile", "-m MODEL is required");
    if (p == 0 && n == 0 && !po.print_plan)
        return dg_usage_error("profile", "-p and -n are both 0: nothing to profile");
    if (svg && !*svg)
        return dg_usage_error("profile", "--svg: empty file name");
    if (!cs)
        ctx = p + n > 0 ? p + n : 1;
    else if (ctx < p + n)
        return dg_usage_error("profile", "-c %ld is smaller than -p plus -n (%ld)", ctx, p + n);

    struct dg_model m;
    dg_status st = dg_model_open(model, &m);
    if (st)
        return dg_report_status(st);
    struct dg_gl *gl = NULL;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_exec *ex = NULL;
    int32_t *ids = NULL;
    struct phase ph[2] = {{.name = "prefill", .tokens = p}, {.name = "decode", .tokens = n}};
    int n_ph = 0;
    struct phase *use[2];
    char *svg_text = NULL;
    if ((st = dg_cli_gl_open(&s, &gl)) || (st = dg_kp_registry_load_default(&reg)) ||
        (st = dg_cli_plan_build(&po, dg_gl_caps(gl), &m, &reg, &plan, &path)))
        goto out;
    if (po.print_plan) {
        dg_kplan_print(stdout, &plan, &path, &reg);
        goto out;
    }
    struct dg_exec_options eo = {.ctx = (int)ctx};
    if ((st = dg_exec_create(gl, &m, &plan, &reg, &path, &eo, &ex)))
        goto out;
    ids = malloc((size_t)(p > 0 ? p : 1) * sizeof *ids);
    if (!ids) {
        st = dg_fail(DG_E_NOMEM, "out of memory");
        goto out;
    }
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (long i = 0; i < (p > 0 ? p : 1); i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)m.hp.vocab);
    }
    uint32_t tok = 0;
    /* Warm-up without the profiler: first use compiles programs (at the first dispatch on llvmpipe). */
    if ((p > 0 && ((st = dg_exec_forward(ex, ids, (int)(p < 512 ? p : 512), NULL, NULL)) ||
                   (st = dg_exec_read_tokens(ex, &tok, 1)))) ||
        (n > 0 && ((st = dg_exec_forward(ex, ids, 1, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &tok, 1)))))
        goto out;
    dg_exec_reset(ex);
    glFinish();
    if (p > 0) {
        dg_gl_profile_reset(gl);
        dg_gl_profiling(gl, true);
        uint64_t d0 = dg_gl_dispatch_count(gl);
        double t0 = now_ms();
        st = dg_exec_forward(ex, ids, (int)p, NULL, NULL);
        if (!st)
            st = dg_exec_read_tokens(ex, &tok, 1);
        ph[0].wall_ms = now_ms() - t0;
        ph[0].dispatches = dg_gl_dispatch_count(gl) - d0;
        dg_gl_profiling(gl, false);
        if (st || (st = finish_phase(gl, &ph[0])))
            goto out;
        use[n_ph++] = &ph[0];
    }
    if (n > 0) {
        dg_gl_profile_reset(gl);
        dg_gl_profiling(gl, true);
        uint64_t d0 = dg_gl_dispatch_count(gl);
        int32_t next = p > 0 ? (int32_t)(tok % (uint32_t)m.hp.vocab) : ids[0];
        double t0 = now_ms();
        for (long i = 0; i < n && !st; i++) {
            st = dg_exec_forward(ex, &next, 1, NULL, NULL);
            if (!st)
                st = dg_exec_read_tokens(ex, &tok, 1);
            next = (int32_t)(tok % (uint32_t)m.hp.vocab);
        }
        ph[1].wall_ms = now_ms() - t0;
        ph[1].dispatches = dg_gl_dispatch_count(gl) - d0;
        dg_gl_profiling(gl, false);
        if (st || (st = finish_phase(gl, &ph[1])))
            goto out;
        use[n_ph++] = &ph[1];
    }
    dg_gl_profile_reset(gl);

    char mname[128], date[32], iso[40];
    dg_report_model_name(m.path, mname, sizeof mname);
    dg_report_date(date, sizeof date, iso, sizeof iso);
    if (svg) {
        char title[512], sub[1024];
        snprintf(title, sizeof title, "doppler-gl profile: %s (%s), kernel path %s", mname, dg_report_quant_label(&m),
                 path.id);
        snprintf(sub, sizeof sub, "%s | %s | timing: %s | commit %s | %s", dg_gl_caps(gl)->renderer,
                 dg_gl_caps(gl)->version, dg_gl_timing_source(gl), dg_git_commit(), iso);
        struct phase order[2];
        for (int i = 0; i < n_ph; i++)
            order[i] = *use[n_ph - 1 - i]; /* decode first: it is what a user waits on per token */
        svg_text = svg_render(order, n_ph, title, sub);
        if (!svg_text) {
            st = dg_fail(DG_E_NOMEM, "out of memory for the SVG");
            goto out;
        }
        if ((st = dg_report_write_file(svg, svg_text)))
            goto out;
        DG_INFO("profile: wrote %s", svg);
    }
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "tool", "doppler-gl profile");
        cJSON_AddStringToObject(root, "version", DG_VERSION);
        cJSON_AddStringToObject(root, "git_commit", dg_git_commit());
        cJSON_AddStringToObject(root, "date", iso);
        cJSON_AddItemToObject(root, "device", dg_report_device_json(gl));
        cJSON_AddItemToObject(root, "model", dg_report_model_json(&m));
        cJSON_AddItemToObject(root, "quant", dg_report_quant_json(&m));
        cJSON_AddStringToObject(root, "kernel_path", path.id);
        cJSON_AddStringToObject(root, "kernel_profile", plan.profile.value);
        /* how many decode steps run `doppler-gl tune` winners (0: none cached or "tuner": false) */
        cJSON_AddNumberToObject(root, "tuned_steps", strcmp(plan.tuner.value, "false") ? plan.n_tuned : 0);
        cJSON_AddStringToObject(root, "timing_source", dg_gl_timing_source(gl));
        if (p > 0)
            cJSON_AddItemToObject(root, "prefill", phase_json(&ph[0]));
        else
            cJSON_AddNullToObject(root, "prefill");
        if (n > 0)
            cJSON_AddItemToObject(root, "decode", phase_json(&ph[1]));
        else
            cJSON_AddNullToObject(root, "decode");
        char *text = cJSON_Print(root);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        printf("model %s (%s), kernel path %s, on %s; timing: %s\n\n", mname, dg_report_quant_label(&m), path.id,
               dg_gl_caps(gl)->renderer, dg_gl_timing_source(gl));
        for (int i = 0; i < n_ph; i++)
            print_phase(use[i]);
        if (!strcmp(dg_gl_timing_source(gl), "wall-clock"))
            printf("note: no usable GPU timer queries on this device: times are CPU wall clock around each "
                   "dispatch\n");
    }
out:
    for (int i = 0; i < 2; i++) {
        free(ph[i].kernels);
        free(ph[i].ops);
    }
    free(svg_text);
    free(ids);
    dg_exec_destroy(ex);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    if (gl)
        dg_gl_close(gl);
    dg_model_close(&m);
    return dg_report_status(st);
}

DG_COMMAND(profile, "profile", "GPU time per kernel and per op for a prefill and decode tokens (table, JSON, SVG)",
           run)
