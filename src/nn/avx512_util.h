/* Shared pieces of the AVX-512 kernels: 16 fp32 lanes per vector, loads and
 * stores of fp32 or bf16 tensors with a mask for the last, partial group of
 * channels. Include only inside `#if defined(__x86_64__) && defined(__GNUC__)`;
 * functions using these need the AVX512 attribute (dispatch is at run time). */
#ifndef PNEUMO_NN_AVX512_UTIL_H
#define PNEUMO_NN_AVX512_UTIL_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "pneumo/tensor.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline AVX512 __mmask16 tail_mask(int c, int k)
{
    return c - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (c - k)) - 1);
}

static inline AVX512 __m512 ld(const void *p, pn_dtype t, size_t i, __mmask16 m)
{
    if (t == PN_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Round to nearest even; NaN stays NaN: the same as pn_f32_to_bf16. */
static inline AVX512 void st(void *p, pn_dtype t, size_t i, __mmask16 m, __m512 v)
{
    if (t == PN_F32) {
        _mm512_mask_storeu_ps((float *)p + i, m, v);
        return;
    }
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    _mm256_mask_storeu_epi16((uint16_t *)p + i, m, _mm512_cvtepi32_epi16(r));
}

/* The CPU runs the AVX-512 subsets these kernels use. */
static inline int pn_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

#endif
