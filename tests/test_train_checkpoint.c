/* Training checkpoints: everything written comes back bit for bit (weights,
 * best weights, optimiser moments and step, history, loop and schedule
 * state); a different recipe or a missing file is refused, also without an
 * error record. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/os.h"
#include "train/internal.h"
#include "testutil.h"
#include "nn_testctx.h"

static const char *CFG = "[net]\ninput = 16\nchannels = 1\nclasses = 2\n"
                         "[conv]\nname = c\nfilters = 4\nstride = 2\nbatchnorm = 1\nactivation = relu\n"
                         "[gap]\n[fc]\nname = fc\nout = classes\n";
enum { EPOCHS = 3, N = 2 };

typedef struct fixture {
    pn_train_config cfg;
    trainer t;
    size_t numel;
} fixture;

/* A trainer with a net (weights from seed), an Adam optimiser after one step,
 * best weights and history filled with values derived from seed. */
static void make_trainer(fixture *f, uint64_t seed, const char *out_dir)
{
    memset(f, 0, sizeof *f);
    f->cfg = pn_train_defaults();
    f->cfg.data_dir = "data";
    f->cfg.out_dir = out_dir;
    f->cfg.epochs = EPOCHS;
    trainer *t = &f->t;
    t->cfg = &f->cfg;
    pn_error err = {0};
    pn_net_options opt = {.precision = PN_F32, .seed = seed};
    assert_int_equal(pn_net_create(g_ctx, CFG, &opt, &t->net, &err), PN_OK);
    pn_optim_config oc = pn_optim_defaults(PN_ADAMW);
    assert_int_equal(pn_optim_create(&oc, t->net, &t->opt, &err), PN_OK);
    float x[N * 16 * 16], dl[N * 2];
    int labels[N] = {0, 1};
    pn_rng r = pn_rng_seed(seed, 1, 0);
    for (int i = 0; i < N * 16 * 16; i++)
        x[i] = pn_rng_normal(&r);
    assert_int_equal(pn_net_forward(t->net, x, N, PN_FWD_TRAIN, &err), PN_OK);
    pn_softmax_cross_entropy(pn_net_logits(t->net), labels, N, 2, NULL, 0, dl);
    assert_int_equal(pn_net_backward(t->net, dl, &err), PN_OK);
    pn_optim_step(t->opt, 0.01f);
    for (size_t i = 0; i < pn_net_param_count(t->net); i++)
        f->numel += pn_net_param(t->net, i)->numel;
    t->best_params = malloc(f->numel * sizeof(float));
    for (size_t i = 0; i < f->numel; i++)
        t->best_params[i] = pn_rng_normal(&r);
    float **cols[] = {&t->h_train_loss, &t->h_val_loss, &t->h_train_acc, &t->h_val_acc, &t->h_val_auc};
    for (int k = 0; k < 5; k++) {
        *cols[k] = malloc(EPOCHS * sizeof(float));
        for (int e = 0; e < EPOCHS; e++)
            (*cols[k])[e] = pn_rng_uniform(&r);
    }
}

static void free_trainer(fixture *f)
{
    trainer *t = &f->t;
    pn_optim_destroy(t->opt);
    pn_net_destroy(t->net);
    free(t->best_params);
    free(t->h_train_loss), free(t->h_val_loss), free(t->h_train_acc), free(t->h_val_acc), free(t->h_val_auc);
}

static void assert_same_floats(const float *a, const float *b, size_t n)
{
    assert_memory_equal(a, b, n * sizeof(float));
}

static void test_round_trip(void **state)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ckpt", pn_test_tmpdir());
    pn_error err = {0};
    fixture a, b;
    make_trainer(&a, 7, dir);
    assert_int_equal(pn_make_dir(dir, &err), PN_OK);
    train_state s = {.epoch = 1, .batch = 4, .step = 9, .best_epoch = 0, .since_best = 1, .best_auc = 0.625,
                     .best_loss = INFINITY, .loss_sum = 3.25, .correct = 11, .seen = 16,
                     .sched = {.best = 0.5f, .current_lr = 0.003f, .bad_epochs = 2}};
    *pn_net_step_counter(a.t.net) = 42;
    assert_int_equal(pn_checkpoint_save(&a.t, &s, &err), PN_OK);

    make_trainer(&b, 99, dir); /* different weights, moments, history */
    train_state back = {0};
    assert_int_equal(pn_checkpoint_load(&b.t, &back, &err), PN_OK);
    for (size_t i = 0; i < pn_net_param_count(a.t.net); i++) {
        const pn_param *pa = pn_net_param(a.t.net, i), *pb = pn_net_param(b.t.net, i);
        assert_string_equal(pa->name, pb->name);
        assert_same_floats(pa->data, pb->data, pa->numel);
        for (int which = 0; which < 2; which++) {
            float *ma = pn_optim_state(a.t.opt, i, which), *mb = pn_optim_state(b.t.opt, i, which);
            assert_true((ma == NULL) == (mb == NULL));
            if (ma)
                assert_same_floats(ma, mb, pa->numel);
        }
    }
    assert_same_floats(a.t.best_params, b.t.best_params, a.numel);
    assert_same_floats(a.t.h_val_auc, b.t.h_val_auc, EPOCHS);
    assert_same_floats(a.t.h_train_loss, b.t.h_train_loss, EPOCHS);
    assert_int_equal(*pn_optim_step_counter(b.t.opt), *pn_optim_step_counter(a.t.opt));
    assert_int_equal(*pn_net_step_counter(b.t.net), 42);
    assert_int_equal(back.epoch, 1);
    assert_int_equal(back.batch, 4);
    assert_int_equal(back.step, 9);
    assert_int_equal(back.since_best, 1);
    assert_true(back.best_auc == 0.625 && isinf(back.best_loss) && back.loss_sum == 3.25);
    assert_true(back.correct == 11 && back.seen == 16);
    assert_true(back.sched.best == 0.5f && back.sched.current_lr == 0.003f && back.sched.bad_epochs == 2);
    free_trainer(&b);

    /* another recipe: refused, with and without an error record */
    make_trainer(&b, 7, dir);
    b.cfg.lr = 0.5f;
    assert_int_equal(pn_checkpoint_load(&b.t, &back, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "different recipe"));
    assert_int_equal(pn_checkpoint_load(&b.t, &back, NULL), PN_EINVAL);
    free_trainer(&b);
    free_trainer(&a);
}

static void test_missing_checkpoint(void **state)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/no-ckpt", pn_test_tmpdir());
    fixture f;
    make_trainer(&f, 3, dir);
    train_state s;
    pn_error err = {0};
    assert_int_equal(pn_checkpoint_load(&f.t, &s, &err), PN_EIO);
    assert_non_null(strstr(err.msg, "--resume: "));
    /* the former `return pn_error_prefix(err, ...)` pattern with err == NULL */
    assert_int_equal(pn_checkpoint_load(&f.t, &s, NULL), PN_EIO);
    free_trainer(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_missing_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
