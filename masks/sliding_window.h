/* sliding_window(left_context, right_context): query q attends keys
 * q - left_context <= k <= q + right_context. */
#ifndef CHILL_MASK_SLIDING_WINDOW_H
#define CHILL_MASK_SLIDING_WINDOW_H

CHILL_MASK_FN bool chill_sliding_window_allows(const int64_t *a, int64_t q, int64_t k) {
    return q - a[0] <= k && k <= q + a[1];
}

CHILL_MASK_FN chill_range chill_sliding_window_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    return chill_range_clip(chill_range_make(q - a[0], q + a[1]), 0, n_k - 1);
}

CHILL_MASK_FN chill_range chill_sliding_window_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    return chill_range_clip(chill_range_make(k - a[1], k + a[0]), q_lo, q_hi);
}

CHILL_MASK_FN chill_range chill_sliding_window_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    return chill_range_clip(chill_range_make(q1 - a[0], q0 + a[1]), 0, n_k - 1);
}

CHILL_MASK_FN bool chill_sliding_window_may_be_empty(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    return n_k <= 0 || q_lo + a[1] < 0 || q_hi - a[0] > n_k - 1;
}

#endif

/* Its registry entry (outside the guard: see list.h). */
CHILL_MASK(sliding_window, 2, ("left_context", "right_context"), (0, 0))
