/* Labelled counters, gauges and histograms, and the Prometheus text format.
 * Each family keeps its series in a small array under its own mutex; series
 * are few (models x masks x dtypes x devices), so a linear lookup is enough. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } metric_type;

typedef struct series {
    char *values[CHILL_METRIC_MAX_LABELS];
    double value;                 /* counter, gauge */
    unsigned long long *counts;   /* histogram: per bucket (not cumulative), then +Inf */
    double sum;
    unsigned long long count;
} series;

struct chill_metric {
    char *name, *help;
    metric_type type;
    char *labels[CHILL_METRIC_MAX_LABELS];
    int n_labels;
    double *buckets;
    int n_buckets;
    pthread_mutex_t lock;
    series *series;
    int n_series, cap_series;
    chill_metric *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static chill_metric *families, **families_tail = &families;

struct chill_server_metrics chill_m;

static chill_metric *declare(const char *name, const char *help, const char *labels, metric_type t) {
    chill_metric *m = calloc(1, sizeof *m);
    m->name = strdup(name);
    m->help = strdup(help);
    m->type = t;
    pthread_mutex_init(&m->lock, NULL);
    char *copy = strdup(labels), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && m->n_labels < CHILL_METRIC_MAX_LABELS;
         tok = strtok_r(NULL, ",", &save))
        m->labels[m->n_labels++] = strdup(tok);
    free(copy);
    pthread_mutex_lock(&registry_lock);
    *families_tail = m;
    families_tail = &m->next;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

chill_metric *chill_metric_counter(const char *name, const char *help, const char *labels) {
    return declare(name, help, labels, M_COUNTER);
}

chill_metric *chill_metric_gauge(const char *name, const char *help, const char *labels) {
    return declare(name, help, labels, M_GAUGE);
}

chill_metric *chill_metric_histogram(const char *name, const char *help, const char *labels,
                                     const double *buckets, int n_buckets) {
    chill_metric *m = declare(name, help, labels, M_HISTOGRAM);
    m->buckets = malloc(sizeof(double) * (size_t)n_buckets);
    memcpy(m->buckets, buckets, sizeof(double) * (size_t)n_buckets);
    m->n_buckets = n_buckets;
    return m;
}

/* The series of these label values, created on first use. Caller holds m->lock. */
static series *find(chill_metric *m, va_list ap) {
    const char *v[CHILL_METRIC_MAX_LABELS];
    for (int i = 0; i < m->n_labels; i++) {
        v[i] = va_arg(ap, const char *);
        if (v[i] == NULL)
            v[i] = "";
    }
    for (int s = 0; s < m->n_series; s++) {
        int i = 0;
        while (i < m->n_labels && strcmp(m->series[s].values[i], v[i]) == 0)
            i++;
        if (i == m->n_labels)
            return &m->series[s];
    }
    if (m->n_series == m->cap_series) {
        m->cap_series = m->cap_series ? 2 * m->cap_series : 8;
        m->series = realloc(m->series, sizeof(series) * (size_t)m->cap_series);
    }
    series *s = &m->series[m->n_series++];
    memset(s, 0, sizeof *s);
    for (int i = 0; i < m->n_labels; i++)
        s->values[i] = strdup(v[i]);
    if (m->type == M_HISTOGRAM)
        s->counts = calloc((size_t)m->n_buckets + 1, sizeof *s->counts);
    return s;
}

void chill_metric_add(chill_metric *m, double v, ...) {
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&m->lock);
    find(m, ap)->value += v;
    pthread_mutex_unlock(&m->lock);
    va_end(ap);
}

void chill_metric_set(chill_metric *m, double v, ...) {
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&m->lock);
    find(m, ap)->value = v;
    pthread_mutex_unlock(&m->lock);
    va_end(ap);
}

void chill_metric_observe(chill_metric *m, double v, ...) {
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&m->lock);
    series *s = find(m, ap);
    int b = 0;
    while (b < m->n_buckets && v > m->buckets[b])
        b++;
    s->counts[b]++;
    s->sum += v;
    s->count++;
    pthread_mutex_unlock(&m->lock);
    va_end(ap);
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = 2 * b->cap + (size_t)n + 64;
        b->p = realloc(b->p, b->cap);
    }
}

/* A label value with \, " and newline escaped. */
static void put_escaped(buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put(b, "\\%c", *s);
        else if (*s == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *s);
    }
}

/* {a="x",b="y"} plus an optional extra label (le for buckets). */
static void put_labels(buf *b, const chill_metric *m, const series *s, const char *extra) {
    if (m->n_labels == 0 && extra == NULL)
        return;
    put(b, "{");
    for (int i = 0; i < m->n_labels; i++) {
        put(b, "%s%s=\"", i ? "," : "", m->labels[i]);
        put_escaped(b, s->values[i]);
        put(b, "\"");
    }
    if (extra != NULL)
        put(b, "%s%s", m->n_labels ? "," : "", extra);
    put(b, "}");
}

