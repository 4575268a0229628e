/* chillctl: the command-line tool for chilld and libchill. main() only
 * dispatches: each subcommand is a file of its own (see cmd.h) and one line
 * of the table below, so adding one touches nothing else. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const chill_cmd commands[] = {
    {"mask", chillctl_mask_usage, chillctl_mask},
    {"health", chillctl_health_usage, chillctl_health},
    {"models", chillctl_models_usage, chillctl_models},
    {"infer", chillctl_infer_usage, chillctl_infer},
    {"bench", chillctl_bench_usage, chillctl_bench},
    {"tune", chillctl_tune_usage, chillctl_tune},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const chill_cmd *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_help(FILE *f) {
    fprintf(f, "usage: chillctl COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *u = commands[i].usage, *eol = strchr(u, '\n');
        fprintf(f, "  %-8s %.*s\n", commands[i].name, (int)(eol ? (size_t)(eol - u) : strlen(u)), u);
    }
    fprintf(f, "\n`chillctl help COMMAND` (or `chillctl COMMAND --help`) describes one command.\n");
}

static int unknown(const char *name) {
    fprintf(stderr, "chillctl: unknown command \"%s\"; commands:", name);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(stderr, "%s %s", i ? "," : "", commands[i].name);
    fprintf(stderr, " (chillctl --help)\n");
    return CHILLCTL_EXIT_USAGE;
}

static int help(int argc, char **argv) {
    if (argc < 3) {
        print_help(stdout);
        return 0;
    }
    const chill_cmd *c = find(argv[2]);
    if (c == NULL)
        return unknown(argv[2]);
    printf("chillctl %s: %s", c->name, c->usage);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return CHILLCTL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return help(argc, argv);
    const chill_cmd *c = find(name);
    if (c == NULL)
        return unknown(name);
    if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        printf("chillctl %s: %s", c->name, c->usage);
        return 0;
    }
    return c->run(argc - 1, argv + 1);
}
