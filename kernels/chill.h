/* libchill: exact sparse flash attention, the public API.
 *
 * One call, chill_forward(), computes
 *     out = softmax(sm_scale * q k^T over the attended keys) v
 * for every (batch, query head, query) with fp32 accumulation, on the CPU when
 * the tensors are in host memory and on the GPU when they are device pointers.
 * The mask is computed in place from positions (masks/), so a masked call
 * reads nothing more than a dense one. The daemon, chillctl, the tests and the
 * Python binding all come through here.
 *
 * Shapes: q [B, Hq, Tq, D], k and v [B, Hkv, Tk, D], out like q, lse [B, Hq, Tq]
 * (float32). Each tensor carries its strides in elements for batch, head and
 * token (the head-dim stride is 1), so BHTD and BTHD are the same call. With
 * cu_seqlens the layout is packed instead: sequence b owns token rows
 * cu_seqlens[b] .. cu_seqlens[b+1]-1 and the batch stride is unused.
 *
 * Rows: sequence b owns its first seq_lens_q[b] query rows (without
 * seq_lens_q: all seq_q of them, or all its packed rows). An owned row that
 * attends no key gets zeros in out and -inf in lse. Rows no sequence owns
 * (past seq_lens_q[b], or after cu_seqlens_q[batch]) are not written, on the
 * CPU and on the GPU: they keep what the caller left there.
 *
 * Errors: every function that can fail returns a chill_status and, when err is
 * not NULL, fills err->message with what was wrong and what is accepted. On an
 * invalid argument nothing is written. */
#ifndef CHILL_H
#define CHILL_H

#include <stddef.h>
#include <stdint.h>

#include "../masks/mask.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum chill_status {
    CHILL_OK = 0,
    CHILL_ERR_INVALID,     /* a bad argument; the message names it and the accepted values */
    CHILL_ERR_UNSUPPORTED, /* valid, but not supported here (this build, this device) */
    CHILL_ERR_NOMEM,       /* an allocation failed */
    CHILL_ERR_DEVICE,      /* a CUDA call or launch failed; see chill_device_healthy() */
} chill_status;

typedef enum chill_dtype {
    CHILL_F32 = 0,
    CHILL_F16,
    CHILL_BF16,
} chill_dtype;

typedef struct chill_error {
    chill_status status;
    char message[512];
} chill_error;

/* A tensor: its first element and its strides, in elements, along batch, head
 * and token. All three strides zero means contiguous in the canonical
 * [B, H, T, D] order (for lse: [B, H, T]). */
typedef struct chill_tensor {
    void *data;
    int64_t stride[3];
} chill_tensor;

#define CHILL_Q_OFFSET_AUTO INT64_MIN /* per sequence: its key count minus its query count */
#define CHILL_HEAD_DIM_MIN 16
#define CHILL_HEAD_DIM_MAX 256

/* One call. out and lse are written only in the query rows the sequences
 * own: rows past a sequence's length (seq_lens_q, cu_seqlens_q) keep what the
 * caller left there. */
typedef struct chill_params {
    chill_dtype dtype;
    int64_t batch, heads_q, heads_kv, seq_q, seq_k, head_dim;
    chill_tensor q, k, v, out;
    chill_tensor lse;              /* float32 log-sum-exp (natural log, of the scaled scores); data NULL: not wanted */
    const int32_t *seq_lens_q;     /* [batch] valid queries per sequence, each <= seq_q; NULL: all seq_q */
    const int32_t *seq_lens_k;     /* [batch] valid keys per sequence, each <= seq_k; NULL: all seq_k */
    const int32_t *cu_seqlens_q;   /* [batch+1] packed layout offsets for q/out/lse rows; NULL: padded layout */
    const int32_t *cu_seqlens_k;   /* [batch+1] packed layout offsets for k/v rows; set together with cu_seqlens_q */
    int64_t q_offset;              /* position of query 0; CHILL_Q_OFFSET_AUTO by default */
    chill_mask mask;
    float sm_scale;                /* 0: 1/sqrt(head_dim) */
    int allow_tf32;                /* fp32 on the GPU: allow TF32 tensor cores (below) */
    void *stream;                  /* cudaStream_t for device tensors; NULL: the default stream */
} chill_params;

