/* sampler.c: the GPU sampler's host side: picks the kernel passes for the current options, binds the
 * logits, history and scratch buffers, sets uniforms and records the dispatches; the history header
 * (reset / push) and the fenced read-back. The kernels are glsl/sample_*.glsl; docs/SAMPLING.md. */
#include "pipe/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PART_CHUNK 2048    /* logits per workgroup in the argmax / Gumbel / max passes */
#define CAND_CHUNK 4096    /* at least this many logits per workgroup in the candidate pass */
#define MAX_CAND_PARTS 16  /* candidate-pass workgroups: the final pass merges this many lists */
#define WG 64
#ifndef CAND_WG
#define CAND_WG 32 /* candidate passes: fewer invocations make the bitonic stages cheaper on llvmpipe */
#endif

enum {
    U_N, U_LBASE, U_CHUNK, U_NPARTS, U_INV_TEMP, U_LOG_MIN_P, U_SEED, U_TOP_K, U_TOP_P, U_OUT_INDEX,
    U_N_EOS, U_EOS, U_LAST_N, U_REPEAT, U_FREQ, U_PRESENCE, NU
};
static const char *const unames[NU] = {"u_n", "u_lbase", "u_chunk", "u_nparts", "u_inv_temp", "u_log_min_p",
                                       "u_seed", "u_top_k", "u_top_p", "u_out_index", "u_n_eos", "u_eos",
                                       "u_last_n", "u_repeat", "u_freq", "u_presence"};

struct prog {
    GLuint id;
    GLint loc[NU];
};

enum pass_kind { P_PENALTY, P_PARTIAL, P_FINAL };

struct pass {
    enum pass_kind kind;
    struct prog *prog;
    GLuint groups;
    uint32_t nparts, chunk;
    const char *name;
};

struct dg_sampler {
    struct dg_gl *gl;
    int vocab, cand, cap;
    uint32_t eos[DG_SAMPLER_MAX_EOS];
    int n_eos;
    struct dg_sample_params p;
    bool have_params;
    uint32_t parts, cand_parts, cand_chunk;
    struct dg_buffer *hist, *part, *cands;
    /* programs: penalty, partial modes 0..3 (+ gumbel with min-p), final modes 0..1, append */
    struct prog pen, pmax, pargmax, pgumbel, pgumbel_minp, pcand, fcombine, fcand, append;
    struct pass passes[4];
    int n_passes;
    uint32_t n_hist;  /* history length at the last sync (reset, push, read) */
    uint32_t pending; /* steps recorded since */
    GLsync fence;
};

void dg_sample_params_default(struct dg_sample_params *p)
{
    *p = (struct dg_sample_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                                   .penalty_last_n = 64, .presence_penalty = 0, .frequency_penalty = 0, .seed = 0};
}

