/* The CPU kernel benchmark (not a test): for each mask of the set below and
 * each shape (B 1, H 8, T 1024 and 4096, D 64 and 128, fp32 and bf16) the
 * median time of repeated chill_forward() calls, the effective GFLOP/s
 * (4 * D * attended pairs / time) and its share of this machine's fp32 FMA
 * peak, measured in the same run by a loop of independent FMAs on every
 * thread. For the banded masks it also prints how the time grows with T,
 * up to T 16384 at fp32 and D 128.
 *
 *   bench_cpu [--threads N] [--isa scalar|avx2|avx512] [--quick]
 *
 * Output is a Markdown table, ready for bench/results/. */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chill.h"
#include "cpu/cpu.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the FMA peak ---------------------------------------------------------- */

#define PEAK_ITERS 4000000L
#define PEAK_RUNS 5 /* the best of: other processes only ever slow a run down */
#define PEAK_CHAINS 12 /* independent accumulators: more than latency x ports */
#define UNROLL _Pragma("GCC unroll 16") /* keeps the accumulators in registers */

__attribute__((target("avx512f"))) static double fma_loop_avx512(void) {
    __m512 acc[PEAK_CHAINS], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    UNROLL for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < PEAK_ITERS; n++)
        UNROLL for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    float sink[16];
    UNROLL for (int i = 1; i < PEAK_CHAINS; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    _mm512_storeu_ps(sink, acc[0]);
    return sink[0];
}

__attribute__((target("avx2,fma"))) static double fma_loop_avx2(void) {
    __m256 acc[PEAK_CHAINS], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    UNROLL for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < PEAK_ITERS; n++)
        UNROLL for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    float sink[8];
    UNROLL for (int i = 1; i < PEAK_CHAINS; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(sink, acc[0]);
    return sink[0];
}

static int peak_lanes;
static volatile double peak_sink;

static void *peak_thread(void *arg) {
    (void)arg;
    peak_sink = peak_lanes == 16 ? fma_loop_avx512() : fma_loop_avx2();
    return NULL;
}

/* GFLOP/s of fp32 FMAs over n threads, at the widest vectors the processor has. */
static double fma_peak(int n) {
    peak_lanes = __builtin_cpu_supports("avx512f") ? 16 : 8;
    pthread_t t[256];
    n = n > 256 ? 256 : n;
    double best = 0;
    for (int run = 0; run < PEAK_RUNS; run++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            pthread_create(&t[i], NULL, peak_thread, NULL);
        for (int i = 0; i < n; i++)
            pthread_join(t[i], NULL);
        double gflops = (double)n * PEAK_ITERS * PEAK_CHAINS * peak_lanes * 2 / (now_s() - t0) / 1e9;
        best = gflops > best ? gflops : best;
    }
    return best;
}

/* ---- the attention runs -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(void *data, chill_dtype t, size_t n) {
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float f = (float)(s >> 8) / 8388608.0f - 1.0f;
        if (t == CHILL_F32) {
            ((float *)data)[i] = f;
        } else {
            uint32_t u;
            memcpy(&u, &f, sizeof u);
            ((uint16_t *)data)[i] = (uint16_t)(u >> 16);
        }
    }
}

/* Every timed run starts from memory, not from the caches the previous run
 * left warm: before it, a buffer larger than this machine's caches (the VM
 * reports a 480 MiB L3) is written over. Otherwise a problem that fits in
 * the caches times the caches, and time stops growing linearly with T exactly
 * where the tensors outgrow them. */
#define EVICT_BYTES ((size_t)768 << 20)
static unsigned char *evict_buf;

static void evict_caches(void) {
    if (evict_buf == NULL)
        evict_buf = malloc(EVICT_BYTES);
    for (size_t i = 0; i < EVICT_BYTES; i += 64)
        evict_buf[i] = (unsigned char)i;
}

/* The median and the fastest seconds of chill_forward over at least 3 runs
 * and about budget_s, each run from cold caches. */
static void time_runs(const chill_params *p, double budget_s, double *median, double *fastest) {
    double times[64];
    int n = 0;
    chill_error err;
    if (chill_forward(p, &err) != CHILL_OK) { /* warm-up; also the check */
        fprintf(stderr, "bench_cpu: %s\n", err.message);
        exit(1);
    }
    double start = now_s();
    double timed = 0;
    while (n < 64 && (n < 3 || timed < budget_s) && now_s() - start < 10 * budget_s + 30) {
        evict_caches();
        double t0 = now_s();
        chill_forward(p, &err);
        times[n] = now_s() - t0;
        timed += times[n++];
    }
    qsort(times, (size_t)n, sizeof *times, cmp_double);
    *median = times[n / 2];
    *fastest = times[0];
}

