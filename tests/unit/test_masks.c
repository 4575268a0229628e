/* The masks against their contract: every registered mask passes verify over
 * a spread of arguments (a new line in masks/list.h is verified with no new
 * test code), verify catches deliberately broken masks, the predicates match
 * DESIGN.md's table on hand-computed pairs, and plot draws exactly the
 * attended pairs. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chill.h"
#include "spec.h"
#include "verify.h"

#define VERIFY_N 512

/* Values tried for each argument: its minimum, 1, 7, tile sizes, more than
 * VERIFY_N, and the largest accepted. */
static const int64_t arg_values[] = {0, 1, 7, 16, 64, 128, VERIFY_N + 88, CHILL_MASK_ARG_MAX};
#define N_VALUES ((int)(sizeof arg_values / sizeof arg_values[0]))

/* The combination number c of the argument values for ops, raised to each
 * argument's minimum. */
static void combination(const chill_mask_ops *ops, int c, int64_t *args) {
    for (int i = 0; i < ops->nargs; i++, c /= N_VALUES)
        args[i] = chill_max64(arg_values[c % N_VALUES], ops->arg_min[i]);
}

static int combinations(const chill_mask_ops *ops) {
    int total = 1;
    for (int i = 0; i < ops->nargs; i++)
        total *= N_VALUES;
    return total;
}

static void verify_all_combinations(int type, int64_t n) {
    const chill_mask_ops *ops = &chill_mask_table[type];
    for (int c = 0; c < combinations(ops); c++) {
        chill_mask m = {.type = type};
        combination(ops, c, m.arg);
        chill_error err = {0};
        chill_status s = chill_mask_verify(&m, n, &err);
        ck_assert_msg(s == CHILL_OK, "n=%" PRId64 ": %s", n, err.message);
    }
}

START_TEST(every_mask_verifies) {
    verify_all_combinations(_i, VERIFY_N);
}
END_TEST

/* Small and odd n: tiles larger than the range, n/4 rounding, single rows. */
START_TEST(every_mask_verifies_small_n) {
    static const int64_t ns[] = {1, 2, 3, 5, 17, 37, 100};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        verify_all_combinations(_i, ns[i]);
}
END_TEST

/* ---- broken masks are caught ---------------------------------------------- */

/* A copy of a registered mask with one statement broken; the originals are
 * called through these pointers. */
static chill_mask_ops broken;
static const chill_mask_ops *original;

static chill_range k_range_hi_plus_one(const int64_t *a, int64_t q, int64_t n_k) {
    chill_range r = original->k_range(a, q, n_k);
    if (!chill_range_is_empty(r) && r.hi < n_k - 1)
        r.hi++;
    return r;
}

static chill_range k_range_lo_minus_one(const int64_t *a, int64_t q, int64_t n_k) {
    chill_range r = original->k_range(a, q, n_k);
    if (!chill_range_is_empty(r) && r.lo > 0)
        r.lo--;
    return r;
}

static chill_range q_range_lo_plus_one(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    chill_range r = original->q_range(a, k, q_lo, q_hi);
    if (!chill_range_is_empty(r))
        r.lo++;
    return r;
}

static chill_range full_k_range_hi_plus_one(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    chill_range r = original->full_k_range(a, q0, q1, n_k);
    if (!chill_range_is_empty(r) && r.hi < n_k - 1)
        r.hi++;
    return r;
}

static chill_range full_k_range_unclipped(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    (void)a; (void)q0; (void)q1;
    return chill_range_make(0, n_k);
}

static bool may_be_empty_never(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    (void)a; (void)q_lo; (void)q_hi; (void)n_k;
    return false;
}

/* Verifies the broken copy of mask name(args) and expects a mismatch whose
 * message names the statement. */
static void expect_caught(const char *spec, const char *statement) {
    chill_mask m;
    chill_error err = {0};
    ck_assert_int_eq(chill_mask_parse(spec, &m, &err), CHILL_OK);
    ck_assert_int_eq(chill_mask_verify(&m, VERIFY_N, &err), CHILL_OK);
    chill_status s = chill_mask_verify_ops(&broken, m.arg, VERIFY_N, &err);
    ck_assert_msg(s == CHILL_ERR_INVALID, "broken %s passed verify", spec);
    ck_assert_msg(strstr(err.message, statement) != NULL, "broken %s: \"%s\" does not name %s", spec, err.message,
                  statement);
}

