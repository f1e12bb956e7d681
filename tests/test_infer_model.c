/* pn_model on tiny model files: load and metadata, temperature-scaled
 * probability against the network's own logits, image warnings, Grad-CAM,
 * refusal of heads that are not NORMAL/PNEUMONIA or NORMAL/BACTERIAL/VIRAL, and
 * folder evaluation. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pneumo/infer.h"
#include "pneumo/sha256.h"
#include "testutil.h"
#include "nn_testctx.h"

#define CFG(classes)                                                                     \
    "[net]\ninput = 32\nchannels = 1\nclasses = " #classes "\n"                           \
    "[conv]\nname = c1\nfilters = 8\nstride = 2\nactivation = relu\n"                     \
    "[conv]\nname = c2\nfilters = 8\nbatchnorm = 1\nactivation = relu\n"                  \
    "[gap]\n[fc]\nname = fc\nout = classes\n"

/* Saves a freshly initialised net of cfg with the given metadata; returns its path. */
static const char *save_model(const char *name, const char *cfg, const pn_kv *meta, size_t n_meta)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 512, "%s/%s", pn_test_tmpdir(), name);
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 5};
    assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, &err), PN_OK);
    /* a non-trivial head so probabilities are far from 0.5 */
    pn_param *b = pn_net_find_param(net, "fc.bias");
    b->data[0] = -0.7f;
    b->data[b->numel - 1] = 0.9f;
    pn_net_params_changed(net);
    pn_status st = pn_net_save(net, path, meta, n_meta, 0, &err);
    if (st)
        fail_msg("%s", err.msg);
    pn_net_destroy(net);
    return path;
}

static const pn_kv META[] = {{"threshold", "0.25"}, {"temperature", "2"}, {"arch_name", "tiny"},
                             {"metrics", "{\"auc\":0.5}"},
                             {"history", "{\"train_loss\":[3,2],\"val_loss\":[3.5,2.5],\"train_acc\":[0.5,0.6],"
                                         "\"val_acc\":[0.4,0.7],\"val_auc\":[0.6,0.8]}"}};

static pn_image gradient_image(int w, int h, int color)
{
    pn_image img = {.w = w, .h = h, .src_w = w, .src_h = h, .is_color = color};
    img.pixels = malloc((size_t)w * h);
    assert_non_null(img.pixels);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img.pixels[y * w + x] = (uint8_t)((x * 7 + y * 3) & 255);
    return img;
}

/* What the model must compute: the saved net's logits on the same
 * preprocessing, softmax at temperature T, class 1. */
static float expected_probability(const char *path, const pn_image *img, float temperature)
{
    pn_error err = {0};
    pn_net *net;
    assert_int_equal(pn_net_load(g_ctx, path, PN_F32, &net, NULL, &err), PN_OK);
    int size = pn_net_input_size(net);
    pn_image small = {0};
    assert_int_equal(pn_image_resize(img, size, size, PN_RESIZE_SQUASH, &small, &err), PN_OK);
    pn_norm norm = {.channels = 1, .mean = {pn_net_mean(net)[0]}, .std = {pn_net_std(net)[0]}};
    float *x = malloc((size_t)size * size * sizeof *x);
    assert_int_equal(pn_normalize(small.pixels, size, size, &norm, x, &err), PN_OK);
    assert_int_equal(pn_net_forward(net, x, 1, PN_FWD_INFER, &err), PN_OK);
    const float *l = pn_net_logits(net);
    float z0 = l[0] / temperature, z1 = l[1] / temperature;
    float p = 1.0f / (1.0f + expf(z0 - z1));
    free(x);
    pn_image_free(&small);
    pn_net_destroy(net);
    return p;
}

