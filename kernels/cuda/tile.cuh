/* What every CUDA attention kernel shares: where a sequence's rows live, which
 * key tiles a query tile must visit and which of them are fully open, and the
 * mask predicate dispatched once per tile over masks/list.h.
 *
 * The mask's own functions (masks/<name>.h, inlined) decide everything:
 * k_range of the tile's first and last query bounds the keys visited, and
 * full_k_range marks the key tiles on which no predicate is evaluated. */
#ifndef CHILL_CUDA_TILE_CUH
#define CHILL_CUDA_TILE_CUH

#include <cuda_runtime.h>

#include "launch.h"
#include "mask.h"

/* One (sequence, head) of the call: its lengths, its query offset and the
 * first row of each tensor. */
struct chill_seq {
    int q_len, k_len;
    int64_t q_off;
    const char *q, *k, *v; /* row 0 of this head, as bytes */
    char *out;
    float *lse;
};

/* Entry i of a length or offset array: in device memory, or inline. */
__device__ __forceinline__ int chill_seq_at(const int32_t *dev, const int32_t *inl, int bit, int flags, int i) {
    return (flags & bit) ? inl[i] : dev[i];
}

template <typename T>
__device__ __forceinline__ chill_seq chill_seq_geometry(const chill_cuda_args &a, int b, int h) {
    chill_seq s;
    int64_t q_row = 0, k_row = 0, qb = b, kb = b;
    const int f = a.inline_seqs;
    s.q_len = a.seq_q;
    s.k_len = a.seq_k;
    if (a.cu_q != nullptr || (f & 4)) {
        q_row = chill_seq_at(a.cu_q, a.seqs.cu_q, 4, f, b);
        k_row = chill_seq_at(a.cu_k, a.seqs.cu_k, 8, f, b);
        s.q_len = chill_seq_at(a.cu_q, a.seqs.cu_q, 4, f, b + 1) - (int)q_row;
        s.k_len = chill_seq_at(a.cu_k, a.seqs.cu_k, 8, f, b + 1) - (int)k_row;
        qb = kb = 0;
    }
    if (a.seq_lens_q != nullptr || (f & 1))
        s.q_len = min(s.q_len, chill_seq_at(a.seq_lens_q, a.seqs.lens_q, 1, f, b));
    if (a.seq_lens_k != nullptr || (f & 2))
        s.k_len = min(s.k_len, chill_seq_at(a.seq_lens_k, a.seqs.lens_k, 2, f, b));
    s.q_off = a.auto_offset ? (int64_t)s.k_len - s.q_len : a.q_offset;
    int hk = h / a.group;
    s.q = (const char *)a.q + (qb * a.q_stride[0] + h * a.q_stride[1] + q_row * a.q_stride[2]) * (int64_t)sizeof(T);
    s.k = (const char *)a.k + (kb * a.k_stride[0] + hk * a.k_stride[1] + k_row * a.k_stride[2]) * (int64_t)sizeof(T);
    s.v = (const char *)a.v + (kb * a.v_stride[0] + hk * a.v_stride[1] + k_row * a.v_stride[2]) * (int64_t)sizeof(T);
    s.out = (char *)a.out + (qb * a.o_stride[0] + h * a.o_stride[1] + q_row * a.o_stride[2]) * (int64_t)sizeof(T);
    s.lse = a.lse == nullptr ? nullptr : a.lse + qb * a.l_stride[0] + h * a.l_stride[1] + q_row * a.l_stride[2];
    return s;
}

/* The keys a query tile visits: n_tiles key tiles of bn rows from key k_lo,
 * its first attended key, on. The tiles follow the band rather than multiples
 * of bn, so a band as wide as w keys spans ceil(w / bn) tiles, not one more
 * (sliding_window(16,16) over 32 queries: 64 keys, 2 tiles of 32 rather
 * than 3). Keys from k_end on (one past the last attended key) are not
 * loaded: the last tile's rows there come as zeros and are masked. Also the
 * keys [full_lo, full_hi] every one of its queries attends. */
struct chill_tile_span {
    int k_lo, k_end, n_tiles;
    int64_t full_lo, full_hi;
};

