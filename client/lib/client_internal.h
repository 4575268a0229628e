/* Inside libchillclient: the client struct and what the transports share.
 * client.c validates requests and dispatches; http.c speaks HTTP (and the
 * binary tensor extension); shm.c sets up a registered POSIX shared-memory
 * arena and sends region references over HTTP; uds.c speaks the native
 * socket frames (chillwire.h). */
#ifndef CHILL_CLIENT_INTERNAL_H
#define CHILL_CLIENT_INTERNAL_H

#include <curl/curl.h>

#include "chillclient.h"

struct chill_client {
    chill_client_transport transport;
    char url[512];
    long timeout_ms;
    CURL *curl;                  /* HTTP, SHM */
    char *arena;                 /* SHM, UDS */
    size_t arena_bytes;
    char region[64];             /* SHM: the registered region's name (also the shm key, with a '/') */
    int fd;                      /* UDS: the socket */
    uint64_t next_id;
};

/* Byte sizes of a request's tensors, computed once. */
typedef struct chill_client_sizes {
    size_t q, k, v, out, lse;    /* lse 0 when not wanted */
} chill_client_sizes;

/* Arena offsets of a request's tensors (SHM and UDS). */
typedef struct chill_client_layout {
    uint64_t q, k, v, out, lse;
} chill_client_layout;

chill_client_status chill_client_fail(chill_client_error *err, chill_client_status status, int http_status,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The model to call (written to model) and the parsed mask, when r names one. */
chill_client_status chill_client_request_model(const chill_client_request *r, char *model, size_t model_len,
                                               chill_mask *mask, int *has_mask, chill_client_error *err);

/* Places the request's tensors in the arena: where they lie, or staged from
 * offset 0 (copying the inputs in). */
chill_client_status chill_client_stage(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                       chill_client_layout *lay, int *staged, chill_client_error *err);
/* Copies out (and lse) from the arena back to the caller when staged. */
void chill_client_unstage(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                          const chill_client_layout *lay, int staged);

/* HTTP: the curl handle, a request, and an infer with binary tensors. */
chill_client_status chill_cli_http_open(chill_client *c, chill_client_error *err);
chill_client_status chill_cli_http_call(chill_client *c, const char *method, const char *path, const char *body,
                                    size_t body_len, char **response, size_t *response_len,
                                    chill_client_error *err);
chill_client_status chill_cli_http_infer(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                     chill_client_error *err);
/* The infer JSON header (inputs, outputs, parameters); shm is NULL for binary tensors. */
char *chill_cli_http_infer_header(const chill_client_request *r, const chill_client_sizes *sz,
                              const char *shm_region, const chill_client_layout *lay, char *model,
                              size_t model_len, chill_client_error *err);
/* The error of a non-2xx answer: {"error": "..."} or the raw body. */
chill_client_status chill_cli_http_error(long status, const char *body, size_t len, chill_client_error *err);

chill_client_status chill_cli_shm_open(chill_client *c, chill_client_error *err);
chill_client_status chill_cli_shm_infer(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                    chill_client_error *err);
void chill_cli_shm_close(chill_client *c);

chill_client_status chill_cli_uds_open(chill_client *c, const char *path, chill_client_error *err);
chill_client_status chill_cli_uds_infer(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                    chill_client_error *err);
void chill_cli_uds_close(chill_client *c);

#endif
