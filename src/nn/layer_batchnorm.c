/* Batch normalization. Training uses batch statistics and updates running
 * averages (PyTorch convention: momentum 0.1, unbiased running variance);
 * inference and frozen layers use the running statistics, so a frozen
 * pretrained backbone keeps computing exactly its pretrained function.
 * The arithmetic is in bn_nhwc.c: memory-bound loops that beat oneDNN 2.6's
 * batch norm by making fewer passes over the activations. With a process
 * group (pn_net_options.bn_group) the batch statistics and their gradient
 * sums are the whole group's batch's (synchronised batch norm). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/bn_nhwc.h"
#include "nn/layer_batchnorm.h"

enum { P_GAMMA, P_BETA, P_MEAN, P_VAR };

typedef struct bn_priv {
    float eps, momentum;
    const pn_bn_kernels *kernels;
    int mode; /* of the last forward: 0 inference, 1 batch stats, 2 running stats + backward */
    float *batch_mean, *batch_var; /* of the last batch-statistics forward */
    float *scale, *shift;          /* the last forward's y = x * scale + shift */
    float *invstd;
    double count;                  /* rows behind batch_mean/var (the group's, when synchronised) */
} bn_priv;

float pn_batchnorm_eps(const pn_layer *l) { return ((const bn_priv *)l->priv)->eps; }

static pn_status bn_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    bn_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    pn_status st;
    /* Standalone [batchnorm] or the one a [conv] section with batchnorm=1 adds. */
    int standalone = !strcmp(s->kind, "batchnorm");
    if ((st = pn_cfg_float(s, standalone ? "eps" : "bn_eps", 1e-5f, &p->eps, err)) ||
        (st = pn_cfg_float(s, standalone ? "momentum" : "bn_momentum", 0.1f, &p->momentum, err)))
        return st;
    l->out = *pn_layer_in(net, l, 0);
    int c = l->out.c;
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        size_t idx;
        if ((st = pn_net_add_param(net, l, names[k], 1, &c, k >= P_MEAN, 1, &idx, err)))
            return st;
        if (k == P_GAMMA || k == P_VAR)
            for (int i = 0; i < c; i++)
                net->params[idx].data[i] = 1;
    }
    p->kernels = pn_bn_kernels_best();
    float **bufs[] = {&p->batch_mean, &p->batch_var, &p->scale, &p->shift, &p->invstd};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i] = calloc((size_t)c, sizeof(float))))
            return pn_fail(err, PN_ENOMEM, "out of memory");
    l->macs = 0;
    return PN_OK;
}

static void bn_destroy(pn_layer *l)
{
    bn_priv *p = l->priv;
    if (p) {
        free(p->batch_mean);
        free(p->batch_var);
        free(p->scale);
        free(p->shift);
        free(p->invstd);
    }
    free(p);
    l->priv = NULL;
}

static int bn_mode(pn_net *net, pn_layer *l, int train)
{
    if (train == PN_FWD_INFER)
        return 0;
    if (train == PN_FWD_GRAD)
        return 2;
    return pn_layer_trains(net, l) || net->calibrating_bn ? 1 : 2;
}

static pn_bn_act bn_act(const pn_layer *l)
{
    return l->fused_act == PN_ACT_RELU ? PN_BN_RELU
           : l->fused_act == PN_ACT_HARDSWISH ? PN_BN_HARDSWISH : PN_BN_LINEAR;
}

/* scale and shift of y = scale * x + shift with the statistics of p->mode
 * (batch or running). */
static void coefficients(pn_layer *l, pn_net *net)
{
    bn_priv *p = l->priv;
    const float *gamma = pn_layer_param(net, l, P_GAMMA)->data, *beta = pn_layer_param(net, l, P_BETA)->data;
    const float *mean = p->mode == 1 ? p->batch_mean : pn_layer_param(net, l, P_MEAN)->data;
    const float *var = p->mode == 1 ? p->batch_var : pn_layer_param(net, l, P_VAR)->data;
    for (int c = 0; c < l->out.c; c++) {
        p->invstd[c] = 1.0f / sqrtf(var[c] + p->eps);
        p->scale[c] = gamma[c] * p->invstd[c];
        p->shift[c] = beta[c] - mean[c] * p->scale[c];
    }
}

static pn_status apply(pn_layer *l, pn_net *net, pn_error *err)
{
    bn_priv *p = l->priv;
    coefficients(l, net);
    if (l->deferred) /* the consumer applies it */
        return PN_OK;
    size_t rows = (size_t)net->cur_n * l->out.h * l->out.w;
    if (pn_bn_nhwc_apply(p->kernels, pn_layer_in(net, l, 0)->data, l->out.data, net->dt, rows,
                         l->out.c, p->scale, p->shift, bn_act(l)))
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    return PN_OK;
}

void pn_batchnorm_view(pn_layer *l, pn_net *net, pn_bn_view *v)
{
    bn_priv *p = l->priv;
    v->scale = p->scale;
    v->shift = p->shift;
    v->global_stats = p->mode != 1;
    v->mean = v->global_stats ? pn_layer_param(net, l, P_MEAN)->data : p->batch_mean;
    v->invstd = p->invstd;
    v->gamma = pn_layer_param(net, l, P_GAMMA)->data;
    v->dgamma = pn_layer_param(net, l, P_GAMMA)->grad;
    v->dbeta = pn_layer_param(net, l, P_BETA)->grad;
    v->act = bn_act(l);
}

/* Sets the running statistics to this batch's and rescales gamma/beta so the
 * layer's output is unchanged: for BN-folded pretrained weights (gamma 1,
 * mean 0, var 1-eps) this keeps the pretrained function under batch statistics. */
