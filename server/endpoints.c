/* The routes of the Open Inference Protocol other than infer's mechanics:
 * health, server metadata, model metadata/ready/config/stats, the repository
 * index, /metrics, and the shared-memory routes handed to regions.c. Paths
 * under /v2/models/{m}/versions/1/ are the same as without the version. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "metrics.h"
#include "process.h"
#include "regions.h"

#define CHILL_VERSION "0.1.0"

static void reply(chill_reply *r, int status, char *body) {
    r->status = status;
    r->body = body;
    r->len = body != NULL ? strlen(body) : 0;
    r->content_type = "application/json";
    r->retry_after = -1;
}

void chill_reply_error(chill_reply *r, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s}", "error", msg);
    reply(r, status, json_dumps(j, JSON_COMPACT));
    json_decref(j);
}

static int is(const char *method, const char *want, chill_reply *r, const char *path) {
    if (strcmp(method, want) == 0)
        return 1;
    chill_reply_error(r, 405, "%s %s: method not allowed; use %s", method, path, want);
    return 0;
}

static char *server_metadata(const chill_route_ctx *ctx) {
    json_t *ext = json_pack("[s,s,s,s,s]", "binary_tensor_data", "parameters", "statistics", "model_repository",
                            "model_configuration");
    if (chill_regions_enabled(0))
        json_array_append_new(ext, json_string("system_shared_memory"));
    if (chill_regions_enabled(1) && strcmp(chill_scheduler_backend(ctx->s), "cuda") == 0)
        json_array_append_new(ext, json_string("cuda_shared_memory"));
    json_t *j = json_pack("{s:s,s:s,s:o}", "name", "chilld", "version", CHILL_VERSION, "extensions", ext);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static void health(const chill_route_ctx *ctx, const char *what, chill_reply *r) {
    if (strcmp(what, "live") == 0) {
        reply(r, 200, strdup("{\"live\":true}"));
        return;
    }
    int ready = chill_scheduler_ready(ctx->s) > 0;
    reply(r, ready ? 200 : 503, chill_scheduler_status_json(ctx->s));
}

/* /v2/models/{m}[/versions/1][/what] */
static chill_model *model_route(const chill_route_ctx *ctx, const char *method, const char *rest, chill_reply *r) {
    char name[128];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof name) {
        chill_reply_error(r, 404, "no model named in the path");
        return NULL;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    const char *what = slash ? slash + 1 : "";
    if (strncmp(what, "versions/", 9) == 0) {
        if (strncmp(what + 9, "1", 1) != 0 || (what[10] != '\0' && what[10] != '/')) {
            chill_reply_error(r, 404, "model %s: no such version; the only version is 1", name);
            return NULL;
        }
        what = what[10] == '/' ? what + 11 : "";
    }
    if (strcmp(name, "stats") == 0 && what[0] == '\0') {
        if (is(method, "GET", r, "/v2/models/stats"))
            reply(r, 200, chill_model_stats_json(NULL));
        return NULL;
    }
    chill_model *m = chill_model_find(name);
    if (m == NULL) {
        chill_reply_error(r, 404, "model %s: not found; GET /v2/repository/index lists the models (mask types and "
                          "presets)", name);
        return NULL;
    }
    if (strcmp(what, "infer") == 0) {
        if (is(method, "POST", r, "infer"))
            return m;
        return NULL;
    }
    if (!is(method, "GET", r, what))
        return NULL;
    if (what[0] == '\0')
        reply(r, 200, chill_model_metadata_json(m));
    else if (strcmp(what, "ready") == 0)
        reply(r, chill_scheduler_ready(ctx->s) > 0 ? 200 : 503, chill_scheduler_status_json(ctx->s));
    else if (strcmp(what, "config") == 0)
        reply(r, 200, chill_model_config_json(m));
    else if (strcmp(what, "stats") == 0)
        reply(r, 200, chill_model_stats_json(m));
    else
        chill_reply_error(r, 404, "model %s: no route \"%s\"; routes: ready, config, stats, infer", name, what);
    return NULL;
}

/* /v2/repository/index, /v2/repository/models/{m}/load|unload */
static void repository(const char *method, const char *rest, chill_reply *r) {
    if (strcmp(rest, "index") == 0) {
        if (is(method, "POST", r, "/v2/repository/index"))
            reply(r, 200, chill_repository_index_json());
        return;
    }
    char name[128];
    if (strncmp(rest, "models/", 7) == 0 && sscanf(rest + 7, "%127[^/]", name) == 1) {
        const char *op = rest + 7 + strlen(name);
        if (chill_model_find(name) == NULL)
            chill_reply_error(r, 404, "model %s: not found", name);
        else if (strcmp(op, "/load") == 0 && is(method, "POST", r, "load"))
            reply(r, 200, strdup("{}"));
        else if (strcmp(op, "/unload") == 0 && is(method, "POST", r, "unload"))
            chill_reply_error(r, 400, "model %s: chilld serves every model (mask types and presets) while it runs; "
                              "unload is not possible", name);
        else if (r->status == 0)
            chill_reply_error(r, 404, "repository: no route \"%s\"; routes: index, models/{m}/load, "
                              "models/{m}/unload", rest);
        return;
    }
    chill_reply_error(r, 404, "repository: no route \"%s\"; routes: index, models/{m}/load, models/{m}/unload", rest);
}

static void regions(const char *method, const char *url, const char *body, size_t len, chill_reply *r) {
    char *resp = NULL;
    int status = chill_regions_http(method, url, body, len, &resp);
    reply(r, status, resp != NULL ? resp : strdup("{}"));
}

chill_model *chill_route(const chill_route_ctx *ctx, const char *method, const char *url, const char *body,
                         size_t len, chill_reply *r) {
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
    if (strncmp(url, "/v2/models/", 11) == 0)
        return model_route(ctx, method, url + 11, r);
    if (strcmp(url, "/v2/health/live") == 0 || strcmp(url, "/v2/health/ready") == 0) {
        if (is(method, "GET", r, url))
            health(ctx, url + 11, r);
    } else if (strcmp(url, "/v2") == 0 || strcmp(url, "/v2/") == 0) {
        if (is(method, "GET", r, url))
            reply(r, 200, server_metadata(ctx));
    } else if (strcmp(url, "/v2/stats") == 0) {
        if (is(method, "GET", r, url))
            reply(r, 200, chill_model_stats_json(NULL));
    } else if (strncmp(url, "/v2/repository/", 15) == 0) {
        repository(method, url + 15, r);
    } else if (strncmp(url, "/v2/systemsharedmemory", 22) == 0 || strncmp(url, "/v2/cudasharedmemory", 20) == 0) {
        regions(method, url, body, len, r);
    } else if (strcmp(url, "/metrics") == 0) {
        if (is(method, "GET", r, url)) {
            reply(r, 200, NULL);
            chill_process_metrics_sample();
            r->body = chill_metrics_render(&r->len);
            r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        }
    } else {
        chill_reply_error(r, 404, "%s: no such path; see /v2 and /v2/repository/index", url);
    }
    return NULL;
}
