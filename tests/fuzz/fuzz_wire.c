/* libFuzzer target: a native-socket REQUEST frame, decoded as chilld decodes
 * one (chill_wire_decode) over a 64 KiB arena. The input is the frame's 200
 * bytes (shorter inputs are zero-filled). A frame either decodes, or the
 * decoder says why; one that decodes describes tensors that lie wholly inside
 * the arena, each aligned to its element, with the frame's own dimensions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

#define ARENA_BYTES (64 * 1024)

static chill_config cfg;
static char *arena;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    chill_fuzz_models(&cfg, 1 << 20, 1 << 16, "fuzz_wire");
    arena = malloc(ARENA_BYTES);
    if (arena == NULL) {
        fprintf(stderr, "fuzz_wire: no memory for the arena\n");
        abort();
    }
    return 0;
}

static void fail(const char *what, const char *tensor) {
    fprintf(stderr, "fuzz_wire: a frame that decoded has %s %s\n", tensor, what);
    abort();
}

/* A decoded tensor of elems elements of esize bytes: inside the arena, aligned. */
static void check_tensor(const void *data, int64_t elems, size_t esize, const char *name) {
    const char *p = data;
    if (p < arena || p > arena + ARENA_BYTES)
        fail("starting outside the arena", name);
    if ((uint64_t)elems * esize > (uint64_t)(arena + ARENA_BYTES - p))
        fail("ending past the arena", name);
    if ((size_t)(p - arena) % esize != 0)
        fail("not aligned to its element", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    chill_wire_request w;
    memset(&w, 0, sizeof w);
    memcpy(&w, data, size < sizeof w ? size : sizeof w);
    chill_params p;
    chill_params_init(&p);
    const char *model = NULL;
    char msg[512] = "";
    if (chill_wire_decode(&cfg, arena, ARENA_BYTES, &w, &p, &model, msg, sizeof msg) != 0) {
        if (msg[0] == '\0') {
            fprintf(stderr, "fuzz_wire: a frame was refused without a message\n");
            abort();
        }
        return 0;
    }
    if (p.batch != w.batch || p.heads_q != w.heads_q || p.heads_kv != w.heads_kv || p.seq_q != w.seq_q ||
        p.seq_k != w.seq_k || p.head_dim != w.head_dim || (int)p.dtype != (int)w.dtype || model == NULL)
        fail("other dimensions, dtype or no model than the frame's", "");
    size_t es = chill_dtype_size(p.dtype);
    int64_t qe = p.batch * p.heads_q * p.seq_q * p.head_dim, ke = p.batch * p.heads_kv * p.seq_k * p.head_dim;
    check_tensor(p.q.data, qe, es, "q");
    check_tensor(p.k.data, ke, es, "k");
    check_tensor(p.v.data, ke, es, "v");
    check_tensor(p.out.data, qe, es, "out");
    if (w.lse != CHILL_WIRE_NONE)
        check_tensor(p.lse.data, p.batch * p.heads_q * p.seq_q, sizeof(float), "lse");
    return 0;
}
