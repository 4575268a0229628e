/* Prometheus metrics: counters, gauges and histograms with labels, and their
 * text exposition (format 0.0.4) for /metrics.
 *
 * A family is declared once with its label names ("model,mask"); a series is
 * found or created by its label values on each update, so callers pass values
 * in the declared order. chill_metrics_init() declares chilld's own families
 * (chill_m below); every name follows Prometheus conventions: base units
 * (seconds, bytes), counters ending in _total. */
#ifndef CHILL_SERVER_METRICS_H
#define CHILL_SERVER_METRICS_H

#include <stddef.h>

#define CHILL_METRIC_MAX_LABELS 4

typedef struct chill_metric chill_metric;

chill_metric *chill_metric_counter(const char *name, const char *help, const char *labels);
chill_metric *chill_metric_gauge(const char *name, const char *help, const char *labels);
/* buckets: upper bounds, ascending; +Inf is added. */
chill_metric *chill_metric_histogram(const char *name, const char *help, const char *labels,
                                     const double *buckets, int n_buckets);

/* The label values follow v, as many as the family has labels. */
void chill_metric_add(chill_metric *m, double v, ...);     /* counter or gauge */
void chill_metric_set(chill_metric *m, double v, ...);     /* gauge, or a counter kept elsewhere */
void chill_metric_observe(chill_metric *m, double v, ...); /* histogram */

/* The exposition text of every family; malloc'd, NUL-terminated. */
char *chill_metrics_render(size_t *len);

/* Removes every family (tests, shutdown). */
void chill_metrics_free(void);

/* chilld's families. */
struct chill_server_metrics {
    chill_metric *requests;          /* chill_requests_total{model,mask,code} */
    chill_metric *request_seconds;   /* chill_request_duration_seconds{model,mask} */
    chill_metric *queue_seconds;     /* chill_queue_duration_seconds{model,mask} */
    chill_metric *compute_seconds;   /* chill_compute_duration_seconds{model,mask,dtype,device} */
    chill_metric *batch_requests;    /* chill_batch_requests{mask,device} */
    chill_metric *tokens;            /* chill_tokens_total{model,mask,dtype,kind} */
    chill_metric *flops;             /* chill_attention_flops_total{model,mask,dtype} */
    chill_metric *bytes_in;          /* chill_received_bytes_total{model} */
    chill_metric *bytes_out;         /* chill_sent_bytes_total{model} */
    chill_metric *in_flight;         /* chill_requests_in_flight{model} */
    chill_metric *queued;            /* chill_requests_queued{device} */
    chill_metric *receiving;         /* chill_requests_receiving */
    chill_metric *device_memory;     /* chill_device_memory_used_bytes{device} */
    chill_metric *device_healthy;    /* chill_device_healthy{device} */
    /* the process families of every Prometheus client (server/process.h) */
    chill_metric *process_cpu_seconds;    /* process_cpu_seconds_total */
    chill_metric *process_open_fds;       /* process_open_fds */
    chill_metric *process_max_fds;        /* process_max_fds */
    chill_metric *process_virtual_bytes;  /* process_virtual_memory_bytes */
    chill_metric *process_resident_bytes; /* process_resident_memory_bytes */
    chill_metric *process_start_time;     /* process_start_time_seconds */
    chill_metric *heap_used_bytes;        /* chill_heap_used_bytes */
};

extern struct chill_server_metrics chill_m;

void chill_metrics_init(void);

#endif
