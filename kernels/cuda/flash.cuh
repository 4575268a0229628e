/* Masked flash-attention forward on tensor cores (fp16, bf16, and fp32 as
 * TF32 when the caller allows it; sm_80 and newer).
 *
 * What it computes (the CPU kernel in kernels/cpu/ is the reference):
 *     out[b,h,i] = sum_j softmax_j(sm_scale * q[b,h,i] . k[b,h/group,j]) v[b,h/group,j]
 * over the keys j the mask lets query position q_off + i attend, with fp32
 * accumulation, and lse[b,h,i] = log sum_j exp(sm_scale * q.k_j).
 *
 * How (FlashAttention-2): one block per (query tile of BM rows, query head,
 * sequence); each of its W warps owns BM/W rows, 16 per mma tile. The block
 * loads its Q tile once (cp.async into padded shared memory; into registers
 * where they fit the register cap, else re-read every key tile), then walks
 * the key tiles of BN rows that the mask's k_range allows (from its first
 * key on: chill_span in tile.cuh), double-buffered with cp.async so tile j+1
 * loads while tile j computes (one barrier a tile; chill_ring_start below).
 * Per tile: S = Q K^T with mma.sync; the mask only when the tile is not
 * inside the mask's full_k_range, and then per row from bounds computed once
 * per block (chill_row_bounds in tile.cuh); the online softmax in base 2 (row
 * max and sum kept per thread, reduced over the 4 threads of an mma row
 * group); then O += P V with P re-used from the S registers as the A operand.
 * At the end O is divided by the row sum; a row that attended no key writes
 * zeros and lse = -inf.
 *
 * The element type's trait chill_mma<T> holds all that differs by dtype: the
 * mma shape, the fragment loads from shared memory and the conversions.
 *   fp16, bf16: mma m16n8k16; fragments by ldmatrix (V by ldmatrix.trans);
 *     shared rows padded by 16 bytes, so the 8 rows of an ldmatrix fall in 8
 *     different bank groups.
 *   fp32 (TF32): mma m16n8k8 .tf32 on operands rounded by cvt.rna.tf32.f32;
 *     ldmatrix moves 16-bit elements, so fragments come by plain shared
 *     loads. The k order inside each k8 step is permuted (the mma's k index
 *     t holds element 2t, index t+4 element 2t+1), which changes no sum: a
 *     thread's Q and K elements then sit side by side (one 64-bit load for
 *     two), and P's A fragment is the thread's own S accumulators with no
 *     shuffle. Q and K rows are padded by 8 floats, V rows by 4, so that
 *     every fragment load is free of bank conflicts.
 *
 * Rows past a sequence's end, and keys past the query tile's last attended
 * key, load as zeros (cp.async with source size 0, no memory traffic) and are
 * masked (keys) or not written (queries). */
#ifndef CHILL_CUDA_FLASH_CUH
#define CHILL_CUDA_FLASH_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "tile.cuh"

__device__ __forceinline__ uint32_t chill_smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void chill_ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(chill_smem_addr(p)));
}

__device__ __forceinline__ void chill_ldmatrix_x4_trans(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(chill_smem_addr(p)));
}

/* What the kernel needs of its element type T, chill_mma<T>:
 *   K               k of one mma instruction
 *   PAD_QK, PAD_V   elements of padding after each shared row of Q and K, of V
 *   run(c, a, b0, b1)   c += a b, one m16n8 tile
 *   load_a(a, s, ld, lane)  A fragment: 16 rows, one k step, of the tile at s
 *   load_k(b, s, ld, lane)  B fragments of S = Q K^T: keys 0..15 (two n8
 *                           tiles: b[0..1], b[2..3]) at one k step of K at s
 *   load_v(b, s, ld, lane)  B fragments of O += P V: one k step of keys,
 *                           dims 0..15 (two n8 tiles) of V at s
 *   load_p(a, s, kk)        A fragment of P for k step kk, from the S
 *                           accumulators s[n8 tile][4] of one row tile
 *   store2(dst, x, y)       two adjacent outputs
 *   dtype, TF32             the chill_dtype it computes, whether as TF32 */
