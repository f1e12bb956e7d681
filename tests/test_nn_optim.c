/* Optimisers and learning-rate schedules against hand-computed values
 * (PyTorch's torch.optim gives the same numbers: SGD, SGD momentum/Nesterov,
 * Adam, Adam with L2, AdamW; checked with torch 2.x).
 *
 * The network is gap -> fc with one input and one class, so fc.weight and
 * fc.bias are single numbers; gradients are written into pn_param.grad by
 * hand. Tolerance 1e-6: a few float32 operations on numbers near 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "pneumo/nn.h"
#include "testutil.h"
#include "nn_testctx.h"

#define TOL 1e-6


typedef struct fixture {
    pn_net *net;
    pn_param *w, *b; /* fc.weight (decays), fc.bias (no_decay) */
} fixture;

static fixture make(void)
{
    pn_error err = {0};
    fixture f;
    pn_net_options opt = {.precision = PN_F32};
    assert_int_equal(pn_net_create(g_ctx, "[net]\ninput = 8\nchannels = 1\nclasses = 1\n[gap]\n[fc]\nname = fc\nout = classes\n",
                                   &opt, &f.net, &err), PN_OK);
    f.w = pn_net_find_param(f.net, "fc.weight");
    f.b = pn_net_find_param(f.net, "fc.bias");
    assert_non_null(f.w);
    assert_non_null(f.b);
    assert_int_equal(f.w->numel, 1);
    assert_false(f.w->no_decay);
    assert_true(f.b->no_decay);
    f.w->data[0] = 1;
    f.b->data[0] = 1;
    return f;
}

static pn_optim *optim(fixture *f, pn_optim_config c)
{
    pn_error err = {0};
    pn_optim *o;
    assert_int_equal(pn_optim_create(&c, f->net, &o, &err), PN_OK);
    return o;
}

/* Runs steps with gradient g[k] on both parameters; checks the weight after each. */
static void expect_steps(pn_optim_config c, const float *g, const double *want_w, int steps,
                         const char *what)
{
    fixture f = make();
    pn_optim *o = optim(&f, c);
    for (int k = 0; k < steps; k++) {
        f.w->grad[0] = f.b->grad[0] = g[k];
        pn_optim_step(o, c.lr);
        printf("%-22s step %d: w = %.7f (want %.7f)\n", what, k + 1, f.w->data[0], want_w[k]);
        assert_true(fabs(f.w->data[0] - want_w[k]) < TOL);
    }
    assert_int_equal(*pn_optim_step_counter(o), steps);
    pn_optim_destroy(o);
    pn_net_destroy(f.net);
}

static void test_sgd(void **state)
{
    const float g[2] = {0.5f, 0.5f};
    pn_optim_config c = pn_optim_defaults(PN_SGD);
    c.lr = 0.1f;
    c.momentum = 0;
    /* w -= 0.1 * 0.5 twice */
    const double plain[2] = {0.95, 0.90};
    expect_steps(c, g, plain, 2, "sgd");
    /* buf = 0.5, w = 0.95; buf = 0.9*0.5 + 0.5 = 0.95, w = 0.95 - 0.095 = 0.855 */
    c.momentum = 0.9f;
    const double momentum[2] = {0.95, 0.855};
    expect_steps(c, g, momentum, 2, "sgd momentum");
    /* Nesterov: step g + 0.9 buf: 0.5 + 0.45 = 0.95 -> 0.905; 0.5 + 0.855 = 1.355 -> 0.7695 */
    c.nesterov = 1;
    const double nesterov[2] = {0.905, 0.7695};
    expect_steps(c, g, nesterov, 2, "sgd nesterov");
}

static void test_adam(void **state)
{
    const float g[2] = {0.5f, -0.25f};
    pn_optim_config c = pn_optim_defaults(PN_ADAM);
    c.lr = 0.1f;
    /* step 1: m = 0.05, v = 0.00025; m/(1-0.9) = 0.5, v/(1-0.999) = 0.25:
     *   w = 1 - 0.1 * 0.5/0.5 = 0.9 (the first step is lr * sign(g)).
     * step 2: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225;
     *   m^ = 0.02/0.19 = 0.1052632, v^ = 0.00031225/0.001999 = 0.1562031,
     *   w = 0.9 - 0.1 * 0.1052632 / 0.3952254 = 0.8733664 */
    const double adam[2] = {0.9, 0.8733664};
    expect_steps(c, g, adam, 2, "adam");
    /* Adam + L2 0.1: g1 = 0.5 + 0.1 = 0.6 -> 0.9; g2 = -0.25 + 0.09 = -0.16:
     *   m = 0.054 - 0.016 = 0.038, v = 0.00035964 + 0.0000256 = 0.00038524,
     *   m^ = 0.2, v^ = 0.1927164, w = 0.9 - 0.1 * 0.2 / 0.4389947 = 0.8544414 */
    c.weight_decay = 0.1f;
    const double adam_l2[2] = {0.9, 0.8544414};
    expect_steps(c, g, adam_l2, 2, "adam + L2");
    /* AdamW 0.1 (decoupled): w *= 1 - 0.1*0.1 before each Adam step:
     *   0.99 - 0.1 = 0.89; 0.89 * 0.99 = 0.8811, - 0.0266336 = 0.8544664 */
    c.kind = PN_ADAMW;
    const double adamw[2] = {0.89, 0.8544664};
    expect_steps(c, g, adamw, 2, "adamw");
}

