/* Plots are valid PNG/SVG files of the expected size, and report.html /
 * metrics.json contain what they promise. Set PNEUMO_EVAL_KEEP=1 to print
 * where the files are so they can be looked at. */
#define _GNU_SOURCE /* strcasestr */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cairo.h>
#include <dlfcn.h>

#include "pneumo/eval.h"

enum { N = 600, TILES = 8, SIDE = 96, EPOCHS = 12 };

static float prob[N];
static int label[N];
static char names[N][32];
static const char *name_ptrs[N];

static void make_data(void)
{
    uint64_t s = 12345;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double v = (double)(s >> 11) / 9007199254740992.0;
        label[i] = i % 8 < 5; /* 62.5% PNEUMONIA, like the Kermany test split */
        double z = sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v) * 1.3 + (label[i] ? 1.4 : -1.4);
        prob[i] = (float)(1 / (1 + exp(-z)));
        snprintf(names[i], sizeof names[i], "%s/img_%04zu.jpeg", label[i] ? "PNEUMONIA" : "NORMAL", i);
        name_ptrs[i] = names[i];
    }
}

/* A rough chest-like image: dark lungs in a bright body, noise-free. */
static void make_tile_pixels(uint8_t *px, int variant)
{
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            double dx = (x - SIDE / 2.0) / SIDE, dy = (y - SIDE / 2.0) / SIDE;
            double lung = fmin(hypot((dx + 0.2) / 0.15, dy / 0.35), hypot((dx - 0.2) / 0.15, dy / 0.35));
            double v = 200 - 40 * (lung < 1) - 60 * (lung < 0.8) + (variant % 3) * 15 * (lung < 0.5);
            px[y * SIDE + x] = (uint8_t)fmin(255, fmax(0, v - 80 * fabs(dx)));
        }
}

/* Reads width/height from the PNG signature + IHDR chunk. */
static void check_png(const char *path, int want_w, int want_h)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s was not written", path);
    unsigned char h[24];
    size_t got = fread(h, 1, sizeof h, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got != sizeof h || memcmp(h, sig, 8) || memcmp(h + 12, "IHDR", 4))
        fail_msg("%s is not a PNG", path);
    int w = h[16] << 24 | h[17] << 16 | h[18] << 8 | h[19];
    int hh = h[20] << 24 | h[21] << 16 | h[22] << 8 | h[23];
    if (w != want_w || hh != want_h)
        fail_msg("%s is %dx%d, expected %dx%d", path, w, hh, want_w, want_h);
    if (size < 10000) /* text, axes and curves make any real plot larger */
        fail_msg("%s is suspiciously small (%ld bytes)", path, size);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s was not written", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    return buf;
}

static const char *out_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", pn_test_tmpdir(), name);
    return path;
}

static void test_plots(void **state)
{
    pn_error err = {0};
    pn_metrics m;
    assert_int_equal(pn_metrics_compute(prob, label, N, 0.5f, &m, &err), PN_OK);
    assert_int_equal(pn_plot_confusion(&m, out_path("confusion.png"), &err), PN_OK);
    check_png(out_path("confusion.png"), 800, 640);
    assert_int_equal(pn_plot_roc(prob, label, N, 0.5f, out_path("roc.png"), &err), PN_OK);
    check_png(out_path("roc.png"), 800, 640);
    assert_int_equal(pn_plot_pr(prob, label, N, 0.5f, out_path("pr.png"), &err), PN_OK);
    check_png(out_path("pr.png"), 800, 640);
    assert_int_equal(pn_plot_calibration(prob, label, N, out_path("calibration.png"), &err), PN_OK);
    check_png(out_path("calibration.png"), 800, 800);

    float tl[EPOCHS], vl[EPOCHS], ta[EPOCHS], va[EPOCHS], vauc[EPOCHS];
    for (int e = 0; e < EPOCHS; e++) {
        tl[e] = 0.7f * expf(-0.25f * e) + 0.05f;
        vl[e] = 0.65f * expf(-0.2f * e) + 0.12f + 0.004f * e;
        ta[e] = 1 - tl[e] * 0.5f;
        va[e] = 1 - vl[e] * 0.55f;
        vauc[e] = fminf(0.99f, va[e] + 0.04f);
    }
    pn_history h = {EPOCHS, tl, vl, ta, va, vauc};
    assert_int_equal(pn_plot_history(&h, out_path("history.png"), &err), PN_OK);
    check_png(out_path("history.png"), 1200, 560);

    static uint8_t pixels[TILES][SIDE * SIDE];
    pn_sample_tile tiles[TILES];
    for (int i = 0; i < TILES; i++) {
        make_tile_pixels(pixels[i], i);
        tiles[i] = (pn_sample_tile){pixels[i], SIDE, SIDE, label[i], prob[i], names[i]};
    }
    assert_int_equal(pn_plot_samples(tiles, TILES, 0.5f, out_path("samples.png"), &err), PN_OK);
    check_png(out_path("samples.png"), 4 * (220 + 24) + 24, 70 + 2 * (220 + 64 + 24));

    /* SVG output by extension. */
    assert_int_equal(pn_plot_roc(prob, label, N, 0.5f, out_path("roc.svg"), &err), PN_OK);
    char *svg = slurp(out_path("roc.svg"));
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "width=\"800px\" height=\"640px\""));
    free(svg);
    if (getenv("PNEUMO_EVAL_KEEP"))
        printf("plots in %s\n", pn_test_tmpdir());
}

