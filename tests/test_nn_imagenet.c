/* After importing the BN-folded ImageNet weights from ../shared/pretrained,
 * pneumo's MobileNetV2 and MobileNetV3-Small must compute the same logits as
 * torchvision with the same weights (tests/ref/imagenet_ref.py, float64 run)
 * on a fixed synthetic input. Tolerance: 1e-4 absolute on logits of
 * magnitude ~10 (float32 with a different summation order; torch's own
 * float32 run differs from float64 by ~1e-5, oneDNN's Winograd-free direct
 * kernels by ~1e-4). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "pneumo/nn.h"
#include "testutil.h"

#define SIZE 224
#define TOLERANCE 1e-4

/* The formula of tests/ref/README.md, written in NHWC for our engine. */
static float *make_input(void)
{
    float *x = malloc(3 * SIZE * SIZE * sizeof(float));
    for (int c = 0; c < 3; c++)
        for (int h = 0; h < SIZE; h++)
            for (int w = 0; w < SIZE; w++) {
                uint32_t i = (uint32_t)((c * SIZE + h) * SIZE + w);
                uint32_t u = i * 2654435761u;
                float noise = (float)(u >> 16) / 32768.0f - 1.0f;
                float ramp = (float)((h + 2 * w + 37 * c) % 64) / 32.0f - 1.0f;
                x[(h * SIZE + w) * 3 + c] = 0.5f * (noise + ramp);
            }
    return x;
}

static void check_model(const char *arch, const char *weights, const char *ref, pn_dtype precision,
                        double tolerance)
{
    const char *shared = pn_test_require_shared("ImageNet weight import");
    char path[4096], refpath[4096];
    snprintf(path, sizeof path, "%s/pretrained/%s", shared, weights);
    snprintf(refpath, sizeof refpath, "%s/tests/ref/%s", pn_test_source_dir(), ref);
    json_error_t jerr;
    json_t *root = json_load_file(refpath, 0, &jerr);
    assert_non_null(root);
    json_t *logits = json_object_get(root, "logits_f64");
    assert_int_equal(json_array_size(logits), 1000);

    pn_error err = {0};
    pn_ctx *ctx;
    char *text;
    pn_net *net;
    pn_net_options opt = {.classes = 1000, .precision = precision};
    assert_int_equal(pn_ctx_create(&ctx, &err), PN_OK);
    assert_int_equal(pn_arch_read(arch, &text, &err), PN_OK);
    assert_int_equal(pn_net_create(ctx, text, &opt, &net, &err), PN_OK);
    char *report = NULL;
    pn_status st = pn_net_load_weights(net, path, NULL, NULL, &report, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, PN_OK);
    float *x = make_input();
    assert_int_equal(pn_net_forward(net, x, 1, PN_FWD_INFER, &err), PN_OK);
    const float *out = pn_net_logits(net);
    double max_diff = 0;
    int argmax = 0;
    for (int k = 0; k < 1000; k++) {
        double d = fabs(out[k] - json_real_value(json_array_get(logits, (size_t)k)));
        max_diff = d > max_diff ? d : max_diff;
        if (out[k] > out[argmax])
            argmax = k;
    }
    int top1 = (int)json_integer_value(json_array_get(json_object_get(root, "top5"), 0));
    printf("%s (%s): max |logit - torchvision| = %.3g (tolerance %.3g), top-1 %d vs %d\n", arch,
           precision == PN_BF16 ? "bf16" : "fp32", max_diff, tolerance, argmax, top1);
    assert_true(max_diff < tolerance);
    assert_int_equal(argmax, top1);

    /* The fused inference network computes the same function. */
    assert_int_equal(pn_net_fuse_for_inference(net, &err), PN_OK);
    assert_int_equal(pn_net_forward(net, x, 1, PN_FWD_INFER, &err), PN_OK);
    double fused_diff = 0;
    for (int k = 0; k < 1000; k++) {
        double d = fabs(pn_net_logits(net)[k] - json_real_value(json_array_get(logits, (size_t)k)));
        fused_diff = d > fused_diff ? d : fused_diff;
    }
    printf("%s fused: max diff %.3g\n", arch, fused_diff);
    assert_true(fused_diff < tolerance);
    free(x);
    free(report);
    free(text);
    json_decref(root);
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
}

static void test_mobilenetv2(void **state)
{
    check_model("mobilenetv2", "mobilenet_v2_1.0_224_onnxzoo_bnfolded_f32.safetensors",
                "imagenet_ref_mobilenetv2.json", PN_F32, TOLERANCE);
}

static void test_mobilenetv3_small(void **state)
{
    check_model("mobilenetv3-small-imagenet", "mobilenet_v3_small_1.0_224_tfslim_bnfolded_f32.safetensors",
                "imagenet_ref_mobilenetv3_small.json", PN_F32, TOLERANCE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mobilenetv2),
        cmocka_unit_test(test_mobilenetv3_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
