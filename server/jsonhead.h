/* Parsing an infer request's JSON header, with the last one each thread
 * parsed kept for the next.
 *
 * A client that sends the same request again and again (the same shapes,
 * the same offsets in its shared-memory region: a co-located client in its
 * loop, a load generator) sends byte-identical JSON headers. jansson takes
 * ~9 us to parse the ~700 bytes of a shared-memory request's header (dev VM),
 * as long as the rest of such a request's decoding and encoding together.
 * So each thread keeps the last header it parsed, when it is small, and
 * returns the same tree, one more reference, for the same bytes. A tree is
 * only read once parsed; jansson counts references atomically. */
#ifndef CHILL_SERVER_JSONHEAD_H
#define CHILL_SERVER_JSONHEAD_H

#include <jansson.h>
#include <stddef.h>

/* Headers up to this many bytes are kept; longer ones (JSON tensor data)
 * are parsed every time. */
#define CHILL_JSONHEAD_KEEP_MAX 4096

/* The parsed bytes[0..len) (a new reference: json_decref it), or NULL with
 * je filled, as json_loadb with JSON_REJECT_DUPLICATES. */
json_t *chill_jsonhead_parse(const char *bytes, size_t len, json_error_t *je);

#endif
