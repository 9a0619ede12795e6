/* gguf.c: the GGUF reader (parse + validate a mapped file or a buffer), typed metadata getters and the
 * tokenizer metadata. Every length read from the file is checked against the bytes that remain before it
 * is used or allocated for; messages follow ggml's gguf.cpp ("... is %llu but must be in [a, b]"). */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

/* ---- type tables ---------------------------------------------------------------------------------- */

#define GGML_TYPE_ID_MAX 41 /* highest id ggml has defined (q1_0); MXFP4 is 39 */

static const char *const ggml_type_names[GGML_TYPE_ID_MAX + 1] = {
    [0] = "f32",      [1] = "f16",     [2] = "q4_0",    [3] = "q4_1",    [6] = "q5_0",    [7] = "q5_1",
    [8] = "q8_0",     [9] = "q8_1",    [10] = "q2_K",   [11] = "q3_K",   [12] = "q4_K",   [13] = "q5_K",
    [14] = "q6_K",    [15] = "q8_K",   [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs", [19] = "iq1_s",
    [20] = "iq4_nl",  [21] = "iq3_s",  [22] = "iq2_s",  [23] = "iq4_xs", [24] = "i8",     [25] = "i16",
    [26] = "i32",     [27] = "i64",    [28] = "f64",    [29] = "iq1_m",  [30] = "bf16",   [34] = "tq1_0",
    [35] = "tq2_0",   [39] = "mxfp4",  [40] = "nvfp4",  [41] = "q1_0",
};

/* ggml type id → ours, for the types we read (ids from ggml.h enum ggml_type). */
static const struct {
    uint32_t id;
    enum dg_dtype dt;
} type_map[] = {
    {0, DG_DT_F32},   {1, DG_DT_F16},   {2, DG_DT_Q4_0},  {3, DG_DT_Q4_1},  {6, DG_DT_Q5_0},   {7, DG_DT_Q5_1},
    {8, DG_DT_Q8_0},  {12, DG_DT_Q4_K}, {13, DG_DT_Q5_K}, {14, DG_DT_Q6_K}, {30, DG_DT_BF16}, {39, DG_DT_MXFP4},
};

bool dg_gguf_type_to_dtype(uint32_t ggml_type, enum dg_dtype *out)
{
    for (size_t i = 0; i < sizeof type_map / sizeof type_map[0]; i++)
        if (type_map[i].id == ggml_type) {
            *out = type_map[i].dt;
            return true;
        }
    return false;
}

const char *dg_gguf_type_name(uint32_t ggml_type)
{
    return ggml_type <= GGML_TYPE_ID_MAX ? ggml_type_names[ggml_type] : NULL;
}

static const char *const vtype_names[DG_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t vtype_size[DG_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *dg_gguf_vtype_name(enum dg_gguf_vtype t)
{
    return (unsigned)t < DG_GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

static bool vtype_is_uint(enum dg_gguf_vtype t)
{
    return t == DG_GGUF_U8 || t == DG_GGUF_U16 || t == DG_GGUF_U32 || t == DG_GGUF_U64;
}
static bool vtype_is_sint(enum dg_gguf_vtype t)
{
    return t == DG_GGUF_I8 || t == DG_GGUF_I16 || t == DG_GGUF_I32 || t == DG_GGUF_I64;
}

/* Reads one little-endian numeric element of type t at p (unaligned-safe) into the kv union layout. */
static void load_num(enum dg_gguf_vtype t, const uint8_t *p, uint64_t *u, int64_t *i, double *f)
{
    switch (t) {
    case DG_GGUF_U8: case DG_GGUF_BOOL: *u = p[0]; break;
    case DG_GGUF_I8: *i = (int8_t)p[0]; break;
    case DG_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *u = v; break; }
    case DG_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *i = v; break; }
    case DG_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *u = v; break; }
    case DG_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *i = v; break; }
    case DG_GGUF_F32: { float v; memcpy(&v, p, 4); *f = v; break; }
    case DG_GGUF_U64: memcpy(u, p, 8); break;
    case DG_GGUF_I64: memcpy(i, p, 8); break;
    case DG_GGUF_F64: memcpy(f, p, 8); break;
    default: break;
    }
}

