/* cmd_inspect.c: `doppler-gl inspect MODEL`: a doppler-gl model folder's summary (family, shape, dtypes,
 * bytes, layouts, kernel path), and with --verify every shard's size and SHA-256; for a GGUF file, its
 * metadata and tensor list (model/gguf_inspect.c). */
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "model/gguf.h"
#include "model/manifest.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: doppler-gl inspect MODEL [options]\n\n"
            "Prints the summary of a doppler-gl model folder (manifest.json + shards), or for a GGUF file\n"
            "(MODEL.gguf, or any file starting with the GGUF magic) its metadata and tensors (name, type, shape\n"
            "in ggml order, bytes).\n\n"
            "Options:\n"
            "      --verify  check every shard's size and SHA-256 against the manifest (exit 4 on a mismatch;\n"
            "                model folders only)\n"
            "      --json    print the summary as JSON\n"
            "  -c, --ctx N   context length for the KV-cache part of the GPU memory estimate (default 4096)\n"
            "  -h, --help    show this help\n");
}

static const char *str_at(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

static bool has_gguf_magic(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return false;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool yes = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f)
        fclose(f);
    return yes;
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verify", no_argument, 0, 'v'}, {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {"ctx", required_argument, 0, 'c'}, {0, 0, 0, 0}};
    bool verify = false, json = false;
    long ctx = 4096;
    char *end;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hc:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ctx = strtol(optarg, &end, 10);
            if (*end || ctx < 1 || ctx > (1L << 24))
                return dg_usage_error("inspect", "-c: '%s' is not a context length in [1, 16777216]", optarg);
            break;
        case 'v': verify = true; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: return dg_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return dg_usage_error("inspect", "expected one MODEL");
    const char *path = argv[optind];
    struct stat sb;
    size_t n = strlen(path);
    if ((n >= 5 && strcmp(path + n - 5, ".gguf") == 0) || has_gguf_magic(path)) {
        if (verify)
            return dg_usage_error("inspect", "--verify checks a doppler-gl model folder's shards; %s is a GGUF file",
                                  path);
        dg_status st = dg_gguf_inspect(path, json, stdout);
        if (st)
            return dg_report_status(st);
        return fflush(stdout) == 0 ? 0 : dg_report_status(dg_fail(DG_E_IO, "stdout: write failed"));
    }
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return dg_report_status(dg_fail(DG_E_IO, "%s: not a doppler-gl model folder or a GGUF file", path));

    /* opening validates every tensor against the shards before anything is printed */
    struct dg_model m;
    dg_status st = dg_model_open_manifest(path, &m);
    if (st != DG_OK)
        return dg_report_status(st);
    cJSON *root = NULL;
    st = dg_manifest_load_json(path, &root);
    if (st != DG_OK) {
        dg_model_close_manifest(&m);
        return dg_report_status(st);
    }
    dg_status vst = DG_OK;
    if (verify)
        vst = dg_manifest_verify(path);

    const struct dg_hparams *hp = &m.hp;
    uint64_t bytes[DG_DT_COUNT] = {0}, elems[DG_DT_COUNT] = {0}, tb = 0, te = 0;
    int count[DG_DT_COUNT] = {0};
    for (int i = 0; i < m.n_tensors; i++) {
        const struct dg_tensor *t = &m.tensors[i];
        count[t->dtype]++;
        bytes[t->dtype] += t->nbytes;
        elems[t->dtype] += (uint64_t)dg_tensor_nelems(t);
        tb += t->nbytes;
        te += (uint64_t)dg_tensor_nelems(t);
    }
    /* Parameters a decode token reads: all but the experts the router does not pick (stacked expert
     * tensors hold n_experts slices; a token reads n_experts_used of them in each MoE layer). */
    uint64_t active = te;
    for (int i = 0; hp->n_experts > 0 && i < m.n_tensors; i++)
        if (strstr(m.tensors[i].name, ".mlp.experts."))
            active -= (uint64_t)dg_tensor_nelems(&m.tensors[i]) / (uint64_t)hp->n_experts *
                      (uint64_t)(hp->n_experts - hp->n_experts_used);
    /* KV cache as the executor allocates it by default: f16 K and V for every layer and position. */
    uint64_t kv = 2ull * (uint64_t)hp->n_layers * (uint64_t)hp->n_kv_heads * (uint64_t)hp->head_dim * (uint64_t)ctx * 2ull;
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    const cJSON *layout = cJSON_GetObjectItemCaseSensitive(root, "layout");
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "family", dg_arch_name(hp->arch));
        cJSON_AddItemToObject(o, "config", dg_hparams_to_json(hp));
        cJSON_AddNumberToObject(o, "tensors", m.n_tensors);
        cJSON_AddNumberToObject(o, "params", (double)te);
        cJSON_AddNumberToObject(o, "activeParamsPerToken", (double)active);
        if (hp->n_experts) {
            cJSON_AddNumberToObject(o, "experts", hp->n_experts);
            cJSON_AddNumberToObject(o, "expertsPerToken", hp->n_experts_used);
        }
        cJSON *mem = cJSON_AddObjectToObject(o, "gpuMemory");
        cJSON_AddNumberToObject(mem, "ctx", (double)ctx);
        cJSON_AddNumberToObject(mem, "weightBytes", (double)tb);
        cJSON_AddNumberToObject(mem, "kvCacheBytes", (double)kv);
        cJSON_AddNumberToObject(o, "bytes", (double)tb);
        cJSON_AddNumberToObject(o, "bitsPerWeight", te ? 8.0 * (double)tb / (double)te : 0);
        cJSON *d = cJSON_AddObjectToObject(o, "dtypes");
        for (int k = 0; k < DG_DT_COUNT; k++)
            if (count[k]) {
                cJSON *e = cJSON_AddObjectToObject(d, dg_dtype_info((enum dg_dtype)k)->name);
                cJSON_AddNumberToObject(e, "tensors", count[k]);
                cJSON_AddNumberToObject(e, "params", (double)elems[k]);
                cJSON_AddNumberToObject(e, "bytes", (double)bytes[k]);
            }
        cJSON_AddItemToObject(o, "layout", cJSON_Duplicate(layout, 1));
        cJSON_AddItemToObject(o, "kernelHints", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(root, "kernelHints"), 1));
        cJSON_AddStringToObject(o, "kernelPath", str_at(root, "inference", "kernelPath"));
        cJSON_AddStringToObject(o, "quantization", str_at(root, "quantization", "scheme"));
        cJSON_AddNumberToObject(o, "shards", cJSON_GetArraySize(shards));
        if (verify)
            cJSON_AddStringToObject(o, "verify", vst == DG_OK ? "ok" : "failed");
        char *text = cJSON_Print(o);
        printf("%s\n", text);
        cJSON_free(text);
        cJSON_Delete(o);
    } else {
        printf("model:        %s\n", path);
        printf("family:       %s (%s)\n", dg_arch_name(hp->arch), hp->model_type);
        printf("shape:        hidden %d, layers %d, heads %d/%d kv, head_dim %d, ffn %d, vocab %d\n", hp->hidden,
               hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->intermediate, hp->vocab);
        if (hp->n_experts)
            printf("experts:      %d, %d used per token, expert ffn %d\n", hp->n_experts, hp->n_experts_used,
                   hp->moe_intermediate);
        printf("quantization: %s\n", str_at(root, "quantization", "scheme"));
        printf("per token:    %llu active params%s\n", (unsigned long long)active,
               hp->n_experts ? " (only the routed experts)" : "");
        printf("GPU memory:   %.2f MiB weights + %.2f MiB KV cache (f16) at -c %ld\n", (double)tb / 1048576.0,
               (double)kv / 1048576.0, ctx);
        printf("tensors:      %d, %llu params, %.2f MiB, %.3f bits/weight, %d shard(s)\n", m.n_tensors,
               (unsigned long long)te, (double)tb / 1048576.0, te ? 8.0 * (double)tb / (double)te : 0.0,
               cJSON_GetArraySize(shards));
        for (int k = 0; k < DG_DT_COUNT; k++)
            if (count[k])
                printf("  %-6s %5d tensors %14llu params %12.2f MiB\n", dg_dtype_info((enum dg_dtype)k)->name,
                       count[k], (unsigned long long)elems[k], (double)bytes[k] / 1048576.0);
        const cJSON *wt = cJSON_GetObjectItemCaseSensitive(layout, "weightsTransposed");
        const cJSON *gu = cJSON_GetObjectItemCaseSensitive(layout, "gateUpFused");
        printf("layout:       q4k %s, weights %s%s%s\n", str_at(layout, "q4kLayout", NULL),
               str_at(layout, "defaultWeightLayout", NULL), cJSON_IsTrue(wt) ? ", transposed" : "",
               cJSON_IsTrue(gu) ? ", gate_up fused" : "");
        printf("kernel path:  %s\n", str_at(root, "inference", "kernelPath"));
        if (verify)
            printf("verify:       %s\n", vst == DG_OK ? "all shard hashes match" : "FAILED");
    }
    cJSON_Delete(root);
    dg_model_close_manifest(&m);
    if (vst != DG_OK)
        return dg_report_status(vst);
    return 0;
}

DG_COMMAND(inspect, "inspect", "summarize a doppler-gl model folder (and verify its shard hashes) or a GGUF file", run)
