/* Depthwise convolution kernels for NHWC tensors (see dw_nhwc.h). The inner
 * loops run over channels, which are contiguous in NHWC. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dw_nhwc.h"
#include "nn/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"
#include "nn/bn_avx512.h"
#define HAVE_AVX512_KERNELS 1
#endif

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

/* row (pixels x c) = pro(row) */
PN_SIMD_CLONES static void apply_prologue(float *row, size_t pixels, int c,
                                          const pn_dw_prologue *pro)
{
    for (size_t px = 0; px < pixels; px++) {
        float *r = row + px * c;
#pragma omp simd
        for (int k = 0; k < c; k++)
            r[k] = pn_bn_act_apply(pro->act, r[k] * pro->scale[k] + pro->shift[k]);
    }
}

/* Adds output row (n, oy)'s contribution to the per-tap sums acc[taps][c]
 * and the bias sums; g is a scratch row, xrows[i] kernel row i's input row
 * in fp32 (NULL outside the image). */
PN_SIMD_CLONES static void accumulate_row(const void *dy, pn_dtype t, const pn_dw_shape *s, int n,
                                          int oy, const float *const *xrows, float *restrict acc,
                                          float *restrict bacc, float *restrict g)
{
    size_t c = (size_t)s->c;
    load(dy, t, ((size_t)n * s->oh + oy) * s->ow * c, s->ow * c, g);
    for (int ox = 0; ox < s->ow; ox++)
        for (size_t k = 0; k < c; k++)
            bacc[k] += g[(size_t)ox * c + k];
    for (int i = 0; i < s->kh; i++) {
        const float *xr = xrows[i];
        if (!xr)
            continue;
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

/* Kernel row i's input row for output row (n, oy), converted to fp32 once: a
 * ring of kh rows tagged by image row, since consecutive output rows (a
 * thread's rows are consecutive) share kh - stride of them. Dilated kernels
 * (rows dh apart could share a ring slot) convert every row every time. */
static void ring_rows(const void *x, const pn_dw_prologue *pro, pn_dtype t, const pn_dw_shape *s,
                      int n, int oy, float *ring, long *tag, const float **xrows)
{
    size_t rowlen = (size_t)s->iw * s->c;
    for (int i = 0; i < s->kh; i++) {
        int iy = oy * s->sh - s->pt + i * s->dh;
        xrows[i] = NULL;
        if (iy < 0 || iy >= s->ih)
            continue;
        int q = s->dh == 1 ? iy % s->kh : i;
        long want = (long)n * s->ih + iy;
        if (s->dh != 1 || tag[q] != want) {
            load(x, t, (size_t)want * rowlen, rowlen, ring + (size_t)q * rowlen);
            if (pro)
                apply_prologue(ring + (size_t)q * rowlen, (size_t)s->iw, s->c, pro);
            tag[q] = want;
        }
        xrows[i] = ring + (size_t)q * rowlen;
    }
}

int pn_dw_nhwc_backward_weights(const void *x, const pn_dw_prologue *pro, const void *dy,
                                pn_dtype t, const pn_dw_shape *s, float *dweights, float *dbias)
{
    int c = s->c, taps = s->kh * s->kw, threads = omp_get_max_threads(), failed = 0;
    /* per thread: acc[taps][c], bias[c], one dy row (ow*c), kh input rows (iw*c) */
    size_t per_thread = (size_t)(taps + 1) * c + (size_t)s->ow * c + (size_t)s->kh * s->iw * c;
    float *work = calloc((size_t)threads * per_thread, sizeof(float));
    if (!work)
        return -1;
    int rows = s->n * s->oh;
#pragma omp parallel num_threads(threads)
    {
        float *acc = work + (size_t)omp_get_thread_num() * per_thread;
        float *bacc = acc + (size_t)taps * c, *g = bacc + c, *ring = g + (size_t)s->ow * c;
        long *tag = malloc((size_t)s->kh * sizeof *tag);
        const float **xrows = malloc((size_t)s->kh * sizeof *xrows);
        if (!tag || !xrows) {
#pragma omp atomic write
            failed = 1;
        }
        for (int q = 0; tag && q < s->kh; q++)
            tag[q] = -1;
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            if (!tag || !xrows)
                continue;
            ring_rows(x, pro, t, s, r / s->oh, r % s->oh, ring, tag, xrows);
            accumulate_row(dy, t, s, r / s->oh, r % s->oh, xrows, acc, bacc, g);
        }
        free(tag);
        free(xrows);
    }
    if (failed) {
        free(work);
        return -1;
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

void pn_dw_transpose_weights(const float *w, int c, int kh, int kw, int flip, float *wt)
{
    int taps = kh * kw;
    for (int k = 0; k < c; k++)
        for (int tap = 0; tap < taps; tap++)
            wt[(size_t)(flip ? taps - 1 - tap : tap) * c + k] = w[(size_t)k * taps + tap];
}

#define MAX_KERNEL 7
#define BLOCK 8     /* output pixels per step: 8 accumulators of 16 channels */
#define MAX_BLOCK 14

int pn_dw_nhwc_fast_available(const pn_dw_shape *s)
{
#ifdef HAVE_AVX512_KERNELS
    return pn_cpu_has_avx512() && s->dh == 1 && s->dw == 1 && s->kh <= MAX_KERNEL &&
           s->kw <= MAX_KERNEL;
#else
    (void)s;
    return 0;
#endif
}

#ifdef HAVE_AVX512_KERNELS
/* One output row from the kh input rows it reads (fp32, zero-padded: image
 * column ix at buffer column ix + pl; NULL for rows outside the image),
 * `block` output pixels x 16 channels at a time. Inlined with a constant
 * block, so the accumulators live in registers. */
static inline __attribute__((always_inline)) AVX512 void
forward_row_blocked(const float *const *xrows, const float *wt, void *y, pn_dtype t,
                    const pn_dw_shape *s, size_t yoff, const int block)
{
    int c = s->c;
    size_t step = (size_t)s->sw * c;
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        for (int ox0 = 0; ox0 < s->ow; ox0 += block) {
            __m512 acc[MAX_BLOCK];
            for (int u = 0; u < block; u++)
                acc[u] = _mm512_setzero_ps();
            for (int i = 0; i < s->kh; i++) {
                if (!xrows[i])
                    continue;
                for (int j = 0; j < s->kw; j++) {
                    __m512 wv = _mm512_maskz_loadu_ps(m, wt + (size_t)(i * s->kw + j) * c + k);
                    const float *p = xrows[i] + ((size_t)ox0 * s->sw + (size_t)j) * c + k;
                    for (int u = 0; u < block; u++) /* past the row's end: padding, not stored */
                        acc[u] = _mm512_fmadd_ps(_mm512_loadu_ps(p + u * step), wv, acc[u]);
                }
            }
            for (int u = 0; u < block && ox0 + u < s->ow; u++)
                st(y, t, yoff + (size_t)(ox0 + u) * c + k, m, acc[u]);
        }
    }
}

/* Output pixels per step: 14 or 7 when they divide the row (MobileNet's
 * rows are 7 x 2^k wide; 14 accumulators also hide the FMA latency better),
 * else 8. */
static int block_for(int ow) { return ow % 14 == 0 ? 14 : ow % 7 == 0 ? 7 : BLOCK; }

static AVX512 void forward_row(const float *const *xrows, const float *wt, void *y, pn_dtype t,
                               const pn_dw_shape *s, size_t yoff)
{
    switch (block_for(s->ow)) {
    case 14:
        forward_row_blocked(xrows, wt, y, t, s, yoff, 14);
        break;
    case 7:
        forward_row_blocked(xrows, wt, y, t, s, yoff, 7);
        break;
    default:
        forward_row_blocked(xrows, wt, y, t, s, yoff, BLOCK);
    }
}

/* n values from x + off in fp32, as pro(x) when pro is set (the row holds
 * whole pixels of c channels) */
static AVX512 void to_f32_row(const void *x, pn_dtype t, size_t off, size_t n, int c,
                              const pn_dw_prologue *pro, float *out)
{
    if (!pro) {
        for (size_t i = 0; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
            _mm512_mask_storeu_ps(out + i, m, ld(x, t, off + i, m));
        }
        return;
    }
    for (size_t px = 0; px < n; px += (size_t)c)
        for (int k = 0; k < c; k += 16) {
            __mmask16 m = tail_mask(c, k);
            __m512 z = _mm512_fmadd_ps(ld(x, t, off + px + k, m), _mm512_maskz_loadu_ps(m, pro->scale + k),
                                       _mm512_maskz_loadu_ps(m, pro->shift + k));
            _mm512_mask_storeu_ps(out + px + k, m, act_apply(pro->act, z));
        }
}

int pn_dw_nhwc_forward(const void *x, const pn_dw_prologue *pro, const float *wt, void *y,
                       pn_dtype t, const pn_dw_shape *s)
{
    size_t rowlen = (size_t)s->iw * s->c;
    /* padded width: every block's loads stay inside, zeros left of column 0 */
    int block = block_for(s->ow), blocks = (s->ow + block - 1) / block;
    size_t width = (size_t)(blocks * block - 1) * s->sw + (size_t)s->kw;
    if (width < (size_t)(s->iw + s->pl))
        width = (size_t)(s->iw + s->pl);
    size_t padded = width * s->c + 16; /* + a partial channel group's full-width loads */
    int rows = s->n * s->oh, failed = 0;
#pragma omp parallel
    {
        /* a ring of kh converted rows: consecutive output rows share kh - stride of them */
        float *buf = calloc((size_t)s->kh * padded, sizeof(float));
        long tag[MAX_KERNEL];
        const float *xrows[MAX_KERNEL];
        for (int q = 0; q < s->kh; q++)
            tag[q] = -1;
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            if (!buf)
                continue;
            int n = r / s->oh, oy = r % s->oh;
            for (int i = 0; i < s->kh; i++) {
                int iy = oy * s->sh - s->pt + i;
                xrows[i] = NULL;
                if (iy < 0 || iy >= s->ih)
                    continue;
                int q = iy % s->kh;
                long want = (long)n * s->ih + iy;
                if (tag[q] != want) {
                    to_f32_row(x, t, (size_t)want * rowlen, rowlen, s->c, pro,
                               buf + q * padded + (size_t)s->pl * s->c);
                    tag[q] = want;
                }
                xrows[i] = buf + q * padded;
            }
            forward_row(xrows, wt, y, t, s, ((size_t)n * s->oh + oy) * s->ow * s->c);
        }
        free(buf);
    }
    return failed ? -1 : 0;
}

int pn_dw_nhwc_backward_data(const void *dy, const float *wt_flipped, void *dx, pn_dtype t,
                             const pn_dw_shape *s)
{
    /* dx[iy][ix] = sum dy[iy + pt - i][ix + pl - j] w[i][j]: a stride-1
     * forward over dy with the flipped kernel and the complementary padding */
    pn_dw_shape f = {s->n, s->c, s->oh, s->ow, s->ih, s->iw, s->kh, s->kw, 1, 1, 1, 1,
                     s->kh - 1 - s->pt, s->kw - 1 - s->pl};
    return pn_dw_nhwc_forward(dy, NULL, wt_flipped, dx, t, &f);
}
#else
int pn_dw_nhwc_forward(const void *x, const pn_dw_prologue *pro, const float *wt, void *y,
                       pn_dtype t, const pn_dw_shape *s)
{
    (void)x, (void)wt, (void)y, (void)t, (void)s;
    return -1; /* pn_dw_nhwc_fast_available() is 0: never called */
}

int pn_dw_nhwc_backward_data(const void *dy, const float *wt_flipped, void *dx, pn_dtype t,
                             const pn_dw_shape *s)
{
    (void)dy, (void)wt_flipped, (void)dx, (void)t, (void)s;
    return -1;
}
#endif
