/* The tile operations with AVX2 and FMA (8 lanes): 4 keys x 2 query vectors
 * of scores and 4 queries x 2 head-dim vectors of output per register block,
 * which leaves room in the 16 registers. head_dim is a multiple of 8, so no
 * vector is ever partial here. */
#include <immintrin.h>

typedef __m256 vf;
typedef int vmask;

#define L 8
#define QK_W 2
#define PV_W 2
#define ISA_NAME "avx2"
#define ISA_SYM chill_cpu_isa_avx2

#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_MASK(n) ((vmask)(n))
#define V_LOADM(p, m) ((void)(m), _mm256_loadu_ps(p))
#define V_EXP2(x) exp2_avx2(x)

/* 2^x: x = n + f with |f| <= 1/2, 2^f by Cephes' exp2f polynomial (relative
 * error about 2e-7), 2^n built in the exponent bits. x below -125 gives 0
 * without ever making a subnormal (each costs a microcode assist). */
static inline __m256 exp2_avx2(__m256 x) {
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-125.0f), _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_set1_ps(-125.0f), x);
    __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

#include "tile_impl.h"
