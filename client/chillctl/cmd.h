/* chillctl's subcommands. Each is one file, client/chillctl/<name>_cmd.c,
 * defining the two names declared here for it, plus one line in the table of
 * client/chillctl/main.c. run() receives the arguments from the subcommand's
 * name on (argv[0] is "mask" for `chillctl mask list`) and returns the exit
 * status: 0 success, 1 failure, 2 usage error. */
#ifndef CHILLCTL_CMD_H
#define CHILLCTL_CMD_H

typedef struct {
    const char *name;
    const char *usage; /* first line: a one-line summary; the rest: usage and options, for `chillctl help NAME` */
    int (*run)(int argc, char **argv);
} chill_cmd;

#define CHILLCTL_EXIT_USAGE 2

/* masks: list, verify, plot (mask_cmd.c) */
extern const char chillctl_mask_usage[];
int chillctl_mask(int argc, char **argv);

/* client subcommands (health_cmd.c, models_cmd.c, infer_cmd.c, bench_cmd.c) */
extern const char chillctl_health_usage[];
int chillctl_health(int argc, char **argv);
extern const char chillctl_models_usage[];
int chillctl_models(int argc, char **argv);
extern const char chillctl_infer_usage[];
int chillctl_infer(int argc, char **argv);
extern const char chillctl_bench_usage[];
int chillctl_bench(int argc, char **argv);

/* GPU kernel tuning (tune_cmd.c) */
extern const char chillctl_tune_usage[];
int chillctl_tune(int argc, char **argv);

#endif
