/* The frames of chilld's native Unix-socket transport, shared by the server
 * (server/uds.c) and libchillclient (client/lib/uds.c). client/PROTOCOL.md
 * describes the exchange for implementers in other languages; this header is
 * its exact layout. All integers are in the host's byte order (both ends are
 * on one machine), every struct is naturally aligned with no padding, and
 * offsets are in bytes from the start of the arena. */
#ifndef CHILL_WIRE_H
#define CHILL_WIRE_H

#include <stdint.h>

#define CHILL_WIRE_MAGIC   0x4c4c4843u /* "CHLL" */
#define CHILL_WIRE_VERSION 1
#define CHILL_WIRE_NONE    UINT64_MAX  /* an absent optional tensor */
#define CHILL_WIRE_MASK_LEN 64
#define CHILL_WIRE_MESSAGE_MAX 512

enum chill_wire_type {
    CHILL_WIRE_HELLO = 1,    /* client -> server, carries the arena fd (SCM_RIGHTS) */
    CHILL_WIRE_WELCOME = 2,  /* server -> client: the arena is accepted, or why not */
    CHILL_WIRE_REQUEST = 3,  /* client -> server: one attention call */
    CHILL_WIRE_RESULT = 4,   /* server -> client: its completion */
};

/* Every frame starts with this; length counts the whole frame. */
typedef struct chill_wire_header {
    uint32_t magic;
    uint16_t type;
    uint16_t version;
    uint32_t length;
    uint32_t reserved;       /* 0 */
    uint64_t id;             /* chosen by the client; echoed in the RESULT */
} chill_wire_header;

typedef struct chill_wire_hello {
    chill_wire_header h;
    uint64_t arena_bytes;    /* size of the memfd; it must carry F_SEAL_SHRINK */
} chill_wire_hello;

typedef struct chill_wire_request {
    chill_wire_header h;
    uint32_t dtype;          /* chill_dtype: 0 FP32, 1 FP16, 2 BF16 */
    uint32_t flags;          /* 0 */
    int64_t batch, heads_q, heads_kv, seq_q, seq_k, head_dim;
    int64_t q_offset;        /* INT64_MIN: Tk - Tq */
    float sm_scale;          /* 0: 1/sqrt(head_dim) */
    uint32_t reserved;       /* 0 */
    uint64_t q, k, v, out;   /* arena offsets of contiguous [B,H,T,D] tensors */
    uint64_t lse;            /* arena offset of float32 [B,Hq,Tq], or CHILL_WIRE_NONE */
    char mask[CHILL_WIRE_MASK_LEN]; /* NUL-terminated spec: "causal", "sliding_window(64,0)" */
} chill_wire_request;

/* WELCOME and RESULT: status is a chill_status (0 = OK); code the HTTP status
 * the same failure gets over HTTP (200, 400, 403, 503, 504, 500); message_len
 * bytes of UTF-8 (not NUL-terminated) follow when status is not 0. */
typedef struct chill_wire_result {
    chill_wire_header h;
    int32_t status;
    int32_t code;
    uint32_t message_len;
    uint32_t reserved;
} chill_wire_result;

_Static_assert(sizeof(chill_wire_header) == 24, "the frame header is 24 bytes (client/PROTOCOL.md)");
_Static_assert(sizeof(chill_wire_hello) == 32, "HELLO is 32 bytes (client/PROTOCOL.md)");
_Static_assert(sizeof(chill_wire_request) == 200, "REQUEST is 200 bytes (client/PROTOCOL.md)");
_Static_assert(sizeof(chill_wire_result) == 40, "WELCOME and RESULT are 40 bytes (client/PROTOCOL.md)");

#endif
