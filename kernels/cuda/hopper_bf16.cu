/* The bf16 configurations of the Hopper kernel (hopper.cuh), present only
 * when the build embeds sm_90a code. */
#include "hopper.cuh"

const chill_cuda_config chill_cuda_configs_bf16_sm90[] = {CHILL_HOPPER_CONFIGS(__nv_bfloat16)};
const int chill_cuda_configs_bf16_sm90_count =
    chill_hopper_compiled() ? (int)(sizeof chill_cuda_configs_bf16_sm90 / sizeof chill_cuda_configs_bf16_sm90[0]) : 0;