__device__ __forceinline__ chill_tile_span chill_span(const chill_mask &m, int64_t qp0, int64_t qp1, int k_len, int bn) {
    chill_range r0, r1, f;
    switch (m.type) {
#define CHILL_MASK(name, nargs, arg_names, arg_mins)                                                                   \
    case CHILL_MASK_##name:                                                                                            \
        r0 = chill_##name##_k_range(m.arg, qp0, k_len);                                                                \
        r1 = chill_##name##_k_range(m.arg, qp1, k_len);                                                                \
        f = chill_##name##_full_k_range(m.arg, qp0, qp1, k_len);                                                       \
        break;
#include "list.h"
#undef CHILL_MASK
    default:
        r0 = r1 = f = chill_range_empty();
    }
    int64_t lo = chill_max64(chill_min64(r0.lo, r1.lo), 0);
    int64_t hi = chill_min64(chill_max64(r0.hi, r1.hi), (int64_t)k_len - 1);
    chill_tile_span s;
    s.k_lo = lo > hi ? 0 : (int)lo;
    s.k_end = lo > hi ? 0 : (int)hi + 1;
    s.n_tiles = lo > hi ? 0 : (int)((hi - lo) / bn) + 1;
    s.full_lo = f.lo;
    s.full_hi = f.hi;
    return s;
}

/* The query tile a block owns: rows [m0, m_last] of sequence blockIdx.z and
 * query head blockIdx.y. Blocks take the heavy tiles first: with causal masks
 * the last query tiles do the most. False when the tile starts past the
 * sequence's queries (nothing to do). Its key span (chill_query_span) is left
 * to the kernel, which can start loading Q before that mask arithmetic. */
struct chill_query_tile {
    chill_seq seq;
    int m0, m_last;
};

template <typename T>
__device__ __forceinline__ bool chill_query_tile_of(const chill_cuda_args &a, int bm, chill_query_tile &t) {
    t.seq = chill_seq_geometry<T>(a, blockIdx.z, blockIdx.y);
    t.m0 = (gridDim.x - 1 - blockIdx.x) * bm;
    if (t.m0 >= t.seq.q_len)
        return false;
    t.m_last = min(t.m0 + bm, t.seq.q_len) - 1;
    return true;
}

/* The key tiles of bn rows that query tile t visits. */
__device__ __forceinline__ chill_tile_span chill_query_span(const chill_cuda_args &a, const chill_query_tile &t,
                                                            int bn) {
    return chill_span(a.mask, t.seq.q_off + t.m0, t.seq.q_off + t.m_last, t.seq.k_len, bn);
}

/* Whether the key tile starting at n0 needs no predicate for this query tile. */
__device__ __forceinline__ bool chill_tile_is_full(const chill_tile_span &s, int n0, int bn) {
    return n0 >= s.full_lo && (int64_t)n0 + bn - 1 <= s.full_hi;
}

/* What a partial tile needs of one query row, computed once per block:
 * k_range(q) (x, y: every attended key lies inside) and full_k_range(q, q)
 * (z, w: every key inside is attended), clamped to [-1, k_len]. Keys between
 * the two fall to the predicate itself; for the five masks of masks/ the two
 * coincide and the predicate is never evaluated. */
__device__ __forceinline__ int4 chill_row_bounds(const chill_mask &m, int64_t qp, int k_len) {
    chill_range r, f;
    switch (m.type) {
#define CHILL_MASK(name, nargs, arg_names, arg_mins)                                                                   \
    case CHILL_MASK_##name:                                                                                            \
        r = chill_##name##_k_range(m.arg, qp, k_len);                                                                  \
        f = chill_##name##_full_k_range(m.arg, qp, qp, k_len);                                                         \
        break;
#include "list.h"
#undef CHILL_MASK
    default:
        r = f = chill_range_empty();
    }
    auto c = [&](int64_t x) { return (int)chill_max64(-1, chill_min64(x, k_len)); };
    return make_int4(c(r.lo), c(r.hi), c(f.lo), c(f.hi));
}

/* Whether query row qp (bounds rb) attends key kp < k_len, on a partial tile. */
template <typename P>
__device__ __forceinline__ bool chill_row_allows(const int4 &rb, P &&allows, int64_t qp, int kp) {
    if (kp >= rb.z && kp <= rb.w)
        return true;
    if (kp < rb.x || kp > rb.y)
        return false;
    return allows(qp, kp);
}

/* Calls f(pred) with pred(q, k) the mask's predicate, inlined: one switch per
 * partial tile, uniform over the block. */
template <typename F>
__device__ __forceinline__ void chill_with_predicate(const chill_mask &m, F &&f) {
    switch (m.type) {
#define CHILL_MASK(name, nargs, arg_names, arg_mins)                                                                   \
    case CHILL_MASK_##name:                                                                                            \
        f([&](int64_t q, int64_t k) { return chill_##name##_allows(m.arg, q, k); });                                   \
        break;
#include "list.h"
#undef CHILL_MASK
    default:
        f([](int64_t, int64_t) { return false; });
    }
}

#endif
