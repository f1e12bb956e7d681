/* Hand-written NHWC batch-norm kernels (fp32 or bf16 storage, fp32 math).
 *
 * Why not oneDNN's: its bf16 batch norm has no JIT kernel for channel counts
 * that are not multiples of 16 (MobileNet has 24, 40, 72, 88, ...), and where
 * it has one it reads the activations once more than needed and runs at a
 * third of this machine's memory bandwidth. Batch norm is memory bound, so the
 * number of passes over the activations is what counts:
 *   forward  (batch statistics): 1 read for mean and variance, 1 read + 1 write;
 *   backward: 2 reads for the two sums, 2 reads + 1 write for dx.
 * A fused activation (ReLU or hardswish) is applied in the same pass, and
 * its derivative is recomputed from x (z = x * scale + shift) in backward,
 * so the backward pass never reads y. */
#ifndef PNEUMO_NN_BN_NHWC_H
#define PNEUMO_NN_BN_NHWC_H

#include <stddef.h>

#include "pneumo/nn.h"
#include "pneumo/tensor.h"

/* The activation fused after the normalisation. */
typedef enum pn_bn_act { PN_BN_LINEAR, PN_BN_RELU, PN_BN_HARDSWISH } pn_bn_act;

/* The activations, shared by the kernels so both sets compute the same:
 * hardswish(z) = z * min(max(z + 3, 0), 6) / 6, its derivative PyTorch's;
 * multiplications by 1/6 and 1/3, not divisions, which would dominate the
 * vector kernels' time. */
static inline float pn_bn_act_apply(pn_bn_act act, float z)
{
    if (act == PN_BN_RELU)
        return z < 0 ? 0.0f : z;
    if (act == PN_BN_HARDSWISH) {
        float t = z + 3 < 0 ? 0.0f : z + 3 > 6 ? 6.0f : z + 3;
        return z * t * (1.0f / 6);
    }
    return z;
}

static inline float pn_bn_act_grad(pn_bn_act act, float z)
{
    if (act == PN_BN_RELU)
        return z > 0 ? 1.0f : 0.0f;
    if (act == PN_BN_HARDSWISH)
        return z < -3 ? 0.0f : z <= 3 ? z * (1.0f / 3) + 0.5f : 1.0f;
    return 1.0f;
}

/* The vector kernels walk a block of rows as one flat array in memory order
 * (channel-group walks down the rows ran at ~60% of this machine's bandwidth:
 * strided cache-line touches defeat the prefetcher). Their per-channel
 * arrays are therefore "period" arrays of pn_bn_period(c) entries, entry j
 * belonging to channel j % c, and blocks start at rows that are multiples of
 * pn_bn_period(c) / c. The period is a multiple of lcm(c, 16), so it is whole
 * vectors, and at least 64 entries, so the sums' in-memory accumulators are
 * revisited no sooner than every fourth vector (store-to-load latency). */
static inline size_t pn_bn_period(int c)
{
    int a = c, b = 16;
    while (b) {
        int r = a % b;
        a = b;
        b = r;
    }
    size_t lcm = (size_t)c * 16 / (size_t)a;
    return lcm * ((64 + lcm - 1) / lcm);
}

/* One implementation of the per-block loops (rows [r0, r1) of a rows x c
 * tensor); the drivers below split rows between threads. Coefficient and sum
 * arrays are period arrays (above); the portable kernels use their first c
 * entries. Sums are added to the caller's double accumulators; tmp is
 * scratch of 2 * pn_bn_period(c) floats. */
