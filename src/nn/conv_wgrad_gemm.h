/* A convolution's weight gradient as one matrix product (bf16, AMX):
 *   dW[oc][kh kw ic] = dY^T[oc][pixels] x col[pixels][kh kw ic]
 * with col the im2col expansion of the input. oneDNN 2.6's AMX
 * weight-gradient kernel runs at about half its forward speed on small images
 * (ResNet's 7x7 stage: 11 ms where this takes 6, 2.6 for the stride-2 one
 * where it takes 11.7); its matmul does not have that weakness. The two work
 * buffers are the net's shared slots, so this costs no memory per layer. */
#ifndef PNEUMO_NN_CONV_WGRAD_GEMM_H
#define PNEUMO_NN_CONV_WGRAD_GEMM_H

#include "nn/internal.h"
#include "nn/layer_conv.h"

typedef struct pn_wgrad_gemm {
    dnnl_primitive_t matmul, to_oihw;
    dnnl_memory_t dy_t, col, prod, prod_4d, grad;
    size_t col_bytes, prod_bytes;
} pn_wgrad_gemm;

/* Whether this path is used for the layer (bf16, dense, no bias, a spatial
 * kernel, output of at most 7x7). */
int pn_wgrad_gemm_pays(const pn_conv_geom *g, const pn_layer *l, const pn_net *net);
pn_status pn_wgrad_gemm_init(pn_wgrad_gemm *w, pn_net *net, pn_layer *l, int n, pn_error *err);
/* Writes the weight gradient of the last forward/backward into the layer's
 * weight grad (fp32, O I kh kw). */
pn_status pn_wgrad_gemm_run(pn_wgrad_gemm *w, pn_net *net, pn_layer *l, pn_error *err);
void pn_wgrad_gemm_free(pn_wgrad_gemm *w);

#endif
