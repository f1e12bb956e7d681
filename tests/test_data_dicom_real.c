/* Real DICOM files from public test collections, read from local git
 * mirrors of their repositories (nothing is copied into this tree: their
 * licences are the repositories' own, or unstated for the images). Each must
 * decode pixel-equal to dcm2pnm with the window docs/input-formats.md names
 * for it, with the expected header verdict (img.not_chest) and warnings, or
 * be refused with the expected message.
 *
 * Mirrors: $PNEUMO_MIRROR_DIR/<owner>+<name>/repo (a bare git directory; the
 * default /work/.mirror is where this project's tooling fetches them). The
 * test skips when none of the repositories is there, and says which are
 * missing otherwise. Files over 4 MB are not in the mirrors (RG1_UNC, ...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicom_fixture.h"

typedef struct real_file {
    const char *path;   /* below the collection's folder */
    const char *codec;  /* the compressor family whose DCMTK decompressor dcm2pnm needs first, or NULL */
    const char *window; /* dcm2pnm options of the documented window; NULL: the file must be refused */
    const char *expect; /* with a window: a substring of not_chest ("" none); else of the error */
    const char *note;   /* a warning that must be there, or NULL */
} real_file;

#define PYDICOM "pydicom+pydicom", "src/pydicom/data/test_files/"
#define PYDATA "pydicom+pydicom-data", "data_store/data/"
#define WG04 "robyoung+dicom-test-files", "data/WG04/"
#define FODICOM "fo-dicom+fo-dicom", "Tests/FO-DICOM.Tests/Test Data/"
#define DWV "ivmartel+dwv", "tests/data/"
#define ZAKI "notZaki+DICOMSamples", "DICOMSamples/"
#define HIGHDICOM "ImagingDataCommons+highdicom", "data/test_files/"
#define DCM4CHE "dcm4che+dcm4che", "dcm4che-test-data/src/main/resources/"
#define CT1_UNPADDED "+Ww 115.5 2279 +Wfl" /* min-max of WG04 CT1 without its padding -2000: -1024..1254 HU */
#define UNUSABLE_WINDOW "Window Center/Width unusable"

