/* cmd_bench.c: `doppler-gl bench`: llama-bench's figures for one model on one device (prefill and decode
 * tokens per second over repetitions, time to first token with cold and warm program caches), what a
 * token costs (dispatches, barriers, read-back bytes, GPU memory), and the device's measured read
 * bandwidth with decode's share of that roofline; a table on stdout and a JSON result file per run.
 *
 * Time to first token is measured in child processes of this binary (the hidden option
 * --internal-ttft-child) whose program caches point into a fresh temporary folder: doppler-gl's binaries
 * ($XDG_CACHE_HOME), Mesa's (MESA_SHADER_CACHE_DIR) and NVIDIA's (__GL_SHADER_DISK_CACHE_PATH). The first
 * child starts with them empty (cold), the second with what the first left (warm). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan_opts.h"
#include "tune/tune.h"
#include "cli/report.h"
#include "core/log.h"
#include "core/version.h"
#include "pipe/exec.h"
#include "pipe/generate.h"
#include "pipe/roofline.h"

extern char **environ;

#define MAX_REPS 100

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl bench -m MODEL [options]\n\n"
            "Measures prefill and decode speed, time to first token, per-token costs and the device's read\n"
            "bandwidth, prints a table and writes bench-results/<date>-<gpu>-<model>-<quant>.json.\n\n"
            "Options:\n"
            "  -m, --model PATH        model folder (Hugging Face or doppler-gl) or GGUF file\n"
            "  -p, --n-prompt N        prompt tokens for the prefill test (default 512; 0 skips it)\n"
            "  -n, --n-gen N           tokens for the decode test (default 128; 0 skips it)\n"
            "  -r, --repetitions N     repetitions of each test (default 3)\n"
            "  -c, --ctx N             context length (default: the larger of -p and -n, +1 with --sync-every)\n"
            "  --sync-every N          decode through the generation loop (GPU sampler, greedy), reading\n"
            "                          ids back once per N tokens; 0 (default): the path's own argmax and\n"
            "                          one 4-byte read per token, as llama-bench synchronises per token\n"
            "  --bandwidth-mib N       buffer for the bandwidth probe in MiB (default 256 on a GPU,\n"
            "                          64 on a software device; 0 skips the probe)\n"
            "  --no-ttft               skip the time-to-first-token runs (two child processes)\n"
            "  --out DIR               folder for the JSON result (default bench-results)\n"
            "  --no-save               do not write the JSON result file\n"
            "  --json                  print the JSON result instead of the table\n"
            "%s%s"
            "  -h, --help              show this help\n",
            DG_CLI_PLAN_HELP, DG_CLI_COMMON_HELP);
}

struct args {
    const char *model, *out_dir;
    long p, n, r, ctx, bw_mib, sync;
    bool json, no_save, no_ttft, child, ctx_set, bw_set;
    struct dg_cli_plan_opts po;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return dg_usage_error("bench", "%s: '%s' is not an integer in [%ld, %ld]", opt, v, lo, hi);
    *out = x;
    return 0;
}

/* 0 parsed, 1 help printed, 2 usage error printed. */
static int parse(int argc, char **argv, struct dg_settings *s, struct args *a)
{
    const char *p = NULL, *n = NULL, *r = NULL, *c = NULL, *bw = NULL, *se = NULL;
    for (int i = 1; i < argc; i++) {
        int k;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        }
        if ((k = dg_cli_common_option("bench", argc, argv, &i, s)) ||
            (k = dg_cli_plan_option("bench", argc, argv, &i, &a->po)) ||
            (k = dg_cli_option_value("bench", "--model", argc, argv, &i, &a->model)) ||
            (k = dg_cli_option_value("bench", "-m", argc, argv, &i, &a->model)) ||
            (k = dg_cli_option_value("bench", "--n-prompt", argc, argv, &i, &p)) ||
            (k = dg_cli_option_value("bench", "-p", argc, argv, &i, &p)) ||
            (k = dg_cli_option_value("bench", "--n-gen", argc, argv, &i, &n)) ||
            (k = dg_cli_option_value("bench", "-n", argc, argv, &i, &n)) ||
            (k = dg_cli_option_value("bench", "--repetitions", argc, argv, &i, &r)) ||
            (k = dg_cli_option_value("bench", "-r", argc, argv, &i, &r)) ||
            (k = dg_cli_option_value("bench", "--ctx", argc, argv, &i, &c)) ||
            (k = dg_cli_option_value("bench", "-c", argc, argv, &i, &c)) ||
            (k = dg_cli_option_value("bench", "--bandwidth-mib", argc, argv, &i, &bw)) ||
            (k = dg_cli_option_value("bench", "--sync-every", argc, argv, &i, &se)) ||
            (k = dg_cli_option_value("bench", "--out", argc, argv, &i, &a->out_dir))) {
            if (k < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            a->json = true;
        else if (!strcmp(argv[i], "--no-save"))
            a->no_save = true;
        else if (!strcmp(argv[i], "--no-ttft"))
            a->no_ttft = true;
        else if (!strcmp(argv[i], "--internal-ttft-child"))
            a->child = true;
        else
            return dg_usage_error("bench", "unknown option '%s'", argv[i]);
    }
    if ((p && parse_long("-p", p, 0, 1 << 20, &a->p)) || (n && parse_long("-n", n, 0, 1 << 20, &a->n)) ||
        (r && parse_long("-r", r, 1, MAX_REPS, &a->r)) || (c && parse_long("-c", c, 1, 1 << 24, &a->ctx)) ||
        (bw && parse_long("--bandwidth-mib", bw, 0, 1 << 16, &a->bw_mib)) ||
        (se && parse_long("--sync-every", se, 0, 256, &a->sync)))
        return 2;
    a->ctx_set = c != NULL;
    a->bw_set = bw != NULL;
    if (!a->model) {
        dg_usage_error("bench", "-m MODEL is required");
        return 2;
    }
    if (a->p == 0 && a->n == 0 && !a->po.print_plan) {
        dg_usage_error("bench", "-p and -n are both 0: nothing to measure");
        return 2;
    }
    /* The generation loop keeps one free position after its prompt token. */
    long need = a->p > a->n + (a->sync > 0) ? a->p : a->n + (a->sync > 0);
    if (!a->ctx_set)
        a->ctx = need > 0 ? need : 1;
    else if (a->ctx < need) {
        dg_usage_error("bench", "-c %ld is smaller than the %ld tokens a test needs", a->ctx, need);
        return 2;
    }
    return 0;
}

/* Valid ids spread over the vocabulary (llama-bench also benchmarks random tokens). */
static void random_ids(int32_t *ids, long n, int vocab)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)vocab);
    }
}

