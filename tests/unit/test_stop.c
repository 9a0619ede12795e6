/* test_stop.c: EOS ids and the streaming stop-string matcher (src/pipe/stop.c). */
#include <stdlib.h>
#include <string.h>

#include "pipe/stop.h"
#include "test.h"

/* Feeds the pieces in turn; returns everything released (flushed at the end) in buf. */
static bool run_pieces(struct dg_stop *s, const char *const *pieces, int n, char *buf, size_t cap, int *stop_piece)
{
    size_t used = 0;
    *stop_piece = -1;
    for (int i = 0; i < n; i++) {
        const char *o;
        size_t ol;
        bool stopped;
        if (dg_stop_feed(s, pieces[i], strlen(pieces[i]), &o, &ol, &stopped) != DG_OK)
            return false;
        if (used + ol >= cap)
            return false;
        memcpy(buf + used, o, ol);
        used += ol;
        if (stopped && *stop_piece < 0)
            *stop_piece = i;
    }
    const char *o;
    size_t ol;
    dg_stop_flush(s, &o, &ol);
    if (used + ol >= cap)
        return false;
    memcpy(buf + used, o, ol);
    used += ol;
    buf[used] = 0;
    return true;
}

DG_TEST(stop_string_split_across_tokens_is_trimmed)
{
    const char *stops[] = {"\nUser:", "###"};
    struct dg_stop *s;
    CHECK_OK(dg_stop_create(NULL, 0, stops, 2, &s));
    if (!s)
        return;
    const char *o;
    size_t ol;
    bool st;
    CHECK_OK(dg_stop_feed(s, "Hello", 5, &o, &ol, &st));
    CHECK(ol == 5 && !memcmp(o, "Hello", 5) && !st);
    CHECK_OK(dg_stop_feed(s, " world\nUs", 9, &o, &ol, &st));
    CHECK_MSG(ol == 6 && !memcmp(o, " world", 6) && !st, "'\\nUs' must be held back: got %zu bytes", ol);
    CHECK_OK(dg_stop_feed(s, "er", 2, &o, &ol, &st));
    CHECK(ol == 0 && !st);
    CHECK_OK(dg_stop_feed(s, ": hi", 4, &o, &ol, &st));
    CHECK(ol == 0 && st);
    CHECK_OK(dg_stop_feed(s, "more", 4, &o, &ol, &st));
    CHECK(ol == 0 && st);
    dg_stop_flush(s, &o, &ol);
    CHECK(ol == 0);

    /* a false start is released once it cannot be a stop string any more */
    dg_stop_reset(s);
    CHECK_OK(dg_stop_feed(s, "a\nUs", 4, &o, &ol, &st));
    CHECK(ol == 1 && o[0] == 'a');
    CHECK_OK(dg_stop_feed(s, "ually", 5, &o, &ol, &st));
    CHECK(ol == 8 && !memcmp(o, "\nUsually", 8) && !st);
    /* at the end, a held partial stop string is printed */
    CHECK_OK(dg_stop_feed(s, " ##", 3, &o, &ol, &st));
    CHECK(ol == 1);
    dg_stop_flush(s, &o, &ol);
    CHECK(ol == 2 && !memcmp(o, "##", 2));

    /* the earliest of several stop strings wins, even when another one completes first in the text */
    dg_stop_reset(s);
    const char *p[] = {"x###y\nUser:"};
    char buf[64];
    int sp;
    CHECK(run_pieces(s, p, 1, buf, sizeof buf, &sp));
    CHECK(strcmp(buf, "x") == 0 && sp == 0);
    dg_stop_destroy(s);
}

