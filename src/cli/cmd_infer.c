/* cmd_infer.c: `doppler-gl infer` (a prompt in, streamed text out) and `doppler-gl chat` (an interactive
 * conversation that keeps the KV cache between turns). Both share one session: model, tokenizer, GL
 * context, kernel plan, executor and GPU sampler, set up once before the first token. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan_opts.h"
#include "core/log.h"
#include "pipe/exec.h"
#include "pipe/generate.h"
#include "pipe/sampler.h"
#include "pipe/stop.h"
#include "tok/chat.h"
#include "tok/model_tokenizer.h"
#include "tok/tokenizer.h"

#define INFER_OPTS_HELP                                                                              \
    "  -m, --model PATH        model folder (doppler-gl or Hugging Face) or GGUF file\n"               \
    "  -n, --n-predict N       tokens to generate at most (default 128; 0 = until EOS or context)\n"   \
    "  -c, --ctx N             context length in tokens (default: min(model maximum, 4096))\n"         \
    "  --temp T                temperature; 0 = greedy (default 0.8)\n"                                \
    "  --top-k K               keep the K most likely tokens; 0 = off (default 40)\n"                  \
    "  --top-p P               keep the smallest set with probability >= P; 1 = off (default 0.95)\n"  \
    "  --min-p P               drop tokens below P x the top probability; 0 = off (default 0.05)\n"    \
    "  --repeat-penalty R      penalize repeated tokens (llama.cpp semantics); 1 = off (default 1)\n"  \
    "  --repeat-last-n N       tokens the penalties look back over; -1 = all (default 64)\n"          \
    "  --presence-penalty P    subtract P from tokens already present (default 0)\n"                  \
    "  --frequency-penalty F   subtract F x count from tokens already present (default 0)\n"          \
    "  --seed S                sampling seed for reproducible runs (default: from the clock)\n"        \
    "  --stop TEXT             stop when TEXT is generated (repeatable; TEXT is not printed)\n"        \
    "  --sync-every N          decode steps run on the GPU between two read-backs (default 8)\n"      \
    "  --system TEXT           system message placed before the first user turn\n"                       \
    "  --no-chat-template      never apply the model's chat template\n"

struct session_opts {
    const char *model, *ctx_s, *n_s, *system;
    const char *stops[DG_STOP_MAX_STRINGS];
    int n_stops;
    int sync_every;
    long ctx; /* 0: the model's maximum, at most 4096 */
    bool no_template, seed_given;
    struct dg_sample_params sp;
    struct dg_cli_plan_opts po;
    struct dg_settings s;
};

struct session {
    struct dg_model m;
    bool model_open;
    struct dg_tokenizer *tok;
    struct dg_gl *gl;
    struct dg_kp_registry reg;
    struct dg_kplan plan;
    struct dg_kpath path;
    struct dg_exec *ex;
    struct dg_sampler *smp;
    struct dg_stop *stop;
    int32_t *cache_ids; /* ids whose K/V are in the cache, in order (chat: the conversation so far) */
    int n_cache, cap_cache;
};

static int parse_int(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return dg_usage_error(cmd, "%s: '%s' is not an integer in [%ld, %ld]", opt, v, lo, hi);
    *out = x;
    return 0;
}

static int parse_float(const char *cmd, const char *opt, const char *v, float *out)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || *end || end == v || x != x)
        return dg_usage_error(cmd, "%s: '%s' is not a number", opt, v);
    *out = x;
    return 0;
}

