/* The infer protocol (server/protocol.c): a valid binary request decodes into
 * the chill_request it describes (shapes, strides for BTHD, mask and
 * parameters, tensors used in place, outputs that start as rows past seq_lens
 * are answered: lse -inf, and out zeros when seq_lens are given), JSON tensors
 * convert exactly, the response encodes as JSON or as a header plus binary
 * segments, and a table of malformed requests each gets its 4xx with a
 * message naming the field. Half-precision conversions round to nearest even.
 * Under make asan, malloc fills new memory with garbage, so the zeros are
 * checked for real there. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static chill_config cfg;

static void setup(void) {
    char err[256];
    chill_config_defaults(&cfg);
    cfg.max_elements = 4096;
    cfg.max_tokens = 400;
    cfg.n_presets = 2;
    snprintf(cfg.presets[0].name, sizeof cfg.presets[0].name, "sw-4");
    snprintf(cfg.presets[0].spec, sizeof cfg.presets[0].spec, "sliding_window(4,0)");
    snprintf(cfg.presets[1].name, sizeof cfg.presets[1].name, "odd \"name\\");
    snprintf(cfg.presets[1].spec, sizeof cfg.presets[1].spec, "causal");
    ck_assert_msg(chill_models_init(&cfg, err, sizeof err) == 0, "%s", err);
}

static void teardown(void) { chill_models_free(); }

/* A binary request body: header, then q, k, v of [1,2,4,16] FP32 with
 * values from their index, 64-byte aligned like the HTTP layer lays it out. */
typedef struct body {
    char *alloc, *p;
    size_t len;
    int64_t header_len;
} body;

static void make_body(body *b, const char *params, const char *layout_shape) {
    char header[1024];
    size_t t = 2 * 4 * 16 * sizeof(float);
    int n = snprintf(header, sizeof header,
                     "{\"id\":\"r1\",\"parameters\":{%s},\"inputs\":["
                     "{\"name\":\"q\",\"shape\":%s,\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}},"
                     "{\"name\":\"k\",\"shape\":%s,\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}},"
                     "{\"name\":\"v\",\"shape\":%s,\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}}],"
                     "\"outputs\":[{\"name\":\"out\",\"parameters\":{\"binary_data\":true}},{\"name\":\"lse\"}]}",
                     params, layout_shape, t, layout_shape, t, layout_shape, t);
    size_t pad = (64 - (size_t)n % 64) % 64;
    ck_assert_int_eq(posix_memalign((void **)&b->alloc, 64, 64 + (size_t)n + 3 * t), 0);
    b->p = b->alloc + pad;
    memcpy(b->p, header, (size_t)n);
    float *x = (float *)(b->p + n);
    for (size_t i = 0; i < 3 * t / sizeof(float); i++)
        x[i] = (float)(i % 97) / 97.0f;
    b->len = (size_t)n + 3 * t;
    b->header_len = n;
}

