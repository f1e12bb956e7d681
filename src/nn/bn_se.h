/* Batch norm (+ ReLU or hardswish) -> squeeze-and-excitation, fused for
 * training (MobileNetV3's depthwise blocks). The SE block reads the batch
 * norm's input x and computes its own input y = act(x * scale + shift) on
 * the fly, so y is never stored, and the batch norm's backward runs inside
 * the SE's. Each thread runs an image's two passes back to back (pool and
 * scale; gate gradient and batch-norm sums), the second finding the image in
 * cache. Reads and writes of the n x hw x c tensors from memory, fused
 * (the two layers unfused, pass by pass):
 *   forward : statistics; pool + scale              2 reads, 1 write (4, 2)
 *   backward: gate gradient + sums; dx               4 reads, 1 write (7, 2)
 * Every kernel here walks one image's values flat, with per-value
 * coefficients from period arrays (bn_nhwc.h). AVX-512 only: without it the
 * two layers run unfused. */
#ifndef PNEUMO_NN_BN_SE_H
#define PNEUMO_NN_BN_SE_H

#include "nn/bn_nhwc.h"

/* Set the first fields, then pn_bn_se_begin; the per-image calls run inside
 * a parallel region of at most `threads` threads (each uses its own scratch). */
typedef struct pn_bn_se {
    const void *x; /* the batch norm's input, n x hw x c (NHWC) */
    pn_dtype t;
    int n, hw, c;
    const float *scale, *shift; /* c entries: y = act(x * scale + shift) */
    pn_bn_act act;
    /* set by pn_bn_se_begin */
    size_t period, image; /* values per period (bn_nhwc.h), per image */
    const float *mean; /* the backward's, c entries */
    float *scale_p, *shift_p, *mean_p, *scratch;
    double *sums; /* per thread: sum g, sum g (x - mean), c each */
    int threads;
} pn_bn_se;

/* The kernels run here. */
int pn_bn_se_available(void);
/* Allocates the period arrays and scratch; mean (the batch norm's, c
 * entries) only for the backward, else NULL. -1 on OOM. */
int pn_bn_se_begin(pn_bn_se *f, const float *mean);
void pn_bn_se_end(pn_bn_se *f);

/* Image k's passes. Forward: pooled_k[c] = sum of y over its pixels;
 * z = y * gate_k[c] (the SE output). */
void pn_bn_se_pool(const pn_bn_se *f, int k, float *pooled_k);
void pn_bn_se_scale(const pn_bn_se *f, int k, const float *gate_k, void *z);
/* Backward: dgate_k[c] = sum of dz * y; then, with the batch norm's output
 * gradient dy = dz * gate_k[c] + share_k[c] (recomputed, never stored), adds
 * image k to the batch norm's gradient sums. */
void pn_bn_se_gate_grad(const pn_bn_se *f, int k, const void *dz, float *dgate_k);
void pn_bn_se_sums(const pn_bn_se *f, int k, const void *dz, const float *gate_k,
                   const float *share_k);
/* After every image's sums: pn_bn_nhwc_backward's results, dgamma, dbeta,
 * and dx unless NULL (gate, share: n x c). -1 on OOM. */
int pn_bn_se_backward(pn_bn_se *f, const void *dz, const float *gate, const float *share,
                      const float *invstd, const float *gamma, int global_stats, float *dgamma,
                      float *dbeta, void *dx);

#endif
