/* gguf.h: a GGUF v2/v3 reader that treats the file as hostile, its tokenizer metadata, the GGUF → dg_model
 * mapping and the `inspect` listing.
 *
 * The reader maps the file read-only (or borrows a caller's buffer, which is what the fuzz target uses) and
 * validates everything before it is used: magic and version, counts within the DG_GGUF_MAX_* limits, every
 * string and array length against the bytes left BEFORE allocating, value types, unique tensor names of at
 * most DG_GGUF_NAME_MAX bytes, at most 4 dimensions, element counts without overflow, rows that are whole
 * blocks, offsets aligned to `general.alignment` and data inside the file. Every failure is DG_E_FORMAT (or
 * DG_E_UNSUPPORTED for well-formed things we do not implement, such as a tensor type outside dtype.h) with
 * a message naming the file, the field, the value found and the range allowed.
 *
 * Implementation: model/gguf.c (reader, getters, vocabulary), model/gguf_model.c (architectures and
 * tensor names), model/gguf_inspect.c (listing). No GL anywhere here. Assumes a little-endian host. */
#ifndef DG_MODEL_GGUF_H
#define DG_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "model/dtype.h"
#include "model/model.h"

/* Named limits. Real files stay far below them (a 120B MoE has ~700 tensors and ~40 keys). */
#define DG_GGUF_MAX_TENSORS 65536
#define DG_GGUF_MAX_KV 65536
#define DG_GGUF_MAX_KEY 65535 /* bytes in a key (the GGUF spec's limit) */
#define DG_GGUF_NAME_MAX 64   /* bytes in a tensor name */
#define DG_GGUF_MAX_DIMS 4
#define DG_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types, numbered as in the file. */
enum dg_gguf_vtype {
    DG_GGUF_U8 = 0,
    DG_GGUF_I8 = 1,
    DG_GGUF_U16 = 2,
    DG_GGUF_I16 = 3,
    DG_GGUF_U32 = 4,
    DG_GGUF_I32 = 5,
    DG_GGUF_F32 = 6,
    DG_GGUF_BOOL = 7,
    DG_GGUF_STRING = 8,
    DG_GGUF_ARRAY = 9,
    DG_GGUF_U64 = 10,
    DG_GGUF_I64 = 11,
    DG_GGUF_F64 = 12,
    DG_GGUF_VTYPE_COUNT
};

/* A string as stored in the file: NOT NUL-terminated, may hold any bytes; `ptr` points into the mapping. */
struct dg_gguf_str {
    const char *ptr;
    uint64_t len;
};

/* An array value. Numeric elements are left in the file (little-endian, possibly unaligned: read them with
 * dg_gguf_array_i64 / dg_gguf_array_f64, never through a cast pointer). String elements are indexed in
 * `strs` (owned by the dg_gguf). Arrays of arrays are rejected at open. */
struct dg_gguf_array {
    enum dg_gguf_vtype type;
    uint64_t n;
    const void *data;               /* numeric and bool elements */
    const struct dg_gguf_str *strs; /* string elements (type DG_GGUF_STRING), else NULL */
};

struct dg_gguf_kv {
    const char *key; /* NUL-terminated copy (keys holding a NUL byte are rejected) */
    enum dg_gguf_vtype type;
    union {
        uint64_t u; /* U8..U64 and BOOL (0 or 1) */
        int64_t i;  /* I8..I64 */
        double f;   /* F32, F64 */
    } num;
    struct dg_gguf_str str; /* STRING: the bytes in the file */
    const char *cstr;       /* STRING: a NUL-terminated copy (truncated at an embedded NUL) */
    struct dg_gguf_array arr;
};

struct dg_gguf_tensor {
    char name[DG_GGUF_NAME_MAX + 1];
    uint32_t ggml_type;  /* the file's type id (ggml.h enum ggml_type) */
    enum dg_dtype dtype; /* the same as ours */
    int n_dims;
    uint64_t ne[DG_GGUF_MAX_DIMS]; /* ggml order: ne[0] innermost (contiguous); unused dims are 1 */
    uint64_t nelems;
    uint64_t offset; /* from the start of the data section */
    uint64_t nbytes;
    const void *data; /* inside the mapping */
};

struct dg_gguf {
    char path[1024]; /* for messages ("<memory>" or the caller's name for buffers) */
    const uint8_t *base;
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset; /* start of the tensor data section in the file */
    struct dg_gguf_kv *kv;
    uint64_t n_kv;
    struct dg_gguf_tensor *tensors;
    uint64_t n_tensors;
    void *map; /* non-NULL when we mapped the file ourselves */
    size_t map_len;
};

/* Opens and validates a file. On failure *out is NULL and the message says why. */
dg_status dg_gguf_open(const char *path, struct dg_gguf **out);
/* Same over a caller's buffer, which must outlive the dg_gguf; `name` is used in messages (may be NULL). */
dg_status dg_gguf_open_buffer(const void *buf, size_t len, const char *name, struct dg_gguf **out);
void dg_gguf_close(struct dg_gguf *g);

