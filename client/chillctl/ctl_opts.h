/* The options chillctl's client subcommands (health, models, infer, bench)
 * share: where the server is and how to reach it, and the shape, dtype and
 * mask of an attention request. Each subcommand puts CTL_OPTS_LONG in its
 * getopt_long table and hands unknown options to ctl_opts_parse(). */
#ifndef CHILLCTL_OPTS_H
#define CHILLCTL_OPTS_H

#include <getopt.h>

#include "chillclient.h"

enum {
    CTL_OPT_URL = 1000, CTL_OPT_TRANSPORT, CTL_OPT_SOCKET, CTL_OPT_ARENA, CTL_OPT_TIMEOUT,
    CTL_OPT_MASK, CTL_OPT_MODEL, CTL_OPT_DTYPE, CTL_OPT_SHAPE, CTL_OPT_HEADS_KV, CTL_OPT_SEQ_K,
    CTL_OPT_LSE, CTL_OPT_SM_SCALE, CTL_OPT_Q_OFFSET,
};

#define CTL_OPTS_LONG                                                                             \
    {"url", required_argument, 0, CTL_OPT_URL}, {"transport", required_argument, 0, CTL_OPT_TRANSPORT}, \
    {"socket", required_argument, 0, CTL_OPT_SOCKET}, {"arena", required_argument, 0, CTL_OPT_ARENA},   \
    {"timeout", required_argument, 0, CTL_OPT_TIMEOUT}, {"mask", required_argument, 0, CTL_OPT_MASK},   \
    {"model", required_argument, 0, CTL_OPT_MODEL}, {"dtype", required_argument, 0, CTL_OPT_DTYPE},     \
    {"shape", required_argument, 0, CTL_OPT_SHAPE}, {"random", required_argument, 0, CTL_OPT_SHAPE},    \
    {"heads-kv", required_argument, 0, CTL_OPT_HEADS_KV}, {"seq-k", required_argument, 0, CTL_OPT_SEQ_K}, \
    {"lse", no_argument, 0, CTL_OPT_LSE}, {"sm-scale", required_argument, 0, CTL_OPT_SM_SCALE},         \
    {"q-offset", required_argument, 0, CTL_OPT_Q_OFFSET}

#define CTL_OPTS_USAGE                                                                            \
    "  --url URL            chilld's HTTP address (default http://127.0.0.1:8000)\n"               \
    "  --transport T        http, shm (system shared memory) or uds (native socket)\n"             \
    "  --socket PATH        chilld's Unix socket, for uds\n"                                        \
    "  --arena BYTES        shared arena size for shm and uds (default: what the request needs)\n" \
    "  --timeout MS         per-request limit\n"

#define CTL_REQ_USAGE                                                                             \
    "  --mask SPEC          mask spec, e.g. causal or sliding_window(64,0)\n"                     \
    "  --model NAME         model (mask type or preset); default: the mask's type\n"              \
    "  --dtype T            fp32, fp16 (default) or bf16\n"                                         \
    "  --random B,H,T,D     random q, k, v of this shape (also --shape)\n"                         \
    "  --heads-kv N         key/value heads (default H); --seq-k N keys (default T)\n"             \
    "  --lse                also fetch lse; --sm-scale X; --q-offset N\n"

typedef struct ctl_opts {
    chill_client_options client;
    chill_client_request req;   /* shape, dtype, mask; tensors unset */
    int have_shape;
    int want_lse;
} ctl_opts;

void ctl_opts_init(ctl_opts *o);

/* Handles one shared option; 0 when taken, -1 (after printing why) when its
 * value is bad, 1 when opt is not a shared option. */
int ctl_opts_parse(ctl_opts *o, int opt, const char *arg);

/* Fills in what the options leave open: heads_kv, seq_k, the mask (causal),
 * and an arena just large enough for the shape. */
void ctl_opts_finish(ctl_opts *o);

/* Creates the client; NULL after printing why. */
chill_client *ctl_connect(const ctl_opts *o);

#endif
