/* chilld's native Unix-socket transport (server/uds.c): a low-latency path
 * for co-located processes. The frame format is client/lib/chillwire.h,
 * described for other languages in client/PROTOCOL.md. */
#ifndef CHILL_SERVER_UDS_H
#define CHILL_SERVER_UDS_H

#include <stddef.h>
#include <stdint.h>

#define CHILL_UDS_MAX_ALLOW 32

/* The config section "unix_socket". */
typedef struct chill_uds_config {
    char path[108];                          /* empty: no socket */
    char mode[8];                            /* octal file mode of the socket, "0660" */
    int64_t allow_uid[CHILL_UDS_MAX_ALLOW];  /* peers allowed by user id ... */
    int n_allow_uid;
    int64_t allow_gid[CHILL_UDS_MAX_ALLOW];  /* ... or by group id; both empty: chilld's own user only */
    int n_allow_gid;
    uint64_t max_arena_bytes;                /* largest arena a client may hand over */
} chill_uds_config;

struct chill_scheduler;
struct chill_config;

/* Listens on u->path (when set) and serves it from a thread of its own,
 * submitting to s with c's request limits. 0 on success (or when no path is
 * set); -1 with err. */
int chill_uds_start(const chill_uds_config *u, const struct chill_config *c, struct chill_scheduler *s, char *err,
                    size_t errlen);

/* Stops listening, closes every connection once its requests are answered
 * (call it after the scheduler drained), removes the socket file. */
void chill_uds_stop(void);

#endif
