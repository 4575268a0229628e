/* The scheduler (server/scheduler.c) driven through a fake backend (the
 * device.h interface, running the CPU kernel, with a gate that holds a launch
 * and a switch that makes a device fail for good): requests that queue up
 * while a launch runs go out together as one batch, each answered once with
 * its own result; the queue bound refuses with FULL; draining refuses new
 * work and waits for what was accepted; a request past its deadline is 504
 * at the deadline, while its device is still busy;
 * a sticky device error answers 500, takes that device out of service and
 * the next requests run on the other device; an idle worker polls its queue
 * only as long as configured; a request that finds its device idle runs on
 * the submitting thread when the transport allows it and it cannot batch,
 * and a device never runs two launches at once; with launch slots, the
 * worker keeps that many packed launches in flight and no more (with one,
 * it waits for each itself, with no completer thread); a batch
 * waits for a request on its way (announced) and not for company that
 * cannot come; requests whose tensors are on a device (CUDA shared memory)
 * share packed launches with each other, never with requests in host
 * memory, and one alone runs in place. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "pack.h"
#include "ref/ref.h"
#include "scheduler.h"

#define T 4
#define D 16
#define N_MAX 16

/* ---- the fake backend ---------------------------------------------------- */

typedef struct fake {
    chill_backend base;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int gate_closed, waiting;   /* a launch waits while the gate is closed */
    int hold_finish, holding;   /* finish() waits while hold_finish */
    int fail_device;            /* this device fails for good on its next launch; -1: none */
    int healthy[2];
    int launches[2];
    int in_place;               /* launches that ran in place (forward(), no copies) */
    int last_batch;             /* sequences in the last launch */
    pthread_t last_thread;      /* the thread that ran the last launch */
    int active, max_active;     /* launches in flight now (started, not finished), and the most at once */
    void *buffer[2][2];         /* the "device" buffers per device and slot, host memory */
    size_t buffer_bytes[2][2];
} fake;

static const char *fake_name(chill_backend *b, int dev) { (void)b; return dev == 0 ? "fake:0" : "fake:1"; }
static int fake_ordinal(chill_backend *b, int dev) { (void)b; return dev; }

static int fake_in_place(chill_backend *b, const chill_params *p, int n) {
    (void)b, (void)p, (void)n;
    return 0;
}

static void *fake_buffer(chill_backend *b, int dev, int slot, size_t bytes, char *err, size_t errlen) {
    fake *f = (fake *)b;
    (void)err, (void)errlen;
    if (bytes > f->buffer_bytes[dev][slot]) {
        f->buffer[dev][slot] = realloc(f->buffer[dev][slot], bytes);
        f->buffer_bytes[dev][slot] = bytes;
    }
    return f->buffer[dev][slot];
}

/* A launch: counted in flight, held while the gate is closed, then run on
 * the CPU at once (t's copies around the kernel), or failed for good. */
static chill_status fake_run(fake *f, int dev, chill_params *p, const chill_transfer *t, chill_error *err) {
    pthread_mutex_lock(&f->lock);
    f->active++;
    f->max_active = f->active > f->max_active ? f->active : f->max_active;
    f->waiting++;
    pthread_cond_broadcast(&f->cond);
    while (f->gate_closed)
        pthread_cond_wait(&f->cond, &f->lock);
    f->waiting--;
    f->launches[dev]++;
    pthread_cond_broadcast(&f->cond);
    f->last_thread = pthread_self();
    f->last_batch = (int)p->batch;
    int failing = f->fail_device == dev;
    if (failing)
        f->healthy[dev] = 0;
    pthread_mutex_unlock(&f->lock);
    if (failing) {
        snprintf(err->message, sizeof err->message, "fake: device %d lost", dev);
        return CHILL_ERR_DEVICE;
    }
    if (t != NULL)
        chill_copies_run_host(t->in, t->n_in, 1);
    chill_status st = chill_forward(p, err);
    if (t != NULL && st == CHILL_OK)
        chill_copies_run_host(t->out, t->n_out, 0);
    return st;
}

static void fake_ended(fake *f) {
    pthread_mutex_lock(&f->lock);
    f->active--;
    pthread_mutex_unlock(&f->lock);
}

