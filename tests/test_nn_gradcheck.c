/* Gradient checks: pn_net_backward against central finite differences of the
 * forward pass, for every layer kind, plus the two losses.
 *
 * Each case is a tiny fp32 network (input 8-9 px, batch 2-3):
 *   input -> [conv pre: 1x1, random, linear] -> layer(s) under test -> ... -> logits
 * with loss L = sum(logits * R) for a fixed random R, so dL/dlogits = R.
 *  - every trainable parameter tensor: analytic pn_param.grad vs
 *    (L(p + eps) - L(p - eps)) / 2eps at up to 6 random coordinates;
 *  - the input side: "pre" is watched, and dL/dx = W_pre^T dL/dpre (1x1 conv)
 *    is compared with finite differences on the network input, so every
 *    layer's input gradient is checked, not only its own weights'.
 *
 * Error per coordinate: |a - f| / max(FLOOR, |a| + |f|), a = analytic, f = FD.
 * FLOOR = 2e-2: L is a float32 sum of O(1) logits, so each L carries ~1e-6
 * rounding noise, which the 2*eps = 2e-2 division turns into ~1e-4 absolute
 * noise in f; the floor keeps near-zero gradients from dominating. Tolerance
 * 2e-2: the O(eps^2 f''') truncation error with eps = 1e-2 is ~1e-4 relative
 * for these smooth functions; a wrong backward (missing term, wrong stride or
 * padding, missing accumulation) gives errors of order 1.
 * Kinks (relu at 0, relu6 at 6, hardswish at +-3, max pool switches): a
 * coordinate whose one-sided differences disagree (a kink within eps) is
 * skipped; at most a quarter of the coordinates may be skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_se.h"
#include "nn/internal.h" /* net->step: pins the dropout mask across forwards */
#include "nn/layer_conv.h"
#include "pneumo/nn.h"
#include "testutil.h"
#include "nn_testctx.h"

#define EPS 1e-2 /* default step; cases with many kinks use a smaller one */
#define FLOOR 2e-2
#define TOLERANCE 2e-2
#define COORDS 6
#define PINNED_STEP 100

static double g_eps = EPS; /* the current case's step */

typedef struct gc_case {
    const char *cfg;
    int n;               /* batch */
    float input_scale;   /* std of the random input */
    const char *freeze;  /* parameter prefix frozen before the check, or NULL */
    double eps;          /* finite-difference step; 0 = EPS */
} gc_case;

typedef struct gc_stats {
    int checked, skipped;
    double worst;
    char worst_what[160];
} gc_stats;

static float *random_floats(size_t n, float scale, uint64_t seed)
{
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    pn_rng r = pn_rng_seed(seed, 7, 7);
    for (size_t i = 0; i < n; i++)
        v[i] = scale * pn_rng_normal(&r);
    return v;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Biases and BN shifts start at 0 and BN scales at 1: randomise them so
 * their gradients and the layers' nonlinear regions are exercised. */
static void randomise_params(pn_net *net, uint64_t seed)
{
    pn_rng r = pn_rng_seed(seed, 3, 3);
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        pn_param *p = pn_net_param(net, i);
        for (size_t k = 0; k < p->numel; k++) {
            float u = pn_rng_uniform(&r);
            if (ends_with(p->name, "running_var"))
                p->data[k] = 0.5f + 1.5f * u;
            else if (ends_with(p->name, "running_mean") || ends_with(p->name, "bias"))
                p->data[k] = 0.6f * u - 0.3f;
            else if (p->ndim == 1) /* BN gamma */
                p->data[k] = 0.5f + u;
        }
    }
    pn_net_params_changed(net);
}

static double loss_of(pn_net *net, const float *x, int n, const float *r)
{
    pn_error err = {0};
    net->step = PINNED_STEP; /* the forward makes it PINNED_STEP + 1: same dropout mask */
    pn_status st = pn_net_forward(net, x, n, PN_FWD_TRAIN, &err);
    if (st)
        fprintf(stderr, "forward: %s\n", err.msg);
    assert_int_equal(st, PN_OK);
    const float *logits = pn_net_logits(net);
    double sum = 0;
    for (int i = 0; i < n * pn_net_classes(net); i++)
        sum += (double)logits[i] * r[i];
    return sum;
}

/* Compares one analytic derivative with the central difference of L as *v
 * moves by +-g_eps (parameters need pn_net_params_changed after each write). */
