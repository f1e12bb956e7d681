#ifndef PNEUMO_NN_LAYER_BATCHNORM_H
#define PNEUMO_NN_LAYER_BATCHNORM_H
#include "nn/bn_nhwc.h"
#include "nn/internal.h"
float pn_batchnorm_eps(const pn_layer *l);

/* What a consumer applying a deferred batch norm (pn_layer.deferred) needs,
 * as of the layer's last forward: y = act(x * scale + shift), and for its
 * backward the statistics used (batch, or running when global_stats), gamma
 * and where its parameter gradients go. */
typedef struct pn_bn_view {
    const float *scale, *shift, *mean, *invstd, *gamma;
    float *dgamma, *dbeta;
    int global_stats;
    pn_bn_act act;
} pn_bn_view;
void pn_batchnorm_view(pn_layer *l, pn_net *net, pn_bn_view *v);
#endif