template <typename T> struct chill_mma;

/* run(c, a, b0, b1) of chill_mma<T>: one mma.sync of the given shape with
 * A and B of type ab, accumulating in fp32. */
#define CHILL_MMA_RUN(shape, ab)                                                                            \
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) { \
        asm("mma.sync.aligned." shape ".row.col.f32." ab "." ab ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "     \
            "{%8,%9}, {%0,%1,%2,%3};\n"                                                                     \
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                                \
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));                                \
    }

/* fp16 and bf16: m16n8k16, fragments by ldmatrix. Self adds run() and pack(). */
template <typename T, typename Self> struct chill_mma_16bit {
    static constexpr int K = 16, PAD_QK = 8, PAD_V = 8, TF32 = 0;
    static __device__ __forceinline__ void load_a(uint32_t a[4], const T *s, int ld, int lane) {
        chill_ldmatrix_x4(a, s + (lane % 16) * ld + (lane / 16) * 8);
    }
    static __device__ __forceinline__ void load_k(uint32_t b[4], const T *s, int ld, int lane) {
        chill_ldmatrix_x4(b, s + (lane % 8 + (lane / 16) * 8) * ld + ((lane / 8) & 1) * 8);
    }
    static __device__ __forceinline__ void load_v(uint32_t b[4], const T *s, int ld, int lane) {
        chill_ldmatrix_x4_trans(b, s + (lane % 8 + ((lane / 8) & 1) * 8) * ld + (lane / 16) * 8);
    }
    /* Two n8 tiles of S make one k16 step of P. */
    template <int NT> static __device__ __forceinline__ void load_p(uint32_t a[4], const float (&s)[NT][4], int kk) {
        a[0] = Self::pack(s[2 * kk][0], s[2 * kk][1]);
        a[1] = Self::pack(s[2 * kk][2], s[2 * kk][3]);
        a[2] = Self::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = Self::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
    static __device__ __forceinline__ void store2(T *dst, float x, float y) {
        *reinterpret_cast<uint32_t *>(dst) = Self::pack(x, y);
    }
};

template <> struct chill_mma<__half> : chill_mma_16bit<__half, chill_mma<__half>> {
    static constexpr chill_dtype dtype = CHILL_F16;
    CHILL_MMA_RUN("m16n8k16", "f16")
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __half2 h = __floats2half2_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

template <> struct chill_mma<__nv_bfloat16> : chill_mma_16bit<__nv_bfloat16, chill_mma<__nv_bfloat16>> {
    static constexpr chill_dtype dtype = CHILL_BF16;
    CHILL_MMA_RUN("m16n8k16", "bf16")
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

/* fp32 as TF32: m16n8k8, fragments by shared loads, k permuted inside each
 * k8 step (top of file): mma k index t <-> element 2t, t + 4 <-> 2t + 1.
 * g = lane / 4 is the fragment row (A) or column (B), t = lane % 4. */
template <> struct chill_mma<float> {
    static constexpr int K = 8, PAD_QK = 8, PAD_V = 4, TF32 = 1;
    static constexpr chill_dtype dtype = CHILL_F32;
    CHILL_MMA_RUN("m16n8k8", "tf32")
    /* Round to nearest (ties away) to TF32's 10-bit mantissa. */
    static __device__ __forceinline__ uint32_t tf32(float x) {
        uint32_t y;
        asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(y) : "f"(x));
        return y;
    }
    /* Elements 2t and 2t+1 of rows g (x) and g+8 (y) of the tile at s. */
    static __device__ __forceinline__ void load_pairs(float2 &x, float2 &y, const float *s, int ld, int lane) {
        x = *reinterpret_cast<const float2 *>(s + (lane / 4) * ld + 2 * (lane % 4));
        y = *reinterpret_cast<const float2 *>(s + (lane / 4 + 8) * ld + 2 * (lane % 4));
    }
    /* a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4): elements 2t, 2t+1 of rows g, g+8. */
    static __device__ __forceinline__ void load_a(uint32_t a[4], const float *s, int ld, int lane) {
        float2 x, y;
        load_pairs(x, y, s, ld, lane);
        a[0] = tf32(x.x), a[1] = tf32(y.x), a[2] = tf32(x.y), a[3] = tf32(y.y);
    }
    /* b0 (k t, n g), b1 (k t+4, n g): key g's elements 2t, 2t+1; then key 8+g. */
    static __device__ __forceinline__ void load_k(uint32_t b[4], const float *s, int ld, int lane) {
        float2 x, y;
        load_pairs(x, y, s, ld, lane);
        b[0] = tf32(x.x), b[1] = tf32(x.y), b[2] = tf32(y.x), b[3] = tf32(y.y);
    }
    /* b0 (k t, n g), b1 (k t+4, n g): keys 2t and 2t+1 at dim g; then dim 8+g. */
    static __device__ __forceinline__ void load_v(uint32_t b[4], const float *s, int ld, int lane) {
        const float *r = s + 2 * (lane % 4) * ld + lane / 4;
        b[0] = tf32(r[0]), b[1] = tf32(r[ld]), b[2] = tf32(r[8]), b[3] = tf32(r[ld + 8]);
    }
    /* The thread holds S at keys 2t, 2t+1 of rows g, g+8: exactly its A
     * fragment of P under the permuted k order. One n8 tile is one k step. */
    template <int NT> static __device__ __forceinline__ void load_p(uint32_t a[4], const float (&s)[NT][4], int kk) {
        a[0] = tf32(s[kk][0]), a[1] = tf32(s[kk][2]), a[2] = tf32(s[kk][1]), a[3] = tf32(s[kk][3]);
    }
    static __device__ __forceinline__ void store2(float *dst, float x, float y) {
        *reinterpret_cast<float2 *>(dst) = make_float2(x, y);
    }
};

/* 16 bytes global -> shared, zero-filled when !valid. */
__device__ __forceinline__ void chill_cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(chill_smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void chill_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/* 2^x, flushing denormals (the softmax needs no more). */
__device__ __forceinline__ float chill_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

template <int N> __device__ __forceinline__ void chill_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* The ring of NS >= 2 shared-memory stages that K/V tiles pass through, in
 * both kernel families: tile j of a span sits in stage j % NS
 * (chill_ring_stage). Before tile 0 the block issues tiles 0 .. NS-2, or with
 * UPFRONT tiles 0 .. NS-1 (a span of up to NS tiles is then requested at
 * once: one load latency for the whole span, not one per tile), one commit
 * group each; group 0 also holds Q. Right after the barrier that starts tile
 * j, which ends every warp's work on tile j - 1, the block issues tile j + NS
 * - 1 into tile j - 1's stage (unless the prologue did) and commits a group,
 * empty past the span. Group i thus holds tile i, and tile j has arrived once
 * at most NS - 2 groups are pending (NS - 1 for tile 0 with UPFRONT).
 * load(j) issues tile j's cp.async copies into its stage. */
template <int NS> __device__ __forceinline__ int chill_ring_stage(int j) { return (int)((unsigned)j % NS); }

template <int NS, bool UPFRONT, typename L> __device__ __forceinline__ void chill_ring_start(int n_tiles, L &&load) {
    static_assert(NS >= 2, "the ring needs two stages");
#pragma unroll
    for (int j = 0; j < (UPFRONT ? NS : NS - 1); j++) {
        if (j < n_tiles)
            load(j);
        chill_cp_async_commit();
    }
}

/* Waits for this thread's copies of tile j (a barrier must follow). */
template <int NS, bool UPFRONT> __device__ __forceinline__ void chill_ring_wait(int j) {
    if (UPFRONT && j == 0)
        chill_cp_async_wait<NS - 1>();
    else
        chill_cp_async_wait<NS - 2>();
}

/* After the barrier that starts tile j: the refill above. */
template <int NS, bool UPFRONT, typename L>
__device__ __forceinline__ void chill_ring_refill(int j, int n_tiles, L &&load) {
    if (UPFRONT && j == 0)
        return;
    if (j + NS - 1 < n_tiles)
        load(j + NS - 1);
    chill_cp_async_commit();
}

/* One thread's column of 16-byte chunks of a tile: rows r0, r0 + RSTEP, ...
 * below ROWS, from g (row row0 + r0 of a source with row stride ld bytes) to
 * d (that row's chunk in shared memory, rows dstep bytes apart). Rows at or
 * past n_rows become zeros (read from nowhere: src, the tensor's row 0, is
 * named instead). The trip count is known at compile time, the last step
 * checked only where RSTEP does not divide ROWS, so the unrolled loop issues
 * its copies with no bound test between them. */
template <int ROWS, int RSTEP>
__device__ __forceinline__ void chill_load_column(char *d, int dstep, const char *g, const char *src, int64_t ld,
                                                  int r0, int row0, int n_rows) {
    const int rows_left = n_rows - row0 - r0; /* step i is a row of the tensor iff i * RSTEP < rows_left */
#pragma unroll
    for (int i = 0; i < (ROWS + RSTEP - 1) / RSTEP; i++, g += RSTEP * ld) {
        if (ROWS % RSTEP != 0 && r0 + i * RSTEP >= ROWS)
            break;
        const bool valid = i * RSTEP < rows_left;
        chill_cp_async16(d + i * RSTEP * dstep, valid ? g : src, valid);
    }
}

/* Rows [row0, row0 + ROWS) of a [*, D] tensor with row stride ld (bytes) into
 * shared rows of LD elements; rows at or past n_rows become zeros. */
template <typename T, int D, int LD, int ROWS, int NTHREADS>
__device__ __forceinline__ void chill_load_rows(T *dst, const char *src, int64_t ld, int row0, int n_rows) {
    constexpr int EPC = 16 / sizeof(T);                /* elements per 16-byte piece */
    constexpr int CHUNKS = D * (int)sizeof(T) / 16;    /* pieces per row */
    if constexpr (NTHREADS % CHUNKS == 0) {
        /* Each thread keeps one column of chunks. */
        const int r0 = threadIdx.x / CHUNKS, c = threadIdx.x % CHUNKS;
        chill_load_column<ROWS, NTHREADS / CHUNKS>(reinterpret_cast<char *>(dst + r0 * LD + c * EPC),
                                                   LD * (int)sizeof(T), src + (int64_t)(row0 + r0) * ld + c * 16,
                                                   src, ld, r0, row0, n_rows);
    } else {
#pragma unroll
        for (int i = threadIdx.x; i < ROWS * CHUNKS; i += NTHREADS) {
            int r = i / CHUNKS, c = i % CHUNKS;
            bool valid = row0 + r < n_rows;
            chill_cp_async16(dst + r * LD + c * EPC, src + (valid ? (int64_t)(row0 + r) * ld : 0) + c * 16, valid);
        }
    }
}

/* The end of query row row of an mma row group, for both kernel families:
 * the row's sum reduced over the 4 threads that hold it, and lse in natural
 * log (-inf for a row that attended no key). Returns 1 / sum, or 0 for such
 * a row, which then writes zeros. Every lane calls it (the shuffles). */
__device__ __forceinline__ float chill_finish_row(const chill_cuda_args &a, const chill_seq &seq, int row, int t,
                                                  float sum, float row_max) {
    sum += __shfl_xor_sync(0xffffffff, sum, 1);
    sum += __shfl_xor_sync(0xffffffff, sum, 2);
    if (row < seq.q_len && seq.lse != nullptr && t == 0)
        seq.lse[row * a.l_stride[2]] = sum > 0.f ? (row_max + log2f(sum)) * 0.69314718055994531f : -INFINITY;
    return sum > 0.f ? 1.f / sum : 0.f;
}

/* Query row row0 + 8 hh out of this thread's accumulators (o[dt * 4 + 2 * hh]
 * and the next, for each n8 block dt of D): out = O / sum into rows o_ld
 * elements apart, as 4-byte pairs; a row past the sequence writes nothing. */
template <typename T, int DT>
__device__ __forceinline__ void chill_write_row(const chill_cuda_args &a, int64_t o_ld, const chill_seq &seq, int row0,
                                                int t, int hh, const float *o, float sum, float row_max) {
    const int row = row0 + hh * 8;
    const float inv = chill_finish_row(a, seq, row, t, sum, row_max);
    if (row >= seq.q_len)
        return;
    T *dst = reinterpret_cast<T *>(seq.out) + row * o_ld;
#pragma unroll
    for (int dt = 0; dt < DT; dt++)
        chill_mma<T>::store2(dst + dt * 8 + 2 * t, o[dt * 4 + 2 * hh] * inv, o[dt * 4 + 2 * hh + 1] * inv);
}

template <typename T, int D, int BM, int BN, int W, int MINB>
__global__ void __launch_bounds__(W * 32, MINB) chill_flash_kernel(const chill_cuda_args a) {
    using M = chill_mma<T>;
    constexpr int NTHREADS = W * 32;
    constexpr int MT = BM / (16 * W);  /* mma row tiles per warp */
    constexpr int KS = M::K;           /* k of one mma */
    constexpr int KD = D / KS;         /* k-steps of S = Q K^T */
    constexpr int NT = BN / 8;         /* n8 tiles of S */
    constexpr int DT = D / 8;          /* n8 tiles of O */
    constexpr int LD = D + M::PAD_QK;  /* padded shared row of Q and K, elements */
    constexpr int LDV = D + M::PAD_V;  /* padded shared row of V */
    constexpr int NS = 2;              /* K/V ring stages (chill_ring_start) */
    /* Q fragments stay in registers when they fit beside O and S under the
     * register cap that MINB blocks per multiprocessor impose; else they are
     * re-read from shared memory every key tile. */
    constexpr int REG_CAP = 65536 / (W * 32 * MINB) < 255 ? 65536 / (W * 32 * MINB) : 255;
    constexpr bool QREG = MT * KD * 4 + MT * D / 2 + MT * BN / 2 + 64 <= REG_CAP;
    static_assert(MT >= 1 && BM == MT * 16 * W && BN % 16 == 0 && D % 16 == 0, "bad tile configuration");

    extern __shared__ __align__(16) unsigned char chill_smem[];
    T *sQ = reinterpret_cast<T *>(chill_smem);
    T *sK = sQ + BM * LD;
    T *sV = sK + NS * BN * LD;
    int4 *sRow = reinterpret_cast<int4 *>(sV + NS * BN * LDV); /* per-row bounds for partial tiles */

    chill_query_tile tile;
    if (!chill_query_tile_of<T>(a, BM, tile))
        return;
    const chill_seq &seq = tile.seq;
    const int m0 = tile.m0;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;
    const int64_t q_ld = a.q_stride[2] * (int64_t)sizeof(T), k_ld = a.k_stride[2] * (int64_t)sizeof(T),
                  v_ld = a.v_stride[2] * (int64_t)sizeof(T);

    float o[MT][DT][4];
    float row_max[MT][2], row_sum[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
            o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
        row_max[mt][0] = row_max[mt][1] = -INFINITY;
        row_sum[mt][0] = row_sum[mt][1] = 0.f;
    }

    /* Loads first, then the mask arithmetic (the span's and each row's
     * bounds: 64-bit divisions for chunkwise) while they are in flight. */
    chill_load_rows<T, D, LD, BM, NTHREADS>(sQ, seq.q, q_ld, m0, seq.q_len);
    const chill_tile_span span = chill_query_span(a, tile, BN);
    auto load_kv = [&](int j) {
        const int st = chill_ring_stage<NS>(j);
        chill_load_rows<T, D, LD, BN, NTHREADS>(sK + st * BN * LD, seq.k, k_ld, span.k_lo + j * BN, span.k_end);
        chill_load_rows<T, D, LDV, BN, NTHREADS>(sV + st * BN * LDV, seq.v, v_ld, span.k_lo + j * BN, span.k_end);
    };
    chill_ring_start<NS, false>(span.n_tiles, load_kv);
    for (int r = threadIdx.x; r < BM; r += NTHREADS)
        sRow[r] = chill_row_bounds(a.mask, seq.q_off + m0 + r, seq.k_len);

    uint32_t qf[QREG ? MT : 1][QREG ? KD : 1][4];
    const int wrow = warp * MT * 16; /* this warp's first row in the tile */

    for (int j = 0; j < span.n_tiles; j++) {
        const int st = chill_ring_stage<NS>(j);
        /* One barrier a tile: after it, tile j (and at j = 0 Q and the row
         * bounds) is in shared memory for every thread, and every warp is done
         * with tile j - 1, whose stage then takes a tile further on. */
        chill_ring_wait<NS, false>(j);
        __syncthreads();
        chill_ring_refill<NS, false>(j, span.n_tiles, load_kv);

        if (QREG && j == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kd = 0; kd < KD; kd++)
                    M::load_a(qf[QREG ? mt : 0][QREG ? kd : 0], sQ + (wrow + mt * 16) * LD + kd * KS, LD, lane);
        }
        const T *k_tile = sK + st * BN * LD;
        const T *v_tile = sV + st * BN * LDV;

        /* S = Q K^T */
        float s[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if (QREG) {
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        qa[mt][i] = qf[QREG ? mt : 0][QREG ? kd : 0][i];
                } else {
                    M::load_a(qa[mt], sQ + (wrow + mt * 16) * LD + kd * KS, LD, lane);
                }
            }
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t kb[4];
                M::load_k(kb, k_tile + np * 16 * LD + kd * KS, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    M::run(s[mt][2 * np], qa[mt], kb[0], kb[1]);
                    M::run(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
                }
            }
        }

        /* Outside the full range: the mask, row by row. */
        const int n0 = span.k_lo + j * BN;
        if (!chill_tile_is_full(span, n0, BN)) {
            chill_with_predicate(a.mask, [&](auto allows) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int r = wrow + mt * 16 + g + hh * 8;
                        const int4 rb = sRow[r];
                        const int64_t qp = seq.q_off + m0 + r;
#pragma unroll
                        for (int nt = 0; nt < NT; nt++)
#pragma unroll
                            for (int e = 0; e < 2; e++) {
                                const int kp = n0 + nt * 8 + 2 * t + e;
                                if (kp >= seq.k_len || !chill_row_allows(rb, allows, qp, kp))
                                    s[mt][nt][2 * hh + e] = -INFINITY;
                            }
                    }
            });
        }

        /* Online softmax, rows g and g + 8 of each row tile. The running max
         * (the base of the exponentials) moves only when a tile's max passes
         * it by more than 2^8: probabilities stay <= 256, O and the row sum
         * share the base, so the result is the same, and most tiles skip
         * rescaling O. */
        float alpha[MT][2];
        bool rescale = false;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                /* Raw scores: sm_scale > 0, so the max commutes with the scaling. */
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    mx = fmaxf(mx, fmaxf(s[mt][nt][2 * hh], s[mt][nt][2 * hh + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
                mx *= a.scale_log2;
                const float m_old = row_max[mt][hh];
                const bool grow = mx > m_old + 8.f;
                const float m = grow ? mx : m_old;
                const float base = m == -INFINITY ? 0.f : m;
                alpha[mt][hh] = grow ? chill_exp2(m_old - base) : 1.f;
                rescale |= grow;
                row_max[mt][hh] = m;
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float p = chill_exp2(fmaf(s[mt][nt][2 * hh + e], a.scale_log2, -base));
                        s[mt][nt][2 * hh + e] = p;
                        sum += p;
                    }
                row_sum[mt][hh] = row_sum[mt][hh] * alpha[mt][hh] + sum;
            }
        if (__any_sync(0xffffffff, rescale)) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int dt = 0; dt < DT; dt++)
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        o[mt][dt][i] *= alpha[mt][i / 2];
        }

        /* O += P V */
#pragma unroll
        for (int kk = 0; kk < BN / KS; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                M::load_p(pa[mt], s[mt], kk);
#pragma unroll
            for (int dp = 0; dp < DT / 2; dp++) {
                uint32_t vb[4];
                M::load_v(vb, v_tile + kk * KS * LDV + dp * 16, LDV, lane);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    M::run(o[mt][2 * dp], pa[mt], vb[0], vb[1]);
                    M::run(o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
                }
            }
        }
    }
    chill_cp_async_wait<0>();

    /* out = O / sum; lse in natural log. */
    const int64_t o_ld = a.o_stride[2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
            chill_write_row<T, DT>(a, o_ld, seq, m0 + wrow + mt * 16 + g, t, hh, &o[mt][0][0], row_sum[mt][hh],
                                   row_max[mt][hh]);
}

/* Shared memory of a configuration: Q, two K and two V tiles, row bounds. */
template <typename T, int D, int BM, int BN>
constexpr size_t chill_flash_smem =
    ((size_t)(BM + 2 * BN) * (D + chill_mma<T>::PAD_QK) + (size_t)2 * BN * (D + chill_mma<T>::PAD_V)) * sizeof(T) +
    BM * sizeof(int4);

template <typename T, int D, int BM, int BN, int W, int MINB>
cudaError_t chill_flash_launch(const chill_cuda_args *a, int batch, cudaStream_t stream) {
    constexpr size_t smem = chill_flash_smem<T, D, BM, BN>;
    auto kernel = chill_flash_kernel<T, D, BM, BN, W, MINB>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e == cudaSuccess) /* all of the unified L1 as shared memory: MINB blocks must fit */
        e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
    if (e != cudaSuccess)
        return e;
    dim3 grid((a->max_q_len + BM - 1) / BM, a->heads_q, batch);
    kernel<<<grid, W * 32, smem, stream>>>(*a);
    return cudaGetLastError();
}