static void compare(pn_net *net, float *v, int is_param, double analytic, const float *x, int n,
                    const float *r, double l0, gc_stats *s, const char *what)
{
    float saved = *v;
    *v = saved + (float)g_eps;
    if (is_param)
        pn_net_params_changed(net);
    double lp = loss_of(net, x, n, r);
    *v = saved - (float)g_eps;
    if (is_param)
        pn_net_params_changed(net);
    double lm = loss_of(net, x, n, r);
    *v = saved;
    if (is_param)
        pn_net_params_changed(net);
    double fwd = (lp - l0) / g_eps, bwd = (l0 - lm) / g_eps, fd = (lp - lm) / (2 * g_eps);
    if (fabs(fwd - bwd) > 0.1 * (fabs(fwd) + fabs(bwd)) + 1e-3) {
        s->skipped++; /* a kink lies within eps of this point */
        return;
    }
    double e = fabs(analytic - fd) / fmax(FLOOR, fabs(analytic) + fabs(fd));
    s->checked++;
    if (e > s->worst) {
        s->worst = e;
        snprintf(s->worst_what, sizeof s->worst_what, "%s: analytic %.6g, numeric %.6g", what,
                 analytic, fd);
    }
}

static void check_params(pn_net *net, const float *x, int n, const float *r, double l0,
                         gc_stats *s, pn_rng *pick)
{
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        pn_param *p = pn_net_param(net, i);
        if (p->is_buffer || p->frozen)
            continue;
        float *grad = malloc(p->numel * sizeof *grad);
        assert_non_null(grad);
        memcpy(grad, p->grad, p->numel * sizeof *grad); /* FD forwards do not touch it, but be safe */
        size_t count = p->numel < COORDS ? p->numel : COORDS;
        for (size_t c = 0; c < count; c++) {
            size_t k = p->numel <= COORDS ? c : pn_rng_next(pick) % p->numel;
            char what[160];
            snprintf(what, sizeof what, "%s[%zu]", p->name, k);
            compare(net, &p->data[k], 1, grad[k], x, n, r, l0, s, what);
        }
        free(grad);
    }
}

/* dL/dx from the watched gradient at the 1x1 conv "pre": W^T g per pixel. */
static void check_input(pn_net *net, float *x, int n, const float *r, double l0,
                        const float *gpre, int k_out, gc_stats *s, pn_rng *pick)
{
    int c_in = pn_net_channels(net), size = pn_net_input_size(net);
    const pn_param *w = pn_net_find_param(net, "pre.weight");
    assert_non_null(w);
    size_t count = (size_t)n * size * size * c_in;
    for (int t = 0; t < 2 * COORDS; t++) {
        size_t i = pn_rng_next(pick) % count, pixel = i / c_in;
        int ci = (int)(i % c_in);
        double analytic = 0;
        for (int o = 0; o < k_out; o++)
            analytic += (double)w->data[o * c_in + ci] * gpre[pixel * k_out + o];
        char what[64];
        snprintf(what, sizeof what, "input[%zu]", i);
        compare(net, &x[i], 0, analytic, x, n, r, l0, s, what);
    }
}

static void gradcheck(const char *label, const gc_case *c)
{
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 11};
    g_eps = c->eps > 0 ? c->eps : EPS;
    pn_status st = pn_net_create(g_ctx, c->cfg, &opt, &net, &err);
    if (st)
        fprintf(stderr, "%s: %s\n", label, err.msg);
    assert_int_equal(st, PN_OK);
    randomise_params(net, 5);
    if (c->freeze)
        assert_true(pn_net_freeze(net, c->freeze, 1) > 0);
    assert_int_equal(pn_net_watch(net, "pre", &err), PN_OK);
    int n = c->n, size = pn_net_input_size(net), classes = pn_net_classes(net);
    float *x = random_floats((size_t)n * size * size * pn_net_channels(net), c->input_scale, 21);
    float *r = random_floats((size_t)n * classes, 1.0f, 22);

    double l0 = loss_of(net, x, n, r);
    assert_int_equal(pn_net_backward(net, r, &err), PN_OK);
    float *act, *grad;
    int kc, kh, kw;
    assert_int_equal(pn_net_watched(net, &act, &grad, &kc, &kh, &kw, &err), PN_OK);
    assert_int_equal(kh, size); /* pre is a 1x1 stride-1 conv */
    size_t gcount = (size_t)n * kh * kw * kc;
    float *gpre = malloc(gcount * sizeof *gpre);
    assert_non_null(gpre);
    memcpy(gpre, grad, gcount * sizeof *gpre);

    gc_stats s = {0};
    pn_rng pick = pn_rng_seed(99, 1, 2);
    check_params(net, x, n, r, l0, &s, &pick);
    check_input(net, x, n, r, l0, gpre, kc, &s, &pick);
    printf("%-28s %3d checked, %2d skipped (kink), worst relative error %.2e (%s)\n", label,
           s.checked, s.skipped, s.worst, s.worst_what);
    assert_true(s.checked >= 8);
    assert_true(s.skipped * 3 <= s.checked);
    assert_true(s.worst < TOLERANCE);
    free(gpre);
    free(x);
    free(r);
    pn_net_destroy(net);
}