static void test_weight_decay_skips_no_decay(void **state)
{
    /* SGD, L2 0.1, g = 0.5: weight 1 - 0.1 (0.5 + 0.1) = 0.94; the bias
     * (no_decay) 1 - 0.05 = 0.95. AdamW: the bias gets no decoupled decay. */
    fixture f = make();
    pn_optim_config c = pn_optim_defaults(PN_SGD);
    c.lr = 0.1f;
    c.momentum = 0;
    c.weight_decay = 0.1f;
    pn_optim *o = optim(&f, c);
    f.w->grad[0] = f.b->grad[0] = 0.5f;
    pn_optim_step(o, c.lr);
    assert_true(fabs(f.w->data[0] - 0.94) < TOL);
    assert_true(fabs(f.b->data[0] - 0.95) < TOL);
    pn_optim_destroy(o);
    pn_net_destroy(f.net);

    f = make();
    c = pn_optim_defaults(PN_ADAMW);
    c.lr = 0.1f;
    c.weight_decay = 0.1f;
    o = optim(&f, c);
    f.w->grad[0] = f.b->grad[0] = 0.5f;
    pn_optim_step(o, c.lr);
    assert_true(fabs(f.w->data[0] - 0.89) < TOL);
    assert_true(fabs(f.b->data[0] - 0.9) < TOL);
    pn_optim_destroy(o);
    pn_net_destroy(f.net);
}

static void test_clip_norm(void **state)
{
    /* grads (3, 4): norm 5. clip 1 scales them to (0.6, 0.8); SGD lr 1. */
    fixture f = make();
    pn_optim_config c = pn_optim_defaults(PN_SGD);
    c.lr = 1;
    c.momentum = 0;
    c.clip_norm = 1;
    pn_optim *o = optim(&f, c);
    f.w->grad[0] = 3;
    f.b->grad[0] = 4;
    float norm = pn_optim_step(o, c.lr);
    assert_true(fabs(norm - 5) < TOL);
    assert_true(fabs(f.w->data[0] - 0.4) < TOL);
    assert_true(fabs(f.b->data[0] - 0.2) < TOL);
    pn_optim_destroy(o);
    pn_net_destroy(f.net);
    /* clip 10 > 5: untouched gradients, 1 - 0.3 and 1 - 0.4 with lr 0.1 */
    f = make();
    c.clip_norm = 10;
    c.lr = 0.1f;
    o = optim(&f, c);
    f.w->grad[0] = 3;
    f.b->grad[0] = 4;
    norm = pn_optim_step(o, c.lr);
    assert_true(fabs(norm - 5) < TOL);
    assert_true(fabs(f.w->data[0] - 0.7) < TOL);
    assert_true(fabs(f.b->data[0] - 0.6) < TOL);
    pn_optim_destroy(o);
    pn_net_destroy(f.net);
}

static void test_frozen_unchanged(void **state)
{
    fixture f = make();
    assert_int_equal(pn_net_trainable_count(f.net), 2);
    assert_int_equal(pn_net_freeze(f.net, "fc.weight", 1), 1);
    assert_int_equal(pn_net_trainable_count(f.net), 1);
    assert_int_equal(pn_net_freeze(f.net, "nothing.", 1), 0);
    pn_optim_config c = pn_optim_defaults(PN_ADAM);
    c.lr = 0.1f;
    pn_optim *o = optim(&f, c);
    f.w->grad[0] = 3;
    f.b->grad[0] = 4;
    /* a frozen parameter's gradient does not count in the norm either */
    float norm = pn_optim_step(o, c.lr);
    assert_true(fabs(norm - 4) < TOL);
    assert_true(f.w->data[0] == 1.0f);
    assert_true(fabs(f.b->data[0] - 0.9) < TOL);
    /* unfreezing "" (all) trains it again */
    assert_int_equal(pn_net_freeze(f.net, "", 0), 2);
    pn_optim_step(o, c.lr);
    assert_true(f.w->data[0] < 1.0f);
    pn_optim_destroy(o);
    pn_net_destroy(f.net);
}

