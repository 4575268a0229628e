/* Decoding infer requests into chill_requests and encoding their responses.
 * The order of checks follows the request: the JSON header, request
 * parameters, requested outputs, each input (its shape, datatype and where
 * its bytes are), then the shapes against each other and the limits. Each
 * error names the field and what is accepted. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostmem.h"
#include "jsonhead.h"
#include "protocol.h"
#include "registry.h"

enum { IN_Q, IN_K, IN_V, IN_SEQ_LENS, IN_KV_SEQ_LENS, N_INPUTS };
static const char *input_names[N_INPUTS] = {"q", "k", "v", "seq_lens", "kv_seq_lens"};

/* One decoded input tensor before the shapes are checked against each other. */
typedef struct tensor {
    int present;
    int rank;
    int64_t shape[4];
    int64_t elements;
    char datatype[8];
    size_t esize;
    void *data;
    int on_device, device;
} tensor;

/* What the request parameters asked for. */
typedef struct request_params {
    int have_mask, have_args;
    chill_mask mask;
    int64_t arg_given[CHILL_MASK_MAX_ARGS];
    float sm_scale;
    int64_t q_offset;
    int return_lse, binary_output, bthd, allow_tf32;
    int64_t timeout_us;
} request_params;

typedef struct decoder {
    chill_infer *inf;
    const chill_config *c;
    const char *bin;         /* binary section */
    size_t bin_len, bin_used;
    char *err;
    size_t errlen;
} decoder;

static int fail(decoder *d, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(decoder *d, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return status;
}

static void *own(chill_infer *inf, size_t bytes) {
    if (inf->n_owned == (int)(sizeof inf->owned / sizeof inf->owned[0]))
        return NULL;
    void *p = chill_hostmem_alloc(bytes ? bytes : 1);
    if (p != NULL)
        inf->owned[inf->n_owned++] = p;
    return p;
}

/* ---- request parameters ------------------------------------------------------ */

static void accepted_params(const chill_model *m, char *buf, size_t len) {
    size_t n = 0;
    if (!m->preset) {
        for (int i = 0; i < chill_mask_nargs(m->mask_type); i++)
            n += snprintf(buf + n, len - n, "%s (integer), ", chill_mask_arg_name(m->mask_type, i));
        n += snprintf(buf + n, len - n, "mask (spec string, e.g. \"%s\"), ", chill_mask_name(m->mask_type));
    }
    snprintf(buf + n, len - n, "sm_scale (number > 0), q_offset (integer), return_lse (bool), "
             "layout (\"BHTD\" or \"BTHD\"), timeout (microseconds), allow_tf32 (bool), binary_data_output (bool)");
}

static int param_bool(decoder *d, const char *key, json_t *v, int *out) {
    if (!json_is_boolean(v))
        return fail(d, 400, "parameter %s: expected true or false", key);
    *out = json_is_true(v);
    return 200;
}

static int param_mask_arg(decoder *d, const chill_model *m, int i, json_t *v, request_params *rp) {
    const char *name = chill_mask_arg_name(m->mask_type, i);
    int64_t min = chill_mask_table[m->mask_type].arg_min[i];
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > CHILL_MASK_ARG_MAX)
        return fail(d, 400, "parameter %s: expected an integer in [%lld, %lld]", name, (long long)min,
                    (long long)CHILL_MASK_ARG_MAX);
    rp->mask.arg[i] = json_integer_value(v);
    rp->arg_given[i] = 1;
    rp->have_args = 1;
    return 200;
}

/* Whether key names an argument of some mask. */
static int is_mask_arg(const char *key) {
    for (int t = 0; t < chill_mask_count(); t++)
        for (int i = 0; i < chill_mask_nargs(t); i++)
            if (strcmp(key, chill_mask_arg_name(t, i)) == 0)
                return 1;
    return 0;
}

