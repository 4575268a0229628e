/* The kept JSON header (server/jsonhead.c): the same bytes again give the
 * same tree, any other bytes a fresh parse with their own values, a header
 * over the size kept is parsed every time, a malformed one fails without
 * disturbing what is kept, a tree handed out outlives its replacement, and
 * each thread keeps its own (freed when the thread exits: make asan's leak
 * check runs this file). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonhead.h"

static const char a[] = "{\"inputs\":[{\"name\":\"q\",\"shape\":[1,8,256,64]}],\"parameters\":{\"x\":1}}";
static const char b[] = "{\"inputs\":[{\"name\":\"q\",\"shape\":[1,8,256,64]}],\"parameters\":{\"x\":2}}";

static json_int_t x_of(json_t *j) { return json_integer_value(json_object_get(json_object_get(j, "parameters"), "x")); }

START_TEST(same_bytes_same_tree) {
    json_error_t je;
    json_t *j1 = chill_jsonhead_parse(a, strlen(a), &je), *j2 = chill_jsonhead_parse(a, strlen(a), &je);
    ck_assert_ptr_nonnull(j1);
    ck_assert_ptr_eq(j1, j2);
    ck_assert_int_eq(x_of(j2), 1);
    json_t *j3 = chill_jsonhead_parse(b, strlen(b), &je); /* one byte differs */
    ck_assert_ptr_ne(j3, j1);
    ck_assert_int_eq(x_of(j3), 2);
    ck_assert_int_eq(x_of(j1), 1); /* the replaced tree is still whole for whoever holds it */
    json_t *j4 = chill_jsonhead_parse(a, strlen(a), &je); /* only the last is kept: parsed again */
    ck_assert_ptr_ne(j4, j1);
    ck_assert_int_eq(x_of(j4), 1);
    json_t *j5 = chill_jsonhead_parse(a, strlen(a) - 1, &je); /* a prefix is not the same bytes */
    ck_assert_ptr_null(j5);
    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    json_decref(j4);
}
END_TEST

START_TEST(malformed_fails_and_keeps) {
    json_error_t je;
    json_t *j1 = chill_jsonhead_parse(a, strlen(a), &je);
    static const char dup[] = "{\"x\":1,\"x\":2}";
    ck_assert_ptr_null(chill_jsonhead_parse(dup, strlen(dup), &je)); /* duplicates are rejected */
    ck_assert_msg(strstr(je.text, "duplicate") != NULL, "%s", je.text);
    ck_assert_ptr_null(chill_jsonhead_parse("{\"x\":", 5, &je));
    json_t *j2 = chill_jsonhead_parse(a, strlen(a), &je);
    ck_assert_ptr_eq(j1, j2);
    json_decref(j1);
    json_decref(j2);
}
END_TEST

START_TEST(long_headers_parsed_every_time) {
    size_t n = CHILL_JSONHEAD_KEEP_MAX + 100;
    char *big = malloc(n + 1);
    int at = snprintf(big, n + 1, "{\"pad\":\"");
    memset(big + at, 'p', n - (size_t)at - 2);
    memcpy(big + n - 2, "\"}", 3);
    json_error_t je;
    json_t *j1 = chill_jsonhead_parse(big, n, &je), *j2 = chill_jsonhead_parse(big, n, &je);
    ck_assert_msg(j1 != NULL, "%s", je.text);
    ck_assert_ptr_ne(j1, j2);
    ck_assert_uint_eq(json_string_length(json_object_get(j2, "pad")), n - (size_t)at - 2);
    json_decref(j1);
    json_decref(j2);
    free(big);
}
END_TEST

static void *parse_a(void *tree) {
    json_error_t je;
    *(json_t **)tree = chill_jsonhead_parse(a, strlen(a), &je);
    return NULL;
}

START_TEST(each_thread_keeps_its_own) {
    json_error_t je;
    json_t *mine = chill_jsonhead_parse(a, strlen(a), &je), *theirs = NULL;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, parse_a, &theirs), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_nonnull(theirs);
    ck_assert_ptr_ne(mine, theirs);
    ck_assert_int_eq(x_of(theirs), 1); /* the thread's own reference outlives the thread */
    json_decref(theirs);
    json_decref(mine);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_jsonhead");
    TCase *tc = tcase_create("jsonhead");
    tcase_add_test(tc, same_bytes_same_tree);
    tcase_add_test(tc, malformed_fails_and_keeps);
    tcase_add_test(tc, long_headers_parsed_every_time);
    tcase_add_test(tc, each_thread_keeps_its_own);
    suite_add_tcase(s, tc);
    return s;
}
