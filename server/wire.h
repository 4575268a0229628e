/* Decoding a native-socket REQUEST frame (server/wire.c). */
#ifndef CHILL_SERVER_WIRE_H
#define CHILL_SERVER_WIRE_H

#include <stddef.h>

#include "chill.h"
#include "chillwire.h"
#include "config.h"

/* Fills p from the REQUEST frame w, its tensors inside arena[0..arena_bytes)
 * and model with the name of the model it counts under. 0, or -1 with what was
 * wrong and what is accepted in msg. */
int chill_wire_decode(const chill_config *c, char *arena, size_t arena_bytes, const chill_wire_request *w,
                      chill_params *p, const char **model, char *msg, size_t len);

#endif
