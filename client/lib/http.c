/* libchillclient over HTTP: the Open Inference Protocol with the binary
 * tensor extension. A request body is the JSON header followed by q, k and v
 * as raw bytes (Inference-Header-Content-Length gives the split), streamed
 * from the caller's buffers without a copy; the answer is the same shape, with
 * out (and lse) after its JSON header. The JSON header also serves the SHM
 * transport, whose tensors name a registered region instead. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"

typedef struct chill_cli_segment {
    const char *ptr;
    size_t len;
} chill_cli_segment;

typedef struct chill_cli_upload {
    const chill_cli_segment *seg;
    int n, i;
    size_t at;
} chill_cli_upload;

typedef struct chill_cli_answer {
    char *body;
    size_t len, cap;
    long header_len;             /* Inference-Header-Content-Length, -1 when absent */
} chill_cli_answer;

static pthread_once_t chill_cli_curl_once = PTHREAD_ONCE_INIT;

static void chill_cli_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

chill_client_status chill_cli_http_open(chill_client *c, chill_client_error *err) {
    pthread_once(&chill_cli_curl_once, chill_cli_curl_init);
    c->curl = curl_easy_init();
    if (!c->curl)
        return chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "curl_easy_init failed");
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    /* libcurl's largest upload buffer (its default is 64 KiB): a binary body
     * up to 2 MiB leaves in one read callback and one send, and chilld reads
     * it in 128 KiB pieces (listen.connection_memory_bytes). Allocated once per
     * handle, on the first binary request. */
    curl_easy_setopt(c->curl, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
    return CHILL_CLIENT_OK;
}

static size_t chill_cli_read(char *dst, size_t size, size_t nmemb, void *arg) {
    chill_cli_upload *u = arg;
    size_t room = size * nmemb, done = 0;
    while (room > 0 && u->i < u->n) {
        const chill_cli_segment *s = &u->seg[u->i];
        size_t take = s->len - u->at < room ? s->len - u->at : room;
        memcpy(dst + done, s->ptr + u->at, take);
        done += take;
        room -= take;
        u->at += take;
        if (u->at == s->len) {
            u->i++;
            u->at = 0;
        }
    }
    return done;
}

static size_t chill_cli_write(char *src, size_t size, size_t nmemb, void *arg) {
    chill_cli_answer *a = arg;
    size_t n = size * nmemb;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *b = realloc(a->body, cap);
        if (!b)
            return 0;
        a->body = b;
        a->cap = cap;
    }
    memcpy(a->body + a->len, src, n);
    a->len += n;
    a->body[a->len] = '\0';
    return n;
}

static size_t chill_cli_header(char *line, size_t size, size_t nmemb, void *arg) {
    chill_cli_answer *a = arg;
    static const char name[] = "Inference-Header-Content-Length:";
    size_t n = size * nmemb;
    if (n > sizeof name && strncasecmp(line, name, sizeof name - 1) == 0)
        a->header_len = strtol(line + sizeof name - 1, NULL, 10);
    return n;
}

chill_client_status chill_cli_http_error(long status, const char *body, size_t len, chill_client_error *err) {
    chill_client_status s = status == 503   ? CHILL_CLIENT_ERR_OVERLOADED
                            : status == 504 ? CHILL_CLIENT_ERR_TIMEOUT
                                            : CHILL_CLIENT_ERR_REJECTED;
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
    if (msg)
        chill_client_fail(err, s, (int)status, "server answered %ld: %s", status, msg);
    else
        chill_client_fail(err, s, (int)status, "server answered %ld: %.200s", status, body ? body : "");
    json_decref(j);
    return s;
}

/* One exchange: method on path with the body in segments. */
static chill_client_status chill_cli_perform(chill_client *c, const char *method, const char *path,
                                             const chill_cli_segment *seg, int nseg, long header_len,
                                             chill_cli_answer *a, long *status, chill_client_error *err) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    chill_cli_upload up = {seg, nseg, 0, 0};
    curl_off_t total = 0;
    for (int i = 0; i < nseg; i++)
        total += (curl_off_t)seg[i].len;
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    char line[96];
    if (header_len >= 0) {
        snprintf(line, sizeof line, "Inference-Header-Content-Length: %ld", header_len);
        hdr = curl_slist_append(hdr, line);
        hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    } else {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    }
    memset(a, 0, sizeof *a);
    a->header_len = -1;
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, chill_cli_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, chill_cli_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        /* A body in one piece (JSON) goes as POSTFIELDS: libcurl writes a small
         * one together with the headers, so the server gets the whole request
         * at once. Several pieces (binary tensors) are read by the callback. */
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, nseg == 1 ? seg[0].ptr : NULL);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, chill_cli_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &up);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, total);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        free(a->body);
        a->body = NULL;
        chill_client_status s = rc == CURLE_OPERATION_TIMEDOUT ? CHILL_CLIENT_ERR_TIMEOUT : CHILL_CLIENT_ERR_CONNECT;
        return chill_client_fail(err, s, 0, "%s %s: %s", method, url, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return CHILL_CLIENT_OK;
}

