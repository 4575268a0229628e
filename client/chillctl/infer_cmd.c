/* chillctl infer: one attention call on chilld over any transport. Inputs
 * come from .npy / .safetensors files or are random; out (and lse) go to a
 * file; --check runs the same call on the local CPU kernel (libchill) and
 * compares, with the numerics contract's bound for the dtype. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "ctl_opts.h"
#include "tensorio.h"

const char chillctl_infer_usage[] =
    "one attention call on chilld from files or random inputs; --check against the local kernel\n"
    "usage: chillctl infer (--random B,H,T,D | --q F --k F --v F | --inputs F.safetensors) [options]\n"
    "  --q/--k/--v FILE     .npy or .safetensors (entry q, k, v) inputs\n"
    "  --inputs FILE        one .safetensors file with entries q, k, v\n"
    "  --seed N             random inputs' seed (default 1)\n"
    "  -o FILE              write out (.npy) or out and lse (.safetensors)\n"
    "  --check              compare with the local CPU kernel; exit 1 beyond the bound\n" CTL_REQ_USAGE CTL_OPTS_USAGE;

enum { OPT_Q = 2000, OPT_K, OPT_V, OPT_INPUTS, OPT_SEED, OPT_CHECK };

typedef struct infer_args {
    ctl_opts o;
    const char *file[3], *inputs, *output;
    uint64_t seed;
    int check;
} infer_args;

static int infer_parse(infer_args *a, int argc, char **argv) {
    static const struct option longopts[] = {
        CTL_OPTS_LONG, {"q", required_argument, 0, OPT_Q}, {"k", required_argument, 0, OPT_K},
        {"v", required_argument, 0, OPT_V}, {"inputs", required_argument, 0, OPT_INPUTS},
        {"seed", required_argument, 0, OPT_SEED}, {"check", no_argument, 0, OPT_CHECK},
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_Q: case OPT_K: case OPT_V: a->file[opt - OPT_Q] = optarg; break;
        case OPT_INPUTS: a->inputs = optarg; break;
        case OPT_SEED: a->seed = strtoull(optarg, NULL, 10); break;
        case OPT_CHECK: a->check = 1; break;
        case 'o': a->output = optarg; break;
        case 'h': fputs(chillctl_infer_usage, stdout); return 0;
        default:
            if (ctl_opts_parse(&a->o, opt, optarg) != 0) {
                fputs(chillctl_infer_usage, stderr);
                return 2;
            }
        }
    }
    int sources = a->o.have_shape + (a->inputs != NULL) + (a->file[0] || a->file[1] || a->file[2]);
    if (sources != 1 || (a->file[0] && !(a->file[1] && a->file[2]))) {
        fprintf(stderr, "chillctl infer: give exactly one input source: --random, --inputs, or all of --q --k --v\n");
        return 2;
    }
    return -1;
}

/* q, k, v from files, their shapes checked against each other. */
static int infer_load(infer_args *a, ctl_tensor t[3]) {
    static const char *names[3] = {"q", "k", "v"};
    char err[512];
    for (int i = 0; i < 3; i++)
        if (ctl_tensor_load(a->inputs ? a->inputs : a->file[i], names[i], &t[i], err, sizeof err) != 0) {
            fprintf(stderr, "chillctl infer: %s\n", err);
            return -1;
        }
    chill_client_request *r = &a->o.req;
    for (int i = 0; i < 3; i++)
        if (t[i].rank != 4 || t[i].dtype != t[0].dtype) {
            fprintf(stderr, "chillctl infer: %s must be 4-d [B,H,T,D] with q's dtype (%s)\n", names[i],
                    chill_dtype_name(t[0].dtype));
            return -1;
        }
    if (memcmp(t[1].shape, t[2].shape, sizeof t[1].shape) != 0 || t[1].shape[0] != t[0].shape[0] ||
        t[1].shape[3] != t[0].shape[3]) {
        fprintf(stderr, "chillctl infer: k and v must have one shape [B,Hkv,Tk,D] with q's B and D\n");
        return -1;
    }
    r->dtype = t[0].dtype;
    r->batch = t[0].shape[0], r->heads_q = t[0].shape[1], r->seq_q = t[0].shape[2], r->head_dim = t[0].shape[3];
    r->heads_kv = t[1].shape[1], r->seq_k = t[1].shape[2];
    a->o.have_shape = 1;
    return 0;
}

static void infer_random(infer_args *a, ctl_tensor t[3]) {
    const chill_client_request *r = &a->o.req;
    for (int i = 0; i < 3; i++) {
        t[i] = (ctl_tensor){.dtype = r->dtype, .rank = 4};
        snprintf(t[i].name, sizeof t[i].name, "%s", i == 0 ? "q" : i == 1 ? "k" : "v");
        int64_t s[4] = {r->batch, i ? r->heads_kv : r->heads_q, i ? r->seq_k : r->seq_q, r->head_dim};
        memcpy(t[i].shape, s, sizeof s);
        ctl_tensor_alloc(&t[i]);
        ctl_tensor_random(&t[i], a->seed + (uint64_t)i);
    }
}