/* One request parameter; mask arguments are matched by the model's mask. */
static int param_one(decoder *d, const chill_model *m, const char *key, json_t *v, request_params *rp) {
    for (int i = 0; !m->preset && i < chill_mask_nargs(m->mask_type); i++)
        if (strcmp(key, chill_mask_arg_name(m->mask_type, i)) == 0)
            return param_mask_arg(d, m, i, v, rp);
    if (strcmp(key, "mask") == 0 && !m->preset) {
        chill_error e;
        if (!json_is_string(v) || chill_mask_parse(json_string_value(v), &rp->mask, &e) != CHILL_OK)
            return fail(d, 400, "parameter mask: %s", json_is_string(v) ? e.message : "expected a mask spec string");
        if (rp->mask.type != m->mask_type)
            return fail(d, 400, "parameter mask: \"%s\" is not a %s mask; model %s serves %s only (other masks "
                        "are other models)", json_string_value(v), chill_mask_name(m->mask_type), m->name,
                        chill_mask_name(m->mask_type));
        rp->have_mask = 1;
        return 200;
    }
    if (strcmp(key, "sm_scale") == 0) {
        if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
            return fail(d, 400, "parameter sm_scale: expected a finite number > 0");
        rp->sm_scale = (float)json_number_value(v);
        return 200;
    }
    if (strcmp(key, "q_offset") == 0) {
        if (!json_is_integer(v) || llabs(json_integer_value(v)) > CHILL_MASK_ARG_MAX)
            return fail(d, 400, "parameter q_offset: expected an integer in [-%lld, %lld]",
                        (long long)CHILL_MASK_ARG_MAX, (long long)CHILL_MASK_ARG_MAX);
        rp->q_offset = json_integer_value(v);
        return 200;
    }
    if (strcmp(key, "layout") == 0) {
        const char *s = json_string_value(v);
        if (s == NULL || (strcmp(s, "BHTD") != 0 && strcmp(s, "BTHD") != 0))
            return fail(d, 400, "parameter layout: expected \"BHTD\" or \"BTHD\"");
        rp->bthd = strcmp(s, "BTHD") == 0;
        return 200;
    }
    if (strcmp(key, "timeout") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return fail(d, 400, "parameter timeout: expected microseconds, an integer >= 0 (0: none)");
        rp->timeout_us = json_integer_value(v);
        return 200;
    }
    if (strcmp(key, "return_lse") == 0)
        return param_bool(d, key, v, &rp->return_lse);
    if (strcmp(key, "binary_data_output") == 0)
        return param_bool(d, key, v, &rp->binary_output);
    if (strcmp(key, "allow_tf32") == 0)
        return param_bool(d, key, v, &rp->allow_tf32);
    char list[768];
    accepted_params(m, list, sizeof list);
    if (m->preset && (strcmp(key, "mask") == 0 || is_mask_arg(key)))
        return fail(d, 400, "parameter %s: model %s is a preset with its mask fixed (%s); accepted: %s", key,
                    m->name, m->spec, list);
    return fail(d, 400, "parameter %s: unknown; accepted: %s", key, list);
}

static int decode_params(decoder *d, json_t *params, request_params *rp) {
    const chill_model *m = d->inf->model;
    memset(rp, 0, sizeof *rp);
    rp->q_offset = CHILL_Q_OFFSET_AUTO;
    rp->timeout_us = d->c->default_timeout_us;
    rp->mask = m->mask;
    if (params != NULL && !json_is_object(params))
        return fail(d, 400, "parameters: expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        int st = param_one(d, m, key, v, rp);
        if (st != 200)
            return st;
    }
    if (m->preset)
        return 200;
    if (rp->have_mask && rp->have_args)
        return fail(d, 400, "parameters: give the mask either as \"mask\" or as its arguments, not both");
    for (int i = 0; !rp->have_mask && i < chill_mask_nargs(m->mask_type); i++)
        if (!rp->arg_given[i]) {
            char list[768];
            accepted_params(m, list, sizeof list);
            return fail(d, 400, "parameter %s: missing; model %s needs every mask argument, or a \"mask\" spec; "
                        "accepted: %s", chill_mask_arg_name(m->mask_type, i), m->name, list);
        }
    return 200;
}

/* ---- inputs ------------------------------------------------------------------ */

static size_t datatype_size(const char *dt, int is_int) {
    if (is_int)
        return strcmp(dt, "INT32") == 0 ? 4 : 0;
    if (strcmp(dt, "FP32") == 0)
        return 4;
    return strcmp(dt, "FP16") == 0 || strcmp(dt, "BF16") == 0 ? 2 : 0;
}

/* Stores one JSON number into element i of t. */
static int put_number(decoder *d, tensor *t, const char *name, int64_t i, json_t *v) {
    if (strcmp(t->datatype, "INT32") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
            return fail(d, 400, "input %s: data[%lld] is not a 32-bit integer", name, (long long)i);
        ((int32_t *)t->data)[i] = (int32_t)json_integer_value(v);
        return 200;
    }
    if (!json_is_number(v))
        return fail(d, 400, "input %s: data[%lld] is not a number", name, (long long)i);
    float f = (float)json_number_value(v);
    if (strcmp(t->datatype, "FP32") == 0)
        ((float *)t->data)[i] = f;
    else if (strcmp(t->datatype, "FP16") == 0)
        ((uint16_t *)t->data)[i] = chill_float_to_half(f);
    else
        ((uint16_t *)t->data)[i] = chill_float_to_bf16(f);
    return 200;
}