static void break_mask(const char *name) {
    original = &chill_mask_table[chill_mask_lookup(name)];
    broken = *original;
}

START_TEST(off_by_one_k_range_is_caught) {
    break_mask("sliding_window");
    broken.k_range = k_range_hi_plus_one;
    expect_caught("sliding_window(64,32)", "k_range(");
    break_mask("causal");
    broken.k_range = k_range_hi_plus_one;
    expect_caught("causal", "k_range(");
    break_mask("chunkwise");
    broken.k_range = k_range_lo_minus_one;
    expect_caught("chunkwise(16,2)", "k_range(");
}
END_TEST

START_TEST(off_by_one_q_range_is_caught) {
    break_mask("prefix_lm");
    broken.q_range = q_range_lo_plus_one;
    expect_caught("prefix_lm(100)", "q_range(");
}
END_TEST

START_TEST(full_k_range_claiming_too_much_is_caught) {
    break_mask("sliding_window");
    broken.full_k_range = full_k_range_hi_plus_one;
    expect_caught("sliding_window(7,0)", "full_k_range(");
    break_mask("chunkwise");
    broken.full_k_range = full_k_range_hi_plus_one;
    expect_caught("chunkwise(64,1)", "full_k_range(");
    break_mask("full");
    broken.full_k_range = full_k_range_unclipped;
    expect_caught("full", "claims keys outside");
}
END_TEST

START_TEST(may_be_empty_false_on_an_empty_row_is_caught) {
    /* Queries at negative positions attend no key under causal. */
    break_mask("causal");
    broken.may_be_empty = may_be_empty_never;
    chill_error err = {0};
    ck_assert_int_eq(chill_mask_verify_ops(&broken, broken.arg_min, VERIFY_N, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "may_be_empty(") && strstr(err.message, "attends no key"), "%s", err.message);
}
END_TEST

/* An anti-diagonal mask, k = a0 - q: its ranges are exact but fall as the
 * position grows, which the kernels' tile ranges cannot express. */
static bool anti_allows(const int64_t *a, int64_t q, int64_t k) { return k == a[0] - q; }
static chill_range anti_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    return chill_range_clip(chill_range_make(a[0] - q, a[0] - q), 0, n_k - 1);
}
static chill_range anti_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    return chill_range_clip(chill_range_make(a[0] - k, a[0] - k), q_lo, q_hi);
}
static chill_range anti_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    return q0 == q1 ? anti_k_range(a, q0, n_k) : chill_range_empty();
}
static bool anti_may_be_empty(const int64_t *a, int64_t q_lo, int64_t q_hi, int64_t n_k) {
    (void)a; (void)q_lo; (void)q_hi; (void)n_k;
    return true;
}

START_TEST(falling_k_range_is_caught) {
    chill_mask_ops anti = {"anti_diagonal", 1, {"sum"}, {0}, anti_allows, anti_k_range,
                           anti_q_range, anti_full_k_range, anti_may_be_empty, NULL};
    const int64_t args[1] = {VERIFY_N / 2};
    chill_error err = {0};
    ck_assert_int_eq(chill_mask_verify_ops(&anti, args, VERIFY_N, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "neither end may decrease as q grows") && strstr(err.message, "k_range(q="),
                  "%s", err.message);
}
END_TEST

/* A window plus global tokens, k < a2 or q - a0 <= k <= q + a1: exact
 * ranges, and k_range rises while the window stays over the keys, but
 * q_range falls from the last global key to the first windowed one. */
static bool global_allows(const int64_t *a, int64_t q, int64_t k) {
    return k < a[2] || (q - a[0] <= k && k <= q + a[1]);
}
static chill_range global_k_range(const int64_t *a, int64_t q, int64_t n_k) {
    chill_range w = chill_range_clip(chill_range_make(q - a[0], q + a[1]), 0, n_k - 1);
    chill_range g = chill_range_make(0, chill_min64(a[2], n_k) - 1);
    if (chill_range_is_empty(w) || chill_range_is_empty(g))
        return chill_range_is_empty(w) ? g : w;
    return chill_range_make(0, chill_max64(g.hi, w.hi));
}
static chill_range global_q_range(const int64_t *a, int64_t k, int64_t q_lo, int64_t q_hi) {
    if (k < a[2])
        return chill_range_make(q_lo, q_hi);
    return chill_range_clip(chill_range_make(k - a[1], k + a[0]), q_lo, q_hi);
}
static chill_range global_full_k_range(const int64_t *a, int64_t q0, int64_t q1, int64_t n_k) {
    (void)q0; (void)q1;
    return chill_range_make(0, chill_min64(a[2], n_k) - 1);
}

