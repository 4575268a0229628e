/* Dynamic batching's packing (server/pack.c): which requests share a launch,
 * and that packing several requests into one varlen launch and splitting it
 * back gives each request exactly its own result. Requests differ in batch,
 * lengths, seq_lens, layout (BHTD and BTHD) and whether they want lse; each
 * one's output is checked against the float64 reference of that request
 * alone, rows past its seq_lens must stay untouched (NaN poison), and lse is
 * written only for requests that asked. The CPU backend's packed launches
 * (server/backend_cpu.c) are checked the same way. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pack.h"
#include "ref/ref.h"

#define HQ 4
#define HKV 2
#define D 16

typedef struct test_req {
    chill_request r;
    float *q, *k, *v, *out, *lse;
    int32_t lens_q[4], lens_k[4];
} test_req;

/* A request of b sequences, tq x tk, layout bthd, lengths from seeds. */
static void make_req(test_req *t, int64_t b, int64_t tq, int64_t tk, int bthd, int with_lens, int want_lse,
                     uint64_t *rng) {
    memset(t, 0, sizeof *t);
    chill_params *p = &t->r.params;
    chill_params_init(p);
    p->dtype = CHILL_F32;
    p->batch = b, p->heads_q = HQ, p->heads_kv = HKV, p->seq_q = tq, p->seq_k = tk, p->head_dim = D;
    p->mask.type = CHILL_MASK_causal;
    size_t nq = (size_t)(b * HQ * tq * D), nk = (size_t)(b * HKV * tk * D);
    t->q = malloc(nq * sizeof(float));
    t->k = malloc(nk * sizeof(float));
    t->v = malloc(nk * sizeof(float));
    t->out = malloc(nq * sizeof(float));
    t->lse = malloc((size_t)(b * HQ * tq) * sizeof(float));
    chill_ref_fill(t->q, CHILL_F32, nq, rng);
    chill_ref_fill(t->k, CHILL_F32, nk, rng);
    chill_ref_fill(t->v, CHILL_F32, nk, rng);
    chill_ref_poison(t->out, CHILL_F32, nq);
    chill_ref_poison(t->lse, CHILL_F32, (size_t)(b * HQ * tq));
    p->q.data = t->q, p->k.data = t->k, p->v.data = t->v, p->out.data = t->out;
    p->lse.data = want_lse ? t->lse : NULL;
    if (bthd) {
        p->q.stride[0] = tq * HQ * D, p->q.stride[1] = D, p->q.stride[2] = HQ * D;
        p->k.stride[0] = tk * HKV * D, p->k.stride[1] = D, p->k.stride[2] = HKV * D;
        p->v.stride[0] = p->k.stride[0], p->v.stride[1] = D, p->v.stride[2] = HKV * D;
        p->out.stride[0] = p->q.stride[0], p->out.stride[1] = D, p->out.stride[2] = HQ * D;
    }
    if (with_lens) {
        for (int64_t i = 0; i < b; i++) {
            t->lens_k[i] = (int32_t)(chill_ref_rand(rng) % (uint64_t)(tk + 1));
            t->lens_q[i] = (int32_t)(chill_ref_rand(rng) % (uint64_t)(tq + 1));
        }
        p->seq_lens_q = t->lens_q;
        p->seq_lens_k = t->lens_k;
    }
    t->r.device = -1;
}

static void free_req(test_req *t) {
    free(t->q), free(t->k), free(t->v), free(t->out), free(t->lse);
}

static int64_t stride_of(const chill_tensor *t, int i, int64_t h, int64_t tt) {
    if (t->stride[0] == 0 && t->stride[1] == 0 && t->stride[2] == 0)
        return i == 0 ? h * tt * D : i == 1 ? tt * D : D;
    return t->stride[i];
}

/* Checks t's out (valid rows against the reference, the rest untouched)
 * and its lse. */
