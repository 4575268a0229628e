/* The libmicrohttpd daemon and the life of one HTTP request: accumulate the
 * body (within the limit, binary part aligned; an infer's arrival announced
 * to the scheduler, so that batches wait for it), route it, and for infer:
 * decode, suspend, submit; done() resumes the connection (from the worker,
 * or from this thread when the scheduler ran the request here) and the
 * response (JSON header plus binary outputs, sent from the infer's own
 * buffers through an iovec) is queued on the next call. Request metrics and
 * the statistics extension's counters are recorded here, where the final
 * HTTP status is known. */
#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hostmem.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "scheduler.h"

#define BODY_ALIGN 64

struct chill_http {
    struct MHD_Daemon *daemon;
    chill_route_ctx ctx;
    const chill_config *c;
    MHD_socket listen_fd;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;
};

/* One request in progress. */
typedef struct conn {
    chill_http *h;
    struct MHD_Connection *mc;
    uint64_t t0, t_submit;
    char *alloc;              /* body buffer (server/hostmem.h: pinned with a GPU) */
    size_t pad, len, cap;     /* the body is alloc[pad .. pad + len) */
    int64_t header_len;       /* Inference-Header-Content-Length, -1 when absent */
    int too_large;
    char bad_header[160];
    chill_model *model;       /* infer: the model */
    chill_infer *inf;         /* infer: submitted, not yet answered */
    int announced;            /* an infer on its way (chill_scheduler_announce), until submitted */
    int submitted;
    int state;                /* enum infer_state, atomic: the submitting thread and done() meet here */
} conn;

/* Where a submitted infer stands. Its answer is sent from the connection's
 * own thread: at once when done() came before the thread could suspend the
 * connection (a request the scheduler ran on this thread, or a very fast
 * worker), else once done() resumed it. */
enum infer_state { SUBMITTING, SUSPENDED, DONE };

static void request_begin(chill_http *h) {
    pthread_mutex_lock(&h->lock);
    h->active++;
    pthread_mutex_unlock(&h->lock);
}

static void request_end(chill_http *h) {
    pthread_mutex_lock(&h->lock);
    if (--h->active == 0)
        pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->lock);
}

/* ---- queuing responses ------------------------------------------------------------ */

