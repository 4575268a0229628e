/* The mask spec parser: the text forms (positional, named, whitespace, any
 * case), the JSON form, every refusal with what its message must say, and
 * format -> parse round trips for every registered mask. On a refusal the
 * output mask must be left as it was. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chill.h"
#include "spec.h"

static const chill_mask poison = {.type = 12345, .arg = {777, 777, 777, 777}};

/* Type and arguments equal (padding aside). */
static bool same_mask(const chill_mask *a, const chill_mask *b) {
    return a->type == b->type && memcmp(a->arg, b->arg, sizeof a->arg) == 0;
}

static void expect_mask(const char *spec, const char *canonical) {
    chill_mask m = poison;
    chill_error err = {0};
    ck_assert_msg(chill_mask_parse(spec, &m, &err) == CHILL_OK, "\"%s\": %s", spec, err.message);
    char text[128];
    chill_mask_format(&m, text, sizeof text);
    ck_assert_msg(strcmp(text, canonical) == 0, "\"%s\" parsed as %s, expected %s", spec, text, canonical);
}

/* status INVALID, m untouched, and the message holds every non-NULL part. */
static void expect_refusal(chill_status s, const chill_mask *m, const chill_error *err, const char *input,
                           const char *part1, const char *part2) {
    ck_assert_msg(s == CHILL_ERR_INVALID, "\"%s\" was accepted", input ? input : "(null)");
    ck_assert_msg(same_mask(m, &poison), "\"%s\": the mask was written on a refusal", input);
    ck_assert_msg(part1 == NULL || strstr(err->message, part1), "\"%s\": \"%s\" does not say \"%s\"", input,
                  err->message, part1);
    ck_assert_msg(part2 == NULL || strstr(err->message, part2), "\"%s\": \"%s\" does not say \"%s\"", input,
                  err->message, part2);
}

static void expect_text_error(const char *spec, const char *part1, const char *part2) {
    chill_mask m = poison;
    chill_error err = {0};
    chill_status s = chill_mask_parse(spec, &m, &err);
    expect_refusal(s, &m, &err, spec, part1, part2);
}

static void expect_json_error(const char *json, const char *part1, const char *part2) {
    chill_mask m = poison;
    chill_error err = {0};
    chill_status s = chill_mask_parse_json(json, &m, &err);
    expect_refusal(s, &m, &err, json, part1, part2);
}

START_TEST(text_forms) {
    expect_mask("causal", "causal()");
    expect_mask("causal()", "causal()");
    expect_mask("  causal (  )  ", "causal()");
    expect_mask("CAUSAL", "causal()");
    expect_mask("full", "full()");
    expect_mask("sliding_window(64,32)", "sliding_window(64,32)");
    expect_mask("sliding_window( 64 , 32 )", "sliding_window(64,32)");
    expect_mask("\tsliding_window\n(\n64,\t32)\n", "sliding_window(64,32)");
    expect_mask("sliding_window(left_context=64, right_context=32)", "sliding_window(64,32)");
    expect_mask("sliding_window(right_context = 32, left_context = 64)", "sliding_window(64,32)");
    expect_mask("sliding_window(64, right_context=32)", "sliding_window(64,32)");
    expect_mask("Sliding_Window(Left_Context=1,RIGHT_CONTEXT=0)", "sliding_window(1,0)");
    expect_mask("chunkwise(16,2)", "chunkwise(16,2)");
    expect_mask("chunkwise(1,0)", "chunkwise(1,0)");
    expect_mask("prefix_lm(0)", "prefix_lm(0)");
    expect_mask("prefix_lm(prefix_size=1073741824)", "prefix_lm(1073741824)");
    expect_mask("sliding_window(007,-0)", "sliding_window(7,0)");
}
END_TEST

