/* Dataset scanning, patient ids, duplicate grouping, patient-wise split and
 * class weights, on a generated tree and on the real kermany/train. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pneumo/data.h"
#include "testutil.h"

static void test_patient_ids(void **state)
{
    /* file name, patient id, 1 when the id comes from a known pattern */
    static const struct { const char *file, *id; int known; } cases[] = {
        {"person1003_virus_1685.jpeg", "person1003", 1},
        {"person1471_bacteria_3831.jpeg", "person1471", 1},
        {"train/PNEUMONIA/person7_bacteria_29.jpeg", "person7", 1},
        {"IM-0117-0001.jpeg", "IM-0117", 1},
        {"NORMAL2-IM-0117-0001.jpeg", "NORMAL2-IM-0117", 1},
        {"NORMAL2-IM-0587-0001-0002.jpeg", "NORMAL2-IM-0587", 1},
        {"scan_42.png", "scan_42", 0},
        {"personX_virus.jpeg", "personX_virus", 0},
        {"IM-abc.jpeg", "IM-abc", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char id[64];
        assert_int_equal(pn_patient_id(cases[i].file, id, sizeof id), cases[i].known);
        assert_string_equal(id, cases[i].id);
    }
    assert_int_equal(pn_subtype_from_name("person1_virus_2.jpeg", 1), PN_SUBTYPE_VIRUS);
    assert_int_equal(pn_subtype_from_name("person1_bacteria_2.jpeg", 1), PN_SUBTYPE_BACTERIA);
    assert_int_equal(pn_subtype_from_name("IM-0001-0001.jpeg", 0), PN_SUBTYPE_NORMAL);
    assert_int_equal(pn_subtype_from_name("xray.png", 1), PN_SUBTYPE_UNKNOWN);
}

static void write_png(const char *dir, const char *name, uint8_t seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t px[16 * 12];
    for (int i = 0; i < 16 * 12; i++)
        px[i] = (uint8_t)(i * seed);
    pn_image img = {.w = 16, .h = 12, .pixels = px};
    assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
}

/* <root>/train/{NORMAL,PNEUMONIA} with multi-image patients, a duplicate
 * pair across two patients, a val split and a stray non-class folder.
 * reverse: create files in the opposite order (readdir order differs). */
static void make_tree(const char *root, int reverse)
{
    char d[1024];
    mkdir(root, 0755);
    const char *dirs[] = {"train", "train/NORMAL", "train/PNEUMONIA", "val", "val/NORMAL",
                          "val/PNEUMONIA", "train/OTHER"};
    for (int i = 0; i < 7; i++) {
        snprintf(d, sizeof d, "%s/%s", root, dirs[i]);
        mkdir(d, 0755);
    }
    for (int k = 0; k < 60; k++) {
        int i = reverse ? 59 - k : k;
        char name[128];
        snprintf(d, sizeof d, "%s/train/NORMAL", root);
        snprintf(name, sizeof name, "%sIM-%04d-%04d.png", i % 2 ? "NORMAL2-" : "", i / 3, i % 3 + 1);
        write_png(d, name, (uint8_t)(2 * i + 1));
        snprintf(d, sizeof d, "%s/train/PNEUMONIA", root);
        for (int r = 0; r < 2; r++) {
            snprintf(name, sizeof name, "person%d_%s_%d.png", i, i % 3 ? "bacteria" : "virus",
                     2 * i + r);
            write_png(d, name, (uint8_t)(3 + 4 * i + 2 * r));
        }
    }
    snprintf(d, sizeof d, "%s/train/PNEUMONIA", root);
    write_png(d, "person900_bacteria_1.png", 77);  /* same bytes as ... */
    write_png(d, "person901_virus_1.png", 77);     /* ... a different patient */
    snprintf(d, sizeof d, "%s/val/NORMAL", root);
    write_png(d, "IM-9999-0001.png", 5);
    snprintf(d, sizeof d, "%s/train/OTHER", root);
    write_png(d, "ignored.png", 9);
}

static int find(const pn_dataset *ds, const char *name)
{
    for (size_t i = 0; i < ds->n; i++)
        if (strstr(ds->samples[i].path, name))
            return (int)i;
    return -1;
}

