/* Masked flash-attention forward on Hopper's warpgroup tensor cores (fp16 and
 * bf16, head dims 64 and 128; sm_90a only). It computes exactly what
 * flash.cuh computes (the CPU kernel in kernels/cpu/ is the reference), with
 * the same masking, lengths, packed sequences, GQA, q_offset, lse and
 * sm_scale; dispatch.cu runs it only on compute capability 9.0 and only where
 * the tuning table names it. Other head dims, fp32 and other architectures
 * keep the mma.sync family of flash.cuh.
 *
 * How (FlashAttention-3 without its producer warp): one block per (query tile
 * of BM rows, query head, sequence) with BM / 64 warpgroups of 128 threads,
 * each owning 64 query rows. The block loads its Q tile once, then walks the
 * key tiles of BN rows that the mask's k_range allows (from its first key
 * on) through flash.cuh's ring of shared-memory stages filled by cp.async,
 * one barrier a tile: two stages, tile j+1 loading while tile j computes, or
 * for the banded configurations (names ending in p<NS>) NS stages whose
 * first NS tiles are all requested before the first is used.
 * Per tile and warpgroup:
 *   S = Q K^T   wgmma m64nBNk16, Q and K from shared memory by descriptors;
 *   the mask    only when the tile is not inside the mask's full_k_range,
 *               then per row from the row's key bounds (tile.cuh);
 *   softmax     online, in base 2, in registers: S's accumulator layout is
 *               mma.sync's m16n8 layout, one 16-row slice per warp, so the row
 *               max and sum reduce over the 4 threads of a row as in flash.cuh;
 *   O += P V    wgmma m64nDk16 with P from registers (the accumulators of S
 *               converted in place: for 16-bit types they already are the A
 *               fragment) and V from shared memory, read transposed.
 * Several warpgroups per multiprocessor let one's softmax overlap another's
 * matrix products. At the end O is divided by the row sum; a row that
 * attended no key writes zeros and lse = -inf; rows past a sequence's length
 * are not written.
 *
 * Shared memory: every tile is stored in the layout wgmma's 128-byte swizzle
 * reads. A row of 64 16-bit elements is 128 bytes; wider rows are split into
 * column blocks of 64 elements, each block ROWS x 128 bytes. Inside a block
 * the 16-byte chunk c of row r sits at r * 128 + ((c ^ (r % 8)) * 16): the 8
 * rows of an 8 x 128-byte atom spread every chunk over all bank groups. Tiles
 * start at 1024-byte boundaries (the swizzle's period). Rows past a sequence's
 * end, and keys past the tile's last attended key, load as zeros (cp.async
 * with source size 0). */
#ifndef CHILL_CUDA_HOPPER_CUH
#define CHILL_CUDA_HOPPER_CUH

#include "flash.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "kernels/cuda/hopper.cuh needs sm_90a for compute capability 9.0: -gencode=arch=compute_90a,code=sm_90a"
#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CHILL_HOPPER_DEVICE 1 /* this device pass compiles the kernels' bodies */
#endif

/* Whether the build embeds sm_90 code (host and device passes alike). */
constexpr bool chill_hopper_compiled() {
    constexpr int archs[] = {__CUDA_ARCH_LIST__};
    for (int x : archs)
        if (x == 900)
            return true;
    return false;
}

#ifdef CHILL_HOPPER_DEVICE

/* A shared-memory matrix descriptor for the 128-byte swizzle: start address,
 * leading and stride byte offsets (16-byte units), swizzle mode 1 in bits
 * 62-63. K-major tiles (Q, K) use sbo = 1024 (the next 8 rows) and no lbo;
 * the transposed V uses sbo = 1024 (the next 8 keys) and lbo = the next
 * column block of 64 dims. */