static void check_req(const test_req *t, int idx) {
    const chill_params *p = &t->r.params;
    size_t nq = (size_t)(p->batch * HQ * p->seq_q * D);
    double *ref = malloc(nq * sizeof(double)), *ref_lse = malloc((size_t)(p->batch * HQ * p->seq_q) * sizeof(double));
    chill_params rp = *p;
    rp.lse.data = t->lse;
    chill_ref_forward(&rp, ref, ref_lse);
    double num = 0, den = 0, lse_err = 0;
    size_t untouched = 0, padded = 0;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < HQ; h++)
            for (int64_t i = 0; i < p->seq_q; i++) {
                int valid = p->seq_lens_q == NULL || i < p->seq_lens_q[b];
                int64_t o = b * stride_of(&p->out, 0, HQ, p->seq_q) + h * stride_of(&p->out, 1, HQ, p->seq_q) +
                            i * stride_of(&p->out, 2, HQ, p->seq_q);
                int64_t l = (b * HQ + h) * p->seq_q + i;
                for (int64_t d = 0; d < D; d++) {
                    if (!valid) {
                        padded++;
                        untouched += isnan(t->out[o + d]);
                        continue;
                    }
                    double e = t->out[o + d] - ref[o + d];
                    num += isnan(e) ? INFINITY : e * e;
                    den += ref[o + d] * ref[o + d];
                }
                if (valid && p->lse.data != NULL && !(isinf(ref_lse[l]) && isinf(t->lse[l])))
                    lse_err = fmax(lse_err, isnan(t->lse[l]) ? INFINITY : fabs(t->lse[l] - ref_lse[l]));
                if (p->lse.data == NULL)
                    ck_assert_msg(isnan(t->lse[l]), "request %d: lse written though not asked", idx);
            }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    ck_assert_msg(rel <= 1e-5, "request %d: relative error %g", idx, rel);
    ck_assert_msg(lse_err <= 1e-4, "request %d: lse error %g", idx, lse_err);
    ck_assert_msg(untouched == padded, "request %d: %zu of %zu padded elements written", idx, padded - untouched,
                  padded);
    free(ref), free(ref_lse);
}

enum { N = 6 };

/* Six requests of every kind: batches of 1-3, BHTD and BTHD, with and
 * without seq_lens, with and without lse. */
static void make_six(test_req t[N], chill_request *reqs[N], uint64_t seed) {
    uint64_t rng = seed;
    make_req(&t[0], 1, 5, 9, 0, 0, 1, &rng);
    make_req(&t[1], 2, 7, 7, 1, 0, 0, &rng);
    make_req(&t[2], 3, 4, 11, 0, 1, 1, &rng);
    make_req(&t[3], 1, 1, 13, 1, 1, 0, &rng);
    make_req(&t[4], 2, 9, 9, 1, 1, 1, &rng);
    make_req(&t[5], 1, 16, 16, 0, 0, 0, &rng);
    for (int i = 0; i < N; i++)
        reqs[i] = &t[i].r;
}

START_TEST(packed_launch_splits_back_exactly) {
    test_req t[N];
    chill_request *reqs[N];
    make_six(t, reqs, 12345 + (uint64_t)_i);
    chill_pack_layout l;
    chill_pack_plan(reqs, N, &l);
    ck_assert_int_eq(l.n_seq, 1 + 2 + 3 + 1 + 2 + 1);
    ck_assert(l.want_lse);
    void *buffer = malloc(l.bytes);
    chill_ref_poison(buffer, CHILL_F32, l.bytes / sizeof(float));
    chill_packed pk;
    ck_assert_int_eq(chill_pack(reqs, N, &l, buffer, &pk), 0);
    ck_assert_int_le(pk.transfer.n_in, l.max_in);
    ck_assert_int_le(pk.transfer.n_out, l.max_out);
    for (int i = 0; i < pk.transfer.n_in; i++) {
        const chill_copy *c = &pk.transfer.in[i];
        ck_assert_msg((char *)c->dev >= (char *)buffer && (char *)c->dev + (c->height - 1) * c->dev_pitch + c->width <=
                          (char *)buffer + l.off_out, "copy %d in lands outside the input sections", i);
    }
    chill_copies_run_host(pk.transfer.in, pk.transfer.n_in, 1);
    chill_error err;
    ck_assert_msg(chill_forward(&pk.params, &err) == CHILL_OK, "%s", err.message);
    chill_copies_run_host(pk.transfer.out, pk.transfer.n_out, 0);
    chill_packed_free(&pk);
    for (int i = 0; i < N; i++)
        check_req(&t[i], i);
    for (int i = 0; i < N; i++)
        free_req(&t[i]);
    free(buffer);
}
END_TEST

/* The CPU backend runs a lone request in place and a batch as one packed
 * launch in its own buffer, which grows for a larger batch (the second
 * round) and counts as the device's memory; each request gets its own
 * result. */
START_TEST(cpu_backend_packs_batches) {
    chill_config cfg;
    chill_config_defaults(&cfg);
    chill_backend *b = chill_backend_cpu_create(&cfg);
    for (int round = 0; round < 2; round++) {
        int n = round == 0 ? 2 : N;
        test_req t[N];
        chill_request *reqs[N];
        make_six(t, reqs, 777 + (uint64_t)round);
        ck_assert(b->in_place(b, &reqs[0]->params, 1));
        ck_assert(!b->in_place(b, &reqs[0]->params, n));
        chill_pack_layout l;
        chill_pack_plan(reqs, n, &l);
        char msg[256];
        void *buffer = b->buffer(b, 0, 0, l.bytes, msg, sizeof msg);
        ck_assert_msg(buffer != NULL, "%s", msg);
        ck_assert_uint_ge(b->memory_used(b, 0), l.bytes);
        chill_packed pk;
        ck_assert_int_eq(chill_pack(reqs, n, &l, buffer, &pk), 0);
        chill_error err = {0};
        ck_assert_msg(b->start(b, 0, 0, &pk.params, &pk.transfer, &err) == CHILL_OK, "%s", err.message);
        ck_assert_int_eq(b->finish(b, 0, 0, &err), CHILL_OK);
        chill_packed_free(&pk);
        for (int i = 0; i < n; i++)
            check_req(&t[i], i);
        for (int i = 0; i < N; i++)
            free_req(&t[i]);
    }
    b->destroy(b);
}
END_TEST

