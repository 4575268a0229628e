/* chilld's configuration (server/config.c): the defaults, a full valid file,
 * flags over it, and a table of wrong files and flags, each of which must be
 * refused with a message naming the section.key (or flag) at fault and what
 * is accepted. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

START_TEST(defaults) {
    chill_config c;
    chill_config_defaults(&c);
    ck_assert_str_eq(c.address, "127.0.0.1");
    ck_assert_int_eq(c.port, 8000);
    ck_assert_int_eq(c.backend, CHILL_BACKEND_AUTO);
    ck_assert_int_eq(c.batching, 1);
    ck_assert_int_eq(c.n_presets, 0);
    ck_assert_int_gt(c.max_body_bytes, 0);
}
END_TEST

START_TEST(http_threads_follow_the_cores_unless_set) {
    chill_config c;
    chill_config_defaults(&c);
    ck_assert_int_eq(c.http_threads, 0);
    ck_assert_int_eq(chill_config_http_threads(&c, 1), 4);
    ck_assert_int_eq(chill_config_http_threads(&c, 2), 4);
    ck_assert_int_eq(chill_config_http_threads(&c, 16), 8);
    ck_assert_int_eq(chill_config_http_threads(&c, 22), 11);
    ck_assert_int_eq(chill_config_http_threads(&c, 128), 16);
    ck_assert_int_eq(chill_config_http_threads(&c, -1), 4); /* sysconf failed */
    c.http_threads = 3;
    ck_assert_int_eq(chill_config_http_threads(&c, 128), 3);
}
END_TEST

START_TEST(full_file) {
    static const char *json =
        "{\"listen\": {\"address\": \"127.0.0.2\", \"port\": 9001, \"threads\": 2,"
        "             \"connection_memory_bytes\": 65536},"
        " \"devices\": {\"backend\": \"cpu\", \"gpus\": [1, 0], \"cpu_threads\": 3, \"gpu_pool_bytes\": 2097152,"
        "             \"gpu_slots\": 3},"
        " \"batching\": {\"enabled\": false, \"max_queue_delay_us\": 50, \"max_batch_tokens\": 1000,"
        "              \"max_batch_requests\": 7, \"max_queue_requests\": 9},"
        " \"limits\": {\"max_body_bytes\": 4096, \"max_tokens\": 100, \"max_elements\": 200, \"default_timeout_us\": 5},"
        " \"presets\": {\"sw-64\": \"sliding_window(64,0)\", \"c\": \"causal\"},"
        " \"log\": {\"level\": \"warn\"}, \"shutdown\": {\"drain_timeout_s\": 4}}";
    chill_config c;
    char err[512];
    chill_config_defaults(&c);
    ck_assert_msg(chill_config_parse(&c, json, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.address, "127.0.0.2");
    ck_assert_int_eq(c.port, 9001);
    ck_assert_int_eq(c.http_threads, 2);
    ck_assert_int_eq(c.connection_memory_bytes, 65536);
    ck_assert_int_eq(c.backend, CHILL_BACKEND_CPU);
    ck_assert_int_eq(c.n_gpus, 2);
    ck_assert_int_eq(c.gpus[0], 1);
    ck_assert_int_eq(c.cpu_threads, 3);
    ck_assert_int_eq(c.gpu_pool_bytes, 2097152);
    ck_assert_int_eq(c.gpu_slots, 3);
    ck_assert_int_eq(c.batching, 0);
    ck_assert_int_eq(c.max_queue_delay_us, 50);
    ck_assert_int_eq(c.max_batch_tokens, 1000);
    ck_assert_int_eq(c.max_batch_requests, 7);
    ck_assert_int_eq(c.max_queue_requests, 9);
    ck_assert_int_eq(c.max_body_bytes, 4096);
    ck_assert_int_eq(c.max_tokens, 100);
    ck_assert_int_eq(c.max_elements, 200);
    ck_assert_int_eq(c.default_timeout_us, 5);
    ck_assert_int_eq(c.n_presets, 2);
    ck_assert_str_eq(c.presets[0].name, "sw-64");
    ck_assert_str_eq(c.presets[0].spec, "sliding_window(64,0)");
    ck_assert_int_eq(c.log_level, CHILL_LOG_WARN);
    ck_assert_int_eq(c.drain_timeout_s, 4);

    char *explained = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&explained, &len);
    chill_config_explain(&c, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(explained, "listen.port = 9001"));
    ck_assert_ptr_nonnull(strstr(explained, "presets.sw-64 = \"sliding_window(64,0)\""));
    ck_assert_ptr_nonnull(strstr(explained, "batching.max_queue_requests = 9"));
    free(explained);
}
END_TEST

