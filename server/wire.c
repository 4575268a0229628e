/* The native socket's REQUEST frame (client/lib/chillwire.h) as chill_params
 * over the connection's arena: every dimension checked against its range and
 * the config's limits before any product of them is taken, the mask parsed
 * (or a preset named), every tensor placed inside the arena and aligned to
 * its element. Apart from the transport (uds.c) so that it can be tested and
 * fuzzed on its own (tests/fuzz/fuzz_wire.c). */
#include <stdio.h>
#include <string.h>

#include "models.h"
#include "wire.h"

/* A tensor of n bytes at off lies inside the arena, aligned to its element. */
static int place(char *arena, size_t arena_bytes, uint64_t off, int64_t elems, size_t esize, const char *name,
                 void **p, char *msg, size_t len) {
    uint64_t bytes;
    if (__builtin_mul_overflow((uint64_t)elems, (uint64_t)esize, &bytes) || off > arena_bytes ||
        bytes > arena_bytes - off) {
        snprintf(msg, len, "tensor %s: %llu bytes at offset %llu lie outside the %zu-byte arena", name,
                 (unsigned long long)((uint64_t)elems * esize), (unsigned long long)off, arena_bytes);
        return -1;
    }
    if (off % esize) {
        snprintf(msg, len, "tensor %s: offset %llu is not a multiple of its element size %zu", name,
                 (unsigned long long)off, esize);
        return -1;
    }
    *p = arena + off;
    return 0;
}

int chill_wire_decode(const chill_config *c, char *arena, size_t arena_bytes, const chill_wire_request *w,
                      chill_params *p, const char **model, char *msg, size_t len) {
    const struct { const char *name; int64_t v, lo, hi; } dims[] = {
        {"batch", w->batch, 1, 1 << 20}, {"heads_q", w->heads_q, 1, 1 << 16}, {"heads_kv", w->heads_kv, 1, 1 << 16},
        {"seq_q", w->seq_q, 1, (int64_t)1 << 30}, {"seq_k", w->seq_k, 1, (int64_t)1 << 30},
        {"head_dim", w->head_dim, CHILL_HEAD_DIM_MIN, CHILL_HEAD_DIM_MAX},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < dims[i].lo || dims[i].v > dims[i].hi) {
            snprintf(msg, len, "%s is %lld; accepted %lld..%lld", dims[i].name, (long long)dims[i].v,
                     (long long)dims[i].lo, (long long)dims[i].hi);
            return -1;
        }
    if (w->dtype > CHILL_BF16 || w->heads_q % w->heads_kv) {
        snprintf(msg, len, "dtype %u (accepted 0 FP32, 1 FP16, 2 BF16) or heads_q %lld not a multiple of heads_kv %lld",
                 w->dtype, (long long)w->heads_q, (long long)w->heads_kv);
        return -1;
    }
    /* Tokens first: under max_tokens (at most 2^31) no product below can pass 2^63. */
    int64_t tokens = w->batch * (w->seq_q + w->seq_k);
    if (tokens > c->max_tokens) {
        snprintf(msg, len, "B*(Tq+Tk) = %lld tokens exceed limits.max_tokens %lld", (long long)tokens,
                 (long long)c->max_tokens);
        return -1;
    }
    int64_t qe = w->batch * w->heads_q * w->seq_q * w->head_dim, ke = w->batch * w->heads_kv * w->seq_k * w->head_dim;
    if (qe > c->max_elements || ke > c->max_elements) {
        snprintf(msg, len, "tensors of %lld/%lld elements (q/k) exceed limits.max_elements %lld", (long long)qe,
                 (long long)ke, (long long)c->max_elements);
        return -1;
    }
    char spec[CHILL_WIRE_MASK_LEN + 1];
    memcpy(spec, w->mask, CHILL_WIRE_MASK_LEN);
    spec[CHILL_WIRE_MASK_LEN] = '\0';
    chill_model *m = chill_model_find(spec);
    chill_error e;
    if (m && m->preset) {
        p->mask = m->mask;
    } else if (chill_mask_parse(spec, &p->mask, &e) != CHILL_OK) {
        snprintf(msg, len, "mask \"%s\": %.400s (or a preset name)", spec, e.message);
        return -1;
    } else {
        m = chill_model_find(chill_mask_name(p->mask.type));
    }
    *model = m ? m->name : "unknown";
    p->dtype = (chill_dtype)w->dtype;
    p->batch = w->batch, p->heads_q = w->heads_q, p->heads_kv = w->heads_kv;
    p->seq_q = w->seq_q, p->seq_k = w->seq_k, p->head_dim = w->head_dim;
    p->q_offset = w->q_offset;
    p->sm_scale = w->sm_scale;
    size_t es = chill_dtype_size(p->dtype);
    if (place(arena, arena_bytes, w->q, qe, es, "q", &p->q.data, msg, len) ||
        place(arena, arena_bytes, w->k, ke, es, "k", &p->k.data, msg, len) ||
        place(arena, arena_bytes, w->v, ke, es, "v", &p->v.data, msg, len) ||
        place(arena, arena_bytes, w->out, qe, es, "out", &p->out.data, msg, len) ||
        (w->lse != CHILL_WIRE_NONE && place(arena, arena_bytes, w->lse, w->batch * w->heads_q * w->seq_q,
                                            sizeof(float), "lse", &p->lse.data, msg, len)))
        return -1;
    return 0;
}
