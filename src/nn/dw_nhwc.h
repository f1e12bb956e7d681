/* Hand-written depthwise convolution for training (NHWC, fp32 or bf16
 * storage, fp32 math). The weight gradient is used where oneDNN 2.6 has no
 * JIT kernel (bf16 5x5). The stride-1 input gradient (a forward pass of the
 * flipped kernel over dy) where the CPU has AVX-512: 8 output pixels x 16
 * channels in registers per step, input rows converted to fp32 once into
 * zero-padded row buffers; ~15% faster than oneDNN 2.6's inside MobileNetV3
 * (its forward kernel is as fast as this one there, so it stays). */
#ifndef PNEUMO_NN_DW_NHWC_H
#define PNEUMO_NN_DW_NHWC_H

#include "pneumo/tensor.h"

typedef struct pn_dw_shape {
    int n, c, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
} pn_dw_shape;

/* Whether the two kernels below run this shape here (AVX-512, no
 * dilation, kernels up to 7x7). */
int pn_dw_nhwc_fast_available(const pn_dw_shape *s);
/* wt[tap][c] from our weights w[c][kh][kw]; flip reverses the taps (the
 * input gradient's kernel). */
void pn_dw_transpose_weights(const float *w, int c, int kh, int kw, int flip, float *wt);
/* y = conv(x, wt), no bias: the input gradient's building block. -1 on OOM. */
int pn_dw_nhwc_forward(const void *x, const float *wt, void *y, pn_dtype t, const pn_dw_shape *s);
/* dx (overwritten) from dy for a stride-1 convolution of shape s, with wt
 * transposed with flip = 1. -1 on OOM. */
int pn_dw_nhwc_backward_data(const void *dy, const float *wt_flipped, void *dx, pn_dtype t,
                             const pn_dw_shape *s);
/* dweights: c x kh x kw (fp32, overwritten); dbias: c or NULL. -1 on OOM. */
int pn_dw_nhwc_backward_weights(const void *x, const void *dy, pn_dtype t, const pn_dw_shape *s,
                                float *dweights, float *dbias);

#endif
