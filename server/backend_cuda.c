/* The CUDA backend: one device per configured visible GPU, each with
 * devices.gpu_slots launch slots, a stream and a device buffer each,
 * allocated at start, so the request path never allocates device memory. A
 * packed launch is the 2D copies of each request's inputs straight from its
 * host memory (pinned: server/hostmem.h) into its slot's buffer, the kernel,
 * and the copies of the outputs straight back, all queued on the slot's
 * stream (cu_seqlens stay in host memory, where libchill reads them); the
 * scheduler synchronizes that stream (its worker with one slot, its
 * completer with more). With two slots the next launch's input copies run
 * while this one's kernel does. In-place runs use slot 0's stream, so their
 * wait also covers a packed launch queued there.
 * Head dims the GPU kernels do not take run in place on the CPU kernel.
 * After a failure the device is asked whether it can still run work; a sticky
 * error takes it out of service without taking the process down. Built
 * without CUDA, chill_backend_cuda_create() says so and the CPU serves. */
#include <stdio.h>

#include "device.h"

#ifdef CHILL_WITH_CUDA

#include <cuda_runtime_api.h>
#include <stdlib.h>

#include "log.h"

typedef struct gpu {
    int ordinal;
    char name[32];
    cudaStream_t streams[CHILL_CONFIG_MAX_GPU_SLOTS];
    void *pool;     /* device: the slots' buffers, pool_bytes each */
    int healthy;    /* atomic: the worker, the completer and direct runs write it */
} gpu;

typedef struct cuda_backend {
    chill_backend base;
    gpu *gpus;
    size_t pool_bytes;
} cuda_backend;

static gpu *gpu_of(chill_backend *b, int dev) { return &((cuda_backend *)b)->gpus[dev]; }

static const char *cuda_device_name(chill_backend *b, int dev) { return gpu_of(b, dev)->name; }

static int cuda_device_ordinal(chill_backend *b, int dev) { return gpu_of(b, dev)->ordinal; }

static int cuda_in_place(chill_backend *b, const chill_params *p, int n) {
    (void)b, (void)n;
    return !chill_gpu_supports(p->dtype, p->head_dim);
}

static void *cuda_buffer(chill_backend *b, int dev, int slot, size_t bytes, char *err, size_t errlen) {
    size_t cap = ((cuda_backend *)b)->pool_bytes;
    if (bytes > cap) {
        snprintf(err, errlen, "the launch needs %zu bytes of device memory; a launch slot holds %zu "
                 "(devices.gpu_pool_bytes)", bytes, cap);
        return NULL;
    }
    return (char *)gpu_of(b, dev)->pool + (size_t)slot * cap;
}

/* Queues one copy on stream, into the device buffer (in) or back out of it:
 * a plain copy where both sides are contiguous (a lone request's BHTD
 * tensors), which the driver issues with less work than a 2D one. The
 * request's side is host memory or a CUDA shared-memory region on this GPU;
 * unified addressing tells the driver which (cudaMemcpyDefault). */
static cudaError_t copy_one(cudaStream_t stream, const chill_copy *c, int in) {
    void *dst = in ? c->dev : c->req;
    const void *src = in ? c->req : c->dev;
    size_t dst_pitch = in ? c->dev_pitch : c->req_pitch, src_pitch = in ? c->req_pitch : c->dev_pitch;
    if (c->height == 1 || (dst_pitch == c->width && src_pitch == c->width))
        return cudaMemcpyAsync(dst, src, c->width * c->height, cudaMemcpyDefault, stream);
    return cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, c->width, c->height, cudaMemcpyDefault, stream);
}

/* Queues the copies of list on stream, into the device buffer (in) or back. */
static cudaError_t copy_all(cudaStream_t stream, const chill_copy *list, int n, int in) {
    cudaError_t e = cudaSuccess;
    for (int i = 0; i < n && e == cudaSuccess; i++)
        e = copy_one(stream, &list[i], in);
    return e;
}

/* After a failure: whether the device can still run work (0 once a sticky
 * error took it out of service). */
static void recheck_health(gpu *g) {
    __atomic_store_n(&g->healthy, chill_device_healthy(), __ATOMIC_RELAXED);
}

/* A CUDA call failed: fills err and checks whether the device survived. */
static chill_status cuda_failed(gpu *g, cudaError_t e, const char *what, chill_error *err) {
    snprintf(err->message, sizeof err->message, "%s on %s: %s", what, g->name, cudaGetErrorString(e));
    err->status = CHILL_ERR_DEVICE;
    recheck_health(g);
    return CHILL_ERR_DEVICE;
}

/* Queues the copies t->in (when t is not NULL), the kernel p and the copies
 * t->out on stream, without waiting. */
static chill_status enqueue(gpu *g, cudaStream_t stream, chill_params *p, const chill_transfer *t,
                            chill_error *err) {
    cudaError_t e = cudaSetDevice(g->ordinal);
    if (e != cudaSuccess)
        return cuda_failed(g, e, "cudaSetDevice", err);
    chill_params dp = *p;
    dp.stream = stream;
    if (t != NULL && (e = copy_all(stream, t->in, t->n_in, 1)) != cudaSuccess)
        return cuda_failed(g, e, "copying the inputs to the device", err);
    chill_status s = chill_forward(&dp, err);
    if (s != CHILL_OK) {
        if (s == CHILL_ERR_DEVICE)
            recheck_health(g);
        return s;
    }
    if (t != NULL && (e = copy_all(stream, t->out, t->n_out, 0)) != cudaSuccess)
        return cuda_failed(g, e, "copying the outputs from the device", err);
    return CHILL_OK;
}