/* ---- cfg fragments ---- */
#define NET(size, ch, classes) "[net]\ninput = " #size "\nchannels = " #ch "\nclasses = " #classes "\n"
#define PRE(filters) "[conv]\nname = pre\nfilters = " #filters "\nsize = 1\n"
#define HEAD "[gap]\n[fc]\nname = head\nout = classes\n"

static void test_conv_stride2_tf_same(void **state)
{
    /* 8 px, k3, s2 TF SAME: output 4, padding 0 before and 1 after. */
    gc_case c = {NET(8, 3, 3) PRE(3)
                 "[conv]\nname = c\nfilters = 4\nsize = 3\nstride = 2\npad = tf_same\n" HEAD,
                 2, 1.0f, NULL, 0};
    gradcheck("conv s2 tf_same bias", &c);
}

static void test_conv_dilated_grouped(void **state)
{
    gc_case c = {NET(9, 1, 2) PRE(4)
                 "[conv]\nname = c\nfilters = 6\nsize = 3\ndilation = 2\ngroups = 2\nbias = 0\n" HEAD,
                 2, 1.0f, NULL, 0};
    gradcheck("conv dilation2 groups2", &c);
}

static void test_conv_depthwise(void **state)
{
    /* Also a non-square kernel and an explicit padding of 1. */
    gc_case c = {NET(8, 3, 2) PRE(4)
                 "[conv]\nname = dw\ngroups = dw\nsize = 3x5\npad = 1\nstride = 2\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("conv depthwise 3x5", &c);
    /* stride 1: the input gradient by dw_nhwc.c where the CPU has AVX-512;
     * 20 channels, a partial 16-channel vector */
    gc_case c1 = {NET(8, 3, 2) PRE(20) "[conv]\nname = dw\ngroups = dw\nsize = 5\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("conv depthwise 5x5 stride 1", &c1);
    /* after a batch norm that the convolution applies as it reads its input
     * (PN_BN_IN_CONV, on AVX-512, from 32 channels), stride 2 and stride 1 */
    gc_case c2 = {NET(8, 3, 2) PRE(40) "[batchnorm]\nname = bn\n"
                  "[conv]\nname = dw\ngroups = dw\nsize = 3\nstride = 2\nbias = 0\n" HEAD, 3, 1.0f, NULL, 0};
    gradcheck("batchnorm -> depthwise s2", &c2);
    gc_case c3 = {NET(8, 3, 2) PRE(40) "[batchnorm]\nname = bn\n"
                  "[conv]\nname = dw\ngroups = dw\nsize = 5\nbias = 0\n" HEAD, 3, 1.0f, NULL, 0};
    gradcheck("batchnorm -> depthwise s1", &c3);
}

static void test_batchnorm_train(void **state)
{
    /* batch statistics: every output depends on every input of its channel */
    gc_case c = {NET(8, 3, 3) PRE(4)
                 "[conv]\nname = c\nfilters = 4\nsize = 3\nbatchnorm = 1\n"
                 "[batchnorm]\nname = bn\nactivation = sigmoid\n" HEAD,
                 3, 1.0f, NULL, 0};
    gradcheck("batchnorm train", &c);
}

/* The algorithm oneDNN chose for conv layer "c" of cfg after a training forward. */
static void expect_conv_algorithm(const char *cfg, const char *expected)
{
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 11};
    assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
    float *x = random_floats(2 * 8 * 8 * 3, 1.0f, 5);
    assert_int_equal(pn_net_forward(net, x, 2, PN_FWD_TRAIN, &err), PN_OK);
    const char *alg = NULL;
    for (int i = 0; i < net->n_layers; i++)
        if (!strcmp(net->layers[i].name, "c"))
            alg = pn_conv_algorithm(&net->layers[i]);
    assert_non_null(alg);
    assert_string_equal(alg, expected);
    free(x);
    pn_net_destroy(net);
}

#define WINOGRAD_CFG NET(8, 3, 2) PRE(16) "[conv]\nname = c\nfilters = 16\nsize = 3\n" HEAD

static void test_conv_winograd(void **state)
{
    /* fp32 3x3 stride-1 with channels in multiples of 16: Winograd in
     * nChw16c, activations reordered to and from NHWC around it. */
    gc_case c = {WINOGRAD_CFG, 2, 1.0f, NULL, 0};
    gradcheck("conv 3x3 winograd", &c);
    /* algorithm = direct opts out; anything else is a cfg error */
    expect_conv_algorithm(NET(8, 3, 2) PRE(16) "[conv]\nname = c\nfilters = 16\nsize = 3\nalgorithm = direct\n" HEAD,
                          "direct");
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 11};
    const char *bad = NET(8, 3, 2) PRE(16) "[conv]\nname = c\nfilters = 16\nalgorithm = fast\n" HEAD;
    assert_int_equal(pn_net_create(g_ctx, bad, &opt, &net, &err), PN_EFORMAT);
    assert_non_null(strstr(err.msg, "algorithm"));
}