int64_t dg_gguf_array_i64(const struct dg_gguf_array *a, uint64_t i)
{
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    if (!a->data || a->type >= DG_GGUF_VTYPE_COUNT || !vtype_size[a->type])
        return 0;
    load_num(a->type, (const uint8_t *)a->data + i * vtype_size[a->type], &u, &s, &f);
    if (vtype_is_sint(a->type))
        return s;
    if (a->type == DG_GGUF_F32 || a->type == DG_GGUF_F64)
        return (int64_t)f;
    return (int64_t)u;
}

double dg_gguf_array_f64(const struct dg_gguf_array *a, uint64_t i)
{
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    if (!a->data || a->type >= DG_GGUF_VTYPE_COUNT || !vtype_size[a->type])
        return 0;
    load_num(a->type, (const uint8_t *)a->data + i * vtype_size[a->type], &u, &s, &f);
    if (vtype_is_sint(a->type))
        return (double)s;
    if (a->type == DG_GGUF_F32 || a->type == DG_GGUF_F64)
        return f;
    return (double)u;
}

/* ---- the cursor ----------------------------------------------------------------------------------- */

struct cursor {
    const uint8_t *p;
    uint64_t size, off; /* invariant: off <= size */
    const char *path;
};

static uint64_t left(const struct cursor *c) { return c->size - c->off; }

static dg_status need(const struct cursor *c, uint64_t n, const char *what)
{
    if (n > left(c))
        return dg_fail(DG_E_FORMAT, "%s: truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64
                       " but the file has only %" PRIu64 " left", c->path, what, n, c->off, left(c));
    return DG_OK;
}

static dg_status rd_u32(struct cursor *c, const char *what, uint32_t *v)
{
    dg_status st = need(c, 4, what);
    if (st)
        return st;
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return DG_OK;
}

static dg_status rd_u64(struct cursor *c, const char *what, uint64_t *v)
{
    dg_status st = need(c, 8, what);
    if (st)
        return st;
    memcpy(v, c->p + c->off, 8);
    c->off += 8;
    return DG_OK;
}

/* A length-prefixed string; the length is checked against the bytes left before anything else. */
static dg_status rd_str(struct cursor *c, const char *what, struct dg_gguf_str *s)
{
    uint64_t len, at = c->off;
    dg_status st = rd_u64(c, what, &len);
    if (st)
        return st;
    if (len > left(c))
        return dg_fail(DG_E_FORMAT, "%s: %s: string length %" PRIu64 " at offset %" PRIu64
                       " is past the end of the file (must be in [0, %" PRIu64 "])", c->path, what, len, at,
                       left(c));
    s->ptr = (const char *)c->p + c->off;
    s->len = len;
    c->off += len;
    return DG_OK;
}

static char *str_dup(struct dg_gguf_str s)
{
    size_t n = strnlen(s.ptr, (size_t)s.len);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s.ptr, n);
        d[n] = 0;
    }
    return d;
}

/* ---- parsing -------------------------------------------------------------------------------------- */

static dg_status parse_value(struct cursor *c, struct dg_gguf_kv *kv)
{
    const char *key = kv->key;
    dg_status st;
    if (kv->type == DG_GGUF_STRING) {
        if ((st = rd_str(c, key, &kv->str)))
            return st;
        if (!(kv->cstr = str_dup(kv->str)))
            return dg_fail(DG_E_NOMEM, "%s: key %s: out of memory", c->path, key);
        return DG_OK;
    }
    if (kv->type != DG_GGUF_ARRAY) {
        uint32_t sz = vtype_size[kv->type];
        if ((st = need(c, sz, key)))
            return st;
        load_num(kv->type, c->p + c->off, &kv->num.u, &kv->num.i, &kv->num.f);
        if (kv->type == DG_GGUF_BOOL && kv->num.u > 1)
            return dg_fail(DG_E_FORMAT, "%s: key %s: bool value is %" PRIu64 " but must be in [0, 1]", c->path,
                           key, kv->num.u);
        c->off += sz;
        return DG_OK;
    }
    uint32_t et;
    uint64_t n;
    if ((st = rd_u32(c, key, &et)) || (st = rd_u64(c, key, &n)))
        return st;
    if (et >= DG_GGUF_VTYPE_COUNT)
        return dg_fail(DG_E_FORMAT, "%s: key %s: array element type is %u but must be in [0, %d]", c->path, key,
                       et, DG_GGUF_VTYPE_COUNT - 1);
    if (et == DG_GGUF_ARRAY)
        return dg_fail(DG_E_FORMAT, "%s: key %s: array of arrays: nested arrays are not supported", c->path, key);
    struct dg_gguf_array *a = &kv->arr;
    a->type = (enum dg_gguf_vtype)et;
    a->n = n;
    if (et != DG_GGUF_STRING) {
        uint32_t sz = vtype_size[et];
        if (n > left(c) / sz)
            return dg_fail(DG_E_FORMAT, "%s: key %s: array of %" PRIu64 " %s elements is past the end of the file"
                           " (must be in [0, %" PRIu64 "])", c->path, key, n, vtype_names[et], left(c) / sz);
        a->data = c->p + c->off;
        if (et == DG_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->off + i] > 1)
                    return dg_fail(DG_E_FORMAT, "%s: key %s: bool element %" PRIu64 " is %u but must be in [0, 1]",
                                   c->path, key, i, c->p[c->off + i]);
        c->off += n * sz;
        return DG_OK;
    }
    /* Each string needs at least its 8-byte length, which bounds the index we allocate. */
    if (n > left(c) / 8)
        return dg_fail(DG_E_FORMAT, "%s: key %s: array of %" PRIu64 " strings is past the end of the file"
                       " (must be in [0, %" PRIu64 "])", c->path, key, n, left(c) / 8);
    struct dg_gguf_str *strs = malloc((n ? n : 1) * sizeof *strs);
    if (!strs)
        return dg_fail(DG_E_NOMEM, "%s: key %s: out of memory for %" PRIu64 " strings", c->path, key, n);
    a->strs = strs;
    for (uint64_t i = 0; i < n; i++)
        if ((st = rd_str(c, key, &strs[i])))
            return st;
    return DG_OK;
}

