/* The TF32 tile configurations of the tensor-core kernel (flash.cuh over
 * float): fp32 tensors, Q K^T and P V on TF32 tensor cores (m16n8k8, operands
 * rounded to a 10-bit mantissa, fp32 accumulation and softmax). dispatch.cu
 * runs them only for calls that set allow_tf32, on sm_80 and newer, with
 * 16-byte aligned tensors; every other fp32 call runs true fp32
 * (flash_f32.cu).
 *
 * fp32 tiles take twice the shared memory of fp16 ones and the S = Q K^T
 * loop twice the k steps, so the tiles are smaller: per block, bytes =
 * 4 ((BM + 2 BN)(D + 8) + 2 BN (D + 4)) + 16 BM. D256 64x32 (198 KB) passes
 * sm_80's 163 KB a block and needs sm_90 (227 KB); every head dim keeps
 * configurations that fit sm_80. None of these spills registers (ptxas -v,
 * sm_80 and sm_90a; 64x64 tiles at D96 and D128, and 4 blocks of 64x64 at
 * D32, did). The first of each head dim is the default where the tuning
 * table names none (dtype "TF32" there). */
#include "flash.cuh"

const chill_cuda_config chill_cuda_configs_tf32[] = {
    CHILL_FLASH_CONFIG(float, 32, 64, 64, 4, 3),
    CHILL_FLASH_CONFIG(float, 32, 64, 32, 4, 4),
    CHILL_FLASH_CONFIG(float, 64, 64, 64, 4, 2),
    CHILL_FLASH_CONFIG(float, 64, 64, 32, 4, 3),
    CHILL_FLASH_CONFIG(float, 64, 128, 32, 8, 1),
    CHILL_FLASH_CONFIG(float, 64, 32, 32, 2, 6),
    CHILL_FLASH_CONFIG(float, 96, 64, 32, 4, 2),
    CHILL_FLASH_CONFIG(float, 96, 128, 32, 8, 1),
    CHILL_FLASH_CONFIG(float, 128, 64, 32, 4, 2),
    CHILL_FLASH_CONFIG(float, 128, 128, 32, 8, 1),
    CHILL_FLASH_CONFIG(float, 128, 64, 16, 4, 2),
    CHILL_FLASH_CONFIG(float, 256, 64, 16, 4, 1),
    CHILL_FLASH_CONFIG_SM(float, 256, 64, 32, 4, 1, 90),
};
const int chill_cuda_configs_tf32_count = sizeof chill_cuda_configs_tf32 / sizeof chill_cuda_configs_tf32[0];

/* The shared memory the comment above states, checked where it decides the architecture. */
static_assert(chill_flash_smem<float, 256, 64, 32> > 166912 && chill_flash_smem<float, 256, 64, 32> <= 232448 &&
                  chill_flash_smem<float, 256, 64, 16> <= 166912 && chill_flash_smem<float, 128, 128, 32> <= 166912 &&
                  chill_flash_smem<float, 96, 128, 32> <= 166912,
              "TF32 tiles: sm_80 takes up to 163 KB of shared memory a block, sm_90 227 KB");
