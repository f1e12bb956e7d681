/* CSV manifests: parsing (quoting, column order, labels, splits, patient
 * ids), bad rows reported with their line, the folder layout and its
 * converted manifest giving the same dataset (a generated tree and, when
 * ../shared is present, kermany), and patient ids driving splits and folds. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pneumo/data.h"
#include "testutil.h"

static void write_png(const char *dir, const char *name, int seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t px[12 * 10];
    for (int i = 0; i < 12 * 10; i++)
        px[i] = (uint8_t)(i * seed + seed);
    pn_image img = {.w = 12, .h = 10, .pixels = px};
    assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fresh folder under the test's temporary directory. */
static const char *fresh_dir(const char *name)
{
    static char dir[4][1024];
    static int next;
    char *d = dir[next++ % 4];
    snprintf(d, sizeof dir[0], "%s/%s", pn_test_tmpdir(), name);
    mkdir(d, 0755);
    return d;
}

static const pn_sample *find(const pn_dataset *ds, const char *suffix)
{
    for (size_t i = 0; i < ds->n; i++) {
        size_t n = strlen(ds->samples[i].path), k = strlen(suffix);
        if (n >= k && !strcmp(ds->samples[i].path + n - k, suffix))
            return &ds->samples[i];
    }
    fail_msg("no sample ends in %s", suffix);
    return NULL;
}

static void test_parsing(void **state)
{
    const char *dir = fresh_dir("parse");
    const char *files[] = {"img, one.png", "person5_bacteria_9.png", "b.png", "c.png", "IM-0042-0001.png",
                           "quote.png"};
    for (int i = 0; i < 6; i++)
        write_png(dir, files[i], i + 1);
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/list.csv", dir);
    /* BOM, CRLF, columns in another order with an extra one, quoting (a comma
     * in a path, doubled quotes, a line break inside a field), a blank line,
     * labels and splits in any case, an absolute path. */
    char text[4096];
    snprintf(text, sizeof text,
             "\xEF\xBB\xBFlabel,notes,path,split,patient_id\r\n"
             "normal,\"said \"\"hi\"\"\",\"img, one.png\",TRAIN,P1\r\n"
             "PNEUMONIA,,person5_bacteria_9.png,train,\r\n"
             "\r\n"
             "Bacterial,\"two\r\nlines\",b.png,Val,P1\r\n"
             "virus,x,c.png,test,\" P 2 \"\r\n"
             "VIRAL,,%s/IM-0042-0001.png,train,\r\n"
             "NORMAL,,\"quote.png\",train,P3",
             dir);
    write_text(csv, text);
    pn_dataset ds;
    pn_error e = {0};
    assert_int_equal(pn_manifest_read(csv, &ds, &e), PN_OK);
    assert_int_equal(ds.n, 6);
    const pn_sample *s = find(&ds, "/img, one.png");
    char want[2048];
    snprintf(want, sizeof want, "%s/img, one.png", dir);
    assert_string_equal(s->path, want);
    assert_int_equal(s->label, PN_CLASS_NORMAL);
    assert_int_equal(s->subtype, PN_SUBTYPE_NORMAL);
    assert_string_equal(s->split, "train");
    assert_string_equal(s->patient, "P1");
    assert_int_equal(s->patient_known, 1);
    s = find(&ds, "/person5_bacteria_9.png"); /* PNEUMONIA: subtype and patient from the name */
    assert_int_equal(s->label, PN_CLASS_PNEUMONIA);
    assert_int_equal(s->subtype, PN_SUBTYPE_BACTERIA);
    assert_string_equal(s->patient, "person5");
    assert_int_equal(s->patient_known, 1);
    s = find(&ds, "/b.png");
    assert_int_equal(s->subtype, PN_SUBTYPE_BACTERIA);
    assert_string_equal(s->split, "val");
    assert_int_equal(s->group, find(&ds, "/img, one.png")->group); /* patient P1 */
    s = find(&ds, "/c.png");
    assert_int_equal(s->subtype, PN_SUBTYPE_VIRUS);
    assert_string_equal(s->split, "test");
    assert_string_equal(s->patient, " P 2 "); /* quoted: spaces kept */
    s = find(&ds, "/IM-0042-0001.png");
    snprintf(want, sizeof want, "%s/IM-0042-0001.png", dir);
    assert_string_equal(s->path, want);
    assert_int_equal(s->subtype, PN_SUBTYPE_VIRUS);
    assert_string_equal(s->patient, "IM-0042");
    s = find(&ds, "/quote.png");
    assert_string_equal(s->patient, "P3");
    /* sorted by split, then path */
    for (size_t i = 1; i < ds.n; i++) {
        int c = strcmp(ds.samples[i - 1].split, ds.samples[i].split);
        assert_true(c < 0 || (c == 0 && strcmp(ds.samples[i - 1].path, ds.samples[i].path) < 0));
    }
    assert_string_equal(pn_dataset_holdout_folder(&ds), "train");
    pn_dataset_free(&ds);

    /* A bare file name: paths relative to the current folder; no split column. */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    write_text("flat.csv", "path,label\nb.png,NORMAL\nc.png,pneumonia\n");
    assert_int_equal(pn_dataset_load("flat.csv", &ds, &e), PN_OK);
    assert_int_equal(ds.n, 2);
    assert_string_equal(ds.samples[0].path, "b.png");
    assert_string_equal(ds.samples[0].split, "");
    assert_int_equal(ds.samples[1].subtype, PN_SUBTYPE_UNKNOWN);
    assert_int_equal(ds.samples[1].patient_known, 0);
    assert_string_equal(pn_dataset_holdout_folder(&ds), "");
    pn_dataset_free(&ds);
    assert_int_equal(chdir(cwd), 0);
}

