/* test_convert.c: the converter and the manifest format end to end on the fixture models: every fixture
 * converts to every --quantize choice, verifies, reopens with the same hyperparameters and tensor values
 * within each dtype's bound; the layouts (column-wise, flat, transposed, fused gate_up) hold the same
 * numbers; a sharded F16/F32 checkpoint converts exactly; corrupt inputs and manifests give their error
 * and leave no output. */
#include "../test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "model/convert.h"
#include "model/manifest.h"
#include "model/quant.h"
#include "model/safetensors.h"

static const char *const fixtures[] = {"llama",   "mistral", "qwen2",  "qwen3",     "gemma2", "gemma3_text",
                                       "phi3",    "mixtral", "qwen3_moe", "gpt_oss", "phimoe"};
#define N_FIXTURES (int)(sizeof fixtures / sizeof fixtures[0])

static bool exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* No ".NAME.tmp-*" leftovers in dir. */
static bool no_temp_left(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return true;
    struct dirent *e;
    bool ok = true;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp-"))
            ok = false;
    closedir(d);
    return ok;
}

static float *dequant_all(const struct dg_tensor *t)
{
    int64_t n = dg_tensor_nelems(t);
    float *y = malloc((size_t)n * sizeof *y);
    if (y && dg_dequantize(t->dtype, t->data, y, (uint64_t)n) != DG_OK) {
        free(y);
        return NULL;
    }
    return y;
}

static bool hparams_equal(const struct dg_hparams *a, const struct dg_hparams *b)
{
    cJSON *ja = dg_hparams_to_json(a), *jb = dg_hparams_to_json(b);
    bool eq = cJSON_Compare(ja, jb, 1);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return eq;
}

/* Largest error a stored dtype may add to a value of the source, relative to the tensor's max |x| (the
 * bounds of test_quant.c expressed loosely per tensor; rows here are 32..256 long). */
static double dtype_tol(enum dg_dtype dt)
{
    switch (dt) {
    case DG_DT_F32: return 0;
    case DG_DT_F16: return 1.0 / 1024;
    case DG_DT_BF16: return 0; /* the fixtures are bf16: exact */
    case DG_DT_Q8_0: return 0.5625 / 127;
    case DG_DT_Q5_0: return 1.01 / 16;
    case DG_DT_Q6_K: return 0.1;
    case DG_DT_Q4_K: return 0.25;
    default: return 1;
    }
}

static void check_same_model(const struct dg_model *src, const struct dg_model *out, enum dg_quant_scheme s,
                             const char *what)
{
    CHECK_MSG(hparams_equal(&src->hp, &out->hp), "%s: hyperparameters differ after the round trip", what);
    CHECK_MSG(src->n_tensors == out->n_tensors, "%s: %d tensors in, %d out", what, src->n_tensors, out->n_tensors);
    for (int i = 0; i < src->n_tensors; i++) {
        const struct dg_tensor *a = &src->tensors[i], *b = dg_model_find(out, a->name);
        if (!b) {
            CHECK_MSG(0, "%s: tensor %s missing", what, a->name);
            continue;
        }
        CHECK_MSG(a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0,
                  "%s: %s shape changed", what, a->name);
        if (a->ndim == 1)
            CHECK_MSG(b->dtype == DG_DT_F32, "%s: vector %s stored as %s, not f32", what, a->name,
                      dg_dtype_info(b->dtype)->name);
        float *x = dequant_all(a), *y = dequant_all(b);
        if (!x || !y) {
            CHECK_MSG(0, "%s: %s could not be dequantized: %s", what, a->name, dg_last_error());
            free(x), free(y);
            continue;
        }
        int64_t n = dg_tensor_nelems(a);
        double amax = 0, emax = 0;
        for (int64_t k = 0; k < n; k++) {
            amax = fmax(amax, fabs(x[k]));
            emax = fmax(emax, fabs((double)x[k] - y[k]));
        }
        double tol = dtype_tol(b->dtype) * amax;
        if (s == DG_Q_F32)
            CHECK_MSG(memcmp(x, y, (size_t)n * sizeof *x) == 0, "%s: %s: f32 output differs from the source", what,
                      a->name);
        else
            CHECK_MSG(emax <= tol, "%s: %s (%s): max error %g > %g", what, a->name, dg_dtype_info(b->dtype)->name,
                      emax, tol);
        free(x), free(y);
    }
}