START_TEST(binary_request_decodes_in_place) {
    body b;
    make_body(&b, "\"left_context\":3,\"right_context\":1,\"sm_scale\":0.5,\"timeout\":1000,\"return_lse\":true",
              "[1,2,4,16]");
    chill_infer inf;
    char err[512];
    int st = chill_infer_decode(&inf, &cfg, chill_model_find("sliding_window"), b.p, b.len, b.header_len, err,
                                sizeof err);
    ck_assert_msg(st == 200, "%d %s", st, err);
    const chill_params *p = &inf.req.params;
    ck_assert_int_eq(p->dtype, CHILL_F32);
    ck_assert_int_eq(p->batch, 1);
    ck_assert_int_eq(p->heads_q, 2);
    ck_assert_int_eq(p->heads_kv, 2);
    ck_assert_int_eq(p->seq_q, 4);
    ck_assert_int_eq(p->seq_k, 4);
    ck_assert_int_eq(p->head_dim, 16);
    ck_assert_int_eq(p->mask.type, CHILL_MASK_sliding_window);
    ck_assert_int_eq(p->mask.arg[0], 3);
    ck_assert_int_eq(p->mask.arg[1], 1);
    ck_assert(p->sm_scale == 0.5f);
    ck_assert(p->q_offset == CHILL_Q_OFFSET_AUTO);
    ck_assert_ptr_eq(p->q.data, b.p + b.header_len); /* used in place, no copy */
    ck_assert_ptr_nonnull(p->lse.data);
    ck_assert_uint_gt(inf.req.deadline_ns, chill_now_ns());
    ck_assert_int_eq(inf.req.device, -1);
    for (int i = 0; i < 2 * 4; i++) /* lse starts as what a row with no key answers */
        ck_assert(((const float *)inf.lse.data)[i] == -INFINITY);

    /* the response: JSON header with both outputs, out as a binary segment */
    ((float *)inf.out.data)[0] = 1.5f;
    ((float *)inf.lse.data)[0] = -INFINITY;
    inf.req.status = CHILL_OK;
    ck_assert_int_eq(chill_infer_encode(&inf, err, sizeof err), 200);
    ck_assert(inf.resp_binary);
    ck_assert_int_eq(inf.n_seg, 2);
    ck_assert_uint_eq(inf.seg_len[1], 2 * 4 * 16 * sizeof(float));
    ck_assert_ptr_eq(inf.seg[1], inf.out.data);
    ck_assert_uint_eq(inf.resp_len, inf.resp_json_len + inf.seg_len[1]);
    json_t *r = json_loadb(inf.resp_json, inf.resp_json_len, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "r1");
    ck_assert_str_eq(json_string_value(json_object_get(r, "model_name")), "sliding_window");
    json_t *out = json_array_get(json_object_get(r, "outputs"), 0), *lse = json_array_get(json_object_get(r, "outputs"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(out, "name")), "out");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(out, "parameters"), "binary_data_size")),
                     2 * 4 * 16 * 4);
    ck_assert_str_eq(json_string_value(json_object_get(lse, "datatype")), "FP32");
    ck_assert_int_eq(json_array_size(json_object_get(lse, "data")), 8);
    ck_assert(json_is_null(json_array_get(json_object_get(lse, "data"), 0))); /* -inf has no JSON number */
    json_decref(r);
    chill_infer_free(&inf);
    free(b.alloc);
}
END_TEST

START_TEST(bthd_layout_sets_strides) {
    body b;
    make_body(&b, "\"layout\":\"BTHD\",\"q_offset\":2", "[1,4,2,16]");
    chill_infer inf;
    char err[512];
    int st = chill_infer_decode(&inf, &cfg, chill_model_find("causal"), b.p, b.len, b.header_len, err, sizeof err);
    ck_assert_msg(st == 200, "%d %s", st, err);
    const chill_params *p = &inf.req.params;
    ck_assert_int_eq(p->heads_q, 2);
    ck_assert_int_eq(p->seq_q, 4);
    ck_assert_int_eq(p->q.stride[0], 4 * 2 * 16);
    ck_assert_int_eq(p->q.stride[1], 16);
    ck_assert_int_eq(p->q.stride[2], 2 * 16);
    ck_assert_int_eq(p->out.stride[2], 2 * 16);
    ck_assert_int_eq(p->q_offset, 2);
    chill_infer_free(&inf);
    free(b.alloc);
}
END_TEST

START_TEST(json_tensors_convert) {
    static const char *req =
        "{\"inputs\":["
        "{\"name\":\"q\",\"shape\":[1,1,1,16],\"datatype\":\"FP16\",\"data\":[[[[1,2,3,4,5,6,7,8,0.5,-1,65504,0,0,0,0,1e-7]]]]},"
        "{\"name\":\"k\",\"shape\":[1,1,2,16],\"datatype\":\"FP16\",\"data\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
        "2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]},"
        "{\"name\":\"v\",\"shape\":[1,1,2,16],\"datatype\":\"FP16\",\"data\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
        "2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]},"
        "{\"name\":\"kv_seq_lens\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[1]}]}";
    chill_infer inf;
    char err[512];
    int st = chill_infer_decode(&inf, &cfg, chill_model_find("sw-4"), req, strlen(req), -1, err, sizeof err);
    ck_assert_msg(st == 200, "%d %s", st, err);
    const uint16_t *q = inf.req.params.q.data;
    ck_assert(chill_half_to_float(q[8]) == 0.5f);
    ck_assert(chill_half_to_float(q[9]) == -1.0f);
    ck_assert(chill_half_to_float(q[10]) == 65504.0f);
    ck_assert_int_eq(inf.req.params.mask.type, CHILL_MASK_sliding_window);
    ck_assert_int_eq(inf.req.params.mask.arg[0], 4);
    ck_assert_int_eq(inf.req.params.seq_lens_k[0], 1);
    ck_assert_ptr_null(inf.req.params.seq_lens_q);
    ck_assert_ptr_null(inf.req.params.lse.data);
    ck_assert(inf.out.returned && !inf.out.binary && !inf.lse.returned);
    for (int i = 0; i < 16; i++) /* with seq_lens, out starts as rows past them answer: the kernel leaves them */
        ck_assert_uint_eq(((const uint16_t *)inf.out.data)[i], 0);
    chill_infer_free(&inf);
}
END_TEST

