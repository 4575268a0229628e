/* The tuning table: which tile configuration runs for each (architecture,
 * dtype, head dim, mask class). Read once per architecture from
 * $CHILL_TUNING_DIR/sm_<arch>.json (default config/tuning/), the file that
 * `chillctl tune` writes:
 *
 *   {"arch": "sm_90", "device": "NVIDIA H100 80GB HBM3", "entries": [
 *     {"dtype": "FP16", "head_dim": 64, "mask_class": "dense", "config": "64x64w4b3"}, ...]}
 *
 * dtype is FP32, FP16, BF16, or TF32: fp32 calls that allow TF32 (on sm_80+,
 * aligned) look up TF32 entries, every other fp32 call FP32 ones. mask_class
 * is dense, banded or chunked (launch.h); chunked falls back to banded.
 *
 * An entry naming a configuration that is not compiled in is reported on
 * stderr and skipped; where the table has no entry (or no file exists), the
 * first compiled candidate for the dtype and head dim runs. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "launch.h"

#define CHILL_ARCH_MAX 200
#define CHILL_TUNING_MAX 128

typedef struct chill_tuning_entry {
    chill_dtype dtype;
    int tf32;
    int head_dim;
    chill_mask_class cls;
    const chill_cuda_config *config;
} chill_tuning_entry;

typedef struct chill_tuning_table {
    int loaded;
    int count;
    chill_tuning_entry entries[CHILL_TUNING_MAX];
} chill_tuning_table;

static chill_tuning_table chill_tables[CHILL_ARCH_MAX];
static pthread_mutex_t chill_tables_lock = PTHREAD_MUTEX_INITIALIZER;

static int chill_class_parse(const char *s, chill_mask_class *c) {
    for (int i = 0; i < CHILL_MASK_CLASS_COUNT; i++)
        if (s != NULL && strcmp(s, chill_cuda_mask_class_name((chill_mask_class)i)) == 0) {
            *c = (chill_mask_class)i;
            return 0;
        }
    return -1;
}

/* A table's dtype: a chill_dtype name, or "TF32" (fp32 with tf32). */
static int chill_family_parse(const char *s, chill_dtype *dtype, int *tf32) {
    *tf32 = s != NULL && strcasecmp(s, chill_cuda_family_name(CHILL_F32, 1)) == 0;
    if (*tf32) {
        *dtype = CHILL_F32;
        return 0;
    }
    return chill_dtype_parse(s, dtype);
}

static const chill_cuda_config *chill_config_named(int arch, chill_dtype dtype, int tf32, int head_dim,
                                                   const char *name) {
    const chill_cuda_config *cand[16];
    int n = chill_cuda_candidates(dtype, tf32, head_dim, arch, cand, 16);
    for (int i = 0; i < n; i++)
        if (name != NULL && strcmp(cand[i]->name, name) == 0)
            return cand[i];
    return NULL;
}

static void chill_tuning_load(int arch, chill_tuning_table *t) {
    const char *dir = getenv("CHILL_TUNING_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/sm_%d.json", dir != NULL && dir[0] != '\0' ? dir : "config/tuning", arch);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        return; /* no table for this architecture: defaults */
    json_t *entries = json_object_get(root, "entries"), *e;
    size_t i;
    json_array_foreach(entries, i, e) {
        chill_dtype dtype;
        int tf32;
        chill_mask_class cls;
        const char *cfg = json_string_value(json_object_get(e, "config"));
        int head_dim = (int)json_integer_value(json_object_get(e, "head_dim"));
        const chill_cuda_config *c = NULL;
        if (chill_family_parse(json_string_value(json_object_get(e, "dtype")), &dtype, &tf32) == 0 &&
            chill_class_parse(json_string_value(json_object_get(e, "mask_class")), &cls) == 0)
            c = chill_config_named(arch, dtype, tf32, head_dim, cfg);
        if (c == NULL || t->count == CHILL_TUNING_MAX) {
            fprintf(stderr, "libchill: %s: entry %zu skipped: needs dtype FP32|FP16|BF16|TF32, mask_class "
                            "dense|banded|chunked and a config compiled for that dtype and head_dim\n",
                    path, i);
            continue;
        }
        t->entries[t->count++] = (chill_tuning_entry){dtype, tf32, head_dim, cls, c};
    }
    json_decref(root);
}

const chill_cuda_config *chill_cuda_tuned_config(int arch, chill_dtype dtype, int tf32, int head_dim,
                                                 chill_mask_class c) {
    if (arch > 0 && arch < CHILL_ARCH_MAX) {
        chill_tuning_table *t = &chill_tables[arch];
        pthread_mutex_lock(&chill_tables_lock);
        if (!t->loaded) {
            chill_tuning_load(arch, t);
            t->loaded = 1;
        }
        pthread_mutex_unlock(&chill_tables_lock);
        for (;;) {
            for (int i = 0; i < t->count; i++)
                if (t->entries[i].dtype == dtype && t->entries[i].tf32 == tf32 &&
                    t->entries[i].head_dim == head_dim && t->entries[i].cls == c)
                    return t->entries[i].config;
            if (c != CHILL_MASK_CLASS_CHUNKED)
                break;
            c = CHILL_MASK_CLASS_BANDED; /* a table from before the chunked class */
        }
    }
    const chill_cuda_config *first;
    return chill_cuda_candidates(dtype, tf32, head_dim, arch, &first, 1) == 1 ? first : NULL;
}
