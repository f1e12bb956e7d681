/* AVX-512 batch-norm kernels: fp32 math, bf16 converted in registers. Each
 * walks its block as one flat array, 16 values per vector, with per-value
 * coefficients from period arrays (bn_nhwc.h) and, for the sums, fp32
 * accumulators of one period in L1 that are added to the double sums at the
 * end of the block. Full vectors everywhere but the block's last partial
 * period. Compiled for AVX-512 with target attributes and chosen at run time,
 * so the binary still runs on CPUs without it. */
#include <stdint.h>

#include "nn/bn_nhwc.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"
#include "nn/bn_avx512.h"

/* s += acc over one period */
static inline void fold(const float *acc, double *s, size_t period)
{
    for (size_t j = 0; j < period; j++)
        s[j] += acc[j];
}

static inline AVX512 void stats_step(size_t i, size_t j, __mmask16 m, const void *x, pn_dtype t,
                                     const float *pivot, float *a, float *q)
{
    __m512 d = _mm512_maskz_sub_ps(m, ld(x, t, i, m), coef(pivot, j));
    add_acc(a, j, d);
    _mm512_storeu_ps(q + j, _mm512_fmadd_ps(d, d, _mm512_loadu_ps(q + j)));
}

static AVX512 void v_stats(const void *x, pn_dtype t, size_t r0, size_t r1, int c,
                           const float *pivot, double *s1, double *s2, float *tmp)
{
    size_t period = pn_bn_period(c);
    float *a = tmp, *q = tmp + period;
    zero_acc(tmp, 2 * period);
    PN_BN_WALK(stats_step, r0 * (size_t)c, (r1 - r0) * (size_t)c, period, x, t, pivot, a, q);
    fold(a, s1, period);
    fold(q, s2, period);
}

static inline AVX512 void apply_step(size_t i, size_t j, __mmask16 m, const void *x, void *y,
                                     pn_dtype t, const float *scale, const float *shift,
                                     pn_bn_act act)
{
    st(y, t, i, m, act_apply(act, _mm512_fmadd_ps(ld(x, t, i, m), coef(scale, j), coef(shift, j))));
}

static AVX512 void v_apply(const void *x, void *y, pn_dtype t, size_t r0, size_t r1, int c,
                           const float *scale, const float *shift, pn_bn_act act)
{
    PN_BN_WALK(apply_step, r0 * (size_t)c, (r1 - r0) * (size_t)c, pn_bn_period(c), x, y, t, scale,
               shift, act);
}

/* Masked-off lanes load x = dy = 0, so g = 0 and they add nothing. */
static inline AVX512 void grad_sums_step(size_t i, size_t j, __mmask16 m, const void *x,
                                         const void *dy, pn_dtype t, const float *mean,
                                         pn_bn_act act, const float *scale, const float *shift,
                                         float *a, float *b)
{
    __m512 xv = ld(x, t, i, m);
    __m512 g = act_grad(xv, ld(dy, t, i, m), act, coef(scale, j), coef(shift, j));
    add_acc(a, j, g);
    _mm512_storeu_ps(b + j, _mm512_fmadd_ps(g, _mm512_sub_ps(xv, coef(mean, j)),
                                            _mm512_loadu_ps(b + j)));
}

static AVX512 void v_grad_sums(const void *x, const void *dy, pn_dtype t, size_t r0, size_t r1,
                               int c, const float *mean, pn_bn_act act, const float *scale,
                               const float *shift, double *sg, double *sgx, float *tmp)
{
    size_t period = pn_bn_period(c);
    float *a = tmp, *b = tmp + period;
    zero_acc(tmp, 2 * period);
    PN_BN_WALK(grad_sums_step, r0 * (size_t)c, (r1 - r0) * (size_t)c, period, x, dy, t, mean, act,
               scale, shift, a, b);
    fold(a, sg, period);
    fold(b, sgx, period);
}

static inline AVX512 void grad_apply_step(size_t i, size_t j, __mmask16 m, const void *x,
                                          const void *dy, void *dx, pn_dtype t, const float *ka,
                                          const float *kb, const float *kc, pn_bn_act act,
                                          const float *scale, const float *shift)
{
    __m512 xv = ld(x, t, i, m);
    __m512 g = act_grad(xv, ld(dy, t, i, m), act, coef(scale, j), coef(shift, j));
    st(dx, t, i, m, _mm512_fmadd_ps(coef(ka, j), g, _mm512_fmadd_ps(coef(kb, j), xv, coef(kc, j))));
}

static AVX512 void v_grad_apply(const void *x, const void *dy, void *dx, pn_dtype t, size_t r0,
                                size_t r1, int c, const float *ka, const float *kb,
                                const float *kc, pn_bn_act act, const float *scale,
                                const float *shift)
{
    PN_BN_WALK(grad_apply_step, r0 * (size_t)c, (r1 - r0) * (size_t)c, pn_bn_period(c), x, dy, dx,
               t, ka, kb, kc, act, scale, shift);
}

const pn_bn_kernels *pn_bn_kernels_avx512(void)
{
    static const pn_bn_kernels k = {"avx512", v_stats, v_apply, v_grad_sums, v_grad_apply};
    return pn_cpu_has_avx512() ? &k : NULL;
}

#else
const pn_bn_kernels *pn_bn_kernels_avx512(void) { return NULL; }
#endif
