/* The mask contract, shared by C and CUDA.
 *
 * A mask decides which (query, key) pairs attend each other. Positions are
 * absolute: query i of a sequence sits at q_offset + i, key j at j. Every mask
 * is one header (masks/<name>.h) of five inline functions over its integer
 * arguments, ending with its registry entry, plus its #include in
 * masks/list.h. Kernels inline them, so a masked
 * kernel loads nothing more than a dense one:
 *
 *   bool        chill_<m>_allows(a, q, k)              the predicate
 *   chill_range chill_<m>_k_range(a, q, n_k)           keys in [0, n_k) q may attend
 *   chill_range chill_<m>_q_range(a, k, q_lo, q_hi)    queries in [q_lo, q_hi] that may attend k
 *   chill_range chill_<m>_full_k_range(a, q0, q1, n_k) keys in [0, n_k) attended by every q in [q0, q1]
 *   bool        chill_<m>_may_be_empty(a, q_lo, q_hi, n_k)  some q in [q_lo, q_hi] attends no key
 *
 * Ranges are inclusive and empty when lo > hi. k_range and q_range are exactly
 * the min and max of the predicate's true set (clipped), and both ends never
 * decrease as q (or k) grows; full_k_range may claim fewer keys than are full,
 * never more; may_be_empty may say true when no row is empty, never false when
 * one is. verify.c proves all of this by brute force. */
#ifndef CHILL_MASK_H
#define CHILL_MASK_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define CHILL_MASK_FN static __host__ __device__ __forceinline__
#else
#define CHILL_MASK_FN static inline
#endif

#define CHILL_MASK_MAX_ARGS 4
#define CHILL_MASK_ARG_MAX  ((int64_t)1 << 30) /* arguments lie in [0, 2^30] */

typedef struct chill_range {
    int64_t lo, hi; /* inclusive; empty when lo > hi */
} chill_range;

/* A mask with its arguments, as kernels receive it. type is a CHILL_MASK_<name>. */
typedef struct chill_mask {
    int type;
    int64_t arg[CHILL_MASK_MAX_ARGS];
} chill_mask;

CHILL_MASK_FN int64_t chill_min64(int64_t a, int64_t b) { return a < b ? a : b; }
CHILL_MASK_FN int64_t chill_max64(int64_t a, int64_t b) { return a > b ? a : b; }

CHILL_MASK_FN chill_range chill_range_make(int64_t lo, int64_t hi) {
    chill_range r = {lo, hi};
    return r;
}

CHILL_MASK_FN chill_range chill_range_empty(void) { return chill_range_make(0, -1); }

CHILL_MASK_FN bool chill_range_is_empty(chill_range r) { return r.lo > r.hi; }

/* r clipped to [lo, hi]. */
CHILL_MASK_FN chill_range chill_range_clip(chill_range r, int64_t lo, int64_t hi) {
    return chill_range_make(chill_max64(r.lo, lo), chill_min64(r.hi, hi));
}

/* Floor division for possibly negative positions (q_offset may be negative). */
CHILL_MASK_FN int64_t chill_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The masks' functions: every header of list.h, once (their registry
 * entries expand to nothing here). */
#define CHILL_MASK(name, nargs, arg_names, arg_mins)
#include "list.h"
#undef CHILL_MASK

/* The registry: one enum value per mask of list.h. */
enum {
#define CHILL_MASK(name, nargs, arg_names, arg_mins) CHILL_MASK_##name,
#include "list.h"
#undef CHILL_MASK
    CHILL_MASK_COUNT
};

#endif