/* Each bad manifest fails naming its line and what is wrong. */
static void test_bad_rows(void **state)
{
    const char *dir = fresh_dir("bad");
    write_png(dir, "a.png", 1);
    write_png(dir, "b.png", 2);
    static const struct { const char *text, *line, *what; pn_status code; } cases[] = {
        {"path,label\na.png,NORMAL\nb.png,PNEUMONIAE\n", "line 3:", "unknown label 'PNEUMONIAE'", PN_EFORMAT},
        {"path,label\nmissing.png,NORMAL\n", "line 2:", "missing.png: No such file", PN_EIO},
        {"path,label\na.png,NORMAL\nb.png,NORMAL\n./a.png,NORMAL\n", "line 4:", "already listed on line 2",
         PN_EFORMAT},
        {"path,label,split\na.png,NORMAL,train\nb.png,NORMAL\n", "line 3:", "2 fields, the header has 3",
         PN_EFORMAT},
        {"path,label,split\na.png,NORMAL,trian\n", "line 2:", "unknown split 'trian'", PN_EFORMAT},
        {"path,label,split\na.png,NORMAL,\n", "line 2:", "unknown split ''", PN_EFORMAT},
        {"file,label\na.png,NORMAL\n", "line 1:", "names no 'path' column", PN_EFORMAT},
        {"path,label,Path\na.png,NORMAL,a.png\n", "line 1:", "'path' appears twice", PN_EFORMAT},
        {"path,label\na.png,NORMAL\nb.png,NOR\"MAL\n", "line 3:", "malformed CSV quoting", PN_EFORMAT},
        {"path,label\na.png,NORMAL\n\"b.png,NORMAL\n", "line 3:", "not closed before the end", PN_EFORMAT},
        {"path,label,patient_id\na.png,NORMAL,\"SECRET,42\"\n", "line 2:", "patient_id longer than", PN_EFORMAT},
        {"path,label\n\"a\"\"b.png\",NORMAL\n", "line 2:", "double quote or a line break", PN_EFORMAT},
        {"path,label\n,NORMAL\n", "line 2:", "empty path", PN_EFORMAT},
        {"path,label\n.,NORMAL\n", "line 2:", "is not a regular file", PN_EFORMAT},
        {"path,label\n", "", "no images listed", PN_EINVAL},
        {"", "", "empty manifest", PN_EFORMAT},
    };
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/bad.csv", dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(csv, cases[i].text);
        pn_dataset ds;
        pn_error e = {0};
        pn_status st = pn_manifest_read(csv, &ds, &e);
        if (st != cases[i].code || !strstr(e.msg, cases[i].line) || !strstr(e.msg, cases[i].what) ||
            !strstr(e.msg, "bad.csv") || strstr(e.msg, "SECRET"))
            fail_msg("case %zu: status %d, message '%s'", i, (int)st, e.msg);
        assert_null(ds.samples);
    }
}

