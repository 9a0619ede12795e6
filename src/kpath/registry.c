/* registry.c: loading and checking kernel-paths/registry.json (see kpath.h for what it describes). */
/* snprintf truncation into fixed name fields is intended (lengths are validated where it matters). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/paths.h"
#include "kpath/kpath.h"

static char *slurp(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (len > max) {
            free(buf);
            fclose(f);
            return NULL;
        }
        if (n < 4096)
            break;
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

char *dg_kp_slurp(const char *path, size_t max); /* shared with path.c and plan.c */
char *dg_kp_slurp(const char *path, size_t max) { return slurp(path, max); }

static dg_status copy_str(const char *file, const char *field, const cJSON *v, char *dst, size_t n)
{
    if (!cJSON_IsString(v))
        return dg_fail(DG_E_FORMAT, "%s: %s: expected a string", file, field);
    if (strlen(v->valuestring) >= n)
        return dg_fail(DG_E_FORMAT, "%s: %s: \"%.40s...\" is longer than %zu characters", file, field,
                       v->valuestring, n - 1);
    strcpy(dst, v->valuestring);
    return DG_OK;
}

static const char *const kind_names[] = {"input", "output", "inout", "weight", "table"};

static dg_status parse_kernel(const char *file, const cJSON *j, struct dg_kp_kernel *k)
{
    char f[160];
    dg_status st;
    memset(k, 0, sizeof *k);
    if (strlen(j->string) >= sizeof k->name)
        return dg_fail(DG_E_FORMAT, "%s: kernels: name \"%s\" is too long", file, j->string);
    strcpy(k->name, j->string);
    if (!cJSON_IsObject(j))
        return dg_fail(DG_E_FORMAT, "%s: kernels.%s: expected an object", file, k->name);
    snprintf(f, sizeof f, "kernels.%s.file", k->name);
    if ((st = copy_str(file, f, cJSON_GetObjectItemCaseSensitive(j, "file"), k->file, sizeof k->file)))
        return st;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "description");
    if (d) {
        snprintf(f, sizeof f, "kernels.%s.description", k->name);
        if ((st = copy_str(file, f, d, k->description, sizeof k->description)))
            return st;
    }
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(j, "ops"), *it;
    if (!cJSON_IsArray(ops) || cJSON_GetArraySize(ops) < 1 || cJSON_GetArraySize(ops) > DG_KP_MAX_OPS)
        return dg_fail(DG_E_FORMAT, "%s: kernels.%s.ops: expected an array of 1 to %d op names", file, k->name,
                       DG_KP_MAX_OPS);
    cJSON_ArrayForEach(it, ops)
    {
        snprintf(f, sizeof f, "kernels.%s.ops[%d]", k->name, k->n_ops);
        if ((st = copy_str(file, f, it, k->ops[k->n_ops], DG_KP_NAME)))
            return st;
        k->n_ops++;
    }
    const cJSON *knobs = cJSON_GetObjectItemCaseSensitive(j, "knobs");
    if (knobs && !cJSON_IsObject(knobs))
        return dg_fail(DG_E_FORMAT, "%s: kernels.%s.knobs: expected an object", file, k->name);
    cJSON_ArrayForEach(it, knobs)
    {
        if (k->n_knobs >= DG_KP_MAX_KNOBS)
            return dg_fail(DG_E_FORMAT, "%s: kernels.%s.knobs: more than %d knobs", file, k->name, DG_KP_MAX_KNOBS);
        struct dg_kp_knob *kn = &k->knobs[k->n_knobs++];
        snprintf(f, sizeof f, "kernels.%s.knobs.%s", k->name, it->string);
        if (strlen(it->string) >= sizeof kn->name)
            return dg_fail(DG_E_FORMAT, "%s: %s: name too long", file, f);
        strcpy(kn->name, it->string);
        if ((st = copy_str(file, f, it, kn->def, sizeof kn->def)))
            return st;
        kn->is_auto = strcmp(kn->def, "auto") == 0;
    }
    const cJSON *fd = cJSON_GetObjectItemCaseSensitive(j, "fileDefines");
    cJSON_ArrayForEach(it, fd)
    {
        if (k->n_file_defines >= 4)
            return dg_fail(DG_E_FORMAT, "%s: kernels.%s.fileDefines: more than 4", file, k->name);
        struct dg_kp_const_def *c = &k->file_defines[k->n_file_defines++];
        snprintf(f, sizeof f, "kernels.%s.fileDefines.%s", k->name, it->string);
        if (strlen(it->string) >= sizeof c->name)
            return dg_fail(DG_E_FORMAT, "%s: %s: name too long", file, f);
        strcpy(c->name, it->string);
        if ((st = copy_str(file, f, it, c->value, sizeof c->value)))
            return st;
    }
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(j, "readsOutputWhen");
    if (rw && (st = copy_str(file, "readsOutputWhen", rw, k->reads_output_when, sizeof k->reads_output_when)))
        return st;
    const cJSON *binds = cJSON_GetObjectItemCaseSensitive(j, "bindings");
    if (!cJSON_IsArray(binds) || cJSON_GetArraySize(binds) > DG_KP_MAX_BINDINGS)
        return dg_fail(DG_E_FORMAT, "%s: kernels.%s.bindings: expected an array of at most %d", file, k->name,
                       DG_KP_MAX_BINDINGS);
    cJSON_ArrayForEach(it, binds)
    {
        struct dg_kp_binding *b = &k->bindings[k->n_bindings];
        snprintf(f, sizeof f, "kernels.%s.bindings[%d]", k->name, k->n_bindings);
        const cJSON *bp = cJSON_GetObjectItemCaseSensitive(it, "binding");
        if (!cJSON_IsNumber(bp) || bp->valuedouble < 0 || bp->valuedouble > 15)
            return dg_fail(DG_E_FORMAT, "%s: %s.binding: expected an integer in [0, 15]", file, f);
        b->binding = bp->valueint;
        char role_f[200], kind[16];
        snprintf(role_f, sizeof role_f, "%s.role", f);
        if ((st = copy_str(file, role_f, cJSON_GetObjectItemCaseSensitive(it, "role"), b->role, sizeof b->role)))
            return st;
        snprintf(role_f, sizeof role_f, "%s.kind", f);
        if ((st = copy_str(file, role_f, cJSON_GetObjectItemCaseSensitive(it, "kind"), kind, sizeof kind)))
            return st;
        int ki = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(kind, kind_names[i]) == 0)
                ki = i;
        if (ki < 0)
            return dg_fail(DG_E_FORMAT, "%s: %s: \"%s\" is not a binding kind (known: input, output, inout, weight, table)",
                           file, role_f, kind);
        b->kind = (enum dg_kp_bind_kind)ki;
        b->optional = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "optional"));
        b->image_unit = -1;
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(it, "imageUnit"),
                    *ifm = cJSON_GetObjectItemCaseSensitive(it, "imageFormat");
        if (iu || ifm) {
            /* units 0-3: GLES 3.1 guarantees four image uniforms in a compute shader */
            if (!cJSON_IsNumber(iu) || iu->valuedouble != (double)iu->valueint || iu->valueint < 0 || iu->valueint > 3)
                return dg_fail(DG_E_FORMAT, "%s: %s.imageUnit: expected an integer in [0, 3] (with imageFormat)", file, f);
            if (!cJSON_IsString(ifm) || (strcmp(ifm->valuestring, "rgba32ui") && strcmp(ifm->valuestring, "rgba32f")))
                return dg_fail(DG_E_FORMAT, "%s: %s.imageFormat: expected \"rgba32ui\" or \"rgba32f\" (with imageUnit)",
                               file, f);
            if (b->kind == DG_KB_OUTPUT || b->kind == DG_KB_INOUT)
                return dg_fail(DG_E_FORMAT, "%s: %s.imageUnit: image reads are for inputs and weights, not %s bindings",
                               file, f, kind);
            b->image_unit = iu->valueint;
            b->image_format = strcmp(ifm->valuestring, "rgba32ui") == 0 ? DG_KP_IMG_RGBA32UI : DG_KP_IMG_RGBA32F;
        }
        for (int i = 0; i < k->n_bindings; i++) {
            if (k->bindings[i].binding == b->binding || strcmp(k->bindings[i].role, b->role) == 0)
                return dg_fail(DG_E_FORMAT, "%s: %s: binding %d / role %s used twice", file, f, b->binding, b->role);
            if (b->image_unit >= 0 && k->bindings[i].image_unit == b->image_unit)
                return dg_fail(DG_E_FORMAT, "%s: %s: image unit %d used twice", file, f, b->image_unit);
        }
        k->n_bindings++;
    }
    snprintf(f, sizeof f, "kernels.%s.workgroup", k->name);
    if ((st = copy_str(file, f, cJSON_GetObjectItemCaseSensitive(j, "workgroup"), k->workgroup, sizeof k->workgroup)))
        return st;
    snprintf(f, sizeof f, "kernels.%s.bytes", k->name);
    if ((st = copy_str(file, f, cJSON_GetObjectItemCaseSensitive(j, "bytes"), k->bytes, sizeof k->bytes)))
        return st;
    const cJSON *ents = cJSON_GetObjectItemCaseSensitive(j, "entries");
    if (!cJSON_IsObject(ents) || !cJSON_GetObjectItemCaseSensitive(ents, "main"))
        return dg_fail(DG_E_FORMAT, "%s: kernels.%s.entries: expected an object with at least \"main\"", file, k->name);
    cJSON_ArrayForEach(it, ents)
    {
        if (k->n_entries >= DG_KP_MAX_ENTRIES)
            return dg_fail(DG_E_FORMAT, "%s: kernels.%s.entries: more than %d", file, k->name, DG_KP_MAX_ENTRIES);
        struct dg_kp_entry *e = &k->entries[k->n_entries++];
        snprintf(f, sizeof f, "kernels.%s.entries.%s", k->name, it->string);
        if (strlen(it->string) >= sizeof e->name)
            return dg_fail(DG_E_FORMAT, "%s: %s: name too long", file, f);
        strcpy(e->name, it->string);
        char sub[200];
        snprintf(sub, sizeof sub, "%s.define", f);
        if ((st = copy_str(file, sub, cJSON_GetObjectItemCaseSensitive(it, "define"), e->define, sizeof e->define)))
            return st;
        const cJSON *disp = cJSON_GetObjectItemCaseSensitive(it, "dispatch");
        if (!cJSON_IsArray(disp) || cJSON_GetArraySize(disp) != 3)
            return dg_fail(DG_E_FORMAT, "%s: %s.dispatch: expected an array of 3 formulas", file, f);
        for (int i = 0; i < 3; i++) {
            snprintf(sub, sizeof sub, "%s.dispatch[%d]", f, i);
            if ((st = copy_str(file, sub, cJSON_GetArrayItem(disp, i), e->dispatch[i], sizeof e->dispatch[i])))
                return st;
        }
        const cJSON *sb = cJSON_GetObjectItemCaseSensitive(it, "splitBlocks");
        if (sb && !cJSON_IsBool(sb))
            return dg_fail(DG_E_FORMAT, "%s: %s.splitBlocks: expected true or false", file, f);
        e->split_blocks = cJSON_IsTrue(sb);
        const cJSON *ir = cJSON_GetObjectItemCaseSensitive(it, "imageReads");
        if (ir && !cJSON_IsBool(ir))
            return dg_fail(DG_E_FORMAT, "%s: %s.imageReads: expected true or false", file, f);
        e->image_reads = cJSON_IsTrue(ir);
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(it, "requires"), *r;
        cJSON_ArrayForEach(r, req)
        {
            if (e->n_requires >= DG_KP_MAX_REQ)
                return dg_fail(DG_E_FORMAT, "%s: %s.requires: more than %d", file, f, DG_KP_MAX_REQ);
            snprintf(sub, sizeof sub, "%s.requires[%d]", f, e->n_requires);
            if ((st = copy_str(file, sub, r, e->requires[e->n_requires], DG_KP_NAME)))
                return st;
            if (strcmp(e->requires[e->n_requires], "subgroup") != 0)
                return dg_fail(DG_E_FORMAT, "%s: %s: \"%s\" is not a known capability (known: subgroup)", file, sub,
                               e->requires[e->n_requires]);
            e->n_requires++;
        }
    }
    return DG_OK;
}