/* The response header is written as text: names and the id must come back
 * escaped, and JSON data must read back as the very floats computed. */
START_TEST(json_response_escapes_and_round_trips) {
    static const char *req =
        "{\"id\":\"a \\\"quoted\\\" \\\\ id\\n\\u00e9\",\"inputs\":["
        "{\"name\":\"q\",\"shape\":[1,1,1,16],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},"
        "{\"name\":\"k\",\"shape\":[1,1,1,16],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},"
        "{\"name\":\"v\",\"shape\":[1,1,1,16],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}],"
        "\"outputs\":[{\"name\":\"out\"},{\"name\":\"lse\"}]}";
    static const float values[16] = {0.1f, -3.4028235e38f, 1e-45f, 12345.678f, 1.0f / 3, -0.0f, 7e-39f, 1e30f};
    chill_infer inf;
    char err[512];
    int st = chill_infer_decode(&inf, &cfg, chill_model_find("odd \"name\\"), req, strlen(req), -1, err, sizeof err);
    ck_assert_msg(st == 200, "%d %s", st, err);
    memcpy(inf.out.data, values, sizeof values);
    ((float *)inf.lse.data)[0] = -INFINITY;
    inf.req.status = CHILL_OK;
    ck_assert_int_eq(chill_infer_encode(&inf, err, sizeof err), 200);
    ck_assert(!inf.resp_binary);
    ck_assert_int_eq(inf.n_seg, 1);
    json_error_t je;
    json_t *r = json_loadb(inf.resp_json, inf.resp_json_len, JSON_REJECT_DUPLICATES, &je);
    ck_assert_msg(r != NULL, "%s in %.*s", je.text, (int)inf.resp_json_len, inf.resp_json);
    ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "a \"quoted\" \\ id\n\xc3\xa9");
    ck_assert_str_eq(json_string_value(json_object_get(r, "model_name")), "odd \"name\\");
    json_t *outs = json_object_get(r, "outputs");
    ck_assert_int_eq(json_array_size(outs), 2);
    json_t *out = json_array_get(outs, 0), *lse = json_array_get(outs, 1);
    ck_assert_str_eq(json_string_value(json_object_get(out, "datatype")), "FP32");
    ck_assert_int_eq(json_array_size(json_object_get(out, "shape")), 4);
    json_t *data = json_object_get(out, "data");
    ck_assert_int_eq(json_array_size(data), 16);
    for (int i = 0; i < 16; i++)
        ck_assert_msg((float)json_number_value(json_array_get(data, (size_t)i)) == values[i], "value %d", i);
    ck_assert_str_eq(json_string_value(json_object_get(lse, "name")), "lse");
    ck_assert(json_is_null(json_array_get(json_object_get(lse, "data"), 0)));
    json_decref(r);
    chill_infer_free(&inf);
}
END_TEST

/* Malformed requests: model, header JSON, Inference-Header-Content-Length
 * (-1: JSON only; 0: the whole JSON is the header and nothing follows),
 * expected status, and words the message must hold. */