static int cmp_kv_ptr(const void *a, const void *b)
{
    return strcmp((*(const struct dg_gguf_kv *const *)a)->key, (*(const struct dg_gguf_kv *const *)b)->key);
}

static int cmp_tensor_ptr(const void *a, const void *b)
{
    return strcmp((*(const struct dg_gguf_tensor *const *)a)->name, (*(const struct dg_gguf_tensor *const *)b)->name);
}

/* Duplicates are found by sorting pointers, so a hostile file with many entries costs n log n, not n². */
static dg_status check_unique_keys(const struct dg_gguf *g)
{
    if (g->n_kv < 2)
        return DG_OK;
    const struct dg_gguf_kv **v = malloc(g->n_kv * sizeof *v);
    if (!v)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_kv; i++)
        v[i] = &g->kv[i];
    qsort(v, g->n_kv, sizeof *v, cmp_kv_ptr);
    dg_status st = DG_OK;
    for (uint64_t i = 1; i < g->n_kv && !st; i++)
        if (strcmp(v[i - 1]->key, v[i]->key) == 0)
            st = dg_fail(DG_E_FORMAT, "%s: duplicate key %s", g->path, v[i]->key);
    free(v);
    return st;
}

static dg_status check_unique_tensors(const struct dg_gguf *g)
{
    if (g->n_tensors < 2)
        return DG_OK;
    const struct dg_gguf_tensor **v = malloc(g->n_tensors * sizeof *v);
    if (!v)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        v[i] = &g->tensors[i];
    qsort(v, g->n_tensors, sizeof *v, cmp_tensor_ptr);
    dg_status st = DG_OK;
    for (uint64_t i = 1; i < g->n_tensors && !st; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            st = dg_fail(DG_E_FORMAT, "%s: duplicate tensor name %s", g->path, v[i]->name);
    free(v);
    return st;
}

static dg_status parse_kvs(struct dg_gguf *g, struct cursor *c, uint64_t n_kv)
{
    dg_status st;
    /* The smallest pair is an 8-byte key length, a 1-byte key, a 4-byte type and a 1-byte value. */
    if (n_kv > left(c) / 14)
        return dg_fail(DG_E_FORMAT, "%s: number of key-value pairs is %" PRIu64 " but the file has room for at most"
                       " %" PRIu64 " (14 bytes each at least)", c->path, n_kv, left(c) / 14);
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    if (!g->kv)
        return dg_fail(DG_E_NOMEM, "%s: out of memory for %" PRIu64 " key-value pairs", c->path, n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        struct dg_gguf_kv *kv = &g->kv[i];
        struct dg_gguf_str key;
        char what[64];
        snprintf(what, sizeof what, "key %" PRIu64, i);
        if ((st = rd_str(c, what, &key)))
            return st;
        if (key.len < 1 || key.len > DG_GGUF_MAX_KEY)
            return dg_fail(DG_E_FORMAT, "%s: key %" PRIu64 ": length is %" PRIu64 " but must be in [1, %d]", c->path,
                           i, key.len, DG_GGUF_MAX_KEY);
        if (memchr(key.ptr, 0, key.len))
            return dg_fail(DG_E_FORMAT, "%s: key %" PRIu64 " holds a NUL byte (keys are text)", c->path, i);
        if (!(kv->key = str_dup(key)))
            return dg_fail(DG_E_NOMEM, "%s: out of memory", c->path);
        g->n_kv = i + 1; /* so close frees what this pair allocated, whatever happens next */
        uint32_t t;
        if ((st = rd_u32(c, kv->key, &t)))
            return st;
        if (t >= DG_GGUF_VTYPE_COUNT)
            return dg_fail(DG_E_FORMAT, "%s: key %s: value type is %u but must be in [0, %d]", c->path, kv->key, t,
                           DG_GGUF_VTYPE_COUNT - 1);
        kv->type = (enum dg_gguf_vtype)t;
        if ((st = parse_value(c, kv)))
            return st;
    }
    return check_unique_keys(g);
}

static dg_status parse_alignment(struct dg_gguf *g)
{
    const struct dg_gguf_kv *kv = dg_gguf_find(g, "general.alignment");
    g->alignment = DG_GGUF_DEFAULT_ALIGNMENT;
    if (!kv)
        return DG_OK;
    uint64_t v;
    if (vtype_is_uint(kv->type))
        v = kv->num.u;
    else if (vtype_is_sint(kv->type) && kv->num.i >= 0)
        v = (uint64_t)kv->num.i;
    else
        return dg_fail(DG_E_FORMAT, "%s: general.alignment has type %s but must be an unsigned integer (u32)",
                       g->path, dg_gguf_vtype_name(kv->type));
    if (v == 0 || (v & (v - 1)) || v > (1u << 30))
        return dg_fail(DG_E_FORMAT, "%s: general.alignment is %" PRIu64 " but must be a power of two in [1, 2^30]",
                       g->path, v);
    g->alignment = (uint32_t)v;
    return DG_OK;
}

static dg_status parse_tensor(struct dg_gguf *g, struct cursor *c, uint64_t i, struct dg_gguf_tensor *t)
{
    dg_status st;
    struct dg_gguf_str name;
    char what[64];
    snprintf(what, sizeof what, "tensor %" PRIu64 " name", i);
    if ((st = rd_str(c, what, &name)))
        return st;
    if (name.len < 1 || name.len > DG_GGUF_NAME_MAX)
        return dg_fail(DG_E_FORMAT, "%s: tensor %" PRIu64 ": name length is %" PRIu64 " but must be in [1, %d]",
                       c->path, i, name.len, DG_GGUF_NAME_MAX);
    if (memchr(name.ptr, 0, name.len))
        return dg_fail(DG_E_FORMAT, "%s: tensor %" PRIu64 ": name holds a NUL byte", c->path, i);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = 0;

    uint32_t nd;
    if ((st = rd_u32(c, t->name, &nd)))
        return st;
    if (nd < 1 || nd > DG_GGUF_MAX_DIMS)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: number of dimensions is %u but must be in [1, %d]", c->path,
                       t->name, nd, DG_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t nel = 1;
    for (int d = 0; d < DG_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if ((st = rd_u64(c, t->name, &ne)))
            return st;
        if (ne < 1 || ne > (uint64_t)INT64_MAX)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: ne[%u] is %" PRIu64 " but must be in [1, %" PRId64 "]",
                           c->path, t->name, d, ne, INT64_MAX);
        if (ne > (uint64_t)INT64_MAX / nel)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: element count overflows: %" PRIu64 " x ne[%u] %" PRIu64
                           " is more than %" PRId64, c->path, t->name, nel, d, ne, INT64_MAX);
        t->ne[d] = ne;
        nel *= ne;
    }
    t->nelems = nel;

    uint32_t type;
    if ((st = rd_u32(c, t->name, &type)))
        return st;
    t->ggml_type = type;
    if (!dg_gguf_type_to_dtype(type, &t->dtype)) {
        const char *tn = dg_gguf_type_name(type);
        if (!tn)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: type is %u, which is not a ggml type (must be in [0, %d]"
                           " and defined in ggml.h)", c->path, t->name, type, GGML_TYPE_ID_MAX);
        return dg_fail(DG_E_UNSUPPORTED, "%s: tensor %s: type %u (%s) is not supported; supported: f32, f16, bf16,"
                       " q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, mxfp4", c->path, t->name, type, tn);
    }
    const struct dg_dtype_info *info = dg_dtype_info(t->dtype);
    if (t->ne[0] % info->block_elems)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: row of %" PRIu64 " elements is not a multiple of the %s block"
                       " size %u", c->path, t->name, t->ne[0], info->name, info->block_elems);
    uint64_t nblocks = nel / info->block_elems;
    if (nblocks > UINT64_MAX / info->block_bytes)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: byte size overflows (%" PRIu64 " blocks of %u bytes)", c->path,
                       t->name, nblocks, info->block_bytes);
    t->nbytes = nblocks * info->block_bytes;

    if ((st = rd_u64(c, t->name, &t->offset)))
        return st;
    if (t->offset % g->alignment)
        return dg_fail(DG_E_FORMAT, "%s: tensor %s: offset %" PRIu64 " is not a multiple of the alignment %u",
                       c->path, t->name, t->offset, g->alignment);
    return DG_OK;
}

