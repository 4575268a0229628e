/* causal: query q attends keys k <= q. */
#ifndef CHILL_MASK_CAUSAL_H
#define CHILL_MASK_CAUSAL_H

CHILL_MASK_FN bool chill_causal_allows(const int64_t *a, int64_t q, int64_t k) {
    (void)a;
    return k <= q;
}

CHILL_MASK_FN chill_range chill_causal_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    (void)a;
    return chill_range_make(0, chill_min64(q, n_k - 1));
}

CHILL_MASK_FN chill_range chill_causal_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    (void)a;
    return chill_range_make(chill_max64(k, q_lo), q_hi);
}

CHILL_MASK_FN chill_range chill_causal_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    (void)a; (void)q1;
    return chill_range_make(0, chill_min64(q0, n_k - 1));
}

CHILL_MASK_FN bool chill_causal_may_be_empty(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    (void)a; (void)q_hi;
    return n_k <= 0 || q_lo < 0;
}

#endif

/* Its registry entry (outside the guard: see list.h). */
CHILL_MASK(causal, 0, (""), (0))
