/* Inside libchill: verify on a mask given by its ops, so the tests can check
 * that a deliberately broken copy of a mask is caught. chill_mask_verify()
 * (kernels/chill.h) is this on a registered mask. */
#ifndef CHILL_MASK_VERIFY_H
#define CHILL_MASK_VERIFY_H

#include "chill.h"
#include "registry.h"

/* Proves ops' statements against ops->allows with arguments args over n
 * positions (see masks/verify.c); the arguments are not range-checked. */
chill_status chill_mask_verify_ops(const chill_mask_ops *ops, const int64_t *args, int64_t n, chill_error *err);

#endif