static dg_status parse(struct dg_gguf *g)
{
    struct cursor c = {g->base, g->size, 0, g->path};
    dg_status st;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        uint8_t m[4] = {0};
        memcpy(m, g->base, g->size < 4 ? g->size : 4);
        return dg_fail(DG_E_FORMAT, "%s: bad magic %02x %02x %02x %02x (file of %" PRIu64 " bytes), expected"
                       " \"GGUF\" (47 47 55 46)", g->path, m[0], m[1], m[2], m[3], g->size);
    }
    c.off = 4;
    if ((st = rd_u32(&c, "version", &g->version)))
        return st;
    if (g->version == 1)
        return dg_fail(DG_E_UNSUPPORTED, "%s: GGUF version 1 is not supported; version must be in [2, 3]", g->path);
    if ((g->version & 0xffff) == 0 && g->version)
        return dg_fail(DG_E_UNSUPPORTED, "%s: version field is 0x%08x: a big-endian GGUF file, which is not"
                       " supported", g->path, g->version);
    if (g->version < 2 || g->version > 3)
        return dg_fail(DG_E_FORMAT, "%s: version is %u but must be in [2, 3]", g->path, g->version);

    uint64_t n_tensors, n_kv;
    if ((st = rd_u64(&c, "number of tensors", &n_tensors)) || (st = rd_u64(&c, "number of key-value pairs", &n_kv)))
        return st;
    if (n_tensors > DG_GGUF_MAX_TENSORS)
        return dg_fail(DG_E_FORMAT, "%s: number of tensors is %" PRId64 " but must be in [0, %d]", g->path,
                       (int64_t)n_tensors, DG_GGUF_MAX_TENSORS);
    if (n_kv > DG_GGUF_MAX_KV)
        return dg_fail(DG_E_FORMAT, "%s: number of key-value pairs is %" PRId64 " but must be in [0, %d]", g->path,
                       (int64_t)n_kv, DG_GGUF_MAX_KV);
    if ((st = parse_kvs(g, &c, n_kv)) || (st = parse_alignment(g)))
        return st;

    /* The smallest tensor entry: 8-byte name length, 1-byte name, n_dims, one dim, type, offset. */
    if (n_tensors > left(&c) / 33)
        return dg_fail(DG_E_FORMAT, "%s: number of tensors is %" PRIu64 " but the file has room for at most %" PRIu64
                       " tensor entries (33 bytes each at least)", g->path, n_tensors, left(&c) / 33);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors)
        return dg_fail(DG_E_NOMEM, "%s: out of memory for %" PRIu64 " tensors", g->path, n_tensors);
    g->n_tensors = n_tensors;
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((st = parse_tensor(g, &c, i, &g->tensors[i])))
            return st;
    if ((st = check_unique_tensors(g)))
        return st;

    uint64_t pad = (g->alignment - c.off % g->alignment) % g->alignment;
    g->data_offset = c.off + pad;
    if (n_tensors == 0)
        return DG_OK;
    if (g->data_offset > g->size)
        return dg_fail(DG_E_FORMAT, "%s: the tensor data section starts at %" PRIu64 ", past the end of the file"
                       " (%" PRIu64 " bytes)", g->path, g->data_offset, g->size);
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < n_tensors; i++) {
        struct dg_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return dg_fail(DG_E_FORMAT, "%s: tensor %s: data at offset %" PRIu64 " with %" PRIu64 " bytes is past the"
                           " end of the data section (offset + bytes must be in [0, %" PRIu64 "])", g->path, t->name,
                           t->offset, t->nbytes, data_size);
        t->data = g->base + g->data_offset + t->offset;
    }
    return DG_OK;
}