/* ... and it really is Winograd, where this CPU has the kernel. */
static void test_conv_winograd_chosen(void **state)
{
    if (!strstr(pn_ctx_isa_name(g_ctx), "avx512")) {
        printf("SKIP Winograd check: CPU %s has no oneDNN Winograd kernel\n", pn_ctx_isa_name(g_ctx));
        skip();
    }
    expect_conv_algorithm(WINOGRAD_CFG, "winograd");
}

static void test_batchnorm_frozen(void **state)
{
    /* frozen: running statistics (randomised), gradient still flows to pre */
    gc_case c = {NET(8, 3, 3) PRE(4)
                 "[batchnorm]\nname = bn\n[conv]\nname = c\nfilters = 4\nsize = 3\nbatchnorm = 1\n" HEAD,
                 2, 1.0f, "bn.", 0};
    gradcheck("batchnorm frozen (global)", &c);
}

static void check_activation(const char *type)
{
    char cfg[512], label[64];
    /* Input std 4: values reach past +-3 (hardswish/hardsigmoid) and 6 (relu6).
     * A step in pre.weight moves every pre-activation by eps * x (|x| up to
     * ~12), so with eps 1e-2 several of them cross a kink at once, in both
     * directions, which the one-sided test cannot see: eps 2e-3 here (FD
     * noise ~1e-6 / 4e-3 = 2.5e-4, still far below the floor). */
    snprintf(cfg, sizeof cfg, NET(8, 1, 2) PRE(3) "[activation]\nname = a\ntype = %s\n" HEAD, type);
    snprintf(label, sizeof label, "activation %s", type);
    gc_case c = {cfg, 2, 4.0f, NULL, 2e-3};
    gradcheck(label, &c);
}

