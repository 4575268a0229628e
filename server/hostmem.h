/* Host memory for request tensors: what a transport receives tensors into
 * and what the kernels' outputs are written to before they go back.
 *
 * With the CUDA backend these buffers are pinned (page-locked), so the
 * device's copies from and to them are DMA at full PCIe speed and run
 * asynchronously, straight from the request's own memory with no staging
 * copy in between. Pinning is slow (milliseconds), so pinned buffers are
 * cached by power-of-two size class and reused, up to a total the config
 * sets (devices.pinned_host_bytes); past it, and on the CPU backend, buffers
 * are ordinary memory. Either way a buffer is 256-byte aligned.
 *
 * Memory that chilld does not allocate but copies from (a client's system
 * shared-memory region, a native-socket arena) is registered with
 * chill_hostmem_register() for the same reason. */
#ifndef CHILL_SERVER_HOSTMEM_H
#define CHILL_SERVER_HOSTMEM_H

#include <stddef.h>

/* pin: 1 when a CUDA backend runs; pinned_bytes: the most pinned memory to
 * hold. Called once at start, before any transport runs. */
void chill_hostmem_init(int pin, size_t pinned_bytes);
/* Frees the cached pinned buffers (at shutdown, after the last request). */
void chill_hostmem_shutdown(void);

/* A buffer of bytes (256-byte aligned), or NULL when out of memory. */
void *chill_hostmem_alloc(size_t bytes);
void chill_hostmem_free(void *p);

/* Pins [p, p + bytes) for the GPU when a CUDA backend runs. Returns 1 when
 * pinned (then chill_hostmem_unregister(p) before unmapping), 0 otherwise:
 * copies still work, only slower. */
int chill_hostmem_register(void *p, size_t bytes);
void chill_hostmem_unregister(void *p);

#endif