/* patient_id, not the file name, decides splits and folds. */
static void test_patient_ids_drive_splits(void **state)
{
    const char *dir = fresh_dir("patients");
    char csv[1200], line[256];
    snprintf(csv, sizeof csv, "%s/p.csv", dir);
    FILE *f = fopen(csv, "w");
    fputs("path,label,patient_id,split\n", f);
    for (int i = 0; i < 60; i++) {
        char name[64];
        snprintf(name, sizeof name, "scan%02d.png", i);
        write_png(dir, name, i + 3);
        /* five images per patient, patients alternate classes; the last patient in test */
        snprintf(line, sizeof line, "%s,%s,pat-%d,%s\n", name, (i / 5) % 2 ? "PNEUMONIA" : "NORMAL", i / 5,
                 i >= 55 ? "test" : "train");
        fputs(line, f);
    }
    fclose(f);
    pn_dataset ds;
    pn_error e = {0};
    assert_int_equal(pn_manifest_read(csv, &ds, &e), PN_OK);
    assert_int_equal(ds.n_groups, 12);
    pn_split sp;
    assert_int_equal(pn_dataset_holdout_split(&ds, 0.25, 5, &sp, &e), PN_OK);
    assert_int_equal(sp.n_train + sp.n_val, 55); /* the test rows stay out */
    assert_string_equal(pn_split_kind(&sp), "patient-wise");
    for (size_t a = 0; a < sp.n_val; a++)
        for (size_t b = 0; b < sp.n_train; b++)
            assert_string_not_equal(ds.samples[sp.val[a]].patient, ds.samples[sp.train[b]].patient);
    pn_split_free(&sp);
    int fold[60];
    assert_int_equal(pn_dataset_folds(&ds, "train", 3, 9, fold, &e), PN_OK);
    for (size_t i = 0; i < ds.n; i++)
        for (size_t j = 0; j < ds.n; j++)
            if (!strcmp(ds.samples[i].patient, ds.samples[j].patient))
                assert_int_equal(fold[i], fold[j]);
    pn_dataset_free(&ds);
}

static void assert_same_dataset(const pn_dataset *a, const pn_dataset *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_groups, b->n_groups);
    for (size_t i = 0; i < a->n; i++) {
        const pn_sample *x = &a->samples[i], *y = &b->samples[i];
        assert_string_equal(x->path, y->path);
        assert_string_equal(x->split, y->split);
        assert_string_equal(x->patient, y->patient);
        assert_int_equal(x->label, y->label);
        assert_int_equal(x->subtype, y->subtype);
        assert_int_equal(x->patient_known, y->patient_known);
        assert_int_equal(x->bytes, y->bytes);
        assert_int_equal(x->mtime_ns, y->mtime_ns);
        assert_true(x->hash == y->hash);
        assert_int_equal(x->group, y->group);
    }
}

/* The same patient-wise splits and folds from both. */
static void assert_same_splits(const pn_dataset *a, const pn_dataset *b)
{
    pn_split sa, sb;
    assert_int_equal(pn_dataset_holdout_split(a, 0.2, 42, &sa, NULL), PN_OK);
    assert_int_equal(pn_dataset_holdout_split(b, 0.2, 42, &sb, NULL), PN_OK);
    assert_int_equal(sa.n_val, sb.n_val);
    assert_memory_equal(sa.val, sb.val, sa.n_val * sizeof *sa.val);
    pn_split_free(&sa);
    pn_split_free(&sb);
    int *fa = malloc(a->n * sizeof *fa), *fb = malloc(b->n * sizeof *fb);
    assert_int_equal(pn_dataset_folds(a, pn_dataset_holdout_folder(a), 5, 42, fa, NULL), PN_OK);
    assert_int_equal(pn_dataset_folds(b, pn_dataset_holdout_folder(b), 5, 42, fb, NULL), PN_OK);
    assert_memory_equal(fa, fb, a->n * sizeof *fa);
    free(fa);
    free(fb);
}

