/* cmd_eval.c: `doppler-gl eval`: runs token ids teacher-forced through a model and writes the next-token
 * logits of every position (float32, one row per position), so the numbers can be compared with any
 * other implementation. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan_opts.h"
#include "pipe/exec.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl eval -m MODEL --tokens IDS|FILE [options]\n\n"
            "Runs the tokens teacher-forced and writes the next-token logits of every position.\n\n"
            "Options:\n"
            "  -m, --model PATH        model folder (Hugging Face or doppler-gl) or GGUF file\n"
            "  --tokens IDS|FILE       comma-separated ids (\"1,81,213\") or a file of ids (commas/whitespace)\n"
            "  -c, --ctx N             context length (KV cache positions; default: the token count)\n"
            "  --decode                after the first token, feed one token at a time (the decode path)\n"
            "  --logits-out FILE       write [positions][vocab] float32 logits\n"
            "  --hidden-out FILE       write [layers+1][positions][hidden] float32 hidden states (debugging)\n"
            "  --json                  print a JSON summary\n"
            "%s%s"
            "  -h, --help              show this help\n",
            DG_CLI_PLAN_HELP, DG_CLI_COMMON_HELP);
}

static int parse_ids(const char *arg, int32_t **out, int *n)
{
    const char *text = arg;
    char *file = NULL;
    bool is_list = *arg != 0;
    for (const char *p = arg; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != ',' && *p != ' ')
            is_list = false;
    if (!is_list) {
        FILE *f = fopen(arg, "rb");
        if (!f)
            return -1;
        size_t cap = 1 << 16, len = 0;
        file = malloc(cap + 1);
        size_t r;
        while (file && (r = fread(file + len, 1, cap - len, f)) > 0) {
            len += r;
            if (len == cap) {
                char *nf = realloc(file, cap * 2 + 1);
                if (!nf) {
                    free(file);
                    file = NULL;
                    break;
                }
                file = nf;
                cap *= 2;
            }
        }
        fclose(f);
        if (!file)
            return -1;
        file[len] = 0;
        text = file;
    }
    int cap = 256;
    *out = malloc((size_t)cap * sizeof **out);
    *n = 0;
    const char *p = text;
    while (*out && *p) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!*p)
            break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffff) {
            free(file);
            return -2;
        }
        if (*n == cap) {
            cap *= 2;
            int32_t *no = realloc(*out, (size_t)cap * sizeof **out);
            if (!no)
                break;
            *out = no;
        }
        (*out)[(*n)++] = (int32_t)v;
        p = end;
    }
    free(file);
    return *out ? 0 : -1;
}

static dg_status write_f32(const char *path, const float *data, size_t n)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return dg_fail(DG_E_IO, "%s: cannot create: %m", tmp);
    bool ok = fwrite(data, 4, n, f) == n;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return dg_fail(DG_E_IO, "%s: write failed", path);
    }
    return DG_OK;
}

static int run(int argc, char **argv)
{
    struct dg_settings s;
    int rc = dg_cli_begin("eval", &s);
    if (rc)
        return rc;
    const char *model = NULL, *tokens = NULL, *ctx_s = NULL, *logits_out = NULL, *hidden_out = NULL;
    bool json = false, decode = false;
    struct dg_cli_plan_opts po = {0};
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if ((r = dg_cli_common_option("eval", argc, argv, &i, &s)) || (r = dg_cli_plan_option("eval", argc, argv, &i, &po)) ||
            (r = dg_cli_option_value("eval", "--model", argc, argv, &i, &model)) ||
            (r = dg_cli_option_value("eval", "-m", argc, argv, &i, &model)) ||
            (r = dg_cli_option_value("eval", "--tokens", argc, argv, &i, &tokens)) ||
            (r = dg_cli_option_value("eval", "--ctx", argc, argv, &i, &ctx_s)) ||
            (r = dg_cli_option_value("eval", "-c", argc, argv, &i, &ctx_s)) ||
            (r = dg_cli_option_value("eval", "--logits-out", argc, argv, &i, &logits_out)) ||
            (r = dg_cli_option_value("eval", "--hidden-out", argc, argv, &i, &hidden_out))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--decode"))
            decode = true;
        else
            return dg_usage_error("eval", "unknown option '%s'", argv[i]);
    }
    dg_settings_apply_log(&s);
    if (!model)
        return dg_usage_error("eval", "-m MODEL is required");
    if (!tokens && !po.print_plan)
        return dg_usage_error("eval", "--tokens IDS|FILE is required");
    int32_t *ids = NULL;
    int n = 0;
    if (tokens) {
        int pr = parse_ids(tokens, &ids, &n);
        if (pr == -1)
            return dg_usage_error("eval", "--tokens: '%s' is neither a list of ids nor a readable file", tokens);
        if (pr == -2 || n == 0) {
            free(ids);
            return dg_usage_error("eval", "--tokens: expected non-negative integer ids separated by commas or spaces");
        }
    }
    long ctx = n;
    if (ctx_s) {
        char *end;
        ctx = strtol(ctx_s, &end, 10);
        if (*end || ctx < 1 || ctx > (1 << 24)) {
            free(ids);
            return dg_usage_error("eval", "-c: '%s' is not a context length in [1, 16777216]", ctx_s);
        }
    }
    struct dg_model m;
    dg_status st = dg_model_open(model, &m);
    if (st) {
        free(ids);
        return dg_report_status(st);
    }
    struct dg_gl *gl = NULL;
    struct dg_kp_registry reg = {0};
    struct dg_kplan plan;
    struct dg_kpath path = {0};
    struct dg_exec *ex = NULL;
    float *logits = NULL, *hidden = NULL;
    if ((st = dg_cli_gl_open(&s, &gl)) || (st = dg_kp_registry_load_default(&reg)) ||
        (st = dg_cli_plan_build(&po, dg_gl_caps(gl), &m, &reg, &plan, &path)))
        goto out;
    if (po.print_plan) {
        dg_kplan_print(stdout, &plan, &path, &reg);
        goto out;
    }
    struct dg_exec_options eo = {.ctx = (int)ctx, .max_batch = decode ? 1 : (n < 512 ? n : 512)};
    if ((st = dg_exec_create(gl, &m, &plan, &reg, &path, &eo, &ex)))
        goto out;
    size_t V = (size_t)m.hp.vocab, H = (size_t)m.hp.hidden, L = (size_t)m.hp.n_layers + 1;
    logits = malloc((size_t)n * V * 4);
    if (hidden_out)
        hidden = calloc(L * (size_t)n * H, 4);
    if (!logits || (hidden_out && !hidden)) {
        st = dg_fail(DG_E_NOMEM, "out of memory for %d positions of logits", n);
        goto out;
    }
    if (decode) {
        if (hidden_out) {
            st = dg_fail(DG_E_USAGE, "--hidden-out needs the prefill pass (drop --decode)");
            goto out;
        }
        for (int i = 0; i < n && !st; i++)
            st = dg_exec_forward(ex, ids + i, 1, logits + (size_t)i * V, NULL);
    } else {
        st = dg_exec_forward(ex, ids, n, logits, hidden);
    }
    if (st)
        goto out;
    if (logits_out && (st = write_f32(logits_out, logits, (size_t)n * V)))
        goto out;
    if (hidden_out && (st = write_f32(hidden_out, hidden, L * (size_t)n * H)))
        goto out;
    struct dg_exec_stats es;
    dg_exec_stats(ex, &es);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kernel_path", path.id);
        cJSON_AddNumberToObject(o, "positions", n);
        cJSON_AddNumberToObject(o, "vocab", (double)V);
        cJSON_AddNumberToObject(o, "dispatches_per_decode_token", es.dispatches_decode);
        cJSON_AddNumberToObject(o, "dispatches_per_layer", es.dispatches_per_layer_decode);
        cJSON *am = cJSON_AddArrayToObject(o, "argmax");
        for (int i = 0; i < n; i++) {
            size_t b = 0;
            for (size_t j = 1; j < V; j++)
                if (logits[(size_t)i * V + j] > logits[(size_t)i * V + b])
                    b = j;
            cJSON_AddItemToArray(am, cJSON_CreateNumber((double)b));
        }
        char *txt = cJSON_Print(o);
        if (txt)
            puts(txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("kernel path %s: %d positions, vocab %zu, %d dispatches per decode token (%d per layer)\n", path.id, n,
               V, es.dispatches_decode, es.dispatches_per_layer_decode);
        printf("argmax per position:");
        for (int i = 0; i < n; i++) {
            size_t b = 0;
            for (size_t j = 1; j < V; j++)
                if (logits[(size_t)i * V + j] > logits[(size_t)i * V + b])
                    b = j;
            printf(" %zu", b);
        }
        printf("\n");
    }
out:
    free(logits);
    free(hidden);
    free(ids);
    dg_exec_destroy(ex);
    dg_kpath_free(&path);
    dg_kp_registry_free(&reg);
    if (gl)
        dg_gl_close(gl);
    dg_model_close(&m);
    return dg_report_status(st);
}

DG_COMMAND(eval, "eval", "run token ids teacher-forced and write every position's logits", run)
