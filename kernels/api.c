/* libchill's API layer: parameter defaults, validation, dispatch to the CPU or
 * CUDA kernel, the exact attended-pair count, and the small name helpers.
 *
 * chill_forward() validates everything a kernel relies on before anything is
 * written, so kernels see only valid calls with their strides and sm_scale
 * filled in. The choices it makes for the whole library: seq_q and seq_k are at
 * least 1 (per-sequence lengths may be 0: such rows attend no key); strides are
 * never negative; with cu_seqlens, seq_lens (optional) count the valid rows
 * of each packed sequence. seq_lens and cu_seqlens are checked when they are
 * host memory; a CUDA call may pass them in device memory instead, and then
 * its kernel reads them in place. Where each pointer lives is asked of CUDA
 * once per call (a chill_where, kernels/backend.h), read by the checks here
 * and handed to the CUDA backend. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "registry.h"

#define Q_OFFSET_LIMIT ((int64_t)1 << 40)

void chill_params_init(chill_params *p) {
    memset(p, 0, sizeof *p);
    p->q_offset = CHILL_Q_OFFSET_AUTO;
    p->mask.type = CHILL_MASK_full;
}

chill_status chill_fail(chill_error *err, chill_status status, const char *fmt, ...) {
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

#define INVALID(...) chill_fail(err, CHILL_ERR_INVALID, __VA_ARGS__)

/* ---- validation ----------------------------------------------------------- */

static chill_status check_extent(const char *name, int64_t v, chill_error *err) {
    if (v < 1)
        return INVALID("%s = %lld: must be at least 1", name, (long long)v);
    return CHILL_OK;
}

/* The tensor's strides (its defaults when all zero) and that its largest
 * element offset, for extents [nb, nh, nt, nd], fits in int64 bytes. */
static chill_status check_tensor(const char *name, chill_tensor *t, int packed, int64_t nb, int64_t nh, int64_t nt,
                                 int64_t nd, size_t esize, chill_error *err) {
    if (t->data == NULL)
        return INVALID("%s.data is NULL: every tensor but lse is required", name);
    int64_t n, bytes;
    if (__builtin_mul_overflow(nb, nh, &n) || __builtin_mul_overflow(n, nt, &n) || __builtin_mul_overflow(n, nd, &n) ||
        __builtin_mul_overflow(n, (int64_t)esize, &bytes))
        return INVALID("%s: %lld x %lld x %lld x %lld elements overflow 64-bit sizes", name, (long long)nb,
                       (long long)nh, (long long)nt, (long long)nd);
    if (t->stride[0] == 0 && t->stride[1] == 0 && t->stride[2] == 0) {
        t->stride[2] = nd;
        t->stride[1] = nt * nd;
        t->stride[0] = nh * nt * nd;
        return CHILL_OK;
    }
    int64_t last = nd - 1, term;
    int64_t extent[3] = {packed ? 1 : nb, nh, nt};
    for (int i = 0; i < 3; i++) {
        if (t->stride[i] < 0)
            return INVALID("%s.stride[%d] = %lld: strides are >= 0 (all zero: contiguous)", name, i,
                           (long long)t->stride[i]);
        if (__builtin_mul_overflow(extent[i] - 1, t->stride[i], &term) || __builtin_add_overflow(last, term, &last))
            return INVALID("%s: the largest element offset overflows 64 bits with strides (%lld, %lld, %lld)", name,
                           (long long)t->stride[0], (long long)t->stride[1], (long long)t->stride[2]);
    }
    if (__builtin_mul_overflow(last + 1, (int64_t)esize, &bytes))
        return INVALID("%s: the largest byte offset overflows 64 bits with strides (%lld, %lld, %lld)", name,
                       (long long)t->stride[0], (long long)t->stride[1], (long long)t->stride[2]);
    return CHILL_OK;
}

static chill_status check_cu_seqlens(const char *name, const int32_t *cu, int64_t batch, int64_t limit,
                                     const char *limit_name, chill_error *err) {
    if (cu[0] != 0)
        return INVALID("%s[0] = %d: packed offsets start at 0", name, cu[0]);
    for (int64_t b = 0; b < batch; b++)
        if (cu[b + 1] < cu[b])
            return INVALID("%s[%lld] = %d is below %s[%lld] = %d: offsets never decrease", name, (long long)b + 1,
                           cu[b + 1], name, (long long)b, cu[b]);
    if (cu[batch] > limit)
        return INVALID("%s[%lld] = %d: the last offset is at most %s = %lld", name, (long long)batch, cu[batch],
                       limit_name, (long long)limit);
    return CHILL_OK;
}