static chill_status fake_forward(chill_backend *b, int dev, chill_params *p, chill_error *err) {
    __atomic_add_fetch(&((fake *)b)->in_place, 1, __ATOMIC_RELAXED);
    chill_status st = fake_run((fake *)b, dev, p, NULL, err);
    fake_ended((fake *)b);
    return st;
}

static chill_status fake_start(chill_backend *b, int dev, int slot, chill_params *p, const chill_transfer *t,
                               chill_error *err) {
    (void)slot;
    return fake_run((fake *)b, dev, p, t, err);
}

/* Waits while finishes are held; the launch then ends. */
static chill_status fake_finish(chill_backend *b, int dev, int slot, chill_error *err) {
    fake *f = (fake *)b;
    (void)dev, (void)slot, (void)err;
    pthread_mutex_lock(&f->lock);
    f->holding++;
    pthread_cond_broadcast(&f->cond);
    while (f->hold_finish)
        pthread_cond_wait(&f->cond, &f->lock);
    f->holding--;
    pthread_mutex_unlock(&f->lock);
    fake_ended(f);
    return CHILL_OK;
}

static int fake_healthy(chill_backend *b, int dev) {
    fake *f = (fake *)b;
    pthread_mutex_lock(&f->lock);
    int h = f->healthy[dev];
    pthread_mutex_unlock(&f->lock);
    return h;
}

static uint64_t fake_memory(chill_backend *b, int dev) {
    fake *f = (fake *)b;
    return f->buffer_bytes[dev][0] + f->buffer_bytes[dev][1];
}

static fake *the_fake;

static void fake_destroy(chill_backend *b) {
    fake *f = (fake *)b;
    for (int i = 0; i < 4; i++)
        free(f->buffer[i / 2][i % 2]);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
    the_fake = NULL;
}

static chill_backend *fake_create(int n_devices) {
    fake *f = the_fake = calloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->fail_device = -1;
    f->healthy[0] = f->healthy[1] = 1;
    f->base = (chill_backend){.kind = "fake", .n_devices = n_devices, .max_launch_bytes = SIZE_MAX,
                              .device_name = fake_name, .device_ordinal = fake_ordinal,
                              .in_place = fake_in_place, .forward = fake_forward, .slots = 1,
                              .buffer = fake_buffer, .start = fake_start, .finish = fake_finish,
                              .healthy = fake_healthy, .memory_used = fake_memory, .destroy = fake_destroy};
    return &f->base;
}

/* Sets one of the fake's switches and wakes the launches that wait on it. */
static void set_switch(int *sw, int value) {
    pthread_mutex_lock(&the_fake->lock);
    *sw = value;
    pthread_cond_broadcast(&the_fake->cond);
    pthread_mutex_unlock(&the_fake->lock);
}

static void gate(int closed) { set_switch(&the_fake->gate_closed, closed); }

static void hold_finishes(int hold) { set_switch(&the_fake->hold_finish, hold); }

/* Waits until a launch is held at the gate. */
static void wait_held(void) {
    pthread_mutex_lock(&the_fake->lock);
    while (the_fake->waiting == 0)
        pthread_cond_wait(&the_fake->cond, &the_fake->lock);
    pthread_mutex_unlock(&the_fake->lock);
}

/* Waits until device 0 has started n launches and a finish() is held. */
static void wait_started_and_holding(int n) {
    pthread_mutex_lock(&the_fake->lock);
    while (the_fake->launches[0] < n || the_fake->holding == 0)
        pthread_cond_wait(&the_fake->cond, &the_fake->lock);
    pthread_mutex_unlock(&the_fake->lock);
}

/* ---- requests ----------------------------------------------------------------- */

typedef struct treq {
    chill_request r;
    float q[T * D], k[T * D], v[T * D], out[T * D];
    int answered;
} treq;

static treq reqs[N_MAX];
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int n_done;