static void test_activations(void **state)
{
    const char *types[] = {"relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "silu"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        check_activation(types[i]);
}

static void test_fused_activation_on_conv_fc(void **state)
{
    /* `activation =` on conv/fc adds an activation layer after them */
    gc_case c = {NET(8, 1, 2) PRE(2)
                 "[conv]\nname = c\nfilters = 3\nactivation = hardswish\n"
                 "[fc]\nname = f\nout = 5\nactivation = silu\n[fc]\nname = head\nout = classes\n",
                 2, 1.0f, NULL, 0};
    gradcheck("conv+hardswish, fc flatten", &c);
}

static void test_maxpool(void **state)
{
    gc_case c = {NET(9, 1, 2) PRE(2) "[maxpool]\nsize = 3\nstride = 2\npad = 1\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("maxpool 3/2 pad 1", &c);
}

static void test_avgpool(void **state)
{
    gc_case c = {NET(9, 1, 2) PRE(2) "[avgpool]\nsize = 3\nstride = 2\npad = 1\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("avgpool 3/2 pad 1", &c);
}

static void test_gap_fc(void **state)
{
    gc_case c = {NET(8, 3, 3) PRE(3) "[gap]\n[fc]\nname = f\nout = 4\nactivation = sigmoid\n"
                 "[fc]\nname = head\nout = classes\nbias = 0\n",
                 3, 1.0f, NULL, 0};
    gradcheck("gap + fc", &c);
}

static void test_dropout(void **state)
{
    gc_case c = {NET(8, 1, 2) PRE(3) "[dropout]\np = 0.4\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("dropout p=0.4 (pinned mask)", &c);
    gc_case c0 = {NET(8, 1, 2) PRE(3) "[dropout]\np = 0\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("dropout p=0", &c0);
}

static void test_add_residual(void **state)
{
    /* "a" feeds both the conv and the add: its gradient must be accumulated */
    gc_case c = {NET(8, 1, 2) PRE(3)
                 "[conv]\nname = a\nfilters = 3\nactivation = silu\n"
                 "[conv]\nname = b\nfilters = 3\n"
                 "[add]\nname = sum\nfrom = a\nactivation = sigmoid\n" HEAD,
                 2, 1.0f, NULL, 0};
    gradcheck("add (residual)", &c);
}

static void test_concat(void **state)
{
    gc_case c = {NET(8, 1, 3) PRE(2)
                 "[conv]\nname = a\nfilters = 2\nactivation = sigmoid\n"
                 "[conv]\nname = b\nfilters = 3\ninput = pre\n"
                 "[concat]\nname = cat\nfrom = pre, a, -1\n" HEAD,
                 2, 1.0f, NULL, 0};
    gradcheck("concat", &c);
}

static void test_se(void **state)
{
    gc_case c = {NET(8, 3, 2) PRE(4) "[se]\nname = se\nsqueeze = 2\n" HEAD, 2, 1.0f, NULL, 0};
    gradcheck("se relu/hardsigmoid", &c);
    gc_case c2 = {NET(8, 3, 2) PRE(4) "[se]\nname = se\nsqueeze = 3\nactivation = silu\ngate = sigmoid\n" HEAD,
                  2, 1.0f, NULL, 0};
    gradcheck("se silu/sigmoid", &c2);
    /* after a batch norm that the SE block applies itself (bn_se.h, on
     * AVX-512): the norm's gradients come from the SE's backward */
    gc_case c3 = {NET(8, 3, 2) PRE(20) "[batchnorm]\nname = bn\n[se]\nname = se\nsqueeze = 4\n" HEAD,
                  3, 1.0f, NULL, 0};
    gradcheck("batchnorm -> se", &c3);
}

/* ---- losses: value against PyTorch's formula, gradient against FD ---- */

/* torch.nn.functional.cross_entropy(weight=w, label_smoothing=ls), mean
 * reduction, written out in double: the smoothing term weights each class k
 * by w[k]; the sum is divided by sum_i w[y_i]. */
static double torch_ce(const float *z, const int *y, int n, int classes, const float *w, double ls)
{
    double total = 0, wsum = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * classes;
        double lse = 0;
        for (int k = 0; k < classes; k++)
            lse += exp(zi[k]);
        lse = log(lse);
        double wy = w ? w[y[i]] : 1, smooth = 0;
        for (int k = 0; k < classes; k++)
            smooth += (w ? w[k] : 1) * (lse - zi[k]);
        total += (1 - ls) * wy * (lse - zi[y[i]]) + ls / classes * smooth;
        wsum += wy;
    }
    return total / wsum;
}

static void check_ce(const float *w, float ls, const char *label)
{
    enum { N = 3, C = 3 };
    float z[N * C] = {1.0f, -0.5f, 0.25f, 0.1f, 0.2f, -1.0f, 2.0f, 0.0f, -2.0f};
    int y[N] = {0, 2, 1};
    float g[N * C];
    float loss = pn_softmax_cross_entropy(z, y, N, C, w, ls, g);
    double want = torch_ce(z, y, N, C, w, ls);
    printf("cross-entropy %-22s loss %.7f, PyTorch formula %.7f\n", label, loss, want);
    /* float32 result of a double computation: 1e-6 relative */
    assert_true(fabs(loss - want) < 1e-5);
    double worst = 0;
    for (int i = 0; i < N * C; i++) {
        float saved = z[i];
        double eps = 1e-3;
        z[i] = saved + (float)eps;
        double lp = pn_softmax_cross_entropy(z, y, N, C, w, ls, NULL);
        z[i] = saved - (float)eps;
        double lm = pn_softmax_cross_entropy(z, y, N, C, w, ls, NULL);
        z[i] = saved;
        double fd = (lp - lm) / (2 * eps);
        /* float32 loss ~1: 1e-7 noise / 2e-3 = 5e-5 absolute */
        double e = fabs(fd - g[i]) / fmax(1e-2, fabs(fd) + fabs(g[i]));
        worst = e > worst ? e : worst;
    }
    printf("cross-entropy %-22s gradient worst relative error %.2e\n", label, worst);
    assert_true(worst < 1e-2);
}

static void test_softmax_cross_entropy(void **state)
{
    const float w[3] = {0.5f, 1.0f, 2.0f};
    check_ce(NULL, 0, "plain");
    check_ce(w, 0, "class weights");
    check_ce(NULL, 0.1f, "label smoothing");
    check_ce(w, 0.1f, "weights + smoothing");
}

static void test_bce_with_logits(void **state)
{
    enum { N = 4 };
    float z[N] = {-2.0f, -0.3f, 0.7f, 25.0f}, t[N] = {1, 0, 1, 0}, g[N];
    for (int pw_i = 0; pw_i < 2; pw_i++) {
        float pw = pw_i ? 3.0f : 1.0f;
        float loss = pn_bce_with_logits(z, t, N, pw, g);
        /* -[pw t log s(z) + (1-t) log(1-s(z))], mean; z=25, t=0 costs ~25 */
        double want = 0;
        for (int i = 0; i < N; i++) {
            double s = 1 / (1 + exp(-(double)z[i]));
            want -= pw * t[i] * log(s) + (1 - t[i]) * log1p(-s);
        }
        want /= N;
        printf("bce pos_weight %.0f: loss %.7f, formula %.7f\n", pw, loss, want);
        assert_true(fabs(loss - want) < 1e-5 * fmax(1, fabs(want)));
        for (int i = 0; i < N; i++) {
            float saved = z[i];
            double eps = 1e-3;
            z[i] = saved + (float)eps;
            double lp = pn_bce_with_logits(z, t, N, pw, NULL);
            z[i] = saved - (float)eps;
            double lm = pn_bce_with_logits(z, t, N, pw, NULL);
            z[i] = saved;
            double fd = (lp - lm) / (2 * eps);
            /* float32 loss up to ~7: 1e-6 noise / 2e-3 = 5e-4 absolute */
            assert_true(fabs(fd - g[i]) < 2e-3 + 1e-2 * fabs(fd));
        }
    }
}

/* ---- bf16: the same gradients, to bf16 accuracy ---- */

static void grads_of(pn_dtype precision, int no_fusion, const char *cfg, const float *x,
                     const float *r, int n, float **out, size_t *total)
{
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = precision, .seed = 11, .no_bn_fusion = no_fusion};
    assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
    assert_int_equal(pn_net_precision(net), precision);
    randomise_params(net, 5);
    assert_int_equal(pn_net_forward(net, x, n, PN_FWD_TRAIN, &err), PN_OK);
    assert_int_equal(pn_net_backward(net, r, &err), PN_OK);
    size_t count = 0;
    for (size_t i = 0; i < pn_net_param_count(net); i++)
        if (!pn_net_param(net, i)->is_buffer)
            count += pn_net_param(net, i)->numel;
    float *g = malloc(count * sizeof *g);
    assert_non_null(g);
    size_t at = 0;
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        pn_param *p = pn_net_param(net, i);
        if (p->is_buffer)
            continue;
        memcpy(g + at, p->grad, p->numel * sizeof *g);
        at += p->numel;
    }
    *out = g;
    *total = count;
    pn_net_destroy(net);
}

/* The gradients of one cfg computed two ways (precision, BN-activation
 * fusion) on the same input: max |a - b| must stay below tolerance * max |a|. */
typedef struct grad_run {
    pn_dtype precision;
    int no_fusion;
} grad_run;

static void compare_grads(const char *label, const char *cfg, int n, int size, grad_run ref,
                          grad_run test, uint64_t seed, double tolerance)
{
    float *x = random_floats((size_t)n * size * size * 3, 1.0f, seed);
    float *r = random_floats((size_t)n * 2, 1.0f, seed + 1);
    float *ga, *gb;
    size_t na, nb;
    grads_of(ref.precision, ref.no_fusion, cfg, x, r, n, &ga, &na);
    grads_of(test.precision, test.no_fusion, cfg, x, r, n, &gb, &nb);
    assert_int_equal(na, nb);
    double max_g = 0, max_d = 0;
    for (size_t i = 0; i < na; i++) {
        max_g = fmax(max_g, fabs(ga[i]));
        max_d = fmax(max_d, fabs(ga[i] - gb[i]));
    }
    printf("%s: max |diff| %.3g, max |g| %.3g, relative %.2e\n", label, max_d, max_g, max_d / max_g);
    assert_true(max_g > 0);
    assert_true(max_d < tolerance * max_g);
    free(ga);
    free(gb);
    free(x);
    free(r);
}

static void compare_bf16_fp32(const char *cfg, int n, int size, double tolerance)
{
    compare_grads("bf16 vs fp32 gradients", cfg, n, size, (grad_run){PN_F32, 0},
                  (grad_run){PN_BF16, 0}, 31, tolerance);
}

/* bf16 weight gradients of 3x3 convolutions with small outputs are one
 * matrix product over an im2col copy (conv_wgrad_gemm.c): stride 1 and 2,
 * padding, and a layer check that the path is really taken. */
static void test_bf16_gemm_weight_grad(void **state)
{
    if (!pn_ctx_has_native_bf16(g_ctx)) {
        printf("SKIP bf16 GEMM weight gradient: no native bf16\n");
        skip();
    }
    const char *cfg = NET(8, 3, 2) PRE(16)
        "[conv]\nname = a\nfilters = 32\nsize = 3\nstride = 2\nbatchnorm = 1\nactivation = relu\n"
        "[conv]\nname = b\nfilters = 48\nsize = 3\nbias = 0\n" HEAD;
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_BF16, .seed = 11};
    pn_status cst = pn_net_create(g_ctx, cfg, &opt, &net, &err);
    if (cst)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(cst, PN_OK);
    float *x = random_floats(2 * 8 * 8 * 3, 1.0f, 5), r[4] = {1, -1, 0.5f, 0.25f};
    assert_int_equal(pn_net_forward(net, x, 2, PN_FWD_TRAIN, &err), PN_OK);
    assert_int_equal(pn_net_backward(net, r, &err), PN_OK);
    int gemm = 0;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].ops == &pn_layer_conv_ops && strcmp(net->layers[i].name, "pre"))
            gemm += pn_conv_uses_gemm_wgrad(&net->layers[i]);
    assert_int_equal(gemm, 2);
    free(x);
    pn_net_destroy(net);
    compare_bf16_fp32(cfg, 4, 8, 5e-2);
}