__device__ __forceinline__ uint64_t chill_wg_desc(const void *p, uint32_t lbo, uint32_t sbo) {
    const uint64_t addr = chill_smem_addr(p);
    return ((addr & 0x3ffff) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void chill_wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void chill_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void chill_wg_wait() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* Shared memory written by cp.async, next read by wgmma (the async proxy). */
__device__ __forceinline__ void chill_fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/* Keeps the compiler from moving reads of accumulators above the wait. */
template <int N> __device__ __forceinline__ void chill_wg_hold(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

/* The wgmma instructions used, m64nNk16 with fp32 accumulators d[N / 2]:
 *   ss(d, qa, kb, acc)  d (= or +=) A B, A and B from shared memory, both K-major
 *   rs(d, a, vb)        d += A B, A from registers (4 per thread), B transposed
 * Written out per N and dtype: an asm operand list cannot be built by a loop. */
#define CHILL_WG_F4(d, i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define CHILL_WG_F16(d, i) CHILL_WG_F4(d, i), CHILL_WG_F4(d, i + 4), CHILL_WG_F4(d, i + 8), CHILL_WG_F4(d, i + 12)
#define CHILL_WG_ACC16(d) CHILL_WG_F16(d, 0)
#define CHILL_WG_ACC32(d) CHILL_WG_F16(d, 0), CHILL_WG_F16(d, 16)
#define CHILL_WG_ACC64(d) CHILL_WG_F16(d, 0), CHILL_WG_F16(d, 16), CHILL_WG_F16(d, 32), CHILL_WG_F16(d, 48)
#define CHILL_WG_REGS16 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define CHILL_WG_REGS32                                                                                                \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "  \
    "%24, %25, %26, %27, %28, %29, %30, %31}"
#define CHILL_WG_REGS64                                                                                                \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "  \
    "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "   \
    "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

template <typename T, int N> struct chill_wgmma;

/* One specialization: T, N, the PTX type, accumulator count, register list,
 * operand lists, and the operand numbers after the accumulators. */
#define CHILL_WGMMA(T, N, PTX, NACC, REGS, ACC, SS_OPS, RS_OPS)                                                        \
    template <> struct chill_wgmma<T, N> {                                                                             \
        static __device__ __forceinline__ void ss(float (&d)[NACC], uint64_t qa, uint64_t kb, int acc) {               \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" SS_OPS ", 0;\n"                                          \
                         "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." PTX "." PTX " " REGS                        \
                         ", %" #NACC ", %" SS_DESC_B(NACC) ", p, 1, 1, 0, 0;\n}\n"                                     \
                         : ACC(d)                                                                                      \
                         : "l"(qa), "l"(kb), "r"(acc));                                                                \
        }                                                                                                              \
        static __device__ __forceinline__ void rs(float (&d)[NACC], const uint32_t (&a)[4], uint64_t vb) {             \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                                    \
                         "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." PTX "." PTX " " REGS ", " RS_OPS            \
                         ", p, 1, 1, 1;\n}\n"                                                                          \
                         : ACC(d)                                                                                      \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(vb));                                       \
        }                                                                                                              \
    };
#define SS_DESC_B(NACC) SS_DESC_B_##NACC
#define SS_DESC_B_16 "17"
#define SS_DESC_B_32 "33"
#define SS_DESC_B_64 "65"
CHILL_WGMMA(__half, 32, "f16", 16, CHILL_WG_REGS16, CHILL_WG_ACC16, "18", "{%16, %17, %18, %19}, %20")
CHILL_WGMMA(__half, 64, "f16", 32, CHILL_WG_REGS32, CHILL_WG_ACC32, "34", "{%32, %33, %34, %35}, %36")
CHILL_WGMMA(__half, 128, "f16", 64, CHILL_WG_REGS64, CHILL_WG_ACC64, "66", "{%64, %65, %66, %67}, %68")
CHILL_WGMMA(__nv_bfloat16, 32, "bf16", 16, CHILL_WG_REGS16, CHILL_WG_ACC16, "18", "{%16, %17, %18, %19}, %20")
CHILL_WGMMA(__nv_bfloat16, 64, "bf16", 32, CHILL_WG_REGS32, CHILL_WG_ACC32, "34", "{%32, %33, %34, %35}, %36")
CHILL_WGMMA(__nv_bfloat16, 128, "bf16", 64, CHILL_WG_REGS64, CHILL_WG_ACC64, "66", "{%64, %65, %66, %67}, %68")
#undef CHILL_WGMMA
#undef SS_DESC_B
#undef SS_DESC_B_16
#undef SS_DESC_B_32
#undef SS_DESC_B_64

/* Rows [row0, row0 + ROWS) of a [*, D] tensor with row stride ld (bytes) into
 * the swizzled layout at dst (top of file); rows at or past n_rows become
 * zeros. Each thread keeps one chunk column (chill_load_column), so its
 * swizzle is fixed. */
template <typename T, int D, int ROWS, int NTHREADS>
__device__ __forceinline__ void chill_hopper_load(T *dst, const char *src, int64_t ld, int row0, int n_rows) {
    constexpr int CHUNKS = D * (int)sizeof(T) / 16;
    constexpr int RSTEP = NTHREADS / CHUNKS;
    static_assert(NTHREADS % CHUNKS == 0 && RSTEP % 8 == 0, "loader layout");
    const int r0 = threadIdx.x / CHUNKS, c = threadIdx.x % CHUNKS;
    char *d = reinterpret_cast<char *>(dst) + (c / 8) * ROWS * 128 + r0 * 128 + (((c % 8) ^ (r0 % 8)) << 4);
    chill_load_column<ROWS, RSTEP>(d, 128, src + (int64_t)(row0 + r0) * ld + c * 16, src, ld, r0, row0, n_rows);
}

/* The epilogue of a warp's 16 query rows (from wrow): out = O / sum, lse.
 * The rows go through the warp's own rows of the Q tile in shared memory,
 * whose last reader was the last S = Q K^T, so that they leave as 16-byte
 * pieces, a row's pieces in consecutive lanes, rather than as the
 * accumulators' 4-byte pairs eight rows apart. An output whose rows do not
 * start at 16-byte boundaries takes the pairs (chill_write_row). */
template <typename T, int D, int BM>
__device__ __forceinline__ void chill_hopper_write(const chill_cuda_args &a, const chill_seq &seq, char *q_tile,
                                                   int m0, int wrow, const float (&o)[D / 2],
                                                   const float (&row_sum)[2], const float (&row_max)[2]) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int64_t o_ld = a.o_stride[2], row_bytes = o_ld * (int64_t)sizeof(T);
    if ((reinterpret_cast<uintptr_t>(seq.out) | (uintptr_t)row_bytes) % 16 != 0) {
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
            chill_write_row<T, D / 8>(a, o_ld, seq, m0 + wrow + g, t, hh, o, row_sum[hh], row_max[hh]);
        return;
    }
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const int r = wrow + g + hh * 8;
        const float inv = chill_finish_row(a, seq, m0 + r, t, row_sum[hh], row_max[hh]);
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
            *reinterpret_cast<uint32_t *>(q_tile + (dt / 8) * BM * 128 + r * 128 + (((dt % 8) ^ (r % 8)) << 4) + 4 * t) =
                chill_mma<T>::pack(o[dt * 4 + 2 * hh] * inv, o[dt * 4 + 2 * hh + 1] * inv);
    }
    __syncwarp();
    constexpr int CHUNKS = D * (int)sizeof(T) / 16, ROWS_AT_ONCE = 32 / CHUNKS;
    const int c = lane % CHUNKS;
#pragma unroll
    for (int i = lane / CHUNKS; i < 16; i += ROWS_AT_ONCE) {
        const int r = wrow + i;
        if (m0 + r < seq.q_len)
            *reinterpret_cast<int4 *>(seq.out + (m0 + r) * row_bytes + c * 16) =
                *reinterpret_cast<const int4 *>(q_tile + (c / 8) * BM * 128 + r * 128 + (((c % 8) ^ (r % 8)) << 4));
    }
}

#endif /* CHILL_HOPPER_DEVICE */

/* Where a block keeps the key bounds of its query rows (chill_row_bounds),
 * which partial tiles need. The banded configurations (upfront), most of
 * whose tiles are partial, keep each thread's two rows in registers where
 * the register cap leaves room (at most 256 threads a multiprocessor, so 255
 * registers each), which leaves shared memory to the ring. The others keep
 * the block's rows in shared memory. */
constexpr bool chill_hopper_rows_in_regs(int bm, int minb, bool upfront) {
    return upfront && minb * (bm / 64 * 128) <= 256;
}

/* Shared memory of a configuration: Q, NS stages of K and V, the row bounds
 * where they are kept there, and 1024 bytes to move the start to the
 * swizzle's 1024-byte period. */
template <typename T, int D, int BM, int BN, int MINB, int NS, bool UPFRONT>
constexpr size_t chill_hopper_smem = (size_t)(BM + 2 * NS * BN) * D * sizeof(T) +
                                     (chill_hopper_rows_in_regs(BM, MINB, UPFRONT) ? 0 : BM * sizeof(int4)) + 1024;

template <typename T, int D, int BM, int BN, int MINB, int NS, bool UPFRONT>
__global__ void __launch_bounds__(BM / 64 * 128, MINB) chill_hopper_kernel(const chill_cuda_args a) {
#ifdef CHILL_HOPPER_DEVICE
    using M = chill_mma<T>;
    constexpr int NTHREADS = BM / 64 * 128;
    constexpr int NT = BN / 8; /* n8 blocks of S per thread row pair */
    static_assert(BM % 64 == 0 && (BN == 32 || BN == 64 || BN == 128) && (D == 64 || D == 128),
                  "bad Hopper configuration");
    using WS = chill_wgmma<T, BN>;
    using WO = chill_wgmma<T, D>;
    constexpr bool ROWS_IN_REGS = chill_hopper_rows_in_regs(BM, MINB, UPFRONT);

    extern __shared__ unsigned char chill_hsmem[];
    T *sQ = reinterpret_cast<T *>((reinterpret_cast<uintptr_t>(chill_hsmem) + 1023) & ~(uintptr_t)1023);
    T *sK = sQ + BM * D;
    T *sV = sK + NS * BN * D;
    int4 *sRow = reinterpret_cast<int4 *>(sV + NS * BN * D); /* unless ROWS_IN_REGS */

    chill_query_tile tile;
    if (!chill_query_tile_of<T>(a, BM, tile))
        return;
    const chill_seq &seq = tile.seq;
    const int m0 = tile.m0;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wg = warp / 4;
    const int g = lane / 4, t = lane % 4;
    const int wrow = wg * 64 + (warp % 4) * 16; /* this warp's first row in the tile */
    const int64_t q_ld = a.q_stride[2] * (int64_t)sizeof(T), k_ld = a.k_stride[2] * (int64_t)sizeof(T),
                  v_ld = a.v_stride[2] * (int64_t)sizeof(T);

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++)
        o[i] = 0.f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};

    /* Loads first, then the mask arithmetic while they are in flight (as in
     * flash.cuh, with its ring of NS stages). */
    chill_hopper_load<T, D, BM, NTHREADS>(sQ, seq.q, q_ld, m0, seq.q_len);
    const chill_tile_span span = chill_query_span(a, tile, BN);
    auto load_kv = [&](int j) {
        const int st = chill_ring_stage<NS>(j);
        chill_hopper_load<T, D, BN, NTHREADS>(sK + st * BN * D, seq.k, k_ld, span.k_lo + j * BN, span.k_end);
        chill_hopper_load<T, D, BN, NTHREADS>(sV + st * BN * D, seq.v, v_ld, span.k_lo + j * BN, span.k_end);
    };
    chill_ring_start<NS, UPFRONT>(span.n_tiles, load_kv);
    int4 rows[2]; /* ROWS_IN_REGS: the bounds of rows wrow + g and wrow + g + 8 */
    if constexpr (ROWS_IN_REGS) {
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
            rows[hh] = chill_row_bounds(a.mask, seq.q_off + m0 + wrow + g + hh * 8, seq.k_len);
    } else {
        for (int r = threadIdx.x; r < BM; r += NTHREADS)
            sRow[r] = chill_row_bounds(a.mask, seq.q_off + m0 + r, seq.k_len);
    }

    /* Descriptors: this warpgroup's 64 rows of Q; K and V of stage 0. A k16
     * step moves 32 bytes inside a 128-byte row, then to the next column
     * block; a k16 step of P V moves 16 keys (2048 bytes). */
    const uint64_t q_desc = chill_wg_desc(sQ + wg * 64 * 64, 0, 1024);
    const uint64_t k_desc0 = chill_wg_desc(sK, 0, 1024);
    const uint64_t v_desc0 = chill_wg_desc(sV, BN * 128, 1024);

    for (int j = 0; j < span.n_tiles; j++) {
        const int st = chill_ring_stage<NS>(j);
        /* One barrier a tile: after it, tile j is in shared memory (and
         * visible to the tensor cores) and every warpgroup is done with tile
         * j - 1, whose stage then takes a tile further on. */
        chill_ring_wait<NS, UPFRONT>(j);
        chill_fence_proxy_async();
        __syncthreads();
        chill_ring_refill<NS, UPFRONT>(j, span.n_tiles, load_kv);
        const uint64_t k_desc = k_desc0 + ((st * BN * D * sizeof(T)) >> 4);
        const uint64_t v_desc = v_desc0 + ((st * BN * D * sizeof(T)) >> 4);

        /* S = Q K^T */
        float s[BN / 2];
        chill_wg_fence();
#pragma unroll
        for (int kd = 0; kd < D / 16; kd++)
            WS::ss(s, q_desc + (((kd / 4) * BM * 128 + (kd % 4) * 32) >> 4),
                   k_desc + (((kd / 4) * BN * 128 + (kd % 4) * 32) >> 4), kd > 0);
        chill_wg_commit();
        chill_wg_wait();
        chill_wg_hold(s);

        /* Outside the full range: the mask, row by row, from the row's bounds
         * (chill_row_bounds). Where k_range and full_k_range coincide (the five
         * masks of masks/) a key is attended iff it lies inside them: two
         * compares. Otherwise the predicate decides between the two, one key
         * at a time into a bit mask, a loop kept rolled so that it costs no
         * registers beside S. */
        const int n0 = span.k_lo + j * BN;
        if (!chill_tile_is_full(span, n0, BN)) {
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int r = wrow + g + hh * 8;
                const int4 rb = ROWS_IN_REGS ? rows[hh] : sRow[r];
                const int k0 = n0 + 2 * t; /* key of s[0 + 2hh] */
                if (rb.x == rb.z && rb.y == rb.w) {
                    const int lo = rb.z - k0, hi = min(rb.w, seq.k_len - 1) - k0;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
#pragma unroll
                        for (int e = 0; e < 2; e++)
                            if (nt * 8 + e < lo || nt * 8 + e > hi)
                                s[nt * 4 + 2 * hh + e] = -INFINITY;
                } else {
                    const int64_t qp = seq.q_off + m0 + r;
                    uint32_t bits = 0;
                    chill_with_predicate(a.mask, [&](auto allows) {
#pragma unroll 1
                        for (int j = 0; j < 2 * NT; j++) {
                            const int kp = k0 + (j / 2) * 8 + j % 2;
                            if (kp < seq.k_len && chill_row_allows(rb, allows, qp, kp))
                                bits |= 1u << j;
                        }
                    });
#pragma unroll
                    for (int j = 0; j < 2 * NT; j++)
                        if (!((bits >> j) & 1))
                            s[(j / 2) * 4 + 2 * hh + j % 2] = -INFINITY;
                }
            }
        }

        /* Online softmax, rows g and g + 8 of the warp's slice; the running
         * max moves only when a tile's max passes it by more than 2^8 (as in
         * flash.cuh: exact, and most tiles skip rescaling O). */
        float alpha[2];
        bool rescale = false;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            float mx = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                mx = fmaxf(mx, fmaxf(s[nt * 4 + 2 * hh], s[nt * 4 + 2 * hh + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
            mx *= a.scale_log2;
            const float m_old = row_max[hh];
            const bool grow = mx > m_old + 8.f;
            const float m = grow ? mx : m_old;
            const float base = m == -INFINITY ? 0.f : m;
            alpha[hh] = grow ? chill_exp2(m_old - base) : 1.f;
            rescale |= grow;
            row_max[hh] = m;
            float sum = 0.f;
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float p = chill_exp2(fmaf(s[nt * 4 + 2 * hh + e], a.scale_log2, -base));
                    s[nt * 4 + 2 * hh + e] = p;
                    sum += p;
                }
            row_sum[hh] = row_sum[hh] * alpha[hh] + sum;
        }
        if (__any_sync(0xffffffff, rescale)) {
#pragma unroll
            for (int i = 0; i < D / 2; i++)
                o[i] *= alpha[(i / 2) % 2];
        }

        /* O += P V: P's A fragment for keys 16kk..16kk+15 is S's n8 blocks
         * 2kk and 2kk + 1, rows g and g + 8, packed to 16 bits. */
        uint32_t p[BN / 16][4];
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            p[kk][0] = M::pack(s[8 * kk], s[8 * kk + 1]);
            p[kk][1] = M::pack(s[8 * kk + 2], s[8 * kk + 3]);
            p[kk][2] = M::pack(s[8 * kk + 4], s[8 * kk + 5]);
            p[kk][3] = M::pack(s[8 * kk + 6], s[8 * kk + 7]);
        }
        chill_wg_hold(o);
        chill_wg_fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
            WO::rs(o, p[kk], v_desc + ((kk * 16 * 128) >> 4));
        chill_wg_commit();
        chill_wg_wait();
        chill_wg_hold(o);
    }
    chill_cp_async_wait<0>();

    chill_hopper_write<T, D, BM>(a, seq, reinterpret_cast<char *>(sQ), m0, wrow, o, row_sum, row_max);
