/* Shared-memory regions: Triton's system shared-memory and CUDA shared-memory
 * extensions, as the protocol layer and the HTTP router see them.
 *
 * A client registers a region by name (an shm key or a cudaIpcMemHandle) and
 * then names it in an infer request instead of sending tensor bytes. The
 * protocol layer acquires a view of [offset, offset + size) for each tensor,
 * which keeps the region mapped until the view is released, even if the
 * client unregisters it meanwhile. The CPU reads and writes host regions
 * only through chill_region_read/write, which survive an owner truncating
 * the object under us (SIGBUS) and turn it into an error. */
#ifndef CHILL_SERVER_REGIONS_H
#define CHILL_SERVER_REGIONS_H

#include <stddef.h>
#include <stdint.h>

typedef struct chill_region chill_region;

typedef struct chill_region_view {
    chill_region *region;
    void *ptr;      /* start of the view: host address, or device address when on_device */
    size_t size;
    int on_device;  /* a CUDA shared-memory region */
    int device;     /* its device id when on_device */
    int pinned;     /* a host region pinned for the GPU (server/hostmem.h) */
    int direct;     /* the request uses it in place on the GPU (chill_region_direct) */
} chill_region_view;

/* Views [offset, offset + size) of region name. 0 on success; -1 with a
 * message in err (unknown region, range outside the region). */
int chill_region_acquire(const char *name, uint64_t offset, uint64_t size,
                         chill_region_view *view, char *err, size_t errlen);
void chill_region_release(chill_region_view *view);

/* Copies between a host region view and ordinary memory. 0 on success; -1
 * with a message when the region's object was truncated under us. */
int chill_region_read(const chill_region_view *view, void *dst, size_t size, char *err, size_t errlen);
int chill_region_write(const chill_region_view *view, const void *src, size_t size, char *err, size_t errlen);

/* The GPU's copies may read and write a pinned host view directly, with no
 * host copy. They do not fault when the owner truncates the object, and
 * after a truncation the pinned pages are no longer the object's, so direct
 * use is only for a region whose object has not been truncated, resized or
 * written with write(2) since registration (inotify IN_MODIFY; writes
 * through a mapping are fine). chill_region_direct() says whether a view may
 * be used so; once the object has changed it says no for good and the region
 * is served by guarded copies. chill_region_unchanged() checks a directly
 * used view afterwards: 0, or -1 with a message. */
int chill_region_direct(const chill_region_view *view);
int chill_region_unchanged(const chill_region_view *view, char *err, size_t errlen);

/* Whether registration is allowed (config: on by default only on loopback
 * or a Unix socket), set once at start. */
void chill_regions_configure(int allow_system, int allow_cuda);
/* Whether registration of system (cuda 0) or CUDA (cuda 1) regions is on. */
int chill_regions_enabled(int cuda);

/* The HTTP routes /v2/systemsharedmemory/... and /v2/cudasharedmemory/...:
 * returns the HTTP status and sets *response to a malloc'd JSON body. */
int chill_regions_http(const char *method, const char *path, const char *body, size_t body_len,
                       char **response);

/* Unregisters and unmaps everything (at shutdown, after the last request). */
void chill_regions_shutdown(void);

#endif
