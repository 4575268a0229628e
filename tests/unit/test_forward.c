/* The CPU kernel against the float64 reference (tests/ref): randomized
 * shapes, every registered mask with several argument sets, all three dtypes,
 * decode (T = 1), lengths that are no multiple of a tile, query offsets,
 * per-sequence lengths, packed sequences, GQA and MQA, every head_dim class,
 * strided layouts, rows with no key, each instruction-set variant, and one
 * thread against several. The output is poisoned with NaN before each run and
 * nothing outside the rows the sequences own may change: not the padded rows
 * past seq_lens_q, not the rows after the last packed sequence, not the gaps
 * of strided layouts. Each run prints its seed on failure;
 * CHILL_TEST_SEED=<n> replays one. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chill.h"
#include "cpu/cpu.h"
#include "ref/ref.h"

enum layout { BHTD, BTHD, GAPPED };

typedef struct spec {
    chill_dtype dtype;
    int64_t batch, hq, hkv, tq, tk, dim;
    enum layout layout;
    int packed;            /* cu_seqlens with random sequence lengths */
    int lens;              /* seq_lens_q / seq_lens_k, random, 0 included; packed too */
    int64_t q_offset;
    chill_mask mask;
    float sm_scale;
    int v_gapped;          /* v in the GAPPED layout whatever the others use */
} spec;

/* Each test (a process of its own) starts from one seed and counts up, so
 * that first seed replays the whole test. */
static uint64_t first_seed;

static uint64_t next_seed(void) {
    static uint64_t seed;
    if (first_seed == 0) {
        const char *env = getenv("CHILL_TEST_SEED");
        first_seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + (uint64_t)clock();
        seed = first_seed;
    }
    return seed++;
}

static double tolerance(chill_dtype t) { return t == CHILL_F32 ? 1e-5 : t == CHILL_F16 ? 2e-3 : 1e-2; }

static void set_strides(chill_tensor *t, enum layout layout, int64_t h, int64_t n, int64_t d) {
    if (layout == BTHD) {
        t->stride[0] = n * h * d, t->stride[1] = d, t->stride[2] = h * d;
    } else if (layout == GAPPED) {
        t->stride[2] = d + 8, t->stride[1] = (n + 1) * (d + 8), t->stride[0] = h * (n + 1) * (d + 8) + 3;
    }
}

/* Random lengths in [0, max] (packed: [0, the sequence's packed length]),
 * the first one short of its bound when it can be, so that every call with
 * lengths has rows past one. */
static int32_t *random_lengths(int64_t batch, int64_t max, const int32_t *cu, uint64_t *rng) {
    int32_t *l = malloc((size_t)batch * sizeof *l);
    for (int64_t b = 0; b < batch; b++) {
        int64_t bound = cu != NULL ? cu[b + 1] - cu[b] : max;
        int64_t choices = b == 0 && bound > 0 ? bound : bound + 1; /* 0 .. bound, the first below it */
        l[b] = (int32_t)(chill_ref_rand(rng) % (uint64_t)choices);
    }
    return l;
}

/* cu[0] = 0, then random sequence lengths in [0, max]; *total gets cu[batch]. */
static int32_t *random_offsets(int64_t batch, int64_t max, int64_t *total, uint64_t *rng) {
    int32_t *cu = malloc((size_t)(batch + 1) * sizeof *cu);
    cu[0] = 0;
    for (int64_t b = 0; b < batch; b++)
        cu[b + 1] = cu[b] + (int32_t)(chill_ref_rand(rng) % (uint64_t)(max + 1));
    *total = cu[batch];
    return cu;
}

static void *alloc_tensor(const chill_params *p, char which, size_t *n, uint64_t *rng) {
    chill_dtype t = which == 'l' ? CHILL_F32 : p->dtype;
    size_t es = which == 'l' ? sizeof(float) : chill_dtype_size(t);
    *n = chill_ref_span(p, which) + 40; /* slack past the end catches overruns */
    void *data = malloc(*n * es);
    if (which == 'o' || which == 'l')
        chill_ref_poison(data, t, *n);
    else
        chill_ref_fill(data, t, *n, rng);
    return data;
}

/* One call with its inputs, its reference result and how to name it. */
typedef struct call {
    chill_params p;
    size_t n_out, n_lse;
    double *ref, *ref_lse;
    int32_t *cu_q, *cu_k, *len_q, *len_k;
    char what[320];
} call;

