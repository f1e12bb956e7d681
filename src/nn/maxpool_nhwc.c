/* NHWC max pooling: drivers (threads over rows), portable kernels and AVX-512
 * kernels. A window position p = wy * kw + wx is stored per output element;
 * ties keep the first maximum and NaN wins, as in PyTorch. */
#include <math.h>

#include "nn/maxpool_nhwc.h"
#include "nn/internal.h"

/* Output windows (rows [o0, o1)) that contain input row i: o*s - p <= i <= o*s - p + k - 1. */
static void windows_over(int i, int k, int s, int p, int out, int *o0, int *o1)
{
    int lo = i + p - k + 1;
    *o0 = lo <= 0 ? 0 : (lo + s - 1) / s;
    int hi = (i + p) / s + 1;
    *o1 = hi < out ? hi : out;
}

static size_t pixel(const pn_pool_shape *s, int n, int y, int x, int h, int w)
{
    return (((size_t)n * h + y) * w + x) * s->c;
}

static void scalar_forward_row(const void *x, void *y, uint8_t *argmax, pn_dtype t,
                               const pn_pool_shape *s, int n, int oy)
{
    for (int ox = 0; ox < s->ow; ox++) {
        size_t o = pixel(s, n, oy, ox, s->oh, s->ow);
        for (int c = 0; c < s->c; c++) {
            float best = -INFINITY;
            int at = 0;
            for (int wy = 0; wy < s->kh; wy++) {
                int iy = oy * s->sh - s->pt + wy;
                if (iy < 0 || iy >= s->ih)
                    continue;
                for (int wx = 0; wx < s->kw; wx++) {
                    int ix = ox * s->sw - s->pl + wx;
                    if (ix < 0 || ix >= s->iw)
                        continue;
                    float v = pn_ld(x, t, pixel(s, n, iy, ix, s->ih, s->iw) + c);
                    if (v > best || isnan(v)) {
                        best = v;
                        at = wy * s->kw + wx;
                    }
                }
            }
            pn_st(y, t, o + c, best);
            if (argmax)
                argmax[o + c] = (uint8_t)at;
        }
    }
}

static void scalar_backward_row(const void *dy, const uint8_t *argmax, void *dx, pn_dtype t,
                                const pn_pool_shape *s, int n, int iy)
{
    int oy0, oy1;
    windows_over(iy, s->kh, s->sh, s->pt, s->oh, &oy0, &oy1);
    for (int ix = 0; ix < s->iw; ix++) {
        int ox0, ox1;
        windows_over(ix, s->kw, s->sw, s->pl, s->ow, &ox0, &ox1);
        size_t i = pixel(s, n, iy, ix, s->ih, s->iw);
        for (int c = 0; c < s->c; c++) {
            float g = 0;
            for (int oy = oy0; oy < oy1; oy++)
                for (int ox = ox0; ox < ox1; ox++) {
                    int p = (iy - (oy * s->sh - s->pt)) * s->kw + (ix - (ox * s->sw - s->pl));
                    size_t o = pixel(s, n, oy, ox, s->oh, s->ow) + c;
                    if (argmax[o] == p)
                        g += pn_ld(dy, t, o);
                }
            pn_st(dx, t, i + c, g);
        }
    }
}

const pn_maxpool_kernels *pn_maxpool_kernels_scalar(void)
{
    static const pn_maxpool_kernels k = {"scalar", scalar_forward_row, scalar_backward_row};
    return &k;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"

static AVX512 void v_forward_row(const void *x, void *y, uint8_t *argmax, pn_dtype t,
                                 const pn_pool_shape *s, int n, int oy)
{
    for (int ox = 0; ox < s->ow; ox++) {
        size_t o = pixel(s, n, oy, ox, s->oh, s->ow);
        for (int c = 0; c < s->c; c += 16) {
            __mmask16 m = tail_mask(s->c, c);
            __m512 best = _mm512_set1_ps(-INFINITY);
            __m512i at = _mm512_setzero_si512();
            for (int wy = 0; wy < s->kh; wy++) {
                int iy = oy * s->sh - s->pt + wy;
                if (iy < 0 || iy >= s->ih)
                    continue;
                for (int wx = 0; wx < s->kw; wx++) {
                    int ix = ox * s->sw - s->pl + wx;
                    if (ix < 0 || ix >= s->iw)
                        continue;
                    __m512 v = ld(x, t, pixel(s, n, iy, ix, s->ih, s->iw) + c, m);
                    __mmask16 win = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |
                                    _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                    best = _mm512_mask_mov_ps(best, win, v);
                    at = _mm512_mask_mov_epi32(at, win, _mm512_set1_epi32(wy * s->kw + wx));
                }
            }
            st(y, t, o + c, m, best);
            if (argmax)
                _mm_mask_storeu_epi8(argmax + o + c, m, _mm512_cvtepi32_epi8(at));
        }
    }
}

static AVX512 void v_backward_row(const void *dy, const uint8_t *argmax, void *dx, pn_dtype t,
                                  const pn_pool_shape *s, int n, int iy)
{
    int oy0, oy1;
    windows_over(iy, s->kh, s->sh, s->pt, s->oh, &oy0, &oy1);
    for (int ix = 0; ix < s->iw; ix++) {
        int ox0, ox1;
        windows_over(ix, s->kw, s->sw, s->pl, s->ow, &ox0, &ox1);
        size_t i = pixel(s, n, iy, ix, s->ih, s->iw);
        for (int c = 0; c < s->c; c += 16) {
            __mmask16 m = tail_mask(s->c, c);
            __m512 g = _mm512_setzero_ps();
            for (int oy = oy0; oy < oy1; oy++)
                for (int ox = ox0; ox < ox1; ox++) {
                    int p = (iy - (oy * s->sh - s->pt)) * s->kw + (ix - (ox * s->sw - s->pl));
                    size_t o = pixel(s, n, oy, ox, s->oh, s->ow) + c;
                    __m128i a = _mm_maskz_loadu_epi8(m, argmax + o);
                    __mmask16 hit = _mm_cmpeq_epi8_mask(a, _mm_set1_epi8((char)p)) & m;
                    g = _mm512_mask_add_ps(g, hit, g, ld(dy, t, o, hit));
                }
            st(dx, t, i + c, m, g);
        }
    }
}

const pn_maxpool_kernels *pn_maxpool_kernels_avx512(void)
{
    static const pn_maxpool_kernels k = {"avx512", v_forward_row, v_backward_row};
    return pn_cpu_has_avx512() ? &k : NULL;
}
#else
const pn_maxpool_kernels *pn_maxpool_kernels_avx512(void) { return NULL; }
#endif

const pn_maxpool_kernels *pn_maxpool_kernels_best(void)
{
    const pn_maxpool_kernels *k = pn_maxpool_kernels_avx512();
    return k ? k : pn_maxpool_kernels_scalar();
}

void pn_maxpool_nhwc_forward(const pn_maxpool_kernels *k, const void *x, void *y,
                             uint8_t *argmax, pn_dtype t, const pn_pool_shape *s)
{
    int rows = s->n * s->oh;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        k->forward_row(x, y, argmax, t, s, r / s->oh, r % s->oh);
}

void pn_maxpool_nhwc_backward(const pn_maxpool_kernels *k, const void *dy,
                              const uint8_t *argmax, void *dx, pn_dtype t,
                              const pn_pool_shape *s)
{
    int rows = s->n * s->ih;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        k->backward_row(dy, argmax, dx, t, s, r / s->ih, r % s->ih);
}