static void test_plot_errors(void **state)
{
    pn_error err = {0};
    pn_metrics m;
    assert_int_equal(pn_metrics_compute(prob, label, N, 0.5f, &m, &err), PN_OK);
    assert_int_equal(pn_plot_confusion(&m, "/nonexistent-dir/x.png", &err), PN_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.png"));
    pn_history empty = {0};
    assert_int_equal(pn_plot_history(&empty, out_path("h.png"), &err), PN_EINVAL);
    const int one_class[] = {1, 1, 1};
    assert_int_equal(pn_plot_roc(prob, one_class, 3, 0.5f, out_path("r.png"), &err), PN_EINVAL);
    pn_sample_tile bad = {NULL, 10, 10, 0, 0.5f, NULL};
    assert_int_equal(pn_plot_samples(&bad, 1, 0.5f, out_path("s.png"), &err), PN_EINVAL);
}

static void format_metric(char *buf, size_t cap, double v)
{
    snprintf(buf, cap, "%.4f", v);
}

static void test_report(void **state)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/report", pn_test_tmpdir());
    float tl[3] = {0.6f, 0.4f, 0.3f}, vl[3] = {0.62f, 0.45f, 0.41f};
    float ta[3] = {0.7f, 0.85f, 0.9f}, va[3] = {0.68f, 0.8f, 0.83f}, vauc[3] = {0.8f, 0.88f, 0.9f};
    pn_history h = {3, tl, vl, ta, va, vauc};
    static uint8_t pixels[4][SIDE * SIDE];
    pn_sample_tile tiles[4];
    for (int i = 0; i < 4; i++) {
        make_tile_pixels(pixels[i], i);
        tiles[i] = (pn_sample_tile){pixels[i], SIDE, SIDE, label[i + 3], prob[i + 3], NULL};
    }
    pn_report_input in = {
        .model_name = "test-model <v1>", .model_info = "synthetic scores", .dataset_path = "/data/test",
        .prob = prob, .label = label, .n = N, .file_names = name_ptrs, .threshold = 0.42f,
        .threshold_note = "sensitivity >= 0.95 on validation", .history = &h,
        .samples = tiles, .n_samples = 4, .bootstrap_resamples = 200, .seed = 7,
    };
    pn_error err = {0};
    if (pn_report_write(dir, &in, &err) != PN_OK)
        fail_msg("pn_report_write: %s", err.msg);

    const char *pngs[] = {"confusion_matrix.png", "roc_curve.png", "pr_curve.png", "calibration.png",
                          "history.png", "samples.png"};
    char path[600];
    for (size_t i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, pngs[i]);
        struct stat st;
        if (stat(path, &st) != 0 || st.st_size < 10000)
            fail_msg("%s missing or too small", path);
    }

    pn_metrics m;
    assert_int_equal(pn_metrics_compute(prob, label, N, 0.42f, &m, NULL), PN_OK);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = slurp(path);
    const char *ids[] = {"sensitivity", "specificity", "precision", "npv", "accuracy", "balanced_accuracy",
                         "f1", "roc_auc", "pr_auc", "brier", "ece", "log_loss"};
    const double values[] = {m.sensitivity, m.specificity, m.precision, m.npv, m.accuracy,
                             m.balanced_accuracy, m.f1, m.roc_auc, m.pr_auc, m.brier, m.ece, m.log_loss};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char row[64], value[32];
        snprintf(row, sizeof row, "id=\"m-%s\"", ids[i]);
        format_metric(value, sizeof value, values[i]);
        char *at = strstr(html, row);
        if (!at || !strstr(at, value) || strstr(at, value) - at > 200)
            fail_msg("report.html: row %s missing or without value %s", ids[i], value);
    }
    const char *needles[] = {"not a diagnostic device", "sensitivity and specificity are both reported",
                             "test-model &lt;v1&gt;", "/data/test", "PNEUMONIA", "weighted avg",
                             "Most confident false negatives", "Most confident false positives", "0.42"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (!strcasestr(html, needles[i]))
            fail_msg("report.html lacks \"%s\"", needles[i]);
    int images = 0;
    for (const char *p = html; (p = strstr(p, "data:image/png;base64,")); p++)
        images++;
    assert_int_equal(images, 6);
    assert_null(strstr(html, "<v1>")); /* escaped */
    free(html);

    snprintf(path, sizeof path, "%s/metrics.json", dir);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        fail_msg("metrics.json: %s", jerr.text);
    json_t *c = json_object_get(j, "confusion");
    assert_int_equal(json_integer_value(json_object_get(c, "tp")), m.confusion.tp);
    assert_int_equal(json_integer_value(json_object_get(c, "tn")), m.confusion.tn);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "test-model <v1>");
    assert_int_equal(json_array_size(json_object_get(j, "calibration_bins")), PN_CALIBRATION_BINS);
    assert_true(json_is_array(json_object_get(json_object_get(j, "ci95"), "roc_auc")));
    json_decref(j);
    if (getenv("PNEUMO_EVAL_KEEP"))
        printf("report in %s\n", dir);
}

int main(void)
{
    make_data();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plots),
        cmocka_unit_test(test_plot_errors),
        cmocka_unit_test(test_report),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* Drop cairo's and fontconfig's process-wide font caches so LeakSanitizer
     * sees only real leaks. FcFini is looked up at run time because fontconfig
     * comes in through cairo and is not on our link line. */
    cairo_debug_reset_static_data();
    void (*fc_fini)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "FcFini");
    if (fc_fini)
        fc_fini();
    return failed;
}
