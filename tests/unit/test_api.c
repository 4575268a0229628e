/* The libchill API layer: every validation error returns CHILL_ERR_INVALID
 * with a message naming the field and writes nothing (out and lse stay
 * poisoned), a valid call goes through, and the small helpers (names, sizes,
 * parsing, defaults, threads) say what chill.h promises. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chill.h"
#include "ref/ref.h"

#define B 2
#define H 2
#define T 20
#define D 16

static float q[B * H * T * D], k[B * H * T * D], v[B * H * T * D], out[B * H * T * D], lse[B * H * T];

static chill_params valid_params(void) {
    chill_params p;
    chill_params_init(&p);
    p.batch = B, p.heads_q = H, p.heads_kv = H, p.seq_q = T, p.seq_k = T, p.head_dim = D;
    p.q.data = q, p.k.data = k, p.v.data = v, p.out.data = out, p.lse.data = lse;
    p.mask.type = CHILL_MASK_causal;
    uint64_t rng = 7;
    chill_ref_fill(q, CHILL_F32, sizeof q / sizeof *q, &rng);
    chill_ref_fill(k, CHILL_F32, sizeof k / sizeof *k, &rng);
    chill_ref_fill(v, CHILL_F32, sizeof v / sizeof *v, &rng);
    return p;
}

static size_t written(void) {
    size_t n = 0;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        n += !isnan(out[i]);
    for (size_t i = 0; i < sizeof lse / sizeof *lse; i++)
        n += !isnan(lse[i]);
    return n;
}

/* p must be refused, naming field, with nothing written; a refused geometry
 * also has no attended-pair count. */
static void expect_invalid(const chill_params *p, const char *field, int geometry, int line) {
    chill_ref_poison(out, CHILL_F32, sizeof out / sizeof *out);
    chill_ref_poison(lse, CHILL_F32, sizeof lse / sizeof *lse);
    chill_error err = {CHILL_OK, ""};
    chill_status s = chill_forward(p, &err);
    ck_assert_msg(s == CHILL_ERR_INVALID, "line %d: status %s, want INVALID (%s)", line, chill_status_name(s),
                  err.message);
    ck_assert_msg(err.status == CHILL_ERR_INVALID, "line %d: err.status not filled", line);
    ck_assert_msg(strstr(err.message, field) != NULL, "line %d: message \"%s\" does not name %s", line, err.message,
                  field);
    ck_assert_msg(written() == 0, "line %d: %zu elements written on an invalid call", line, written());
    if (geometry)
        ck_assert_msg(chill_attended_pairs(p) == -1, "line %d: attended_pairs accepted an invalid geometry", line);
}

#define EXPECT_REFUSED(mutation, field, geometry)     \
    do {                                              \
        chill_params p_ = valid_params();             \
        chill_params *p = &p_;                        \
        mutation;                                     \
        expect_invalid(p, field, geometry, __LINE__); \
    } while (0)
#define EXPECT_INVALID(mutation, field) EXPECT_REFUSED(mutation, field, 0)
#define EXPECT_INVALID_GEOMETRY(mutation, field) EXPECT_REFUSED(mutation, field, 1)

START_TEST(valid_call_runs) {
    chill_params bare; /* the pair count needs no tensors */
    chill_params_init(&bare);
    bare.batch = 1, bare.heads_q = 2, bare.heads_kv = 1, bare.seq_q = 3, bare.seq_k = 5;
    bare.mask.type = CHILL_MASK_causal;
    ck_assert_int_eq(chill_attended_pairs(&bare), 2 * (3 + 4 + 5));

    chill_params p = valid_params();
    chill_ref_poison(out, CHILL_F32, sizeof out / sizeof *out);
    chill_error err = {CHILL_ERR_DEVICE, "stale"};
    ck_assert_int_eq(chill_forward(&p, &err), CHILL_OK);
    ck_assert_int_eq(err.status, CHILL_OK);
    ck_assert_str_eq(err.message, "");
    ck_assert_uint_eq(written(), sizeof out / sizeof *out + sizeof lse / sizeof *lse);
    ck_assert_int_eq(chill_forward(&p, NULL), CHILL_OK);
}
END_TEST

START_TEST(null_pointers) {
    expect_invalid(NULL, "params", 1, __LINE__);
    EXPECT_INVALID(p->q.data = NULL, "q.data");
    EXPECT_INVALID(p->k.data = NULL, "k.data");
    EXPECT_INVALID(p->v.data = NULL, "v.data");
    EXPECT_INVALID(p->out.data = NULL, "out.data");
}
END_TEST