/* ---- open / close --------------------------------------------------------------------------------- */

void dg_gguf_close(struct dg_gguf *g)
{
    if (!g)
        return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free((void *)g->kv[i].key);
        free((void *)g->kv[i].cstr);
        free((void *)g->kv[i].arr.strs);
    }
    free(g->kv);
    free(g->tensors);
    if (g->map)
        munmap(g->map, g->map_len);
    free(g);
}

static dg_status finish_open(struct dg_gguf *g, struct dg_gguf **out)
{
    dg_status st = parse(g);
    if (st) {
        dg_gguf_close(g);
        return st;
    }
    *out = g;
    return DG_OK;
}

dg_status dg_gguf_open_buffer(const void *buf, size_t len, const char *name, struct dg_gguf **out)
{
    *out = NULL;
    struct dg_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return dg_fail(DG_E_NOMEM, "out of memory");
    snprintf(g->path, sizeof g->path, "%s", name ? name : "<memory>");
    static const uint8_t empty[1];
    g->base = buf ? buf : empty;
    g->size = buf ? len : 0;
    return finish_open(g, out);
}

dg_status dg_gguf_open(const char *path, struct dg_gguf **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dg_fail(DG_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dg_fail(DG_E_IO, "%s: not a regular file", path);
    }
    struct dg_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        return dg_fail(DG_E_NOMEM, "out of memory");
    }
    snprintf(g->path, sizeof g->path, "%s", path);
    static const uint8_t empty[1];
    g->base = empty;
    if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            dg_status st = dg_fail(DG_E_IO, "%s: cannot map %lld bytes: %s", path, (long long)sb.st_size,
                                   strerror(errno));
            close(fd);
            free(g);
            return st;
        }
        g->map = p;
        g->map_len = (size_t)sb.st_size;
        g->base = p;
        g->size = (uint64_t)sb.st_size;
    }
    close(fd);
    return finish_open(g, out);
}

