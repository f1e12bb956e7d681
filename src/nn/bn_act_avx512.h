/* The batch-norm activations on 16 lanes, as pn_bn_act_apply and
 * pn_bn_act_grad (bn_nhwc.h) compute them: shared by the batch-norm and the
 * batch-norm -> squeeze-excitation kernels. Include only inside
 * `#if defined(__x86_64__) && defined(__GNUC__)`, after avx512_util.h. */
#ifndef PNEUMO_NN_BN_ACT_AVX512_H
#define PNEUMO_NN_BN_ACT_AVX512_H

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

#endif
