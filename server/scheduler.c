/* Per-device queues, batching and workers. One mutex guards every queue (they
 * are short and a worker holds it only to pick a batch); each device has its
 * own condition variable. Each device has a worker that picks batches and
 * runs them; where the backend has two or more launch slots it only starts
 * a packed launch, up to that many in flight, and a completer thread waits
 * for each in the order they started and answers its requests, so the
 * worker starts the next launch (its copies) while the last one's kernel
 * runs. A reaper thread answers queued requests at their deadline (504),
 * even while their device is busy with a long launch. Time spent in the
 * queue, the launch, the batch size, tokens and FLOPs go to the metrics
 * here; the transport records the rest. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "pack.h"
#include "scheduler.h"

/* A packed launch in flight: started by the worker, waited for and answered
 * by the completer. */
typedef struct launch {
    chill_request **batch;
    int n, total;        /* requests launched; taken from the queue (the rest were past their deadline) */
    chill_status st;     /* what start() returned */
    chill_error err;
} launch;

typedef struct device_queue {
    chill_scheduler *s;
    int index;
    const char *name;
    chill_request **items;
    int count;
    unsigned arrivals;       /* requests pushed so far; read without the lock by a polling worker */
    uint64_t last_gap_ns;    /* from the worker's last going idle to the next arrival (poll_queue) */
    int busy;                /* the worker starts a launch, or a direct run runs one */
    int running;             /* packed launches in flight (started, not yet answered) */
    int head;                /* slot of the oldest of them; the next goes to (head + running) % slots */
    int closing;             /* the worker has stopped: the completer stops once nothing runs */
    launch *launches;        /* one per slot */
    int healthy;
    pthread_cond_t cond;     /* wakes the worker */
    pthread_cond_t started;  /* wakes the completer */
    pthread_t thread, completer;
} device_queue;

struct chill_scheduler {
    chill_backend *b;
    int batching, max_batch_requests, max_queue;
    int64_t max_queue_delay_ns, max_batch_tokens, idle_spin_ns;
    double direct_max_flops;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    pthread_cond_t reap;     /* wakes the reaper: a request with a deadline arrived, or stopping */
    pthread_t reaper;
    device_queue *devs;
    int flushing, draining, stopping;
    int in_flight;
    int arriving;            /* requests a transport is still receiving (chill_scheduler_announce) */
};

uint64_t chill_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_queued_gauge(device_queue *d) {
    chill_metric_set(chill_m.queued, d->count, d->name);
}

/* Whether nothing runs on d: no launch in flight, none being started, no
 * direct run. Caller holds the lock. */
static int device_idle(const device_queue *d) {
    return !d->busy && d->running == 0;
}

/* The healthy device with the shortest queue for r, an idle one among
 * equals, or -1. A request on a device (CUDA shared memory) goes to that
 * device only. */
static int pick_device(chill_scheduler *s, const chill_request *r) {
    int best = -1;
    for (int i = 0; i < s->b->n_devices; i++) {
        device_queue *d = &s->devs[i];
        if (!d->healthy || (r->device >= 0 && s->b->device_ordinal(s->b, i) != r->device))
            continue;
        if (best < 0 || d->count < s->devs[best].count ||
            (d->count == s->devs[best].count && !device_idle(&s->devs[best]) && device_idle(d)))
            best = i;
    }
    return best;
}

static void push(device_queue *d, chill_request *r) {
    d->items[d->count++] = r;
    __atomic_fetch_add(&d->arrivals, 1, __ATOMIC_RELEASE);
    set_queued_gauge(d);
    pthread_cond_signal(&d->cond);
}

/* Answers r with an error, outside the lock. */
static void fail(chill_request *r, chill_status st, int http, const char *msg) {
    r->status = st;
    r->http_status = http;
    snprintf(r->error, sizeof r->error, "%s", msg);
    r->t_end_ns = chill_now_ns();
    if (r->t_start_ns == 0)
        r->t_start_ns = r->t_end_ns;
    r->done(r);
}

