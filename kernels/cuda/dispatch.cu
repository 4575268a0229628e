/* The CUDA backend's entry points (kernels/backend.h): where a call's pointers
 * live, the device-side checks api.c cannot make (each pointer on the current
 * device, the architecture, alignment, supported head dims), the choice of a
 * kernel family (fp32: TF32 tensor cores or true fp32) and of a tile
 * configuration from the tuning table, and the launch on the caller's stream.
 * Nothing here synchronizes or allocates: a call costs one pointer query per
 * pointer it passes (chill_cuda_locate_*, once per call, however many chunks
 * it runs as), a cudaGetDevice and one kernel launch per chunk; a device's
 * compute capability is queried once per process. */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "backend.h" /* a C header without extern "C" guards */
}
#include "launch.h"

static const int chill_cuda_head_dims[] = {32, 64, 96, 128, 256};

chill_mask_class chill_cuda_mask_class(const chill_mask *m) {
    switch (m->type) {
    case CHILL_MASK_sliding_window:
        return CHILL_MASK_CLASS_BANDED;
    case CHILL_MASK_chunkwise:
        return CHILL_MASK_CLASS_CHUNKED;
    default:
        return CHILL_MASK_CLASS_DENSE;
    }
}

const char *chill_cuda_mask_class_name(chill_mask_class c) {
    return c == CHILL_MASK_CLASS_BANDED ? "banded" : c == CHILL_MASK_CLASS_CHUNKED ? "chunked" : "dense";
}

const char *chill_cuda_family_name(chill_dtype dtype, int tf32) {
    return dtype == CHILL_F32 && tf32 ? "TF32" : chill_dtype_name(dtype);
}

int chill_cuda_candidates(chill_dtype dtype, int tf32, int head_dim, int arch, const chill_cuda_config **out,
                          int max) {
    /* The mma.sync family's table for the dtype, then the Hopper family's. */
    const chill_cuda_config *tables[2] = {chill_cuda_configs_f32, NULL};
    int counts[2] = {chill_cuda_configs_f32_count, 0}, n = 0;
    if (dtype == CHILL_F32 && tf32) {
        tables[0] = chill_cuda_configs_tf32;
        counts[0] = chill_cuda_configs_tf32_count;
    } else if (dtype == CHILL_F16) {
        tables[0] = chill_cuda_configs_f16, tables[1] = chill_cuda_configs_f16_sm90;
        counts[0] = chill_cuda_configs_f16_count, counts[1] = chill_cuda_configs_f16_sm90_count;
    } else if (dtype == CHILL_BF16) {
        tables[0] = chill_cuda_configs_bf16, tables[1] = chill_cuda_configs_bf16_sm90;
        counts[0] = chill_cuda_configs_bf16_count, counts[1] = chill_cuda_configs_bf16_sm90_count;
    }
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < counts[f] && n < max; i++) {
            const chill_cuda_config *c = &tables[f][i];
            if (c->head_dim == head_dim && c->min_arch <= arch && (c->max_arch == 0 || arch <= c->max_arch))
                out[n++] = c;
        }
    return n;
}

/* Where ptr lives, from one pointer query (none for NULL): host memory also
 * when CUDA does not know it or there is no GPU. */
static chill_place chill_cuda_place(const void *ptr) {
    chill_place host = {CHILL_MEM_HOST, -1};
    cudaPointerAttributes at;
    if (ptr == NULL)
        return host;
    if (cudaPointerGetAttributes(&at, ptr) != cudaSuccess) {
        cudaGetLastError();
        return host;
    }
    if (at.type == cudaMemoryTypeDevice)
        return {CHILL_MEM_DEVICE, at.device};
    if (at.type == cudaMemoryTypeManaged)
        return {CHILL_MEM_MANAGED, at.device};
    return host;
}

extern "C" void chill_cuda_locate_lengths(const chill_params *p, chill_where *w) {
    w->seq_lens_q = chill_cuda_place(p->seq_lens_q);
    w->seq_lens_k = chill_cuda_place(p->seq_lens_k);
    w->cu_seqlens_q = chill_cuda_place(p->cu_seqlens_q);
    w->cu_seqlens_k = chill_cuda_place(p->cu_seqlens_k);
}

