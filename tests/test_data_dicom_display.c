/* The DICOM display pipeline and real-world quirks, each reproduced in a file
 * made here by DCMTK's tools (dicom_fixture.c) and checked against dcm2pnm
 * and, where DCMTK alone would not follow the standard, against a reference
 * computed here:
 *   - Presentation LUT Shape (PS3.3 C.11.6, C.8.11.7): INVERSE inverts a
 *     MONOCHROME2 image, does not invert MONOCHROME1 twice; a shape that
 *     contradicts the photometric interpretation is followed with a warning;
 *   - VOI LUT Function SIGMOID (C.11.2.1.3.1): the standard's formula;
 *   - an unusable VOI LUT or window (empty LUT, width 0) passes to the next
 *     source with a warning instead of failing;
 *   - Pixel Padding Value / Range Limit (C.7.5.1.1.2) left out of min-max;
 *   - stored bits: junk above High Bit, High Bit not Bits Stored - 1;
 *   - ACR-NEMA 2.0 files without Photometric Interpretation;
 *   - frames split over several fragments (JPEG, JPEG-LS, RLE);
 *   - a data set without preamble whose bytes at offset 128 read "DICM";
 *   - what Modality / BodyPartExamined make of the image (img.not_chest);
 *   - a corrupt compressed stream is a clear error. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom_fixture.h"

/* Decodes s's file and checks it against dcm2pnm with `window`; img is kept. */
static void decode_matching(const dicom_spec *s, const char *window, pn_image *img)
{
    dcm_assert_matches(dcm_make(s), s->compress, window, img);
}

static void expect_note(const pn_image *img, const char *name, const char *text, int present)
{
    if (dcm_has_note(img, text) != present)
        fail_msg("%s: warning \"%s\" %s (%d warnings%s%s)", name, text, present ? "missing" : "unexpected",
                 img->n_notes, img->n_notes ? ": " : "", img->n_notes ? img->notes[0] : "");
}

/* Mean absolute difference between img and 255 - ref (its negative). */
static double negative_diff(const pn_image *img, const pn_image *ref)
{
    double sum = 0;
    for (size_t i = 0; i < (size_t)img->w * img->h; i++)
        sum += abs(img->pixels[i] + ref->pixels[i] - 255);
    return sum / ((double)img->w * img->h);
}

static void presentation_lut_shape(void **state)
{
    (void)state;
    static const dicom_spec plain = {.name = "shape_none", .bits_stored = 12};
    static const struct {
        dicom_spec s;
        int inverted;      /* bone dark (the negative of plain MONOCHROME2) */
        const char *note;  /* the contradiction warning, or NULL */
    } cases[] = {
        {{.name = "shape_inverse_mono2", .bits_stored = 12, .extra = "(2050,0020) CS [INVERSE]\n"}, 1, "INVERSE"},
        {{.name = "shape_identity_mono2", .bits_stored = 12, .extra = "(2050,0020) CS [IDENTITY]\n"}, 0, NULL},
        {{.name = "shape_inverse_mono1", .bits_stored = 12, .photometric = "MONOCHROME1",
          .extra = "(2050,0020) CS [INVERSE]\n"}, 1, NULL},
        {{.name = "shape_identity_mono1", .bits_stored = 12, .photometric = "MONOCHROME1",
          .extra = "(2050,0020) CS [IDENTITY]\n"}, 0, "IDENTITY"},
    };
    pn_image ref = {0};
    decode_matching(&plain, MINMAX, &ref);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        pn_image img = {0};
        decode_matching(&cases[k].s, MINMAX, &img);
        double d = cases[k].inverted ? negative_diff(&img, &ref) : dcm_mean_abs_diff(&img, &ref);
        if (d > 1.0)
            fail_msg("%s: %s by %.2f", cases[k].s.name, cases[k].inverted ? "not inverted" : "inverted", d);
        expect_note(&img, cases[k].s.name, "Presentation LUT Shape", cases[k].note != NULL);
        if (cases[k].note)
            expect_note(&img, cases[k].s.name, cases[k].note, 1);
        pn_image_free(&img);
    }
    pn_image_free(&ref);
}

