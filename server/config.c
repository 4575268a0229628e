/* Parsing and checking config/chilld.json. Each section is a table of fields
 * (key, type, where it goes in chill_config, accepted range, meaning) and one
 * small function that reads it; the same tables drive the error messages and
 * `chilld --check-config`. A new section is a field table, a function and one
 * line in `sections`. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "chill.h"
#include "config.h"

typedef enum field_type { F_INT, F_I64, F_U64, F_BOOL, F_STR } field_type;

typedef struct field {
    const char *key;
    field_type type;
    size_t offset;
    size_t size;     /* F_STR: buffer size */
    int64_t min, max;
    const char *doc;
} field;

#define FIELD(key, type, member, min, max, doc) \
    {key, type, offsetof(chill_config, member), sizeof(((chill_config *)0)->member), min, max, doc}

static const field listen_fields[] = {
    FIELD("address", F_STR, address, 0, 0, "IPv4 address to listen on (127.0.0.1: this host only)"),
    FIELD("port", F_INT, port, 1, 65535, "TCP port of the HTTP server"),
    FIELD("threads", F_INT, http_threads, 0, 256,
          "HTTP threads (libmicrohttpd thread pool, poll); 0: one per two cores, 4 to 16"),
    FIELD("connection_memory_bytes", F_U64, connection_memory_bytes, 16384, 64 << 20,
          "memory per HTTP connection (libmicrohttpd's pool); half of it is the read buffer, so a request body "
          "arrives in reads of up to half this size"),
    {0},
};

static const field devices_fields[] = {
    FIELD("cpu_threads", F_INT, cpu_threads, 0, 4096, "threads of the CPU kernel (0: one per core)"),
    FIELD("gpu_pool_bytes", F_U64, gpu_pool_bytes, 1 << 20, INT64_MAX,
          "device buffer per launch slot of a GPU, allocated at start; the largest launch"),
    FIELD("gpu_slots", F_INT, gpu_slots, 1, CHILL_CONFIG_MAX_GPU_SLOTS,
          "packed launches in flight per GPU, each with its own buffer and stream, so one's copies overlap "
          "another's kernel (1: one launch at a time)"),
    FIELD("pinned_host_bytes", F_U64, pinned_host_bytes, 0, INT64_MAX,
          "pinned host memory for request tensors with the CUDA backend, reused (0: none; beyond it copies are slower)"),
    FIELD("idle_spin_us", F_I64, idle_spin_us, 0, 1000000,
          "after a launch, how long a device worker polls its queue before it sleeps, while its last request came "
          "that soon after it went idle (microseconds; 0: sleep at once)"),
    FIELD("direct_max_mflop", F_I64, direct_max_mflop, 0, INT64_MAX,
          "a request that finds its device idle and would not wait for a batch runs on the thread that received it, "
          "without a hand-off to the device worker, when it takes at most this many MFLOP (4 * head_dim per "
          "attended pair; 0: always hand off)"),
    {0},
};

static const field batching_fields[] = {
    FIELD("enabled", F_BOOL, batching, 0, 1, "pack requests of the same key into one varlen launch"),
    FIELD("max_queue_delay_us", F_I64, max_queue_delay_us, 0, 10000000,
          "how long the first request of a batch waits for others at most (microseconds; not while none is on its "
          "way or in flight; 0: only those already queued)"),
    FIELD("max_batch_tokens", F_I64, max_batch_tokens, 1, INT32_MAX,
          "most query plus key tokens in one launch"),
    FIELD("max_batch_requests", F_INT, max_batch_requests, 1, 4096, "most requests in one launch"),
    FIELD("max_queue_requests", F_INT, max_queue_requests, 1, 1 << 20,
          "queued requests per device; past it a request gets 503 with Retry-After"),
    {0},
};

static const field limits_fields[] = {
    FIELD("max_body_bytes", F_U64, max_body_bytes, 1024, INT64_MAX,
          "largest HTTP request body; larger is 413"),
    FIELD("max_tokens", F_I64, max_tokens, 1, INT32_MAX, "most B*(Tq+Tk) tokens in one request"),
    FIELD("max_elements", F_I64, max_elements, 1, INT64_MAX,
          "most elements (B*H*T*D) in any one tensor of a request"),
    FIELD("default_timeout_us", F_I64, default_timeout_us, 0, INT64_MAX,
          "deadline of a request without a timeout parameter (microseconds, 0: none)"),
    {0},
};

static const field shutdown_fields[] = {
    FIELD("drain_timeout_s", F_INT, drain_timeout_s, 1, 86400,
          "on SIGTERM/SIGINT, how long to wait for in-flight requests"),
    {0},
};

