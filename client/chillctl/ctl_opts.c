/* The options chillctl's client subcommands share (see ctl_opts.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_opts.h"

void ctl_opts_init(ctl_opts *o) {
    memset(o, 0, sizeof *o);
    chill_client_options_init(&o->client);
    chill_client_request_init(&o->req);
}

static int ctl_int(const char *name, const char *arg, int64_t lo, int64_t hi, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || x < lo || x > hi) {
        fprintf(stderr, "chillctl: %s \"%s\": accepted is an integer in %" PRId64 "..%" PRId64 "\n", name, arg, lo, hi);
        return -1;
    }
    *v = x;
    return 0;
}

static int ctl_shape(ctl_opts *o, const char *arg) {
    long long b, h, t, d;
    char tail;
    if (sscanf(arg, "%lld,%lld,%lld,%lld%c", &b, &h, &t, &d, &tail) != 4 || b < 1 || h < 1 || t < 1 || d < 1) {
        fprintf(stderr, "chillctl: shape \"%s\": accepted is B,H,T,D with four positive integers\n", arg);
        return -1;
    }
    o->req.batch = b, o->req.heads_q = h, o->req.seq_q = t, o->req.head_dim = d;
    o->have_shape = 1;
    return 0;
}

int ctl_opts_parse(ctl_opts *o, int opt, const char *arg) {
    int64_t v;
    switch (opt) {
    case CTL_OPT_URL: o->client.url = arg; return 0;
    case CTL_OPT_SOCKET: o->client.socket_path = arg; return 0;
    case CTL_OPT_MASK: o->req.mask = arg; return 0;
    case CTL_OPT_MODEL: o->req.model = arg; return 0;
    case CTL_OPT_SHAPE: return ctl_shape(o, arg);
    case CTL_OPT_LSE: o->want_lse = 1; return 0;
    case CTL_OPT_TRANSPORT:
        if (chill_client_transport_parse(arg, &o->client.transport) == 0)
            return 0;
        fprintf(stderr, "chillctl: transport \"%s\": accepted are http, shm, uds\n", arg);
        return -1;
    case CTL_OPT_DTYPE:
        if (chill_dtype_parse(arg, &o->req.dtype) == 0)
            return 0;
        fprintf(stderr, "chillctl: dtype \"%s\": accepted are fp32, fp16, bf16\n", arg);
        return -1;
    case CTL_OPT_ARENA:
        if (ctl_int("--arena", arg, 4096, INT64_MAX, &v))
            return -1;
        o->client.arena_bytes = (size_t)v;
        return 0;
    case CTL_OPT_TIMEOUT:
        if (ctl_int("--timeout", arg, 1, INT32_MAX, &v))
            return -1;
        o->client.timeout_ms = (long)v;
        return 0;
    case CTL_OPT_HEADS_KV:
        if (ctl_int("--heads-kv", arg, 1, 1 << 16, &v))
            return -1;
        o->req.heads_kv = v;
        return 0;
    case CTL_OPT_SEQ_K:
        if (ctl_int("--seq-k", arg, 1, (int64_t)1 << 30, &v))
            return -1;
        o->req.seq_k = v;
        return 0;
    case CTL_OPT_Q_OFFSET:
        return ctl_int("--q-offset", arg, -((int64_t)1 << 40), (int64_t)1 << 40, &o->req.q_offset);
    case CTL_OPT_SM_SCALE: {
        char *end;
        o->req.sm_scale = strtof(arg, &end);
        if (end != arg && !*end && o->req.sm_scale > 0)
            return 0;
        fprintf(stderr, "chillctl: --sm-scale \"%s\": accepted is a positive number\n", arg);
        return -1;
    }
    }
    return 1;
}

void ctl_opts_finish(ctl_opts *o) {
    chill_client_request *r = &o->req;
    if (!r->heads_kv)
        r->heads_kv = r->heads_q;
    if (!r->seq_k)
        r->seq_k = r->seq_q;
    if (!r->mask && !r->model)
        r->mask = "causal";
    if (!o->client.arena_bytes && o->have_shape) {
        size_t e = chill_dtype_size(r->dtype);
        size_t q = (size_t)(r->batch * r->heads_q * r->seq_q * r->head_dim) * e;
        size_t k = (size_t)(r->batch * r->heads_kv * r->seq_k * r->head_dim) * e;
        o->client.arena_bytes = 2 * q + 2 * k + (size_t)(r->batch * r->heads_q * r->seq_q) * 4 + 5 * 64;
    }
}

chill_client *ctl_connect(const ctl_opts *o) {
    chill_client_error err;
    chill_client *c = chill_client_create(&o->client, &err);
    if (!c)
        fprintf(stderr, "chillctl: %s\n", err.message);
    return c;
}
