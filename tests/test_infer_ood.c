/* The out-of-distribution gate on a tiny network and a synthetic dataset:
 * pn_ood_fit stores statistics that the model then uses (held-out images of
 * the training kind pass, a different kind of image is refused), ensembles
 * get one set per member, the image checks refuse colour, near-uniform and
 * near-binary images without statistics, and incomplete or invalid
 * statistics in a file are refused at load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pneumo/infer.h"
#include "pneumo/safetensors.h"
#include "testutil.h"
#include "nn_testctx.h"

#define CFG                                                                               \
    "[net]\ninput = 32\nchannels = 1\nclasses = 2\n"                                      \
    "[conv]\nname = c1\nfilters = 8\nstride = 2\nactivation = relu\n"                     \
    "[conv]\nname = c2\nfilters = 8\nstride = 8\nactivation = relu\n"                     \
    "[gap]\n[fc]\nname = fc\nout = classes\n"

/* Smooth "training kind" images: a vertical gradient with a class-dependent bump and noise. */
static pn_image smooth_image(int label, unsigned seed)
{
    pn_image img = {.w = 48, .h = 48, .src_w = 48, .src_h = 48};
    img.pixels = malloc(48 * 48);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 48; x++) {
            seed = seed * 1103515245u + 12345u;
            double bump = label ? 60 * exp(-((x - 24) * (x - 24) + (y - 24) * (y - 24)) / 120.0) : 0;
            img.pixels[y * 48 + x] = (uint8_t)(40 + y * 3 + bump + (seed >> 16) % 12);
        }
    return img;
}

/* A different kind: fine diagonal stripes of two gray levels with noise (not binary). */
static pn_image stripe_image(unsigned seed)
{
    pn_image img = {.w = 48, .h = 48, .src_w = 48, .src_h = 48};
    img.pixels = malloc(48 * 48);
    for (int i = 0; i < 48 * 48; i++) {
        seed = seed * 1103515245u + 12345u;
        img.pixels[i] = (uint8_t)(((i % 48 + i / 48) % 4 < 2 ? 20 : 235) + (seed >> 16) % 20);
    }
    return img;
}

static const char *dataset(void)
{
    static char root[512];
    snprintf(root, sizeof root, "%s/ood-data", pn_test_tmpdir());
    const char *cls[2] = {"NORMAL", "PNEUMONIA"};
    char dir[600], path[700];
    pn_error err = {0};
    snprintf(dir, sizeof dir, "%s/train", root);
    mkdir(root, 0755);
    mkdir(dir, 0755);
    for (int c = 0; c < 2; c++) {
        snprintf(dir, sizeof dir, "%s/train/%s", root, cls[c]);
        mkdir(dir, 0755);
        for (int i = 0; i < 60; i++) {
            pn_image img = smooth_image(c, (unsigned)(i * 2 + c + 1));
            snprintf(path, sizeof path, "%s/person%d_%s.png", dir, c * 100 + i, c ? "bacteria" : "normal");
            assert_int_equal(pn_image_write_png(path, &img, &err), PN_OK);
            pn_image_free(&img);
        }
    }
    return root;
}

static const char *save_model(const char *name, uint64_t seed)
{
    static char paths[4][512];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 512, "%s/%s", pn_test_tmpdir(), name);
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = seed};
    assert_int_equal(pn_net_create(g_ctx, CFG, &opt, &net, &err), PN_OK);
    const pn_kv meta[] = {{"recipe", "{\"val_fraction\":0.3,\"seed\":5}"}, {"threshold", "0.5"}};
    if (pn_net_save(net, path, meta, 2, 0, &err))
        fail_msg("%s", err.msg);
    pn_net_destroy(net);
    return path;
}

static pn_prediction predict(pn_model *m, pn_image img)
{
    pn_prediction p;
    pn_error err = {0};
    if (pn_model_predict_image(m, &img, 0, &p, &err))
        fail_msg("%s", err.msg);
    pn_image_free(&img);
    return p;
}