START_TEST(text_refusals) {
    expect_text_error(NULL, "missing", "sliding_window(left_context, right_context)");
    expect_text_error("", "expected a mask name at offset 0", "registered masks");
    expect_text_error("   ", "expected a mask name at offset 3", NULL);
    expect_text_error("(1,2)", "expected a mask name", NULL);
    expect_text_error("foo", "unknown mask \"foo\"", "prefix_lm(prefix_size)");
    expect_text_error("foo(1)", "unknown mask \"foo\"", NULL);
    expect_text_error("sliding_window", "sliding_window takes 2 arguments (left_context, right_context), got 0",
                      "missing left_context");
    expect_text_error("sliding_window()", "takes 2 arguments (left_context, right_context), got 0", NULL);
    expect_text_error("sliding_window(64)", "sliding_window takes 2 arguments (left_context, right_context), got 1",
                      "missing right_context");
    expect_text_error("sliding_window(1,2,3)", "takes 2 arguments (left_context, right_context), got 3", NULL);
    expect_text_error("prefix_lm(1,2)", "prefix_lm takes 1 argument (prefix_size), got 2", NULL);
    expect_text_error("causal(1)", "causal takes no arguments, got 1", NULL);
    expect_text_error("causal(x)", "causal takes no arguments, got 1", NULL);
    expect_text_error("sliding_window(-1,0)", "left_context = -1", "accepted: integers from 0 to 1073741824");
    expect_text_error("chunkwise(0,1)", "context_size = 0", "accepted: integers from 1 to 1073741824");
    expect_text_error("chunkwise(-3,1)", "context_size = -3", "from 1 to");
    expect_text_error("sliding_window(1073741825,0)", "left_context = 1073741825", "out of range");
    expect_text_error("sliding_window(0,99999999999999999999999)", "right_context = 99999999999999999999999",
                      "out of range");
    expect_text_error("sliding_window(1.5,2)", "left_context = \"1.5\" is not an integer", "accepted: integers");
    expect_text_error("sliding_window(abc,2)", "\"abc\" is not an integer", "offset 15");
    expect_text_error("sliding_window(0x10,2)", "\"0x10\" is not an integer", NULL);
    expect_text_error("sliding_window(+4,2)", "\"+4\" is not an integer", NULL);
    expect_text_error("sliding_window(-,2)", "\"-\" is not an integer", NULL);
    expect_text_error("sliding_window(1e3,2)", "\"1e3\" is not an integer", NULL);
    expect_text_error("sliding_window(64,32)x", "unexpected \"x\" at offset 21", NULL);
    expect_text_error("sliding_window(64,32) (", "unexpected \"(\"", NULL);
    expect_text_error("causal x", "unexpected \"x\" at offset 7", NULL);
    expect_text_error("causal()()", "unexpected \"()\"", NULL);
    expect_text_error("sliding_window(64,32", "missing ')' at offset 20", NULL);
    expect_text_error("sliding_window(64 32)", "unexpected '3' at offset 18", "expected ',' or ')'");
    expect_text_error("sliding_window(64,,32)", "missing an argument at offset 18", NULL);
    expect_text_error("sliding_window(64,)", "missing an argument at offset 18", NULL);
    expect_text_error("sliding_window(left_context=1, left_context=2)", "left_context given twice", NULL);
    expect_text_error("sliding_window(1, left_context=2)", "left_context given twice", NULL);
    expect_text_error("sliding_window(left_context=1, bogus=2)", "sliding_window has no argument \"bogus\"",
                      "its arguments: left_context, right_context");
    expect_text_error("causal(bogus=2)", "causal has no argument \"bogus\"", "none");
    expect_text_error("sliding_window(left_context=1, 2)", "positional argument at offset 31 after named ones", NULL);
    expect_text_error("sliding_window(=1,2)", "expected an argument name before '='", NULL);
    expect_text_error("sliding_window(left context=1,2)", "left_context = \"left\" is not an integer", NULL);
    expect_text_error("sliding_window(left_context=,2)", "missing the value of left_context", NULL);
    expect_text_error("sliding_window(left_context=1)", "got 1", "missing right_context");
    expect_text_error("sliding_window(right_context=1)", "got 1", "missing left_context");
    expect_text_error("an_unknown_mask_whose_name_is_longer_than_the_longest_name_the_parser_keeps(1)",
                      "unknown mask \"an_unknown_mask_whose_name", "registered masks");
}
END_TEST

/* The registry drives every message: each registered mask is listed with
 * its arguments, and each gets its own arity and range messages. */