dg_status dg_kp_registry_load(const char *path, struct dg_kp_registry *reg)
{
    memset(reg, 0, sizeof *reg);
    snprintf(reg->path, sizeof reg->path, "%s", path);
    char *text = slurp(path, 4u << 20);
    if (!text)
        return dg_fail(DG_E_IO, "%s: cannot read the kernel registry (missing or larger than 4 MiB)", path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return dg_fail(DG_E_FORMAT, "%s: not valid JSON (near \"%.30s\")", path,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    dg_status st = DG_OK;
    const cJSON *ks = cJSON_GetObjectItemCaseSensitive(root, "kernels"), *it;
    if (!cJSON_IsObject(ks)) {
        st = dg_fail(DG_E_FORMAT, "%s: kernels: expected an object", path);
        goto out;
    }
    int n = cJSON_GetArraySize(ks);
    reg->kernels = calloc((size_t)(n ? n : 1), sizeof *reg->kernels);
    if (!reg->kernels) {
        st = dg_fail(DG_E_NOMEM, "registry: out of memory");
        goto out;
    }
    cJSON_ArrayForEach(it, ks)
    {
        if ((st = parse_kernel(path, it, &reg->kernels[reg->n_kernels])))
            goto out;
        reg->n_kernels++;
    }
out:
    cJSON_Delete(root);
    if (st)
        dg_kp_registry_free(reg);
    return st;
}

dg_status dg_kp_registry_load_default(struct dg_kp_registry *reg)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/kernel-paths/registry.json", dg_kp_datadir());
    return dg_kp_registry_load(path, reg);
}

void dg_kp_registry_free(struct dg_kp_registry *reg)
{
    free(reg->kernels);
    reg->kernels = NULL;
    reg->n_kernels = 0;
}

const struct dg_kp_kernel *dg_kp_kernel_find(const struct dg_kp_registry *reg, const char *name)
{
    for (int i = 0; i < reg->n_kernels; i++)
        if (strcmp(reg->kernels[i].name, name) == 0)
            return &reg->kernels[i];
    return NULL;
}

const struct dg_kp_entry *dg_kp_entry_find(const struct dg_kp_kernel *k, const char *name)
{
    for (int i = 0; i < k->n_entries; i++)
        if (strcmp(k->entries[i].name, name) == 0)
            return &k->entries[i];
    return NULL;
}

const struct dg_kp_knob *dg_kp_knob_find(const struct dg_kp_kernel *k, const char *name)
{
    for (int i = 0; i < k->n_knobs; i++)
        if (strcmp(k->knobs[i].name, name) == 0)
            return &k->knobs[i];
    return NULL;
}

const char *dg_kp_datadir(void) { return dg_data_dir(); }
