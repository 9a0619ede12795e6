/* test_dtype.c: block-size table and name parsing. */
#include "../test.h"

#include "model/dtype.h"

DG_TEST(dtype_block_sizes)
{
    CHECK(dg_dtype_row_bytes(DG_DT_Q4_K, 512) == 288);
    CHECK(dg_dtype_row_bytes(DG_DT_Q6_K, 256) == 210);
    CHECK(dg_dtype_row_bytes(DG_DT_Q8_0, 64) == 68);
    CHECK(dg_dtype_row_bytes(DG_DT_F16, 3) == 6);
    CHECK(!dg_dtype_row_ok(DG_DT_Q4_K, 704));
    CHECK(dg_dtype_row_bytes(DG_DT_Q4_K, 704) == 0);
    enum dg_dtype dt;
    CHECK(dg_dtype_from_name("Q4_K", &dt) && dt == DG_DT_Q4_K);
    CHECK(!dg_dtype_from_name("q3_k", &dt));
}
