/* The tile operations of chill_cpu_isa, written once over a small vector
 * vocabulary and compiled once per instruction set: tile_scalar.c,
 * tile_avx2.c and tile_avx512.c each define the vocabulary and include this.
 *
 * The vocabulary: L lanes of type vf; V_ZERO, V_SET1, V_LOAD, V_STORE,
 * V_FMA(a, b, c) = a * b + c, V_MUL, V_ADD, V_SUB, V_MAX, V_EXP2 (2^x, 0 for
 * -inf); vmask with V_MASK(n) (the first n lanes) and V_LOADM (a load of those
 * lanes only: head_dim is a multiple of 8, so only a 16-lane set has a partial
 * last vector); QK_W and PV_W, the query vectors and head-dim vectors one
 * register block holds; ISA_NAME and ISA_SYM.
 *
 * Both products are register blocked: qk keeps KB keys x QK_W query vectors
 * of scores in registers while it runs down head_dim, pv keeps 4 queries x
 * PV_W head-dim vectors of output while it runs down the keys. */
#include <math.h>
#include <string.h>

#include "cpu.h"

#define BQ CHILL_CPU_BQ
#define KB CHILL_CPU_KB
#define PR 4 /* queries per pv register block */

#define UNROLL _Pragma("GCC unroll 16")
#define INLINE static inline __attribute__((always_inline))

INLINE void qk_block(const float *qt, const float *const *kr, int dim, float *st) {
    vf acc[KB][QK_W];
    UNROLL for (int r = 0; r < KB; r++)
        UNROLL for (int w = 0; w < QK_W; w++) acc[r][w] = V_ZERO();
    for (int d = 0; d < dim; d++) {
        vf qv[QK_W];
        UNROLL for (int w = 0; w < QK_W; w++) qv[w] = V_LOAD(qt + (int64_t)d * BQ + w * L);
        UNROLL for (int r = 0; r < KB; r++) {
            vf kb = V_SET1(kr[r][d]);
            UNROLL for (int w = 0; w < QK_W; w++) acc[r][w] = V_FMA(kb, qv[w], acc[r][w]);
        }
    }
    UNROLL for (int r = 0; r < KB; r++)
        UNROLL for (int w = 0; w < QK_W; w++) V_STORE(st + r * BQ + w * L, acc[r][w]);
}

static void qk(const float *qt, const float *k, int64_t ldk, int nk, int dim, float *st) {
    for (int j = 0; j < nk; j += KB) {
        const float *kr[KB];
        for (int r = 0; r < KB; r++)
            kr[r] = k + (int64_t)(j + r < nk ? j + r : nk - 1) * ldk;
        for (int w0 = 0; w0 < BQ / L; w0 += QK_W)
            qk_block(qt + w0 * L, kr, dim, st + (int64_t)j * BQ + w0 * L);
    }
}

/* [*lo, *hi): the union of the key ranges of queries i .. i + n - 1 (their
 * ranges only grow with the query, but empty ones say nothing). */
static void key_span(const int *j0, const int *j1, int i, int n, int *lo, int *hi) {
    *lo = 1 << 30, *hi = 0;
    for (int r = i; r < i + n; r++)
        if (j0[r] < j1[r]) {
            *lo = j0[r] < *lo ? j0[r] : *lo;
            *hi = j1[r] > *hi ? j1[r] : *hi;
        }
    if (*lo >= *hi)
        *lo = *hi = 0;
}

/* softmax turns the keys of a whole pv block into probabilities (0 where
 * masked), as pv reads the union of its PR queries' ranges. */
#define SPAN (L > PR ? L : PR)

static void softmax(float *st, const int *j0, const int *j1, float *m, float *l, float *alpha) {
    for (int i = 0; i < BQ; i += L) {
        int lo, hi;
        key_span(j0, j1, i / SPAN * SPAN, SPAN, &lo, &hi);
        vf mx = V_SET1(-INFINITY);
        for (int j = lo; j < hi; j++)
            mx = V_MAX(mx, V_LOAD(st + j * BQ + i));
        vf m_old = V_LOAD(m + i), m_new = V_MAX(m_old, mx);
        /* An all-masked column keeps m = -inf; subtracting -FLT_MAX instead
         * keeps its probabilities and alpha exactly 0 rather than NaN. */
        vf mu = V_MAX(m_new, V_SET1(-3.402823466e38f));
        vf a = V_EXP2(V_SUB(m_old, mu)), sum = V_ZERO();
        for (int j = lo; j < hi; j++) {
            vf p = V_EXP2(V_SUB(V_LOAD(st + j * BQ + i), mu));
            V_STORE(st + j * BQ + i, p);
            sum = V_ADD(sum, p);
        }
        V_STORE(l + i, V_FMA(V_LOAD(l + i), a, sum));
        V_STORE(m + i, m_new);
        V_STORE(alpha + i, a);
    }
}