/* Builds the call s describes, with random inputs and its reference result. */
static call *call_build(spec s) {
    uint64_t seed = next_seed(), rng = seed;
    call *c = calloc(1, sizeof *c);
    chill_params *p = &c->p;
    chill_params_init(p);
    p->dtype = s.dtype;
    p->batch = s.batch, p->heads_q = s.hq, p->heads_kv = s.hkv, p->head_dim = s.dim;
    p->seq_q = s.tq, p->seq_k = s.tk;
    p->q_offset = s.q_offset;
    p->mask = s.mask;
    p->sm_scale = s.sm_scale;
    if (s.packed) {
        int64_t total_q, total_k;
        c->cu_q = random_offsets(s.batch, s.tq, &total_q, &rng);
        c->cu_k = random_offsets(s.batch, s.tk, &total_k, &rng);
        p->seq_q = total_q + 3; /* rows after the last sequence: owned by none */
        p->seq_k = total_k + 1;
        p->cu_seqlens_q = c->cu_q, p->cu_seqlens_k = c->cu_k;
    }
    if (s.lens) {
        c->len_q = random_lengths(s.batch, s.tq, c->cu_q, &rng);
        c->len_k = random_lengths(s.batch, s.tk, c->cu_k, &rng);
        p->seq_lens_q = c->len_q, p->seq_lens_k = c->len_k;
    }
    set_strides(&p->q, s.layout, p->heads_q, p->seq_q, p->head_dim);
    set_strides(&p->out, s.layout, p->heads_q, p->seq_q, p->head_dim);
    set_strides(&p->k, s.layout, p->heads_kv, p->seq_k, p->head_dim);
    set_strides(&p->v, s.v_gapped ? GAPPED : s.layout, p->heads_kv, p->seq_k, p->head_dim);
    set_strides(&p->lse, s.layout, p->heads_q, p->seq_q, 1);

    size_t n;
    p->q.data = alloc_tensor(p, 'q', &n, &rng);
    p->k.data = alloc_tensor(p, 'k', &n, &rng);
    p->v.data = alloc_tensor(p, 'v', &n, &rng);
    p->out.data = alloc_tensor(p, 'o', &c->n_out, &rng);
    p->lse.data = alloc_tensor(p, 'l', &c->n_lse, &rng);
    c->ref = calloc(c->n_out, sizeof *c->ref);
    c->ref_lse = calloc(c->n_lse, sizeof *c->ref_lse);
    chill_ref_forward(p, c->ref, c->ref_lse);
    snprintf(c->what, sizeof c->what,
             "CHILL_TEST_SEED=%llu (data seed %llu): %s %s(%lld,%lld) B%lld Hq%lld Hkv%lld Tq%lld Tk%lld D%lld "
             "layout %d%s packed %d lens %d q_offset %lld sm_scale %g isa %s",
             (unsigned long long)first_seed, (unsigned long long)seed, chill_dtype_name(p->dtype),
             chill_mask_name(p->mask.type), (long long)p->mask.arg[0], (long long)p->mask.arg[1], (long long)p->batch,
             (long long)p->heads_q, (long long)p->heads_kv, (long long)p->seq_q, (long long)p->seq_k,
             (long long)p->head_dim, s.layout, s.v_gapped ? " (v gapped)" : "", s.packed, s.lens,
             (long long)(p->q_offset == CHILL_Q_OFFSET_AUTO ? -999999 : p->q_offset), (double)p->sm_scale,
             chill_cpu_isa_current()->name);
    return c;
}

static void call_poison(call *c) {
    chill_ref_poison(c->p.out.data, c->p.dtype, c->n_out);
    chill_ref_poison(c->p.lse.data, CHILL_F32, c->n_lse);
}

/* out and lse against the reference; nothing around them written. */
static void call_check(const call *c, const char *how) {
    double e = chill_ref_rel_error(&c->p, c->ref), le = chill_ref_lse_error(&c->p, c->ref_lse);
    ck_assert_msg(e <= tolerance(c->p.dtype), "%s, %s: relative error %g > %g", c->what, how, e,
                  tolerance(c->p.dtype));
    ck_assert_msg(le <= 2e-4, "%s, %s: lse error %g", c->what, how, le);
    size_t so = chill_ref_stray_writes(&c->p, 'o', c->n_out), sl = chill_ref_stray_writes(&c->p, 'l', c->n_lse);
    ck_assert_msg(so == 0 && sl == 0, "%s, %s: %zu stray writes in out, %zu in lse", c->what, how, so, sl);
}

