/* chill_cuda_tune(): times the compiled tile configurations on the present GPU
 * and writes the tuning table (format in tuning.cu). The inputs are random
 * (a hash of the index, never zeros: zeros run faster than real data), the
 * timings CUDA events around each launch, the figure the median. */
#include <jansson.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <vector>

extern "C" {
#include "backend.h" /* a C header without extern "C" guards */
}
#include "launch.h"
#include "tune.h"

__global__ void chill_tune_fill(void *x, size_t n, uint32_t seed, chill_dtype dtype) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        float f = ((h & 0xffff) / 65535.0f) * 2.0f - 1.0f;
        if (dtype == CHILL_F32)
            ((float *)x)[i] = f;
        else
            ((uint16_t *)x)[i] = dtype == CHILL_BF16 ? __bfloat16_as_ushort(__float2bfloat16(f))
                                                     : __half_as_ushort(__float2half(f));
    }
}

static chill_status chill_tune_cuda(cudaError_t e, const char *what, chill_error *err) {
    if (e == cudaSuccess)
        return CHILL_OK;
    return chill_fail(err, CHILL_ERR_DEVICE, "%s failed: %s", what, cudaGetErrorString(e));
}

/* Median milliseconds of reps launches of config on p. */
static chill_status chill_tune_time(const chill_params *p, const chill_cuda_config *c, int reps, float *ms,
                                    chill_error *err) {
    int arch;
    chill_cuda_args a;
    chill_where w;
    chill_cuda_locate_lengths(p, &w);
    chill_cuda_locate_tensors(p, &w);
    chill_status st = chill_cuda_prepare(p, &w, &arch, &a, err);
    for (int i = 0; i < 3 && st == CHILL_OK; i++)
        st = chill_cuda_launch(p, &a, c, err);
    cudaEvent_t e0, e1;
    if (st != CHILL_OK || (st = chill_tune_cuda(cudaEventCreate(&e0), "cudaEventCreate", err)) != CHILL_OK)
        return st;
    if ((st = chill_tune_cuda(cudaEventCreate(&e1), "cudaEventCreate", err)) != CHILL_OK) {
        cudaEventDestroy(e0);
        return st;
    }
    std::vector<float> t;
    for (int i = 0; i < reps && st == CHILL_OK; i++) {
        float x = 0;
        cudaEventRecord(e0, (cudaStream_t)p->stream);
        st = chill_cuda_launch(p, &a, c, err);
        cudaEventRecord(e1, (cudaStream_t)p->stream);
        if (st == CHILL_OK && (st = chill_tune_cuda(cudaEventSynchronize(e1), "a timed launch", err)) == CHILL_OK)
            cudaEventElapsedTime(&x, e0, e1);
        t.push_back(x);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::sort(t.begin(), t.end());
    *ms = t.empty() ? 0 : t[t.size() / 2];
    return st;
}

static chill_status chill_tune_write(const char *dir, int arch, const char *device, json_t *entries,
                                     chill_error *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/sm_%d.json", dir, arch);
    char name[16];
    snprintf(name, sizeof name, "sm_%d", arch);
    json_t *root = json_pack("{s:s, s:s, s:s, s:O}", "arch", name, "device", device, "command", "chillctl tune",
                             "entries", entries);
    int rc = root == NULL ? -1 : json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (rc != 0)
        return chill_fail(err, CHILL_ERR_INVALID, "cannot write %s (does the directory exist?)", path);
    fprintf(stderr, "wrote %s\n", path);
    return CHILL_OK;
}

extern "C" chill_status chill_cuda_tune(const char *dir, int reps, FILE *log, chill_error *err) {
    const int B = 4, H = 8, T = 8192, dims[] = {32, 64, 96, 128, 256};
    /* The families with several configurations: fp16, bf16, fp32 as TF32. */
    const struct {
        chill_dtype dtype;
        int tf32;
    } families[] = {{CHILL_F16, 0}, {CHILL_BF16, 0}, {CHILL_F32, 1}};
    int device;
    cudaDeviceProp prop;
    chill_status st = chill_tune_cuda(cudaGetDevice(&device), "cudaGetDevice", err);
    if (st == CHILL_OK)
        st = chill_tune_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", err);
    if (st != CHILL_OK)
        return st;
    const int arch = prop.major * 10 + prop.minor;
    const size_t n = (size_t)B * H * T * 256;
    void *buf[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4 && st == CHILL_OK; i++)
        st = chill_tune_cuda(cudaMalloc(&buf[i], n * sizeof(float)), "cudaMalloc", err);
    json_t *entries = json_array();
    for (const auto &fam : families)
        for (int D : dims) {
            const chill_dtype dt = fam.dtype;
            const char *family = chill_cuda_family_name(dt, fam.tf32);
            for (int i = 0; i < 3 && st == CHILL_OK; i++) {
                chill_tune_fill<<<1024, 256>>>(buf[i], n, 1234u + i, dt);
                st = chill_tune_cuda(cudaGetLastError(), "filling the inputs", err);
            }
            chill_params p;
            chill_params_init(&p);
            p.dtype = dt;
            p.allow_tf32 = fam.tf32;
            p.batch = B, p.heads_q = p.heads_kv = H, p.seq_q = p.seq_k = T, p.head_dim = D;
            chill_tensor *ts[4] = {&p.q, &p.k, &p.v, &p.out};
            for (int i = 0; i < 4; i++) {
                ts[i]->data = buf[i];
                ts[i]->stride[0] = (int64_t)H * T * D, ts[i]->stride[1] = (int64_t)T * D, ts[i]->stride[2] = D;
            }
            p.sm_scale = 1.0f / sqrtf((float)D);
            for (int cls = 0; cls < CHILL_MASK_CLASS_COUNT && st == CHILL_OK; cls++) {
                /* causal; sliding_window(64,64); chunkwise(16,8) */
                p.mask.type = cls == CHILL_MASK_CLASS_BANDED    ? CHILL_MASK_sliding_window
                              : cls == CHILL_MASK_CLASS_CHUNKED ? CHILL_MASK_chunkwise
                                                                : CHILL_MASK_causal;
                p.mask.arg[0] = cls == CHILL_MASK_CLASS_CHUNKED ? 16 : 64;
                p.mask.arg[1] = cls == CHILL_MASK_CLASS_CHUNKED ? 8 : 64;
                const chill_cuda_config *cand[16];
                int nc = chill_cuda_candidates(dt, fam.tf32, D, arch, cand, 16);
                const chill_cuda_config *best = NULL;
                float best_ms = INFINITY;
                for (int i = 0; i < nc && st == CHILL_OK; i++) {
                    float ms;
                    st = chill_tune_time(&p, cand[i], reps, &ms, err);
                    if (st != CHILL_OK)
                        break;
                    fprintf(log, "sm_%d %s D=%d %-6s %-10s %.4f ms\n", arch, family, D,
                            chill_cuda_mask_class_name((chill_mask_class)cls), cand[i]->name, ms);
                    if (ms < best_ms)
                        best_ms = ms, best = cand[i];
                }
                if (best != NULL)
                    json_array_append_new(entries, json_pack("{s:s, s:i, s:s, s:s, s:f}", "dtype", family,
                                                             "head_dim", D, "mask_class",
                                                             chill_cuda_mask_class_name((chill_mask_class)cls),
                                                             "config", best->name, "ms", (double)best_ms));
            }
        }
    for (int i = 0; i < 4; i++)
        cudaFree(buf[i]);
    if (st == CHILL_OK)
        st = chill_tune_write(dir, arch, prop.name, entries, err);
    json_decref(entries);
    return st;
}
