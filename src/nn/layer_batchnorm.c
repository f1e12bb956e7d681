/* Batch normalization on oneDNN. Training uses batch statistics and updates
 * running averages (PyTorch convention: momentum 0.1, unbiased running
 * variance); inference and frozen layers use the running statistics, so a
 * frozen pretrained backbone keeps computing exactly its pretrained function. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/bn_nhwc.h"
#include "nn/layer_batchnorm.h"

enum { P_GAMMA, P_BETA, P_MEAN, P_VAR };

typedef struct bn_priv {
    float eps, momentum;
    pn_prims k; /* built_mode: 0 inference, 1 batch stats, 2 global stats + backward */
    dnnl_memory_t scale, shift, mean, var, dscale, dshift;
    float *batch_mean, *batch_var, *scale_buf, *shift_buf;
    int manual; /* no JIT kernel in oneDNN for this shape and type: bn_nhwc.c */
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
    p->batch_mean = calloc((size_t)c, sizeof(float));
    p->batch_var = calloc((size_t)c, sizeof(float));
    p->scale_buf = calloc((size_t)c, sizeof(float));
    p->shift_buf = calloc((size_t)c, sizeof(float));
    if (!p->batch_mean || !p->batch_var || !p->scale_buf || !p->shift_buf)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->macs = 0;
    return PN_OK;
}

static void bn_reset(pn_layer *l)
{
    bn_priv *p = l->priv;
    if (!p)
        return;
    pn_prims_reset(&p->k);
    dnnl_memory_t *m[] = {&p->scale, &p->shift, &p->mean, &p->var, &p->dscale, &p->dshift};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        pn_destroy_mem(m[i]);
}

static void bn_destroy(pn_layer *l)
{
    bn_priv *p = l->priv;
    bn_reset(l);
    if (p) {
        free(p->batch_mean);
        free(p->batch_var);
        free(p->scale_buf);
        free(p->shift_buf);
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

static pn_status bn_build(pn_layer *l, pn_net *net, int n, int mode, pn_error *err)
{
    bn_priv *p = l->priv;
    bn_reset(l);
    dnnl_memory_desc_t data, cmd;
    pn_status st = pn_md_nhwc(&data, n, l->out.c, l->out.h, l->out.w, net->dt, err);
    if (st)
        return st;
    dnnl_dims_t cd = {l->out.c};
    PN_DNNL(dnnl_memory_desc_init_by_tag(&cmd, 1, cd, dnnl_f32, dnnl_x), err, l->name);
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (mode != 1 ? dnnl_use_global_stats : 0) |
                     (l->fuse_relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t fd;
    PN_DNNL(dnnl_batch_normalization_forward_desc_init(&fd, mode ? dnnl_forward_training : dnnl_forward_inference,
            &data, p->eps, flags), err, l->name);
    if ((st = pn_make_pd(net, &fd, NULL, NULL, &p->k.fwd_pd, l->name, err)))
        return st;
    const char *impl = "";
    dnnl_primitive_desc_query(p->k.fwd_pd, dnnl_query_impl_info_str, 0, &impl);
    p->manual = strstr(impl, "jit") == NULL;
    p->k.built_n = n;
    p->k.built_mode = mode;
    if (p->manual)
        return PN_OK;
    if ((st = pn_make_prim(p->k.fwd_pd, &p->k.fwd, l->name, err)))
        return st;
    dnnl_engine_t eng = net->ctx->engine;
    float *mean = mode == 1 ? p->batch_mean : pn_layer_param(net, l, P_MEAN)->data;
    float *var = mode == 1 ? p->batch_var : pn_layer_param(net, l, P_VAR)->data;
    if ((st = pn_prims_memories(&p->k, net, &data, &data, mode != 0, l->name, err)) ||
        (st = pn_prims_workspace(&p->k, net, l->name, err))) /* a fused ReLU's, in training */
        return st;
    PN_DNNL(dnnl_memory_create(&p->scale, &cmd, eng, pn_layer_param(net, l, P_GAMMA)->data), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->shift, &cmd, eng, pn_layer_param(net, l, P_BETA)->data), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->mean, &cmd, eng, mean), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->var, &cmd, eng, var), err, l->name);
    if (mode) {
        dnnl_batch_normalization_desc_t bd;
        PN_DNNL(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data,
                p->eps, flags), err, l->name);
        if ((st = pn_make_bwd_prim(net, &bd, p->k.fwd_pd, &p->k.bwd, l->name, err)))
            return st;
        PN_DNNL(dnnl_memory_create(&p->dscale, &cmd, eng, pn_layer_param(net, l, P_GAMMA)->grad), err, l->name);
        PN_DNNL(dnnl_memory_create(&p->dshift, &cmd, eng, pn_layer_param(net, l, P_BETA)->grad), err, l->name);
    }
    return PN_OK;
}

/* y = scale * x + shift with the statistics of `mode` (batch or running). */
static void manual_forward(pn_layer *l, pn_net *net, int mode)
{
    bn_priv *p = l->priv;
    const float *gamma = pn_layer_param(net, l, P_GAMMA)->data, *beta = pn_layer_param(net, l, P_BETA)->data;
    const float *mean = mode == 1 ? p->batch_mean : pn_layer_param(net, l, P_MEAN)->data;
    const float *var = mode == 1 ? p->batch_var : pn_layer_param(net, l, P_VAR)->data;
    for (int c = 0; c < l->out.c; c++) {
        p->scale_buf[c] = gamma[c] / sqrtf(var[c] + p->eps);
        p->shift_buf[c] = beta[c] - mean[c] * p->scale_buf[c];
    }
    size_t rows = (size_t)net->cur_n * l->out.h * l->out.w;
    pn_bn_nhwc_apply(pn_layer_in(net, l, 0)->data, l->out.data, net->dt, rows, l->out.c,
                     p->scale_buf, p->shift_buf, l->fuse_relu);
}

