/* chillctl's tensor files and numbers. .npy (format 1.0/2.0, C order,
 * little-endian <f4 and <f2; bf16 has no numpy dtype, use .safetensors) and
 * .safetensors (F32, F16, BF16) are read and written whole. Random inputs
 * come from a splitmix64 stream, so a seed reproduces them anywhere. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorio.h"

static const char *ctl_st_names[] = {"F32", "F16", "BF16"};
static const char *ctl_npy_names[] = {"<f4", "<f2", NULL};

int ctl_tensor_alloc(ctl_tensor *t) {
    size_t n = chill_dtype_size(t->dtype);
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->shape[i];
    t->bytes = n;
    t->data = malloc(n ? n : 1);
    return t->data ? 0 : -1;
}

void ctl_tensor_free(ctl_tensor *t) {
    free(t->data);
    t->data = NULL;
}

static int ctl_fail(char *err, size_t len, const char *fmt, const char *a, const char *b) {
    snprintf(err, len, fmt, a, b);
    return -1;
}

static int ctl_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *ctl_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        rewind(f);
        buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* Parses an .npy header dict: descr, fortran_order, shape. */
static int ctl_npy_header(const char *h, ctl_tensor *t, char *err, size_t errlen, const char *path) {
    const char *d = strstr(h, "'descr':"), *f = strstr(h, "'fortran_order':"), *s = strstr(h, "'shape':");
    if (!d || !f || !s)
        return ctl_fail(err, errlen, "%s: not an .npy header%s", path, "");
    d = strchr(d + 8, '\'');
    int found = 0;
    for (int i = 0; i < 2 && d; i++)
        if (strncmp(d + 1, ctl_npy_names[i], 3) == 0 && d[4] == '\'') {
            t->dtype = (chill_dtype)i;
            found = 1;
        }
    if (!found)
        return ctl_fail(err, errlen, "%s: dtype is not <f4 or <f2 (for bf16 use .safetensors)%s", path, "");
    if (strncmp(f + 16 + strspn(f + 16, " "), "False", 5) != 0)
        return ctl_fail(err, errlen, "%s: Fortran order; save the array in C order%s", path, "");
    const char *p = strchr(s, '(');
    t->rank = 0;
    while (p && *p != ')') {
        p++;
        p += strspn(p, " ,");
        if (*p == ')')
            break;
        if (t->rank == 4)
            return ctl_fail(err, errlen, "%s: more than 4 dimensions%s", path, "");
        t->shape[t->rank++] = strtoll(p, (char **)&p, 10);
    }
    return 0;
}

