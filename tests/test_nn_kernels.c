/* The hand-written kernels' fast (AVX-512) implementations against their
 * portable C ones and against a double-precision reference, on shapes that
 * hit the awkward cases: channel counts that are not multiples of 16 (masked
 * vector tails), row counts that are not multiples of a block, a mean far
 * from zero (one-pass variance must not cancel), fp32 and bf16 storage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_nhwc.h"
#include "nn/dw_nhwc.h"
#include "nn/maxpool_nhwc.h"
#include "pneumo/nn.h"
#include "testutil.h"

typedef struct tensor {
    pn_dtype t;
    size_t n;
    void *v;
} tensor;

static tensor make(pn_dtype t, size_t n, float mean, float std, uint64_t seed)
{
    tensor x = {t, n, malloc(n * pn_dtype_size(t))};
    assert_non_null(x.v);
    pn_rng r = pn_rng_seed(seed, 1, 1);
    for (size_t i = 0; i < n; i++) {
        float f = mean + std * pn_rng_normal(&r);
        if (t == PN_F32)
            ((float *)x.v)[i] = f;
        else
            ((uint16_t *)x.v)[i] = pn_f32_to_bf16(f);
    }
    return x;
}

static double at(const tensor *x, size_t i)
{
    return x->t == PN_F32 ? ((const float *)x->v)[i] : pn_bf16_to_f32(((const uint16_t *)x->v)[i]);
}

/* Largest |a - b| over the tensors, relative to max |b|. */
static double rel_diff(const tensor *a, const tensor *b)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < a->n; i++) {
        d = fmax(d, fabs(at(a, i) - at(b, i)));
        m = fmax(m, fabs(at(b, i)));
    }
    return d / m;
}

static double rel_diff_f(const float *a, const float *b, int n)
{
    double d = 0, m = 1e-30;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* Mean and biased variance in double, two passes: the reference. */
static void reference_stats(const tensor *x, size_t rows, int c, double *mean, double *var)
{
    for (int k = 0; k < c; k++) {
        double s = 0, q = 0;
        for (size_t r = 0; r < rows; r++)
            s += at(x, r * c + k);
        mean[k] = s / (double)rows;
        for (size_t r = 0; r < rows; r++) {
            double d = at(x, r * c + k) - mean[k];
            q += d * d;
        }
        var[k] = q / (double)rows;
    }
}

/* Whether some x * scale + shift of channel k lies within 1e-3 of a kink of
 * ReLU (0) or hardswish (-3, 0, 3): there an FMA and a separate multiply-add
 * may round to different sides and the derivatives legitimately differ. */
static int near_kink(const tensor *x, size_t rows, int c, int k, float scale, float shift)
{
    for (size_t r = 0; r < rows; r++) {
        double z = at(x, r * c + k) * scale + shift;
        if (fabs(z) < 1e-3 || fabs(fabs(z) - 3) < 1e-3)
            return 1;
    }
    return 0;
}

static void check_bn(const pn_bn_kernels *k, pn_dtype t, size_t rows, int c, pn_bn_act act)
{
    /* mean 50, std 2: E[x^2] - E[x]^2 in fp32 would lose every digit */
    tensor x = make(t, rows * c, 50.0f, 2.0f, 1), dy = make(t, rows * c, 0.0f, 1.0f, 2);
    float *mean = malloc(c * sizeof(float)), *var = malloc(c * sizeof(float));
    double *rmean = malloc(c * sizeof(double)), *rvar = malloc(c * sizeof(double));
    float *scale = malloc(c * sizeof(float)), *shift = malloc(c * sizeof(float));
    float *invstd = malloc(c * sizeof(float)), *gamma = malloc(c * sizeof(float));
    float *dgamma[2], *dbeta[2];
    for (int i = 0; i < 2; i++) {
        dgamma[i] = malloc(c * sizeof(float));
        dbeta[i] = malloc(c * sizeof(float));
    }
    assert_int_equal(pn_bn_nhwc_stats(k, x.v, t, rows, c, mean, var), 0);
    reference_stats(&x, rows, c, rmean, rvar);
    for (int i = 0; i < c; i++) {
        assert_true(fabs(mean[i] - rmean[i]) < 1e-5 * 50);
        assert_true(fabs(var[i] - rvar[i]) < 1e-4 * rvar[i]);
        gamma[i] = 0.5f + 0.05f * (float)i;
        invstd[i] = 1.0f / sqrtf(var[i] + 1e-5f);
        scale[i] = gamma[i] * invstd[i];
        shift[i] = 0.1f * (float)(i % 5) - 0.2f - mean[i] * scale[i];
        while (near_kink(&x, rows, c, i, scale[i], shift[i]))
            shift[i] += 0.01f;
    }
    /* apply and backward: this kernel set against the portable one */
    const pn_bn_kernels *ref = pn_bn_kernels_scalar();
    tensor y[2] = {make(t, rows * c, 0, 0, 3), make(t, rows * c, 0, 0, 3)};
    tensor dx[2] = {make(t, rows * c, 0, 0, 3), make(t, rows * c, 0, 0, 3)};
    const pn_bn_kernels *ks[2] = {k, ref};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pn_bn_nhwc_apply(ks[i], x.v, y[i].v, t, rows, c, scale, shift, act), 0);
        assert_int_equal(pn_bn_nhwc_backward(ks[i], x.v, dy.v, dx[i].v, t, rows, c, mean, invstd,
                                             gamma, 0, act, scale, shift, dgamma[i], dbeta[i]), 0);
    }
    /* fp32: FMA vs separate multiply-add; bf16: one rounding of the output */
    double tol = t == PN_F32 ? 1e-5 : 1e-2;
    printf("%-7s %s rows %zu c %d act %d: y %.1e dx %.1e dgamma %.1e dbeta %.1e\n", k->name,
           t == PN_F32 ? "fp32" : "bf16", rows, c, (int)act, rel_diff(&y[0], &y[1]),
           rel_diff(&dx[0], &dx[1]), rel_diff_f(dgamma[0], dgamma[1], c),
           rel_diff_f(dbeta[0], dbeta[1], c));
    assert_true(rel_diff(&y[0], &y[1]) < tol);
    assert_true(rel_diff(&dx[0], &dx[1]) < tol);
    assert_true(rel_diff_f(dgamma[0], dgamma[1], c) < 1e-4);
    assert_true(rel_diff_f(dbeta[0], dbeta[1], c) < 1e-4);
    /* the ReLU really cut: some outputs are exactly 0 */
    if (act == PN_BN_RELU) {
        size_t zeros = 0;
        for (size_t i = 0; i < y[0].n; i++)
            zeros += at(&y[0], i) == 0;
        assert_true(zeros > y[0].n / 10);
    }
    for (int i = 0; i < 2; i++) {
        free(y[i].v);
        free(dx[i].v);
        free(dgamma[i]);
        free(dbeta[i]);
    }
    free(x.v);
    free(dy.v);
    free(mean);
    free(var);
    free(rmean);
    free(rvar);
    free(scale);
    free(shift);
    free(invstd);
    free(gamma);
}

