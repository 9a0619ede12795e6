/* split_blocks.c: repacks GGUF Q8_0 / Q6_K rows into the split layout of split_blocks.h. */
#include "pipe/split_blocks.h"

#include <string.h>

struct split_geom {
    uint32_t bsz, belems; /* GGUF block bytes and elements */
    uint32_t d_off;       /* byte offset of the block's f16 scale */
};

static int geom(enum dg_dtype dt, struct split_geom *g)
{
    if (dt == DG_DT_Q8_0)
        *g = (struct split_geom){34, 32, 0};
    else if (dt == DG_DT_Q6_K)
        *g = (struct split_geom){210, 256, 208};
    else
        return 0;
    return 1;
}

int dg_split_blocks_wtype(enum dg_dtype dt)
{
    return dt == DG_DT_Q8_0 ? DG_WTYPE_Q8_0_SPLIT : dt == DG_DT_Q6_K ? DG_WTYPE_Q6_K_SPLIT : -1;
}

uint64_t dg_split_blocks_row_bytes(enum dg_dtype dt, uint64_t cols)
{
    struct split_geom g;
    if (!geom(dt, &g) || cols == 0 || cols % g.belems)
        return 0;
    uint64_t nb = cols / g.belems;
    return (nb + 7) / 8 * 16 + nb * (g.bsz - 2);
}

void dg_split_blocks_repack(enum dg_dtype dt, const void *src, void *dst, uint64_t rows, uint64_t cols)
{
    struct split_geom g;
    if (!geom(dt, &g))
        return;
    uint64_t nb = cols / g.belems, srb = nb * g.bsz, drb = dg_split_blocks_row_bytes(dt, cols);
    const uint32_t qlen = g.bsz - 2;
    for (uint64_t r = 0; r < rows; r++) {
        const uint8_t *s = (const uint8_t *)src + r * srb;
        uint8_t *d = (uint8_t *)dst + r * drb;
        uint64_t o = 0;
        for (uint64_t b0 = 0; b0 < nb; b0 += 8) {
            uint64_t n = nb - b0 < 8 ? nb - b0 : 8;
            memset(d + o, 0, 16);
            for (uint64_t j = 0; j < n; j++)
                memcpy(d + o + 2 * j, s + (b0 + j) * g.bsz + g.d_off, 2);
            o += 16;
            /* the block without its scale: Q8_0's scale leads the block, Q6_K's trails it */
            uint32_t q_off = g.d_off == 0 ? 2 : 0;
            for (uint64_t j = 0; j < n; j++, o += qlen)
                memcpy(d + o, s + (b0 + j) * g.bsz + q_off, qlen);
        }
    }
}