/* ---- lookups and typed getters -------------------------------------------------------------------- */

const struct dg_gguf_kv *dg_gguf_find(const struct dg_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0)
            return &g->kv[i];
    return NULL;
}

const struct dg_gguf_tensor *dg_gguf_find_tensor(const struct dg_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}

static dg_status missing(const struct dg_gguf *g, const char *key)
{
    return dg_fail(DG_E_FORMAT, "%s: missing key %s", g->path, key);
}

static dg_status wrong_type(const struct dg_gguf *g, const struct dg_gguf_kv *kv, const char *want)
{
    return dg_fail(DG_E_FORMAT, "%s: key %s has type %s but must be %s", g->path, kv->key,
                   dg_gguf_vtype_name(kv->type), want);
}

/* Integer value of kv within [lo, hi]. */
static dg_status get_int(const struct dg_gguf *g, const struct dg_gguf_kv *kv, int64_t lo, int64_t hi, int64_t *out)
{
    if (vtype_is_uint(kv->type)) {
        if (kv->num.u > (uint64_t)hi)
            goto range_u;
        *out = (int64_t)kv->num.u;
        if (*out < lo)
            goto range_u;
        return DG_OK;
    }
    if (vtype_is_sint(kv->type)) {
        if (kv->num.i < lo || kv->num.i > hi)
            return dg_fail(DG_E_FORMAT, "%s: key %s is %" PRId64 " but must be in [%" PRId64 ", %" PRId64 "]",
                           g->path, kv->key, kv->num.i, lo, hi);
        *out = kv->num.i;
        return DG_OK;
    }
    return wrong_type(g, kv, "an integer");
range_u:
    return dg_fail(DG_E_FORMAT, "%s: key %s is %" PRIu64 " but must be in [%" PRId64 ", %" PRId64 "]", g->path,
                   kv->key, kv->num.u, lo, hi);
}

static dg_status kv_str(const struct dg_gguf *g, const struct dg_gguf_kv *kv, const char **out)
{
    if (kv->type != DG_GGUF_STRING)
        return wrong_type(g, kv, "string");
    *out = kv->cstr;
    return DG_OK;
}