static const field shared_memory_fields[] = {
    FIELD("system", F_BOOL, shm_system, 0, 1,
          "allow system shared-memory registration (unset: only when listening on loopback or a unix socket)"),
    FIELD("cuda", F_BOOL, shm_cuda, 0, 1, "allow CUDA shared-memory registration (unset: as system, with a GPU)"),
    {0},
};

static const field unix_socket_fields[] = {
    FIELD("path", F_STR, uds.path, 0, 0, "path of the native socket for co-located clients (empty: none)"),
    FIELD("mode", F_STR, uds.mode, 0, 0, "its file mode, octal"),
    FIELD("max_arena_bytes", F_U64, uds.max_arena_bytes, 4096, INT64_MAX,
          "largest memfd arena a client may hand over"),
    {0},
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void accepted_keys(const field *f, const char *extra, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = '\0';
    for (; f->key != NULL && n < len; f++)
        n += snprintf(buf + n, len - n, "%s%s", n ? ", " : "", f->key);
    for (const char *p = extra; p != NULL && *p != '\0' && n < len;) {
        size_t k = strcspn(p, ",");
        n += snprintf(buf + n, len - n, "%s%.*s", n ? ", " : "", (int)k, p);
        p += p[k] == ',' ? k + 1 : k;
    }
}

/* Stores v into the field; err names section.key and the range. */
static int set_field(chill_config *c, const char *section, const field *f, json_t *v,
                     char *err, size_t errlen) {
    char *dst = (char *)c + f->offset;
    if (f->type == F_STR) {
        if (!json_is_string(v) || json_string_length(v) >= f->size)
            return fail(err, errlen, "%s.%s: expected a string of at most %zu characters", section,
                        f->key, f->size - 1);
        memcpy(dst, json_string_value(v), json_string_length(v) + 1);
        return 0;
    }
    if (f->type == F_BOOL) {
        if (!json_is_boolean(v))
            return fail(err, errlen, "%s.%s: expected true or false", section, f->key);
        *(int *)dst = json_is_true(v);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < f->min || json_integer_value(v) > f->max)
        return fail(err, errlen, "%s.%s: expected an integer in [%lld, %lld]", section, f->key,
                    (long long)f->min, (long long)f->max);
    int64_t x = json_integer_value(v);
    if (f->type == F_INT)
        *(int *)dst = (int)x;
    else if (f->type == F_I64)
        *(int64_t *)dst = x;
    else
        *(uint64_t *)dst = (uint64_t)x;
    return 0;
}

/* Whether key is one of the comma-separated names in list. */
static int in_list(const char *list, const char *key) {
    size_t n = strlen(key);
    for (const char *p = list; p != NULL && *p != '\0'; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, key, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Reads obj's keys through the table; keys in `extra` (comma-separated) are
 * left for the caller. */
static int parse_fields(chill_config *c, const char *section, json_t *obj, const field *table,
                        const char *extra, char *err, size_t errlen) {
    if (!json_is_object(obj))
        return fail(err, errlen, "%s: expected an object", section);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const field *f = table;
        while (f->key != NULL && strcmp(f->key, key) != 0)
            f++;
        if (f->key != NULL) {
            if (set_field(c, section, f, v, err, errlen) != 0)
                return -1;
            continue;
        }
        char list[512];
        if (in_list(extra, key))
            continue;
        accepted_keys(table, extra, list, sizeof list);
        return fail(err, errlen, "%s.%s: unknown key; accepted: %s", section, key, list);
    }
    return 0;
}

static int parse_backend(const char *name, chill_backend_kind *k) {
    static const char *names[] = {"auto", "cpu", "cuda"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *k = (chill_backend_kind)i;
            return 0;
        }
    return -1;
}

static const char *backend_name(chill_backend_kind k) {
    return k == CHILL_BACKEND_CPU ? "cpu" : k == CHILL_BACKEND_CUDA ? "cuda" : "auto";
}

static int section_listen(chill_config *c, json_t *obj, char *err, size_t errlen) {
    return parse_fields(c, "listen", obj, listen_fields, NULL, err, errlen);
}

static int section_devices(chill_config *c, json_t *obj, char *err, size_t errlen) {
    if (parse_fields(c, "devices", obj, devices_fields, "backend,gpus", err, errlen) != 0)
        return -1;
    json_t *b = json_object_get(obj, "backend");
    if (b != NULL && (!json_is_string(b) || parse_backend(json_string_value(b), &c->backend) != 0))
        return fail(err, errlen, "devices.backend: expected \"auto\", \"cpu\" or \"cuda\"");
    json_t *g = json_object_get(obj, "gpus");
    if (g == NULL)
        return 0;
    if (!json_is_array(g) || json_array_size(g) > CHILL_CONFIG_MAX_GPUS)
        return fail(err, errlen, "devices.gpus: expected an array of at most %d GPU ids ([]: all)",
                    CHILL_CONFIG_MAX_GPUS);
    c->n_gpus = 0;
    size_t i;
    json_t *id;
    json_array_foreach(g, i, id) {
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > 1023)
            return fail(err, errlen, "devices.gpus[%zu]: expected a GPU id in [0, 1023]", i);
        c->gpus[c->n_gpus++] = (int)json_integer_value(id);
    }
    return 0;
}

static int section_batching(chill_config *c, json_t *obj, char *err, size_t errlen) {
    return parse_fields(c, "batching", obj, batching_fields, NULL, err, errlen);
}

static int section_limits(chill_config *c, json_t *obj, char *err, size_t errlen) {
    return parse_fields(c, "limits", obj, limits_fields, NULL, err, errlen);
}

/* "presets": {"sw-4096": "sliding_window(4096,0)", ...}; a preset may not
 * shadow a mask type's name, and its spec must parse. */
static int section_presets(chill_config *c, json_t *obj, char *err, size_t errlen) {
    if (!json_is_object(obj))
        return fail(err, errlen, "presets: expected an object of name: mask spec");
    const char *name;
    json_t *v;
    c->n_presets = 0;
    json_object_foreach(obj, name, v) {
        chill_mask m;
        chill_error e;
        if (c->n_presets == CHILL_CONFIG_MAX_PRESETS)
            return fail(err, errlen, "presets: at most %d presets", CHILL_CONFIG_MAX_PRESETS);
        if (strlen(name) == 0 || strlen(name) >= sizeof c->presets[0].name || strchr(name, '/'))
            return fail(err, errlen, "presets.%s: a name is 1 to 63 characters without '/'", name);
        if (chill_mask_lookup(name) >= 0)
            return fail(err, errlen, "presets.%s: the name of a mask type; pick another", name);
        if (!json_is_string(v) || json_string_length(v) >= sizeof c->presets[0].spec)
            return fail(err, errlen, "presets.%s: expected a mask spec string such as \"causal\" "
                        "or \"sliding_window(4096,0)\"", name);
        if (chill_mask_parse(json_string_value(v), &m, &e) != CHILL_OK)
            return fail(err, errlen, "presets.%s: %s", name, e.message);
        chill_preset *p = &c->presets[c->n_presets++];
        snprintf(p->name, sizeof p->name, "%s", name);
        snprintf(p->spec, sizeof p->spec, "%s", json_string_value(v));
    }
    return 0;
}

static int section_log(chill_config *c, json_t *obj, char *err, size_t errlen) {
    if (parse_fields(c, "log", obj, (const field[]){{0}}, "level", err, errlen) != 0)
        return -1;
    json_t *l = json_object_get(obj, "level");
    if (l != NULL && (!json_is_string(l) || chill_log_level_parse(json_string_value(l), &c->log_level) != 0))
        return fail(err, errlen, "log.level: expected \"debug\", \"info\", \"warn\" or \"error\"");
    return 0;
}

static int section_shutdown(chill_config *c, json_t *obj, char *err, size_t errlen) {
    return parse_fields(c, "shutdown", obj, shutdown_fields, NULL, err, errlen);
}

static int section_shared_memory(chill_config *c, json_t *obj, char *err, size_t errlen) {
    return parse_fields(c, "shared_memory", obj, shared_memory_fields, NULL, err, errlen);
}

/* unix_socket.allow_uids / allow_gids: arrays of ids allowed to connect. */
static int id_list(json_t *obj, const char *key, int64_t *ids, int *n, char *err, size_t errlen) {
    json_t *a = json_object_get(obj, key), *v;
    size_t i;
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > CHILL_UDS_MAX_ALLOW)
        return fail(err, errlen, "unix_socket.%s: expected an array of at most %d ids", key, CHILL_UDS_MAX_ALLOW);
    *n = 0;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
            return fail(err, errlen, "unix_socket.%s[%zu]: expected a user or group id (0..4294967295)", key, i);
        ids[(*n)++] = json_integer_value(v);
    }
    return 0;
}