/* Flattens (possibly nested) JSON data row-major into t. */
static int put_data(decoder *d, tensor *t, const char *name, json_t *data, int64_t *n, int depth) {
    if (depth > 8)
        return fail(d, 400, "input %s: data nested deeper than the shape", name);
    size_t i;
    json_t *v;
    json_array_foreach(data, i, v) {
        int st;
        if (json_is_array(v)) {
            st = put_data(d, t, name, v, n, depth + 1);
        } else {
            if (*n >= t->elements)
                return fail(d, 400, "input %s: data has more than the %lld elements of its shape", name,
                            (long long)t->elements);
            st = put_number(d, t, name, *n, v);
            (*n)++;
        }
        if (st != 200)
            return st;
    }
    return 200;
}

static int input_from_json(decoder *d, tensor *t, const char *name, json_t *data) {
    size_t bytes = (size_t)t->elements * t->esize;
    if (!json_is_array(data))
        return fail(d, 400, "input %s: data must be an array", name);
    if ((t->data = own(d->inf, bytes)) == NULL)
        return fail(d, 503, "input %s: out of memory for %zu bytes", name, bytes);
    int64_t n = 0;
    int st = put_data(d, t, name, data, &n, 0);
    if (st == 200 && n != t->elements)
        return fail(d, 400, "input %s: data has %lld elements, its shape has %lld", name, (long long)n,
                    (long long)t->elements);
    return st;
}

static int input_from_binary(decoder *d, tensor *t, const char *name, json_t *size) {
    size_t bytes = (size_t)t->elements * t->esize;
    if (!json_is_integer(size) || json_integer_value(size) < 0 || (uint64_t)json_integer_value(size) != bytes)
        return fail(d, 400, "input %s: binary_data_size must be %zu (shape x %s size %zu)", name, bytes, t->datatype,
                    t->esize);
    if (bytes > d->bin_len - d->bin_used)
        return fail(d, 400, "input %s: binary_data_size %zu, but only %zu bytes of the body are left after the "
                    "JSON header (Inference-Header-Content-Length) and earlier binary inputs", name, bytes,
                    d->bin_len - d->bin_used);
    const char *p = d->bin + d->bin_used;
    d->bin_used += bytes;
    if ((uintptr_t)p % t->esize == 0) {
        t->data = (void *)p;
        return 200;
    }
    if ((t->data = own(d->inf, bytes)) == NULL)
        return fail(d, 503, "input %s: out of memory for %zu bytes", name, bytes);
    memcpy(t->data, p, bytes);
    return 200;
}

/* shared_memory_region/offset/byte_size of an input or output: the view. */
static int acquire_region(decoder *d, const char *what, const char *name, json_t *params, size_t bytes, int *view) {
    json_t *region = json_object_get(params, "shared_memory_region");
    json_t *offset = json_object_get(params, "shared_memory_offset");
    json_t *size = json_object_get(params, "shared_memory_byte_size");
    if (!json_is_string(region))
        return fail(d, 400, "%s %s: shared_memory_region must be a region name", what, name);
    if (offset != NULL && (!json_is_integer(offset) || json_integer_value(offset) < 0))
        return fail(d, 400, "%s %s: shared_memory_offset must be an integer >= 0", what, name);
    if (!json_is_integer(size) || (uint64_t)json_integer_value(size) < bytes)
        return fail(d, 400, "%s %s: shared_memory_byte_size must be an integer of at least %zu (the tensor's bytes)",
                    what, name, bytes);
    if (d->inf->n_views == CHILL_INFER_MAX_VIEWS)
        return fail(d, 400, "%s %s: too many shared-memory tensors", what, name);
    chill_region_view *v = &d->inf->views[d->inf->n_views];
    char err[256];
    if (chill_region_acquire(json_string_value(region), offset ? (uint64_t)json_integer_value(offset) : 0,
                             (uint64_t)json_integer_value(size), v, err, sizeof err) != 0)
        return fail(d, 400, "%s %s: %s", what, name, err);
    *view = d->inf->n_views++;
    return 200;
}

/* Whether the GPU kernels compute on tensors shaped like q (rank 4, its
 * dtype and head dim) and the view may be used in place by them: then the
 * device's copies move the tensor straight between the region and the GPU. */
static int gpu_direct(chill_region_view *v, const tensor *q) {
    chill_dtype dt;
    v->direct = q->rank == 4 && chill_dtype_parse(q->datatype, &dt) == 0 && chill_gpu_supports(dt, q->shape[3]) &&
                chill_region_direct(v);
    return v->direct;
}

/* q, k, v (is_data) in a pinned region go to the GPU from where they lie;
 * everything else the CPU reads is copied out, guarded against truncation. */
static int input_from_region(decoder *d, tensor *t, const char *name, json_t *params, int is_data) {
    size_t bytes = (size_t)t->elements * t->esize;
    int vi, st = acquire_region(d, "input", name, params, bytes, &vi);
    if (st != 200)
        return st;
    chill_region_view *v = &d->inf->views[vi];
    if (v->on_device) {
        t->data = v->ptr;
        t->on_device = 1;
        t->device = v->device;
        return 200;
    }
    char err[256];
    if (is_data && gpu_direct(v, t)) {
        t->data = v->ptr;
        return 200;
    }
    if ((t->data = own(d->inf, bytes)) == NULL)
        return fail(d, 503, "input %s: out of memory for %zu bytes", name, bytes);
    if (chill_region_read(v, t->data, bytes, err, sizeof err) != 0)
        return fail(d, 400, "input %s: %s", name, err);
    return 200;
}