static void call_free(call *c) {
    free(c->p.q.data), free(c->p.k.data), free(c->p.v.data), free(c->p.out.data), free(c->p.lse.data);
    free(c->ref), free(c->ref_lse), free(c->cu_q), free(c->cu_k), free(c->len_q), free(c->len_k);
    free(c);
}

/* Runs the call s describes with 1 and with 3 threads and checks each. */
static void check_spec(spec s) {
    call *c = call_build(s);
    const int threads[] = {1, 3};
    for (int t = 0; t < 2; t++) {
        call_poison(c);
        chill_set_num_threads(threads[t]);
        chill_error err;
        chill_status st = chill_forward(&c->p, &err);
        ck_assert_msg(st == CHILL_OK, "%s: %s", c->what, err.message);
        call_check(c, threads[t] == 1 ? "1 thread" : "3 threads");
    }
    chill_set_num_threads(0);
    call_free(c);
}

static int64_t pick(uint64_t *rng, int64_t lo, int64_t hi) {
    return lo + (int64_t)(chill_ref_rand(rng) % (uint64_t)(hi - lo + 1));
}

static const int64_t head_dims[] = {16, 24, 32, 64, 80, 96, 128, 256};

/* A small random shape with mask m. */
static spec random_spec(uint64_t *rng, chill_dtype t, chill_mask m) {
    spec s = {t, pick(rng, 1, 2), 2, 1, pick(rng, 1, 150), 0, head_dims[pick(rng, 0, 4)], BHTD, 0, 0,
              CHILL_Q_OFFSET_AUTO, m, 0.0f, 0};
    s.tk = pick(rng, 0, 1) ? s.tq : pick(rng, 1, 150);
    s.hkv = pick(rng, 0, 1) ? 1 : 2;
    return s;
}

/* Argument sets for mask type: each argument at its minimum, just above it,
 * a mid value, or the largest accepted, across the sets. */
static chill_mask mask_with(int type, int set, uint64_t *rng) {
    chill_mask m = {type, {0}};
    for (int i = 0; i < chill_mask_nargs(type); i++) {
        int64_t lo = 0;
        if (type == CHILL_MASK_chunkwise && i == 0)
            lo = 1; /* registry minimum, checked in test_api */
        const int64_t choice[] = {lo, lo + 1, lo + pick(rng, 2, 40), CHILL_MASK_ARG_MAX};
        m.arg[i] = choice[(set + i) % 4];
    }
    return m;
}

START_TEST(every_mask_every_dtype) {
    uint64_t rng = next_seed();
    for (int type = 0; type < chill_mask_count(); type++)
        for (int set = 0; set < 4; set++)
            for (int t = CHILL_F32; t <= CHILL_BF16; t++)
                check_spec(random_spec(&rng, (chill_dtype)t, mask_with(type, set, &rng)));
}
END_TEST

START_TEST(decode_one_query) {
    uint64_t rng = next_seed();
    for (int type = 0; type < chill_mask_count(); type++) {
        spec s = random_spec(&rng, CHILL_F32, mask_with(type, 2, &rng));
        s.tq = 1, s.tk = pick(&rng, 1, 300);
        check_spec(s);
        s.tk = 1;
        check_spec(s);
    }
}
END_TEST

START_TEST(lengths_off_the_tile_grid) {
    const int64_t lengths[] = {63, 65, 127, 129, 200};
    chill_mask causal = {CHILL_MASK_causal, {0}}, window = {CHILL_MASK_sliding_window, {37, 5}};
    for (int i = 0; i < 5; i++) {
        check_spec((spec){CHILL_F32, 1, 2, 2, lengths[i], lengths[4 - i], 64, BHTD, 0, 0, CHILL_Q_OFFSET_AUTO, causal, 0, 0});
        check_spec((spec){CHILL_BF16, 1, 1, 1, lengths[i], lengths[i], 32, BHTD, 0, 0, CHILL_Q_OFFSET_AUTO, window, 0, 0});
    }
}
END_TEST