dg_status dg_sample_params_check(const struct dg_sample_params *p, int candidates)
{
    if (!(p->temp == p->temp) || isinf(p->temp))
        return dg_fail(DG_E_USAGE, "temperature %g: expected a finite number (<= 0 for greedy)", p->temp);
    if (p->top_k > candidates)
        return dg_fail(DG_E_USAGE, "top-k %d: the GPU sampler keeps at most %d candidates (expected 0..%d)", p->top_k,
                       candidates, candidates);
    if (!(p->top_p >= 0 && p->top_p <= 1))
        return dg_fail(DG_E_USAGE, "top-p %g: expected a number in [0, 1] (1 = off)", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return dg_fail(DG_E_USAGE, "min-p %g: expected a number in [0, 1] (0 = off)", p->min_p);
    if (!(p->repeat_penalty > 0) || isinf(p->repeat_penalty))
        return dg_fail(DG_E_USAGE, "repeat penalty %g: expected a finite number > 0 (1 = off)", p->repeat_penalty);
    if (p->penalty_last_n < -1 || p->penalty_last_n > DG_SAMPLER_MAX_LAST_N)
        return dg_fail(DG_E_USAGE, "penalty window %d: expected -1 (whole history), 0 (off) or up to %d",
                       p->penalty_last_n, DG_SAMPLER_MAX_LAST_N);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return dg_fail(DG_E_USAGE, "presence/frequency penalty %g/%g: expected finite numbers", p->presence_penalty,
                       p->frequency_penalty);
    return DG_OK;
}

static dg_status get_prog(struct dg_sampler *s, struct prog *pr, const char *file, int mode, int extra_minp, int wg)
{
    if (pr->id)
        return DG_OK;
    char m[8], c[8], w[8];
    snprintf(m, sizeof m, "%d", mode);
    snprintf(c, sizeof c, "%d", s->cand);
    snprintf(w, sizeof w, "%d", wg);
    struct dg_define d[4] = {{"MODE", m}, {"CAND", c}, {"WG_SIZE", w}, {"USE_MINP", "1"}};
    int nd = mode < 0 ? 0 : 3 + (extra_minp != 0);
    dg_status st = dg_gl_program(s->gl, file, mode < 0 ? NULL : d, nd, &pr->id);
    if (st)
        return dg_fail_context(st, "sampler: ");
    for (int i = 0; i < NU; i++)
        pr->loc[i] = glGetUniformLocation(pr->id, unames[i]);
    return DG_OK;
}

static bool penalties_on(const struct dg_sample_params *p)
{
    return p->penalty_last_n != 0 &&
           (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
}

static uint32_t last_n(const struct dg_sample_params *p)
{
    return p->penalty_last_n < 0 ? DG_SAMPLER_MAX_LAST_N : (uint32_t)p->penalty_last_n;
}

dg_status dg_sampler_create(struct dg_gl *gl, const struct dg_sampler_options *opt, struct dg_sampler **out)
{
    *out = NULL;
    int cand = opt->candidates ? opt->candidates : DG_SAMPLER_DEFAULT_CAND;
    if (opt->vocab <= 0 || opt->vocab > (1 << 26))
        return dg_fail(DG_E_USAGE, "sampler: vocabulary size %d: expected 1..%d", opt->vocab, 1 << 26);
    if (cand < DG_SAMPLER_MIN_CAND || cand > DG_SAMPLER_MAX_CAND || (cand & (cand - 1)))
        return dg_fail(DG_E_USAGE, "sampler: candidate bound %d: expected a power of two in [%d, %d]", cand,
                       DG_SAMPLER_MIN_CAND, DG_SAMPLER_MAX_CAND);
    if (opt->history_cap <= 0 || opt->history_cap > (1 << 24))
        return dg_fail(DG_E_USAGE, "sampler: history capacity %d: expected 1..%d", opt->history_cap, 1 << 24);
    if (opt->n_eos < 0 || opt->n_eos > DG_SAMPLER_MAX_EOS)
        return dg_fail(DG_E_USAGE, "sampler: %d EOS ids: at most %d are checked on the GPU", opt->n_eos,
                       DG_SAMPLER_MAX_EOS);
    struct dg_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return dg_fail(DG_E_NOMEM, "sampler: out of memory");
    s->gl = gl;
    s->vocab = opt->vocab;
    s->cand = cand;
    s->cap = opt->history_cap;
    s->n_eos = opt->n_eos;
    for (int i = 0; i < opt->n_eos; i++)
        s->eos[i] = opt->eos[i];
    s->parts = (uint32_t)((opt->vocab + PART_CHUNK - 1) / PART_CHUNK);
    s->cand_parts = (uint32_t)((opt->vocab + CAND_CHUNK - 1) / CAND_CHUNK);
    if (s->cand_parts > MAX_CAND_PARTS)
        s->cand_parts = MAX_CAND_PARTS;
    s->cand_chunk = ((uint32_t)opt->vocab + s->cand_parts - 1) / s->cand_parts;
    uint32_t np = s->parts > s->cand_parts ? s->parts : s->cand_parts;
    dg_status st = dg_buffer_alloc(gl, (uint64_t)np * 16, NULL, &s->part);
    if (!st)
        st = dg_buffer_alloc(gl, (uint64_t)s->cand_parts * (uint64_t)cand * 8, NULL, &s->cands);
    if (!st)
        st = dg_buffer_alloc(gl, ((uint64_t)DG_SAMPLER_HIST_IDS + (uint64_t)s->cap) * 4, NULL, &s->hist);
    if (!st)
        st = dg_sampler_reset(s, NULL, 0);
    if (st) {
        dg_sampler_destroy(s);
        return st;
    }
    struct dg_sample_params def;
    dg_sample_params_default(&def);
    def.temp = 0; /* greedy until told otherwise */
    if ((st = dg_sampler_set_params(s, &def))) {
        dg_sampler_destroy(s);
        return st;
    }
    *out = s;
    return DG_OK;
}

void dg_sampler_destroy(struct dg_sampler *s)
{
    if (!s)
        return;
    if (s->fence)
        glDeleteSync(s->fence);
    dg_buffer_release(s->gl, s->hist);
    dg_buffer_release(s->gl, s->part);
    dg_buffer_release(s->gl, s->cands);
    free(s);
}

static void add_pass(struct dg_sampler *s, enum pass_kind k, struct prog *pr, GLuint groups, uint32_t nparts,
                     uint32_t chunk, const char *name)
{
    s->passes[s->n_passes++] = (struct pass){k, pr, groups, nparts, chunk, name};
}

dg_status dg_sampler_set_params(struct dg_sampler *s, const struct dg_sample_params *p)
{
    dg_status st = dg_sample_params_check(p, s->cand);
    if (st)
        return st;
    s->p = *p;
    s->n_passes = 0;
    if (penalties_on(p)) {
        if ((st = get_prog(s, &s->pen, "sample_penalty.glsl", -1, 0, WG)))
            return st;
        add_pass(s, P_PENALTY, &s->pen, (last_n(p) + WG - 1) / WG, 0, 0, "sample_penalty");
    }
    if (p->temp <= 0) {
        if ((st = get_prog(s, &s->pargmax, "sample_partial.glsl", 1, 0, WG)) ||
            (st = get_prog(s, &s->fcombine, "sample_final.glsl", 0, 0, WG)))
            return st;
        add_pass(s, P_PARTIAL, &s->pargmax, s->parts, s->parts, PART_CHUNK, "sample_argmax");
        add_pass(s, P_FINAL, &s->fcombine, 1, s->parts, 0, "sample_combine");
    } else if (p->top_k > 0 || p->top_p < 1) {
        if ((st = get_prog(s, &s->pcand, "sample_partial.glsl", 3, 0, CAND_WG)) ||
            (st = get_prog(s, &s->fcand, "sample_final.glsl", 1, 0, CAND_WG)))
            return st;
        add_pass(s, P_PARTIAL, &s->pcand, s->cand_parts, s->cand_parts, s->cand_chunk, "sample_cand");
        add_pass(s, P_FINAL, &s->fcand, 1, s->cand_parts, 0, "sample_cand_final");
    } else {
        if (p->min_p > 0) {
            if ((st = get_prog(s, &s->pmax, "sample_partial.glsl", 0, 0, WG)) ||
                (st = get_prog(s, &s->pgumbel_minp, "sample_partial.glsl", 2, 1, WG)))
                return st;
            add_pass(s, P_PARTIAL, &s->pmax, s->parts, s->parts, PART_CHUNK, "sample_max");
            add_pass(s, P_PARTIAL, &s->pgumbel_minp, s->parts, s->parts, PART_CHUNK, "sample_gumbel");
        } else {
            if ((st = get_prog(s, &s->pgumbel, "sample_partial.glsl", 2, 0, WG)))
                return st;
            add_pass(s, P_PARTIAL, &s->pgumbel, s->parts, s->parts, PART_CHUNK, "sample_gumbel");
        }
        if ((st = get_prog(s, &s->fcombine, "sample_final.glsl", 0, 0, WG)))
            return st;
        add_pass(s, P_FINAL, &s->fcombine, 1, s->parts, 0, "sample_combine");
    }
    s->have_params = true;
    return DG_OK;
}

int dg_sampler_dispatches(const struct dg_sampler *s) { return s->n_passes; }
int dg_sampler_candidates(const struct dg_sampler *s) { return s->cand; }
const struct dg_buffer *dg_sampler_history(const struct dg_sampler *s) { return s->hist; }

static dg_status upload_u32(struct dg_sampler *s, uint32_t index, const uint32_t *v, int n)
{
    /* Orders the upload after shader writes to the history. */
    glMemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT);
    return dg_buffer_upload(s->gl, s->hist, (uint64_t)index * 4, (uint64_t)n * 4, v);
}

dg_status dg_sampler_reset(struct dg_sampler *s, const uint32_t *ids, int n)
{
    if (n < 0 || n > s->cap)
        return dg_fail(DG_E_USAGE, "sampler: %d history ids do not fit its capacity of %d", n, s->cap);
    uint32_t h[DG_SAMPLER_HIST_IDS] = {(uint32_t)n, 0, DG_SAMPLER_NONE, (uint32_t)s->cap};
    dg_status st = upload_u32(s, 0, h, DG_SAMPLER_HIST_IDS);
    if (!st && n > 0)
        st = upload_u32(s, DG_SAMPLER_HIST_IDS, ids, n);
    s->n_hist = (uint32_t)n;
    s->pending = 0;
    return st;
}

dg_status dg_sampler_push(struct dg_sampler *s, const uint32_t *ids, int n)
{
    if (s->pending)
        return dg_fail(DG_E_INTERNAL, "sampler: push after %u unread steps (read the history first)", s->pending);
    if (n < 0 || (int64_t)s->n_hist + n > s->cap)
        return dg_fail(DG_E_USAGE, "sampler: %u + %d history ids do not fit its capacity of %d", s->n_hist, n, s->cap);
    dg_status st = n > 0 ? upload_u32(s, DG_SAMPLER_HIST_IDS + s->n_hist, ids, n) : DG_OK;
    uint32_t nh = s->n_hist + (uint32_t)n, none = DG_SAMPLER_NONE;
    if (!st)
        st = upload_u32(s, DG_SAMPLER_HIST_N, &nh, 1);
    if (!st)
        st = upload_u32(s, DG_SAMPLER_HIST_STOP, &none, 1);
    if (!st)
        s->n_hist = nh;
    return st;
}

static void set_u(const struct prog *pr, int u, uint32_t v)
{
    if (pr->loc[u] >= 0)
        glUniform1ui(pr->loc[u], v);
}

static void set_f(const struct prog *pr, int u, float v)
{
    if (pr->loc[u] >= 0)
        glUniform1f(pr->loc[u], v);
}

/* Binds the 16-byte-aligned window that holds element `index` of buf; returns the index within it. */
static dg_status bind_u32_window(struct dg_gl *gl, GLuint binding, const struct dg_buffer *buf, uint32_t index,
                                 uint32_t *local)
{
    uint64_t byte = (uint64_t)index * 4, off = byte & ~(uint64_t)15;
    if (byte + 4 > buf->size)
        return dg_fail(DG_E_USAGE, "sampler: token slot element %u is past the end of its %llu-byte buffer", index,
                       (unsigned long long)buf->size);
    uint64_t size = buf->size - off < 16 ? buf->size - off : 16;
    *local = (uint32_t)((byte - off) / 4);
    return dg_buffer_bind(gl, binding, buf, off, size);
}

static void set_eos(const struct dg_sampler *s, const struct prog *pr)
{
    set_u(pr, U_N_EOS, (uint32_t)s->n_eos);
    if (pr->loc[U_EOS] >= 0 && s->n_eos > 0)
        glUniform1uiv(pr->loc[U_EOS], s->n_eos, s->eos);
}

dg_status dg_sampler_record(struct dg_sampler *s, const struct dg_buffer *logits, uint64_t logits_offset,
                            const struct dg_buffer *out, uint32_t out_index)
{
    struct dg_gl *gl = s->gl;
    if (s->n_hist + s->pending >= (uint32_t)s->cap)
        return dg_fail(DG_E_USAGE, "sampler: the history is full (%d ids): no room for another token", s->cap);
    uint64_t vbytes = (uint64_t)s->vocab * 4;
    if (logits_offset % 4 || logits_offset > logits->size || logits->size - logits_offset < vbytes)
        return dg_fail(DG_E_USAGE, "sampler: logits at byte %llu (%d floats) do not lie within their %llu-byte "
                       "buffer at a multiple of 4", (unsigned long long)logits_offset, s->vocab,
                       (unsigned long long)logits->size);
    uint64_t loff = logits_offset & ~(uint64_t)15;
    uint32_t lbase = (uint32_t)((logits_offset - loff) / 4);
    uint32_t out_local = DG_SAMPLER_NONE;
    const struct dg_sample_params *p = &s->p;
    dg_status st;
    for (int i = 0; i < s->n_passes; i++) {
        const struct pass *ps = &s->passes[i];
        const struct prog *pr = ps->prog;
        dg_gl_barrier(gl); /* logits from the LM head, or the previous pass's records */
        glUseProgram(pr->id);
        if ((st = dg_buffer_bind(gl, 1, s->hist, 0, s->hist->size)))
            return st;
        set_u(pr, U_N, (uint32_t)s->vocab);
        set_u(pr, U_LBASE, lbase);
        uint64_t bytes = 0;
        if (ps->kind != P_FINAL) {
            if ((st = dg_buffer_bind(gl, 0, logits, loff, (uint64_t)lbase * 4 + vbytes)))
                return st;
        }
        if (ps->kind == P_PENALTY) {
            set_u(pr, U_LAST_N, last_n(p));
            set_f(pr, U_REPEAT, p->repeat_penalty);
            set_f(pr, U_FREQ, p->frequency_penalty);
            set_f(pr, U_PRESENCE, p->presence_penalty);
            bytes = (uint64_t)last_n(p) * 16;
        } else {
            if ((st = dg_buffer_bind(gl, 2, s->part, 0, s->part->size)) ||
                (st = dg_buffer_bind(gl, 3, s->cands, 0, s->cands->size)))
                return st;
            set_u(pr, U_CHUNK, ps->chunk);
            set_u(pr, U_NPARTS, ps->nparts);
            set_f(pr, U_INV_TEMP, p->temp > 0 ? 1.0f / p->temp : 1.0f);
            set_f(pr, U_LOG_MIN_P, p->min_p > 0 ? logf(p->min_p) : -INFINITY);
            set_u(pr, U_TOP_K, p->top_k > 0 ? (uint32_t)p->top_k : 0);
            set_f(pr, U_TOP_P, p->top_p);
            if (pr->loc[U_SEED] >= 0)
                glUniform2ui(pr->loc[U_SEED], (GLuint)(p->seed & 0xffffffffu), (GLuint)(p->seed >> 32));
            bytes = ps->kind == P_PARTIAL ? vbytes : (uint64_t)ps->nparts * 16;
        }
        if (ps->kind == P_FINAL) {
            if (out)
                st = bind_u32_window(gl, 4, out, out_index, &out_local);
            else
                st = dg_buffer_bind(gl, 4, s->hist, 0, 16);
            if (st)
                return st;
            set_u(pr, U_OUT_INDEX, out ? out_local : DG_SAMPLER_NONE);
            set_eos(s, pr);
        }
        struct dg_dispatch_info info = {ps->name, "sample", bytes};
        dg_gl_dispatch(gl, ps->groups, 1, 1, &info);
    }
    if ((st = dg_gl_check("recording the sampler")))
        return st;
    s->pending++;
    return DG_OK;
}

dg_status dg_sampler_record_append(struct dg_sampler *s, const struct dg_buffer *tok, uint32_t index)
{
    struct dg_gl *gl = s->gl;
    if (s->n_hist + s->pending >= (uint32_t)s->cap)
        return dg_fail(DG_E_USAGE, "sampler: the history is full (%d ids): no room for another token", s->cap);
    dg_status st = get_prog(s, &s->append, "sample_append.glsl", -1, 0, WG);
    if (st)
        return st;
    uint32_t local;
    dg_gl_barrier(gl);
    glUseProgram(s->append.id);
    if ((st = dg_buffer_bind(gl, 1, s->hist, 0, s->hist->size)) ||
        (st = bind_u32_window(gl, 4, tok, index, &local)))
        return st;
    set_u(&s->append, U_OUT_INDEX, local);
    set_eos(s, &s->append);
    struct dg_dispatch_info info = {"sample_append", "sample", 16};
    dg_gl_dispatch(gl, 1, 1, 1, &info);
    if ((st = dg_gl_check("recording the sampler's append")))
        return st;
    s->pending++;
    return DG_OK;
}

/* ---- read-back ---- */

static dg_status put_fence(GLsync *f)
{
    /* Shader writes must be visible to the mapping that follows the wait. */
    glMemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT);
    if (*f)
        glDeleteSync(*f);
    *f = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
    if (!*f)
        return dg_fail(DG_E_GL, "glFenceSync failed (GL error 0x%04x)", glGetError());
    return DG_OK;
}