static void test_load_and_metadata(void **state)
{
    const char *path = save_model("meta.safetensors", CFG(2), META, 5);
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(path, 1, &m, &err), PN_OK);
    const pn_model_info *info = pn_model_get_info(m);
    uint8_t digest[32];
    char hex[65];
    assert_int_equal(pn_sha256_file(path, digest, &err), PN_OK);
    pn_sha256_hex(digest, hex);
    hex[16] = '\0';
    assert_string_equal(info->id, hex);
    assert_string_equal(info->arch_name, "tiny");
    assert_non_null(strstr(info->version, "pneumo-model-1"));
    assert_int_equal(info->input_size, 32);
    assert_int_equal(info->channels, 1);
    assert_float_equal(info->threshold, 0.25f, 1e-7);
    assert_string_equal(info->metrics_json, "{\"auc\":0.5}");
    assert_non_null(strstr(info->card_json, "\"temperature\":\"2\""));
    assert_null(strstr(info->card_json, "[conv]")); /* the arch text stays out of the card */
    pn_history h;
    assert_int_equal(pn_model_history(m, &h), 1);
    assert_int_equal(h.epochs, 2);
    assert_float_equal(h.val_auc[1], 0.8f, 1e-6);
    assert_float_equal(h.train_loss[0], 3.0f, 1e-6);
    pn_history_free(&h);
    pn_model_free(m);
    /* no history: an empty one */
    const char *plain = save_model("plain.safetensors", CFG(2), NULL, 0);
    assert_int_equal(pn_model_load(plain, 1, &m, &err), PN_OK);
    assert_int_equal(pn_model_history(m, &h), 0);
    assert_int_equal(h.epochs, 0);
    assert_float_equal(pn_model_get_info(m)->threshold, 0.5f, 1e-7); /* default */
    assert_string_equal(pn_model_get_info(m)->metrics_json, "{}");
    pn_model_free(m);
}

static void test_probability_is_temperature_scaled(void **state)
{
    const char *path = save_model("prob.safetensors", CFG(2), META, 5);
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(path, 1, &m, &err), PN_OK);
    pn_image img = gradient_image(300, 280, 0);
    pn_prediction p;
    assert_int_equal(pn_model_predict_image(m, &img, 0, &p, &err), PN_OK);
    float want = expected_probability(path, &img, 2.0f);
    printf("P(pneumonia) %.6f, expected %.6f (T=2), uncalibrated %.6f\n", p.probability, want,
           expected_probability(path, &img, 1.0f));
    assert_float_equal(p.probability, want, 1e-4);
    assert_true(fabsf(p.probability - expected_probability(path, &img, 1.0f)) > 1e-3);
    assert_int_equal(p.n_warnings, 0);
    assert_null(p.cam);
    assert_int_equal(p.width, 300);
    /* The same image as a PNG file and as bytes gives the same answer: the
     * image decoded straight to about the model's input size (a PNG at least
     * twice that size streams into a box down-scale, as a JPEG uses a scaled
     * IDCT), then predicted. */
    char png[512];
    snprintf(png, sizeof png, "%s/gradient.png", pn_test_tmpdir());
    assert_int_equal(pn_image_write_png(png, &img, &err), PN_OK);
    pn_image small = {0};
    pn_prediction pf, pb, ps;
    assert_int_equal(pn_image_decode_file(png, 32, 32, &small, &err), PN_OK);
    assert_true(small.w < img.w); /* the streamed path was taken */
    assert_int_equal(small.src_w, img.w);
    assert_int_equal(pn_model_predict_image(m, &small, 0, &ps, &err), PN_OK);
    assert_int_equal(pn_model_predict_file(m, png, 0, &pf, &err), PN_OK);
    FILE *f = fopen(png, "rb");
    unsigned char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(pn_model_predict_bytes(m, buf, n, 0, &pb, &err), PN_OK);
    assert_float_equal(pf.probability, ps.probability, 1e-6);
    assert_float_equal(pb.probability, ps.probability, 1e-6);
    /* and differs from the whole-image path by the down-scale alone */
    assert_float_equal(pf.probability, p.probability, 0.05);
    pn_image_free(&small);
    /* a decoding failure is an error, also without an error record */
    assert_int_equal(pn_model_predict_bytes(m, "nope", 4, 0, &pb, NULL), PN_EFORMAT);
    pn_image_free(&img);
    pn_model_free(m);
}

