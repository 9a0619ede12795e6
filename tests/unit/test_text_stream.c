/* test_text_stream.c: streaming text: UTF-8 split across tokens is printed whole; stop strings split
 * across tokens stop the stream and are not printed; held-back prefixes are released when they turn out
 * not to be a stop string. */
#include "test.h"

#include <string.h>

#include "cli/text_stream.h"

DG_TEST(text_stream_utf8_split_across_tokens)
{
    struct dg_text_stream ts;
    dg_text_stream_init(&ts, NULL, NULL, 0);
    const char euro[] = "\xe2\x82\xac"; /* € in three tokens */
    CHECK(!dg_text_stream_push(&ts, "a", 1));
    CHECK(!dg_text_stream_push(&ts, euro, 1));
    CHECK(ts.all_len == 1);
    CHECK(!dg_text_stream_push(&ts, euro + 1, 1));
    CHECK(ts.all_len == 1);
    CHECK(!dg_text_stream_push(&ts, euro + 2, 1));
    CHECK(ts.all_len == 4 && memcmp(ts.all, "a\xe2\x82\xac", 4) == 0);
    dg_text_stream_free(&ts);
    CHECK(dg_utf8_complete_prefix("ab\xf0\x9f", 4) == 2);
    CHECK(dg_utf8_complete_prefix("ab\xf0\x9f\x98\x80", 6) == 6);
}

DG_TEST(text_stream_stop_string_split_across_tokens)
{
    const char *stops[] = {"\n\nUser:", "###"};
    struct dg_text_stream ts;
    dg_text_stream_init(&ts, NULL, stops, 2);
    CHECK(!dg_text_stream_push(&ts, "Hello.", 6));
    CHECK(!dg_text_stream_push(&ts, "\n", 1));
    CHECK(ts.all_len == 6); /* "\n" held: could start the stop string */
    CHECK(!dg_text_stream_push(&ts, "\nUs", 3));
    CHECK(dg_text_stream_push(&ts, "er: hi", 6));
    dg_text_stream_finish(&ts);
    CHECK(ts.all_len == 6 && memcmp(ts.all, "Hello.", 6) == 0);
    dg_text_stream_free(&ts);

    dg_text_stream_init(&ts, NULL, stops, 2);
    CHECK(!dg_text_stream_push(&ts, "a#", 2));
    CHECK(!dg_text_stream_push(&ts, "#b", 2)); /* "##b" is not "###": released */
    dg_text_stream_finish(&ts);
    CHECK(ts.all_len == 4 && memcmp(ts.all, "a##b", 4) == 0);
    dg_text_stream_free(&ts);
}