static void put_number(buf *b, double v) {
    if (isinf(v))
        put(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        put(b, "%.0f", v);
    else
        put(b, "%.17g", v);
}

static void render_family(buf *b, chill_metric *m) {
    static const char *types[] = {"counter", "gauge", "histogram"};
    put(b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n_series; i++) {
        series *s = &m->series[i];
        if (m->type != M_HISTOGRAM) {
            put(b, "%s", m->name);
            put_labels(b, m, s, NULL);
            put(b, " ");
            put_number(b, s->value);
            put(b, "\n");
            continue;
        }
        unsigned long long cum = 0;
        for (int k = 0; k <= m->n_buckets; k++) {
            char le[64];
            cum += s->counts[k];
            if (k < m->n_buckets)
                snprintf(le, sizeof le, "le=\"%.15g\"", m->buckets[k]);
            else
                snprintf(le, sizeof le, "le=\"+Inf\"");
            put(b, "%s_bucket", m->name);
            put_labels(b, m, s, le);
            put(b, " %llu\n", cum);
        }
        put(b, "%s_sum", m->name);
        put_labels(b, m, s, NULL);
        put(b, " ");
        put_number(b, s->sum);
        put(b, "\n%s_count", m->name);
        put_labels(b, m, s, NULL);
        put(b, " %llu\n", s->count);
    }
    pthread_mutex_unlock(&m->lock);
}

char *chill_metrics_render(size_t *len) {
    buf b = {malloc(4096), 0, 4096};
    b.p[0] = '\0';
    pthread_mutex_lock(&registry_lock);
    for (chill_metric *m = families; m != NULL; m = m->next)
        render_family(&b, m);
    pthread_mutex_unlock(&registry_lock);
    if (len != NULL)
        *len = b.len;
    return b.p;
}

void chill_metrics_free(void) {
    pthread_mutex_lock(&registry_lock);
    for (chill_metric *m = families, *next; m != NULL; m = next) {
        next = m->next;
        for (int i = 0; i < m->n_series; i++) {
            for (int k = 0; k < m->n_labels; k++)
                free(m->series[i].values[k]);
            free(m->series[i].counts);
        }
        for (int k = 0; k < m->n_labels; k++)
            free(m->labels[k]);
        free(m->series);
        free(m->buckets);
        free(m->name);
        free(m->help);
        pthread_mutex_destroy(&m->lock);
        free(m);
    }
    families = NULL;
    families_tail = &families;
    pthread_mutex_unlock(&registry_lock);
    memset(&chill_m, 0, sizeof chill_m);
}

void chill_metrics_init(void) {
    static const double seconds[] = {25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3,
                                     10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10};
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128};
    const int ns = (int)(sizeof seconds / sizeof seconds[0]);
    chill_m.requests = chill_metric_counter("chill_requests_total",
        "Inference requests answered, by HTTP status code.", "model,mask,code");
    chill_m.request_seconds = chill_metric_histogram("chill_request_duration_seconds",
        "Time from a request's arrival at the scheduler to its completion.", "model,mask", seconds, ns);
    chill_m.queue_seconds = chill_metric_histogram("chill_queue_duration_seconds",
        "Time a request waited in its device queue before its launch started.", "model,mask", seconds, ns);
    chill_m.compute_seconds = chill_metric_histogram("chill_compute_duration_seconds",
        "Duration of the launch that computed a request (copies in, kernel, copies back).",
        "model,mask,dtype,device", seconds, ns);
    chill_m.batch_requests = chill_metric_histogram("chill_batch_requests",
        "Requests packed into one launch.", "mask,device", sizes, (int)(sizeof sizes / sizeof sizes[0]));
    chill_m.tokens = chill_metric_counter("chill_tokens_total",
        "Valid query and key tokens computed (kind=query|key).", "model,mask,dtype,kind");
    chill_m.flops = chill_metric_counter("chill_attention_flops_total",
        "Floating-point operations of the attended (query, key) pairs: 4 * head_dim * pairs.",
        "model,mask,dtype");
    chill_m.bytes_in = chill_metric_counter("chill_received_bytes_total",
        "Bytes of inference request bodies received.", "model");
    chill_m.bytes_out = chill_metric_counter("chill_sent_bytes_total",
        "Bytes of inference response bodies sent.", "model");
    chill_m.in_flight = chill_metric_gauge("chill_requests_in_flight",
        "Inference requests accepted and not yet answered.", "model");
    chill_m.queued = chill_metric_gauge("chill_requests_queued",
        "Requests waiting in a device queue.", "device");
    chill_m.receiving = chill_metric_gauge("chill_requests_receiving",
        "Inference requests whose body is still arriving; batches wait for them.", "");
    chill_m.device_memory = chill_metric_gauge("chill_device_memory_used_bytes",
        "Memory held by chilld on a device (its buffer pool).", "device");
    chill_m.device_healthy = chill_metric_gauge("chill_device_healthy",
        "1 while a device serves, 0 after a sticky error took it out of service.", "device");
    chill_m.process_cpu_seconds = chill_metric_counter("process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.", "");
    chill_m.process_open_fds = chill_metric_gauge("process_open_fds", "Number of open file descriptors.", "");
    chill_m.process_max_fds = chill_metric_gauge("process_max_fds", "Maximum number of open file descriptors.", "");
    chill_m.process_virtual_bytes = chill_metric_gauge("process_virtual_memory_bytes",
        "Virtual memory size in bytes.", "");
    chill_m.process_resident_bytes = chill_metric_gauge("process_resident_memory_bytes",
        "Resident memory size in bytes.", "");
    chill_m.process_start_time = chill_metric_gauge("process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.", "");
    chill_m.heap_used_bytes = chill_metric_gauge("chill_heap_used_bytes",
        "Bytes malloc has handed out and not had back (mallinfo2: uordblks + hblkhd).", "");
}