static void on_done(chill_request *r) {
    pthread_mutex_lock(&done_lock);
    ((treq *)r->user)->answered++;
    n_done++;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

static void wait_done(int n) {
    pthread_mutex_lock(&done_lock);
    while (n_done < n)
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
}

static chill_request *make(int i) {
    treq *t = &reqs[i];
    uint64_t rng = 100 + (uint64_t)i;
    memset(t, 0, sizeof *t);
    chill_ref_fill(t->q, CHILL_F32, T * D, &rng);
    chill_ref_fill(t->k, CHILL_F32, T * D, &rng);
    chill_ref_fill(t->v, CHILL_F32, T * D, &rng);
    chill_ref_poison(t->out, CHILL_F32, T * D);
    chill_params *p = &t->r.params;
    chill_params_init(p);
    p->batch = p->heads_q = p->heads_kv = 1;
    p->seq_q = p->seq_k = T;
    p->head_dim = D;
    p->q.data = t->q, p->k.data = t->k, p->v.data = t->v, p->out.data = t->out;
    p->mask.type = CHILL_MASK_causal;
    t->r.model = "causal";
    t->r.device = -1;
    t->r.done = on_done;
    t->r.user = t;
    return &t->r;
}

/* Request i was answered once, 200, with its own result. */
static void check_result(int i) {
    treq *t = &reqs[i];
    double ref[T * D];
    ck_assert_int_eq(t->answered, 1);
    ck_assert_msg(t->r.http_status == 200, "request %d: %d %s", i, t->r.http_status, t->r.error);
    chill_ref_forward(&t->r.params, ref, NULL);
    double err = chill_ref_rel_error(&t->r.params, ref);
    ck_assert_msg(err <= 1e-5, "request %d: relative error %g", i, err);
}

/* Submits request i, whose transport allows running it here, and checks it
 * ran on this thread and was answered before chill_submit() returned. */
static void submit_runs_here(chill_scheduler *s, int i) {
    chill_request *r = make(i);
    r->run_here = 1;
    ck_assert_int_eq(chill_submit(s, r), CHILL_SUBMIT_OK);
    ck_assert_int_eq(reqs[i].answered, 1);
    ck_assert(pthread_equal(the_fake->last_thread, pthread_self()));
}

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
}

static chill_config cfg;

static void setup(void) {
    chill_metrics_init();
    chill_config_defaults(&cfg);
    cfg.max_queue_delay_us = 1000000;
    n_done = 0;
}

static void teardown(void) { chill_metrics_free(); }

START_TEST(queued_requests_go_out_as_one_batch) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_held();
    for (int i = 1; i <= 6; i++)
        ck_assert_int_eq(chill_submit(s, make(i)), CHILL_SUBMIT_OK);
    gate(0);
    wait_done(7);
    ck_assert_int_eq(the_fake->launches[0], 2);
    ck_assert_int_eq(the_fake->last_batch, 6);
    for (int i = 0; i < 7; i++) {
        check_result(i);
        ck_assert_int_eq(reqs[i].r.batch_size, i == 0 ? 1 : 6);
    }
    ck_assert_int_eq(chill_scheduler_drain(s, 5), 0);
    chill_scheduler_destroy(s);
}
END_TEST

START_TEST(different_keys_do_not_share_a_launch) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_held();
    chill_request *a = make(1), *b = make(2);
    b->params.mask.type = CHILL_MASK_full;
    ck_assert_int_eq(chill_submit(s, a), CHILL_SUBMIT_OK);
    ck_assert_int_eq(chill_submit(s, b), CHILL_SUBMIT_OK);
    gate(0);
    wait_done(3);
    ck_assert_int_eq(the_fake->launches[0], 3);
    for (int i = 0; i < 3; i++)
        check_result(i);
    chill_scheduler_destroy(s);
}
END_TEST

/* The fake's "device" memory is host memory, so a request marked as on
 * device 0 is what a CUDA shared-memory request is to the scheduler. */
START_TEST(device_requests_batch_with_each_other_only) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_held();
    for (int i = 1; i <= 5; i++) {
        chill_request *r = make(i);
        r->device = i % 2 == 1 ? 0 : -1; /* 1, 3, 5 on device 0; 2, 4 in host memory */
        ck_assert_int_eq(chill_submit(s, r), CHILL_SUBMIT_OK);
    }
    gate(0);
    wait_done(6);
    ck_assert_int_eq(the_fake->launches[0], 3);
    for (int i = 0; i < 6; i++) {
        check_result(i);
        ck_assert_int_eq(reqs[i].r.batch_size, i == 0 ? 1 : i % 2 == 1 ? 3 : 2);
    }
    ck_assert_int_eq(the_fake->in_place, 0);
    chill_request *lone = make(6);
    lone->device = 0;
    ck_assert_int_eq(chill_submit(s, lone), CHILL_SUBMIT_OK);
    wait_done(7);
    check_result(6);
    ck_assert_int_eq(the_fake->in_place, 1);
    chill_scheduler_destroy(s);
}
END_TEST

