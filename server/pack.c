/* Packing same-key requests into one varlen launch and splitting it back.
 * Every copy is row by row (one head's D elements, or a token's H*D when the
 * source is BTHD-contiguous), through each tensor's own strides, so BHTD and
 * BTHD requests pack together. */
#include <string.h>

#include "pack.h"

#define ALIGN 256

static size_t align_up(size_t x) { return (x + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

int chill_batch_key_equal(const chill_request *a, const chill_request *b) {
    const chill_params *p = &a->params, *q = &b->params;
    return a->device < 0 && b->device < 0 && p->dtype == q->dtype && p->head_dim == q->head_dim &&
           p->heads_q == q->heads_q && p->heads_kv == q->heads_kv && p->sm_scale == q->sm_scale &&
           p->q_offset == q->q_offset && p->allow_tf32 == q->allow_tf32 &&
           memcmp(&p->mask, &q->mask, sizeof p->mask) == 0;
}

static int64_t valid_len(const int32_t *lens, int64_t b, int64_t full) {
    return lens != NULL ? lens[b] : full;
}

int64_t chill_request_tokens(const chill_request *r) {
    const chill_params *p = &r->params;
    int64_t n = 0;
    for (int64_t b = 0; b < p->batch; b++)
        n += valid_len(p->seq_lens_q, b, p->seq_q) + valid_len(p->seq_lens_k, b, p->seq_k);
    return n;
}

void chill_pack_plan(chill_request *const *reqs, int n, chill_pack_layout *l) {
    memset(l, 0, sizeof *l);
    const chill_params *p0 = &reqs[0]->params;
    size_t es = chill_dtype_size(p0->dtype);
    for (int i = 0; i < n; i++) {
        const chill_params *p = &reqs[i]->params;
        for (int64_t b = 0; b < p->batch; b++) {
            int64_t lq = valid_len(p->seq_lens_q, b, p->seq_q), lk = valid_len(p->seq_lens_k, b, p->seq_k);
            l->tokens_q += lq;
            l->tokens_k += lk;
        }
        l->n_seq += p->batch;
        l->want_lse |= p->lse.data != NULL;
    }
    size_t q_row = (size_t)p0->heads_q * (size_t)p0->head_dim * es;
    size_t k_row = (size_t)p0->heads_kv * (size_t)p0->head_dim * es;
    size_t cu = sizeof(int32_t) * (size_t)(l->n_seq + 1);
    l->off_q = 0;
    l->off_k = align_up(l->off_q + q_row * (size_t)l->tokens_q);
    l->off_v = align_up(l->off_k + k_row * (size_t)l->tokens_k);
    l->off_cu_q = align_up(l->off_v + k_row * (size_t)l->tokens_k);
    l->off_cu_k = align_up(l->off_cu_q + cu);
    l->off_out = align_up(l->off_cu_k + cu);
    l->off_lse = align_up(l->off_out + q_row * (size_t)l->tokens_q);
    l->bytes = l->off_lse + (l->want_lse ? sizeof(float) * (size_t)p0->heads_q * (size_t)l->tokens_q : 0);
}

/* Element strides (batch, head, token) of t for [B, H, T, D]; zero strides
 * mean canonical. */
static void strides_of(const chill_tensor *t, int64_t h, int64_t tt, int64_t d, int64_t s[3]) {
    if (t->stride[0] == 0 && t->stride[1] == 0 && t->stride[2] == 0) {
        s[0] = h * tt * d;
        s[1] = tt * d;
        s[2] = d;
        return;
    }
    memcpy(s, t->stride, sizeof t->stride);
}

/* Copies len rows of sequence b of t (H heads) between the request tensor
 * and packed rows starting at row0. to_packed picks the direction. */
static void copy_rows(const chill_tensor *t, int64_t h, int64_t tt, int64_t d, size_t es, int64_t b,
                      int64_t len, char *packed, int64_t row0, int to_packed) {
    int64_t s[3];
    strides_of(t, h, tt, d, s);
    char *base = (char *)t->data + (size_t)(b * s[0]) * es;
    size_t row = (size_t)(h * d) * es;
    for (int64_t i = 0; i < len; i++) {
        char *src = base + (size_t)(i * s[2]) * es, *dst = packed + (size_t)(row0 + i) * row;
        if (s[1] == d) {
            to_packed ? memcpy(dst, src, row) : memcpy(src, dst, row);
            continue;
        }
        for (int64_t hh = 0; hh < h; hh++) {
            char *sh = src + (size_t)(hh * s[1]) * es, *dh = dst + (size_t)(hh * d) * es;
            to_packed ? memcpy(dh, sh, (size_t)d * es) : memcpy(sh, dh, (size_t)d * es);
        }
    }
}

void chill_pack(chill_request *const *reqs, int n, const chill_pack_layout *l, void *staging,
                chill_params *packed) {
    char *base = staging;
    const chill_params *p0 = &reqs[0]->params;
    size_t es = chill_dtype_size(p0->dtype);
    int32_t *cu_q = (int32_t *)(base + l->off_cu_q), *cu_k = (int32_t *)(base + l->off_cu_k);
    int64_t seq = 0, rq = 0, rk = 0;
    cu_q[0] = cu_k[0] = 0;
    for (int i = 0; i < n; i++) {
        const chill_params *p = &reqs[i]->params;
        for (int64_t b = 0; b < p->batch; b++, seq++) {
            int64_t lq = valid_len(p->seq_lens_q, b, p->seq_q), lk = valid_len(p->seq_lens_k, b, p->seq_k);
            copy_rows(&p->q, p->heads_q, p->seq_q, p->head_dim, es, b, lq, base + l->off_q, rq, 1);
            copy_rows(&p->k, p->heads_kv, p->seq_k, p->head_dim, es, b, lk, base + l->off_k, rk, 1);
            copy_rows(&p->v, p->heads_kv, p->seq_k, p->head_dim, es, b, lk, base + l->off_v, rk, 1);
            rq += lq;
            rk += lk;
            cu_q[seq + 1] = (int32_t)rq;
            cu_k[seq + 1] = (int32_t)rk;
        }
    }
    *packed = *p0;
    packed->batch = l->n_seq;
    packed->seq_q = l->tokens_q > 0 ? l->tokens_q : 1; /* in the packed layout: rows in all */
    packed->seq_k = l->tokens_k > 0 ? l->tokens_k : 1;
    packed->seq_lens_q = packed->seq_lens_k = NULL;
    packed->cu_seqlens_q = cu_q;
    packed->cu_seqlens_k = cu_k;
    int64_t hq = p0->heads_q, hk = p0->heads_kv, d = p0->head_dim;
    packed->q = (chill_tensor){base + l->off_q, {0, d, hq * d}};
    packed->k = (chill_tensor){base + l->off_k, {0, d, hk * d}};
    packed->v = (chill_tensor){base + l->off_v, {0, d, hk * d}};
    packed->out = (chill_tensor){base + l->off_out, {0, d, hq * d}};
    packed->lse = (chill_tensor){l->want_lse ? base + l->off_lse : NULL, {0, 1, hq}};
}

/* lse rows of sequence b back into the request's [B, Hq, Tq] (or its strides). */
static void unpack_lse(const chill_params *p, int64_t b, int64_t len, const float *packed, int64_t row0) {
    int64_t s[3];
    strides_of(&p->lse, p->heads_q, p->seq_q, 1, s);
    float *dst = (float *)p->lse.data + b * s[0];
    for (int64_t i = 0; i < len; i++)
        for (int64_t h = 0; h < p->heads_q; h++)
            dst[h * s[1] + i * s[2]] = packed[(row0 + i) * p->heads_q + h];
}

void chill_unpack(chill_request *const *reqs, int n, const chill_pack_layout *l, const void *staging) {
    char *base = (char *)staging;
    size_t es = chill_dtype_size(reqs[0]->params.dtype);
    int64_t rq = 0;
    for (int i = 0; i < n; i++) {
        const chill_params *p = &reqs[i]->params;
        for (int64_t b = 0; b < p->batch; b++) {
            int64_t lq = valid_len(p->seq_lens_q, b, p->seq_q);
            copy_rows(&p->out, p->heads_q, p->seq_q, p->head_dim, es, b, lq, base + l->off_out, rq, 0);
            if (p->lse.data != NULL)
                unpack_lse(p, b, lq, (const float *)(base + l->off_lse), rq);
            rq += lq;
        }
    }
}