DG_TEST(convert_every_fixture_every_scheme)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    const char *tmp = dg_test_tmpdir();
    for (int f = 0; f < N_FIXTURES; f++) {
        char in[1024];
        snprintf(in, sizeof in, "%s/models/%s", fx, fixtures[f]);
        struct dg_model src;
        dg_status st = dg_model_open(in, &src);
        CHECK_MSG(st == DG_OK, "%s: %s", in, dg_last_error());
        if (st != DG_OK)
            continue;
        for (int s = DG_Q_F32; s <= DG_Q_Q4_K_M; s++) {
            char out[1024], what[256];
            snprintf(out, sizeof out, "%s/%s-%s", tmp, fixtures[f], dg_quant_scheme_name((enum dg_quant_scheme)s));
            snprintf(what, sizeof what, "%s/%s", fixtures[f], dg_quant_scheme_name((enum dg_quant_scheme)s));
            struct dg_convert_opts o = {.input = in, .output = out, .scheme = (enum dg_quant_scheme)s, .threads = 2};
            struct dg_convert_summary sum;
            st = dg_convert(&o, &sum);
            CHECK_MSG(st == DG_OK, "%s: convert: %s", what, dg_last_error());
            if (st != DG_OK)
                continue;
            CHECK_MSG(dg_manifest_verify(out) == DG_OK, "%s: verify: %s", what, dg_last_error());
            struct dg_model m;
            st = dg_model_open_manifest(out, &m);
            CHECK_MSG(st == DG_OK, "%s: reopen: %s", what, dg_last_error());
            if (st != DG_OK)
                continue;
            check_same_model(&src, &m, (enum dg_quant_scheme)s, what);
            for (int i = 0; i < m.n_tensors; i++) /* 256-byte alignment inside the mapped shard */
                CHECK_MSG(((uintptr_t)m.tensors[i].data & 255) == 0, "%s: %s not 256-byte aligned", what,
                          m.tensors[i].name);
            dg_model_close(&m);
        }
        dg_model_close(&src);
    }
    CHECK(no_temp_left(tmp));
}

DG_TEST(convert_pick_dtype_rules)
{
    struct dg_hparams hp;
    dg_hparams_defaults(&hp);
    hp.n_layers = 16;
    hp.tie_embeddings = false;
    int64_t sq[2] = {2048, 2048}, r704[2] = {256, 704}, r1152[2] = {1152, 1152}, r200[2] = {64, 200};
    enum dg_dtype w;
    /* use_more_bits(i, 16): i < 2, i >= 14, or (i - 2) % 3 == 2 → layers 0, 1, 4, 7, 10, 13, 14, 15 */
    const bool more[16] = {1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1};
    for (int L = 0; L < 16; L++) {
        char n[64];
        snprintf(n, sizeof n, "layer.%d.self_attn.v_proj", L);
        CHECK_MSG(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, n, 2, sq, DG_LAYOUT_ROW, &w) ==
                      (more[L] ? DG_DT_Q6_K : DG_DT_Q4_K), "v_proj layer %d", L);
        snprintf(n, sizeof n, "layer.%d.mlp.down_proj", L);
        CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, n, 2, sq, DG_LAYOUT_ROW, &w) == (more[L] ? DG_DT_Q6_K : DG_DT_Q4_K));
        snprintf(n, sizeof n, "layer.%d.self_attn.q_proj", L);
        CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, n, 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_Q4_K);
    }
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "lm_head", 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_Q6_K);
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "embed_tokens", 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_Q4_K);
    hp.tie_embeddings = true; /* the embedding is the output then: llama.cpp gives it Q6_K */
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "embed_tokens", 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_Q6_K);
    /* an 8-expert model (Mixtral): attn_v is q8_0 in every layer, as llama.cpp does; down_proj unchanged */
    hp.n_experts = 8;
    for (int L = 0; L < 16; L++) {
        char n[64];
        snprintf(n, sizeof n, "layer.%d.self_attn.v_proj", L);
        CHECK_MSG(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, n, 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_Q8_0, "8 experts: %s", n);
        snprintf(n, sizeof n, "layer.%d.mlp.experts.down_proj", L);
        int64_t ex[3] = {8, 2048, 2048};
        CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, n, 3, ex, DG_LAYOUT_ROW, &w) == (more[L] ? DG_DT_Q6_K : DG_DT_Q4_K));
    }
    hp.n_experts = 16; /* the rule is llama.cpp's n_expert == 8, not any MoE */
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "layer.3.self_attn.v_proj", 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_Q4_K);
    hp.n_experts = 0;
    /* rows that are not a multiple of 256 (sotu-6m's 704, Gemma 3 1B's 1152): q4_k → q5_0, q6_k → q8_0 */
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "layer.3.mlp.up_proj", 2, r704, DG_LAYOUT_ROW, &w) == DG_DT_Q5_0);
    CHECK(w == DG_DT_Q4_K);
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "layer.0.mlp.down_proj", 2, r1152, DG_LAYOUT_ROW, &w) == DG_DT_Q8_0);
    CHECK(w == DG_DT_Q6_K);
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "layer.3.mlp.up_proj", 2, r200, DG_LAYOUT_ROW, &w) == DG_DT_F16);
    CHECK(dg_convert_pick_dtype(DG_Q_Q8_0, &hp, "layer.3.mlp.up_proj", 2, r200, DG_LAYOUT_ROW, &w) == DG_DT_F16);
    /* flat: the whole matrix is one block stream, so 256 x 704 (a multiple of 256 elements) stays q4_k */
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "layer.3.mlp.up_proj", 2, r704, DG_LAYOUT_FLAT, &w) == DG_DT_Q4_K);
    /* vectors and the router stay f32 in every scheme */
    int64_t v[1] = {2048};
    CHECK(dg_convert_pick_dtype(DG_Q_F16, &hp, "layer.0.input_layernorm", 1, v, DG_LAYOUT_ROW, &w) == DG_DT_F32);
    CHECK(dg_convert_pick_dtype(DG_Q_Q4_K_M, &hp, "layer.0.mlp.router", 2, sq, DG_LAYOUT_ROW, &w) == DG_DT_F32);
}

