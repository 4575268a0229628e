/* The models chilld serves: one per mask type (its arguments come with each
 * request) and one per preset from the config (arguments fixed). Each keeps
 * the counters of Triton's statistics extension. Also the JSON documents that
 * describe a model: v2 metadata, Triton's model config (read by
 * perf_analyzer), statistics, and the repository index. */
#ifndef CHILL_SERVER_MODELS_H
#define CHILL_SERVER_MODELS_H

#include <stdint.h>

#include "chill.h"
#include "config.h"

typedef struct chill_stat {
    uint64_t count, ns;
} chill_stat;

typedef struct chill_model_stats {
    chill_stat success, fail, queue, compute_input, compute_infer, compute_output;
    uint64_t inference_count, execution_count, last_inference_ms;
} chill_model_stats;

typedef struct chill_model {
    char name[64];
    char name_json[6 * 64 + 3]; /* name as a JSON string, escaped once for every response (\u00XX at worst) */
    int mask_type;        /* CHILL_MASK_<name> */
    int preset;           /* arguments fixed in `mask` */
    chill_mask mask;      /* the preset's mask; for a mask type, its type only */
    char spec[128];       /* the preset's spec, canonical */
    chill_model_stats stats; /* changed and read under one lock (models.c) */
} chill_model;

/* Builds the table from the mask registry and c's presets. 0 on success. */
int chill_models_init(const chill_config *c, char *err, size_t errlen);
void chill_models_free(void);

int chill_model_count(void);
chill_model *chill_model_at(int i);
chill_model *chill_model_find(const char *name);

/* Records one answered request; first_of_launch counts the launch it shared
 * with others once (execution_count). */
void chill_model_record(chill_model *m, int ok, uint64_t total_ns, uint64_t queue_ns,
                        uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns, int first_of_launch);

/* JSON documents, malloc'd strings. */
char *chill_model_metadata_json(const chill_model *m);
char *chill_model_config_json(const chill_model *m);
char *chill_model_stats_json(const chill_model *m); /* m NULL: every model */
char *chill_repository_index_json(void);

#endif