#else
    (void)a; /* compiled for another architecture: dispatch never launches it there */
#endif
}

template <typename T, int D, int BM, int BN, int MINB, int NS, bool UPFRONT>
cudaError_t chill_hopper_launch(const chill_cuda_args *a, int batch, cudaStream_t stream) {
    constexpr size_t smem = chill_hopper_smem<T, D, BM, BN, MINB, NS, UPFRONT>;
    /* A Hopper multiprocessor has 228 KiB of shared memory and keeps 1 KiB of
     * it per block: a configuration named for MINB blocks must fit them. */
    static_assert(MINB * (smem + 1024) <= 228 * 1024, "MINB blocks of this configuration do not fit in shared memory");
    auto kernel = chill_hopper_kernel<T, D, BM, BN, MINB, NS, UPFRONT>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    dim3 grid((a->max_q_len + BM - 1) / BM, a->heads_q, batch);
    kernel<<<grid, BM / 64 * 128, smem, stream>>>(*a);
    return cudaGetLastError();
}

/* One configuration: runs on compute capability 9.0 only (sm_90a code).
 * "wg<BM>x<BN>": registers for one block per multiprocessor and a two-stage
 * ring (flash.cuh's chill_ring_start); "wg<BM>x<BN>b<MINB>p<NS>": registers
 * capped so that MINB blocks fit, and an NS-stage ring whose first NS tiles
 * are requested at once, for the short spans of banded masks. */
