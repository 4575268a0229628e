/* Dynamic batching's data movement: which requests may share a launch (the
 * batch key), and packing their sequences into one variable-length launch
 * (cu_seqlens) in a staging buffer, then splitting the results back into each
 * request's own output tensors.
 *
 * Packed layout: tokens-major rows [token, head, D] for q/k/v/out, lse as
 * [token, head]; only the valid tokens of each sequence (seq_lens) are
 * packed. Sequence order is request order, then batch order. */
#ifndef CHILL_SERVER_PACK_H
#define CHILL_SERVER_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

typedef struct chill_pack_layout {
    int64_t n_seq, tokens_q, tokens_k;
    size_t off_q, off_k, off_v, off_cu_q, off_cu_k; /* inputs, from 0 */
    size_t off_out, off_lse;                        /* outputs, from off_out */
    size_t bytes;
    int want_lse;
} chill_pack_layout;

/* Whether a and b may share one launch: same mask and arguments, dtype, head
 * dim, head counts, sm_scale, q_offset, TF32 choice; both in host memory. */
int chill_batch_key_equal(const chill_request *a, const chill_request *b);

/* Valid query plus key tokens of r (what max_batch_tokens counts). */
int64_t chill_request_tokens(const chill_request *r);

/* Sizes and offsets of the packed launch of reqs[0..n). */
void chill_pack_plan(chill_request *const *reqs, int n, chill_pack_layout *l);

/* Copies the inputs into staging (l->bytes long) and sets packed to the
 * varlen call over it. */
void chill_pack(chill_request *const *reqs, int n, const chill_pack_layout *l, void *staging,
                chill_params *packed);

/* Copies each request's rows of out (and lse when it asked) back. */
void chill_unpack(chill_request *const *reqs, int n, const chill_pack_layout *l, const void *staging);

#endif