static int check_keys(decoder *d, json_t *obj, const char *where, const char *const *keys, int n) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int i = 0;
        while (i < n && strcmp(keys[i], key) != 0)
            i++;
        if (i == n) {
            char list[256];
            size_t len = 0;
            for (int j = 0; j < n; j++)
                len += snprintf(list + len, sizeof list - len, "%s%s", j ? ", " : "", keys[j]);
            return fail(d, 400, "%s: unknown key \"%s\"; accepted: %s", where, key, list);
        }
    }
    return 200;
}

/* The shape and datatype of one input; the element count within the limits. */
static int input_shape(decoder *d, tensor *t, const char *name, json_t *in, int is_int) {
    json_t *shape = json_object_get(in, "shape"), *dt = json_object_get(in, "datatype");
    int want_rank = is_int ? 1 : 4;
    if (!json_is_array(shape) || json_array_size(shape) != (size_t)want_rank)
        return fail(d, 400, "input %s: shape must be an array of %d dimensions (%s)", name, want_rank,
                    is_int ? "[B]" : "[B, H, T, D], or [B, T, H, D] with layout BTHD");
    t->rank = want_rank;
    t->elements = 1;
    for (int i = 0; i < want_rank; i++) {
        json_t *v = json_array_get(shape, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)
            return fail(d, 400, "input %s: shape[%d] must be an integer in [1, %d]", name, i, INT32_MAX);
        t->shape[i] = json_integer_value(v);
        if (__builtin_mul_overflow(t->elements, t->shape[i], &t->elements) || t->elements > d->c->max_elements)
            return fail(d, 413, "input %s: more than %lld elements (limits.max_elements)", name,
                        (long long)d->c->max_elements);
    }
    if (!json_is_string(dt) || (t->esize = datatype_size(json_string_value(dt), is_int)) == 0)
        return fail(d, 400, "input %s: datatype %s%s%s is not accepted; accepted: %s", name, json_is_string(dt) ? "\"" : "",
                    json_is_string(dt) ? json_string_value(dt) : "(not a string)", json_is_string(dt) ? "\"" : "",
                    is_int ? "INT32" : "FP32, FP16, BF16");
    snprintf(t->datatype, sizeof t->datatype, "%s", json_string_value(dt));
    return 200;
}

static int decode_input(decoder *d, json_t *in, size_t index, tensor *inputs) {
    static const char *keys[] = {"name", "shape", "datatype", "parameters", "data"};
    static const char *pkeys[] = {"binary_data_size", "shared_memory_region", "shared_memory_offset",
                                  "shared_memory_byte_size"};
    char where[64];
    snprintf(where, sizeof where, "inputs[%zu]", index);
    if (!json_is_object(in))
        return fail(d, 400, "%s: expected an object with name, shape, datatype and data", where);
    int st = check_keys(d, in, where, keys, 5);
    if (st != 200)
        return st;
    const char *name = json_string_value(json_object_get(in, "name"));
    int which = 0;
    while (name != NULL && which < N_INPUTS && strcmp(name, input_names[which]) != 0)
        which++;
    if (name == NULL)
        return fail(d, 400, "%s: name must be a string: q, k, v, seq_lens or kv_seq_lens", where);
    if (which == N_INPUTS)
        return fail(d, 400, "%s: \"%s\" is not an input; accepted: q, k, v, seq_lens, kv_seq_lens", where, name);
    tensor *t = &inputs[which];
    if (t->present)
        return fail(d, 400, "input %s: given twice", name);
    t->present = 1;
    if ((st = input_shape(d, t, name, in, which >= IN_SEQ_LENS)) != 200)
        return st;
    json_t *params = json_object_get(in, "parameters"), *data = json_object_get(in, "data");
    if (params != NULL && (!json_is_object(params) || check_keys(d, params, name, pkeys, 4) != 200))
        return json_is_object(params) ? 400 : fail(d, 400, "input %s: parameters must be an object", name);
    json_t *bin = json_object_get(params, "binary_data_size");
    int from_region = json_object_get(params, "shared_memory_region") != NULL;
    if ((bin != NULL) + from_region + (data != NULL) != 1)
        return fail(d, 400, "input %s: give its bytes exactly one way: data, parameters.binary_data_size, or "
                    "parameters.shared_memory_region", name);
    if (bin != NULL)
        return input_from_binary(d, t, name, bin);
    if (from_region)
        return input_from_region(d, t, name, params, which <= IN_V);
    return input_from_json(d, t, name, data);
}

