/* Known-answer tests: layer outputs on small inputs against values computed by
 * hand (the arithmetic is in the comments; PyTorch agrees).
 *
 * A network's input is at least 8x8, so each case feeds an 8x8 image whose
 * 2x2 blocks repeat one value of the 4x4 test image, and a first
 * [avgpool size=2] ("lift") recovers the 4x4 image exactly (mean of four
 * equal floats). The layer under test is named "t" and watched; its output is
 * read with pn_net_watched. fp32 throughout: sums of small integers are exact,
 * so tolerances are 1e-5 (1e-4 where a division or square root rounds). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/nn.h"
#include "testutil.h"
#include "nn_testctx.h"


#define NET(ch, classes) "[net]\ninput = 8\nchannels = " #ch "\nclasses = " #classes "\n[avgpool]\nname = lift\nsize = 2\n"
#define HEAD "[gap]\nname = g\n[fc]\nname = head\nout = classes\n"

/* The 4x4 test images (row-major). */
static const float RAMP[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const float PI_DIGITS[16] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};

static pn_net *make_net(const char *cfg)
{
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 1};
    pn_status st = pn_net_create(g_ctx, cfg, &opt, &net, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, PN_OK);
    return net;
}

static void set_param(pn_net *net, const char *name, const float *values, size_t n)
{
    pn_param *p = pn_net_find_param(net, name);
    assert_non_null(p);
    assert_int_equal(p->numel, n);
    memcpy(p->data, values, n * sizeof *values);
    pn_net_params_changed(net);
}

/* images[b][c] is a 4x4 image (channel-major per image); returns the 8x8 NHWC input. */
static float *lift_input(const float *images, int n, int channels)
{
    float *x = malloc((size_t)n * 64 * channels * sizeof *x);
    assert_non_null(x);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < 8; y++)
            for (int xx = 0; xx < 8; xx++)
                for (int c = 0; c < channels; c++)
                    x[((b * 8 + y) * 8 + xx) * channels + c] =
                        images[(b * channels + c) * 16 + (y / 2) * 4 + xx / 2];
    return x;
}

/* Forward and return the watched layer "t" (NHWC, owned by the net). */
static const float *run(pn_net *net, const float *images, int n, int mode, int *c, int *h, int *w)
{
    pn_error err = {0};
    assert_int_equal(pn_net_watch(net, "t", &err), PN_OK);
    float *x = lift_input(images, n, pn_net_channels(net));
    pn_status st = pn_net_forward(net, x, n, mode, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, PN_OK);
    free(x);
    float *act, *grad;
    assert_int_equal(pn_net_watched(net, &act, &grad, c, h, w, &err), PN_OK);
    return act;
}

static void expect_plane(const float *got, int c, int h, int w, const float *want, double tol,
                         const char *what)
{
    assert_int_equal(c, 1);
    for (int i = 0; i < h * w; i++) {
        if (fabs(got[i] - want[i]) > tol)
            fprintf(stderr, "%s: output %d is %g, expected %g\n", what, i, got[i], want[i]);
        assert_true(fabs(got[i] - want[i]) <= tol);
    }
    printf("%s: %dx%d output matches\n", what, h, w);
}

