/* report.c: see report.h. */
#include "cli/report.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/version.h"

void dg_report_sanitize(const char *in, char *out, size_t n)
{
    size_t j = 0;
    bool dash = false;
    for (const char *p = in; *p && j + 2 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) || c == '.' || c == '_') {
            if (dash && j > 0)
                out[j++] = '-';
            dash = false;
            if (j + 1 < n)
                out[j++] = (char)tolower(c);
        } else {
            dash = true;
        }
    }
    while (j > 0 && (out[j - 1] == '.' || out[j - 1] == '-'))
        j--;
    out[j] = 0;
    /* A leading '.' would make a hidden file. */
    while (out[0] == '.')
        memmove(out, out + 1, strlen(out));
    if (!out[0])
        snprintf(out, n, "unknown");
}

void dg_report_gpu_name(const struct dg_gl_caps *c, char *out, size_t n)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", c->renderer);
    char *cut = strstr(tmp, " (");
    if (cut && cut != tmp)
        *cut = 0;
    cut = strchr(tmp, '/');
    if (cut && cut != tmp)
        *cut = 0;
    dg_report_sanitize(tmp, out, n);
}

void dg_report_driver(const struct dg_gl_caps *c, char *out, size_t n)
{
    const char *v = c->version;
    if (!strncmp(v, "OpenGL ES ", 10)) {
        v += 10;
        while (*v && *v != ' ')
            v++;
        while (*v == ' ')
            v++;
    }
    snprintf(out, n, "%s", *v ? v : c->vendor);
}

void dg_report_model_name(const char *path, char *out, size_t n)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/')
        tmp[--l] = 0;
    char *base = strrchr(tmp, '/');
    base = base ? base + 1 : tmp;
    l = strlen(base);
    if (l > 5 && !strcasecmp(base + l - 5, ".gguf"))
        base[l - 5] = 0;
    dg_report_sanitize(base, out, n);
}

static bool is_matrix(const struct dg_tensor *t) { return t->ndim >= 2; }

const char *dg_report_quant_label(const struct dg_model *m)
{
    uint64_t bytes[DG_DT_COUNT] = {0};
    for (int i = 0; i < m->n_tensors; i++)
        if (is_matrix(&m->tensors[i]) && (unsigned)m->tensors[i].dtype < DG_DT_COUNT)
            bytes[m->tensors[i].dtype] += m->tensors[i].nbytes;
    int best = DG_DT_F32;
    for (int d = 0; d < DG_DT_COUNT; d++)
        if (bytes[d] > bytes[best])
            best = d;
    if (bytes[DG_DT_Q4_K] && (bytes[DG_DT_Q6_K] || bytes[DG_DT_Q5_0] || bytes[DG_DT_Q8_0]))
        return "q4_k_m";
    return dg_dtype_info((enum dg_dtype)best)->name;
}

uint64_t dg_report_params(const struct dg_model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        n += (uint64_t)dg_tensor_nelems(&m->tensors[i]);
    return n;
}

cJSON *dg_report_device_json(const struct dg_gl *gl)
{
    const struct dg_gl_caps *c = dg_gl_caps(gl);
    char driver[256], gpu[96];
    dg_report_driver(c, driver, sizeof driver);
    dg_report_gpu_name(c, gpu, sizeof gpu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "renderer", c->renderer);
    cJSON_AddStringToObject(o, "name", gpu);
    cJSON_AddStringToObject(o, "vendor", c->vendor);
    cJSON_AddStringToObject(o, "gl_version", c->version);
    cJSON_AddStringToObject(o, "glsl_version", c->glsl_version);
    cJSON_AddStringToObject(o, "driver", driver);
    cJSON_AddStringToObject(o, "platform", dg_gl_platform_name(gl));
    cJSON_AddStringToObject(o, "device", dg_gl_device_name(gl));
    cJSON_AddBoolToObject(o, "software", c->is_software);
    cJSON_AddBoolToObject(o, "subgroups", c->subgroup);
    cJSON_AddNumberToObject(o, "subgroup_size", c->subgroup ? c->subgroup_size : 0);
    cJSON_AddBoolToObject(o, "f16_arith", c->f16_arith);
    cJSON_AddBoolToObject(o, "timer_query", c->timer_query);
    cJSON_AddBoolToObject(o, "time_elapsed_works", c->time_elapsed_works);
    cJSON_AddStringToObject(o, "timing_source", dg_gl_timing_source(gl));
    cJSON_AddNumberToObject(o, "max_ssbo_block_size", (double)c->max_ssbo_block_size);
    cJSON_AddNumberToObject(o, "max_shared_memory", c->max_shared_memory);
    cJSON_AddNumberToObject(o, "max_invocations", c->max_invocations);
    return o;
}

