/* Packing same-key requests into one varlen launch in a device buffer: the
 * head-major layout and the list of 2D copies between each request's own
 * tensors (through their strides, so BHTD and BTHD requests pack together)
 * and the buffer. Every layout a transport builds has rows of one head that
 * do not overlap (token stride >= D), which a 2D copy needs. */
#include <stdlib.h>
#include <string.h>

#include "pack.h"

#define ALIGN 256

static size_t align_up(size_t x) { return (x + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

int chill_batch_key_equal(const chill_request *a, const chill_request *b) {
    const chill_params *p = &a->params, *q = &b->params;
    return a->device == b->device && p->dtype == q->dtype && p->head_dim == q->head_dim &&
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

/* Rows per head of a packed section: at least one, so strides stay nonzero
 * when every sequence is empty. */
static int64_t rows_of(int64_t tokens) { return tokens > 0 ? tokens : 1; }

void chill_pack_plan(chill_request *const *reqs, int n, chill_pack_layout *l) {
    memset(l, 0, sizeof *l);
    const chill_params *p0 = &reqs[0]->params;
    size_t es = chill_dtype_size(p0->dtype);
    int64_t hq = p0->heads_q, hk = p0->heads_kv, d = p0->head_dim;
    for (int i = 0; i < n; i++) {
        const chill_params *p = &reqs[i]->params;
        for (int64_t b = 0; b < p->batch; b++) {
            l->tokens_q += valid_len(p->seq_lens_q, b, p->seq_q);
            l->tokens_k += valid_len(p->seq_lens_k, b, p->seq_k);
        }
        l->n_seq += p->batch;
        l->want_lse |= p->lse.data != NULL;
    }
    size_t q_bytes = (size_t)(hq * rows_of(l->tokens_q) * d) * es;
    size_t k_bytes = (size_t)(hk * rows_of(l->tokens_k) * d) * es;
    l->off_q = 0;
    l->off_k = align_up(q_bytes);
    l->off_v = align_up(l->off_k + k_bytes);
    l->off_out = align_up(l->off_v + k_bytes);
    l->off_lse = align_up(l->off_out + q_bytes);
    l->bytes = l->off_lse + (l->want_lse ? sizeof(float) * (size_t)(hq * rows_of(l->tokens_q)) : 0);
    l->max_in = (int)(l->n_seq * (hq + 2 * hk));
    l->max_out = (int)(l->n_seq * (l->want_lse ? 2 * hq : hq));
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

/* Appends to c the copies between len tokens of sequence b of t ([B, h, tt,
 * d] elements of es bytes) and the packed section at sec (rows tokens per
 * head), starting at packed row row0. A sequence whose heads each hold their
 * tokens contiguously (BHTD) is one copy of h rows; else one copy per head
 * of len rows. Returns the end of the list. */
static chill_copy *add_copies(chill_copy *c, const chill_tensor *t, int64_t h, int64_t tt, int64_t d, size_t es,
                              int64_t b, int64_t len, char *sec, int64_t rows, int64_t row0) {
    if (len == 0)
        return c;
    int64_t s[3];
    strides_of(t, h, tt, d, s);
    char *req = (char *)t->data + (size_t)(b * s[0]) * es, *dev = sec + (size_t)(row0 * d) * es;
    size_t head_pitch = (size_t)(rows * d) * es;
    if (s[2] == d && s[1] >= len * d) {
        *c++ = (chill_copy){req, dev, (size_t)s[1] * es, head_pitch, (size_t)(len * d) * es, (size_t)h};
        return c;
    }
    for (int64_t hh = 0; hh < h; hh++)
        *c++ = (chill_copy){req + (size_t)(hh * s[1]) * es, dev + hh * head_pitch, (size_t)s[2] * es,
                            (size_t)d * es, (size_t)d * es, (size_t)len};
    return c;
}

int chill_pack(chill_request *const *reqs, int n, const chill_pack_layout *l, void *dev, chill_packed *pk) {
    memset(pk, 0, sizeof *pk);
    size_t copies = sizeof(chill_copy) * (size_t)(l->max_in + l->max_out);
    pk->scratch = malloc(copies + sizeof(int32_t) * 2 * (size_t)(l->n_seq + 1));
    if (pk->scratch == NULL)
        return -1;
    chill_copy *in = pk->scratch, *out = in + l->max_in, *ci = in, *co = out;
    int32_t *cu_q = (int32_t *)((char *)pk->scratch + copies), *cu_k = cu_q + l->n_seq + 1;
    const chill_params *p0 = &reqs[0]->params;
    size_t es = chill_dtype_size(p0->dtype);
    int64_t hq = p0->heads_q, hk = p0->heads_kv, d = p0->head_dim;
    int64_t rq = rows_of(l->tokens_q), rk = rows_of(l->tokens_k), seq = 0, row_q = 0, row_k = 0;
    char *base = dev;
    cu_q[0] = cu_k[0] = 0;
    for (int i = 0; i < n; i++) {
        const chill_params *p = &reqs[i]->params;
        for (int64_t b = 0; b < p->batch; b++, seq++) {
            int64_t lq = valid_len(p->seq_lens_q, b, p->seq_q), lk = valid_len(p->seq_lens_k, b, p->seq_k);
            ci = add_copies(ci, &p->q, hq, p->seq_q, d, es, b, lq, base + l->off_q, rq, row_q);
            ci = add_copies(ci, &p->k, hk, p->seq_k, d, es, b, lk, base + l->off_k, rk, row_k);
            ci = add_copies(ci, &p->v, hk, p->seq_k, d, es, b, lk, base + l->off_v, rk, row_k);
            co = add_copies(co, &p->out, hq, p->seq_q, d, es, b, lq, base + l->off_out, rq, row_q);
            if (p->lse.data != NULL)
                co = add_copies(co, &p->lse, hq, p->seq_q, 1, sizeof(float), b, lq, base + l->off_lse, rq, row_q);
            row_q += lq;
            row_k += lk;
            cu_q[seq + 1] = (int32_t)row_q;
            cu_k[seq + 1] = (int32_t)row_k;
        }
    }
    pk->transfer = (chill_transfer){in, out, (int)(ci - in), (int)(co - out)};
    chill_params *pp = &pk->params;
    *pp = *p0;
    pp->batch = l->n_seq;
    pp->seq_q = rq; /* in the packed layout: rows in all */
    pp->seq_k = rk;
    pp->seq_lens_q = pp->seq_lens_k = NULL;
    pp->cu_seqlens_q = cu_q;
    pp->cu_seqlens_k = cu_k;
    pp->q = (chill_tensor){base + l->off_q, {0, rq * d, d}};
    pp->k = (chill_tensor){base + l->off_k, {0, rk * d, d}};
    pp->v = (chill_tensor){base + l->off_v, {0, rk * d, d}};
    pp->out = (chill_tensor){base + l->off_out, {0, rq * d, d}};
    pp->lse = (chill_tensor){l->want_lse ? base + l->off_lse : NULL, {0, rq, 1}};
    return 0;
}

void chill_packed_free(chill_packed *pk) {
    free(pk->scratch);
    pk->scratch = NULL;
}

void chill_copies_run_host(const chill_copy *list, int n, int in) {
    for (int i = 0; i < n; i++) {
        const chill_copy *c = &list[i];
        for (size_t r = 0; r < c->height; r++) {
            char *req = (char *)c->req + r * c->req_pitch, *dev = (char *)c->dev + r * c->dev_pitch;
            memcpy(in ? dev : req, in ? req : dev, c->width);
        }
    }
}