/* SIGMOID: y = 255 / (1 + exp(-4 (x - c) / w)) on the modality values. */
static void voi_lut_function_sigmoid(void **state)
{
    (void)state;
    static const dicom_spec s = {.name = "sigmoid", .bits_stored = 12, .window = "1800 1500",
                                 .extra = "(0028,1056) CS [SIGMOID]\n"};
    pn_image img = {0}, linear = {0};
    decode_matching(&s, "+Wi 1 +Wfs", &img);
    int w, h;
    assert_int_equal(dcm_run("dcm2pnm --no-overlays +Wi 1 +Wfl %s %s", dcm_path("sigmoid.dcm"),
                             dcm_path("sigmoid.linear.pgm")), 0);
    linear.pixels = dcm_read_pgm(dcm_path("sigmoid.linear.pgm"), &w, &h);
    linear.w = w;
    linear.h = h;
    assert_true(dcm_mean_abs_diff(&img, &linear) > 2.0); /* the function was applied */
    double worst = 0;
    for (size_t i = 0; i < (size_t)img.w * img.h; i++) {
        double x = dcm_stored_value(&s, dcm_base.pixels[i], 0);
        double y = 255.0 / (1.0 + exp(-4.0 * (x - 1800.0) / 1500.0));
        worst = fmax(worst, fabs(img.pixels[i] - y));
    }
    if (worst > 1.0)
        fail_msg("sigmoid: %.2f gray levels from the standard's formula", worst);
    pn_image_free(&img);
    pn_image_free(&linear);
}

static void unusable_voi_passes_on(void **state)
{
    (void)state;
    static const dicom_spec zero_width = {.name = "window_width0", .bits_stored = 12, .window = "2048 0"};
    static const dicom_spec empty_lut = {
        .name = "empty_voi_lut", .bits_stored = 12, .window = "2000 3000",
        .extra = "(0028,3010) SQ (Sequence with explicit length #=1)\n(fffe,e000) na (Item with explicit length #=2)\n"
                 "(0028,3002) US\n(0028,3006) US\n(fffe,e00d) na (ItemDelimitationItem)\n"
                 "(fffe,e0dd) na (SequenceDelimitationItem)\n"};
    pn_image img = {0};
    decode_matching(&zero_width, "+Wm +Wfl", &img);
    expect_note(&img, zero_width.name, "Window Center/Width unusable", 1);
    assert_true(dcm_mean_abs_diff(&img, &dcm_base) < 1.0);
    pn_image_free(&img);
    decode_matching(&empty_lut, WINDOW1, &img);
    expect_note(&img, empty_lut.name, "VOI LUT Sequence unusable", 1);
    pn_image_free(&img);
}

/* The min-max window over the modality values of the pixels whose stored
 * value is outside [lo, hi], as dcm2pnm +Ww options. */
static void unpadded_window(const dicom_spec *s, int lo, int hi, double slope, double intercept, char *out,
                            size_t n)
{
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < (size_t)dcm_base.w * dcm_base.h; i++) {
        int v = i / dcm_base.w < (size_t)s->pad_rows ? s->pad_value : dcm_stored_value(s, dcm_base.pixels[i], 0);
        if (v >= lo && v <= hi)
            continue;
        mn = fmin(mn, v * slope + intercept);
        mx = fmax(mx, v * slope + intercept);
    }
    snprintf(out, n, "+Ww %.1f %.1f +Wfl", (mn + mx + 1) / 2, mx - mn + 1);
}

static void pixel_padding_left_out_of_minmax(void **state)
{
    (void)state;
    static const struct {
        dicom_spec s;
        int lo, hi;            /* padded stored values */
        double slope, intercept;
    } cases[] = {
        /* a CT-like padding value far below the image, with a rescale */
        {{.name = "pad_value", .bits_stored = 16, .range_bits = 12, .is_signed = 1, .rescale = "1 -1024",
          .pad_rows = 40, .pad_value = -32768}, -32768, -32768, 1, -1024},
        /* a range (mammography-style background), MONOCHROME1 */
        {{.name = "pad_range_mono1", .bits_stored = 12, .photometric = "MONOCHROME1", .pad_rows = 30,
          .pad_value = 4095, .extra = "(0028,0121) US 3800\n"}, 3800, 4095, 1, 0},
        /* signed range, the limit given below the value */
        {{.name = "pad_range_signed", .bits_stored = 12, .is_signed = 1, .pad_rows = 20, .pad_value = -1800,
          .extra = "(0028,0121) SS -2048\n"}, -2048, -1800, 1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char window[128];
        unpadded_window(&cases[k].s, cases[k].lo, cases[k].hi, cases[k].slope, cases[k].intercept, window,
                        sizeof window);
        pn_image img = {0}, all = {0};
        decode_matching(&cases[k].s, window, &img);
        /* DCMTK's own min-max keeps the padding in: the picture must differ. */
        int w, h;
        char *pgm = dcm_path("padded.minmax.pgm");
        assert_int_equal(dcm_run("dcm2pnm --no-overlays +Wm %s/%s.dcm %s", dcm_tmp, cases[k].s.name, pgm), 0);
        all.pixels = dcm_read_pgm(pgm, &w, &h);
        all.w = w;
        all.h = h;
        if (dcm_mean_abs_diff(&img, &all) < 1.0)
            fail_msg("%s: the padding made no difference to the window", cases[k].s.name);
        pn_image_free(&img);
        pn_image_free(&all);
    }
}

/* Each file of cases (min-max window) must match dcm2pnm and give back the X-ray. */
static void each_gives_the_xray(const dicom_spec *cases, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        pn_image img = {0};
        decode_matching(&cases[k], MINMAX, &img);
        double d = dcm_mean_abs_diff(&img, &dcm_base);
        if (d > 1.0)
            fail_msg("%s: mean difference %.2f from the source X-ray", cases[k].name, d);
        pn_image_free(&img);
    }
}