/* periods (bn_nhwc.h) of 96, 64, 96, 80, 144 and 576 values */
static void check_bn_set(const pn_bn_kernels *set)
{
    const int channels[] = {24, 64, 3, 40, 72, 576};
    const size_t rows[] = {1001, 257, 4099, 63, 3001, 37};
    for (int i = 0; i < 6; i++)
        for (pn_bn_act act = PN_BN_LINEAR; act <= PN_BN_HARDSWISH; act++) {
            check_bn(set, PN_F32, rows[i], channels[i], act);
            check_bn(set, PN_BF16, rows[i], channels[i], act);
        }
}

static void test_batchnorm_kernels_portable(void **state) { check_bn_set(pn_bn_kernels_scalar()); }

static void test_batchnorm_kernels_avx512(void **state)
{
    if (!pn_bn_kernels_avx512()) {
        printf("SKIP AVX-512 batch-norm kernels: this CPU lacks AVX-512 (or PNEUMO_NO_AVX512=1)\n");
        skip();
    }
    check_bn_set(pn_bn_kernels_avx512());
}

/* Max pooling: the kernels against a direct reference (maximum over the
 * window, gradient to the first maximum), with ties (values rounded to
 * quarters) and windows hanging over the padding. */
static void check_maxpool(const pn_maxpool_kernels *k, pn_dtype t, pn_pool_shape s)
{
    size_t nin = (size_t)s.n * s.ih * s.iw * s.c, nout = (size_t)s.n * s.oh * s.ow * s.c;
    tensor x = make(t, nin, 0.0f, 1.0f, 7), dy = make(t, nout, 0.0f, 1.0f, 8);
    for (size_t i = 0; i < nin; i++) { /* ties */
        float q = roundf((float)at(&x, i) * 4) / 4;
        if (t == PN_F32)
            ((float *)x.v)[i] = q;
        else
            ((uint16_t *)x.v)[i] = pn_f32_to_bf16(q);
    }
    tensor y = make(t, nout, 0, 0, 1), dx = make(t, nin, 0, 0, 1);
    uint8_t *argmax = malloc(nout);
    double *ref_dx = calloc(nin, sizeof(double));
    assert_true(argmax && ref_dx);
    pn_maxpool_nhwc_forward(k, x.v, y.v, argmax, t, &s);
    pn_maxpool_nhwc_backward(k, dy.v, argmax, dx.v, t, &s);
    for (int n = 0; n < s.n; n++)
        for (int oy = 0; oy < s.oh; oy++)
            for (int ox = 0; ox < s.ow; ox++)
                for (int c = 0; c < s.c; c++) {
                    double best = -INFINITY;
                    size_t best_i = 0;
                    for (int wy = 0; wy < s.kh; wy++)
                        for (int wx = 0; wx < s.kw; wx++) {
                            int iy = oy * s.sh - s.pt + wy, ix = ox * s.sw - s.pl + wx;
                            if (iy < 0 || ix < 0 || iy >= s.ih || ix >= s.iw)
                                continue;
                            size_t i = (((size_t)n * s.ih + iy) * s.iw + ix) * s.c + c;
                            if (at(&x, i) > best) {
                                best = at(&x, i);
                                best_i = i;
                            }
                        }
                    size_t o = (((size_t)n * s.oh + oy) * s.ow + ox) * s.c + c;
                    assert_true(at(&y, o) == best);
                    ref_dx[best_i] += at(&dy, o);
                }
    double worst = 0;
    for (size_t i = 0; i < nin; i++)
        worst = fmax(worst, fabs(at(&dx, i) - ref_dx[i]));
    printf("%-7s maxpool %s %dx%d/%d pad %d c %d: dx max |diff| %.2e\n", k->name,
           t == PN_F32 ? "fp32" : "bf16", s.kh, s.kw, s.sh, s.pt, s.c, worst);
    assert_true(worst <= (t == PN_F32 ? 1e-6 : 2e-2)); /* bf16: one rounding of a sum */
    free(x.v);
    free(dy.v);
    free(y.v);
    free(dx.v);
    free(argmax);
    free(ref_dx);
}