START_TEST(refusals_follow_the_registry) {
    chill_mask m = poison;
    chill_error err = {0};
    chill_status s = chill_mask_parse("no_such_mask", &m, &err);
    ck_assert_int_eq(s, CHILL_ERR_INVALID);
    for (int t = 0; t < chill_mask_count(); t++) {
        char sig[160], spec[160], want[200];
        const chill_mask_ops *ops = &chill_mask_table[t];
        chill_mask_signature(ops, sig, sizeof sig);
        ck_assert_msg(strstr(err.message, sig), "\"%s\" does not list %s", err.message, sig);

        snprintf(spec, sizeof spec, "%s(", ops->name);
        for (int i = 0; i <= ops->nargs; i++)
            snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s1", i ? "," : "");
        strcat(spec, ")");
        snprintf(want, sizeof want, "got %d", ops->nargs + 1);
        expect_text_error(spec, ops->name, want);

        for (int i = 0; i < ops->nargs; i++) {
            int64_t bad[2] = {ops->arg_min[i] - 1, CHILL_MASK_ARG_MAX + 1};
            for (int b = 0; b < 2; b++) {
                snprintf(spec, sizeof spec, "%s(", ops->name);
                for (int j = 0; j < ops->nargs; j++)
                    snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%" PRId64, j ? "," : "",
                             j == i ? bad[b] : ops->arg_min[j]);
                strcat(spec, ")");
                snprintf(want, sizeof want, "%s = %" PRId64, ops->arg_names[i], bad[b]);
                expect_text_error(spec, want, "out of range");
            }
        }
    }
}
END_TEST

START_TEST(json_form) {
    chill_mask m = poison;
    chill_error err = {0};
    char text[128];
    ck_assert_int_eq(
        chill_mask_parse_json("{\"type\":\"sliding_window\",\"left_context\":64,\"right_context\":32}", &m, &err),
        CHILL_OK);
    chill_mask_format(&m, text, sizeof text);
    ck_assert_str_eq(text, "sliding_window(64,32)");
    ck_assert_int_eq(chill_mask_parse_json(" { \"right_context\" : 0 ,\n \"type\" : \"sliding_window\", "
                                           "\"left_context\" : 1073741824 } ", &m, &err), CHILL_OK);
    chill_mask_format(&m, text, sizeof text);
    ck_assert_str_eq(text, "sliding_window(1073741824,0)");
    ck_assert_int_eq(chill_mask_parse_json("{\"type\":\"causal\"}", &m, &err), CHILL_OK);
    chill_mask_format(&m, text, sizeof text);
    ck_assert_str_eq(text, "causal()");
}
END_TEST

START_TEST(json_refusals) {
    expect_json_error(NULL, "missing", "{\"type\":\"sliding_window\"");
    expect_json_error("", "mask JSON:", "line 1");
    expect_json_error("{\"type\":\"causal\"", "mask JSON:", "accepted: an object");
    expect_json_error("[1]", "mask JSON is an array", "accepted: an object");
    expect_json_error("42", "mask JSON is an integer", NULL);
    expect_json_error("\"causal\"", "mask JSON is a string", NULL);
    expect_json_error("null", "mask JSON is null", NULL);
    expect_json_error("{}", "\"type\" is missing", "sliding_window(left_context, right_context)");
    expect_json_error("{\"left_context\":1}", "\"type\" is missing", NULL);
    expect_json_error("{\"type\":3}", "\"type\" is an integer", "a string naming one of");
    expect_json_error("{\"type\":\"bogus\"}", "unknown mask \"bogus\"", "registered masks");
    expect_json_error("{\"type\":\"causal\",\"x\":1}", "unknown key \"x\" for causal", "accepted keys: type");
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":1,\"right_context\":2,\"extra\":3}",
                      "unknown key \"extra\"", "accepted keys: type, left_context, right_context");
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":1}",
                      "sliding_window takes 2 arguments (left_context, right_context), got 1", "missing right_context");
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":\"64\",\"right_context\":2}",
                      "sliding_window.left_context is a string", "accepted: integers from 0 to 1073741824");
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":64.0,\"right_context\":2}",
                      "left_context is a real number", NULL);
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":true,\"right_context\":2}", "is a boolean", NULL);
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":null,\"right_context\":2}", "is null", NULL);
    expect_json_error("{\"type\":\"sliding_window\",\"left_context\":-1,\"right_context\":2}", "left_context = -1",
                      "out of range");
    expect_json_error("{\"type\":\"chunkwise\",\"context_size\":0,\"back_contexts\":2}", "context_size = 0",
                      "from 1 to");
    expect_json_error("{\"type\":\"prefix_lm\",\"prefix_size\":1073741825}", "prefix_size = 1073741825", NULL);
    expect_json_error("{\"type\":\"causal\",\"type\":\"full\"}", "duplicate", NULL);
    expect_json_error("{\"type\":\"prefix_lm\",\"prefix_size\":1,\"prefix_size\":2}", "duplicate", NULL);
}
END_TEST

