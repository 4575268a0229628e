/* The CPU backend: one device, the libchill CPU kernel on its own thread
 * pool. A lone request runs on its own tensors; a batch is staged in an
 * ordinary buffer that grows to the largest launch seen. The CPU never leaves
 * service. */
#include <stdio.h>
#include <stdlib.h>

#include "device.h"
#include "log.h"

typedef struct cpu_backend {
    chill_backend base;
    void *staging;
    size_t staging_bytes;
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

static void *cpu_staging(chill_backend *b, int dev, size_t bytes, char *err, size_t errlen) {
    cpu_backend *c = (cpu_backend *)b;
    (void)dev;
    if (bytes <= c->staging_bytes)
        return c->staging;
    void *p = realloc(c->staging, bytes);
    if (p == NULL) {
        snprintf(err, errlen, "out of host memory staging a launch of %zu bytes", bytes);
        return NULL;
    }
    c->staging = p;
    c->staging_bytes = bytes;
    return p;
}

static chill_status cpu_forward(chill_backend *b, int dev, chill_params *p, const chill_staged *staged,
                                chill_error *err) {
    (void)b;
    (void)dev;
    (void)staged;
    return chill_forward(p, err);
}

static int cpu_healthy(chill_backend *b, int dev) {
    (void)b;
    (void)dev;
    return 1;
}

static uint64_t cpu_memory_used(chill_backend *b, int dev) {
    (void)dev;
    return ((cpu_backend *)b)->staging_bytes;
}

static void cpu_destroy(chill_backend *b) {
    free(((cpu_backend *)b)->staging);
    free(b);
}

chill_backend *chill_backend_cpu_create(const chill_config *c) {
    cpu_backend *cb = calloc(1, sizeof *cb);
    chill_backend *b = &cb->base;
    b->kind = "cpu";
    b->n_devices = 1;
    b->max_launch_bytes = SIZE_MAX;
    b->computes_on_host = 1;
    b->device_name = cpu_device_name;
    b->device_ordinal = cpu_device_ordinal;
    b->staging = cpu_staging;
    b->forward = cpu_forward;
    b->healthy = cpu_healthy;
    b->memory_used = cpu_memory_used;
    b->destroy = cpu_destroy;
    int threads = chill_set_num_threads(c->cpu_threads);
    chill_log(CHILL_LOG_INFO, "backend", "kind=cpu threads=%d", threads);
    return b;
}