/* One tile configuration, for compute capability ARCH (x 10) and newer. */
#define CHILL_FLASH_CONFIG_SM(T, D, BM, BN, W, MINB, ARCH)                                                             \
    {#BM "x" #BN "w" #W "b" #MINB, chill_mma<T>::dtype, chill_mma<T>::TF32, D, BM, BN, W, ARCH,                      \
     chill_flash_launch<T, D, BM, BN, W, MINB>}
#define CHILL_FLASH_CONFIG(T, D, BM, BN, W, MINB) CHILL_FLASH_CONFIG_SM(T, D, BM, BN, W, MINB, 80)

/* The tile configurations compiled for each 16-bit dtype: BM x BN, W warps,
 * at least MINB blocks per multiprocessor (which caps the registers). The
 * first of each head dim is the default where the tuning table names none.
 * (TF32's own list is in flash_tf32.cu: its tiles take twice the bytes.) */
#define CHILL_FLASH_CONFIGS(T)                                                                                         \
    CHILL_FLASH_CONFIG(T, 32, 64, 64, 4, 4), CHILL_FLASH_CONFIG(T, 64, 64, 64, 4, 3),                                  \
        CHILL_FLASH_CONFIG(T, 64, 64, 64, 4, 4), CHILL_FLASH_CONFIG(T, 64, 128, 64, 8, 2),                             \
        CHILL_FLASH_CONFIG(T, 64, 128, 32, 4, 3), CHILL_FLASH_CONFIG(T, 64, 64, 32, 4, 4),                             \
        CHILL_FLASH_CONFIG(T, 64, 64, 128, 4, 2), CHILL_FLASH_CONFIG(T, 64, 32, 32, 2, 8),                             \
        CHILL_FLASH_CONFIG(T, 96, 64, 64, 4, 2), CHILL_FLASH_CONFIG(T, 128, 64, 64, 4, 2),                             \
        CHILL_FLASH_CONFIG(T, 128, 64, 64, 4, 3), CHILL_FLASH_CONFIG(T, 128, 64, 32, 4, 3),                            \
        CHILL_FLASH_CONFIG(T, 128, 128, 64, 8, 1), CHILL_FLASH_CONFIG(T, 128, 128, 64, 8, 2),                          \
        CHILL_FLASH_CONFIG(T, 128, 128, 32, 4, 2), CHILL_FLASH_CONFIG(T, 128, 32, 32, 2, 4),                           \
        CHILL_FLASH_CONFIG(T, 256, 64, 32, 4, 1)

#endif