/* Waits for what stream holds; a failure there is the kernel's or a copy's. */
static chill_status wait_stream(gpu *g, cudaStream_t stream, chill_error *err) {
    cudaError_t e = cudaStreamSynchronize(stream);
    return e == cudaSuccess ? CHILL_OK : cuda_failed(g, e, "running the kernel", err);
}

static chill_status cuda_forward(chill_backend *b, int dev, chill_params *p, chill_error *err) {
    gpu *g = gpu_of(b, dev);
    chill_status s = enqueue(g, g->streams[0], p, NULL, err);
    if (s != CHILL_OK) {
        cudaStreamSynchronize(g->streams[0]);
        return s;
    }
    return wait_stream(g, g->streams[0], err);
}

static chill_status cuda_start(chill_backend *b, int dev, int slot, chill_params *p, const chill_transfer *t,
                               chill_error *err) {
    gpu *g = gpu_of(b, dev);
    return enqueue(g, g->streams[slot], p, t, err);
}

static chill_status cuda_finish(chill_backend *b, int dev, int slot, chill_error *err) {
    gpu *g = gpu_of(b, dev);
    return wait_stream(g, g->streams[slot], err);
}

static int cuda_healthy(chill_backend *b, int dev) {
    return __atomic_load_n(&gpu_of(b, dev)->healthy, __ATOMIC_RELAXED);
}

static uint64_t cuda_memory_used(chill_backend *b, int dev) {
    return gpu_of(b, dev)->pool != NULL ? ((cuda_backend *)b)->pool_bytes * (uint64_t)b->slots : 0;
}

static void cuda_destroy(chill_backend *b) {
    cuda_backend *cb = (cuda_backend *)b;
    for (int i = 0; i < b->n_devices; i++) {
        gpu *g = &cb->gpus[i];
        cudaSetDevice(g->ordinal);
        for (int s = 0; s < b->slots; s++)
            if (g->streams[s] != NULL)
                cudaStreamDestroy(g->streams[s]);
        cudaFree(g->pool);
    }
    free(cb->gpus);
    free(cb);
}

static int gpu_init(gpu *g, int ordinal, int slots, size_t bytes, char *err, size_t errlen) {
    cudaError_t e;
    g->ordinal = ordinal;
    g->healthy = 1;
    snprintf(g->name, sizeof g->name, "cuda:%d", ordinal);
    if ((e = cudaSetDevice(ordinal)) != cudaSuccess ||
        (e = cudaMalloc(&g->pool, bytes * (size_t)slots)) != cudaSuccess) {
        snprintf(err, errlen, "%s: allocating %d launch slots of %zu bytes (devices.gpu_slots, gpu_pool_bytes): %s",
                 g->name, slots, bytes, cudaGetErrorString(e));
        return -1;
    }
    for (int s = 0; s < slots; s++)
        if ((e = cudaStreamCreateWithFlags(&g->streams[s], cudaStreamNonBlocking)) != cudaSuccess) {
            snprintf(err, errlen, "%s: creating a stream: %s", g->name, cudaGetErrorString(e));
            return -1;
        }
    return 0;
}

/* A GPU listed more than once in devices.gpus gets a worker per listing;
 * the repeats are named cuda:N.1, cuda:N.2, ... so logs and metric labels
 * tell the workers apart. */
static void name_repeat(gpu *gpus, int i) {
    int seen = 0;
    for (int j = 0; j < i; j++)
        seen += gpus[j].ordinal == gpus[i].ordinal;
    if (seen > 0)
        snprintf(gpus[i].name, sizeof gpus[i].name, "cuda:%d.%d", gpus[i].ordinal, seen);
}

chill_backend *chill_backend_cuda_create(const chill_config *c, char *err, size_t errlen) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(err, errlen, "no GPU: %s", e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device visible");
        return NULL;
    }
    int n = c->n_gpus > 0 ? c->n_gpus : count;
    cuda_backend *cb = calloc(1, sizeof *cb);
    cb->gpus = calloc((size_t)n, sizeof *cb->gpus);
    cb->pool_bytes = c->gpu_pool_bytes;
    chill_backend *b = &cb->base;
    b->slots = c->gpu_slots;
    for (int i = 0; i < n; i++) {
        int ordinal = c->n_gpus > 0 ? c->gpus[i] : i;
        if (ordinal >= count) {
            snprintf(err, errlen, "devices.gpus: GPU %d is not visible; visible ids are 0..%d", ordinal, count - 1);
            cuda_destroy(b);
            return NULL;
        }
        b->n_devices = i + 1;
        if (gpu_init(&cb->gpus[i], ordinal, b->slots, cb->pool_bytes, err, errlen) != 0) {
            cuda_destroy(b);
            return NULL;
        }
        name_repeat(cb->gpus, i);
        chill_log(CHILL_LOG_INFO, "backend", "kind=cuda device=%s slots=%d pool_bytes=%zu", cb->gpus[i].name, b->slots,
                  cb->pool_bytes);
    }
    b->kind = "cuda";
    b->max_launch_bytes = cb->pool_bytes;
    b->device_name = cuda_device_name;
    b->device_ordinal = cuda_device_ordinal;
    b->in_place = cuda_in_place;
    b->forward = cuda_forward;
    b->buffer = cuda_buffer;
    b->start = cuda_start;
    b->finish = cuda_finish;
    b->healthy = cuda_healthy;
    b->memory_used = cuda_memory_used;
    b->destroy = cuda_destroy;
    return b;
}

#else

chill_backend *chill_backend_cuda_create(const chill_config *c, char *err, size_t errlen) {
    (void)c;
    snprintf(err, errlen, "this chilld was built without CUDA (CHILL_CUDA=0)");
    return NULL;
}

#endif
