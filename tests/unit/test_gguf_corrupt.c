/* test_gguf_corrupt.c: corrupted copies of a fixture GGUF, each refused with its own message and without a
 * crash (the suite also runs under ASan/UBSan). Byte positions are found by a small header walker written
 * here, independent of the reader under test. */
#include "../test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

/* Positions in the fixture, found by walk(). */
struct layout {
    size_t n_tensors_at, arch_value_at; /* the u64 length of general.architecture's string */
    size_t key_at[64];                  /* each key's u64 length field */
    size_t tokens_type_at;              /* tokenizer.ggml.tokens: array element type */
    int n_keys;
    size_t t_name_at[64], t_ndims_at[64], t_type_at[64], t_off_at[64];
    int n_t;
};

static uint64_t u64_at(const uint8_t *p, size_t at)
{
    uint64_t v;
    memcpy(&v, p + at, 8);
    return v;
}
static uint32_t u32_at(const uint8_t *p, size_t at)
{
    uint32_t v;
    memcpy(&v, p + at, 4);
    return v;
}
static void put_u64(uint8_t *p, size_t at, uint64_t v) { memcpy(p + at, &v, 8); }
static void put_u32(uint8_t *p, size_t at, uint32_t v) { memcpy(p + at, &v, 4); }

static size_t skip_value(const uint8_t *p, size_t o, uint32_t type)
{
    static const int sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8)
        return o + 8 + u64_at(p, o);
    if (type == 9) {
        uint32_t et = u32_at(p, o);
        uint64_t n = u64_at(p, o + 4);
        o += 12;
        for (uint64_t i = 0; i < n; i++)
            o = skip_value(p, o, et);
        return o;
    }
    return o + sz[type];
}

static void walk(const uint8_t *p, struct layout *L)
{
    memset(L, 0, sizeof *L);
    L->n_tensors_at = 8;
    uint64_t nt = u64_at(p, 8), nkv = u64_at(p, 16);
    size_t o = 24;
    for (uint64_t i = 0; i < nkv && i < 64; i++) {
        L->key_at[L->n_keys++] = o;
        uint64_t kl = u64_at(p, o);
        const char *key = (const char *)p + o + 8;
        o += 8 + kl;
        uint32_t type = u32_at(p, o);
        o += 4;
        if (kl == 20 && memcmp(key, "general.architecture", 20) == 0)
            L->arch_value_at = o;
        if (kl == 21 && memcmp(key, "tokenizer.ggml.tokens", 21) == 0)
            L->tokens_type_at = o;
        o = skip_value(p, o, type);
    }
    for (uint64_t i = 0; i < nt && i < 64; i++) {
        L->t_name_at[L->n_t] = o;
        o += 8 + u64_at(p, o);
        L->t_ndims_at[L->n_t] = o;
        uint32_t nd = u32_at(p, o);
        o += 4 + 8 * nd;
        L->t_type_at[L->n_t] = o;
        o += 4;
        L->t_off_at[L->n_t] = o;
        o += 8;
        L->n_t++;
    }
}

static int find_key(const uint8_t *p, const struct layout *L, const char *key)
{
    for (int i = 0; i < L->n_keys; i++)
        if (u64_at(p, L->key_at[i]) == strlen(key) && memcmp(p + L->key_at[i] + 8, key, strlen(key)) == 0)
            return i;
    return -1;
}

static int find_tensor(const uint8_t *p, const struct layout *L, const char *name)
{
    for (int i = 0; i < L->n_t; i++)
        if (u64_at(p, L->t_name_at[i]) == strlen(name) && memcmp(p + L->t_name_at[i] + 8, name, strlen(name)) == 0)
            return i;
    return -1;
}

static uint8_t *orig;
static size_t orig_len;
static struct layout L;

static bool load(void)
{
    if (orig)
        return true;
    const char *root = dg_test_fixtures();
    if (!root)
        return false;
    char path[4096];
    snprintf(path, sizeof path, "%s/gguf/sotu-6m.Q4_K_M.gguf", root);
    orig = (uint8_t *)dg_test_read_file(path, &orig_len);
    CHECK_MSG(orig, "cannot read %s", path);
    if (!orig)
        return false;
    walk(orig, &L);
    CHECK(L.n_t == 56 && L.n_keys == 28 && L.arch_value_at && L.tokens_type_at);
    return L.n_t == 56;
}

