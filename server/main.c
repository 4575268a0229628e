/* chilld: start, serve, drain.
 *
 * Reads the config (--config FILE, else config/chilld.json when present),
 * applies command-line flags over it, picks the backend (CUDA when a GPU is
 * visible, else the CPU), starts the scheduler and the transports, and waits
 * for SIGTERM or SIGINT. Either signal drains: stop accepting connections,
 * answer every request already begun, then exit 0. `--check-config FILE`
 * validates a file and explains every field instead of serving. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "device.h"
#include "hostmem.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "models.h"
#include "regions.h"
#include "scheduler.h"
#include "uds.h"

#define DEFAULT_CONFIG "config/chilld.json"

/* Defaults, then the config file, then the flags over it. Returns 0 to
 * serve, -1 when there is nothing more to do (--help), or the exit code
 * after saying what was wrong. */
static int load_config(chill_config *c, int argc, char **argv, const char **check) {
    const char *path = NULL;
    char err[1024];
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(chill_config_usage(), stdout);
            return -1;
        }
    chill_config_defaults(c);
    if (chill_config_flags(c, argc, argv, &path, check, err, sizeof err) < 0) {
        fprintf(stderr, "chilld: %s\n", err);
        return 2;
    }
    if (*check != NULL)
        path = *check;
    else if (path == NULL && access(DEFAULT_CONFIG, R_OK) == 0)
        path = DEFAULT_CONFIG;
    chill_config_defaults(c);
    if (path != NULL && chill_config_load(c, path, err, sizeof err) != 0) {
        fprintf(stderr, "chilld: config %s\n", err);
        return 2;
    }
    const char *ignored = NULL;
    int rest = chill_config_flags(c, argc, argv, &ignored, &ignored, err, sizeof err);
    if (rest < argc) {
        fprintf(stderr, "chilld: unexpected argument \"%s\"\n%s", argv[rest], chill_config_usage());
        return 2;
    }
    if (*check != NULL) {
        printf("%s: valid. Every field, with its value:\n", *check);
        chill_config_explain(c, stdout);
    }
    return 0;
}

static chill_backend *open_backend(const chill_config *c) {
    char err[512] = "";
    if (c->backend != CHILL_BACKEND_CPU) {
        chill_backend *b = chill_backend_cuda_create(c, err, sizeof err);
        if (b != NULL)
            return b;
        if (c->backend == CHILL_BACKEND_CUDA) {
            chill_log(CHILL_LOG_ERROR, "backend_failed", "kind=cuda error=\"%s\"", err);
            return NULL;
        }
        chill_log(CHILL_LOG_INFO, "backend_fallback", "from=cuda to=cpu reason=\"%s\"", err);
    }
    return chill_backend_cpu_create(c);
}

/* Waits for SIGTERM or SIGINT (blocked in every thread). */
static int wait_for_signal(const sigset_t *set) {
    int sig = 0;
    sigwait(set, &sig);
    return sig;
}

/* Stops accepting, answers what has begun; 0 when all of it was answered. */
static int drain(const chill_config *c, chill_http *http, chill_scheduler *s, int sig) {
    chill_log(CHILL_LOG_INFO, "draining", "signal=%s timeout_s=%d", sig == SIGINT ? "SIGINT" : "SIGTERM",
              c->drain_timeout_s);
    chill_http_quiesce(http);
    chill_scheduler_flush(s);
    int left = chill_http_wait_idle(http, c->drain_timeout_s);
    left += chill_scheduler_drain(s, c->drain_timeout_s);
    if (left > 0) {
        chill_log(CHILL_LOG_ERROR, "drain_timeout", "unanswered=%d", left);
        return -1;
    }
    chill_http_stop(http);
    return 0;
}

int main(int argc, char **argv) {
    chill_config c;
    const char *check = NULL;
    char err[1024];
    int rc = load_config(&c, argc, argv, &check);
    if (rc != 0 || check != NULL)
        return rc < 0 ? 0 : rc;
    chill_log_set_level(c.log_level);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (chill_models_init(&c, err, sizeof err) != 0) {
        fprintf(stderr, "chilld: %s\n", err);
        return 2;
    }
    chill_metrics_init();
    chill_backend *b = open_backend(&c);
    if (b == NULL)
        return 1;
    chill_hostmem_init(strcmp(b->kind, "cuda") == 0, c.pinned_host_bytes);
    int local = strncmp(c.address, "127.", 4) == 0 || c.uds.path[0] != '\0';
    chill_regions_configure(c.shm_system >= 0 ? c.shm_system : local,
                            (c.shm_cuda >= 0 ? c.shm_cuda : local) && strcmp(b->kind, "cuda") == 0);
    chill_scheduler *s = chill_scheduler_create(&c, b);
    chill_http *http = chill_http_start(&c, s, err, sizeof err);
    if (http == NULL) {
        chill_log(CHILL_LOG_ERROR, "start_failed", "error=\"%s\"", err);
        return 1;
    }
    if (chill_uds_start(&c.uds, &c, s, err, sizeof err) != 0) {
        chill_log(CHILL_LOG_ERROR, "start_failed", "error=\"%s\"", err);
        return 1;
    }
    chill_log(CHILL_LOG_INFO, "ready", "backend=%s devices=%d models=%d", b->kind, b->n_devices, chill_model_count());

    int sig = wait_for_signal(&set);
    if (drain(&c, http, s, sig) != 0)
        return 1;
    chill_uds_stop();
    chill_scheduler_destroy(s);
    chill_regions_shutdown();
    chill_hostmem_shutdown();
    chill_models_free();
    chill_metrics_free();
    chill_log(CHILL_LOG_INFO, "stopped", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
}
