/* The mask spec parser: text ("sliding_window(64,32)", named arguments
 * "sliding_window(left_context=64, right_context=32)", "causal", "causal()")
 * and JSON ({"type":"sliding_window","left_context":64,"right_context":32})
 * into a chill_mask, and a chill_mask back into its canonical text. Everything
 * comes from the registry table, so a mask added to masks/list.h parses with
 * no change here. Errors say what was wrong, where, and what is accepted. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "spec.h"

/* A text being written into a fixed buffer: like snprintf, used counts what
 * would have been written without the limit. */
typedef struct text {
    char *buf;
    size_t len, used;
} text;

__attribute__((format(printf, 2, 3))) static void text_add(text *t, const char *fmt, ...) {
    size_t at = t->used < t->len ? t->used : t->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->len > at ? t->buf + at : NULL, t->len - at, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->used += (size_t)n;
}

static text text_on(char *buf, size_t len) {
    text t = {buf, len, 0};
    if (len > 0)
        buf[0] = '\0';
    return t;
}

/* "left_context, right_context" */
static void add_arg_names(text *t, const chill_mask_ops *ops) {
    for (int i = 0; i < ops->nargs; i++)
        text_add(t, "%s%s", i ? ", " : "", ops->arg_names[i]);
}

int chill_mask_signature(const chill_mask_ops *ops, char *buf, size_t len) {
    text t = text_on(buf, len);
    text_add(&t, "%s(", ops->name);
    add_arg_names(&t, ops);
    text_add(&t, ")");
    return (int)t.used;
}

int chill_mask_format_ops(const chill_mask_ops *ops, const int64_t *args, char *buf, size_t len) {
    text t = text_on(buf, len);
    text_add(&t, "%s(", ops->name);
    for (int i = 0; i < ops->nargs; i++)
        text_add(&t, "%s%" PRId64, i ? "," : "", args[i]);
    text_add(&t, ")");
    return (int)t.used;
}

int chill_mask_format(const chill_mask *m, char *buf, size_t len) {
    const chill_mask_ops *ops = chill_mask_ops_of(m);
    if (ops == NULL) {
        text_on(buf, len);
        return -1;
    }
    return chill_mask_format_ops(ops, m->arg, buf, len);
}

/* "full(), causal(), sliding_window(left_context, right_context), ..." */
static const char *registered_masks(char *buf, size_t len) {
    text t = text_on(buf, len);
    for (int type = 0; type < CHILL_MASK_COUNT; type++) {
        char sig[128];
        chill_mask_signature(&chill_mask_table[type], sig, sizeof sig);
        text_add(&t, "%s%s", type ? ", " : "", sig);
    }
    return buf;
}

/* Whether the arguments read (got of them, set[i] for each one given) are
 * not all of ops' arguments; then why in buf: "sliding_window takes 2
 * arguments (left_context, right_context), got 1; missing right_context". */
static bool arity_problem(const chill_mask_ops *ops, const bool *set, int got, char *buf, size_t len) {
    int missing = -1;
    for (int i = ops->nargs - 1; i >= 0; i--)
        missing = set[i] ? missing : i;
    if (got == ops->nargs && missing < 0)
        return false;
    text t = text_on(buf, len);
    if (ops->nargs == 0) {
        text_add(&t, "%s takes no arguments, got %d", ops->name, got);
        return true;
    }
    text_add(&t, "%s takes %d argument%s (", ops->name, ops->nargs, ops->nargs == 1 ? "" : "s");
    add_arg_names(&t, ops);
    text_add(&t, "), got %d", got);
    if (got < ops->nargs && missing >= 0)
        text_add(&t, "; missing %s", ops->arg_names[missing]);
    return true;
}

/* The index of ops' argument called name[0..n), or -1. */
static int arg_index(const chill_mask_ops *ops, const char *name, size_t n) {
    for (int i = 0; i < ops->nargs; i++)
        if (strlen(ops->arg_names[i]) == n && strncasecmp(ops->arg_names[i], name, n) == 0)
            return i;
    return -1;
}

