/* pool.c: SSBOs from size classes (8 per power of two, so at most 12.5% slack) with a free list per class,
 * range binding that enforces the SSBO block limit and offset alignment, and row splitting for tensors
 * larger than one binding can hold. */
#include "gl/gl_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MIN_CLASS 256u
/* Released buffers beyond this many pooled bytes are deleted instead of kept. */
#define MAX_POOLED_BYTES (512ull << 20)

struct dg_pool_class {
    uint64_t capacity;
    struct dg_buffer **free;
    int n_free, cap_free;
};

static uint64_t class_size(uint64_t size)
{
    if (size <= MIN_CLASS)
        return MIN_CLASS;
    int e = 63 - __builtin_clzll(size - 1); /* 2^e < size <= 2^(e+1) */
    uint64_t step = (1ull << e) / 8;
    return (size + step - 1) / step * step;
}

static struct dg_pool_class *find_class(struct dg_gl *gl, uint64_t cap, bool create)
{
    for (int i = 0; i < gl->n_pool_classes; i++)
        if (gl->pool[i].capacity == cap)
            return &gl->pool[i];
    if (!create)
        return NULL;
    struct dg_pool_class *np = realloc(gl->pool, sizeof *np * (size_t)(gl->n_pool_classes + 1));
    if (!np)
        return NULL;
    gl->pool = np;
    struct dg_pool_class *c = &gl->pool[gl->n_pool_classes++];
    memset(c, 0, sizeof *c);
    c->capacity = cap;
    return c;
}

dg_status dg_buffer_alloc(struct dg_gl *gl, uint64_t size, const void *data, struct dg_buffer **out)
{
    *out = NULL;
    if (size == 0)
        return dg_fail(DG_E_USAGE, "buffer of 0 bytes requested");
    if (size > (uint64_t)PTRDIFF_MAX / 2)
        return dg_fail(DG_E_USAGE, "buffer of %llu bytes is too large", (unsigned long long)size);
    uint64_t cap = class_size(size);
    struct dg_pool_class *c = find_class(gl, cap, false);
    struct dg_buffer *b = NULL;
    if (c && c->n_free) {
        b = c->free[--c->n_free];
        gl->pool_stats.reuse_hits++;
        gl->pool_stats.bytes_pooled -= cap;
        b->size = size;
        if (data) {
            glBindBuffer(GL_SHADER_STORAGE_BUFFER, b->id);
            glBufferSubData(GL_SHADER_STORAGE_BUFFER, 0, (GLsizeiptr)size, data);
        }
    } else {
        b = calloc(1, sizeof *b);
        if (!b)
            return dg_fail(DG_E_NOMEM, "out of memory");
        glGetError();
        glGenBuffers(1, &b->id);
        glBindBuffer(GL_SHADER_STORAGE_BUFFER, b->id);
        glBufferData(GL_SHADER_STORAGE_BUFFER, (GLsizeiptr)cap, NULL, GL_DYNAMIC_COPY);
        if (data)
            glBufferSubData(GL_SHADER_STORAGE_BUFFER, 0, (GLsizeiptr)size, data);
        GLenum e = glGetError();
        if (e != GL_NO_ERROR) {
            glDeleteBuffers(1, &b->id);
            free(b);
            return dg_fail(e == GL_OUT_OF_MEMORY ? DG_E_NOMEM : DG_E_GL,
                           "allocating a GPU buffer of %llu bytes: GL error 0x%04x", (unsigned long long)cap, e);
        }
        b->size = size;
        b->capacity = cap;
        gl->pool_stats.allocations++;
    }
    glBindBuffer(GL_SHADER_STORAGE_BUFFER, 0);
    gl->pool_stats.bytes_live += cap;
    if (gl->pool_stats.bytes_live > gl->pool_stats.bytes_peak)
        gl->pool_stats.bytes_peak = gl->pool_stats.bytes_live;
    *out = b;
    return DG_OK;
}

void dg_buffer_release(struct dg_gl *gl, struct dg_buffer *buf)
{
    if (!buf)
        return;
    gl->pool_stats.releases++;
    gl->pool_stats.bytes_live -= buf->capacity;
    struct dg_pool_class *c = NULL;
    if (gl->pool_stats.bytes_pooled + buf->capacity <= MAX_POOLED_BYTES)
        c = find_class(gl, buf->capacity, true);
    if (c && c->n_free == c->cap_free) {
        int nc = c->cap_free ? c->cap_free * 2 : 4;
        struct dg_buffer **nf = realloc(c->free, sizeof *nf * (size_t)nc);
        if (nf) {
            c->free = nf;
            c->cap_free = nc;
        } else {
            c = NULL;
        }
    }
    if (!c) {
        glDeleteBuffers(1, &buf->id);
        free(buf);
        return;
    }
    c->free[c->n_free++] = buf;
    gl->pool_stats.bytes_pooled += buf->capacity;
}

static dg_status check_range(const struct dg_buffer *buf, uint64_t offset, uint64_t size, const char *what)
{
    if (offset > buf->capacity || size > buf->capacity - offset)
        return dg_fail(DG_E_INTERNAL, "%s: range [%llu, +%llu) is outside the buffer of %llu bytes", what,
                       (unsigned long long)offset, (unsigned long long)size, (unsigned long long)buf->capacity);
    return DG_OK;
}

