/* Scalar conversions between fp32 and the 16-bit element types (kernels/
 * chill.h), written out on the IEEE bit layouts so that every machine rounds
 * the same way: round to nearest, ties to even; overflow to infinity; NaN to
 * a quiet NaN. The CPU kernel's portable path, the server's JSON tensors and
 * chillctl's files all convert through these; the x86 paths of the CPU
 * kernel use F16C, which rounds the same. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "chill.h"

static float float_of(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_of(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

float chill_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return float_of(sign | 0x7f800000u | (man << 13));
    if (exp != 0)
        return float_of(sign | ((exp + 112) << 23) | (man << 13));
    float f = ldexpf((float)man, -24); /* zero or subnormal: man units of 2^-24 */
    return sign ? -f : f;
}

uint16_t chill_float_to_half(float f) {
    uint32_t x = bits_of(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u)
        return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);
    if (abs >= 0x477ff000u) /* rounds to beyond 65504 */
        return sign | 0x7c00;
    if (abs < 0x38800000u) /* subnormal half or zero: in units of 2^-24, ties to even */
        return sign | (uint16_t)lrintf(float_of(abs) * 16777216.0f);
    uint32_t r = abs + 0xfffu + ((abs >> 13) & 1); /* round to nearest even */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float chill_bf16_to_float(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t chill_float_to_bf16(float f) {
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}