static void expect_warning(pn_model *m, pn_image img, const char *needle)
{
    pn_prediction p;
    pn_error err = {0};
    assert_int_equal(pn_model_predict_image(m, &img, 0, &p, &err), PN_OK);
    int found = 0;
    for (int i = 0; i < p.n_warnings; i++)
        found |= strstr(p.warnings[i], needle) != NULL;
    if (!found)
        fail_msg("no warning containing '%s' (%d warnings)", needle, p.n_warnings);
    pn_image_free(&img);
}

static void test_warnings(void **state)
{
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(save_model("warn.safetensors", CFG(2), NULL, 0), 1, &m, &err), PN_OK);
    expect_warning(m, gradient_image(300, 300, 1), "colour image");
    expect_warning(m, gradient_image(100, 100, 0), "very small image");
    expect_warning(m, gradient_image(700, 300, 0), "aspect ratio");
    expect_warning(m, gradient_image(300, 700, 0), "aspect ratio");
    pn_model_free(m);
}

static void test_gradcam_and_warm_up(void **state)
{
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(save_model("cam.safetensors", CFG(2), NULL, 0), 1, &m, &err), PN_OK);
    assert_int_equal(pn_model_warm_up(m, &err), PN_OK);
    pn_image img = gradient_image(256, 256, 0);
    pn_prediction p;
    assert_int_equal(pn_model_predict_image(m, &img, 1, &p, &err), PN_OK);
    assert_non_null(p.cam);
    assert_int_equal(p.cam_size, 32);
    for (int i = 0; i < 32 * 32; i++)
        assert_true(p.cam[i] >= 0 && p.cam[i] <= 1);
    pn_prediction_clear(&p);
    assert_null(p.cam);
    pn_image_free(&img);
    pn_model_free(m);
}

static void expect_refused(const char *name, const char *cfg, const pn_kv *meta, size_t n_meta, pn_status code,
                           const char *needle)
{
    const char *path = save_model(name, cfg, meta, n_meta);
    pn_model *m = (pn_model *)(uintptr_t)1;
    pn_error err = {0};
    assert_int_equal(pn_model_load(path, 1, &m, &err), code);
    assert_null(m);
    printf("%s: %s\n", name, err.msg);
    assert_non_null(strstr(err.msg, needle));
    assert_int_equal(pn_model_load(path, 1, &m, NULL), code);
}

/* Single-logit and many-class heads cannot be read as P(pneumonia): refused
 * at load with a clear message, never predicted from silently. */
static void test_unsupported_heads_refused(void **state)
{
    expect_refused("one.safetensors", CFG(1), NULL, 0, PN_EUNSUPPORTED, "1 output class;");
    expect_refused("nine.safetensors", CFG(9), NULL, 0, PN_EUNSUPPORTED, "9 output classes");
    expect_refused("four.safetensors", CFG(4), NULL, 0, PN_EUNSUPPORTED, "3-class (NORMAL, BACTERIAL, VIRAL)");
    const pn_kv bad_thr[] = {{"threshold", "1.5"}}, bad_temp[] = {{"temperature", "0"}};
    expect_refused("thr.safetensors", CFG(2), bad_thr, 1, PN_EFORMAT, "threshold");
    expect_refused("temp.safetensors", CFG(2), bad_temp, 1, PN_EFORMAT, "temperature");
    pn_model *m = (pn_model *)(uintptr_t)1;
    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", pn_test_tmpdir());
    assert_int_equal(pn_model_load(missing, 1, &m, NULL), PN_EIO);
    assert_null(m);
}

static void write_class_images(const char *root, const char *cls, int n, int seed)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, cls);
    mkdir(dir, 0755);
    for (int i = 0; i < n; i++) {
        pn_image img = gradient_image(64 + 8 * i, 64, 0);
        for (int k = 0; k < img.w * img.h; k++)
            img.pixels[k] = (uint8_t)(img.pixels[k] * (seed + i));
        char path[1100];
        snprintf(path, sizeof path, "%s/img%d.png", dir, i);
        assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
        pn_image_free(&img);
    }
}

static void count_skip(void *user, const char *why) { ++*(int *)user; }

