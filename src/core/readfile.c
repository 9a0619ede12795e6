/* readfile.c: dg_read_small_file, the bounded whole-file read the program/tuner/compat caches share. */
#include "core/readfile.h"

#include <stdio.h>
#include <stdlib.h>

char *dg_read_small_file(const char *path, size_t max_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max_bytes + 1);
    size_t n = buf ? fread(buf, 1, max_bytes + 1, f) : 0;
    fclose(f);
    if (!buf || n > max_bytes) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}