/* One call of B 1, H 8: its median and fastest seconds and its FLOPs. */
static void run_shape(chill_mask mask, chill_dtype type, int64_t T, int64_t D, double budget_s, double *median,
                      double *fastest, double *flop) {
    int64_t H = 8;
    size_t n = (size_t)(H * T * D), es = chill_dtype_size(type);
    void *q = malloc(n * es), *k = malloc(n * es), *v = malloc(n * es), *o = malloc(n * es);
    fill(q, type, n), fill(k, type, n), fill(v, type, n);
    chill_params p;
    chill_params_init(&p);
    p.dtype = type, p.batch = 1, p.heads_q = p.heads_kv = H, p.seq_q = p.seq_k = T;
    p.head_dim = D, p.mask = mask;
    p.q.data = q, p.k.data = k, p.v.data = v, p.out.data = o;
    time_runs(&p, budget_s, median, fastest);
    *flop = 4.0 * (double)D * (double)chill_attended_pairs(&p);
    free(q), free(k), free(v), free(o);
}

int main(int argc, char **argv) {
    int threads = 0, quick = 0;
    const char *isa = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc)
            isa = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--isa scalar|avx2|avx512] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (chill_cpu_use_isa(isa) != 0) {
        fprintf(stderr, "bench_cpu: instruction set %s is unknown or not supported here\n", isa);
        return 2;
    }
    threads = chill_set_num_threads(threads);
    double peak = fma_peak(threads);
    printf("CPU kernel: %s, %d threads; fp32 FMA peak %.1f GFLOP/s (%d-lane FMA loop, all threads)\n\n",
           chill_cpu_isa_current()->name, threads, peak, peak_lanes);
    printf("| mask | dtype | T | D | median ms | GFLOP/s | of peak |\n|---|---|---|---|---|---|---|\n");

    const char *mask_names[] = {"sliding_window(16,16)", "causal", "chunkwise(16,8)", "prefix_lm(128)", "full"};
    const chill_mask masks[] = {{CHILL_MASK_sliding_window, {16, 16}}, {CHILL_MASK_causal, {0}},
                                {CHILL_MASK_chunkwise, {16, 8}}, {CHILL_MASK_prefix_lm, {128}},
                                {CHILL_MASK_full, {0}}};
    const int64_t seqs[] = {1024, 4096}, dims[] = {64, 128};
    const chill_dtype types[] = {CHILL_F32, CHILL_BF16};
    double growth[5][2][2]; /* fastest time(4096) / fastest time(1024) per mask, dtype, D */
    for (int m = 0; m < 5; m++)
        for (int ti = 0; ti < 2; ti++)
            for (int di = 0; di < 2; di++) {
                double t_of[2];
                for (int si = 0; si < 2; si++) {
                    double t, fastest, flop;
                    run_shape(masks[m], types[ti], seqs[si], dims[di], quick ? 0.2 : 1.0, &t, &fastest, &flop);
                    printf("| %s | %s | %lld | %lld | %.3f | %.1f | %.0f%% |\n", mask_names[m],
                           chill_dtype_name(types[ti]), (long long)seqs[si], (long long)dims[di], t * 1e3,
                           flop / t / 1e9, 100.0 * flop / t / 1e9 / peak);
                    fflush(stdout);
                    t_of[si] = fastest;
                }
                growth[m][ti][di] = t_of[1] / t_of[0];
            }
    printf("\nTime growth from T 1024 to 4096 (x4), and per doubling of T, from the fastest runs (on a\n"
           "shared machine the least disturbed):\n\n"
           "| mask | dtype | D | t4096/t1024 | per doubling |\n|---|---|---|---|---|\n");
    for (int m = 0; m < 5; m++)
        for (int ti = 0; ti < 2; ti++)
            for (int di = 0; di < 2; di++)
                printf("| %s | %s | %lld | %.2f | %.2f |\n", mask_names[m], chill_dtype_name(types[ti]),
                       (long long)dims[di], growth[m][ti][di], sqrt(growth[m][ti][di]));

    printf("\nThe banded masks at longer T (FP32, D 128, fastest runs), each T against half of it:\n\n"
           "| mask | T | fastest ms | x previous T |\n|---|---|---|---|\n");
    for (int m = 0; m < 3; m += 2) {
        double prev = 0;
        for (int64_t T = 1024; T <= 16384; T *= 2) {
            double t, fastest, flop;
            run_shape(masks[m], CHILL_F32, T, 128, quick ? 0.2 : 0.5, &t, &fastest, &flop);
            char ratio[16] = "-";
            if (prev > 0)
                snprintf(ratio, sizeof ratio, "%.2f", fastest / prev);
            printf("| %s | %lld | %.3f | %s |\n", mask_names[m], (long long)T, fastest * 1e3, ratio);
            fflush(stdout);
            prev = fastest;
        }
    }
    return 0;
}
