/* chillctl's tensors: reading and writing .npy and .safetensors files,
 * random inputs, fp16/bf16 conversion, and the relative error used by
 * `chillctl infer --check`. Shared by the infer and bench subcommands. */
#ifndef CHILLCTL_TENSORIO_H
#define CHILLCTL_TENSORIO_H

#include <stddef.h>
#include <stdint.h>

#include "chill.h"

typedef struct ctl_tensor {
    char name[32];
    chill_dtype dtype;
    int rank;
    int64_t shape[4];
    size_t bytes;
    void *data;
} ctl_tensor;

/* Allocates t->data for the shape and dtype already set; 0 on success. */
int ctl_tensor_alloc(ctl_tensor *t);
void ctl_tensor_free(ctl_tensor *t);

/* Loads the tensor named name from path (.npy: the file's only array, name
 * ignored; .safetensors: that entry). 0 on success, else -1 with err set. */
int ctl_tensor_load(const char *path, const char *name, ctl_tensor *t, char *err, size_t errlen);

/* Writes tensors to path: .npy takes exactly one, .safetensors any number. */
int ctl_tensor_save(const char *path, const ctl_tensor *t, int n, char *err, size_t errlen);

/* Fills t with uniform values in [-1, 1) from seed. */
void ctl_tensor_random(ctl_tensor *t, uint64_t seed);

float ctl_to_float(chill_dtype d, const void *data, size_t i);

/* ||a - b|| / ||b|| over count elements of type d (a) and d (b). */
double ctl_rel_error(chill_dtype d, const void *a, const void *b, size_t count);

/* The relative-error bound of the numerics contract for d. */
double ctl_tolerance(chill_dtype d);

#endif