static chill_status arg_out_of_range(const chill_mask_ops *ops, int i, int64_t v, chill_error *err) {
    return chill_fail(err, CHILL_ERR_INVALID,
                      "%s: %s = %" PRId64 " is out of range; accepted: integers from %" PRId64 " to %" PRId64,
                      ops->name, ops->arg_names[i], v, ops->arg_min[i], CHILL_MASK_ARG_MAX);
}

chill_status chill_mask_check(const chill_mask *m, chill_error *err) {
    const chill_mask_ops *ops = chill_mask_ops_of(m);
    char list[384];
    if (m == NULL)
        return chill_fail(err, CHILL_ERR_INVALID, "no mask given; accepted: one of %s",
                          registered_masks(list, sizeof list));
    if (ops == NULL)
        return chill_fail(err, CHILL_ERR_INVALID, "mask type %d is not registered; accepted: 0 to %d (%s)", m->type,
                          CHILL_MASK_COUNT - 1, registered_masks(list, sizeof list));
    for (int i = 0; i < ops->nargs; i++)
        if (m->arg[i] < ops->arg_min[i] || m->arg[i] > CHILL_MASK_ARG_MAX)
            return arg_out_of_range(ops, i, m->arg[i], err);
    return CHILL_OK;
}

/* ---- text form -------------------------------------------------------------- */

typedef struct parser {
    const char *spec; /* the whole text, for messages */
    const char *p;    /* the cursor */
    chill_error *err;
} parser;

__attribute__((format(printf, 2, 3))) static chill_status parse_fail(const parser *ps, const char *fmt, ...) {
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return chill_fail(ps->err, CHILL_ERR_INVALID, "mask spec \"%.64s%s\": %s", ps->spec,
                      strlen(ps->spec) > 64 ? "..." : "", why);
}

static int offset(const parser *ps, const char *at) { return (int)(at - ps->spec); }