static void stored_bit_layouts(void **state)
{
    (void)state;
    static const dicom_spec cases[] = {
        {.name = "junk_high_bits_u12", .bits_stored = 12, .junk_high_bits = 1},
        {.name = "junk_high_bits_s12", .bits_stored = 12, .is_signed = 1, .junk_high_bits = 1},
        {.name = "high_bit_15", .bits_stored = 12, .high_bit = 15},
        {.name = "junk_high_bits_rle", .bits_stored = 10, .junk_high_bits = 1, .compress = "dcmcrle"},
    };
    each_gives_the_xray(cases, sizeof cases / sizeof *cases);
}

static void acr_nema_without_photometric(void **state)
{
    (void)state;
    static const dicom_spec s = {.name = "acr_nema", .bits_stored = 12, .acr_nema = 1, .dump2dcm_opts = "-F +ti"};
    pn_image img = {0};
    decode_matching(&s, "+Ma +Wm", &img);
    assert_true(dcm_mean_abs_diff(&img, &dcm_base) < 1.0);
    pn_image_free(&img);
}

/* Fragments of at most 8 KB: several per frame. DCMTK 3.6.7's one-frame RLE
 * decoder reads only a frame's first fragment, so these need the whole-image path. */
static void frames_split_over_fragments(void **state)
{
    (void)state;
    static const dicom_spec cases[] = {
        {.name = "frag_rle", .bits_stored = 16, .compress = "dcmcrle +fs 8"},
        {.name = "frag_rle_2frames", .bits_stored = 12, .frames = 2, .compress = "dcmcrle +fs 8"},
        {.name = "frag_jpeg_lossless", .bits_stored = 12, .compress = "dcmcjpeg +el +fs 8"},
        {.name = "frag_jpegls_2frames", .bits_stored = 12, .frames = 2, .compress = "dcmcjpls +el +fs 8"},
    };
    each_gives_the_xray(cases, sizeof cases / sizeof *cases);
}

/* A bare data set (no preamble, no meta header) whose Station Name lands at
 * offset 128 and reads "DICM...": DCMTK takes it for a Part 10 preamble and
 * fails; pneumo reads it again as a data set. */
static void dicm_inside_bare_dataset(void **state)
{
    (void)state;
    char extra[256];
    dicom_spec s = {.name = "dicm_at_128", .bits_stored = 12, .dump2dcm_opts = "-F +te", .extra = extra};
    for (int len = 2; len < 120; len += 2) { /* Institution Name long enough to push Station Name to 128 */
        snprintf(extra, sizeof extra, "(0008,0080) LO [%0*d]\n(0008,1010) SH [DICMA1]\n", len, 0);
        size_t n;
        uint8_t *d = dcm_slurp(dcm_make(&s), &n);
        int at_128 = n > 134 && !memcmp(d + 128, "DICMA1", 6);
        free(d);
        if (at_128) {
            pn_image img = {0};
            decode_matching(&s, "-f +Wm", &img);
            assert_true(dcm_mean_abs_diff(&img, &dcm_base) < 1.0);
            pn_image_free(&img);
            return;
        }
    }
    fail_msg("could not place Station Name at offset 128");
}

