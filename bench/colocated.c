/* How fast the system shared-memory path moves tensor bytes, against this
 * machine's memcpy bandwidth measured in the same run.
 *
 * For one request shape it makes a POSIX shm object holding q, k, v and out,
 * registers it through chilld's own route (chill_regions_http), acquires the
 * views the protocol layer acquires, and times the copies an infer makes on
 * that path: chill_region_read of q, k, v into private buffers and
 * chill_region_write of out back (the SIGBUS-guarded copies). The same byte
 * counts copied with plain memcpy between private buffers are the reference.
 * Best of --reps runs each; prints one JSON line.
 *
 *   colocated_copy B,H,T,D [--dtype-bytes 2] [--reps 5] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "regions.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "colocated_copy: %s: %s\n", what, detail);
    exit(1);
}

int main(int argc, char **argv) {
    long long b, h, t, d;
    if (argc < 2 || sscanf(argv[1], "%lld,%lld,%lld,%lld", &b, &h, &t, &d) != 4)
        die("usage", "colocated_copy B,H,T,D [--dtype-bytes N] [--reps N]");
    size_t esize = 2;
    int reps = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dtype-bytes") == 0)
            esize = (size_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
    }
    size_t tensor = (size_t)(b * h * t * d) * esize, total = 4 * tensor;
    char key[64], body[256], path[128], err[512];
    snprintf(key, sizeof key, "/chill-bench-colocated.%ld", (long)getpid());
    int fd = shm_open(key, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)total) != 0)
        die("shm", key);
    char *obj = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *priv = malloc(total), *dst = malloc(total);
    if (obj == MAP_FAILED || !priv || !dst)
        die("memory", "cannot map or allocate the buffers");
    memset(obj, 1, total); /* fault every page in, as a client filling its tensors would */
    memset(priv, 2, total);
    memset(dst, 3, total);
    chill_regions_configure(1, 0);
    snprintf(path, sizeof path, "/v2/systemsharedmemory/region/bench/register");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"offset\":0,\"byte_size\":%zu}", key, total);
    char *resp = NULL;
    if (chill_regions_http("POST", path, body, strlen(body), &resp) != 200)
        die("register", resp);
    free(resp);
    chill_region_view v[4];
    for (int i = 0; i < 4; i++)
        if (chill_region_acquire("bench", (uint64_t)i * tensor, tensor, &v[i], err, sizeof err) != 0)
            die("acquire", err);
    double best_region = 1e30, best_memcpy = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < 3; i++)
            if (chill_region_read(&v[i], priv + (size_t)i * tensor, tensor, err, sizeof err) != 0)
                die("read", err);
        if (chill_region_write(&v[3], priv + 3 * tensor, tensor, err, sizeof err) != 0)
            die("write", err);
        double t1 = now();
        for (int i = 0; i < 4; i++)
            memcpy(dst + (size_t)i * tensor, priv + (size_t)i * tensor, tensor);
        double t2 = now();
        best_region = t1 - t0 < best_region ? t1 - t0 : best_region;
        best_memcpy = t2 - t1 < best_memcpy ? t2 - t1 : best_memcpy;
    }
    for (int i = 0; i < 4; i++)
        chill_region_release(&v[i]);
    chill_regions_shutdown();
    munmap(obj, total);
    close(fd);
    shm_unlink(key);
    double region_gbps = (double)total / best_region / 1e9, memcpy_gbps = (double)total / best_memcpy / 1e9;
    printf("{\"shape\":[%lld,%lld,%lld,%lld],\"bytes\":%zu,\"region_gbps\":%.2f,\"memcpy_gbps\":%.2f,\"ratio\":%.3f}\n",
           b, h, t, d, total, region_gbps, memcpy_gbps, region_gbps / memcpy_gbps);
    free(priv);
    free(dst);
    return 0;
}
