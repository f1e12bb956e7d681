/* Every fusion pass in one place.
 *
 * Training fusions (pn_net_plan_fusion, at build time): batch norm applies
 * the next ReLU/hardswish, the next SE block or depthwise convolution
 * applies the norm, and activations run in place, each only when the tensor
 * has a single reader.
 *
 * Inference fusion (pn_net_fuse_for_inference): conv -> batchnorm ->
 * activation becomes one oneDNN convolution with folded weights and an
 * eltwise post-op, which saves two passes over memory per block (what makes
 * batch-1 latency low). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_se.h"
#include "nn/internal.h"
#include "nn/layer_batchnorm.h"
#include "nn/layer_conv.h"

/* How many live layers (not fused away) read layer index's output. Every
 * fusion asks this: a tensor read by one layer only can be fused into it or
 * overwritten by it. */
static int readers_of(const pn_net *net, int index)
{
    int readers = 0;
    for (int j = 1; j < net->n_layers; j++)
        if (!net->layers[j].fused_away)
            for (int k = 0; k < net->layers[j].n_inputs; k++)
                readers += net->layers[j].inputs[k] == index;
    return readers;
}

/* Layers after `from` that read `old` read `now` instead. */
static void redirect_readers(pn_net *net, int from, int old, int now)
{
    for (int j = from + 1; j < net->n_layers; j++)
        for (int k = 0; k < net->layers[j].n_inputs; k++)
            if (net->layers[j].inputs[k] == old)
                net->layers[j].inputs[k] = now;
}

/* ---- training fusions ---- */

/* batch norm -> ReLU or hardswish, the norm read by nothing else: the
 * batch-norm kernels apply the activation in the same pass (training too),
 * recompute its derivative from their input in backward, and the activation
 * layer drops out of the graph with its two passes over the tensor. */
static void fuse_bn_act(pn_net *net)
{
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *act = &net->layers[i];
        int bn = act->inputs[0];
        if (act->ops != &pn_layer_activation_ops ||
            (pn_activation_kind(act) != PN_ACT_RELU && pn_activation_kind(act) != PN_ACT_HARDSWISH) ||
            net->layers[bn].ops != &pn_layer_batchnorm_ops || readers_of(net, bn) != 1)
            continue;
        net->layers[bn].fused_act = pn_activation_kind(act);
        act->fused_away = 1;
        redirect_readers(net, i, i, bn);
    }
}

/* batch norm -> squeeze-excitation, the norm read by nothing else: the SE
 * block applies the normalisation on the fly and runs its backward (bn_se.h),
 * saving two passes over the tensor each way and its buffer. */
static void fuse_bn_se(pn_net *net)
{
    if (!pn_bn_se_available() || net->bn_group.sum) /* its statistics are this process's */
        return;
    for (int i = 1; i < net->n_layers; i++) {
        int bn = net->layers[i].inputs[0];
        if (net->layers[i].ops == &pn_layer_se_ops &&
            net->layers[bn].ops == &pn_layer_batchnorm_ops && readers_of(net, bn) == 1)
            net->layers[bn].deferred = PN_BN_IN_SE;
    }
}

/* batch norm -> depthwise convolution (MobileNet's expansions), the norm read
 * by nothing else: the convolution's kernels (dw_nhwc.h) apply the norm as
 * they convert input rows, in the forward and the weight gradient, saving
 * the norm's output pass and the convolution's read of it, and the buffer. */
static void fuse_bn_conv(pn_net *net)
{
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *conv = &net->layers[i];
        int bn = conv->inputs[0];
        if (conv->ops == &pn_layer_conv_ops && net->layers[bn].ops == &pn_layer_batchnorm_ops &&
            !net->layers[bn].deferred && readers_of(net, bn) == 1 && pn_conv_applies_input_bn(conv, net))
            net->layers[bn].deferred = PN_BN_IN_CONV;
    }
}

void pn_net_undefer(pn_net *net)
{
    int any = 0;
    for (int i = 0; i < net->n_layers; i++) {
        any |= net->layers[i].deferred;
        net->layers[i].deferred = 0;
    }
    if (any) /* the batch norms' outputs need buffers now */
        pn_net_free_buffers(net);
}

