/* DICOM decoding against DCMTK's own renderer: every variant is made here,
 * from an X-ray in ../shared, with DCMTK's command-line tools (dump2dcm,
 * img2dcm, dcmodify, dcmcjpeg, dcmcjpls, dcmcrle) and must decode pixel-equal
 * to `dcm2pnm --no-overlays` (compressed files first decompressed by
 * dcmdjpeg/dcmdjpls/dcmdrle, as dcm2pnm reads only uncompressed ones) with the windowing docs/input-formats.md
 * documents (first VOI LUT, else first window, else min-max). Then malformed
 * files made from those: each must be a clear error, never a crash. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicom_fixture.h"

/* ----------------------------------------------------------------- tests */

static const dicom_spec variants[] = {
    {.name = "u8", .bits_stored = 8, .dcm2pnm_window = MINMAX},
    {.name = "u10", .bits_stored = 10, .dcm2pnm_window = MINMAX},
    {.name = "u12", .bits_stored = 12, .dcm2pnm_window = MINMAX},
    {.name = "u16", .bits_stored = 16, .dcm2pnm_window = MINMAX},
    {.name = "s8", .bits_stored = 8, .is_signed = 1, .dcm2pnm_window = MINMAX},
    {.name = "s10", .bits_stored = 10, .is_signed = 1, .dcm2pnm_window = MINMAX},
    {.name = "s12", .bits_stored = 12, .is_signed = 1, .dcm2pnm_window = MINMAX},
    {.name = "s16", .bits_stored = 16, .is_signed = 1, .dcm2pnm_window = MINMAX},
    {.name = "mono1_u12", .bits_stored = 12, .photometric = "MONOCHROME1", .dcm2pnm_window = MINMAX},
    {.name = "mono1_s16_window", .bits_stored = 16, .is_signed = 1, .photometric = "MONOCHROME1",
     .window = "-1000 40000", .dcm2pnm_window = WINDOW1},
    {.name = "rescale_window", .bits_stored = 12, .rescale = "2 -1024", .window = "2500 5000",
     .dcm2pnm_window = WINDOW1},
    {.name = "rescale_minmax", .bits_stored = 12, .is_signed = 1, .rescale = "0.5 100",
     .dcm2pnm_window = MINMAX},
    {.name = "two_windows", .bits_stored = 12, .window = "2048\\1500 4096\\1000", .dcm2pnm_window = WINDOW1},
    {.name = "voi_lut", .bits_stored = 12, .voi_lut = 1, .window = "1000 500", .dcm2pnm_window = VOILUT1},
    {.name = "voi_lut_s10", .bits_stored = 10, .is_signed = 1, .voi_lut = 1, .dcm2pnm_window = VOILUT1},
    {.name = "implicit_le", .bits_stored = 12, .dump2dcm_opts = "+ti", .dcm2pnm_window = MINMAX},
    {.name = "big_endian", .bits_stored = 12, .dump2dcm_opts = "+tb", .dcm2pnm_window = MINMAX},
    {.name = "deflated", .bits_stored = 12, .dump2dcm_opts = "+td", .dcm2pnm_window = MINMAX},
    {.name = "no_meta_implicit", .bits_stored = 12, .dump2dcm_opts = "-F +ti", .dcm2pnm_window = MINMAX},
    {.name = "no_meta_explicit", .bits_stored = 16, .dump2dcm_opts = "-F +te", .dcm2pnm_window = MINMAX},
    {.name = "jpeg_baseline", .bits_stored = 8, .compress = "dcmcjpeg +eb", .lossy = 1, .dcm2pnm_window = MINMAX},
    {.name = "jpeg_extended", .bits_stored = 12, .compress = "dcmcjpeg +ee", .lossy = 1, .dcm2pnm_window = MINMAX},
    {.name = "jpeg_lossless_sv1", .bits_stored = 16, .compress = "dcmcjpeg +e1", .dcm2pnm_window = MINMAX},
    {.name = "jpeg_lossless", .bits_stored = 12, .window = "2000 3000", .compress = "dcmcjpeg +el",
     .dcm2pnm_window = WINDOW1},
    {.name = "jpegls_lossless", .bits_stored = 12, .compress = "dcmcjpls +el", .dcm2pnm_window = MINMAX},
    {.name = "jpegls_near", .bits_stored = 16, .compress = "dcmcjpls +en", .lossy = 1, .dcm2pnm_window = MINMAX},
    {.name = "rle_u16", .bits_stored = 16, .compress = "dcmcrle", .dcm2pnm_window = MINMAX},
    {.name = "rle_s12", .bits_stored = 12, .is_signed = 1, .compress = "dcmcrle", .dcm2pnm_window = MINMAX},
    {.name = "multiframe", .bits_stored = 12, .frames = 3, .dcm2pnm_window = MINMAX},
    {.name = "multiframe_rle", .bits_stored = 12, .frames = 2, .compress = "dcmcrle", .dcm2pnm_window = MINMAX},
    {.name = "modality_ct", .bits_stored = 12, .modality = "CT", .dcm2pnm_window = MINMAX},
    {.name = "lateral", .bits_stored = 12, .modality = "CR", .view = "LL", .dcm2pnm_window = MINMAX},
    {.name = "knee", .bits_stored = 12, .body_part = "KNEE", .dcm2pnm_window = MINMAX},
};

