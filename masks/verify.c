/* verify: proves a mask's statements (masks/mask.h) against its predicate by
 * brute force, so a kernel that trusts them computes exactly the masked
 * attention. Over queries q in [-n/4, n) (q_offset can make positions
 * negative) and keys k in [0, n), for key counts n, n/2 + 1 and 0:
 *
 *   k_range(q, n_k)        is exactly the first and last key q attends, and
 *                          neither end decreases as q grows;
 *   q_range(k, q_lo, q_hi) is exactly the first and last query in
 *                          [q_lo, q_hi] attending k, for several [q_lo, q_hi],
 *                          and neither end decreases as k grows;
 *   full_k_range(q0, q1)   claims only keys in [0, n_k) that every query of
 *                          [q0, q1] attends, for tiles of 1, 16, 32, 64, 128,
 *                          256 and all queries, aligned and not;
 *   may_be_empty(q0, q1)   is true whenever some query of [q0, q1] attends
 *                          no key, on the same tiles.
 *
 * The predicate is evaluated once into a table of per-row prefix counts, so
 * every statement is checked from the table and n = 512 takes milliseconds.
 * The first mismatch is reported with the statement, the positions, what the
 * predicate says and what the mask claimed. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "spec.h"
#include "verify.h"

typedef struct verifier {
    const chill_mask_ops *ops;
    const int64_t *a;
    int64_t n;            /* keys 0 .. n-1 */
    int64_t q_min, q_max; /* queries q_min .. q_max */
    uint16_t *pre;        /* pre[(q - q_min) * (n + 1) + k]: how many keys below k q attends */
    chill_error *err;
    char spec[96];
} verifier;

__attribute__((format(printf, 2, 3))) static chill_status mismatch(const verifier *v, const char *fmt, ...) {
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return chill_fail(v->err, CHILL_ERR_INVALID, "%s: %s", v->spec, why);
}

/* How many keys of [k0, k1] q attends (k0 <= k1 + 1). */
static int64_t attended(const verifier *v, int64_t q, int64_t k0, int64_t k1) {
    const uint16_t *row = v->pre + (q - v->q_min) * (v->n + 1);
    return row[k1 + 1] - row[k0];
}

static void fill_table(verifier *v) {
    for (int64_t q = v->q_min; q <= v->q_max; q++) {
        uint16_t *row = v->pre + (q - v->q_min) * (v->n + 1);
        row[0] = 0;
        for (int64_t k = 0; k < v->n; k++)
            row[k + 1] = (uint16_t)(row[k] + (v->ops->allows(v->a, q, k) ? 1 : 0));
    }
}

static bool same_range(chill_range x, chill_range y) {
    if (chill_range_is_empty(x) || chill_range_is_empty(y))
        return chill_range_is_empty(x) && chill_range_is_empty(y);
    return x.lo == y.lo && x.hi == y.hi;
}

static const char *range_text(chill_range r, char *buf, size_t len) {
    if (chill_range_is_empty(r))
        snprintf(buf, len, "empty");
    else
        snprintf(buf, len, "[%" PRId64 ", %" PRId64 "]", r.lo, r.hi);
    return buf;
}

/* The first and last key in [0, n_k) that q attends. */
static chill_range row_truth(const verifier *v, int64_t q, int64_t n_k) {
    if (attended(v, q, 0, n_k - 1) == 0)
        return chill_range_empty();
    int64_t lo = 0, hi = n_k - 1;
    while (attended(v, q, lo, lo) == 0)
        lo++;
    while (attended(v, q, hi, hi) == 0)
        hi--;
    return chill_range_make(lo, hi);
}

/* The first and last query in [q_lo, q_hi] that attends k. */
static chill_range column_truth(const verifier *v, int64_t k, int64_t q_lo, int64_t q_hi) {
    chill_range r = chill_range_empty();
    for (int64_t q = q_lo; q <= q_hi; q++)
        if (attended(v, q, k, k)) {
            r.lo = chill_range_is_empty(r) ? q : r.lo;
            r.hi = q;
        }
    return r;
}

