/* chilld's configuration: config/chilld.json, then command-line flags on top.
 *
 * Each top-level section of the file is parsed by one small function in
 * config.c (listed in its section table); a section or key that is not known
 * is an error that names it and lists the accepted ones. chill_config_explain
 * prints every field with its value and meaning, for `chilld --check-config`. */
#ifndef CHILL_SERVER_CONFIG_H
#define CHILL_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "uds.h"

#define CHILL_CONFIG_MAX_PRESETS 64
#define CHILL_CONFIG_MAX_GPUS 16
#define CHILL_CONFIG_MAX_GPU_SLOTS 4

typedef enum chill_backend_kind {
    CHILL_BACKEND_AUTO = 0, /* CUDA when a GPU is visible, else CPU */
    CHILL_BACKEND_CPU,
    CHILL_BACKEND_CUDA,
} chill_backend_kind;

typedef struct chill_preset {
    char name[64];
    char spec[128];   /* a mask spec, e.g. "sliding_window(4096,0)" */
} chill_preset;

typedef struct chill_config {
    /* listen */
    char address[64];
    int port;
    int http_threads;
    uint64_t connection_memory_bytes; /* libmicrohttpd's pool per connection; half is the read buffer */
    /* devices */
    chill_backend_kind backend;
    int gpus[CHILL_CONFIG_MAX_GPUS];
    int n_gpus;                    /* 0: every visible GPU */
    int cpu_threads;               /* 0: one per core */
    uint64_t gpu_pool_bytes;       /* device buffer per launch slot: the largest launch */
    int gpu_slots;                 /* packed launches in flight per GPU, each with its buffer and stream */
    uint64_t pinned_host_bytes;    /* pinned memory for request tensors (server/hostmem.h) */
    int64_t idle_spin_us;          /* how long a device worker polls its queue before it sleeps, after a short gap */
    int64_t direct_max_mflop;      /* largest request run on its receiving thread when its device is idle; 0: never */
    /* batching */
    int batching;                  /* 0: every request is its own launch */
    int64_t max_queue_delay_us;
    int64_t max_batch_tokens;
    int max_batch_requests;
    int max_queue_requests;        /* per device; past it a request gets 503 */
    /* limits */
    uint64_t max_body_bytes;
    int64_t max_tokens;            /* B * (Tq + Tk) of one request */
    int64_t max_elements;          /* B * H * T * D of any one tensor */
    int64_t default_timeout_us;    /* 0: none */
    /* presets */
    chill_preset presets[CHILL_CONFIG_MAX_PRESETS];
    int n_presets;
    /* log */
    chill_log_level log_level;
    /* shutdown */
    int drain_timeout_s;
    /* shared memory (server/shm.c); -1: on only when listening on loopback or a unix socket */
    int shm_system, shm_cuda;
    /* the native unix socket (server/uds.c) */
    chill_uds_config uds;
} chill_config;

void chill_config_defaults(chill_config *c);

/* Reads and validates path over c (which holds defaults). 0 on success; -1
 * with what was wrong, where, and what is accepted in err. */
int chill_config_load(chill_config *c, const char *path, char *err, size_t errlen);
/* The same over a JSON text (for tests). */
int chill_config_parse(chill_config *c, const char *json, char *err, size_t errlen);

/* Applies argv's flags over c. Returns the index of the first argument not
 * consumed, or -1 with err filled. config_path receives --config's value. */
int chill_config_flags(chill_config *c, int argc, char **argv, const char **config_path,
                       const char **check_path, char *err, size_t errlen);

/* Prints every field, its value and what it means. */
void chill_config_explain(const chill_config *c, FILE *out);

const char *chill_config_usage(void);

/* The HTTP thread pool's size on a host of this many online cores:
 * listen.threads, or for 0 one thread per two cores, 4 to 16. */
int chill_config_http_threads(const chill_config *c, long cores);

#endif
