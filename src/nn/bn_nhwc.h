/* Hand-written NHWC batch-norm kernels (fp32 or bf16 storage, fp32 math). */
#ifndef PNEUMO_NN_BN_NHWC_H
#define PNEUMO_NN_BN_NHWC_H

#include <stddef.h>

#include "pneumo/tensor.h"

/* Per-channel mean and biased variance over rows x c. Returns -1 on OOM. */
int pn_bn_nhwc_stats(const void *x, pn_dtype t, size_t rows, int c, float *mean, float *var);
/* y = x * scale[c] + shift[c], then max(0, y) when relu (y may alias x). */
void pn_bn_nhwc_apply(const void *x, void *y, pn_dtype t, size_t rows, int c, const float *scale,
                      const float *shift, int relu);
/* Gradients of y = gamma * (x - mean) * invstd + beta; with global_stats the
 * statistics are constants. relu_y: the output of a fused ReLU (dy is masked
 * where it is 0), or NULL. Returns -1 on OOM. */
int pn_bn_nhwc_backward(const void *x, const void *dy, const void *relu_y, void *dx, pn_dtype t,
                        size_t rows, int c, const float *mean, const float *invstd,
                        const float *gamma, int global_stats, float *dgamma, float *dbeta);

#endif