START_TEST(queue_bound_refuses) {
    cfg.max_queue_requests = 2;
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_held();
    ck_assert_int_eq(chill_submit(s, make(1)), CHILL_SUBMIT_OK);
    ck_assert_int_eq(chill_submit(s, make(2)), CHILL_SUBMIT_OK);
    ck_assert_int_eq(chill_submit(s, make(3)), CHILL_SUBMIT_FULL);
    gate(0);
    wait_done(3);
    ck_assert_int_eq(reqs[3].answered, 0);
    for (int i = 0; i < 3; i++)
        check_result(i);
    chill_scheduler_destroy(s);
}
END_TEST

START_TEST(drain_refuses_new_and_finishes_accepted) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    ck_assert_int_eq(chill_submit(s, make(1)), CHILL_SUBMIT_OK);
    wait_held();
    ck_assert_int_eq(chill_scheduler_drain(s, 1), 2); /* held: both still unanswered after 1 s */
    ck_assert_int_eq(chill_submit(s, make(2)), CHILL_SUBMIT_DRAINING);
    ck_assert_int_eq(chill_scheduler_ready(s), 0);
    gate(0);
    ck_assert_int_eq(chill_scheduler_drain(s, 10), 0);
    check_result(0);
    check_result(1);
    ck_assert_int_eq(reqs[2].answered, 0);
    chill_scheduler_destroy(s);
}
END_TEST

/* The deadline is answered when it passes, while the device is still busy
 * with another launch, not when the device next forms a batch. */
START_TEST(deadline_passed_is_504) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_held();
    chill_request *late = make(1);
    uint64_t t0 = chill_now_ns();
    late->deadline_ns = t0 + 20 * 1000000;
    ck_assert_int_eq(chill_submit(s, late), CHILL_SUBMIT_OK);
    wait_done(1);
    uint64_t waited = chill_now_ns() - t0;
    ck_assert_int_eq(reqs[1].answered, 1);
    ck_assert_int_eq(reqs[0].answered, 0);
    ck_assert_msg(waited >= 20 * 1000000 && waited < 1000 * 1000000ull, "answered after %.1f ms, deadline 20 ms",
                  (double)waited * 1e-6);
    ck_assert_int_eq(reqs[1].r.http_status, 504);
    ck_assert_ptr_nonnull(strstr(reqs[1].r.error, "timeout"));
    ck_assert_msg(isnan(reqs[1].out[0]), "a timed-out request is not computed");
    gate(0);
    wait_done(2);
    check_result(0);
    ck_assert_int_eq(chill_scheduler_drain(s, 5), 0);
    chill_scheduler_destroy(s);
}
END_TEST

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs requests 0 and 1 on one device, gap_ms apart (from 0's answer to 1's
 * submission), then returns the CPU seconds the process uses over the idle_ms
 * after 1 is answered, having checked both results. */
static double idle_cpu_after_two(int gap_ms, int idle_ms) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    struct timespec gap = {0, gap_ms * 1000000L}, idle = {0, idle_ms * 1000000L};
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_done(1);
    nanosleep(&gap, NULL);
    ck_assert_int_eq(chill_submit(s, make(1)), CHILL_SUBMIT_OK);
    wait_done(2);
    double cpu0 = cpu_seconds();
    nanosleep(&idle, NULL);
    double used = cpu_seconds() - cpu0;
    check_result(0);
    check_result(1);
    ck_assert_int_eq(chill_scheduler_drain(s, 5), 0);
    chill_scheduler_destroy(s);
    return used;
}

/* After a launch whose request came soon after the worker went idle, it
 * polls its queue for idle_spin_us (20 ms here), then sleeps: over 300 ms
 * with nothing queued the process uses well under 300 ms of CPU. A request
 * that comes while it polls is served as any other. */