/* A small random model whose rows are multiples of 256, so Q4_K and Q6_K are really used. */
static const char *write_small_config(const char *dir)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 256,"
               " \"intermediate_size\": 512, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
               " \"num_key_value_heads\": 2, \"vocab_size\": 320, \"max_position_embeddings\": 256,"
               " \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false,"
               " \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\"}\n");
    fclose(f);
    return path;
}

static dg_status convert_random(const char *cfg, const char *out, enum dg_quant_scheme s, enum dg_layout lay,
                                bool transpose, bool fuse)
{
    struct dg_convert_opts o = {.random_config = cfg, .seed = 5, .output = out, .scheme = s, .q4k_layout = lay,
                                .transpose = transpose, .fuse_gate_up = fuse, .threads = 2};
    struct dg_convert_summary sum;
    return dg_convert(&o, &sum);
}

DG_TEST(convert_random_layouts_agree)
{
    const char *tmp = dg_test_tmpdir();
    const char *cfg = write_small_config(tmp);
    char row[1024], col[1024], flat[1024], tr[1024], fused[1024], f32[1024];
    snprintf(row, sizeof row, "%s/row", tmp);
    snprintf(col, sizeof col, "%s/col", tmp);
    snprintf(flat, sizeof flat, "%s/flat", tmp);
    snprintf(tr, sizeof tr, "%s/tr", tmp);
    snprintf(fused, sizeof fused, "%s/fused", tmp);
    snprintf(f32, sizeof f32, "%s/f32", tmp);
    CHECK_OK(convert_random(cfg, row, DG_Q_Q4_K_M, DG_LAYOUT_ROW, false, false));
    CHECK_OK(convert_random(cfg, col, DG_Q_Q4_K_M, DG_LAYOUT_COLUMN, false, false));
    CHECK_OK(convert_random(cfg, flat, DG_Q_Q4_K_M, DG_LAYOUT_FLAT, false, false));
    CHECK_OK(convert_random(cfg, tr, DG_Q_F32, DG_LAYOUT_ROW, true, false));
    CHECK_OK(convert_random(cfg, fused, DG_Q_F32, DG_LAYOUT_ROW, false, true));
    CHECK_OK(convert_random(cfg, f32, DG_Q_F32, DG_LAYOUT_ROW, false, false));
    struct dg_model mr, mc, mf, mt, mu, m32;
    CHECK_OK(dg_model_open_manifest(row, &mr));
    CHECK_OK(dg_model_open_manifest(col, &mc));
    CHECK_OK(dg_model_open_manifest(flat, &mf));
    CHECK_OK(dg_model_open_manifest(tr, &mt));
    CHECK_OK(dg_model_open_manifest(fused, &mu));
    CHECK_OK(dg_model_open_manifest(f32, &m32));
    if (dg_test_failed())
        return;
    int n_q4k = 0, n_q6k = 0;
    for (int i = 0; i < mr.n_tensors; i++) {
        const struct dg_tensor *a = &mr.tensors[i], *c = dg_model_find(&mc, a->name), *f = dg_model_find(&mf, a->name);
        CHECK(c && f && c->dtype == a->dtype && f->dtype == a->dtype && c->nbytes == a->nbytes);
        if (!c || !f)
            continue;
        n_q4k += a->dtype == DG_DT_Q4_K;
        n_q6k += a->dtype == DG_DT_Q6_K;
        if (a->dtype != DG_DT_Q4_K) {
            CHECK(memcmp(a->data, c->data, a->nbytes) == 0);
            continue;
        }
        CHECK(c->layout == DG_LAYOUT_COLUMN && f->layout == DG_LAYOUT_FLAT && a->layout == DG_LAYOUT_ROW);
        /* column_wise: block (row r, block-column k) sits at k * rows + r; flat equals row-wise here since
         * rows are a multiple of 256 */
        int64_t rows = a->shape[0], nbc = a->shape[1] / 256;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < nbc; k++)
                if (memcmp((const uint8_t *)a->data + (r * nbc + k) * 144, (const uint8_t *)c->data + (k * rows + r) * 144,
                           144) != 0) {
                    CHECK_MSG(0, "%s: column-wise block (%lld, %lld) differs", a->name, (long long)r, (long long)k);
                    r = rows;
                    break;
                }
        CHECK(memcmp(a->data, f->data, a->nbytes) == 0);
        /* quantized values close to the f32 conversion of the same seed */
        const struct dg_tensor *x = dg_model_find(&m32, a->name);
        float *y = dequant_all(a);
        int64_t n = dg_tensor_nelems(a);
        double se = 0, sx = 0;
        for (int64_t k = 0; y && k < n; k++) {
            double d = (double)((const float *)x->data)[k] - y[k];
            se += d * d;
            sx += (double)((const float *)x->data)[k] * ((const float *)x->data)[k];
        }
        CHECK_MSG(sqrt(se / sx) < 0.1, "%s: q4_k relative RMSE %g", a->name, sqrt(se / sx));
        free(y);
    }
    CHECK_MSG(n_q4k > 0 && n_q6k > 0, "expected Q4_K and Q6_K tensors (got %d, %d)", n_q4k, n_q6k);
    /* transposed: W^T of the same random W (the values depend only on the seed and the canonical index) */
    for (int i = 0; i < m32.n_tensors; i++) {
        const struct dg_tensor *a = &m32.tensors[i], *t = dg_model_find(&mt, a->name);
        CHECK(t != NULL);
        if (!t)
            continue;
        bool lin = a->ndim == 2 && strcmp(a->name, "embed_tokens") != 0;
        CHECK(t->transposed == lin);
        if (!lin) {
            CHECK(memcmp(a->data, t->data, a->nbytes) == 0);
            continue;
        }
        int64_t R = a->shape[0], C = a->shape[1];
        CHECK(t->shape[0] == C && t->shape[1] == R);
        const float *w = a->data, *wt = t->data;
        bool same = true;
        for (int64_t r = 0; r < R && same; r++)
            for (int64_t c = 0; c < C; c++)
                if (w[r * C + c] != wt[c * R + r]) {
                    same = false;
                    break;
                }
        CHECK_MSG(same, "%s: transposed tensor is not W^T", a->name);
    }
    /* fused gate_up: gate rows then up rows */
    for (int L = 0; L < 2; L++) {
        const struct dg_tensor *g = dg_model_findf(&m32, "layer.%d.mlp.gate_proj", L),
                               *u = dg_model_findf(&m32, "layer.%d.mlp.up_proj", L),
                               *gu = dg_model_findf(&mu, "layer.%d.mlp.gate_up_proj", L);
        CHECK(g && u && gu && !dg_model_findf(&mu, "layer.%d.mlp.gate_proj", L));
        if (!g || !u || !gu)
            continue;
        CHECK(gu->shape[0] == g->shape[0] + u->shape[0] && gu->shape[1] == g->shape[1]);
        CHECK(memcmp(gu->data, g->data, g->nbytes) == 0);
        CHECK(memcmp((const uint8_t *)gu->data + g->nbytes, u->data, u->nbytes) == 0);
    }
    dg_model_close(&mr), dg_model_close(&mc), dg_model_close(&mf), dg_model_close(&mt), dg_model_close(&mu);
    dg_model_close(&m32);
}

