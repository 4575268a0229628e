/* The tile operations with AVX-512 (16 lanes): 4 keys x 4 query vectors of
 * scores and 4 queries x 4 head-dim vectors of output per register block. A
 * head_dim that is an odd multiple of 8 ends in a half vector, loaded masked. */
#include <immintrin.h>

typedef __m512 vf;
typedef __mmask16 vmask;

#define L 16
#define QK_W 4
#define PV_W 4
#define ISA_NAME "avx512"
#define ISA_SYM chill_cpu_isa_avx512

#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_MASK(n) ((vmask)((1u << (n)) - 1u))
#define V_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_EXP2(x) exp2_avx512(x)

/* 2^x: x = n + f with |f| <= 1/2, 2^f by Cephes' exp2f polynomial (relative
 * error about 2e-7), scaled by 2^n with scalef. x below -125 gives 0 without
 * ever making a subnormal: those cost a microcode assist each, and masked
 * scores (-inf) are common. */
static inline __m512 exp2_avx512(__m512 x) {
    __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-125.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(_mm512_set1_ps(-125.0f), x);
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(normal, p, n);
}

#include "tile_impl.h"