START_TEST(idle_worker_polls_then_sleeps) {
    cfg.idle_spin_us = 20000;
    double used = idle_cpu_after_two(0, 300);
    ck_assert_msg(used < 0.15, "%.0f ms of CPU in 300 ms idle: the worker did not stop polling", used * 1e3);
}
END_TEST

/* A worker polls only for a client whose last request came within the poll
 * window of its going idle: with 300 ms between requests and a 100 ms
 * window, the worker sleeps at once after each, and 150 ms after the second
 * the process has used far less CPU than a 100 ms poll would. */
START_TEST(idle_worker_does_not_poll_for_slow_clients) {
    cfg.idle_spin_us = 100000;
    double used = idle_cpu_after_two(300, 150);
    ck_assert_msg(used < 0.03, "%.0f ms of CPU in 150 ms idle after a 300 ms gap: the worker polled", used * 1e3);
}
END_TEST

START_TEST(sticky_error_moves_work_to_the_healthy_device) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(2));
    the_fake->fail_device = 0;
    ck_assert_int_eq(chill_scheduler_ready(s), 2);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK); /* both queues empty: device 0 */
    wait_done(1);
    ck_assert_int_eq(reqs[0].r.http_status, 500);
    ck_assert_ptr_nonnull(strstr(reqs[0].r.error, "device 0 lost"));
    ck_assert_int_eq(chill_scheduler_ready(s), 1);
    char *status = chill_scheduler_status_json(s);
    ck_assert_ptr_nonnull(strstr(status, "{\"name\":\"fake:0\",\"healthy\":false"));
    free(status);
    for (int i = 1; i <= 4; i++)
        ck_assert_int_eq(chill_submit(s, make(i)), CHILL_SUBMIT_OK);
    wait_done(5);
    for (int i = 1; i <= 4; i++)
        check_result(i);
    ck_assert_int_eq(the_fake->launches[0], 1);
    size_t len;
    char *text = chill_metrics_render(&len);
    ck_assert_ptr_nonnull(strstr(text, "chill_device_healthy{device=\"fake:0\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "chill_device_healthy{device=\"fake:1\"} 1\n"));
    free(text);
    chill_scheduler_destroy(s);
}
END_TEST

/* With batching off, a request whose transport allows it (run_here) and
 * whose device is idle runs on the submitting thread and is answered before
 * chill_submit() returns; one that does not allow it goes to the worker. */
START_TEST(an_idle_device_runs_the_request_on_the_submitting_thread) {
    cfg.batching = 0;
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    submit_runs_here(s, 0);
    check_result(0);
    ck_assert_int_eq(chill_submit(s, make(1)), CHILL_SUBMIT_OK);
    wait_done(2);
    ck_assert(!pthread_equal(the_fake->last_thread, pthread_self()));
    check_result(1);
    ck_assert_int_eq(chill_scheduler_drain(s, 5), 0);
    chill_scheduler_destroy(s);
}
END_TEST

static void *submit_here(void *arg) {
    chill_request *r = make(0);
    r->run_here = 1;
    ck_assert_int_eq(chill_submit(arg, r), CHILL_SUBMIT_OK);
    return NULL;
}

/* A request that arrives while another runs on its submitting thread finds
 * the device busy: it queues, and the worker runs it after, never beside it. */
START_TEST(a_request_arriving_during_a_direct_run_waits_for_it) {
    cfg.batching = 0;
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    gate(1);
    pthread_t first;
    pthread_create(&first, NULL, submit_here, s);
    wait_held();
    chill_request *r = make(1);
    r->run_here = 1;
    ck_assert_int_eq(chill_submit(s, r), CHILL_SUBMIT_OK);
    ck_assert_int_eq(reqs[1].answered, 0);
    gate(0);
    pthread_join(first, NULL);
    wait_done(2);
    ck_assert(!pthread_equal(the_fake->last_thread, pthread_self()));
    ck_assert_int_eq(the_fake->launches[0], 2);
    ck_assert_int_eq(the_fake->max_active, 1);
    check_result(0);
    check_result(1);
    chill_scheduler_destroy(s);
}
END_TEST

/* No direct run when the request could wait for a batch (batching on with a
 * queue delay and another request on its way, as set up here) or when
 * devices.direct_max_mflop is 0. */
