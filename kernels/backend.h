/* Inside libchill: what the API layer (kernels/api.c) calls once it has
 * validated a chill_params. Each kernel family sits behind these few
 * functions, so adding one (a Hopper path, say) touches api.c in one place.
 *
 * Where a call's pointers live is asked of the CUDA runtime once per call
 * (chill_cuda_locate_lengths, chill_cuda_locate_tensors) and recorded in a
 * chill_where, which api.c's checks and the CUDA backend's then read. */
#ifndef CHILL_BACKEND_H
#define CHILL_BACKEND_H

#include "chill.h"

/* What memory a pointer is in: host memory is also anything the CUDA runtime
 * does not know (no GPU, a build without CUDA, a NULL pointer). */
typedef enum chill_mem { CHILL_MEM_HOST = 0, CHILL_MEM_DEVICE, CHILL_MEM_MANAGED } chill_mem;

/* Where one pointer lives: its memory and, for device or managed memory, the
 * device ordinal. A pointer offset into the same allocation lives there too. */
typedef struct chill_place {
    chill_mem mem;
    int device;
} chill_place;

/* Where a call's pointers live. k, v, out and lse are located only when q is
 * device or managed memory (a call for CUDA); otherwise they are recorded as
 * host memory unasked. */
typedef struct chill_where {
    chill_place seq_lens_q, seq_lens_k, cu_seqlens_q, cu_seqlens_k;
    chill_place q, k, v, out, lse;
} chill_where;

/* The CPU kernel (kernels/cpu/). p is valid, its strides filled in. */
chill_status chill_cpu_forward(const chill_params *p, chill_error *err);

#ifdef CHILL_WITH_CUDA
/* Records in w where p's length and offset arrays live: one pointer query
 * each that is not NULL. */
void chill_cuda_locate_lengths(const chill_params *p, chill_where *w);
/* Records in w where q lives and, when it is device or managed memory, where
 * k, v, out and lse do: one pointer query each that is not NULL. */
void chill_cuda_locate_tensors(const chill_params *p, chill_where *w);
/* The CUDA kernels (kernels/cuda/): launches on p->stream, does not wait. w
 * says where p's pointers live (both locate functions above filled it). */
chill_status chill_cuda_forward(const chill_params *p, const chill_where *w, chill_error *err);
int chill_cuda_healthy(void);
/* Whether the CUDA kernels take calls of this dtype and head dim. */
int chill_cuda_supports(chill_dtype dtype, int64_t head_dim);
#endif

/* Fills err (when not NULL) and returns status; message in printf form. */
chill_status chill_fail(chill_error *err, chill_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