static dg_status wait_fence(GLsync *f)
{
    GLenum r;
    int waited = 0;
    do
        r = glClientWaitSync(*f, GL_SYNC_FLUSH_COMMANDS_BIT, 1000000000ull);
    while (r == GL_TIMEOUT_EXPIRED && ++waited < 120);
    glDeleteSync(*f);
    *f = NULL;
    if (r == GL_WAIT_FAILED)
        return dg_fail(DG_E_GL, "glClientWaitSync failed (GL error 0x%04x)", glGetError());
    if (r == GL_TIMEOUT_EXPIRED)
        return dg_fail(DG_E_GL, "the GPU did not finish the recorded steps within %d s", waited);
    return DG_OK;
}

static dg_status map_read(const struct dg_buffer *buf, uint64_t offset, uint64_t size, void *out)
{
    if (size == 0)
        return DG_OK;
    if (offset > buf->size || buf->size - offset < size)
        return dg_fail(DG_E_USAGE, "read-back of %llu bytes at %llu passes the end of a %llu-byte buffer",
                       (unsigned long long)size, (unsigned long long)offset, (unsigned long long)buf->size);
    glBindBuffer(GL_COPY_READ_BUFFER, buf->id);
    const void *m = glMapBufferRange(GL_COPY_READ_BUFFER, (GLintptr)offset, (GLsizeiptr)size, GL_MAP_READ_BIT);
    if (!m) {
        glBindBuffer(GL_COPY_READ_BUFFER, 0);
        return dg_fail(DG_E_GL, "mapping %llu bytes for read-back failed (GL error 0x%04x)", (unsigned long long)size,
                       glGetError());
    }
    memcpy(out, m, size);
    glUnmapBuffer(GL_COPY_READ_BUFFER);
    glBindBuffer(GL_COPY_READ_BUFFER, 0);
    return dg_gl_check("read-back");
}

