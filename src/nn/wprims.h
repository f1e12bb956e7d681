/* The oneDNN state of a layer with weights (convolution, fully connected):
 * forward, backward-data and backward-weights primitives, their memories, and
 * the weights kept in the layout each primitive asked for. The layers build
 * the primitives; running them is the same for both and lives here. */
#ifndef PNEUMO_NN_WPRIMS_H
#define PNEUMO_NN_WPRIMS_H

#include "nn/internal.h"

typedef struct pn_wprims {
    int built_n, built_train;
    int has_bias;
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    dnnl_memory_t src, dst, bias, dsrc, ddst, dbias;
    pn_wmem w_fwd, w_bwd, dw;
    uint64_t synced_wver;
    /* The primitives want blocked activations (Winograd): x = input and its
     * gradient (relayout slot 0), y = output and its gradient (slot 1). */
    int blocked, ddst_staged;
    pn_relayout rx, ry;
} pn_wprims;

void pn_wprims_reset(pn_wprims *w);
/* Runs the forward primitive on the layer's input and output, refreshing the
 * reordered weights when the parameters changed. */
pn_status pn_wprims_forward(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err);
/* Weight (and bias) gradients into the parameters' grad arrays. */
pn_status pn_wprims_backward_weights(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err);
/* The input gradient, accumulated into the input's gradient buffer. */
pn_status pn_wprims_backward_data(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err);

#endif