static void every_variant_matches_dcm2pnm(void **state)
{
    pn_image u12 = {0};
    for (size_t k = 0; k < sizeof variants / sizeof *variants; k++) {
        const dicom_spec *s = &variants[k];
        pn_image img = {0};
        dcm_assert_matches(dcm_make(s), s->compress, s->dcm2pnm_window, &img);
        int expect_frames_note = s->frames > 1;
        int expect_modality_note = s->modality && strcmp(s->modality, "CR");
        int expect_view_note = s->view || s->body_part;
        if (dcm_has_note(&img, "multi-frame") != expect_frames_note ||
            dcm_has_note(&img, "Modality") != expect_modality_note ||
            dcm_has_note(&img, "not a frontal chest") != expect_view_note)
            fail_msg("%s: unexpected warnings (%d): %s", s->name, img.n_notes, img.n_notes ? img.notes[0] : "");
        /* The header refuses a CT and a knee, not a lateral chest (a warning only). */
        const char *refusal = !strcmp(s->name, "modality_ct") ? "DICOM Modality CT (computed tomography)"
                              : !strcmp(s->name, "knee")      ? "DICOM BodyPartExamined KNEE"
                                                              : NULL;
        if (refusal ? !strstr(img.not_chest, refusal) : img.not_chest[0] != '\0')
            fail_msg("%s: not_chest is \"%s\"", s->name, img.not_chest);
        /* Beyond agreeing with dcm2pnm, the picture must be the X-ray: the
         * linear min-max variants give back the base image, MONOCHROME1 its
         * negative (bone stays white once inverted for display). */
        if (!strcmp(s->dcm2pnm_window, MINMAX) && !s->photometric) {
            double d = dcm_mean_abs_diff(&img, &dcm_base);
            if (d > (s->lossy ? 3.0 : 1.0))
                fail_msg("%s: mean difference %.2f from the source X-ray", s->name, d);
        }
        if (!strcmp(s->name, "mono1_u12")) {
            for (size_t i = 0; i < (size_t)img.w * img.h; i++)
                if (abs(img.pixels[i] + u12.pixels[i] - 255) > 1)
                    fail_msg("MONOCHROME1 is not the negative of MONOCHROME2 at pixel %zu", i);
        }
        if (!strcmp(s->name, "u12"))
            u12 = img; /* kept for the MONOCHROME1 check that follows */
        else
            pn_image_free(&img);
    }
    pn_image_free(&u12);
}

/* The first window is the documented choice: the second must differ. */
static void first_window_is_used(void **state)
{
    const dicom_spec *s = NULL;
    for (size_t k = 0; k < sizeof variants / sizeof *variants; k++)
        if (!strcmp(variants[k].name, "two_windows"))
            s = &variants[k];
    pn_image img = {0}, second = {0};
    dcm_assert_matches(dcm_make(s), NULL, WINDOW1, &img);
    char pgm[4096];
    snprintf(pgm, sizeof pgm, "%s/two_windows.second.pgm", dcm_tmp);
    assert_int_equal(dcm_run("dcm2pnm --no-overlays +Wi 2 %s/two_windows.dcm %s", dcm_tmp, pgm), 0);
    int w, h;
    second.pixels = dcm_read_pgm(pgm, &w, &h);
    second.w = w;
    second.h = h;
    assert_true(dcm_mean_abs_diff(&img, &second) > 5.0);
    pn_image_free(&img);
    pn_image_free(&second);
}

/* img2dcm wraps the JPEG itself (JPEG baseline transfer syntax); full-size
 * original too. */
static void img2dcm_files_match(void **state)
{
    const char *shared = pn_test_shared_dir();
    char orig[4096];
    snprintf(orig, sizeof orig, "%s/data/samples_orig/NORMAL/IM-0117-0001.jpeg", shared);
    const char *sources[] = {dcm_base_path, orig};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && access(orig, R_OK) != 0)
            continue;
        char *out = dcm_path(k ? "img2dcm_orig.dcm" : "img2dcm.dcm");
        assert_int_equal(dcm_run("img2dcm %s %s", sources[k], out), 0);
        assert_int_equal(dcm_run("dcmodify -nb -i \"(0008,0060)=DX\" -i \"(0010,0010)=%s\" %s", DCM_PATIENT_NAME,
                                 out), 0);
        pn_image img = {0}, jpeg = {0};
        dcm_assert_matches(out, "dcmcjpeg", MINMAX, &img);
        assert_int_equal(img.n_notes, 0);
        pn_error err = {0};
        assert_int_equal(pn_image_decode_file(sources[k], 0, 0, &jpeg, &err), PN_OK);
        assert_true(dcm_mean_abs_diff(&img, &jpeg) < 2.0);
        pn_image_free(&img);
        pn_image_free(&jpeg);
    }
}