DG_TEST(convert_random_deterministic_and_sharded)
{
    const char *tmp = dg_test_tmpdir();
    const char *cfg = write_small_config(tmp);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    struct dg_convert_opts o = {.random_config = cfg, .seed = 9, .output = a, .scheme = DG_Q_Q8_0, .threads = 1,
                                .shard_size = 64 << 10};
    struct dg_convert_summary s;
    CHECK_OK(dg_convert(&o, &s));
    o.output = b;
    o.threads = 2;
    CHECK_OK(dg_convert(&o, &s));
    cJSON *ja = NULL, *jb = NULL;
    CHECK_OK(dg_manifest_load_json(a, &ja));
    CHECK_OK(dg_manifest_load_json(b, &jb));
    if (ja && jb) {
        /* same seed, any thread count: the same shards, byte for byte (same hashes) */
        cJSON *sa = cJSON_GetObjectItem(ja, "shards"), *sb = cJSON_GetObjectItem(jb, "shards");
        CHECK(cJSON_GetArraySize(sa) > 1); /* 64 KiB shards: several */
        CHECK(cJSON_Compare(sa, sb, 1));
        CHECK(cJSON_GetObjectItem(ja, "inference") &&
              strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(ja, "inference"), "kernelPath")->valuestring,
                     "llama-q8_0") == 0);
    }
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    CHECK_OK(dg_manifest_verify(a));
}

/* ---- hostile inputs ---- */

static bool copy(const char *from, const char *to)
{
    size_t n;
    char *b = dg_test_read_file(from, &n);
    if (!b)
        return false;
    FILE *f = fopen(to, "wb");
    bool ok = f && fwrite(b, 1, n, f) == n;
    if (f)
        fclose(f);
    free(b);
    return ok;
}

/* Copies the llama fixture to dir, with its safetensors header passed through `edit` (or the raw bytes
 * through `raw` when edit is NULL). */
static bool make_variant(const char *fx, const char *dir, void (*edit)(cJSON *), void (*raw)(char *, size_t *))
{
    char p[1200], q[1200];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/models/llama/config.json", fx);
    snprintf(q, sizeof q, "%s/config.json", dir);
    if (!copy(p, q))
        return false;
    snprintf(p, sizeof p, "%s/models/llama/model.safetensors", fx);
    size_t n;
    char *b = dg_test_read_file(p, &n);
    if (!b)
        return false;
    uint64_t hl;
    memcpy(&hl, b, 8);
    snprintf(q, sizeof q, "%s/model.safetensors", dir);
    FILE *f = fopen(q, "wb");
    if (edit) {
        cJSON *h = cJSON_ParseWithLength(b + 8, hl);
        edit(h);
        char *txt = cJSON_PrintUnformatted(h);
        size_t tl = strlen(txt), padded = (tl + 7) / 8 * 8;
        uint64_t nl = padded;
        fwrite(&nl, 8, 1, f);
        fwrite(txt, 1, tl, f);
        for (size_t i = tl; i < padded; i++)
            fputc(' ', f);
        fwrite(b + 8 + hl, 1, n - 8 - hl, f);
        free(txt);
        cJSON_Delete(h);
    } else {
        raw(b, &n);
        fwrite(b, 1, n, f);
    }
    fclose(f);
    free(b);
    return true;
}