START_TEST(query_offsets) {
    const int64_t offsets[] = {CHILL_Q_OFFSET_AUTO, 0, 37, 200, -20, -300};
    uint64_t rng = next_seed();
    for (int i = 0; i < 6; i++)
        for (int type = 0; type < chill_mask_count(); type++) {
            spec s = random_spec(&rng, CHILL_F32, mask_with(type, 1 + i % 3, &rng));
            s.tq = pick(&rng, 1, 90), s.tk = pick(&rng, 1, 160), s.q_offset = offsets[i];
            check_spec(s);
        }
}
END_TEST

START_TEST(sequence_lengths) {
    uint64_t rng = next_seed();
    for (int type = 0; type < chill_mask_count(); type++)
        for (int t = CHILL_F32; t <= CHILL_BF16; t++) {
            spec s = random_spec(&rng, (chill_dtype)t, mask_with(type, 2, &rng));
            s.batch = 4, s.lens = 1, s.tq = pick(&rng, 1, 100), s.tk = pick(&rng, 1, 100);
            check_spec(s);
        }
}
END_TEST

START_TEST(packed_sequences) {
    uint64_t rng = next_seed();
    for (int type = 0; type < chill_mask_count(); type++)
        for (int t = CHILL_F32; t <= CHILL_BF16; t++) {
            spec s = random_spec(&rng, (chill_dtype)t, mask_with(type, 2, &rng));
            s.batch = 5, s.packed = 1, s.tq = 70, s.tk = 70, s.layout = (enum layout)(t % 3);
            check_spec(s);
            s.q_offset = 4; /* one offset for every sequence */
            check_spec(s);
            s.lens = 1; /* and fewer valid rows and keys than packed */
            check_spec(s);
        }
}
END_TEST

START_TEST(grouped_and_multi_query) {
    chill_mask causal = {CHILL_MASK_causal, {0}};
    const int64_t groups[][2] = {{4, 4}, {8, 2}, {6, 1}};
    for (int g = 0; g < 3; g++)
        for (int t = CHILL_F32; t <= CHILL_BF16; t++)
            check_spec((spec){(chill_dtype)t, 2, groups[g][0], groups[g][1], 70, 70, 32, BHTD, 0, 0,
                              CHILL_Q_OFFSET_AUTO, causal, 0, 0});
}
END_TEST

START_TEST(every_head_dim) {
    chill_mask window = {CHILL_MASK_sliding_window, {20, 3}};
    for (int i = 0; i < 8; i++)
        for (int t = CHILL_F32; t <= CHILL_BF16; t++)
            check_spec((spec){(chill_dtype)t, 1, 2, 1, 67, 80, head_dims[i], BHTD, 0, 0, CHILL_Q_OFFSET_AUTO,
                              window, 0, 0});
}
END_TEST

START_TEST(strided_layouts) {
    uint64_t rng = next_seed();
    for (int layout = BHTD; layout <= GAPPED; layout++)
        for (int t = CHILL_F32; t <= CHILL_BF16; t++) {
            spec s = random_spec(&rng, (chill_dtype)t, mask_with(CHILL_MASK_chunkwise, 1, &rng));
            s.layout = (enum layout)layout, s.batch = 2, s.dim = 80;
            check_spec(s);
            s.v_gapped = 1; /* k and v with different token strides */
            check_spec(s);
        }
}
END_TEST

/* Rows that attend nothing: queries before every key under causal, windows
 * that miss the keys, sequences with no keys at all. */
START_TEST(rows_without_keys) {
    chill_mask causal = {CHILL_MASK_causal, {0}}, window = {CHILL_MASK_sliding_window, {2, 2}};
    check_spec((spec){CHILL_F32, 1, 2, 2, 100, 60, 64, BHTD, 0, 0, -40, causal, 0, 0});
    check_spec((spec){CHILL_F16, 1, 2, 2, 100, 60, 64, BHTD, 0, 0, 50, window, 0, 0});
    check_spec((spec){CHILL_BF16, 3, 2, 1, 30, 1, 16, BHTD, 0, 1, CHILL_Q_OFFSET_AUTO, window, 0, 0});
}
END_TEST

/* Rows no sequence owns are the caller's and stay as they were (NaN here:
 * call_check counts any change as a stray write): padded rows past
 * seq_lens_q, rows after the last packed sequence, a packed sequence's rows
 * past its seq_lens_q; in every dtype and layout. */