/* ------------------------------------------------------------ malformed */

static void expect_error(const char *what, const void *data, size_t n, pn_status code, const char *text)
{
    pn_image img = {0};
    pn_error err = {0};
    pn_status st = pn_image_decode_memory(data, n, what, 0, 0, &img, &err);
    if (st == PN_OK)
        fail_msg("%s: decoded (%dx%d) instead of an error", what, img.w, img.h);
    assert_null(img.pixels);
    if ((code && st != code) || !strstr(err.msg, what) || (text && !strstr(err.msg, text)))
        fail_msg("%s: status %d, message \"%s\" (want %d, \"%s\")", what, st, err.msg, code, text ? text : "");
    dcm_assert_no_patient_data(err.msg);
}

static void expect_file_error(const char *what, const char *path, pn_status code, const char *text)
{
    size_t n;
    uint8_t *d = dcm_slurp(path, &n);
    expect_error(what, d, n, code, text);
    free(d);
}

/* Overwrites the 2-byte (short VR) or 4-byte (long VR) length of the first
 * explicit little endian element tag+vr. */
static void patch_length(uint8_t *d, size_t n, const char *tag_vr, uint32_t length)
{
    uint8_t *e = memmem(d, n, tag_vr, 6);
    assert_non_null(e);
    int long_vr = !memcmp(tag_vr + 4, "OB", 2) || !memcmp(tag_vr + 4, "OW", 2) || !memcmp(tag_vr + 4, "SQ", 2);
    if (long_vr)
        memcpy(e + 8, &length, 4);
    else {
        uint16_t l16 = (uint16_t)length;
        memcpy(e + 6, &l16, 2);
    }
}

static void malformed_files_are_clear_errors(void **state)
{
    static const dicom_spec good = {.name = "bad_base", .bits_stored = 12, .dcm2pnm_window = MINMAX};
    const char *path = dcm_make(&good);
    size_t n;
    uint8_t *d = dcm_slurp(path, &n);

    size_t cuts[] = {n / 2, n - 1, 300, 140, 131};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated-%zu.dcm", cuts[i]);
        expect_error(what, d, cuts[i], 0, "DICOM");
    }
    uint8_t *m = malloc(n);
    assert_non_null(m);
    memcpy(m, d, n);
    patch_length(m, n, "\x28\x00\x10\x00US", 0xFFF0); /* Rows longer than the file */
    expect_error("rows-length.dcm", m, n, PN_EFORMAT, "DICOM");
    memcpy(m, d, n);
    patch_length(m, n, "\x28\x00\x10\x00US", 1);      /* odd, too short for a US */
    expect_error("rows-length1.dcm", m, n, PN_EFORMAT, "DICOM");
    memcpy(m, d, n);
    patch_length(m, n, "\xe0\x7f\x10\x00OW", 0x7FFFFFF0u);
    expect_error("pixel-length.dcm", m, n, PN_EFORMAT, "DICOM");
    memcpy(m, d, n);
    patch_length(m, n, "\xe0\x7f\x10\x00OW", 1000);   /* pixel data shorter than Rows x Columns */
    expect_error("pixel-short.dcm", m, 1000 + (size_t)((uint8_t *)memmem(m, n, "\xe0\x7f\x10\x00OW", 6) - m) + 12,
                 PN_EFORMAT, "pixel data");
    memcpy(m, d, n);
    memset(m + 132, 0xA5, n - 132);                   /* garbage after the DICM magic */
    expect_error("garbage.dcm", m, n, 0, "DICOM");
    free(m);
    free(d);

    static const dicom_spec huge = {.name = "huge", .bits_stored = 8, .rows = 60000, .cols = 60000,
                                    .dcm2pnm_window = MINMAX};
    expect_file_error("huge.dcm", dcm_make(&huge), PN_ELIMIT, "pixel limit");
    static const dicom_spec large = {.name = "large", .bits_stored = 16, .rows = 20000, .cols = 6000,
                                     .dcm2pnm_window = MINMAX};
    expect_file_error("large.dcm", dcm_make(&large), PN_ELIMIT, "pixel limit");
    static const dicom_spec no_pixels = {.name = "no_pixels", .bits_stored = 12, .pixel_bytes = -1,
                                         .dcm2pnm_window = MINMAX};
    expect_file_error("no_pixels.dcm", dcm_make(&no_pixels), PN_EFORMAT, "no pixel data");
    static const dicom_spec short_pixels = {.name = "short_pixels", .bits_stored = 12, .pixel_bytes = 5000,
                                            .dcm2pnm_window = MINMAX};
    expect_file_error("short_pixels.dcm", dcm_make(&short_pixels), PN_EFORMAT, "pixel data");

    /* A JPEG-LS stream cut short. */
    static const dicom_spec jls = {.name = "cut_jpegls", .bits_stored = 12, .compress = "dcmcjpls +el",
                                   .dcm2pnm_window = MINMAX};
    d = dcm_slurp(dcm_make(&jls), &n);
    expect_error("cut_jpegls.dcm", d, n * 3 / 4, 0, "DICOM");
    free(d);

    /* JPEG 2000 has no decoder here: the img2dcm file relabelled as .90. */
    char *jp = dcm_path("j2k.dcm");
    assert_int_equal(dcm_run("img2dcm %s %s", dcm_base_path, jp), 0);
    d = dcm_slurp(jp, &n);
    uint8_t *ts;
    int relabelled = 0;
    while ((ts = memmem(d, n, "1.2.840.10008.1.2.4.50", 22))) {
        ts[20] = '9';
        relabelled++;
    }
    assert_true(relabelled >= 1);
    expect_error("j2k.dcm", d, n, PN_EUNSUPPORTED, "unsupported transfer syntax");
    /* A transfer syntax DCMTK does not know at all (as HTJ2K is to 3.6.7). */
    while ((ts = memmem(d, n, "1.2.840.10008.1.2.4.90", 22)))
        ts[21] = '9';
    expect_error("unknown-ts.dcm", d, n, PN_EUNSUPPORTED, "unsupported transfer syntax: 1.2.840.10008.1.2.4.99");
    free(d);
}