static void edit_unknown_dtype(cJSON *h)
{
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.layers.0.self_attn.q_proj.weight"), "dtype",
                              cJSON_CreateString("Q7"));
}

static void edit_offset_past_end(cJSON *h)
{
    cJSON *t = cJSON_GetObjectItem(h, "model.layers.0.self_attn.q_proj.weight");
    cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
    double end = cJSON_GetArrayItem(o, 1)->valuedouble;
    cJSON_ReplaceItemInObject(t, "data_offsets", cJSON_CreateIntArray((int[]){(int)end + 100000000, (int)end + 100008192}, 2));
}

static void edit_wrong_shape(cJSON *h)
{
    /* same element count, shape inconsistent with the config */
    cJSON *t = cJSON_GetObjectItem(h, "model.layers.0.self_attn.q_proj.weight");
    cJSON_ReplaceItemInObject(t, "shape", cJSON_CreateIntArray((int[]){32, 128}, 2));
}

static void raw_bad_header_len(char *b, size_t *n)
{
    uint64_t big = (uint64_t)*n + 1000;
    memcpy(b, &big, 8);
}

static void raw_truncate(char *b, size_t *n)
{
    (void)b;
    *n -= 4096;
}

DG_TEST(convert_corrupt_inputs)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    const char *tmp = dg_test_tmpdir();
    struct {
        const char *name;
        void (*edit)(cJSON *);
        void (*raw)(char *, size_t *);
        const char *expect; /* a word the error message must contain */
    } cases[] = {
        {"unknown-dtype", edit_unknown_dtype, NULL, "Q7"},
        {"offset-past-end", edit_offset_past_end, NULL, "q_proj"},
        {"wrong-shape", edit_wrong_shape, NULL, "shape"},
        {"bad-header-length", NULL, raw_bad_header_len, "header"},
        {"truncated", NULL, raw_truncate, "model.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char in[1024], out[1024];
        snprintf(in, sizeof in, "%s/in-%s", tmp, cases[i].name);
        snprintf(out, sizeof out, "%s/out-%s", tmp, cases[i].name);
        CHECK(make_variant(fx, in, cases[i].edit, cases[i].raw));
        struct dg_convert_opts o = {.input = in, .output = out, .scheme = DG_Q_Q8_0, .threads = 2};
        struct dg_convert_summary s;
        dg_status st = dg_convert(&o, &s);
        CHECK_MSG(st != DG_OK, "%s: conversion of a corrupt input succeeded", cases[i].name);
        CHECK_MSG(strstr(dg_last_error(), cases[i].expect) != NULL, "%s: error '%s' does not mention '%s'",
                  cases[i].name, dg_last_error(), cases[i].expect);
        CHECK_MSG(!exists(out), "%s: output left behind", cases[i].name);
    }
    CHECK(no_temp_left(tmp));
}

/* Writes the llama fixture's tensors again as two shards with model.safetensors.index.json: tensor i goes
 * to shard 1 as F32 when i is even, to shard 2 as F16 when it is odd (values decoded from the fixture's
 * BF16). Returns the number of tensors written, 0 on failure. */
static int write_sharded(const char *fx, const char *dir)
{
    char p[1200], q[1200];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/models/llama/config.json", fx);
    snprintf(q, sizeof q, "%s/config.json", dir);
    struct dg_safetensors st;
    if (!copy(p, q))
        return 0;
    snprintf(p, sizeof p, "%s/models/llama", fx);
    if (dg_safetensors_open(p, &st) != DG_OK)
        return 0;
    cJSON *hdr[2] = {cJSON_CreateObject(), cJSON_CreateObject()}, *map = cJSON_CreateObject();
    uint64_t off[2] = {0, 0};
    uint8_t *data[2] = {NULL, NULL};
    static const char *const shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int i = 0; i < st.n_tensors; i++) {
        const struct dg_st_tensor *t = &st.tensors[i];
        int k = i & 1;
        uint64_t n = t->nbytes / 2, nb = n * (k ? 2 : 4);
        data[k] = realloc(data[k], off[k] + nb);
        for (uint64_t e = 0; e < n; e++) {
            uint16_t b;
            memcpy(&b, t->data + 2 * e, 2);
            float v = dg_bf16_to_f32(b);
            if (k) {
                uint16_t h = dg_f32_to_f16(v);
                memcpy(data[k] + off[k] + 2 * e, &h, 2);
            } else
                memcpy(data[k] + off[k] + 4 * e, &v, 4);
        }
        cJSON *o = cJSON_AddObjectToObject(hdr[k], t->name);
        cJSON_AddStringToObject(o, "dtype", k ? "F16" : "F32");
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *od = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(od, cJSON_CreateNumber((double)off[k]));
        cJSON_AddItemToArray(od, cJSON_CreateNumber((double)(off[k] + nb)));
        off[k] += nb;
        cJSON_AddStringToObject(map, t->name, shard[k]);
    }
    int n = st.n_tensors;
    dg_safetensors_close(&st);
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, shard[k]);
        FILE *f = fopen(p, "wb");
        char *txt = cJSON_PrintUnformatted(hdr[k]);
        uint64_t hl = strlen(txt);
        fwrite(&hl, 8, 1, f);
        fwrite(txt, 1, hl, f);
        fwrite(data[k], 1, off[k], f);
        fclose(f);
        free(txt);
        free(data[k]);
        cJSON_Delete(hdr[k]);
    }
    cJSON *idx = cJSON_CreateObject();
    cJSON_AddItemToObject(idx, "weight_map", map);
    char *txt = cJSON_Print(idx);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(p, "w");
    fputs(txt, f);
    fclose(f);
    free(txt);
    cJSON_Delete(idx);
    return n;
}