static uint8_t *copy(void)
{
    uint8_t *c = malloc(orig_len);
    memcpy(c, orig, orig_len);
    return c;
}

/* Opens `buf` and expects status `want` with `msg` in the error. */
#define EXPECT_FAIL(buf, len, want, msg)                                                                         \
    do {                                                                                                         \
        struct dg_gguf *g_ = (struct dg_gguf *)1;                                                                \
        dg_clear_error();                                                                                        \
        dg_status st_ = dg_gguf_open_buffer((buf), (len), "corrupt.gguf", &g_);                                  \
        CHECK_MSG(st_ == (want), "status %s, want %s (%s)", dg_status_name(st_), dg_status_name(want),           \
                  dg_last_error());                                                                              \
        CHECK(g_ == NULL);                                                                                       \
        CHECK_MSG(strstr(dg_last_error(), (msg)) != NULL, "message \"%s\" lacks \"%s\"", dg_last_error(), (msg)); \
        CHECK_MSG(strstr(dg_last_error(), "corrupt.gguf") != NULL, "message lacks the file name");               \
        if (st_ == DG_OK)                                                                                        \
            dg_gguf_close(g_);                                                                                   \
    } while (0)

DG_TEST(gguf_corrupt_truncated)
{
    if (!load())
        return;
    struct dg_gguf *g;
    CHECK_OK(dg_gguf_open_buffer(orig, orig_len, "intact.gguf", &g)); /* the copy itself is fine */
    dg_gguf_close(g);
    EXPECT_FAIL(orig, 0, DG_E_FORMAT, "bad magic");
    EXPECT_FAIL(orig, 3, DG_E_FORMAT, "bad magic");
    EXPECT_FAIL(orig, 6, DG_E_FORMAT, "truncated: version needs 4 bytes at offset 4");
    EXPECT_FAIL(orig, 20, DG_E_FORMAT, "truncated: number of key-value pairs");
    EXPECT_FAIL(orig, 100000, DG_E_FORMAT, "past the end of the file"); /* inside the vocabulary */
    /* Every prefix through the header fails cleanly (a few hundred sizes, spread over the header). */
    for (size_t n = 24; n < 291100; n += 997) {
        struct dg_gguf *gg = NULL;
        dg_status st = dg_gguf_open_buffer(orig, n, "corrupt.gguf", &gg);
        CHECK_MSG(st == DG_E_FORMAT && gg == NULL, "prefix of %zu bytes: %s", n, dg_status_name(st));
    }
    /* Header intact, data cut short: the last tensors' data is past the end. */
    EXPECT_FAIL(orig, orig_len - 1000, DG_E_FORMAT, "past the end of the data section");

    /* The same through a real file (the mmap path). */
    char path[4096];
    const char *tmp = dg_test_tmpdir();
    if (!tmp)
        return;
    snprintf(path, sizeof path, "%s/truncated.gguf", tmp);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(orig, 1, 5000, f) == 5000);
    if (f)
        fclose(f);
    g = (struct dg_gguf *)1;
    CHECK(dg_gguf_open(path, &g) == DG_E_FORMAT && g == NULL);
    CHECK(strstr(dg_last_error(), "truncated.gguf") && strstr(dg_last_error(), "past the end of the file"));
    snprintf(path, sizeof path, "%s/empty.gguf", tmp);
    f = fopen(path, "wb");
    if (f)
        fclose(f);
    CHECK(dg_gguf_open(path, &g) == DG_E_FORMAT && strstr(dg_last_error(), "bad magic"));
    snprintf(path, sizeof path, "%s/absent.gguf", tmp);
    CHECK(dg_gguf_open(path, &g) == DG_E_IO && strstr(dg_last_error(), "absent.gguf"));
    CHECK(dg_gguf_open(tmp, &g) == DG_E_IO && strstr(dg_last_error(), "not a regular file"));
}