static void test_bf16_matches_fp32(void **state)
{
    if (!pn_ctx_has_native_bf16(g_ctx)) {
        printf("SKIP bf16 check: no native bf16 (CPU %s, or PNEUMO_NO_BF16=1)\n", pn_ctx_isa_name(g_ctx));
        skip();
    }
    const char *cfg = NET(16, 3, 2) PRE(8)
        "[conv]\nname = c1\nfilters = 16\nbatchnorm = 1\nactivation = relu\n"
        "[maxpool]\nsize = 2\n"
        "[conv]\nname = c2\nfilters = 16\ngroups = dw\nbatchnorm = 1\nactivation = hardswish\n"
        "[se]\nname = se\nsqueeze = 4\n"
        "[conv]\nname = c3\nfilters = 24\nsize = 1\nbatchnorm = 1\n" HEAD;
    /* bf16 keeps 8 mantissa bits (2^-9 = 0.2% per rounding); over a few layers
     * errors grow to ~1% of the gradient's scale: tolerance 5e-2 of max|g|. */
    compare_bf16_fp32(cfg, 4, 16, 5e-2);
}

/* Batch norm -> ReLU or hardswish runs fused: one batch-norm kernel with the
 * activation's derivative recomputed from its input in backward. A
 * finite-difference check of the pair is swamped by kinks (every step moves
 * many normalised values across 0 or +-3), so the fused gradients are
 * compared with the unfused network's, whose two layers the checks above
 * cover. 20 channels: a full and a partial 16-channel vector in the AVX-512
 * kernels. */
