/* quantize.c: CPU quantizers to GGUF-compatible blocks (q8_0, q4_0, q5_0, q4_k, q5_k, q6_k) and plain
 * f32/f16/bf16, plus a multi-threaded row driver for large tensors.
 *
 * The k-quant scale searches follow ggml's ideas (make_qkx2_quants for the scale+min types, make_qx_quants
 * for Q6_K): try a small range of candidate scales around the naive max/range one, refit the scale (and min)
 * by weighted least squares for each candidate's rounding, keep the one with the smallest weighted error,
 * then quantize the sub-block scales themselves and re-round every element against the quantized scales.
 * Error bounds are stated with the tests in tests/unit/test_quant.c and in docs/FORMAT.md. */
#include "model/quant.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"

/* Round to nearest, ties to even, without a libm call: adding 1.5 * 2^23 puts the integer in the low mantissa
 * bits (exact for |v| < 2^22; larger values are clamped first, every caller clamps the result anyway). */
static inline int nearest(float v)
{
    v = fminf(fmaxf(v, -4194303.0f), 4194303.0f);
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}
/* The same rounding in float, for |v| < 2^22 (the scale searches, whose values stay within about ±nmax). */
static inline float round_small(float v) { return (v + 12582912.0f) - 12582912.0f; }

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline void put_f16(uint8_t *p, float v)
{
    uint16_t h = dg_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* ---- 32-element types ---- */

static void q8_0_block(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)clampi(nearest(x[j] * id), -127, 127);
}

/* The value of largest magnitude, with its sign: Q4_0/Q5_0 map it to the most negative level exactly, which
 * gives the other side one level less (ggml's convention, kept so files quantize identically). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void q4_0_block(const float *x, uint8_t *b)
{
    float d = signed_absmax(x, 32) / -8.0f, id = d ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < 16; j++) {
        int q0 = clampi(nearest(x[j] * id) + 8, 0, 15), q1 = clampi(nearest(x[j + 16] * id) + 8, 0, 15);
        b[2 + j] = (uint8_t)(q0 | q1 << 4);
    }
}

static void q5_0_block(const float *x, uint8_t *b)
{
    float d = signed_absmax(x, 32) / -16.0f, id = d ? 1.0f / d : 0.0f;
    put_f16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int q0 = clampi(nearest(x[j] * id) + 16, 0, 31), q1 = clampi(nearest(x[j + 16] * id) + 16, 0, 31);
        b[6 + j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        qh |= (uint32_t)(q0 >> 4) << j;
        qh |= (uint32_t)(q1 >> 4) << (j + 16);
    }
    put_le32(b + 2, qh);
}

/* ---- k-quants ---- */

/* Fits x ≈ scale * L - mn (L in [0, nmax], mn ≥ 0) over n elements with weights w. Tries nstep+1 candidate
 * inverse scales (nmax + rmin + rdelta*i) / range, refits scale and min by weighted least squares for each
 * candidate rounding, and keeps the one with the smallest weighted squared error. Returns scale, *mn_out. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *mn_out, float rmin,
                           float rdelta, int nstep)
{
    float lo = x[0], hi = x[0];
    double sw = 0, sx = 0, sx2 = 0;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sw += w[i];
        sx += (double)w[i] * x[i];
        sx2 += (double)w[i] * x[i] * x[i];
    }
    if (lo > 0) /* the min is subtracted as stored: never let it go positive (y = d*L - m, m ≥ 0) */
        lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *mn_out = -lo;
        return 0;
    }
    float iscale = (float)nmax / (hi - lo), scale = 1 / iscale, min = lo;
    double best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
        float e = scale * L[i] + lo - x[i];
        best += (double)w[i] * e * e;
    }
    uint8_t aux[256];
    for (int s = 0; s <= nstep; s++) {
        iscale = (rmin + rdelta * (float)s + (float)nmax) / (hi - lo);
        const float fmax = (float)nmax;
        float fsl = 0, fsl2 = 0, fsxl = 0; /* float sums over ≤ 32 elements: exact enough, and vectorizable */
        for (int i = 0; i < n; i++) {
            float fl = round_small(iscale * (x[i] - lo));
            fl = fl < 0.0f ? 0.0f : fl > fmax ? fmax : fl;
            aux[i] = (uint8_t)fl;
            fsl += w[i] * fl;
            fsl2 += w[i] * fl * fl;
            fsxl += w[i] * fl * x[i];
        }
        double sl = fsl, sl2 = fsl2, sxl = fsxl;
        double D = sw * sl2 - sl * sl;
        if (D <= 0)
            continue;
        double ts = (sw * sxl - sx * sl) / D, tm = (sl2 * sx - sl * sxl) / D;
        if (tm > 0) {
            tm = 0;
            ts = sxl / sl2;
        }
        /* weighted squared error of x ≈ ts * l + tm, expanded so no second pass over x is needed */
        double err = ts * ts * sl2 + 2 * ts * tm * sl - 2 * ts * sxl + tm * tm * sw - 2 * tm * sx + sx2;
        if (err < best) {
            best = err;
            memcpy(L, aux, (size_t)n);
            scale = (float)ts;
            min = (float)tm;
        }
    }
    *mn_out = -min;
    return scale;
}