/* Whether got keeps both ends of the last non-empty range *prev (empty
 * ranges aside); moves *prev to got when it is not empty. */
static bool rises(chill_range got, chill_range *prev) {
    if (chill_range_is_empty(got))
        return true;
    if (!chill_range_is_empty(*prev) && (got.lo < prev->lo || got.hi < prev->hi))
        return false;
    *prev = got;
    return true;
}

static chill_status check_k_range(const verifier *v, int64_t n_k) {
    chill_range prev = chill_range_empty();
    int64_t prev_q = 0;
    char a[48], b[48];
    for (int64_t q = v->q_min; q <= v->q_max; q++) {
        chill_range want = row_truth(v, q, n_k), got = v->ops->k_range(v->a, q, n_k);
        if (!same_range(want, got))
            return mismatch(v, "k_range(q=%" PRId64 ", n_k=%" PRId64 ") = %s, expected %s (the first and last key q "
                            "attends)", q, n_k, range_text(got, a, sizeof a), range_text(want, b, sizeof b));
        chill_range before = prev;
        if (!rises(got, &prev))
            return mismatch(v, "k_range(q=%" PRId64 ", n_k=%" PRId64 ") = %s falls below k_range(q=%" PRId64
                            ") = %s: neither end may decrease as q grows", q, n_k, range_text(got, a, sizeof a),
                            prev_q, range_text(before, b, sizeof b));
        prev_q = chill_range_is_empty(got) ? prev_q : q;
    }
    return CHILL_OK;
}

static chill_status check_q_range(const verifier *v, int64_t q_lo, int64_t q_hi) {
    chill_range prev = chill_range_empty();
    int64_t prev_k = 0;
    char a[48], b[48];
    for (int64_t k = 0; k < v->n; k++) {
        chill_range want = column_truth(v, k, q_lo, q_hi), got = v->ops->q_range(v->a, k, q_lo, q_hi);
        if (!same_range(want, got))
            return mismatch(v, "q_range(k=%" PRId64 ", q_lo=%" PRId64 ", q_hi=%" PRId64 ") = %s, expected %s (the "
                            "first and last query in [q_lo, q_hi] attending k)", k, q_lo, q_hi,
                            range_text(got, a, sizeof a), range_text(want, b, sizeof b));
        chill_range before = prev;
        if (!rises(got, &prev))
            return mismatch(v, "q_range(k=%" PRId64 ", q_lo=%" PRId64 ", q_hi=%" PRId64 ") = %s falls below "
                            "q_range(k=%" PRId64 ") = %s: neither end may decrease as k grows", k, q_lo, q_hi,
                            range_text(got, a, sizeof a), prev_k, range_text(before, b, sizeof b));
        prev_k = chill_range_is_empty(got) ? prev_k : k;
    }
    return CHILL_OK;
}

/* full_k_range and may_be_empty on the query tile [q0, q1]. */
static chill_status check_tile(const verifier *v, int64_t q0, int64_t q1, int64_t n_k) {
    char a[48];
    chill_range full = v->ops->full_k_range(v->a, q0, q1, n_k);
    bool claims = !chill_range_is_empty(full);
    if (claims && (full.lo < 0 || full.hi > n_k - 1))
        return mismatch(v, "full_k_range(q0=%" PRId64 ", q1=%" PRId64 ", n_k=%" PRId64 ") = %s claims keys outside "
                        "[0, n_k)", q0, q1, n_k, range_text(full, a, sizeof a));
    bool may_be_empty = v->ops->may_be_empty(v->a, q0, q1, n_k);
    for (int64_t q = q0; q <= q1; q++) {
        if (claims && attended(v, q, full.lo, full.hi) != full.hi - full.lo + 1) {
            int64_t k = full.lo;
            while (attended(v, q, k, k))
                k++;
            return mismatch(v, "full_k_range(q0=%" PRId64 ", q1=%" PRId64 ", n_k=%" PRId64 ") = %s, but query %"
                            PRId64 " does not attend key %" PRId64, q0, q1, n_k, range_text(full, a, sizeof a), q, k);
        }
        if (!may_be_empty && attended(v, q, 0, n_k - 1) == 0)
            return mismatch(v, "may_be_empty(q_lo=%" PRId64 ", q_hi=%" PRId64 ", n_k=%" PRId64 ") = false, but query "
                            "%" PRId64 " attends no key", q0, q1, n_k, q);
    }
    return CHILL_OK;
}

