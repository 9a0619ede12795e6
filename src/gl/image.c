/* image.c: buffers read as images. A texture-buffer view (GL_EXT_texture_buffer) lets a kernel read a
 * storage buffer's bytes with imageLoad. On llvmpipe that is the fast read path: Mesa runs an SSBO load
 * as a loop over the SIMD lanes with a bounds check and a branch per lane and component, and an image
 * load as one vector fetch; a row-GEMV-like read of rgba32ui texels measured 4-6 GB/s through an SSBO and
 * 24-46 GB/s through an image buffer on the same 2-core machine. Views are created at load and bound per
 * dispatch, never created per token. */
#include "gl/gl_internal.h"

bool dg_buffer_image_ok(const struct dg_gl *gl, uint64_t offset, uint64_t size)
{
    const struct dg_gl_caps *c = &gl->caps;
    return c->texture_buffer && size > 0 && size % 16 == 0 &&
           size / 16 <= (uint64_t)c->max_texture_buffer_texels &&
           offset % (uint64_t)c->texture_buffer_offset_alignment == 0;
}

dg_status dg_image_view_create(struct dg_gl *gl, const struct dg_buffer *buf, uint64_t offset, uint64_t size,
                               GLenum format, GLuint *out)
{
    *out = 0;
    const struct dg_gl_caps *c = &gl->caps;
    if (!c->texture_buffer)
        return dg_fail(DG_E_UNSUPPORTED, "image view: the device has no GL_EXT_texture_buffer");
    if (format != GL_RGBA32UI && format != GL_RGBA32F)
        return dg_fail(DG_E_INTERNAL, "image view: format 0x%x (expected GL_RGBA32UI or GL_RGBA32F)", format);
    if (!dg_buffer_image_ok(gl, offset, size) || offset + size > buf->capacity)
        return dg_fail(DG_E_UNSUPPORTED,
                       "image view of bytes [%llu, +%llu) of a %llu-byte buffer: expected a multiple of 16 bytes, at "
                       "most %lld texels, at an offset aligned to %d",
                       (unsigned long long)offset, (unsigned long long)size, (unsigned long long)buf->capacity,
                       (long long)c->max_texture_buffer_texels, c->texture_buffer_offset_alignment);
    GLuint tex = 0;
    glGenTextures(1, &tex);
    glBindTexture(GL_TEXTURE_BUFFER_EXT, tex);
    gl->tex_buffer_range(GL_TEXTURE_BUFFER_EXT, format, buf->id, (GLintptr)offset, (GLsizeiptr)size);
    glBindTexture(GL_TEXTURE_BUFFER_EXT, 0);
    dg_status st = dg_gl_check("image view");
    if (st) {
        glDeleteTextures(1, &tex);
        return st;
    }
    *out = tex;
    return DG_OK;
}

void dg_image_view_delete(struct dg_gl *gl, GLuint view)
{
    (void)gl;
    if (view)
        glDeleteTextures(1, &view);
}

void dg_image_view_bind(struct dg_gl *gl, GLuint unit, GLuint view, GLenum format)
{
    (void)gl;
    glBindImageTexture(unit, view, 0, GL_FALSE, 0, GL_READ_ONLY, format);
}
