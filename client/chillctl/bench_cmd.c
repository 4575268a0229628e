/* chillctl bench: a load generator. N threads, each with its own client
 * (connection and arena), send the same-shaped random request back to back
 * for a duration or a count; a progress line on stderr while it runs, then
 * throughput and latency quantiles. Transport "local" times the bare
 * libchill call in-process, the floor every transport's overhead is measured
 * against. --paired runs that bare call on the same tensors right before
 * each request and reports the median of the differences: the transport's
 * overhead with slow drifts of the machine's load cancelled out. With --json
 * the summary is one JSON object on stdout. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "ctl_opts.h"
#include "tensorio.h"

const char chillctl_bench_usage[] =
    "a load generator: throughput and p50/p90/p99 latency over a transport\n"
    "usage: chillctl bench --random B,H,T,D [--transport http|shm|uds|local] [options]\n"
    "  --concurrency N      parallel clients (default 1)\n"
    "  --duration S         run for S seconds (default 10), or --count N requests\n"
    "  --warmup N           untimed requests per client first (default 3)\n"
    "  --paired             also time the bare libchill call before each request; report the overhead\n"
    "  --json               print the summary as JSON\n" CTL_REQ_USAGE CTL_OPTS_USAGE;

enum { OPT_CONC = 3000, OPT_DURATION, OPT_COUNT, OPT_WARMUP, OPT_JSON, OPT_PAIRED };

typedef struct bench {
    ctl_opts o;
    int local, paired, concurrency, warmup, json;
    double duration;
    long count;
    atomic_long issued, done, errors;
    atomic_int stop, running;
    pthread_mutex_t lock;
    pthread_barrier_t start; /* the workers are warm; the clock starts */
    char first_error[512];
} bench;

typedef struct bench_worker {
    bench *b;
    pthread_t thread;
    double *lat_us;
    double *bare_us;         /* --paired: the bare call before each request */
    size_t n, cap;
} bench_worker;

static double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Whether the worker may issue one more request. */
static int bench_take(bench *b) {
    if (atomic_load(&b->stop))
        return 0;
    return b->count <= 0 || atomic_fetch_add(&b->issued, 1) < b->count;
}

static void bench_error(bench *b, const char *msg) {
    atomic_fetch_add(&b->errors, 1);
    pthread_mutex_lock(&b->lock);
    if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error, "%s", msg);
    pthread_mutex_unlock(&b->lock);
}

static void bench_record(bench_worker *w, double us, double bare_us) {
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4096;
        w->lat_us = realloc(w->lat_us, w->cap * sizeof *w->lat_us);
        w->bare_us = realloc(w->bare_us, w->cap * sizeof *w->bare_us);
    }
    w->bare_us[w->n] = bare_us;
    w->lat_us[w->n++] = us;
    atomic_fetch_add(&w->b->done, 1);
}

/* The request's tensors: in the client's arena when it has one (no copy). */
static void *bench_buffers(chill_client *c, chill_client_request *r, size_t qb, size_t kb, size_t lb) {
    size_t arena_size = 0;
    char *p = c ? chill_client_arena(c, &arena_size) : NULL, *own = NULL;
    size_t need = 2 * qb + 2 * kb + lb + 5 * 64;
    if (!p || arena_size < need)
        p = own = malloc(need);
    size_t at = 0, sizes[5] = {qb, kb, kb, qb, lb};
    void *ptr[5];
    for (int i = 0; i < 5; i++) {
        ptr[i] = p + at;
        at = (at + sizes[i] + 63) & ~(size_t)63;
    }
    r->q = ptr[0], r->k = ptr[1], r->v = ptr[2], r->out = ptr[3], r->lse = lb ? ptr[4] : NULL;
    ctl_tensor t = {.dtype = r->dtype, .rank = 1, .shape = {(int64_t)((qb + 2 * kb) / chill_dtype_size(r->dtype))}};
    t.bytes = qb + 2 * kb;
    t.data = malloc(t.bytes);
    ctl_tensor_random(&t, 7);
    memcpy(ptr[0], t.data, qb);
    memcpy(ptr[1], (char *)t.data + qb, kb);
    memcpy(ptr[2], (char *)t.data + qb + kb, kb);
    free(t.data);
    return own;
}

typedef struct bench_call {
    chill_client *c;
    chill_client_request r;
    chill_params p;          /* local, --paired: the bare libchill call */
    void *own;
} bench_call;

/* One request (local: the bare call); 0 or -1 after recording its error. */
static int bench_once(bench *b, bench_call *k, int local) {
    chill_client_error err;
    chill_error pe;
    if (local ? chill_forward(&k->p, &pe) == CHILL_OK : chill_client_infer(k->c, &k->r, &err) == CHILL_CLIENT_OK)
        return 0;
    bench_error(b, local ? pe.message : err.message);
    return -1;
}

