/* libchillclient against a real chilld, started in this process (config,
 * models, CPU backend, scheduler, HTTP and the Unix socket, as server/main.c
 * does) on a free loopback port and a socket in /tmp. Each transport's
 * results are checked against the float64 reference with the output
 * poisoned first; the error values are checked for bad arguments (nothing
 * sent), a server-side refusal, an unreachable server, and an arena that is
 * too small or only partly used. Each test gets its own chilld, started and
 * stopped in the test's process, so nothing is left running or allocated. */
#include <check.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chillclient.h"
#include "config.h"
#include "device.h"
#include "http.h"
#include "metrics.h"
#include "models.h"
#include "ref/ref.h"
#include "regions.h"
#include "scheduler.h"
#include "uds.h"

static chill_config cfg;
static chill_scheduler *sched;
static chill_http *http;
static char url[64], sock_path[108];

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void server_start(void) {
    char err[512];
    chill_config_defaults(&cfg);
    cfg.port = free_port();
    cfg.http_threads = 2;
    cfg.cpu_threads = 1;
    cfg.log_level = CHILL_LOG_WARN;
    chill_log_set_level(cfg.log_level);
    snprintf(cfg.uds.path, sizeof cfg.uds.path, "/tmp/chill-test-client.%ld.sock", (long)getpid());
    snprintf(sock_path, sizeof sock_path, "%s", cfg.uds.path);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cfg.port);
    ck_assert_int_eq(chill_models_init(&cfg, err, sizeof err), 0);
    chill_metrics_init();
    chill_regions_configure(1, 0);
    sched = chill_scheduler_create(&cfg, chill_backend_cpu_create(&cfg));
    http = chill_http_start(&cfg, sched, err, sizeof err);
    ck_assert_msg(http != NULL, "chill_http_start: %s", err);
    ck_assert_msg(chill_uds_start(&cfg.uds, &cfg, sched, err, sizeof err) == 0, "chill_uds_start: %s", err);
}

static void server_stop(void) {
    chill_http_quiesce(http);
    chill_http_wait_idle(http, 10);
    chill_scheduler_drain(sched, 10);
    chill_http_stop(http);
    chill_uds_stop();
    chill_scheduler_destroy(sched);
    chill_regions_shutdown();
    chill_models_free();
    chill_metrics_free();
}

static chill_client *connect_to(chill_client_transport t, size_t arena) {
    chill_client_options o;
    chill_client_options_init(&o);
    o.transport = t;
    o.url = url;
    o.socket_path = sock_path;
    o.arena_bytes = arena;
    o.timeout_ms = 60000;
    chill_client_error err;
    chill_client *c = chill_client_create(&o, &err);
    ck_assert_msg(c != NULL, "create (transport %d): %s", t, err.message);
    return c;
}

/* One random request of the shape; buffers malloc'd, or in the arena. */
typedef struct job {
    chill_client_request r;
    chill_params p;          /* the same call, for the reference */
    void *q, *k, *v, *out;
    float *lse;
    int in_arena;
} job;