static void check_maxpool_set(const pn_maxpool_kernels *set)
{
    /* n, c, ih, iw, oh, ow, kh, kw, sh, sw, pt, pl */
    const pn_pool_shape shapes[] = {{2, 24, 9, 9, 5, 5, 3, 3, 2, 2, 1, 1},
                                    {1, 64, 8, 6, 4, 3, 2, 2, 2, 2, 0, 0},
                                    {2, 5, 7, 7, 7, 7, 3, 3, 1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_maxpool(set, PN_F32, shapes[i]);
        check_maxpool(set, PN_BF16, shapes[i]);
    }
}

static void test_maxpool_kernels_portable(void **state) { check_maxpool_set(pn_maxpool_kernels_scalar()); }

static void test_maxpool_kernels_avx512(void **state)
{
    if (!pn_maxpool_kernels_avx512()) {
        printf("SKIP AVX-512 max-pool kernels: this CPU lacks AVX-512 (or PNEUMO_NO_AVX512=1)\n");
        skip();
    }
    check_maxpool_set(pn_maxpool_kernels_avx512());
}

/* Depthwise weight gradient: dW[c][i][j] = sum over outputs of dy * x at the
 * tap's input position; db[c] = sum dy. */
/* A batch-norm prologue for the depthwise kernels: per-channel scale and
 * shift (negative ones too, so ReLU cuts), hardswish or ReLU. */
typedef struct test_prologue {
    pn_dw_prologue pro;
    float scale[128], shift[128];
} test_prologue;

static const pn_dw_prologue *make_prologue(test_prologue *tp, int c, pn_bn_act act)
{
    for (int k = 0; k < c; k++) {
        tp->scale[k] = 0.5f + 0.05f * (float)(k % 9);
        tp->shift[k] = 0.3f * (float)(k % 5) - 0.6f;
    }
    tp->pro = (pn_dw_prologue){tp->scale, tp->shift, act};
    return &tp->pro;
}

/* the input as the kernels see it: pro(x) (fp32 math, as theirs) */
static double input_at(const tensor *x, size_t i, int c, const pn_dw_prologue *pro)
{
    float v = (float)at(x, i);
    return pro ? pn_bn_act_apply(pro->act, v * pro->scale[i % c] + pro->shift[i % c]) : v;
}

static void check_dw_grad(pn_dtype t, pn_dw_shape s, const pn_dw_prologue *pro)
{
    size_t nin = (size_t)s.n * s.ih * s.iw * s.c, nout = (size_t)s.n * s.oh * s.ow * s.c;
    tensor x = make(t, nin, 0.5f, 1.0f, 11), dy = make(t, nout, 0.0f, 1.0f, 12);
    int taps = s.kh * s.kw;
    float *dw = malloc((size_t)s.c * taps * sizeof(float)), *db = malloc((size_t)s.c * sizeof(float));
    double *ref = calloc((size_t)s.c * (taps + 1), sizeof(double));
    assert_true(dw && db && ref);
    assert_int_equal(pn_dw_nhwc_backward_weights(x.v, pro, dy.v, t, &s, dw, db), 0);
    for (int n = 0; n < s.n; n++)
        for (int oy = 0; oy < s.oh; oy++)
            for (int ox = 0; ox < s.ow; ox++)
                for (int c = 0; c < s.c; c++) {
                    double g = at(&dy, (((size_t)n * s.oh + oy) * s.ow + ox) * s.c + c);
                    ref[(size_t)s.c * taps + c] += g;
                    for (int i = 0; i < s.kh; i++)
                        for (int j = 0; j < s.kw; j++) {
                            int iy = oy * s.sh - s.pt + i * s.dh, ix = ox * s.sw - s.pl + j * s.dw;
                            if (iy < 0 || ix < 0 || iy >= s.ih || ix >= s.iw)
                                continue;
                            ref[(size_t)c * taps + i * s.kw + j] +=
                                g * input_at(&x, (((size_t)n * s.ih + iy) * s.iw + ix) * s.c + c, s.c, pro);
                        }
                }
    double worst = 0, scale = 1e-30;
    for (int c = 0; c < s.c; c++) {
        for (int k = 0; k < taps; k++) {
            worst = fmax(worst, fabs(dw[c * taps + k] - ref[(size_t)c * taps + k]));
            scale = fmax(scale, fabs(ref[(size_t)c * taps + k]));
        }
        worst = fmax(worst, fabs(db[c] - ref[(size_t)s.c * taps + c]));
    }
    printf("depthwise weight grad %s %dx%d/%d c %d%s: max |diff| %.2e of %.2e\n",
           t == PN_F32 ? "fp32" : "bf16", s.kh, s.kw, s.sh, s.c, pro ? " with batch norm" : "",
           worst, scale);
    assert_true(worst < 1e-4 * scale); /* fp32 sums of exact bf16 or fp32 products */
    free(x.v);
    free(dy.v);
    free(dw);
    free(db);
    free(ref);
}

static void test_depthwise_weight_grad(void **state)
{
    (void)state;
    /* n, c, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl */
    /* the input rows are converted once into a ring shared by consecutive
     * output rows: stride 2, stride 1 over many rows, and dilation 3, where
     * the ring would put a kernel's three rows in one slot */
    const pn_dw_shape shapes[] = {{3, 24, 9, 9, 5, 5, 5, 5, 2, 2, 1, 1, 2, 2},
                                  {2, 40, 7, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1},
                                  {2, 24, 14, 14, 14, 14, 5, 5, 1, 1, 1, 1, 2, 2},
                                  {2, 20, 9, 9, 3, 3, 3, 3, 1, 1, 3, 3, 0, 0}};
    test_prologue tp;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_dw_grad(PN_F32, shapes[i], NULL);
        check_dw_grad(PN_BF16, shapes[i], NULL);
        check_dw_grad(PN_F32, shapes[i], make_prologue(&tp, shapes[i].c, PN_BN_HARDSWISH));
        check_dw_grad(PN_BF16, shapes[i], make_prologue(&tp, shapes[i].c, PN_BN_RELU));
    }
}

