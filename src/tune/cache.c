/* cache.c: the tuner's cache files. One JSON file per (GL renderer, driver version, model shape
 * signature, kernel path, kernel sources) under $XDG_CACHE_HOME/doppler-gl/tuner/, named by their SHA-256;
 * written atomically; read back as untrusted input (every field checked, errors name the file and field);
 * and the winners applied to a kernel plan. */
/* snprintf truncation into fixed name fields is intended (lengths are validated where it matters). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/readfile.h"
#include "compat/compat.h"
#include "core/log.h"
#include "core/paths.h"
#include "tune/tune.h"

#define MAX_FILE (4u << 20)
#define MARKER "doppler_gl_tuner"

static void hex(const unsigned char *md, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void sha_update_str(EVP_MD_CTX *h, const char *s) { EVP_DigestUpdate(h, s, strlen(s) + 1); }

void dg_tune_model_signature(const struct dg_model *m, char sig[65], char *desc, size_t desc_size)
{
    const struct dg_hparams *hp = &m->hp;
    char head[512];
    snprintf(head, sizeof head, "arch %d layers %d hidden %d ffn %d heads %d/%d head_dim %d vocab %d experts %d/%d x %d",
             (int)hp->arch, hp->n_layers, hp->hidden, hp->intermediate, hp->n_heads, hp->n_kv_heads, hp->head_dim,
             hp->vocab, hp->n_experts, hp->n_experts_used, hp->moe_intermediate);
    if (desc)
        snprintf(desc, desc_size, "%s: %d layers, hidden %d, ffn %d, heads %d/%d x %d, vocab %d, %d tensors",
                 dg_arch_name(hp->arch), hp->n_layers, hp->hidden, hp->intermediate, hp->n_heads, hp->n_kv_heads,
                 hp->head_dim, hp->vocab, m->n_tensors);
    sig[0] = 0;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h);
        return;
    }
    sha_update_str(h, head);
    for (int i = 0; i < m->n_tensors; i++) {
        const struct dg_tensor *t = &m->tensors[i];
        char line[DG_TENSOR_NAME_MAX + 128];
        int n = snprintf(line, sizeof line, "%s %d", t->name, (int)t->dtype);
        for (int d = 0; d < t->ndim && n > 0 && (size_t)n < sizeof line; d++)
            n += snprintf(line + n, sizeof line - (size_t)n, " %lld", (long long)t->shape[d]);
        sha_update_str(h, line);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_DigestFinal_ex(h, md, &len) && len >= 32)
        hex(md, 32, sig);
    EVP_MD_CTX_free(h);
}

/* The kernels' sources (registry and the tuned kernels' GLSL): winners measured on other kernel code are
 * stale, so they are part of the key. */
static void hash_sources(EVP_MD_CTX *h)
{
    static const char *const files[] = {"kernel-paths/registry.json", "glsl/common.inc.glsl", "glsl/wdecode.inc.glsl",
                                        "glsl/matmul.glsl", "glsl/rmsnorm.glsl", "glsl/add_rmsnorm.glsl",
                                        "glsl/attention.glsl", "glsl/attn_combine.glsl", NULL};
    for (int i = 0; files[i]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dg_data_dir(), files[i]);
        sha_update_str(h, files[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            EVP_DigestUpdate(h, buf, n);
        fclose(f);
    }
}

bool dg_tune_dir(char *out, size_t n)
{
    const char *env = getenv("DOPPLER_GL_TUNER_DIR"), *c = dg_cache_dir();
    if (env && *env)
        return snprintf(out, n, "%s", env) < (int)n;
    return c && snprintf(out, n, "%s/tuner", c) < (int)n;
}

bool dg_tune_cache_file(const struct dg_gl_caps *caps, const struct dg_model *m, const char *path_id, char *out,
                        size_t out_size)
{
    char dir[4096];
    char sig[65];
    dg_tune_model_signature(m, sig, NULL, 0);
    if (!dg_tune_dir(dir, sizeof dir) || !sig[0])
        return false;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%d", DG_TUNE_FORMAT);
    bool ok = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL);
    if (ok) {
        sha_update_str(h, fmt);
        sha_update_str(h, caps->renderer);
        sha_update_str(h, caps->version);
        sha_update_str(h, sig);
        sha_update_str(h, path_id);
        hash_sources(h);
        ok = EVP_DigestFinal_ex(h, md, &len) && len >= 16;
    }
    EVP_MD_CTX_free(h);
    if (!ok)
        return false;
    char name[33];
    hex(md, 16, name);
    return snprintf(out, out_size, "%s/%s.json", dir, name) < (int)out_size;
}