static dg_status kv_u32(const struct dg_gguf *g, const struct dg_gguf_kv *kv, uint32_t *out)
{
    int64_t v;
    dg_status st = get_int(g, kv, 0, UINT32_MAX, &v);
    if (!st)
        *out = (uint32_t)v;
    return st;
}

static dg_status kv_i32(const struct dg_gguf *g, const struct dg_gguf_kv *kv, int32_t *out)
{
    int64_t v;
    dg_status st = get_int(g, kv, INT32_MIN, INT32_MAX, &v);
    if (!st)
        *out = (int32_t)v;
    return st;
}

static dg_status kv_f32(const struct dg_gguf *g, const struct dg_gguf_kv *kv, float *out)
{
    if (kv->type != DG_GGUF_F32 && kv->type != DG_GGUF_F64)
        return wrong_type(g, kv, "f32");
    if (!isfinite(kv->num.f) || fabs(kv->num.f) > 3.4e38)
        return dg_fail(DG_E_FORMAT, "%s: key %s is %g but must be a finite f32", g->path, kv->key, kv->num.f);
    *out = (float)kv->num.f;
    return DG_OK;
}

static dg_status kv_bool(const struct dg_gguf *g, const struct dg_gguf_kv *kv, bool *out)
{
    if (kv->type != DG_GGUF_BOOL)
        return wrong_type(g, kv, "bool");
    *out = kv->num.u != 0;
    return DG_OK;
}

#define GETTERS(suffix, type)                                                                                  \
    dg_status dg_gguf_get_##suffix(const struct dg_gguf *g, const char *key, type *out)                        \
    {                                                                                                          \
        const struct dg_gguf_kv *kv = dg_gguf_find(g, key);                                                   \
        return kv ? kv_##suffix(g, kv, out) : missing(g, key);                                                 \
    }                                                                                                          \
    dg_status dg_gguf_opt_##suffix(const struct dg_gguf *g, const char *key, type *out)                        \
    {                                                                                                          \
        const struct dg_gguf_kv *kv = dg_gguf_find(g, key);                                                   \
        return kv ? kv_##suffix(g, kv, out) : DG_OK;                                                           \
    }

GETTERS(str, const char *)
GETTERS(u32, uint32_t)
GETTERS(i32, int32_t)
GETTERS(f32, float)
GETTERS(bool, bool)

dg_status dg_gguf_get_array(const struct dg_gguf *g, const char *key, enum dg_gguf_vtype elem,
                            const struct dg_gguf_array **out)
{
    const struct dg_gguf_kv *kv = dg_gguf_find(g, key);
    if (!kv)
        return missing(g, key);
    if (kv->type != DG_GGUF_ARRAY)
        return wrong_type(g, kv, "array");
    if (elem != DG_GGUF_VTYPE_COUNT && kv->arr.type != elem)
        return dg_fail(DG_E_FORMAT, "%s: key %s is an array of %s but must be an array of %s", g->path, key,
                       dg_gguf_vtype_name(kv->arr.type), dg_gguf_vtype_name(elem));
    *out = &kv->arr;
    return DG_OK;
}

/* ---- tokenizer metadata --------------------------------------------------------------------------- */

static dg_status vocab_id(const struct dg_gguf *g, const char *key, uint32_t n, int32_t *out)
{
    const struct dg_gguf_kv *kv = dg_gguf_find(g, key);
    *out = -1;
    if (!kv)
        return DG_OK;
    int64_t v;
    dg_status st = get_int(g, kv, 0, INT32_MAX, &v);
    if (st)
        return st;
    if (v >= n)
        return dg_fail(DG_E_FORMAT, "%s: key %s is %" PRId64 " but must be in [0, %u) (the vocabulary size)", g->path,
                       key, v, n);
    *out = (int32_t)v;
    return DG_OK;
}

