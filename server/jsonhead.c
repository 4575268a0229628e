/* The last small JSON header each thread parsed (server/jsonhead.h), in
 * thread-specific data so that a thread's copy is freed when it exits. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jsonhead.h"

typedef struct kept {
    char bytes[CHILL_JSONHEAD_KEEP_MAX];
    size_t len;
    json_t *tree;
} kept;

static pthread_key_t kept_key;
static pthread_once_t kept_once = PTHREAD_ONCE_INIT;

static void kept_free(void *p) {
    kept *k = p;
    json_decref(k->tree);
    free(k);
}

static void kept_init(void) { pthread_key_create(&kept_key, kept_free); }

/* This thread's kept header, made on first use; NULL when out of memory. */
static kept *this_thread(void) {
    pthread_once(&kept_once, kept_init);
    kept *k = pthread_getspecific(kept_key);
    if (k == NULL && (k = calloc(1, sizeof *k)) != NULL && pthread_setspecific(kept_key, k) != 0) {
        free(k);
        k = NULL;
    }
    return k;
}

json_t *chill_jsonhead_parse(const char *bytes, size_t len, json_error_t *je) {
    kept *k = len <= CHILL_JSONHEAD_KEEP_MAX ? this_thread() : NULL;
    if (k != NULL && k->tree != NULL && k->len == len && memcmp(k->bytes, bytes, len) == 0)
        return json_incref(k->tree);
    json_t *tree = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, je);
    if (k != NULL && tree != NULL) {
        json_decref(k->tree);
        memcpy(k->bytes, bytes, len);
        k->len = len;
        k->tree = json_incref(tree);
    }
    return tree;
}