cJSON *dg_report_model_json(const struct dg_model *m)
{
    const struct dg_hparams *hp = &m->hp;
    char name[128];
    dg_report_model_name(m->path, name, sizeof name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "arch", dg_arch_name(hp->arch));
    cJSON_AddStringToObject(o, "source", m->source == DG_SRC_HF ? "huggingface" : m->source == DG_SRC_GGUF ? "gguf"
                                                                                                          : "doppler-gl");
    cJSON_AddNumberToObject(o, "layers", hp->n_layers);
    cJSON_AddNumberToObject(o, "hidden", hp->hidden);
    cJSON_AddNumberToObject(o, "heads", hp->n_heads);
    cJSON_AddNumberToObject(o, "kv_heads", hp->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(o, "ffn", hp->intermediate);
    cJSON_AddNumberToObject(o, "vocab", hp->vocab);
    cJSON_AddNumberToObject(o, "params", (double)dg_report_params(m));
    cJSON_AddBoolToObject(o, "tied_embeddings", hp->tie_embeddings);
    if (hp->n_experts) {
        cJSON_AddNumberToObject(o, "experts", hp->n_experts);
        cJSON_AddNumberToObject(o, "experts_used", hp->n_experts_used);
        cJSON_AddNumberToObject(o, "moe_ffn", hp->moe_intermediate);
    }
    if (hp->sliding_window)
        cJSON_AddNumberToObject(o, "sliding_window", hp->sliding_window);
    return o;
}

cJSON *dg_report_quant_json(const struct dg_model *m)
{
    uint64_t bytes[DG_DT_COUNT] = {0}, params[DG_DT_COUNT] = {0};
    int tensors[DG_DT_COUNT] = {0};
    uint64_t total_b = 0, total_p = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct dg_tensor *t = &m->tensors[i];
        if ((unsigned)t->dtype >= DG_DT_COUNT)
            continue;
        bytes[t->dtype] += t->nbytes;
        params[t->dtype] += (uint64_t)dg_tensor_nelems(t);
        tensors[t->dtype]++;
        total_b += t->nbytes;
        total_p += (uint64_t)dg_tensor_nelems(t);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", dg_report_quant_label(m));
    cJSON_AddNumberToObject(o, "bytes", (double)total_b);
    cJSON_AddNumberToObject(o, "bits_per_weight", total_p ? 8.0 * (double)total_b / (double)total_p : 0);
    cJSON *d = cJSON_AddObjectToObject(o, "dtypes");
    for (int t = 0; t < DG_DT_COUNT; t++) {
        if (!tensors[t])
            continue;
        cJSON *e = cJSON_AddObjectToObject(d, dg_dtype_info((enum dg_dtype)t)->name);
        cJSON_AddNumberToObject(e, "tensors", tensors[t]);
        cJSON_AddNumberToObject(e, "params", (double)params[t]);
        cJSON_AddNumberToObject(e, "bytes", (double)bytes[t]);
    }
    return o;
}

void dg_report_date(char *date, size_t dn, char *iso, size_t in)
{
    time_t now = time(NULL);
    struct tm lt, ut;
    localtime_r(&now, &lt);
    gmtime_r(&now, &ut);
    if (date)
        strftime(date, dn, "%Y-%m-%d", &lt);
    if (iso)
        strftime(iso, in, "%Y-%m-%dT%H:%M:%SZ", &ut);
}

static dg_status mkdirs(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return dg_fail(DG_E_IO, "%s: path too long", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return dg_fail(DG_E_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return dg_fail(DG_E_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return dg_fail(DG_E_IO, "%s: not a folder", tmp);
    return DG_OK;
}

static dg_status write_tmp(const char *tmp, const char *text)
{
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return dg_fail(DG_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return dg_fail(DG_E_IO, "%s: write failed: %s", tmp, strerror(errno));
    }
    return DG_OK;
}

dg_status dg_report_write_new(const char *dir, const char *stem, const char *ext, const char *text, char *path_out,
                              size_t path_n)
{
    dg_status st = mkdirs(dir);
    if (st)
        return st;
    char tmp[4352], dst[4352];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp-%ld", dir, stem, (long)getpid());
    if ((st = write_tmp(tmp, text)))
        return st;
    for (int k = 1; k < 1000; k++) {
        if (k == 1)
            snprintf(dst, sizeof dst, "%s/%s.%s", dir, stem, ext);
        else
            snprintf(dst, sizeof dst, "%s/%s-%d.%s", dir, stem, k, ext);
        /* link() fails with EEXIST instead of replacing, so concurrent runs cannot clobber each other. */
        if (link(tmp, dst) == 0) {
            unlink(tmp);
            snprintf(path_out, path_n, "%s", dst);
            return DG_OK;
        }
        if ((errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP) && access(dst, F_OK) != 0) {
            /* No hard links on this file system: rename, checking for an earlier file first. */
            if (rename(tmp, dst) == 0) {
                snprintf(path_out, path_n, "%s", dst);
                return DG_OK;
            }
            break;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    unlink(tmp);
    return dg_fail(DG_E_IO, "%s: cannot write: %s", dst, strerror(e));
}

dg_status dg_report_write_file(const char *path, const char *text)
{
    char tmp[4352];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    dg_status st = write_tmp(tmp, text);
    if (st)
        return st;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dg_fail(DG_E_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return DG_OK;
}