DG_TEST(gguf_corrupt_header_fields)
{
    if (!load())
        return;
    uint8_t *c = copy();
    c[0] = 'G', c[1] = 'G', c[2] = 'M', c[3] = 'L';
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "bad magic 47 47 4d 4c");
    memcpy(c, orig, 8);
    put_u32(c, 4, 1);
    EXPECT_FAIL(c, orig_len, DG_E_UNSUPPORTED, "version 1 is not supported");
    put_u32(c, 4, 4);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "version is 4 but must be in [2, 3]");
    put_u32(c, 4, 0x03000000);
    EXPECT_FAIL(c, orig_len, DG_E_UNSUPPORTED, "big-endian");
    put_u32(c, 4, 2); /* v2 has the same layout */
    struct dg_gguf *g;
    CHECK_OK(dg_gguf_open_buffer(c, orig_len, "v2.gguf", &g));
    dg_gguf_close(g);
    put_u32(c, 4, 3);

    put_u64(c, L.n_tensors_at, 1ull << 40);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "number of tensors is 1099511627776 but must be in [0, 65536]");
    put_u64(c, L.n_tensors_at, UINT64_MAX);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "number of tensors is -1 but must be in [0, 65536]");
    put_u64(c, L.n_tensors_at, 60000); /* within the limit, but a file cut after the header has no room */
    EXPECT_FAIL(c, 300000, DG_E_FORMAT, "number of tensors is 60000 but the file has room for at most");
    put_u64(c, L.n_tensors_at, 56);
    put_u64(c, 16, 1ull << 33);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "number of key-value pairs is 8589934592 but must be in [0, 65536]");
    put_u64(c, 16, 28);
    free(c);
}

DG_TEST(gguf_corrupt_metadata)
{
    if (!load())
        return;
    uint8_t *c = copy();
    put_u64(c, L.arch_value_at, 1ull << 62);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "general.architecture: string length 4611686018427387904 at offset");
    CHECK(strstr(dg_last_error(), "is past the end of the file"));
    put_u64(c, L.arch_value_at, 5);

    /* A key's own length past the end. */
    put_u64(c, L.key_at[3], UINT64_MAX);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "key 3: string length 18446744073709551615");
    put_u64(c, L.key_at[3], u64_at(orig, L.key_at[3]));

    /* Unknown value type, arrays of arrays, unknown element type, huge array count. */
    size_t type_at = L.arch_value_at - 4;
    put_u32(c, type_at, 13);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "key general.architecture: value type is 13 but must be in [0, 12]");
    put_u32(c, type_at, 8);
    put_u32(c, L.tokens_type_at, 9);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "tokenizer.ggml.tokens: array of arrays: nested arrays are not supported");
    put_u32(c, L.tokens_type_at, 200);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "tokenizer.ggml.tokens: array element type is 200 but must be in [0, 12]");
    put_u32(c, L.tokens_type_at, 8);
    put_u64(c, L.tokens_type_at + 4, 1ull << 60);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "array of 1152921504606846976 strings is past the end of the file");
    put_u32(c, L.tokens_type_at, 4); /* the same count of u32 elements */
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "array of 1152921504606846976 u32 elements is past the end of the file");
    memcpy(c + L.tokens_type_at, orig + L.tokens_type_at, 12);

    /* Duplicate key: general.name renamed general.type (same length). */
    int kn = find_key(orig, &L, "general.name");
    CHECK(kn >= 0 && find_key(orig, &L, "general.type") >= 0);
    if (kn >= 0) {
        memcpy(c + L.key_at[kn] + 8, "general.type", 12);
        EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "duplicate key general.type");
        memcpy(c + L.key_at[kn] + 8, "general.name", 12);
    }
    /* general.alignment that is not a power of two: llama.block_count (6) renamed (same length). */
    int kb = find_key(orig, &L, "llama.block_count");
    CHECK(kb >= 0);
    if (kb >= 0) {
        memcpy(c + L.key_at[kb] + 8, "general.alignment", 17);
        EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "general.alignment is 6 but must be a power of two");
        memcpy(c + L.key_at[kb] + 8, "llama.block_count", 17);
    }
    /* A bool that is neither 0 nor 1. */
    int ka = find_key(orig, &L, "tokenizer.ggml.add_bos_token");
    CHECK(ka >= 0);
    if (ka >= 0) {
        size_t at = L.key_at[ka] + 8 + 28 + 4;
        c[at] = 7;
        EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "tokenizer.ggml.add_bos_token: bool value is 7 but must be in [0, 1]");
        c[at] = orig[at];
    }
    /* A key holding a NUL byte. */
    c[L.key_at[0] + 8 + 3] = 0;
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "key 0 holds a NUL byte");
    CHECK(memcmp(c, orig, orig_len) != 0);
    c[L.key_at[0] + 8 + 3] = orig[L.key_at[0] + 8 + 3];
    CHECK(memcmp(c, orig, orig_len) == 0); /* every corruption above was undone */
    free(c);
}

