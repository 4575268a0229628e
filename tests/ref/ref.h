/* Test helpers for the C tests (tests/unit; tests/gpu checks the CUDA
 * kernels against a torch reference of its own): a float64 reference straight
 * from the definition, random inputs, NaN poisoning and the error measures
 * the numerics contract is stated in.
 *
 * Buffers are addressed exactly as the call addresses them: the reference
 * writes its output and lse in doubles at the element offsets p's out and lse
 * use (all-zero strides: contiguous), so a kernel's result and the reference
 * compare element by element, padded, strided and packed layouts alike.
 * Only the rows a sequence owns are results: sequence b's first seq_lens_q[b]
 * rows (all its seq_q rows, or its cu_seqlens_q rows when packed, without
 * seq_lens_q). Every other element of out and lse is the caller's, and a
 * kernel leaves it as it was. */
#ifndef CHILL_TEST_REF_H
#define CHILL_TEST_REF_H

#include <stddef.h>
#include <stdint.h>

#include "chill.h"

/* out = softmax(sm_scale q k^T over the attended keys) v per owned query
 * row, in float64: for every (query, key) the mask predicate and both lengths
 * decide. Rows with no attended key get zeros and lse -inf; rows no sequence
 * owns are not written. out and lse (NULL: not wanted) are as large as p's
 * out and lse. */
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

/* ||out - ref|| / ||ref|| over the owned rows of out (NaN if any element of
 * them is NaN; the plain norm of the difference when ref is all zeros). */
double chill_ref_rel_error(const chill_params *p, const double *ref);

/* The largest |lse - ref| over the owned rows; infinity when one is -inf and
 * the other is not, NaN when one of them holds a NaN in lse. */
double chill_ref_lse_error(const chill_params *p, const double *ref);

/* Elements among the first n of out (which = 'o') or lse ('l') outside the
 * owned rows that are no longer NaN: writes to padded rows, to rows after the
 * last packed sequence, between strided rows or past the tensor's end. */
size_t chill_ref_stray_writes(const chill_params *p, char which, size_t n);

#endif
