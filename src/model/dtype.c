/* dtype.c: the table of block sizes behind dtype.h. */
#include "model/dtype.h"

#include <strings.h>

static const struct dg_dtype_info table[DG_DT_COUNT] = {
    [DG_DT_F32] = {"f32", 1, 4, false},
    [DG_DT_F16] = {"f16", 1, 2, false},
    [DG_DT_BF16] = {"bf16", 1, 2, false},
    [DG_DT_Q8_0] = {"q8_0", 32, 34, true},
    [DG_DT_Q4_K] = {"q4_k", 256, 144, true},
    [DG_DT_Q6_K] = {"q6_k", 256, 210, true},
    [DG_DT_Q4_0] = {"q4_0", 32, 18, true},
    [DG_DT_Q4_1] = {"q4_1", 32, 20, true},
    [DG_DT_Q5_0] = {"q5_0", 32, 22, true},
    [DG_DT_Q5_1] = {"q5_1", 32, 24, true},
    [DG_DT_Q5_K] = {"q5_k", 256, 176, true},
    [DG_DT_MXFP4] = {"mxfp4", 32, 17, true},
    [DG_DT_I32] = {"i32", 1, 4, false},
};

const struct dg_dtype_info *dg_dtype_info(enum dg_dtype dt)
{
    if ((unsigned)dt >= DG_DT_COUNT)
        return 0;
    return &table[dt];
}

bool dg_dtype_from_name(const char *name, enum dg_dtype *out)
{
    for (int i = 0; i < DG_DT_COUNT; i++)
        if (strcasecmp(name, table[i].name) == 0) {
            *out = (enum dg_dtype)i;
            return true;
        }
    return false;
}

bool dg_dtype_row_ok(enum dg_dtype dt, uint64_t n)
{
    const struct dg_dtype_info *info = dg_dtype_info(dt);
    return info && n % info->block_elems == 0;
}

uint64_t dg_dtype_row_bytes(enum dg_dtype dt, uint64_t n)
{
    if (!dg_dtype_row_ok(dt, n))
        return 0;
    const struct dg_dtype_info *info = dg_dtype_info(dt);
    return n / info->block_elems * info->block_bytes;
}