START_TEST(dtype_and_head_dim) {
    EXPECT_INVALID(p->dtype = (chill_dtype)3, "dtype");
    EXPECT_INVALID(p->dtype = (chill_dtype)-1, "dtype");
    EXPECT_INVALID(p->head_dim = 8, "head_dim");
    EXPECT_INVALID(p->head_dim = 264, "head_dim");
    EXPECT_INVALID(p->head_dim = 20, "head_dim");
    EXPECT_INVALID(p->head_dim = 0, "head_dim");
}
END_TEST

START_TEST(extents) {
    EXPECT_INVALID_GEOMETRY(p->batch = 0, "batch");
    EXPECT_INVALID_GEOMETRY(p->heads_q = 0, "heads_q");
    EXPECT_INVALID_GEOMETRY(p->heads_kv = -1, "heads_kv");
    EXPECT_INVALID_GEOMETRY(p->seq_q = 0, "seq_q");
    EXPECT_INVALID_GEOMETRY(p->seq_k = 0, "seq_k");
    EXPECT_INVALID_GEOMETRY((p->heads_q = 3, p->heads_kv = 2), "heads_kv");
}
END_TEST

START_TEST(sequence_lengths) {
    int32_t too_long[B] = {T + 1, 1}, negative[B] = {1, -1};
    EXPECT_INVALID_GEOMETRY(p->seq_lens_q = too_long, "seq_lens_q[0]");
    EXPECT_INVALID_GEOMETRY(p->seq_lens_q = negative, "seq_lens_q[1]");
    EXPECT_INVALID_GEOMETRY(p->seq_lens_k = too_long, "seq_lens_k[0]");
    EXPECT_INVALID_GEOMETRY(p->seq_lens_k = negative, "seq_lens_k[1]");
}
END_TEST

START_TEST(packed_offsets) {
    int32_t ok[B + 1] = {0, 5, 9}, not_zero[B + 1] = {1, 5, 9}, down[B + 1] = {0, 5, 4}, past[B + 1] = {0, 5, T + 1};
    int32_t longer[B] = {6, 1};
    EXPECT_INVALID_GEOMETRY(p->cu_seqlens_q = ok, "cu_seqlens_q");
    EXPECT_INVALID_GEOMETRY(p->cu_seqlens_k = ok, "cu_seqlens_k");
    EXPECT_INVALID_GEOMETRY((p->cu_seqlens_q = not_zero, p->cu_seqlens_k = ok), "cu_seqlens_q[0]");
    EXPECT_INVALID_GEOMETRY((p->cu_seqlens_q = ok, p->cu_seqlens_k = down), "cu_seqlens_k[2]");
    EXPECT_INVALID_GEOMETRY((p->cu_seqlens_q = past, p->cu_seqlens_k = ok), "cu_seqlens_q[2]");
    EXPECT_INVALID_GEOMETRY((p->cu_seqlens_q = ok, p->cu_seqlens_k = ok, p->seq_lens_q = longer), "seq_lens_q[0]");
}
END_TEST

START_TEST(masks) {
    EXPECT_INVALID_GEOMETRY(p->mask.type = CHILL_MASK_COUNT, "mask.type");
    EXPECT_INVALID_GEOMETRY(p->mask.type = -1, "mask.type");
    /* every argument of every registered mask, one below its minimum and one past the maximum */
    for (int t = 0; t < chill_mask_count(); t++)
        for (int i = 0; i < chill_mask_nargs(t); i++) {
            int64_t lo = 0;
            for (int64_t x = -3; x <= 3; x++) { /* find the smallest accepted value near zero */
                chill_params p = valid_params();
                p.mask.type = t, p.mask.arg[i] = x;
                for (int j = 0; j < chill_mask_nargs(t); j++)
                    p.mask.arg[j] = j == i ? x : 4;
                if (chill_forward(&p, NULL) == CHILL_OK) {
                    lo = x;
                    break;
                }
            }
            ck_assert_int_ge(lo, 0);
            EXPECT_INVALID_GEOMETRY((p->mask.type = t, p->mask.arg[0] = p->mask.arg[1] = 4, p->mask.arg[i] = lo - 1),
                           chill_mask_arg_name(t, i));
            EXPECT_INVALID_GEOMETRY((p->mask.type = t, p->mask.arg[0] = p->mask.arg[1] = 4,
                            p->mask.arg[i] = CHILL_MASK_ARG_MAX + 1),
                           chill_mask_arg_name(t, i));
        }
}
END_TEST