dg_status dg_buffer_upload(struct dg_gl *gl, struct dg_buffer *buf, uint64_t offset, uint64_t size,
                           const void *data)
{
    (void)gl;
    dg_status st = check_range(buf, offset, size, "buffer upload");
    if (st)
        return st;
    glBindBuffer(GL_SHADER_STORAGE_BUFFER, buf->id);
    glBufferSubData(GL_SHADER_STORAGE_BUFFER, (GLintptr)offset, (GLsizeiptr)size, data);
    glBindBuffer(GL_SHADER_STORAGE_BUFFER, 0);
    return dg_gl_check("buffer upload");
}

dg_status dg_buffer_download(struct dg_gl *gl, struct dg_buffer *buf, uint64_t offset, uint64_t size, void *out)
{
    (void)gl;
    dg_status st = check_range(buf, offset, size, "buffer download");
    if (st)
        return st;
    if (size == 0)
        return DG_OK;
    glMemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT);
    glBindBuffer(GL_SHADER_STORAGE_BUFFER, buf->id);
    const void *p = glMapBufferRange(GL_SHADER_STORAGE_BUFFER, (GLintptr)offset, (GLsizeiptr)size, GL_MAP_READ_BIT);
    if (!p) {
        glBindBuffer(GL_SHADER_STORAGE_BUFFER, 0);
        return dg_fail(DG_E_GL, "mapping %llu bytes of a GPU buffer for reading failed (GL error 0x%04x)",
                       (unsigned long long)size, glGetError());
    }
    memcpy(out, p, size);
    glUnmapBuffer(GL_SHADER_STORAGE_BUFFER);
    glBindBuffer(GL_SHADER_STORAGE_BUFFER, 0);
    return dg_gl_check("buffer download");
}

dg_status dg_buffer_bind(struct dg_gl *gl, GLuint binding, const struct dg_buffer *buf, uint64_t offset,
                         uint64_t size)
{
    const struct dg_gl_caps *c = &gl->caps;
    if ((int)binding >= c->max_ssbo_bindings)
        return dg_fail(DG_E_INTERNAL, "SSBO binding %u is beyond the driver's %d binding points", binding,
                       c->max_ssbo_bindings);
    dg_status st = check_range(buf, offset, size, "SSBO bind");
    if (st)
        return st;
    if (size == 0)
        return dg_fail(DG_E_INTERNAL, "SSBO bind at binding %u: empty range", binding);
    if ((int64_t)size > c->max_ssbo_block_size)
        return dg_fail(DG_E_UNSUPPORTED,
                       "SSBO bind at binding %u: %llu bytes exceed the max shader-storage block size %lld; "
                       "split the tensor by rows (dg_buffer_split_rows)",
                       binding, (unsigned long long)size, (long long)c->max_ssbo_block_size);
    if (offset % (uint64_t)c->ssbo_offset_alignment)
        return dg_fail(DG_E_INTERNAL, "SSBO bind at binding %u: offset %llu is not a multiple of the %d-byte "
                                      "offset alignment", binding, (unsigned long long)offset,
                       c->ssbo_offset_alignment);
    glBindBufferRange(GL_SHADER_STORAGE_BUFFER, binding, buf->id, (GLintptr)offset, (GLsizeiptr)size);
    return DG_OK;
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int dg_buffer_split_rows(const struct dg_gl *gl, uint64_t rows, uint64_t row_bytes, struct dg_row_range *parts,
                         int max_parts)
{
    const struct dg_gl_caps *c = &gl->caps;
    uint64_t limit = (uint64_t)c->max_ssbo_block_size, align = (uint64_t)c->ssbo_offset_alignment;
    if (rows == 0 || row_bytes == 0) {
        dg_fail(DG_E_INTERNAL, "split of an empty tensor (%llu rows of %llu bytes)", (unsigned long long)rows,
                (unsigned long long)row_bytes);
        return -1;
    }
    if (row_bytes > limit) {
        dg_fail(DG_E_UNSUPPORTED, "one row of %llu bytes exceeds the max shader-storage block size %llu",
                (unsigned long long)row_bytes, (unsigned long long)limit);
        return -1;
    }
    uint64_t per = limit / row_bytes;
    /* Every part must start at an aligned offset: rows-per-part times row_bytes a multiple of align. */
    uint64_t g = align / gcd64(row_bytes, align);
    if (rows > per) {
        per = per / g * g;
        if (per == 0) {
            dg_fail(DG_E_UNSUPPORTED, "rows of %llu bytes cannot be split at the %llu-byte offset alignment within "
                                      "a %llu-byte block", (unsigned long long)row_bytes,
                    (unsigned long long)align, (unsigned long long)limit);
            return -1;
        }
    }
    uint64_t n = (rows + per - 1) / per;
    if (n > (uint64_t)max_parts) {
        dg_fail(DG_E_INTERNAL, "tensor of %llu rows needs %llu parts of %llu rows, more than %d",
                (unsigned long long)rows, (unsigned long long)n, (unsigned long long)per, max_parts);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        parts[i].first_row = i * per;
        parts[i].n_rows = (i + 1 == n) ? rows - i * per : per;
    }
    return (int)n;
}

void dg_gl_pool_stats(const struct dg_gl *gl, struct dg_pool_stats *out) { *out = gl->pool_stats; }

void dg_pool_free_all(struct dg_gl *gl)
{
    for (int i = 0; i < gl->n_pool_classes; i++) {
        for (int j = 0; j < gl->pool[i].n_free; j++) {
            glDeleteBuffers(1, &gl->pool[i].free[j]->id);
            free(gl->pool[i].free[j]);
        }
        free(gl->pool[i].free);
    }
    free(gl->pool);
    gl->pool = NULL;
    gl->n_pool_classes = 0;
    if (gl->pool_stats.bytes_live)
        DG_DEBUG("GL pool: %llu bytes still live at close", (unsigned long long)gl->pool_stats.bytes_live);
}
