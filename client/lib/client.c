/* libchillclient's front: options, request validation, the mask-to-model
 * mapping, arena staging shared by the SHM and UDS transports, and dispatch
 * to the transport (http.c, shm.c, uds.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client_internal.h"

#define CHILL_CLIENT_DEFAULT_URL "http://127.0.0.1:8000"
#define CHILL_CLIENT_DEFAULT_SOCKET "/run/chilld/chilld.sock"
#define CHILL_CLIENT_DEFAULT_ARENA ((size_t)64 << 20)
#define CHILL_CLIENT_ALIGN 64

chill_client_status chill_client_fail(chill_client_error *err, chill_client_status status, int http_status,
                                      const char *fmt, ...) {
    if (err) {
        err->status = status;
        err->http_status = http_status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void chill_client_options_init(chill_client_options *o) {
    memset(o, 0, sizeof *o);
    o->transport = CHILL_CLIENT_HTTP;
}

void chill_client_request_init(chill_client_request *r) {
    memset(r, 0, sizeof *r);
    r->dtype = CHILL_F16;
    r->q_offset = CHILL_Q_OFFSET_AUTO;
}

const char *chill_client_status_name(chill_client_status s) {
    static const char *names[] = {"OK", "INVALID", "CONNECT", "TIMEOUT", "REJECTED", "OVERLOADED", "PROTOCOL", "SYSTEM"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "UNKNOWN";
}

int chill_client_transport_parse(const char *name, chill_client_transport *t) {
    static const char *names[] = {"http", "shm", "uds"};
    for (int i = 0; i < 3; i++)
        if (strcasecmp(name, names[i]) == 0) {
            *t = (chill_client_transport)i;
            return 0;
        }
    return -1;
}

chill_client *chill_client_create(const chill_client_options *o, chill_client_error *err) {
    chill_client_options def;
    if (!o) {
        chill_client_options_init(&def);
        o = &def;
    }
    if (o->transport > CHILL_CLIENT_UDS) {
        chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "transport %d: accepted are HTTP (0), SHM (1), UDS (2)",
                          (int)o->transport);
        return NULL;
    }
    const char *url = o->url ? o->url : CHILL_CLIENT_DEFAULT_URL;
    if (strlen(url) >= sizeof ((chill_client *)0)->url) {
        chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "url is %zu bytes long; at most 511 are accepted", strlen(url));
        return NULL;
    }
    chill_client *c = calloc(1, sizeof *c);
    if (!c) {
        chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "out of memory creating a client");
        return NULL;
    }
    c->transport = o->transport;
    c->timeout_ms = o->timeout_ms;
    c->arena_bytes = o->arena_bytes ? o->arena_bytes : CHILL_CLIENT_DEFAULT_ARENA;
    c->fd = -1;
    snprintf(c->url, sizeof c->url, "%s", url);
    size_t n = strlen(c->url);
    while (n > 0 && c->url[n - 1] == '/')
        c->url[--n] = '\0';
    chill_client_status s = CHILL_CLIENT_OK;
    if (c->transport != CHILL_CLIENT_UDS)
        s = chill_cli_http_open(c, err);
    if (s == CHILL_CLIENT_OK && c->transport == CHILL_CLIENT_SHM)
        s = chill_cli_shm_open(c, err);
    if (s == CHILL_CLIENT_OK && c->transport == CHILL_CLIENT_UDS)
        s = chill_cli_uds_open(c, o->socket_path ? o->socket_path : CHILL_CLIENT_DEFAULT_SOCKET, err);
    if (s != CHILL_CLIENT_OK) {
        chill_client_destroy(c);
        return NULL;
    }
    return c;
}

void chill_client_destroy(chill_client *c) {
    if (!c)
        return;
    if (c->transport == CHILL_CLIENT_SHM)
        chill_cli_shm_close(c);
    if (c->transport == CHILL_CLIENT_UDS)
        chill_cli_uds_close(c);
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c);
}

void *chill_client_arena(chill_client *c, size_t *size) {
    if (size)
        *size = c->arena ? c->arena_bytes : 0;
    return c->arena;
}

/* Element counts with overflow checks: 0 on overflow. */
static size_t chill_client_mul(int64_t a, int64_t b, int64_t c, int64_t d, size_t elem) {
    size_t r = elem;
    int64_t f[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (__builtin_mul_overflow(r, (size_t)f[i], &r))
            return 0;
    return r;
}

static chill_client_status chill_client_check(const chill_client_request *r, chill_client_sizes *sz,
                                              chill_client_error *err) {
    const struct { const char *name; int64_t v, lo, hi; } dims[] = {
        {"batch", r->batch, 1, 1 << 20},
        {"heads_q", r->heads_q, 1, 1 << 16},
        {"heads_kv", r->heads_kv, 1, 1 << 16},
        {"seq_q", r->seq_q, 1, (int64_t)1 << 30},
        {"seq_k", r->seq_k, 1, (int64_t)1 << 30},
        {"head_dim", r->head_dim, CHILL_HEAD_DIM_MIN, CHILL_HEAD_DIM_MAX},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < dims[i].lo || dims[i].v > dims[i].hi)
            return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "%s is %lld; accepted is %lld..%lld",
                                     dims[i].name, (long long)dims[i].v, (long long)dims[i].lo, (long long)dims[i].hi);
    if (r->heads_q % r->heads_kv != 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0,
                                 "heads_q (%lld) must be a multiple of heads_kv (%lld)", (long long)r->heads_q,
                                 (long long)r->heads_kv);
    if (r->dtype > CHILL_BF16)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "dtype %d: accepted are FP32, FP16, BF16",
                                 (int)r->dtype);
    if (!r->q || !r->k || !r->v || !r->out)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "q, k, v and out must all be set");
    if (!r->model && !r->mask)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "name a model or a mask (or both)");
    size_t e = chill_dtype_size(r->dtype);
    sz->q = sz->out = chill_client_mul(r->batch, r->heads_q, r->seq_q, r->head_dim, e);
    sz->k = sz->v = chill_client_mul(r->batch, r->heads_kv, r->seq_k, r->head_dim, e);
    sz->lse = r->lse ? chill_client_mul(r->batch, r->heads_q, r->seq_q, 1, sizeof(float)) : 0;
    if (!sz->q || !sz->k)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "the tensors' byte sizes overflow");
    return CHILL_CLIENT_OK;
}

