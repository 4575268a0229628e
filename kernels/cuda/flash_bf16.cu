/* The bf16 tile configurations of the tensor-core kernel (flash.cuh). Each
 * dtype is its own file so the two compile in parallel. */
#include "flash.cuh"

const chill_cuda_config chill_cuda_configs_bf16[] = {CHILL_FLASH_CONFIGS(__nv_bfloat16)};
const int chill_cuda_configs_bf16_count = sizeof chill_cuda_configs_bf16 / sizeof chill_cuda_configs_bf16[0];