static void test_schedule_step_and_cosine(void **state)
{
    pn_schedule s = {.kind = PN_SCHED_STEP, .base_lr = 0.1f, .step_size = 3, .gamma = 0.5f};
    /* epochs 0-2: 0.1, 3-5: 0.05, 6-8: 0.025 (step ignored) */
    const int epochs[5] = {0, 2, 3, 6, 8};
    const double step_want[5] = {0.1, 0.1, 0.05, 0.025, 0.025};
    for (int i = 0; i < 5; i++)
        assert_true(fabs(pn_schedule_lr(&s, 1000, epochs[i]) - step_want[i]) < 1e-7);

    /* Cosine, base 1, min 0.1, warm-up 4 of 14 steps: warm-up (step+1)/4; then
     * 0.1 + 0.45 (1 + cos(pi t)), t = (step - 4)/10: t 0 -> 1, t 0.5 -> 0.55,
     * t 0.2 -> 0.1 + 0.45 (1 + cos 36deg) = 0.1 + 0.45 * 1.8090170 = 0.9140576;
     * t >= 1 -> 0.1. */
    pn_schedule cs = {.kind = PN_SCHED_COSINE, .base_lr = 1, .min_lr = 0.1f, .warmup_steps = 4,
                      .total_steps = 14};
    const int steps[9] = {0, 1, 3, 4, 6, 9, 14, 20, 100};
    const double cos_want[9] = {0.25, 0.5, 1.0, 1.0, 0.9140576, 0.55, 0.1, 0.1, 0.1};
    for (int i = 0; i < 9; i++) {
        float lr = pn_schedule_lr(&cs, steps[i], 0);
        printf("cosine step %3d: lr %.7f (want %.7f)\n", steps[i], lr, cos_want[i]);
        assert_true(fabs(lr - cos_want[i]) < 1e-6);
    }
    pn_schedule c = {.kind = PN_SCHED_CONSTANT, .base_lr = 0.3f};
    assert_true(pn_schedule_lr(&c, 5, 5) == 0.3f);
}

/* Plateau (ReduceLROnPlateau, mode min): reduce by gamma once more than
 * `patience` epochs in a row fail to improve on the best; floor min_lr. */
static void observe_all(pn_schedule *s, const float *metrics, const double *want_lr, int n,
                        const char *what)
{
    for (int i = 0; i < n; i++) {
        pn_schedule_observe(s, metrics[i]);
        float lr = pn_schedule_lr(s, 0, i);
        printf("%s: epoch %d metric %.2f -> lr %.4f (want %.4f)\n", what, i, metrics[i], lr, want_lr[i]);
        assert_true(fabs(lr - want_lr[i]) < 1e-7);
    }
}

static void test_schedule_plateau(void **state)
{
    pn_schedule s = {.kind = PN_SCHED_PLATEAU, .base_lr = 0.1f, .min_lr = 0.02f, .gamma = 0.5f,
                     .patience = 2};
    assert_true(pn_schedule_lr(&s, 0, 0) == 0.1f); /* before any observation */
    /* 1.0 first, 0.9 better, then 0.95 x3: the third bad epoch (> patience 2)
     * halves the lr; an improvement (0.5) resets the count; three bad epochs
     * (0.6) halve it again (0.025); the third bad epoch after that would give
     * 0.0125, but the floor 0.02 holds. */
    const float m[11] = {1.0f, 0.9f, 0.95f, 0.95f, 0.95f, 0.5f, 0.6f, 0.6f, 0.6f, 0.6f, 0.6f};
    const double want[11] = {0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025};
    observe_all(&s, m, want, 11, "plateau");
    const float m2[3] = {0.6f, 0.6f, 0.6f};
    const double want2[3] = {0.02, 0.02, 0.02};
    observe_all(&s, m2, want2, 3, "plateau floor");
}

static void test_schedule_plateau_zero_metric(void **state)
{
    /* A metric of exactly 0 (validation error 0 on a small set) is a best
     * like any other: the worse epochs after it must count as bad and reduce
     * the lr after patience; they must not be taken as a "first" observation. */
    pn_schedule s = {.kind = PN_SCHED_PLATEAU, .base_lr = 0.1f, .min_lr = 0, .gamma = 0.5f,
                     .patience = 2};
    const float m[5] = {0.5f, 0.0f, 0.3f, 0.3f, 0.3f};
    const double want[5] = {0.1, 0.1, 0.1, 0.1, 0.05};
    observe_all(&s, m, want, 5, "plateau after 0");
    /* First metric 0 and negative metrics (e.g. -AUC) behave the same. */
    pn_schedule z = {.kind = PN_SCHED_PLATEAU, .base_lr = 0.1f, .gamma = 0.5f, .patience = 1};
    const float mz[3] = {0.0f, 0.1f, 0.1f};
    const double wz[3] = {0.1, 0.1, 0.05};
    observe_all(&z, mz, wz, 3, "plateau first 0");
    pn_schedule n = {.kind = PN_SCHED_PLATEAU, .base_lr = 0.1f, .gamma = 0.5f, .patience = 1};
    const float mn[4] = {-0.8f, -0.9f, -0.85f, -0.85f};
    const double wn[4] = {0.1, 0.1, 0.1, 0.05};
    observe_all(&n, mn, wn, 4, "plateau negative");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_weight_decay_skips_no_decay),
        cmocka_unit_test(test_clip_norm),
        cmocka_unit_test(test_frozen_unchanged),
        cmocka_unit_test(test_schedule_step_and_cosine),
        cmocka_unit_test(test_schedule_plateau),
        cmocka_unit_test(test_schedule_plateau_zero_metric),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