static void check_fused_bn_act(const char *act, pn_dtype precision, double tolerance)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg, NET(8, 3, 2) PRE(4)
             "[conv]\nname = c\nfilters = 20\nsize = 3\nbatchnorm = 1\nactivation = %s\n"
             "[conv]\nname = d\nfilters = 20\nsize = 1\nbatchnorm = 1\nactivation = %s\n" HEAD,
             act, act);
    for (int no_fusion = 0; no_fusion <= 1; no_fusion++) { /* the option does what it says */
        pn_error err = {0};
        pn_net *net;
        pn_net_options opt = {.precision = precision, .seed = 11, .no_bn_fusion = no_fusion};
        assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
        int fused = 0;
        for (int i = 0; i < net->n_layers; i++)
            fused += net->layers[i].fused_act != PN_ACT_LINEAR;
        assert_int_equal(fused, no_fusion ? 0 : 2);
        pn_net_destroy(net);
    }
    char label[64];
    snprintf(label, sizeof label, "fused vs unfused bn+%s (%s)", act,
             precision == PN_BF16 ? "bf16" : "fp32");
    compare_grads(label, cfg, 3, 8, (grad_run){precision, 1}, (grad_run){precision, 0}, 41,
                  tolerance);
}

/* Where the CPU has AVX-512, batch norm -> SE runs fused (bn_se.h: the SE
 * block applies the norm and runs its backward), and so does an expansion's
 * batch norm -> depthwise convolution (dw_nhwc.h: the convolution applies
 * the norm as it reads input rows, from 32 channels). The gradients against
 * the unfused layers' (checked above), with ReLU and hardswish; 40 channels,
 * so a partial vector ends every period; 5x5 images, so images end
 * mid-period. A watched batch-norm output ends the fusions and is stored. */
