/* Hand-written depthwise-convolution weight gradient (NHWC, fp32 or bf16 storage). */
#ifndef PNEUMO_NN_DW_NHWC_H
#define PNEUMO_NN_DW_NHWC_H

#include "pneumo/tensor.h"

typedef struct pn_dw_shape {
    int n, c, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
} pn_dw_shape;

/* dweights: c x kh x kw (fp32, overwritten); dbias: c or NULL. -1 on OOM. */
int pn_dw_nhwc_backward_weights(const void *x, const void *dy, pn_dtype t, const pn_dw_shape *s,
                                float *dweights, float *dbias);

#endif