static void job_make(job *j, chill_client *c, const char *mask, chill_dtype dt, int64_t B, int64_t H, int64_t Hkv,
                     int64_t Tq, int64_t Tk, int64_t D, int lse, int in_arena, uint64_t seed) {
    memset(j, 0, sizeof *j);
    chill_params_init(&j->p);
    chill_params *p = &j->p;
    p->dtype = dt, p->batch = B, p->heads_q = H, p->heads_kv = Hkv, p->seq_q = Tq, p->seq_k = Tk, p->head_dim = D;
    ck_assert_int_eq(chill_mask_parse(mask, &p->mask, NULL), CHILL_OK);
    size_t e = chill_dtype_size(dt), nq = (size_t)(B * H * Tq * D), nk = (size_t)(B * Hkv * Tk * D);
    size_t nl = (size_t)(B * H * Tq);
    char *base = NULL;
    if (in_arena) {
        size_t size;
        base = chill_client_arena(c, &size);
        ck_assert_uint_ge(size, (2 * nq + 2 * nk) * e + nl * 4);
    }
    j->in_arena = in_arena;
    j->q = base ? base : malloc(nq * e);
    j->k = base ? base + nq * e : malloc(nk * e);
    j->v = base ? base + (nq + nk) * e : malloc(nk * e);
    j->out = base ? base + (nq + 2 * nk) * e : malloc(nq * e);
    j->lse = !lse ? NULL : base ? (float *)(base + (2 * nq + 2 * nk) * e) : malloc(nl * 4);
    chill_ref_fill(j->q, dt, nq, &seed);
    chill_ref_fill(j->k, dt, nk, &seed);
    chill_ref_fill(j->v, dt, nk, &seed);
    chill_ref_poison(j->out, dt, nq);
    if (lse)
        chill_ref_poison(j->lse, CHILL_F32, nl);
    p->q.data = j->q, p->k.data = j->k, p->v.data = j->v, p->out.data = j->out, p->lse.data = j->lse;
    chill_client_request_init(&j->r);
    j->r.mask = mask, j->r.dtype = dt;
    j->r.batch = B, j->r.heads_q = H, j->r.heads_kv = Hkv, j->r.seq_q = Tq, j->r.seq_k = Tk, j->r.head_dim = D;
    j->r.q = j->q, j->r.k = j->k, j->r.v = j->v, j->r.out = j->out, j->r.lse = j->lse;
}

static void job_check(const job *j, double tol) {
    size_t n = (size_t)(j->p.batch * j->p.heads_q * j->p.seq_q * j->p.head_dim);
    double *ref = malloc(n * sizeof *ref), *lse = malloc(n * sizeof *lse);
    chill_ref_forward(&j->p, ref, lse);
    double e = chill_ref_rel_error(&j->p, ref);
    ck_assert_msg(e <= tol, "%s %s: relative error %g > %g", chill_dtype_name(j->p.dtype), j->r.mask, e, tol);
    if (j->lse)
        ck_assert_msg(chill_ref_lse_error(&j->p, lse) <= 1e-3, "lse error %g", chill_ref_lse_error(&j->p, lse));
    free(ref);
    free(lse);
}

static void job_free(job *j) {
    if (j->in_arena)
        return;
    free(j->q), free(j->k), free(j->v), free(j->out), free(j->lse);
}

static void run_transport(chill_client_transport t, int in_arena) {
    static const struct { const char *mask; chill_dtype dt; double tol; } cases[] = {
        {"causal", CHILL_F16, 2e-3}, {"sliding_window(8,2)", CHILL_F32, 1e-5},
        {"chunkwise(16,1)", CHILL_BF16, 1e-2}, {"prefix_lm(5)", CHILL_F16, 2e-3}, {"full", CHILL_F32, 1e-5},
    };
    chill_client *c = connect_to(t, 1 << 20);
    ck_assert_int_eq(chill_client_health(c, NULL), CHILL_CLIENT_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        job j;
        job_make(&j, c, cases[i].mask, cases[i].dt, 2, 4, 2, 33, 47, 32, i % 2 == 0, in_arena, 11 + i);
        chill_client_error err;
        ck_assert_msg(chill_client_infer(c, &j.r, &err) == CHILL_CLIENT_OK, "infer %s: %s", cases[i].mask, err.message);
        job_check(&j, cases[i].tol);
        job_free(&j);
    }
    chill_client_destroy(c);
}

START_TEST(http_results) { run_transport(CHILL_CLIENT_HTTP, 0); }
END_TEST

START_TEST(shm_results) { run_transport(CHILL_CLIENT_SHM, 0); }
END_TEST

START_TEST(shm_results_in_place) { run_transport(CHILL_CLIENT_SHM, 1); }
END_TEST