static const struct {
    const char *json, *words;
} bad_files[] = {
    {"[1]", "top level"},
    {"{\"listen\": {\"port\": 8000,}", "line 1"},
    {"{\"listn\": {}}", "listn: unknown section; accepted: listen, devices"},
    {"{\"listen\": {\"prot\": 1}}", "listen.prot: unknown key; accepted: address, port, threads"},
    {"{\"listen\": {\"port\": 0}}", "listen.port: expected an integer in [1, 65535]"},
    {"{\"listen\": {\"port\": \"80\"}}", "listen.port"},
    {"{\"listen\": {\"connection_memory_bytes\": 4096}}",
     "listen.connection_memory_bytes: expected an integer in [16384, 67108864]"},
    {"{\"listen\": {\"port\": 1, \"port\": 2}}", "duplicate"},
    {"{\"listen\": 3}", "listen: expected an object"},
    {"{\"listen\": {\"address\": 12}}", "listen.address: expected a string"},
    {"{\"devices\": {\"gpu_slots\": 0}}", "devices.gpu_slots: expected an integer in [1, 4]"},
    {"{\"devices\": {\"backend\": \"tpu\"}}", "devices.backend: expected \"auto\", \"cpu\" or \"cuda\""},
    {"{\"devices\": {\"gpus\": [0, -1]}}", "devices.gpus[1]"},
    {"{\"devices\": {\"gpus\": 0}}", "devices.gpus: expected an array"},
    {"{\"devices\": {\"gpu\": []}}", "devices.gpu: unknown key; accepted: cpu_threads, gpu_pool_bytes, gpu_slots, pinned_host_bytes, idle_spin_us, direct_max_mflop, backend, gpus"},
    {"{\"batching\": {\"enabled\": 1}}", "batching.enabled: expected true or false"},
    {"{\"batching\": {\"max_queue_requests\": 0}}", "batching.max_queue_requests"},
    {"{\"limits\": {\"max_tokens\": -1}}", "limits.max_tokens"},
    {"{\"presets\": {\"x\": \"sliding_window(1\"}}", "presets.x"},
    {"{\"presets\": {\"causal\": \"causal\"}}", "presets.causal: the name of a mask type"},
    {"{\"presets\": {\"a/b\": \"causal\"}}", "presets.a/b"},
    {"{\"presets\": {\"x\": 3}}", "presets.x: expected a mask spec string"},
    {"{\"presets\": []}", "presets: expected an object"},
    {"{\"log\": {\"level\": \"loud\"}}", "log.level: expected \"debug\", \"info\", \"warn\" or \"error\""},
    {"{\"log\": {\"lvl\": \"info\"}}", "log.lvl: unknown key; accepted: level"},
    {"{\"shutdown\": {\"drain_timeout_s\": 0}}", "shutdown.drain_timeout_s"},
};

START_TEST(bad_file) {
    chill_config c;
    char err[512] = "";
    chill_config_defaults(&c);
    ck_assert_msg(chill_config_parse(&c, bad_files[_i].json, err, sizeof err) != 0, "accepted %s", bad_files[_i].json);
    ck_assert_msg(strstr(err, bad_files[_i].words) != NULL, "%s: message \"%s\" lacks \"%s\"", bad_files[_i].json, err,
                  bad_files[_i].words);
}
END_TEST

START_TEST(missing_file) {
    chill_config c;
    char err[512];
    chill_config_defaults(&c);
    ck_assert(chill_config_load(&c, "/nonexistent/chilld.json", err, sizeof err) != 0);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/chilld.json"));
}
END_TEST

START_TEST(flags_override) {
    char *argv[] = {"chilld", "--config", "f.json", "--port", "1234", "--listen", "127.0.0.9", "--backend", "cpu",
                    "--no-batching", "--max-queue-delay-us", "7", "--log-level", "debug", "--cpu-threads", "2",
                    "--idle-spin-us", "25", "--direct-max-mflop", "9", "--gpu-slots", "1", NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    chill_config c;
    const char *path = NULL, *check = NULL;
    char err[512];
    chill_config_defaults(&c);
    ck_assert_int_eq(chill_config_flags(&c, argc, argv, &path, &check, err, sizeof err), argc);
    ck_assert_str_eq(path, "f.json");
    ck_assert_ptr_null(check);
    ck_assert_int_eq(c.port, 1234);
    ck_assert_str_eq(c.address, "127.0.0.9");
    ck_assert_int_eq(c.backend, CHILL_BACKEND_CPU);
    ck_assert_int_eq(c.batching, 0);
    ck_assert_int_eq(c.max_queue_delay_us, 7);
    ck_assert_int_eq(c.log_level, CHILL_LOG_DEBUG);
    ck_assert_int_eq(c.cpu_threads, 2);
    ck_assert_int_eq(c.idle_spin_us, 25);
    ck_assert_int_eq(c.direct_max_mflop, 9);
    ck_assert_int_eq(c.gpu_slots, 1);
}
END_TEST

static const struct {
    const char *flag, *value, *words;
} bad_flags[] = {
    {"--port", "70000", "listen.port: expected an integer in [1, 65535]"},
    {"--port", "12x", "--port: expected an integer"},
    {"--gpu-slots", "5", "devices.gpu_slots: expected an integer in [1, 4]"},
    {"--idle-spin-us", "-1", "devices.idle_spin_us: expected an integer in [0, 1000000]"},
    {"--direct-max-mflop", "-2", "devices.direct_max_mflop: expected an integer in [0, "},
    {"--backend", "gpu", "--backend: expected auto, cpu or cuda"},
    {"--log-level", "chatty", "--log-level"},
    {"--frobnicate", "1", "--frobnicate: unknown flag"},
    {"--port", NULL, "--port: needs a value"},
};

START_TEST(bad_flag) {
    char *argv[] = {"chilld", (char *)bad_flags[_i].flag, (char *)bad_flags[_i].value, NULL};
    int argc = bad_flags[_i].value != NULL ? 3 : 2;
    chill_config c;
    const char *path = NULL, *check = NULL;
    char err[1024] = "";
    chill_config_defaults(&c);
    ck_assert_int_lt(chill_config_flags(&c, argc, argv, &path, &check, err, sizeof err), 0);
    ck_assert_msg(strstr(err, bad_flags[_i].words) != NULL, "message \"%s\" lacks \"%s\"", err, bad_flags[_i].words);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, http_threads_follow_the_cores_unless_set);
    tcase_add_test(tc, full_file);
    tcase_add_loop_test(tc, bad_file, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, flags_override);
    tcase_add_loop_test(tc, bad_flag, 0, (int)(sizeof bad_flags / sizeof bad_flags[0]));
    suite_add_tcase(s, tc);
    return s;
}