extern "C" void chill_cuda_locate_tensors(const chill_params *p, chill_where *w) {
    const chill_place host = {CHILL_MEM_HOST, -1};
    w->q = chill_cuda_place(p->q.data);
    const int gpu = w->q.mem != CHILL_MEM_HOST;
    w->k = gpu ? chill_cuda_place(p->k.data) : host;
    w->v = gpu ? chill_cuda_place(p->v.data) : host;
    w->out = gpu ? chill_cuda_place(p->out.data) : host;
    w->lse = gpu ? chill_cuda_place(p->lse.data) : host;
}

static int chill_cuda_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorHardwareStackError:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
        return 1;
    default:
        return 0;
    }
}

extern "C" int chill_cuda_supports(chill_dtype dtype, int64_t head_dim) {
    (void)dtype; /* every dtype has kernels for every head dim below */
    for (int d : chill_cuda_head_dims)
        if (d == head_dim)
            return 1;
    return 0;
}

extern "C" int chill_cuda_healthy(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        return 0;
    }
    size_t free_b, total_b;
    return cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
}

/* Whether t's start and strides are multiples of align bytes. */
static int chill_cuda_aligned(const chill_tensor *t, size_t elem, int align) {
    if ((uintptr_t)t->data % align != 0)
        return 0;
    for (int i = 0; i < 3; i++)
        if ((t->stride[i] * (int64_t)elem) % align != 0)
            return 0;
    return 1;
}

/* Whether an fp32 call runs on TF32 tensor cores: the caller allows it, the
 * device has them (sm_80+), and q, k, v and out are aligned as the
 * tensor-core kernel reads (16-byte cp.async) and writes (8-byte stores).
 * Otherwise fp32 runs true fp32: TF32 is allowed, never required, so a
 * misaligned tensor costs speed, not an error. */
static int chill_cuda_use_tf32(const chill_params *p, int arch) {
    return p->dtype == CHILL_F32 && p->allow_tf32 && arch >= 80 && chill_cuda_aligned(&p->q, sizeof(float), 16) &&
           chill_cuda_aligned(&p->k, sizeof(float), 16) && chill_cuda_aligned(&p->v, sizeof(float), 16) &&
           chill_cuda_aligned(&p->out, sizeof(float), 8);
}

/* Each of the call's device tensors (at, where ptr lives): on the current
 * device, and 16-byte aligned for the tensor-core kernels' cp.async. */
static chill_status chill_cuda_check_tensor(const char *name, const void *ptr, chill_place at, const int64_t *stride,
                                            size_t elem, int align, int device, chill_error *err) {
    if (at.mem == CHILL_MEM_HOST)
        return chill_fail(err, CHILL_ERR_INVALID,
                          "%s is host memory while q is device memory: pass every tensor of a GPU call on the device",
                          name);
    if (at.device != device)
        return chill_fail(err, CHILL_ERR_INVALID, "%s is on device %d but the current device is %d", name, at.device,
                          device);
    if (align > 1) {
        if ((uintptr_t)ptr % align != 0)
            return chill_fail(err, CHILL_ERR_UNSUPPORTED, "%s is not %d-byte aligned; the GPU kernels need it", name,
                              align);
        for (int i = 0; i < 3; i++)
            if ((stride[i] * (int64_t)elem) % align != 0)
                return chill_fail(err, CHILL_ERR_UNSUPPORTED,
                                  "%s's stride %d (%lld elements) is not a multiple of %d bytes; the GPU kernels "
                                  "need it",
                                  name, i, (long long)stride[i], align);
    }
    return CHILL_OK;
}

/* A length or offset array (n entries, at: where it lives): device memory on
 * this device is read by the kernel in place; host memory (what api.c
 * validates) is copied into the kernel parameters, up to
 * CHILL_CUDA_INLINE_SEQS sequences. */