DG_TEST(stop_strings_under_random_splits)
{
    const char *stops[] = {"</s>", "\n\nQ:", "ab"};
    struct dg_stop *s;
    CHECK_OK(dg_stop_create(NULL, 0, stops, 3, &s));
    if (!s)
        return;
    const char *texts[] = {"caf\xC3\xA9 au lait </s> more", "no stop here: a<b /s> \xF0\x9F\x98\x80 end",
                           "line\n\nQ: next", "xxa\n\nQ</s", "zzzab"};
    const char *want[] = {"caf\xC3\xA9 au lait ", "no stop here: a<b /s> \xF0\x9F\x98\x80 end", "line", "xxa\n\nQ</s",
                          "zzz"};
    unsigned seed = 99;
    for (int t = 0; t < 5; t++)
        for (int trial = 0; trial < 200; trial++) {
            /* cut the text into random pieces, splitting UTF-8 sequences too */
            char pieces[64][64];
            const char *pp[64];
            int n = 0;
            size_t len = strlen(texts[t]), at = 0;
            while (at < len && n < 64) {
                seed = seed * 1103515245u + 12345u;
                size_t k = 1 + (seed >> 16) % 4;
                if (k > len - at)
                    k = len - at;
                memcpy(pieces[n], texts[t] + at, k);
                pieces[n][k] = 0;
                pp[n] = pieces[n];
                n++;
                at += k;
            }
            dg_stop_reset(s);
            char buf[256];
            int sp;
            CHECK(run_pieces(s, pp, n, buf, sizeof buf, &sp));
            CHECK_MSG(strcmp(buf, want[t]) == 0, "text %d trial %d: got '%s'", t, trial, buf);
        }
    dg_stop_destroy(s);
}

DG_TEST(stop_utf8_split_across_tokens_is_printed_whole)
{
    struct dg_stop *s;
    CHECK_OK(dg_stop_create(NULL, 0, NULL, 0, &s));
    if (!s)
        return;
    const char *o;
    size_t ol;
    bool st;
    CHECK_OK(dg_stop_feed(s, "caf\xC3", 4, &o, &ol, &st));
    CHECK(ol == 3);
    CHECK_OK(dg_stop_feed(s, "\xA9!", 2, &o, &ol, &st));
    CHECK(ol == 3 && !memcmp(o, "\xC3\xA9!", 3));
    /* a 4-byte emoji in three pieces */
    CHECK_OK(dg_stop_feed(s, "\xF0", 1, &o, &ol, &st));
    CHECK(ol == 0);
    CHECK_OK(dg_stop_feed(s, "\x9F\x98", 2, &o, &ol, &st));
    CHECK(ol == 0);
    CHECK_OK(dg_stop_feed(s, "\x80", 1, &o, &ol, &st));
    CHECK(ol == 4);
    /* invalid bytes go out at once; an unfinished sequence at the very end comes out at flush */
    CHECK_OK(dg_stop_feed(s, "\xFF\xE2\x82", 3, &o, &ol, &st));
    CHECK(ol == 1 && (unsigned char)o[0] == 0xFF);
    dg_stop_flush(s, &o, &ol);
    CHECK(ol == 2);
    dg_stop_destroy(s);

    CHECK(dg_utf8_complete_prefix("abc", 3) == 3);
    CHECK(dg_utf8_complete_prefix("ab\xC3", 3) == 2);
    CHECK(dg_utf8_complete_prefix("ab\xE2\x82", 4) == 2);
    CHECK(dg_utf8_complete_prefix("ab\xE2\x82\xAC", 5) == 5);
    CHECK(dg_utf8_complete_prefix("\xF0\x9F\x98", 3) == 0);
    CHECK(dg_utf8_complete_prefix("\x80\x80\x80\x80\x80", 5) == 5); /* stray continuation bytes */
    CHECK(dg_utf8_complete_prefix("a\xC0", 2) == 2);                /* never-valid lead */
    CHECK(dg_utf8_complete_prefix("", 0) == 0);
}

DG_TEST(stop_multiple_eos_ids)
{
    /* Llama 3 Instruct declares <|end_of_text|>, <|eom_id|> and <|eot_id|> */
    const uint32_t eos[3] = {128001, 128008, 128009};
    struct dg_stop *s;
    CHECK_OK(dg_stop_create(eos, 3, NULL, 0, &s));
    if (!s)
        return;
    CHECK(dg_stop_is_eos(s, 128009) && dg_stop_is_eos(s, 128001) && !dg_stop_is_eos(s, 128000));
    uint32_t a[5] = {10, 11, 128008, 12, 128001}, b[3] = {1, 2, 3};
    CHECK(dg_stop_first_eos(s, a, 5) == 2);
    CHECK(dg_stop_first_eos(s, b, 3) == -1);
    CHECK(dg_stop_first_eos(s, a + 3, 2) == 1);
    dg_stop_destroy(s);
    const char *bad[] = {""};
    CHECK(dg_stop_create(eos, 3, bad, 1, &s) == DG_E_USAGE && s == NULL);
}