/* Training fusions (when fuse), then in-place activations: an activation whose backward can use its output, reading a tensor nobody
 * else reads, may overwrite that tensor: the producer's backward needs its
 * own input and output gradient, never its output. Saves a buffer per block. */
void pn_net_plan_fusion(pn_net *net, int fuse)
{
    if (fuse) {
        fuse_bn_act(net);
        fuse_bn_se(net);
        fuse_bn_conv(net);
    }
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        dnnl_alg_kind_t alg;
        int src = l->inputs[0];
        if (l->ops != &pn_layer_activation_ops || l->fused_away || src == 0 ||
            !pn_act_dnnl_use_dst(pn_activation_kind(l), &alg))
            continue;
        l->in_place = readers_of(net, src) == 1 && net->watch != src;
    }
}

/* ---- inference fusion ---- */

/* The single layer reading layer `index`, if it is the next one and reads nothing else. */
static pn_layer *sole_successor(pn_net *net, int index)
{
    if (index + 1 >= net->n_layers || readers_of(net, index) != 1)
        return NULL;
    pn_layer *next = &net->layers[index + 1];
    return next->n_inputs == 1 && next->inputs[0] == index ? next : NULL;
}

static pn_status fold_batchnorm(pn_net *net, pn_layer *conv, pn_layer *bn, pn_error *err)
{
    pn_conv_geom *g = pn_conv_geometry_mut(conv);
    float eps = pn_batchnorm_eps(bn);
    const float *gamma = pn_layer_param(net, bn, 0)->data, *beta = pn_layer_param(net, bn, 1)->data;
    const float *mean = pn_layer_param(net, bn, 2)->data, *var = pn_layer_param(net, bn, 3)->data;
    pn_param *w = pn_layer_param(net, conv, 0);
    const float *old_bias = g->has_bias ? pn_layer_param(net, conv, 1)->data : NULL;
    float *bias = malloc((size_t)g->filters * sizeof(float));
    if (!bias)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    size_t per_out = w->numel / (size_t)g->filters;
    for (int o = 0; o < g->filters; o++) {
        float s = gamma[o] / sqrtf(var[o] + eps);
        for (size_t k = 0; k < per_out; k++)
            w->data[(size_t)o * per_out + k] *= s;
        bias[o] = ((old_bias ? old_bias[o] : 0) - mean[o]) * s + beta[o];
    }
    free(g->fused_bias);
    g->fused_bias = bias;
    g->has_bias = 1;
    bn->fused_away = 1;
    return PN_OK;
}

pn_status pn_net_fuse_for_inference(pn_net *net, pn_error *err)
{
    /* Buffers are re-made on the next forward so fused layers alias their producer's. */
    pn_net_undefer(net); /* a folded norm's output is its conv's */
    pn_net_free_buffers(net);
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *conv = &net->layers[i];
        if (conv->ops != &pn_layer_conv_ops || conv->fused_away)
            continue;
        pn_layer *next = sole_successor(net, i);
        int tail = i;
        if (next && next->ops == &pn_layer_batchnorm_ops) {
            pn_status st = fold_batchnorm(net, conv, next, err);
            if (st)
                return st;
            if (next->fused_act != PN_ACT_LINEAR) { /* the activation it carried becomes the conv's post-op */
                pn_conv_geometry_mut(conv)->post_act = next->fused_act;
                pn_conv_rebuild(conv);
                continue;
            }
            tail = next->index;
            next = sole_successor(net, tail);
        }
        dnnl_alg_kind_t alg;
        float a, b;
        if (next && next->ops == &pn_layer_activation_ops &&
            pn_act_dnnl(pn_activation_kind(next), &alg, &a, &b)) {
            pn_conv_geometry_mut(conv)->post_act = pn_activation_kind(next);
            next->fused_away = 1;
        }
        pn_conv_rebuild(conv);
    }
    net->can_train = 0;
    net->wver++;
    return PN_OK;
}