/* Folder -> manifest (inside the root: relative paths) -> the same dataset. */
static void test_convert_roundtrip(void **state)
{
    const char *root = fresh_dir("tree");
    const char *dirs[] = {"train", "train/NORMAL", "train/PNEUMONIA", "val", "val/NORMAL", "val/PNEUMONIA"};
    char d[1200];
    for (int i = 0; i < 6; i++) {
        snprintf(d, sizeof d, "%s/%s", root, dirs[i]);
        mkdir(d, 0755);
    }
    snprintf(d, sizeof d, "%s/train/NORMAL", root);
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof name, i == 3 ? "odd, name %d.png" : "IM-%04d-0001.png", i);
        write_png(d, name, i + 1);
    }
    snprintf(d, sizeof d, "%s/train/PNEUMONIA", root);
    for (int i = 0; i < 12; i++) {
        char name[64];
        snprintf(name, sizeof name, i == 5 ? "unknown%d.png" : "person%d_%s_%d.png", i / 2,
                 i % 3 ? "bacteria" : "virus", i);
        write_png(d, name, i + 20);
    }
    snprintf(d, sizeof d, "%s/val/NORMAL", root);
    write_png(d, "IM-0900-0001.png", 77);
    snprintf(d, sizeof d, "%s/val/PNEUMONIA", root);
    write_png(d, "person900_virus_1.png", 78);
    write_png(d, "person900_virus_2.png", 78); /* byte-identical to the one before */

    pn_dataset folder, manifest;
    pn_error e = {0};
    assert_int_equal(pn_dataset_scan(root, &folder, &e), PN_OK);
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/manifest.csv", root);
    assert_int_equal(pn_manifest_write(&folder, csv, &e), PN_OK);
    assert_int_equal(pn_dataset_load(csv, &manifest, &e), PN_OK);
    assert_same_dataset(&folder, &manifest);
    pn_dataset_free(&manifest);
    FILE *f = fopen(csv, "r");
    char head[256], first[256];
    assert_non_null(fgets(head, sizeof head, f));
    assert_non_null(fgets(first, sizeof first, f));
    fclose(f);
    assert_string_equal(head, "path,label,patient_id,split\n");
    assert_string_equal(first, "train/NORMAL/IM-0000-0001.png,NORMAL,IM-0000,train\n");

    /* Outside the root: absolute paths naming the same files. */
    snprintf(csv, sizeof csv, "%s/elsewhere.csv", fresh_dir("other"));
    assert_int_equal(pn_manifest_write(&folder, csv, &e), PN_OK);
    assert_int_equal(pn_manifest_read(csv, &manifest, &e), PN_OK);
    assert_int_equal(manifest.n, folder.n);
    for (size_t i = 0; i < folder.n; i++) {
        struct stat x, y;
        assert_int_equal(manifest.samples[i].path[0], '/');
        assert_int_equal(stat(folder.samples[i].path, &x), 0);
        assert_int_equal(stat(manifest.samples[i].path, &y), 0);
        assert_true(x.st_ino == y.st_ino);
        assert_string_equal(folder.samples[i].patient, manifest.samples[i].patient);
        assert_int_equal(folder.samples[i].subtype, manifest.samples[i].subtype);
        assert_int_equal(folder.samples[i].group, manifest.samples[i].group);
    }
    pn_dataset_free(&manifest);
    pn_dataset_free(&folder);
}

/* kermany as a folder and as its converted manifest: the same dataset,
 * splits and folds. */
static void test_kermany_folder_equals_manifest(void **state)
{
    const char *shared = pn_test_require_shared("the kermany folder/manifest comparison");
    char rel[4096], root[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/data/kermany", shared);
    if (!realpath(rel, root)) {
        printf("SKIP: %s is absent\n", rel);
        skip();
    }
    pn_dataset folder, manifest;
    pn_error e = {0};
    assert_int_equal(pn_dataset_scan(root, &folder, &e), PN_OK);
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/kermany.csv", fresh_dir("kermany"));
    assert_int_equal(pn_manifest_write(&folder, csv, &e), PN_OK);
    assert_int_equal(pn_dataset_load(csv, &manifest, &e), PN_OK);
    assert_same_dataset(&folder, &manifest);
    assert_same_splits(&folder, &manifest);
    size_t bacterial = 0;
    for (size_t i = 0; i < manifest.n; i++)
        bacterial += manifest.samples[i].subtype == PN_SUBTYPE_BACTERIA;
    assert_true(bacterial > 1000);
    pn_dataset_free(&manifest);
    pn_dataset_free(&folder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsing),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_patient_ids_drive_splits),
        cmocka_unit_test(test_convert_roundtrip),
        cmocka_unit_test(test_kermany_folder_equals_manifest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