/* The sampling and session options both commands take. 1 consumed, 0 not ours, -1 usage error printed. */
static int session_option(const char *cmd, int argc, char **argv, int *i, struct session_opts *o)
{
    const char *v = NULL;
    int r;
    long x;
#define VALUE(name) (r = dg_cli_option_value(cmd, name, argc, argv, i, &v))
    if ((r = dg_cli_common_option(cmd, argc, argv, i, &o->s)) || (r = dg_cli_plan_option(cmd, argc, argv, i, &o->po)))
        return r;
    if (VALUE("--model") || VALUE("-m"))
        return r < 0 ? -1 : (o->model = v, 1);
    if (VALUE("--ctx") || VALUE("-c"))
        return r < 0 ? -1 : (o->ctx_s = v, 1);
    if (VALUE("--n-predict") || VALUE("-n"))
        return r < 0 ? -1 : (o->n_s = v, 1);
    if (VALUE("--system"))
        return r < 0 ? -1 : (o->system = v, 1);
    if (VALUE("--temp"))
        return r < 0 || parse_float(cmd, "--temp", v, &o->sp.temp) ? -1 : 1;
    if (VALUE("--top-p"))
        return r < 0 || parse_float(cmd, "--top-p", v, &o->sp.top_p) ? -1 : 1;
    if (VALUE("--min-p"))
        return r < 0 || parse_float(cmd, "--min-p", v, &o->sp.min_p) ? -1 : 1;
    if (VALUE("--repeat-penalty"))
        return r < 0 || parse_float(cmd, "--repeat-penalty", v, &o->sp.repeat_penalty) ? -1 : 1;
    if (VALUE("--presence-penalty"))
        return r < 0 || parse_float(cmd, "--presence-penalty", v, &o->sp.presence_penalty) ? -1 : 1;
    if (VALUE("--frequency-penalty"))
        return r < 0 || parse_float(cmd, "--frequency-penalty", v, &o->sp.frequency_penalty) ? -1 : 1;
    if (VALUE("--top-k")) {
        if (r < 0 || parse_int(cmd, "--top-k", v, 0, 1 << 20, &x))
            return -1;
        o->sp.top_k = (int)x;
        return 1;
    }
    if (VALUE("--repeat-last-n")) {
        if (r < 0 || parse_int(cmd, "--repeat-last-n", v, -1, DG_SAMPLER_MAX_LAST_N, &x))
            return -1;
        o->sp.penalty_last_n = (int)x;
        return 1;
    }
    if (VALUE("--sync-every")) {
        if (r < 0 || parse_int(cmd, "--sync-every", v, 1, 256, &x))
            return -1;
        o->sync_every = (int)x;
        return 1;
    }
    if (VALUE("--seed")) {
        char *end;
        errno = 0;
        unsigned long long sd = strtoull(v ? v : "", &end, 10);
        if (r < 0 || errno || !v || *end || end == v || v[0] == '-') {
            if (r >= 0)
                dg_usage_error(cmd, "--seed: '%s' is not a non-negative integer", v ? v : "");
            return -1;
        }
        o->sp.seed = sd;
        o->seed_given = true;
        return 1;
    }
    if (VALUE("--stop")) {
        if (r < 0)
            return -1;
        if (!*v || strlen(v) > DG_STOP_MAX_LEN || o->n_stops == DG_STOP_MAX_STRINGS) {
            dg_usage_error(cmd, "--stop: expected at most %d non-empty strings of at most %d bytes",
                           DG_STOP_MAX_STRINGS, DG_STOP_MAX_LEN);
            return -1;
        }
        o->stops[o->n_stops++] = v;
        return 1;
    }
#undef VALUE
    if (!strcmp(argv[*i], "--no-chat-template")) {
        o->no_template = true;
        return 1;
    }
    return 0;
}

static void session_opts_init(struct session_opts *o)
{
    memset(o, 0, sizeof *o);
    dg_sample_params_default(&o->sp);
    o->sync_every = 8;
}

static void session_close(struct session *ss)
{
    dg_stop_destroy(ss->stop);
    dg_sampler_destroy(ss->smp);
    dg_exec_destroy(ss->ex);
    dg_kpath_free(&ss->path);
    dg_kp_registry_free(&ss->reg);
    dg_gl_close(ss->gl);
    dg_tokenizer_free(ss->tok);
    if (ss->model_open)
        dg_model_close(&ss->m);
    free(ss->cache_ids);
    memset(ss, 0, sizeof *ss);
}

