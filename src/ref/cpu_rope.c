/* cpu_rope.c: rotary embeddings for every rope type, with inverse frequencies computed as transformers'
 * modeling_rope_utils does (default, linear, llama3, yarn, longrope), an attention factor on cos and sin,
 * partial rotary dimensions, and NEOX or NORM pairing. */
#include <math.h>

#include "core/half.h"

#include "ref/cpu_internal.h"

void ref_rope_init(struct ref_rope *r, const struct dg_rope *cfg, int head_dim, bool bf16_buffer)
{
    r->cfg = cfg;
    r->rot = cfg->rotary_dim > 0 && cfg->rotary_dim <= head_dim ? cfg->rotary_dim : head_dim;
    r->scale = cfg->attention_factor > 0 ? cfg->attention_factor : 1.0f;
    const int dim = r->rot, half = dim / 2;
    const double base = cfg->theta;
    for (int i = 0; i < half; i++) {
        /* base ** (2i / dim) in float32, as torch computes it */
        float pos_freq = powf((float)base, (float)(2 * i) / (float)dim);
        float inv = 1.0f / pos_freq;
        float f = inv, fl = inv;
        switch (cfg->type) {
        case DG_ROPE_DEFAULT:
            break;
        case DG_ROPE_LINEAR:
            f = inv / cfg->factor;
            break;
        case DG_ROPE_LLAMA3: {
            const double old = cfg->original_max_pos, lo = old / cfg->low_freq_factor,
                         hi = old / cfg->high_freq_factor;
            double wavelen = 2.0 * M_PI / inv;
            if (wavelen > lo) {
                f = inv / cfg->factor;
            } else if (wavelen >= hi) { /* medium band: smooth between scaled and unscaled */
                double smooth = (old / wavelen - cfg->low_freq_factor) / (cfg->high_freq_factor - cfg->low_freq_factor);
                f = (float)((1.0 - smooth) * inv / cfg->factor + smooth * inv);
            }
            break;
        }
        case DG_ROPE_YARN: {
            /* NTK-by-parts: interpolate low frequencies, extrapolate high ones, ramp in between. */
            const double omax = cfg->original_max_pos;
            double low = dim * log(omax / (cfg->beta_fast * 2 * M_PI)) / (2 * log(base));
            double high = dim * log(omax / (cfg->beta_slow * 2 * M_PI)) / (2 * log(base));
            if (cfg->truncate) {
                low = floor(low);
                high = ceil(high);
            }
            if (low < 0)
                low = 0;
            if (high > dim - 1)
                high = dim - 1;
            if (low == high)
                high += 0.001;
            float ramp = (float)(((float)i - low) / (high - low));
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            float extra = 1.0f - ramp; /* extrapolation weight */
            float interp = 1.0f / (cfg->factor * pos_freq);
            f = interp * (1.0f - extra) + inv * extra;
            break;
        }
        case DG_ROPE_LONGROPE: {
            float sf = i < cfg->n_factors ? cfg->short_factor[i] : 1.0f;
            float lf = i < cfg->n_factors ? cfg->long_factor[i] : 1.0f;
            f = 1.0f / (sf * pos_freq);
            fl = 1.0f / (lf * pos_freq);
            break;
        }
        }
        if (i < cfg->n_freq_factors && cfg->freq_factors[i] > 0) { /* GGUF rope_freqs divide each frequency */
            f /= cfg->freq_factors[i];
            fl /= cfg->freq_factors[i];
        }
        if (bf16_buffer) { /* see dg_cpu_set_bf16_buffers */
            f = dg_bf16_to_f32(dg_f32_to_bf16(f));
            fl = dg_bf16_to_f32(dg_f32_to_bf16(fl));
        }
        r->inv_freq[i] = f;
        r->inv_freq_long[i] = cfg->type == DG_ROPE_LONGROPE ? fl : f;
    }
}

void ref_rope_apply(const struct ref_rope *r, enum dg_rope_pairing pairing, float *x, int pos, bool use_long)
{
    const int half = r->rot / 2;
    const float *inv = use_long ? r->inv_freq_long : r->inv_freq;
    for (int i = 0; i < half; i++) {
        float ang = (float)pos * inv[i]; /* float32 product, as in transformers */
        float cs = cosf(ang) * r->scale, sn = sinf(ang) * r->scale;
        int a = pairing == DG_ROPE_NEOX ? i : 2 * i, b = pairing == DG_ROPE_NEOX ? i + half : 2 * i + 1;
        float x1 = x[a], x2 = x[b];
        x[a] = x1 * cs - x2 * sn;
        x[b] = x2 * cs + x1 * sn;
    }
}
