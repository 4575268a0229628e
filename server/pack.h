/* Dynamic batching's data movement: which requests may share a launch (the
 * batch key), and the layout of their packed variable-length launch
 * (cu_seqlens) in a device buffer, with the copies that bring each request's
 * tensors there and its outputs back (server/device.h's chill_copy).
 *
 * Packed layout: head-major, [head, token, D] for q/k/v/out and [head,
 * token] for lse, with only the valid tokens of each sequence (seq_lens), in
 * request order, then batch order. Head-major keeps a BHTD sequence's
 * tokens of one head contiguous on both sides, so a whole tensor of a
 * sequence is one 2D copy (one row per head); a BTHD one takes a copy per
 * head. */
#ifndef CHILL_SERVER_PACK_H
#define CHILL_SERVER_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "request.h"

typedef struct chill_pack_layout {
    int64_t n_seq, tokens_q, tokens_k;
    size_t off_q, off_k, off_v, off_out, off_lse; /* in the device buffer */
    size_t bytes;
    int max_in, max_out; /* the most copies the launch can need */
    int want_lse;
} chill_pack_layout;

/* A packed launch over a device buffer, ready for forward(). */
typedef struct chill_packed {
    chill_params params;     /* the varlen call; cu_seqlens in host memory */
    chill_transfer transfer;
    void *scratch;           /* cu_seqlens and the copy lists */
} chill_packed;

/* Whether a and b may share one launch: same mask and arguments, dtype, head
 * dim, head counts, sm_scale, q_offset, TF32 choice; both in host memory, or
 * both in CUDA shared memory on one device. */
int chill_batch_key_equal(const chill_request *a, const chill_request *b);

/* Valid query plus key tokens of r (what max_batch_tokens counts). */
int64_t chill_request_tokens(const chill_request *r);

/* Sizes and offsets of the packed launch of reqs[0..n). */
void chill_pack_plan(chill_request *const *reqs, int n, chill_pack_layout *l);

/* Lays reqs[0..n) out in dev (a device buffer of l->bytes) and lists the
 * copies. 0 on success, -1 when out of host memory. Release with
 * chill_packed_free(). */
int chill_pack(chill_request *const *reqs, int n, const chill_pack_layout *l, void *dev, chill_packed *pk);
void chill_packed_free(chill_packed *pk);

/* Runs n copies with memcpy, for a launch whose buffer is host memory (the
 * CPU backend's): in 1 copies the inputs into the buffer, in 0 the outputs
 * back. */
void chill_copies_run_host(const chill_copy *list, int n, int in);

#endif