/* Whether no other request could join a batch of n now: none is on its way
 * and every request in flight is in it. Caller holds the lock. */
static int alone(const chill_scheduler *s, int n) {
    return s->arriving == 0 && s->in_flight == n;
}

/* One request announced is no longer on its way; when none is left, the
 * workers with batches waiting for company look again. Caller holds the
 * lock. */
static void settle(chill_scheduler *s) {
    chill_metric_set(chill_m.receiving, --s->arriving);
    if (s->arriving > 0)
        return;
    for (int i = 0; i < s->b->n_devices; i++)
        if (s->devs[i].count > 0)
            pthread_cond_signal(&s->devs[i].cond);
}

void chill_scheduler_announce(chill_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    chill_metric_set(chill_m.receiving, ++s->arriving);
    pthread_mutex_unlock(&s->lock);
}

void chill_scheduler_withdraw(chill_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    settle(s);
    pthread_mutex_unlock(&s->lock);
}

static void finished(chill_scheduler *s, int n) {
    pthread_mutex_lock(&s->lock);
    s->in_flight -= n;
    if (s->in_flight == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* Device-buffer bytes a packed launch of r alone takes. */
static size_t launch_bytes(chill_request *r) {
    chill_pack_layout l;
    chill_pack_plan(&r, 1, &l);
    return l.bytes;
}

/* Picks the batch led by the oldest request into out[]; caller holds the
 * lock. Returns how many, and whether more could still join. */
static int collect(chill_scheduler *s, device_queue *d, chill_request **out, int *full) {
    chill_request *first = d->items[0];
    int n = 0;
    int64_t tokens = 0;
    size_t bytes = 4096; /* a packed launch realigns its sections: room for that */
    *full = 0;
    for (int i = 0; i < d->count; i++) {
        chill_request *r = d->items[i];
        if (n > 0 && (!s->batching || !chill_batch_key_equal(first, r)))
            continue;
        int64_t t = chill_request_tokens(r);
        size_t bb = launch_bytes(r);
        if (n > 0 && (tokens + t > s->max_batch_tokens || bytes + bb > s->b->max_launch_bytes)) {
            *full = 1;
            break;
        }
        out[n++] = r;
        tokens += t;
        bytes += bb;
        if (n == s->max_batch_requests) {
            *full = 1;
            break;
        }
    }
    if (!s->batching)
        *full = 1;
    return n;
}

static void remove_batch(device_queue *d, chill_request **batch, int n) {
    int w = 0;
    for (int i = 0; i < d->count; i++) {
        int taken = 0;
        for (int j = 0; j < n && !taken; j++)
            taken = d->items[i] == batch[j];
        if (!taken)
            d->items[w++] = d->items[i];
    }
    d->count = w;
    set_queued_gauge(d);
}

static void abs_deadline(uint64_t ns, struct timespec *ts) {
    struct timespec now_mono, now_real;
    clock_gettime(CLOCK_MONOTONIC, &now_mono);
    clock_gettime(CLOCK_REALTIME, &now_real);
    uint64_t mono = (uint64_t)now_mono.tv_sec * 1000000000u + (uint64_t)now_mono.tv_nsec;
    uint64_t real = (uint64_t)now_real.tv_sec * 1000000000u + (uint64_t)now_real.tv_nsec;
    uint64_t t = real + (ns > mono ? ns - mono : 0);
    ts->tv_sec = (time_t)(t / 1000000000u);
    ts->tv_nsec = (long)(t % 1000000000u);
}

/* Polls d's queue, outside the lock, for up to idle_spin_ns: the next request
 * of a client that was waiting for the last answer (a co-located one on the
 * native socket) often comes within tens of microseconds, and a worker that
 * is still awake starts it without a thread wake-up (several microseconds,
 * more from a sleeping core). next_batch polls only while the last such gap
 * was within idle_spin_ns: clients whose requests come further apart (binary
 * HTTP, which measured slower with an unconditional poll: bench/NOTES.md)
 * find the worker asleep, as without the poll. It yields the core between
 * looks, so that a thread it just woke (the transport sending the answer) can
 * run here. Caller holds the lock; it is held again on return. */
static void poll_queue(chill_scheduler *s, device_queue *d) {
    unsigned seen = __atomic_load_n(&d->arrivals, __ATOMIC_ACQUIRE);
    uint64_t until = chill_now_ns() + (uint64_t)s->idle_spin_ns;
    pthread_mutex_unlock(&s->lock);
    while (__atomic_load_n(&d->arrivals, __ATOMIC_ACQUIRE) == seen && chill_now_ns() < until)
        sched_yield();
    pthread_mutex_lock(&s->lock);
}

/* Waits for a batch while the device has a free slot and no direct run;
 * returns its size, 0 when
 * stopping with nothing left, -1 when the device left service with requests
 * queued. Measures the gap from going idle to the next arrival for
 * poll_queue. Caller holds the lock. */
static int next_batch(chill_scheduler *s, device_queue *d, chill_request **batch) {
    uint64_t idle_since = 0;
    if (d->count > 0)
        d->last_gap_ns = 0;
    else {
        idle_since = chill_now_ns();
        if (!s->stopping && s->idle_spin_ns > 0 && d->last_gap_ns <= (uint64_t)s->idle_spin_ns)
            poll_queue(s, d);
    }
    for (;;) {
        while ((d->count == 0 && !s->stopping) || d->busy || d->running == s->b->slots)
            pthread_cond_wait(&d->cond, &s->lock);
        if (d->count == 0)
            return 0;
        if (!d->healthy)
            return -1;
        if (idle_since != 0) {
            uint64_t t = d->items[0]->t_arrive_ns;
            d->last_gap_ns = t > idle_since ? t - idle_since : 0;
            idle_since = 0;
        }
        int full, n = collect(s, d, batch, &full);
        uint64_t until = d->items[0]->t_arrive_ns + (uint64_t)s->max_queue_delay_ns;
        if (full || s->flushing || alone(s, n) || chill_now_ns() >= until) {
            remove_batch(d, batch, n);
            return n;
        }
        struct timespec ts;
        abs_deadline(until, &ts);
        pthread_cond_timedwait(&d->cond, &s->lock, &ts);
    }
}

static int http_status_of(chill_status st) {
    switch (st) {
    case CHILL_OK: return 200;
    case CHILL_ERR_INVALID:
    case CHILL_ERR_UNSUPPORTED: return 400;
    case CHILL_ERR_NOMEM: return 503;
    default: return 500;
    }
}

static void record_launch(device_queue *d, chill_request **batch, int n) {
    chill_backend *b = d->s->b;
    chill_metric_observe(chill_m.batch_requests, n, chill_mask_name(batch[0]->params.mask.type), d->name);
    chill_metric_set(chill_m.device_memory, (double)b->memory_used(b, d->index), d->name);
    for (int i = 0; i < n; i++) {
        chill_request *r = batch[i];
        const char *mask = chill_mask_name(r->params.mask.type), *dt = chill_dtype_name(r->params.dtype);
        chill_metric_observe(chill_m.queue_seconds, (double)(r->t_start_ns - r->t_arrive_ns) * 1e-9, r->model, mask);
        chill_metric_observe(chill_m.compute_seconds, (double)(r->t_end_ns - r->t_start_ns) * 1e-9, r->model,
                             mask, dt, d->name);
        if (r->status != CHILL_OK)
            continue;
        int64_t tq = 0, tk = 0;
        for (int64_t s = 0; s < r->params.batch; s++) {
            tq += r->params.seq_lens_q ? r->params.seq_lens_q[s] : r->params.seq_q;
            tk += r->params.seq_lens_k ? r->params.seq_lens_k[s] : r->params.seq_k;
        }
        chill_metric_add(chill_m.tokens, (double)tq, r->model, mask, dt, "query");
        chill_metric_add(chill_m.tokens, (double)tk, r->model, mask, dt, "key");
        chill_metric_add(chill_m.flops, 4.0 * (double)r->params.head_dim * (double)chill_attended_pairs(&r->params),
                         r->model, mask, dt);
    }
}

static void finish(chill_request *r, chill_status st, const chill_error *err, uint64_t t_end, int n) {
    r->status = st;
    r->http_status = http_status_of(st);
    snprintf(r->error, sizeof r->error, "%s", st == CHILL_OK ? "" : err->message);
    r->t_end_ns = t_end;
    r->batch_size = n;
}

static void stamp_start(chill_request **batch, int n) {
    uint64_t t0 = chill_now_ns();
    for (int i = 0; i < n; i++)
        batch[i]->t_start_ns = t0;
}

/* After a launch: a device error (or a backend that reports its device
 * unhealthy) takes the device out of service; the launch goes to the
 * metrics. */
static void after_launch(device_queue *d, chill_request **batch, int n, chill_status worst, const chill_error *err) {
    chill_backend *b = d->s->b;
    if (worst == CHILL_ERR_DEVICE || !b->healthy(b, d->index)) {
        chill_log(CHILL_LOG_ERROR, "device_failed", "device=%s error=\"%s\"", d->name, err->message);
        pthread_mutex_lock(&d->s->lock);
        d->healthy = 0;
        pthread_mutex_unlock(&d->s->lock);
        chill_metric_set(chill_m.device_healthy, 0, d->name);
    }
    record_launch(d, batch, n);
}

/* Whether the batch of n runs in place: a lone request whose tensors are
 * already in device memory, and what the backend runs in place (a lone
 * request on the CPU, where packing would only add copies). Requests in CUDA
 * shared memory that share a launch are packed like any others, their
 * copies staying on the GPU. */
static int runs_in_place(chill_backend *b, chill_request **batch, int n) {
    return (batch[0]->device >= 0 && n == 1) || b->in_place(b, &batch[0]->params, n);
}

/* Runs the batch's requests in place, one after another, and fills each
 * one's status (not done() yet). */
static void run_in_place(device_queue *d, chill_request **batch, int n) {
    chill_backend *b = d->s->b;
    chill_error err = {0};
    chill_status worst = CHILL_OK;
    stamp_start(batch, n);
    for (int i = 0; i < n; i++) {
        chill_status st = b->forward(b, d->index, &batch[i]->params, &err);
        finish(batch[i], st, &err, chill_now_ns(), n);
        worst = st == CHILL_OK ? worst : st;
    }
    after_launch(d, batch, n, worst, &err);
}

/* Lays the batch out in slot's buffer and starts it as one varlen launch
 * whose copies take each request's tensors in and its outputs back. */
static chill_status start_packed(device_queue *d, int slot, chill_request **batch, int n, chill_error *err) {
    chill_backend *b = d->s->b;
    chill_pack_layout l;
    chill_packed pk;
    stamp_start(batch, n);
    chill_pack_plan(batch, n, &l);
    void *buf = b->buffer(b, d->index, slot, l.bytes, err->message, sizeof err->message);
    if (buf == NULL)
        return CHILL_ERR_INVALID;
    if (chill_pack(batch, n, &l, buf, &pk) != 0) {
        snprintf(err->message, sizeof err->message, "out of host memory listing the copies of a launch");
        return CHILL_ERR_NOMEM;
    }
    chill_status st = b->start(b, d->index, slot, &pk.params, &pk.transfer, err);
    chill_packed_free(&pk);
    return st;
}

/* Waits for the packed launch in slot, which start_packed() began with
 * status st, and fills every request's status (not done() yet). A launch
 * that failed to start is still waited for: part of it may be queued. */
static void end_packed(device_queue *d, int slot, chill_request **batch, int n, chill_status st, chill_error *err) {
    chill_backend *b = d->s->b;
    chill_error late;
    chill_status waited = b->finish(b, d->index, slot, st == CHILL_OK ? err : &late);
    if (st == CHILL_OK)
        st = waited;
    uint64_t t1 = chill_now_ns();
    for (int i = 0; i < n; i++)
        finish(batch[i], st, err, t1, n);
    after_launch(d, batch, n, st, err);
}

/* Runs one batch to its end on this thread (a packed one in slot 0: nothing
 * else is in flight) and fills every request's status (not done() yet). */
static void run_batch(device_queue *d, chill_request **batch, int n) {
    if (runs_in_place(d->s->b, batch, n)) {
        run_in_place(d, batch, n);
        return;
    }
    chill_error err = {0};
    chill_status st = start_packed(d, 0, batch, n, &err);
    end_packed(d, 0, batch, n, st, &err);
}

/* done() for the n requests computed, and the end of all total taken. */
static void answer(chill_scheduler *s, chill_request **batch, int n, int total) {
    for (int i = 0; i < n; i++)
        batch[i]->done(batch[i]);
    finished(s, total);
}

/* Moves the queue of a device out of service to healthy ones; what has
 * nowhere to go is returned in orphans. Caller holds the lock. */
static int evacuate(device_queue *d, chill_request **orphans) {
    int n = 0;
    for (int i = 0; i < d->count; i++) {
        int to = pick_device(d->s, d->items[i]);
        if (to >= 0)
            push(&d->s->devs[to], d->items[i]);
        else
            orphans[n++] = d->items[i];
    }
    d->count = 0;
    set_queued_gauge(d);
    return n;
}

/* Whether r is past its deadline at now; if so, answers it 504 (outside
 * the lock). */
static int expire(chill_request *r, uint64_t now) {
    if (r->deadline_ns == 0 || now < r->deadline_ns)
        return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "timeout: the request waited %.3f ms in the queue, past its deadline",
             (double)(now - r->t_arrive_ns) * 1e-6);
    fail(r, CHILL_ERR_INVALID, 504, msg);
    return 1;
}

/* A batch taken just as a deadline passed: those requests are answered
 * 504 rather than computed. */
static void answer_expired(chill_request **batch, int *n) {
    uint64_t now = chill_now_ns();
    int w = 0;
    for (int i = 0; i < *n; i++)
        if (!expire(batch[i], now))
            batch[w++] = batch[i];
    *n = w;
}

/* Takes the queued requests whose deadline has passed out of every queue
 * into out[]; *next is the earliest deadline still queued (0: none). Caller
 * holds the lock. */
static int take_expired(chill_scheduler *s, chill_request **out, uint64_t *next) {
    uint64_t now = chill_now_ns();
    int n = 0;
    *next = 0;
    for (int i = 0; i < s->b->n_devices; i++) {
        device_queue *d = &s->devs[i];
        int w = 0;
        for (int j = 0; j < d->count; j++) {
            chill_request *r = d->items[j];
            if (r->deadline_ns != 0 && now >= r->deadline_ns) {
                out[n++] = r;
                continue;
            }
            if (r->deadline_ns != 0 && (*next == 0 || r->deadline_ns < *next))
                *next = r->deadline_ns;
            d->items[w++] = r;
        }
        if (w != d->count) {
            d->count = w;
            set_queued_gauge(d);
        }
    }
    return n;
}

static void *reaper(void *arg) {
    chill_scheduler *s = arg;
    chill_request **expired = malloc(sizeof *expired * (size_t)s->max_queue * (size_t)s->b->n_devices);
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        uint64_t next;
        int n = take_expired(s, expired, &next);
        if (n > 0) {
            pthread_mutex_unlock(&s->lock);
            uint64_t now = chill_now_ns();
            for (int i = 0; i < n; i++)
                expire(expired[i], now);
            finished(s, n);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (next == 0) {
            pthread_cond_wait(&s->reap, &s->lock);
        } else {
            struct timespec ts;
            abs_deadline(next, &ts);
            pthread_cond_timedwait(&s->reap, &s->lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(expired);
    return NULL;
}

/* Whether r is small enough to run on the thread that submits it, which
 * serves other connections too: at most devices.direct_max_mflop (4 *
 * head_dim per attended pair; the dense count when that is already under the
 * limit, else the mask's own). Called before taking the lock: counting the
 * pairs of a long request takes a while. */
static int fits_direct(chill_scheduler *s, const chill_request *r) {
    const chill_params *p = &r->params;
    if (!r->run_here || s->direct_max_flops <= 0)
        return 0;
    double per_pair = 4.0 * (double)p->head_dim;
    double dense = per_pair * (double)p->batch * (double)p->heads_q * (double)p->seq_q * (double)p->seq_k;
    if (dense <= s->direct_max_flops)
        return 1;
    double pairs = (double)chill_attended_pairs(p);
    return pairs >= 0 && per_pair * pairs <= s->direct_max_flops;
}

/* Whether a request that fits_direct() runs at once on the submitting
 * thread: its device d is idle with nothing queued and the request would not
 * wait for a batch (batching off, no queue delay, or no other request that
 * could join it). Handing it to the worker instead costs two thread
 * wake-ups, there and back. Caller holds the lock. */
static int runs_direct(chill_scheduler *s, const device_queue *d) {
    if (!device_idle(d) || d->count > 0)
        return 0;
    return !s->batching || s->max_queue_delay_ns == 0 || alone(s, 1);
}

/* Runs r, which runs_direct() chose and marked its device busy for.
 * Requests arriving meanwhile queue; the worker starts them once the device
 * is free. A request already past its deadline is answered 504 instead
 * (once). */
static void run_direct(device_queue *d, chill_request *r) {
    chill_scheduler *s = d->s;
    int n = 1;
    answer_expired(&r, &n);
    if (n > 0)
        run_batch(d, &r, 1);
    pthread_mutex_lock(&s->lock);
    d->busy = 0;
    if (d->count > 0 || s->stopping) /* else the worker has nothing to wake for */
        pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&s->lock);
    if (n > 0)
        r->done(r);
    finished(s, 1);
}

chill_submit_result chill_submit(chill_scheduler *s, chill_request *r) {
    int small = fits_direct(s, r);
    pthread_mutex_lock(&s->lock);
    if (r->announced)
        settle(s);
    if (s->draining) {
        pthread_mutex_unlock(&s->lock);
        return CHILL_SUBMIT_DRAINING;
    }
    int i = pick_device(s, r);
    if (i >= 0 && s->devs[i].count >= s->max_queue) {
        pthread_mutex_unlock(&s->lock);
        return CHILL_SUBMIT_FULL;
    }
    r->t_arrive_ns = chill_now_ns();
    r->t_start_ns = r->t_end_ns = 0;
    r->batch_size = 0;
    s->in_flight++;
    if (i < 0) {
        pthread_mutex_unlock(&s->lock);
        char msg[160];
        if (r->device >= 0)
            snprintf(msg, sizeof msg, "device %d: not served by this chilld or out of service", r->device);
        else
            snprintf(msg, sizeof msg, "no device in service (see /v2/health/ready)");
        fail(r, CHILL_ERR_DEVICE, 503, msg);
        finished(s, 1);
        return CHILL_SUBMIT_OK;
    }
    device_queue *d = &s->devs[i];
    if (small && runs_direct(s, d)) {
        d->busy = 1;
        pthread_mutex_unlock(&s->lock);
        run_direct(d, r);
        return CHILL_SUBMIT_OK;
    }
    push(d, r);
    if (r->deadline_ns != 0)
        pthread_cond_signal(&s->reap);
    pthread_mutex_unlock(&s->lock);
    return CHILL_SUBMIT_OK;
}

/* Starts the packed batch in slot and hands it to the completer. */
static void launch_packed(device_queue *d, int slot, chill_request **batch, int n, int total) {
    chill_scheduler *s = d->s;
    launch *l = &d->launches[slot];
    memcpy(l->batch, batch, sizeof *batch * (size_t)n);
    l->n = n;
    l->total = total;
    l->err = (chill_error){0};
    l->st = start_packed(d, slot, l->batch, n, &l->err);
    pthread_mutex_lock(&s->lock);
    d->busy = 0;
    d->running++;
    pthread_cond_signal(&d->started);
    pthread_mutex_unlock(&s->lock);
}

/* The device's worker: takes each batch, answers what is past its
 * deadline, and with two or more slots starts a packed launch and goes on
 * to the next batch while it runs (the completer answers it); with one slot,
 * and for in-place batches, it runs the batch to its end and answers it
 * itself, which spares a thread hand-off per launch. */
static void *worker(void *arg) {
    device_queue *d = arg;
    chill_scheduler *s = d->s;
    chill_request **batch = malloc(sizeof *batch * (size_t)s->max_queue * (size_t)s->b->n_devices);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        int n = next_batch(s, d, batch);
        if (n == 0)
            break;
        if (n < 0) {
            n = evacuate(d, batch);
            pthread_mutex_unlock(&s->lock);
            for (int i = 0; i < n; i++)
                fail(batch[i], CHILL_ERR_DEVICE, 503, "every device is out of service (see /v2/health/ready)");
            finished(s, n);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        d->busy = 1;
        int slot = (d->head + d->running) % s->b->slots; /* free: next_batch saw running < slots */
        pthread_mutex_unlock(&s->lock);
        int total = n;
        answer_expired(batch, &n);
        if (n > 0 && d->launches != NULL && !runs_in_place(s->b, batch, n)) {
            launch_packed(d, slot, batch, n, total);
        } else {
            if (n > 0)
                run_batch(d, batch, n);
            pthread_mutex_lock(&s->lock);
            d->busy = 0;
            pthread_mutex_unlock(&s->lock);
            answer(s, batch, n, total);
        }
        pthread_mutex_lock(&s->lock);
    }
    d->closing = 1;
    pthread_cond_signal(&d->started);
    pthread_mutex_unlock(&s->lock);
    free(batch);
    return NULL;
}

/* The device's completer: waits for each packed launch in the order they
 * started, frees its slot for the worker, and answers its requests. Stops
 * once the worker has stopped and nothing runs. */
static void *completer(void *arg) {
    device_queue *d = arg;
    chill_scheduler *s = d->s;
    chill_request **batch = malloc(sizeof *batch * (size_t)s->max_batch_requests);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (d->running == 0 && !d->closing)
            pthread_cond_wait(&d->started, &s->lock);
        if (d->running == 0)
            break;
        int slot = d->head;
        pthread_mutex_unlock(&s->lock);
        launch *l = &d->launches[slot];
        int n = l->n, total = l->total;
        end_packed(d, slot, l->batch, n, l->st, &l->err);
        memcpy(batch, l->batch, sizeof *batch * (size_t)n);
        pthread_mutex_lock(&s->lock);
        d->head = (slot + 1) % s->b->slots;
        d->running--;
        pthread_cond_signal(&d->cond);
        pthread_mutex_unlock(&s->lock);
        answer(s, batch, n, total);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    free(batch);
    return NULL;
}

/* Starts d's worker, and its completer and launch slots when the backend
 * has two or more slots. Threads are named chill-devN and chill-doneN, so top
 * -H, perf and gdb tell them apart. */
static void start_device(device_queue *d) {
    chill_scheduler *s = d->s;
    char name[16];
    pthread_cond_init(&d->cond, NULL);
    pthread_cond_init(&d->started, NULL);
    if (s->b->slots > 1) {
        d->launches = calloc((size_t)s->b->slots, sizeof *d->launches);
        for (int i = 0; i < s->b->slots; i++)
            d->launches[i].batch = malloc(sizeof *d->launches[i].batch * (size_t)s->max_batch_requests);
        pthread_create(&d->completer, NULL, completer, d);
        snprintf(name, sizeof name, "chill-done%hu", (unsigned short)d->index);
        pthread_setname_np(d->completer, name);
    }
    pthread_create(&d->thread, NULL, worker, d);
    snprintf(name, sizeof name, "chill-dev%hu", (unsigned short)d->index);
    pthread_setname_np(d->thread, name);
}

/* Joins d's threads (the worker answers what is queued, the completer what
 * is in flight) and frees what start_device() made. */
static void stop_device(device_queue *d) {
    chill_scheduler *s = d->s;
    pthread_join(d->thread, NULL);
    if (d->launches != NULL) {
        pthread_join(d->completer, NULL);
        for (int i = 0; i < s->b->slots; i++)
            free(d->launches[i].batch);
        free(d->launches);
    }
    pthread_cond_destroy(&d->cond);
    pthread_cond_destroy(&d->started);
    free(d->items);
}

chill_scheduler *chill_scheduler_create(const chill_config *c, chill_backend *b) {
    chill_scheduler *s = calloc(1, sizeof *s);
    s->b = b;
    s->batching = c->batching;
    s->max_batch_requests = c->max_batch_requests;
    s->max_queue = c->max_queue_requests;
    s->max_queue_delay_ns = c->max_queue_delay_us * 1000;
    s->idle_spin_ns = c->idle_spin_us * 1000;
    s->direct_max_flops = (double)c->direct_max_mflop * 1e6;
    s->max_batch_tokens = c->max_batch_tokens;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_cond_init(&s->reap, NULL);
    s->devs = calloc((size_t)b->n_devices, sizeof *s->devs);
    for (int i = 0; i < b->n_devices; i++) {
        device_queue *d = &s->devs[i];
        d->s = s;
        d->index = i;
        d->name = b->device_name(b, i);
        /* evacuation may move every other queue here */
        d->items = malloc(sizeof *d->items * (size_t)s->max_queue * (size_t)b->n_devices);
        d->healthy = b->healthy(b, i);
        d->last_gap_ns = UINT64_MAX; /* no poll before a client has shown a short gap */
        chill_metric_set(chill_m.device_healthy, d->healthy, d->name);
        chill_metric_set(chill_m.device_memory, (double)b->memory_used(b, i), d->name);
        set_queued_gauge(d);
        start_device(d);
    }
    chill_metric_set(chill_m.receiving, 0);
    pthread_create(&s->reaper, NULL, reaper, s);
    pthread_setname_np(s->reaper, "chill-reaper");
    return s;
}

void chill_scheduler_flush(chill_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    s->flushing = 1;
    for (int i = 0; i < s->b->n_devices; i++)
        pthread_cond_signal(&s->devs[i].cond);
    pthread_mutex_unlock(&s->lock);
}

int chill_scheduler_drain(chill_scheduler *s, int timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_s;
    chill_scheduler_flush(s);
    pthread_mutex_lock(&s->lock);
    s->draining = 1;
    while (s->in_flight > 0)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &ts) == ETIMEDOUT)
            break;
    int left = s->in_flight;
    pthread_mutex_unlock(&s->lock);
    return left;
}

void chill_scheduler_destroy(chill_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    s->flushing = s->draining = s->stopping = 1;
    for (int i = 0; i < s->b->n_devices; i++)
        pthread_cond_signal(&s->devs[i].cond);
    pthread_cond_signal(&s->reap);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->reaper, NULL);
    for (int i = 0; i < s->b->n_devices; i++)
        stop_device(&s->devs[i]);
    s->b->destroy(s->b);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->reap);
    free(s->devs);
    free(s);
}

const char *chill_scheduler_backend(chill_scheduler *s) { return s->b->kind; }

int chill_scheduler_ready(chill_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    int n = 0;
    for (int i = 0; i < s->b->n_devices && !s->draining; i++)
        n += s->devs[i].healthy;
    pthread_mutex_unlock(&s->lock);
    return n;
}

char *chill_scheduler_status_json(chill_scheduler *s) {
    json_t *list = json_array();
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->b->n_devices; i++)
        json_array_append_new(list, json_pack("{s:s,s:b,s:i}", "name", s->devs[i].name, "healthy",
                                              s->devs[i].healthy, "queued", s->devs[i].count));
    int draining = s->draining;
    pthread_mutex_unlock(&s->lock);
    json_t *j = json_pack("{s:s,s:b,s:o}", "backend", s->b->kind, "draining", draining, "devices", list);
    char *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return out;
}