START_TEST(a_request_that_may_batch_or_is_over_the_limit_goes_to_the_worker) {
    for (int c = 0; c < 2; c++) {
        if (c == 1) {
            cfg.batching = 0;
            cfg.direct_max_mflop = 0;
        }
        n_done = 0;
        chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
        if (c == 0)
            chill_scheduler_announce(s);
        chill_request *r = make(0);
        r->run_here = 1;
        ck_assert_int_eq(chill_submit(s, r), CHILL_SUBMIT_OK);
        if (c == 0)
            chill_scheduler_withdraw(s);
        wait_done(1);
        ck_assert(!pthread_equal(the_fake->last_thread, pthread_self()));
        check_result(0);
        chill_scheduler_destroy(s);
    }
}
END_TEST

/* A request that may run on the submitting thread but is already past its
 * deadline (a timeout of a microsecond) is answered 504 exactly once, not
 * computed. */
START_TEST(a_direct_request_past_its_deadline_is_answered_once) {
    cfg.batching = 0;
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    chill_request *r = make(0);
    r->run_here = 1;
    r->deadline_ns = 1;
    ck_assert_int_eq(chill_submit(s, r), CHILL_SUBMIT_OK);
    ck_assert_int_eq(chill_scheduler_drain(s, 5), 0);
    ck_assert_int_eq(reqs[0].answered, 1);
    ck_assert_int_eq(reqs[0].r.http_status, 504);
    ck_assert_msg(isnan(reqs[0].out[0]), "a timed-out request is not computed");
    ck_assert_int_eq(the_fake->launches[0], 0);
    chill_scheduler_destroy(s);
}
END_TEST

static double queue_wait_s(int i) {
    return (double)(reqs[i].r.t_start_ns - reqs[i].r.t_arrive_ns) * 1e-9;
}

/* With batching on and a 10 s queue delay, a request with nothing on its way
 * and nothing else in flight waits for no company: one whose transport
 * allows it runs on the submitting thread before chill_submit() returns,
 * one that does not starts on the worker at once (not 10 s later). */
START_TEST(a_lone_request_does_not_wait_for_company) {
    cfg.max_queue_delay_us = 10 * 1000000;
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    submit_runs_here(s, 0);
    ck_assert_int_eq(chill_submit(s, make(1)), CHILL_SUBMIT_OK);
    wait_done(2);
    ck_assert_msg(queue_wait_s(1) < 5, "a lone request waited %.1f s for company", queue_wait_s(1));
    check_result(0);
    check_result(1);
    chill_scheduler_destroy(s);
}
END_TEST

/* A request on its way (announced) is waited for: the one queued before it
 * is not started, and once it is submitted both go out as one launch. */
START_TEST(a_batch_waits_for_a_request_on_its_way) {
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    chill_scheduler_announce(s);
    chill_request *a = make(0);
    a->run_here = 1;
    ck_assert_int_eq(chill_submit(s, a), CHILL_SUBMIT_OK);
    pause_ms(50);
    ck_assert_int_eq(n_done, 0);
    ck_assert_int_eq(the_fake->launches[0], 0);
    chill_request *b = make(1);
    b->announced = 1;
    ck_assert_int_eq(chill_submit(s, b), CHILL_SUBMIT_OK);
    wait_done(2);
    ck_assert_int_eq(the_fake->launches[0], 1);
    for (int i = 0; i < 2; i++) {
        check_result(i);
        ck_assert_int_eq(reqs[i].r.batch_size, 2);
    }
    chill_scheduler_destroy(s);
}
END_TEST

/* A request in flight counts as company to come (its client may send the
 * next one when answered): with two launch slots and A's launch running, B
 * is not started beside it before the queue delay. */
START_TEST(a_batch_waits_while_another_request_is_in_flight) {
    chill_backend *b = fake_create(1);
    b->slots = 2;
    chill_scheduler *s = chill_scheduler_create(&cfg, b);
    hold_finishes(1);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    wait_started_and_holding(1);
    ck_assert_int_eq(chill_submit(s, make(1)), CHILL_SUBMIT_OK);
    pause_ms(50);
    ck_assert_int_eq(the_fake->launches[0], 1);
    hold_finishes(0);
    wait_done(2);
    for (int i = 0; i < 2; i++)
        check_result(i);
    chill_scheduler_destroy(s);
}
END_TEST

