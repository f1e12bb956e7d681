/* Convolution geometry, shared with the inference fusion code. */
#ifndef PNEUMO_NN_LAYER_CONV_H
#define PNEUMO_NN_LAYER_CONV_H

#include "nn/internal.h"

typedef struct pn_conv_geom {
    int filters, in_c, kh, kw, sh, sw, dh, dw, groups;
    int pt, pb, pl, pr; /* padding top, bottom, left, right */
    int has_bias;
    int direct_only;      /* cfg algorithm = direct: never Winograd */
    pn_act_kind post_act; /* inference fusion; PN_ACT_LINEAR when none */
    float *fused_bias;    /* inference fusion: bias from a folded batch norm (owned) */
} pn_conv_geom;

const pn_conv_geom *pn_conv_geometry(const pn_layer *l);
pn_conv_geom *pn_conv_geometry_mut(pn_layer *l);
/* "winograd" or "direct": what the last built primitives use. */
const char *pn_conv_algorithm(const pn_layer *l);
/* The weight gradient is a matrix product (conv_wgrad_gemm.c). */
int pn_conv_uses_gemm_wgrad(const pn_layer *l);
/* This convolution can apply a batch norm feeding it as it reads its input
 * (pn_layer.deferred = PN_BN_IN_CONV): depthwise, no bias, kernels of dw_nhwc.h. */
int pn_conv_applies_input_bn(pn_layer *l, pn_net *net);
/* Drops primitives so the next forward rebuilds them (after fusion). */
void pn_conv_rebuild(pn_layer *l);

#endif