/* A BHTD sequence moves as one 2D copy per tensor (a row per head); a BTHD
 * one as a copy per head. */
START_TEST(copies_per_layout) {
    uint64_t rng = 3;
    test_req a, b;
    make_req(&a, 2, 5, 7, 0, 0, 1, &rng);
    make_req(&b, 1, 5, 7, 1, 0, 0, &rng);
    chill_request *reqs[2] = {&a.r, &b.r};
    chill_pack_layout l;
    chill_pack_plan(reqs, 2, &l);
    void *buffer = malloc(l.bytes);
    chill_packed pk;
    ck_assert_int_eq(chill_pack(reqs, 2, &l, buffer, &pk), 0);
    ck_assert_int_eq(pk.transfer.n_in, 2 * 3 + (HQ + 2 * HKV));
    ck_assert_int_eq(pk.transfer.n_out, 2 * 2 + HQ);
    ck_assert_int_eq(pk.transfer.in[0].height, HQ);
    ck_assert_int_eq(pk.transfer.in[0].width, 5 * D * sizeof(float));
    chill_packed_free(&pk);
    free(buffer);
    free_req(&a), free_req(&b);
}
END_TEST

START_TEST(tokens_count_valid_rows) {
    uint64_t rng = 1;
    test_req t;
    make_req(&t, 3, 4, 11, 0, 1, 0, &rng);
    int64_t want = 0;
    for (int i = 0; i < 3; i++)
        want += t.lens_q[i] + t.lens_k[i];
    ck_assert_int_eq(chill_request_tokens(&t.r), want);
    t.r.params.seq_lens_q = t.r.params.seq_lens_k = NULL;
    ck_assert_int_eq(chill_request_tokens(&t.r), 3 * (4 + 11));
    free_req(&t);
}
END_TEST

START_TEST(batch_key) {
    uint64_t rng = 2;
    test_req a, b;
    make_req(&a, 1, 4, 4, 0, 0, 0, &rng);
    make_req(&b, 2, 8, 3, 1, 1, 1, &rng);
    ck_assert_msg(chill_batch_key_equal(&a.r, &b.r), "shapes, layout, lse and lengths do not split batches");
    b.r.params.mask.type = CHILL_MASK_full;
    ck_assert(!chill_batch_key_equal(&a.r, &b.r));
    b.r.params.mask = a.r.params.mask;
    b.r.params.mask.arg[0] = 1;
    ck_assert_msg(!chill_batch_key_equal(&a.r, &b.r), "mask arguments are part of the key");
    b.r.params.mask = a.r.params.mask;
    b.r.params.dtype = CHILL_F16;
    ck_assert(!chill_batch_key_equal(&a.r, &b.r));
    b.r.params.dtype = CHILL_F32;
    b.r.params.heads_kv = 4;
    ck_assert(!chill_batch_key_equal(&a.r, &b.r));
    b.r.params.heads_kv = HKV;
    b.r.params.sm_scale = 0.5f;
    ck_assert(!chill_batch_key_equal(&a.r, &b.r));
    b.r.params.sm_scale = 0;
    b.r.params.q_offset = 3;
    ck_assert(!chill_batch_key_equal(&a.r, &b.r));
    b.r.params.q_offset = a.r.params.q_offset;
    b.r.params.head_dim = 32;
    ck_assert(!chill_batch_key_equal(&a.r, &b.r));
    b.r.params.head_dim = D;
    b.r.device = 0;
    ck_assert_msg(!chill_batch_key_equal(&a.r, &b.r), "device-resident requests never batch");
    b.r.device = -1;
    ck_assert(chill_batch_key_equal(&a.r, &b.r));
    free_req(&a), free_req(&b);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_pack");
    TCase *tc = tcase_create("pack");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, packed_launch_splits_back_exactly, 0, 4);
    tcase_add_test(tc, cpu_backend_packs_batches);
    tcase_add_test(tc, tokens_count_valid_rows);
    tcase_add_test(tc, copies_per_layout);
    tcase_add_test(tc, batch_key);
    suite_add_tcase(s, tc);
    return s;
}
