/* libchill's scalar conversions between fp32 and fp16/bf16 (kernels/
 * convert.c): every half survives a round trip, ties go to even, overflow
 * goes to infinity, NaN stays NaN; and for a million floats spread over every
 * exponent, fp16 rounding agrees bit for bit with the compiler's own _Float16
 * conversion (libgcc's soft-float rounding, an independent implementation). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "chill.h"

START_TEST(halves_round_to_nearest_even) {
    for (uint32_t h = 0; h < 0x10000; h++) { /* every finite half survives a round trip */
        float f = chill_half_to_float((uint16_t)h);
        if (isfinite(f))
            ck_assert_msg(chill_float_to_half(f) == h, "half %04x -> %g -> %04x", h, f, chill_float_to_half(f));
    }
    ck_assert_uint_eq(chill_float_to_half(1.0f + 1.0f / 2048), 0x3c00); /* tie, to even */
    ck_assert_uint_eq(chill_float_to_half(1.0f + 3.0f / 2048), 0x3c02); /* tie, to even (up) */
    ck_assert_uint_eq(chill_float_to_half(65520.0f), 0x7c00);           /* rounds past the max */
    ck_assert_uint_eq(chill_float_to_half(5.9604645e-8f), 0x0001);      /* smallest subnormal */
    ck_assert_uint_eq(chill_float_to_half(-0.0f), 0x8000);
    ck_assert(isnan(chill_half_to_float(chill_float_to_half(NAN))));
}
END_TEST

START_TEST(bf16_rounds_to_nearest_even) {
    ck_assert_uint_eq(chill_float_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(chill_float_to_bf16(1.0f + 1.0f / 256), 0x3f80); /* tie, to even */
    ck_assert_uint_eq(chill_float_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    ck_assert(chill_bf16_to_float(0xc040) == -3.0f);
    ck_assert(isnan(chill_bf16_to_float(chill_float_to_bf16(NAN))));
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = chill_bf16_to_float((uint16_t)h);
        if (!isnan(f))
            ck_assert_uint_eq(chill_float_to_bf16(f), h);
    }
}
END_TEST

/* The loop counts disagreements and asserts once: a check per float would
 * cost Check a pipe write each, seconds under the sanitizers. */
START_TEST(halves_agree_with_the_compiler) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    float first = 0;
    for (int i = 0; i < 1000000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t bits = (uint32_t)(s >> 32);
        bits = (bits & 0x807fffffu) | ((uint32_t)(96 + (s >> 20) % 64) << 23); /* exponents 2^-31 .. 2^32 */
        float f;
        memcpy(&f, &bits, sizeof f);
        _Float16 ref = (_Float16)f;
        uint16_t want;
        memcpy(&want, &ref, sizeof want);
        if ((chill_float_to_half(f) != want || chill_half_to_float(want) != (float)ref) && bad++ == 0)
            first = f;
    }
    _Float16 ref = (_Float16)first;
    uint16_t want;
    memcpy(&want, &ref, sizeof want);
    ck_assert_msg(bad == 0, "%d of 1000000 floats disagree, the first %a: %04x, the compiler says %04x", bad,
                  (double)first, chill_float_to_half(first), want);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("convert");
    tcase_add_test(tc, halves_round_to_nearest_even);
    tcase_add_test(tc, bf16_rounds_to_nearest_even);
    tcase_add_test(tc, halves_agree_with_the_compiler);
    suite_add_tcase(s, tc);
    return s;
}
