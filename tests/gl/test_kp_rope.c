/* test_kp_rope.c: rope.glsl against C (double) for NEOX and NORM pairing, partial rotary, q and k heads,
 * positions up to 2000 (the angle reduction keeps llvmpipe's cos/sin accurate), and the inverse-frequency
 * table builder against the closed forms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gl_fixture.h"
#include "kt.h"
#include "pipe/exec.h"
#include "test.h"

DG_TEST(kp_rope_matches_c)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    enum { NH = 3, NKV = 1, HD = 16, T = 5 };
    for (int v = 0; v < 2; v++) {
        int rot = v ? 8 : 16, neox = !v;
        struct dg_rope r = {0};
        r.theta = 10000;
        r.factor = 1;
        r.rotary_dim = rot;
        float tab[16];
        int h = dg_rope_inv_freq(&r, HD, tab);
        CHECK(h == rot / 2);
        float q[T * NH * HD], k[T * NKV * HD], qo[T * NH * HD], ko[T * NKV * HD];
        for (int i = 0; i < T * NH * HD; i++)
            q[i] = sinf((float)i * 0.37f);
        for (int i = 0; i < T * NKV * HD; i++)
            k[i] = cosf((float)i * 0.11f);
        char rots[8], neoxs[4];
        snprintf(rots, sizeof rots, "%d", rot);
        snprintf(neoxs, sizeof neoxs, "%d", neox);
        struct dg_define d[] = {{"NH", "3"}, {"NKV", "1"}, {"HD", "16"}, {"ROT", rots}, {"NEOX", neoxs}, {"MSCALE", "1.0"}};
        struct kt_buf b[] = {{0, q, sizeof q, qo}, {1, k, sizeof k, ko}, {2, tab, (uint64_t)h * 8, NULL}};
        uint32_t pos0 = 1995;
        uint32_t ubo[4] = {pos0, T, 0, 0};
        if (!kt_run(gl, "rope.glsl", d, 6, b, 3, ubo, NH + NKV, T, 1, 0, 0))
            return;
        double worst = 0;
        for (int t = 0; t < T; t++)
            for (int hh = 0; hh < NH + NKV; hh++) {
                const float *src = hh < NH ? q + (t * NH + hh) * HD : k + (t * NKV + hh - NH) * HD;
                const float *got = hh < NH ? qo + (t * NH + hh) * HD : ko + (t * NKV + hh - NH) * HD;
                for (int i = 0; i < rot / 2; i++) {
                    int i0 = neox ? i : 2 * i, i1 = neox ? i + rot / 2 : 2 * i + 1;
                    double a = (double)(float)((float)(pos0 + t) * tab[i]);
                    double e0 = src[i0] * cos(a) - src[i1] * sin(a), e1 = src[i1] * cos(a) + src[i0] * sin(a);
                    worst = fmax(worst, fmax(fabs(e0 - got[i0]), fabs(e1 - got[i1])));
                }
                for (int i = rot; i < HD; i++)
                    worst = fmax(worst, fabs(src[i] - got[i]));
            }
        CHECK_MSG(worst < 2e-6, "rope variant %d: worst %g", v, worst);
    }
}

DG_TEST(kp_rope_tables)
{
    struct dg_rope r = {0};
    r.theta = 500000;
    r.factor = 32;
    r.low_freq_factor = 1;
    r.high_freq_factor = 4;
    r.original_max_pos = 64;
    r.rotary_dim = 16;
    r.type = DG_ROPE_LLAMA3;
    float t[32];
    int h = dg_rope_inv_freq(&r, 16, t);
    CHECK(h == 8);
    /* i = 0: wavelength 2*pi < high_freq_wavelen 16: unchanged */
    CHECK_NEAR(t[0], 1.0, 1e-7);
    /* i = 7: 1/500000^(14/16) has wavelength ~6.6e5 > low_freq_wavelen 64: divided by the factor */
    CHECK_NEAR(t[7], 1.0 / pow(500000, 14.0 / 16) / 32, 1e-12);
    CHECK_NEAR(t[8 + 7], t[7], 0); /* long half equals short half */
    r.type = DG_ROPE_LINEAR;
    r.factor = 4;
    dg_rope_inv_freq(&r, 16, t);
    CHECK_NEAR(t[1], 1.0 / pow(500000, 2.0 / 16) / 4, 1e-9);
}