static chill_status check_seq_lens(const char *name, const int32_t *lens, const int32_t *cu, int64_t batch,
                                   int64_t limit, const char *limit_name, chill_error *err) {
    for (int64_t b = 0; b < batch; b++) {
        int64_t hi = cu != NULL ? cu[b + 1] - cu[b] : limit;
        if (lens[b] < 0 || lens[b] > hi)
            return INVALID("%s[%lld] = %d: accepted 0..%lld (%s)", name, (long long)b, lens[b], (long long)hi,
                           cu != NULL ? "the packed length of the sequence" : limit_name);
    }
    return CHILL_OK;
}

static chill_status check_mask(const chill_mask *m, chill_error *err) {
    const chill_mask_ops *ops = chill_mask_ops_of(m);
    if (ops == NULL)
        return INVALID("mask.type = %d: accepted 0..%d (the registered masks)", m->type, CHILL_MASK_COUNT - 1);
    for (int i = 0; i < ops->nargs; i++)
        if (m->arg[i] < ops->arg_min[i] || m->arg[i] > CHILL_MASK_ARG_MAX)
            return INVALID("mask %s: %s (mask.arg[%d]) = %lld: accepted %lld..%lld", ops->name, ops->arg_names[i], i,
                           (long long)m->arg[i], (long long)ops->arg_min[i], (long long)CHILL_MASK_ARG_MAX);
    return CHILL_OK;
}

#define CHECK(call)                   \
    do {                              \
        chill_status s_ = (call);     \
        if (s_ != CHILL_OK)           \
            return s_;                \
    } while (0)

#ifndef CHILL_WITH_CUDA
/* Without CUDA every pointer is host memory. */
static void chill_cuda_locate_lengths(const chill_params *p, chill_where *w) {
    (void)p;
    w->seq_lens_q = w->seq_lens_k = w->cu_seqlens_q = w->cu_seqlens_k = (chill_place){CHILL_MEM_HOST, -1};
}

/* Without CUDA every pointer is host memory. */
static void chill_cuda_locate_tensors(const chill_params *p, chill_where *w) {
    (void)p;
    w->q = w->k = w->v = w->out = w->lse = (chill_place){CHILL_MEM_HOST, -1};
}
#endif

/* Records in w where the call's lengths and offsets live; whether any is
 * device memory. A CUDA call may pass them so (its kernel reads them in
 * place); they cannot be read, so not checked, here. Managed memory counts as
 * host memory here: it can be read. */
static int lengths_on_device(const chill_params *p, chill_where *w) {
    chill_cuda_locate_lengths(p, w);
    return w->seq_lens_q.mem == CHILL_MEM_DEVICE || w->seq_lens_k.mem == CHILL_MEM_DEVICE ||
           w->cu_seqlens_q.mem == CHILL_MEM_DEVICE || w->cu_seqlens_k.mem == CHILL_MEM_DEVICE;
}

/* The call's geometry: extents, heads, lengths, packing, mask and q_offset,
 * all that the attended pairs depend on; the contents of the length and
 * offset arrays only when read_arrays. */