/* ---- JSON ---- */

static cJSON *knobset_json(const struct dg_tune_knobset *ks)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "entry", ks->entry);
    cJSON *k = cJSON_AddObjectToObject(o, "knobs");
    for (int i = 0; i < ks->n_knobs; i++)
        cJSON_AddStringToObject(k, ks->knobs[i].name, ks->knobs[i].value);
    return o;
}

cJSON *dg_tune_result_json(const struct dg_tune_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, MARKER, DG_TUNE_FORMAT);
    cJSON_AddStringToObject(o, "renderer", r->renderer);
    cJSON_AddStringToObject(o, "gl_version", r->gl_version);
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "model_signature", r->signature);
    cJSON_AddStringToObject(o, "model_shape", r->shape_desc);
    cJSON_AddStringToObject(o, "kernel_path", r->path_id);
    cJSON_AddStringToObject(o, "kernel_profile", r->profile);
    cJSON_AddStringToObject(o, "timing_source", r->timing_source);
    cJSON_AddNumberToObject(o, "prompt_tokens", r->prompt);
    cJSON_AddNumberToObject(o, "repetitions", r->reps);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON *e = cJSON_AddObjectToObject(o, "end_to_end");
    cJSON_AddBoolToObject(e, "checked", r->e2e_checked);
    cJSON_AddNumberToObject(e, "baseline_tok_s", r->e2e_base_tok_s);
    cJSON_AddNumberToObject(e, "winners_tok_s", r->e2e_tuned_tok_s);
    cJSON_AddBoolToObject(e, "reverted_to_baseline", r->e2e_reverted);
    cJSON *a = cJSON_AddArrayToObject(o, "steps");
    for (int t = 0; t < r->n_targets; t++) {
        const struct dg_tune_target *tg = &r->targets[t];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "kernel", tg->kernel);
        cJSON_AddStringToObject(s, "role", tg->role);
        cJSON_AddStringToObject(s, "shape", tg->shape);
        cJSON_AddNumberToObject(s, "calls_per_token", tg->calls);
        cJSON_AddItemToObject(s, "winner", knobset_json(&tg->cand[tg->winner].ks));
        cJSON_AddBoolToObject(s, "winner_is_baseline", tg->winner == 0);
        cJSON_AddNumberToObject(s, "baseline_us", tg->cand[0].us);
        cJSON_AddNumberToObject(s, "winner_us", tg->cand[tg->winner].us);
        cJSON *cs = cJSON_AddArrayToObject(s, "candidates");
        for (int i = 0; i < tg->n_cand; i++) {
            const struct dg_tune_candidate *c = &tg->cand[i];
            cJSON *co = knobset_json(&c->ks);
            cJSON_AddStringToObject(co, "status", dg_tune_status_name(c->status));
            cJSON_AddNumberToObject(co, "us", c->us);
            cJSON_AddNumberToObject(co, "max_rel_err", c->max_err);
            if (c->why[0])
                cJSON_AddStringToObject(co, "why", c->why);
            cJSON_AddItemToArray(cs, co);
        }
        cJSON_AddItemToArray(a, s);
    }
    return o;
}

