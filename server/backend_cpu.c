/* The CPU backend: one device, the libchill CPU kernel on its own thread
 * pool. Every request runs in place on its own tensors, a batch's requests
 * one after another: the kernel already uses every core for one request, and
 * packing them would only add copies. The CPU never leaves service. */
#include <stdio.h>
#include <stdlib.h>

#include "device.h"
#include "log.h"

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

static int cpu_in_place(chill_backend *b, const chill_params *p) {
    (void)b;
    (void)p;
    return 1;
}

static chill_status cpu_forward(chill_backend *b, int dev, chill_params *p, chill_error *err) {
    (void)b;
    (void)dev;
    return chill_forward(p, err);
}

static int cpu_healthy(chill_backend *b, int dev) {
    (void)b;
    (void)dev;
    return 1;
}

static uint64_t cpu_memory_used(chill_backend *b, int dev) {
    (void)b;
    (void)dev;
    return 0;
}

static void cpu_destroy(chill_backend *b) { free(b); }

chill_backend *chill_backend_cpu_create(const chill_config *c) {
    chill_backend *b = calloc(1, sizeof *b);
    b->kind = "cpu";
    b->n_devices = 1;
    b->max_launch_bytes = SIZE_MAX;
    b->device_name = cpu_device_name;
    b->device_ordinal = cpu_device_ordinal;
    b->in_place = cpu_in_place;
    b->forward = cpu_forward;
    b->slots = 1;
    b->healthy = cpu_healthy;
    b->memory_used = cpu_memory_used;
    b->destroy = cpu_destroy;
    int threads = chill_set_num_threads(c->cpu_threads);
    chill_log(CHILL_LOG_INFO, "backend", "kind=cpu threads=%d", threads);
    return b;
}
