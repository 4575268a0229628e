/* The CPU forward pass: online-softmax flash attention over tiles.
 *
 * Work items are (sequence, query head, query tile of BQ rows), handed out to
 * the pool's threads one at a time from an atomic counter, the heaviest tiles
 * of a sequence (the last ones, under causal masks) first. An item loads its
 * queries once, transposed and pre-scaled into base-2 scores, then walks the
 * keys its mask can reach, BK at a time: the reach is the mask's k_range at
 * the tile's first and last query (both ends only grow with the query), so
 * nothing outside it is read; a key tile inside the mask's full_k_range for
 * the whole query tile skips the predicate, any other masks each query's keys
 * outside its own k_range and applies the predicate, inlined, to the rest;
 * softmax and P.V then run only over the keys of each query block's ranges.
 * fp32 tensors are read in place; fp16 and bf16 rows are converted to fp32
 * once per tile. A sequence's rows that attend no key get zeros and lse -inf;
 * rows no sequence owns (past seq_lens_q, or past the last packed sequence)
 * are not written. */
#include <cpuid.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu.h"
#include "registry.h"

#define BQ CHILL_CPU_BQ
#define BK CHILL_CPU_BK
#define LOG2E 1.4426950408889634
#define LN2   0.6931471805599453

/* ---- instruction set ---------------------------------------------------- */

/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does
 * not know the name. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}

