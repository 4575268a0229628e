/* chillctl health: is chilld live and ready (HTTP), or does its socket
 * accept a client (uds)? Exits 0 when it is, 1 when not. */
#include <stdio.h>

#include "cmd.h"
#include "ctl_opts.h"

const char chillctl_health_usage[] =
    "whether chilld is live and ready (or its socket answers)\n"
    "usage: chillctl health [options]\n" CTL_OPTS_USAGE;

int chillctl_health(int argc, char **argv) {
    static const struct option longopts[] = {CTL_OPTS_LONG, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    ctl_opts o;
    ctl_opts_init(&o);
    o.client.arena_bytes = 4096;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h' || ctl_opts_parse(&o, opt, optarg) != 0) {
            fputs(chillctl_health_usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    chill_client *c = ctl_connect(&o);
    if (!c)
        return 1;
    chill_client_error err;
    chill_client_status s = chill_client_health(c, &err);
    chill_client_destroy(c);
    if (s != CHILL_CLIENT_OK) {
        printf("not ready: %s\n", err.message);
        return 1;
    }
    printf("live and ready\n");
    return 0;
}