/* ---- outputs ------------------------------------------------------------------- */

static int decode_outputs(decoder *d, json_t *outputs, const request_params *rp) {
    static const char *keys[] = {"name", "parameters"};
    static const char *pkeys[] = {"binary_data", "shared_memory_region", "shared_memory_offset",
                                  "shared_memory_byte_size"};
    chill_infer *inf = d->inf;
    inf->out.view = inf->lse.view = -1;
    inf->out.computed = 1;
    if (outputs == NULL) {
        inf->out.returned = 1;
        inf->lse.computed = inf->lse.returned = rp->return_lse;
        inf->out.binary = inf->lse.binary = rp->binary_output;
        return 200;
    }
    inf->lse.computed = rp->return_lse;
    if (!json_is_array(outputs))
        return fail(d, 400, "outputs: expected an array of {\"name\": \"out\" or \"lse\", \"parameters\"}");
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o) {
        char where[32];
        snprintf(where, sizeof where, "outputs[%zu]", i);
        if (!json_is_object(o) || check_keys(d, o, where, keys, 2) != 200)
            return json_is_object(o) ? 400 : fail(d, 400, "%s: expected an object", where);
        const char *name = json_string_value(json_object_get(o, "name"));
        chill_output_spec *s = name == NULL ? NULL : strcmp(name, "out") == 0 ? &inf->out
                             : strcmp(name, "lse") == 0 ? &inf->lse : NULL;
        if (s == NULL)
            return fail(d, 400, "%s: \"%s\" is not an output; accepted: out, lse", where, name ? name : "(no name)");
        if (s->returned)
            return fail(d, 400, "output %s: requested twice", name);
        s->computed = s->returned = 1;
        s->binary = rp->binary_output;
        json_t *params = json_object_get(o, "parameters");
        if (params == NULL)
            continue;
        if (!json_is_object(params) || check_keys(d, params, name, pkeys, 4) != 200)
            return json_is_object(params) ? 400 : fail(d, 400, "output %s: parameters must be an object", name);
        json_t *b = json_object_get(params, "binary_data");
        if (b != NULL && !json_is_boolean(b))
            return fail(d, 400, "output %s: binary_data must be true or false", name);
        if (b != NULL)
            s->binary = json_is_true(b);
        /* regions are acquired once the output's size is known: mark with -2 */
        if (json_object_get(params, "shared_memory_region") != NULL)
            s->view = -2;
    }
    return 200;
}

/* Output region (marked -2) acquired now that the size is known. */
static int output_region(decoder *d, const char *name, chill_output_spec *s, json_t *outputs) {
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o) {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
            return acquire_region(d, "output", name, json_object_get(o, "parameters"), s->bytes, &s->view);
    }
    return 200;
}

/* ---- shapes against each other ------------------------------------------------ */

typedef struct dims {
    int64_t b, h, t, d;
} dims;

static dims dims_of(const tensor *t, int bthd) {
    dims x = {t->shape[0], bthd ? t->shape[2] : t->shape[1], bthd ? t->shape[1] : t->shape[2], t->shape[3]};
    return x;
}

static int check_lens(decoder *d, const tensor *t, const char *name, int64_t b, int64_t max, const char *what) {
    if (!t->present)
        return 200;
    if (t->shape[0] != b)
        return fail(d, 400, "input %s: shape must be [%lld] (the batch of q), got [%lld]", name, (long long)b,
                    (long long)t->shape[0]);
    if (t->on_device)
        return fail(d, 400, "input %s: not accepted in CUDA shared memory; send it in the request", name);
    const int32_t *v = t->data;
    for (int64_t i = 0; i < b; i++)
        if (v[i] < 0 || v[i] > max)
            return fail(d, 400, "input %s: %s[%lld] = %d, accepted 0..%lld (%s)", name, name, (long long)i, v[i],
                        (long long)max, what);
    return 200;
}