static int section_unix_socket(chill_config *c, json_t *obj, char *err, size_t errlen) {
    if (parse_fields(c, "unix_socket", obj, unix_socket_fields, "allow_uids,allow_gids", err, errlen) != 0)
        return -1;
    if (id_list(obj, "allow_uids", c->uds.allow_uid, &c->uds.n_allow_uid, err, errlen) != 0)
        return -1;
    return id_list(obj, "allow_gids", c->uds.allow_gid, &c->uds.n_allow_gid, err, errlen);
}

static const struct section {
    const char *name;
    int (*parse)(chill_config *c, json_t *obj, char *err, size_t errlen);
} sections[] = {
    {"listen", section_listen},
    {"devices", section_devices},
    {"batching", section_batching},
    {"limits", section_limits},
    {"presets", section_presets},
    {"log", section_log},
    {"shutdown", section_shutdown},
    {"shared_memory", section_shared_memory},
    {"unix_socket", section_unix_socket},
};

#define N_SECTIONS (sizeof sections / sizeof sections[0])

void chill_config_defaults(chill_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->address, sizeof c->address, "127.0.0.1");
    c->port = 8000;
    c->http_threads = 0;
    c->connection_memory_bytes = 256 << 10;
    c->backend = CHILL_BACKEND_AUTO;
    c->gpu_pool_bytes = (uint64_t)1 << 30;
    c->gpu_slots = 1;
    c->pinned_host_bytes = (uint64_t)1 << 30;
    c->idle_spin_us = 50;
    c->direct_max_mflop = 256;
    c->batching = 1;
    c->max_queue_delay_us = 0;
    c->max_batch_tokens = 1 << 16;
    c->max_batch_requests = 64;
    c->max_queue_requests = 1024;
    c->max_body_bytes = (uint64_t)256 << 20;
    c->max_tokens = 1 << 20;
    c->max_elements = (int64_t)1 << 28;
    c->log_level = CHILL_LOG_INFO;
    c->drain_timeout_s = 30;
    c->shm_system = c->shm_cuda = -1;
    snprintf(c->uds.mode, sizeof c->uds.mode, "0660");
    c->uds.max_arena_bytes = (uint64_t)4 << 30;
}

