/* cmd_tokenize.c: `doppler-gl tokenize`: text → token ids and pieces, like llama.cpp's llama-tokenize. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "tok/model_tokenizer.h"
#include "tok/tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl tokenize (-m MODEL | --tokenizer FILE) [options] (TEXT | -f FILE)\n\n"
            "Prints the token ids of TEXT, one per line with its piece ('id -> piece'), as llama-tokenize does.\n\n"
            "Options:\n"
            "  -m, --model MODEL      a model folder with tokenizer.json (Hugging Face or converted)\n"
            "      --tokenizer FILE   a tokenizer.json (tokenizer_config.json beside it is read when present)\n"
            "  -f, --file FILE        read the text from FILE ('-' for standard input)\n"
            "      --special          add the tokenizer's BOS/EOS as its post-processor says\n"
            "      --no-parse-special treat the text of special tokens (e.g. <s>) as plain text\n"
            "      --ids              print only the ids, as one list: [1, 2, 3]\n"
            "      --count            print only the number of tokens\n"
            "      --json             print {\"ids\": [...], \"pieces\": [...], \"count\": N}\n"
            "  -h, --help             show this help\n");
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    while (p) {
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *q = realloc(p, cap *= 2);
            if (!q) {
                free(p);
                return NULL;
            }
            p = q;
        }
    }
    if (p && ferror(f)) {
        free(p);
        return NULL;
    }
    *len = n;
    return p;
}

/* Writes s as the body of a JSON string; invalid UTF-8 bytes become U+FFFD so the output stays valid JSON. */
static void json_str(FILE *o, const char *s, size_t n)
{
    fputc('"', o);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fprintf(o, "\\%c", c);
            i++;
        } else if (c < 0x20) {
            fprintf(o, c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc(c, o);
            i++;
        } else {
            size_t l = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
            bool ok = l && i + l <= n;
            for (size_t k = 1; ok && k < l; k++)
                ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
            if (ok) {
                fwrite(s + i, 1, l, o);
                i += l;
            } else {
                fputs("\xEF\xBF\xBD", o);
                i++;
            }
        }
    }
    fputc('"', o);
}

static int run(int argc, char **argv)
{
    const char *model = NULL, *tokfile = NULL, *file = NULL, *text = NULL;
    bool special = false, no_parse = false, json = false, ids_only = false, count_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!has_next)
                return dg_usage_error("tokenize", "%s needs a value", a);
            model = argv[++i];
        } else if (!strcmp(a, "--tokenizer")) {
            if (!has_next)
                return dg_usage_error("tokenize", "%s needs a value", a);
            tokfile = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!has_next)
                return dg_usage_error("tokenize", "%s needs a value", a);
            file = argv[++i];
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (!strcmp(a, "--no-parse-special")) {
            no_parse = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else if (!strcmp(a, "--count")) {
            count_only = true;
        } else if (a[0] == '-' && a[1] && strcmp(a, "--") != 0) {
            return dg_usage_error("tokenize", "unknown option %s", a);
        } else {
            if (!strcmp(a, "--")) {
                if (i + 1 >= argc)
                    break;
                a = argv[++i];
            }
            if (text)
                return dg_usage_error("tokenize", "give the text as one argument (quote it)");
            text = a;
        }
    }
    if (!model == !tokfile)
        return dg_usage_error("tokenize", "give exactly one of -m MODEL and --tokenizer FILE");
    if (!text == !file)
        return dg_usage_error("tokenize", "give exactly one of TEXT and -f FILE");
    if (json + ids_only + count_only > 1)
        return dg_usage_error("tokenize", "--json, --ids and --count exclude each other");

    struct dg_tokenizer *tok = NULL;
    dg_status st;
    if (model) {
        st = dg_tokenizer_for_model_path(model, &tok);
    } else {
        /* tokenizer_config.json beside the file carries BOS/EOS and add_bos_token. */
        char *cfg = malloc(strlen(tokfile) + 32);
        if (!cfg)
            return dg_report_status(dg_fail(DG_E_NOMEM, "out of memory"));
        strcpy(cfg, tokfile);
        char *slash = strrchr(cfg, '/');
        strcpy(slash ? slash + 1 : cfg, "tokenizer_config.json");
        struct stat sb;
        st = dg_tokenizer_load(tokfile, stat(cfg, &sb) == 0 && S_ISREG(sb.st_mode) ? cfg : NULL, &tok);
        free(cfg);
    }
    if (st)
        return dg_report_status(st);

    char *buf = NULL;
    size_t len = 0;
    if (file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
        if (!f) {
            dg_tokenizer_free(tok);
            return dg_report_status(dg_fail(DG_E_IO, "%s: cannot open: %s", file, strerror(errno)));
        }
        buf = read_all(f, &len);
        if (f != stdin)
            fclose(f);
        if (!buf) {
            dg_tokenizer_free(tok);
            return dg_report_status(dg_fail(DG_E_IO, "%s: cannot read", file));
        }
    }
    int32_t *ids = NULL;
    size_t n = 0;
    unsigned flags = (special ? DG_TOK_ADD_SPECIAL : 0) | (no_parse ? DG_TOK_NO_PARSE_SPECIAL : 0);
    st = buf ? dg_tokenizer_encode(tok, buf, len, flags, &ids, &n) : dg_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n);
    free(buf);
    if (st) {
        dg_tokenizer_free(tok);
        return dg_report_status(st);
    }
    char piece[1024];
    if (count_only) {
        printf("%zu\n", n);
    } else if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? ", " : "", ids[i]);
        puts("]");
    } else if (json) {
        fputs("{\"ids\": [", stdout);
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? ", " : "", ids[i]);
        fputs("], \"pieces\": [", stdout);
        for (size_t i = 0; i < n; i++) {
            int k = dg_tokenizer_token_bytes(tok, ids[i], piece, sizeof piece);
            fputs(i ? ", " : "", stdout);
            json_str(stdout, piece, k > 0 ? (size_t)k : 0);
        }
        printf("], \"count\": %zu}\n", n);
    } else {
        for (size_t i = 0; i < n; i++) {
            int k = dg_tokenizer_token_bytes(tok, ids[i], piece, sizeof piece);
            printf("%6d -> '%.*s'\n", ids[i], k > 0 ? k : 0, piece);
        }
    }
    free(ids);
    dg_tokenizer_free(tok);
    return ferror(stdout) ? 1 : 0;
}

DG_COMMAND(tokenize, "tokenize", "print the token ids and pieces of a text", run)
