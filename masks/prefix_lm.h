/* prefix_lm(prefix_size): keys of the prefix are seen by every query, the rest
 * causally: k < prefix_size or k <= q. */
#ifndef CHILL_MASK_PREFIX_LM_H
#define CHILL_MASK_PREFIX_LM_H

CHILL_MASK_FN bool chill_prefix_lm_allows(const int64_t *a, int64_t q, int64_t k) {
    return k < a[0] || k <= q;
}

CHILL_MASK_FN chill_range chill_prefix_lm_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    return chill_range_make(0, chill_min64(chill_max64(q, a[0] - 1), n_k - 1));
}

/* A prefix key is seen by every query; a later key by the queries at or after it. */
CHILL_MASK_FN chill_range chill_prefix_lm_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    return chill_range_make(k < a[0] ? q_lo : chill_max64(k, q_lo), q_hi);
}

CHILL_MASK_FN chill_range chill_prefix_lm_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    (void)q1;
    return chill_range_make(0, chill_min64(chill_max64(q0, a[0] - 1), n_k - 1));
}

CHILL_MASK_FN bool chill_prefix_lm_may_be_empty(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    (void)q_hi;
    return n_k <= 0 || (a[0] == 0 && q_lo < 0);
}

#endif

/* Its registry entry (outside the guard: see list.h). */
CHILL_MASK(prefix_lm, 1, ("prefix_size"), (0))