/* Depthwise forward and (stride 1) input gradient against direct sums. */
static void check_dw_forward_backward(pn_dtype t, pn_dw_shape s, const pn_dw_prologue *pro)
{
    size_t nin = (size_t)s.n * s.ih * s.iw * s.c, nout = (size_t)s.n * s.oh * s.ow * s.c;
    int taps = s.kh * s.kw;
    tensor x = make(t, nin, 0.0f, 1.0f, 21), dy = make(t, nout, 0.0f, 1.0f, 22);
    tensor y = make(t, nout, 0, 0, 1), dx = make(t, nin, 0, 0, 1);
    float *w = malloc((size_t)s.c * taps * sizeof(float)), *wt = malloc((size_t)s.c * taps * sizeof(float));
    double *ref_dx = calloc(nin, sizeof(double));
    assert_true(w && wt && ref_dx);
    pn_rng r = pn_rng_seed(23, 1, 1);
    for (int i = 0; i < s.c * taps; i++)
        w[i] = pn_rng_normal(&r);
    pn_dw_transpose_weights(w, s.c, s.kh, s.kw, 0, wt);
    assert_int_equal(pn_dw_nhwc_forward(x.v, pro, wt, y.v, t, &s), 0);
    double worst_y = 0, worst_dx = 0, scale = 1e-30;
    for (int n = 0; n < s.n; n++)
        for (int oy = 0; oy < s.oh; oy++)
            for (int ox = 0; ox < s.ow; ox++)
                for (int c = 0; c < s.c; c++) {
                    double acc = 0;
                    size_t o = (((size_t)n * s.oh + oy) * s.ow + ox) * s.c + c;
                    for (int i = 0; i < s.kh; i++)
                        for (int j = 0; j < s.kw; j++) {
                            int iy = oy * s.sh - s.pt + i, ix = ox * s.sw - s.pl + j;
                            if (iy < 0 || ix < 0 || iy >= s.ih || ix >= s.iw)
                                continue;
                            size_t in = (((size_t)n * s.ih + iy) * s.iw + ix) * s.c + c;
                            acc += input_at(&x, in, s.c, pro) * w[c * taps + i * s.kw + j];
                            ref_dx[in] += at(&dy, o) * w[c * taps + i * s.kw + j];
                        }
                    worst_y = fmax(worst_y, fabs(at(&y, o) - acc));
                    scale = fmax(scale, fabs(acc));
                }
    double tol = t == PN_F32 ? 1e-5 : 1e-2; /* bf16: one rounding of the output */
    printf("depthwise forward %s %dx%d/%d pad %d,%d c %d%s: max |diff| %.2e of %.2e\n",
           t == PN_F32 ? "fp32" : "bf16", s.kh, s.kw, s.sh, s.pt, s.pl, s.c,
           pro ? " with batch norm" : "", worst_y, scale);
    assert_true(worst_y <= tol * scale);
    if (s.sh == 1 && s.sw == 1 && !pro) {
        pn_dw_transpose_weights(w, s.c, s.kh, s.kw, 1, wt);
        assert_int_equal(pn_dw_nhwc_backward_data(dy.v, wt, dx.v, t, &s), 0);
        double dscale = 1e-30;
        for (size_t i = 0; i < nin; i++) {
            worst_dx = fmax(worst_dx, fabs(at(&dx, i) - ref_dx[i]));
            dscale = fmax(dscale, fabs(ref_dx[i]));
        }
        printf("depthwise input gradient: max |diff| %.2e of %.2e\n", worst_dx, dscale);
        assert_true(worst_dx <= tol * dscale);
    }
    free(x.v);
    free(dy.v);
    free(y.v);
    free(dx.v);
    free(w);
    free(wt);
    free(ref_dx);
}