static int parse_root(chill_config *c, json_t *root, char *err, size_t errlen) {
    if (!json_is_object(root))
        return fail(err, errlen, "the top level must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t i = 0;
        while (i < N_SECTIONS && strcmp(sections[i].name, key) != 0)
            i++;
        if (i < N_SECTIONS) {
            if (sections[i].parse(c, v, err, errlen) != 0)
                return -1;
            continue;
        }
        char list[256];
        size_t n = 0;
        for (size_t j = 0; j < N_SECTIONS; j++)
            n += snprintf(list + n, sizeof list - n, "%s%s", j ? ", " : "", sections[j].name);
        return fail(err, errlen, "%s: unknown section; accepted: %s", key, list);
    }
    return 0;
}

int chill_config_parse(chill_config *c, const char *json, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return fail(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
    int rc = parse_root(c, root, err, errlen);
    json_decref(root);
    return rc;
}

int chill_config_load(chill_config *c, const char *path, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return fail(err, errlen, "%s: line %d, column %d: %s", path, je.line, je.column, je.text);
    char inner[512];
    int rc = parse_root(c, root, inner, sizeof inner);
    if (rc != 0)
        fail(err, errlen, "%s: %s", path, inner);
    json_decref(root);
    return rc;
}

int chill_config_http_threads(const chill_config *c, long cores) {
    if (c->http_threads > 0)
        return c->http_threads;
    return cores < 8 ? 4 : cores > 32 ? 16 : (int)(cores / 2);
}

const char *chill_config_usage(void) {
    return "usage: chilld [--config FILE] [--check-config FILE] [--listen ADDR] [--port N]\n"
           "              [--backend auto|cpu|cuda] [--cpu-threads N] [--gpu-slots N] [--idle-spin-us N]\n"
           "              [--direct-max-mflop N] [--http-threads N] [--max-queue-delay-us N]\n"
           "              [--max-batch-tokens N] [--no-batching] [--log-level debug|info|warn|error]\n"
           "Flags override the config file (default config/chilld.json when present).\n";
}

/* One flag with a value: "--port" sets the field through the same table as
 * the file, so the same range checks apply. */
static int flag_value(chill_config *c, const char *flag, const char *value, char *err, size_t errlen) {
    static const struct { const char *flag, *section; const field *table; const char *key; } map[] = {
        {"--listen", "listen", listen_fields, "address"},
        {"--port", "listen", listen_fields, "port"},
        {"--http-threads", "listen", listen_fields, "threads"},
        {"--cpu-threads", "devices", devices_fields, "cpu_threads"},
        {"--gpu-slots", "devices", devices_fields, "gpu_slots"},
        {"--idle-spin-us", "devices", devices_fields, "idle_spin_us"},
        {"--direct-max-mflop", "devices", devices_fields, "direct_max_mflop"},
        {"--max-queue-delay-us", "batching", batching_fields, "max_queue_delay_us"},
        {"--max-batch-tokens", "batching", batching_fields, "max_batch_tokens"},
    };
    if (strcmp(flag, "--backend") == 0)
        return parse_backend(value, &c->backend) == 0
                   ? 0 : fail(err, errlen, "--backend: expected auto, cpu or cuda, got \"%s\"", value);
    if (strcmp(flag, "--log-level") == 0)
        return chill_log_level_parse(value, &c->log_level) == 0
                   ? 0 : fail(err, errlen, "--log-level: expected debug, info, warn or error, got \"%s\"", value);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(flag, map[i].flag) != 0)
            continue;
        const field *f = map[i].table;
        while (strcmp(f->key, map[i].key) != 0)
            f++;
        json_t *v;
        if (f->type == F_STR) {
            v = json_string(value);
        } else {
            char *end;
            errno = 0;
            long long x = strtoll(value, &end, 10);
            if (errno != 0 || end == value || *end != '\0')
                return fail(err, errlen, "%s: expected an integer, got \"%s\"", flag, value);
            v = json_integer(x);
        }
        int rc = set_field(c, map[i].section, f, v, err, errlen);
        json_decref(v);
        return rc;
    }
    return fail(err, errlen, "%s: unknown flag\n%s", flag, chill_config_usage());
}