static const float KERNEL[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, BIAS = 0.5f;

/* 3x3 conv, weights 1..9 row-major, bias 0.5, on RAMP (x[i][j] = 4i + j).
 * Stride 1, pad 1, e.g. corner (0,0): 5*0 + 6*1 + 8*4 + 9*5 + 0.5 = 83.5;
 * centre (1,1): sum_k w_k x_k = 1*0+2*1+3*2+4*4+5*5+6*6+7*8+8*9+9*10 = 303, + 0.5. */
static const float CONV_SAME[16] = {83.5f,  139.5f, 178.5f, 121.5f, 198.5f, 303.5f, 348.5f, 225.5f,
                                    330.5f, 483.5f, 528.5f, 333.5f, 181.5f, 253.5f, 274.5f, 163.5f};

static void test_conv_stride1_pad1(void **state)
{
    pn_net *net = make_net(NET(1, 2) "[conv]\nname = t\nfilters = 1\nsize = 3\npad = 1\n" HEAD);
    set_param(net, "t.weight", KERNEL, 9);
    set_param(net, "t.bias", &BIAS, 1);
    int c, h, w;
    const float *out = run(net, RAMP, 1, PN_FWD_INFER, &c, &h, &w);
    assert_int_equal(h, 4);
    expect_plane(out, c, h, w, CONV_SAME, 1e-4, "conv 3x3 s1 pad 1");
    pn_net_destroy(net);
}

static void test_conv_stride2(void **state)
{
    /* TF SAME, 4 -> 2: total padding (2-1)*2 + 3 - 4 = 1, all of it after, so
     * windows start at rows/cols 0 and 2: the stride-1 pad-1 output at the odd
     * positions (1,1), (1,3), (3,1), (3,3). Symmetric pad 1 starts windows at
     * -1 and 1: the even positions (0,0), (0,2), (2,0), (2,2). */
    static const float tf_same[4] = {303.5f, 225.5f, 253.5f, 163.5f};
    static const float symmetric[4] = {83.5f, 178.5f, 330.5f, 528.5f};
    const char *pads[2] = {"tf_same", "1"};
    const float *wants[2] = {tf_same, symmetric};
    for (int k = 0; k < 2; k++) {
        char cfg[512];
        snprintf(cfg, sizeof cfg, NET(1, 2) "[conv]\nname = t\nfilters = 1\nsize = 3\nstride = 2\npad = %s\n" HEAD,
                 pads[k]);
        pn_net *net = make_net(cfg);
        set_param(net, "t.weight", KERNEL, 9);
        set_param(net, "t.bias", &BIAS, 1);
        int c, h, w;
        const float *out = run(net, RAMP, 1, PN_FWD_INFER, &c, &h, &w);
        assert_int_equal(h, 2);
        assert_int_equal(w, 2);
        expect_plane(out, c, h, w, wants[k], 1e-4, k ? "conv 3x3 s2 pad 1" : "conv 3x3 s2 tf_same");
        pn_net_destroy(net);
    }
}

static void test_conv_depthwise(void **state)
{
    /* 3 channels, each its own 3x3 kernel: ch0 picks the centre (identity),
     * ch1 doubles the left neighbour (zero at column 0), ch2 is zero + bias 1. */
    pn_net *net = make_net(NET(3, 2) "[conv]\nname = t\ngroups = dw\nsize = 3\n" HEAD);
    float wts[27] = {0};
    wts[0 * 9 + 4] = 1;
    wts[1 * 9 + 3] = 2;
    const float bias[3] = {0, 0, 1};
    set_param(net, "t.weight", wts, 27);
    set_param(net, "t.bias", bias, 3);
    float images[48];
    for (int ch = 0; ch < 3; ch++)
        memcpy(images + ch * 16, ch == 1 ? PI_DIGITS : RAMP, sizeof RAMP);
    int c, h, w;
    const float *out = run(net, images, 1, PN_FWD_INFER, &c, &h, &w);
    assert_int_equal(c, 3);
    for (int i = 0; i < 16; i++) {
        int col = i % 4;
        assert_true(fabs(out[i * 3 + 0] - RAMP[i]) < 1e-5);
        assert_true(fabs(out[i * 3 + 1] - (col ? 2 * PI_DIGITS[i - 1] : 0)) < 1e-5);
        assert_true(fabs(out[i * 3 + 2] - 1) < 1e-5);
    }
    pn_net_destroy(net);
}

static void test_maxpool(void **state)
{
    /* PI_DIGITS in 2x2 blocks: max(3,1,5,9)=9, max(4,1,2,6)=6, max(5,3,9,7)=9, max(5,8,9,3)=9 */
    static const float want[4] = {9, 6, 9, 9};
    pn_net *net = make_net(NET(1, 2) "[maxpool]\nname = t\nsize = 2\n" HEAD);
    int c, h, w;
    const float *out = run(net, PI_DIGITS, 1, PN_FWD_INFER, &c, &h, &w);
    assert_int_equal(h, 2);
    expect_plane(out, c, h, w, want, 1e-6, "maxpool 2x2");
    pn_net_destroy(net);
}

static void test_avgpool_padding(void **state)
{
    /* 3x3 stride 2 pad 1, count_include_pad (PyTorch default): always / 9.
     * (0,0): rows/cols -1..1 -> 3+1+5+9 = 18; (0,1): rows -1..1, cols 1..3 ->
     * 1+4+1+9+2+6 = 23; (1,0): rows 1..3, cols -1..1 -> 5+9+5+3+9+7 = 38;
     * (1,1): rows 1..3, cols 1..3 -> 9+2+6+3+5+8+7+9+3 = 52.
     * Excluding padding would give 18/4, 23/6, 38/6, 52/9 instead. */
    static const float want[4] = {18.0f / 9, 23.0f / 9, 38.0f / 9, 52.0f / 9};
    pn_net *net = make_net(NET(1, 2) "[avgpool]\nname = t\nsize = 3\nstride = 2\npad = 1\n" HEAD);
    int c, h, w;
    const float *out = run(net, PI_DIGITS, 1, PN_FWD_INFER, &c, &h, &w);
    assert_int_equal(h, 2);
    expect_plane(out, c, h, w, want, 1e-5, "avgpool 3/2 pad 1");
    pn_net_destroy(net);
}

static void test_gap_fc(void **state)
{
    /* gap(PI_DIGITS) = 80 / 16 = 5; fc weight [2, -1], bias [0.5, 0.25]:
     * logits 2*5 + 0.5 = 10.5 and -5 + 0.25 = -4.75. */
    pn_net *net = make_net(NET(1, 2) "[gap]\nname = t\n[fc]\nname = head\nout = classes\n");
    const float wts[2] = {2, -1}, bias[2] = {0.5f, 0.25f};
    set_param(net, "head.weight", wts, 2);
    set_param(net, "head.bias", bias, 2);
    int c, h, w;
    const float *out = run(net, PI_DIGITS, 1, PN_FWD_INFER, &c, &h, &w);
    assert_int_equal(h, 1);
    assert_true(fabs(out[0] - 5) < 1e-5);
    const float *logits = pn_net_logits(net);
    assert_true(fabs(logits[0] - 10.5) < 1e-5);
    assert_true(fabs(logits[1] + 4.75) < 1e-5);
    pn_net_destroy(net);
}

static void test_batchnorm_inference(void **state)
{
    /* eps 0.25 and variances chosen so sqrt(var + eps) is an integer:
     * ch0: mean 1, var 3.75 (sd 2), gamma 3, beta -1:  y = 1.5 (x - 1) - 1
     * ch1: mean -2, var 0.75 (sd 1), gamma 0.5, beta 0: y = 0.5 (x + 2)
     * ch2: mean 0, var 15.75 (sd 4), gamma -2, beta 1:  y = -0.5 x + 1 */
    pn_net *net = make_net(NET(3, 2) "[batchnorm]\nname = t\neps = 0.25\n" HEAD);
    const float gamma[3] = {3, 0.5f, -2}, beta[3] = {-1, 0, 1};
    const float mean[3] = {1, -2, 0}, var[3] = {3.75f, 0.75f, 15.75f};
    set_param(net, "t.weight", gamma, 3);
    set_param(net, "t.bias", beta, 3);
    set_param(net, "t.running_mean", mean, 3);
    set_param(net, "t.running_var", var, 3);
    float images[48];
    for (int ch = 0; ch < 3; ch++)
        memcpy(images + ch * 16, ch == 1 ? PI_DIGITS : RAMP, sizeof RAMP);
    int c, h, w;
    const float *out = run(net, images, 1, PN_FWD_INFER, &c, &h, &w);
    assert_int_equal(c, 3);
    for (int i = 0; i < 16; i++) {
        float want[3] = {1.5f * (RAMP[i] - 1) - 1, 0.5f * (PI_DIGITS[i] + 2), -0.5f * RAMP[i] + 1};
        for (int ch = 0; ch < 3; ch++)
            assert_true(fabs(out[i * 3 + ch] - want[ch]) < 1e-4);
    }
    /* spot values: ch0 x=5 -> 5; ch1 x=9 -> 5.5; ch2 x=15 -> -6.5 */
    assert_true(fabs(out[5 * 3 + 0] - 5) < 1e-4);
    assert_true(fabs(out[5 * 3 + 1] - 5.5) < 1e-4);
    assert_true(fabs(out[15 * 3 + 2] + 6.5) < 1e-4);
    printf("batchnorm inference: 3 channels x 16 values match\n");
    pn_net_destroy(net);
}

static void test_batchnorm_training(void **state)
{
    /* Batch statistics over (N, H, W): every channel comes out with mean 0 and
     * biased variance var/(var + eps) = 1 - O(1e-5) (gamma 1, beta 0). The
     * running statistics move by momentum 0.1 from (0, 1) toward the batch's
     * mean and unbiased variance (PyTorch convention). */
    enum { N = 2, C = 3 };
    pn_net *net = make_net(NET(3, 2) "[batchnorm]\nname = t\n" HEAD);
    float images[N * C * 16];
    pn_rng r = pn_rng_seed(4, 0, 0);
    for (int b = 0; b < N; b++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < 16; i++)
                images[(b * C + ch) * 16 + i] = 3.0f * ch - 2 + (1.0f + ch) * pn_rng_normal(&r);
    int c, h, w;
    const float *out = run(net, images, N, PN_FWD_TRAIN, &c, &h, &w);
    const pn_param *rm = pn_net_find_param(net, "t.running_mean");
    const pn_param *rv = pn_net_find_param(net, "t.running_var");
    for (int ch = 0; ch < C; ch++) {
        double m = 0, v = 0, xm = 0, xv = 0;
        for (int i = 0; i < N * 16; i++) {
            m += out[i * C + ch];
            xm += images[((i / 16) * C + ch) * 16 + i % 16];
        }
        m /= N * 16;
        xm /= N * 16;
        for (int i = 0; i < N * 16; i++) {
            v += (out[i * C + ch] - m) * (out[i * C + ch] - m);
            double d = images[((i / 16) * C + ch) * 16 + i % 16] - xm;
            xv += d * d;
        }
        v /= N * 16;
        printf("batchnorm train channel %d: mean %.2e, variance %.6f; running mean %.5f (want %.5f), var %.5f (want %.5f)\n",
               ch, m, v, rm->data[ch], 0.1 * xm, rv->data[ch], 0.9 + 0.1 * xv / (N * 16 - 1));
        assert_true(fabs(m) < 1e-5);
        assert_true(fabs(v - 1) < 1e-4);
        assert_true(fabs(rm->data[ch] - 0.1 * xm) < 1e-5);
        assert_true(fabs(rv->data[ch] - (0.9 + 0.1 * xv / (N * 16 - 1))) < 1e-4);
    }
    pn_net_destroy(net);
}

static void check_activation(const char *type, const float *x, const float *want, int n)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, NET(1, 2) "[activation]\nname = t\ntype = %s\n" HEAD, type);
    pn_net *net = make_net(cfg);
    float image[16] = {0};
    memcpy(image, x, (size_t)n * sizeof *x);
    int c, h, w;
    const float *out = run(net, image, 1, PN_FWD_INFER, &c, &h, &w);
    for (int i = 0; i < n; i++) {
        if (fabs(out[i] - want[i]) > 1e-5)
            fprintf(stderr, "%s(%g) = %g, expected %g\n", type, x[i], out[i], want[i]);
        assert_true(fabs(out[i] - want[i]) <= 1e-5);
    }
    printf("%s: %d points match\n", type, n);
    pn_net_destroy(net);
}