static dg_status session_open(const char *cmd, struct session_opts *o, struct session *ss)
{
    memset(ss, 0, sizeof *ss);
    if (!o->seed_given)
        o->sp.seed = (uint64_t)time(NULL);
    dg_status st = dg_model_open(o->model, &ss->m);
    if (st)
        return st;
    ss->model_open = true;
    if ((st = dg_tokenizer_for_model_path(o->model, &ss->tok)))
        return dg_fail_context(st, "the model's tokenizer: ");
    (void)cmd;
    long ctx = o->ctx > 0 ? o->ctx : ss->m.hp.max_pos > 0 && ss->m.hp.max_pos < 4096 ? ss->m.hp.max_pos : 4096;
    if ((st = dg_cli_gl_open(&o->s, &ss->gl)) || (st = dg_kp_registry_load_default(&ss->reg)) ||
        (st = dg_cli_plan_build(&o->po, dg_gl_caps(ss->gl), &ss->m, &ss->reg, &ss->plan, &ss->path)))
        return st;
    if (o->po.print_plan) {
        dg_kplan_print(stdout, &ss->plan, &ss->path, &ss->reg);
        return DG_OK;
    }
    struct dg_exec_options eo = {.ctx = (int)ctx};
    if ((st = dg_exec_create(ss->gl, &ss->m, &ss->plan, &ss->reg, &ss->path, &eo, &ss->ex)))
        return st;
    /* Every end-of-generation id the model declares (tokenizer + generation_config + hparams). */
    uint32_t eos[DG_SAMPLER_MAX_EOS];
    int n_eos = 0;
    const int32_t *eog;
    size_t n_eog = dg_tokenizer_eog_ids(ss->tok, &eog);
    for (size_t i = 0; i < n_eog && n_eos < DG_SAMPLER_MAX_EOS; i++)
        eos[n_eos++] = (uint32_t)eog[i];
    for (int i = 0; i < ss->m.hp.n_eos && n_eos < DG_SAMPLER_MAX_EOS; i++) {
        bool dup = false;
        for (int j = 0; j < n_eos; j++)
            dup |= eos[j] == (uint32_t)ss->m.hp.eos_ids[i];
        if (!dup && ss->m.hp.eos_ids[i] >= 0)
            eos[n_eos++] = (uint32_t)ss->m.hp.eos_ids[i];
    }
    struct dg_sampler_options so = {.vocab = ss->m.hp.vocab, .history_cap = (int)ctx, .eos = eos, .n_eos = n_eos};
    if ((st = dg_sample_params_check(&o->sp, DG_SAMPLER_DEFAULT_CAND)) ||
        (st = dg_sampler_create(ss->gl, &so, &ss->smp)) || (st = dg_sampler_set_params(ss->smp, &o->sp)) ||
        (st = dg_sampler_reset(ss->smp, NULL, 0)) ||
        (st = dg_stop_create(eos, n_eos, o->stops, o->n_stops, &ss->stop)))
        return st;
    return DG_OK;
}

/* Streams each generated token's text through the stop matcher; records ids for the cache and --json. */
struct stream_ctx {
    struct session *ss;
    FILE *out;
    int32_t *ids;
    int n_ids, cap_ids;
    char *text;
    size_t text_len, text_cap;
    dg_status err;
};

static void stream_emit(struct stream_ctx *c, const char *p, size_t n)
{
    if (!n)
        return;
    if (c->out) {
        fwrite(p, 1, n, c->out);
        fflush(c->out);
    }
    if (c->text_len + n + 1 > c->text_cap) {
        size_t cap = c->text_cap ? c->text_cap * 2 : 1024;
        while (cap < c->text_len + n + 1)
            cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t) {
            c->err = dg_fail(DG_E_NOMEM, "out of memory");
            return;
        }
        c->text = t;
        c->text_cap = cap;
    }
    memcpy(c->text + c->text_len, p, n);
    c->text_len += n;
    c->text[c->text_len] = 0;
}