static dg_status mkdirs(const char *dir)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return dg_fail(DG_E_IO, "%s: path too long", dir);
    for (char *s = p + 1;; s++)
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return dg_fail(DG_E_IO, "%s: cannot create the folder: %s", p, strerror(errno));
            *s = c;
            if (!c)
                break;
        }
    return DG_OK;
}

dg_status dg_tune_save(struct dg_tune_result *r, const struct dg_gl_caps *caps, const struct dg_model *m)
{
    char file[4096];
    if (!dg_tune_cache_file(caps, m, r->path_id, file, sizeof file))
        return dg_fail(DG_E_IO, "tune: no cache folder (set XDG_CACHE_HOME or HOME)");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    *strrchr(dir, '/') = 0;
    dg_status st = mkdirs(dir);
    if (st)
        return st;
    cJSON *o = dg_tune_result_json(r);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return dg_fail(DG_E_NOMEM, "%s: out of memory", file);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON's buffer has room for the terminator: write len + 1 */
    st = dg_compat_write_atomic(file, text, len + 1);
    free(text);
    if (!st)
        snprintf(r->file, sizeof r->file, "%s", file);
    return st;
}

static dg_status get_string(const char *file, const char *field, const cJSON *o, const char *key, char *dst, size_t n,
                            bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v && !required) {
        dst[0] = 0;
        return DG_OK;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return dg_fail(DG_E_FORMAT, "%s: %s%s: expected a string of at most %zu characters", file, field, key, n - 1);
    snprintf(dst, n, "%s", v->valuestring);
    return DG_OK;
}

/* Knob names: [A-Z0-9_]; values: a decimal number (what the kernels' #defines take). */
static bool good_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static bool good_value(const char *s)
{
    if (!*s || strlen(s) > 24)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == '-'))
            return false;
    return true;
}

static bool good_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

static dg_status get_knobset(const char *file, const char *field, const cJSON *o, struct dg_tune_knobset *ks)
{
    memset(ks, 0, sizeof *ks);
    if (!cJSON_IsObject(o))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected an object with entry and knobs", file, field);
    char f[160];
    snprintf(f, sizeof f, "%s.", field);
    dg_status st = get_string(file, f, o, "entry", ks->entry, sizeof ks->entry, true);
    if (st)
        return st;
    if (!good_word(ks->entry))
        return dg_fail(DG_E_FORMAT, "%s: %s.entry: \"%s\" is not an entry name", file, field, ks->entry);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "knobs");
    if (!cJSON_IsObject(k))
        return dg_fail(DG_E_FORMAT, "%s: %s.knobs: expected an object of knob: value", file, field);
    const cJSON *it;
    cJSON_ArrayForEach(it, k)
    {
        if (ks->n_knobs == DG_TUNE_MAX_KNOBS)
            return dg_fail(DG_E_FORMAT, "%s: %s.knobs: more than %d knobs", file, field, DG_TUNE_MAX_KNOBS);
        if (!it->string || strlen(it->string) >= DG_KP_NAME || !good_name(it->string))
            return dg_fail(DG_E_FORMAT, "%s: %s.knobs: \"%s\" is not a knob name", file, field,
                           it->string ? it->string : "");
        if (!cJSON_IsString(it) || !good_value(it->valuestring))
            return dg_fail(DG_E_FORMAT, "%s: %s.knobs.%s: expected a number as a string", file, field, it->string);
        snprintf(ks->knobs[ks->n_knobs].name, DG_KP_NAME, "%s", it->string);
        snprintf(ks->knobs[ks->n_knobs].value, DG_KP_VALUE, "%s", it->valuestring);
        ks->n_knobs++;
    }
    return DG_OK;
}

static enum dg_tune_status status_from(const char *s)
{
    for (int i = DG_TC_UNTESTED; i <= DG_TC_FAILED; i++)
        if (!strcmp(s, dg_tune_status_name((enum dg_tune_status)i)))
            return (enum dg_tune_status)i;
    return DG_TC_UNTESTED;
}