/* Arguments for every registered mask, each in range. */
static void sample_args(const chill_mask_ops *ops, int sample, int64_t *args) {
    static const int64_t values[] = {0, 1, 7, 64, 4096, CHILL_MASK_ARG_MAX};
    for (int i = 0; i < ops->nargs; i++)
        args[i] = chill_max64(values[(sample + 2 * i) % 6], ops->arg_min[i]);
}

START_TEST(round_trips_for_every_mask) {
    for (int t = 0; t < chill_mask_count(); t++) {
        const chill_mask_ops *ops = &chill_mask_table[t];
        for (int sample = 0; sample < 6; sample++) {
            chill_mask m = {.type = t}, back = poison, named = poison, json = poison;
            sample_args(ops, sample, m.arg);
            char text[160], named_text[256], json_text[256];
            chill_error err = {0};
            int len = chill_mask_format(&m, text, sizeof text);
            ck_assert_int_eq(len, (int)strlen(text));
            ck_assert_msg(chill_mask_parse(text, &back, &err) == CHILL_OK, "%s: %s", text, err.message);
            ck_assert_msg(same_mask(&back, &m), "%s did not parse back to itself", text);

            int n = snprintf(named_text, sizeof named_text, "%s(", ops->name);
            snprintf(json_text, sizeof json_text, "{\"type\": \"%s\"", ops->name);
            for (int i = ops->nargs - 1; i >= 0; i--) {
                n += snprintf(named_text + n, sizeof named_text - (size_t)n, "%s = %" PRId64 "%s", ops->arg_names[i],
                              m.arg[i], i ? ", " : "");
                snprintf(json_text + strlen(json_text), sizeof json_text - strlen(json_text), ", \"%s\": %" PRId64,
                         ops->arg_names[i], m.arg[i]);
            }
            strcat(named_text, ")");
            strcat(json_text, "}");
            ck_assert_msg(chill_mask_parse(named_text, &named, &err) == CHILL_OK, "%s: %s", named_text, err.message);
            ck_assert_msg(same_mask(&named, &m), "%s is not %s", named_text, text);
            ck_assert_msg(chill_mask_parse_json(json_text, &json, &err) == CHILL_OK, "%s: %s", json_text,
                          err.message);
            ck_assert_msg(same_mask(&json, &m), "%s is not %s", json_text, text);
        }
    }
}
END_TEST

START_TEST(format_reports_length_and_truncates) {
    chill_mask m = {.type = chill_mask_lookup("sliding_window"), .arg = {64, 32}};
    char small[8];
    memset(small, 'x', sizeof small);
    ck_assert_int_eq(chill_mask_format(&m, small, sizeof small), (int)strlen("sliding_window(64,32)"));
    ck_assert_str_eq(small, "sliding");
    ck_assert_int_eq(chill_mask_format(&m, NULL, 0), (int)strlen("sliding_window(64,32)"));
    m.type = CHILL_MASK_COUNT;
    ck_assert_int_lt(chill_mask_format(&m, small, sizeof small), 0);
    ck_assert_str_eq(small, "");
}
END_TEST

START_TEST(check_refuses_what_parse_refuses) {
    chill_error err = {0};
    chill_mask m = {.type = chill_mask_lookup("chunkwise"), .arg = {16, 2}};
    ck_assert_int_eq(chill_mask_check(&m, &err), CHILL_OK);
    m.arg[0] = 0;
    ck_assert_int_eq(chill_mask_check(&m, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "context_size = 0") && strstr(err.message, "from 1 to"), "%s", err.message);
    m = (chill_mask){.type = chill_mask_lookup("prefix_lm"), .arg = {CHILL_MASK_ARG_MAX + 1}};
    ck_assert_int_eq(chill_mask_check(&m, &err), CHILL_ERR_INVALID);
    m = (chill_mask){.type = -1};
    ck_assert_int_eq(chill_mask_check(&m, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "mask type -1 is not registered"), "%s", err.message);
    ck_assert_int_eq(chill_mask_check(NULL, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "no mask given"), "%s", err.message);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("mask_spec");
    TCase *tc = tcase_create("text");
    tcase_add_test(tc, text_forms);
    tcase_add_test(tc, text_refusals);
    tcase_add_test(tc, refusals_follow_the_registry);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_add_test(tc, json_form);
    tcase_add_test(tc, json_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_test(tc, round_trips_for_every_mask);
    tcase_add_test(tc, format_reports_length_and_truncates);
    tcase_add_test(tc, check_refuses_what_parse_refuses);
    suite_add_tcase(s, tc);
    return s;
}