START_TEST(unowned_rows_untouched) {
    chill_mask causal = {CHILL_MASK_causal, {0}};
    for (int layout = BHTD; layout <= GAPPED; layout++)
        for (int t = CHILL_F32; t <= CHILL_BF16; t++) {
            spec s = {(chill_dtype)t, 3, 2, 1, 40, 50, 32, (enum layout)layout, 0, 1, CHILL_Q_OFFSET_AUTO,
                      causal, 0, 0};
            check_spec(s); /* padded: the first sequence is short */
            s.packed = 1, s.lens = 0;
            check_spec(s); /* packed: 3 rows after the last sequence */
            s.lens = 1;
            check_spec(s); /* packed, with lengths inside the sequences */
        }
}
END_TEST

START_TEST(explicit_scales) {
    uint64_t rng = next_seed();
    const float scales[] = {1e-3f, 0.5f, 3.0f};
    for (int i = 0; i < 3; i++) {
        spec s = random_spec(&rng, CHILL_F32, mask_with(CHILL_MASK_prefix_lm, i, &rng));
        s.sm_scale = scales[i];
        check_spec(s);
    }
}
END_TEST

/* allow_tf32 is a permission for the GPU: the CPU computes fp32 in fp32
 * either way, to the same bits. */
START_TEST(tf32_ignored_on_cpu) {
    uint64_t rng = next_seed();
    for (int type = 0; type < chill_mask_count(); type++) {
        call *c = call_build(random_spec(&rng, CHILL_F32, mask_with(type, 2, &rng)));
        chill_error err;
        call_poison(c);
        ck_assert_msg(chill_forward(&c->p, &err) == CHILL_OK, "%s: %s", c->what, err.message);
        float *plain = malloc(c->n_out * sizeof *plain);
        memcpy(plain, c->p.out.data, c->n_out * sizeof *plain);
        c->p.allow_tf32 = 1;
        call_poison(c);
        ck_assert_msg(chill_forward(&c->p, &err) == CHILL_OK, "%s, allow_tf32: %s", c->what, err.message);
        call_check(c, "allow_tf32");
        ck_assert_msg(memcmp(plain, c->p.out.data, c->n_out * sizeof *plain) == 0,
                      "%s: allow_tf32 changed the CPU's output", c->what);
        free(plain);
        call_free(c);
    }
}
END_TEST

/* Every instruction-set variant this processor runs, on a mixed set. */
START_TEST(every_isa) {
    const char *names[] = {"scalar", "avx2", "avx512"};
    uint64_t rng = next_seed();
    for (int i = 0; i < 3; i++) {
        if (chill_cpu_use_isa(names[i]) != 0)
            continue;
        for (int type = 0; type < chill_mask_count(); type++)
            for (int t = CHILL_F32; t <= CHILL_BF16; t++) {
                spec s = random_spec(&rng, (chill_dtype)t, mask_with(type, 2, &rng));
                s.dim = head_dims[pick(&rng, 0, 7)];
                check_spec(s);
            }
    }
    chill_cpu_use_isa(NULL);
}
END_TEST

/* Everything at once, drawn at random: mask and arguments, dtype, layout,
 * lengths, packing or both, offsets, head grouping, head_dim, scale. */
START_TEST(random_calls) {
    uint64_t rng = next_seed();
    const int64_t offsets[] = {CHILL_Q_OFFSET_AUTO, CHILL_Q_OFFSET_AUTO, 0, -30, 45};
    for (int n = 0; n < 40; n++) {
        int type = (int)pick(&rng, 0, chill_mask_count() - 1);
        spec s = random_spec(&rng, (chill_dtype)pick(&rng, 0, 2), mask_with(type, (int)pick(&rng, 0, 3), &rng));
        s.dim = head_dims[pick(&rng, 0, 7)];
        s.layout = (enum layout)pick(&rng, 0, 2);
        s.batch = pick(&rng, 1, 3);
        s.hkv = pick(&rng, 1, 2), s.hq = s.hkv * pick(&rng, 1, 3);
        s.packed = pick(&rng, 0, 2) == 0;
        s.lens = pick(&rng, 0, 1);
        s.q_offset = offsets[pick(&rng, 0, 4)];
        s.sm_scale = pick(&rng, 0, 1) ? 0.0f : (float)pick(&rng, 1, 30) / 10.0f;
        check_spec(s);
    }
}
END_TEST

