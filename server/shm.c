/* Shared-memory regions (server/regions.h): Triton's system shared-memory
 * and CUDA shared-memory extensions.
 *
 * A registered region lives in one table under one lock. Each region counts
 * its references: one for being registered, one per acquired view. Unregister
 * drops the first; the mapping goes away with the last, so a request that
 * holds a view keeps reading valid memory even after its client unregistered
 * the region (the name is free again at once).
 *
 * System regions are mmap'd shared, and pinned when the CUDA backend runs
 * (server/hostmem.h) so that the GPU's copies use them in place. Their owner
 * may truncate the object while we copy from it; the kernel then raises
 * SIGBUS on the copying thread. Host copies go through chill_region_copy(),
 * which arms a per-thread jump buffer that the SIGBUS handler returns to, and
 * the request fails with a message instead of the daemon dying. A SIGBUS
 * anywhere else keeps its default action. A device copy does not fault, and
 * after a truncation the pinned pages are no longer the object's, so every
 * object is watched with inotify from registration on; once it is truncated
 * (or written with write(2)), its regions are served by host copies only.
 *
 * CUDA regions are a cudaIpcMemHandle opened on its device; views point at
 * device memory and are handed to the kernels as they are, with no copy. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CHILL_WITH_CUDA
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#endif

#include "hostmem.h"
#include "log.h"
#include "regions.h"

#define CHILL_REGION_NAME_MAX 128
#define CHILL_REGION_KEY_MAX 256
#define CHILL_CUDA_HANDLE_BYTES 64

struct chill_region {
    char name[CHILL_REGION_NAME_MAX];
    char key[CHILL_REGION_KEY_MAX]; /* system: the shm key */
    uint64_t key_offset;            /* system: where the region starts in the object */
    int on_device, device;
    void *map;                      /* system: the mapping; CUDA: the opened IPC pointer */
    size_t map_len;
    char *data;                     /* the region's first byte */
    size_t size;
    int pinned;
    int wd;                         /* system: the inotify watch on its object, or -1 */
    uint32_t seen;                  /* system: the watch's event count when registered */
    int changed;                    /* system: its object was modified other than through a mapping */
    int refs;
    chill_region *next;
};

static pthread_mutex_t chill_regions_lock = PTHREAD_MUTEX_INITIALIZER;
static chill_region *chill_regions_list;
/* One inotify instance watches every system region's object for IN_MODIFY,
 * and counts the events per watch. Regions on one object share its watch;
 * the last one to be unmapped removes it (a watch holds its object's inode,
 * so an unlinked object's memory would otherwise stay allocated). The table
 * holds the live watches only: the kernel numbers watches ever upward, so a
 * table indexed by that number would grow with every registration ever made. */
static int chill_regions_inotify = -1;
static struct chill_watch {
    int wd;
    uint32_t events;
    int users;
} *chill_watches;
static int chill_n_watches, chill_watch_cap;
static int chill_regions_allow_system, chill_regions_allow_cuda;

void chill_regions_configure(int allow_system, int allow_cuda) {
    chill_regions_allow_system = allow_system;
    chill_regions_allow_cuda = allow_cuda;
}

int chill_regions_enabled(int cuda) { return cuda ? chill_regions_allow_cuda : chill_regions_allow_system; }

/* ---- SIGBUS-safe copies ---------------------------------------------------- */

static __thread sigjmp_buf *volatile chill_bus_jump;
static pthread_once_t chill_bus_once = PTHREAD_ONCE_INIT;

