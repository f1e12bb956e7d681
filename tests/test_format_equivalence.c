/* One X-ray, one answer, whatever the file format: X-rays from ../shared
 * stored here as 8-bit JPEG (the original), 8-bit, 16-bit (12-bit values
 * with and without sBIT), palette and gray+alpha PNG, and DICOM (img2dcm's
 * JPEG wrapper and a 12-bit MONOCHROME1 file with a rescale) must get
 * probabilities within 0.02 of each other from the bundled model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "pneumo/data.h"
#include "pneumo/infer.h"
#include "testutil.h"

#define TOLERANCE 0.02

static const char *tmp;
static pn_model *model;

typedef enum variant_kind {
    V_JPEG, V_PNG8, V_PNG16_12BIT, V_PNG16_SBIT12, V_PALETTE, V_GRAY_ALPHA, V_DICOM_IMG2DCM, V_DICOM_12BIT_MONO1,
    V_COUNT
} variant_kind;

static const char *const variant_names[] = {
    "8-bit JPEG", "8-bit PNG", "16-bit PNG (12-bit values, no sBIT)", "16-bit PNG (sBIT 12, shifted)",
    "palette PNG", "gray+alpha PNG", "DICOM (img2dcm)", "DICOM (12-bit MONOCHROME1, rescaled)",
};
_Static_assert(sizeof variant_names / sizeof *variant_names == V_COUNT, "one name per variant");

static int run(const char *cmd)
{
    char line[8192];
    snprintf(line, sizeof line, "%s >>%s/tools.log 2>&1", cmd, tmp);
    int rc = system(line);
    if (rc)
        fprintf(stderr, "command failed (%d): %s\n", rc, line);
    return rc;
}

static unsigned twelve_bit(uint8_t v) { return (v * 4095u + 127) / 255; }

/* Writes img as a PNG of the given kind; returns 0 on success. */
static int write_png(const char *path, const pn_image *img, variant_kind kind)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    int depth = kind == V_PNG16_12BIT || kind == V_PNG16_SBIT12 ? 16 : 8;
    int type = kind == V_PALETTE ? PNG_COLOR_TYPE_PALETTE
               : kind == V_GRAY_ALPHA ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY;
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, depth, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (kind == V_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < 256; i++)
            pal[i] = (png_color){(png_byte)i, (png_byte)i, (png_byte)i};
        png_set_PLTE(png, info, pal, 256);
    }
    if (kind == V_PNG16_SBIT12) {
        png_color_8 sig = {.gray = 12};
        png_set_sBIT(png, info, &sig);
    }
    png_write_info(png, info);
    uint8_t *row = malloc((size_t)img->w * 2); /* w x 2 bytes: 16-bit big endian or gray+alpha */
    for (int y = 0; y < img->h; y++) {
        const uint8_t *src = img->pixels + (size_t)y * img->w;
        for (int x = 0; x < img->w; x++) {
            unsigned v = twelve_bit(src[x]) << (kind == V_PNG16_SBIT12 ? 4 : 0);
            if (depth == 16) {
                row[2 * x] = (uint8_t)(v >> 8);
                row[2 * x + 1] = (uint8_t)v;
            } else if (kind == V_GRAY_ALPHA) {
                row[2 * x] = src[x];
                row[2 * x + 1] = 255;
            } else {
                row[x] = src[x];
            }
        }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    return fclose(f);
}

/* 12-bit MONOCHROME1 (stored inverted) with Rescale Slope 1, Intercept -1024. */
static int write_dicom_12bit(const char *path, const pn_image *img)
{
    char raw[1100], dump[1100], cmd[4096];
    snprintf(raw, sizeof raw, "%s.raw", path);
    snprintf(dump, sizeof dump, "%s.dump", path);
    FILE *f = fopen(raw, "wb");
    if (!f)
        return -1;
    for (size_t i = 0; i < (size_t)img->w * img->h; i++) {
        unsigned v = 4095 - twelve_bit(img->pixels[i]);
        fputc((int)(v & 0xFF), f);
        fputc((int)(v >> 8), f);
    }
    fclose(f);
    f = fopen(dump, "w");
    if (!f)
        return -1;
    fprintf(f, "(0008,0016) UI [1.2.840.10008.5.1.4.1.1.1.1]\n(0008,0018) UI [1.2.826.0.1.3680043.2.1143.7]\n"
               "(0008,0060) CS [DX]\n(0018,0015) CS [CHEST]\n(0018,5101) CS [PA]\n"
               "(0028,0002) US 1\n(0028,0004) CS [MONOCHROME1]\n(0028,0010) US %d\n(0028,0011) US %d\n"
               "(0028,0100) US 16\n(0028,0101) US 12\n(0028,0102) US 11\n(0028,0103) US 0\n"
               "(0028,1052) DS [-1024]\n(0028,1053) DS [1]\n(7fe0,0010) OW =%s\n",
            img->h, img->w, raw);
    fclose(f);
    snprintf(cmd, sizeof cmd, "dump2dcm %s %s", dump, path);
    return run(cmd);
}