dg_status dg_tune_load(const char *file, struct dg_tune_result *out)
{
    memset(out, 0, sizeof *out);
    char *text = dg_read_small_file(file, MAX_FILE);
    if (!text)
        return dg_fail(DG_E_IO, "%s: cannot read (missing, unreadable or larger than 4 MiB)", file);
    cJSON *o = cJSON_Parse(text);
    free(text);
    dg_status st = DG_OK;
    if (!cJSON_IsObject(o)) {
        st = dg_fail(DG_E_FORMAT, "%s: not a JSON object", file);
        goto out;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, MARKER);
    if (!cJSON_IsNumber(fmt) || fmt->valuedouble != DG_TUNE_FORMAT) {
        st = dg_fail(DG_E_FORMAT, "%s: %s: expected format %d", file, MARKER, DG_TUNE_FORMAT);
        goto out;
    }
    if ((st = get_string(file, "", o, "renderer", out->renderer, sizeof out->renderer, true)) ||
        (st = get_string(file, "", o, "gl_version", out->gl_version, sizeof out->gl_version, true)) ||
        (st = get_string(file, "", o, "model", out->model, sizeof out->model, false)) ||
        (st = get_string(file, "", o, "model_signature", out->signature, sizeof out->signature, true)) ||
        (st = get_string(file, "", o, "model_shape", out->shape_desc, sizeof out->shape_desc, false)) ||
        (st = get_string(file, "", o, "kernel_path", out->path_id, sizeof out->path_id, true)) ||
        (st = get_string(file, "", o, "kernel_profile", out->profile, sizeof out->profile, false)) ||
        (st = get_string(file, "", o, "timing_source", out->timing_source, sizeof out->timing_source, false)))
        goto out;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
    if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) > DG_TUNE_MAX_TARGETS) {
        st = dg_fail(DG_E_FORMAT, "%s: steps: expected an array of at most %d steps", file, DG_TUNE_MAX_TARGETS);
        goto out;
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        struct dg_tune_target *t = &out->targets[out->n_targets];
        char f[64];
        snprintf(f, sizeof f, "steps[%d].", out->n_targets);
        if (!cJSON_IsObject(s)) {
            st = dg_fail(DG_E_FORMAT, "%s: steps[%d]: expected an object", file, out->n_targets);
            goto out;
        }
        if ((st = get_string(file, f, s, "kernel", t->kernel, sizeof t->kernel, true)) ||
            (st = get_string(file, f, s, "role", t->role, sizeof t->role, true)) ||
            (st = get_string(file, f, s, "shape", t->shape, sizeof t->shape, false)))
            goto out;
        if (!good_word(t->kernel) || !good_word(t->role)) {
            st = dg_fail(DG_E_FORMAT, "%s: %skernel/role: \"%s\"/\"%s\" are not names", file, f, t->kernel, t->role);
            goto out;
        }
        char wf[80];
        snprintf(wf, sizeof wf, "%swinner", f);
        if ((st = get_knobset(file, wf, cJSON_GetObjectItemCaseSensitive(s, "winner"), &t->cand[0].ks)))
            goto out;
        t->cand[0].status = DG_TC_OK;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(s, "winner_us");
        t->cand[0].us = cJSON_IsNumber(u) ? u->valuedouble : 0;
        t->n_cand = 1;
        /* the candidates are reported, not used: read what is well-formed */
        const cJSON *cs = cJSON_GetObjectItemCaseSensitive(s, "candidates"), *c;
        cJSON_ArrayForEach(c, cs)
        {
            if (t->n_cand == DG_TUNE_MAX_CAND)
                break;
            struct dg_tune_candidate *cd = &t->cand[t->n_cand];
            if (get_knobset(file, "candidate", c, &cd->ks) != DG_OK) {
                dg_clear_error();
                continue;
            }
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "status");
            cd->status = cJSON_IsString(v) ? status_from(v->valuestring) : DG_TC_UNTESTED;
            v = cJSON_GetObjectItemCaseSensitive(c, "us");
            cd->us = cJSON_IsNumber(v) ? v->valuedouble : 0;
            t->n_cand++;
        }
        out->n_targets++;
    }
    snprintf(out->file, sizeof out->file, "%s", file);