static chill_status check_geometry(const chill_params *v, int read_arrays, chill_error *err) {
    CHECK(check_extent("batch", v->batch, err));
    CHECK(check_extent("heads_q", v->heads_q, err));
    CHECK(check_extent("heads_kv", v->heads_kv, err));
    CHECK(check_extent("seq_q", v->seq_q, err));
    CHECK(check_extent("seq_k", v->seq_k, err));
    if (v->heads_q % v->heads_kv != 0)
        return INVALID("heads_q = %lld is not a multiple of heads_kv = %lld", (long long)v->heads_q,
                       (long long)v->heads_kv);
    int packed = v->cu_seqlens_q != NULL;
    if (packed != (v->cu_seqlens_k != NULL))
        return INVALID("%s is set without %s: packed layouts give both", packed ? "cu_seqlens_q" : "cu_seqlens_k",
                       packed ? "cu_seqlens_k" : "cu_seqlens_q");
    if (packed && read_arrays) {
        CHECK(check_cu_seqlens("cu_seqlens_q", v->cu_seqlens_q, v->batch, v->seq_q, "seq_q", err));
        CHECK(check_cu_seqlens("cu_seqlens_k", v->cu_seqlens_k, v->batch, v->seq_k, "seq_k", err));
    }
    if (v->seq_lens_q != NULL && read_arrays)
        CHECK(check_seq_lens("seq_lens_q", v->seq_lens_q, v->cu_seqlens_q, v->batch, v->seq_q, "seq_q", err));
    if (v->seq_lens_k != NULL && read_arrays)
        CHECK(check_seq_lens("seq_lens_k", v->seq_lens_k, v->cu_seqlens_k, v->batch, v->seq_k, "seq_k", err));
    CHECK(check_mask(&v->mask, err));
    if (v->q_offset != CHILL_Q_OFFSET_AUTO && (v->q_offset < -Q_OFFSET_LIMIT || v->q_offset > Q_OFFSET_LIMIT))
        return INVALID("q_offset = %lld: accepted -2^40..2^40, or CHILL_Q_OFFSET_AUTO", (long long)v->q_offset);
    return CHILL_OK;
}

/* Checks *p and copies it to *v with the defaults filled in; records in w
 * where its pointers live. */
static chill_status validate(const chill_params *p, chill_params *v, chill_where *w, chill_error *err) {
    if (p == NULL)
        return INVALID("params is NULL");
    *v = *p;
    if (v->dtype != CHILL_F32 && v->dtype != CHILL_F16 && v->dtype != CHILL_BF16)
        return INVALID("dtype = %d: accepted CHILL_F32 (0), CHILL_F16 (1), CHILL_BF16 (2)", (int)v->dtype);
    if (v->head_dim < CHILL_HEAD_DIM_MIN || v->head_dim > CHILL_HEAD_DIM_MAX || v->head_dim % 8 != 0)
        return INVALID("head_dim = %lld: accepted %d..%d, a multiple of 8", (long long)v->head_dim, CHILL_HEAD_DIM_MIN,
                       CHILL_HEAD_DIM_MAX);
    int device_lengths = lengths_on_device(v, w);
    CHECK(check_geometry(v, !device_lengths, err));
    int packed = v->cu_seqlens_q != NULL;
    size_t es = chill_dtype_size(v->dtype);
    CHECK(check_tensor("q", &v->q, packed, v->batch, v->heads_q, v->seq_q, v->head_dim, es, err));
    CHECK(check_tensor("k", &v->k, packed, v->batch, v->heads_kv, v->seq_k, v->head_dim, es, err));
    CHECK(check_tensor("v", &v->v, packed, v->batch, v->heads_kv, v->seq_k, v->head_dim, es, err));
    CHECK(check_tensor("out", &v->out, packed, v->batch, v->heads_q, v->seq_q, v->head_dim, es, err));
    if (v->lse.data != NULL) {
        CHECK(check_tensor("lse", &v->lse, packed, v->batch, v->heads_q, v->seq_q, 1, sizeof(float), err));
    }
    chill_cuda_locate_tensors(v, w);
    if (device_lengths && w->q.mem == CHILL_MEM_HOST)
        return INVALID("seq_lens / cu_seqlens are device memory but q is host memory: the CPU kernel reads them "
                       "from host memory");
    if (!isfinite(v->sm_scale) || v->sm_scale < 0.0f)
        return INVALID("sm_scale = %g: accepted a finite value >= 0 (0: 1/sqrt(head_dim))", (double)v->sm_scale);
    if (v->sm_scale == 0.0f)
        v->sm_scale = (float)(1.0 / sqrt((double)v->head_dim));
    return CHILL_OK;
}

/* ---- entry points ------------------------------------------------------- */

chill_status chill_forward(const chill_params *p, chill_error *err) {
    chill_params v;
    chill_where w;
    chill_status s = validate(p, &v, &w, err);
    if (s != CHILL_OK)
        return s;
#ifdef CHILL_WITH_CUDA
    if (w.q.mem != CHILL_MEM_HOST)
        s = chill_cuda_forward(&v, &w, err);
    else
#endif
        s = chill_cpu_forward(&v, err);
    if (s == CHILL_OK && err != NULL) {
        err->status = CHILL_OK;
        err->message[0] = '\0';
    }
    return s;
}