chill_client_status chill_cli_http_call(chill_client *c, const char *method, const char *path, const char *body,
                                        size_t body_len, char **response, size_t *response_len,
                                        chill_client_error *err) {
    chill_cli_segment seg = {body, body_len};
    chill_cli_answer a;
    long status = 0;
    chill_client_status s = chill_cli_perform(c, method, path, &seg, body ? 1 : 0, -1, &a, &status, err);
    if (s != CHILL_CLIENT_OK)
        return s;
    if (status < 200 || status > 299) {
        s = chill_cli_http_error(status, a.body, a.len, err);
        free(a.body);
        return s;
    }
    if (!a.body)
        a.body = calloc(1, 1);
    *response = a.body;
    *response_len = a.len;
    return CHILL_CLIENT_OK;
}

/* The infer JSON header is written as text into a memory stream: every
 * string in it is a fixed name, a datatype, a mask argument's name or the
 * client's own region name, none of which needs escaping, and building a
 * jansson tree to dump it cost more than the rest of a shared-memory
 * request's client side. */

/* One tensor, after sep: its name, its shape and datatype (inputs; rank 0
 * for outputs), and where its bytes are: in region at offset, else in the
 * binary body (binary_data_size for an input; an output asks for binary_data). */
static void chill_cli_tensor(FILE *f, const char *sep, const char *name, const int64_t *shape, int rank,
                             const char *dtype, size_t bytes, const char *region, uint64_t offset, int output) {
    fprintf(f, "%s{\"name\":\"%s\"", sep, name);
    for (int i = 0; i < rank; i++)
        fprintf(f, "%s%lld", i ? "," : ",\"shape\":[", (long long)shape[i]);
    if (rank > 0)
        fprintf(f, "],\"datatype\":\"%s\"", dtype);
    if (region)
        fprintf(f, ",\"parameters\":{\"shared_memory_region\":\"%s\",\"shared_memory_offset\":%llu,"
                   "\"shared_memory_byte_size\":%zu}}", region, (unsigned long long)offset, bytes);
    else if (output)
        fprintf(f, ",\"parameters\":{\"binary_data\":true}}");
    else
        fprintf(f, ",\"parameters\":{\"binary_data_size\":%zu}}", bytes);
}

/* The request parameters: the mask's arguments when the request names a mask,
 * sm_scale (%.9g reads back as the same float), q_offset, return_lse. */
static void chill_cli_parameters(FILE *f, const chill_client_request *r, const chill_mask *m, int has_mask) {
    const char *sep = "";
    fprintf(f, ",\"parameters\":{");
    for (int i = 0; has_mask && i < chill_mask_nargs(m->type); i++, sep = ",")
        fprintf(f, "%s\"%s\":%lld", sep, chill_mask_arg_name(m->type, i), (long long)m->arg[i]);
    if (r->sm_scale != 0) {
        fprintf(f, "%s\"sm_scale\":%.9g", sep, r->sm_scale);
        sep = ",";
    }
    if (r->q_offset != CHILL_Q_OFFSET_AUTO) {
        fprintf(f, "%s\"q_offset\":%lld", sep, (long long)r->q_offset);
        sep = ",";
    }
    if (r->lse)
        fprintf(f, "%s\"return_lse\":true", sep);
    fputs("}", f);
}