/* Fits x ≈ scale * (L - nmax) with L in [0, 2*nmax - 1] (symmetric types, Q6_K), weights x². */
static float fit_scale_sym(int n, int nmax, const float *x)
{
    float max = signed_absmax(x, n);
    if (fabsf(max) < 1e-30f)
        return 0;
    float best_scale = 0, best = -1;
    for (int s = -9; s <= 9; s++) {
        float iscale = -((float)nmax + 0.1f * (float)s) / max;
        float sxl = 0, sl2 = 0, lo = (float)-nmax, hi = (float)(nmax - 1);
        for (int i = 0; i < n; i++) {
            float l = round_small(iscale * x[i]);
            l = l < lo ? lo : l > hi ? hi : l;
            float w = x[i] * x[i];
            sxl += w * x[i] * l;
            sl2 += w * l * l;
        }
        /* weighted error = sum w x² - sxl²/sl2 at the least-squares scale: maximize sxl²/sl2 */
        if (sl2 > 0 && (best < 0 || sxl * sxl > best * sl2)) {
            best_scale = sxl / sl2;
            best = best_scale * sxl;
        }
    }
    return best_scale;
}

/* 6-bit scales and mins of Q4_K/Q5_K into the 12-byte packing that scale_min_k4 in quant.c reads. */
static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *q)
{
    memset(q, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0x0f) | (lm[j] & 0x0f) << 4);
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Shared part of Q4_K (nmax 15) and Q5_K (nmax 31): per-sub-block fit, 6-bit scales, final levels in L. */
static void kx_block(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *hdr, uint8_t *L)
{
    float sum2 = 0;
    for (int i = 0; i < 256; i++)
        sum2 += x[i] * x[i];
    float av = sqrtf(sum2 / 256), w[32], scales[8], mins[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        for (int l = 0; l < 32; l++)
            w[l] = av + fabsf(x[32 * j + l]);
        scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], rmin, rdelta, nstep);
        max_scale = fmaxf(max_scale, scales[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0, inv_min = max_min > 0 ? 63.0f / max_min : 0;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi(nearest(inv_scale * scales[j]), 0, 63);
        lm[j] = (uint8_t)clampi(nearest(inv_min * mins[j]), 0, 63);
    }
    put_f16(hdr, max_scale / 63.0f);
    put_f16(hdr + 2, max_min / 63.0f);
    pack_scales_k4(ls, lm, hdr + 4);
    /* re-round against the scales as stored, so the levels match what a reader reconstructs */
    float d = dg_f16_to_f32((uint16_t)(hdr[0] | hdr[1] << 8)), dmin = dg_f16_to_f32((uint16_t)(hdr[2] | hdr[3] << 8));
    for (int j = 0; j < 8; j++) {
        float ds = d * ls[j], dm = dmin * lm[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = ds > 0 ? (uint8_t)clampi(nearest((x[32 * j + l] + dm) / ds), 0, nmax) : 0;
    }
}

static void q4_k_block(const float *x, uint8_t *b)
{
    uint8_t L[256];
    kx_block(x, 15, -1.0f, 0.1f, 20, b, L);
    uint8_t *q = b + 16;
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            q[32 * g + l] = (uint8_t)(L[64 * g + l] | L[64 * g + 32 + l] << 4);
}

static void q5_k_block(const float *x, uint8_t *b)
{
    uint8_t L[256];
    kx_block(x, 31, -0.5f, 0.1f, 15, b, L);
    uint8_t *qh = b + 16, *ql = b + 48;
    memset(qh, 0, 32);
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            int l1 = L[64 * g + l], l2 = L[64 * g + 32 + l];
            qh[l] |= (uint8_t)((l1 >> 4) << (2 * g) | (l2 >> 4) << (2 * g + 1));
            ql[32 * g + l] = (uint8_t)((l1 & 0x0f) | (l2 & 0x0f) << 4);
        }
}

