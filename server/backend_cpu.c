/* The CPU backend: one device, the libchill CPU kernel on its own thread
 * pool. A lone request runs in place on its own tensors. A batch is packed
 * into one varlen launch in a host buffer, as on a GPU: a request too small
 * to keep every core busy (a few heads of a short sequence) leaves the other
 * cores idle when run alone, and one launch hands the whole batch's tiles to
 * the pool at once, with one wake-up of its threads instead of one per
 * request. The copies are memcpy, run with the kernel in start(); finish()
 * has nothing left to wait for. The buffer grows to the largest launch so
 * far, up to CPU_LAUNCH_BYTES; a batch that would need more is cut there by
 * the scheduler. The CPU never leaves service. */
#include <stdio.h>
#include <stdlib.h>

#include "device.h"
#include "log.h"
#include "pack.h"

/* The largest packed launch: 256 MiB of q, k, v, out and lse. A request
 * that large already keeps every core busy on its own. */
#define CPU_LAUNCH_BYTES ((size_t)256 << 20)

typedef struct cpu_backend {
    chill_backend base;
    void *buffer; /* the packed launch's host buffer */
    size_t bytes;
} cpu_backend;

static const char *cpu_device_name(chill_backend *b, int dev) {
    (void)b;
    (void)dev;
    return "cpu";
}

static int cpu_device_ordinal(chill_backend *b, int dev) {
    (void)b;
    (void)dev;
    return -1;
}

static int cpu_in_place(chill_backend *b, const chill_params *p, int n) {
    (void)b;
    (void)p;
    return n == 1;
}

static chill_status cpu_forward(chill_backend *b, int dev, chill_params *p, chill_error *err) {
    (void)b;
    (void)dev;
    return chill_forward(p, err);
}

static void *cpu_buffer(chill_backend *b, int dev, int slot, size_t bytes, char *err, size_t errlen) {
    cpu_backend *cb = (cpu_backend *)b;
    (void)dev;
    (void)slot;
    if (bytes <= cb->bytes)
        return cb->buffer;
    void *grown = realloc(cb->buffer, bytes);
    if (grown == NULL) {
        snprintf(err, errlen, "out of host memory for a packed launch of %zu bytes", bytes);
        return NULL;
    }
    cb->buffer = grown;
    cb->bytes = bytes;
    return grown;
}

static chill_status cpu_start(chill_backend *b, int dev, int slot, chill_params *p, const chill_transfer *t,
                              chill_error *err) {
    (void)b;
    (void)dev;
    (void)slot;
    chill_copies_run_host(t->in, t->n_in, 1);
    chill_status st = chill_forward(p, err);
    if (st == CHILL_OK)
        chill_copies_run_host(t->out, t->n_out, 0);
    return st;
}

static chill_status cpu_finish(chill_backend *b, int dev, int slot, chill_error *err) {
    (void)b;
    (void)dev;
    (void)slot;
    (void)err;
    return CHILL_OK;
}

static int cpu_healthy(chill_backend *b, int dev) {
    (void)b;
    (void)dev;
    return 1;
}

static uint64_t cpu_memory_used(chill_backend *b, int dev) {
    (void)dev;
    return ((cpu_backend *)b)->bytes;
}

static void cpu_destroy(chill_backend *b) {
    free(((cpu_backend *)b)->buffer);
    free(b);
}

chill_backend *chill_backend_cpu_create(const chill_config *c) {
    cpu_backend *cb = calloc(1, sizeof *cb);
    chill_backend *b = &cb->base;
    b->kind = "cpu";
    b->n_devices = 1;
    b->max_launch_bytes = CPU_LAUNCH_BYTES;
    b->device_name = cpu_device_name;
    b->device_ordinal = cpu_device_ordinal;
    b->in_place = cpu_in_place;
    b->forward = cpu_forward;
    b->slots = 1;
    b->buffer = cpu_buffer;
    b->start = cpu_start;
    b->finish = cpu_finish;
    b->healthy = cpu_healthy;
    b->memory_used = cpu_memory_used;
    b->destroy = cpu_destroy;
    int threads = chill_set_num_threads(c->cpu_threads);
    chill_log(CHILL_LOG_INFO, "backend", "kind=cpu threads=%d", threads);
    return b;
}
