/* The float64 reference and the test helpers of ref.h. Nothing here shares
 * code with the kernels: fp16 and bf16 are decoded from their bit layouts with
 * ldexp, and the mask is consulted only through its predicate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* A tensor of p with its extents and resolved strides; packed tensors are one
 * batch of seq rows. */
typedef struct view {
    const chill_tensor *t;
    int64_t nb, nh, nt, nd, s[3];
} view;

static view view_of(const chill_params *p, char which) {
    int kv = which == 'k' || which == 'v';
    const chill_tensor *t = which == 'q' ? &p->q : which == 'k' ? &p->k : which == 'v' ? &p->v
                          : which == 'o' ? &p->out : &p->lse;
    view v = {t, p->cu_seqlens_q != NULL ? 1 : p->batch, kv ? p->heads_kv : p->heads_q, kv ? p->seq_k : p->seq_q,
              which == 'l' ? 1 : p->head_dim, {t->stride[0], t->stride[1], t->stride[2]}};
    if (v.s[0] == 0 && v.s[1] == 0 && v.s[2] == 0) {
        v.s[2] = v.nd;
        v.s[1] = v.nt * v.nd;
        v.s[0] = v.nh * v.nt * v.nd;
    }
    return v;
}

static int64_t at(const view *v, int64_t b, int64_t h, int64_t row) {
    return b * v->s[0] + h * v->s[1] + row * v->s[2];
}

size_t chill_ref_span(const chill_params *p, char which) {
    view v = view_of(p, which);
    return (size_t)(at(&v, v.nb - 1, v.nh - 1, v.nt - 1) + v.nd);
}

uint64_t chill_ref_rand(uint64_t *state) { /* splitmix64 */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* k / 1024 for k in [-1024, 1024] is exact in all three types. */
static uint16_t f16_bits_of(int k) {
    uint16_t sign = k < 0 ? 0x8000u : 0;
    unsigned m = (unsigned)abs(k); /* value m * 2^-10 */
    if (m == 0)
        return sign;
    int e = 0;
    while ((m << e) < 1024u)
        e++;
    /* m * 2^-10 = (m << e) / 1024 * 2^-e, with 1024 <= m << e < 2048 */
    return sign | (uint16_t)((15 - e) << 10) | (uint16_t)(((m << e) - 1024u) & 0x3ffu);
}

void chill_ref_fill(void *data, chill_dtype t, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++) {
        int k = (int)(chill_ref_rand(state) % 2049) - 1024;
        float f = (float)k / 1024.0f;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        if (t == CHILL_F32)
            ((float *)data)[i] = (float)((double)(chill_ref_rand(state) >> 11) / 4503599627370496.0 - 1.0);
        else if (t == CHILL_F16)
            ((uint16_t *)data)[i] = f16_bits_of(k);
        else
            ((uint16_t *)data)[i] = (uint16_t)(u >> 16);
    }
}

void chill_ref_poison(void *data, chill_dtype t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (t == CHILL_F32)
            ((float *)data)[i] = NAN;
        else
            ((uint16_t *)data)[i] = t == CHILL_F16 ? 0x7e00u : 0x7fc0u;
    }
}

