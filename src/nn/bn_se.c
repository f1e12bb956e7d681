/* Fused batch norm -> squeeze-excitation kernels (see bn_se.h). An image's
 * hw x c values are walked flat, period by period, its last period masked.
 * Per-image sums go to one period of fp32 accumulators in L1 and are folded
 * into channels at the image's end. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_se.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"
#include "nn/bn_avx512.h"
#define HAVE_AVX512_KERNELS 1
#endif

int pn_bn_se_available(void)
{
#ifdef HAVE_AVX512_KERNELS
    return pn_cpu_has_avx512();
#else
    return 0;
#endif
}

#ifdef HAVE_AVX512_KERNELS
#define SLOTS 4 /* scratch periods per thread: gate, share and two accumulators */

int pn_bn_se_begin(pn_bn_se *f, const float *mean)
{
    f->period = pn_bn_period(f->c);
    f->image = (size_t)f->hw * f->c;
    f->threads = omp_get_max_threads();
    f->mean = mean;
    f->scale_p = pn_bn_periodic(f->scale, f->c);
    f->shift_p = pn_bn_periodic(f->shift, f->c);
    f->mean_p = mean ? pn_bn_periodic(mean, f->c) : NULL;
    f->scratch = pn_bn_alloc_lines((size_t)f->threads * SLOTS * f->period * sizeof(float));
    f->sums = mean ? calloc((size_t)f->threads * 2 * f->c, sizeof(double)) : NULL;
    if (f->scale_p && f->shift_p && f->scratch && (!mean || (f->mean_p && f->sums)))
        return 0;
    pn_bn_se_end(f);
    return -1;
}

void pn_bn_se_end(pn_bn_se *f)
{
    free(f->scale_p);
    free(f->shift_p);
    free(f->mean_p);
    free(f->scratch);
    free(f->sums);
    f->scale_p = f->shift_p = f->mean_p = f->scratch = NULL;
    f->sums = NULL;
}

/* This thread's scratch period number i. */
static float *slot(const pn_bn_se *f, int i)
{
    return f->scratch + ((size_t)omp_get_thread_num() * SLOTS + (size_t)i) * f->period;
}

/* The period array of one image's per-channel values v[c]. */
static void image_period(const pn_bn_se *f, const float *v, float *out)
{
    for (size_t j = 0; j < f->period; j++)
        out[j] = v[j % (size_t)f->c];
}

/* out[c] (overwritten) = the period accumulators folded into channels */
static void fold(const pn_bn_se *f, const float *acc, float *out)
{
    memset(out, 0, (size_t)f->c * sizeof(float));
    for (size_t j = 0; j < f->period; j++)
        out[j % (size_t)f->c] += acc[j];
}

/* Each kernel below is a step on 16 values at offset i (entry j of the
 * period, mask m) and a walk over image k (PN_BN_WALK). */

/* y at offset i (masked lanes: x = 0, so y = act(shift): mask before summing) */
static inline AVX512 __m512 y_at(const pn_bn_se *f, size_t i, size_t j, __mmask16 m)
{
    __m512 xv = ld(f->x, f->t, i, m);
    return act_apply(f->act, _mm512_fmadd_ps(xv, coef(f->scale_p, j), coef(f->shift_p, j)));
}

static inline AVX512 void pool_step(size_t i, size_t j, __mmask16 m, const pn_bn_se *f,
                                    float *acc)
{
    add_acc(acc, j, _mm512_maskz_mov_ps(m, y_at(f, i, j, m)));
}

AVX512 void pn_bn_se_pool(const pn_bn_se *f, int k, float *pooled_k)
{
    float *acc = slot(f, 0);
    zero_acc(acc, f->period);
    PN_BN_WALK(pool_step, (size_t)k * f->image, f->image, f->period, f, acc);
    fold(f, acc, pooled_k);
}

static inline AVX512 void scale_step(size_t i, size_t j, __mmask16 m, const pn_bn_se *f,
                                     const float *g, void *z)
{
    st(z, f->t, i, m, _mm512_mul_ps(y_at(f, i, j, m), coef(g, j)));
}

AVX512 void pn_bn_se_scale(const pn_bn_se *f, int k, const float *gate_k, void *z)
{
    float *g = slot(f, 0);
    image_period(f, gate_k, g);
    PN_BN_WALK(scale_step, (size_t)k * f->image, f->image, f->period, f, g, z);
}

static inline AVX512 void gate_grad_step(size_t i, size_t j, __mmask16 m, const pn_bn_se *f,
                                         const void *dz, float *acc)
{
    add_acc(acc, j, _mm512_maskz_mul_ps(m, ld(dz, f->t, i, m), y_at(f, i, j, m)));
}

AVX512 void pn_bn_se_gate_grad(const pn_bn_se *f, int k, const void *dz, float *dgate_k)
{
    float *acc = slot(f, 0);
    zero_acc(acc, f->period);
    PN_BN_WALK(gate_grad_step, (size_t)k * f->image, f->image, f->period, f, dz, acc);
    fold(f, acc, dgate_k);
}