int chill_config_flags(chill_config *c, int argc, char **argv, const char **config_path,
                       const char **check_path, char *err, size_t errlen) {
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-batching") == 0) {
            c->batching = 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            break;
        if (i + 1 >= argc)
            return fail(err, errlen, "%s: needs a value\n%s", a, chill_config_usage());
        const char *v = argv[++i];
        if (strcmp(a, "--config") == 0)
            *config_path = v;
        else if (strcmp(a, "--check-config") == 0)
            *check_path = v;
        else if (flag_value(c, a, v, err, errlen) != 0)
            return -1;
    }
    return i;
}

static void explain_fields(const chill_config *c, const char *section, const field *f, FILE *out) {
    for (; f->key != NULL; f++) {
        const char *src = (const char *)c + f->offset;
        fprintf(out, "  %s.%s = ", section, f->key);
        if (f->type == F_STR)
            fprintf(out, "\"%s\"", src);
        else if (f->type == F_BOOL)
            fprintf(out, "%s", *(const int *)src ? "true" : "false");
        else if (f->type == F_INT)
            fprintf(out, "%d", *(const int *)src);
        else if (f->type == F_I64)
            fprintf(out, "%lld", (long long)*(const int64_t *)src);
        else
            fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)src);
        fprintf(out, "\n      %s\n", f->doc);
    }
}

void chill_config_explain(const chill_config *c, FILE *out) {
    static const char *levels[] = {"debug", "info", "warn", "error"};
    explain_fields(c, "listen", listen_fields, out);
    fprintf(out, "  devices.backend = \"%s\"\n      auto: CUDA when a GPU is visible, else the CPU\n",
            backend_name(c->backend));
    fprintf(out, "  devices.gpus = [");
    for (int i = 0; i < c->n_gpus; i++)
        fprintf(out, "%s%d", i ? ", " : "", c->gpus[i]);
    fprintf(out, "]\n      GPU ids to serve on ([]: every visible GPU)\n");
    explain_fields(c, "devices", devices_fields, out);
    explain_fields(c, "batching", batching_fields, out);
    explain_fields(c, "limits", limits_fields, out);
    for (int i = 0; i < c->n_presets; i++)
        fprintf(out, "  presets.%s = \"%s\"\n      a model named %s serving that mask, arguments fixed\n",
                c->presets[i].name, c->presets[i].spec, c->presets[i].name);
    fprintf(out, "  log.level = \"%s\"\n      lowest level written to stderr (debug, info, warn, error)\n",
            levels[c->log_level]);
    explain_fields(c, "shutdown", shutdown_fields, out);
    for (const field *f = shared_memory_fields; f->key != NULL; f++) {
        int v = *(const int *)((const char *)c + f->offset);
        fprintf(out, "  shared_memory.%s = %s\n      %s\n", f->key, v < 0 ? "unset" : v ? "true" : "false", f->doc);
    }
    explain_fields(c, "unix_socket", unix_socket_fields, out);
    fprintf(out, "  unix_socket.allow_uids, allow_gids = %d, %d ids\n      peers allowed to connect (both empty: "
            "chilld's own user only)\n", c->uds.n_allow_uid, c->uds.n_allow_gid);
}
