/* The model table and the documents that describe models. A mask type's
 * model takes the mask arguments as request parameters; a preset's model has
 * them fixed. Inputs and outputs are the same for all: q, k, v, optional
 * seq_lens and kv_seq_lens; out and optional lse. The documents list q, k, v,
 * out and lse only: perf_analyzer generates data for every input listed, and
 * the optional ones change what is computed. The advertised datatype is
 * FP16 (what perf_analyzer generates); FP32 and BF16 are accepted too. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models.h"

static chill_model *models;
static int n_models;

static void set_name(chill_model *m, const char *name) {
    snprintf(m->name, sizeof m->name, "%s", name);
    json_t *s = json_string(m->name);
    size_t n = s != NULL ? json_dumpb(s, m->name_json, sizeof m->name_json - 1, JSON_ENCODE_ANY) : 0;
    m->name_json[n < sizeof m->name_json ? n : 0] = '\0';
    json_decref(s);
}

int chill_models_init(const chill_config *c, char *err, size_t errlen) {
    n_models = chill_mask_count() + c->n_presets;
    models = calloc((size_t)n_models, sizeof *models);
    for (int t = 0; t < chill_mask_count(); t++) {
        set_name(&models[t], chill_mask_name(t));
        models[t].mask_type = t;
        models[t].mask.type = t;
    }
    for (int i = 0; i < c->n_presets; i++) {
        chill_model *m = &models[chill_mask_count() + i];
        chill_error e;
        if (chill_mask_parse(c->presets[i].spec, &m->mask, &e) != CHILL_OK) {
            snprintf(err, errlen, "preset %s: %s", c->presets[i].name, e.message);
            chill_models_free();
            return -1;
        }
        set_name(m, c->presets[i].name);
        m->mask_type = m->mask.type;
        m->preset = 1;
        chill_mask_format(&m->mask, m->spec, sizeof m->spec);
    }
    return 0;
}

void chill_models_free(void) {
    free(models);
    models = NULL;
    n_models = 0;
}

int chill_model_count(void) { return n_models; }

chill_model *chill_model_at(int i) { return i >= 0 && i < n_models ? &models[i] : NULL; }

chill_model *chill_model_find(const char *name) {
    for (int i = 0; i < n_models; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

/* Every model's statistics change under this lock, so a snapshot is
 * consistent: perf_analyzer aborts when the counts of compute_input,
 * compute_infer and compute_output it reads differ. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

static void stat_add(chill_stat *s, uint64_t ns) {
    s->count++;
    s->ns += ns;
}

void chill_model_record(chill_model *m, int ok, uint64_t total_ns, uint64_t queue_ns,
                        uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns, int first_of_launch) {
    chill_model_stats *s = &m->stats;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&stats_lock);
    s->last_inference_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (!ok) {
        stat_add(&s->fail, total_ns);
    } else {
        stat_add(&s->success, total_ns);
        stat_add(&s->queue, queue_ns);
        stat_add(&s->compute_input, input_ns);
        stat_add(&s->compute_infer, infer_ns);
        stat_add(&s->compute_output, output_ns);
        s->inference_count++;
        s->execution_count += first_of_launch != 0;
    }
    pthread_mutex_unlock(&stats_lock);
}

static char *dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static json_t *tensor_meta(const char *name, const char *datatype, int rank) {
    json_t *shape = json_array();
    for (int i = 0; i < rank; i++)
        json_array_append_new(shape, json_integer(-1));
    return json_pack("{s:s,s:s,s:o}", "name", name, "datatype", datatype, "shape", shape);
}

char *chill_model_metadata_json(const chill_model *m) {
    json_t *inputs = json_array(), *outputs = json_array();
    json_array_append_new(inputs, tensor_meta("q", "FP16", 4));
    json_array_append_new(inputs, tensor_meta("k", "FP16", 4));
    json_array_append_new(inputs, tensor_meta("v", "FP16", 4));
    json_array_append_new(outputs, tensor_meta("out", "FP16", 4));
    json_array_append_new(outputs, tensor_meta("lse", "FP32", 3));
    return dump(json_pack("{s:s,s:[s],s:s,s:o,s:o}", "name", m->name, "versions", "1", "platform",
                          "chill_attention", "inputs", inputs, "outputs", outputs));
}

static json_t *config_tensor(const char *name, const char *type, int rank) {
    json_t *dims = json_array();
    for (int i = 0; i < rank; i++)
        json_array_append_new(dims, json_integer(-1));
    json_t *t = json_pack("{s:s,s:s,s:s,s:o}", "name", name, "data_type", type, "format", "FORMAT_NONE",
                          "dims", dims);
    return t;
}

char *chill_model_config_json(const chill_model *m) {
    json_t *input = json_array(), *output = json_array();
    json_array_append_new(input, config_tensor("q", "TYPE_FP16", 4));
    json_array_append_new(input, config_tensor("k", "TYPE_FP16", 4));
    json_array_append_new(input, config_tensor("v", "TYPE_FP16", 4));
    json_array_append_new(output, config_tensor("out", "TYPE_FP16", 4));
    json_array_append_new(output, config_tensor("lse", "TYPE_FP32", 3));
    json_t *params = json_object();
    char mask[160];
    if (m->preset)
        snprintf(mask, sizeof mask, "%s", m->spec);
    else
        snprintf(mask, sizeof mask, "%s (arguments as request parameters)", chill_mask_name(m->mask_type));
    json_object_set_new(params, "mask", json_pack("{s:s}", "string_value", mask));
    return dump(json_pack("{s:s,s:s,s:s,s:i,s:o,s:o,s:o,s:[{s:i,s:s}]}", "name", m->name,
                          "platform", "chill_attention", "backend", "chill", "max_batch_size", 0,
                          "input", input, "output", output, "parameters", params,
                          "instance_group", "count", 1, "kind", "KIND_AUTO"));
}

static json_t *stat_json(const chill_stat *s) {
    return json_pack("{s:I,s:I}", "count", (json_int_t)s->count, "ns", (json_int_t)s->ns);
}

static json_t *model_stats(const chill_model *m) {
    pthread_mutex_lock(&stats_lock);
    const chill_model_stats snap = m->stats, *s = &snap;
    pthread_mutex_unlock(&stats_lock);
    json_t *inf = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "success", stat_json(&s->success), "fail",
                            stat_json(&s->fail), "queue", stat_json(&s->queue), "compute_input",
                            stat_json(&s->compute_input), "compute_infer", stat_json(&s->compute_infer),
                            "compute_output", stat_json(&s->compute_output), "cache_hit",
                            json_pack("{s:i,s:i}", "count", 0, "ns", 0));
    json_object_set_new(inf, "cache_miss", json_pack("{s:i,s:i}", "count", 0, "ns", 0));
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:[]}", "name", m->name, "version", "1",
                     "last_inference", (json_int_t)s->last_inference_ms, "inference_count",
                     (json_int_t)s->inference_count, "execution_count", (json_int_t)s->execution_count,
                     "inference_stats", inf, "batch_stats");
}

char *chill_model_stats_json(const chill_model *m) {
    json_t *list = json_array();
    for (int i = 0; i < n_models; i++)
        if (m == NULL || m == &models[i])
            json_array_append_new(list, model_stats(&models[i]));
    return dump(json_pack("{s:o}", "model_stats", list));
}

char *chill_repository_index_json(void) {
    json_t *list = json_array();
    for (int i = 0; i < n_models; i++)
        json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", models[i].name, "version", "1",
                                              "state", "READY"));
    return dump(list);
}