/* g = dy * act'(x * scale + shift) with dy = dz * gate + share; *xv = x */
static inline AVX512 __m512 bn_grad_at(const pn_bn_se *f, const void *dz, size_t i, size_t j,
                                       __mmask16 m, const float *gate, const float *share,
                                       __m512 *xv)
{
    *xv = ld(f->x, f->t, i, m);
    __m512 dy = _mm512_fmadd_ps(ld(dz, f->t, i, m), coef(gate, j), coef(share, j));
    return _mm512_maskz_mov_ps(m, act_grad(*xv, dy, f->act, coef(f->scale_p, j), coef(f->shift_p, j)));
}

static inline AVX512 void sums_step(size_t i, size_t j, __mmask16 m, const pn_bn_se *f,
                                    const void *dz, const float *gp, const float *sp, float *a,
                                    float *b)
{
    __m512 xv, g = bn_grad_at(f, dz, i, j, m, gp, sp, &xv);
    add_acc(a, j, g);
    _mm512_storeu_ps(b + j, _mm512_fmadd_ps(g, _mm512_sub_ps(xv, coef(f->mean_p, j)),
                                            _mm512_loadu_ps(b + j)));
}

AVX512 void pn_bn_se_sums(const pn_bn_se *f, int k, const void *dz, const float *gate_k,
                          const float *share_k)
{
    float *gp = slot(f, 0), *sp = slot(f, 1), *a = slot(f, 2), *b = slot(f, 3);
    double *sg = f->sums + (size_t)omp_get_thread_num() * 2 * f->c, *sgx = sg + f->c;
    image_period(f, gate_k, gp);
    image_period(f, share_k, sp);
    zero_acc(a, f->period);
    zero_acc(b, f->period);
    PN_BN_WALK(sums_step, (size_t)k * f->image, f->image, f->period, f, dz, gp, sp, a, b);
    for (size_t j = 0; j < f->period; j++) {
        sg[j % (size_t)f->c] += a[j];
        sgx[j % (size_t)f->c] += b[j];
    }
}

static inline AVX512 void dx_step(size_t i, size_t j, __mmask16 m, const pn_bn_se *f,
                                  const void *dz, const float *gp, const float *sp,
                                  const float *ka, const float *kb, const float *kc, void *dx)
{
    __m512 xv, g = bn_grad_at(f, dz, i, j, m, gp, sp, &xv);
    st(dx, f->t, i, m, _mm512_fmadd_ps(coef(ka, j), g, _mm512_fmadd_ps(coef(kb, j), xv, coef(kc, j))));
}

static AVX512 void dx_image(const pn_bn_se *f, int k, const void *dz, const float *gate_k,
                            const float *share_k, const float *ka, const float *kb,
                            const float *kc, void *dx)
{
    float *gp = slot(f, 0), *sp = slot(f, 1);
    image_period(f, gate_k, gp);
    image_period(f, share_k, sp);
    PN_BN_WALK(dx_step, (size_t)k * f->image, f->image, f->period, f, dz, gp, sp, ka, kb, kc, dx);
}

int pn_bn_se_backward(pn_bn_se *f, const void *dz, const float *gate, const float *share,
                      const float *invstd, const float *gamma, int global_stats, float *dgamma,
                      float *dbeta, void *dx)
{
    int c = f->c;
    size_t period = f->period;
    double *s = calloc(2 * (size_t)c, sizeof(double));
    float *co = pn_bn_alloc_lines(3 * period * sizeof(float)); /* ka, kb, kc */
    if (!s || !co) {
        free(s);
        free(co);
        return -1;
    }
    for (int id = 0; id < f->threads; id++)
        for (int i = 0; i < 2 * c; i++)
            s[i] += f->sums[(size_t)id * 2 * c + i];
    pn_bn_grad_coefficients(s, s + c, (size_t)f->n * f->hw, c, f->mean, invstd, gamma,
                            global_stats, dgamma, dbeta, co, co + period, co + 2 * period);
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < f->n; k++)
            dx_image(f, k, dz, gate + (size_t)k * c, share + (size_t)k * c, co, co + period,
                     co + 2 * period, dx);
    }
    free(s);
    free(co);
    return 0;
}
#else
int pn_bn_se_begin(pn_bn_se *f, const float *mean)
{
    (void)f, (void)mean;
    return -1; /* pn_bn_se_available() is 0: never called */
}

void pn_bn_se_end(pn_bn_se *f) { (void)f; }
void pn_bn_se_pool(const pn_bn_se *f, int k, float *pooled_k) { (void)f, (void)k, (void)pooled_k; }

void pn_bn_se_scale(const pn_bn_se *f, int k, const float *gate_k, void *z)
{
    (void)f, (void)k, (void)gate_k, (void)z;
}

void pn_bn_se_gate_grad(const pn_bn_se *f, int k, const void *dz, float *dgate_k)
{
    (void)f, (void)k, (void)dz, (void)dgate_k;
}

void pn_bn_se_sums(const pn_bn_se *f, int k, const void *dz, const float *gate_k,
                   const float *share_k)
{
    (void)f, (void)k, (void)dz, (void)gate_k, (void)share_k;
}

int pn_bn_se_backward(pn_bn_se *f, const void *dz, const float *gate, const float *share,
                      const float *invstd, const float *gamma, int global_stats, float *dgamma,
                      float *dbeta, void *dx)
{
    (void)f, (void)dz, (void)gate, (void)share, (void)invstd, (void)gamma, (void)global_stats;
    (void)dgamma, (void)dbeta, (void)dx;
    return -1;
}
#endif