/* ggml type id ↔ ours. Returns false for ids we do not read (IQ*, Q2_K, ...). */
bool dg_gguf_type_to_dtype(uint32_t ggml_type, enum dg_dtype *out);
/* ggml's name for a type id ("q4_K"); NULL for ids ggml does not define. */
const char *dg_gguf_type_name(uint32_t ggml_type);
const char *dg_gguf_vtype_name(enum dg_gguf_vtype t);

/* Lookups (NULL when absent). */
const struct dg_gguf_kv *dg_gguf_find(const struct dg_gguf *g, const char *key);
const struct dg_gguf_tensor *dg_gguf_find_tensor(const struct dg_gguf *g, const char *name);

/* Typed getters. They fail with DG_E_FORMAT when the key is missing ("missing key ..."), has another type,
 * or its value does not fit. Integer getters accept any integer type whose value fits; f32 accepts F32 and
 * F64. The _opt variants return DG_OK and leave *out unchanged when the key is absent. */
dg_status dg_gguf_get_str(const struct dg_gguf *g, const char *key, const char **out);
dg_status dg_gguf_get_u32(const struct dg_gguf *g, const char *key, uint32_t *out);
dg_status dg_gguf_get_i32(const struct dg_gguf *g, const char *key, int32_t *out);
dg_status dg_gguf_get_f32(const struct dg_gguf *g, const char *key, float *out);
dg_status dg_gguf_get_bool(const struct dg_gguf *g, const char *key, bool *out);
/* An array whose elements have type `elem` (DG_GGUF_VTYPE_COUNT: any element type). */
dg_status dg_gguf_get_array(const struct dg_gguf *g, const char *key, enum dg_gguf_vtype elem,
                            const struct dg_gguf_array **out);
dg_status dg_gguf_opt_str(const struct dg_gguf *g, const char *key, const char **out);
dg_status dg_gguf_opt_u32(const struct dg_gguf *g, const char *key, uint32_t *out);
dg_status dg_gguf_opt_i32(const struct dg_gguf *g, const char *key, int32_t *out);
dg_status dg_gguf_opt_f32(const struct dg_gguf *g, const char *key, float *out);
dg_status dg_gguf_opt_bool(const struct dg_gguf *g, const char *key, bool *out);

/* Element i of a numeric or bool array, converted (i < a->n is the caller's check). */
int64_t dg_gguf_array_i64(const struct dg_gguf_array *a, uint64_t i);
double dg_gguf_array_f64(const struct dg_gguf_array *a, uint64_t i);

/* The tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`), checked: tokens present, scores
 * and token_type as long as tokens, special ids inside the vocabulary. Strings point into the mapping (the
 * dg_gguf must stay open); scores and token_type are copied into aligned arrays owned by the vocab. */
struct dg_gguf_vocab {
    const char *model;  /* "llama" (SentencePiece), "gpt2" (byte-level BPE), ...; required */
    const char *pre;    /* pre-tokenizer name ("llama-bpe", "qwen2", "default"); NULL when absent */
    uint32_t n_tokens;
    const struct dg_gguf_str *tokens; /* [n_tokens] */
    float *scores;                    /* [n_tokens] or NULL */
    int32_t *token_type;              /* [n_tokens] or NULL (1 normal, 2 unknown, 3 control, 4 user, 6 byte) */
    uint32_t n_merges;
    const struct dg_gguf_str *merges; /* [n_merges] "a b" pairs, or NULL */
    int32_t bos_id, eos_id, eot_id, eom_id, unk_id, pad_id; /* -1 when absent */
    bool has_add_bos, add_bos; /* has_*: the key is present */
    bool has_add_eos, add_eos;
    const char *chat_template; /* NULL when absent (NUL-terminated copy) */
};
dg_status dg_gguf_vocab_get(const struct dg_gguf *g, struct dg_gguf_vocab *v);
void dg_gguf_vocab_free(struct dg_gguf_vocab *v);

/* Opens a GGUF model: hyperparameters from `<arch>.*` keys, tensors renamed to model.h's canonical names,
 * shapes reversed to outermost-first, data pointing into the mapping. See gguf_model.c for the conventions
 * (RoPE pairing, Gemma norms, fused Phi-3 tensors). Release with dg_model_close_gguf (which dg_model_close
 * should call for DG_SRC_GGUF). */
dg_status dg_model_open_gguf(const char *path, struct dg_model *m);
/* Same from an already-open reader; on success the model takes ownership of `g`. */
dg_status dg_model_from_gguf(struct dg_gguf *g, struct dg_model *m);
void dg_model_close_gguf(struct dg_model *m);
/* The reader behind a model opened from GGUF (for the vocabulary), or NULL for other sources. */
const struct dg_gguf *dg_model_gguf(const struct dg_model *m);

/* Lists metadata (arrays summarized) and tensors (name, type, shape in ggml order, bytes) as text or JSON. */
dg_status dg_gguf_inspect(const char *path, bool json, FILE *out);
dg_status dg_gguf_inspect_file(const struct dg_gguf *g, bool json, FILE *out);

#endif
