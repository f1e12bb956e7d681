#include <string.h>

#include "nn/internal.h"
#include "nn/vec.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"

static AVX512 void add_avx512(const void *a, const void *b, void *out, pn_dtype t, size_t n)
{
    size_t vectors = (n + 15) / 16;
#pragma omp parallel for schedule(static)
    for (size_t v = 0; v < vectors; v++) {
        size_t i = v * 16;
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        st(out, t, i, m, _mm512_add_ps(ld(a, t, i, m), ld(b, t, i, m)));
    }
}

static AVX512 void to_bf16_avx512(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        st(out, PN_BF16, i, m, _mm512_maskz_loadu_ps(m, in + i));
    }
}
#endif

static void to_bf16(const float *in, uint16_t *out, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (pn_cpu_has_avx512()) {
        to_bf16_avx512(in, out, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        out[i] = pn_f32_to_bf16(in[i]);
}

void pn_vec_from_f32(const float *in, void *out, pn_dtype t, size_t n)
{
    if (t == PN_F32) {
        memcpy(out, in, n * sizeof(float));
        return;
    }
    size_t chunk = 1 << 16, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        size_t begin = c * chunk, end = begin + chunk < n ? begin + chunk : n;
        to_bf16(in + begin, (uint16_t *)out + begin, end - begin);
    }
}

void pn_vec_add(const void *a, const void *b, void *out, pn_dtype t, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (pn_cpu_has_avx512()) {
        add_avx512(a, b, out, t, n);
        return;
    }
#endif
    if (t == PN_F32) {
        const float *x = a, *y = b;
        float *o = out;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            o[i] = x[i] + y[i];
        return;
    }
    const uint16_t *x = a, *y = b;
    uint16_t *o = out;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        o[i] = pn_f32_to_bf16(pn_bf16_to_f32(x[i]) + pn_bf16_to_f32(y[i]));
}