static bool on_token(void *user, int32_t id)
{
    struct stream_ctx *c = user;
    if (c->n_ids == c->cap_ids) {
        int cap = c->cap_ids ? c->cap_ids * 2 : 256;
        int32_t *n = realloc(c->ids, (size_t)cap * sizeof *n);
        if (!n) {
            c->err = dg_fail(DG_E_NOMEM, "out of memory");
            return true;
        }
        c->ids = n;
        c->cap_ids = cap;
    }
    c->ids[c->n_ids++] = id;
    if (dg_tokenizer_is_special(c->ss->tok, id))
        return false; /* control tokens are not text */
    char buf[512];
    int n = dg_tokenizer_token_bytes(c->ss->tok, id, buf, sizeof buf);
    if (n < 0)
        return false;
    const char *out;
    size_t out_len;
    bool stopped = false;
    if ((c->err = dg_stop_feed(c->ss->stop, buf, (size_t)n, &out, &out_len, &stopped)))
        return true;
    stream_emit(c, out, out_len);
    return stopped;
}

static dg_status cache_append(struct session *ss, const int32_t *ids, int n)
{
    if (ss->n_cache + n > ss->cap_cache) {
        int cap = ss->cap_cache ? ss->cap_cache : 256;
        while (cap < ss->n_cache + n)
            cap *= 2;
        int32_t *c = realloc(ss->cache_ids, (size_t)cap * sizeof *c);
        if (!c)
            return dg_fail(DG_E_NOMEM, "out of memory");
        ss->cache_ids = c;
        ss->cap_cache = cap;
    }
    memcpy(ss->cache_ids + ss->n_cache, ids, (size_t)n * sizeof *ids);
    ss->n_cache += n;
    return DG_OK;
}

/* Runs one prompt (ids appended after the cache) and streams the reply to `out`. */
static dg_status session_turn(struct session *ss, const struct session_opts *o, const int32_t *ids, int n, long n_predict,
                              FILE *out, struct stream_ctx *sc, struct dg_generate_stats *gs)
{
    memset(sc, 0, sizeof *sc);
    sc->ss = ss;
    sc->out = out;
    dg_stop_reset(ss->stop);
    struct dg_generate_opts go = {.n_predict = (int)n_predict, .sync_every = o->sync_every};
    dg_status st = dg_generate(ss->ex, ss->smp, ids, n, &go, on_token, sc, gs);
    if (!st)
        st = sc->err;
    if (st)
        return st;
    const char *rest;
    size_t rest_len;
    dg_stop_flush(ss->stop, &rest, &rest_len);
    stream_emit(sc, rest, rest_len);
    /* the cache now holds the prompt and every generated id but the last (not yet fed back) */
    if ((st = cache_append(ss, ids, n)))
        return st;
    if (sc->n_ids > 1 && (st = cache_append(ss, sc->ids, sc->n_ids - 1)))
        return st;
    return sc->err;
}

static void print_stats(const struct dg_generate_stats *gs, FILE *f)
{
    double pp = gs->prefill_ms > 0 ? gs->n_prompt / (gs->prefill_ms / 1e3) : 0;
    double tg = gs->decode_ms > 0 && gs->n_generated > 1 ? (gs->n_generated - 1) / (gs->decode_ms / 1e3) : 0;
    fprintf(f,
            "\ndoppler-gl: prompt %d tokens, generated %d (stop: %s); time to first token %.1f ms, prefill "
            "%.1f tok/s, decode %.1f tok/s, %d read-backs\n",
            gs->n_prompt, gs->n_generated, dg_stop_reason_name(gs->stop), gs->prefill_ms, pp, tg, gs->readbacks);
}

static char *read_stream(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *b = realloc(buf, cap * 2 + 1);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

/* Renders (system?, user) with the model's template when asked and available, then tokenizes. A
 * rendered template carries its own BOS text, so special tokens are parsed but none are added. */
static dg_status encode_prompt(struct session *ss, const struct session_opts *o, const char *text, bool chat,
                               int32_t **ids, size_t *n)
{
    if (chat && !o->no_template) {
        struct dg_chat_msg msgs[2];
        size_t k = 0;
        if (o->system)
            msgs[k++] = (struct dg_chat_msg){"system", o->system};
        msgs[k++] = (struct dg_chat_msg){"user", text};
        char *rendered = NULL;
        dg_status st = dg_chat_render_for(ss->tok, msgs, k, true, &rendered);
        if (st)
            return st;
        st = dg_tokenizer_encode(ss->tok, rendered, strlen(rendered), 0, ids, n);
        free(rendered);
        return st;
    }
    return dg_tokenizer_encode(ss->tok, text, strlen(text), DG_TOK_ADD_SPECIAL, ids, n);
}

static void infer_usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl infer -m MODEL [-p PROMPT | -f FILE] [options]\n\n"
            "Generates text from a prompt (or standard input when neither -p nor -f is given), streaming it to\n"
            "stdout as it is decoded; statistics go to stderr.\n\n"
            "Options:\n"
            "  -p, --prompt TEXT       the prompt\n"
            "  -f, --file FILE         read the prompt from FILE ('-' = standard input)\n"
            "  --chat                  wrap the prompt as one user turn in the model's chat template\n"
            "  --json                  print one JSON object (text, ids, statistics) instead of streaming\n"
            INFER_OPTS_HELP "%s%s"
            "  -h, --help              show this help\n",
            DG_CLI_PLAN_HELP, DG_CLI_COMMON_HELP);
}