static int check_shapes(decoder *d, tensor *in, const request_params *rp) {
    const char *shape = rp->bthd ? "[B, T, H, D] (layout BTHD)" : "[B, H, T, D] (layout BHTD)";
    for (int i = IN_Q; i <= IN_V; i++)
        if (!in[i].present)
            return fail(d, 400, "input %s: missing; inputs are q, k, v %s and optional seq_lens, kv_seq_lens [B] "
                        "INT32", input_names[i], shape);
    dims q = dims_of(&in[IN_Q], rp->bthd), k = dims_of(&in[IN_K], rp->bthd);
    if (strcmp(in[IN_K].datatype, in[IN_Q].datatype) != 0 || strcmp(in[IN_V].datatype, in[IN_Q].datatype) != 0)
        return fail(d, 400, "inputs k and v: datatype must be q's (%s); got k %s, v %s", in[IN_Q].datatype,
                    in[IN_K].datatype, in[IN_V].datatype);
    if (memcmp(in[IN_K].shape, in[IN_V].shape, sizeof in[IN_K].shape) != 0)
        return fail(d, 400, "inputs k and v: shapes must be equal");
    if (k.b != q.b || k.d != q.d)
        return fail(d, 400, "input k: batch and head dim must be q's (B=%lld, D=%lld); got B=%lld, D=%lld",
                    (long long)q.b, (long long)q.d, (long long)k.b, (long long)k.d);
    if (q.d < CHILL_HEAD_DIM_MIN || q.d > CHILL_HEAD_DIM_MAX || q.d % 8 != 0)
        return fail(d, 400, "input q: head_dim D=%lld; accepted a multiple of 8 in [%d, %d]", (long long)q.d,
                    CHILL_HEAD_DIM_MIN, CHILL_HEAD_DIM_MAX);
    if (q.h % k.h != 0)
        return fail(d, 400, "input k: its %lld heads must divide q's %lld heads", (long long)k.h, (long long)q.h);
    int64_t tokens;
    if (__builtin_mul_overflow(q.b, q.t + k.t, &tokens) || tokens > d->c->max_tokens)
        return fail(d, 413, "inputs: B*(Tq+Tk) = %lld tokens, the limit is %lld (limits.max_tokens)",
                    (long long)tokens, (long long)d->c->max_tokens);
    int st = check_lens(d, &in[IN_SEQ_LENS], "seq_lens", q.b, q.t, "each at most Tq");
    return st != 200 ? st : check_lens(d, &in[IN_KV_SEQ_LENS], "kv_seq_lens", q.b, k.t, "each at most Tk");
}

/* ---- building the request ---------------------------------------------------------- */

static void set_strides(chill_tensor *t, int bthd, dims x) {
    if (bthd) {
        t->stride[0] = x.t * x.h * x.d;
        t->stride[1] = x.d;
        t->stride[2] = x.h * x.d;
    }
}

/* Where output s is written: in place in a CUDA shared-memory view, else in a
 * buffer of the infer (copied to its system region, if any, when encoding).
 * With seq_lens the buffer starts as what rows past them answer, since the
 * kernel and the batcher's copies write only the rows the sequences own: out
 * zeros, lse -inf, like a row with no key. Without seq_lens every row is
 * written, so out needs no clearing (262 KB a request at B1 H8 T256 D64
 * fp16), and a pinned system region the GPU computes for (gpu_direct) takes
 * the output directly. */
static int place_output(decoder *d, chill_output_spec *s, const char *name, json_t *outputs, const tensor *q,
                        int has_lens) {
    if (!s->computed)
        return 200;
    if (s->view == -2) {
        int st = output_region(d, name, s, outputs);
        if (st != 200)
            return st;
        chill_region_view *v = &d->inf->views[s->view];
        if (v->on_device || (!has_lens && gpu_direct(v, q))) {
            s->data = v->ptr;
            s->direct = !v->on_device;
            return 200;
        }
    }
    if ((s->data = own(d->inf, s->bytes)) == NULL)
        return fail(d, 503, "output %s: out of memory for %zu bytes", name, s->bytes);
    if (s == &d->inf->lse)
        for (size_t i = 0; i < s->bytes / sizeof(float); i++)
            ((float *)s->data)[i] = -INFINITY;
    else if (has_lens)
        memset(s->data, 0, s->bytes);
    return 200;
}

/* Notes one tensor's place: whether it is on a device, and which. */
static void note_place(int on, int dev, int needed, int *any, int *all, int *device, int *same) {
    *any |= on;
    *all &= !needed || on;
    if (on && *device >= 0 && *device != dev)
        *same = 0;
    if (on)
        *device = dev;
}

/* Tensors in CUDA shared memory: all of q, k, v, out (and lse) on one device. */
static int check_device(decoder *d, const tensor *in) {
    chill_infer *inf = d->inf;
    int any = 0, all = 1, dev = -1, same = 1;
    for (int i = IN_Q; i <= IN_V; i++)
        note_place(in[i].on_device, in[i].device, 1, &any, &all, &dev, &same);
    const chill_output_spec *outs[2] = {&inf->out, &inf->lse};
    for (int i = 0; i < 2; i++) {
        const chill_region_view *v = outs[i]->view >= 0 ? &inf->views[outs[i]->view] : NULL;
        note_place(v != NULL && v->on_device, v != NULL ? v->device : -1, outs[i]->computed, &any, &all, &dev,
                   &same);
    }
    if (any && (!all || !same))
        return fail(d, 400, "inputs and outputs in CUDA shared memory: q, k, v, out (and lse when computed) must "
                    "all be in CUDA shared-memory regions of one device, or none of them");
    inf->req.device = any ? dev : -1;
    return 200;
}

