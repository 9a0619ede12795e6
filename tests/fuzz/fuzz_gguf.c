/* fuzz_gguf.c: libFuzzer target for the GGUF reader. Each input is parsed as a whole file from memory;
 * when it parses, everything downstream of the reader that touches file contents runs too: the text and
 * JSON listings, the tokenizer metadata and the model mapping (hyperparameters, tensor names and shapes).
 * Built and run by tests/fuzz/run.sh. `-DGGUF_FUZZ_SEEDS` builds a small program instead that writes the
 * seed files of tests/gguf_writer.h into a directory. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../gguf_writer.h"
#include "model/gguf.h"

#ifndef GGUF_FUZZ_SEEDS
static FILE *sink(void)
{
    static FILE *f;
    if (!f)
        f = fopen("/dev/null", "w");
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dg_gguf *g = NULL;
    if (dg_gguf_open_buffer(data, size, "fuzz.gguf", &g) != DG_OK)
        return 0;
    FILE *out = sink();
    if (out) {
        dg_gguf_inspect_file(g, false, out);
        dg_gguf_inspect_file(g, true, out);
    }
    struct dg_gguf_vocab v;
    if (dg_gguf_vocab_get(g, &v) == DG_OK) {
        /* touch every string the vocabulary hands out */
        volatile uint64_t sum = 0;
        for (uint32_t i = 0; i < v.n_tokens; i++)
            sum += v.tokens[i].len ? (uint8_t)v.tokens[i].ptr[v.tokens[i].len - 1] : 0;
        for (uint32_t i = 0; i < v.n_merges; i++)
            sum += v.merges[i].len ? (uint8_t)v.merges[i].ptr[0] : 0;
        dg_gguf_vocab_free(&v);
    }
    struct dg_model m;
    if (dg_model_from_gguf(g, &m) == DG_OK) {
        /* every mapped tensor's first and last byte are inside the input */
        volatile uint8_t x = 0;
        for (int i = 0; i < m.n_tensors; i++)
            if (m.tensors[i].nbytes)
                x ^= ((const uint8_t *)m.tensors[i].data)[0] ^
                     ((const uint8_t *)m.tensors[i].data)[m.tensors[i].nbytes - 1];
        dg_model_close_gguf(&m);
    } else {
        dg_gguf_close(g);
    }
    return 0;
}
#else
int main(int argc, char **argv)
{
    static const char *const archs[] = {"llama", "mixtral", "qwen2", "qwen3", "qwen3moe",
                                        "gemma2", "gemma3", "phi3", "gpt-oss"};
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        size_t len;
        uint8_t *file = gw_make_model(archs[i], &len);
        char path[4096];
        snprintf(path, sizeof path, "%s/written-%s.gguf", argv[1], archs[i]);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(file, 1, len, f) != len || fclose(f) != 0) {
            fprintf(stderr, "%s: cannot write\n", path);
            return 1;
        }
        free(file);
    }
    return 0;
}
#endif
