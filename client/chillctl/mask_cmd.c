/* chillctl mask: list the registered masks, verify a mask's ranges against
 * its predicate, plot a mask as SVG. All of it runs locally on libchill; no
 * server is involved. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chill.h"
#include "cmd.h"
#include "spec.h"

const char chillctl_mask_usage[] =
    "list, verify and plot the registered masks\n"
    "usage:\n"
    "  chillctl mask list\n"
    "      each registered mask, its arguments and the values they accept\n"
    "  chillctl mask verify SPEC [-n N]\n"
    "      proves the mask's ranges against its predicate over N positions (default 512,\n"
    "      at most 4096); prints OK or the first mismatch; exits 1 on a mismatch\n"
    "  chillctl mask plot SPEC [-n N] [--tile T] -o FILE.svg\n"
    "      draws the mask over N positions (default 128) with query and key tiles of T\n"
    "      (default 64): attended pairs, the k_range curves, full and partial tiles\n"
    "SPEC: NAME, NAME(ARGS) or NAME(ARG=VALUE, ...), e.g. causal or sliding_window(64,32),\n"
    "or JSON: '{\"type\":\"sliding_window\",\"left_context\":64,\"right_context\":32}'.\n"
    "Exit status: 0 success, 1 failure (a mismatch, an unwritable file), 2 usage error.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "chillctl mask: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (chillctl help mask)\n");
    return CHILLCTL_EXIT_USAGE;
}

/* A spec in text or JSON form; 0 on success, after printing why otherwise. */
static int read_spec(const char *spec, chill_mask *m) {
    chill_error err;
    const char *p = spec + strspn(spec, " \t\n");
    chill_status s = *p == '{' ? chill_mask_parse_json(spec, m, &err) : chill_mask_parse(spec, m, &err);
    if (s == CHILL_OK)
        return 0;
    fprintf(stderr, "chillctl mask: %s\n", err.message);
    return -1;
}

static int read_count(const char *opt, const char *arg, int64_t hi, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || x < 1 || x > hi) {
        fprintf(stderr, "chillctl mask: %s \"%s\": accepted is an integer from 1 to %" PRId64 "\n", opt, arg, hi);
        return -1;
    }
    *v = x;
    return 0;
}

static int mask_list(int argc, char **argv) {
    (void)argv;
    if (argc > 1)
        return usage_error("list takes no arguments, got %s more", argc == 2 ? "one" : "several");
    for (int t = 0; t < chill_mask_count(); t++) {
        const chill_mask_ops *ops = &chill_mask_table[t];
        char sig[160];
        chill_mask_signature(ops, sig, sizeof sig);
        printf("%-*s", (int)strlen(sig) < 44 ? 46 : (int)strlen(sig) + 2, sig);
        for (int i = 0; i < ops->nargs; i++)
            printf("%s%s in [%" PRId64 ", %" PRId64 "]", i ? ", " : "", ops->arg_names[i], ops->arg_min[i],
                   CHILL_MASK_ARG_MAX);
        printf("%s\n", ops->nargs ? "" : "no arguments");
    }
    return 0;
}

/* Options shared by verify and plot: SPEC, -n, --tile, -o. */
typedef struct mask_opts {
    chill_mask mask;
    int64_t n, tile;
    const char *out;
} mask_opts;

static int read_opts(int argc, char **argv, bool plotting, mask_opts *o) {
    static const struct option long_opts[] = {
        {"tile", required_argument, 0, 't'}, {"output", required_argument, 0, 'o'}, {0, 0, 0, 0},
    };
    const char *spec = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "-n:t:o:", long_opts, NULL)) != -1) {
        if (c != 1 && c != 'n' && (c == '?' || !plotting))
            return usage_error("%s: unknown option or missing value", argv[0]);
        if (c == 1 && spec != NULL)
            return usage_error("one SPEC expected, got another: \"%s\" (quote a spec that has spaces)", optarg);
        if (c == 1)
            spec = optarg;
        if (c == 'n' && read_count("-n", optarg, plotting ? CHILL_PLOT_N_MAX : CHILL_VERIFY_N_MAX, &o->n) != 0)
            return CHILLCTL_EXIT_USAGE;
        if (c == 't' && read_count("--tile", optarg, CHILL_PLOT_N_MAX, &o->tile) != 0)
            return CHILLCTL_EXIT_USAGE;
        if (c == 'o')
            o->out = optarg;
    }
    if (spec == NULL)
        return usage_error("%s: missing SPEC, e.g. causal or sliding_window(64,32)", argv[0]);
    if (plotting && o->out == NULL)
        return usage_error("%s: missing -o FILE.svg", argv[0]);
    return read_spec(spec, &o->mask) == 0 ? 0 : CHILLCTL_EXIT_USAGE;
}

static int mask_verify(int argc, char **argv) {
    mask_opts o = {.n = 512};
    int rc = read_opts(argc, argv, false, &o);
    if (rc != 0)
        return rc;
    char spec[96];
    chill_mask_format(&o.mask, spec, sizeof spec);
    chill_error err;
    chill_status s = chill_mask_verify(&o.mask, o.n, &err);
    if (s == CHILL_ERR_INVALID) {
        printf("MISMATCH %s\n", err.message);
        return 1;
    }
    if (s != CHILL_OK) {
        fprintf(stderr, "chillctl mask: %s\n", err.message);
        return 1;
    }
    printf("OK %s: k_range, q_range, full_k_range and may_be_empty hold over n = %" PRId64 "\n", spec, o.n);
    return 0;
}

static int mask_plot(int argc, char **argv) {
    mask_opts o = {.n = 128, .tile = 64};
    int rc = read_opts(argc, argv, true, &o);
    if (rc != 0)
        return rc;
    chill_error err;
    if (chill_mask_plot_svg(&o.mask, o.n, (int)o.tile, o.out, &err) != CHILL_OK) {
        fprintf(stderr, "chillctl mask: %s\n", err.message);
        return 1;
    }
    char spec[96];
    chill_mask_format(&o.mask, spec, sizeof spec);
    printf("wrote %s: %s over %" PRId64 " positions, tiles of %" PRId64 "\n", o.out, spec, o.n, o.tile);
    return 0;
}

int chillctl_mask(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } subs[] = {{"list", mask_list}, {"verify", mask_verify}, {"plot", mask_plot}};
    if (argc < 2)
        return usage_error("missing what to do: %s", "list, verify or plot");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(argc - 1, argv + 1);
    return usage_error("unknown action \"%s\"; accepted: list, verify, plot", argv[1]);
}