START_TEST(scale_and_offset) {
    EXPECT_INVALID(p->sm_scale = NAN, "sm_scale");
    EXPECT_INVALID(p->sm_scale = INFINITY, "sm_scale");
    EXPECT_INVALID(p->sm_scale = -0.5f, "sm_scale");
    EXPECT_INVALID_GEOMETRY(p->q_offset = ((int64_t)1 << 40) + 1, "q_offset");
    EXPECT_INVALID_GEOMETRY(p->q_offset = -((int64_t)1 << 40) - 1, "q_offset");
}
END_TEST

START_TEST(strides_and_overflow) {
    EXPECT_INVALID((p->k.stride[0] = 1, p->k.stride[2] = -16), "k.stride[2]");
    EXPECT_INVALID((p->lse.stride[1] = -1), "lse.stride[1]");
    EXPECT_INVALID((p->batch = (int64_t)1 << 40, p->heads_q = p->heads_kv = 1 << 20), "q:");
    EXPECT_INVALID((p->v.stride[0] = (int64_t)1 << 62, p->v.stride[1] = T * D, p->v.stride[2] = D), "v:");
    EXPECT_INVALID((p->out.stride[0] = INT64_MAX / 3, p->out.stride[1] = T * D, p->out.stride[2] = D), "out:");
}
END_TEST

START_TEST(helpers) {
    chill_params p;
    memset(&p, 0xab, sizeof p);
    chill_params_init(&p);
    ck_assert(p.q_offset == CHILL_Q_OFFSET_AUTO);
    ck_assert_int_eq(p.mask.type, CHILL_MASK_full);
    ck_assert(p.q.data == NULL && p.sm_scale == 0.0f && p.seq_lens_q == NULL && p.batch == 0);

    const char *names[] = {"FP32", "FP16", "BF16"};
    const size_t sizes[] = {4, 2, 2};
    for (int t = 0; t < 3; t++) {
        chill_dtype parsed = (chill_dtype)-1, lower = (chill_dtype)-1;
        char low[8];
        for (int i = 0; i < 5; i++)
            low[i] = (char)(names[t][i] >= 'A' && names[t][i] <= 'Z' ? names[t][i] + 32 : names[t][i]);
        ck_assert_str_eq(chill_dtype_name((chill_dtype)t), names[t]);
        ck_assert_uint_eq(chill_dtype_size((chill_dtype)t), sizes[t]);
        ck_assert_int_eq(chill_dtype_parse(names[t], &parsed), 0);
        ck_assert_int_eq(chill_dtype_parse(low, &lower), 0);
        ck_assert_int_eq(parsed, t);
        ck_assert_int_eq(lower, t);
    }
    chill_dtype untouched = CHILL_F16;
    ck_assert_int_eq(chill_dtype_parse("FP64", &untouched), -1);
    ck_assert_int_eq(chill_dtype_parse(NULL, &untouched), -1);
    ck_assert_int_eq(untouched, CHILL_F16);
    ck_assert_uint_eq(chill_dtype_size((chill_dtype)9), 0);

    ck_assert_str_eq(chill_status_name(CHILL_OK), "OK");
    ck_assert_str_eq(chill_status_name(CHILL_ERR_INVALID), "INVALID");
    ck_assert_str_eq(chill_status_name(CHILL_ERR_NOMEM), "NOMEM");

    ck_assert_int_eq(chill_set_num_threads(3), 3);
    ck_assert_int_ge(chill_set_num_threads(0), 1);
#ifndef CHILL_WITH_CUDA
    ck_assert_int_eq(chill_device_healthy(), 0);
#endif
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("validation");
    tcase_add_test(tc, valid_call_runs);
    tcase_add_test(tc, null_pointers);
    tcase_add_test(tc, dtype_and_head_dim);
    tcase_add_test(tc, extents);
    tcase_add_test(tc, sequence_lengths);
    tcase_add_test(tc, packed_offsets);
    tcase_add_test(tc, masks);
    tcase_add_test(tc, scale_and_offset);
    tcase_add_test(tc, strides_and_overflow);
    tcase_add_test(tc, helpers);
    suite_add_tcase(s, tc);
    return s;
}
