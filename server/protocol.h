/* The Open Inference Protocol's infer request and response for attention,
 * with the binary tensor extension and shared-memory tensors.
 *
 * chill_infer_decode() turns a request body (JSON header, then binary tensor
 * bytes when Inference-Header-Content-Length is given) into a chill_request:
 * binary tensors are used in place in the body when aligned, JSON data and
 * host shared-memory tensors are copied into buffers of the infer, CUDA
 * shared-memory tensors are used in place on their device. Every failure is
 * an HTTP status with a message naming the field and the accepted values;
 * decoding never reads outside the body. After the scheduler's done(),
 * chill_infer_encode() writes host shared-memory outputs and builds the
 * response as a JSON header plus binary segments. Host outputs (in the
 * response or in a system shared-memory region) answer rows past seq_lens
 * with zeros in out and -inf in lse; outputs in CUDA shared memory are written
 * in place by the kernel, and rows past seq_lens keep what the region held. */
#ifndef CHILL_SERVER_PROTOCOL_H
#define CHILL_SERVER_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "models.h"
#include "regions.h"
#include "request.h"

#define CHILL_INFER_MAX_VIEWS 8

typedef struct chill_output_spec {
    int computed;   /* the kernel writes it */
    int direct;     /* the GPU writes it straight into its pinned host region */
    int returned;   /* it appears in the response */
    int binary;     /* as a binary segment (else JSON data, unless in a region) */
    int view;       /* index into views when in a shared-memory region, else -1 */
    void *data;     /* where the kernel writes (host buffer, or device view) */
    size_t bytes;
    int64_t shape[4];
    int rank;
} chill_output_spec;

typedef struct chill_infer {
    chill_request req;
    chill_model *model;
    json_t *header;            /* the request's JSON header (id is echoed) */
    void *owned[8];
    int n_owned;
    chill_region_view views[CHILL_INFER_MAX_VIEWS];
    int n_views;
    chill_output_spec out, lse;
    /* the response */
    char *resp_json;
    size_t resp_json_len;
    const void *seg[3];
    size_t seg_len[3];
    int n_seg;
    size_t resp_len;           /* header plus segments */
    int resp_binary;           /* segments present: Inference-Header-Content-Length */
} chill_infer;

/* Decodes body[0..len) for model m. header_len is the JSON header's length
 * (Inference-Header-Content-Length), or -1 when the whole body is JSON.
 * Returns 200, or an HTTP status with err filled. On any return the infer
 * must be released with chill_infer_free(). */
int chill_infer_decode(chill_infer *inf, const chill_config *c, chill_model *m, const char *body, size_t len,
                       int64_t header_len, char *err, size_t errlen);

/* Builds the response of a finished request. Returns 200, or an HTTP status
 * with err filled (a host output region that could not be written). */
int chill_infer_encode(chill_infer *inf, char *err, size_t errlen);

void chill_infer_free(chill_infer *inf);

/* {"error":"..."} as a malloc'd string. */
char *chill_error_json(const char *msg);

#endif
