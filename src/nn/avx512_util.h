/* Shared pieces of the AVX-512 kernels: 16 fp32 lanes per vector, loads and
 * stores of fp32 or bf16 tensors with a mask for the last, partial group of
 * channels. Include only inside `#if defined(__x86_64__) && defined(__GNUC__)`;
 * functions using these need the AVX512 attribute (dispatch is at run time). */
#ifndef PNEUMO_NN_AVX512_UTIL_H
#define PNEUMO_NN_AVX512_UTIL_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/tensor.h"

/* AVX512_BF16's vcvtneps2bf16 is used only on bf16 tensors, which exist only
 * on CPUs with native bf16 (pn_ctx_has_native_bf16): fp32 runs of these
 * kernels on older AVX-512 CPUs never execute it. */
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

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

/* Round to nearest even (vcvtneps2bf16, one instruction; the same as
 * pn_f32_to_bf16 except that fp32 subnormals, below 1.2e-38, become 0). */
static inline AVX512 void st(void *p, pn_dtype t, size_t i, __mmask16 m, __m512 v)
{
    if (t == PN_F32) {
        _mm512_mask_storeu_ps((float *)p + i, m, v);
        return;
    }
    __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    _mm256_mask_storeu_epi16((uint16_t *)p + i, m, h);
}

/* The CPU runs the AVX-512 subsets these kernels use, and PNEUMO_NO_AVX512 is
 * not set (set, the portable kernels and unfused layers run, as on an older
 * CPU: how the tests cover them here). Asked once per translation unit: the
 * answer cannot change within a process. */
static inline int pn_cpu_has_avx512(void)
{
    static int known = -1;
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *off = getenv("PNEUMO_NO_AVX512");
        __builtin_cpu_init();
        v = !(off && *off && strcmp(off, "0")) && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v;
}

#endif