/* Keys in [0, n_k) that query q attends: the full part of its range counted
 * whole, the rest by the predicate. */
static int64_t pairs_of_query(const chill_mask_ops *m, const int64_t *a, int64_t q, int64_t n_k) {
    chill_range r = chill_range_clip(m->k_range(a, q, n_k), 0, n_k - 1);
    if (chill_range_is_empty(r))
        return 0;
    chill_range f = chill_range_clip(m->full_k_range(a, q, q, n_k), r.lo, r.hi);
    int64_t n = 0;
    if (chill_range_is_empty(f))
        f = chill_range_make(r.hi + 1, r.hi);
    else
        n = f.hi - f.lo + 1;
    for (int64_t k = r.lo; k < f.lo; k++)
        n += m->allows(a, q, k);
    for (int64_t k = f.hi + 1; k <= r.hi; k++)
        n += m->allows(a, q, k);
    return n;
}

/* Needs only the geometry: tensors, dtype and head_dim are not looked at.
 * Lengths in device memory cannot be counted here: -1, as for an invalid call. */
int64_t chill_attended_pairs(const chill_params *p) {
    chill_where w;
    if (p == NULL || lengths_on_device(p, &w) || check_geometry(p, 1, NULL) != CHILL_OK)
        return -1;
    const chill_params v = *p;
    const chill_mask_ops *m = chill_mask_ops_of(&v.mask);
    int64_t total = 0, n = 0, last_nq = -1, last_nk = -1, last_off = 0;
    for (int64_t b = 0; b < v.batch; b++) {
        int64_t nq = v.seq_q, nk = v.seq_k;
        if (v.cu_seqlens_q != NULL) {
            nq = v.cu_seqlens_q[b + 1] - v.cu_seqlens_q[b];
            nk = v.cu_seqlens_k[b + 1] - v.cu_seqlens_k[b];
        }
        if (v.seq_lens_q != NULL)
            nq = v.seq_lens_q[b];
        if (v.seq_lens_k != NULL)
            nk = v.seq_lens_k[b];
        int64_t off = v.q_offset == CHILL_Q_OFFSET_AUTO ? nk - nq : v.q_offset;
        if (nq != last_nq || nk != last_nk || off != last_off) { /* a padded batch counts once */
            n = 0;
            for (int64_t i = 0; i < nq; i++)
                n += pairs_of_query(m, v.mask.arg, off + i, nk);
            last_nq = nq, last_nk = nk, last_off = off;
        }
        total += n * v.heads_q;
    }
    return total;
}

int chill_gpu_supports(chill_dtype dtype, int64_t head_dim) {
#ifdef CHILL_WITH_CUDA
    return chill_cuda_supports(dtype, head_dim);
#else
    (void)dtype;
    (void)head_dim;
    return 0;
#endif
}

int chill_device_healthy(void) {
#ifdef CHILL_WITH_CUDA
    return chill_cuda_healthy();
#else
    return 0;
#endif
}

const char *chill_status_name(chill_status s) {
    switch (s) {
    case CHILL_OK: return "OK";
    case CHILL_ERR_INVALID: return "INVALID";
    case CHILL_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case CHILL_ERR_NOMEM: return "NOMEM";
    case CHILL_ERR_DEVICE: return "DEVICE";
    }
    return "UNKNOWN";
}

static const char *const dtype_names[] = {"FP32", "FP16", "BF16"};

const char *chill_dtype_name(chill_dtype t) {
    return (unsigned)t < sizeof dtype_names / sizeof *dtype_names ? dtype_names[t] : "UNKNOWN";
}

size_t chill_dtype_size(chill_dtype t) {
    return t == CHILL_F32 ? 4 : t == CHILL_F16 || t == CHILL_BF16 ? 2 : 0;
}

int chill_dtype_parse(const char *name, chill_dtype *t) {
    for (int i = 0; name != NULL && i < (int)(sizeof dtype_names / sizeof *dtype_names); i++)
        if (strcasecmp(name, dtype_names[i]) == 0) {
            *t = (chill_dtype)i;
            return 0;
        }
    return -1;
}