static void test_depthwise_forward_backward(void **state)
{
    (void)state;
    /* n, c, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl */
    const pn_dw_shape shapes[] = {{2, 24, 9, 9, 9, 9, 5, 5, 1, 1, 1, 1, 2, 2},
                                  {2, 40, 8, 8, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0},  /* TF SAME, stride 2 */
                                  {1, 16, 7, 11, 7, 11, 3, 3, 1, 1, 1, 1, 1, 1},
                                  {3, 72, 13, 13, 7, 7, 5, 5, 2, 2, 1, 1, 2, 2},
                                  {2, 20, 12, 12, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1},
                                  /* rows of 14 and 28: blocks of 14 pixels (7 above) */
                                  {2, 24, 14, 14, 14, 14, 5, 5, 1, 1, 1, 1, 2, 2},
                                  {1, 32, 56, 56, 28, 28, 3, 3, 2, 2, 1, 1, 0, 0}};
    if (!pn_dw_nhwc_fast_available(&shapes[0])) {
        printf("SKIP depthwise forward kernels: no AVX-512 here (oneDNN's run instead)\n");
        skip();
    }
    test_prologue tp;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_dw_forward_backward(PN_F32, shapes[i], NULL);
        check_dw_forward_backward(PN_BF16, shapes[i], NULL);
        /* a batch norm applied as rows are read: padding must stay 0 */
        check_dw_forward_backward(PN_F32, shapes[i], make_prologue(&tp, shapes[i].c, PN_BN_RELU));
        check_dw_forward_backward(PN_BF16, shapes[i], make_prologue(&tp, shapes[i].c, PN_BN_HARDSWISH));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_kernels_portable),
        cmocka_unit_test(test_batchnorm_kernels_avx512),
        cmocka_unit_test(test_maxpool_kernels_portable),
        cmocka_unit_test(test_maxpool_kernels_avx512),
        cmocka_unit_test(test_depthwise_weight_grad),
        cmocka_unit_test(test_depthwise_forward_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
