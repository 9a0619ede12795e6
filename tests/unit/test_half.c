/* test_half.c: f16/bf16 conversions against known bit patterns, including rounding and subnormals. */
#include "../test.h"

#include "core/half.h"

DG_TEST(half_known_values)
{
    CHECK(dg_f32_to_f16(1.0f) == 0x3c00);
    CHECK(dg_f32_to_f16(-2.0f) == 0xc000);
    CHECK(dg_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(dg_f32_to_f16(1e6f) == 0x7c00);
    CHECK(dg_f32_to_f16(5.960464477539063e-08f) == 0x0001); /* smallest subnormal */
    CHECK(dg_f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3c00);  /* tie rounds to even */
    CHECK(dg_f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3c02);
    CHECK(dg_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(dg_f16_to_f32(0x0001) == 5.960464477539063e-08f);
    for (uint32_t h = 0; h < 0x7c00; h++)
        if (dg_f32_to_f16(dg_f16_to_f32((uint16_t)h)) != h)
            CHECK_MSG(0, "f16 round trip fails at 0x%04x", h);
    CHECK(dg_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(dg_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(dg_f32_to_bf16(1.00390625f) == 0x3f80); /* tie to even */
}
