/* `chillctl tune`: times the GPU kernel's tile configurations on the present
 * GPU and writes the tuning table libchill loads (config/tuning/sm_<arch>.json
 * by default; kernels/cuda/tuning.cu reads it, $CHILL_TUNING_DIR moves it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chill.h"
#include "cmd.h"
#ifdef CHILL_WITH_CUDA
#include "cuda/tune.h"
#endif

const char chillctl_tune_usage[] =
    "time the GPU kernel's tile configurations here and write the tuning table\n"
    "usage: chillctl tune [--out DIR] [--reps N]\n"
    "  --out DIR   where sm_<arch>.json goes (default: config/tuning)\n"
    "  --reps N    timed launches per configuration, the median kept (default: 20)\n";

int chillctl_tune(int argc, char **argv) {
    const char *dir = "config/tuning";
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1 || reps > 10000) {
                fprintf(stderr, "chillctl tune: --reps %s: accepted 1 to 10000\n", argv[i]);
                return CHILLCTL_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "chillctl tune: unknown argument '%s'\n%s", argv[i], chillctl_tune_usage);
            return CHILLCTL_EXIT_USAGE;
        }
    }
#ifdef CHILL_WITH_CUDA
    chill_error err;
    if (chill_cuda_tune(dir, reps, stdout, &err) != CHILL_OK) {
        fprintf(stderr, "chillctl tune: %s\n", err.message);
        return 1;
    }
    return 0;
#else
    (void)dir;
    fprintf(stderr, "chillctl tune: this chillctl was built without CUDA (no nvcc, or CHILL_CUDA=0); "
                    "rebuild with nvcc to tune the GPU kernels\n");
    return 1;
#endif
}