dg_status dg_gl_read_u32_fenced(struct dg_gl *gl, const struct dg_buffer *buf, uint64_t offset, int n, uint32_t *out)
{
    (void)gl;
    if (n < 0)
        return dg_fail(DG_E_INTERNAL, "read-back of %d ids", n);
    GLsync f = NULL;
    dg_status st = put_fence(&f);
    if (!st)
        st = wait_fence(&f);
    if (!st)
        st = map_read(buf, offset, (uint64_t)n * 4, out);
    return st;
}

dg_status dg_sampler_fence(struct dg_sampler *s) { return put_fence(&s->fence); }

dg_status dg_sampler_read(struct dg_sampler *s, uint32_t first, int n, uint32_t *ids, struct dg_sampler_state *out)
{
    if (n < 0)
        return dg_fail(DG_E_INTERNAL, "sampler read of %d ids", n);
    dg_status st = s->fence ? DG_OK : put_fence(&s->fence);
    if (!st)
        st = wait_fence(&s->fence);
    uint32_t h[DG_SAMPLER_HIST_IDS];
    if (!st)
        st = map_read(s->hist, 0, sizeof h, h);
    if (st)
        return st;
    struct dg_sampler_state state = {h[DG_SAMPLER_HIST_N], h[DG_SAMPLER_HIST_DRAWS], h[DG_SAMPLER_HIST_STOP]};
    if (state.n_hist > (uint32_t)s->cap)
        return dg_fail(DG_E_INTERNAL, "sampler: the GPU history claims %u ids, capacity %d", state.n_hist, s->cap);
    for (int i = 0; i < n; i++)
        ids[i] = DG_SAMPLER_NONE;
    if (first < state.n_hist && n > 0) {
        uint32_t m = state.n_hist - first < (uint32_t)n ? state.n_hist - first : (uint32_t)n;
        st = map_read(s->hist, ((uint64_t)DG_SAMPLER_HIST_IDS + first) * 4, (uint64_t)m * 4, ids);
        if (st)
            return st;
    }
    /* Mapping synchronises with everything recorded before it, so the mirror is exact again. */
    s->n_hist = state.n_hist;
    s->pending = 0;
    if (out)
        *out = state;
    return DG_OK;
}