static const struct {
    const char *repo, *dir;
    real_file f;
} files[] = {
    /* pydicom (MIT): NEMA WG04, Barre, D. Clunie and GDCM samples, downsized */
    {PYDICOM, {"CT_small.dcm", NULL, MINMAX, "Modality CT", NULL}}, /* TIFF header in the preamble */
    {PYDICOM, {"MR_small_bigendian.dcm", NULL, WINDOW1, "Modality MR", NULL}},
    {PYDICOM, {"MR_small_implicit.dcm", NULL, WINDOW1, "Modality MR", NULL}},
    {PYDICOM, {"MR_small_RLE.dcm", NULL, WINDOW1, "Modality MR", NULL}},
    {PYDICOM, {"MR_small_jpeg_ls_lossless.dcm", "dcmcjpls", WINDOW1, "Modality MR", NULL}},
    {PYDICOM, {"JPGExtended.dcm", "dcmcjpeg", MINMAX, "Modality NM", NULL}},
    {PYDICOM, {"image_dfl.dcm", NULL, MINMAX, "", "Modality is OT"}}, /* deflated */
    {PYDICOM, {"ExplVR_BigEnd.dcm", NULL, MINMAX, "Modality US", NULL}}, /* RGB, big endian */
    {PYDICOM, {"SC_rgb_jpeg_dcmtk.dcm", "dcmcjpeg", MINMAX, "", NULL}}, /* YBR_FULL JPEG */
    {PYDICOM, {"SC_ybr_full_422_uncompressed.dcm", NULL, MINMAX, "", NULL}},
    {PYDICOM, {"examples_palette.dcm", NULL, MINMAX, "Modality US", NULL}},
    {PYDICOM, {"examples_overlay.dcm", NULL, WINDOW1, "Modality MR", NULL}}, /* overlay not drawn */
    {PYDICOM, {"liver_1frame.dcm", NULL, MINMAX, "Modality SEG", NULL}},     /* 1 bit */
    {PYDICOM, {"dicomdirtests/77654033/CR1/6154", NULL, WINDOW1, "BodyPartExamined CSPINE", NULL}}, /* CR MONOCHROME1 */
    {PYDICOM, {"JPEG2000.dcm", NULL, NULL, "unsupported transfer syntax: JPEG 2000", NULL}},
    {PYDICOM, {"dicomdirtests/DICOMDIR", NULL, NULL, "no pixel data", NULL}},
    {PYDICOM, {"MR_truncated.dcm", NULL, NULL, "corrupt or truncated", NULL}},
    /* pydicom-data (MIT): IHE MESA display tests, palette, multi-frame */
    {PYDATA, {"vlut_04.dcm", NULL, VOILUT1, "", NULL}},
    {PYDATA, {"mlut_18.dcm", NULL, MINMAX, "", NULL}}, /* Modality LUT Sequence */
    {PYDATA, {"OBXXXX1A_rle.dcm", NULL, MINMAX, "Modality US", NULL}},
    {PYDATA, {"emri_small_jpeg_ls_lossless.dcm", "dcmcjpls", MINMAX, "Modality MR", "multi-frame"}},
    {PYDATA, {"JLSL_08_07_0_1F.dcm", NULL, NULL, "JPEG-LS Lossless pixel data cannot be decoded", NULL}},
    {PYDATA, {"liver_rle.dcm", NULL, NULL, "RLE Lossless pixel data cannot be decoded", NULL}},
    {PYDATA, {"HTJ2KLossless_08_RGB.dcm", NULL, NULL, "unsupported transfer syntax: 1.2.840.10008.1.2.4.201",
              NULL}},
    /* NEMA WG04 compression test images: real CR radiographs (RG1 chest, RG2
     * hip, RG3 leg), CT with pixel padding */
    {WG04, {"JLSN/RG1_JLSN", "dcmcjpls", WINDOW1, "", NULL}},
    {WG04, {"JPLL/RG2_JPLL", "dcmcjpeg", WINDOW1, "BodyPartExamined HIP", NULL}},
    {WG04, {"RLE/RG3_RLE", NULL, WINDOW1, "BodyPartExamined EXTREMITY", NULL}},
    {WG04, {"JPLL/CT1_JPLL", "dcmcjpeg", CT1_UNPADDED, "Modality CT", NULL}},
    {WG04, {"RLE/CT1_RLE", NULL, CT1_UNPADDED, "Modality CT", NULL}},
    {WG04, {"JLSL/XA1_JLSL", "dcmcjpls", MINMAX, "Modality XA", NULL}},
    {WG04, {"RLE/US1_RLE", NULL, MINMAX, "Modality US", NULL}},
    {WG04, {"J2KR/RG3_J2KR", NULL, NULL, "unsupported transfer syntax: JPEG 2000", NULL}},
    /* fo-dicom (MS-PL): bug reports' files, Barre's CR chest */
    {FODICOM, {"CR-MONO1-10-chest", NULL, WINDOW1, "", NULL}}, /* no meta header */
    {FODICOM, {"CR-ModalitySequenceLUT.dcm", "dcmcjpeg", MINMAX, "", NULL}},
    {FODICOM, {"D_CLUNIE_CT1_RLE_FRAGS.dcm", NULL, CT1_UNPADDED, "Modality CT", NULL}},
    {FODICOM, {"GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm", NULL, CT1_UNPADDED, "Modality CT",
               NULL}},
    {FODICOM, {"GH1261.dcm", "dcmcjpeg", "+Wm +Wfl", "Modality MR", UNUSABLE_WINDOW}}, /* width 0 */
    {FODICOM, {"RI6XDosiGap.dcm", NULL, "+Wm +Wfl", "Modality RTIMAGE", UNUSABLE_WINDOW}}, /* width 0.21 */
    {FODICOM, {"GH133.dcm", "dcmcjpeg", VOILUT1, "Modality MG", NULL}}, /* VOI LUT and SIGMOID */
    {FODICOM, {"GH340.dcm", NULL, "+Ma +Wi 1", "Modality MR", NULL}},   /* ACR-NEMA, 12 bits allocated */
    {FODICOM, {"MOVEKNEE.dcm", NULL, MINMAX, "Modality MR", "multi-frame"}},
    {FODICOM, {"HasFragmentSequence.dcm", "dcmcjpeg", MINMAX, "Modality XA", "multi-frame"}},
    {FODICOM, {"TestPattern_Palette_16.dcm", NULL, MINMAX, "", NULL}},
    {FODICOM, {"genFile.dcm", NULL, NULL, "JPEG Baseline pixel data cannot be decoded", NULL}},
    /* dwv (GPL-3): GDCM, LEADTOOLS and OsiriX samples */
    {DWV, {"leadtools-8BitsJpegLossyGrayScale.dcm", "dcmcjpeg", "+Wm +Wfl", "", "VOI LUT Sequence unusable"}},
    {DWV, {"gdcm-CR-MONO1-10-chest.dcm", NULL, WINDOW1, "", NULL}},
    {DWV, {"osirix-goudurix.dcm", NULL, WINDOW1, "Modality CT", NULL}},
    /* DICOMSamples (no licence stated): Barre's collection */
    {ZAKI, {"CT_Implicit_Little_Headless_Retired.dcm", NULL, "+Ma +Wi 1", "Modality CT", NULL}},
    {ZAKI, {"OT_Implicit_Little_Headless.dcm", NULL, MINMAX, "", NULL}},
    {ZAKI, {"US_Explicit_Big_RGB.dcm", NULL, MINMAX, "Modality US", NULL}},
    /* highdicom (MIT): a small DX chest, MONOCHROME1 with Presentation LUT Shape INVERSE */
    {HIGHDICOM, {"dx_image.dcm", NULL, WINDOW1, "", NULL}},
    /* dcm4che (MPL 1.1) */
    {DCM4CHE, {"no_preamble_dicm_in_data", NULL, NULL, "no pixel data", NULL}}, /* "DICM" at 128, no preamble */
    {DCM4CHE, {"test16signed.dcm", NULL, WINDOW1, "", NULL}},
    {DCM4CHE, {"US-PAL-8-10x-echo", NULL, MINMAX, "Modality US", "multi-frame"}}, /* palette, RLE */
};

