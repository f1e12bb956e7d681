/* Grad-CAM known answers: a network whose class evidence is the input's
 * brightness (1x1 linear conv with weight 1, global average pool, fc with
 * weights -1 / +1), so the PNEUMONIA map must equal the normalised input and
 * the NORMAL map must be empty. Inputs bright in one half must give a map in
 * that half only, through a strided layer (upsampling) too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/gradcam.h"
#include "testutil.h"
#include "nn_testctx.h"

enum { SIZE = 16 };

/* stride 1 or 2 conv "c", then gap and fc: logit k = (2k - 1) * mean(conv output). */
static pn_net *evidence_net(int stride)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "[net]\ninput = %d\nchannels = 1\nclasses = 2\n"
             "[conv]\nname = c\nfilters = 1\nsize = 1\nstride = %d\nbias = 0\nactivation = linear\n"
             "[gap]\n[fc]\nname = fc\nout = classes\n",
             SIZE, stride);
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 1};
    assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
    pn_param *w = pn_net_find_param(net, "c.weight"), *fw = pn_net_find_param(net, "fc.weight"),
             *fb = pn_net_find_param(net, "fc.bias");
    assert_non_null(w);
    assert_non_null(fw);
    assert_non_null(fb);
    w->data[0] = 1;
    fw->data[0] = -1; /* NORMAL: darker is more normal */
    fw->data[1] = 1;  /* PNEUMONIA: brighter is more pneumonia */
    fb->data[0] = fb->data[1] = 0;
    pn_net_params_changed(net);
    pn_net_freeze(net, "", 1); /* as pn_model does: only the map is wanted */
    return net;
}

/* 1 where the pixel lies in the chosen half (0 left, 1 right, 2 top, 3 bottom), else 0. */
static float *half_image(int half)
{
    float *x = calloc(SIZE * SIZE, sizeof *x);
    assert_non_null(x);
    for (int y = 0; y < SIZE; y++)
        for (int i = 0; i < SIZE; i++) {
            int in = half == 0 ? i < SIZE / 2 : half == 1 ? i >= SIZE / 2 : half == 2 ? y < SIZE / 2 : y >= SIZE / 2;
            x[y * SIZE + i] = in ? 1.0f : 0.0f;
        }
    return x;
}

static void test_map_equals_evidence(void **state)
{
    pn_net *net = evidence_net(1);
    for (int half = 0; half < 4; half++) {
        float *x = half_image(half), *cam = NULL;
        int size = 0;
        pn_error err = {0};
        assert_int_equal(pn_gradcam(net, x, 1, NULL, &cam, &size, &err), PN_OK);
        assert_int_equal(size, SIZE);
        for (int i = 0; i < SIZE * SIZE; i++)
            assert_float_equal(cam[i], x[i], 1e-5);
        free(cam);
        /* NORMAL: the evidence counts against it, so no positive evidence at all */
        assert_int_equal(pn_gradcam(net, x, 0, "c", &cam, &size, &err), PN_OK);
        for (int i = 0; i < SIZE * SIZE; i++)
            assert_float_equal(cam[i], 0.0f, 1e-6);
        free(cam);
        free(x);
    }
    pn_net_destroy(net);
}

static void test_map_stays_in_its_half_after_upsampling(void **state)
{
    pn_net *net = evidence_net(2); /* 8x8 map, upsampled to 16x16 */
    /* the half that holds the evidence, as a box x0, y0, x1, y1 */
    const float boxes[4][4] = {{0, 0, 0.5f, 1}, {0.5f, 0, 1, 1}, {0, 0, 1, 0.5f}, {0, 0.5f, 1, 1}};
    for (int half = 0; half < 4; half++) {
        float *x = half_image(half), *cam = NULL;
        int size = 0;
        pn_error err = {0};
        assert_int_equal(pn_gradcam(net, x, 1, NULL, &cam, &size, &err), PN_OK);
        assert_int_equal(size, SIZE);
        const float *b = boxes[half];
        double outside = pn_cam_fraction_outside(cam, size, b[0], b[1], b[2], b[3]);
        /* bilinear upsampling may bleed into the first row/column across the border only */
        assert_true(outside < 0.1);
        /* the other half's box holds at most that bleed */
        const float *o = boxes[half ^ 1];
        assert_true(pn_cam_fraction_outside(cam, size, o[0], o[1], o[2], o[3]) > 0.9);
        free(cam);
        free(x);
    }
    pn_net_destroy(net);
}

static void test_errors(void **state)
{
    pn_net *net = evidence_net(1);
    float *x = half_image(0), *cam = (float *)(uintptr_t)1;
    int size;
    pn_error err = {0};
    assert_int_equal(pn_gradcam(net, x, 2, NULL, &cam, &size, &err), PN_EINVAL);
    assert_null(cam);
    assert_non_null(strstr(err.msg, "no class 2"));
    assert_int_equal(pn_gradcam(net, x, 1, "nosuch", &cam, &size, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "nosuch"));
    free(x);
    pn_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_equals_evidence),
        cmocka_unit_test(test_map_stays_in_its_half_after_upsampling),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