static chill_status chill_cuda_seq_array(const char *name, const int32_t *ptr, chill_place at, int64_t n, int bit,
                                         int32_t *inl, const int32_t **dev_out, int *flags, int device,
                                         chill_error *err) {
    *dev_out = NULL;
    if (ptr == NULL)
        return CHILL_OK;
    if (at.mem != CHILL_MEM_HOST) {
        if (at.device != device)
            return chill_fail(err, CHILL_ERR_INVALID, "%s is on device %d but the current device is %d", name,
                              at.device, device);
        *dev_out = ptr;
        return CHILL_OK;
    }
    if (n > CHILL_CUDA_INLINE_SEQS + 1)
        return chill_fail(err, CHILL_ERR_UNSUPPORTED,
                          "%s in host memory for %lld sequences: the GPU path takes up to %d sequences' lengths and "
                          "offsets from host memory; pass device arrays for more",
                          name, (long long)(bit >= 4 ? n - 1 : n), CHILL_CUDA_INLINE_SEQS);
    memcpy(inl, ptr, (size_t)n * sizeof(int32_t));
    *flags |= bit;
    return CHILL_OK;
}

/* Compute capabilities by device ordinal, as major << 16 | minor; 0 until
 * first asked. A device's never changes within a process, so threads that
 * fill an entry at once store the same value. */
#define CHILL_CUDA_MAX_DEVICES 64
static int chill_cuda_capability[CHILL_CUDA_MAX_DEVICES];

/* The calling thread's current device (asked each call: it is per thread and
 * the caller may switch it) and its compute capability (asked once per device
 * ordinal below CHILL_CUDA_MAX_DEVICES). */
static cudaError_t chill_cuda_current(int *device, int *major, int *minor) {
    cudaError_t e = cudaGetDevice(device);
    if (e != cudaSuccess)
        return e;
    const int cached = (unsigned)*device < CHILL_CUDA_MAX_DEVICES
                           ? __atomic_load_n(&chill_cuda_capability[*device], __ATOMIC_RELAXED)
                           : 0;
    if (cached != 0) {
        *major = cached >> 16;
        *minor = cached & 0xffff;
        return cudaSuccess;
    }
    e = cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, *device);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, *device);
    if (e == cudaSuccess && (unsigned)*device < CHILL_CUDA_MAX_DEVICES)
        __atomic_store_n(&chill_cuda_capability[*device], *major << 16 | *minor, __ATOMIC_RELAXED);
    return e;
}

