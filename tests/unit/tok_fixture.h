/* tok_fixture.h: shared helpers of the tokenizer tests: the fixture archive extracted once per run, each
 * tokenizer loaded once per run, and reading the <name>.cases.json files. */
#ifndef DG_TESTS_TOK_FIXTURE_H
#define DG_TESTS_TOK_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "tok/tokenizer.h"

/* The folder holding gemma3/, llama3/, mistral/, qwen3/ (extracted with tar -xJf on first use); NULL after
 * marking the test skipped or failed. */
const char *tokt_dir(void);
/* The tokenizer of one fixture family, loaded once per run (NULL after a failure has been recorded). */
const struct dg_tokenizer *tokt_get(const char *name);
/* The parsed <name>.cases.json (cached). */
const cJSON *tokt_cases(const char *name);
/* True when ids[0..n) equals the JSON array of numbers; on a difference prints both. */
bool tokt_ids_equal(const char *what, const int32_t *ids, size_t n, const cJSON *arr);

#endif
