/* The mask table: for each registered mask its name, argument names and its
 * functions behind pointers, for code that is not a kernel (parser, verify,
 * plot, the CPU kernel's partial tiles). Kernels that want the predicate
 * inlined dispatch on chill_mask.type over masks/list.h instead. */
#ifndef CHILL_MASK_REGISTRY_H
#define CHILL_MASK_REGISTRY_H

#include "mask.h"

typedef struct chill_mask_ops {
    const char *name;
    int nargs;
    const char *arg_names[CHILL_MASK_MAX_ARGS];
    int64_t arg_min[CHILL_MASK_MAX_ARGS]; /* smallest accepted value of each argument */
    bool (*allows)(const int64_t *a, int64_t q, int64_t k);
    chill_range (*k_range)(const int64_t *a, int64_t q, int64_t n_k);
    chill_range (*q_range)(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi);
    chill_range (*full_k_range)(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k);
    bool (*may_be_empty)(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k);
    /* bias[j] = 0 where q attends k0 + j, -INFINITY where not, for j < n:
     * the predicate inlined in a loop, for partial tiles. */
    void (*fill_bias)(const int64_t *a, int64_t q, int64_t k0, int n, float *bias);
} chill_mask_ops;

extern const chill_mask_ops chill_mask_table[CHILL_MASK_COUNT];

/* The ops of m, or NULL when m->type is not registered. */
const chill_mask_ops *chill_mask_ops_of(const chill_mask *m);

#endif