static int run_infer(int argc, char **argv)
{
    struct session_opts o;
    session_opts_init(&o);
    int rc = dg_cli_begin("infer", &o.s);
    if (rc)
        return rc;
    const char *prompt = NULL, *file = NULL;
    bool chat = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            infer_usage(stdout);
            return 0;
        }
        int r = session_option("infer", argc, argv, &i, &o);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((r = dg_cli_option_value("infer", "--prompt", argc, argv, &i, &prompt)) ||
            (r = dg_cli_option_value("infer", "-p", argc, argv, &i, &prompt)) ||
            (r = dg_cli_option_value("infer", "--file", argc, argv, &i, &file)) ||
            (r = dg_cli_option_value("infer", "-f", argc, argv, &i, &file))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--chat"))
            chat = true;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else
            return dg_usage_error("infer", "unknown option '%s'", argv[i]);
    }
    dg_settings_apply_log(&o.s);
    if (!o.model)
        return dg_usage_error("infer", "-m MODEL is required");
    if (prompt && file)
        return dg_usage_error("infer", "-p and -f exclude each other");
    long n_predict = 128;
    if (o.n_s && parse_int("infer", "-n", o.n_s, 0, 1 << 24, &n_predict))
        return 2;
    if (o.system && !chat)
        return dg_usage_error("infer", "--system needs --chat");
    if (o.ctx_s && parse_int("infer", "-c", o.ctx_s, 16, 1 << 20, &o.ctx))
        return 2;

    char *text = NULL;
    size_t text_len = 0;
    if (prompt) {
        text = strdup(prompt);
    } else if (!o.po.print_plan) {
        FILE *f = !file || !strcmp(file, "-") ? stdin : fopen(file, "rb");
        if (!f)
            return dg_report_status(dg_fail(DG_E_IO, "%s: cannot open the prompt file: %s", file, strerror(errno)));
        if (f == stdin && isatty(0))
            fprintf(stderr, "doppler-gl infer: reading the prompt from standard input (end with Ctrl-D)\n");
        text = read_stream(f, &text_len);
        if (f != stdin)
            fclose(f);
    } else {
        text = strdup("");
    }
    if (!text)
        return dg_report_status(dg_fail(DG_E_NOMEM, "out of memory"));

    struct session ss;
    dg_status st = session_open("infer", &o, &ss);
    if (st || o.po.print_plan) {
        session_close(&ss);
        free(text);
        return dg_report_status(st);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    struct stream_ctx sc = {0};
    struct dg_generate_stats gs = {0};
    if ((st = encode_prompt(&ss, &o, text, chat, &ids, &n)))
        goto out;
    if (n == 0) {
        st = dg_fail(DG_E_USAGE, "the prompt is empty after tokenization (give some text; the model adds no BOS)");
        goto out;
    }
    if ((int)n >= dg_exec_ctx(ss.ex)) {
        st = dg_fail(DG_E_USAGE, "the prompt has %zu tokens: it does not fit the context of %d tokens with room to "
                     "generate (raise -c)", n, dg_exec_ctx(ss.ex));
        goto out;
    }
    if (!json) {
        if (!chat)
            fputs(text, stdout); /* show the prompt, like llama.cpp, then the continuation */
        fflush(stdout);
    }
    if ((st = session_turn(&ss, &o, ids, (int)n, n_predict, json ? NULL : stdout, &sc, &gs)))
        goto out;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", o.model);
        cJSON_AddStringToObject(j, "kernel_path", ss.path.id);
        cJSON_AddStringToObject(j, "prompt", text);
        cJSON_AddStringToObject(j, "text", sc.text ? sc.text : "");
        cJSON *pa = cJSON_AddArrayToObject(j, "prompt_ids");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(pa, cJSON_CreateNumber(ids[i]));
        cJSON *ga = cJSON_AddArrayToObject(j, "generated_ids");
        for (int i = 0; i < sc.n_ids; i++)
            cJSON_AddItemToArray(ga, cJSON_CreateNumber(sc.ids[i]));
        cJSON *s = cJSON_AddObjectToObject(j, "stats");
        cJSON_AddNumberToObject(s, "prompt_tokens", gs.n_prompt);
        cJSON_AddNumberToObject(s, "generated_tokens", gs.n_generated);
        cJSON_AddStringToObject(s, "stop", dg_stop_reason_name(gs.stop));
        cJSON_AddNumberToObject(s, "time_to_first_token_ms", gs.prefill_ms);
        cJSON_AddNumberToObject(s, "decode_ms", gs.decode_ms);
        cJSON_AddNumberToObject(s, "readbacks", gs.readbacks);
        char *txt = cJSON_Print(j);
        if (txt)
            puts(txt);
        free(txt);
        cJSON_Delete(j);
    } else {
        fputc('\n', stdout);
        fflush(stdout);
        if (dg_log_get_level() >= DG_LOG_INFO)
            print_stats(&gs, stderr);
    }