static void skip_space(parser *ps) {
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

/* Length of the word at p: up to a space, a separator or the end. */
static size_t word_len(const char *p) {
    size_t n = 0;
    while (p[n] != '\0' && !isspace((unsigned char)p[n]) && strchr(",()=", p[n]) == NULL)
        n++;
    return n;
}

static size_t name_len(const char *p) {
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_')
        n++;
    return n;
}

/* Reads argument i of ops from the word w[0..n), an integer in range. */
static chill_status parse_value(const parser *ps, const chill_mask_ops *ops, int i, const char *w, size_t n,
                                int64_t *out) {
    size_t d = (n > 0 && w[0] == '-') ? 1 : 0;
    if (n == 0)
        return parse_fail(ps, "missing the value of %s at offset %d", ops->arg_names[i], offset(ps, w));
    bool digits = d < n;
    for (size_t j = d; j < n; j++)
        digits = digits && isdigit((unsigned char)w[j]);
    if (!digits)
        return parse_fail(ps, "%s: %s = \"%.*s\" is not an integer (offset %d); accepted: integers from %" PRId64
                          " to %" PRId64, ops->name, ops->arg_names[i], (int)n, w, offset(ps, w),
                          ops->arg_min[i], CHILL_MASK_ARG_MAX);
    int64_t v = 0;
    for (size_t j = d; j < n; j++)
        v = chill_min64(v * 10 + (w[j] - '0'), CHILL_MASK_ARG_MAX + 1);
    v = d ? -v : v;
    if (v < ops->arg_min[i] || v > CHILL_MASK_ARG_MAX)
        return parse_fail(ps, "%s: %s = %.*s (offset %d) is out of range; accepted: integers from %" PRId64 " to %"
                          PRId64, ops->name, ops->arg_names[i], (int)n, w, offset(ps, w), ops->arg_min[i],
                          CHILL_MASK_ARG_MAX);
    *out = v;
    return CHILL_OK;
}

/* One argument at the cursor, positional or name=value; *got counts them. */
static chill_status parse_arg(parser *ps, const chill_mask_ops *ops, chill_mask *r, bool *set, bool *named,
                              int *got) {
    const char *w = ps->p;
    size_t n = word_len(w);
    ps->p += n;
    skip_space(ps);
    if (*ps->p != '=') {
        if (*named)
            return parse_fail(ps, "positional argument at offset %d after named ones; give all of them by name",
                              offset(ps, w));
        int i = (*got)++;
        if (n == 0)
            return parse_fail(ps, "missing an argument at offset %d", offset(ps, w));
        if (i >= ops->nargs)
            return CHILL_OK; /* counted; the arity message comes at the end */
        set[i] = true;
        return parse_value(ps, ops, i, w, n, &r->arg[i]);
    }
    if (n == 0 || name_len(w) != n)
        return parse_fail(ps, "expected an argument name before '=' at offset %d", offset(ps, ps->p));
    int i = arg_index(ops, w, n);
    if (i < 0) {
        char names[200];
        text t = text_on(names, sizeof names);
        add_arg_names(&t, ops);
        return parse_fail(ps, "%s has no argument \"%.*s\"; its arguments: %s", ops->name, (int)n, w,
                          ops->nargs ? names : "none");
    }
    if (set[i])
        return parse_fail(ps, "%s given twice (offset %d)", ops->arg_names[i], offset(ps, w));
    ps->p++;
    skip_space(ps);
    const char *v = ps->p;
    size_t vn = word_len(v);
    ps->p += vn;
    *named = true;
    set[i] = true;
    (*got)++;
    return parse_value(ps, ops, i, v, vn, &r->arg[i]);
}

/* The argument list after '(' up to and including ')'. */
static chill_status parse_args(parser *ps, const chill_mask_ops *ops, chill_mask *r, bool *set, int *got) {
    bool named = false;
    skip_space(ps);
    if (*ps->p == ')') {
        ps->p++;
        return CHILL_OK;
    }
    for (;;) {
        skip_space(ps);
        chill_status s = parse_arg(ps, ops, r, set, &named, got);
        if (s != CHILL_OK)
            return s;
        skip_space(ps);
        if (*ps->p == ',') {
            ps->p++;
        } else if (*ps->p == ')') {
            ps->p++;
            return CHILL_OK;
        } else if (*ps->p == '\0') {
            return parse_fail(ps, "missing ')' at offset %d", offset(ps, ps->p));
        } else {
            return parse_fail(ps, "unexpected '%c' at offset %d; expected ',' or ')'", *ps->p, offset(ps, ps->p));
        }
    }
}

chill_status chill_mask_parse(const char *spec, chill_mask *m, chill_error *err) {
    char list[384];
    if (spec == NULL)
        return chill_fail(err, CHILL_ERR_INVALID, "mask spec is missing; accepted: %s",
                          registered_masks(list, sizeof list));
    parser ps = {spec, spec, err};
    skip_space(&ps);
    const char *name = ps.p;
    size_t n = name_len(name);
    if (n == 0)
        return parse_fail(&ps, "expected a mask name at offset %d; registered masks: %s", offset(&ps, name),
                          registered_masks(list, sizeof list));
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)n, name);
    int type = n < sizeof key ? chill_mask_lookup(key) : -1;
    if (type < 0)
        return parse_fail(&ps, "unknown mask \"%s%s\"; registered masks: %s", key, n < sizeof key ? "" : "...",
                          registered_masks(list, sizeof list));
    const chill_mask_ops *ops = &chill_mask_table[type];
    chill_mask r = {.type = type};
    bool set[CHILL_MASK_MAX_ARGS] = {false};
    int got = 0;
    ps.p += n;
    skip_space(&ps);
    if (*ps.p == '(') {
        ps.p++;
        chill_status s = parse_args(&ps, ops, &r, set, &got);
        if (s != CHILL_OK)
            return s;
        skip_space(&ps);
    }
    if (*ps.p != '\0')
        return parse_fail(&ps, "unexpected \"%.16s\" at offset %d; a spec is NAME or NAME(ARGS) and ends there",
                          ps.p, offset(&ps, ps.p));
    char why[300];
    if (arity_problem(ops, set, got, why, sizeof why))
        return parse_fail(&ps, "%s", why);
    *m = r;
    return CHILL_OK;
}

