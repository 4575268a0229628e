/* Inside libchill: what the API layer (kernels/api.c) calls once it has
 * validated a chill_params. Each kernel family sits behind these few
 * functions, so adding one (a Hopper path, say) touches api.c in one place. */
#ifndef CHILL_BACKEND_H
#define CHILL_BACKEND_H

#include "chill.h"

/* The CPU kernel (kernels/cpu/). p is valid, its strides filled in. */
chill_status chill_cpu_forward(const chill_params *p, chill_error *err);

#ifdef CHILL_WITH_CUDA
/* Whether p's tensors are device memory (and so the call belongs to CUDA). */
int chill_cuda_owns(const chill_params *p);
/* The CUDA kernels (kernels/cuda/): launches on p->stream, does not wait. */
chill_status chill_cuda_forward(const chill_params *p, chill_error *err);
int chill_cuda_healthy(void);
/* Whether the CUDA kernels take calls of this dtype and head dim. */
int chill_cuda_supports(chill_dtype dtype, int64_t head_dim);
#endif

/* Fills err (when not NULL) and returns status; message in printf form. */
chill_status chill_fail(chill_error *err, chill_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
