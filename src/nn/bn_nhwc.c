/* Batch normalization on NHWC tensors: the drivers (threads over blocks of
 * rows) and the portable kernels. bn_nhwc_avx512.c has the fast kernels. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_nhwc.h"
#include "nn/internal.h"

static float act_grad(const void *x, const void *dy, pn_dtype t, size_t i, int k, pn_bn_act act,
                      const float *scale, const float *shift)
{
    float g = pn_ld(dy, t, i);
    if (act == PN_BN_LINEAR)
        return g;
    float z = pn_ld(x, t, i) * scale[k] + shift[k];
    if (act == PN_BN_RELU) /* selects, as the vector kernel's mask does (0 * inf would be NaN) */
        return z > 0 ? g : 0.0f;
    return g * pn_bn_act_grad(act, z);
}

static void scalar_stats(const void *x, pn_dtype t, size_t r0, size_t r1, int c,
                         const float *pivot, double *s1, double *s2, float *tmp)
{
    (void)tmp;
    for (size_t r = r0; r < r1; r++)
        for (int k = 0; k < c; k++) {
            double d = pn_ld(x, t, r * c + k) - pivot[k];
            s1[k] += d;
            s2[k] += d * d;
        }
}

static void scalar_apply(const void *x, void *y, pn_dtype t, size_t r0, size_t r1, int c,
                         const float *scale, const float *shift, pn_bn_act act)
{
    for (size_t r = r0; r < r1; r++)
        for (int k = 0; k < c; k++)
            pn_st(y, t, r * c + k,
                  pn_bn_act_apply(act, pn_ld(x, t, r * c + k) * scale[k] + shift[k]));
}

static void scalar_grad_sums(const void *x, const void *dy, pn_dtype t, size_t r0, size_t r1,
                             int c, const float *mean, pn_bn_act act, const float *scale,
                             const float *shift, double *sg, double *sgx, float *tmp)
{
    (void)tmp;
    for (size_t r = r0; r < r1; r++)
        for (int k = 0; k < c; k++) {
            size_t i = r * c + k;
            float g = act_grad(x, dy, t, i, k, act, scale, shift);
            sg[k] += g;
            sgx[k] += (double)g * (pn_ld(x, t, i) - mean[k]);
        }
}

static void scalar_grad_apply(const void *x, const void *dy, void *dx, pn_dtype t, size_t r0,
                              size_t r1, int c, const float *ka, const float *kb, const float *kc,
                              pn_bn_act act, const float *scale, const float *shift)
{
    for (size_t r = r0; r < r1; r++)
        for (int k = 0; k < c; k++) {
            size_t i = r * c + k;
            float g = act_grad(x, dy, t, i, k, act, scale, shift);
            pn_st(dx, t, i, ka[k] * g + kb[k] * pn_ld(x, t, i) + kc[k]);
        }
}

const pn_bn_kernels *pn_bn_kernels_scalar(void)
{
    static const pn_bn_kernels k = {"scalar", scalar_stats, scalar_apply, scalar_grad_sums,
                                    scalar_grad_apply};
    return &k;
}

const pn_bn_kernels *pn_bn_kernels_best(void)
{
    const pn_bn_kernels *k = pn_bn_kernels_avx512();
    return k ? k : pn_bn_kernels_scalar();
}

/* Rows per block: a whole number of periods (blocks must start on one),
 * about 8192 values so a block stays in L1/L2 while a kernel works on it, and
 * at most 256 values per fp32 partial sum, short enough to be exact to ~1e-6
 * before the sums are added in double. */
static size_t block_rows(int c)
{
    size_t period = pn_bn_period(c), periods = 8192 / period;
    periods = periods < 1 ? 1 : periods > 256 ? 256 : periods;
    return periods * (period / (size_t)c);
}

/* Period arrays and the kernels' scratch start on a cache line: the vector
 * kernels' 64-byte accesses to them would otherwise split lines, and a split
 * store does not forward to the next load of the same accumulator (measured:
 * statistics 3x slower). Periods are whole vectors, so every period array
 * carved from one allocation stays aligned. */