static void check_fused_bn_se(const char *act, pn_dtype precision, double tolerance)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg, NET(10, 3, 2) PRE(8)
             "[conv]\nname = e\nfilters = 40\nsize = 1\nbatchnorm = 1\nactivation = %s\n"
             "[conv]\nname = dw\ngroups = dw\nsize = 3\nstride = 2\nbatchnorm = 1\nactivation = %s\n"
             "[se]\nname = se\nsqueeze = 4\n"
             "[conv]\nname = d\nfilters = 8\nsize = 1\n" HEAD, act, act);
    for (int no_fusion = 0; no_fusion <= 1; no_fusion++) {
        pn_error err = {0};
        pn_net *net;
        pn_net_options opt = {.precision = precision, .seed = 11, .no_bn_fusion = no_fusion};
        assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
        int in_se = 0, in_conv = 0;
        for (int i = 0; i < net->n_layers; i++) {
            in_se += net->layers[i].deferred == PN_BN_IN_SE;
            in_conv += net->layers[i].deferred == PN_BN_IN_CONV;
        }
        int fused = !no_fusion && pn_bn_se_available(); /* both need the AVX-512 kernels */
        assert_int_equal(in_se, fused);
        assert_int_equal(in_conv, fused);
        pn_net_destroy(net);
    }
    char label[64];
    if (precision == PN_F32) { /* the same arithmetic, in another order */
        snprintf(label, sizeof label, "fused vs unfused bn+%s -> dw, se (fp32)", act);
        compare_grads(label, cfg, 3, 10, (grad_run){PN_F32, 1}, (grad_run){PN_F32, 0}, 43, tolerance);
    } else { /* the unfused net rounds the norms' outputs to bf16 too: each against fp32 */
        for (int no_fusion = 0; no_fusion <= 1; no_fusion++) {
            snprintf(label, sizeof label, "%s bn+%s -> dw, se: bf16 vs fp32",
                     no_fusion ? "unfused" : "fused", act);
            compare_grads(label, cfg, 3, 10, (grad_run){PN_F32, 1},
                          (grad_run){PN_BF16, no_fusion}, 43, tolerance);
        }
    }
    /* the watched norm output (fused: it includes the activation) against
     * the unfused net's activation layer */
    float *x = random_floats(3 * 10 * 10 * 3, 1.0f, 44), *watched[2];
    int count = 0;
    for (int no_fusion = 0; no_fusion <= 1; no_fusion++) {
        pn_error err = {0};
        pn_net *net;
        pn_net_options opt = {.precision = precision, .seed = 11, .no_bn_fusion = no_fusion};
        assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
        assert_int_equal(pn_net_watch(net, no_fusion ? "dw.act" : "dw.bn", &err), PN_OK);
        for (int i = 0; i < net->n_layers; i++) /* watching ended the fusion */
            assert_int_equal(net->layers[i].deferred, 0);
        assert_int_equal(pn_net_forward(net, x, 3, PN_FWD_TRAIN, &err), PN_OK);
        float *act_out, *grad;
        int c, h, w;
        assert_int_equal(pn_net_watched(net, &act_out, &grad, &c, &h, &w, &err), PN_OK);
        count = 3 * c * h * w;
        watched[no_fusion] = malloc((size_t)count * sizeof(float));
        memcpy(watched[no_fusion], act_out, (size_t)count * sizeof(float));
        pn_net_destroy(net);
    }
    double worst = 0, largest = 0;
    for (int i = 0; i < count; i++) {
        worst = fmax(worst, fabs(watched[0][i] - watched[1][i]));
        largest = fmax(largest, fabs(watched[1][i]));
    }
    assert_true(largest > 0);
    assert_true(worst <= tolerance * largest);
    free(watched[0]);
    free(watched[1]);
    free(x);
}

static void test_batchnorm_se_fused(void **state)
{
    const char *acts[] = {"relu", "hardswish"};
    for (int i = 0; i < 2; i++) {
        check_fused_bn_se(acts[i], PN_F32, 1e-5);
        if (pn_ctx_has_native_bf16(g_ctx)) /* as compare_bf16_fp32 */
            check_fused_bn_se(acts[i], PN_BF16, 5e-2);
    }
}

static void test_batchnorm_fused_act(void **state)
{
    const char *acts[] = {"relu", "hardswish"};
    for (int i = 0; i < 2; i++) {
        /* fp32: the same arithmetic in another order (hardswish: oneDNN's
         * z * clamp(z/6 + 1/2) vs z * clamp(z + 3) / 6) */
        check_fused_bn_act(acts[i], PN_F32, 1e-5);
        if (pn_ctx_has_native_bf16(g_ctx)) /* bf16: the unfused net stores the intermediate y */
            check_fused_bn_act(acts[i], PN_BF16, 2e-2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_stride2_tf_same),
        cmocka_unit_test(test_conv_dilated_grouped),
        cmocka_unit_test(test_conv_depthwise),
        cmocka_unit_test(test_batchnorm_train),
        cmocka_unit_test(test_batchnorm_frozen),
        cmocka_unit_test(test_batchnorm_fused_act),
        cmocka_unit_test(test_batchnorm_se_fused),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_winograd_chosen),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_fused_activation_on_conv_fc),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_gap_fc),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_add_residual),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_se),
        cmocka_unit_test(test_softmax_cross_entropy),
        cmocka_unit_test(test_bce_with_logits),
        cmocka_unit_test(test_bf16_matches_fp32),
        cmocka_unit_test(test_bf16_gemm_weight_grad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