#define CHILL_HOPPER_CONFIG_RING(T, D, BM, BN, MINB, NS, UPFRONT, NAME)                                                \
    {NAME, chill_mma<T>::dtype, 0, D, BM, BN, BM / 16, 90, chill_hopper_launch<T, D, BM, BN, MINB, NS, UPFRONT>, 90}
#define CHILL_HOPPER_CONFIG(T, D, BM, BN) CHILL_HOPPER_CONFIG_RING(T, D, BM, BN, 1, 2, false, "wg" #BM "x" #BN)
#define CHILL_HOPPER_CONFIG_BP(T, D, BM, BN, MINB, NS)                                                                 \
    CHILL_HOPPER_CONFIG_RING(T, D, BM, BN, MINB, NS, true, "wg" #BM "x" #BN "b" #MINB "p" #NS)

/* The configurations compiled for each 16-bit dtype: BM x BN, BM / 64
 * warpgroups, named as above. Only head dims 64 and 128 have them. */
#define CHILL_HOPPER_CONFIGS(T)                                                                                        \
    CHILL_HOPPER_CONFIG(T, 64, 192, 128), CHILL_HOPPER_CONFIG(T, 64, 128, 128), CHILL_HOPPER_CONFIG(T, 64, 192, 64),  \
        CHILL_HOPPER_CONFIG(T, 128, 128, 128), CHILL_HOPPER_CONFIG(T, 128, 128, 64),                                   \
        CHILL_HOPPER_CONFIG(T, 128, 192, 64), CHILL_HOPPER_CONFIG_BP(T, 64, 64, 64, 4, 2),                            \
        CHILL_HOPPER_CONFIG_BP(T, 128, 64, 64, 2, 2), CHILL_HOPPER_CONFIG_BP(T, 128, 64, 64, 2, 3),                   \
        CHILL_HOPPER_CONFIG_BP(T, 128, 64, 32, 3, 3)

#endif
