/* libchillclient: one C API to a chilld over any of its three transports.
 *
 *   CHILL_CLIENT_HTTP  the Open Inference Protocol over HTTP (libcurl), tensors
 *                      sent and received with the binary tensor extension;
 *   CHILL_CLIENT_SHM   the same HTTP requests, but the tensors lie in a POSIX
 *                      shared-memory object the client registers with Triton's
 *                      system shared-memory extension: only JSON crosses HTTP;
 *   CHILL_CLIENT_UDS   chilld's native Unix socket: a memfd arena handed over
 *                      once, then small binary frames (client/PROTOCOL.md).
 *
 * A client is one connection and is used by one thread at a time; make one
 * per thread for concurrency. chill_client_infer() takes contiguous [B,H,T,D]
 * tensors anywhere in memory; with SHM and UDS it copies them into the shared
 * arena and the results back out, unless they already lie in the arena
 * (chill_client_arena()): then nothing is copied. Put all of a request's
 * tensors in the arena or none of them.
 *
 * Every call that can fail returns a chill_client_status and, when err is not
 * NULL, fills err with the status, the HTTP status where there was one, and a
 * message that says what was wrong. The example in README.md (section
 * "clients") is a complete program. */
#ifndef CHILL_CLIENT_H
#define CHILL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "chill.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum chill_client_transport {
    CHILL_CLIENT_HTTP = 0,
    CHILL_CLIENT_SHM,
    CHILL_CLIENT_UDS,
} chill_client_transport;

typedef enum chill_client_status {
    CHILL_CLIENT_OK = 0,
    CHILL_CLIENT_ERR_INVALID,    /* a bad argument in the call; nothing was sent */
    CHILL_CLIENT_ERR_CONNECT,    /* the server could not be reached, or the connection dropped */
    CHILL_CLIENT_ERR_TIMEOUT,    /* no answer within timeout_ms, or the server's deadline passed (504) */
    CHILL_CLIENT_ERR_REJECTED,   /* the server answered with an error: http_status and message say why */
    CHILL_CLIENT_ERR_OVERLOADED, /* the server is at its queue bound or draining (503): retry later */
    CHILL_CLIENT_ERR_PROTOCOL,   /* the server's answer did not have the expected form */
    CHILL_CLIENT_ERR_SYSTEM,     /* a local system call failed (shm_open, mmap, memfd) */
} chill_client_status;

typedef struct chill_client_error {
    chill_client_status status;
    int http_status;             /* the server's status (HTTP, or its equivalent on the socket); 0: none */
    char message[512];
} chill_client_error;

typedef struct chill_client_options {
    chill_client_transport transport;
    const char *url;             /* HTTP, SHM: the server; NULL: http://127.0.0.1:8000 */
    const char *socket_path;     /* UDS: chilld's socket; NULL: /run/chilld/chilld.sock */
    size_t arena_bytes;          /* SHM, UDS: size of the shared arena; 0: 64 MiB */
    long timeout_ms;             /* per call; 0: no limit */
} chill_client_options;

typedef struct chill_client_request {
    const char *model;           /* a model (mask type or preset); NULL: the mask's type */
    const char *mask;            /* a mask spec, "sliding_window(64,0)"; NULL: the model's own */
    chill_dtype dtype;
    int64_t batch, heads_q, heads_kv, seq_q, seq_k, head_dim;
    const void *q, *k, *v;       /* contiguous [B,Hq,Tq,D], [B,Hkv,Tk,D], [B,Hkv,Tk,D] */
    void *out;                   /* receives [B,Hq,Tq,D] in dtype */
    float *lse;                  /* receives [B,Hq,Tq] float32; NULL: not wanted */
    float sm_scale;              /* 0: 1/sqrt(head_dim) */
    int64_t q_offset;            /* CHILL_Q_OFFSET_AUTO: Tk - Tq */
} chill_client_request;

void chill_client_options_init(chill_client_options *o);
void chill_client_request_init(chill_client_request *r);

typedef struct chill_client chill_client;

/* Connects (and, for SHM and UDS, sets up the arena). NULL on failure. */
chill_client *chill_client_create(const chill_client_options *o, chill_client_error *err);

/* One attention forward pass on the server; out (and lse) are written on success. */
chill_client_status chill_client_infer(chill_client *c, const chill_client_request *r, chill_client_error *err);

/* The shared arena (SHM, UDS) and its size; NULL for HTTP. Tensors placed in
 * it are used where they lie. */
void *chill_client_arena(chill_client *c, size_t *size);

/* GET (body NULL) or POST body to path on the server's HTTP side (HTTP and
 * SHM transports): *response receives the malloc'd body (free() it), and the
 * call fails with REJECTED unless the status is 2xx. */
chill_client_status chill_client_call(chill_client *c, const char *path, const char *body,
                                      char **response, chill_client_error *err);

/* CHILL_CLIENT_OK when the server is live and ready (UDS: when the socket answers). */
chill_client_status chill_client_health(chill_client *c, chill_client_error *err);

/* Unregisters the arena, closes the connection, frees c. NULL is fine. */
void chill_client_destroy(chill_client *c);

const char *chill_client_status_name(chill_client_status s);
int chill_client_transport_parse(const char *name, chill_client_transport *t); /* "http", "shm", "uds": 0 */

#ifdef __cplusplus
}
#endif

#endif
