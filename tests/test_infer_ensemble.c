/* Ensembles, test-time augmentation and three-class heads in pn_model: an
 * ensemble of identical members predicts exactly what the member predicts
 * (probability and Grad-CAM), an ensemble averages different members' probabilities,
 * one test-time view is plain inference, three-class probabilities sum to 1
 * with bacterial + viral equal to the binary probability, and bad ensemble
 * files are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/infer.h"
#include "testutil.h"
#include "nn_testctx.h"

#define CFG(classes)                                                                     \
    "[net]\ninput = 32\nchannels = 1\nclasses = " #classes "\n"                           \
    "[conv]\nname = c1\nfilters = 8\nstride = 2\nactivation = relu\n"                     \
    "[conv]\nname = c2\nfilters = 8\nbatchnorm = 1\nactivation = relu\n"                  \
    "[gap]\n[fc]\nname = fc\nout = classes\n"

/* A freshly initialised net (seeded) saved with a temperature; returns its path. */
static const char *save_member(const char *name, const char *cfg, uint64_t seed, const char *temperature)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 512, "%s/%s", pn_test_tmpdir(), name);
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = seed};
    assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
    pn_param *b = pn_net_find_param(net, "fc.bias");
    b->data[0] = -0.4f;
    b->data[b->numel - 1] = 0.6f;
    pn_net_params_changed(net);
    const pn_kv meta[] = {{"temperature", temperature}, {"threshold", "0.4"}, {"arch_name", "tiny"}};
    if (pn_net_save(net, path, meta, 3, 1, &err))
        fail_msg("%s", err.msg);
    pn_net_destroy(net);
    return path;
}

static const char *write_ensemble(const char *name, const char *const *members, int n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", pn_test_tmpdir(), name);
    const pn_kv meta[] = {{"threshold", "0.4"}};
    pn_error err = {0};
    if (pn_ensemble_write(path, members, n, 0, meta, 1, &err))
        fail_msg("%s", err.msg);
    return path;
}

static pn_image test_image(int w, int h)
{
    pn_image img = {.w = w, .h = h, .src_w = w, .src_h = h};
    img.pixels = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img.pixels[y * w + x] = (uint8_t)((x * x / 7 + y * 5) & 255);
    return img;
}

static pn_prediction predict(const char *path, int tta, int cam)
{
    pn_model *m;
    pn_error err = {0};
    if (pn_model_load(path, 1, &m, &err))
        fail_msg("%s", err.msg);
    if (tta)
        assert_int_equal(pn_model_set_tta(m, tta, &err), PN_OK);
    pn_image img = test_image(80, 64);
    pn_prediction p;
    if (pn_model_predict_image(m, &img, cam, &p, &err))
        fail_msg("%s", err.msg);
    pn_image_free(&img);
    pn_model_free(m);
    return p;
}

static void test_identical_members_equal_the_member(void **state)
{
    const char *one = save_member("a.safetensors", CFG(2), 11, "1.7");
    const char *members[] = {one, one, one};
    const char *ens = write_ensemble("aaa.safetensors", members, 3);
    pn_prediction single = predict(one, 0, 1), three = predict(ens, 0, 1);
    printf("member %.7f, ensemble of three copies %.7f\n", single.probability, three.probability);
    assert_float_equal(three.probability, single.probability, 1e-6);
    assert_int_equal(three.cam_size, single.cam_size);
    for (int i = 0; i < single.cam_size * single.cam_size; i++)
        assert_float_equal(three.cam[i], single.cam[i], 1e-5);
    pn_prediction_clear(&single);
    pn_prediction_clear(&three);
    pn_model *m;
    assert_int_equal(pn_model_load(ens, 1, &m, NULL), PN_OK);
    assert_int_equal(pn_model_members(m), 3);
    assert_float_equal(pn_model_get_info(m)->threshold, 0.4, 1e-6);
    pn_model_free(m);
}