/* The same call on the local CPU kernel; 0 when within the bound. */
static int infer_check(const chill_client_request *r, const ctl_tensor *out, const ctl_tensor *lse) {
    chill_mask m;
    chill_error e;
    if (chill_mask_parse(r->mask ? r->mask : r->model, &m, &e) != CHILL_OK) {
        fprintf(stderr, "chillctl infer --check: %s (name the mask with --mask to check a preset)\n", e.message);
        return 1;
    }
    ctl_tensor ref = *out, ref_lse = *lse;
    ctl_tensor_alloc(&ref);
    if (lse->data)
        ctl_tensor_alloc(&ref_lse);
    chill_params p;
    chill_params_init(&p);
    p.dtype = r->dtype;
    p.batch = r->batch, p.heads_q = r->heads_q, p.heads_kv = r->heads_kv;
    p.seq_q = r->seq_q, p.seq_k = r->seq_k, p.head_dim = r->head_dim;
    p.q.data = (void *)r->q, p.k.data = (void *)r->k, p.v.data = (void *)r->v, p.out.data = ref.data;
    p.lse.data = lse->data ? ref_lse.data : NULL;
    p.q_offset = r->q_offset, p.mask = m, p.sm_scale = r->sm_scale;
    int rc = 1;
    if (chill_forward(&p, &e) != CHILL_OK) {
        fprintf(stderr, "chillctl infer --check: the local kernel failed: %s\n", e.message);
    } else {
        double err = ctl_rel_error(r->dtype, out->data, ref.data, out->bytes / chill_dtype_size(r->dtype));
        double tol = ctl_tolerance(r->dtype);
        rc = !(err <= tol);
        printf("check: ||out - local|| / ||local|| = %.3g (bound %.0e for %s): %s\n", err, tol,
               chill_dtype_name(r->dtype), rc ? "FAIL" : "ok");
        if (lse->data) {
            double le = ctl_rel_error(CHILL_F32, lse->data, ref_lse.data, lse->bytes / 4);
            int lrc = !(le <= 1e-4);
            printf("check: lse relative error %.3g (bound 1e-04): %s\n", le, lrc ? "FAIL" : "ok");
            rc |= lrc;
        }
    }
    ctl_tensor_free(&ref);
    ctl_tensor_free(&ref_lse);
    return rc;
}

static int infer_run(infer_args *a, ctl_tensor in[3]) {
    chill_client_request *r = &a->o.req;
    ctl_tensor out = {.name = "out", .dtype = r->dtype, .rank = 4, .shape = {r->batch, r->heads_q, r->seq_q, r->head_dim}};
    ctl_tensor lse = {.name = "lse", .dtype = CHILL_F32, .rank = 3, .shape = {r->batch, r->heads_q, r->seq_q}};
    ctl_tensor_alloc(&out);
    if (a->o.want_lse)
        ctl_tensor_alloc(&lse);
    r->q = in[0].data, r->k = in[1].data, r->v = in[2].data, r->out = out.data, r->lse = lse.data;
    int rc = 1;
    chill_client *c = ctl_connect(&a->o);
    if (c) {
        chill_client_error err;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        chill_client_status s = chill_client_infer(c, r, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (s != CHILL_CLIENT_OK) {
            fprintf(stderr, "chillctl infer: %s\n", err.message);
        } else {
            static const char *tn[] = {"http", "shm", "uds"};
            printf("out [%lld,%lld,%lld,%lld] %s from %s over %s in %.3f ms\n", (long long)r->batch,
                   (long long)r->heads_q, (long long)r->seq_q, (long long)r->head_dim, chill_dtype_name(r->dtype),
                   r->mask ? r->mask : r->model, tn[a->o.client.transport],
                   (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
            char msg[512];
            ctl_tensor both[2] = {out, lse};
            rc = 0;
            if (a->output && ctl_tensor_save(a->output, both, lse.data ? 2 : 1, msg, sizeof msg) != 0) {
                fprintf(stderr, "chillctl infer: %s\n", msg);
                rc = 1;
            }
            if (a->check)
                rc |= infer_check(r, &out, &lse);
        }
        chill_client_destroy(c);
    }
    ctl_tensor_free(&out);
    ctl_tensor_free(&lse);
    return rc;
}

int chillctl_infer(int argc, char **argv) {
    infer_args a = {.seed = 1};
    ctl_opts_init(&a.o);
    int rc = infer_parse(&a, argc, argv);
    if (rc >= 0)
        return rc;
    ctl_tensor in[3] = {0};
    if (a.o.have_shape) {
        ctl_opts_finish(&a.o);
        infer_random(&a, in);
    } else if (infer_load(&a, in) != 0) {
        rc = 1;
    } else {
        ctl_opts_finish(&a.o);
    }
    if (rc != 1)
        rc = infer_run(&a, in);
    for (int i = 0; i < 3; i++)
        ctl_tensor_free(&in[i]);
    return rc;
}
