/* Depthwise-convolution weight gradient for NHWC tensors, used where oneDNN
 * only offers a generic grouped kernel (bf16 with 5x5 depthwise kernels
 * falls to a slow path in oneDNN 2.6). The inner loop runs over channels,
 * which are contiguous in NHWC. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dw_nhwc.h"
#include "nn/internal.h"

PN_SIMD_CLONES static void load(const void *p, pn_dtype t, size_t off, size_t c, float *out)
{
    if (t == PN_F32) {
        memcpy(out, (const float *)p + off, (size_t)c * sizeof(float));
        return;
    }
    const uint16_t *s = (const uint16_t *)p + off;
    for (size_t k = 0; k < c; k++)
        out[k] = pn_bf16_to_f32(s[k]);
}

/* Adds output row (n, oy)'s contribution to the per-tap sums acc[taps][c]
 * and the bias sums; g and xr are scratch rows. */
PN_SIMD_CLONES static void accumulate_row(const void *x, const void *dy, pn_dtype t,
                                          const pn_dw_shape *s, int n, int oy, float *restrict acc,
                                          float *restrict bacc, float *restrict g,
                                          float *restrict xr)
{
    size_t c = (size_t)s->c;
    /* Each dy row and input row is converted once, not once per tap. */
    load(dy, t, ((size_t)n * s->oh + oy) * s->ow * c, s->ow * c, g);
    for (int ox = 0; ox < s->ow; ox++)
        for (size_t k = 0; k < c; k++)
            bacc[k] += g[(size_t)ox * c + k];
    for (int i = 0; i < s->kh; i++) {
        int iy = oy * s->sh - s->pt + i * s->dh;
        if (iy < 0 || iy >= s->ih)
            continue;
        load(x, t, ((size_t)n * s->ih + iy) * s->iw * c, s->iw * c, xr);
        for (int j = 0; j < s->kw; j++) {
            float *a = acc + (size_t)(i * s->kw + j) * c;
            for (int ox = 0; ox < s->ow; ox++) {
                int ix = ox * s->sw - s->pl + j * s->dw;
                if (ix < 0 || ix >= s->iw)
                    continue;
                const float *gr = g + (size_t)ox * c, *xv = xr + (size_t)ix * c;
#pragma omp simd
                for (size_t k = 0; k < c; k++)
                    a[k] += gr[k] * xv[k];
            }
        }
    }
}

int pn_dw_nhwc_backward_weights(const void *x, const void *dy, pn_dtype t, const pn_dw_shape *s,
                                float *dweights, float *dbias)
{
    int c = s->c, taps = s->kh * s->kw, threads = omp_get_max_threads();
    /* per thread: acc[taps][c], bias[c], one dy row (ow*c), one input row (iw*c) */
    size_t per_thread = (size_t)(taps + 1) * c + (size_t)s->ow * c + (size_t)s->iw * c;
    float *work = calloc((size_t)threads * per_thread, sizeof(float));
    if (!work)
        return -1;
    int rows = s->n * s->oh;
#pragma omp parallel num_threads(threads)
    {
        float *acc = work + (size_t)omp_get_thread_num() * per_thread;
        float *bacc = acc + (size_t)taps * c, *g = bacc + c, *xr = g + (size_t)s->ow * c;
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++)
            accumulate_row(x, dy, t, s, r / s->oh, r % s->oh, acc, bacc, g, xr);
    }
    /* Reduce the per-thread sums into [C][kh][kw] (our weight layout) and [C]. */
    for (int k = 0; k < c; k++) {
        for (int tap = 0; tap < taps; tap++) {
            double sum = 0;
            for (int id = 0; id < threads; id++)
                sum += work[(size_t)id * per_thread + (size_t)tap * c + k];
            dweights[(size_t)k * taps + tap] = (float)sum;
        }
        if (dbias) {
            double sum = 0;
            for (int id = 0; id < threads; id++)
                sum += work[(size_t)id * per_thread + (size_t)taps * c + k];
            dbias[k] = (float)sum;
        }
    }
    free(work);
    return 0;
}