/* No group (patient or duplicate content) on both sides. */
static void assert_disjoint(const pn_dataset *ds, const pn_split *sp)
{
    int *side = calloc(ds->n_groups, sizeof *side);
    for (size_t k = 0; k < sp->n_train; k++)
        side[ds->samples[sp->train[k]].group] |= 1;
    for (size_t k = 0; k < sp->n_val; k++)
        side[ds->samples[sp->val[k]].group] |= 2;
    for (int g = 0; g < ds->n_groups; g++)
        assert_int_not_equal(side[g], 3);
    /* and, independently of groups, no patient id and no file hash on both sides */
    for (size_t a = 0; a < sp->n_train; a++)
        for (size_t b = 0; b < sp->n_val; b++) {
            const pn_sample *x = &ds->samples[sp->train[a]], *y = &ds->samples[sp->val[b]];
            assert_string_not_equal(x->patient, y->patient);
            assert_true(x->hash != y->hash);
        }
    free(side);
}

static void test_scan_and_split_generated(void **state)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/tree", pn_test_tmpdir());
    make_tree(root, 0);
    pn_dataset ds;
    pn_error e;
    assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
    assert_int_equal(ds.n, 60 + 120 + 2 + 1);
    int a = find(&ds, "person900_"), b = find(&ds, "person901_");
    assert_true(a >= 0 && b >= 0);
    assert_true(ds.samples[a].hash == ds.samples[b].hash);
    assert_int_equal(ds.samples[a].group, ds.samples[b].group);
    assert_string_not_equal(ds.samples[a].patient, ds.samples[b].patient);
    int v = find(&ds, "IM-9999");
    assert_string_equal(ds.samples[v].split, "val");
    assert_int_equal(ds.samples[v].label, PN_CLASS_NORMAL);
    int p = find(&ds, "person3_virus_6");
    assert_int_equal(ds.samples[p].label, PN_CLASS_PNEUMONIA);
    assert_int_equal(ds.samples[p].subtype, PN_SUBTYPE_VIRUS);
    assert_string_equal(ds.samples[p].patient, "person3");
    assert_true(ds.samples[p].bytes > 0);

    pn_split s1, s2, s3;
    assert_int_equal(pn_dataset_split(&ds, "train", 0.25, 7, &s1, &e), PN_OK);
    assert_int_equal(s1.n_train + s1.n_val, 182);
    assert_true(s1.n_val > 30 && s1.n_val < 60);
    assert_disjoint(&ds, &s1);
    for (size_t k = 0; k < s1.n_val; k++)
        assert_string_equal(ds.samples[s1.val[k]].split, "train");
    assert_int_equal(pn_dataset_split(&ds, "train", 0.25, 7, &s2, NULL), PN_OK);
    assert_int_equal(s1.n_val, s2.n_val);
    assert_memory_equal(s1.val, s2.val, s1.n_val * sizeof *s1.val);
    assert_int_equal(pn_dataset_split(&ds, "train", 0.25, 8, &s3, NULL), PN_OK);
    assert_true(s3.n_val != s1.n_val || memcmp(s1.val, s3.val, s1.n_val * sizeof *s1.val));
    pn_split_free(&s3);

    /* Same files created in reverse order: identical split by name. */
    char root2[1024];
    snprintf(root2, sizeof root2, "%s/tree-reversed", pn_test_tmpdir());
    make_tree(root2, 1);
    pn_dataset ds2;
    pn_split r;
    assert_int_equal(pn_dataset_scan(root2, &ds2, NULL), PN_OK);
    assert_int_equal(pn_dataset_split(&ds2, "train", 0.25, 7, &r, NULL), PN_OK);
    assert_int_equal(r.n_val, s1.n_val);
    for (size_t k = 0; k < r.n_val; k++)
        assert_string_equal(strrchr(ds2.samples[r.val[k]].path, '/'),
                            strrchr(ds.samples[s1.val[k]].path, '/'));

    assert_int_equal(pn_dataset_split(&ds, "train", 1.5, 7, &s3, &e), PN_EINVAL);
    assert_int_equal(pn_dataset_split(&ds, "nosuch", 0.2, 7, &s3, &e), PN_EINVAL);
    pn_split_free(&s1);
    pn_split_free(&s2);
    pn_split_free(&r);
    pn_dataset_free(&ds);
    pn_dataset_free(&ds2);
}

/* fold[] from pn_dataset_folds: in range for the split's samples, -1 for the
 * others, no group, patient id or file content in two folds, every fold used. */