/* Every tile of t queries starting at a position congruent to off modulo t,
 * clipped to the query range. */
static chill_status check_tiling(const verifier *v, int64_t t, int64_t off, int64_t n_k) {
    int64_t q0 = v->q_min - ((v->q_min - off) % t + t) % t;
    for (; q0 <= v->q_max; q0 += t) {
        chill_status s = check_tile(v, chill_max64(q0, v->q_min), chill_min64(q0 + t - 1, v->q_max), n_k);
        if (s != CHILL_OK)
            return s;
    }
    return CHILL_OK;
}

static chill_status check_tiles(const verifier *v, int64_t n_k) {
    const int64_t sizes[] = {1, 16, 32, 64, 128, 256, v->q_max - v->q_min + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int64_t t = sizes[i];
        int64_t offs[] = {0, 1 % t, (t / 2 + 3) % t, t - 1};
        for (int j = 0; j < 4; j++) {
            bool seen = false;
            for (int e = 0; e < j; e++)
                seen = seen || offs[e] == offs[j];
            chill_status s = seen ? CHILL_OK : check_tiling(v, t, offs[j], n_k);
            if (s != CHILL_OK)
                return s;
        }
    }
    return CHILL_OK;
}

static chill_status check_all(const verifier *v) {
    const int64_t n = v->n;
    const int64_t key_counts[] = {n, n / 2 + 1, 0};
    for (int i = 0; i < 3; i++) {
        if (i == 1 && key_counts[1] == n)
            continue;
        chill_status s = check_k_range(v, key_counts[i]);
        s = s == CHILL_OK ? check_tiles(v, key_counts[i]) : s;
        if (s != CHILL_OK)
            return s;
    }
    const int64_t spans[][2] = {
        {v->q_min, v->q_max}, {0, v->q_max}, {v->q_min, n / 8}, {n / 3, 2 * n / 3}, {n / 2, n / 2}, {n / 2, n / 2 - 1},
    };
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++) {
        chill_status s = check_q_range(v, spans[i][0], spans[i][1]);
        if (s != CHILL_OK)
            return s;
    }
    return CHILL_OK;
}

chill_status chill_mask_verify_ops(const chill_mask_ops *ops, const int64_t *args, int64_t n, chill_error *err) {
    if (n < 1 || n > CHILL_VERIFY_N_MAX)
        return chill_fail(err, CHILL_ERR_INVALID, "verify: n = %" PRId64 " is out of range; accepted: 1 to %d", n,
                          CHILL_VERIFY_N_MAX);
    verifier v = {.ops = ops, .a = args, .n = n, .q_min = -(n / 4), .q_max = n - 1, .err = err};
    chill_mask_format_ops(ops, args, v.spec, sizeof v.spec);
    v.pre = malloc((size_t)(v.q_max - v.q_min + 1) * (size_t)(n + 1) * sizeof *v.pre);
    if (v.pre == NULL)
        return chill_fail(err, CHILL_ERR_NOMEM, "verify: no memory for the %" PRId64 " x %" PRId64 " table",
                          v.q_max - v.q_min + 1, n);
    fill_table(&v);
    chill_status s = check_all(&v);
    free(v.pre);
    return s;
}

chill_status chill_mask_verify(const chill_mask *m, int64_t n, chill_error *err) {
    chill_status s = chill_mask_check(m, err);
    if (s != CHILL_OK)
        return s;
    return chill_mask_verify_ops(chill_mask_ops_of(m), m->arg, n, err);
}