typedef struct pn_bn_kernels {
    const char *name;
    /* s1 += sum(x - pivot), s2 += sum((x - pivot)^2) */
    void (*stats)(const void *x, pn_dtype t, size_t r0, size_t r1, int c, const float *pivot,
                  double *s1, double *s2, float *tmp);
    /* y = act(x * scale + shift) */
    void (*apply)(const void *x, void *y, pn_dtype t, size_t r0, size_t r1, int c,
                  const float *scale, const float *shift, pn_bn_act act);
    /* g = dy * act'(x * scale + shift);
     * sg += sum(g), sgx += sum(g * (x - mean)) */
    void (*grad_sums)(const void *x, const void *dy, pn_dtype t, size_t r0, size_t r1, int c,
                      const float *mean, pn_bn_act act, const float *scale, const float *shift,
                      double *sg, double *sgx, float *tmp);
    /* dx = ka * g + kb * x + kc, g as in grad_sums */
    void (*grad_apply)(const void *x, const void *dy, void *dx, pn_dtype t, size_t r0, size_t r1,
                       int c, const float *ka, const float *kb, const float *kc, pn_bn_act act,
                       const float *scale, const float *shift);
} pn_bn_kernels;

/* Portable C, any CPU. */
const pn_bn_kernels *pn_bn_kernels_scalar(void);
/* AVX-512 (F + BW); NULL when this CPU or compiler lacks it. */
const pn_bn_kernels *pn_bn_kernels_avx512(void);
/* The fastest this CPU runs. */
const pn_bn_kernels *pn_bn_kernels_best(void);

/* v (c entries) repeated over a period array, 64-byte aligned; NULL on OOM. */
float *pn_bn_periodic(const float *v, int c);
/* aligned_alloc(64) of bytes rounded up to whole cache lines (period arrays,
 * kernel scratch: see bn_nhwc.c for why). */
void *pn_bn_alloc_lines(size_t bytes);
/* From the gradient sums over rows x c (sg = sum g, sgx = sum g (x - mean)):
 * dgamma, dbeta (c entries) and the period arrays ka, kb, kc of
 * dx = ka * g + kb * x + kc. */
void pn_bn_grad_coefficients(const double *sg, const double *sgx, size_t rows, int c,
                             const float *mean, const float *invstd, const float *gamma,
                             int global_stats, float *dgamma, float *dbeta, float *ka, float *kb,
                             float *kc);

/* The drivers take plain per-channel arrays (c entries). */

/* Per-channel mean and biased variance over rows x c. Returns -1 on OOM. */
int pn_bn_nhwc_stats(const pn_bn_kernels *k, const void *x, pn_dtype t, size_t rows, int c,
                     float *mean, float *var);
/* y = act(x * scale[c] + shift[c]) (y may alias x). Returns -1 on OOM. */
int pn_bn_nhwc_apply(const pn_bn_kernels *k, const void *x, void *y, pn_dtype t, size_t rows,
                      int c, const float *scale, const float *shift, pn_bn_act act);
/* Gradients of y = gamma * (x - mean) * invstd + beta; with global_stats the
 * statistics are constants. act: the activation fused after the
 * normalisation, whose forward used scale/shift (gamma * invstd, beta - mean * scale).
 * Returns -1 on OOM. */
int pn_bn_nhwc_backward(const pn_bn_kernels *k, const void *x, const void *dy, void *dx,
                        pn_dtype t, size_t rows, int c, const float *mean, const float *invstd,
                        const float *gamma, int global_stats, pn_bn_act act, const float *scale,
                        const float *shift, float *dgamma, float *dbeta);
/* The same with statistics over a process group (synchronised batch norm;
 * group NULL = pn_bn_nhwc_backward): dx from the group's gradient sums and
 * row count, dgamma and dbeta this process's (the optimiser's gradient sum
 * over the group adds them up). Returns -1 on OOM, -2 when group->sum fails. */
int pn_bn_nhwc_backward_group(const pn_bn_kernels *k, const void *x, const void *dy, void *dx,
                              pn_dtype t, size_t rows, int c, const float *mean, const float *invstd,
                              const float *gamma, int global_stats, pn_bn_act act, const float *scale,
                              const float *shift, float *dgamma, float *dbeta,
                              const pn_net_group *group);

#endif
