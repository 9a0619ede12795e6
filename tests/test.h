/* test.h: the test harness. A test is `DG_TEST(name) { CHECK(...); }` in any tests/ C file; it registers
 * itself at start-up, so adding a file needs no central list. The runner prints one line per test and
 * ends with "N passed, N failed, N skipped". Tests skip (loudly) when a prerequisite is missing, except
 * that a missing fixture directory is a failure under CI=true. */
#ifndef DG_TESTS_TEST_H
#define DG_TESTS_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

typedef void (*dg_test_fn)(void);
void dg_test_register(const char *name, const char *file, dg_test_fn fn);

#define DG_TEST(name)                                                                  \
    static void name(void);                                                            \
    __attribute__((constructor)) static void dg_register_##name(void)                  \
    {                                                                                  \
        dg_test_register(#name, __FILE__, name);                                       \
    }                                                                                  \
    static void name(void)

/* Record a failure and continue (so one run shows every broken check). */
void dg_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Mark the current test skipped with a reason; the caller should return. */
void dg_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool dg_test_failed(void);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond))                                                                   \
            dg_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                      \
    } while (0)
#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (!(cond))                                                                   \
            dg_test_fail(__FILE__, __LINE__, __VA_ARGS__);                             \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double dg_a_ = (a), dg_b_ = (b);                                               \
        if (!(fabs(dg_a_ - dg_b_) <= (tol)))                                           \
            dg_test_fail(__FILE__, __LINE__, "%s = %g, %s = %g, |diff| %g > %g", #a, dg_a_, #b, dg_b_, \
                         fabs(dg_a_ - dg_b_), (double)(tol));                          \
    } while (0)
/* For calls returning dg_status: fails with the library's message. */
#define CHECK_OK(expr)                                                                 \
    do {                                                                               \
        int dg_st_ = (expr);                                                           \
        if (dg_st_ != 0)                                                               \
            dg_test_fail(__FILE__, __LINE__, "%s failed: %s", #expr, dg_last_error()); \
    } while (0)
#define SKIP(...)                                                                      \
    do {                                                                               \
        dg_test_skip(__VA_ARGS__);                                                     \
        return;                                                                        \
    } while (0)

/* The fixture root ($DOPPLER_FIXTURES, default ../shared/fixtures relative to the repo). Returns NULL
 * after marking the test skipped (or failed under CI=true) when it is missing. */
const char *dg_test_fixtures(void);
/* $DOPPLER_MODELS, else models/ beside $DOPPLER_FIXTURES when that is set, else ../shared/models; same rules. */
const char *dg_test_models(void);
/* A fresh scratch directory for this test, removed when the run ends unless DG_TEST_KEEP=1. */
const char *dg_test_tmpdir(void);
/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on failure. */
char *dg_test_read_file(const char *path, size_t *len);

#endif
