/* The backend interface: what the scheduler calls to run a launch, one small
 * struct of function pointers (as in ggml), so the scheduler never knows
 * whether it talks to the CPU or to CUDA. A backend has one or more devices;
 * the scheduler runs one worker thread per device and never calls a device
 * from two threads at once.
 *
 * A launch is staged: the scheduler packs the inputs of its requests into
 * the device's host staging buffer (pinned memory on CUDA), points the params
 * into it, and calls forward(); inputs are the bytes [0, in_bytes) of the
 * buffer and outputs are [out_offset, out_offset + out_bytes). On return the
 * outputs are in the staging buffer. A request whose tensors already live in
 * device memory (CUDA shared memory), and every request on a device that
 * computes on host memory (the CPU), runs in place, with staged NULL. */
#ifndef CHILL_SERVER_DEVICE_H
#define CHILL_SERVER_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "chill.h"
#include "config.h"

typedef struct chill_staged {
    void *host;
    size_t in_bytes, out_offset, out_bytes;
} chill_staged;

typedef struct chill_backend chill_backend;

struct chill_backend {
    const char *kind;     /* "cpu" or "cuda" */
    int n_devices;
    size_t max_launch_bytes; /* the largest staged launch a device takes */
    int computes_on_host;    /* 1: the device reads host memory, so requests run in place, unstaged */
    /* "cpu", "cuda:0", ... for logs and metric labels */
    const char *(*device_name)(chill_backend *b, int dev);
    /* The CUDA device ordinal of dev (-1 on the CPU). */
    int (*device_ordinal)(chill_backend *b, int dev);
    /* The staging buffer of dev, at least bytes long, or NULL with a message
     * when no launch that large fits (the device pool is smaller). */
    void *(*staging)(chill_backend *b, int dev, size_t bytes, char *err, size_t errlen);
    /* Runs p on dev and waits for it. */
    chill_status (*forward)(chill_backend *b, int dev, chill_params *p, const chill_staged *staged,
                            chill_error *err);
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
