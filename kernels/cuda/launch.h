/* Inside the CUDA backend: what a kernel launch receives and how the
 * dispatcher (dispatch.cu) finds the kernels (flash_f16.cu, flash_bf16.cu,
 * flash_tf32.cu, flash_f32.cu).
 *
 * A tile configuration is one compiled kernel: a dtype (for fp32: true fp32
 * or TF32 tensor cores), a head dim, a query tile of bm rows, a key tile of bn
 * rows and a block of warps. Each kernel file contributes a table of them;
 * the tuning table (tuning.cu) names one per (architecture, dtype, head dim,
 * mask class), TF32 counting as a dtype of its own there, and chillctl tune
 * times them. A kernel family adds its own table here: the Hopper family
 * (hopper.cuh: wgmma, sm_90a) has one per 16-bit dtype, searched after the
 * mma.sync family's, and its configurations run on compute capability 9.0
 * only (max_arch). */
#ifndef CHILL_CUDA_LAUNCH_H
#define CHILL_CUDA_LAUNCH_H

#include <cuda_runtime.h>

#include "chill.h"

/* Sequence lengths and packed offsets given in host memory (as api.c
 * validates them) travel inside the kernel parameters, up to this many
 * sequences; device arrays are read in place. */
#define CHILL_CUDA_INLINE_SEQS 256

typedef struct chill_cuda_seqs {
    int32_t lens_q[CHILL_CUDA_INLINE_SEQS], lens_k[CHILL_CUDA_INLINE_SEQS];
    int32_t cu_q[CHILL_CUDA_INLINE_SEQS + 1], cu_k[CHILL_CUDA_INLINE_SEQS + 1];
} chill_cuda_seqs;

/* Everything a kernel reads, by value in its parameter space. Strides are in
 * elements; where a sequence's rows start: chill_seq_geometry() in tile.cuh.
 * A NULL pointer among seq_lens_q .. cu_k with its bit set in inline_seqs
 * (1 seq_lens_q, 2 seq_lens_k, 4 cu_q, 8 cu_k) means the array is in seqs. */
typedef struct chill_cuda_args {
    const void *q, *k, *v;
    void *out;
    float *lse;
    int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3], l_stride[3];
    const int32_t *seq_lens_q, *seq_lens_k, *cu_q, *cu_k;
    int seq_q, seq_k, heads_q, group; /* group: query heads per key/value head */
    int max_q_len;                    /* the longest sequence's queries: the grid covers these */
    int auto_offset;
    int64_t q_offset;
    chill_mask mask;
    float scale_log2; /* sm_scale * log2(e) */
    int inline_seqs;
    chill_cuda_seqs seqs;
} chill_cuda_args;

typedef cudaError_t (*chill_cuda_launch_fn)(const chill_cuda_args *a, int batch, cudaStream_t stream);

typedef struct chill_cuda_config {
    const char *name;      /* "64x64w4b3": bm x bn, warps, minimum blocks per SM */
    chill_dtype dtype;
    int tf32;              /* fp32 on TF32 tensor cores: runs only when the call allows TF32 */
    int head_dim;
    int bm, bn, warps;
    int min_arch;          /* compute capability * 10 it needs */
    chill_cuda_launch_fn launch;
    int max_arch;          /* the newest it runs on (architecture-specific code such as sm_90a); 0: any */
} chill_cuda_config;

extern const chill_cuda_config chill_cuda_configs_f16[];
extern const int chill_cuda_configs_f16_count;
extern const chill_cuda_config chill_cuda_configs_bf16[];
extern const int chill_cuda_configs_bf16_count;
extern const chill_cuda_config chill_cuda_configs_f32[];
extern const int chill_cuda_configs_f32_count;
extern const chill_cuda_config chill_cuda_configs_tf32[];
extern const int chill_cuda_configs_tf32_count;
extern const chill_cuda_config chill_cuda_configs_f16_sm90[]; /* Hopper family; counts are 0 without sm_90a */
extern const int chill_cuda_configs_f16_sm90_count;
extern const chill_cuda_config chill_cuda_configs_bf16_sm90[];
extern const int chill_cuda_configs_bf16_sm90_count;

/* Mask classes of the tuning table: masks whose key range is the whole
 * prefix of the sequence ("dense"), sliding windows ("banded") and chunkwise
 * masks ("chunked": a band of whole chunks, wider than a window and aligned to
 * tiles, so it favours other tiles). A table without "chunked" entries uses
 * the "banded" one. */
typedef enum chill_mask_class {
    CHILL_MASK_CLASS_DENSE = 0,
    CHILL_MASK_CLASS_BANDED,
    CHILL_MASK_CLASS_CHUNKED,
    CHILL_MASK_CLASS_COUNT
} chill_mask_class;

chill_mask_class chill_cuda_mask_class(const chill_mask *m);
const char *chill_cuda_mask_class_name(chill_mask_class c);

/* Candidate configurations for (dtype, head_dim) on an architecture (sm * 10
 * + minor, e.g. 90), from the TF32 table when tf32 (fp32 only); returns the
 * count written into out (at most max). */
int chill_cuda_candidates(chill_dtype dtype, int tf32, int head_dim, int arch, const chill_cuda_config **out,
                          int max);

/* The configuration the tuning table names for the call, or the first
 * candidate when the table has no entry; NULL when none fits. */
const chill_cuda_config *chill_cuda_tuned_config(int arch, chill_dtype dtype, int tf32, int head_dim,
                                                 chill_mask_class c);

/* What a family computes in, as the tuning table and messages name it:
 * "FP32", "FP16", "BF16", or "TF32" (fp32 with tf32). */
const char *chill_cuda_family_name(chill_dtype dtype, int tf32);

struct chill_where; /* kernels/backend.h */

/* Validates p against the device, its pointers where w says they live, and
 * fills a (dispatch.cu). */
chill_status chill_cuda_prepare(const chill_params *p, const struct chill_where *w, int *arch, chill_cuda_args *a,
                                chill_error *err);

/* Launches config on p's stream and checks the launch (dispatch.cu). */
chill_status chill_cuda_launch(const chill_params *p, const chill_cuda_args *a, const chill_cuda_config *config,
                               chill_error *err);

#endif
