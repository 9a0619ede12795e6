/* tok-speed.c: measures a tokenizer's load time and encode speed (the figures of docs/TOKENIZER.md).
 * Build after `make` (links the library objects of build/):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc tools/tok-speed.c $(find build/obj/src -name '*.o' ! -name main.o) \
 *      -o build/tok-speed $(pkg-config --libs egl glesv2 gbm inih libcjson libpcre2-8 libutf8proc libcrypto) \
 *      -lm -ldl -pthread
 * Usage: build/tok-speed DIR_OR_TOKENIZER_JSON TEXT_FILE [RUNS]
 * Load = dg_tokenizer_load_dir (or dg_tokenizer_load for a .json file), best of 3; encode = best and mean of
 * RUNS (default 5) dg_tokenizer_encode calls on the whole file without special tokens. Wall-clock and
 * process CPU time are both printed: on a shared machine the CPU time is the steadier figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok/tokenizer.h"

static double secs(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static dg_status load(const char *p, struct dg_tokenizer **tok)
{
    size_t n = strlen(p);
    return n > 5 && !strcmp(p + n - 5, ".json") ? dg_tokenizer_load(p, NULL, tok) : dg_tokenizer_load_dir(p, tok);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR_OR_TOKENIZER_JSON TEXT_FILE [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (runs < 1)
        runs = 1;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "%s: cannot read\n", argv[2]);
        return 1;
    }
    fclose(f);
    double lw = 1e30, lc = 1e30;
    struct dg_tokenizer *tok = NULL;
    for (int i = 0; i < 3; i++) {
        if (tok)
            dg_tokenizer_free(tok);
        double w0 = secs(CLOCK_MONOTONIC), c0 = secs(CLOCK_PROCESS_CPUTIME_ID);
        if (load(argv[1], &tok) != DG_OK) {
            fprintf(stderr, "%s: %s\n", argv[1], dg_last_error());
            return 1;
        }
        double w = secs(CLOCK_MONOTONIC) - w0, c = secs(CLOCK_PROCESS_CPUTIME_ID) - c0;
        lw = w < lw ? w : lw;
        lc = c < lc ? c : lc;
    }
    double bw = 1e30, bc = 1e30, sw = 0;
    size_t n = 0;
    for (int r = 0; r < runs; r++) {
        int32_t *ids = NULL;
        double w0 = secs(CLOCK_MONOTONIC), c0 = secs(CLOCK_PROCESS_CPUTIME_ID);
        if (dg_tokenizer_encode(tok, text, (size_t)len, 0, &ids, &n) != DG_OK) {
            fprintf(stderr, "encode: %s\n", dg_last_error());
            return 1;
        }
        double w = secs(CLOCK_MONOTONIC) - w0, c = secs(CLOCK_PROCESS_CPUTIME_ID) - c0;
        free(ids);
        bw = w < bw ? w : bw;
        bc = c < bc ? c : bc;
        sw += w;
    }
    double mb = (double)len / 1e6;
    printf("%s: load %.3f s wall (%.3f s CPU); encode %ld bytes -> %zu ids: best %.1f MB/s wall (%.1f MB/s CPU), "
           "mean %.1f MB/s wall over %d runs\n",
           argv[1], lw, lc, len, n, mb / bw, mb / bc, mb / (sw / runs), runs);
    dg_tokenizer_free(tok);
    free(text);
    return 0;
}