static void assert_folds_valid(const pn_dataset *ds, const int *fold, int k, const char *split)
{
    int *group_fold = malloc(ds->n_groups * sizeof *group_fold);
    size_t *per_fold = calloc((size_t)k, sizeof *per_fold);
    for (int g = 0; g < ds->n_groups; g++)
        group_fold[g] = -1;
    for (size_t i = 0; i < ds->n; i++) {
        const pn_sample *x = &ds->samples[i];
        if (strcmp(x->split, split)) {
            assert_int_equal(fold[i], -1);
            continue;
        }
        assert_true(fold[i] >= 0 && fold[i] < k);
        per_fold[fold[i]]++;
        if (group_fold[x->group] < 0)
            group_fold[x->group] = fold[i];
        assert_int_equal(group_fold[x->group], fold[i]);
        for (size_t j = 0; j < i; j++) {
            const pn_sample *y = &ds->samples[j];
            if (fold[j] >= 0 && fold[j] != fold[i]) {
                assert_string_not_equal(x->patient, y->patient);
                assert_true(x->hash != y->hash);
            }
        }
    }
    for (int f = 0; f < k; f++)
        assert_true(per_fold[f] > 0);
    free(group_fold);
    free(per_fold);
}

static void test_folds_generated(void **state)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/tree-folds", pn_test_tmpdir());
    make_tree(root, 0);
    pn_dataset ds;
    pn_error e;
    assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
    int *f1 = malloc(ds.n * sizeof *f1), *f2 = malloc(ds.n * sizeof *f2);
    for (int k = 2; k <= 7; k++) {
        assert_int_equal(pn_dataset_folds(&ds, "train", k, 11, f1, &e), PN_OK);
        assert_folds_valid(&ds, f1, k, "train");
    }
    /* the duplicate pair of two patients shares a fold */
    int a = find(&ds, "person900_"), b = find(&ds, "person901_");
    assert_int_equal(f1[a], f1[b]);
    /* seeded: the same seed gives the same folds, another seed other folds */
    assert_int_equal(pn_dataset_folds(&ds, "train", 5, 11, f1, NULL), PN_OK);
    assert_int_equal(pn_dataset_folds(&ds, "train", 5, 11, f2, NULL), PN_OK);
    assert_memory_equal(f1, f2, ds.n * sizeof *f1);
    assert_int_equal(pn_dataset_folds(&ds, "train", 5, 12, f2, NULL), PN_OK);
    assert_true(memcmp(f1, f2, ds.n * sizeof *f1) != 0);
    /* stratified: each fold holds about a fifth of each subtype */
    for (int st = 0; st < 3; st++) {
        int per[5] = {0}, total = 0;
        for (size_t i = 0; i < ds.n; i++)
            if (f1[i] >= 0 && ds.samples[i].subtype == st && ds.samples[i].group >= 0) {
                per[f1[i]]++;
                total++;
            }
        for (int f = 0; f < 5; f++)
            assert_true(abs(per[f] * 5 - total) <= 5 * 3); /* within one 3-image patient */
    }
    /* negative cases: too few or too many folds, more folds than patients */
    assert_int_equal(pn_dataset_folds(&ds, "train", 1, 11, f1, &e), PN_EINVAL);
    assert_int_equal(pn_dataset_folds(&ds, "train", 101, 11, f1, &e), PN_EINVAL);
    assert_int_equal(pn_dataset_folds(&ds, "val", 2, 11, f1, &e), PN_EINVAL);
    assert_non_null(strstr(e.msg, "patients"));
    free(f1);
    free(f2);
    pn_dataset_free(&ds);
}

static void test_scan_errors_and_single_split(void **state)
{
    pn_dataset ds;
    pn_error e;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/empty-root", pn_test_tmpdir());
    mkdir(dir, 0755);
    assert_int_equal(pn_dataset_scan(dir, &ds, &e), PN_EINVAL);
    assert_non_null(strstr(e.msg, "empty-root"));
    assert_int_equal(pn_dataset_scan("/nonexistent/pneumo", &ds, &e), PN_EIO);
    /* Single split layout: <root>/<CLASS>/<files>. */
    snprintf(dir, sizeof dir, "%s/single", pn_test_tmpdir());
    mkdir(dir, 0755);
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/pneumonia", dir);  /* class folder name is case-insensitive */
    mkdir(sub, 0755);
    write_png(sub, "person1_virus_1.png", 3);
    write_png(sub, ".hidden.png", 3);
    assert_int_equal(pn_dataset_scan(dir, &ds, &e), PN_OK);
    assert_int_equal(ds.n, 1);
    assert_string_equal(ds.samples[0].split, "");
    assert_int_equal(ds.samples[0].label, PN_CLASS_PNEUMONIA);
    pn_dataset_free(&ds);
}

