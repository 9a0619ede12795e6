/* hparams.c: defaults and family names for the normalized configuration. */
#include "model/hparams.h"

#include <string.h>

static const char *const arch_names[DG_ARCH_COUNT] = {
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mixtral", "qwen3_moe", "gpt_oss", "phimoe",
};

void dg_hparams_defaults(struct dg_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->norm_eps = 1e-6f;
    hp->rope.theta = 10000.0f;
    hp->rope.factor = 1.0f;
    hp->rope.attention_factor = 1.0f;
    hp->rope.truncate = true;
    hp->rope_local = hp->rope;
    hp->attn_scale = 0.0f; /* 0 = 1/sqrt(head_dim), filled by the source once head_dim is known */
    hp->embed_scale = 1.0f;
    hp->bos_id = -1;
}

const char *dg_arch_name(enum dg_arch arch)
{
    return (unsigned)arch < DG_ARCH_COUNT ? arch_names[arch] : "unknown";
}

bool dg_arch_from_name(const char *name, enum dg_arch *out)
{
    for (int i = 0; i < DG_ARCH_COUNT; i++)
        if (strcmp(name, arch_names[i]) == 0) {
            *out = (enum dg_arch)i;
            return true;
        }
    return false;
}

bool dg_arch_is_moe(enum dg_arch arch)
{
    return arch == DG_ARCH_MIXTRAL || arch == DG_ARCH_QWEN3_MOE || arch == DG_ARCH_GPT_OSS || arch == DG_ARCH_PHIMOE;
}