void *pn_bn_alloc_lines(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

float *pn_bn_periodic(const float *v, int c)
{
    size_t period = pn_bn_period(c);
    float *e = pn_bn_alloc_lines(period * sizeof(float));
    for (size_t j = 0; e && j < period; j++)
        e[j] = v[j % (size_t)c];
    return e;
}

/* Runs a summing kernel over all rows on every thread, then folds the
 * per-thread period sums: out0/out1 (c doubles each) hold the totals. */
typedef struct sum_job {
    const pn_bn_kernels *k;
    const void *x, *dy;
    pn_dtype t;
    size_t rows;
    int c;
    const float *pivot_or_mean, *scale, *shift; /* period arrays */
    pn_bn_act act;
    int grad;
} sum_job;

static int run_sums(const sum_job *j, double *out0, double *out1)
{
    int threads = omp_get_max_threads();
    size_t c = (size_t)j->c, period = pn_bn_period(j->c), block = block_rows(j->c);
    size_t blocks = (j->rows + block - 1) / block, per_thread = 2 * period;
    double *part = calloc((size_t)threads * per_thread, sizeof(double));
    float *tmp = pn_bn_alloc_lines((size_t)threads * per_thread * sizeof(float));
    if (!part || !tmp) {
        free(part);
        free(tmp);
        return -1;
    }
#pragma omp parallel num_threads(threads)
    {
        int id = omp_get_thread_num();
        double *a0 = part + (size_t)id * per_thread, *a1 = a0 + period;
        float *scratch = tmp + (size_t)id * per_thread;
#pragma omp for schedule(static)
        for (size_t b = 0; b < blocks; b++) {
            size_t r0 = b * block, r1 = r0 + block < j->rows ? r0 + block : j->rows;
            if (j->grad)
                j->k->grad_sums(j->x, j->dy, j->t, r0, r1, j->c, j->pivot_or_mean, j->act,
                                j->scale, j->shift, a0, a1, scratch);
            else
                j->k->stats(j->x, j->t, r0, r1, j->c, j->pivot_or_mean, a0, a1, scratch);
        }
    }
    for (size_t k = 0; k < c; k++)
        out0[k] = out1[k] = 0;
    for (int id = 0; id < threads; id++)
        for (size_t e = 0; e < period; e++) {
            out0[e % c] += part[(size_t)id * per_thread + e];
            out1[e % c] += part[(size_t)id * per_thread + period + e];
        }
    free(part);
    free(tmp);
    return 0;
}

int pn_bn_nhwc_stats(const pn_bn_kernels *k, const void *x, pn_dtype t, size_t rows, int c,
                     float *mean, float *var)
{
    double *s = malloc(2 * (size_t)c * sizeof(double));
    float *pivot = malloc((size_t)c * sizeof(float)), *pivot_p = NULL;
    int rc = -1;
    if (s && pivot && rows > 0) {
        /* Sums of x - pivot with the first row as pivot: one pass, and no
         * cancellation when |mean| >> std (E[x^2] - E[x]^2 would lose it). */
        for (int i = 0; i < c; i++)
            pivot[i] = pn_ld(x, t, (size_t)i);
        sum_job j = {k, x, NULL, t, rows, c, pivot_p = pn_bn_periodic(pivot, c), NULL, NULL,
                     PN_BN_LINEAR, 0};
        rc = pivot_p ? run_sums(&j, s, s + c) : -1;
        for (int i = 0; !rc && i < c; i++) {
            double m = s[i] / (double)rows, v = s[c + i] / (double)rows - m * m;
            mean[i] = (float)(pivot[i] + m);
            var[i] = (float)(v > 0 ? v : 0); /* biased, as the normalisation uses */
        }
    }
    free(s);
    free(pivot);
    free(pivot_p);
    return rc;
}

int pn_bn_nhwc_apply(const pn_bn_kernels *k, const void *x, void *y, pn_dtype t, size_t rows,
                     int c, const float *scale, const float *shift, pn_bn_act act)
{
    float *scale_p = pn_bn_periodic(scale, c), *shift_p = pn_bn_periodic(shift, c);
    size_t block = block_rows(c), blocks = (rows + block - 1) / block;
    if (scale_p && shift_p) {
#pragma omp parallel for schedule(static)
        for (size_t b = 0; b < blocks; b++) {
            size_t r0 = b * block, r1 = r0 + block < rows ? r0 + block : rows;
            k->apply(x, y, t, r0, r1, c, scale_p, shift_p, act);
        }
    }
    int rc = scale_p && shift_p ? 0 : -1;
    free(scale_p);
    free(shift_p);
    return rc;
}

void pn_bn_grad_coefficients(const double *sg, const double *sgx, size_t rows, int c,
                             const float *mean, const float *invstd, const float *gamma,
                             int global_stats, float *dgamma, float *dbeta, float *ka, float *kb,
                             float *kc)
{
    size_t period = pn_bn_period(c);
    /* dx = ka*g + kb*x + kc, per channel:
     *   batch stats: ka = gamma*is, kb = -ka*is^2*sum(g(x-m))/M, kc = -ka*sum(g)/M - kb*m
     *   global stats: ka = gamma*is, kb = kc = 0 */
    for (int i = 0; i < c; i++) {
        dbeta[i] = (float)sg[i];
        dgamma[i] = (float)(sgx[i] * invstd[i]);
        double a = (double)gamma[i] * invstd[i];
        double b = global_stats ? 0 : -a * invstd[i] * invstd[i] * sgx[i] / (double)rows;
        double d = global_stats ? 0 : -a * sg[i] / (double)rows - b * mean[i];
        for (size_t e = (size_t)i; e < period; e += (size_t)c) {
            ka[e] = (float)a;
            kb[e] = (float)b;
            kc[e] = (float)d;
        }
    }
}

/* The backward's six per-channel arrays as period arrays, in one allocation. */
enum { CO_MEAN, CO_SCALE, CO_SHIFT, CO_KA, CO_KB, CO_KC, CO_COUNT };

int pn_bn_nhwc_backward(const pn_bn_kernels *k, const void *x, const void *dy, void *dx,
                        pn_dtype t, size_t rows, int c, const float *mean, const float *invstd,
                        const float *gamma, int global_stats, pn_bn_act act, const float *scale,
                        const float *shift, float *dgamma, float *dbeta)
{
    return pn_bn_nhwc_backward_group(k, x, dy, dx, t, rows, c, mean, invstd, gamma, global_stats, act,
                                     scale, shift, dgamma, dbeta, NULL);
}

/* The group's gradient sums and row count replace this process's in s
 * ([sum g (c)][sum g (x - mean) (c)][rows]) and ka, kb, kc are recomputed
 * from them; dgamma and dbeta keep this process's (written to dg_db before). */
static int group_coefficients(const pn_net_group *group, double *s, size_t rows, int c,
                              const float *mean, const float *invstd, const float *gamma,
                              float *dg_db, float *ka, float *kb, float *kc)
{
    s[2 * c] = (double)rows;
    if (group->sum(group->user, s, 2 * (size_t)c + 1))
        return -2;
    pn_bn_grad_coefficients(s, s + c, (size_t)s[2 * c], c, mean, invstd, gamma, 0, dg_db, dg_db + c, ka,
                            kb, kc);
    return 0;
}

int pn_bn_nhwc_backward_group(const pn_bn_kernels *k, const void *x, const void *dy, void *dx,
                              pn_dtype t, size_t rows, int c, const float *mean, const float *invstd,
                              const float *gamma, int global_stats, pn_bn_act act, const float *scale,
                              const float *shift, float *dgamma, float *dbeta,
                              const pn_net_group *group)
{
    size_t period = pn_bn_period(c);
    double *s = malloc((2 * (size_t)c + 1) * sizeof(double));
    float *co = pn_bn_alloc_lines((CO_COUNT * period + 2 * (size_t)c) * sizeof(float));
    if (!s || !co) {
        free(s);
        free(co);
        return -1;
    }
    float *cp[CO_COUNT];
    for (int i = 0; i < CO_COUNT; i++)
        cp[i] = co + (size_t)i * period;
    for (size_t e = 0; e < period; e++) {
        cp[CO_MEAN][e] = mean[e % (size_t)c];
        cp[CO_SCALE][e] = scale[e % (size_t)c];
        cp[CO_SHIFT][e] = shift[e % (size_t)c];
    }
    sum_job j = {k, x, dy, t, rows, c, cp[CO_MEAN], cp[CO_SCALE], cp[CO_SHIFT], act, 1};
    if (run_sums(&j, s, s + c)) {
        free(s);
        free(co);
        return -1;
    }
    pn_bn_grad_coefficients(s, s + c, rows, c, mean, invstd, gamma, global_stats, dgamma, dbeta,
                            cp[CO_KA], cp[CO_KB], cp[CO_KC]);
    if (group && group_coefficients(group, s, rows, c, mean, invstd, gamma, co + CO_COUNT * period,
                                    cp[CO_KA], cp[CO_KB], cp[CO_KC])) {
        free(s);
        free(co);
        return -2;
    }
    size_t block = block_rows(c), blocks = (rows + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        size_t r0 = b * block, r1 = r0 + block < rows ? r0 + block : rows;
        k->grad_apply(x, dy, dx, t, r0, r1, c, cp[CO_KA], cp[CO_KB], cp[CO_KC], act,
                      cp[CO_SCALE], cp[CO_SHIFT]);
    }
    free(s);
    free(co);
    return 0;
}
