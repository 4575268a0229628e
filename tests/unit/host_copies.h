/* Runs a packed launch's copies (server/device.h's chill_copy) with memcpy,
 * for tests whose "device" buffer is host memory: in 1 copies inputs into
 * the buffer, in 0 copies outputs back. */
#ifndef CHILL_TEST_HOST_COPIES_H
#define CHILL_TEST_HOST_COPIES_H

#include <string.h>

#include "device.h"

static inline void chill_test_run_copies(const chill_copy *list, int n, int in) {
    for (int i = 0; i < n; i++) {
        const chill_copy *c = &list[i];
        for (size_t r = 0; r < c->height; r++) {
            char *req = (char *)c->req + r * c->req_pitch, *dev = (char *)c->dev + r * c->dev_pitch;
            memcpy(in ? dev : req, in ? req : dev, c->width);
        }
    }
}

#endif