/* ---- JSON form -------------------------------------------------------------- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

#define CHILL_MASK_JSON_EXAMPLE "{\"type\":\"sliding_window\",\"left_context\":64,\"right_context\":32}"

/* The arguments of ops from the keys of obj other than "type". */
static chill_status json_args(const json_t *obj, const chill_mask_ops *ops, chill_mask *r, chill_error *err) {
    bool set[CHILL_MASK_MAX_ARGS] = {false};
    int got = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        if (strcmp(key, "type") == 0)
            continue;
        int i = arg_index(ops, key, strlen(key));
        if (i < 0) {
            char names[200];
            text t = text_on(names, sizeof names);
            add_arg_names(&t, ops);
            return chill_fail(err, CHILL_ERR_INVALID, "mask JSON: unknown key \"%s\" for %s; accepted keys: type%s%s",
                              key, ops->name, ops->nargs ? ", " : "", names);
        }
        if (!json_is_integer(value))
            return chill_fail(err, CHILL_ERR_INVALID,
                              "mask JSON: %s.%s is %s; accepted: integers from %" PRId64 " to %" PRId64, ops->name,
                              ops->arg_names[i], json_kind(value), ops->arg_min[i], CHILL_MASK_ARG_MAX);
        int64_t v = (int64_t)json_integer_value(value);
        if (v < ops->arg_min[i] || v > CHILL_MASK_ARG_MAX)
            return arg_out_of_range(ops, i, v, err);
        r->arg[i] = v;
        set[i] = true;
        got++;
    }
    char why[300];
    if (arity_problem(ops, set, got, why, sizeof why))
        return chill_fail(err, CHILL_ERR_INVALID, "mask JSON: %s", why);
    return CHILL_OK;
}

static chill_status mask_from_json(const json_t *obj, chill_mask *m, chill_error *err) {
    char list[384];
    if (!json_is_object(obj))
        return chill_fail(err, CHILL_ERR_INVALID, "mask JSON is %s; accepted: an object such as %s", json_kind(obj),
                          CHILL_MASK_JSON_EXAMPLE);
    const json_t *type = json_object_get(obj, "type");
    if (type == NULL || !json_is_string(type))
        return chill_fail(err, CHILL_ERR_INVALID, "mask JSON: \"type\" is %s; accepted: a string naming one of %s",
                          type == NULL ? "missing" : json_kind(type), registered_masks(list, sizeof list));
    int t = chill_mask_lookup(json_string_value(type));
    if (t < 0)
        return chill_fail(err, CHILL_ERR_INVALID, "mask JSON: unknown mask \"%.64s\"; registered masks: %s",
                          json_string_value(type), registered_masks(list, sizeof list));
    chill_mask r = {.type = t};
    chill_status s = json_args(obj, &chill_mask_table[t], &r, err);
    if (s == CHILL_OK)
        *m = r;
    return s;
}

chill_status chill_mask_parse_json(const char *json, chill_mask *m, chill_error *err) {
    if (json == NULL)
        return chill_fail(err, CHILL_ERR_INVALID, "mask JSON is missing; accepted: an object such as %s",
                          CHILL_MASK_JSON_EXAMPLE);
    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (root == NULL)
        return chill_fail(err, CHILL_ERR_INVALID,
                          "mask JSON: %s at line %d, column %d; accepted: an object such as %s", je.text, je.line,
                          je.column, CHILL_MASK_JSON_EXAMPLE);
    chill_status s = mask_from_json(root, m, err);
    json_decref(root);
    return s;
}