static void chill_bus_handler(int sig) {
    if (chill_bus_jump)
        siglongjmp(*chill_bus_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void chill_bus_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = chill_bus_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

static int chill_region_copy(const chill_region_view *v, void *dst, const void *src, size_t size, const char *what,
                             char *err, size_t errlen) {
    if (v->on_device) {
        snprintf(err, errlen, "region %s is CUDA shared memory: its tensors are used on the device, not copied",
                 v->region->name);
        return -1;
    }
    if (size > v->size) {
        snprintf(err, errlen, "%s %zu bytes of region %s where the view has %zu", what, size, v->region->name, v->size);
        return -1;
    }
    sigjmp_buf jump;
    if (sigsetjmp(jump, 1)) {
        chill_bus_jump = NULL;
        snprintf(err, errlen,
                 "shared-memory region %s (key %s) was truncated by its owner while chilld %s it; "
                 "keep the object at least offset + byte_size bytes long while it is registered",
                 v->region->name, v->region->key, what);
        return -1;
    }
    chill_bus_jump = &jump;
    memcpy(dst, src, size);
    chill_bus_jump = NULL;
    return 0;
}

/* The live watch numbered wd, or NULL. Caller holds the lock. */
static struct chill_watch *chill_watch_find(int wd) {
    for (int i = 0; i < chill_n_watches; i++)
        if (chill_watches[i].wd == wd)
            return &chill_watches[i];
    return NULL;
}

/* Counts the pending inotify events per watch; an overflowed queue lost some,
 * so it counts one for every watch. Caller holds the lock. */
static void chill_watch_drain(void) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while (chill_regions_inotify >= 0 && (n = read(chill_regions_inotify, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            struct chill_watch *w = chill_watch_find(ev->wd);
            if (ev->mask & IN_Q_OVERFLOW)
                for (int i = 0; i < chill_n_watches; i++)
                    chill_watches[i].events++;
            else if (w != NULL)
                w->events++;
            p += sizeof *ev + ev->len;
        }
    }
}

/* Whether r's object was truncated, resized or written with write(2) since
 * registration: an IN_MODIFY event on it (writes through a mapping, which is
 * how clients fill regions, raise none). Latched. */
static int chill_region_modified(chill_region *r) {
    pthread_mutex_lock(&chill_regions_lock);
    if (!r->changed && r->wd < 0) {
        r->changed = 1;
    } else if (!r->changed) {
        chill_watch_drain();
        const struct chill_watch *w = chill_watch_find(r->wd);
        if (w == NULL || w->events != r->seen) {
            r->changed = 1;
            chill_log(CHILL_LOG_WARN, "region_changed", "name=%s key=%s: truncated, resized or written with write() "
                      "by its owner; served by copies from now on", r->name, r->key);
        }
    }
    int changed = r->changed;
    pthread_mutex_unlock(&chill_regions_lock);
    return changed;
}

int chill_region_unchanged(const chill_region_view *view, char *err, size_t errlen) {
    chill_region *r = view->region;
    if (r->on_device || !chill_region_modified(r))
        return 0;
    snprintf(err, errlen,
             "shared-memory region %s (key %s) was truncated, resized or written with write() by its owner while "
             "chilld used it; keep the object at least offset + byte_size bytes long and fill it through a mapping",
             r->name, r->key);
    return -1;
}

int chill_region_direct(const chill_region_view *view) {
    char err[8];
    return view->pinned && chill_region_unchanged(view, err, sizeof err) == 0;
}

int chill_region_read(const chill_region_view *view, void *dst, size_t size, char *err, size_t errlen) {
    return chill_region_copy(view, dst, view->ptr, size, "read", err, errlen);
}

int chill_region_write(const chill_region_view *view, const void *src, size_t size, char *err, size_t errlen) {
    return chill_region_copy(view, view->ptr, src, size, "wrote", err, errlen);
}

/* ---- the table -------------------------------------------------------------- */

static chill_region *chill_region_find(const char *name) {
    for (chill_region *r = chill_regions_list; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static void chill_region_unmap(chill_region *r) {
#ifdef CHILL_WITH_CUDA
    if (r->on_device) {
        int prev;
        cudaGetDevice(&prev);
        cudaSetDevice(r->device);
        cudaIpcCloseMemHandle(r->map);
        cudaSetDevice(prev);
    }
#endif
    if (r->pinned)
        chill_hostmem_unregister(r->map);
    if (!r->on_device)
        munmap(r->map, r->map_len);
    struct chill_watch *w = r->wd >= 0 ? chill_watch_find(r->wd) : NULL; /* none after shutdown */
    if (w != NULL && --w->users == 0) {
        inotify_rm_watch(chill_regions_inotify, r->wd);
        *w = chill_watches[--chill_n_watches];
    }
    chill_log(CHILL_LOG_INFO, "region_unmapped", "name=%s bytes=%zu", r->name, r->size);
    free(r);
}

/* Drops one reference; unmaps on the last. Called with the lock held. */
static void chill_region_unref(chill_region *r) {
    if (--r->refs == 0)
        chill_region_unmap(r);
}

static void chill_region_unlink(chill_region *r) {
    for (chill_region **p = &chill_regions_list; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    chill_log(CHILL_LOG_INFO, "region_unregistered", "name=%s in_use=%d", r->name, r->refs - 1);
    chill_region_unref(r);
}

int chill_region_acquire(const char *name, uint64_t offset, uint64_t size, chill_region_view *view, char *err,
                         size_t errlen) {
    memset(view, 0, sizeof *view);
    pthread_mutex_lock(&chill_regions_lock);
    chill_region *r = chill_region_find(name);
    int rc = -1;
    if (!r)
        snprintf(err, errlen, "shared-memory region \"%s\" is not registered", name);
    else if (offset > r->size || size > r->size - offset)
        snprintf(err, errlen,
                 "shared_memory_offset %llu + shared_memory_byte_size %llu lies outside region %s, which has %zu bytes",
                 (unsigned long long)offset, (unsigned long long)size, name, r->size);
    else {
        r->refs++;
        *view = (chill_region_view){r, r->data + offset, (size_t)size, r->on_device, r->device, r->pinned, 0};
        rc = 0;
    }
    pthread_mutex_unlock(&chill_regions_lock);
    return rc;
}

void chill_region_release(chill_region_view *view) {
    if (!view->region)
        return;
    pthread_mutex_lock(&chill_regions_lock);
    chill_region_unref(view->region);
    pthread_mutex_unlock(&chill_regions_lock);
    view->region = NULL;
}

void chill_regions_shutdown(void) {
    pthread_mutex_lock(&chill_regions_lock);
    while (chill_regions_list)
        chill_region_unlink(chill_regions_list);
    if (chill_regions_inotify >= 0)
        close(chill_regions_inotify);
    chill_regions_inotify = -1;
    free(chill_watches);
    chill_watches = NULL;
    chill_n_watches = chill_watch_cap = 0;
    pthread_mutex_unlock(&chill_regions_lock);
}

/* ---- registration ---------------------------------------------------------- */

/* The watch numbered wd, added to the table when new (the kernel gives an
 * object's existing watch to a second registration); NULL when out of memory.
 * Caller holds the lock. */
static struct chill_watch *chill_watch_add(int wd) {
    struct chill_watch *w = chill_watch_find(wd);
    if (w != NULL)
        return w;
    if (chill_n_watches == chill_watch_cap) {
        int cap = 2 * chill_watch_cap + 8;
        struct chill_watch *grown = realloc(chill_watches, sizeof *grown * (size_t)cap);
        if (grown == NULL)
            return NULL;
        chill_watches = grown;
        chill_watch_cap = cap;
    }
    chill_watches[chill_n_watches] = (struct chill_watch){.wd = wd};
    return &chill_watches[chill_n_watches++];
}

/* Watches the object open at fd (r->wd), counting from now; without a watch
 * (inotify refused one) the region is never used in place, only copied. */
static void chill_region_watch(chill_region *r, int fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    pthread_mutex_lock(&chill_regions_lock);
    if (chill_regions_inotify < 0)
        chill_regions_inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int wd = chill_regions_inotify >= 0 ? inotify_add_watch(chill_regions_inotify, path, IN_MODIFY) : -1;
    struct chill_watch *w = wd >= 0 ? chill_watch_add(wd) : NULL;
    if (wd >= 0 && w == NULL) /* a new watch that the table has no room for */
        inotify_rm_watch(chill_regions_inotify, wd);
    r->wd = w != NULL ? wd : -1;
    if (w != NULL) {
        chill_watch_drain();
        r->seen = w->events;
        w->users++;
    } else {
        chill_log(CHILL_LOG_WARN, "region_unwatched", "name=%s key=%s: cannot watch the object for truncation (%s); "
                  "served by copies", r->name, r->key, strerror(errno));
    }
    pthread_mutex_unlock(&chill_regions_lock);
}

/* Maps [offset, offset + size) of the shm object key. 0, or an HTTP status. */
static int chill_region_map_system(chill_region *r, char *err, size_t errlen) {
    int fd = shm_open(r->key, O_RDWR, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open shared-memory key %s: %s", r->key, strerror(errno));
        return 400;
    }
    struct stat st;
    int status = 0;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < r->key_offset ||
        (uint64_t)st.st_size - r->key_offset < r->size) {
        snprintf(err, errlen, "shared-memory object %s has %lld bytes; offset %llu + byte_size %zu does not fit",
                 r->key, (long long)st.st_size, (unsigned long long)r->key_offset, r->size);
        status = 400;
    } else {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start = r->key_offset / page * page;
        r->map_len = r->size + (size_t)(r->key_offset - start);
        r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
        if (r->map == MAP_FAILED) {
            snprintf(err, errlen, "cannot map %zu bytes of %s: %s", r->size, r->key, strerror(errno));
            status = 500;
        } else {
            r->data = (char *)r->map + (r->key_offset - start);
        }
    }
    if (status == 0) {
        chill_region_watch(r, fd); /* before pinning: no truncation after the pin goes unseen */
        r->pinned = chill_hostmem_register(r->map, r->map_len);
    }
    close(fd);
    return status;
}

static int chill_b64_value(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decodes base64 (standard or URL alphabet, padding optional, line breaks
 * and spaces skipped: Triton's C++ client, perf_analyzer's, encodes with
 * libb64, which breaks lines every 72 characters and ends with one); the
 * byte count, or -1. */
static int chill_b64_decode(const char *s, unsigned char *out, size_t cap) {
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        if (strchr(" \t\r\n", *s) != NULL)
            continue;
        int v = chill_b64_value((unsigned char)*s);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)n;
}

#ifdef CHILL_WITH_CUDA
static PFN_cuMemGetAddressRange_v3020 chill_mem_range;
static pthread_once_t chill_mem_range_once = PTHREAD_ONCE_INIT;

/* The driver's cuMemGetAddressRange, found through the runtime so that chilld
 * does not link the driver library (it starts on machines without one). */
static void chill_mem_range_find(void) {
    enum cudaDriverEntryPointQueryResult found;
    void *fn = NULL;
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &found) ==
            cudaSuccess && found == cudaDriverEntryPointSuccess)
        chill_mem_range = (PFN_cuMemGetAddressRange_v3020)fn;
    cudaGetLastError();
}

/* 0 when r, just opened on the current device, fits in the allocation behind
 * its handle, else 400 with the handle closed. Where the driver gives no size
 * the region is taken unchecked, with a warning, as before the check. */
static int chill_region_fits_device(chill_region *r, char *err, size_t errlen) {
    pthread_once(&chill_mem_range_once, chill_mem_range_find);
    CUdeviceptr base = 0, p = (CUdeviceptr)r->map;
    size_t size = 0;
    if (chill_mem_range == NULL || chill_mem_range(&base, &size, p) != CUDA_SUCCESS) {
        chill_log(CHILL_LOG_WARN, "region_size_unchecked", "device=%d bytes=%zu (the driver did not give the "
                  "allocation's size)", r->device, r->size);
        return 0;
    }
    if (base + size - p >= r->size)
        return 0;
    cudaIpcCloseMemHandle(r->map);
    snprintf(err, errlen, "byte_size %zu is larger than the device allocation behind the handle, which has %zu "
             "bytes from the handle's address", r->size, (size_t)(base + size - p));
    return 400;
}
#endif

/* Opens the client's IPC handle on its device. The handle brings its whole
 * allocation and nothing says how large that is but the driver: a byte_size
 * past its end would have the kernels read and write memory that is not the
 * region's (another allocation of chilld's, or a fault that takes the GPU out
 * of service), so the region must fit in it, as a system region must fit in
 * its object. */
static int chill_region_map_cuda(chill_region *r, const char *b64, char *err, size_t errlen) {
    unsigned char handle[CHILL_CUDA_HANDLE_BYTES];
    if (chill_b64_decode(b64, handle, sizeof handle) != CHILL_CUDA_HANDLE_BYTES) {
        snprintf(err, errlen, "raw_handle.b64 must be the base64 of a %d-byte cudaIpcMemHandle_t",
                 CHILL_CUDA_HANDLE_BYTES);
        return 400;
    }
#ifdef CHILL_WITH_CUDA
    int n = 0, prev = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || r->device >= n) {
        cudaGetLastError();
        snprintf(err, errlen, "device_id %d: this chilld sees %d GPU(s)", r->device, n);
        return 400;
    }
    cudaIpcMemHandle_t h;
    memcpy(&h, handle, sizeof h);
    cudaGetDevice(&prev);
    cudaSetDevice(r->device);
    cudaError_t e = cudaIpcOpenMemHandle(&r->map, h, cudaIpcMemLazyEnablePeerAccess);
    int status = e == cudaSuccess ? chill_region_fits_device(r, err, errlen) : 0;
    cudaSetDevice(prev);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, errlen, "cudaIpcOpenMemHandle on device %d failed: %s (a handle from another process on this machine is needed)",
                 r->device, cudaGetErrorString(e));
        return 400;
    }
    if (status == 0)
        r->data = r->map;
    return status;
