/* model_tokenizer.c: finds a model's tokenizer. GGUF vocabularies are handed to the tokenizer as length-
 * delimited arrays (the strings point into the GGUF mapping, which stays open only while building). */
#include "tok/model_tokenizer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/gguf.h"

static bool is_gguf_path(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".gguf") == 0;
}

dg_status dg_tokenizer_from_gguf_file(const char *path, struct dg_tokenizer **out)
{
    *out = NULL;
    struct dg_gguf *g;
    dg_status st = dg_gguf_open(path, &g);
    if (st)
        return st;
    struct dg_gguf_vocab gv;
    if ((st = dg_gguf_vocab_get(g, &gv))) {
        dg_gguf_close(g);
        return st;
    }
    const char **tokens = calloc(gv.n_tokens + 1, sizeof *tokens);
    uint32_t *token_lens = calloc(gv.n_tokens + 1, sizeof *token_lens);
    const char **merges = calloc(gv.n_merges + 1, sizeof *merges);
    uint32_t *merge_lens = calloc(gv.n_merges + 1, sizeof *merge_lens);
    if (!tokens || !token_lens || !merges || !merge_lens) {
        st = dg_fail(DG_E_NOMEM, "%s: out of memory for the vocabulary", path);
        goto done;
    }
    for (uint32_t i = 0; i < gv.n_tokens; i++) {
        if (gv.tokens[i].len > UINT32_MAX) {
            st = dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.tokens[%u]: length %llu is too long", path, i,
                         (unsigned long long)gv.tokens[i].len);
            goto done;
        }
        tokens[i] = gv.tokens[i].ptr;
        token_lens[i] = (uint32_t)gv.tokens[i].len;
    }
    for (uint32_t i = 0; i < gv.n_merges; i++) {
        if (gv.merges[i].len > UINT32_MAX) {
            st = dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.merges[%u]: length %llu is too long", path, i,
                         (unsigned long long)gv.merges[i].len);
            goto done;
        }
        merges[i] = gv.merges[i].ptr;
        merge_lens[i] = (uint32_t)gv.merges[i].len;
    }
    struct dg_vocab_arrays va = {
        .model = gv.model,
        .pre = gv.pre,
        .n_tokens = gv.n_tokens,
        .tokens = tokens,
        .token_lens = token_lens,
        .scores = gv.scores,
        .token_types = gv.token_type,
        .n_merges = gv.n_merges,
        .merges = gv.n_merges ? merges : NULL,
        .merge_lens = gv.n_merges ? merge_lens : NULL,
        .bos_id = gv.bos_id,
        .eos_id = gv.eos_id,
        /* The tokenizer keeps one end-of-turn id; prefer EOT, else EOM (both end generation). */
        .eot_id = gv.eot_id >= 0 ? gv.eot_id : gv.eom_id,
        .unk_id = gv.unk_id,
        .pad_id = gv.pad_id,
        .add_bos = gv.has_add_bos ? gv.add_bos : -1,
        .add_eos = gv.has_add_eos ? gv.add_eos : -1,
        .add_space_prefix = -1,
        .chat_template = gv.chat_template,
        .source = path,
    };
    st = dg_tokenizer_from_gguf_vocab(&va, out);
done:
    free(tokens);
    free(token_lens);
    free(merges);
    free(merge_lens);
    dg_gguf_vocab_free(&gv);
    dg_gguf_close(g);
    return st;
}

dg_status dg_tokenizer_for_model_path(const char *path, struct dg_tokenizer **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dg_fail(DG_E_IO, "%s: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode) && is_gguf_path(path))
        return dg_tokenizer_from_gguf_file(path, out);
    if (S_ISREG(sb.st_mode))
        return dg_tokenizer_load(path, NULL, out);
    if (S_ISDIR(sb.st_mode))
        return dg_tokenizer_load_dir(path, out);
    return dg_fail(DG_E_USAGE, "%s: expected a model folder, a tokenizer.json or a .gguf file", path);
}