chill_status chill_cuda_prepare(const chill_params *p, const chill_where *w, int *arch, chill_cuda_args *a,
                                chill_error *err) {
    int device, major, minor;
    cudaError_t e = chill_cuda_current(&device, &major, &minor);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return chill_fail(err, CHILL_ERR_DEVICE, "cannot query the current CUDA device: %s", cudaGetErrorString(e));
    }
    *arch = major * 10 + minor;
    if (!chill_cuda_supports(p->dtype, p->head_dim))
        return chill_fail(err, CHILL_ERR_UNSUPPORTED,
                          "head_dim %lld is not supported on the GPU; accepted: 32, 64, 96, 128, 256",
                          (long long)p->head_dim);
    if (p->dtype != CHILL_F32 && *arch < 80)
        return chill_fail(err, CHILL_ERR_UNSUPPORTED,
                          "%s on the GPU needs compute capability 8.0 or newer; this device is %d.%d",
                          chill_dtype_name(p->dtype), major, minor);
    if (p->seq_q > INT32_MAX || p->seq_k > INT32_MAX || p->heads_q > 65535 || p->batch > 65535)
        return chill_fail(err, CHILL_ERR_UNSUPPORTED,
                          "shape too large for the GPU grid: batch and heads_q up to 65535, seq_q and seq_k up to "
                          "2^31-1");

    size_t elem = chill_dtype_size(p->dtype);
    int align = p->dtype == CHILL_F32 ? 1 : 16;
    chill_status st;
    if ((st = chill_cuda_check_tensor("q", p->q.data, w->q, p->q.stride, elem, align, device, err)) != CHILL_OK ||
        (st = chill_cuda_check_tensor("k", p->k.data, w->k, p->k.stride, elem, align, device, err)) != CHILL_OK ||
        (st = chill_cuda_check_tensor("v", p->v.data, w->v, p->v.stride, elem, align, device, err)) != CHILL_OK ||
        (st = chill_cuda_check_tensor("out", p->out.data, w->out, p->out.stride, elem, p->dtype == CHILL_F32 ? 1 : 4,
                                      device, err)) != CHILL_OK)
        return st;
    if (p->lse.data != NULL && (st = chill_cuda_check_tensor("lse", p->lse.data, w->lse, p->lse.stride, sizeof(float),
                                                             1, device, err)) != CHILL_OK)
        return st;
    a->inline_seqs = 0;
    if ((st = chill_cuda_seq_array("seq_lens_q", p->seq_lens_q, w->seq_lens_q, p->batch, 1, a->seqs.lens_q,
                                   &a->seq_lens_q, &a->inline_seqs, device, err)) != CHILL_OK ||
        (st = chill_cuda_seq_array("seq_lens_k", p->seq_lens_k, w->seq_lens_k, p->batch, 2, a->seqs.lens_k,
                                   &a->seq_lens_k, &a->inline_seqs, device, err)) != CHILL_OK ||
        (st = chill_cuda_seq_array("cu_seqlens_q", p->cu_seqlens_q, w->cu_seqlens_q, p->batch + 1, 4, a->seqs.cu_q,
                                   &a->cu_q, &a->inline_seqs, device, err)) != CHILL_OK ||
        (st = chill_cuda_seq_array("cu_seqlens_k", p->cu_seqlens_k, w->cu_seqlens_k, p->batch + 1, 8, a->seqs.cu_k,
                                   &a->cu_k, &a->inline_seqs, device, err)) != CHILL_OK)
        return st;

    a->q = p->q.data;
    a->k = p->k.data;
    a->v = p->v.data;
    a->out = p->out.data;
    a->lse = (float *)p->lse.data;
    for (int i = 0; i < 3; i++) {
        a->q_stride[i] = p->q.stride[i];
        a->k_stride[i] = p->k.stride[i];
        a->v_stride[i] = p->v.stride[i];
        a->o_stride[i] = p->out.stride[i];
        a->l_stride[i] = p->lse.stride[i];
    }
    a->seq_q = (int)p->seq_q;
    a->seq_k = (int)p->seq_k;
    a->heads_q = (int)p->heads_q;
    a->group = (int)(p->heads_q / p->heads_kv);
    a->auto_offset = p->q_offset == CHILL_Q_OFFSET_AUTO;
    a->q_offset = a->auto_offset ? 0 : p->q_offset;
    a->mask = p->mask;
    a->scale_log2 = p->sm_scale * 1.4426950408889634f;
    a->max_q_len = a->seq_q;
    if (a->inline_seqs & 4) {
        a->max_q_len = 0;
        for (int64_t b = 0; b < p->batch; b++) {
            int n = a->seqs.cu_q[b + 1] - a->seqs.cu_q[b];
            a->max_q_len = std::max(a->max_q_len, (a->inline_seqs & 1) ? std::min(n, a->seqs.lens_q[b]) : n);
        }
    }
    return CHILL_OK;
}

chill_status chill_cuda_launch(const chill_params *p, const chill_cuda_args *a, const chill_cuda_config *config,
                               chill_error *err) {
    if (p->batch == 0 || a->max_q_len == 0 || p->heads_q == 0)
        return CHILL_OK;
    cudaError_t e = config->launch(a, (int)p->batch, (cudaStream_t)p->stream);
    if (e == cudaSuccess)
        return CHILL_OK;
    return chill_fail(err, CHILL_ERR_DEVICE, "CUDA kernel %s (%s, head_dim %d) failed to launch: %s%s", config->name,
                      chill_cuda_family_name(config->dtype, config->tf32), config->head_dim, cudaGetErrorString(e),
                      chill_cuda_sticky(e) ? " (the device is unusable until the process restarts)" : "");
}

/* $CHILL_CUDA_CONFIG names the configuration to run, over the tuning table
 * (the GPU tests run every configuration this way); a name not compiled for
 * the call's family (dtype, TF32 or not) and head dim is an error that lists
 * those that are. */