DG_TEST(gguf_corrupt_tensor_table)
{
    if (!load())
        return;
    uint8_t *c = copy();
    int tq = find_tensor(orig, &L, "blk.0.attn_q.weight"), tk = find_tensor(orig, &L, "blk.0.attn_k.weight");
    int last = L.n_t - 1;
    CHECK(tq >= 0 && tk >= 0);
    if (tq < 0 || tk < 0) {
        free(c);
        return;
    }
    /* Unknown and unsupported types. */
    put_u32(c, L.t_type_at[tq], 99);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "tensor blk.0.attn_q.weight: type is 99, which is not a ggml type");
    put_u32(c, L.t_type_at[tq], 4); /* removed Q4_2 */
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "type is 4, which is not a ggml type");
    put_u32(c, L.t_type_at[tq], 10);
    EXPECT_FAIL(c, orig_len, DG_E_UNSUPPORTED, "tensor blk.0.attn_q.weight: type 10 (q2_K) is not supported");
    put_u32(c, L.t_type_at[tq], 12);

    /* Duplicate name: attn_q renamed attn_k (same length). */
    memcpy(c + L.t_name_at[tq] + 8, "blk.0.attn_k.weight", 19);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "duplicate tensor name blk.0.attn_k.weight");
    memcpy(c + L.t_name_at[tq] + 8, "blk.0.attn_q.weight", 19);

    /* Name too long (65 bytes claimed) and empty. */
    char msg[128];
    put_u64(c, L.t_name_at[tq], 65);
    snprintf(msg, sizeof msg, "tensor %d: name length is 65 but must be in [1, 64]", tq);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, msg);
    put_u64(c, L.t_name_at[tq], 0);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "name length is 0 but must be in [1, 64]");
    put_u64(c, L.t_name_at[tq], 19);

    /* Offsets: past the end, misaligned. */
    uint64_t off = u64_at(orig, L.t_off_at[last]);
    put_u64(c, L.t_off_at[last], off + (1ull << 40));
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "past the end of the data section");
    put_u64(c, L.t_off_at[last], UINT64_MAX - 31); /* aligned, and offset + bytes would wrap */
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "past the end of the data section");
    put_u64(c, L.t_off_at[last], off + 1);
    snprintf(msg, sizeof msg, "tensor %.*s: offset %llu is not a multiple of the alignment 32",
             (int)u64_at(orig, L.t_name_at[last]), (const char *)orig + L.t_name_at[last] + 8,
             (unsigned long long)off + 1);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, msg);
    put_u64(c, L.t_off_at[last], off);

    /* Dimensions: too many, zero, overflowing product, row not a whole number of blocks. */
    uint32_t nd = u32_at(orig, L.t_ndims_at[tq]);
    CHECK(nd == 2);
    put_u32(c, L.t_ndims_at[tq], 5);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "tensor blk.0.attn_q.weight: number of dimensions is 5 but must be in [1, 4]");
    put_u32(c, L.t_ndims_at[tq], 0);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "number of dimensions is 0 but must be in [1, 4]");
    put_u32(c, L.t_ndims_at[tq], 2);
    size_t ne0 = L.t_ndims_at[tq] + 4, ne1 = ne0 + 8;
    put_u64(c, ne0, 0);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "ne[0] is 0 but must be in [1, 9223372036854775807]");
    put_u64(c, ne0, 1ull << 40);
    put_u64(c, ne1, 1ull << 40);
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "element count overflows");
    put_u64(c, ne1, 256);
    put_u64(c, ne0, 128); /* q4_K needs rows of 256 */
    EXPECT_FAIL(c, orig_len, DG_E_FORMAT, "row of 128 elements is not a multiple of the q4_k block size 256");
    put_u64(c, ne0, 256);
    CHECK(memcmp(c, orig, orig_len) == 0);
    free(c);
}