/* A split is called patient-wise only when file names carry patient ids. */
static void test_split_kind(void **state)
{
    char root[1024], sub[1100];
    const char *layouts[] = {"named", "anonymous", "mixed"};
    const char *expected[] = {"patient-wise", "image-wise", "partly patient-wise"};
    for (int k = 0; k < 3; k++) {
        snprintf(root, sizeof root, "%s/kind-%s", pn_test_tmpdir(), layouts[k]);
        mkdir(root, 0755);
        for (int c = 0; c < 2; c++) {
            snprintf(sub, sizeof sub, "%s/%s", root, c ? "PNEUMONIA" : "NORMAL");
            mkdir(sub, 0755);
            for (int i = 0; i < 10; i++) {
                char name[64];
                int named = k == 0 || (k == 2 && i < 5);
                if (named)
                    snprintf(name, sizeof name, c ? "person%d_virus_%d.png" : "IM-%04d-0001.png", i, i);
                else
                    snprintf(name, sizeof name, "scan_%d.png", i);
                write_png(sub, name, (uint8_t)(1 + 2 * i + 40 * c));
            }
        }
        pn_dataset ds;
        pn_split sp;
        pn_error e;
        assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
        assert_int_equal(pn_dataset_split(&ds, "", 0.2, 1, &sp, &e), PN_OK);
        assert_int_equal(sp.n_unknown_patient, k == 0 ? 0 : k == 1 ? 20 : 10);
        assert_string_equal(pn_split_kind(&sp), expected[k]);
        pn_split_free(&sp);
        pn_dataset_free(&ds);
    }
}

static void test_class_weights(void **state)
{
    int labels[] = {0, 1, 1, 1, 1, 1, 1, 0, 1, 1};
    float w[3];
    assert_int_equal(pn_class_weights(labels, 10, 2, w, NULL), PN_OK);
    double mean = 0;
    for (int i = 0; i < 10; i++)
        mean += w[labels[i]];
    assert_float_equal(mean / 10, 1.0, 1e-6);
    assert_float_equal(w[0] / w[1], 4.0, 1e-5);  /* 8 pneumonia vs 2 normal */
    assert_int_equal(pn_class_weights(labels, 10, 3, w, NULL), PN_OK);
    assert_float_equal(w[2], 0.0, 0);
    int bad[] = {0, 5};
    assert_int_equal(pn_class_weights(bad, 2, 2, w, NULL), PN_EINVAL);
}

static void test_real_train_split(void **state)
{
    const char *shared = pn_test_require_shared("the patient-wise split of kermany/train");
    char root[1024];
    snprintf(root, sizeof root, "%s/data/kermany", shared);
    pn_dataset ds;
    pn_error e;
    if (pn_dataset_scan(root, &ds, &e))
        fail_msg("%s", e.msg);
    pn_split sp;
    assert_int_equal(pn_dataset_split(&ds, "train", 0.2, 42, &sp, &e), PN_OK);
    assert_int_equal(sp.n_train + sp.n_val, 5216);
    assert_disjoint(&ds, &sp);
    size_t pn_all = 0, pn_val = 0;
    for (size_t k = 0; k < sp.n_train; k++)
        pn_all += ds.samples[sp.train[k]].label;
    for (size_t k = 0; k < sp.n_val; k++)
        pn_val += ds.samples[sp.val[k]].label;
    pn_all += pn_val;
    double frac_all = (double)pn_all / 5216, frac_val = (double)pn_val / sp.n_val;
    double val_share = (double)sp.n_val / 5216;
    printf("val %zu images (%.1f%%), pneumonia %.1f%% in val vs %.1f%% overall\n", sp.n_val,
           100 * val_share, 100 * frac_val, 100 * frac_all);
    assert_true(fabs(frac_val - frac_all) < 0.02);
    assert_true(fabs(val_share - 0.2) < 0.02);
    pn_split_free(&sp);
    pn_dataset_free(&ds);
}