/* Modality and BodyPartExamined: which files the header says are not a chest radiograph. */
static void header_says_not_chest(void **state)
{
    (void)state;
    static const struct {
        const char *modality, *body_part, *view;
        const char *refusal; /* expected in not_chest, "" for none */
        int warned;          /* some acquisition warning expected */
    } cases[] = {
        {"CR", "CHEST", "PA", "", 0},
        {"DX", "THORAX", "AP", "", 0},
        {"RG", "CHEST", "PA", "", 0},
        {"DX", "CHEST_PA", "PA", "", 0},
        {"CR", "CHEST", "LL", "", 1},                   /* lateral: a warning only */
        {"OT", "CHEST", "PA", "", 1},                   /* a digitised film may be anything */
        {"", "CHEST", "PA", "", 1},                     /* Modality empty */
        {"DX", "PORTABLE", "AP", "", 1},                /* not a body part we know */
        {"CT", "CHEST", "", "DICOM Modality CT (computed tomography)", 1},
        {"MR", "", "", "DICOM Modality MR", 1},
        {"US", "", "", "DICOM Modality US", 1},
        {"NM", "WHOLE BODY", "", "DICOM Modality NM", 1},
        {"PT", "", "", "DICOM Modality PT", 1},
        {"MG", "BREAST", "MLO", "DICOM Modality MG (mammography)", 1},
        {"XA", "HEART", "", "DICOM Modality XA", 1},
        {"RF", "CHEST", "", "DICOM Modality RF", 1},
        {"DX", "KNEE", "AP", "DICOM BodyPartExamined KNEE is not the chest", 1},
        {"CR", "HAND LEFT", "PA", "DICOM BodyPartExamined HAND LEFT", 1},
        {"DX", "L-SPINE", "", "DICOM BodyPartExamined LSPINE", 1},
        {"CR", "EXTREMITY", "AP", "DICOM BodyPartExamined EXTREMITY", 1},
        {"RG", "BREAST", "MLO", "DICOM BodyPartExamined BREAST", 1},
        {"CR", "SKULL", "", "DICOM BodyPartExamined SKULL", 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        dicom_spec s = {.name = "header", .bits_stored = 8, .modality = cases[k].modality,
                        .body_part = cases[k].body_part, .view = cases[k].view};
        pn_image img = {0};
        pn_error err = {0};
        if (pn_image_decode_file(dcm_make(&s), 0, 0, &img, &err))
            fail_msg("%s/%s: %s", s.modality, s.body_part, err.msg);
        int refused = cases[k].refusal[0] != '\0';
        if (refused != (img.not_chest[0] != '\0') || !strstr(img.not_chest, cases[k].refusal))
            fail_msg("%s/%s/%s: not_chest \"%s\", expected \"%s\"", s.modality, s.body_part, s.view, img.not_chest,
                     cases[k].refusal);
        if ((img.n_notes > 0) != cases[k].warned)
            fail_msg("%s/%s/%s: %d warnings", s.modality, s.body_part, s.view, img.n_notes);
        pn_image_free(&img);
    }
}

static void corrupt_compressed_stream(void **state)
{
    (void)state;
    static const dicom_spec s = {.name = "corrupt_jpeg", .bits_stored = 12, .compress = "dcmcjpeg +el"};
    size_t n;
    uint8_t *d = dcm_slurp(dcm_make(&s), &n);
    uint8_t *soi = memmem(d + 132, n - 132, "\xFF\xD8\xFF", 3);
    assert_non_null(soi);
    size_t off = (size_t)(soi - d) + 2;
    memset(d + off, 0, n - off > 4000 ? 4000 : n - off); /* the frame header and the start of the scan */
    pn_image img = {0};
    pn_error err = {0};
    assert_int_equal(pn_image_decode_memory(d, n, "corrupt.dcm", 0, 0, &img, &err), PN_EFORMAT);
    if (!strstr(err.msg, "corrupt.dcm") || !strstr(err.msg, "cannot be decoded"))
        fail_msg("unclear error: %s", err.msg);
    assert_null(img.pixels);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(presentation_lut_shape),
        cmocka_unit_test(voi_lut_function_sigmoid),
        cmocka_unit_test(unusable_voi_passes_on),
        cmocka_unit_test(pixel_padding_left_out_of_minmax),
        cmocka_unit_test(stored_bit_layouts),
        cmocka_unit_test(acr_nema_without_photometric),
        cmocka_unit_test(frames_split_over_fragments),
        cmocka_unit_test(dicm_inside_bare_dataset),
        cmocka_unit_test(header_says_not_chest),
        cmocka_unit_test(corrupt_compressed_stream),
    };
    return dcm_run_tests("dicom_display", tests, sizeof tests / sizeof *tests);
}
