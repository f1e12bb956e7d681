/* Batch normalization kernels for NHWC tensors, used where oneDNN has no JIT
 * kernel (its bf16 batch norm needs channels in multiples of 16; MobileNet
 * has 24, 40, 72, 88, 120, ... and would fall back to a slow generic loop).
 * Rows of C channels are converted to fp32, so both dtypes share one loop. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_nhwc.h"

static void load_row(const void *src, pn_dtype t, size_t row, int c, float *out)
{
    if (t == PN_F32) {
        memcpy(out, (const float *)src + row * c, (size_t)c * sizeof(float));
        return;
    }
    const uint16_t *s = (const uint16_t *)src + row * c;
    for (int k = 0; k < c; k++)
        out[k] = pn_bf16_to_f32(s[k]);
}

static void store_row(void *dst, pn_dtype t, size_t row, int c, const float *in)
{
    if (t == PN_F32) {
        memcpy((float *)dst + row * c, in, (size_t)c * sizeof(float));
        return;
    }
    uint16_t *d = (uint16_t *)dst + row * c;
    for (int k = 0; k < c; k++)
        d[k] = pn_f32_to_bf16(in[k]);
}

/* dy where the fused ReLU passed its input (y > 0), else 0. */
static void mask_relu(float *g, const void *y, pn_dtype t, size_t r, int c, float *scratch)
{
    if (!y)
        return;
    load_row(y, t, r, c, scratch);
    for (int k = 0; k < c; k++)
        g[k] = scratch[k] > 0 ? g[k] : 0.0f;
}

/* Per-thread partial sums over rows, reduced in double. mode 0: sum x;
 * mode 1: sum (x - mean)^2; mode 2: sum dy and sum dy * (x - mean), with dy
 * masked by a fused ReLU's output y when y is given. */
static int reduce_rows(const void *x, const void *dy, const void *y, pn_dtype t, size_t rows,
                       int c, const float *mean, int mode, double *acc0, double *acc1)
{
    int threads = omp_get_max_threads();
    float *part = calloc((size_t)threads * 2 * c + 3 * (size_t)threads * c, sizeof(float));
    if (!part)
        return -1;
#pragma omp parallel num_threads(threads)
    {
        int id = omp_get_thread_num();
        float *a0 = part + (size_t)id * 2 * c, *a1 = a0 + c;
        float *row = part + (size_t)threads * 2 * c + (size_t)id * 3 * c, *grow = row + c;
        float *yrow = grow + c;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            load_row(x, t, r, c, row);
            if (mode == 0) {
                for (int k = 0; k < c; k++)
                    a0[k] += row[k];
            } else if (mode == 1) {
                for (int k = 0; k < c; k++) {
                    float d = row[k] - mean[k];
                    a0[k] += d * d;
                }
            } else {
                load_row(dy, t, r, c, grow);
                mask_relu(grow, y, t, r, c, yrow);
                for (int k = 0; k < c; k++) {
                    a0[k] += grow[k];
                    a1[k] += grow[k] * (row[k] - mean[k]);
                }
            }
        }
    }
    for (int k = 0; k < c; k++) {
        acc0[k] = acc1[k] = 0;
        for (int id = 0; id < threads; id++) {
            acc0[k] += part[(size_t)id * 2 * c + k];
            acc1[k] += part[(size_t)id * 2 * c + c + k];
        }
    }
    free(part);
    return 0;
}

int pn_bn_nhwc_stats(const void *x, pn_dtype t, size_t rows, int c, float *mean, float *var)
{
    double *s0 = malloc(2 * (size_t)c * sizeof(double));
    if (!s0)
        return -1;
    double *s1 = s0 + c;
    int rc = reduce_rows(x, NULL, NULL, t, rows, c, NULL, 0, s0, s1);
    for (int k = 0; !rc && k < c; k++)
        mean[k] = (float)(s0[k] / (double)rows);
    if (!rc)
        rc = reduce_rows(x, NULL, NULL, t, rows, c, mean, 1, s0, s1);
    for (int k = 0; !rc && k < c; k++)
        var[k] = (float)(s0[k] / (double)rows); /* biased, as the normalisation uses */
    free(s0);
    return rc;
}

void pn_bn_nhwc_apply(const void *x, void *y, pn_dtype t, size_t rows, int c, const float *scale,
                      const float *shift, int relu)
{
#pragma omp parallel
    {
        float *row = malloc((size_t)c * sizeof(float));
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            if (!row)
                continue;
            load_row(x, t, r, c, row);
            for (int k = 0; k < c; k++)
                row[k] = row[k] * scale[k] + shift[k];
            if (relu)
                for (int k = 0; k < c; k++)
                    row[k] = row[k] > 0 ? row[k] : 0.0f;
            store_row(y, t, r, c, row);
        }
        free(row);
    }
}

int pn_bn_nhwc_backward(const void *x, const void *dy, const void *relu_y, void *dx, pn_dtype t,
                        size_t rows, int c, const float *mean, const float *invstd,
                        const float *gamma, int global_stats, float *dgamma, float *dbeta)
{
    double *sdy = malloc(2 * (size_t)c * sizeof(double));
    float *k_dy = malloc(3 * (size_t)c * sizeof(float));
    if (!sdy || !k_dy || reduce_rows(x, dy, relu_y, t, rows, c, mean, 2, sdy, sdy + c)) {
        free(sdy);
        free(k_dy);
        return -1;
    }
    const double *sdyx = sdy + c;
    /* dx = a*dy + b*x + d, per channel:
     *   batch stats: a = g*is, b = -g*is^3*sum(dy(x-m))/M, d = -g*is*sum(dy)/M - b*m
     *   global stats: a = g*is, b = d = 0 */
    float *k_x = k_dy + c, *k_c = k_dy + 2 * c;
    for (int k = 0; k < c; k++) {
        dbeta[k] = (float)sdy[k];
        dgamma[k] = (float)(sdyx[k] * invstd[k]);
        double a = (double)gamma[k] * invstd[k];
        double b = global_stats ? 0 : -a * invstd[k] * invstd[k] * sdyx[k] / (double)rows;
        double d = global_stats ? 0 : -a * sdy[k] / (double)rows - b * mean[k];
        k_dy[k] = (float)a;
        k_x[k] = (float)b;
        k_c[k] = (float)d;
    }
#pragma omp parallel
    {
        float *row = malloc(3 * (size_t)c * sizeof(float));
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            if (!row)
                continue;
            float *g = row + c;
            load_row(x, t, r, c, row);
            load_row(dy, t, r, c, g);
            mask_relu(g, relu_y, t, r, c, g + c);
            for (int k = 0; k < c; k++)
                row[k] = k_dy[k] * g[k] + k_x[k] * row[k] + k_c[k];
            store_row(dx, t, r, c, row);
        }
        free(row);
    }
    free(sdy);
    free(k_dy);
    return 0;
}