static int build_request(decoder *d, tensor *in, const request_params *rp, json_t *outputs) {
    chill_infer *inf = d->inf;
    chill_params *p = &inf->req.params;
    dims q = dims_of(&in[IN_Q], rp->bthd), k = dims_of(&in[IN_K], rp->bthd);
    chill_params_init(p);
    chill_dtype_parse(in[IN_Q].datatype, &p->dtype);
    p->batch = q.b;
    p->heads_q = q.h;
    p->heads_kv = k.h;
    p->seq_q = q.t;
    p->seq_k = k.t;
    p->head_dim = q.d;
    p->q.data = in[IN_Q].data;
    p->k.data = in[IN_K].data;
    p->v.data = in[IN_V].data;
    set_strides(&p->q, rp->bthd, q);
    set_strides(&p->k, rp->bthd, k);
    set_strides(&p->v, rp->bthd, k);
    set_strides(&p->out, rp->bthd, q);
    p->seq_lens_q = in[IN_SEQ_LENS].present ? in[IN_SEQ_LENS].data : NULL;
    p->seq_lens_k = in[IN_KV_SEQ_LENS].present ? in[IN_KV_SEQ_LENS].data : NULL;
    p->q_offset = rp->q_offset;
    p->mask = rp->mask;
    p->sm_scale = rp->sm_scale;
    p->allow_tf32 = rp->allow_tf32;
    memcpy(inf->out.shape, in[IN_Q].shape, sizeof inf->out.shape);
    inf->out.rank = 4;
    inf->out.bytes = (size_t)in[IN_Q].elements * in[IN_Q].esize;
    inf->lse.shape[0] = q.b;
    inf->lse.shape[1] = q.h;
    inf->lse.shape[2] = q.t;
    inf->lse.rank = 3;
    inf->lse.bytes = sizeof(float) * (size_t)(q.b * q.h * q.t);
    int has_lens = in[IN_SEQ_LENS].present || in[IN_KV_SEQ_LENS].present;
    int st = place_output(d, &inf->out, "out", outputs, &in[IN_Q], has_lens);
    if (st == 200)
        st = place_output(d, &inf->lse, "lse", outputs, &in[IN_Q], has_lens);
    if (st == 200)
        st = check_device(d, in);
    if (st != 200)
        return st;
    p->out.data = inf->out.data;
    p->lse.data = inf->lse.computed ? inf->lse.data : NULL;
    inf->req.model = inf->model->name;
    inf->req.deadline_ns = rp->timeout_us > 0 ? chill_now_ns() + (uint64_t)rp->timeout_us * 1000 : 0;
    return 200;
}

int chill_infer_decode(chill_infer *inf, const chill_config *c, chill_model *m, const char *body, size_t len,
                       int64_t header_len, char *err, size_t errlen) {
    static const char *keys[] = {"id", "parameters", "inputs", "outputs"};
    memset(inf, 0, sizeof *inf);
    inf->model = m;
    inf->out.view = inf->lse.view = -1;
    decoder d = {inf, c, NULL, 0, 0, err, errlen};
    size_t hl = header_len >= 0 ? (size_t)header_len : len;
    if (header_len >= 0 && (uint64_t)header_len > len)
        return fail(&d, 400, "Inference-Header-Content-Length is %lld, but the body has only %zu bytes",
                    (long long)header_len, len);
    d.bin = body + hl;
    d.bin_len = len - hl;
    json_error_t je;
    inf->header = chill_jsonhead_parse(body, hl, &je);
    if (inf->header == NULL)
        return fail(&d, 400, "request JSON, at byte %d (line %d, column %d): %s", je.position, je.line, je.column,
                    je.text);
    if (!json_is_object(inf->header))
        return fail(&d, 400, "request JSON: expected an object with inputs");
    int st = check_keys(&d, inf->header, "request", keys, 4);
    json_t *id = json_object_get(inf->header, "id");
    if (st == 200 && id != NULL && !json_is_string(id))
        st = fail(&d, 400, "id: expected a string");
    request_params rp;
    if (st == 200)
        st = decode_params(&d, json_object_get(inf->header, "parameters"), &rp);
    json_t *outputs = json_object_get(inf->header, "outputs");
    if (st == 200)
        st = decode_outputs(&d, outputs, &rp);
    json_t *inputs = json_object_get(inf->header, "inputs");
    if (st == 200 && !json_is_array(inputs))
        st = fail(&d, 400, "inputs: expected an array of q, k, v (and optional seq_lens, kv_seq_lens)");
    tensor in[N_INPUTS] = {0};
    for (size_t i = 0; st == 200 && i < json_array_size(inputs); i++)
        st = decode_input(&d, json_array_get(inputs, i), i, in);
    if (st == 200 && d.bin_used != d.bin_len)
        st = fail(&d, 400, "the body has %zu bytes after the last binary input; binary_data_size of the inputs "
                  "must add up to the body after the JSON header", d.bin_len - d.bin_used);
    if (st == 200)
        st = check_shapes(&d, in, &rp);
    if (st == 200)
        st = build_request(&d, in, &rp, outputs);
    return st;
}

