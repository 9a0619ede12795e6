/* rope_table.c: the inverse frequency of every rotary pair for each rope scaling, computed as
 * transformers' ROPE_INIT_FUNCTIONS do (in double, rounded once to float), so the GPU kernels only
 * multiply by the position. */
#include <math.h>

#include "pipe/exec.h"

static void base_freqs(const struct dg_rope *r, int rot, double *inv)
{
    for (int i = 0; i < rot / 2; i++)
        inv[i] = 1.0 / pow((double)r->theta, (double)(2 * i) / (double)rot);
}

static double yarn_corr_dim(double num_rot, int dim, double base, double max_pos)
{
    return (dim * log(max_pos / (num_rot * 2.0 * M_PI))) / (2.0 * log(base));
}

int dg_rope_inv_freq(const struct dg_rope *r, int head_dim, float *out)
{
    int rot = r->rotary_dim > 0 ? r->rotary_dim : head_dim;
    int h = rot / 2;
    double inv[DG_MAX_ROPE_FACTORS], lng[DG_MAX_ROPE_FACTORS];
    if (h > DG_MAX_ROPE_FACTORS)
        h = DG_MAX_ROPE_FACTORS;
    base_freqs(r, rot, inv);
    for (int i = 0; i < h; i++)
        lng[i] = inv[i];
    switch (r->type) {
    case DG_ROPE_DEFAULT:
        break;
    case DG_ROPE_LINEAR:
        for (int i = 0; i < h; i++)
            inv[i] = lng[i] = inv[i] / r->factor;
        break;
    case DG_ROPE_LLAMA3: {
        double old = r->original_max_pos, lf = r->low_freq_factor, hf = r->high_freq_factor;
        double low_wl = old / lf, high_wl = old / hf;
        for (int i = 0; i < h; i++) {
            double wl = 2.0 * M_PI / inv[i];
            double v = wl > low_wl ? inv[i] / r->factor : inv[i];
            if (!(wl < high_wl) && !(wl > low_wl)) {
                double s = (old / wl - lf) / (hf - lf);
                v = (1.0 - s) * v / r->factor + s * v;
            }
            inv[i] = lng[i] = v;
        }
        break;
    }
    case DG_ROPE_YARN: {
        double lo = yarn_corr_dim(r->beta_fast, rot, r->theta, r->original_max_pos);
        double hi = yarn_corr_dim(r->beta_slow, rot, r->theta, r->original_max_pos);
        if (r->truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0)
            lo = 0;
        if (hi > rot - 1)
            hi = rot - 1;
        if (lo == hi)
            hi += 0.001;
        for (int i = 0; i < h; i++) {
            double ramp = ((double)i - lo) / (hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double extra = 1.0 - ramp; /* inv_freq_extrapolation_factor */
            double interp = inv[i] / r->factor;
            inv[i] = lng[i] = interp * (1.0 - extra) + inv[i] * extra;
        }
        break;
    }
    case DG_ROPE_LONGROPE:
        for (int i = 0; i < h; i++) {
            double sf = i < r->n_factors ? r->short_factor[i] : 1.0, lf = i < r->n_factors ? r->long_factor[i] : 1.0;
            lng[i] = inv[i] / lf;
            inv[i] = inv[i] / sf;
        }
        break;
    }
    for (int i = 0; i < h; i++) {
        double ff = (i < r->n_freq_factors && r->freq_factors[i] > 0) ? r->freq_factors[i] : 1.0;
        out[i] = (float)(inv[i] / ff);
        out[h + i] = (float)(lng[i] / ff);
    }
    return h;
}
