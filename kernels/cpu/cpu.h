/* Inside the CPU kernel: the tile geometry, the per-instruction-set tile
 * operations that forward.c strings together, and the thread pool.
 *
 * A work item is one (sequence, query head, query tile). Its queries are held
 * transposed and pre-scaled (qt[d * BQ + i] = q[i][d] * sm_scale * log2 e), so
 * the scores of a key tile come out transposed too (st[j * BQ + i], scores in
 * base 2) and every softmax step runs down a column of BQ queries at once.
 * The running output o is [BQ][dp] fp32 with dp = head_dim rounded up to 16. */
#ifndef CHILL_CPU_H
#define CHILL_CPU_H

#include "chill.h"

#define CHILL_CPU_BQ   64 /* queries per tile */
#define CHILL_CPU_BK   64 /* keys per tile, a multiple of CHILL_CPU_KB */
#define CHILL_CPU_KB   4  /* keys per register block of qk: st has BK + KB rows */
#define CHILL_CPU_DPAD 16 /* o and the staging rows are padded to a multiple of this */

typedef struct chill_cpu_isa {
    const char *name; /* "scalar", "avx2", "avx512" */
    /* st[j * BQ + i] = sum over d < dim of k[j * ldk + d] * qt[d * BQ + i], for
     * every i < BQ and j < nk rounded up to KB (rows past nk repeat key nk-1). */
    void (*qk)(const float *qt, const float *k, int64_t ldk, int nk, int dim, float *st);
    /* One online-softmax step over the key tile in st, where query i attends
     * at most the keys [j0[i], j1[i]) of it (st is -inf elsewhere, and is
     * neither read nor written there): m[i] becomes the running max, st the
     * probabilities exp2(st - m[i]), alpha[i] the factor for what was summed
     * before, l[i] the running sum; for every i < BQ. */
    void (*softmax)(float *st, const int *j0, const int *j1, float *m, float *l, float *alpha);
    /* o[i * ldo + d] = alpha[i] * o[i * ldo + d] + sum over j in [j0[i], j1[i])
     * of pt[j * BQ + i] * v[j * ldv + d], for i < nq rounded up to 4, d < dim. */
    void (*pv)(const float *pt, const int *j0, const int *j1, const float *alpha, int nq, const float *v,
               int64_t ldv, int dim, float *o, int ldo);
    /* dst[0..n) = src[0..n) as fp32; n is a multiple of 8. */
    void (*to_f32)(const void *src, chill_dtype t, int n, float *dst);
    /* dst[0..n) = src[0..n) * scale in t, rounded to nearest even; n a multiple of 8. */
    void (*from_f32)(const float *src, float scale, int n, chill_dtype t, void *dst);
} chill_cpu_isa;

extern const chill_cpu_isa chill_cpu_isa_scalar;
extern const chill_cpu_isa chill_cpu_isa_avx2;
extern const chill_cpu_isa chill_cpu_isa_avx512;

/* The variant the kernel uses: the best one this processor runs, unless
 * chill_cpu_use_isa() chose another. */
const chill_cpu_isa *chill_cpu_isa_current(void);

/* Makes the kernel use the variant called name ("scalar", "avx2", "avx512";
 * NULL: the best). 0 on success, -1 when unknown or not supported here. For
 * tests and benchmarks: not safe while a forward pass runs. */
int chill_cpu_use_isa(const char *name);

/* Runs fn(arg, thread_index) once on each thread of the pool (the caller is
 * thread 0) and returns when all are done; returns the thread count. One run
 * at a time: concurrent callers wait their turn. */
int chill_cpu_pool_run(void (*fn)(void *arg, int thread), void *arg);

#endif