/* ---- response ------------------------------------------------------------------------ */

/* Output data as JSON numbers; each float as %.9g, which reads back to the
 * same float. Non-finite values (lse of an empty row) have no JSON number: null. */
static void write_values(FILE *f, const chill_output_spec *s, chill_dtype dt, int is_lse) {
    size_t n = s->bytes / (is_lse ? sizeof(float) : chill_dtype_size(dt));
    fputs(",\"data\":[", f);
    for (size_t i = 0; i < n; i++) {
        float v;
        if (is_lse || dt == CHILL_F32)
            v = ((const float *)s->data)[i];
        else if (dt == CHILL_F16)
            v = chill_half_to_float(((const uint16_t *)s->data)[i]);
        else
            v = chill_bf16_to_float(((const uint16_t *)s->data)[i]);
        if (isfinite(v))
            fprintf(f, "%s%.9g", i ? "," : "", v);
        else
            fprintf(f, "%snull", i ? "," : "");
    }
    fputs("]", f);
}

/* One output of the response, after sep: its description, and its bytes as
 * a binary segment, written to its system region, or as JSON data. An output
 * in a region is described by name, datatype and shape alone, as Triton does:
 * Triton's C++ client (perf_analyzer's) takes any "parameters" of an output
 * for a binary segment and fails without its binary_data_size. */
static int encode_output(chill_infer *inf, FILE *f, const char *sep, chill_output_spec *s, const char *name,
                         int is_lse, char *err, size_t errlen) {
    if (!s->returned)
        return 200;
    chill_dtype dt = inf->req.params.dtype;
    fprintf(f, "%s{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[", sep, name, is_lse ? "FP32" : chill_dtype_name(dt));
    for (int i = 0; i < s->rank; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)s->shape[i]);
    fputs("]", f);
    if (s->view >= 0) {
        chill_region_view *v = &inf->views[s->view];
        if (!s->direct && !v->on_device && chill_region_write(v, s->data, s->bytes, err, errlen) != 0)
            return 400;
        fputs("}", f);
        return 200;
    }
    if (s->binary) {
        fprintf(f, ",\"parameters\":{\"binary_data_size\":%zu}}", s->bytes);
        inf->seg[inf->n_seg] = s->data;
        inf->seg_len[inf->n_seg++] = s->bytes;
        inf->resp_len += s->bytes;
        inf->resp_binary = 1;
        return 200;
    }
    write_values(f, s, dt, is_lse);
    fputs("}", f);
    return 200;
}

/* The response's JSON header is written as text into a memory stream, not
 * built as a jansson tree and dumped: the tree took as long as the rest of a
 * small request's encoding. Its strings are fixed names, the model's name
 * (escaped by jansson once, in models.c) and the request's id (json_dumpf). */
int chill_infer_encode(chill_infer *inf, char *err, size_t errlen) {
    for (int i = 0; i < inf->n_views; i++)
        if (inf->views[i].direct && chill_region_unchanged(&inf->views[i], err, errlen) != 0)
            return 400;
    char *json = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&json, &len);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory encoding the response");
        return 503;
    }
    fprintf(f, "{\"model_name\":%s,\"model_version\":\"1\"", inf->model->name_json);
    int bad = 0;
    json_t *id = json_object_get(inf->header, "id");
    if (id != NULL) {
        fputs(",\"id\":", f);
        bad = json_dumpf(id, f, JSON_ENCODE_ANY) != 0;
    }
    fputs(",\"outputs\":[", f);
    inf->n_seg = 1;
    inf->resp_len = 0;
    int st = encode_output(inf, f, "", &inf->out, "out", 0, err, errlen);
    if (st == 200)
        st = encode_output(inf, f, inf->out.returned ? "," : "", &inf->lse, "lse", 1, err, errlen);
    fputs("]}", f);
    bad |= ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (st == 200 && bad) {
        snprintf(err, errlen, "out of memory encoding the response");
        st = 503;
    }
    if (st != 200) {
        free(json);
        return st;
    }
    inf->resp_json = json;
    inf->resp_json_len = len;
    inf->seg[0] = inf->resp_json;
    inf->seg_len[0] = inf->resp_json_len;
    inf->resp_len += inf->resp_json_len;
    return 200;
}

void chill_infer_free(chill_infer *inf) {
    for (int i = 0; i < inf->n_views; i++)
        chill_region_release(&inf->views[i]);
    for (int i = 0; i < inf->n_owned; i++)
        chill_hostmem_free(inf->owned[i]);
    json_decref(inf->header);
    free(inf->resp_json);
    inf->n_views = inf->n_owned = 0;
    inf->header = NULL;
    inf->resp_json = NULL;
}

char *chill_error_json(const char *msg) {
    json_t *j = json_pack("{s:s}", "error", msg);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}
