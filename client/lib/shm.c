/* libchillclient over system shared memory: at create, a POSIX shared-memory
 * object (the arena) is made, mapped, and registered with chilld through
 * Triton's system shared-memory extension; each infer then stages q, k, v in
 * the arena (unless they already lie there) and sends an HTTP request whose
 * tensors name the region, offset and size, so only JSON crosses HTTP.
 * chilld writes out and lse into the arena. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_internal.h"

static atomic_uint chill_cli_shm_counter;

static chill_client_status chill_cli_shm_register(chill_client *c, chill_client_error *err) {
    char path[160], body[256], *resp = NULL;
    size_t len;
    snprintf(path, sizeof path, "/v2/systemsharedmemory/region/%s/register", c->region);
    snprintf(body, sizeof body, "{\"key\":\"/%s\",\"offset\":0,\"byte_size\":%zu}", c->region, c->arena_bytes);
    chill_client_status s = chill_cli_http_call(c, "POST", path, body, strlen(body), &resp, &len, err);
    free(resp);
    return s;
}

chill_client_status chill_cli_shm_open(chill_client *c, chill_client_error *err) {
    snprintf(c->region, sizeof c->region, "chillclient.%ld.%u", (long)getpid(),
             atomic_fetch_add(&chill_cli_shm_counter, 1));
    char key[80];
    snprintf(key, sizeof key, "/%s", c->region);
    int fd = shm_open(key, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "shm_open(%s): %m", key);
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)c->arena_bytes) == 0)
        p = mmap(NULL, c->arena_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "sizing or mapping %zu bytes of %s: %m", c->arena_bytes, key);
        shm_unlink(key);
        c->region[0] = '\0';
        return CHILL_CLIENT_ERR_SYSTEM;
    }
    c->arena = p;
    return chill_cli_shm_register(c, err);
}

void chill_cli_shm_close(chill_client *c) {
    if (!c->region[0])
        return;
    if (c->curl) {
        char path[160], *resp = NULL;
        size_t len;
        snprintf(path, sizeof path, "/v2/systemsharedmemory/region/%s/unregister", c->region);
        chill_cli_http_call(c, "POST", path, "{}", 2, &resp, &len, NULL);
        free(resp);
    }
    if (c->arena)
        munmap(c->arena, c->arena_bytes);
    c->arena = NULL;
    char key[80];
    snprintf(key, sizeof key, "/%s", c->region);
    shm_unlink(key);
}

chill_client_status chill_cli_shm_infer(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                        chill_client_error *err) {
    chill_client_layout lay;
    int staged;
    chill_client_status s = chill_client_stage(c, r, sz, &lay, &staged, err);
    if (s != CHILL_CLIENT_OK)
        return s;
    char model[128];
    char *header = chill_cli_http_infer_header(r, sz, c->region, &lay, model, sizeof model, err);
    if (!header)
        return err ? err->status : CHILL_CLIENT_ERR_INVALID;
    char path[256], *resp = NULL;
    size_t len;
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    s = chill_cli_http_call(c, "POST", path, header, strlen(header), &resp, &len, err);
    free(header);
    free(resp);
    if (s == CHILL_CLIENT_OK)
        chill_client_unstage(c, r, sz, &lay, staged);
    return s;
}
