/* Masked flash-attention forward in true fp32 (CUDA cores, any architecture).
 *
 * What it computes: the same function as flash.cuh, with fp32 inputs and fp32
 * arithmetic throughout (no TF32), so it meets the fp32 contract (1e-5). It
 * runs every fp32 call except those that allow TF32 on sm_80+ with 16-byte
 * aligned tensors: those run flash.cuh's kernel on TF32 tensor cores
 * (flash_tf32.cu).
 *
 * How: one block of W warps per (query tile of W rows, head, sequence); warp w
 * owns query row w, each lane D/32 of its dimensions. Key tiles of 32 rows are
 * staged in shared memory (K rows padded to D+1 floats so that lane j reading
 * key j's row is free of bank conflicts). Lane j scores key j against the
 * warp's query (read from shared memory as a broadcast), the warp keeps the
 * online softmax, and each lane adds p_j v_j over its dimensions with p_j
 * broadcast by shuffle. Tile ranges, full tiles and the per-row bounds of
 * partial tiles come from tile.cuh exactly as for the tensor-core kernel. */
#include "tile.cuh"

#define CHILL_F32_BN 32

template <int D, int W>
__global__ void __launch_bounds__(W * 32) chill_flash_f32_kernel(const chill_cuda_args a) {
    constexpr int BN = CHILL_F32_BN, DL = D / 32, KLD = D + 1;
    extern __shared__ float chill_smem_f32[];
    float *sK = chill_smem_f32;   /* [BN][D + 1] */
    float *sV = sK + BN * KLD;    /* [BN][D] */
    float *sQ = sV + BN * D;      /* [W][D] */

    chill_query_tile tile;
    if (!chill_query_tile_of<float>(a, W, tile))
        return;
    const chill_seq &seq = tile.seq;
    const int m0 = tile.m0;
    const chill_tile_span span = chill_query_span(a, tile, BN);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row = m0 + warp;
    const bool live = row < seq.q_len;
    const int64_t qp = seq.q_off + row;
    const int4 rb = chill_row_bounds(a.mask, qp, seq.k_len);

    const float *q = reinterpret_cast<const float *>(seq.q);
    for (int d = lane; d < D; d += 32)
        sQ[warp * D + d] = live ? q[row * a.q_stride[2] + d] : 0.f;

    float o[DL], row_max = -INFINITY, row_sum = 0.f;
#pragma unroll
    for (int i = 0; i < DL; i++)
        o[i] = 0.f;

    const float *k = reinterpret_cast<const float *>(seq.k), *v = reinterpret_cast<const float *>(seq.v);
    for (int j = 0; j < span.n_tiles; j++) {
        const int n0 = span.k_lo + j * BN;
        __syncthreads();
        for (int i = threadIdx.x; i < BN * D; i += W * 32) {
            int r = i / D, c = i % D;
            bool in = n0 + r < seq.k_len;
            sK[r * KLD + c] = in ? k[(int64_t)(n0 + r) * a.k_stride[2] + c] : 0.f;
            sV[r * D + c] = in ? v[(int64_t)(n0 + r) * a.v_stride[2] + c] : 0.f;
        }
        __syncthreads();

        float s = 0.f;
#pragma unroll 8
        for (int d = 0; d < D; d++)
            s = fmaf(sQ[warp * D + d], sK[lane * KLD + d], s);
        s *= a.scale_log2;
        if (!chill_tile_is_full(span, n0, BN)) {
            const int kp = n0 + lane;
            chill_with_predicate(a.mask, [&](auto allows) {
                if (kp >= seq.k_len || !chill_row_allows(rb, allows, qp, kp))
                    s = -INFINITY;
            });
        }
        float mx = s;
#pragma unroll
        for (int off = 16; off > 0; off /= 2)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, off));
        mx = fmaxf(mx, row_max);
        const float base = mx == -INFINITY ? 0.f : mx;
        const float alpha = exp2f(row_max - base);
        row_max = mx;
        const float p = exp2f(s - base);
        float sum = p;
#pragma unroll
        for (int off = 16; off > 0; off /= 2)
            sum += __shfl_xor_sync(0xffffffff, sum, off);
        row_sum = row_sum * alpha + sum;
#pragma unroll
        for (int i = 0; i < DL; i++)
            o[i] *= alpha;
#pragma unroll 4
        for (int j = 0; j < BN; j++) {
            const float pj = __shfl_sync(0xffffffff, p, j);
#pragma unroll
            for (int i = 0; i < DL; i++)
                o[i] = fmaf(pj, sV[j * D + lane + 32 * i], o[i]);
        }
    }
    if (!live)
        return;
    const float inv = row_sum > 0.f ? 1.f / row_sum : 0.f;
    float *out = reinterpret_cast<float *>(seq.out) + row * a.o_stride[2];
#pragma unroll
    for (int i = 0; i < DL; i++)
        out[lane + 32 * i] = o[i] * inv;
    if (seq.lse != nullptr && lane == 0)
        seq.lse[row * a.l_stride[2]] = row_sum > 0.f ? (row_max + log2f(row_sum)) * 0.69314718055994531f : -INFINITY;
}

template <int D, int W>
static cudaError_t chill_flash_f32_launch(const chill_cuda_args *a, int batch, cudaStream_t stream) {
    constexpr size_t smem = (size_t)(CHILL_F32_BN * (D + 1) + CHILL_F32_BN * D + W * D) * sizeof(float);
    auto kernel = chill_flash_f32_kernel<D, W>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    dim3 grid((a->max_q_len + W - 1) / W, a->heads_q, batch);
    kernel<<<grid, W * 32, smem, stream>>>(*a);
    return cudaGetLastError();
}

#define CHILL_F32_CONFIG(D, W) {#W "x32w" #W, CHILL_F32, 0, D, W, CHILL_F32_BN, W, 0, chill_flash_f32_launch<D, W>}

const chill_cuda_config chill_cuda_configs_f32[] = {
    CHILL_F32_CONFIG(32, 8), CHILL_F32_CONFIG(64, 8), CHILL_F32_CONFIG(96, 8), CHILL_F32_CONFIG(128, 8),
    CHILL_F32_CONFIG(256, 8),
};
const int chill_cuda_configs_f32_count = sizeof chill_cuda_configs_f32 / sizeof chill_cuda_configs_f32[0];
