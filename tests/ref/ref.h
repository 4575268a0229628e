/* Test helpers for every kernel (CPU here, CUDA in tests/gpu): a float64
 * reference straight from the definition, random inputs, NaN poisoning and
 * the error measures the numerics contract is stated in.
 *
 * Buffers are addressed exactly as the call addresses them: the reference
 * writes its output and lse in doubles at the element offsets p's out and lse
 * use (all-zero strides: contiguous), so a kernel's result and the reference
 * compare element by element, padded, strided and packed layouts alike. */
#ifndef CHILL_TEST_REF_H
#define CHILL_TEST_REF_H

#include <stddef.h>
#include <stdint.h>

#include "chill.h"

/* out = softmax(sm_scale q k^T over the attended keys) v per query row, in
 * float64: for every (query, key) the mask predicate and both lengths decide.
 * Rows with no attended key, and rows no sequence owns, get zeros and lse
 * -inf. out and lse (NULL: not wanted) are as large as p's out and lse. */
void chill_ref_forward(const chill_params *p, double *out, double *lse);

/* Elements spanned by tensor t of p (its largest element offset + 1), for
 * extents heads x seq x dim; which = 'q', 'k', 'v', 'o' (out) or 'l' (lse). */
size_t chill_ref_span(const chill_params *p, char which);

/* A tiny seeded generator, so every failure can print what reproduces it. */
uint64_t chill_ref_rand(uint64_t *state);

/* n values uniform in [-1, 1], exactly representable in t. */
void chill_ref_fill(void *data, chill_dtype t, size_t n, uint64_t *state);

/* n NaNs of type t. */
void chill_ref_poison(void *data, chill_dtype t, size_t n);

/* Element i of a buffer of type t, as a double. */
double chill_ref_value(const void *data, chill_dtype t, size_t i);

/* ||out - ref|| / ||ref|| over every element p addresses in out (NaN if any
 * is NaN; the plain norm of the difference when ref is all zeros). */
double chill_ref_rel_error(const chill_params *p, const double *ref);

/* The largest |lse - ref| over the rows p addresses; infinity when one is
 * -inf and the other is not, NaN when lse holds a NaN. */
double chill_ref_lse_error(const chill_params *p, const double *ref);

/* Elements among the first n of out (which = 'o') or lse ('l') that p does
 * not address and that are no longer NaN: writes outside the tensor. */
size_t chill_ref_stray_writes(const chill_params *p, char which, size_t n);

#endif
