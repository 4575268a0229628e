/* Host memory for request tensors (server/hostmem.h): a cache of pinned
 * buffers by power-of-two size class, or plain aligned memory.
 *
 * Every buffer starts with a 256-byte header that says its class (or that it
 * is plain memory), so free needs no size. A freed pinned buffer goes on its
 * class's free list for the next request of that size; pinned memory is
 * given back only at shutdown. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef CHILL_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include "hostmem.h"
#include "log.h"

#define HEADER 256
#define MIN_SHIFT 12 /* the smallest class: 4 KiB */
#define N_CLASSES 28 /* up to 512 GiB */
#define PLAIN (-1)

typedef struct block {
    int cls;             /* size class, or PLAIN */
    struct block *next;  /* on its class's free list */
} block;

static struct {
    pthread_mutex_t lock;
    int pin;
    size_t limit, pinned;
    block *free[N_CLASSES];
} chill_hostmem = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, {0}};

void chill_hostmem_init(int pin, size_t pinned_bytes) {
    chill_hostmem.pin = pin;
    chill_hostmem.limit = pinned_bytes;
}

static int class_of(size_t total) {
    int c = 0;
    while (c < N_CLASSES && ((size_t)1 << (MIN_SHIFT + c)) < total)
        c++;
    return c;
}

static void *user_of(block *b) { return (char *)b + HEADER; }

/* A pinned block of class c: from the free list, else newly pinned while
 * under the limit; NULL when neither. */
static block *pinned_block(int c) {
#ifdef CHILL_WITH_CUDA
    size_t size = (size_t)1 << (MIN_SHIFT + c);
    pthread_mutex_lock(&chill_hostmem.lock);
    block *b = chill_hostmem.free[c];
    if (b != NULL) {
        chill_hostmem.free[c] = b->next;
    } else if (chill_hostmem.pinned + size <= chill_hostmem.limit) {
        chill_hostmem.pinned += size;
        pthread_mutex_unlock(&chill_hostmem.lock);
        void *p = NULL;
        if (cudaHostAlloc(&p, size, cudaHostAllocPortable) != cudaSuccess) {
            cudaGetLastError();
            chill_log(CHILL_LOG_WARN, "pinned_alloc_failed", "bytes=%zu", size);
            pthread_mutex_lock(&chill_hostmem.lock);
            chill_hostmem.pinned -= size;
            pthread_mutex_unlock(&chill_hostmem.lock);
            return NULL;
        }
        b = p;
        b->cls = c;
        return b;
    }
    pthread_mutex_unlock(&chill_hostmem.lock);
    return b;
#else
    (void)c;
    return NULL;
#endif
}

void *chill_hostmem_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - HEADER)
        return NULL;
    size_t total = bytes + HEADER;
    int c = class_of(total);
    block *b = chill_hostmem.pin && c < N_CLASSES ? pinned_block(c) : NULL;
    if (b == NULL) {
        if (posix_memalign((void **)&b, HEADER, total) != 0)
            return NULL;
        b->cls = PLAIN;
    }
    b->next = NULL;
    return user_of(b);
}

void chill_hostmem_free(void *p) {
    if (p == NULL)
        return;
    block *b = (block *)((char *)p - HEADER);
    if (b->cls == PLAIN) {
        free(b);
        return;
    }
    pthread_mutex_lock(&chill_hostmem.lock);
    b->next = chill_hostmem.free[b->cls];
    chill_hostmem.free[b->cls] = b;
    pthread_mutex_unlock(&chill_hostmem.lock);
}

void chill_hostmem_shutdown(void) {
#ifdef CHILL_WITH_CUDA
    pthread_mutex_lock(&chill_hostmem.lock);
    for (int c = 0; c < N_CLASSES; c++)
        while (chill_hostmem.free[c] != NULL) {
            block *b = chill_hostmem.free[c];
            chill_hostmem.free[c] = b->next;
            chill_hostmem.pinned -= (size_t)1 << (MIN_SHIFT + c);
            cudaFreeHost(b);
        }
    pthread_mutex_unlock(&chill_hostmem.lock);
#endif
}

int chill_hostmem_register(void *p, size_t bytes) {
#ifdef CHILL_WITH_CUDA
    if (!chill_hostmem.pin)
        return 0;
    if (cudaHostRegister(p, bytes, cudaHostRegisterPortable) == cudaSuccess)
        return 1;
    cudaGetLastError();
    chill_log(CHILL_LOG_WARN, "pin_failed", "bytes=%zu", bytes);
#else
    (void)p, (void)bytes;
#endif
    return 0;
}

void chill_hostmem_unregister(void *p) {
#ifdef CHILL_WITH_CUDA
    cudaHostUnregister(p);
#else
    (void)p;
#endif
}