static enum MHD_Result queue(struct MHD_Connection *mc, int status, struct MHD_Response *resp, const char *ctype,
                             int retry_after) {
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (retry_after >= 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result rc = MHD_queue_response(mc, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_reply(struct MHD_Connection *mc, chill_reply *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    r->body = NULL;
    return queue(mc, r->status, resp, r->content_type, r->retry_after);
}

static void free_infer(void *cls) {
    chill_infer *inf = cls;
    chill_infer_free(inf);
    free(inf);
}

/* Records the answer of an infer request: metrics and model statistics. */
static void record(conn *k, int status, size_t bytes_out) {
    chill_model *m = k->model;
    char code[8];
    const char *mask = chill_mask_name(m->mask_type);
    uint64_t now = chill_now_ns();
    snprintf(code, sizeof code, "%d", status);
    chill_metric_add(chill_m.requests, 1, m->name, mask, code);
    chill_metric_observe(chill_m.request_seconds, (double)(now - k->t0) * 1e-9, m->name, mask);
    chill_metric_add(chill_m.bytes_in, (double)k->len, m->name);
    chill_metric_add(chill_m.bytes_out, (double)bytes_out, m->name);
    const chill_request *r = k->inf != NULL && k->submitted ? &k->inf->req : NULL;
    if (r == NULL || status != 200) {
        chill_model_record(m, 0, now - k->t0, 0, 0, 0, 0, 0);
        return;
    }
    chill_model_record(m, 1, now - k->t0, r->t_start_ns - r->t_arrive_ns, k->t_submit - k->t0,
                       r->t_end_ns - r->t_start_ns, now - r->t_end_ns, 1);
}

static enum MHD_Result send_error(conn *k, int status, int retry_after, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(conn *k, int status, int retry_after, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    chill_reply r;
    chill_reply_error(&r, status, "%s", msg);
    r.retry_after = retry_after;
    if (k->model != NULL)
        record(k, status, r.len);
    chill_log(status >= 500 ? CHILL_LOG_WARN : CHILL_LOG_DEBUG, "request_failed", "status=%d error=\"%s\"",
              status, msg);
    return send_reply(k->mc, &r);
}

/* The finished infer request's response, sent from its own buffers. */
static enum MHD_Result send_infer(conn *k) {
    chill_infer *inf = k->inf;
    chill_request *r = &inf->req;
    if (r->status != CHILL_OK)
        return send_error(k, r->http_status, r->http_status == 503 ? 1 : -1, "%s", r->error);
    char err[512];
    int st = chill_infer_encode(inf, err, sizeof err);
    if (st != 200)
        return send_error(k, st, -1, "%s", err);
    struct MHD_IoVec iov[3];
    for (int i = 0; i < inf->n_seg; i++)
        iov[i] = (struct MHD_IoVec){inf->seg[i], inf->seg_len[i]};
    record(k, 200, inf->resp_len);
    k->inf = NULL;
    struct MHD_Response *resp = MHD_create_response_from_iovec(iov, (unsigned)inf->n_seg, free_infer, inf);
    if (inf->resp_binary) {
        char v[24];
        snprintf(v, sizeof v, "%zu", inf->resp_json_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", v);
    }
    return queue(k->mc, 200, resp, inf->resp_binary ? "application/octet-stream" : "application/json", -1);
}

/* ---- infer ---------------------------------------------------------------------------- */

static void on_done(chill_request *req) {
    conn *k = req->user;
    chill_metric_add(chill_m.in_flight, -1, k->model->name);
    if (__atomic_exchange_n(&k->state, DONE, __ATOMIC_ACQ_REL) == SUSPENDED)
        MHD_resume_connection(k->mc);
}

static enum MHD_Result start_infer(conn *k) {
    chill_http *h = k->h;
    char err[1024];
    k->inf = calloc(1, sizeof *k->inf);
    int st = chill_infer_decode(k->inf, h->c, k->model, k->alloc + k->pad, k->len, k->header_len, err, sizeof err);
    if (st != 200)
        return send_error(k, st, -1, "%s", err);
    k->t_submit = chill_now_ns();
    k->inf->req.done = on_done;
    k->inf->req.user = k;
    k->inf->req.run_here = 1;
    k->inf->req.announced = k->announced;
    k->announced = 0;
    chill_metric_add(chill_m.in_flight, 1, k->model->name);
    k->state = SUBMITTING;
    k->submitted = 1;
    chill_submit_result sr = chill_submit(h->ctx.s, &k->inf->req);
    if (sr != CHILL_SUBMIT_OK) {
        k->submitted = 0;
        chill_metric_add(chill_m.in_flight, -1, k->model->name);
        if (sr == CHILL_SUBMIT_FULL)
            return send_error(k, 503, 1, "overloaded: the device queues are full (batching.max_queue_requests); "
                              "retry later");
        return send_error(k, 503, 1, "shutting down: no new requests are accepted");
    }
    if (__atomic_load_n(&k->state, __ATOMIC_ACQUIRE) == DONE)
        return send_infer(k);
    MHD_suspend_connection(k->mc);
    int expected = SUBMITTING;
    if (!__atomic_compare_exchange_n(&k->state, &expected, SUSPENDED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        MHD_resume_connection(k->mc); /* done() came between the look and the suspend */
    return MHD_YES;
}

/* ---- the body ---------------------------------------------------------------------------- */

/* Inference-Header-Content-Length: digits only, within the body limit. */
static void read_header_len(conn *k) {
    const char *v = MHD_lookup_connection_value(k->mc, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    k->header_len = -1;
    if (v == NULL)
        return;
    size_t n = strlen(v);
    int ok = n > 0 && n < 19;
    for (size_t i = 0; ok && i < n; i++)
        ok = isdigit((unsigned char)v[i]);
    if (!ok) {
        snprintf(k->bad_header, sizeof k->bad_header, "Inference-Header-Content-Length: \"%.40s\" is not a "
                 "non-negative integer of bytes", v);
        return;
    }
    k->header_len = strtoll(v, NULL, 10);
}

/* Room for at least need body bytes, the binary part after the JSON header
 * aligned to BODY_ALIGN. */
static int reserve(conn *k, size_t need) {
    if (need <= k->cap)
        return 0;
    size_t cap = k->cap ? k->cap : 16384;
    while (cap < need)
        cap *= 2;
    if (k->cap == 0 && k->header_len >= 0)
        k->pad = (BODY_ALIGN - (size_t)k->header_len % BODY_ALIGN) % BODY_ALIGN;
    char *p = chill_hostmem_alloc(k->pad + cap);
    if (p == NULL)
        return -1;
    if (k->alloc != NULL)
        memcpy(p + k->pad, k->alloc + k->pad, k->len);
    chill_hostmem_free(k->alloc);
    k->alloc = p;
    k->cap = cap;
    return 0;
}

static void append(conn *k, const char *data, size_t n) {
    if (k->too_large || k->len + n > k->h->c->max_body_bytes) {
        k->too_large = 1;
        return;
    }
    if (reserve(k, k->len + n) != 0) {
        k->too_large = 1;
        return;
    }
    memcpy(k->alloc + k->pad + k->len, data, n);
    k->len += n;
}

static int infer_url(const char *url) {
    return strstr(url, "/infer") != NULL;
}

/* A request whose headers have arrived. An infer is announced to the
 * scheduler while its body arrives, so that batches wait for it. */
static conn *conn_new(chill_http *h, struct MHD_Connection *mc, const char *method, const char *url) {
    conn *k = calloc(1, sizeof *k);
    k->h = h;
    k->mc = mc;
    k->t0 = chill_now_ns();
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 && infer_url(url)) {
        k->announced = 1;
        chill_scheduler_announce(h->ctx.s);
    }
    read_header_len(k);
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n = cl != NULL ? strtoull(cl, NULL, 10) : 0;
    if (n > h->c->max_body_bytes)
        k->too_large = 1;
    else if (n > 0 && reserve(k, (size_t)n) != 0)
        k->too_large = 1;
    request_begin(h);
    return k;
}

/* The model an infer URL names (NULL for any other URL), for metrics. */
static chill_model *infer_model(const char *url) {
    char name[128];
    if (!infer_url(url) || sscanf(url, "/v2/models/%127[^/]", name) != 1)
        return NULL;
    return chill_model_find(name);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    chill_http *h = cls;
    conn *k = *con_cls;
    (void)version;
    if (k == NULL) {
        *con_cls = conn_new(h, mc, method, url);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        append(k, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (k->submitted)
        return __atomic_load_n(&k->state, __ATOMIC_ACQUIRE) == DONE ? send_infer(k) : MHD_YES;
    chill_reply r;
    if (k->too_large) {
        k->model = infer_model(url);
        return send_error(k, 413, -1, "the body is larger than %llu bytes (limits.max_body_bytes)",
                          (unsigned long long)h->c->max_body_bytes);
    }
    k->model = chill_route(&h->ctx, method, url, k->alloc + k->pad, k->len, &r);
    if (k->model == NULL)
        return send_reply(mc, &r);
    if (k->bad_header[0] != '\0')
        return send_error(k, 400, -1, "%s", k->bad_header);
    return start_infer(k);
}

static void completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    conn *k = *con_cls;
    (void)mc;
    (void)toe;
    if (k == NULL)
        return;
    if (k->announced)
        chill_scheduler_withdraw(k->h->ctx.s);
    if (k->inf != NULL) {
        chill_infer_free(k->inf);
        free(k->inf);
    }
    chill_hostmem_free(k->alloc);
    free(k);
    *con_cls = NULL;
    request_end(cls);
}

/* The thread pool polls with poll(), not epoll: with epoll libmicrohttpd
 * (Debian 12's 0.9.75, and Debian 13's 1.0.1 too, tried from source) loses a
 * client's close that arrives with its last bytes, so an aborted upload is
 * never completed and a drain would wait for it forever. */
chill_http *chill_http_start(const chill_config *c, chill_scheduler *s, char *err, size_t errlen) {
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)c->port);
    if (inet_pton(AF_INET, c->address, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "listen.address: \"%s\" is not an IPv4 address", c->address);
        return NULL;
    }
    chill_http *h = calloc(1, sizeof *h);
    h->c = c;
    h->ctx.c = c;
    h->ctx.s = s;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->idle, NULL);
    int threads = chill_config_http_threads(c, sysconf(_SC_NPROCESSORS_ONLN));
    h->daemon = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC, 0, NULL,
                                 NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->connection_memory_bytes,
                                 MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d (in use, or not an address of this host)", c->address, c->port);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->idle);
        free(h);
        return NULL;
    }
    h->listen_fd = MHD_INVALID_SOCKET;
    chill_log(CHILL_LOG_INFO, "listening", "addr=%s port=%d threads=%d", c->address, c->port, threads);
    return h;
}

void chill_http_quiesce(chill_http *h) {
    h->listen_fd = MHD_quiesce_daemon(h->daemon);
}

int chill_http_wait_idle(chill_http *h, int timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_s;
    pthread_mutex_lock(&h->lock);
    while (h->active > 0 && pthread_cond_timedwait(&h->idle, &h->lock, &ts) == 0)
        ;
    int left = h->active;
    pthread_mutex_unlock(&h->lock);
    return left;
}

void chill_http_stop(chill_http *h) {
    MHD_stop_daemon(h->daemon);
    if (h->listen_fd != MHD_INVALID_SOCKET)
        close(h->listen_fd);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->idle);
    free(h);
}