static pn_status run_forward(pn_layer *l, pn_net *net, pn_error *err)
{
    bn_priv *p = l->priv;
    if (p->manual) {
        size_t rows = (size_t)net->cur_n * l->out.h * l->out.w;
        if (p->k.built_mode == 1 && pn_bn_nhwc_stats(pn_layer_in(net, l, 0)->data, net->dt, rows,
                                                   l->out.c, p->batch_mean, p->batch_var))
            return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
        manual_forward(l, net, p->k.built_mode);
        return PN_OK;
    }
    dnnl_memory_set_data_handle(p->k.src, pn_layer_in(net, l, 0)->data);
    dnnl_memory_set_data_handle(p->k.dst, l->out.data);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->k.src}, {DNNL_ARG_DST, p->k.dst},
                              {DNNL_ARG_SCALE, p->scale}, {DNNL_ARG_SHIFT, p->shift},
                              {DNNL_ARG_MEAN, p->mean}, {DNNL_ARG_VARIANCE, p->var},
                              {DNNL_ARG_WORKSPACE, p->k.ws}};
    return pn_exec(net, p->k.fwd, p->k.ws ? 7 : 6, args, l->name, err);
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
    double count = (double)net->cur_n * l->out.h * l->out.w;
    float unbias = count > 1 ? (float)(count / (count - 1)) : 1.0f;
    for (int c = 0; c < l->out.c; c++) {
        m->data[c] = (1 - p->momentum) * m->data[c] + p->momentum * p->batch_mean[c];
        v->data[c] = (1 - p->momentum) * v->data[c] + p->momentum * p->batch_var[c] * unbias;
    }
}

static pn_status bn_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    bn_priv *p = l->priv;
    int mode = bn_mode(net, l, train);
    pn_status st;
    if ((p->k.built_n != net->cur_n || p->k.built_mode != mode) &&
        (st = bn_build(l, net, net->cur_n, mode, err)))
        return st;
    if ((st = run_forward(l, net, err)))
        return st;
    if (mode != 1)
        return PN_OK;
    if (net->calibrating_bn) {
        recalibrate(l, net);
        if (p->manual) {
            manual_forward(l, net, mode);
            return PN_OK;
        }
        return run_forward(l, net, err);
    }
    update_running(l, net);
    return PN_OK;
}

static pn_status bn_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    bn_priv *p = l->priv;
    if (!pn_net_needs_input_grad(net, l, 0) && !pn_layer_trains(net, l))
        return PN_OK;
    /* oneDNN always computes diff_src; send it to scratch when nobody needs it. */
    pn_buf *in = pn_layer_in(net, l, 0);
    int want = pn_net_needs_input_grad(net, l, 0);
    void *dsrc = want ? pn_grad_begin(net, in) : net->scratch;
    if (p->manual) {
        int global = p->k.built_mode != 1;
        const float *mean = global ? pn_layer_param(net, l, P_MEAN)->data : p->batch_mean;
        const float *var = global ? pn_layer_param(net, l, P_VAR)->data : p->batch_var;
        for (int c = 0; c < l->out.c; c++)
            p->scale_buf[c] = 1.0f / sqrtf(var[c] + p->eps); /* invstd */
        size_t rows = (size_t)net->cur_n * l->out.h * l->out.w;
        if (pn_bn_nhwc_backward(in->data, l->out.grad, l->fuse_relu ? l->out.data : NULL, dsrc,
                                net->dt, rows, l->out.c, mean,
                                p->scale_buf, pn_layer_param(net, l, P_GAMMA)->data, global,
                                pn_layer_param(net, l, P_GAMMA)->grad,
                                pn_layer_param(net, l, P_BETA)->grad))
            return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
        if (want)
            pn_grad_end(net, in, dsrc, net->cur_n);
        return PN_OK;
    }
    dnnl_memory_set_data_handle(p->k.src, in->data);
    dnnl_memory_set_data_handle(p->k.ddst, l->out.grad);
    dnnl_memory_set_data_handle(p->k.dsrc, dsrc);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->k.src}, {DNNL_ARG_DIFF_DST, p->k.ddst},
                              {DNNL_ARG_MEAN, p->mean}, {DNNL_ARG_VARIANCE, p->var},
                              {DNNL_ARG_SCALE, p->scale}, {DNNL_ARG_SHIFT, p->shift},
                              {DNNL_ARG_DIFF_SRC, p->k.dsrc}, {DNNL_ARG_DIFF_SCALE, p->dscale},
                              {DNNL_ARG_DIFF_SHIFT, p->dshift}, {DNNL_ARG_WORKSPACE, p->k.ws}};
    pn_status st = pn_exec(net, p->k.bwd, p->k.ws ? 10 : 9, args, l->name, err);
    if (!st && want)
        pn_grad_end(net, in, dsrc, net->cur_n);
    return st;
}

const pn_layer_ops pn_layer_batchnorm_ops = {"batchnorm", bn_init, bn_forward, bn_backward,
                                             bn_reset, bn_destroy};
