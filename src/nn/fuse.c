/* Inference fusion: conv -> batchnorm -> activation becomes one oneDNN
 * convolution with folded weights and an eltwise post-op, which saves two
 * passes over memory per block (what makes batch-1 latency low). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/layer_batchnorm.h"
#include "nn/layer_conv.h"

pn_act_kind pn_activation_kind(const pn_layer *l);

static int consumers(const pn_net *net, int index)
{
    int count = 0;
    for (int i = 1; i < net->n_layers; i++)
        for (int k = 0; k < net->layers[i].n_inputs; k++)
            count += net->layers[i].inputs[k] == index;
    return count;
}

/* The single layer reading layer `index`, if it is the next one and reads nothing else. */
static pn_layer *sole_successor(pn_net *net, int index)
{
    if (index + 1 >= net->n_layers || consumers(net, index) != 1)
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