static const struct {
    const char *model, *json;
    int64_t header_len;
    int status;
    const char *words;
} bad[] = {
    {"causal", "", -1, 400, "request JSON"},
    {"causal", "{\"inputs\": [", -1, 400, "request JSON"},
    {"causal", "[]", -1, 400, "expected an object"},
    {"causal", "{\"inputs\": 3}", -1, 400, "inputs: expected an array"},
    {"causal", "{\"inputz\": []}", -1, 400, "unknown key \"inputz\""},
    {"causal", "{\"id\": 5, \"inputs\": []}", -1, 400, "id: expected a string"},
    {"causal", "{\"inputs\": []}", -1, 400, "input q: missing"},
    {"causal", "{\"inputs\": [{\"name\": \"w\", \"shape\": [1], \"datatype\": \"FP32\", \"data\": [1]}]}", -1, 400,
     "\"w\" is not an input"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": 4, \"datatype\": \"FP32\", \"data\": [1]}]}", -1, 400,
     "input q: shape must be an array of 4"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,0], \"datatype\": \"FP32\", \"data\": []}]}", -1,
     400, "input q: shape[3]"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,16], \"datatype\": \"INT8\", \"data\": [1]}]}", -1,
     400, "datatype \"INT8\" is not accepted; accepted: FP32, FP16, BF16"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,16], \"datatype\": \"FP32\", \"data\": [1]}]}", -1,
     400, "input q: data has 1 elements, its shape has 16"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\", \"data\": [1,\"x\"]}]}",
     -1, 400, "input q: data[1] is not a number"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\", \"data\": [1,2,3]}]}",
     -1, 400, "input q: data has more than the 2 elements"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\"}]}", -1, 400,
     "input q: give its bytes exactly one way"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\", \"data\": [1,2],"
               " \"parameters\": {\"binary_data_size\": 8}}]}", -1, 400, "input q: give its bytes exactly one way"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\","
               " \"parameters\": {\"binary_data_size\": 4}}]}", 0, 400, "input q: binary_data_size must be 8"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\","
               " \"parameters\": {\"binary_data_size\": 8}}]}", 0, 400, "only 0 bytes of the body are left"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\","
               " \"parameters\": {\"zip\": 8}}]}", -1, 400, "q: unknown key \"zip\""},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [64,64,64,64], \"datatype\": \"FP32\", \"data\": []}]}", -1,
     413, "limits.max_elements"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [2147483647,2147483647,2147483647,2147483647],"
               " \"datatype\": \"FP32\", \"data\": []}]}", -1, 413, "limits.max_elements"},
    {"causal", "{\"outputs\": [{\"name\": \"attn\"}], \"inputs\": []}", -1, 400, "\"attn\" is not an output"},
    {"causal", "{\"outputs\": [{\"name\": \"out\"}, {\"name\": \"out\"}], \"inputs\": []}", -1, 400,
     "output out: requested twice"},
    {"causal", "{\"outputs\": [{\"name\": \"out\", \"parameters\": {\"binary_data\": 1}}], \"inputs\": []}", -1, 400,
     "binary_data must be true or false"},
    {"causal", "{\"parameters\": {\"left_contxt\": 1}, \"inputs\": []}", -1, 400,
     "parameter left_contxt: unknown; accepted:"},
    {"causal", "{\"parameters\": {\"sm_scale\": -1}, \"inputs\": []}", -1, 400, "parameter sm_scale"},
    {"causal", "{\"parameters\": {\"q_offset\": 1.5}, \"inputs\": []}", -1, 400, "parameter q_offset"},
    {"causal", "{\"parameters\": {\"layout\": \"HBTD\"}, \"inputs\": []}", -1, 400, "parameter layout"},
    {"causal", "{\"parameters\": {\"timeout\": -1}, \"inputs\": []}", -1, 400, "parameter timeout"},
    {"causal", "{\"parameters\": {\"return_lse\": 1}, \"inputs\": []}", -1, 400, "parameter return_lse"},
    {"causal", "{\"parameters\": {\"mask\": \"sliding_window(1,1)\"}, \"inputs\": []}", -1, 400,
     "model causal serves causal only"},
    {"causal", "{\"parameters\": 3, \"inputs\": []}", -1, 400, "parameters: expected an object"},
    {"sliding_window", "{\"parameters\": {\"left_context\": 1}, \"inputs\": []}", -1, 400,
     "parameter right_context: missing"},
    {"sliding_window", "{\"parameters\": {\"left_context\": -1}, \"inputs\": []}", -1, 400,
     "parameter left_context: expected an integer in [0, 1073741824]"},
    {"sliding_window", "{\"parameters\": {\"left_context\": 1, \"right_context\": 1, \"mask\": \"sliding_window(1,1)\"},"
                       " \"inputs\": []}", -1, 400, "not both"},
    {"chunkwise", "{\"parameters\": {\"context_size\": 0, \"back_contexts\": 1}, \"inputs\": []}", -1, 400,
     "parameter context_size: expected an integer in [1,"},
    {"sw-4", "{\"parameters\": {\"left_context\": 1}, \"inputs\": []}", -1, 400, "is a preset with its mask fixed"},
    {"sw-4", "{\"parameters\": {\"mask\": \"causal\"}, \"inputs\": []}", -1, 400, "is a preset with its mask fixed"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\","
               " \"parameters\": {\"shared_memory_region\": \"nope\", \"shared_memory_byte_size\": 8}}]}", -1, 400,
     "input q:"},
    {"causal", "{\"inputs\": [{\"name\": \"q\", \"shape\": [1,1,1,2], \"datatype\": \"FP32\","
               " \"parameters\": {\"shared_memory_region\": \"r\", \"shared_memory_byte_size\": 4}}]}", -1, 400,
     "shared_memory_byte_size must be an integer of at least 8"},
};