#else
    snprintf(err, errlen, "CUDA shared memory on device %d needs chilld built with CUDA and a GPU; this one has neither",
             r->device);
    return 400;
#endif
}

static int chill_regions_fail(char **response, int status, const char *fmt, const char *a, const char *b) {
    char msg[768];
    snprintf(msg, sizeof msg, fmt, a, b);
    json_t *j = json_pack("{s:s}", "error", msg);
    *response = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return status;
}

static int chill_regions_ok(char **response, json_t *j) {
    if (!j)
        j = json_object();
    *response = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return 200;
}

/* A non-negative integer member; -1 when absent or of the wrong type. */
static int chill_json_u64(json_t *o, const char *key, uint64_t *v) {
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return -1;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

static int chill_regions_register(int cuda, const char *name, json_t *body, char **response) {
    if (!chill_regions_enabled(cuda))
        return chill_regions_fail(response, 403,
                                  "%s shared-memory registration is off in this chilld's config (shared_memory.%s)",
                                  cuda ? "CUDA" : "system", cuda ? "cuda" : "system");
    if (strlen(name) >= CHILL_REGION_NAME_MAX || !name[0])
        return chill_regions_fail(response, 400, "region name \"%.128s\": 1 to %s bytes are accepted", name, "127");
    chill_region *r = calloc(1, sizeof *r);
    if (!r)
        return chill_regions_fail(response, 500, "out of memory registering %s%s", name, "");
    r->wd = -1;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->on_device = cuda;
    uint64_t size = 0, dev = 0;
    const char *key = json_string_value(json_object_get(body, "key"));
    const char *b64 = json_string_value(json_object_get(json_object_get(body, "raw_handle"), "b64"));
    char err[512] = "";
    int status = 0;
    if (chill_json_u64(body, "byte_size", &size) != 0 || size == 0)
        status = chill_regions_fail(response, 400, "register %s: byte_size must be a positive integer%s", name, "");
    else if (!cuda && (!key || strlen(key) >= CHILL_REGION_KEY_MAX))
        status = chill_regions_fail(response, 400, "register %s: key must be a shm key string (\"/name\") shorter than %s bytes", name, "256");
    else if (!cuda && json_object_get(body, "offset") && chill_json_u64(body, "offset", &r->key_offset) != 0)
        status = chill_regions_fail(response, 400, "register %s: offset must be a non-negative integer%s", name, "");
    else if (cuda && (!b64 || (json_object_get(body, "device_id") && chill_json_u64(body, "device_id", &dev) != 0)))
        status = chill_regions_fail(response, 400, "register %s: needs raw_handle {\"b64\": ...} and device_id >= 0%s", name, "");
    if (status) {
        free(r);
        return status;
    }
    r->size = (size_t)size;
    r->device = (int)dev;
    if (key)
        snprintf(r->key, sizeof r->key, "%s", key);
    pthread_mutex_lock(&chill_regions_lock);
    int taken = chill_region_find(name) != NULL;
    pthread_mutex_unlock(&chill_regions_lock);
    if (taken) {
        free(r);
        return chill_regions_fail(response, 400, "region %s is already registered; unregister it first%s", name, "");
    }
    pthread_once(&chill_bus_once, chill_bus_install);
    /* Mapping (and pinning) can take a while: it runs outside the lock, so
     * requests keep acquiring views of other regions meanwhile; the name is
     * checked again before the region goes in. */
    status = cuda ? chill_region_map_cuda(r, b64, err, sizeof err) : chill_region_map_system(r, err, sizeof err);
    if (status) {
        free(r);
        return chill_regions_fail(response, status, "register %s: %s", name, err);
    }
    r->refs = 1;
    pthread_mutex_lock(&chill_regions_lock);
    taken = chill_region_find(name) != NULL;
    if (!taken) {
        r->next = chill_regions_list;
        chill_regions_list = r;
        chill_log(CHILL_LOG_INFO, "region_registered", "name=%s kind=%s key=%s bytes=%zu device=%d pinned=%d", name,
                  cuda ? "cuda" : "system", cuda ? "-" : r->key, r->size, r->device, r->pinned);
    } else {
        chill_region_unref(r);
    }
    pthread_mutex_unlock(&chill_regions_lock);
    if (taken)
        return chill_regions_fail(response, 400, "region %s is already registered; unregister it first%s", name, "");
    return chill_regions_ok(response, NULL);
}

/* Unregisters name, or every region of the kind when name is NULL. */
static int chill_regions_unregister(int cuda, const char *name, char **response) {
    pthread_mutex_lock(&chill_regions_lock);
    int found = 0;
    for (chill_region *r = chill_regions_list, *next; r; r = next) {
        next = r->next;
        if (r->on_device == cuda && (!name || strcmp(r->name, name) == 0)) {
            chill_region_unlink(r);
            found = 1;
        }
    }
    pthread_mutex_unlock(&chill_regions_lock);
    if (name && !found)
        return chill_regions_fail(response, 404, "unregister: no %s shared-memory region named %s",
                                  cuda ? "CUDA" : "system", name);
    return chill_regions_ok(response, NULL);
}

static int chill_regions_status(int cuda, const char *name, char **response) {
    json_t *list = json_array();
    pthread_mutex_lock(&chill_regions_lock);
    for (chill_region *r = chill_regions_list; r; r = r->next) {
        if (r->on_device != cuda || (name && strcmp(r->name, name) != 0))
            continue;
        json_t *o = cuda ? json_pack("{s:s,s:i,s:I}", "name", r->name, "device_id", r->device, "byte_size",
                                     (json_int_t)r->size)
                         : json_pack("{s:s,s:s,s:I,s:I}", "name", r->name, "key", r->key, "offset",
                                     (json_int_t)r->key_offset, "byte_size", (json_int_t)r->size);
        json_array_append_new(list, o);
    }
    pthread_mutex_unlock(&chill_regions_lock);
    if (name && json_array_size(list) == 0) {
        json_decref(list);
        return chill_regions_fail(response, 404, "no %s shared-memory region named %s", cuda ? "CUDA" : "system", name);
    }
    return chill_regions_ok(response, list);
}

/* /v2/{systemsharedmemory,cudasharedmemory}/[region/{name}/]{register,unregister,status} */
int chill_regions_http(const char *method, const char *path, const char *body, size_t body_len, char **response) {
    static const char *prefix[2] = {"/v2/systemsharedmemory/", "/v2/cudasharedmemory/"};
    int cuda = strncmp(path, prefix[1], strlen(prefix[1])) == 0;
    if (!cuda && strncmp(path, prefix[0], strlen(prefix[0])) != 0)
        return chill_regions_fail(response, 404, "no such endpoint: %s%s", path, "");
    const char *rest = path + strlen(prefix[cuda]);
    char name[CHILL_REGION_NAME_MAX + 1] = "", action[32] = "";
    if (strncmp(rest, "region/", 7) == 0) {
        const char *slash = strrchr(rest + 7, '/');
        size_t n = slash ? (size_t)(slash - rest - 7) : 0;
        if (!slash || n == 0 || n > CHILL_REGION_NAME_MAX || strchr(rest + 7, '/') != slash)
            return chill_regions_fail(response, 404, "no such endpoint: %s (expected .../region/NAME/ACTION)%s", path, "");
        memcpy(name, rest + 7, n);
        rest = slash + 1;
    }
    snprintf(action, sizeof action, "%s", rest);
    const char *want = strcmp(action, "status") == 0 ? "GET" : "POST";
    if (strcmp(action, "status") != 0 && strcmp(action, "register") != 0 && strcmp(action, "unregister") != 0)
        return chill_regions_fail(response, 404, "no such endpoint: %s (actions: register, unregister, status)%s", path, "");
    if (strcmp(method, want) != 0)
        return chill_regions_fail(response, 405, "%s takes %s", path, want);
    if (strcmp(action, "status") == 0)
        return chill_regions_status(cuda, name[0] ? name : NULL, response);
    if (strcmp(action, "unregister") == 0)
        return chill_regions_unregister(cuda, name[0] ? name : NULL, response);
    if (!name[0])
        return chill_regions_fail(response, 404, "register needs a region name: %sregion/NAME/register%s", prefix[cuda], "");
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", body_len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return chill_regions_fail(response, 400, "register %s: the body must be a JSON object (%s)", name, je.text);
    }
    int status = chill_regions_register(cuda, name, j, response);
    json_decref(j);
    return status;
}
