/* Pieces shared by the AVX-512 batch-norm kernels (bn_nhwc_avx512.c) and
 * batch-norm -> squeeze-excitation kernels (bn_se.c): the activations on 16
 * lanes, as pn_bn_act_apply and pn_bn_act_grad (bn_nhwc.h) compute them,
 * period-array and accumulator access, and the flat walk. Include only
 * inside `#if defined(__x86_64__) && defined(__GNUC__)`, after
 * avx512_util.h. */
#ifndef PNEUMO_NN_BN_AVX512_H
#define PNEUMO_NN_BN_AVX512_H

#include "nn/bn_nhwc.h"

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

/* One period array entry j..j+15 (bn_nhwc.h) */
static inline AVX512 __m512 coef(const float *p, size_t j) { return _mm512_loadu_ps(p + j); }

/* Accumulators of one period (fp32, in L1, 64-byte aligned) */
static inline AVX512 void zero_acc(float *acc, size_t n)
{
    for (size_t j = 0; j < n; j += 16)
        _mm512_storeu_ps(acc + j, _mm512_setzero_ps());
}

static inline AVX512 void add_acc(float *acc, size_t j, __m512 v)
{
    _mm512_storeu_ps(acc + j, _mm512_add_ps(_mm512_loadu_ps(acc + j), v));
}

/* Walks the n values from i0 (where a period starts) period by period,
 * calling step(i, j, m, ...) for the 16 values at i, entry j of the period,
 * mask m: whole periods unmasked, then the last, partial one masked. */
#define PN_BN_WALK(step, i0, n, period, ...)                                                  \
    do {                                                                                      \
        size_t i0_ = (i0), n_ = (n), per_ = (period), p_ = 0;                                 \
        for (; p_ + per_ <= n_; p_ += per_)                                                   \
            for (size_t j_ = 0; j_ < per_; j_ += 16)                                          \
                step(i0_ + p_ + j_, j_, (__mmask16)0xffff, __VA_ARGS__);                      \
        for (size_t j_ = 0; p_ + j_ < n_; j_ += 16)                                           \
            step(i0_ + p_ + j_, j_, tail_mask((int)(n_ - p_), (int)j_), __VA_ARGS__);         \
    } while (0)

#endif