static void test_evaluate_folder(void **state)
{
    char root[512], bad[600];
    snprintf(root, sizeof root, "%s/evalset", pn_test_tmpdir());
    mkdir(root, 0755);
    write_class_images(root, "NORMAL", 5, 3);
    write_class_images(root, "PNEUMONIA", 4, 5);
    snprintf(bad, sizeof bad, "%s/PNEUMONIA/broken.png", root);
    FILE *f = fopen(bad, "wb");
    fputs("not a png", f);
    fclose(f);
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(save_model("eval.safetensors", CFG(2), NULL, 0), 1, &m, &err), PN_OK);
    int skipped = 0;
    pn_eval_options o = {.cam_stats = 1, .threshold = -1, .skipped = count_skip, .user = &skipped};
    pn_eval_set r;
    assert_int_equal(pn_model_evaluate_folder(m, root, &o, &r, &err), PN_OK);
    assert_int_equal(r.n, 9);
    assert_int_equal(r.failed, 1);
    assert_int_equal(skipped, 1);
    assert_int_equal(r.n_cam, 4); /* Grad-CAM statistics on PNEUMONIA images only */
    int pos = 0;
    for (size_t i = 0; i < r.n; i++) {
        assert_true(r.prob[i] >= 0 && r.prob[i] <= 1);
        pos += r.label[i];
        pn_prediction p;
        assert_int_equal(pn_model_predict_file(m, r.names[i], 0, &p, &err), PN_OK);
        assert_float_equal(p.probability, r.prob[i], 1e-6);
    }
    assert_int_equal(pos, 4);
    assert_true(r.n_tiles >= 1 && r.n_tiles <= PN_EVAL_MAX_TILES);
    /* metrics at the model's threshold, with intervals around them */
    assert_float_equal(r.threshold, 0.5f, 0);
    assert_int_equal(r.metrics.n, 9);
    assert_int_equal(r.metrics.n_pos, 4);
    assert_true(r.ci.lo[0] <= r.ci.hi[0]);
    pn_eval_set_free(&r);
    /* threshold 0: everything is called PNEUMONIA */
    o.threshold = 0;
    o.bootstrap = 50;
    assert_int_equal(pn_model_evaluate_folder(m, root, &o, &r, &err), PN_OK);
    assert_float_equal(r.metrics.sensitivity, 1.0, 0);
    assert_float_equal(r.metrics.specificity, 0.0, 0);
    pn_eval_set_free(&r);
    o.threshold = 1.5f;
    assert_int_equal(pn_model_evaluate_folder(m, root, &o, &r, NULL), PN_EINVAL);
    o.threshold = -1;
    /* --holdout needs the recipe that training stores */
    o.holdout = 1;
    assert_int_equal(pn_model_evaluate_folder(m, root, &o, &r, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "val_fraction"));
    pn_model_free(m);
}

/* The model's thread count applies to its own work only: the caller's
 * OpenMP setting is the same before and after loading and predicting. */
static void test_threads_do_not_leak(void **state)
{
    omp_set_num_threads(3);
    pn_model *m;
    pn_error err = {0};
    assert_int_equal(pn_model_load(save_model("threads.safetensors", CFG(2), NULL, 0), 1, &m, &err), PN_OK);
    assert_int_equal(omp_get_max_threads(), 3);
    pn_image img = gradient_image(200, 200, 0);
    pn_prediction p;
    assert_int_equal(pn_model_predict_image(m, &img, 1, &p, &err), PN_OK);
    assert_int_equal(omp_get_max_threads(), 3);
    pn_prediction_clear(&p);
    assert_int_equal(pn_model_warm_up(m, &err), PN_OK);
    assert_int_equal(omp_get_max_threads(), 3);
    pn_image_free(&img);
    pn_model_free(m);
    pn_ctx *ctx = (pn_ctx *)(uintptr_t)1;
    assert_int_equal(pn_ctx_create_with(&(pn_ctx_options){.threads = -1}, &ctx, &err), PN_EINVAL);
    assert_null(ctx);
    omp_set_num_threads(omp_get_num_procs());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_metadata),
        cmocka_unit_test(test_probability_is_temperature_scaled),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_gradcam_and_warm_up),
        cmocka_unit_test(test_unsupported_heads_refused),
        cmocka_unit_test(test_evaluate_folder),
        cmocka_unit_test(test_threads_do_not_leak),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
