/* The mask table, built from masks/list.h: one entry per registered mask with
 * its functions taken from its header, and the by-name API of chill.h. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "chill.h"
#include "registry.h"

#define CHILL_UNPACK(...) __VA_ARGS__

#define CHILL_MASK(name, nargs, arg_names, arg_mins)                                  \
    static void fill_bias_##name(const int64_t *a, int64_t q, int64_t k0, int n,      \
                                 float *bias) {                                       \
        for (int j = 0; j < n; j++)                                                   \
            bias[j] = chill_##name##_allows(a, q, k0 + j) ? 0.0f : -INFINITY;         \
    }
#include "list.h"
#undef CHILL_MASK

const chill_mask_ops chill_mask_table[CHILL_MASK_COUNT] = {
#define CHILL_MASK(name, nargs, arg_names, arg_mins)                                  \
    {#name, nargs, {CHILL_UNPACK arg_names}, {CHILL_UNPACK arg_mins}, chill_##name##_allows, chill_##name##_k_range,      \
     chill_##name##_q_range, chill_##name##_full_k_range, chill_##name##_may_be_empty, \
     fill_bias_##name},
#include "list.h"
#undef CHILL_MASK
};

const chill_mask_ops *chill_mask_ops_of(const chill_mask *m) {
    if (m == NULL || m->type < 0 || m->type >= CHILL_MASK_COUNT)
        return NULL;
    return &chill_mask_table[m->type];
}

int chill_mask_count(void) { return CHILL_MASK_COUNT; }

const char *chill_mask_name(int type) {
    return type >= 0 && type < CHILL_MASK_COUNT ? chill_mask_table[type].name : NULL;
}

int chill_mask_nargs(int type) {
    return type >= 0 && type < CHILL_MASK_COUNT ? chill_mask_table[type].nargs : -1;
}

const char *chill_mask_arg_name(int type, int i) {
    if (type < 0 || type >= CHILL_MASK_COUNT || i < 0 || i >= chill_mask_table[type].nargs)
        return NULL;
    return chill_mask_table[type].arg_names[i];
}

int chill_mask_lookup(const char *name) {
    for (int t = 0; name != NULL && t < CHILL_MASK_COUNT; t++)
        if (strcasecmp(name, chill_mask_table[t].name) == 0)
            return t;
    return -1;
}

int chill_mask_allows(const chill_mask *m, int64_t q, int64_t k) {
    return chill_mask_ops_of(m)->allows(m->arg, q, k);
}

chill_range chill_mask_k_range(const chill_mask *m, int64_t q, int64_t n_k) {
    return chill_mask_ops_of(m)->k_range(m->arg, q, n_k);
}

chill_range chill_mask_q_range(const chill_mask *m, int64_t k, int64_t q_lo, int64_t q_hi) {
    return chill_mask_ops_of(m)->q_range(m->arg, k, q_lo, q_hi);
}

chill_range chill_mask_full_k_range(const chill_mask *m, int64_t q0, int64_t q1, int64_t n_k) {
    return chill_mask_ops_of(m)->full_k_range(m->arg, q0, q1, n_k);
}

int chill_mask_may_be_empty(const chill_mask *m, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    return chill_mask_ops_of(m)->may_be_empty(m->arg, q_lo, q_hi, n_k);
}