double chill_ref_value(const void *data, chill_dtype t, size_t i) {
    if (t == CHILL_F32)
        return ((const float *)data)[i];
    uint16_t h = ((const uint16_t *)data)[i];
    if (t == CHILL_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    int e = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = e == 0 ? ldexp(man, -24) : e == 31 ? (man ? NAN : INFINITY) : ldexp(1024 + man, e - 25);
    return h & 0x8000u ? -v : v;
}

/* ---- the reference ------------------------------------------------------- */

typedef struct seqinfo {
    int64_t nq, nk, off, q_row0, k_row0, b;
} seqinfo;

static seqinfo seq_info(const chill_params *p, int64_t b) {
    seqinfo s = {p->seq_q, p->seq_k, 0, 0, 0, b};
    if (p->cu_seqlens_q != NULL) {
        s.q_row0 = p->cu_seqlens_q[b];
        s.k_row0 = p->cu_seqlens_k[b];
        s.nq = p->cu_seqlens_q[b + 1] - s.q_row0;
        s.nk = p->cu_seqlens_k[b + 1] - s.k_row0;
        s.b = 0;
    }
    if (p->seq_lens_q != NULL)
        s.nq = p->seq_lens_q[b];
    if (p->seq_lens_k != NULL)
        s.nk = p->seq_lens_k[b];
    s.off = p->q_offset == CHILL_Q_OFFSET_AUTO ? s.nk - s.nq : p->q_offset;
    return s;
}

static void ref_row(const chill_params *p, const seqinfo *s, int64_t h, int64_t i, double *scores, double *out,
                    double *lse) {
    view q = view_of(p, 'q'), k = view_of(p, 'k'), v = view_of(p, 'v');
    int64_t d = p->head_dim, hk = h / (p->heads_q / p->heads_kv);
    double scale = p->sm_scale != 0.0f ? p->sm_scale : 1.0 / sqrt((double)d), mx = -INFINITY;
    int64_t qo = at(&q, s->b, h, s->q_row0 + i);
    for (int64_t c = 0; c < d; c++)
        out[c] = 0;
    if (lse != NULL)
        *lse = -INFINITY;
    for (int64_t j = 0; j < s->nk; j++) {
        scores[j] = -INFINITY;
        if (!chill_mask_allows(&p->mask, s->off + i, j))
            continue;
        int64_t ko = at(&k, s->b, hk, s->k_row0 + j);
        double dot = 0;
        for (int64_t c = 0; c < d; c++)
            dot += chill_ref_value(p->q.data, p->dtype, (size_t)(qo + c)) *
                   chill_ref_value(p->k.data, p->dtype, (size_t)(ko + c));
        scores[j] = dot * scale;
        mx = fmax(mx, scores[j]);
    }
    if (mx == -INFINITY)
        return; /* no key: zeros and -inf */
    double sum = 0;
    for (int64_t j = 0; j < s->nk; j++) {
        scores[j] = scores[j] == -INFINITY ? 0 : exp(scores[j] - mx);
        sum += scores[j];
    }
    for (int64_t c = 0; c < d; c++) {
        double acc = 0;
        for (int64_t j = 0; j < s->nk; j++)
            if (scores[j] != 0)
                acc += scores[j] * chill_ref_value(p->v.data, p->dtype, (size_t)(at(&v, s->b, hk, s->k_row0 + j) + c));
        out[c] = acc / sum;
    }
    if (lse != NULL)
        *lse = mx + log(sum);
}

void chill_ref_forward(const chill_params *p, double *out, double *lse) {
    view o = view_of(p, 'o'), l = view_of(p, 'l');
    double *scores = malloc((size_t)p->seq_k * sizeof *scores);
    for (int64_t b = 0; b < p->batch; b++) {
        seqinfo s = seq_info(p, b);
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < s.nq; i++)
                ref_row(p, &s, h, i, scores, out + at(&o, s.b, h, s.q_row0 + i),
                        lse != NULL ? lse + at(&l, s.b, h, s.q_row0 + i) : NULL);
    }
    free(scores);
}

/* ---- comparisons ----------------------------------------------------------- */

/* A flag per element among the first n of out (which = 'o') or lse ('l'):
 * whether a row some sequence owns holds it. */
static unsigned char *owned(const chill_params *p, char which, size_t n) {
    view v = view_of(p, which);
    unsigned char *mine = calloc(n, 1);
    for (int64_t b = 0; b < p->batch; b++) {
        seqinfo s = seq_info(p, b);
        for (int64_t h = 0; h < v.nh; h++)
            for (int64_t i = 0; i < s.nq; i++)
                for (int64_t c = 0; c < v.nd; c++)
                    if ((size_t)(at(&v, s.b, h, s.q_row0 + i) + c) < n)
                        mine[at(&v, s.b, h, s.q_row0 + i) + c] = 1;
    }
    return mine;
}

double chill_ref_rel_error(const chill_params *p, const double *ref) {
    size_t n = chill_ref_span(p, 'o');
    unsigned char *mine = owned(p, 'o', n);
    double diff = 0, norm = 0;
    for (size_t e = 0; e < n; e++)
        if (mine[e]) {
            double x = chill_ref_value(p->out.data, p->dtype, e) - ref[e];
            diff += x * x;
            norm += ref[e] * ref[e];
        }
    free(mine);
    return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

double chill_ref_lse_error(const chill_params *p, const double *ref) {
    size_t n = chill_ref_span(p, 'l');
    unsigned char *mine = owned(p, 'l', n);
    double worst = 0;
    for (size_t e = 0; e < n; e++) {
        if (!mine[e])
            continue;
        double x = ((const float *)p->lse.data)[e];
        if (isnan(x)) {
            worst = NAN;
            break;
        }
        if (isinf(x) || isinf(ref[e]))
            worst = x == ref[e] ? worst : INFINITY;
        else
            worst = fmax(worst, fabs(x - ref[e]));
    }
    free(mine);
    return worst;
}

size_t chill_ref_stray_writes(const chill_params *p, char which, size_t n) {
    const void *data = view_of(p, which).t->data;
    chill_dtype t = which == 'l' ? CHILL_F32 : p->dtype;
    unsigned char *mine = owned(p, which, n);
    size_t stray = 0;
    for (size_t i = 0; i < n; i++)
        stray += !mine[i] && !isnan(chill_ref_value(data, t, i));
    free(mine);
    return stray;
}