static int bench_setup(bench *b, bench_call *k) {
    chill_client_request *r = &k->r;
    *r = b->o.req;
    if (!b->local && !(k->c = ctl_connect(&b->o))) {
        bench_error(b, "could not connect");
        return -1;
    }
    size_t e = chill_dtype_size(r->dtype);
    size_t qb = (size_t)(r->batch * r->heads_q * r->seq_q * r->head_dim) * e;
    size_t kb = (size_t)(r->batch * r->heads_kv * r->seq_k * r->head_dim) * e;
    size_t lb = b->o.want_lse ? (size_t)(r->batch * r->heads_q * r->seq_q) * 4 : 0;
    k->own = bench_buffers(k->c, r, qb, kb, lb);
    if (!b->local && !b->paired)
        return 0;
    chill_params *p = &k->p;
    chill_params_init(p);
    chill_error pe;
    if (chill_mask_parse(r->mask ? r->mask : r->model, &p->mask, &pe) != CHILL_OK) {
        bench_error(b, pe.message);
        return -1;
    }
    p->dtype = r->dtype, p->batch = r->batch, p->heads_q = r->heads_q, p->heads_kv = r->heads_kv;
    p->seq_q = r->seq_q, p->seq_k = r->seq_k, p->head_dim = r->head_dim, p->sm_scale = r->sm_scale;
    p->q_offset = r->q_offset;
    p->q.data = (void *)r->q, p->k.data = (void *)r->k, p->v.data = (void *)r->v;
    p->out.data = r->out, p->lse.data = r->lse;
    return 0;
}

static void *bench_worker_main(void *arg) {
    bench_worker *w = arg;
    bench *b = w->b;
    bench_call k = {0};
    int ok = bench_setup(b, &k) == 0;
    for (int i = 0; ok && i < b->warmup; i++)
        ok = bench_once(b, &k, b->local) == 0 && (!b->paired || bench_once(b, &k, 1) == 0);
    pthread_barrier_wait(&b->start);
    while (ok && bench_take(b)) {
        double t0 = bench_now();
        if (b->paired && bench_once(b, &k, 1) != 0)
            continue;
        double t1 = bench_now();
        if (bench_once(b, &k, b->local) == 0)
            bench_record(w, (bench_now() - t1) * 1e6, (t1 - t0) * 1e6);
    }
    chill_client_destroy(k.c);
    free(k.own);
    atomic_fetch_sub(&b->running, 1);
    return NULL;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bench_quantile(const double *v, size_t n, double q) {
    if (n == 0)
        return NAN;
    size_t i = (size_t)ceil(q * (double)n);
    return v[i ? i - 1 : 0];
}

static void bench_report(bench *b, bench_worker *w, double elapsed) {
    size_t n = 0;
    for (int i = 0; i < b->concurrency; i++)
        n += w[i].n;
    double *all = malloc((n ? n : 1) * sizeof *all), sum = 0;
    size_t at = 0;
    for (int i = 0; i < b->concurrency; i++)
        for (size_t j = 0; j < w[i].n; j++)
            sum += all[at++] = w[i].lat_us[j];
    qsort(all, n, sizeof *all, bench_cmp);
    double bare_p50 = NAN, over_p50 = NAN;
    if (b->paired) { /* the medians of the bare calls and of each request's difference to its bare call */
        double *bare = malloc((n ? n : 1) * sizeof *bare), *diff = malloc((n ? n : 1) * sizeof *diff);
        for (int i = 0, m = 0; i < b->concurrency; i++)
            for (size_t j = 0; j < w[i].n; j++, m++)
                bare[m] = w[i].bare_us[j], diff[m] = w[i].lat_us[j] - w[i].bare_us[j];
        qsort(bare, n, sizeof *bare, bench_cmp);
        qsort(diff, n, sizeof *diff, bench_cmp);
        bare_p50 = bench_quantile(bare, n, 0.5), over_p50 = bench_quantile(diff, n, 0.5);
        free(bare);
        free(diff);
    }
    const chill_client_request *r = &b->o.req;
    static const char *tn[] = {"http", "shm", "uds"};
    const char *transport = b->local ? "local" : tn[b->o.client.transport];
    double rps = (double)n / elapsed, p50 = bench_quantile(all, n, 0.5), p90 = bench_quantile(all, n, 0.9),
           p99 = bench_quantile(all, n, 0.99), mean = n ? sum / (double)n : NAN;
    size_t e = chill_dtype_size(r->dtype);
    double bytes = (double)(2 * r->batch * r->heads_q * r->seq_q + 2 * r->batch * r->heads_kv * r->seq_k) *
                   (double)r->head_dim * (double)e;
    long errors = atomic_load(&b->errors);
    if (b->json)
        printf("{\"transport\":\"%s\",\"concurrency\":%d,\"shape\":[%lld,%lld,%lld,%lld],\"dtype\":\"%s\","
               "\"requests\":%zu,\"errors\":%ld,\"seconds\":%.3f,\"rps\":%.2f,\"tensor_gbps\":%.3f,"
               "\"mean_us\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"bare_p50_us\":%.2f,"
               "\"overhead_p50_us\":%.2f}\n",
               transport, b->concurrency, (long long)r->batch, (long long)r->heads_q, (long long)r->seq_q,
               (long long)r->head_dim, chill_dtype_name(r->dtype), n, errors, elapsed, rps, rps * bytes / 1e9, mean,
               p50, p90, p99, b->paired ? bare_p50 : -1.0, b->paired ? over_p50 : -1.0);
    else
        printf("%s  concurrency %d  [%lld,%lld,%lld,%lld] %s  %zu requests  %ld errors  %.1f req/s  %.3f GB/s\n"
               "latency us: mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f\n",
               transport, b->concurrency, (long long)r->batch, (long long)r->heads_q, (long long)r->seq_q,
               (long long)r->head_dim, chill_dtype_name(r->dtype), n, errors, rps, rps * bytes / 1e9, mean, p50, p90,
               p99);
    if (b->paired && !b->json)
        printf("paired: bare libchill call p50 %.1f us; overhead over it (median of differences) %.1f us\n", bare_p50,
               over_p50);
    if (errors)
        fprintf(stderr, "first error: %s\n", b->first_error);
    free(all);
}

static int bench_parse(bench *b, int argc, char **argv) {
    static const struct option longopts[] = {
        CTL_OPTS_LONG, {"concurrency", required_argument, 0, OPT_CONC}, {"duration", required_argument, 0, OPT_DURATION},
        {"count", required_argument, 0, OPT_COUNT}, {"warmup", required_argument, 0, OPT_WARMUP},
        {"json", no_argument, 0, OPT_JSON}, {"paired", no_argument, 0, OPT_PAIRED},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_CONC: b->concurrency = atoi(optarg); break;
        case OPT_DURATION: b->duration = atof(optarg); break;
        case OPT_COUNT: b->count = atol(optarg); break;
        case OPT_WARMUP: b->warmup = atoi(optarg); break;
        case OPT_JSON: b->json = 1; break;
        case OPT_PAIRED: b->paired = 1; break;
        case 'h': fputs(chillctl_bench_usage, stdout); return 0;
        case CTL_OPT_TRANSPORT:
            if (strcmp(optarg, "local") == 0) {
                b->local = 1;
                break;
            }
            /* fall through */
        default:
            if (ctl_opts_parse(&b->o, opt, optarg) != 0) {
                fputs(chillctl_bench_usage, stderr);
                return 2;
            }
        }
    }
    if (!b->o.have_shape || b->concurrency < 1 || b->concurrency > 1024 || b->duration < 0 || b->count < 0 ||
        b->warmup < 0 || (b->paired && b->local)) {
        fprintf(stderr, "chillctl bench: needs --random B,H,T,D; --concurrency in 1..1024; non-negative "
                        "--duration, --count, --warmup; --paired with a transport other than local\n");
        return 2;
    }
    if (b->duration == 0 && b->count == 0)
        b->duration = 10;
    ctl_opts_finish(&b->o);
    return -1;
}

