/* test_kp_argmax.c: argmax.glsl (the kernel paths' greedy sampler) against C: two rows per dispatch, a
 * vocabulary that is a multiple of 4 (vec4 loads) and one that is not (scalar loads), the maximum tied
 * at several indices (the lowest must win, across invocations and within one vec4), the maximum at the
 * last index, and the workgroup sizes the profiles use (64, 256 and 1024). Exact: no arithmetic. */
#include <stdlib.h>
#include <string.h>

#include "gl_fixture.h"
#include "kt.h"
#include "test.h"

static void one(struct dg_gl *gl, int n, const char *wg)
{
    enum { T = 3 };
    float *l = malloc(sizeof(float) * (size_t)n * T);
    uint32_t seed = 7u + (uint32_t)n;
    for (int i = 0; i < n * T; i++) {
        seed = seed * 1664525u + 1013904223u;
        l[i] = (float)((seed >> 9) & 0xffff) / 65536.0f - 2.0f;
    }
    /* row 0: ties at 3 indices far apart and two within one vec4; row 1: the maximum at the end;
     * row 2: all equal, so index 0 */
    int tie[] = {n / 2 + 1, 5, n - 7, 6, n / 3};
    for (size_t i = 0; i < sizeof tie / sizeof tie[0]; i++)
        l[tie[i]] = 3.0f;
    l[n + n - 1] = 5.0f;
    for (int i = 0; i < n; i++)
        l[2 * n + i] = -1.0f;
    const uint32_t want[T] = {5, (uint32_t)n - 1, 0};
    char ns[16];
    snprintf(ns, sizeof ns, "%d", n);
    struct dg_define d[] = {{"N", ns}, {"WG_SIZE", wg}};
    uint32_t tok[T] = {99, 99, 99};
    struct kt_buf b[] = {{0, l, sizeof(float) * (size_t)n * T, NULL}, {1, NULL, sizeof tok, tok}};
    uint32_t ubo[4] = {0, T, 0, 0};
    if (kt_run(gl, "argmax.glsl", d, 2, b, 2, ubo, 1, T, 1, 0, 0))
        for (int t = 0; t < T; t++)
            CHECK_MSG(tok[t] == want[t], "argmax N=%d WG %s row %d: got %u, want %u", n, wg, t, tok[t], want[t]);
    free(l);
}

DG_TEST(kp_argmax_lowest_index_on_ties)
{
    struct dg_gl *gl = dg_test_gl();
    if (!gl)
        return;
    const char *wgs[] = {"64", "256", "1024"};
    for (int w = 0; w < 3; w++) {
        one(gl, 4000, wgs[w]);
        one(gl, 4001, wgs[w]);
    }
}
