/* The HTTP transport: a libmicrohttpd daemon (a thread pool) serving
 * the Open Inference Protocol. Bodies are accumulated up to
 * limits.max_body_bytes (larger is 413) and laid out so that binary tensors
 * start aligned; an infer request is decoded, submitted to the scheduler and
 * its connection suspended until done() resumes it, so no HTTP thread waits
 * for a kernel. Routing of every path is in endpoints.c. */
#ifndef CHILL_SERVER_HTTP_H
#define CHILL_SERVER_HTTP_H

#include <stddef.h>

#include "config.h"
#include "models.h"
#include "scheduler.h"

typedef struct chill_http chill_http;

chill_http *chill_http_start(const chill_config *c, chill_scheduler *s, char *err, size_t errlen);
/* Stops accepting connections; requests already begun go on. */
void chill_http_quiesce(chill_http *h);
/* Waits until no request is in progress or timeout_s passed; returns how many are left. */
int chill_http_wait_idle(chill_http *h, int timeout_s);
void chill_http_stop(chill_http *h);

/* What a route answers (endpoints.c). */
typedef struct chill_reply {
    int status;
    char *body;               /* malloc'd */
    size_t len;
    const char *content_type;
    int retry_after;          /* seconds, with 503; -1: no header */
} chill_reply;

typedef struct chill_route_ctx {
    const chill_config *c;
    chill_scheduler *s;
} chill_route_ctx;

/* Answers method and url (body for POSTs) in r. For an infer request it
 * answers nothing and returns the model to infer with (r->status 0). */
chill_model *chill_route(const chill_route_ctx *ctx, const char *method, const char *url, const char *body,
                         size_t len, chill_reply *r);

/* r as {"error": msg} with status. */
void chill_reply_error(chill_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
