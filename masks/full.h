/* full: every query attends every key. */
#ifndef CHILL_MASK_FULL_H
#define CHILL_MASK_FULL_H

CHILL_MASK_FN bool chill_full_allows(const int64_t *a, int64_t q, int64_t k) {
    (void)a; (void)q; (void)k;
    return true;
}

CHILL_MASK_FN chill_range chill_full_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    (void)a; (void)q;
    return chill_range_make(0, n_k - 1);
}

CHILL_MASK_FN chill_range chill_full_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    (void)a; (void)k;
    return chill_range_make(q_lo, q_hi);
}

CHILL_MASK_FN chill_range chill_full_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    (void)a; (void)q0; (void)q1;
    return chill_range_make(0, n_k - 1);
}

CHILL_MASK_FN bool chill_full_may_be_empty(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    (void)a; (void)q_lo; (void)q_hi;
    return n_k <= 0;
}

#endif

/* Its registry entry (outside the guard: see list.h). */
CHILL_MASK(full, 0, (""), (0))