/* pn_image_probe reads Rows, Columns, Bits Stored and Samples per Pixel with
 * no pixel rendered (the server's decode budget), for plain and compressed
 * files, and refuses what the decoder refuses from the header. */
static void probe_reads_the_header(void **state)
{
    static const dicom_spec specs[] = {
        {.name = "probe_u12", .bits_stored = 12, .dcm2pnm_window = MINMAX},
        {.name = "probe_u16_rows", .bits_stored = 16, .rows = 40, .cols = 30, .pixel_bytes = 40 * 30 * 2,
         .dcm2pnm_window = MINMAX},
        {.name = "probe_jpegls", .bits_stored = 12, .compress = "dcmcjpls +el", .dcm2pnm_window = MINMAX},
        {.name = "probe_no_meta", .bits_stored = 8, .dump2dcm_opts = "-F +ti", .dcm2pnm_window = MINMAX},
    };
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        size_t n;
        uint8_t *d = dcm_slurp(dcm_make(&specs[k]), &n);
        pn_image_info info;
        pn_error err = {0};
        if (pn_image_probe(d, n, specs[k].name, &info, &err))
            fail_msg("%s: %s", specs[k].name, err.msg);
        assert_string_equal(info.format, "DICOM");
        assert_int_equal(info.w, specs[k].cols ? specs[k].cols : dcm_base.w);
        assert_int_equal(info.h, specs[k].rows ? specs[k].rows : dcm_base.h);
        assert_int_equal(info.bit_depth, specs[k].bits_stored);
        assert_int_equal(info.channels, 1);
        free(d);
    }
    static const dicom_spec huge = {.name = "probe_huge", .bits_stored = 8, .rows = 60000, .cols = 60000,
                                    .dcm2pnm_window = MINMAX};
    static const dicom_spec no_pixels = {.name = "probe_no_pixels", .bits_stored = 12, .pixel_bytes = -1,
                                         .dcm2pnm_window = MINMAX};
    const dicom_spec *bad[] = {&huge, &no_pixels};
    pn_status want[] = {PN_ELIMIT, PN_EFORMAT};
    for (int k = 0; k < 2; k++) {
        size_t n;
        uint8_t *d = dcm_slurp(dcm_make(bad[k]), &n);
        pn_image_info info;
        pn_error err = {0};
        assert_int_equal(pn_image_probe(d, n, bad[k]->name, &info, &err), want[k]);
        dcm_assert_no_patient_data(err.msg);
        free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_variant_matches_dcm2pnm),
        cmocka_unit_test(first_window_is_used),
        cmocka_unit_test(img2dcm_files_match),
        cmocka_unit_test(malformed_files_are_clear_errors),
        cmocka_unit_test(probe_reads_the_header),
    };
    return dcm_run_tests("dicom", tests, sizeof tests / sizeof *tests);
}
