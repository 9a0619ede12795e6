/* test_main.c: the runner behind tests/test.h. Usage: dg-tests [--list] [SUBSTRING...]
 * Runs every registered test whose name or file contains one of the substrings (all when none). */
#include "test.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"

struct test_entry {
    const char *name, *file;
    dg_test_fn fn;
};

static struct test_entry *tests;
static int n_tests, cap_tests;
static bool cur_failed, cur_skipped;
static char skip_reason[512];
static char tmp_root[256];
static int tmp_seq;

void dg_test_register(const char *name, const char *file, dg_test_fn fn)
{
    if (n_tests == cap_tests) {
        cap_tests = cap_tests ? cap_tests * 2 : 64;
        tests = realloc(tests, sizeof *tests * (size_t)cap_tests);
        if (!tests)
            abort();
    }
    tests[n_tests++] = (struct test_entry){name, file, fn};
}

void dg_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "#   %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    cur_failed = true;
}

void dg_test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    cur_skipped = true;
}

bool dg_test_failed(void) { return cur_failed; }

static const char *shared_dir(const char *env, const char *deflt, const char *what)
{
    static char buf[2][4096];
    const char *p = getenv(env);
    char *out = buf[what[0] == 'm'];
    snprintf(out, sizeof buf[0], "%s", p && *p ? p : deflt);
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        return out;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0)
        dg_test_fail(__FILE__, __LINE__, "%s directory %s is missing (set %s); required under CI=true", what, out,
                     env);
    else
        dg_test_skip("%s directory %s is missing (set %s)", what, out, env);
    return NULL;
}

const char *dg_test_fixtures(void) { return shared_dir("DOPPLER_FIXTURES", "../shared/fixtures", "fixtures"); }
/* models/ sits beside fixtures/ in ../shared, so a DOPPLER_FIXTURES pointing elsewhere implies its models */
const char *dg_test_models(void)
{
    const char *fx = getenv("DOPPLER_FIXTURES"), *m = getenv("DOPPLER_MODELS");
    static char beside[4096];
    if ((!m || !*m) && fx && *fx) {
        snprintf(beside, sizeof beside, "%s/../models", fx);
        return shared_dir("DOPPLER_MODELS", beside, "models");
    }
    return shared_dir("DOPPLER_MODELS", "../shared/models", "models");
}

const char *dg_test_tmpdir(void)
{
    static char dir[512];
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/dg-tests-%d", (int)getpid());
        mkdir(tmp_root, 0700);
    }
    snprintf(dir, sizeof dir, "%s/%d", tmp_root, ++tmp_seq);
    mkdir(dir, 0700);
    return dir;
}

char *dg_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int cmp_tests(const void *a, const void *b)
{
    const struct test_entry *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    bool list = argc > 1 && strcmp(argv[1], "--list") == 0;
    qsort(tests, (size_t)n_tests, sizeof *tests, cmp_tests);
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < n_tests; i++) {
        bool match = argc <= 1 + list;
        for (int a = 1 + list; a < argc && !match; a++)
            match = strstr(tests[i].name, argv[a]) || strstr(tests[i].file, argv[a]);
        if (!match)
            continue;
        if (list) {
            printf("%s (%s)\n", tests[i].name, tests[i].file);
            continue;
        }
        cur_failed = cur_skipped = false;
        dg_clear_error();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (cur_failed) {
            failed++;
            printf("not ok %s (%.0f ms)\n", tests[i].name, ms);
        } else if (cur_skipped) {
            skipped++;
            printf("ok %s # SKIP %s\n", tests[i].name, skip_reason);
        } else {
            passed++;
            printf("ok %s (%.0f ms)\n", tests[i].name, ms);
        }
    }
    if (tmp_root[0] && !getenv("DG_TEST_KEEP"))
        nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (!list)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    free(tests);
    return failed ? 1 : 0;
}
