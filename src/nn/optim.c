/* SGD (momentum, Nesterov), Adam and AdamW on the fp32 master weights. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

#if defined(__SSE__)
#include <pmmintrin.h>
#include <xmmintrin.h>
/* Adam's second moments of rarely-updated weights decay into subnormal floats,
 * which x86 handles ~100x slower: a long run slowed down 5x within a few epochs.
 * Flushing them to zero (as PyTorch's set_flush_denormal does) costs nothing in
 * accuracy. MXCSR is per thread, so each OpenMP worker sets it. */
static void flush_denormals(void)
{
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
}
#else
static void flush_denormals(void) {}
#endif

struct pn_optim {
    pn_optim_config cfg;
    pn_net *net;
    float **m, **v; /* per parameter; v unused by SGD */
    int64_t step;
};

pn_optim_config pn_optim_defaults(pn_optim_kind kind)
{
    pn_optim_config c = {0};
    c.kind = kind;
    c.lr = kind == PN_SGD ? 0.01f : 1e-3f;
    c.momentum = 0.9f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.weight_decay = kind == PN_ADAMW ? 0.01f : 0;
    return c;
}

pn_status pn_optim_create(const pn_optim_config *cfg, pn_net *net, pn_optim **out, pn_error *err)
{
    pn_optim *o = calloc(1, sizeof *o);
    if (!o)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    o->cfg = *cfg;
    o->net = net;
    size_t n = pn_net_param_count(net);
    o->m = calloc(n, sizeof *o->m);
    o->v = calloc(n, sizeof *o->v);
    if (!o->m || !o->v) {
        pn_optim_destroy(o);
        return pn_fail(err, PN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const pn_param *p = pn_net_param(net, i);
        if (p->is_buffer)
            continue;
        o->m[i] = calloc(p->numel, sizeof(float));
        o->v[i] = calloc(p->numel, sizeof(float));
        if (!o->m[i] || !o->v[i]) {
            pn_optim_destroy(o);
            return pn_fail(err, PN_ENOMEM, "out of memory");
        }
    }
    *out = o;
    return PN_OK;
}

void pn_optim_destroy(pn_optim *o)
{
    if (!o)
        return;
    size_t n = pn_net_param_count(o->net);
    for (size_t i = 0; i < n; i++) {
        if (o->m)
            free(o->m[i]);
        if (o->v)
            free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    free(o);
}

static int trains(const pn_param *p) { return !p->is_buffer && !p->frozen; }

/* Sum of squares in fp32 over blocks short enough to stay exact to ~1e-6,
 * added in double: vectorises, where a double accumulator per element
 * would not. */
PN_SIMD_CLONES static double sum_squares(const float *g, size_t n)
{
    double total = 0;
    for (size_t b = 0; b < n; b += 4096) {
        size_t end = b + 4096 < n ? b + 4096 : n;
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (size_t k = b; k < end; k++)
            part += g[k] * g[k];
        total += part;
    }
    return total;
}

static float grad_norm(pn_net *net)
{
    double sum = 0;
    size_t n = pn_net_param_count(net);
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) {
        const pn_param *p = pn_net_param(net, i);
        if (trains(p))
            sum += sum_squares(p->grad, p->numel);
    }
    return (float)sqrt(sum);
}

/* Both updates run inside a parallel region and split the elements of one
 * parameter among the threads (one large fc weight would otherwise sit on one core). */
static void sgd_update(const pn_optim_config *c, pn_param *p, float *m, float lr, float gscale)
{
    float wd = p->no_decay ? 0 : c->weight_decay;
#pragma omp for schedule(static)
    for (size_t k = 0; k < p->numel; k++) {
        float g = p->grad[k] * gscale + wd * p->data[k];
        m[k] = c->momentum * m[k] + g;
        p->data[k] -= lr * (c->nesterov ? g + c->momentum * m[k] : m[k]);
    }
}

typedef struct adam_consts {
    float lr, gscale, wd, beta1, beta2, bc1, bc2, eps;
    int decoupled;
} adam_consts;

PN_SIMD_CLONES static void adam_range(float *restrict w, const float *restrict grad,
                                      float *restrict m, float *restrict v, size_t n,
                                      const adam_consts *a)
{
    /* constants in locals: stores through w/m/v cannot change them */
    const float lr = a->lr, gscale = a->gscale, wd = a->wd, b1 = a->beta1, b2 = a->beta2;
    const float inv_bc1 = 1 / a->bc1, inv_bc2 = 1 / a->bc2, eps = a->eps;
    const float decay = a->decoupled ? 1 - lr * wd : 1, coupled_wd = a->decoupled ? 0 : wd;
    for (size_t k = 0; k < n; k++) {
        float g = grad[k] * gscale + coupled_wd * w[k];
        float wk = w[k] * decay;
        m[k] = b1 * m[k] + (1 - b1) * g;
        v[k] = b2 * v[k] + (1 - b2) * g * g;
        w[k] = wk - lr * (m[k] * inv_bc1) / (sqrtf(v[k] * inv_bc2) + eps);
    }
}

static void adam_update(const pn_optim_config *c, pn_param *p, float *m, float *v, float lr,
                        float gscale, int64_t step)
{
    adam_consts a = {lr, gscale, p->no_decay ? 0 : c->weight_decay, c->beta1, c->beta2,
                     1 - powf(c->beta1, (float)step), 1 - powf(c->beta2, (float)step), c->eps,
                     c->kind == PN_ADAMW};
    /* this thread's contiguous share of the elements */
    size_t threads = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
    size_t begin = p->numel * id / threads, end = p->numel * (id + 1) / threads;
    adam_range(p->data + begin, p->grad + begin, m + begin, v + begin, end - begin, &a);
}

static float step(pn_optim *o, float lr)
{
    float norm = grad_norm(o->net);
    float gscale = o->cfg.clip_norm > 0 && norm > o->cfg.clip_norm ? o->cfg.clip_norm / norm : 1.0f;
    o->step++;
    size_t n = pn_net_param_count(o->net);
#pragma omp parallel
    {
        flush_denormals();
        for (size_t i = 0; i < n; i++) {
            pn_param *p = pn_net_param(o->net, i);
            if (!trains(p))
                continue;
            if (o->cfg.kind == PN_SGD)
                sgd_update(&o->cfg, p, o->m[i], lr, gscale);
            else
                adam_update(&o->cfg, p, o->m[i], o->v[i], lr, gscale, o->step);
        }
    }
    pn_net_params_changed(o->net);
    return norm;
}

float pn_optim_step(pn_optim *o, float lr)
{
    int saved = pn_ctx_threads_enter(o->net->ctx);
    float norm = step(o, lr);
    pn_ctx_threads_leave(saved);
    return norm;
}

size_t pn_optim_state_count(const pn_optim *o) { return pn_net_param_count(o->net); }

float *pn_optim_state(pn_optim *o, size_t param_index, int which)
{
    if (param_index >= pn_net_param_count(o->net))
        return NULL;
    return which ? o->v[param_index] : o->m[param_index];
}

int64_t *pn_optim_step_counter(pn_optim *o) { return &o->step; }