static void q6_k_block(const float *x, uint8_t *b)
{
    float scales[16], max_scale = 0, amax = 0;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = fit_scale_sym(16, 32, x + 16 * ib);
        if (fabsf(scales[ib]) > amax) {
            amax = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    if (amax == 0) {
        memset(b, 0, 210);
        return;
    }
    float iscale = -128.0f / max_scale;
    put_f16(b + 208, 1 / iscale);
    float d = dg_f16_to_f32((uint16_t)(b[208] | b[209] << 8));
    uint8_t L[256];
    for (int ib = 0; ib < 16; ib++) {
        sc[ib] = (int8_t)clampi(nearest(iscale * scales[ib]), -128, 127);
        float ds = d * sc[ib];
        for (int l = 0; l < 16; l++)
            L[16 * ib + l] = ds != 0 ? (uint8_t)(clampi(nearest(x[16 * ib + l] / ds), -32, 31) + 32) : 32;
    }
    for (int half = 0; half < 2; half++) {
        const uint8_t *Lh = L + 128 * half;
        for (int l = 0; l < 32; l++) {
            int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
            ql[l] = (uint8_t)((q1 & 0x0f) | (q3 & 0x0f) << 4);
            ql[l + 32] = (uint8_t)((q2 & 0x0f) | (q4 & 0x0f) << 4);
            qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
        }
        ql += 64;
        qh += 32;
    }
}

dg_status dg_quantize(enum dg_dtype dt, const float *src, void *dst, uint64_t n)
{
    const struct dg_dtype_info *info = dg_dtype_info(dt);
    if (!info)
        return dg_fail(DG_E_UNSUPPORTED, "quantize: unknown dtype %d", (int)dt);
    if (n % info->block_elems)
        return dg_fail(DG_E_INTERNAL, "quantize %s: %llu elements is not a multiple of the block size %u",
                       info->name, (unsigned long long)n, info->block_elems);
    uint8_t *d = dst;
    switch (dt) {
    case DG_DT_F32:
        memcpy(dst, src, n * 4);
        return DG_OK;
    case DG_DT_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = dg_f32_to_f16(src[i]);
            d[2 * i] = (uint8_t)h, d[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return DG_OK;
    case DG_DT_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = dg_f32_to_bf16(src[i]);
            d[2 * i] = (uint8_t)h, d[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return DG_OK;
    default:
        break;
    }
    void (*fn)(const float *, uint8_t *) = NULL;
    switch (dt) {
    case DG_DT_Q8_0: fn = q8_0_block; break;
    case DG_DT_Q4_0: fn = q4_0_block; break;
    case DG_DT_Q5_0: fn = q5_0_block; break;
    case DG_DT_Q4_K: fn = q4_k_block; break;
    case DG_DT_Q5_K: fn = q5_k_block; break;
    case DG_DT_Q6_K: fn = q6_k_block; break;
    default:
        return dg_fail(DG_E_UNSUPPORTED, "quantize: no quantizer for dtype %s", info->name);
    }
    for (uint64_t i = 0; i < n / info->block_elems; i++) {
        const float *x = src + i * info->block_elems;
        for (uint32_t j = 0; j < info->block_elems; j++)
            if (!isfinite(x[j]))
                return dg_fail(DG_E_FORMAT, "quantize %s: element %llu is not finite (%g)", info->name,
                               (unsigned long long)(i * info->block_elems + j), (double)x[j]);
        fn(x, d + i * info->block_bytes);
    }
    return DG_OK;
}

/* ---- multi-threaded driver ---- */

struct qjob {
    enum dg_dtype dt;
    const float *src;
    uint8_t *dst;
    uint64_t row_len, row_bytes, r0, r1;
    dg_status st;
    char err[512];
};

static void *qjob_run(void *arg)
{
    struct qjob *j = arg;
    j->st = dg_quantize(j->dt, j->src + j->r0 * j->row_len, j->dst + j->r0 * j->row_bytes,
                        (j->r1 - j->r0) * j->row_len);
    if (j->st != DG_OK) /* dg_fail's message is thread-local: carry it back to the caller's thread */
        snprintf(j->err, sizeof j->err, "%s", dg_last_error());
    return NULL;
}

dg_status dg_quantize_rows(enum dg_dtype dt, const float *src, void *dst, uint64_t n_rows, uint64_t row_len,
                           int n_threads)
{
    uint64_t row_bytes = dg_dtype_row_bytes(dt, row_len);
    if (!row_bytes)
        return dg_fail(DG_E_INTERNAL, "quantize: rows of %llu elements do not fit dtype %s",
                       (unsigned long long)row_len, dg_dtype_info(dt) ? dg_dtype_info(dt)->name : "?");
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 64)
        n_threads = 64;
    /* not worth a thread for less than ~64K elements each */
    uint64_t max_useful = n_rows * row_len / 65536 + 1;
    if ((uint64_t)n_threads > max_useful)
        n_threads = (int)max_useful;
    if ((uint64_t)n_threads > n_rows)
        n_threads = (int)(n_rows ? n_rows : 1);
    struct qjob jobs[64];
    pthread_t tids[64];
    bool started[64] = {0};
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (struct qjob){dt, src, dst, row_len, row_bytes, n_rows * (uint64_t)t / (uint64_t)n_threads,
                                n_rows * (uint64_t)(t + 1) / (uint64_t)n_threads, DG_OK, ""};
        if (t > 0)
            started[t] = pthread_create(&tids[t], NULL, qjob_run, &jobs[t]) == 0;
        if (t > 0 && !started[t])
            qjob_run(&jobs[t]);
    }
    qjob_run(&jobs[0]);
    for (int t = 1; t < n_threads; t++)
        if (started[t])
            pthread_join(tids[t], NULL);
    for (int t = 0; t < n_threads; t++)
        if (jobs[t].st != DG_OK)
            return dg_fail(jobs[t].st, "%s", jobs[t].err);
    return DG_OK;
}
