/* chunkwise(context_size, back_contexts): positions fall into chunks of
 * context_size; query q attends keys of its own chunk and of the
 * back_contexts chunks before it: 0 <= q/c - k/c <= back_contexts (floor division). */
#ifndef CHILL_MASK_CHUNKWISE_H
#define CHILL_MASK_CHUNKWISE_H

CHILL_MASK_FN bool chill_chunkwise_allows(const int64_t *a, int64_t q, int64_t k) {
    int64_t d = chill_floordiv(q, a[0]) - chill_floordiv(k, a[0]);
    return 0 <= d && d <= a[1];
}

/* Keys of chunks [chunk(q) - back, chunk(q)]. */
CHILL_MASK_FN chill_range chill_chunkwise_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    int64_t c = chill_floordiv(q, a[0]);
    return chill_range_clip(chill_range_make((c - a[1]) * a[0], (c + 1) * a[0] - 1), 0, n_k - 1);
}

/* Queries of chunks [chunk(k), chunk(k) + back]. */
CHILL_MASK_FN chill_range chill_chunkwise_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    int64_t c = chill_floordiv(k, a[0]);
    return chill_range_clip(chill_range_make(c * a[0], (c + a[1] + 1) * a[0] - 1), q_lo, q_hi);
}

/* The ranges are intervals moving right with q, so the keys every q in
 * [q0, q1] attends run from the last query's first key to the first query's last. */
CHILL_MASK_FN chill_range chill_chunkwise_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    int64_t c0 = chill_floordiv(q0, a[0]), c1 = chill_floordiv(q1, a[0]);
    return chill_range_clip(chill_range_make((c1 - a[1]) * a[0], (c0 + 1) * a[0] - 1), 0, n_k - 1);
}

CHILL_MASK_FN bool chill_chunkwise_may_be_empty(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    return n_k <= 0 || q_lo < 0 || (chill_floordiv(q_hi, a[0]) - a[1]) * a[0] > n_k - 1;
}

#endif

/* Its registry entry (outside the guard: see list.h). */
CHILL_MASK(chunkwise, 2, ("context_size", "back_contexts"), (1, 0))