chill_client_status chill_client_request_model(const chill_client_request *r, char *model, size_t model_len,
                                               chill_mask *mask, int *has_mask, chill_client_error *err) {
    *has_mask = 0;
    if (r->mask) {
        chill_error e;
        if (chill_mask_parse(r->mask, mask, &e) != CHILL_OK)
            return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "mask: %s", e.message);
        *has_mask = 1;
    }
    const char *name = r->model ? r->model : chill_mask_name(mask->type);
    if (strlen(name) >= model_len || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(name))
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0,
                                 "model \"%.64s\": accepted are names of letters, digits, '_', '.', '-' shorter than %zu",
                                 name, model_len);
    snprintf(model, model_len, "%s", name);
    return CHILL_CLIENT_OK;
}

static int chill_client_in_arena(const chill_client *c, const void *p, size_t n) {
    const char *b = p;
    return c->arena && b >= c->arena && n <= c->arena_bytes && (size_t)(b - c->arena) <= c->arena_bytes - n;
}

static uint64_t chill_client_align(uint64_t x) {
    return (x + CHILL_CLIENT_ALIGN - 1) & ~(uint64_t)(CHILL_CLIENT_ALIGN - 1);
}

chill_client_status chill_client_stage(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                       chill_client_layout *lay, int *staged, chill_client_error *err) {
    const void *ptr[5] = {r->q, r->k, r->v, r->out, r->lse};
    size_t size[5] = {sz->q, sz->k, sz->v, sz->out, sz->lse};
    uint64_t *off[5] = {&lay->q, &lay->k, &lay->v, &lay->out, &lay->lse};
    int n = r->lse ? 5 : 4, inside = 0;
    for (int i = 0; i < n; i++)
        inside += chill_client_in_arena(c, ptr[i], size[i]);
    if (inside == n) {
        for (int i = 0; i < n; i++)
            *off[i] = (uint64_t)((const char *)ptr[i] - c->arena);
        lay->lse = r->lse ? lay->lse : UINT64_MAX;
        *staged = 0;
        return CHILL_CLIENT_OK;
    }
    if (inside != 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0,
                                 "%d of the request's %d tensors lie in the arena: put all of them there or none", inside, n);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        *off[i] = at;
        at = chill_client_align(at + size[i]);
    }
    if (at > c->arena_bytes)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0,
                                 "the request needs %llu bytes of arena; this client's arena has %zu (arena_bytes)",
                                 (unsigned long long)at, c->arena_bytes);
    for (int i = 0; i < 3; i++)
        memcpy(c->arena + *off[i], ptr[i], size[i]);
    lay->lse = r->lse ? lay->lse : UINT64_MAX;
    *staged = 1;
    return CHILL_CLIENT_OK;
}

void chill_client_unstage(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                          const chill_client_layout *lay, int staged) {
    if (!staged)
        return;
    memcpy(r->out, c->arena + lay->out, sz->out);
    if (r->lse)
        memcpy(r->lse, c->arena + lay->lse, sz->lse);
}

chill_client_status chill_client_infer(chill_client *c, const chill_client_request *r, chill_client_error *err) {
    chill_client_sizes sz;
    chill_client_status s = chill_client_check(r, &sz, err);
    if (s != CHILL_CLIENT_OK)
        return s;
    switch (c->transport) {
    case CHILL_CLIENT_HTTP: return chill_cli_http_infer(c, r, &sz, err);
    case CHILL_CLIENT_SHM: return chill_cli_shm_infer(c, r, &sz, err);
    case CHILL_CLIENT_UDS: return chill_cli_uds_infer(c, r, &sz, err);
    }
    return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "unknown transport");
}

chill_client_status chill_client_call(chill_client *c, const char *path, const char *body, char **response,
                                      chill_client_error *err) {
    if (!c->curl)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0,
                                 "this client speaks the native socket; HTTP calls need the HTTP or SHM transport");
    size_t len;
    return chill_cli_http_call(c, body ? "POST" : "GET", path, body, body ? strlen(body) : 0, response, &len, err);
}

chill_client_status chill_client_health(chill_client *c, chill_client_error *err) {
    if (c->transport == CHILL_CLIENT_UDS)
        return c->fd >= 0 ? CHILL_CLIENT_OK
                          : chill_client_fail(err, CHILL_CLIENT_ERR_CONNECT, 0, "the socket is not connected");
    const char *paths[] = {"/v2/health/live", "/v2/health/ready"};
    for (int i = 0; i < 2; i++) {
        char *body = NULL;
        chill_client_status s = chill_client_call(c, paths[i], NULL, &body, err);
        free(body);
        if (s != CHILL_CLIENT_OK)
            return s;
    }
    return CHILL_CLIENT_OK;
}
