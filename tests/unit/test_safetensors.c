/* test_safetensors.c: the safetensors reader accepts a well-formed file and a sharded folder, and refuses
 * each kind of corrupt input with an error naming the file, the tensor and the bad value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "test.h"

/* Builds a file image: u64 header length, header, `data_len` bytes of data (0, 1, 2, ...). */
static uint8_t *image(const char *header, size_t data_len, uint64_t fake_hlen, size_t *size)
{
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    uint8_t *b = malloc(*size);
    uint64_t v = fake_hlen ? fake_hlen : hl;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (uint8_t)i;
    return b;
}

static dg_status try_image(const char *header, size_t data_len, uint64_t fake_hlen)
{
    size_t size;
    uint8_t *b = image(header, data_len, fake_hlen, &size);
    struct dg_safetensors st = {0};
    dg_status rc = dg_safetensors_add_buffer(&st, "t.safetensors", b, size);
    dg_safetensors_close(&st);
    free(b);
    return rc;
}

static bool msg_has(const char *s) { return strstr(dg_last_error(), s) != NULL; }

#define GOOD "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}," \
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}}"

DG_TEST(safetensors_accepts_valid)
{
    size_t size;
    uint8_t *b = image(GOOD, 22, 0, &size);
    struct dg_safetensors st = {0};
    CHECK_OK(dg_safetensors_add_buffer(&st, "t.safetensors", b, size));
    const struct dg_st_tensor *a = dg_safetensors_find(&st, "a"), *bb = dg_safetensors_find(&st, "b");
    CHECK(a && a->dtype == DG_ST_F32 && a->ndim == 2 && a->shape[1] == 2 && a->nbytes == 16);
    CHECK(bb && bb->dtype == DG_ST_BF16 && bb->data == b + 8 + strlen(GOOD) + 16);
    CHECK(dg_safetensors_find(&st, "__metadata__") == NULL);
    CHECK(st.n_tensors == 2);
    dg_safetensors_close(&st);
    free(b);
}

DG_TEST(safetensors_rejects_corrupt)
{
    /* truncated file: the data section ends before tensor b */
    CHECK(try_image(GOOD, 20, 0) == DG_E_FORMAT);
    CHECK_MSG(msg_has("t.safetensors") && msg_has("tensor b") && msg_has("22") && msg_has("past the data section"),
              "%s", dg_last_error());
    /* header length larger than the file */
    CHECK(try_image(GOOD, 22, (uint64_t)1 << 40) == DG_E_FORMAT);
    CHECK_MSG(msg_has("header length 1099511627776") && msg_has("past the end"), "%s", dg_last_error());
    /* shorter than the length field */
    CHECK(dg_safetensors_add_buffer(&(struct dg_safetensors){0}, "t.safetensors", "abc", 3) == DG_E_FORMAT);
    /* offset past the end */
    CHECK(try_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}", 16, 0) == DG_E_FORMAT);
    CHECK_MSG(msg_has("tensor a") && msg_has("end 32") && msg_has("16 bytes"), "%s", dg_last_error());
    /* wrong shape for its byte span */
    CHECK(try_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", 16, 0) == DG_E_FORMAT);
    CHECK_MSG(msg_has("tensor a") && msg_has("span 16 bytes, expected 24"), "%s", dg_last_error());
    /* unknown dtype */
    CHECK(try_image("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, 0) == DG_E_UNSUPPORTED);
    CHECK_MSG(msg_has("tensor a") && msg_has("\"F64\"") && msg_has("F32, F16, BF16"), "%s", dg_last_error());
    /* begin > end */
    CHECK(try_image("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16, 0) == DG_E_FORMAT);
    CHECK_MSG(msg_has("not ordered"), "%s", dg_last_error());
    /* overlapping tensors */
    CHECK(try_image("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}", 16, 0) == DG_E_FORMAT);
    CHECK_MSG(msg_has("overlaps"), "%s", dg_last_error());
    /* not JSON, not an object, bad fields */
    CHECK(try_image("{\"a\":", 0, 0) == DG_E_FORMAT);
    CHECK(msg_has("not valid JSON"));
    CHECK(try_image("[1,2]", 0, 0) == DG_E_FORMAT);
    CHECK(try_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, 0) == DG_E_FORMAT);
    CHECK(try_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0, 0) == DG_E_FORMAT);
    CHECK(try_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0) == DG_E_FORMAT);
    CHECK(try_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                    "\"data_offsets\":[0,4]}}", 4, 0) == DG_E_FORMAT);
    CHECK(msg_has("overflow"));
}

static void write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

DG_TEST(safetensors_sharded_and_files)
{
    const char *dir = dg_test_tmpdir();
    char p[1024];
    size_t s1, s2;
    uint8_t *a = image("{\"x\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, 0, &s1);
    uint8_t *b = image("{\"y\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, &s2);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_file(p, a, s1);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_file(p, b, s2);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    const char *idx = "{\"metadata\":{},\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
                      "\"y\":\"model-00002-of-00002.safetensors\"}}";
    write_file(p, idx, strlen(idx));
    struct dg_safetensors st;
    CHECK_OK(dg_safetensors_open(dir, &st));
    CHECK(st.n_files == 2 && st.n_tensors == 2);
    const struct dg_st_tensor *y = dg_safetensors_find(&st, "y");
    CHECK(y && y->dtype == DG_ST_U32 && y->file == 1);
    dg_safetensors_close(&st);

    /* the index names the wrong shard for a tensor */
    idx = "{\"weight_map\":{\"x\":\"model-00002-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\"}}";
    write_file(p, idx, strlen(idx));
    CHECK(dg_safetensors_open(dir, &st) == DG_E_FORMAT);
    CHECK_MSG(msg_has("tensor x") && msg_has("has no such tensor"), "%s", dg_last_error());
    /* path escapes are refused */
    idx = "{\"weight_map\":{\"x\":\"../etc/passwd\"}}";
    write_file(p, idx, strlen(idx));
    CHECK(dg_safetensors_open(dir, &st) == DG_E_FORMAT);
    CHECK(msg_has("weight_map[\"x\"]"));
    /* a missing shard */
    idx = "{\"weight_map\":{\"x\":\"nope.safetensors\"}}";
    write_file(p, idx, strlen(idx));
    CHECK(dg_safetensors_open(dir, &st) == DG_E_IO);
    CHECK(msg_has("nope.safetensors"));

    /* a truncated single file on disk */
    const char *dir2 = dg_test_tmpdir();
    snprintf(p, sizeof p, "%s/model.safetensors", dir2);
    write_file(p, a, s1 - 3);
    CHECK(dg_safetensors_open(dir2, &st) == DG_E_FORMAT);
    CHECK_MSG(msg_has(p) && msg_has("tensor x"), "%s", dg_last_error());
    write_file(p, a, 5);
    CHECK(dg_safetensors_open(p, &st) == DG_E_FORMAT);
    CHECK(msg_has("too short"));
    free(a);
    free(b);
}
