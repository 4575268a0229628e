/* The scheduler: a bounded queue per device, one worker thread per device,
 * and dynamic batching. A worker takes the oldest request of its queue and
 * waits up to max_queue_delay_us from that request's arrival for others of
 * the same key (pack.h) until max_batch_tokens or max_batch_requests; with a
 * delay of 0 it takes only what queued while the device was busy. It stops
 * waiting once no other request could come: none is on its way
 * (chill_scheduler_announce) and every request in flight is in the batch,
 * as it finds at each submission and when the last one on its way settles.
 * It packs them into one varlen launch, runs it on its backend device and
 * splits the results back. On a backend with two or more launch slots
 * (CUDA, devices.gpu_slots) the worker only queues a packed launch and goes
 * on to the next batch; the device's completer thread waits for the launches
 * in order and answers them, so up to that many are in flight per device.
 * With one slot the worker waits for each launch itself. A request that
 * would not wait for a batch and finds its device idle runs at once on the
 * thread that submits it, when its transport allows that
 * (devices.direct_max_mflop). Every accepted request is answered exactly once
 * through its done().
 * A device whose backend reports a sticky error leaves service; its queue
 * moves to the devices still healthy (or is answered 503 when none is). */
#ifndef CHILL_SERVER_SCHEDULER_H
#define CHILL_SERVER_SCHEDULER_H

#include <stddef.h>

#include "config.h"
#include "device.h"
#include "request.h"

typedef struct chill_scheduler chill_scheduler;

/* Starts one worker per device of b (which the scheduler then owns). */
chill_scheduler *chill_scheduler_create(const chill_config *c, chill_backend *b);

/* A transport has begun to receive a request (an HTTP body is arriving):
 * while it is on its way, batches wait for it (up to max_queue_delay_us).
 * It settles when the request is submitted with req->announced set, or
 * with chill_scheduler_withdraw() when it never will be. */
void chill_scheduler_announce(chill_scheduler *s);
void chill_scheduler_withdraw(chill_scheduler *s);

/* From now on no batch waits for company: what is queued runs at once
 * (the start of a drain; submissions are still accepted). */
void chill_scheduler_flush(chill_scheduler *s);

/* Flushes, stops accepting (submit answers CHILL_SUBMIT_DRAINING) and waits until
 * every accepted request has been answered or timeout_s passed. Returns the
 * number still unanswered. */
int chill_scheduler_drain(chill_scheduler *s, int timeout_s);

/* Joins the workers (after they answered everything queued) and frees s. */
void chill_scheduler_destroy(chill_scheduler *s);

/* The backend's kind: "cpu" or "cuda". */
const char *chill_scheduler_backend(chill_scheduler *s);

/* Devices still in service; 0 also while draining. */
int chill_scheduler_ready(chill_scheduler *s);

/* {"devices":[{"name":"cuda:0","healthy":true,"queued":0},...]}, malloc'd. */
char *chill_scheduler_status_json(chill_scheduler *s);

#endif