/* A sharded checkpoint (index + two shards) holding F32 and F16 tensors: it converts, every F32 tensor
 * comes out bit-identical to the BF16 fixture's values and every F16 one equals their f16 rounding (an
 * exact comparison: f16 → f32 is exact). A truncated second shard is an error naming that shard, with no
 * output left. */
DG_TEST(convert_sharded_f16_f32_input)
{
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    const char *tmp = dg_test_tmpdir();
    char in[1024], out[1024], ref[1024], p[1100];
    snprintf(in, sizeof in, "%s/sharded", tmp);
    snprintf(out, sizeof out, "%s/sharded-f32", tmp);
    snprintf(ref, sizeof ref, "%s/models/llama", fx);
    CHECK(write_sharded(fx, in) > 0);
    struct dg_convert_opts o = {.input = in, .output = out, .scheme = DG_Q_F32, .threads = 2};
    struct dg_convert_summary sum;
    CHECK_OK(dg_convert(&o, &sum));
    CHECK_OK(dg_manifest_verify(out));
    struct dg_model a, b;
    CHECK_OK(dg_model_open(ref, &a));
    CHECK_OK(dg_model_open_manifest(out, &b));
    CHECK(a.n_tensors == b.n_tensors);
    int n16 = 0, n32 = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        const struct dg_tensor *x = &a.tensors[i], *y = dg_model_find(&b, x->name);
        if (!y) {
            CHECK_MSG(0, "%s missing", x->name);
            continue;
        }
        float *xv = dequant_all(x), *yv = dequant_all(y);
        int64_t n = dg_tensor_nelems(x);
        /* which shard held it: the converter's canonical name is not the checkpoint's, so ask both */
        bool exact = true, rounded = true;
        for (int64_t e = 0; xv && yv && e < n; e++) {
            exact &= dg_bits_from_f32(xv[e]) == dg_bits_from_f32(yv[e]);
            rounded &= dg_bits_from_f32(dg_f16_to_f32(dg_f32_to_f16(xv[e]))) == dg_bits_from_f32(yv[e]);
        }
        CHECK_MSG(xv && yv && (exact || rounded), "%s: neither the f32 values nor their f16 rounding", x->name);
        n32 += exact;
        n16 += !exact && rounded;
        free(xv), free(yv);
    }
    /* about half the tensors each way; a tensor whose values are all f16-exact counts as f32 */
    CHECK_MSG(n16 > 0 && n32 > 0, "%d tensors matched f32, %d their f16 rounding", n32, n16);
    dg_model_close(&a);
    dg_model_close(&b);

    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", in);
    CHECK(truncate(p, 1000) == 0);
    snprintf(out, sizeof out, "%s/sharded-truncated", tmp);
    o.output = out;
    CHECK(dg_convert(&o, &sum) != DG_OK);
    CHECK_MSG(strstr(dg_last_error(), "model-00002-of-00002.safetensors") != NULL, "error: %s", dg_last_error());
    CHECK(!exists(out));
    CHECK(no_temp_left(tmp));
}

static bool rewrite_manifest(const char *dir, void (*edit)(cJSON *))
{
    cJSON *root;
    if (dg_manifest_load_json(dir, &root) != DG_OK)
        return false;
    edit(root);
    char p[1200];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    char *t = cJSON_Print(root);
    FILE *f = fopen(p, "w");
    fputs(t, f);
    fclose(f);
    free(t);
    cJSON_Delete(root);
    return true;
}

static cJSON *first_tensor(cJSON *root) { return cJSON_GetObjectItem(root, "tensors")->child; }
static void m_offset_past_end(cJSON *r) { cJSON_ReplaceItemInObject(first_tensor(r), "offset", cJSON_CreateNumber(1 << 30)); }
static void m_bad_dtype(cJSON *r) { cJSON_ReplaceItemInObject(first_tensor(r), "dtype", cJSON_CreateString("q3_x")); }
static void m_bad_size(cJSON *r)
{
    cJSON *t = first_tensor(r);
    cJSON_ReplaceItemInObject(t, "size", cJSON_CreateNumber(cJSON_GetObjectItem(t, "size")->valuedouble + 256));
}
static void m_bad_shape(cJSON *r) { cJSON_ReplaceItemInObject(first_tensor(r), "shape", cJSON_CreateIntArray((int[]){3, 0}, 2)); }
static void m_bad_shard_name(cJSON *r)
{
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "shards"), 0), "file",
                              cJSON_CreateString("../x.bin"));
}
static void m_duplicate(cJSON *r)
{
    cJSON *t = cJSON_GetObjectItem(r, "tensors");
    cJSON_AddItemToObject(t, t->child->string, cJSON_Duplicate(t->child, 1));
}
static void m_config_shape(cJSON *r)
{
    /* sizes stay consistent, but the config now implies other shapes (8 heads of 64 → q_proj [512, 256]) */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "config"), "n_heads", cJSON_CreateNumber(8));
}
static void m_bad_config(cJSON *r) { cJSON_DeleteItemFromObject(cJSON_GetObjectItem(r, "config"), "n_layers"); }