static void test_fit_then_gate(void **state)
{
    (void)state;
    const char *data = dataset(), *path = save_model("ood-single.safetensors", 3);
    pn_error err = {0};
    pn_model *m;
    assert_int_equal(pn_model_load(path, 1, &m, &err), PN_OK);
    pn_prediction before = predict(m, smooth_image(0, 999));
    assert_true(before.ood_score == -1.0f && !before.out_of_distribution); /* no statistics yet */
    pn_model_free(m);

    pn_ood_fit_options o = {.threads = 1};
    pn_ood_fit_report rep;
    if (pn_ood_fit(path, data, &o, &rep, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(rep.n_members, 1);
    assert_true(rep.members[0].n_fit >= 70 && rep.members[0].n_held >= 30);
    assert_true(rep.members[0].threshold > 0 && rep.members[0].held_refused_by_score <= 1);

    assert_int_equal(pn_model_load(path, 1, &m, &err), PN_OK);
    int kept = 0, refused = 0;
    for (unsigned s = 0; s < 20; s++) {
        pn_prediction p = predict(m, smooth_image((int)(s & 1), 5000 + s));
        assert_true(p.ood_score >= 0);
        kept += !p.out_of_distribution;
        p = predict(m, stripe_image(7000 + s));
        refused += p.out_of_distribution;
        if (p.out_of_distribution)
            assert_non_null(strstr(p.ood_reason, "features"));
    }
    assert_true(kept >= 19);
    assert_int_equal(refused, 20);
    pn_model_free(m);

    /* Fitting again replaces the statistics (the file still loads, one set). */
    assert_int_equal(pn_ood_fit(path, data, &o, &rep, &err), PN_OK);
    pn_st_file *f;
    assert_int_equal(pn_st_open(path, &f, &err), PN_OK);
    int sets = 0;
    for (size_t i = 0; i < pn_st_count(f); i++)
        sets += strstr(pn_st_get(f, i)->name, "ood/threshold") != NULL;
    assert_int_equal(sets, 1);
    pn_st_close(f);
}

static void test_ensemble_members_each_fitted(void **state)
{
    (void)state;
    const char *data = dataset();
    const char *members[2] = {save_model("ood-m0.safetensors", 11), save_model("ood-m1.safetensors", 12)};
    char path[512];
    snprintf(path, sizeof path, "%s/ood-ens.safetensors", pn_test_tmpdir());
    const pn_kv meta[] = {{"threshold", "0.5"}};
    pn_error err = {0};
    if (pn_ensemble_write(path, members, 2, 0, meta, 1, &err))
        fail_msg("%s", err.msg);
    pn_ood_fit_options o = {.threads = 1};
    pn_ood_fit_report rep;
    if (pn_ood_fit(path, data, &o, &rep, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(rep.n_members, 2);
    pn_st_file *f;
    assert_int_equal(pn_st_open(path, &f, &err), PN_OK);
    assert_non_null(pn_st_find(f, "m0/ood/precision"));
    assert_non_null(pn_st_find(f, "m1/ood/threshold"));
    assert_null(pn_st_find(f, "ood/threshold"));
    pn_st_close(f);
    pn_model *m;
    if (pn_model_load(path, 1, &m, &err))
        fail_msg("%s", err.msg);
    pn_prediction p = predict(m, stripe_image(1));
    assert_true(p.out_of_distribution && p.ood_score > 1);
    p = predict(m, smooth_image(1, 4242));
    assert_true(p.ood_score >= 0 && p.ood_score < 1);
    pn_model_free(m);
}

static void test_image_checks(void **state)
{
    (void)state;
    const char *path = save_model("ood-checks.safetensors", 21);
    pn_error err = {0};
    pn_model *m;
    assert_int_equal(pn_model_load(path, 1, &m, &err), PN_OK);
    struct {
        int kind; /* 0 smooth, 1 colour, 2 uniform, 3 binary, 4 wide */
        int refused;
        const char *reason;
    } cases[] = {{0, 0, ""}, {1, 1, "colour"}, {2, 1, "uniform"}, {3, 1, "black-and-white"}, {4, 1, "aspect"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pn_image img = smooth_image(0, 1);
        if (cases[i].kind == 1)
            img.is_color = 1;
        for (int k = 0; k < 48 * 48; k++) {
            if (cases[i].kind == 2)
                img.pixels[k] = 128;
            if (cases[i].kind == 3)
                img.pixels[k] = (k / 7) % 3 ? 255 : 0;
        }
        if (cases[i].kind == 4)
            img.src_w = 5 * img.src_h;
        pn_prediction p = predict(m, img);
        assert_int_equal(p.out_of_distribution, cases[i].refused);
        assert_non_null(strstr(p.ood_reason, cases[i].reason));
        assert_true(p.ood_score == -1.0f);
    }
    pn_model_free(m);
}

/* Copies the model adding the given ood tensors. */
static const char *with_tensors(const char *src, const char *name, int bad)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", pn_test_tmpdir(), name);
    pn_error err = {0};
    pn_st_file *f;
    pn_st_writer *w;
    assert_int_equal(pn_st_open(src, &f, &err), PN_OK);
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    for (size_t i = 0; i < pn_st_count(f); i++) {
        const pn_st_tensor *t = pn_st_get(f, i);
        assert_int_equal(pn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), PN_OK);
    }
    for (size_t i = 0; i < pn_st_metadata_count(f); i++)
        pn_st_writer_set_metadata(w, pn_st_metadata_key(f, i), pn_st_metadata(f, pn_st_metadata_key(f, i)), &err);
    float means[2 * 16] = {0}, precision[16 * 16] = {0}, threshold = bad == 2 ? -1.0f : 5.0f;
    int64_t sm[2] = {2, 16}, sp[2] = {16, 16}, one = 1, len = 2;
    assert_int_equal(pn_st_writer_add_f32(w, "ood/means", PN_ST_F32, 2, sm, means, &err), PN_OK);
    if (bad != 1) /* 1: no precision */
        assert_int_equal(pn_st_writer_add_f32(w, "ood/precision", PN_ST_F32, 2, sp, precision, &err), PN_OK);
    assert_int_equal(pn_st_writer_add_f32(w, "ood/threshold", PN_ST_F32, 1, &one, &threshold, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "ood/layer", PN_ST_U8, 1, &len, bad == 3 ? "zz" : "c2", &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);
    pn_st_close(f);
    return path;
}

static void test_bad_statistics_refused(void **state)
{
    (void)state;
    const char *src = save_model("ood-src.safetensors", 31);
    pn_error err = {0};
    pn_model *m = NULL;
    assert_int_equal(pn_model_load(with_tensors(src, "ood-good.safetensors", 0), 1, &m, &err), PN_OK);
    pn_model_free(m);
    assert_int_equal(pn_model_load(with_tensors(src, "ood-noprec.safetensors", 1), 1, &m, &err), PN_EFORMAT);
    assert_non_null(strstr(err.msg, "incomplete"));
    assert_int_equal(pn_model_load(with_tensors(src, "ood-negthr.safetensors", 2), 1, &m, &err), PN_EFORMAT);
    assert_non_null(strstr(err.msg, "positive"));
    assert_int_not_equal(pn_model_load(with_tensors(src, "ood-nolayer.safetensors", 3), 1, &m, &err), PN_OK);
    assert_non_null(strstr(err.msg, "zz"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_then_gate),
        cmocka_unit_test(test_ensemble_members_each_fitted),
        cmocka_unit_test(test_image_checks),
        cmocka_unit_test(test_bad_statistics_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
