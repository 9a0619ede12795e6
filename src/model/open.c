/* open.c: dg_model_open picks the model source by what the path is, and dg_model_close releases a model of
 * any source through its priv's close hook. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"

static int exists_in(const char *dir, const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int has_gguf_magic(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

dg_status dg_model_open(const char *path, struct dg_model *m)
{
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dg_fail(DG_E_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        if (exists_in(path, "manifest.json"))
            return dg_model_open_manifest(path, m);
        if (exists_in(path, "config.json"))
            return dg_model_open_hf(path, m);
        return dg_fail(DG_E_FORMAT, "%s: not a model folder: expected manifest.json (doppler-gl) or config.json with "
                       "*.safetensors (Hugging Face)", path);
    }
    if (S_ISREG(sb.st_mode)) {
        size_t n = strlen(path);
        if ((n >= 5 && strcmp(path + n - 5, ".gguf") == 0) || has_gguf_magic(path))
            return dg_model_open_gguf(path, m);
        return dg_fail(DG_E_FORMAT, "%s: not a model: expected a folder (manifest.json or config.json) or a .gguf "
                       "file", path);
    }
    return dg_fail(DG_E_FORMAT, "%s: not a regular file or folder", path);
}

void dg_model_close(struct dg_model *m)
{
    if (!m)
        return;
    struct dg_model_priv *p = m->priv;
    if (p && p->close)
        p->close(m);
    memset(m, 0, sizeof *m);
}
