/* pneumo cv on a generated dataset: every training image is predicted
 * exactly once out of fold, by the fold that held its patient out; three-class
 * probabilities sum to 1 and bacterial + viral equals the binary probability;
 * a stopped run resumes and finished folds are not retrained. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pneumo/data.h"
#include "pneumo/train.h"
#include "testutil.h"

/* <root>/train/{NORMAL,PNEUMONIA}: 12 normal patients (2 images each), 12
 * bacterial and 12 viral patients (2 images each), 24x24 PNGs whose texture
 * depends on the class. */
static void make_dataset(const char *root)
{
    char dir[1024], path[1200];
    const char *sub[] = {"", "/train", "/train/NORMAL", "/train/PNEUMONIA"};
    for (int i = 0; i < 4; i++) {
        snprintf(dir, sizeof dir, "%s%s", root, sub[i]);
        mkdir(dir, 0755);
    }
    uint8_t px[24 * 24];
    for (int p = 0; p < 36; p++)
        for (int r = 0; r < 2; r++) {
            int cls = p / 12; /* 0 normal, 1 bacterial, 2 viral */
            for (int i = 0; i < 24 * 24; i++)
                px[i] = (uint8_t)((cls == 0 ? (i % 24) * 9 : cls == 1 ? (i / 24) * 9 : (i * 7) % 251) + 2 * p + r);
            if (cls == 0)
                snprintf(path, sizeof path, "%s/train/NORMAL/IM-%04d-%04d.png", root, p, r + 1);
            else
                snprintf(path, sizeof path, "%s/train/PNEUMONIA/person%d_%s_%d.png", root, p,
                         cls == 1 ? "bacteria" : "virus", r);
            pn_image img = {.w = 24, .h = 24, .pixels = px};
            assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
        }
}

static pn_train_config small_config(const char *data, const char *out)
{
    pn_train_config c = pn_train_defaults();
    c.data_dir = data;
    c.out_dir = out;
    c.arch = "simple-cnn";
    c.input_size = 32;
    c.channels = 1;
    c.epochs = 2;
    c.batch = 8;
    c.threads = 1;
    c.precision = PN_F32;
    c.folds = 3;
    c.classes = 3;
    c.target_sensitivity = 0.9f;
    return c;
}

typedef struct oof_check {
    int rows, folds_seen[4];
    double max_sum_err, max_binary_err;
} oof_check;

static oof_check read_oof(const char *out, const pn_dataset *ds, int *seen)
{
    char path[1200], line[2048];
    snprintf(path, sizeof path, "%s/oof.csv", out);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, "p_bacterial"));
    oof_check c = {0};
    while (fgets(line, sizeof line, f)) {
        char *q = strchr(line + 1, '"');
        assert_non_null(q);
        *q = '\0';
        int label, subtype, fold;
        float logit, p, pn, pb, pv;
        char patient[256];
        assert_int_equal(sscanf(q + 2, "%255[^,],%d,%d,%d,%f,%f,%f,%f,%f", patient, &label, &subtype,
                                &fold, &logit, &p, &pn, &pb, &pv), 9);
        int found = 0;
        for (size_t i = 0; i < ds->n; i++)
            if (!strcmp(ds->samples[i].path, line + 1)) {
                seen[i]++;
                found = 1;
            }
        assert_true(found);
        assert_true(fold >= 1 && fold <= 3);
        c.folds_seen[fold]++;
        c.max_sum_err = fmax(c.max_sum_err, fabs(pn + pb + pv - 1));
        c.max_binary_err = fmax(c.max_binary_err, fabs(pb + pv - p));
        c.rows++;
    }
    fclose(f);
    return c;
}

static void test_cv_out_of_fold(void **state)
{
    char data[1024], out[1024];
    snprintf(data, sizeof data, "%s/cvdata", pn_test_tmpdir());
    snprintf(out, sizeof out, "%s/cvrun", pn_test_tmpdir());
    make_dataset(data);
    pn_train_config c = small_config(data, out);
    pn_cv_result r;
    pn_error e = {0};
    /* stop after two optimiser steps: fold 1 leaves a checkpoint */
    c.stop_after = 2;
    if (pn_cv_run(&c, NULL, NULL, NULL, &r, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(r.stopped, 1);
    c.stop_after = 0;
    if (pn_cv_run(&c, NULL, NULL, NULL, &r, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(r.stopped, 0);
    assert_int_equal(r.classes, 3);
    assert_true(r.temperature > 0 && r.threshold > 0 && r.threshold < 1);

    pn_dataset ds;
    assert_int_equal(pn_dataset_scan(data, &ds, &e), PN_OK);
    int *seen = calloc(ds.n, sizeof *seen);
    oof_check k = read_oof(out, &ds, seen);
    assert_int_equal(k.rows, (int)ds.n);
    for (size_t i = 0; i < ds.n; i++)
        assert_int_equal(seen[i], 1);
    for (int f = 1; f <= 3; f++)
        assert_true(k.folds_seen[f] > 0);
    assert_true(k.max_sum_err < 1e-5);
    assert_true(k.max_binary_err < 1e-6);

    /* finished folds are kept: a second run only pools (no fold directory changes) */
    char model[1200];
    snprintf(model, sizeof model, "%s/fold-2/model.safetensors", out);
    struct stat before, after;
    assert_int_equal(stat(model, &before), 0);
    if (pn_cv_run(&c, NULL, NULL, NULL, &r, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(stat(model, &after), 0);
    assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    const char *files[] = {"cv.json", "report/report.html", "confusion_3class.png",
                           "calibration_before_temperature.png"};
    for (int i = 0; i < 4; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        assert_int_equal(stat(p, &after), 0);
    }
    free(seen);
    pn_dataset_free(&ds);
}

static void test_cv_bad_folds(void **state)
{
    pn_train_config c = small_config("/nonexistent", "/nonexistent/out");
    pn_cv_result r;
    pn_error e = {0};
    c.folds = 1;
    assert_int_equal(pn_cv_run(&c, NULL, NULL, NULL, &r, &e), PN_EINVAL);
    assert_non_null(strstr(e.msg, "folds"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cv_out_of_fold),
        cmocka_unit_test(test_cv_bad_folds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