static void recalibrate(pn_layer *l, pn_net *net)
{
    bn_priv *p = l->priv;
    pn_param *g = pn_layer_param(net, l, P_GAMMA), *b = pn_layer_param(net, l, P_BETA);
    pn_param *m = pn_layer_param(net, l, P_MEAN), *v = pn_layer_param(net, l, P_VAR);
    for (int c = 0; c < l->out.c; c++) {
        float old_scale = g->data[c] / sqrtf(v->data[c] + p->eps);
        float new_std = sqrtf(p->batch_var[c] + p->eps);
        /* old: y = s*(z - m) + beta;  new: y = gamma'*(z - mu)/new_std + beta' */
        b->data[c] = b->data[c] + old_scale * (p->batch_mean[c] - m->data[c]);
        g->data[c] = old_scale * new_std;
        m->data[c] = p->batch_mean[c];
        v->data[c] = p->batch_var[c];
    }
}

static void update_running(pn_layer *l, pn_net *net)
{
    bn_priv *p = l->priv;
    pn_param *m = pn_layer_param(net, l, P_MEAN), *v = pn_layer_param(net, l, P_VAR);
    double count = p->count;
    float unbias = count > 1 ? (float)(count / (count - 1)) : 1.0f;
    for (int c = 0; c < l->out.c; c++) {
        m->data[c] = (1 - p->momentum) * m->data[c] + p->momentum * p->batch_mean[c];
        v->data[c] = (1 - p->momentum) * v->data[c] + p->momentum * p->batch_var[c] * unbias;
    }
}

/* Synchronised batch norm: this process's mean and (biased) variance of
 * p->count rows become the group's, from the group's sums of count, x and
 * x^2, each process's rebuilt in double from its mean and variance. */
static pn_status group_stats(pn_layer *l, pn_net *net, pn_error *err)
{
    bn_priv *p = l->priv;
    int c = l->out.c;
    double *s = malloc((2 * (size_t)c + 1) * sizeof *s); /* [sum x (c)][sum x^2 (c)][count] */
    if (!s)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    for (int k = 0; k < c; k++) {
        s[k] = p->count * p->batch_mean[k];
        s[c + k] = p->count * ((double)p->batch_var[k] + (double)p->batch_mean[k] * p->batch_mean[k]);
    }
    s[2 * c] = p->count;
    int failed = net->bn_group.sum(net->bn_group.user, s, 2 * (size_t)c + 1);
    for (int k = 0; !failed && k < c; k++) {
        double mean = s[k] / s[2 * c], var = s[c + k] / s[2 * c] - mean * mean;
        p->batch_mean[k] = (float)mean;
        p->batch_var[k] = (float)(var > 0 ? var : 0);
    }
    p->count = s[2 * c];
    free(s);
    return failed ? pn_fail(err, PN_EIO, "%s: batch statistics could not be summed over the process group",
                            l->name)
                  : PN_OK;
}

static pn_status bn_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    bn_priv *p = l->priv;
    p->mode = bn_mode(net, l, train);
    if (p->mode == 1) {
        size_t rows = (size_t)net->cur_n * l->out.h * l->out.w;
        pn_status st;
        if (pn_bn_nhwc_stats(p->kernels, pn_layer_in(net, l, 0)->data, net->dt, rows, l->out.c,
                             p->batch_mean, p->batch_var))
            return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
        p->count = (double)rows;
        if (net->bn_group.sum && (st = group_stats(l, net, err)))
            return st;
        if (net->calibrating_bn)
            recalibrate(l, net);
        else
            update_running(l, net);
    }
    return apply(l, net, err);
}

static pn_status bn_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    bn_priv *p = l->priv;
    if (l->deferred == PN_BN_IN_SE || (!pn_net_needs_input_grad(net, l, 0) && !pn_layer_trains(net, l)))
        return PN_OK; /* in an SE block: its backward did this */
    /* dx is always computed; it goes to scratch when nobody needs it. */
    pn_buf *in = pn_layer_in(net, l, 0);
    int want = pn_net_needs_input_grad(net, l, 0);
    void *dsrc = want ? pn_grad_begin(net, in) : net->scratch;
    int global = p->mode != 1;
    const float *mean = global ? pn_layer_param(net, l, P_MEAN)->data : p->batch_mean;
    size_t rows = (size_t)net->cur_n * l->out.h * l->out.w;
    int rc = pn_bn_nhwc_backward_group(p->kernels, in->data, l->out.grad, dsrc, net->dt, rows, l->out.c,
                                       mean, p->invstd, pn_layer_param(net, l, P_GAMMA)->data, global,
                                       bn_act(l), p->scale, p->shift, pn_layer_param(net, l, P_GAMMA)->grad,
                                       pn_layer_param(net, l, P_BETA)->grad,
                                       net->bn_group.sum && !global ? &net->bn_group : NULL);
    if (rc)
        return rc == -1 ? pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name)
                        : pn_fail(err, PN_EIO, "%s: gradient sums could not be summed over the process group",
                                  l->name);
    if (want)
        pn_grad_end(net, in, dsrc, net->cur_n);
    return PN_OK;
}

static void bn_describe(const pn_layer *l, const pn_net *net, pn_layer_desc *d)
{
    const pn_param *p = &net->params[l->first_param];
    d->eps = pn_batchnorm_eps(l);
    d->act = l->fused_act;
    d->gamma = p[P_GAMMA].data;
    d->beta = p[P_BETA].data;
    d->mean = p[P_MEAN].data;
    d->var = p[P_VAR].data;
}

const pn_layer_ops pn_layer_batchnorm_ops = {"batchnorm", bn_init, bn_forward, bn_backward,
                                             NULL, bn_destroy, bn_describe};