struct stats {
    double mean, sd;
};

static struct stats stats_of(const double *v, int n)
{
    struct stats s = {0, 0};
    for (int i = 0; i < n; i++)
        s.mean += v[i];
    s.mean /= n > 0 ? n : 1;
    if (n > 1) {
        for (int i = 0; i < n; i++)
            s.sd += (v[i] - s.mean) * (v[i] - s.mean);
        s.sd = sqrt(s.sd / (n - 1)); /* sample stddev, as llama-bench reports */
    }
    return s;
}

/* ---- the time-to-first-token child ---- */

static int run_child(const struct args *a, const struct dg_settings *s)
{
    double g0 = now_ms();
    struct dg_gl *gl = NULL;
    dg_status st = dg_cli_gl_open(s, &gl);
    if (st)
        return dg_report_status(st);
    double gl_ms = now_ms() - g0;
    struct dg_model m;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_exec *ex = NULL;
    int32_t *ids = NULL;
    long p = a->p > 0 ? a->p : 1;
    double t0 = now_ms(), t_load = 0, t_end = 0;
    if ((st = dg_model_open(a->model, &m))) {
        dg_gl_close(gl);
        return dg_report_status(st);
    }
    struct dg_exec_options eo = {.ctx = (int)p};
    uint32_t first = 0;
    if ((st = dg_kp_registry_load_default(&reg)) || (st = dg_cli_plan_build(&a->po, dg_gl_caps(gl), &m, &reg, &plan, &path)) ||
        (st = dg_exec_create(gl, &m, &plan, &reg, &path, &eo, &ex)))
        goto out;
    t_load = now_ms();
    ids = malloc((size_t)p * sizeof *ids);
    if (!ids) {
        st = dg_fail(DG_E_NOMEM, "out of memory");
        goto out;
    }
    random_ids(ids, p, m.hp.vocab);
    if ((st = dg_exec_forward(ex, ids, (int)p, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &first, 1)))
        goto out;
    t_end = now_ms();
    struct dg_program_cache_info ci;
    dg_gl_program_cache_info(gl, &ci);
    printf("{\"ttft_ms\": %.3f, \"load_ms\": %.3f, \"prefill_ms\": %.3f, \"gl_open_ms\": %.3f, "
           "\"programs_compiled\": %llu, \"programs_loaded\": %llu, \"program_build_ms\": %.3f, "
           "\"program_cache\": %s}\n",
           t_end - t0, t_load - t0, t_end - t_load, gl_ms, (unsigned long long)ci.compiled,
           (unsigned long long)ci.loaded, ci.build_ms, ci.enabled ? "true" : "false");
    fflush(stdout);
out:
    free(ids);
    dg_exec_destroy(ex);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    dg_gl_close(gl);
    dg_model_close(&m);
    return dg_report_status(st);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Runs this binary with --internal-ttft-child and the cache folders under `cache_root`; parses its line. */
static dg_status spawn_child(int argc, char **argv, const char *cache_root, cJSON **out)
{
    *out = NULL;
    char **cargv = calloc((size_t)argc + 3, sizeof *cargv);
    int n_env = 0;
    while (environ[n_env])
        n_env++;
    char **cenv = calloc((size_t)n_env + 5, sizeof *cenv);
    char xdg[4200], mesa[4200], nv[4200], tuner[4200] = "DOPPLER_GL_TUNER_DIR=";
    snprintf(xdg, sizeof xdg, "XDG_CACHE_HOME=%s/xdg", cache_root);
    /* the children run the plan the parent measures: the same cached tune winners */
    bool tuner_dir = dg_tune_dir(tuner + strlen(tuner), sizeof tuner - strlen(tuner));
    snprintf(mesa, sizeof mesa, "MESA_SHADER_CACHE_DIR=%s/mesa", cache_root);
    snprintf(nv, sizeof nv, "__GL_SHADER_DISK_CACHE_PATH=%s/nv", cache_root);
    if (!cargv || !cenv) {
        free(cargv);
        free(cenv);
        return dg_fail(DG_E_NOMEM, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < n_env; i++)
        if (strncmp(environ[i], "XDG_CACHE_HOME=", 15) && strncmp(environ[i], "MESA_SHADER_CACHE_DIR=", 22) &&
            strncmp(environ[i], "__GL_SHADER_DISK_CACHE_PATH=", 28) && strncmp(environ[i], "DOPPLER_GL_TUNER_DIR=", 21))
            cenv[k++] = environ[i];
    if (tuner_dir)
        cenv[k++] = tuner;
    cenv[k++] = xdg;
    cenv[k++] = mesa;
    cenv[k++] = nv;
    cenv[k] = NULL;
    cargv[0] = "/proc/self/exe";
    for (int i = 0; i < argc; i++)
        cargv[i + 1] = argv[i];
    cargv[argc + 1] = "--internal-ttft-child";
    cargv[argc + 2] = NULL;

    int fd[2];
    dg_status st = DG_OK;
    if (pipe(fd) != 0) {
        free(cargv);
        free(cenv);
        return dg_fail(DG_E_IO, "time to first token: pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, cargv, cenv);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    free(cargv);
    free(cenv);
    if (e) {
        close(fd[0]);
        return dg_fail(DG_E_IO, "time to first token: cannot start /proc/self/exe: %s", strerror(e));
    }
    char buf[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            len += (size_t)r;
    buf[len] = 0;
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return dg_fail(DG_E_INTERNAL, "time to first token: the child run failed (exit status %d; its error is "
                       "above)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    *out = cJSON_Parse(buf);
    if (!*out || !cJSON_IsNumber(cJSON_GetObjectItem(*out, "ttft_ms"))) {
        cJSON_Delete(*out);
        *out = NULL;
        st = dg_fail(DG_E_INTERNAL, "time to first token: unexpected child output '%.200s'", buf);
    }
    return st;
}

static dg_status measure_ttft(int argc, char **argv, cJSON **cold, cJSON **warm)
{
    const char *tmpdir = getenv("TMPDIR");
    char root[4096];
    snprintf(root, sizeof root, "%s/doppler-gl-bench-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(root))
        return dg_fail(DG_E_IO, "%s: cannot create a temporary folder: %s", root, strerror(errno));
    dg_status st = spawn_child(argc, argv, root, cold);
    if (!st)
        st = spawn_child(argc, argv, root, warm);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return st;
}

/* ---- decode's bytes per token (the roofline's numerator) ---- */

/* Bytes a weight occupies on the GPU, following the executor's format rules (pipe/weights.c). */
static uint64_t gpu_bytes(const struct dg_tensor *t, const char *weight_format)
{
    bool matrix = t->ndim >= 2;
    int64_t cols = t->shape[t->ndim - 1];
    uint64_t rows = cols ? (uint64_t)(dg_tensor_nelems(t) / cols) : 0;
    enum dg_dtype dt = dg_exec_gpu_dtype(weight_format, t->dtype, matrix);
    bool q = dg_dtype_info(t->dtype)->quantized;
    if (matrix && dt == DG_DT_Q4_K && !q && (!strcmp(t->name, "lm_head") || !strcmp(t->name, "embed_tokens")))
        dt = DG_DT_Q6_K;
    uint64_t rb = dg_dtype_row_bytes(dt, (uint64_t)cols);
    return rb ? rb * rows : t->nbytes;
}

/* Weights one decode token reads: all, less the embedding rows not looked up when the LM head is its own
 * tensor, less the experts a token does not route to. */
static uint64_t decode_weight_bytes(const struct dg_model *m, const char *wf, uint64_t total)
{
    uint64_t skip = 0;
    const struct dg_tensor *emb = dg_model_find(m, "embed_tokens");
    if (emb && dg_model_find(m, "lm_head") && emb->ndim == 2 && emb->shape[0] > 0) {
        uint64_t b = gpu_bytes(emb, wf);
        skip += b - b / (uint64_t)emb->shape[0];
    }
    const struct dg_hparams *hp = &m->hp;
    if (hp->n_experts > 0 && hp->n_experts_used < hp->n_experts)
        for (int i = 0; i < m->n_tensors; i++)
            if (strstr(m->tensors[i].name, ".mlp.experts.")) {
                uint64_t b = gpu_bytes(&m->tensors[i], wf);
                skip += b / (uint64_t)hp->n_experts * (uint64_t)(hp->n_experts - hp->n_experts_used);
            }
    return skip < total ? total - skip : total;
}

/* Mean KV bytes a decode token at positions 0..n-1 reads: every cached position of every layer, up to
 * the window on sliding layers. */
static double decode_kv_bytes(const struct dg_hparams *hp, uint64_t kv_bytes, int ctx, long n)
{
    if (n <= 0 || ctx <= 0 || hp->n_layers <= 0)
        return 0;
    double per_pos_layer = (double)kv_bytes / (double)ctx / hp->n_layers;
    double sum = 0;
    for (int L = 0; L < hp->n_layers; L++)
        for (long pos = 0; pos < n; pos++) {
            long seen = pos + 1;
            if (hp->layer_sliding[L] && hp->sliding_window > 0 && seen > hp->sliding_window)
                seen = hp->sliding_window;
            sum += (double)seen * per_pos_layer;
        }
    return sum / (double)n;
}

/* ---- output ---- */

static cJSON *test_json(const char *name, long tokens, const double *tps, const double *ms, int reps)
{
    cJSON *o = cJSON_CreateObject();
    struct stats s = stats_of(tps, reps), t = stats_of(ms, reps);
    cJSON_AddStringToObject(o, "test", name);
    cJSON_AddNumberToObject(o, "tokens", (double)tokens);
    cJSON_AddNumberToObject(o, "tok_s_mean", s.mean);
    cJSON_AddNumberToObject(o, "tok_s_stddev", s.sd);
    cJSON_AddNumberToObject(o, "ms_mean", t.mean);
    cJSON_AddNumberToObject(o, "ms_stddev", t.sd);
    cJSON *a = cJSON_AddArrayToObject(o, "samples_tok_s");
    for (int i = 0; i < reps; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(tps[i]));
    return o;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_table(const cJSON *root, const char *saved)
{
    const cJSON *dev = cJSON_GetObjectItem(root, "device"), *model = cJSON_GetObjectItem(root, "model");
    const cJSON *quant = cJSON_GetObjectItem(root, "quant");
    printf("model    %s (%s, %.3g M params, %.2f bits/weight)\n", cJSON_GetStringValue(cJSON_GetObjectItem(model, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItem(quant, "label")), num(model, "params") / 1e6,
           num(quant, "bits_per_weight"));
    printf("device   %s, %s (%s)\n", cJSON_GetStringValue(cJSON_GetObjectItem(dev, "renderer")),
           cJSON_GetStringValue(cJSON_GetObjectItem(dev, "driver")),
           cJSON_GetStringValue(cJSON_GetObjectItem(dev, "platform")));
    printf("path     %s (profile %s), commit %s\n\n", cJSON_GetStringValue(cJSON_GetObjectItem(root, "kernel_path")),
           cJSON_GetStringValue(cJSON_GetObjectItem(root, "kernel_profile")),
           cJSON_GetStringValue(cJSON_GetObjectItem(root, "git_commit")));
    printf("%-10s %14s %10s %12s\n", "test", "t/s", "stddev", "ms");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(root, "tests"))
        printf("%-10s %14.2f %10.2f %12.2f\n", cJSON_GetStringValue(cJSON_GetObjectItem(t, "test")),
               num(t, "tok_s_mean"), num(t, "tok_s_stddev"), num(t, "ms_mean"));
    printf("\n");
    const cJSON *tt = cJSON_GetObjectItem(root, "ttft");
    if (cJSON_IsObject(tt))
        printf("first token    cold %.1f ms, warm %.1f ms (%g-token prompt; loading %.1f / %.1f ms)\n",
               num(cJSON_GetObjectItem(tt, "cold"), "ttft_ms"), num(cJSON_GetObjectItem(tt, "warm"), "ttft_ms"),
               num(tt, "prompt_tokens"), num(cJSON_GetObjectItem(tt, "cold"), "load_ms"),
               num(cJSON_GetObjectItem(tt, "warm"), "load_ms"));
    const cJSON *mem = cJSON_GetObjectItem(root, "memory");
    printf("GPU memory     %.1f MiB peak (weights %.1f, KV cache %.1f, activations %.1f MiB)\n",
           num(mem, "gpu_bytes_peak") / 1048576, num(mem, "weight_bytes") / 1048576, num(mem, "kv_bytes") / 1048576,
           num(mem, "slot_bytes") / 1048576);
    const cJSON *pt = cJSON_GetObjectItem(root, "per_token");
    printf("per token      %.1f dispatches, %.1f barriers, %.0f bytes read back (decode); prefill pass %.0f "
           "dispatches\n",
           num(pt, "dispatches_decode"), num(pt, "barriers_decode"), num(pt, "readback_bytes_decode"),
           num(pt, "dispatches_prefill_pass"));
    if (num(pt, "cpu_submit_us_decode") > 0)
        printf("cpu submit     %.1f us to issue one decode token's dispatches (CPU time, not GPU time)\n",
               num(pt, "cpu_submit_us_decode"));
    const cJSON *rf = cJSON_GetObjectItem(root, "roofline");
    if (cJSON_IsObject(rf)) {
        /* the read path the figures are from, and the other path's best where it was measured */
        const char *rp = cJSON_GetStringValue(cJSON_GetObjectItem(rf, "read_path"));
        bool img = rp && !strcmp(rp, "image");
        double other = num(rf, img ? "bandwidth_gbps_ssbo" : "bandwidth_gbps_image");
        char paths[64] = "";
        if (rp && other > 0)
            snprintf(paths, sizeof paths, "; %s loads; %s %.2f GB/s", img ? "image" : "SSBO", img ? "SSBO" : "image",
                     other);
        else if (rp)
            snprintf(paths, sizeof paths, "; %s loads", img ? "image" : "SSBO");
        printf("bandwidth      %.2f GB/s best, %.2f GB/s median (%.0f MiB x %.0f, %s%s)\n",
               num(rf, "bandwidth_gbps_best"), num(rf, "bandwidth_gbps_median"), num(rf, "buffer_bytes") / 1048576,
               num(rf, "repetitions"), cJSON_GetStringValue(cJSON_GetObjectItem(rf, "timing_source")), paths);
        if (num(rf, "decode_gbps") > 0)
            printf("roofline       decode reads %.3f MB/token -> %.2f GB/s = %.1f%% of the measured bandwidth\n",
                   num(rf, "decode_bytes_per_token") / 1e6, num(rf, "decode_gbps"), 100 * num(rf, "decode_share"));
    }
    if (saved && *saved)
        printf("saved          %s\n", saved);
}

/* ---- the command ---- */

static int run(int argc, char **argv)
{
    struct dg_settings s;
    int rc = dg_cli_begin("bench", &s);
    if (rc)
        return rc;
    struct args a = {.p = 512, .n = 128, .r = 3, .out_dir = "bench-results"};
    rc = parse(argc, argv, &s, &a);
    if (rc)
        return rc == 1 ? 0 : 2;
    dg_settings_apply_log(&s);
    if (a.child)
        return run_child(&a, &s);

    struct dg_model m;
    dg_status st = dg_model_open(a.model, &m);
    if (st)
        return dg_report_status(st);
    struct dg_gl *gl = NULL;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_exec *ex = NULL;
    struct dg_sampler *smp = NULL;
    int32_t *ids = NULL;
    cJSON *root = NULL, *cold = NULL, *warm = NULL;
    char *text = NULL;
    char saved[4400] = "";
    if ((st = dg_cli_gl_open(&s, &gl)) || (st = dg_kp_registry_load_default(&reg)) ||
        (st = dg_cli_plan_build(&a.po, dg_gl_caps(gl), &m, &reg, &plan, &path)))
        goto out;
    if (a.po.print_plan) {
        dg_kplan_print(stdout, &plan, &path, &reg);
        goto out;
    }
    if (!a.no_ttft && a.p > 0) {
        DG_INFO("bench: time to first token (cold, then warm program caches)");
        if ((st = measure_ttft(argc, argv, &cold, &warm)))
            goto out;
    }
    long nid = a.p > a.n ? a.p : a.n;
    ids = malloc((size_t)(nid > 0 ? nid : 1) * sizeof *ids);
    if (!ids) {
        st = dg_fail(DG_E_NOMEM, "out of memory");
        goto out;
    }
    random_ids(ids, nid, m.hp.vocab);
    double c0 = now_ms();
    struct dg_exec_options eo = {.ctx = (int)a.ctx};
    if ((st = dg_exec_create(gl, &m, &plan, &reg, &path, &eo, &ex)))
        goto out;
    double create_ms = now_ms() - c0;
    int vocab = m.hp.vocab;
    uint32_t tok = 0;

    /* Warm-up, as llama-bench does: a prefill pass and two decode tokens, so first-use compiles and
     * page faults are not measured. The prefill pass repeats (up to WARM_PASSES) until one takes within
     * 10% of the one before: on the H200 the first timed pass after a single warm-up pass was often 2-4x
     * slower than the rest (pp512 F16 5479 against 11946 / 11957 tok/s), which that pass now absorbs. */
    DG_INFO("bench: warm-up");
    int warm_passes = 0;
    if (a.p > 0) {
        enum { WARM_PASSES = 4 };
        long w = a.p < 512 ? a.p : 512;
        double prev = -1;
        while (warm_passes < WARM_PASSES) {
            double w0 = now_ms();
            if ((st = dg_exec_forward(ex, ids, (int)w, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &tok, 1)))
                goto out;
            double took = now_ms() - w0;
            dg_exec_reset(ex);
            warm_passes++;
            if (prev > 0 && took <= prev * 1.1 && took >= prev / 1.1)
                break;
            prev = took;
        }
    }
    if (a.n > 0) {
        for (int i = 0; i < 2 && i < a.n; i++)
            if ((st = dg_exec_forward(ex, ids + i, 1, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &tok, 1)))
                goto out;
        dg_exec_reset(ex);
    }

    double pp_tps[MAX_REPS], pp_ms[MAX_REPS], tg_tps[MAX_REPS], tg_ms[MAX_REPS];
    uint64_t pp_disp = 0, pp_bar = 0, tg_disp = 0, tg_bar = 0, tg_readback = 0, pp_readback = 0;
    for (int r = 0; r < a.r && a.p > 0; r++) {
        DG_INFO("bench: pp%ld repetition %d/%ld", a.p, r + 1, a.r);
        dg_exec_reset(ex);
        glFinish();
        uint64_t d0 = dg_gl_dispatch_count(gl), b0 = dg_gl_barrier_count(gl);
        double t0 = now_ms();
        if ((st = dg_exec_forward(ex, ids, (int)a.p, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &tok, 1)))
            goto out;
        pp_ms[r] = now_ms() - t0;
        pp_tps[r] = (double)a.p / (pp_ms[r] / 1e3);
        pp_disp = dg_gl_dispatch_count(gl) - d0;
        pp_bar = dg_gl_barrier_count(gl) - b0;
        pp_readback = 4;
    }
    if (a.sync > 0 && a.n > 0) {
        struct dg_sampler_options so = {.vocab = vocab, .history_cap = (int)a.ctx + 1};
        struct dg_sample_params sp;
        dg_sample_params_default(&sp);
        sp.temp = 0; /* greedy: the same work per token as the path's argmax, through the real loop */
        if ((st = dg_sampler_create(gl, &so, &smp)) || (st = dg_sampler_set_params(smp, &sp)))
            goto out;
    }
    for (int r = 0; r < a.r && a.n > 0 && smp; r++) {
        DG_INFO("bench: tg%ld repetition %d/%ld (generation loop, sync every %ld)", a.n, r + 1, a.r, a.sync);
        dg_exec_reset(ex);
        if ((st = dg_sampler_reset(smp, NULL, 0)))
            goto out;
        glFinish();
        uint64_t d0 = dg_gl_dispatch_count(gl), b0 = dg_gl_barrier_count(gl);
        struct dg_generate_opts go = {.n_predict = (int)a.n, .sync_every = (int)a.sync};
        struct dg_generate_stats gs;
        double t0 = now_ms();
        /* One prompt token: its forward is a decode step, so n forwards give the n generated ids. */
        if ((st = dg_generate(ex, smp, ids, 1, &go, NULL, NULL, &gs)))
            goto out;
        tg_ms[r] = now_ms() - t0;
        if (gs.n_generated != a.n) {
            st = dg_fail(DG_E_INTERNAL, "bench: the generation loop stopped after %d of %ld tokens (%s)",
                         gs.n_generated, a.n, dg_stop_reason_name(gs.stop));
            goto out;
        }
        tg_tps[r] = (double)a.n / (tg_ms[r] / 1e3);
        tg_disp = dg_gl_dispatch_count(gl) - d0;
        tg_bar = dg_gl_barrier_count(gl) - b0;
        /* each read-back maps the history header (16 bytes) and the group's ids */
        tg_readback = (uint64_t)gs.readbacks * 16 + (uint64_t)a.n * 4;
    }
    for (int r = 0; r < a.r && a.n > 0 && !smp; r++) {
        DG_INFO("bench: tg%ld repetition %d/%ld", a.n, r + 1, a.r);
        dg_exec_reset(ex);
        glFinish();
        uint64_t d0 = dg_gl_dispatch_count(gl), b0 = dg_gl_barrier_count(gl), rb = 0;
        int32_t next = ids[0];
        double t0 = now_ms();
        /* Each token feeds back the id the path's sampling step chose: one 4-byte read per token, the
         * synchronisation real generation has (llama-bench synchronises per token too). */
        for (long i = 0; i < a.n; i++) {
            if ((st = dg_exec_forward(ex, &next, 1, NULL, NULL)) || (st = dg_exec_read_tokens(ex, &tok, 1)))
                goto out;
            rb += 4;
            next = (int32_t)(tok % (uint32_t)vocab);
        }
        tg_ms[r] = now_ms() - t0;
        tg_tps[r] = (double)a.n / (tg_ms[r] / 1e3);
        tg_disp = dg_gl_dispatch_count(gl) - d0;
        tg_bar = dg_gl_barrier_count(gl) - b0;
        tg_readback = rb;
    }
    struct dg_pool_stats ps;
    dg_gl_pool_stats(gl, &ps);
    struct dg_exec_stats es;
    dg_exec_stats(ex, &es);

    struct dg_roofline rl;
    bool have_rl = false;
    if (!a.bw_set || a.bw_mib > 0) {
        DG_INFO("bench: read bandwidth");
        struct dg_roofline_options ro = {.bytes = (uint64_t)a.bw_mib << 20};
        if ((st = dg_roofline_measure(gl, &ro, &rl)))
            goto out;
        have_rl = true;
    }

    /* ---- the result ---- */
    char date[32], iso[40];
    dg_report_date(date, sizeof date, iso, sizeof iso);
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "doppler-gl bench");
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
    cJSON_AddStringToObject(root, "weight_format", path.weight_format);
    cJSON_AddStringToObject(root, "kv_dtype", plan.kv_dtype.value[0] ? plan.kv_dtype.value : path.kv_dtype);
    cJSON_AddStringToObject(root, "timing_source", dg_gl_timing_source(gl));
    cJSON *cfg = cJSON_AddObjectToObject(root, "config");
    cJSON_AddNumberToObject(cfg, "n_prompt", (double)a.p);
    cJSON_AddNumberToObject(cfg, "n_gen", (double)a.n);
    cJSON_AddNumberToObject(cfg, "repetitions", (double)a.r);
    cJSON_AddNumberToObject(cfg, "ctx", (double)a.ctx);
    cJSON_AddNumberToObject(cfg, "sync_every", (double)a.sync);
    cJSON_AddStringToObject(cfg, "decode_loop", a.sync > 0 ? "generation loop: GPU greedy sampler feeding the next "
                                                             "step on the GPU, ids read back once per sync_every"
                                                           : "path argmax, one 4-byte id read back per token");
    cJSON *tests = cJSON_AddArrayToObject(root, "tests");
    char name[32];
    cJSON *pp = NULL, *tg = NULL;
    if (a.p > 0) {
        snprintf(name, sizeof name, "pp%ld", a.p);
        cJSON_AddItemToArray(tests, pp = test_json(name, a.p, pp_tps, pp_ms, (int)a.r));
        cJSON_AddNumberToObject(pp, "warmup_passes", warm_passes);
    }
    if (a.n > 0) {
        snprintf(name, sizeof name, "tg%ld", a.n);
        cJSON_AddItemToArray(tests, tg = test_json(name, a.n, tg_tps, tg_ms, (int)a.r));
    }
    /* Shortcuts to the two tests (references into "tests"). */
    if (pp)
        cJSON_AddItemReferenceToObject(root, "pp", pp);
    else
        cJSON_AddNullToObject(root, "pp");
    if (tg)
        cJSON_AddItemReferenceToObject(root, "tg", tg);
    else
        cJSON_AddNullToObject(root, "tg");
    if (cold && warm) {
        cJSON *tt = cJSON_AddObjectToObject(root, "ttft");
        cJSON_AddNumberToObject(tt, "prompt_tokens", (double)a.p);
        cJSON_AddNumberToObject(tt, "cold_ms", num(cold, "ttft_ms"));
        cJSON_AddNumberToObject(tt, "warm_ms", num(warm, "ttft_ms"));
        cJSON_AddStringToObject(tt, "method", "a new process each; cold: empty doppler-gl, Mesa and NVIDIA program "
                                              "caches in a temporary folder; warm: the caches the cold run left. "
                                              "From opening the model to the first sampled id on the host.");
        cJSON_AddItemToObject(tt, "cold", cold);
        cJSON_AddItemToObject(tt, "warm", warm);
        cold = warm = NULL;
    } else {
        cJSON_AddNullToObject(root, "ttft");
    }
    cJSON *mem = cJSON_AddObjectToObject(root, "memory");
    cJSON_AddNumberToObject(mem, "gpu_bytes_peak", (double)ps.bytes_peak);
    cJSON_AddNumberToObject(mem, "weight_bytes", (double)es.weight_bytes);
    cJSON_AddNumberToObject(mem, "kv_bytes", (double)es.kv_bytes);
    cJSON_AddNumberToObject(mem, "slot_bytes", (double)es.slot_bytes);
    cJSON_AddNumberToObject(mem, "load_ms", create_ms);
    cJSON *pt = cJSON_AddObjectToObject(root, "per_token");
    double nd = a.n > 0 ? (double)a.n : 1;
    cJSON_AddNumberToObject(pt, "dispatches_decode", a.n > 0 ? (double)tg_disp / nd : es.dispatches_decode);
    cJSON_AddNumberToObject(pt, "barriers_decode", a.n > 0 ? (double)tg_bar / nd : es.barriers_decode);
    cJSON_AddNumberToObject(pt, "readback_bytes_decode", a.n > 0 ? (double)tg_readback / nd : 0);
    cJSON_AddNumberToObject(pt, "syncs_decode", a.n > 0 ? (a.sync > 0 ? 1.0 / (double)a.sync : 1.0) : 0);
    cJSON_AddNumberToObject(pt, "dispatches_per_layer_decode", es.dispatches_per_layer_decode);
    cJSON_AddNumberToObject(pt, "dispatches_prefill_pass", a.p > 0 ? (double)pp_disp : es.dispatches_prefill);
    cJSON_AddNumberToObject(pt, "barriers_prefill_pass", a.p > 0 ? (double)pp_bar : es.barriers_prefill);
    cJSON_AddNumberToObject(pt, "readback_bytes_prefill", (double)pp_readback);
    cJSON_AddNumberToObject(pt, "cpu_submit_us_decode", es.submit_us_decode);
    if (have_rl) {
        cJSON *rf = cJSON_AddObjectToObject(root, "roofline");
        cJSON_AddNumberToObject(rf, "bandwidth_gbps_best", rl.best_gbps);
        cJSON_AddNumberToObject(rf, "bandwidth_gbps_median", rl.median_gbps);
        /* the figures above are the faster read path's; each path's best, null where not measured */
        cJSON_AddStringToObject(rf, "read_path", rl.path);
        if (rl.ssbo_best_gbps > 0)
            cJSON_AddNumberToObject(rf, "bandwidth_gbps_ssbo", rl.ssbo_best_gbps);
        else
            cJSON_AddNullToObject(rf, "bandwidth_gbps_ssbo");
        if (rl.image_best_gbps > 0)
            cJSON_AddNumberToObject(rf, "bandwidth_gbps_image", rl.image_best_gbps);
        else
            cJSON_AddNullToObject(rf, "bandwidth_gbps_image");
        cJSON_AddNumberToObject(rf, "buffer_bytes", (double)rl.bytes);
        cJSON_AddNumberToObject(rf, "repetitions", rl.reps);
        cJSON_AddNumberToObject(rf, "ranges", rl.n_ranges);
        cJSON_AddNumberToObject(rf, "workgroup_size", rl.wg_size);
        cJSON_AddStringToObject(rf, "timing_source", rl.timing);
        cJSON *smp = cJSON_AddArrayToObject(rf, "samples_gbps");
        for (int i = 0; i < rl.reps; i++)
            cJSON_AddItemToArray(smp, cJSON_CreateNumber((double)rl.bytes / (rl.ms[i] * 1e6)));
        uint64_t wbytes = decode_weight_bytes(&m, path.weight_format, es.weight_bytes);
        double kv = decode_kv_bytes(&m.hp, es.kv_bytes, dg_exec_ctx(ex), a.n);
        double per_tok = (double)wbytes + kv;
        cJSON_AddNumberToObject(rf, "weight_bytes_per_token", (double)wbytes);
        cJSON_AddNumberToObject(rf, "kv_bytes_per_token_mean", kv);
        cJSON_AddNumberToObject(rf, "decode_bytes_per_token", per_tok);
        if (tg) {
            double tps = num(tg, "tok_s_mean");
            cJSON_AddNumberToObject(rf, "decode_gbps", per_tok * tps / 1e9);
            cJSON_AddNumberToObject(rf, "decode_share", rl.best_gbps > 0 ? per_tok * tps / 1e9 / rl.best_gbps : 0);
            cJSON_AddNumberToObject(rf, "decode_tok_s_at_roofline", per_tok > 0 ? rl.best_gbps * 1e9 / per_tok : 0);
        }
        cJSON_AddStringToObject(rf, "method", "decode_share = (weight bytes + mean KV bytes read per decode token) x "
                                              "tg tok/s / best measured read bandwidth (of read_path, the faster of "
                                              "SSBO and image loads)");
    } else {
        cJSON_AddNullToObject(root, "roofline");
    }
    text = cJSON_Print(root);
    if (!text) {
        st = dg_fail(DG_E_NOMEM, "out of memory");
        goto out;
    }
    if (!a.no_save) {
        char gpu[96], mname[128], stem[400];
        dg_report_gpu_name(dg_gl_caps(gl), gpu, sizeof gpu);
        dg_report_model_name(m.path, mname, sizeof mname);
        snprintf(stem, sizeof stem, "%s-%s-%s-%s", date, gpu, mname, dg_report_quant_label(&m));
        size_t len = strlen(text);
        char *withnl = malloc(len + 2);
        if (!withnl) {
            st = dg_fail(DG_E_NOMEM, "out of memory");
            goto out;
        }
        memcpy(withnl, text, len);
        withnl[len] = '\n';
        withnl[len + 1] = 0;
        st = dg_report_write_new(a.out_dir, stem, "json", withnl, saved, sizeof saved);
        free(withnl);
        if (st)
            goto out;
        DG_INFO("bench: wrote %s", saved);
    }
    if (a.json)
        puts(text);
    else
        print_table(root, saved);
out:
    dg_sampler_destroy(smp);
    free(text);
    cJSON_Delete(root);
    cJSON_Delete(cold);
    cJSON_Delete(warm);
    free(ids);
    dg_exec_destroy(ex);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    if (gl)
        dg_gl_close(gl);
    dg_model_close(&m);
    return dg_report_status(st);
}

DG_COMMAND(bench, "bench", "measure prefill and decode speed, first-token time and the bandwidth roofline", run)