static void test_ensemble_is_the_mean(void **state)
{
    const char *a = save_member("b1.safetensors", CFG(2), 21, "1");
    const char *b = save_member("b2.safetensors", CFG(2), 22, "2.5");
    const char *members[] = {a, b};
    pn_prediction pa = predict(a, 0, 0), pb = predict(b, 0, 0);
    pn_prediction pe = predict(write_ensemble("b12.safetensors", members, 2), 0, 0);
    printf("members %.6f %.6f, ensemble %.6f\n", pa.probability, pb.probability, pe.probability);
    assert_true(fabsf(pa.probability - pb.probability) > 1e-4); /* the check below means something */
    assert_float_equal(pe.probability, (pa.probability + pb.probability) / 2, 1e-6);
}

static void test_tta(void **state)
{
    const char *a = save_member("t.safetensors", CFG(2), 31, "1.3");
    pn_prediction plain = predict(a, 0, 0), one = predict(a, 1, 0), nine = predict(a, PN_TTA_MAX_VIEWS, 0);
    printf("plain %.7f, 1 view %.7f, %d views %.7f\n", plain.probability, one.probability, PN_TTA_MAX_VIEWS,
           nine.probability);
    assert_float_equal(one.probability, plain.probability, 0);
    assert_true(nine.probability > 0 && nine.probability < 1);
    assert_true(nine.probability != plain.probability);
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(a, 1, &m, NULL), PN_OK);
    assert_int_equal(pn_model_set_tta(m, 0, &err), PN_EINVAL);
    assert_int_equal(pn_model_set_tta(m, PN_TTA_MAX_VIEWS + 1, &err), PN_EINVAL);
    pn_model_free(m);
}

static void test_three_classes(void **state)
{
    const char *a = save_member("c3a.safetensors", CFG(3), 41, "1.4");
    const char *b = save_member("c3b.safetensors", CFG(3), 42, "0.8");
    const char *members[] = {a, b};
    const char *ens = write_ensemble("c3.safetensors", members, 2);
    const char *paths[] = {a, ens};
    for (int i = 0; i < 2; i++)
        for (int tta = 1; tta <= 3; tta += 2) {
            pn_prediction p = predict(paths[i], tta, 1);
            printf("%s tta %d: P(pneumonia) %.6f = %.6f + %.6f, P(normal) %.6f\n", i ? "ensemble" : "member", tta,
                   p.probability, p.class_prob[1], p.class_prob[2], p.class_prob[0]);
            assert_int_equal(p.n_classes, 3);
            assert_float_equal(p.class_prob[0] + p.class_prob[1] + p.class_prob[2], 1.0, 1e-6);
            assert_float_equal(p.class_prob[1] + p.class_prob[2], p.probability, 1e-6);
            for (int k = 0; k < 3; k++)
                assert_true(p.class_prob[k] >= 0 && p.class_prob[k] <= 1);
            assert_non_null(p.cam);
            pn_prediction_clear(&p);
        }
    /* a two-class and a three-class member: the binary output only */
    const char *two = save_member("c2.safetensors", CFG(2), 43, "1");
    const char *mixed[] = {a, two};
    pn_prediction p = predict(write_ensemble("mixed.safetensors", mixed, 2), 0, 0);
    assert_int_equal(p.n_classes, 2);
}

static void test_bad_ensembles_refused(void **state)
{
    const char *a = save_member("d.safetensors", CFG(2), 51, "1");
    const char *members[] = {a, a};
    const char *ens = write_ensemble("dd.safetensors", members, 2);
    char path[512];
    snprintf(path, sizeof path, "%s/nested.safetensors", pn_test_tmpdir());
    pn_error err = {0};
    const char *nested[] = {a, ens};
    assert_int_equal(pn_ensemble_write(path, nested, 2, 0, NULL, 0, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "ensemble already"));
    assert_int_equal(pn_ensemble_write(path, members, 0, 0, NULL, 0, &err), PN_EINVAL);
    /* an ensemble is not one network: pn_net_load refuses it clearly */
    pn_net *net;
    assert_int_equal(pn_net_load(g_ctx, ens, PN_F32, &net, NULL, &err), PN_EFORMAT);
    assert_non_null(strstr(err.msg, "not a pneumo model file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_members_equal_the_member),
        cmocka_unit_test(test_ensemble_is_the_mean),
        cmocka_unit_test(test_tta),
        cmocka_unit_test(test_three_classes),
        cmocka_unit_test(test_bad_ensembles_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
