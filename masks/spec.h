/* Inside libchill: the checks and names behind the mask spec parser
 * (masks/spec.c), shared with verify, plot, chillctl and the API layer, so
 * every place that takes a chill_mask refuses the same things in the same
 * words. The by-name API is in kernels/chill.h. */
#ifndef CHILL_MASK_SPEC_H
#define CHILL_MASK_SPEC_H

#include "chill.h"
#include "registry.h"

/* The largest n chill_mask_verify (it holds an (n + n/4) x n table) and
 * chill_mask_plot_svg accept; also the largest plot tile size. */
#define CHILL_VERIFY_N_MAX 4096
#define CHILL_PLOT_N_MAX 4096

/* CHILL_OK when m's type is registered and each of its arguments lies in
 * [arg_min, CHILL_MASK_ARG_MAX]; else CHILL_ERR_INVALID naming the argument
 * and the accepted range. */
chill_status chill_mask_check(const chill_mask *m, chill_error *err);

/* "sliding_window(left_context, right_context)": the mask's name and its
 * argument names. Returns the length, like snprintf. */
int chill_mask_signature(const chill_mask_ops *ops, char *buf, size_t len);

/* The canonical spec of a mask given by its ops and arguments,
 * "sliding_window(64,32)". Returns the length, like snprintf. */
int chill_mask_format_ops(const chill_mask_ops *ops, const int64_t *args, char *buf, size_t len);

#endif