/* Model-level errors: required keys and architectures are named. */
static void expect_model_fail(const uint8_t *buf, size_t len, dg_status want, const char *msg)
{
    struct dg_gguf *g = NULL;
    CHECK_OK(dg_gguf_open_buffer(buf, len, "model.gguf", &g));
    if (!g)
        return;
    struct dg_model m;
    dg_status st = dg_model_from_gguf(g, &m);
    CHECK_MSG(st == want, "status %s, want %s (%s)", dg_status_name(st), dg_status_name(want), dg_last_error());
    CHECK_MSG(strstr(dg_last_error(), msg) != NULL, "message \"%s\" lacks \"%s\"", dg_last_error(), msg);
    if (st == DG_OK)
        dg_model_close_gguf(&m);
    else
        dg_gguf_close(g);
}

DG_TEST(gguf_corrupt_model_keys)
{
    if (!load())
        return;
    uint8_t *c = copy();
    struct dg_gguf *g = NULL;
    struct dg_model m;
    CHECK_OK(dg_gguf_open_buffer(c, orig_len, "model.gguf", &g));
    CHECK_OK(g ? dg_model_from_gguf(g, &m) : DG_E_INTERNAL);
    if (g)
        dg_model_close_gguf(&m);

    memcpy(c + L.arch_value_at + 8, "llamb", 5);
    expect_model_fail(c, orig_len, DG_E_UNSUPPORTED, "general.architecture is \"llamb\" but must be one of llama");
    memcpy(c + L.arch_value_at + 8, "llama", 5);
    int ke = find_key(orig, &L, "llama.embedding_length");
    CHECK(ke >= 0);
    if (ke >= 0) {
        c[L.key_at[ke] + 8 + 21] = 'X';
        expect_model_fail(c, orig_len, DG_E_FORMAT, "missing required key llama.embedding_length");
        c[L.key_at[ke] + 8 + 21] = 'h';
    }
    int kh = find_key(orig, &L, "llama.attention.head_count_kv");
    CHECK(kh >= 0);
    if (kh >= 0) {
        size_t at = L.key_at[kh] + 8 + 29 + 4;
        put_u32(c, at, 3);
        expect_model_fail(c, orig_len, DG_E_FORMAT, "llama.attention.head_count 4 is not a multiple of head_count_kv 3");
        put_u32(c, at, 9);
        expect_model_fail(c, orig_len, DG_E_FORMAT, "llama.attention.head_count_kv is 9 but must be in [1, 4]");
        put_u32(c, at, 2);
    }
    int tq = find_tensor(orig, &L, "blk.0.attn_q.weight");
    if (tq >= 0) {
        memcpy(c + L.t_name_at[tq] + 8, "blk.9.attn_q.weight", 19);
        expect_model_fail(c, orig_len, DG_E_FORMAT, "tensor blk.9.attn_q.weight: layer 9 but must be in [0, 6)");
        memcpy(c + L.t_name_at[tq] + 8, "blk.0.attn_z.weight", 19);
        expect_model_fail(c, orig_len, DG_E_UNSUPPORTED, "tensor blk.0.attn_z.weight: no mapping");
        memcpy(c + L.t_name_at[tq] + 8, "blk.0.attn_q.weight", 19);
        size_t ne1 = L.t_ndims_at[tq] + 4 + 8;
        put_u64(c, ne1, 128); /* half the rows: a consistent file, but not this model */
        expect_model_fail(c, orig_len, DG_E_FORMAT, "tensor layer.0.self_attn.q_proj (ours) has shape [128, 256]");
        put_u64(c, ne1, 256);
    }
    CHECK(memcmp(c, orig, orig_len) == 0);
    free(c);
}