static void *forward_thread(void *arg) {
    call *c = arg;
    for (int i = 0; i < 4; i++)
        if (chill_forward(&c->p, NULL) != CHILL_OK)
            return arg;
    return NULL;
}

/* Callers on several threads at once share the pool; each gets its own result. */
START_TEST(concurrent_callers) {
    uint64_t rng = next_seed();
    call *c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        c[i] = call_build(random_spec(&rng, (chill_dtype)(i % 3), mask_with(i % chill_mask_count(), 2, &rng)));
        call_poison(c[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, forward_thread, c[i]);
    for (int i = 0; i < 4; i++) {
        void *failed;
        pthread_join(t[i], &failed);
        ck_assert_msg(failed == NULL, "%s: failed on a concurrent caller", c[i]->what);
    }
    for (int i = 0; i < 4; i++) {
        call_check(c[i], "concurrent callers");
        call_free(c[i]);
    }
}
END_TEST

/* The pool's threads do not survive fork(): a child that calls in after its
 * parent did gets a pool of its own instead of waiting on threads it lacks. */
START_TEST(forward_after_fork) {
    uint64_t rng = next_seed();
    call *c = call_build(random_spec(&rng, CHILL_F32, mask_with(CHILL_MASK_causal, 0, &rng)));
    chill_set_num_threads(2);
    ck_assert_int_eq(chill_forward(&c->p, NULL), CHILL_OK);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        call_poison(c);
        int ok = chill_forward(&c->p, NULL) == CHILL_OK && chill_ref_rel_error(&c->p, c->ref) <= 1e-5;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the forked child failed (status %d)", c->what,
                  status);
    call_free(c);
}
END_TEST

/* chill_attended_pairs against a brute-force count with the predicate. */
START_TEST(attended_pairs_exact) {
    uint64_t rng = next_seed();
    for (int type = 0; type < chill_mask_count(); type++)
        for (int set = 0; set < 4; set++) {
            spec s = random_spec(&rng, CHILL_F32, mask_with(type, set, &rng));
            chill_params p;
            chill_params_init(&p);
            p.batch = 4, p.heads_q = 4, p.heads_kv = 2, p.head_dim = 16, p.seq_q = s.tq, p.seq_k = s.tk;
            p.mask = s.mask;
            p.q_offset = set == 3 ? -7 : CHILL_Q_OFFSET_AUTO;
            /* two equal sequences in a row, an empty one, a short one */
            int32_t lq[4] = {(int32_t)s.tq, (int32_t)s.tq, 0, (int32_t)(s.tq / 2)};
            int32_t lk[4] = {(int32_t)s.tk, (int32_t)s.tk, (int32_t)s.tk, 1};
            p.seq_lens_q = lq, p.seq_lens_k = lk;
            float dummy[1];
            p.q.data = p.k.data = p.v.data = p.out.data = dummy;
            int64_t want = 0;
            for (int b = 0; b < 4; b++) {
                int64_t off = p.q_offset == CHILL_Q_OFFSET_AUTO ? lk[b] - lq[b] : p.q_offset;
                for (int64_t i = 0; i < lq[b]; i++)
                    for (int64_t j = 0; j < lk[b]; j++)
                        want += chill_mask_allows(&p.mask, off + i, j);
            }
            ck_assert_int_eq(chill_attended_pairs(&p), want * p.heads_q);
        }
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_mask_every_dtype);
    tcase_add_test(tc, decode_one_query);
    tcase_add_test(tc, lengths_off_the_tile_grid);
    tcase_add_test(tc, query_offsets);
    tcase_add_test(tc, sequence_lengths);
    tcase_add_test(tc, packed_sequences);
    tcase_add_test(tc, grouped_and_multi_query);
    tcase_add_test(tc, every_head_dim);
    tcase_add_test(tc, strided_layouts);
    tcase_add_test(tc, rows_without_keys);
    tcase_add_test(tc, unowned_rows_untouched);
    tcase_add_test(tc, explicit_scales);
    tcase_add_test(tc, tf32_ignored_on_cpu);
    tcase_add_test(tc, every_isa);
    tcase_add_test(tc, random_calls);
    tcase_add_test(tc, concurrent_callers);
    tcase_add_test(tc, forward_after_fork);
    tcase_add_test(tc, attended_pairs_exact);
    suite_add_tcase(s, tc);
    return s;
}