static int isa_supported(const chill_cpu_isa *isa) {
    __builtin_cpu_init();
    if (isa == &chill_cpu_isa_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma") && has_f16c();
    if (isa == &chill_cpu_isa_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    return 1;
}

static const chill_cpu_isa *const isa_by_preference[] = {&chill_cpu_isa_avx512, &chill_cpu_isa_avx2,
                                                         &chill_cpu_isa_scalar};
static _Atomic(const chill_cpu_isa *) isa_chosen;

int chill_cpu_use_isa(const char *name) {
    for (size_t i = 0; i < sizeof isa_by_preference / sizeof *isa_by_preference; i++) {
        const chill_cpu_isa *isa = isa_by_preference[i];
        if ((name == NULL || strcmp(name, isa->name) == 0) && isa_supported(isa)) {
            atomic_store(&isa_chosen, isa);
            return 0;
        }
    }
    return -1;
}

const chill_cpu_isa *chill_cpu_isa_current(void) {
    if (atomic_load(&isa_chosen) == NULL)
        chill_cpu_use_isa(NULL);
    return atomic_load(&isa_chosen);
}

/* ---- masks, the predicate inlined per registered mask -------------------- */

/* st[j * BQ + i] = -inf where query q0 + i may not attend key k0 + j, of
 * the sequence's n_k keys, and [j0[i], j1[i]) the tile's keys inside the
 * query's k_range. Keys outside it are masked outright and keys inside its
 * own full_k_range kept; the predicate decides only what lies between (for
 * the masks so far: nothing). */
typedef void (*mask_tile_fn)(const int64_t *a, float *st, int64_t q0, int nq, int64_t k0, int nk, int64_t n_k,
                             int *j0, int *j1);

#define CHILL_MASK(name, nargs, arg_names, arg_mins)                                                     \
    static void mask_tile_##name(const int64_t *a, float *st, int64_t q0, int nq, int64_t k0, int nk,     \
                                 int64_t n_k, int *j0, int *j1) {                                        \
        int64_t end = k0 + nk;                                                                           \
        for (int i = 0; i < nq; i++) {                                                                   \
            int64_t q = q0 + i, k;                                                                       \
            chill_range r = chill_range_clip(chill_##name##_k_range(a, q, n_k), k0, end - 1);             \
            if (chill_range_is_empty(r))                                                                 \
                r = chill_range_make(end, end - 1);                                                      \
            chill_range f = chill_range_clip(chill_##name##_full_k_range(a, q, q, n_k), r.lo, r.hi);      \
            if (chill_range_is_empty(f))                                                                 \
                f = chill_range_make(r.hi + 1, r.hi);                                                    \
            for (k = k0; k < r.lo; k++)                                                                  \
                st[(k - k0) * BQ + i] = -INFINITY;                                                       \
            for (k = r.lo; k < f.lo; k++)                                                                \
                if (!chill_##name##_allows(a, q, k))                                                     \
                    st[(k - k0) * BQ + i] = -INFINITY;                                                   \
            for (k = f.hi + 1; k <= r.hi; k++)                                                           \
                if (!chill_##name##_allows(a, q, k))                                                     \
                    st[(k - k0) * BQ + i] = -INFINITY;                                                   \
            for (k = r.hi + 1; k < end; k++)                                                             \
                st[(k - k0) * BQ + i] = -INFINITY;                                                       \
            j0[i] = (int)(r.lo - k0);                                                                    \
            j1[i] = (int)(r.hi + 1 - k0);                                                                \
        }                                                                                                \
    }
#include "list.h"
#undef CHILL_MASK

static const mask_tile_fn mask_tile[CHILL_MASK_COUNT] = {
#define CHILL_MASK(name, nargs, arg_names, arg_mins) mask_tile_##name,
#include "list.h"
#undef CHILL_MASK
};

/* ---- geometry ------------------------------------------------------------ */

/* One sequence of the call: its valid lengths, where its rows start and the
 * position of its first query. */
typedef struct seq {
    int64_t nq, nk, off;
    int64_t q_row0, k_row0;
    int packed;
} seq;

static seq seq_of(const chill_params *p, int64_t b) {
    seq s = {p->seq_q, p->seq_k, 0, 0, 0, p->cu_seqlens_q != NULL};
    if (s.packed) {
        s.q_row0 = p->cu_seqlens_q[b];
        s.k_row0 = p->cu_seqlens_k[b];
        s.nq = p->cu_seqlens_q[b + 1] - s.q_row0;
        s.nk = p->cu_seqlens_k[b + 1] - s.k_row0;
    }
    if (p->seq_lens_q != NULL)
        s.nq = p->seq_lens_q[b];
    if (p->seq_lens_k != NULL)
        s.nk = p->seq_lens_k[b];
    s.off = p->q_offset == CHILL_Q_OFFSET_AUTO ? s.nk - s.nq : p->q_offset;
    return s;
}

/* Element offset of (sequence b, head h, token row) in t; packed tensors have no batch stride. */
static int64_t offset_of(const chill_tensor *t, int packed, int64_t b, int64_t h, int64_t row) {
    return (packed ? 0 : b * t->stride[0]) + h * t->stride[1] + row * t->stride[2];
}

static void *row_of(const chill_tensor *t, size_t esize, int packed, int64_t b, int64_t h, int64_t row) {
    return (char *)t->data + (size_t)offset_of(t, packed, b, h, row) * esize;
}

/* ---- one work item ------------------------------------------------------- */

typedef struct job {
    const chill_params *p;
    const chill_cpu_isa *isa;
    const chill_mask_ops *mask;
    mask_tile_fn mask_tile;
    int64_t *item0; /* [batch + 1]: the first item of each sequence */
    int64_t items;
    int dp;         /* head_dim padded */
    float scale;    /* sm_scale * log2(e) */
    atomic_llong next;
} job;

/* A thread's buffers, 64-byte aligned pieces of one allocation. */
typedef struct scratch {
    float *qt, *st, *o, *kbuf, *vbuf, *row, *m, *l, *alpha;
    int j0[BQ], j1[BQ]; /* per query, the keys of the current tile it may attend */
    void *block;
} scratch;

static int scratch_alloc(scratch *s, int dim, int dp) {
    size_t n_qt = (size_t)dim * BQ, n_st = (size_t)(BK + CHILL_CPU_KB) * BQ, n_o = (size_t)BQ * dp;
    size_t n_kv = (size_t)BK * dim;
    size_t total = n_qt + n_st + n_o + 2 * n_kv + (size_t)dp + 3 * BQ + 16 * 9;
    if (posix_memalign(&s->block, 64, total * sizeof(float)) != 0)
        return -1;
    float *f = s->block;
    size_t sizes[] = {n_qt, n_st, n_o, n_kv, n_kv, (size_t)dp, BQ, BQ, BQ};
    float **parts[] = {&s->qt, &s->st, &s->o, &s->kbuf, &s->vbuf, &s->row, &s->m, &s->l, &s->alpha};
    for (int i = 0; i < 9; i++) {
        *parts[i] = f;
        f += (sizes[i] + 15) / 16 * 16;
    }
    return 0;
}

/* Queries [i0, i0 + nq) of (b, h) into s->qt, transposed and scaled; the
 * columns past nq are zero so the full-width products stay finite. */
static void load_queries(const job *J, scratch *s, int64_t b, int64_t h, const seq *sq, int64_t i0, int nq) {
    const chill_params *p = J->p;
    int dim = (int)p->head_dim;
    size_t esize = chill_dtype_size(p->dtype);
    for (int i = 0; i < nq; i++) {
        J->isa->to_f32(row_of(&p->q, esize, sq->packed, b, h, sq->q_row0 + i0 + i), p->dtype, dim, s->row);
        for (int d = 0; d < dim; d++)
            s->qt[d * BQ + i] = s->row[d] * J->scale;
    }
    for (int d = 0; nq < BQ && d < dim; d++)
        memset(s->qt + d * BQ + nq, 0, (size_t)(BQ - nq) * sizeof(float));
}

/* Keys and values [k0, k0 + nk) of (b, hk) as fp32 rows: in place for fp32. */
static void load_kv(const job *J, scratch *s, int64_t b, int64_t hk, const seq *sq, int64_t k0, int nk,
                    const float **k, const float **v, int64_t *ld) {
    const chill_params *p = J->p;
    int dim = (int)p->head_dim;
    size_t esize = chill_dtype_size(p->dtype);
    if (p->dtype == CHILL_F32 && p->k.stride[2] == p->v.stride[2]) {
        *k = row_of(&p->k, esize, sq->packed, b, hk, sq->k_row0 + k0);
        *v = row_of(&p->v, esize, sq->packed, b, hk, sq->k_row0 + k0);
        *ld = p->k.stride[2];
        return;
    }
    for (int j = 0; j < nk; j++) {
        J->isa->to_f32(row_of(&p->k, esize, sq->packed, b, hk, sq->k_row0 + k0 + j), p->dtype, dim,
                       s->kbuf + j * dim);
        J->isa->to_f32(row_of(&p->v, esize, sq->packed, b, hk, sq->k_row0 + k0 + j), p->dtype, dim,
                       s->vbuf + j * dim);
    }
    *k = s->kbuf;
    *v = s->vbuf;
    *ld = dim;
}

static void store_rows(const job *J, scratch *s, int64_t b, int64_t h, const seq *sq, int64_t i0, int nq) {
    const chill_params *p = J->p;
    size_t esize = chill_dtype_size(p->dtype);
    for (int i = 0; i < nq; i++) {
        int64_t row = sq->q_row0 + i0 + i;
        void *dst = row_of(&p->out, esize, sq->packed, b, h, row);
        float l = s->l[i];
        if (l > 0.0f)
            J->isa->from_f32(s->o + (size_t)i * J->dp, 1.0f / l, (int)p->head_dim, p->dtype, dst);
        else
            memset(dst, 0, (size_t)p->head_dim * esize);
        if (p->lse.data != NULL)
            *(float *)row_of(&p->lse, sizeof(float), sq->packed, b, h, row) =
                l > 0.0f ? (float)(LN2 * (s->m[i] + log2((double)l))) : -INFINITY;
    }
}

static void run_item(const job *J, scratch *s, int64_t b, int64_t h, int64_t tile) {
    const chill_params *p = J->p;
    const int64_t *a = p->mask.arg;
    seq sq = seq_of(p, b);
    int64_t i0 = tile * BQ, hk = h / (p->heads_q / p->heads_kv);
    int nq = (int)(sq.nq - i0 < BQ ? sq.nq - i0 : BQ), dim = (int)p->head_dim;

    load_queries(J, s, b, h, &sq, i0, nq);
    for (int i = 0; i < BQ; i++) {
        s->m[i] = -INFINITY;
        s->l[i] = 0.0f;
        s->j0[i] = s->j1[i] = 0; /* rows past nq attend nothing */
    }
    memset(s->o, 0, (size_t)BQ * J->dp * sizeof(float));

    int64_t q0 = sq.off + i0, q1 = q0 + nq - 1;
    chill_range reach = chill_range_make(J->mask->k_range(a, q0, sq.nk).lo, J->mask->k_range(a, q1, sq.nk).hi);
    reach = chill_range_clip(reach, 0, sq.nk - 1);
    chill_range full = J->mask->full_k_range(a, q0, q1, sq.nk);
    for (int64_t k0 = reach.lo; k0 <= reach.hi; k0 += BK) {
        int nk = (int)(reach.hi - k0 + 1 < BK ? reach.hi - k0 + 1 : BK);
        const float *k, *v;
        int64_t ld;
        load_kv(J, s, b, hk, &sq, k0, nk, &k, &v, &ld);
        J->isa->qk(s->qt, k, ld, nk, dim, s->st);
        if (k0 < full.lo || k0 + nk - 1 > full.hi) {
            J->mask_tile(a, s->st, q0, nq, k0, nk, sq.nk, s->j0, s->j1);
        } else {
            for (int i = 0; i < nq; i++)
                s->j0[i] = 0, s->j1[i] = nk;
        }
        J->isa->softmax(s->st, s->j0, s->j1, s->m, s->l, s->alpha);
        J->isa->pv(s->st, s->j0, s->j1, s->alpha, nq, v, ld, dim, s->o, J->dp);
    }
    store_rows(J, s, b, h, &sq, i0, nq);
}

/* The pool's function: claim items until none is left. A thread that cannot
 * get its buffers claims none; the others finish the work. */
static void run_items(void *arg, int thread) {
    job *J = arg;
    scratch s;
    (void)thread;
    if (scratch_alloc(&s, (int)J->p->head_dim, J->dp) != 0)
        return;
    int64_t batch = J->p->batch, hq = J->p->heads_q;
    for (;;) {
        int64_t item = atomic_fetch_add(&J->next, 1);
        if (item >= J->items)
            break;
        int64_t lo = 0, hi = batch - 1; /* the sequence: the last b with item0[b] <= item */
        while (lo < hi) {
            int64_t mid = (lo + hi + 1) / 2;
            if (J->item0[mid] <= item)
                lo = mid;
            else
                hi = mid - 1;
        }
        int64_t r = item - J->item0[lo], tiles = (J->item0[lo + 1] - J->item0[lo]) / hq;
        run_item(J, &s, lo, r % hq, tiles - 1 - r / hq);
    }
    free(s.block);
}

chill_status chill_cpu_forward(const chill_params *p, chill_error *err) {
    job J = {.p = p, .isa = chill_cpu_isa_current(), .mask = chill_mask_ops_of(&p->mask),
             .mask_tile = mask_tile[p->mask.type],
             .dp = (int)((p->head_dim + CHILL_CPU_DPAD - 1) / CHILL_CPU_DPAD * CHILL_CPU_DPAD),
             .scale = (float)(p->sm_scale * LOG2E)};
    J.item0 = malloc((size_t)(p->batch + 1) * sizeof *J.item0);
    if (J.item0 == NULL)
        return chill_fail(err, CHILL_ERR_NOMEM, "CPU forward: no memory for the work list of %lld sequences",
                          (long long)p->batch);
    J.item0[0] = 0;
    for (int64_t b = 0; b < p->batch; b++)
        J.item0[b + 1] = J.item0[b] + (seq_of(p, b).nq + BQ - 1) / BQ * p->heads_q;
    J.items = J.item0[p->batch];
    atomic_init(&J.next, 0);

    chill_cpu_pool_run(run_items, &J);
    int64_t left = atomic_load(&J.next) < J.items ? J.items - atomic_load(&J.next) : 0;
    free(J.item0);
    if (left > 0)
        return chill_fail(err, CHILL_ERR_NOMEM, "CPU forward: no thread could allocate its tile buffers; "
                          "%lld of %lld tiles not computed", (long long)left, (long long)J.items);
    return CHILL_OK;
}