static void test_real_train_folds(void **state)
{
    const char *shared = pn_test_require_shared("the patient-wise folds of kermany/train");
    char root[1024];
    snprintf(root, sizeof root, "%s/data/kermany", shared);
    pn_dataset ds;
    pn_error e;
    if (pn_dataset_scan(root, &ds, &e))
        fail_msg("%s", e.msg);
    int *fold = malloc(ds.n * sizeof *fold);
    assert_int_equal(pn_dataset_folds(&ds, "train", 5, 42, fold, &e), PN_OK);
    assert_folds_valid(&ds, fold, 5, "train");
    size_t per[5][3] = {{0}}, total[3] = {0};
    for (size_t i = 0; i < ds.n; i++)
        if (fold[i] >= 0 && ds.samples[i].subtype >= 0) {
            per[fold[i]][ds.samples[i].subtype]++;
            total[ds.samples[i].subtype]++;
        }
    for (int f = 0; f < 5; f++) {
        printf("fold %d: normal %zu, bacterial %zu, viral %zu\n", f + 1, per[f][0], per[f][1], per[f][2]);
        for (int st = 0; st < 3; st++)
            assert_true(fabs((double)per[f][st] / total[st] - 0.2) < 0.02);
    }
    free(fold);
    pn_dataset_free(&ds);
}

/* The split rule train and evaluate --holdout share: the train/ folder of a
 * split layout, else the flat NORMAL/ PNEUMONIA/ folder; the same answer
 * for the same data and seed, and an error when a side would be empty. */
static void test_holdout_split_flat_and_tree(void **state)
{
    pn_dataset ds;
    pn_error e;
    char root[1024], d[1100];
    snprintf(root, sizeof root, "%s/flat", pn_test_tmpdir());
    mkdir(root, 0755);
    static const char *const classes[] = {"NORMAL", "PNEUMONIA"};
    for (int c = 0; c < 2; c++) {
        snprintf(d, sizeof d, "%s/%s", root, classes[c]);
        mkdir(d, 0755);
        for (int i = 0; i < 20; i++) {
            char name[64];
            if (c)
                snprintf(name, sizeof name, "person%d_bacteria_%d.png", i, i);
            else
                snprintf(name, sizeof name, "IM-%04d-0001.png", i);
            write_png(d, name, (uint8_t)(7 * i + c + 1));
        }
    }
    assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
    assert_int_equal(ds.n, 40);
    pn_split a, b, direct;
    assert_int_equal(pn_dataset_holdout_split(&ds, 0.25, 42, &a, &e), PN_OK);
    assert_int_equal(a.n_train + a.n_val, 40);
    assert_true(a.n_val >= 8 && a.n_val <= 12);
    assert_disjoint(&ds, &a);
    /* Same rule on the same data: the same validation images (what evaluate --holdout relies on). */
    assert_int_equal(pn_dataset_holdout_split(&ds, 0.25, 42, &b, &e), PN_OK);
    assert_int_equal(a.n_val, b.n_val);
    assert_memory_equal(a.val, b.val, a.n_val * sizeof *a.val);
    assert_int_equal(pn_dataset_split(&ds, "", 0.25, 42, &direct, &e), PN_OK);
    assert_memory_equal(a.val, direct.val, a.n_val * sizeof *a.val);
    /* The old evaluate rule ("train" only) could not split a flat folder at all. */
    pn_split none;
    assert_int_equal(pn_dataset_split(&ds, "train", 0.25, 42, &none, &e), PN_EINVAL);
    pn_split_free(&a);
    pn_split_free(&b);
    pn_split_free(&direct);
    assert_int_equal(pn_dataset_holdout_split(&ds, 0.001, 42, &a, &e), PN_EINVAL);
    pn_dataset_free(&ds);

    /* With a train/ folder, only it is split (val/ stays out). */
    snprintf(root, sizeof root, "%s/tree-holdout", pn_test_tmpdir());
    make_tree(root, 0);
    assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
    assert_int_equal(pn_dataset_holdout_split(&ds, 0.25, 7, &a, &e), PN_OK);
    assert_int_equal(pn_dataset_split(&ds, "train", 0.25, 7, &b, &e), PN_OK);
    assert_int_equal(a.n_val, b.n_val);
    assert_memory_equal(a.val, b.val, a.n_val * sizeof *a.val);
    for (size_t i = 0; i < a.n_val; i++)
        assert_string_equal(ds.samples[a.val[i]].split, "train");
    pn_split_free(&a);
    pn_split_free(&b);
    pn_dataset_free(&ds);
}