int chillctl_bench(int argc, char **argv) {
    bench b = {.concurrency = 1, .warmup = 3};
    ctl_opts_init(&b.o);
    pthread_mutex_init(&b.lock, NULL);
    int rc = bench_parse(&b, argc, argv);
    if (rc >= 0)
        return rc;
    bench_worker *w = calloc((size_t)b.concurrency, sizeof *w);
    pthread_barrier_init(&b.start, NULL, (unsigned)b.concurrency + 1);
    atomic_store(&b.running, b.concurrency);
    for (int i = 0; i < b.concurrency; i++) {
        w[i].b = &b;
        pthread_create(&w[i].thread, NULL, bench_worker_main, &w[i]);
    }
    pthread_barrier_wait(&b.start);
    double t0 = bench_now(), last = t0;
    long prev = 0;
    while (1) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
        double now = bench_now();
        long d = atomic_load(&b.done);
        int finished = atomic_load(&b.running) == 0 || (b.duration > 0 && now - t0 >= b.duration);
        if (b.duration > 0 && now - t0 >= b.duration)
            atomic_store(&b.stop, 1);
        if (now - last >= 1.0 || finished || atomic_load(&b.stop)) {
            fprintf(stderr, "\r[%6.1f s] %ld requests, %ld errors, %.1f req/s   ", now - t0, d,
                    atomic_load(&b.errors), (double)(d - prev) / (now - last));
            prev = d;
            last = now;
        }
        if (finished || atomic_load(&b.stop))
            break;
    }
    atomic_store(&b.stop, 1);
    for (int i = 0; i < b.concurrency; i++)
        pthread_join(w[i].thread, NULL);
    double elapsed = bench_now() - t0;
    fputc('\n', stderr);
    bench_report(&b, w, elapsed);
    rc = atomic_load(&b.errors) ? 1 : 0;
    for (int i = 0; i < b.concurrency; i++)
        free(w[i].lat_us), free(w[i].bare_us);
    free(w);
    pthread_barrier_destroy(&b.start);
    return rc;
}
