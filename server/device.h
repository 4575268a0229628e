/* The backend interface: what the scheduler calls to run a launch, one small
 * struct of function pointers (as in ggml), so the scheduler never knows
 * whether it talks to the CPU or to CUDA. A backend has one or more devices;
 * the scheduler runs one worker thread per device and never runs two
 * launches on a device at once (a launch runs on the device's worker, or on
 * the thread that submitted the request when the device was idle: see
 * runs_direct in scheduler.c).
 *
 * A request runs either in place, on the tensors where they lie (a lone
 * request on the CPU; a lone request whose tensors are in CUDA shared memory,
 * on their GPU; shapes the GPU kernels do not take, on the CUDA backend's CPU
 * fallback), or in a packed launch: the scheduler lays the launch out in a
 * device buffer (host memory on the CPU) and lists the rectangular copies
 * that bring each request's inputs there and its outputs back
 * (server/pack.h); start() queues the copies in, the kernel and the copies
 * out, and finish() waits for them. A device has `slots` buffers (each with
 * its own stream on CUDA), so up to that many packed launches are in flight
 * at once and one's copies overlap another's kernel. The copies go straight
 * between the request's own memory (pinned host memory, server/hostmem.h, or
 * a CUDA shared-memory region on the same GPU) and the device buffer, with no
 * staging copy. */
#ifndef CHILL_SERVER_DEVICE_H
#define CHILL_SERVER_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "chill.h"
#include "config.h"

/* height rows of width bytes, req_pitch apart in the request's own memory
 * (host memory, or device memory for CUDA shared memory) and dev_pitch apart
 * in the device buffer (the shape of cudaMemcpy2D). */
typedef struct chill_copy {
    void *req, *dev;
    size_t req_pitch, dev_pitch, width, height;
} chill_copy;

/* The copies of a packed launch: in[] before the kernel, out[] after it. */
typedef struct chill_transfer {
    const chill_copy *in, *out;
    int n_in, n_out;
} chill_transfer;

typedef struct chill_backend chill_backend;

struct chill_backend {
    const char *kind;     /* "cpu" or "cuda" */
    int n_devices;
    size_t max_launch_bytes; /* the largest packed launch a device takes */
    /* "cpu", "cuda:0", ... for logs and metric labels */
    const char *(*device_name)(chill_backend *b, int dev);
    /* The CUDA device ordinal of dev (-1 on the CPU). */
    int (*device_ordinal)(chill_backend *b, int dev);
    /* Whether a batch of n requests led by p runs in place, each request on
     * its own tensors one after another, instead of as one packed launch
     * (p's tensors in host memory; the scheduler itself runs a lone CUDA
     * shared-memory request in place). */
    int (*in_place)(chill_backend *b, const chill_params *p, int n);
    /* Runs p in place on dev and waits for it. */
    chill_status (*forward)(chill_backend *b, int dev, chill_params *p, chill_error *err);
    /* Packed launches a device has in flight at most, slots 0..slots-1. */
    int slots;
    /* The buffer of dev's slot for a packed launch of bytes, or NULL with a
     * message when no launch that large fits. */
    void *(*buffer)(chill_backend *b, int dev, int slot, size_t bytes, char *err, size_t errlen);
    /* Queues a packed launch on dev's slot: the copies t->in, the kernel p
     * on the slot's buffer, the copies t->out; returns without waiting. */
    chill_status (*start)(chill_backend *b, int dev, int slot, chill_params *p, const chill_transfer *t,
                          chill_error *err);
    /* Waits until the launch in dev's slot is done (called once after each
     * start(), also a failed one). */
    chill_status (*finish)(chill_backend *b, int dev, int slot, chill_error *err);
    /* 0 once a sticky error took dev out of service. */
    int (*healthy)(chill_backend *b, int dev);
    uint64_t (*memory_used)(chill_backend *b, int dev);
    void (*destroy)(chill_backend *b);
};

/* The CPU: one device, libchill's thread pool. */
chill_backend *chill_backend_cpu_create(const chill_config *c);
/* Every configured visible GPU, or NULL when there is none (or this build has
 * no CUDA); err says why. */
chill_backend *chill_backend_cuda_create(const chill_config *c, char *err, size_t errlen);

#endif
