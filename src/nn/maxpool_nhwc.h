/* Hand-written NHWC max pooling (fp32 or bf16). oneDNN 2.6's NHWC max-pool
 * backward zeroes the whole input gradient and then scatters into it, and its
 * forward keeps a wide workspace; here the forward records the winning window
 * position in one byte per output, and the backward gathers: every input
 * gradient is written once, from the (at most a few) windows that contain it. */
#ifndef PNEUMO_NN_MAXPOOL_NHWC_H
#define PNEUMO_NN_MAXPOOL_NHWC_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/tensor.h"

typedef struct pn_pool_shape {
    int n, c, ih, iw, oh, ow;
    int kh, kw, sh, sw, pt, pl; /* window, stride, padding before (after is implied) */
} pn_pool_shape;

/* Windows up to this many positions fit the one-byte argmax. */
#define PN_MAXPOOL_MAX_WINDOW 255

typedef struct pn_maxpool_kernels {
    const char *name;
    /* Output row (n, oy) of y, and its argmax (window position) when argmax != NULL. */
    void (*forward_row)(const void *x, void *y, uint8_t *argmax, pn_dtype t,
                        const pn_pool_shape *s, int n, int oy);
    /* Input row (n, iy) of dx from dy and argmax. */
    void (*backward_row)(const void *dy, const uint8_t *argmax, void *dx, pn_dtype t,
                         const pn_pool_shape *s, int n, int iy);
} pn_maxpool_kernels;

const pn_maxpool_kernels *pn_maxpool_kernels_scalar(void);
const pn_maxpool_kernels *pn_maxpool_kernels_avx512(void); /* NULL without AVX-512 */
const pn_maxpool_kernels *pn_maxpool_kernels_best(void);

/* y (and argmax, n*oh*ow*c bytes, when not NULL) from x, rows in parallel. */
void pn_maxpool_nhwc_forward(const pn_maxpool_kernels *k, const void *x, void *y,
                             uint8_t *argmax, pn_dtype t, const pn_pool_shape *s);
/* dx (overwritten) from dy and the forward's argmax. */
void pn_maxpool_nhwc_backward(const pn_maxpool_kernels *k, const void *dy,
                              const uint8_t *argmax, void *dx, pn_dtype t,
                              const pn_pool_shape *s);

#endif
