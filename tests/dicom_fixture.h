/* DICOM test files made with DCMTK's command-line tools from an X-ray in
 * ../shared, and the comparison with DCMTK's own renderer dcm2pnm: shared by
 * tests/test_data_dicom*.c. */
#ifndef PNEUMO_TESTS_DICOM_FIXTURE_H
#define PNEUMO_TESTS_DICOM_FIXTURE_H

#include "pneumo/data.h"
#include "testutil.h"

/* Planted in every generated file: no message or warning may contain them. */
#define DCM_PATIENT_NAME "Doe^Jane"
#define DCM_PATIENT_ID "PID-98765"

/* dcm2pnm's VOI options for the three documented window sources. */
#define MINMAX "+Wm"
#define WINDOW1 "+Wi 1"
#define VOILUT1 "+Wl 1"

typedef struct dicom_spec {
    const char *name;
    int bits_stored, is_signed;
    const char *photometric;     /* NULL: MONOCHROME2 */
    const char *modality;        /* NULL: DX */
    const char *body_part, *view;/* NULL: CHEST, PA */
    const char *rescale;         /* "slope intercept" or NULL */
    const char *window;          /* "centers widths" as DS strings, or NULL */
    int voi_lut;                 /* add a VOI LUT Sequence (a gamma curve) */
    int frames;                  /* 0/1: single frame */
    int rows, cols;              /* 0: the base image's size (pixel data is then sized to match) */
    int pixel_bytes;             /* > 0: write only this many pixel bytes; -1: no pixel data */
    const char *dump2dcm_opts;   /* e.g. "+ti", "+tb", "-F +ti" */
    const char *compress;        /* a command taking IN OUT, e.g. "dcmcjpeg +el" */
    int lossy;                   /* the compression loses detail */
    const char *dcm2pnm_window;  /* what docs/input-formats.md says applies */
    /* Display-pipeline quirks (test_data_dicom_display.c). */
    const char *extra;           /* more dump2dcm lines, e.g. "(2050,0020) CS [INVERSE]\n" */
    int high_bit;                /* 0: bits_stored - 1 */
    int junk_high_bits;          /* set the bits above High Bit in every other pixel */
    int pad_rows, pad_value;     /* the first pad_rows rows hold the stored value pad_value */
    int range_bits;              /* the image spans only this many bits of bits_stored (0: all) */
    int acr_nema;                /* no Photometric Interpretation, no Samples per Pixel */
} dicom_spec;

/* Set by dcm_setup: a scratch directory, the X-ray every variant is made from and its path. */
extern const char *dcm_tmp;
extern pn_image dcm_base;
extern char dcm_base_path[4096];

/* Finds the base X-ray and DCMTK's tools, then runs the n tests: main's exit
 * status (PN_TEST_SKIP, saying why, when the X-ray or a tool is missing). */
int dcm_run_tests(const char *group, const struct CMUnitTest *tests, size_t n);

/* Runs a shell command (output appended to TMP/tools.log); its status. */
int dcm_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* TMP/name (eight rotating buffers). */
char *dcm_path(const char *name);
/* The stored value for base pixel v (0..255) in s's bit depth (or
 * range_bits); frame 1 and later are inverted so a wrong frame is visible. */
int dcm_stored_value(const dicom_spec *s, int v, int frame);
/* Writes the DICOM file for s as TMP/<name>.dcm and returns its path. */
const char *dcm_make(const dicom_spec *s);

/* A PGM, or a PPM turned into BT.601 luminance. */
uint8_t *dcm_read_pgm(const char *path, int *w, int *h);
uint8_t *dcm_slurp(const char *path, size_t *n);
void dcm_assert_no_patient_data(const char *text);
int dcm_has_note(const pn_image *img, const char *text);
double dcm_mean_abs_diff(const pn_image *a, const pn_image *b);

/* Decodes path with pneumo into img and with `dcm2pnm --no-overlays WINDOW`
 * (after DCMTK's decompressor for the codec `compress` that made it, if
 * any); every pixel must be equal. */
void dcm_assert_matches(const char *path, const char *compress, const char *window, pn_image *img);

#endif