static int ctl_npy_load(const char *path, const char *buf, size_t len, ctl_tensor *t, char *err, size_t errlen) {
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return ctl_fail(err, errlen, "%s: not an .npy file%s", path, "");
    size_t hl = buf[6] == 1 ? (size_t)(uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8
                            : (size_t)(uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8 | (size_t)(uint8_t)buf[10] << 16;
    size_t start = (buf[6] == 1 ? 10 : 12) + hl;
    if (start > len)
        return ctl_fail(err, errlen, "%s: truncated header%s", path, "");
    char *h = strndup(buf + (buf[6] == 1 ? 10 : 12), hl);
    int rc = h ? ctl_npy_header(h, t, err, errlen, path) : -1;
    free(h);
    if (rc != 0 || ctl_tensor_alloc(t) != 0)
        return -1;
    if (len - start != t->bytes)
        return ctl_fail(err, errlen, "%s: the data size does not match the header's shape and dtype%s", path, "");
    memcpy(t->data, buf + start, t->bytes);
    return 0;
}

static int ctl_st_load(const char *path, const char *name, const char *buf, size_t len, ctl_tensor *t, char *err,
                       size_t errlen) {
    uint64_t hl = 0;
    if (len >= 8)
        memcpy(&hl, buf, 8);
    if (len < 8 || hl > len - 8)
        return ctl_fail(err, errlen, "%s: not a .safetensors file%s", path, "");
    json_t *root = json_loadb(buf + 8, (size_t)hl, 0, NULL), *e = json_object_get(root, name);
    const char *dt = json_string_value(json_object_get(e, "dtype"));
    json_t *shape = json_object_get(e, "shape"), *offs = json_object_get(e, "data_offsets");
    int rc = -1;
    if (!dt || !json_is_array(shape) || json_array_size(offs) != 2) {
        ctl_fail(err, errlen, "%s: no tensor named \"%s\"", path, name);
        goto out;
    }
    int found = 0;
    for (int i = 0; i < 3; i++)
        if (strcmp(dt, ctl_st_names[i]) == 0) {
            t->dtype = (chill_dtype)i;
            found = 1;
        }
    if (!found || json_array_size(shape) > 4) {
        ctl_fail(err, errlen, "%s: tensor %s is not F32/F16/BF16 of rank <= 4", path, name);
        goto out;
    }
    t->rank = (int)json_array_size(shape);
    for (int i = 0; i < t->rank; i++)
        t->shape[i] = json_integer_value(json_array_get(shape, (size_t)i));
    json_int_t b = json_integer_value(json_array_get(offs, 0)), en = json_integer_value(json_array_get(offs, 1));
    if (ctl_tensor_alloc(t) != 0)
        goto out;
    if (b < 0 || en - b != (json_int_t)t->bytes || (uint64_t)en > len - 8 - hl) {
        ctl_fail(err, errlen, "%s: tensor %s's data_offsets do not match its shape", path, name);
        goto out;
    }
    memcpy(t->data, buf + 8 + hl + b, t->bytes);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int ctl_tensor_load(const char *path, const char *name, ctl_tensor *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    size_t len = 0;
    char *buf = ctl_slurp(path, &len);
    if (!buf)
        return ctl_fail(err, errlen, "%s: cannot read: %s", path, "no such file or not readable");
    int rc = ctl_ends_with(path, ".npy") ? ctl_npy_load(path, buf, len, t, err, errlen)
                                         : ctl_st_load(path, name, buf, len, t, err, errlen);
    free(buf);
    return rc;
}

static int ctl_npy_save(FILE *f, const ctl_tensor *t) {
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", ctl_npy_names[t->dtype]);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)t->shape[i],
                      i + 1 < t->rank ? ", " : t->rank == 1 ? "," : "");
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    int total = (10 + n + 1 + 63) / 64 * 64;
    int pad = total - 10 - n - 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 0xff),
                             (unsigned char)((total - 10) >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, (size_t)n, f);
    fprintf(f, "%*s\n", pad, "");
    return fwrite(t->data, 1, t->bytes, f) == t->bytes ? 0 : -1;
}

static int ctl_st_save(FILE *f, const ctl_tensor *t, int n) {
    json_t *root = json_object();
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array();
        for (int d = 0; d < t[i].rank; d++)
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_object_set_new(e, "dtype", json_string(ctl_st_names[t[i].dtype]));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[I,I]", (json_int_t)at, (json_int_t)(at + t[i].bytes)));
        json_object_set_new(root, t[i].name, e);
        at += t[i].bytes;
    }
    char *h = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!h)
        return -1;
    size_t hl = strlen(h), padded = (hl + 7) / 8 * 8;
    uint64_t hl64 = padded;
    fwrite(&hl64, 8, 1, f);
    fwrite(h, 1, hl, f);
    fprintf(f, "%*s", (int)(padded - hl), "");
    free(h);
    for (int i = 0; i < n; i++)
        if (fwrite(t[i].data, 1, t[i].bytes, f) != t[i].bytes)
            return -1;
    return 0;
}

int ctl_tensor_save(const char *path, const ctl_tensor *t, int n, char *err, size_t errlen) {
    int npy = ctl_ends_with(path, ".npy");
    if (npy && (n != 1 || t->dtype == CHILL_BF16))
        return ctl_fail(err, errlen, "%s: .npy holds one fp32 or fp16 array; use .safetensors for %s", path,
                        n != 1 ? "several tensors" : "bf16");
    if (!npy && !ctl_ends_with(path, ".safetensors"))
        return ctl_fail(err, errlen, "%s: accepted file types are .npy and .safetensors%s", path, "");
    FILE *f = fopen(path, "wb");
    if (!f)
        return ctl_fail(err, errlen, "%s: cannot write%s", path, "");
    int rc = npy ? ctl_npy_save(f, t) : ctl_st_save(f, t, n);
    if (fclose(f) != 0)
        rc = -1;
    return rc == 0 ? 0 : ctl_fail(err, errlen, "%s: write failed%s", path, "");
}

float ctl_to_float(chill_dtype d, const void *data, size_t i) {
    if (d == CHILL_F32)
        return ((const float *)data)[i];
    uint16_t h = ((const uint16_t *)data)[i];
    return d == CHILL_F16 ? chill_half_to_float(h) : chill_bf16_to_float(h);
}

void ctl_tensor_random(ctl_tensor *t, uint64_t seed) {
    size_t n = t->bytes / chill_dtype_size(t->dtype);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        float x = (float)((double)(z >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
        if (t->dtype == CHILL_F32)
            ((float *)t->data)[i] = x;
        else
            ((uint16_t *)t->data)[i] = t->dtype == CHILL_F16 ? chill_float_to_half(x) : chill_float_to_bf16(x);
    }
}

double ctl_rel_error(chill_dtype d, const void *a, const void *b, size_t count) {
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        double x = ctl_to_float(d, a, i), y = ctl_to_float(d, b, i);
        num += (x - y) * (x - y);
        den += y * y;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double ctl_tolerance(chill_dtype d) {
    static const double tol[] = {1e-5, 2e-3, 1e-2};
    return tol[d];
}
