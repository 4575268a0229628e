/* The statistics extension's counters (server/models.c) read as one
 * consistent snapshot while requests are being recorded: perf_analyzer
 * aborts when the counts of success, compute_input, compute_infer and
 * compute_output it reads differ. Writers record while the test reads the
 * JSON over and over; every snapshot must agree with itself. */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>

#include "models.h"

#define WRITERS 3
#define RECORDS 20000

static void *writer(void *arg) {
    chill_model *m = arg;
    for (int i = 0; i < RECORDS; i++)
        chill_model_record(m, 1, 100, 10, 20, 30, 40, i % 2);
    return NULL;
}

static json_int_t count_of(json_t *stats, const char *key) {
    return json_integer_value(json_object_get(json_object_get(stats, key), "count"));
}

START_TEST(snapshots_agree_while_recording) {
    chill_config c;
    char err[256];
    chill_config_defaults(&c);
    ck_assert_int_eq(chill_models_init(&c, err, sizeof err), 0);
    chill_model *m = chill_model_find("causal");
    ck_assert_ptr_nonnull(m);
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&t[i], NULL, writer, m);
    json_int_t last = 0;
    int snapshots = 0;
    while (last < (json_int_t)WRITERS * RECORDS) {
        char *text = chill_model_stats_json(m);
        json_t *j = json_loads(text, 0, NULL);
        ck_assert_ptr_nonnull(j);
        json_t *ms = json_array_get(json_object_get(j, "model_stats"), 0);
        json_t *inf = json_object_get(ms, "inference_stats");
        last = count_of(inf, "success");
        ck_assert_int_eq(count_of(inf, "queue"), last);
        ck_assert_int_eq(count_of(inf, "compute_input"), last);
        ck_assert_int_eq(count_of(inf, "compute_infer"), last);
        ck_assert_int_eq(count_of(inf, "compute_output"), last);
        ck_assert_int_eq(json_integer_value(json_object_get(ms, "inference_count")), last);
        json_decref(j);
        free(text);
        snapshots++;
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_gt(snapshots, 1);
    chill_models_free();
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_models");
    TCase *tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, snapshots_agree_while_recording);
    suite_add_tcase(s, tc);
    return s;
}