static int make_variant(const char *jpeg, const pn_image *img, variant_kind kind, char *path, size_t size)
{
    static const char *const ext[] = {"jpeg", "png", "png", "png", "png", "png", "dcm", "dcm"};
    _Static_assert(sizeof ext / sizeof *ext == V_COUNT, "one extension per variant");
    snprintf(path, size, "%s/variant%d.%s", tmp, (int)kind, ext[kind]);
    char cmd[4096];
    switch (kind) {
    case V_JPEG:
        snprintf(path, size, "%s", jpeg);
        return 0;
    case V_DICOM_IMG2DCM:
        snprintf(cmd, sizeof cmd, "img2dcm %s %s && dcmodify -nb -i \"(0008,0060)=DX\" %s", jpeg, path, path);
        return run(cmd);
    case V_DICOM_12BIT_MONO1:
        return write_dicom_12bit(path, img);
    default:
        return write_png(path, img, kind);
    }
}

static void check_one_xray(const char *jpeg)
{
    pn_image img = {0};
    pn_error err = {0};
    if (pn_image_decode_file(jpeg, 0, 0, &img, &err))
        fail_msg("%s", err.msg);
    float prob[V_COUNT];
    float lo = 1, hi = 0;
    for (int k = 0; k < V_COUNT; k++) {
        char path[1024];
        assert_int_equal(make_variant(jpeg, &img, (variant_kind)k, path, sizeof path), 0);
        pn_prediction p;
        if (pn_model_predict_file(model, path, 0, &p, &err))
            fail_msg("%s (%s): %s", variant_names[k], path, err.msg);
        prob[k] = p.probability;
        for (int i = 0; i < p.n_warnings; i++)
            if (strstr(p.warnings[i], "DICOM"))
                fail_msg("%s: unexpected warning \"%s\"", variant_names[k], p.warnings[i]);
        pn_prediction_clear(&p);
        lo = fminf(lo, prob[k]);
        hi = fmaxf(hi, prob[k]);
    }
    printf("%s: P(pneumonia) from %.4f to %.4f over %d formats\n", strrchr(jpeg, '/') + 1, lo, hi, V_COUNT);
    for (int k = 0; k < V_COUNT; k++)
        printf("  %-40s %.4f\n", variant_names[k], prob[k]);
    if (hi - lo > TOLERANCE)
        fail_msg("%s: probabilities spread %.4f over formats (tolerance %.2f)", jpeg, hi - lo, TOLERANCE);
    pn_image_free(&img);
}

/* The first file of a folder (sorted), or "" when there is none. */
static void first_jpeg(const char *dir, char *out, size_t size)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/*.jpeg 2>/dev/null | sort | head -1", dir);
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fgets(out, (int)size, p))
            out[strcspn(out, "\n")] = '\0';
        pclose(p);
    }
}

static void same_answer_in_every_format(void **state)
{
    const char *shared = pn_test_require_shared("format equivalence");
    const char *dirs[] = {"data/kermany/val/NORMAL", "data/kermany/val/PNEUMONIA", "data/samples_orig/NORMAL",
                          "data/samples_orig/PNEUMONIA"};
    int checked = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char dir[512], jpeg[1024];
        snprintf(dir, sizeof dir, "%s/%s", shared, dirs[i]);
        first_jpeg(dir, jpeg, sizeof jpeg);
        if (!jpeg[0])
            continue;
        check_one_xray(jpeg);
        checked++;
    }
    assert_true(checked >= 2);
}

int main(void)
{
    if (!pn_test_shared_dir()) {
        fprintf(stderr, "skipped: ../shared (X-rays) not found\n");
        return PN_TEST_SKIP;
    }
    if (system("command -v img2dcm dcmodify dump2dcm >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: DCMTK tools missing (scripts/install-deps.sh test installs dcmtk)\n");
        return PN_TEST_SKIP;
    }
    tmp = pn_test_tmpdir();
    pn_error err = {0};
    if (pn_model_load(NULL, 2, &model, &err)) {
        fprintf(stderr, "cannot load the bundled model: %s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(same_answer_in_every_format)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pn_model_free(model);
    return rc;
}