/* W head-dim vectors of PR queries; the block's last vector loads the lanes of last only. */
INLINE void pv_block(const float *pt, const float *alpha, const float *v, int64_t ldv, int lo, int hi, float *o,
                     int ldo, vmask last, int W) {
    vf acc[PR][PV_W];
    UNROLL for (int r = 0; r < PR; r++) {
        vf a = V_SET1(alpha[r]);
        UNROLL for (int w = 0; w < W; w++) acc[r][w] = V_MUL(a, V_LOAD(o + r * ldo + w * L));
    }
    for (int j = lo; j < hi; j++) {
        const float *vr = v + (int64_t)j * ldv;
        vf vv[PV_W];
        UNROLL for (int w = 0; w < W - 1; w++) vv[w] = V_LOAD(vr + w * L);
        vv[W - 1] = V_LOADM(vr + (W - 1) * L, last);
        UNROLL for (int r = 0; r < PR; r++) {
            vf p = V_SET1(pt[j * BQ + r]);
            UNROLL for (int w = 0; w < W; w++) acc[r][w] = V_FMA(p, vv[w], acc[r][w]);
        }
    }
    UNROLL for (int r = 0; r < PR; r++)
        UNROLL for (int w = 0; w < W; w++) V_STORE(o + r * ldo + w * L, acc[r][w]);
}

static void pv(const float *pt, const int *j0, const int *j1, const float *alpha, int nq, const float *v, int64_t ldv,
               int dim, float *o, int ldo) {
    int nv = (dim + L - 1) / L;
    for (int i = 0; i < nq; i += PR) {
        int lo, hi;
        key_span(j0, j1, i, PR, &lo, &hi);
        for (int w0 = 0; w0 < nv; w0 += PV_W) {
            int w = nv - w0 < PV_W ? nv - w0 : PV_W;
            vmask last = V_MASK(w0 + w == nv ? dim - (nv - 1) * L : L);
            const float *pb = pt + i, *vb = v + w0 * L;
            float *ob = o + (int64_t)i * ldo + w0 * L;
            switch (w) {
#define PV_CASE(n) case n: pv_block(pb, alpha + i, vb, ldv, lo, hi, ob, ldo, last, n); break;
            PV_CASE(1)
#if PV_W >= 2
            PV_CASE(2)
#endif
#if PV_W >= 3
            PV_CASE(3)
#endif
#if PV_W >= 4
            PV_CASE(4)
#endif
#if PV_W >= 8
            PV_CASE(5) PV_CASE(6) PV_CASE(7) PV_CASE(8)
#endif
#undef PV_CASE
            }
        }
    }
}

#if L > 1
/* x86: F16C for fp16, shifts for bf16, eight values at a time. */
#include <immintrin.h>

static void to_f32(const void *src, chill_dtype t, int n, float *dst) {
    const uint16_t *h = src;
    for (int i = 0; i < n; i += 8) {
        if (t == CHILL_F32) {
            _mm256_storeu_ps(dst + i, _mm256_loadu_ps((const float *)src + i));
        } else {
            __m128i x = _mm_loadu_si128((const __m128i *)(h + i));
            __m256 f = t == CHILL_F16 ? _mm256_cvtph_ps(x)
                                      : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16));
            _mm256_storeu_ps(dst + i, f);
        }
    }
}

/* bf16 of eight floats, round to nearest even; NaN stays a (quiet) NaN. */
static __m128i bf16_of(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
    __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, qnan, nan);
    r = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    return _mm256_castsi256_si128(r);
}

static void from_f32(const float *src, float scale, int n, chill_dtype t, void *dst) {
    __m256 s = _mm256_set1_ps(scale);
    uint16_t *h = dst;
    for (int i = 0; i < n; i += 8) {
        __m256 x = _mm256_mul_ps(_mm256_loadu_ps(src + i), s);
        if (t == CHILL_F32)
            _mm256_storeu_ps((float *)dst + i, x);
        else if (t == CHILL_F16)
            _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        else
            _mm_storeu_si128((__m128i *)(h + i), bf16_of(x));
    }
}
#else
/* Portable: kernels/convert.c, one element at a time. */
static void to_f32(const void *src, chill_dtype t, int n, float *dst) {
    const uint16_t *h = src;
    for (int i = 0; i < n; i++)
        dst[i] = t == CHILL_F32 ? ((const float *)src)[i]
               : t == CHILL_F16 ? chill_half_to_float(h[i])
                                : chill_bf16_to_float(h[i]);
}

static void from_f32(const float *src, float scale, int n, chill_dtype t, void *dst) {
    uint16_t *h = dst;
    for (int i = 0; i < n; i++) {
        float x = src[i] * scale;
        if (t == CHILL_F32)
            ((float *)dst)[i] = x;
        else
            h[i] = t == CHILL_F16 ? chill_float_to_half(x) : chill_float_to_bf16(x);
    }
}
#endif

const chill_cpu_isa ISA_SYM = {ISA_NAME, qk, softmax, pv, to_f32, from_f32};