static void test_activations(void **state)
{
    static const float x[8] = {-4, -3, -1.5f, 0, 1.5f, 3, 4, 7};
    /* hardswish x * relu6(x + 3) / 6: -1.5*1.5/6 = -0.375, 1.5*4.5/6 = 1.125 */
    static const float hswish[8] = {0, 0, -0.375f, 0, 1.125f, 3, 4, 7};
    /* hardsigmoid relu6(x + 3) / 6 */
    static const float hsig[8] = {0, 0, 0.25f, 0.5f, 0.75f, 1, 1, 1};
    static const float relu6[8] = {0, 0, 0, 0, 1.5f, 3, 4, 6};
    static const float relu[8] = {0, 0, 0, 0, 1.5f, 3, 4, 7};
    check_activation("hardswish", x, hswish, 8);
    check_activation("hardsigmoid", x, hsig, 8);
    check_activation("relu6", x, relu6, 8);
    check_activation("relu", x, relu, 8);
    /* sigmoid(0) = 0.5, sigmoid(ln 3) = 3/4; silu(x) = x sigmoid(x): silu(ln 3) = 0.75 ln 3 */
    const float ln3 = logf(3.0f);
    const float xs[3] = {0, ln3, -ln3};
    const float sig[3] = {0.5f, 0.75f, 0.25f}, silu[3] = {0, 0.75f * ln3, -0.25f * ln3};
    check_activation("sigmoid", xs, sig, 3);
    check_activation("silu", xs, silu, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_stride1_pad1),   cmocka_unit_test(test_conv_stride2),
        cmocka_unit_test(test_conv_depthwise),      cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool_padding),     cmocka_unit_test(test_gap_fc),
        cmocka_unit_test(test_batchnorm_inference), cmocka_unit_test(test_batchnorm_training),
        cmocka_unit_test(test_activations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
