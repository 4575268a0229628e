/* The Prometheus text exposition (server/metrics.c): HELP and TYPE lines,
 * one series per label set, counters adding, gauges set, histograms with
 * cumulative buckets, +Inf, _sum and _count, and label values escaped.
 * chilld's own families follow the naming conventions (base units,
 * _total on counters). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *text;

static void render(void) {
    free(text);
    text = chill_metrics_render(NULL);
}

static void has(const char *line) {
    ck_assert_msg(strstr(text, line) != NULL, "missing \"%s\" in:\n%s", line, text);
}

START_TEST(counter_and_gauge) {
    chill_metric *c = chill_metric_counter("t_requests_total", "Requests.", "model,code");
    chill_metric *g = chill_metric_gauge("t_in_flight", "In flight.", "model");
    chill_metric_add(c, 1, "causal", "200");
    chill_metric_add(c, 2, "causal", "200");
    chill_metric_add(c, 1, "causal", "400");
    chill_metric_add(c, 0.5, "full", "200");
    chill_metric_set(g, 7, "causal");
    chill_metric_add(g, -2, "causal");
    render();
    has("# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n");
    has("t_requests_total{model=\"causal\",code=\"200\"} 3\n");
    has("t_requests_total{model=\"causal\",code=\"400\"} 1\n");
    has("t_requests_total{model=\"full\",code=\"200\"} 0.5\n");
    has("# TYPE t_in_flight gauge\nt_in_flight{model=\"causal\"} 5\n");
    chill_metrics_free();
}
END_TEST

START_TEST(histogram) {
    static const double b[] = {0.001, 0.01, 0.1};
    chill_metric *h = chill_metric_histogram("t_seconds", "Durations.", "mask", b, 3);
    chill_metric_observe(h, 0.0005, "causal");
    chill_metric_observe(h, 0.001, "causal"); /* le is inclusive */
    chill_metric_observe(h, 0.05, "causal");
    chill_metric_observe(h, 3, "causal");
    render();
    has("# TYPE t_seconds histogram\n");
    has("t_seconds_bucket{mask=\"causal\",le=\"0.001\"} 2\n");
    has("t_seconds_bucket{mask=\"causal\",le=\"0.01\"} 2\n");
    has("t_seconds_bucket{mask=\"causal\",le=\"0.1\"} 3\n");
    has("t_seconds_bucket{mask=\"causal\",le=\"+Inf\"} 4\n");
    const char *sum = strstr(text, "t_seconds_sum{mask=\"causal\"} ");
    ck_assert_ptr_nonnull(sum);
    ck_assert_double_eq_tol(strtod(sum + strlen("t_seconds_sum{mask=\"causal\"} "), NULL), 3.0515, 1e-12);
    has("t_seconds_count{mask=\"causal\"} 4\n");
    chill_metrics_free();
}
END_TEST

START_TEST(label_escaping) {
    chill_metric *c = chill_metric_counter("t_total", "Escapes.", "model");
    chill_metric_add(c, 1, "a\"b\\c\nd");
    render();
    has("t_total{model=\"a\\\"b\\\\c\\nd\"} 1\n");
    chill_metrics_free();
}
END_TEST

START_TEST(no_labels) {
    chill_metric *g = chill_metric_gauge("t_up", "Up.", "");
    chill_metric_set(g, 1);
    render();
    has("t_up 1\n");
    chill_metrics_free();
}
END_TEST

START_TEST(server_families_follow_conventions) {
    chill_metrics_init();
    chill_metric_add(chill_m.requests, 1, "causal", "causal", "200");
    chill_metric_observe(chill_m.request_seconds, 0.002, "causal", "causal");
    chill_metric_add(chill_m.flops, 1e9, "causal", "causal", "FP16");
    render();
    has("# TYPE chill_requests_total counter\n");
    has("chill_requests_total{model=\"causal\",mask=\"causal\",code=\"200\"} 1\n");
    has("# TYPE chill_request_duration_seconds histogram\n");
    has("chill_attention_flops_total{model=\"causal\",mask=\"causal\",dtype=\"FP16\"} 1000000000\n");
    /* every counter ends in _total; every other family does not */
    for (const char *p = strstr(text, "# TYPE "); p != NULL; p = strstr(p + 1, "# TYPE ")) {
        char name[128], type[32];
        ck_assert_int_eq(sscanf(p, "# TYPE %127s %31s", name, type), 2);
        size_t n = strlen(name);
        int total = n > 6 && strcmp(name + n - 6, "_total") == 0;
        ck_assert_msg(total == (strcmp(type, "counter") == 0), "%s (%s)", name, type);
    }
    chill_metrics_free();
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, counter_and_gauge);
    tcase_add_test(tc, histogram);
    tcase_add_test(tc, label_escaping);
    tcase_add_test(tc, no_labels);
    tcase_add_test(tc, server_families_follow_conventions);
    suite_add_tcase(s, tc);
    return s;
}