out:
    cJSON_Delete(o);
    return st;
}

bool dg_tune_file_is_ours(const char *file, char sig[65])
{
    if (sig)
        sig[0] = 0;
    char *text = dg_read_small_file(file, MAX_FILE);
    if (!text)
        return false;
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, MARKER);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "model_signature");
    bool ok = cJSON_IsNumber(fmt);
    if (ok && sig && cJSON_IsString(s) && strlen(s->valuestring) == 64)
        snprintf(sig, 65, "%s", s->valuestring);
    cJSON_Delete(o);
    return ok;
}

void dg_tune_apply_cached(struct dg_kplan *plan, const struct dg_gl_caps *caps, const struct dg_model *m,
                          const char *path_id)
{
    plan->n_tuned = 0;
    plan->tuned_file[0] = 0;
    if (!strcmp(plan->tuner.value, "false"))
        return;
    char file[4096];
    struct stat stt;
    if (!dg_tune_cache_file(caps, m, path_id, file, sizeof file) || stat(file, &stt) != 0)
        return;
    struct dg_tune_result *r = malloc(sizeof *r);
    if (!r)
        return;
    dg_status st = dg_tune_load(file, r);
    char sig[65];
    dg_tune_model_signature(m, sig, NULL, 0);
    if (!st && (strcmp(r->renderer, caps->renderer) || strcmp(r->gl_version, caps->version) ||
                strcmp(r->signature, sig) || strcmp(r->path_id, path_id)))
        st = dg_fail(DG_E_FORMAT, "%s: recorded for another device, driver, model or kernel path", file);
    if (st) {
        dg_warn_once("tuner-cache", "ignoring the tuner cache: %s (rerun `doppler-gl tune --force`)", dg_last_error());
        dg_clear_error();
        free(r);
        return;
    }
    for (int t = 0; t < r->n_targets && plan->n_tuned < DG_KP_MAX_TUNED; t++) {
        const struct dg_tune_knobset *ks = &r->targets[t].cand[0].ks;
        /* a hand-edited or damaged file must not make programs fail to build: sizes within the device */
        bool ok = true;
        for (int i = 0; i < ks->n_knobs; i++) {
            long v = strtol(ks->knobs[i].value, NULL, 10);
            if (v < 1 || v > 65536 || (v & (v - 1)) || (!strcmp(ks->knobs[i].name, "WG_SIZE") && v > caps->max_invocations))
                ok = false;
        }
        if (!ok) {
            dg_warn_once("tuner-knobs", "%s: steps[%d] (%s): knob values outside the device's limits; not used", file, t,
                         r->targets[t].role);
            continue;
        }
        struct dg_kp_tuned *d = &plan->tuned[plan->n_tuned++];
        memset(d, 0, sizeof *d);
        snprintf(d->kernel, sizeof d->kernel, "%s", r->targets[t].kernel);
        snprintf(d->role, sizeof d->role, "%s", r->targets[t].role);
        snprintf(d->entry, sizeof d->entry, "%s", ks->entry);
        for (int i = 0; i < ks->n_knobs && i < (int)(sizeof d->knobs / sizeof d->knobs[0]); i++)
            d->knobs[d->n_knobs++] = ks->knobs[i];
    }
    snprintf(plan->tuned_file, sizeof plan->tuned_file, "%s", file);
    DG_VERBOSE("kernel plan: %d tuned decode steps from %s", plan->n_tuned, file);
    free(r);
}