static dg_status vocab_numeric(const struct dg_gguf *g, const char *key, uint32_t n, bool want_float, void **out)
{
    const struct dg_gguf_kv *kv = dg_gguf_find(g, key);
    *out = NULL;
    if (!kv)
        return DG_OK;
    if (kv->type != DG_GGUF_ARRAY)
        return wrong_type(g, kv, "array");
    const struct dg_gguf_array *a = &kv->arr;
    bool ok = want_float ? (a->type == DG_GGUF_F32 || a->type == DG_GGUF_F64)
                         : (vtype_is_sint(a->type) || vtype_is_uint(a->type));
    if (!ok)
        return dg_fail(DG_E_FORMAT, "%s: key %s is an array of %s but must be an array of %s", g->path, key,
                       dg_gguf_vtype_name(a->type), want_float ? "f32" : "integers (i32)");
    if (a->n != n)
        return dg_fail(DG_E_FORMAT, "%s: key %s has %" PRIu64 " entries but must have %u (one per token)", g->path,
                       key, a->n, n);
    void *buf = malloc((n ? n : 1) * 4);
    if (!buf)
        return dg_fail(DG_E_NOMEM, "%s: out of memory for %s", g->path, key);
    for (uint32_t i = 0; i < n; i++) {
        if (want_float) {
            ((float *)buf)[i] = (float)dg_gguf_array_f64(a, i);
        } else {
            int64_t v = dg_gguf_array_i64(a, i);
            if (v < INT32_MIN || v > INT32_MAX) {
                free(buf);
                return dg_fail(DG_E_FORMAT, "%s: key %s: entry %u is %" PRId64 " but must fit in i32", g->path, key,
                               i, v);
            }
            ((int32_t *)buf)[i] = (int32_t)v;
        }
    }
    *out = buf;
    return DG_OK;
}

void dg_gguf_vocab_free(struct dg_gguf_vocab *v)
{
    free(v->scores);
    free(v->token_type);
    v->scores = NULL;
    v->token_type = NULL;
}

dg_status dg_gguf_vocab_get(const struct dg_gguf *g, struct dg_gguf_vocab *v)
{
    memset(v, 0, sizeof *v);
    dg_status st;
    const struct dg_gguf_array *tok, *merges;
    if ((st = dg_gguf_get_str(g, "tokenizer.ggml.model", &v->model)) ||
        (st = dg_gguf_opt_str(g, "tokenizer.ggml.pre", &v->pre)) ||
        (st = dg_gguf_get_array(g, "tokenizer.ggml.tokens", DG_GGUF_STRING, &tok)))
        return st;
    if (tok->n < 1 || tok->n > INT32_MAX)
        return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.tokens has %" PRIu64 " entries but must have [1, %d]", g->path,
                       tok->n, INT32_MAX);
    v->n_tokens = (uint32_t)tok->n;
    v->tokens = tok->strs;
    if (dg_gguf_find(g, "tokenizer.ggml.merges")) {
        if ((st = dg_gguf_get_array(g, "tokenizer.ggml.merges", DG_GGUF_STRING, &merges)))
            return st;
        if (merges->n > INT32_MAX)
            return dg_fail(DG_E_FORMAT, "%s: tokenizer.ggml.merges has %" PRIu64 " entries but must have [0, %d]",
                           g->path, merges->n, INT32_MAX);
        v->n_merges = (uint32_t)merges->n;
        v->merges = merges->strs;
    }
    if ((st = vocab_id(g, "tokenizer.ggml.bos_token_id", v->n_tokens, &v->bos_id)) ||
        (st = vocab_id(g, "tokenizer.ggml.eos_token_id", v->n_tokens, &v->eos_id)) ||
        (st = vocab_id(g, "tokenizer.ggml.eot_token_id", v->n_tokens, &v->eot_id)) ||
        (st = vocab_id(g, "tokenizer.ggml.eom_token_id", v->n_tokens, &v->eom_id)) ||
        (st = vocab_id(g, "tokenizer.ggml.unknown_token_id", v->n_tokens, &v->unk_id)))
        return st;
    /* Some converters write a padding id equal to the vocabulary size; padding is never generated, so an
     * out-of-range one is dropped rather than refused. */
    if (vocab_id(g, "tokenizer.ggml.padding_token_id", v->n_tokens, &v->pad_id))
        v->pad_id = -1;
    v->has_add_bos = dg_gguf_find(g, "tokenizer.ggml.add_bos_token") != NULL;
    v->has_add_eos = dg_gguf_find(g, "tokenizer.ggml.add_eos_token") != NULL;
    if ((st = dg_gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos)) ||
        (st = dg_gguf_opt_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos)) ||
        (st = dg_gguf_opt_str(g, "tokenizer.chat_template", &v->chat_template)))
        return st;
    void *scores, *types;
    if ((st = vocab_numeric(g, "tokenizer.ggml.scores", v->n_tokens, true, &scores)))
        return st;
    v->scores = scores;
    if ((st = vocab_numeric(g, "tokenizer.ggml.token_type", v->n_tokens, false, &types))) {
        dg_gguf_vocab_free(v);
        return st;
    }
    v->token_type = types;
    return DG_OK;
}
