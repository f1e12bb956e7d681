/* Hand-written depthwise convolution for training (NHWC, fp32 or bf16
 * storage, fp32 math). The weight gradient is used where oneDNN 2.6 has no
 * JIT kernel (bf16 5x5) and where the convolution applies the batch norm
 * feeding it. The forward kernel (8 output pixels x 16 channels in registers
 * per step, input rows converted to fp32 once into zero-padded row buffers)
 * runs the stride-1 input gradient, a forward pass of the flipped kernel over
 * dy, ~15% faster than oneDNN 2.6's inside MobileNetV3, and the forward where
 * the convolution applies a batch norm (as fast as oneDNN's otherwise, which
 * then stays). Both apply a batch norm as they convert input rows. */
#ifndef PNEUMO_NN_DW_NHWC_H
#define PNEUMO_NN_DW_NHWC_H

#include "nn/bn_nhwc.h"
#include "pneumo/tensor.h"

typedef struct pn_dw_shape {
    int n, c, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
} pn_dw_shape;

/* A batch norm the convolution applies to its input as it reads it:
 * x -> act(x * scale[c] + shift[c]); the zero padding stays 0. NULL: none. */
typedef struct pn_dw_prologue {
    const float *scale, *shift;
    pn_bn_act act;
} pn_dw_prologue;

/* Whether the two kernels below run this shape here (AVX-512, no
 * dilation, kernels up to 7x7). */
int pn_dw_nhwc_fast_available(const pn_dw_shape *s);
/* wt[tap][c] from our weights w[c][kh][kw]; flip reverses the taps (the
 * input gradient's kernel). */
void pn_dw_transpose_weights(const float *w, int c, int kh, int kw, int flip, float *wt);
/* y = conv(pro(x), wt), no bias. -1 on OOM. */
int pn_dw_nhwc_forward(const void *x, const pn_dw_prologue *pro, const float *wt, void *y,
                       pn_dtype t, const pn_dw_shape *s);
/* dx (overwritten) from dy for a stride-1 convolution of shape s, with wt
 * transposed with flip = 1. -1 on OOM. */
int pn_dw_nhwc_backward_data(const void *dy, const float *wt_flipped, void *dx, pn_dtype t,
                             const pn_dw_shape *s);
/* dweights: c x kh x kw (fp32, overwritten); dbias: c or NULL; the input is
 * pro(x). -1 on OOM. */
int pn_dw_nhwc_backward_weights(const void *x, const pn_dw_prologue *pro, const void *dy,
                                pn_dtype t, const pn_dw_shape *s, float *dweights, float *dbias);

#endif