char *chill_cli_http_infer_header(const chill_client_request *r, const chill_client_sizes *sz,
                                  const char *shm_region, const chill_client_layout *lay, char *model,
                                  size_t model_len, chill_client_error *err) {
    chill_mask m;
    int has_mask;
    if (chill_client_request_model(r, model, model_len, &m, &has_mask, err) != CHILL_CLIENT_OK)
        return NULL;
    const char *dt = chill_dtype_name(r->dtype);
    int64_t qs[4] = {r->batch, r->heads_q, r->seq_q, r->head_dim};
    int64_t ks[4] = {r->batch, r->heads_kv, r->seq_k, r->head_dim};
    char *header = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&header, &len);
    if (!f) {
        chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "out of memory encoding the request");
        return NULL;
    }
    fputs("{\"inputs\":[", f);
    chill_cli_tensor(f, "", "q", qs, 4, dt, sz->q, shm_region, lay ? lay->q : 0, 0);
    chill_cli_tensor(f, ",", "k", ks, 4, dt, sz->k, shm_region, lay ? lay->k : 0, 0);
    chill_cli_tensor(f, ",", "v", ks, 4, dt, sz->v, shm_region, lay ? lay->v : 0, 0);
    fputs("],\"outputs\":[", f);
    chill_cli_tensor(f, "", "out", NULL, 0, NULL, sz->out, shm_region, lay ? lay->out : 0, 1);
    if (r->lse)
        chill_cli_tensor(f, ",", "lse", NULL, 0, NULL, sz->lse, shm_region, lay ? lay->lse : 0, 1);
    fputs("]", f);
    chill_cli_parameters(f, r, &m, has_mask);
    fputs("}", f);
    int bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        free(header);
        chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "out of memory encoding the request");
        return NULL;
    }
    return header;
}

/* Copies the binary outputs of an infer answer into out and lse. */
static chill_client_status chill_cli_outputs(const chill_client_request *r, const chill_client_sizes *sz,
                                             const chill_cli_answer *a, chill_client_error *err) {
    if (a->header_len < 0 || (size_t)a->header_len > a->len)
        return chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 200,
                                 "the answer has no valid Inference-Header-Content-Length (%ld for %zu bytes)",
                                 a->header_len, a->len);
    json_error_t je;
    json_t *root = json_loadb(a->body, (size_t)a->header_len, 0, &je);
    json_t *outs = json_object_get(root, "outputs");
    if (!json_is_array(outs)) {
        json_decref(root);
        return chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 200, "the answer's JSON header has no outputs array: %s",
                                 root ? "missing" : je.text);
    }
    size_t at = (size_t)a->header_len, i;
    json_t *t;
    int got = 0;
    chill_client_status s = CHILL_CLIENT_OK;
    json_array_foreach(outs, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        json_int_t n = json_integer_value(json_object_get(json_object_get(t, "parameters"), "binary_data_size"));
        int is_out = name && strcmp(name, "out") == 0, is_lse = name && strcmp(name, "lse") == 0;
        size_t want = is_out ? sz->out : is_lse ? sz->lse : 0;
        if (n < 0 || (size_t)n > a->len - at) {
            s = chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 200,
                                  "output %s claims %lld binary bytes; the answer has %zu left", name ? name : "?",
                                  (long long)n, a->len - at);
            break;
        }
        if ((is_out || (is_lse && r->lse)) && (size_t)n != want) {
            s = chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 200, "output %s has %lld bytes; expected %zu",
                                  name, (long long)n, want);
            break;
        }
        if (is_out || (is_lse && r->lse)) {
            memcpy(is_out ? r->out : (void *)r->lse, a->body + at, want);
            got |= is_out ? 1 : 2;
        }
        at += (size_t)n;
    }
    json_decref(root);
    if (s == CHILL_CLIENT_OK && (!(got & 1) || (r->lse && !(got & 2))))
        s = chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 200, "the answer lacks the binary %s output",
                              (got & 1) ? "lse" : "out");
    return s;
}

chill_client_status chill_cli_http_infer(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                         chill_client_error *err) {
    char model[128];
    char *header = chill_cli_http_infer_header(r, sz, NULL, NULL, model, sizeof model, err);
    if (!header)
        return err ? err->status : CHILL_CLIENT_ERR_INVALID;
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    chill_cli_segment seg[4] = {{header, strlen(header)}, {r->q, sz->q}, {r->k, sz->k}, {r->v, sz->v}};
    chill_cli_answer a;
    long status = 0;
    chill_client_status s = chill_cli_perform(c, "POST", path, seg, 4, (long)seg[0].len, &a, &status, err);
    free(header);
    if (s != CHILL_CLIENT_OK)
        return s;
    if (status != 200)
        s = chill_cli_http_error(status, a.body, a.len, err);
    else
        s = chill_cli_outputs(r, sz, &a, err);
    free(a.body);
    return s;
}
