/* cmd_eval.c: `doppler-gl eval`: runs token ids teacher-forced through a model and writes the next-token
 * logits of every position (float32, one row per position), so the numbers can be compared with any
 * other implementation; with --perplexity, the perplexity of a text file by llama.cpp's method
 * (eval/perplexity.h). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan_opts.h"
#include "eval/perplexity.h"
#include "pipe/exec.h"
#include "tok/model_tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl eval -m MODEL --tokens IDS|FILE [options]\n"
            "       doppler-gl eval -m MODEL --perplexity FILE [-c N] [--chunks N] [--json]\n\n"
            "Runs the tokens teacher-forced and writes the next-token logits of every position, or measures the\n"
            "perplexity of a text with llama.cpp's method (chunks of N tokens, BOS first, second half scored).\n\n"
            "Options:\n"
            "  -m, --model PATH        model folder (Hugging Face or doppler-gl) or GGUF file\n"
            "  --tokens IDS|FILE       comma-separated ids (\"1,81,213\") or a file of ids (commas/whitespace)\n"
            "  -c, --ctx N             context length (KV cache positions; default: the token count); with\n"
            "                          --perplexity the chunk size (default: min(512, the model's context))\n"
            "  --perplexity FILE       perplexity of the UTF-8 text FILE, tokenized with the model's tokenizer\n"
            "  --chunks N              with --perplexity: score only the first N chunks (default: all)\n"
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

struct ppl_progress {
    bool tty;
    double t0;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void ppl_progress(void *arg, int chunk, int n_chunks, double ppl)
{
    struct ppl_progress *p = arg;
    if (!p->tty)
        return;
    double el = now_s() - p->t0;
    fprintf(stderr, "\rperplexity: chunk %d/%d  PPL %.4f  %.1f s, about %.0f s left   ", chunk, n_chunks, ppl, el,
            el / chunk * (n_chunks - chunk));
    if (chunk == n_chunks)
        fputc('\n', stderr);
    fflush(stderr);
}

/* --perplexity: tokenize FILE with the model's own tokenizer (BOS added as the tokenizer says, special-token
 * text not parsed, as llama-perplexity does) and score it in chunks of ctx tokens. */
static dg_status run_perplexity(struct dg_gl *gl, const struct dg_model *m, const char *model_path,
                                const struct dg_kplan *plan, const struct dg_kp_registry *reg,
                                const struct dg_kpath *path, const char *file, int ctx, int chunks, bool json)
{
    if (ctx <= 0)
        ctx = m->hp.max_pos > 0 && m->hp.max_pos < 512 ? m->hp.max_pos : 512;
    size_t len = 0;
    char *text = NULL;
    FILE *f = fopen(file, "rb");
    if (!f)
        return dg_fail(DG_E_IO, "%s: cannot open: %m", file);
    size_t cap = 1 << 16;
    text = malloc(cap);
    size_t r;
    while (text && (r = fread(text + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            char *nt = realloc(text, cap * 2);
            if (!nt) {
                free(text);
                text = NULL;
            }
            text = nt;
            cap *= 2;
        }
    }
    bool rerr = ferror(f);
    fclose(f);
    if (!text || rerr) {
        free(text);
        return dg_fail(rerr ? DG_E_IO : DG_E_NOMEM, "%s: cannot read", file);
    }
    struct dg_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    dg_status st = dg_tokenizer_for_model_path(model_path, &tok);
    if (!st)
        st = dg_tokenizer_encode(tok, text, len, DG_TOK_ADD_SPECIAL | DG_TOK_NO_PARSE_SPECIAL, &ids, &n);
    free(text);
    int32_t bos = tok ? dg_tokenizer_bos(tok) : -1;
    dg_tokenizer_free(tok);
    if (st) {
        free(ids);
        return dg_fail_context(st, "%s: tokenizing: ", file);
    }
    /* chunks start with BOS only when the tokenizer adds one (llama.cpp: llama_vocab_get_add_bos) */
    if (!(n > 0 && bos >= 0 && ids[0] == bos))
        bos = -1;
    struct dg_exec *ex = NULL;
    struct dg_exec_options eo = {.ctx = ctx, .max_batch = ctx - ctx / 2};
    if ((st = dg_exec_create(gl, m, plan, reg, path, &eo, &ex))) {
        free(ids);
        return st;
    }
    struct ppl_progress pr = {isatty(2) != 0, now_s()};
    struct dg_ppl_options po = {.ctx = ctx, .max_chunks = chunks, .bos = bos, .progress = ppl_progress, .arg = &pr};
    struct dg_ppl_result res;
    st = dg_perplexity(ex, ids, n, &po, &res);
    double secs = now_s() - pr.t0;
    dg_exec_destroy(ex);
    free(ids);
    if (st)
        return st;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kernel_path", path->id);
        cJSON_AddStringToObject(o, "file", file);
        cJSON_AddNumberToObject(o, "tokens", (double)n);
        cJSON_AddNumberToObject(o, "ctx", ctx);
        cJSON_AddNumberToObject(o, "chunks", res.n_chunks);
        cJSON_AddNumberToObject(o, "scored", (double)res.n_scored);
        cJSON_AddNumberToObject(o, "perplexity", res.ppl);
        cJSON_AddNumberToObject(o, "perplexity_error", res.ppl_err);
        cJSON_AddNumberToObject(o, "mean_nll", res.nll_mean);
        cJSON_AddNumberToObject(o, "seconds", secs);
        char *txt = cJSON_Print(o);
        if (txt)
            puts(txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("kernel path %s: %zu tokens, %d chunks of %d, %ld predictions scored, %.1f s\n", path->id, n,
               res.n_chunks, ctx, res.n_scored, secs);
        printf("Final estimate: PPL = %.4f +/- %.5f\n", res.ppl, res.ppl_err);
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
    const char *ppl_file = NULL, *chunks_s = NULL;
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
            (r = dg_cli_option_value("eval", "--hidden-out", argc, argv, &i, &hidden_out)) ||
            (r = dg_cli_option_value("eval", "--perplexity", argc, argv, &i, &ppl_file)) ||
            (r = dg_cli_option_value("eval", "--chunks", argc, argv, &i, &chunks_s))) {
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
    if (ppl_file && (tokens || decode || logits_out || hidden_out))
        return dg_usage_error("eval", "--perplexity cannot be combined with --tokens, --decode, --logits-out or "
                              "--hidden-out");
    if (chunks_s && !ppl_file)
        return dg_usage_error("eval", "--chunks needs --perplexity");
    long chunks = 0;
    if (chunks_s) {
        char *end;
        chunks = strtol(chunks_s, &end, 10);
        if (*end || chunks < 1 || chunks > (1 << 24))
            return dg_usage_error("eval", "--chunks: '%s' is not a chunk count in [1, 16777216]", chunks_s);
    }
    if (!tokens && !po.print_plan && !ppl_file)
        return dg_usage_error("eval", "--tokens IDS|FILE (or --perplexity FILE) is required");
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
    long ctx = ppl_file ? 0 : n;
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
    if (ppl_file) {
        st = run_perplexity(gl, &m, model, &plan, &reg, &path, ppl_file, (int)ctx, (int)chunks, json);
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
