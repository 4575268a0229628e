/* libFuzzer target: an infer request body, decoded as chilld decodes one
 * (chill_infer_decode) and, when it decodes, answered (chill_infer_encode).
 *
 * The input's first byte picks the model (its low bits) and whether the
 * binary part starts 64-byte aligned as chilld lays bodies out (its top bit;
 * else tensors are copied out of the body); the next four bytes are the
 * Inference-Header-Content-Length (0xffffffff: none, the body is all JSON);
 * the rest is the body, in a buffer that ends where the body ends, so that
 * AddressSanitizer stops any read past it. Decoding must answer 200, or a 4xx
 * with a message; and the same body decoded again (its JSON header now from
 * server/jsonhead.c's per-thread copy) must come out the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "protocol.h"

static chill_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    chill_fuzz_models(&cfg, 1 << 16, 4096, "fuzz_infer"); /* small limits keep each run fast */
    return 0;
}

/* Decodes and answers body, and writes what came of it into what: the
 * status and message, or the request's shape, mask and response header. */
static void answer(chill_model *m, const char *body, size_t len, int64_t header_len, char *what, size_t size) {
    chill_infer inf;
    char err[512] = "";
    int st = chill_infer_decode(&inf, &cfg, m, body, len, header_len, err, sizeof err);
    if (st != 200 && (st < 400 || st > 499 || err[0] == '\0')) {
        fprintf(stderr, "fuzz_infer: decode answered %d with message \"%s\"\n", st, err);
        abort();
    }
    if (st == 200) {
        inf.req.status = CHILL_OK;
        st = chill_infer_encode(&inf, err, sizeof err);
        if (st != 200) {
            fprintf(stderr, "fuzz_infer: a request that decoded could not be answered: %d %s\n", st, err);
            abort();
        }
        const chill_params *p = &inf.req.params;
        snprintf(what, size, "%s B%lld Hq%lld Hkv%lld Tq%lld Tk%lld D%lld mask %d(%lld,%lld) %.*s",
                 chill_dtype_name(p->dtype), (long long)p->batch, (long long)p->heads_q, (long long)p->heads_kv,
                 (long long)p->seq_q, (long long)p->seq_k, (long long)p->head_dim, p->mask.type,
                 (long long)p->mask.arg[0], (long long)p->mask.arg[1], (int)inf.resp_json_len, inf.resp_json);
    } else {
        snprintf(what, size, "%d %s", st, err);
    }
    chill_infer_free(&inf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5)
        return 0;
    chill_model *m = chill_model_at((data[0] & 0x7f) % chill_model_count());
    uint32_t h;
    memcpy(&h, data + 1, sizeof h);
    int64_t header_len = h == UINT32_MAX ? -1 : (int64_t)h;
    size_t len = size - 5;
    size_t pad = 0;
    if ((data[0] & 0x80) && header_len >= 0 && (uint64_t)header_len <= len)
        pad = (64 - (size_t)header_len % 64) % 64;
    char *alloc;
    if (posix_memalign((void **)&alloc, 64, pad + len) != 0 || alloc == NULL)
        return 0;
    char *body = alloc + pad;
    memcpy(body, data + 5, len);

    char first[2048], again[2048];
    answer(m, body, len, header_len, first, sizeof first);
    answer(m, body, len, header_len, again, sizeof again);
    if (strcmp(first, again) != 0) {
        fprintf(stderr, "fuzz_infer: the same body answered differently the second time:\n%s\n%s\n", first, again);
        abort();
    }
    free(alloc);
    return 0;
}