/* The one holdout rule: folds >= 2 holds out that fold of pn_dataset_folds,
 * else the val_fraction split; its recipe keys survive a JSON round trip. */
static void test_holdout_rule_and_recipe_keys(void **state)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/tree-rule", pn_test_tmpdir());
    make_tree(root, 0);
    pn_dataset ds;
    pn_error e;
    assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
    int *fold = malloc(ds.n * sizeof *fold);
    assert_int_equal(pn_dataset_folds(&ds, "train", 3, 5, fold, &e), PN_OK);
    pn_split sp;
    pn_holdout rule = {.folds = 3, .fold = 1, .val_fraction = 0.2, .seed = 5};
    assert_int_equal(pn_dataset_holdout(&ds, &rule, &sp, &e), PN_OK);
    size_t held = 0, trained = 0;
    for (size_t i = 0; i < ds.n; i++) {
        held += fold[i] == 1;
        trained += fold[i] >= 0 && fold[i] != 1;
    }
    assert_int_equal(sp.n_val, held);
    assert_int_equal(sp.n_train, trained);
    for (size_t i = 0; i < sp.n_val; i++)
        assert_int_equal(fold[sp.val[i]], 1);
    assert_disjoint(&ds, &sp);
    pn_split_free(&sp);

    /* Without folds: exactly pn_dataset_holdout_split. */
    pn_split direct;
    rule = (pn_holdout){.val_fraction = 0.25, .seed = 7};
    assert_int_equal(pn_dataset_holdout(&ds, &rule, &sp, &e), PN_OK);
    assert_int_equal(pn_dataset_holdout_split(&ds, 0.25, 7, &direct, &e), PN_OK);
    assert_int_equal(sp.n_val, direct.n_val);
    assert_memory_equal(sp.val, direct.val, sp.n_val * sizeof *sp.val);
    pn_split_free(&sp);
    pn_split_free(&direct);

    /* Negative cases: no rule, a fold outside [0, folds). */
    rule = (pn_holdout){.seed = 7};
    assert_int_equal(pn_dataset_holdout(&ds, &rule, &sp, &e), PN_EINVAL);
    assert_non_null(strstr(e.msg, "no holdout rule"));
    rule = (pn_holdout){.folds = 3, .fold = 3};
    assert_int_equal(pn_dataset_holdout(&ds, &rule, &sp, &e), PN_EINVAL);
    assert_int_equal(pn_dataset_holdout(&ds, &rule, &sp, NULL), PN_EINVAL);

    /* The recipe keys: written and read back, in a larger recipe object too. */
    pn_holdout back, cv = {.folds = 5, .fold = 4, .val_fraction = 0.2f, .seed = 123456789012ULL};
    char *text = pn_holdout_to_json(&cv);
    assert_non_null(text);
    assert_int_equal(pn_holdout_from_json(text, &back), 1);
    assert_int_equal(back.folds, 5);
    assert_int_equal(back.fold, 4);
    assert_true(back.val_fraction == (double)0.2f);
    assert_true(back.seed == cv.seed);
    free(text);
    assert_int_equal(pn_holdout_from_json("{\"arch\":\"x\",\"val_fraction\":0.3,\"seed\":9}", &back), 1);
    assert_int_equal(back.folds, 0);
    assert_true(back.val_fraction == 0.3 && back.seed == 9);
    assert_int_equal(pn_holdout_from_json("{\"arch\":\"x\"}", &back), 0);
    assert_int_equal(pn_holdout_from_json("not json", &back), 0);
    assert_int_equal(pn_holdout_from_json(NULL, &back), 0);
    free(fold);
    pn_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patient_ids),
        cmocka_unit_test(test_scan_and_split_generated),
        cmocka_unit_test(test_scan_errors_and_single_split),
        cmocka_unit_test(test_split_kind),
        cmocka_unit_test(test_class_weights),
        cmocka_unit_test(test_holdout_split_flat_and_tree),
        cmocka_unit_test(test_real_train_split),
        cmocka_unit_test(test_folds_generated),
        cmocka_unit_test(test_holdout_rule_and_recipe_keys),
        cmocka_unit_test(test_real_train_folds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