/* When the last request on its way is withdrawn (its transport will never
 * submit it), the batch waiting for it starts at once, not at the end of
 * its 10 s queue delay. */
START_TEST(withdrawing_the_last_request_on_its_way_starts_the_batch) {
    cfg.max_queue_delay_us = 10 * 1000000;
    chill_scheduler *s = chill_scheduler_create(&cfg, fake_create(1));
    chill_scheduler_announce(s);
    ck_assert_int_eq(chill_submit(s, make(0)), CHILL_SUBMIT_OK);
    pause_ms(20);
    ck_assert_int_eq(n_done, 0);
    chill_scheduler_withdraw(s);
    wait_done(1);
    ck_assert_msg(queue_wait_s(0) < 5, "waited %.1f s after the withdrawal", queue_wait_s(0));
    check_result(0);
    ck_assert_int_eq(reqs[0].r.batch_size, 1);
    chill_scheduler_destroy(s);
}
END_TEST

/* Whether this process has a thread named name. */
static int has_thread(const char *name) {
    DIR *dir = opendir("/proc/self/task");
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(dir)) != NULL) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            found = strcmp(comm, name) == 0;
        }
        fclose(f);
    }
    closedir(dir);
    return found;
}

/* With devices.gpu_slots launches in flight at once: while the first
 * launch's finish is held (in the completer, or with one slot in the worker
 * itself, which then has no completer), the worker starts the next ones
 * until every slot is taken, and no more; nothing is answered before its
 * launch finishes, and each request is answered once with its own result. */
START_TEST(the_worker_keeps_up_to_slots_launches_in_flight) {
    cfg.batching = 0;
    for (int slots = 1; slots <= 2; slots++) {
        n_done = 0;
        chill_backend *b = fake_create(1);
        b->slots = slots;
        chill_scheduler *s = chill_scheduler_create(&cfg, b);
        hold_finishes(1);
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(chill_submit(s, make(i)), CHILL_SUBMIT_OK);
        wait_started_and_holding(slots);
        ck_assert_int_eq(has_thread("chill-done0"), slots > 1);
        pause_ms(20); /* room for a launch too many */
        ck_assert_int_eq(the_fake->launches[0], slots);
        ck_assert_int_eq(the_fake->active, slots);
        ck_assert_int_eq(n_done, 0);
        hold_finishes(0);
        wait_done(3);
        ck_assert_int_eq(the_fake->max_active, slots);
        for (int i = 0; i < 3; i++)
            check_result(i);
        chill_scheduler_destroy(s);
    }
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_scheduler");
    TCase *tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, queued_requests_go_out_as_one_batch);
    tcase_add_test(tc, different_keys_do_not_share_a_launch);
    tcase_add_test(tc, device_requests_batch_with_each_other_only);
    tcase_add_test(tc, queue_bound_refuses);
    tcase_add_test(tc, drain_refuses_new_and_finishes_accepted);
    tcase_add_test(tc, deadline_passed_is_504);
    tcase_add_test(tc, sticky_error_moves_work_to_the_healthy_device);
    tcase_add_test(tc, idle_worker_polls_then_sleeps);
    tcase_add_test(tc, idle_worker_does_not_poll_for_slow_clients);
    tcase_add_test(tc, an_idle_device_runs_the_request_on_the_submitting_thread);
    tcase_add_test(tc, a_request_arriving_during_a_direct_run_waits_for_it);
    tcase_add_test(tc, a_request_that_may_batch_or_is_over_the_limit_goes_to_the_worker);
    tcase_add_test(tc, a_direct_request_past_its_deadline_is_answered_once);
    tcase_add_test(tc, the_worker_keeps_up_to_slots_launches_in_flight);
    tcase_add_test(tc, a_lone_request_does_not_wait_for_company);
    tcase_add_test(tc, a_batch_waits_for_a_request_on_its_way);
    tcase_add_test(tc, a_batch_waits_while_another_request_is_in_flight);
    tcase_add_test(tc, withdrawing_the_last_request_on_its_way_starts_the_batch);
    suite_add_tcase(s, tc);
    return s;
}
