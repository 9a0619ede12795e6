/* cmd_convert.c: `doppler-gl convert`: a Hugging Face folder, a GGUF file (or random weights at a config's
 * shape) → a doppler-gl model folder. Option parsing, the progress bar and the summary; the work is model/convert.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "model/convert.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl convert INPUT OUTPUT [options]\n"
            "       doppler-gl convert --random CONFIG.json OUTPUT [options]\n\n"
            "Converts a model (a Hugging Face folder: config.json + *.safetensors, or a GGUF file) into\n"
            "doppler-gl's format: OUTPUT/manifest.json plus 256-byte-aligned shards (docs/FORMAT.md).\n\n"
            "Options:\n"
            "  -q, --quantize TYPE     f32 | f16 | bf16 | q8_0 | q4_k_m | keep (default f16 for a folder; keep,\n"
            "                          every tensor as stored without requantizing, for a GGUF file)\n"
            "      --q4k-layout L      row_wise | column_wise | flat: block order of Q4_K tensors (default row_wise)\n"
            "      --transpose-weights store linear weights as W^T ([in, out])\n"
            "      --fuse-gate-up      store each dense FFN's gate and up projections as one gate_up_proj\n"
            "      --shard-size SIZE   largest shard, e.g. 512M, 2G (default 1G)\n"
            "      --random CONFIG     random weights at the shape of a config.json (no INPUT)\n"
            "      --seed N            seed for --random (default 0): same seed, same bytes\n"
            "  -t, --threads N         quantization threads (default: one per CPU)\n"
            "  -f, --force             replace OUTPUT if it exists\n"
            "      --no-progress       no progress bar even on a terminal\n"
            "  -h, --help              show this help\n");
}

struct bar {
    bool on;
    double last;
};

static void progress(void *ctx, const struct dg_convert_progress *p)
{
    struct bar *b = ctx;
    double frac = p->total_bytes ? (double)p->bytes_done / (double)p->total_bytes : 1.0;
    if (!b->on || (frac - b->last < 0.005 && p->tensors_done < p->n_tensors))
        return;
    b->last = frac;
    int w = 30, fill = (int)(frac * w + 0.5);
    char bar[64];
    for (int i = 0; i < w; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %d/%d tensors  %.1f/%.1f MiB", bar, 100 * frac, p->tensors_done, p->n_tensors,
            (double)p->bytes_done / 1048576.0, (double)p->total_bytes / 1048576.0);
    fflush(stderr);
}

static void on_signal(int sig)
{
    (void)sig;
    dg_convert_cancel(); /* the converter stops at the next chunk and removes its temporary folder */
}

static int run(int argc, char **argv)
{
    enum { O_LAYOUT = 1000, O_TRANSPOSE, O_FUSE, O_SHARD, O_RANDOM, O_SEED, O_NOPROG };
    static const struct option opts[] = {
        {"quantize", required_argument, 0, 'q'},
        {"q4k-layout", required_argument, 0, O_LAYOUT},
        {"transpose-weights", no_argument, 0, O_TRANSPOSE},
        {"fuse-gate-up", no_argument, 0, O_FUSE},
        {"shard-size", required_argument, 0, O_SHARD},
        {"random", required_argument, 0, O_RANDOM},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, 't'},
        {"force", no_argument, 0, 'f'},
        {"no-progress", no_argument, 0, O_NOPROG},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct dg_convert_opts o = {.scheme = DG_Q_F16, .q4k_layout = DG_LAYOUT_ROW};
    bool no_progress = false, q_given = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "q:t:fh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'q':
            q_given = true;
            o.keep_types = strcmp(optarg, "keep") == 0;
            if (!o.keep_types && !dg_quant_scheme_from_name(optarg, &o.scheme))
                return dg_usage_error("convert", "--quantize: '%s' is not one of f32, f16, bf16, q8_0, q4_k_m, keep",
                                      optarg);
            break;
        case O_LAYOUT:
            if (strcmp(optarg, "row_wise") == 0)
                o.q4k_layout = DG_LAYOUT_ROW;
            else if (strcmp(optarg, "column_wise") == 0)
                o.q4k_layout = DG_LAYOUT_COLUMN;
            else if (strcmp(optarg, "flat") == 0)
                o.q4k_layout = DG_LAYOUT_FLAT;
            else
                return dg_usage_error("convert", "--q4k-layout: '%s' is not row_wise, column_wise or flat", optarg);
            break;
        case O_TRANSPOSE: o.transpose = true; break;
        case O_FUSE: o.fuse_gate_up = true; break;
        case O_SHARD:
            if (!dg_parse_size(optarg, &o.shard_size))
                return dg_usage_error("convert", "--shard-size: '%s' is not a size of at least 256 bytes (e.g. 512M)",
                                      optarg);
            break;
        case O_RANDOM: o.random_config = optarg; break;
        case O_SEED:
            o.seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end)
                return dg_usage_error("convert", "--seed: '%s' is not a non-negative integer", optarg);
            break;
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 256)
                return dg_usage_error("convert", "--threads: '%s' is not an integer in [1, 256]", optarg);
            o.threads = (int)v;
            break;
        }
        case 'f': o.force = true; break;
        case O_NOPROG: no_progress = true; break;
        case 'h': usage(stdout); return 0;
        default:
            return dg_usage_error("convert", "unknown option '%s'", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    if (o.random_config ? npos != 1 : npos != 2)
        return dg_usage_error("convert", o.random_config ? "expected OUTPUT after --random CONFIG.json"
                                                         : "expected INPUT and OUTPUT");
    if (!o.random_config)
        o.input = argv[optind++];
    o.output = argv[optind];
    struct stat ist;
    if (!q_given && o.input && stat(o.input, &ist) == 0 && S_ISREG(ist.st_mode))
        o.keep_types = true; /* a GGUF file: its tensors are copied as stored unless -q asks otherwise */
    struct bar b = {.on = !no_progress && isatty(2), .last = -1};
    o.progress = progress;
    o.progress_ctx = &b;
    struct dg_convert_summary s;
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    dg_status st = dg_convert(&o, &s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (b.on)
        fprintf(stderr, "\n");
    if (st != DG_OK)
        return dg_report_status(st);
    printf("converted %s -> %s (%s) in %.1f s\n", o.random_config ? o.random_config : o.input, o.output,
           o.keep_types ? "types kept as stored" : dg_quant_scheme_name(o.scheme), s.seconds);
    printf("  %-6s %8s %14s %14s %8s\n", "dtype", "tensors", "params", "bytes", "bits/w");
    for (int d = 0; d < DG_DT_COUNT; d++)
        if (s.tensors[d])
            printf("  %-6s %8d %14llu %14llu %8.3f\n", dg_dtype_info((enum dg_dtype)d)->name, s.tensors[d],
                   (unsigned long long)s.elems[d], (unsigned long long)s.bytes[d],
                   s.elems[d] ? 8.0 * (double)s.bytes[d] / (double)s.elems[d] : 0.0);
    printf("  %-6s %8d %14llu %14llu %8.3f\n", "total", s.n_tensors, (unsigned long long)s.params,
           (unsigned long long)s.total_bytes, s.params ? 8.0 * (double)s.total_bytes / (double)s.params : 0.0);
    if (s.n_fallbacks)
        printf("  %d tensor(s) stored in a fallback type (row length not a block multiple; see manifest "
               "quantization.fallbacks)\n", s.n_fallbacks);
    return 0;
}

DG_COMMAND(convert, "convert", "convert a Hugging Face model or GGUF file (or random weights) to doppler-gl's format", run)