START_TEST(uds_results) { run_transport(CHILL_CLIENT_UDS, 0); }
END_TEST

START_TEST(uds_results_in_place) { run_transport(CHILL_CLIENT_UDS, 1); }
END_TEST

START_TEST(bad_arguments_are_invalid) {
    chill_client *c = connect_to(CHILL_CLIENT_UDS, 1 << 16);
    job j;
    job_make(&j, c, "causal", CHILL_F16, 1, 2, 2, 16, 16, 16, 0, 0, 1);
    chill_client_error err;
    j.r.head_dim = 8;
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "head_dim"));
    j.r.head_dim = 16, j.r.heads_kv = 3;
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_INVALID);
    j.r.heads_kv = 2, j.r.out = NULL;
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_INVALID);
    j.r.out = j.out, j.r.seq_q = 4096; /* needs more than the 64 KiB arena */
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "arena"));
    j.r.seq_q = 16;
    size_t size;
    char *arena = chill_client_arena(c, &size);
    j.r.q = arena; /* one tensor in the arena, the others not */
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "all of them there or none"));
    j.r.q = j.q;
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_OK); /* the connection still works */
    j.r.mask = "no_such_mask(1)";
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_REJECTED);
    ck_assert_int_eq(err.http_status, 400);
    ck_assert_ptr_nonnull(strstr(err.message, "no_such_mask"));
    j.r.mask = "causal";
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_OK);
    job_free(&j);
    chill_client_destroy(c);
}
END_TEST

START_TEST(server_refusal_is_rejected) {
    chill_client *c = connect_to(CHILL_CLIENT_HTTP, 0);
    job j;
    job_make(&j, c, "causal", CHILL_F16, 1, 2, 2, 16, 16, 16, 0, 0, 1);
    chill_client_error err;
    j.r.model = "no-such-model";
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_ERR_REJECTED);
    ck_assert_int_ge(err.http_status, 400);
    ck_assert_ptr_nonnull(strstr(err.message, "no-such-model"));
    j.r.model = NULL, j.r.mask = "sliding_window(3,0)";
    ck_assert_int_eq(chill_client_infer(c, &j.r, &err), CHILL_CLIENT_OK);
    char *body = NULL;
    ck_assert_int_eq(chill_client_call(c, "/v2/models/causal", NULL, &body, &err), CHILL_CLIENT_OK);
    ck_assert_ptr_nonnull(strstr(body, "causal"));
    free(body);
    job_free(&j);
    chill_client_destroy(c);
}
END_TEST

START_TEST(unreachable_is_connect) {
    chill_client_options o;
    chill_client_options_init(&o);
    o.transport = CHILL_CLIENT_UDS;
    o.socket_path = "/tmp/chill-test-no-such.sock";
    chill_client_error err;
    ck_assert_ptr_null(chill_client_create(&o, &err));
    ck_assert_int_eq(err.status, CHILL_CLIENT_ERR_CONNECT);
    ck_assert_ptr_nonnull(strstr(err.message, "no-such.sock"));
    o.transport = CHILL_CLIENT_SHM;
    o.url = "http://127.0.0.1:1";
    ck_assert_ptr_null(chill_client_create(&o, &err));
    ck_assert_int_eq(err.status, CHILL_CLIENT_ERR_CONNECT);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("client_transports");
    TCase *t = tcase_create("chilld");
    tcase_add_checked_fixture(t, server_start, server_stop);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, http_results);
    tcase_add_test(t, shm_results);
    tcase_add_test(t, shm_results_in_place);
    tcase_add_test(t, uds_results);
    tcase_add_test(t, uds_results_in_place);
    tcase_add_test(t, bad_arguments_are_invalid);
    tcase_add_test(t, server_refusal_is_rejected);
    tcase_add_test(t, unreachable_is_connect);
    suite_add_tcase(s, t);
    return s;
}