DG_TEST(manifest_corrupt_folders)
{
    const char *tmp = dg_test_tmpdir();
    const char *cfg = write_small_config(tmp);
    char good[1024];
    snprintf(good, sizeof good, "%s/good", tmp);
    CHECK_OK(convert_random(cfg, good, DG_Q_F16, DG_LAYOUT_ROW, false, false));
    struct {
        const char *name;
        void (*edit)(cJSON *);
        const char *expect;
    } cases[] = {
        {"offset", m_offset_past_end, "past the end"}, {"dtype", m_bad_dtype, "q3_x"},
        {"size", m_bad_size, "does not match"},         {"shape", m_bad_shape, "shape[1]"},
        {"shard-name", m_bad_shard_name, "file name"}, {"config", m_bad_config, "n_layers"},
        {"duplicate", m_duplicate, "twice"},            {"config-shape", m_config_shape, "expected [512, 256]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[1024], cmd[2200];
        snprintf(dir, sizeof dir, "%s/bad-%s", tmp, cases[i].name);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", good, dir);
        CHECK(system(cmd) == 0);
        CHECK(rewrite_manifest(dir, cases[i].edit));
        struct dg_model m;
        dg_status st = dg_model_open_manifest(dir, &m);
        CHECK_MSG(st == DG_E_FORMAT, "%s: open gave %d (%s)", cases[i].name, st, dg_last_error());
        CHECK_MSG(strstr(dg_last_error(), cases[i].expect) != NULL, "%s: error '%s' does not mention '%s'",
                  cases[i].name, dg_last_error(), cases[i].expect);
    }
    /* a truncated shard: open refuses it (size), verify reports it */
    char dir[1024], shard[1100], cmd[2200];
    snprintf(dir, sizeof dir, "%s/truncated", tmp);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", good, dir);
    CHECK(system(cmd) == 0);
    snprintf(shard, sizeof shard, "%s/shard-00000.bin", dir);
    struct stat sb;
    CHECK(stat(shard, &sb) == 0);
    CHECK(truncate(shard, sb.st_size - 100) == 0);
    struct dg_model m;
    CHECK(dg_model_open_manifest(dir, &m) == DG_E_FORMAT);
    CHECK(strstr(dg_last_error(), "truncated") != NULL);
    CHECK(dg_manifest_verify(dir) == DG_E_VERIFY);
    /* a flipped byte: open is fine (sizes agree), verify catches it */
    snprintf(dir, sizeof dir, "%s/flipped", tmp);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", good, dir);
    CHECK(system(cmd) == 0);
    snprintf(shard, sizeof shard, "%s/shard-00000.bin", dir);
    FILE *f = fopen(shard, "r+b");
    fseek(f, 1000, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 1000, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    CHECK(dg_manifest_verify(dir) == DG_E_VERIFY);
    CHECK(strstr(dg_last_error(), "SHA-256") != NULL);
}

DG_TEST(convert_force)
{
    const char *tmp = dg_test_tmpdir();
    const char *cfg = write_small_config(tmp);
    char out[1024], marker[1100];
    snprintf(out, sizeof out, "%s/out", tmp);
    CHECK_OK(convert_random(cfg, out, DG_Q_F16, DG_LAYOUT_ROW, false, false));
    snprintf(marker, sizeof marker, "%s/marker", out);
    FILE *f = fopen(marker, "w");
    fclose(f);
    /* without --force: refused, the old folder untouched */
    CHECK(convert_random(cfg, out, DG_Q_Q8_0, DG_LAYOUT_ROW, false, false) == DG_E_USAGE);
    CHECK(exists(marker));
    struct dg_convert_opts o = {.random_config = cfg, .output = out, .scheme = DG_Q_Q8_0, .force = true};
    struct dg_convert_summary s;
    CHECK_OK(dg_convert(&o, &s));
    CHECK(!exists(marker)); /* replaced as a whole */
    struct dg_model m;
    CHECK_OK(dg_model_open_manifest(out, &m));
    const struct dg_tensor *t = dg_model_find(&m, "layer.0.self_attn.q_proj");
    CHECK(t && t->dtype == DG_DT_Q8_0);
    dg_model_close(&m);
    CHECK(no_temp_left(tmp));
}

DG_TEST(manifest_mutations_do_not_crash)
{
    /* 300 random byte edits of a valid manifest.json: each open either succeeds or fails with a message,
     * never crashes (this test's value is under ASan/UBSan) */
    const char *tmp = dg_test_tmpdir();
    const char *cfg = write_small_config(tmp);
    char good[1024], path[1200];
    snprintf(good, sizeof good, "%s/good", tmp);
    CHECK_OK(convert_random(cfg, good, DG_Q_Q4_K_M, DG_LAYOUT_ROW, false, false));
    snprintf(path, sizeof path, "%s/manifest.json", good);
    size_t n;
    char *orig = dg_test_read_file(path, &n);
    CHECK(orig != NULL);
    if (!orig)
        return;
    uint64_t s = 12345;
    int opened = 0, refused = 0;
    for (int it = 0; it < 300; it++) {
        char *b = malloc(n);
        memcpy(b, orig, n);
        for (int k = 0; k < 1 + it % 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(s >> 33) % n;
            static const char pool[] = "0123456789-.e\"{}[],: xq";
            b[at] = pool[(s >> 20) % (sizeof pool - 1)];
        }
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
        free(b);
        struct dg_model m;
        if (dg_model_open_manifest(good, &m) == DG_OK) {
            opened++;
            dg_model_close(&m);
        } else {
            refused++;
            CHECK(dg_last_error()[0] != 0);
        }
    }
    printf("  %d mutated manifests opened, %d refused\n", opened, refused);
    CHECK(refused > 0);
    free(orig);
}

DG_TEST(convert_gguf_same_type_copies_bytes)
{
    /* a GGUF whose q8_0 tensors go to --quantize q8_0 keeps them byte for byte (no requantization) */
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/gguf/sotu-6m.Q8_0.gguf", fx);
    snprintf(out, sizeof out, "%s/sotu-q8", dg_test_tmpdir());
    struct dg_model src, m;
    if (dg_model_open(in, &src) != DG_OK)
        SKIP("%s cannot be opened here: %s", in, dg_last_error());
    struct dg_convert_opts o = {.input = in, .output = out, .scheme = DG_Q_Q8_0, .threads = 2};
    struct dg_convert_summary s;
    CHECK_OK(dg_convert(&o, &s));
    CHECK_OK(dg_model_open_manifest(out, &m));
    if (dg_test_failed()) {
        dg_model_close(&src);
        return;
    }
    CHECK(hparams_equal(&src.hp, &m.hp));
    int same = 0;
    for (int i = 0; i < src.n_tensors; i++) {
        const struct dg_tensor *a = &src.tensors[i], *b = dg_model_find(&m, a->name);
        CHECK(b != NULL);
        if (b && a->dtype == DG_DT_Q8_0) {
            CHECK_MSG(b->dtype == DG_DT_Q8_0 && b->nbytes == a->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                      "%s: q8_0 bytes changed", a->name);
            same++;
        }
    }
    CHECK(same > 0);
    dg_model_close(&m);
    dg_model_close(&src);
}

DG_TEST(convert_gguf_keep_types_copies_every_tensor)
{
    /* --quantize keep (the CLI's default for a GGUF input): the Q4_K_M file mixes q4_k, q5_0, q6_k and q8_0;
     * every tensor keeps its type and its bytes, nothing is reported as a fallback */
    const char *fx = dg_test_fixtures();
    if (!fx)
        return;
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/gguf/sotu-6m.Q4_K_M.gguf", fx);
    snprintf(out, sizeof out, "%s/sotu-keep", dg_test_tmpdir());
    struct dg_model src, m;
    if (dg_model_open(in, &src) != DG_OK)
        SKIP("%s cannot be opened here: %s", in, dg_last_error());
    struct dg_convert_opts o = {.input = in, .output = out, .scheme = DG_Q_F16, .keep_types = true, .threads = 2};
    struct dg_convert_summary s;
    CHECK_OK(dg_convert(&o, &s));
    CHECK(s.n_fallbacks == 0 && s.tensors[DG_DT_Q4_K] && s.tensors[DG_DT_Q5_0] && s.tensors[DG_DT_Q6_K] &&
          s.tensors[DG_DT_Q8_0] && !s.tensors[DG_DT_F16]);
    CHECK_OK(dg_model_open_manifest(out, &m));
    if (dg_test_failed()) {
        dg_model_close(&src);
        return;
    }
    CHECK(hparams_equal(&src.hp, &m.hp) && m.n_tensors == src.n_tensors);
    int same = 0;
    for (int i = 0; i < src.n_tensors; i++) {
        const struct dg_tensor *a = &src.tensors[i], *b = dg_model_find(&m, a->name);
        CHECK_MSG(b && b->dtype == a->dtype && b->nbytes == a->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                  "%s: not kept as stored (%s)", a->name, b ? dg_dtype_info(b->dtype)->name : "missing");
        same += b && b->dtype == a->dtype;
    }
    CHECK(same == src.n_tensors);
    char mf[1200];
    snprintf(mf, sizeof mf, "%s/manifest.json", out);
    char *text = dg_test_read_file(mf, NULL);
    CHECK(text && strstr(text, "\"scheme\":\t\"q4_k_m\"") && strstr(text, "\"fallbacks\":\t[]"));
    free(text);
    dg_model_close(&m);
    /* re-laying-out a quantized tensor would requantize it: refused, naming the tensor and the option */
    snprintf(out, sizeof out, "%s/sotu-keep-t", dg_test_tmpdir());
    o.output = out;
    o.transpose = true;
    CHECK(dg_convert(&o, &s) == DG_E_USAGE);
    CHECK_MSG(strstr(dg_last_error(), "--transpose-weights") && strstr(dg_last_error(), "requantize"), "%s",
              dg_last_error());
    o.transpose = false;
    o.q4k_layout = DG_LAYOUT_COLUMN;
    CHECK(dg_convert(&o, &s) == DG_E_USAGE && strstr(dg_last_error(), "q4_k"));
    struct stat st;
    CHECK(stat(out, &st) != 0); /* nothing left behind */
    dg_model_close(&src);
}
