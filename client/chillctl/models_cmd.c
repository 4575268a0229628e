/* chillctl models: the models chilld serves (its repository index), one a
 * line with its state, and with -v each model's inputs from its metadata. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctl_opts.h"

const char chillctl_models_usage[] =
    "the models chilld serves, with their state\n"
    "usage: chillctl models [--url URL] [-v]\n";

static void chill_models_detail(chill_client *c, const char *name) {
    char path[256], *body = NULL;
    chill_client_error err;
    snprintf(path, sizeof path, "/v2/models/%s", name);
    if (chill_client_call(c, path, NULL, &body, &err) != CHILL_CLIENT_OK) {
        printf("    metadata: %s\n", err.message);
        return;
    }
    json_t *m = json_loads(body, 0, NULL), *t;
    size_t i;
    json_array_foreach(json_object_get(m, "inputs"), i, t) {
        printf("    input  %-8s", json_string_value(json_object_get(t, "name")));
        char *shape = json_dumps(json_object_get(t, "shape"), JSON_COMPACT);
        printf(" %s %s\n", json_string_value(json_object_get(t, "datatype")), shape ? shape : "");
        free(shape);
    }
    json_decref(m);
    free(body);
}

int chillctl_models(int argc, char **argv) {
    static const struct option longopts[] = {CTL_OPTS_LONG, {"verbose", no_argument, 0, 'v'},
                                             {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    ctl_opts o;
    ctl_opts_init(&o);
    int opt, verbose = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        if (opt == 'v') {
            verbose = 1;
            continue;
        }
        if (opt == 'h' || ctl_opts_parse(&o, opt, optarg) != 0) {
            fputs(chillctl_models_usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    o.client.transport = CHILL_CLIENT_HTTP;
    chill_client *c = ctl_connect(&o);
    if (!c)
        return 1;
    char *body = NULL;
    chill_client_error err;
    int rc = 1;
    if (chill_client_call(c, "/v2/repository/index", "{}", &body, &err) != CHILL_CLIENT_OK) {
        fprintf(stderr, "chillctl: %s\n", err.message);
    } else {
        json_t *idx = json_loads(body, 0, NULL), *m;
        size_t i;
        if (!json_is_array(idx))
            fprintf(stderr, "chillctl: the repository index is not a JSON array: %.200s\n", body);
        json_array_foreach(idx, i, m) {
            const char *name = json_string_value(json_object_get(m, "name"));
            const char *state = json_string_value(json_object_get(m, "state"));
            printf("%-24s %s\n", name ? name : "?", state ? state : "");
            if (verbose && name)
                chill_models_detail(c, name);
        }
        rc = json_is_array(idx) ? 0 : 1;
        json_decref(idx);
    }
    free(body);
    chill_client_destroy(c);
    return rc;
}