/* allow_tf32: fp32 is true fp32 (the 1e-5 contract) unless this is set. Set,
 * an fp32 call on a GPU of compute capability 8.0 or newer computes q k^T and
 * p v on TF32 tensor cores: operands rounded to a 10-bit mantissa (as fp16's),
 * fp32 accumulation and softmax, relative error about 1e-3 (within 2e-3),
 * several times faster. It is a permission, never a requirement: where TF32
 * cannot run (an older GPU; q, k or v not 16-byte aligned in start and
 * strides, or out not 8-byte aligned) the call runs true fp32. The CPU always
 * computes in fp32 and ignores it. fp16 and bf16 ignore it. */

/* Zeroed parameters with q_offset = auto and the full mask. */
void chill_params_init(chill_params *p);

/* Runs the attention forward pass described by p: writes out (and lse) in
 * the rows the sequences own and nowhere else; rows past a sequence's length
 * are not written. */
chill_status chill_forward(const chill_params *p, chill_error *err);

/* Attended (query, key) pairs of the call, summed over batch and query heads:
 * the FLOPs are 4 * head_dim * this. Reads only the geometry (extents, heads,
 * lengths, offsets, mask, q_offset), not the tensors. Returns -1 when p is
 * NULL, when any of that geometry is invalid (chill_forward() would refuse
 * it), or when seq_lens or cu_seqlens are in device memory, where they cannot
 * be counted. */
int64_t chill_attended_pairs(const chill_params *p);

/* The CPU thread pool: n threads (0: one per core). Returns the count in use. */
int chill_set_num_threads(int n);

/* Whether this build's GPU kernels take calls of this dtype and head dim
 * (the CPU kernel takes every head dim from 16 to 256, multiple of 8);
 * 0 in a build without CUDA. */
int chill_gpu_supports(chill_dtype dtype, int64_t head_dim);

/* Whether the current CUDA device can still run work (false after a sticky
 * error, or with no GPU at all). */
int chill_device_healthy(void);

const char *chill_status_name(chill_status s);
const char *chill_dtype_name(chill_dtype t);      /* "FP32", "FP16", "BF16" */
size_t chill_dtype_size(chill_dtype t);
int chill_dtype_parse(const char *name, chill_dtype *t); /* 0 on success; names as above, any case */

/* One element between fp32 and the 16-bit types (kernels/convert.c): to the
 * nearest, ties to even; past the largest finite value, infinity; a NaN stays
 * a (quiet) NaN. Half to float and bf16 to float are exact. */
float chill_half_to_float(uint16_t h);
uint16_t chill_float_to_half(float f);
float chill_bf16_to_float(uint16_t h);
uint16_t chill_float_to_bf16(float f);

/* Masks by name (masks/registry.c, masks/spec.c). */
int chill_mask_count(void);
const char *chill_mask_name(int type);            /* NULL when type is out of range */
int chill_mask_nargs(int type);
const char *chill_mask_arg_name(int type, int i);
int chill_mask_lookup(const char *name);          /* the type, or -1 */

/* "sliding_window(64,32)", "causal", "causal()" */
chill_status chill_mask_parse(const char *spec, chill_mask *m, chill_error *err);
/* {"type":"sliding_window","left_context":64,"right_context":32} */
chill_status chill_mask_parse_json(const char *json, chill_mask *m, chill_error *err);
/* Writes the canonical spec ("sliding_window(64,32)") and returns its length, like snprintf. */
int chill_mask_format(const chill_mask *m, char *buf, size_t len);

/* The mask's functions for a registered mask (for code that is not a kernel). */
int chill_mask_allows(const chill_mask *m, int64_t q, int64_t k);
chill_range chill_mask_k_range(const chill_mask *m, int64_t q, int64_t n_k);
chill_range chill_mask_q_range(const chill_mask *m, int64_t k, int64_t q_lo, int64_t q_hi);
chill_range chill_mask_full_k_range(const chill_mask *m, int64_t q0, int64_t q1, int64_t n_k);
int chill_mask_may_be_empty(const chill_mask *m, int64_t q_lo, int64_t q_hi, int64_t n_k);

/* Proves the mask's statements against its predicate over n positions; on the
 * first mismatch returns CHILL_ERR_INVALID with the position, expected and got. */
chill_status chill_mask_verify(const chill_mask *m, int64_t n, chill_error *err);

/* Writes an SVG of the mask over n positions: attended pairs, both range
 * curves, full tiles of tile_size outlined. */
chill_status chill_mask_plot_svg(const chill_mask *m, int64_t n, int tile_size, const char *path, chill_error *err);

#ifdef __cplusplus
}
#endif

#endif
