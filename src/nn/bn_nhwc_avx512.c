/* AVX-512 batch-norm kernels: 16 channels per vector (masked at the end of a
 * row, so any channel count runs at full speed), fp32 math, bf16 converted in
 * registers. Sums walk one channel group down a block of rows with the
 * partial sums in registers; the element-wise kernels walk rows in memory
 * order. Compiled for AVX-512 with target attributes and chosen at run time,
 * so the binary still runs on CPUs without it. */
#include <stdint.h>

#include "nn/bn_nhwc.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"

static inline AVX512 void add_to_double(__m512 v, double *acc, int c, int k)
{
    float tmp[16];
    _mm512_storeu_ps(tmp, v);
    for (int i = 0; i < 16 && k + i < c; i++)
        acc[k + i] += tmp[i];
}

/* pn_bn_act_apply, 16 lanes */
static inline AVX512 __m512 act_apply(pn_bn_act act, __m512 z)
{
    if (act == PN_BN_RELU) /* max(0, z) returns z when z is NaN, like z < 0 ? 0 : z */
        return _mm512_max_ps(_mm512_setzero_ps(), z);
    if (act == PN_BN_HARDSWISH) {
        __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(z, _mm512_set1_ps(3)), _mm512_setzero_ps()),
                                 _mm512_set1_ps(6));
        return _mm512_mul_ps(_mm512_mul_ps(z, t), _mm512_set1_ps(1.0f / 6));
    }
    return z;
}

/* dy * act'(x * scale + shift), as pn_bn_act_grad */
static inline AVX512 __m512 act_grad(__m512 x, __m512 g, pn_bn_act act, __m512 sc, __m512 sh)
{
    if (act == PN_BN_LINEAR)
        return g;
    __m512 z = _mm512_fmadd_ps(x, sc, sh);
    if (act == PN_BN_RELU)
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ), g);
    __m512 mid = _mm512_fmadd_ps(z, _mm512_set1_ps(1.0f / 3), _mm512_set1_ps(0.5f));
    __m512 d = _mm512_mask_mov_ps(mid, _mm512_cmp_ps_mask(z, _mm512_set1_ps(3), _CMP_GT_OQ),
                                  _mm512_set1_ps(1));
    d = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_set1_ps(-3), _CMP_NLT_UQ), d);
    return _mm512_mul_ps(g, d);
}

static AVX512 void v_stats(const void *x, pn_dtype t, size_t r0, size_t r1, int c,
                           const float *pivot, double *s1, double *s2)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 p = _mm512_maskz_loadu_ps(m, pivot + k);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, q0 = a0, q1 = a0;
        size_t r = r0;
        for (; r + 1 < r1; r += 2) { /* two chains: the adds' latency, not loads, would bind */
            __m512 d0 = _mm512_sub_ps(ld(x, t, r * c + k, m), p);
            __m512 d1 = _mm512_sub_ps(ld(x, t, (r + 1) * c + k, m), p);
            a0 = _mm512_add_ps(a0, d0);
            a1 = _mm512_add_ps(a1, d1);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        if (r < r1) {
            __m512 d0 = _mm512_sub_ps(ld(x, t, r * c + k, m), p);
            a0 = _mm512_add_ps(a0, d0);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
        }
        add_to_double(_mm512_add_ps(a0, a1), s1, c, k);
        add_to_double(_mm512_add_ps(q0, q1), s2, c, k);
    }
}

/* The element-wise kernels walk a channel group down the block's rows, like
 * the sums, so the group's coefficients stay in registers. */
static AVX512 void v_apply(const void *x, void *y, pn_dtype t, size_t r0, size_t r1, int c,
                           const float *scale, const float *shift, pn_bn_act act)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 sc = _mm512_maskz_loadu_ps(m, scale + k), sh = _mm512_maskz_loadu_ps(m, shift + k);
        for (size_t r = r0; r < r1; r++)
            st(y, t, r * c + k, m, act_apply(act, _mm512_fmadd_ps(ld(x, t, r * c + k, m), sc, sh)));
    }
}

static AVX512 void v_grad_sums(const void *x, const void *dy, pn_dtype t, size_t r0, size_t r1,
                               int c, const float *mean, pn_bn_act act, const float *scale,
                               const float *shift, double *sg, double *sgx)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 mu = _mm512_maskz_loadu_ps(m, mean + k);
        __m512 sc = _mm512_maskz_loadu_ps(m, scale + k), sh = _mm512_maskz_loadu_ps(m, shift + k);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        size_t r = r0;
        for (; r + 1 < r1; r += 2) {
            __m512 x0 = ld(x, t, r * c + k, m), x1 = ld(x, t, (r + 1) * c + k, m);
            __m512 g0 = act_grad(x0, ld(dy, t, r * c + k, m), act, sc, sh);
            __m512 g1 = act_grad(x1, ld(dy, t, (r + 1) * c + k, m), act, sc, sh);
            a0 = _mm512_add_ps(a0, g0);
            a1 = _mm512_add_ps(a1, g1);
            b0 = _mm512_fmadd_ps(g0, _mm512_sub_ps(x0, mu), b0);
            b1 = _mm512_fmadd_ps(g1, _mm512_sub_ps(x1, mu), b1);
        }
        if (r < r1) {
            __m512 x0 = ld(x, t, r * c + k, m);
            __m512 g0 = act_grad(x0, ld(dy, t, r * c + k, m), act, sc, sh);
            a0 = _mm512_add_ps(a0, g0);
            b0 = _mm512_fmadd_ps(g0, _mm512_sub_ps(x0, mu), b0);
        }
        add_to_double(_mm512_add_ps(a0, a1), sg, c, k);
        add_to_double(_mm512_add_ps(b0, b1), sgx, c, k);
    }
}

static AVX512 void v_grad_apply(const void *x, const void *dy, void *dx, pn_dtype t, size_t r0,
                                size_t r1, int c, const float *ka, const float *kb,
                                const float *kc, pn_bn_act act, const float *scale,
                                const float *shift)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 a = _mm512_maskz_loadu_ps(m, ka + k), b = _mm512_maskz_loadu_ps(m, kb + k);
        __m512 d = _mm512_maskz_loadu_ps(m, kc + k);
        __m512 sc = _mm512_maskz_loadu_ps(m, scale + k), sh = _mm512_maskz_loadu_ps(m, shift + k);
        for (size_t r = r0; r < r1; r++) {
            size_t i = r * c + k;
            __m512 xv = ld(x, t, i, m);
            __m512 g = act_grad(xv, ld(dy, t, i, m), act, sc, sh);
            st(dx, t, i, m, _mm512_fmadd_ps(a, g, _mm512_fmadd_ps(b, xv, d)));
        }
    }
}

const pn_bn_kernels *pn_bn_kernels_avx512(void)
{
    static const pn_bn_kernels k = {"avx512", v_stats, v_apply, v_grad_sums, v_grad_apply};
    return pn_cpu_has_avx512() ? &k : NULL;
}

#else
const pn_bn_kernels *pn_bn_kernels_avx512(void) { return NULL; }
#endif