START_TEST(falling_q_range_is_caught) {
    chill_mask_ops global = {"global_window", 3, {"left_context", "right_context", "global_tokens"}, {0, 0, 0},
                             global_allows, global_k_range, global_q_range, global_full_k_range,
                             anti_may_be_empty, NULL};
    const int64_t args[3] = {300, 0, 4}; /* a window wide enough never to pass the keys */
    chill_error err = {0};
    ck_assert_int_eq(chill_mask_verify_ops(&global, args, VERIFY_N, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "neither end may decrease as k grows") && strstr(err.message, "q_range(k=4"),
                  "%s", err.message);
}
END_TEST

START_TEST(verify_refuses_bad_input) {
    chill_error err = {0};
    chill_mask m = {.type = chill_mask_lookup("causal")};
    ck_assert_int_eq(chill_mask_verify(&m, 0, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "n = 0") && strstr(err.message, "accepted"), "%s", err.message);
    ck_assert_int_eq(chill_mask_verify(&m, CHILL_VERIFY_N_MAX + 1, &err), CHILL_ERR_INVALID);
    m.type = CHILL_MASK_COUNT;
    ck_assert_int_eq(chill_mask_verify(&m, 64, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "not registered"), "%s", err.message);
    m = (chill_mask){.type = chill_mask_lookup("sliding_window"), .arg = {-1, 0}};
    ck_assert_int_eq(chill_mask_verify(&m, 64, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "left_context"), "%s", err.message);
}
END_TEST

/* ---- the predicates against DESIGN.md's table -------------------------------- */

static const struct {
    const char *spec;
    int64_t q, k;
    int attends;
} pairs[] = {
    {"full", 0, 511, 1},
    {"full", -5, 3, 1},
    {"causal", 5, 5, 1},
    {"causal", 5, 6, 0},
    {"causal", -1, 0, 0},
    {"sliding_window(2,1)", 10, 8, 1},
    {"sliding_window(2,1)", 10, 7, 0},
    {"sliding_window(2,1)", 10, 11, 1},
    {"sliding_window(2,1)", 10, 12, 0},
    {"sliding_window(0,0)", 4, 4, 1},
    {"sliding_window(0,0)", 4, 3, 0},
    {"sliding_window(3,0)", -2, 0, 0},
    {"sliding_window(0,3)", -2, 1, 1},
    {"chunkwise(4,1)", 9, 4, 1},   /* chunk 2 sees chunk 1 */
    {"chunkwise(4,1)", 9, 3, 0},   /* but not chunk 0 */
    {"chunkwise(4,1)", 9, 11, 1},  /* its own chunk, ahead of q */
    {"chunkwise(4,1)", 9, 12, 0},  /* not the next chunk */
    {"chunkwise(4,0)", -1, 0, 0},  /* q = -1 is in chunk -1, not chunk 0 */
    {"chunkwise(4,0)", -1, -4, 1}, /* floor(-1/4) = floor(-4/4) = -1 */
    {"chunkwise(4,0)", -1, -5, 0}, /* chunk -2 */
    {"chunkwise(4,1)", -1, -5, 1},
    {"chunkwise(4,0)", 3, -1, 0},  /* truncating division would put both in chunk 0 */
    {"chunkwise(4,2)", -5, -12, 1}, /* q = -5 is in chunk -2, which sees chunks -4 .. -2 */
    {"chunkwise(4,2)", -5, -16, 1},
    {"chunkwise(4,2)", -5, -17, 0}, /* chunk -5 */
    {"prefix_lm(3)", 0, 2, 1},
    {"prefix_lm(3)", 0, 3, 0},
    {"prefix_lm(3)", 5, 5, 1},
    {"prefix_lm(3)", 5, 6, 0},
    {"prefix_lm(3)", -2, 1, 1},  /* the prefix is seen from negative positions */
    {"prefix_lm(0)", -1, 0, 0},
    {"prefix_lm(0)", 7, 7, 1},
};