static chill_status chill_cuda_forced_config(const chill_params *p, int arch, int tf32,
                                             const chill_cuda_config **config, chill_error *err) {
    const char *name = getenv("CHILL_CUDA_CONFIG");
    if (name == NULL || name[0] == '\0')
        return CHILL_OK;
    const chill_cuda_config *cand[16];
    int n = chill_cuda_candidates(p->dtype, tf32, (int)p->head_dim, arch, cand, 16);
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(cand[i]->name, name) == 0) {
            *config = cand[i];
            return CHILL_OK;
        }
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " " : "", cand[i]->name);
    }
    return chill_fail(err, CHILL_ERR_UNSUPPORTED, "CHILL_CUDA_CONFIG=%s: compiled for %s, head_dim %lld: %s", name,
                      chill_cuda_family_name(p->dtype, tf32), (long long)p->head_dim, list);
}

/* One launch: p has at most CHILL_CUDA_INLINE_SEQS sequences, w says where
 * its pointers live. */
static chill_status chill_cuda_forward_chunk(const chill_params *p, const chill_where *w, chill_error *err) {
    int arch;
    chill_cuda_args a;
    chill_status st = chill_cuda_prepare(p, w, &arch, &a, err);
    if (st != CHILL_OK)
        return st;
    const int tf32 = chill_cuda_use_tf32(p, arch);
    const chill_cuda_config *config = NULL;
    if ((st = chill_cuda_forced_config(p, arch, tf32, &config, err)) != CHILL_OK)
        return st;
    if (config == NULL)
        config = chill_cuda_tuned_config(arch, p->dtype, tf32, (int)p->head_dim, chill_cuda_mask_class(&p->mask));
    if (config == NULL)
        return chill_fail(err, CHILL_ERR_UNSUPPORTED, "no CUDA kernel for %s, head_dim %lld on sm_%d",
                          chill_cuda_family_name(p->dtype, tf32), (long long)p->head_dim, arch);
    return chill_cuda_launch(p, &a, config, err);
}

/* Sequences b0 .. b0 + n - 1 of p as a call of their own: the padded layout
 * moves the tensors' starts by b0 batch strides, the packed layout keeps them
 * and starts its offset arrays at sequence b0. */
static chill_params chill_cuda_chunk(const chill_params *p, int64_t b0, int64_t n) {
    chill_params c = *p;
    c.batch = n;
    if (p->seq_lens_q != NULL)
        c.seq_lens_q = p->seq_lens_q + b0;
    if (p->seq_lens_k != NULL)
        c.seq_lens_k = p->seq_lens_k + b0;
    if (p->cu_seqlens_q != NULL) {
        c.cu_seqlens_q = p->cu_seqlens_q + b0;
        c.cu_seqlens_k = p->cu_seqlens_k + b0;
        return c;
    }
    size_t elem = chill_dtype_size(p->dtype);
    c.q.data = (char *)p->q.data + b0 * p->q.stride[0] * (int64_t)elem;
    c.k.data = (char *)p->k.data + b0 * p->k.stride[0] * (int64_t)elem;
    c.v.data = (char *)p->v.data + b0 * p->v.stride[0] * (int64_t)elem;
    c.out.data = (char *)p->out.data + b0 * p->out.stride[0] * (int64_t)elem;
    if (p->lse.data != NULL)
        c.lse.data = (char *)p->lse.data + b0 * p->lse.stride[0] * (int64_t)sizeof(float);
    return c;
}

/* A call with more sequences than the kernel parameters carry (the daemon's
 * packed batches can have more) runs as several launches on the same stream,
 * CHILL_CUDA_INLINE_SEQS sequences each; nothing waits between them. A
 * chunk's pointers are offsets into the call's allocations, so they live
 * where w says the call's do. */
extern "C" chill_status chill_cuda_forward(const chill_params *p, const chill_where *w, chill_error *err) {
    for (int64_t b0 = 0; b0 < p->batch; b0 += CHILL_CUDA_INLINE_SEQS) {
        chill_params c = chill_cuda_chunk(p, b0, std::min<int64_t>(CHILL_CUDA_INLINE_SEQS, p->batch - b0));
        chill_status st = chill_cuda_forward_chunk(&c, w, err);
        if (st != CHILL_OK)
            return st;
    }
    return CHILL_OK;
}