out:
    free(sc.ids);
    free(sc.text);
    free(ids);
    free(text);
    session_close(&ss);
    return dg_report_status(st);
}

static void chat_usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl chat -m MODEL [options]\n\n"
            "An interactive conversation: type a message and press Enter; the reply streams back. The KV cache\n"
            "is kept between turns, so only the new turn is run. Commands: /reset starts over, /quit (or Ctrl-D)\n"
            "ends.\n\n"
            "Options:\n" INFER_OPTS_HELP "%s%s"
            "  -h, --help              show this help\n",
            DG_CLI_PLAN_HELP, DG_CLI_COMMON_HELP);
}

/* The conversation so far as rendered text; the ids to run are the tokenization of the whole render
 * minus the prefix already in the cache (if the render changed earlier text, the cache is rebuilt). */
static int run_chat(int argc, char **argv)
{
    struct session_opts o;
    session_opts_init(&o);
    int rc = dg_cli_begin("chat", &o.s);
    if (rc)
        return rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            chat_usage(stdout);
            return 0;
        }
        int r = session_option("chat", argc, argv, &i, &o);
        if (r < 0)
            return 2;
        if (r == 0)
            return dg_usage_error("chat", "unknown option '%s'", argv[i]);
    }
    dg_settings_apply_log(&o.s);
    if (!o.model)
        return dg_usage_error("chat", "-m MODEL is required");
    long n_predict = 512;
    if (o.n_s && parse_int("chat", "-n", o.n_s, 0, 1 << 24, &n_predict))
        return 2;
    if (o.ctx_s && parse_int("chat", "-c", o.ctx_s, 16, 1 << 20, &o.ctx))
        return 2;
    struct session ss;
    dg_status st = session_open("chat", &o, &ss);
    if (st || o.po.print_plan) {
        session_close(&ss);
        return dg_report_status(st);
    }
    struct dg_chat_msg *msgs = NULL;
    char **owned = NULL;
    size_t n_msgs = 0, cap = 0;
    bool tty = isatty(0);
    char *line = NULL;
    size_t line_cap = 0;
    int32_t pending = 0; /* --no-chat-template: the previous reply's last id, not yet in the cache */
    bool have_pending = false;
    for (;;) {
        if (tty)
            fprintf(stderr, "> ");
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (!strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/reset")) {
            dg_exec_reset(ss.ex);
            ss.n_cache = 0;
            have_pending = false;
            for (size_t i = 0; i < n_msgs; i++)
                free(owned[i]);
            n_msgs = 0;
            continue;
        }
        if (!got)
            continue;
        if (n_msgs + 3 > cap) {
            cap = cap ? cap * 2 : 16;
            msgs = realloc(msgs, cap * sizeof *msgs);
            owned = realloc(owned, cap * sizeof *owned);
            if (!msgs || !owned) {
                st = dg_fail(DG_E_NOMEM, "out of memory");
                break;
            }
        }
        if (n_msgs == 0 && o.system) {
            owned[n_msgs] = strdup(o.system);
            msgs[n_msgs] = (struct dg_chat_msg){"system", owned[n_msgs]};
            n_msgs++;
        }
        owned[n_msgs] = strdup(line);
        msgs[n_msgs] = (struct dg_chat_msg){"user", owned[n_msgs]};
        n_msgs++;
        char *rendered = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        if (o.no_template) {
            int32_t *enc = NULL;
            size_t ne = 0;
            st = dg_tokenizer_encode(ss.tok, line, (size_t)got, ss.n_cache ? 0 : DG_TOK_ADD_SPECIAL, &enc, &ne);
            /* the previous reply's last id was sampled but never run: it goes first, so the model's context
             * holds the whole reply as generated */
            if (!st && have_pending) {
                ids = malloc((ne + 1) * sizeof *ids);
                if (!ids)
                    st = dg_fail(DG_E_NOMEM, "out of memory");
                else {
                    ids[0] = pending;
                    memcpy(ids + 1, enc, ne * sizeof *ids);
                    n = ne + 1;
                }
                free(enc);
            } else {
                ids = enc;
                n = ne;
            }
        } else if (!(st = dg_chat_render_for(ss.tok, msgs, n_msgs, true, &rendered))) {
            st = dg_tokenizer_encode(ss.tok, rendered, strlen(rendered), 0, &ids, &n);
        }
        free(rendered);
        if (st)
            break;
        /* Reuse the cache up to the first id that differs from the new rendering. */
        size_t keep = 0;
        if (o.no_template) {
            keep = 0; /* ids are only the new line: append after the cache */
        } else {
            while ((int)keep < ss.n_cache && keep < n && ss.cache_ids[keep] == ids[keep])
                keep++;
            if ((int)keep < ss.n_cache) { /* the template rewrote earlier text: drop what differs */
                dg_exec_set_pos(ss.ex, (int)keep);
                ss.n_cache = (int)keep;
            }
        }
        const int32_t *run_ids = ids + keep;
        int run_n = (int)(n - keep);
        DG_VERBOSE("chat: %d tokens of the conversation reused from the KV cache, %d new", ss.n_cache, run_n);
        if (run_n <= 0) {
            free(ids);
            continue;
        }
        if ((st = dg_sampler_reset(ss.smp, (const uint32_t *)ss.cache_ids, ss.n_cache))) {
            free(ids);
            break;
        }
        struct stream_ctx sc;
        struct dg_generate_stats gs;
        st = session_turn(&ss, &o, run_ids, run_n, n_predict, stdout, &sc, &gs);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        /* EOS is not passed on (nor kept); any other last id is still to be run (see session_turn) */
        have_pending = !st && sc.n_ids > 0 && gs.stop != DG_STOP_EOS;
        if (have_pending)
            pending = sc.ids[sc.n_ids - 1];
        if (!st) {
            owned[n_msgs] = strdup(sc.text ? sc.text : "");
            msgs[n_msgs] = (struct dg_chat_msg){"assistant", owned[n_msgs]};
            n_msgs++;
            if (dg_log_get_level() >= DG_LOG_VERBOSE)
                print_stats(&gs, stderr);
        }
        free(sc.ids);
        free(sc.text);
        if (st)
            break;
    }
    free(line);
    for (size_t i = 0; i < n_msgs; i++)
        free(owned[i]);
    free(owned);
    free(msgs);
    session_close(&ss);
    return dg_report_status(st);
}

DG_COMMAND(infer, "infer", "generate text from a prompt, streaming it as it is decoded", run_infer)
DG_COMMAND(chat, "chat", "an interactive conversation that keeps the KV cache between turns", run_chat)