START_TEST(malformed) {
    chill_infer inf;
    char err[1024] = "";
    const char *json = bad[_i].json;
    size_t hl = strlen(json), len = hl;
    char *body = malloc(hl + 1);
    memcpy(body, json, hl + 1);
    int64_t header_len = bad[_i].header_len;
    if (header_len == 0)
        header_len = (int64_t)hl;
    int st = chill_infer_decode(&inf, &cfg, chill_model_find(bad[_i].model), body, len, header_len, err, sizeof err);
    ck_assert_msg(st == bad[_i].status, "case %d: got %d (%s), expected %d", _i, st, err, bad[_i].status);
    ck_assert_msg(strstr(err, bad[_i].words) != NULL, "case %d: message \"%s\" lacks \"%s\"", _i, err, bad[_i].words);
    chill_infer_free(&inf);
    free(body);
}
END_TEST

/* q, k, v given with the binary extension at the right sizes, shapes that
 * do not fit together: q's shape, k's and v's, datatypes, status, words. */
static const struct {
    const char *q, *kv, *dt_k;
    int status;
    const char *words;
} shapes[] = {
    {"[1,2,4,16]", "[1,2,4,32]", "FP32", 400, "head dim must be q's"},
    {"[1,2,4,16]", "[2,2,4,16]", "FP32", 400, "batch and head dim must be q's"},
    {"[1,3,4,16]", "[1,2,4,16]", "FP32", 400, "heads must divide"},
    {"[1,2,4,8]", "[1,2,4,8]", "FP32", 400, "head_dim D=8"},
    {"[1,2,4,20]", "[1,2,4,20]", "FP32", 400, "head_dim D=20; accepted a multiple of 8 in [16, 256]"},
    {"[1,1,201,16]", "[1,1,201,16]", "FP32", 413, "limits.max_tokens"},
    {"[1,2,4,16]", "[1,2,4,16]", "FP16", 400, "datatype must be q's"},
};

static size_t elements(const char *shape) {
    long a, b, c, d;
    ck_assert_int_eq(sscanf(shape, "[%ld,%ld,%ld,%ld]", &a, &b, &c, &d), 4);
    return (size_t)(a * b * c * d);
}

START_TEST(shapes_that_do_not_fit) {
    size_t nq = elements(shapes[_i].q) * 4, nk = elements(shapes[_i].kv) * (strcmp(shapes[_i].dt_k, "FP32") ? 2 : 4);
    char header[1024];
    int n = snprintf(header, sizeof header,
                     "{\"inputs\":[{\"name\":\"q\",\"shape\":%s,\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}},"
                     "{\"name\":\"k\",\"shape\":%s,\"datatype\":\"%s\",\"parameters\":{\"binary_data_size\":%zu}},"
                     "{\"name\":\"v\",\"shape\":%s,\"datatype\":\"%s\",\"parameters\":{\"binary_data_size\":%zu}}]}",
                     shapes[_i].q, nq, shapes[_i].kv, shapes[_i].dt_k, nk, shapes[_i].kv, shapes[_i].dt_k, nk);
    size_t len = (size_t)n + nq + 2 * nk;
    char *body = calloc(1, len);
    memcpy(body, header, (size_t)n);
    chill_infer inf;
    char err[1024] = "";
    int st = chill_infer_decode(&inf, &cfg, chill_model_find("causal"), body, len, n, err, sizeof err);
    ck_assert_msg(st == shapes[_i].status, "case %d: got %d (%s)", _i, st, err);
    ck_assert_msg(strstr(err, shapes[_i].words) != NULL, "case %d: message \"%s\" lacks \"%s\"", _i, err,
                  shapes[_i].words);
    chill_infer_free(&inf);
    free(body);
}
END_TEST

START_TEST(header_length_past_body) {
    chill_infer inf;
    char err[256];
    const char *json = "{}";
    ck_assert_int_eq(chill_infer_decode(&inf, &cfg, chill_model_find("causal"), json, 2, 3, err, sizeof err), 400);
    ck_assert_ptr_nonnull(strstr(err, "Inference-Header-Content-Length"));
    chill_infer_free(&inf);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_protocol");
    TCase *tc = tcase_create("protocol");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, binary_request_decodes_in_place);
    tcase_add_test(tc, bthd_layout_sets_strides);
    tcase_add_test(tc, json_tensors_convert);
    tcase_add_test(tc, json_response_escapes_and_round_trips);
    tcase_add_loop_test(tc, malformed, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_loop_test(tc, shapes_that_do_not_fit, 0, (int)(sizeof shapes / sizeof shapes[0]));
    tcase_add_test(tc, header_length_past_body);
    suite_add_tcase(s, tc);
    return s;
}
