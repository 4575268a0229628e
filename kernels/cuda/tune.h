/* `chillctl tune` (client/chillctl/tune_cmd.c) calls this: it times every
 * compiled tile configuration on the current GPU and writes the tuning table
 * that libchill loads (tuning.cu). C linkage, so C code can call it. */
#ifndef CHILL_CUDA_TUNE_H
#define CHILL_CUDA_TUNE_H

#include <stdio.h>

#include "chill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For each (dtype, head dim, mask class), dtype fp16, bf16 or TF32 (true fp32
 * has one configuration per head dim), times the candidates on a
 * representative problem (batch 4, 8 heads, 8192 tokens: causal for
 * "dense", sliding_window(64,64) for "banded"; median of reps launches after
 * warm-up), logs one line per timing to log, and writes the table of the
 * fastest to path (a directory: path/sm_<arch>.json). */
chill_status chill_cuda_tune(const char *path, int reps, FILE *log, chill_error *err);

#ifdef __cplusplus
}
#endif

#endif
