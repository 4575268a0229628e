/* One attention request as every transport (HTTP, system and CUDA shared
 * memory, the native Unix socket) hands it to the scheduler, and the one
 * function that hands it over.
 *
 * A transport decodes and validates its input into a chill_request whose
 * params describe one libchill call (tensors in host memory, or in device
 * memory for CUDA shared-memory regions), then calls chill_submit(). The
 * scheduler may pack it with others of the same key into one varlen launch;
 * either way it calls req->done exactly once, with req->status and
 * req->error filled in: from a worker thread, or, when the transport allows
 * it (run_here) and the device is idle, from the submitting thread before
 * chill_submit() returns. Until then the transport keeps every buffer the
 * params point to alive and untouched. */
#ifndef CHILL_SERVER_REQUEST_H
#define CHILL_SERVER_REQUEST_H

#include <stdint.h>

#include "chill.h"

typedef struct chill_request chill_request;
typedef void (*chill_request_done_fn)(chill_request *req);

struct chill_request {
    chill_params params;     /* one libchill call; batch B of padded sequences */
    const char *model;       /* the model (mask type or preset) name, for metrics */
    int device;              /* -1: any device; else the device the tensors live on */
    uint64_t deadline_ns;    /* CLOCK_MONOTONIC; 0: none. Past it the request fails, 504 */
    int run_here;            /* the submitting thread may run it (an HTTP pool thread may; the socket's
                                one loop thread, which serves every connection, may not) */
    int announced;           /* chill_scheduler_announce() was called for it; submitting settles that */

    /* Filled in by the scheduler before done() is called. */
    chill_status status;
    int http_status;         /* 200, or the status that fits the failure (400, 503, 504, 500) */
    char error[512];
    uint64_t t_arrive_ns, t_start_ns, t_end_ns; /* queue wait = start-arrive, compute = end-start */
    int batch_size;          /* how many requests shared the launch */

    chill_request_done_fn done;
    void *user;              /* the transport's own state */
};

typedef enum chill_submit_result {
    CHILL_SUBMIT_OK = 0,     /* accepted: done() will be called exactly once */
    CHILL_SUBMIT_FULL,       /* queue at its bound: answer 503 with Retry-After; done() is not called */
    CHILL_SUBMIT_DRAINING,   /* shutting down: answer 503; done() is not called */
} chill_submit_result;

struct chill_scheduler;
chill_submit_result chill_submit(struct chill_scheduler *s, chill_request *req);

uint64_t chill_now_ns(void); /* CLOCK_MONOTONIC in nanoseconds */

#endif
