/* What the fuzz targets share: the input as a C string, and the models a
 * decoder looks requests up in. */
#ifndef CHILL_TEST_FUZZ_H
#define CHILL_TEST_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"

/* data[0..size) NUL-terminated in a buffer of its own (free it), or NULL. */
static inline char *chill_fuzz_text(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (text != NULL) {
        memcpy(text, data, size);
        text[size] = '\0';
    }
    return text;
}

/* c: the defaults with these limits and one preset, "sw-4"; and the models
 * made from it. Aborts, naming target, when they cannot be made. */
static inline void chill_fuzz_models(chill_config *c, int64_t max_elements, int64_t max_tokens, const char *target) {
    char err[256];
    chill_config_defaults(c);
    c->max_elements = max_elements;
    c->max_tokens = max_tokens;
    c->n_presets = 1;
    snprintf(c->presets[0].name, sizeof c->presets[0].name, "sw-4");
    snprintf(c->presets[0].spec, sizeof c->presets[0].spec, "sliding_window(4,0)");
    if (chill_models_init(c, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", target, err);
        abort();
    }
}

#endif