static const char *mirror_root(void)
{
    const char *env = getenv("PNEUMO_MIRROR_DIR");
    return env && *env ? env : "/work/.mirror";
}

static int have_repo(const char *repo)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s/repo", mirror_root(), repo);
    return access(dir, R_OK) == 0;
}

/* The file at HEAD of the mirror, copied to TMP/real-<k>; NULL when git cannot give it. */
static const char *extract(size_t k, const char *repo, const char *dir, const char *path)
{
    static char out[4096];
    snprintf(out, sizeof out, "%s/real-%zu", dcm_tmp, k);
    if (dcm_run("(git --git-dir='%s/%s/repo' show 'HEAD:%s%s' > '%s')", mirror_root(), repo, dir, path, out))
        return NULL;
    return out;
}

static void check_file(const real_file *f, const char *local, const char *label)
{
    pn_image img = {0};
    if (!f->window) {
        pn_error err = {0};
        if (pn_image_decode_file(local, 0, 0, &img, &err) == PN_OK)
            fail_msg("%s: decoded instead of refused", label);
        if (!strstr(err.msg, f->expect))
            fail_msg("%s: error \"%s\", expected \"%s\"", label, err.msg, f->expect);
        return;
    }
    dcm_assert_matches(local, f->codec, f->window, &img);
    if (!strstr(img.not_chest, f->expect) || (!f->expect[0] && img.not_chest[0]))
        fail_msg("%s: not_chest \"%s\", expected \"%s\"", label, img.not_chest, f->expect);
    if (f->note && !dcm_has_note(&img, f->note))
        fail_msg("%s: no warning \"%s\" (%d warnings)", label, f->note, img.n_notes);
    pn_image_free(&img);
}

static void real_files_match_dcm2pnm(void **state)
{
    (void)state;
    int tested = 0;
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        if (!have_repo(files[k].repo))
            continue;
        const char *local = extract(k, files[k].repo, files[k].dir, files[k].f.path);
        if (!local)
            fail_msg("%s: %s%s is not in the mirror", files[k].repo, files[k].dir, files[k].f.path);
        char label[512];
        snprintf(label, sizeof label, "%s:%s", files[k].repo, files[k].f.path);
        check_file(&files[k].f, local, label);
        tested++;
    }
    fprintf(stderr, "%d real files checked\n", tested);
}

int main(void)
{
    if (system("command -v git dcm2pnm dcmdjpeg dcmdjpls >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: git or DCMTK's tools missing\n");
        return PN_TEST_SKIP;
    }
    int present = 0;
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        if (have_repo(files[k].repo))
            present++;
        else if (k == 0 || strcmp(files[k].repo, files[k - 1].repo))
            fprintf(stderr, "%s: no mirror of %s (owner+name of a GitHub repository)\n", mirror_root(),
                    files[k].repo);
    }
    if (!present) {
        fprintf(stderr, "skipped: no mirror of the public DICOM test collections under %s\n", mirror_root());
        return PN_TEST_SKIP;
    }
    dcm_tmp = pn_test_tmpdir();
    const struct CMUnitTest tests[] = {cmocka_unit_test(real_files_match_dcm2pnm)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