START_TEST(predicates_match_the_design_table) {
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        chill_mask m;
        chill_error err = {0};
        ck_assert_msg(chill_mask_parse(pairs[i].spec, &m, &err) == CHILL_OK, "%s", err.message);
        ck_assert_msg(chill_mask_allows(&m, pairs[i].q, pairs[i].k) == pairs[i].attends,
                      "%s: q=%" PRId64 ", k=%" PRId64 ": expected %s", pairs[i].spec, pairs[i].q, pairs[i].k,
                      pairs[i].attends ? "attended" : "masked");
    }
}
END_TEST

/* ---- plot ------------------------------------------------------------------- */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = '\0';
    fclose(f);
    return text;
}

static void temp_path(char *buf, size_t len) {
    snprintf(buf, len, "%s/chill_test_plot_%d.svg", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
}

/* The attended pairs of the plot: the rects of its first group, in position
 * units, painted into a table. */
static unsigned char *painted_pairs(const char *svg, int64_t n) {
    unsigned char *seen = calloc((size_t)(n * n), 1);
    ck_assert_ptr_nonnull(seen);
    const char *p = strstr(svg, "<g fill=");
    const char *end = p ? strstr(p, "</g>") : NULL;
    ck_assert_msg(p && end, "no group of attended pairs");
    for (p = strstr(p, "<rect "); p && p < end; p = strstr(p + 1, "<rect ")) {
        int64_t x, y, w, h;
        ck_assert_int_eq(sscanf(p, "<rect x=\"%" SCNd64 "\" y=\"%" SCNd64 "\" width=\"%" SCNd64 "\" height=\"%" SCNd64,
                                &x, &y, &w, &h), 4);
        ck_assert_msg(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= n && y + h <= n, "rect out of the grid");
        for (int64_t q = y; q < y + h; q++)
            for (int64_t k = x; k < x + w; k++) {
                ck_assert_msg(!seen[q * n + k], "pair (%" PRId64 ", %" PRId64 ") painted twice", q, k);
                seen[q * n + k] = 1;
            }
    }
    return seen;
}

START_TEST(plot_draws_exactly_the_attended_pairs) {
    const chill_mask_ops *ops = &chill_mask_table[_i];
    const int64_t n = 96;
    char path[256];
    temp_path(path, sizeof path);
    for (int c = 0; c < combinations(ops); c += 5) {
        chill_mask m = {.type = _i};
        combination(ops, c, m.arg);
        chill_error err = {0};
        ck_assert_msg(chill_mask_plot_svg(&m, n, 16, path, &err) == CHILL_OK, "%s", err.message);
        char *svg = read_file(path), spec[96], title[128];
        chill_mask_format(&m, spec, sizeof spec);
        snprintf(title, sizeof title, ">%s</text>", spec);
        ck_assert_msg(strncmp(svg, "<svg ", 5) == 0 && strstr(svg, "</svg>\n") != NULL, "not an SVG document");
        ck_assert_msg(strstr(svg, title) != NULL, "no title %s", spec);
        ck_assert_msg(strstr(svg, "k_range(q): first key") && strstr(svg, "full tile"), "no legend");
        unsigned char *seen = painted_pairs(svg, n);
        for (int64_t q = 0; q < n; q++)
            for (int64_t k = 0; k < n; k++)
                ck_assert_msg(seen[q * n + k] == chill_mask_allows(&m, q, k),
                              "%s: pair (%" PRId64 ", %" PRId64 ") %s", spec, q, k,
                              seen[q * n + k] ? "painted but masked" : "attended but not painted");
        free(seen);
        free(svg);
    }
    unlink(path);
}
END_TEST

START_TEST(plot_stays_small_at_1024) {
    char path[256];
    temp_path(path, sizeof path);
    for (int type = 0; type < chill_mask_count(); type++) {
        chill_mask m = {.type = type};
        combination(&chill_mask_table[type], 2, m.arg); /* the third value, 7, of the first argument */
        chill_error err = {0};
        ck_assert_msg(chill_mask_plot_svg(&m, 1024, 16, path, &err) == CHILL_OK, "%s", err.message);
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        ck_assert_msg(size < 1024 * 1024, "%s: %ld bytes for n = 1024", chill_mask_name(type), size);
    }
    unlink(path);
}
END_TEST

START_TEST(plot_refuses_bad_input) {
    chill_mask m = {.type = chill_mask_lookup("causal")};
    chill_error err = {0};
    char path[256];
    temp_path(path, sizeof path);
    ck_assert_int_eq(chill_mask_plot_svg(&m, 0, 16, path, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "n = 0"), "%s", err.message);
    ck_assert_int_eq(chill_mask_plot_svg(&m, 64, 0, path, &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "tile size 0"), "%s", err.message);
    ck_assert_int_eq(chill_mask_plot_svg(&m, 64, 16, NULL, &err), CHILL_ERR_INVALID);
    ck_assert_int_eq(chill_mask_plot_svg(&m, 64, 16, "/nonexistent-dir/mask.svg", &err), CHILL_ERR_INVALID);
    ck_assert_msg(strstr(err.message, "/nonexistent-dir/mask.svg"), "%s", err.message);
    m.type = -1;
    ck_assert_int_eq(chill_mask_plot_svg(&m, 64, 16, path, &err), CHILL_ERR_INVALID);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

/* ---- chillctl mask ------------------------------------------------------------ */

/* $(BUILD)/bin/chillctl beside this test's $(BUILD)/tests/, or "" when it is
 * not built (make unit alone); make check builds it first. */
static void chillctl_path(char *buf, size_t len) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    buf[0] = '\0';
    if (n <= 0)
        return;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    snprintf(buf, len, "%s/../bin/chillctl", self);
    if (access(buf, X_OK) != 0)
        buf[0] = '\0';
}

/* The exit status of chillctl with args (a shell word list), its output discarded. */
static int chillctl_status(const char *chillctl, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", chillctl, args);
    int status = system(cmd);
    ck_assert_msg(status != -1 && WIFEXITED(status), "could not run %s", cmd);
    return WEXITSTATUS(status);
}

START_TEST(chillctl_mask_exit_statuses) {
    char chillctl[4200];
    chillctl_path(chillctl, sizeof chillctl);
    if (chillctl[0] == '\0') {
        fprintf(stderr, "chillctl is not built here: its exit statuses are checked by make check\n");
        return;
    }
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify 'sliding_window(left_context=3, right_context=1)' -n 64"),
                     0);
    ck_assert_int_eq(
        chillctl_status(chillctl, "mask verify '{\"type\":\"chunkwise\",\"context_size\":4,\"back_contexts\":1}'"), 0);
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify nonsense"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify 'sliding_window(1)'"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify 'causal)('"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify causal -n 0"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask verify causal full"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask frobnicate"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask plot causal"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "mask plot causal -o /nonexistent-dir/mask.svg"), 1);
    ck_assert_int_eq(chillctl_status(chillctl, "no-such-command"), 2);
    ck_assert_int_eq(chillctl_status(chillctl, "help mask"), 0);

    char cmd[4300], line[256];
    snprintf(cmd, sizeof cmd, "'%s' mask list", chillctl);
    FILE *out = popen(cmd, "r");
    ck_assert_ptr_nonnull(out);
    int type = 0;
    while (fgets(line, sizeof line, out) != NULL && type < chill_mask_count()) {
        char sig[160];
        chill_mask_signature(&chill_mask_table[type], sig, sizeof sig);
        ck_assert_msg(strncmp(line, sig, strlen(sig)) == 0, "mask list line %d: \"%s\", expected %s", type, line, sig);
        type++;
    }
    ck_assert_int_eq(pclose(out), 0);
    ck_assert_int_eq(type, chill_mask_count());
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("masks");
    TCase *tc = tcase_create("verify");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, every_mask_verifies, 0, CHILL_MASK_COUNT);
    tcase_add_loop_test(tc, every_mask_verifies_small_n, 0, CHILL_MASK_COUNT);
    tcase_add_test(tc, off_by_one_k_range_is_caught);
    tcase_add_test(tc, off_by_one_q_range_is_caught);
    tcase_add_test(tc, full_k_range_claiming_too_much_is_caught);
    tcase_add_test(tc, may_be_empty_false_on_an_empty_row_is_caught);
    tcase_add_test(tc, falling_k_range_is_caught);
    tcase_add_test(tc, falling_q_range_is_caught);
    tcase_add_test(tc, verify_refuses_bad_input);
    suite_add_tcase(s, tc);
    tc = tcase_create("predicates");
    tcase_add_test(tc, predicates_match_the_design_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("plot");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, plot_draws_exactly_the_attended_pairs, 0, CHILL_MASK_COUNT);
    tcase_add_test(tc, plot_stays_small_at_1024);
    tcase_add_test(tc, plot_refuses_bad_input);
    suite_add_tcase(s, tc);
    tc = tcase_create("chillctl");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, chillctl_mask_exit_statuses);
    suite_add_tcase(s, tc);
    return s;
}
