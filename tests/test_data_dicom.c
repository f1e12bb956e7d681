/* DICOM decoding against DCMTK's own renderer: every variant is made here,
 * from an X-ray in ../shared, with DCMTK's command-line tools (dump2dcm,
 * img2dcm, dcmodify, dcmcjpeg, dcmcjpls, dcmcrle) and must decode pixel-equal
 * to `dcm2pnm --no-overlays` (compressed files first decompressed by
 * dcmdjpeg/dcmdjpls/dcmdrle, as dcm2pnm reads only uncompressed ones) with the windowing docs/input-formats.md
 * documents (first VOI LUT, else first window, else min-max). Then malformed
 * files made from those: each must be a clear error, never a crash. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pneumo/data.h"
#include "testutil.h"

/* Planted in every generated file: no message or warning may contain them. */
#define PATIENT_NAME "Doe^Jane"
#define PATIENT_ID "PID-98765"

static const char *tmp;
static char base_path[4096];
static pn_image base; /* the X-ray every variant is made from */

static int run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd - 40);
    snprintf(cmd + n, sizeof cmd - n, " >>%s/tools.log 2>&1", tmp);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static char *path_in_tmp(const char *name)
{
    static char paths[8][4096];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", tmp, name);
    return p;
}

/* ------------------------------------------------------------ generators */

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
} dicom_spec;

/* The stored value for base pixel v (0..255) in a bits_stored image; frame 1
 * and later are inverted so a wrong frame is visible. */
static int stored_value(const dicom_spec *s, int v, int frame)
{
    if (frame > 0)
        v = 255 - v;
    long max = (1L << s->bits_stored) - 1;
    long u = (v * max + 127) / 255;
    return (int)(s->is_signed ? u - (1L << (s->bits_stored - 1)) : u);
}

static void write_pixels(const dicom_spec *s, const char *path, int *bits_allocated)
{
    int w = base.w, h = base.h, frames = s->frames > 1 ? s->frames : 1;
    int bytes = s->bits_stored > 8 ? 2 : 1;
    *bits_allocated = 8 * bytes;
    size_t n = (size_t)w * h * frames * bytes;
    uint8_t *raw = malloc(n); /* frames x h x w x bytes, little endian */
    assert_non_null(raw);
    for (int f = 0; f < frames; f++)
        for (size_t i = 0; i < (size_t)w * h; i++) {
            int value = stored_value(s, base.pixels[i], f);
            uint8_t *p = raw + ((size_t)f * w * h + i) * bytes;
            p[0] = (uint8_t)(value & 0xFF);
            if (bytes == 2)
                p[1] = (uint8_t)((value >> 8) & 0xFF);
        }
    if (s->pixel_bytes > 0 && (size_t)s->pixel_bytes < n)
        n = (size_t)s->pixel_bytes;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(raw, 1, n, f), n);
    fclose(f);
    free(raw);
}

/* A gamma-like VOI LUT over the stored range, 10-bit output. */
static void write_voi_lut(FILE *f, const dicom_spec *s)
{
    long entries = 1L << s->bits_stored;
    long first = s->is_signed ? -(entries / 2) : 0;
    fprintf(f, "(0028,3010) SQ (Sequence with explicit length #=1)\n"
               "(fffe,e000) na (Item with explicit length #=3)\n"
               "(0028,3002) %s %ld\\%ld\\10\n(0028,3003) LO [gamma]\n(0028,3006) US ",
            s->is_signed ? "SS" : "US", entries == 65536 ? 0 : entries, first);
    for (long i = 0; i < entries; i++)
        fprintf(f, "%s%ld", i ? "\\" : "", lround(1023.0 * sqrt((double)i / (entries - 1))));
    fprintf(f, "\n(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n");
}

/* Writes the DICOM file for s as TMP/<name>.dcm and returns its path. */
static const char *make_dicom(const dicom_spec *s)
{
    char raw[4096], dump[4096], plain[4096];
    static char out[4096];
    snprintf(raw, sizeof raw, "%s/%s.raw", tmp, s->name);
    snprintf(dump, sizeof dump, "%s/%s.dump", tmp, s->name);
    snprintf(plain, sizeof plain, "%s/%s.plain.dcm", tmp, s->name);
    snprintf(out, sizeof out, "%s/%s.dcm", tmp, s->name);
    int alloc;
    write_pixels(s, raw, &alloc);
    FILE *f = fopen(dump, "w");
    assert_non_null(f);
    fprintf(f, "(0008,0016) UI [1.2.840.10008.5.1.4.1.1.1.1]\n(0008,0018) UI [1.2.826.0.1.3680043.2.1143.%d]\n",
            (int)strlen(s->name));
    fprintf(f, "(0008,0060) CS [%s]\n", s->modality ? s->modality : "DX");
    fprintf(f, "(0010,0010) PN [%s]\n(0010,0020) LO [%s]\n(0010,0030) DA [19700101]\n"
               "(0008,0050) SH [ACC-55555]\n", PATIENT_NAME, PATIENT_ID);
    fprintf(f, "(0018,0015) CS [%s]\n(0018,5101) CS [%s]\n", s->body_part ? s->body_part : "CHEST",
            s->view ? s->view : "PA");
    fprintf(f, "(0028,0002) US 1\n(0028,0004) CS [%s]\n",
            s->photometric ? s->photometric : "MONOCHROME2");
    if (s->frames > 1)
        fprintf(f, "(0028,0008) IS [%d]\n", s->frames);
    fprintf(f, "(0028,0010) US %d\n(0028,0011) US %d\n", s->rows ? s->rows : base.h,
            s->cols ? s->cols : base.w);
    fprintf(f, "(0028,0100) US %d\n(0028,0101) US %d\n(0028,0102) US %d\n(0028,0103) US %d\n", alloc,
            s->bits_stored, s->bits_stored - 1, s->is_signed);
    if (s->window) {
        char c[64], w[64];
        assert_int_equal(sscanf(s->window, "%63s %63s", c, w), 2);
        fprintf(f, "(0028,1050) DS [%s]\n(0028,1051) DS [%s]\n", c, w);
    }
    if (s->rescale) {
        char slope[32], intercept[32];
        assert_int_equal(sscanf(s->rescale, "%31s %31s", slope, intercept), 2);
        fprintf(f, "(0028,1052) DS [%s]\n(0028,1053) DS [%s]\n(0028,1054) LO [US]\n", intercept, slope);
    }
    if (s->voi_lut)
        write_voi_lut(f, s);
    if (s->pixel_bytes >= 0)
        fprintf(f, "(7fe0,0010) %s =%s\n", alloc == 8 ? "OB" : "OW", raw);
    fclose(f);
    const char *opts = s->dump2dcm_opts ? s->dump2dcm_opts : "+te";
    if (!s->compress) {
        assert_int_equal(run("dump2dcm +l 1000000 %s %s %s", opts, dump, out), 0);
        return out;
    }
    assert_int_equal(run("dump2dcm +l 1000000 %s %s %s", opts, dump, plain), 0);
    assert_int_equal(run("%s %s %s", s->compress, plain, out), 0);
    return out;
}

/* ------------------------------------------------------------ comparison */

static uint8_t *read_pgm(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int maxval;
    assert_int_equal(fscanf(f, "P5 %d %d %d", w, h, &maxval), 3);
    assert_int_equal(maxval, 255);
    fgetc(f); /* the single whitespace before the raster */
    size_t n = (size_t)*w * *h;
    uint8_t *px = malloc(n);
    assert_non_null(px);
    assert_int_equal(fread(px, 1, n, f), n);
    fclose(f);
    return px;
}

static void assert_no_patient_data(const char *text)
{
    if (strstr(text, "Doe") || strstr(text, "Jane") || strstr(text, "98765") || strstr(text, "19700101") ||
        strstr(text, "ACC-55555"))
        fail_msg("patient data in \"%s\"", text);
}

/* DCMTK's own decompressor for a file made by the compressor `compress`
 * (dcm2pnm itself reads only uncompressed files). */
static const char *decompressor(const char *compress)
{
    if (!compress)
        return NULL;
    return !strncmp(compress, "dcmcjpls", 8) ? "dcmdjpls" : !strncmp(compress, "dcmcrle", 7) ? "dcmdrle" : "dcmdjpeg";
}

/* Decodes path with pneumo and with dcm2pnm (after DCMTK's decompressor for
 * the codec that made it, if any); the pixels must be equal. */
static void assert_matches_dcm2pnm(const char *path, const char *compress, const char *window, pn_image *img)
{
    pn_error err = {0};
    if (pn_image_decode_file(path, 0, 0, img, &err) != PN_OK)
        fail_msg("%s: %s", path, err.msg);
    char pgm[4096], plain[4096];
    snprintf(pgm, sizeof pgm, "%s.pgm", path);
    snprintf(plain, sizeof plain, "%s.decompressed.dcm", path);
    if (decompressor(compress)) {
        assert_int_equal(run("%s %s %s", decompressor(compress), path, plain), 0);
        path = plain;
    }
    assert_int_equal(run("dcm2pnm --no-overlays %s %s %s", window, path, pgm), 0);
    int w, h;
    uint8_t *ref = read_pgm(pgm, &w, &h);
    assert_int_equal(img->w, w);
    assert_int_equal(img->h, h);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        differ += img->pixels[i] != ref[i];
    free(ref);
    if (differ)
        fail_msg("%s: %zu of %d pixels differ from dcm2pnm %s", path, differ, w * h, window);
    for (int i = 0; i < img->n_notes; i++)
        assert_no_patient_data(img->notes[i]);
}

static int has_note(const pn_image *img, const char *text)
{
    for (int i = 0; i < img->n_notes; i++)
        if (strstr(img->notes[i], text))
            return 1;
    return 0;
}

/* Mean absolute difference of two same-size images. */
static double mean_abs_diff(const pn_image *a, const pn_image *b)
{
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->h, b->h);
    double sum = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h; i++)
        sum += abs(a->pixels[i] - b->pixels[i]);
    return sum / ((double)a->w * a->h);
}

/* ----------------------------------------------------------------- tests */

#define MINMAX "+Wm"
#define WINDOW1 "+Wi 1"
#define VOILUT1 "+Wl 1"

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
        assert_matches_dcm2pnm(make_dicom(s), s->compress, s->dcm2pnm_window, &img);
        int expect_frames_note = s->frames > 1;
        int expect_modality_note = s->modality && strcmp(s->modality, "CR");
        int expect_view_note = s->view || s->body_part;
        if (has_note(&img, "multi-frame") != expect_frames_note ||
            has_note(&img, "Modality") != expect_modality_note ||
            has_note(&img, "not a frontal chest") != expect_view_note)
            fail_msg("%s: unexpected warnings (%d): %s", s->name, img.n_notes, img.n_notes ? img.notes[0] : "");
        /* Beyond agreeing with dcm2pnm, the picture must be the X-ray: the
         * linear min-max variants give back the base image, MONOCHROME1 its
         * negative (bone stays white once inverted for display). */
        if (!strcmp(s->dcm2pnm_window, MINMAX) && !s->photometric) {
            double d = mean_abs_diff(&img, &base);
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
    assert_matches_dcm2pnm(make_dicom(s), NULL, WINDOW1, &img);
    char pgm[4096];
    snprintf(pgm, sizeof pgm, "%s/two_windows.second.pgm", tmp);
    assert_int_equal(run("dcm2pnm --no-overlays +Wi 2 %s/two_windows.dcm %s", tmp, pgm), 0);
    int w, h;
    second.pixels = read_pgm(pgm, &w, &h);
    second.w = w;
    second.h = h;
    assert_true(mean_abs_diff(&img, &second) > 5.0);
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
    const char *sources[] = {base_path, orig};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && access(orig, R_OK) != 0)
            continue;
        char *out = path_in_tmp(k ? "img2dcm_orig.dcm" : "img2dcm.dcm");
        assert_int_equal(run("img2dcm %s %s", sources[k], out), 0);
        assert_int_equal(run("dcmodify -nb -i \"(0008,0060)=DX\" -i \"(0010,0010)=%s\" %s", PATIENT_NAME, out), 0);
        pn_image img = {0}, jpeg = {0};
        assert_matches_dcm2pnm(out, "dcmcjpeg", MINMAX, &img);
        assert_int_equal(img.n_notes, 0);
        pn_error err = {0};
        assert_int_equal(pn_image_decode_file(sources[k], 0, 0, &jpeg, &err), PN_OK);
        assert_true(mean_abs_diff(&img, &jpeg) < 2.0);
        pn_image_free(&img);
        pn_image_free(&jpeg);
    }
}

/* ------------------------------------------------------------ malformed */

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(*n + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

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
    assert_no_patient_data(err.msg);
}

static void expect_file_error(const char *what, const char *path, pn_status code, const char *text)
{
    size_t n;
    uint8_t *d = slurp(path, &n);
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
    const char *path = make_dicom(&good);
    size_t n;
    uint8_t *d = slurp(path, &n);

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
    expect_file_error("huge.dcm", make_dicom(&huge), PN_ELIMIT, "pixel limit");
    static const dicom_spec large = {.name = "large", .bits_stored = 16, .rows = 20000, .cols = 6000,
                                     .dcm2pnm_window = MINMAX};
    expect_file_error("large.dcm", make_dicom(&large), PN_ELIMIT, "pixel limit");
    static const dicom_spec no_pixels = {.name = "no_pixels", .bits_stored = 12, .pixel_bytes = -1,
                                         .dcm2pnm_window = MINMAX};
    expect_file_error("no_pixels.dcm", make_dicom(&no_pixels), PN_EFORMAT, "no pixel data");
    static const dicom_spec short_pixels = {.name = "short_pixels", .bits_stored = 12, .pixel_bytes = 5000,
                                            .dcm2pnm_window = MINMAX};
    expect_file_error("short_pixels.dcm", make_dicom(&short_pixels), PN_EFORMAT, "pixel data");

    /* A JPEG-LS stream cut short. */
    static const dicom_spec jls = {.name = "cut_jpegls", .bits_stored = 12, .compress = "dcmcjpls +el",
                                   .dcm2pnm_window = MINMAX};
    d = slurp(make_dicom(&jls), &n);
    expect_error("cut_jpegls.dcm", d, n * 3 / 4, 0, "DICOM");
    free(d);

    /* JPEG 2000 has no decoder here: the img2dcm file relabelled as .90. */
    char *jp = path_in_tmp("j2k.dcm");
    assert_int_equal(run("img2dcm %s %s", base_path, jp), 0);
    d = slurp(jp, &n);
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
        uint8_t *d = slurp(make_dicom(&specs[k]), &n);
        pn_image_info info;
        pn_error err = {0};
        if (pn_image_probe(d, n, specs[k].name, &info, &err))
            fail_msg("%s: %s", specs[k].name, err.msg);
        assert_string_equal(info.format, "DICOM");
        assert_int_equal(info.w, specs[k].cols ? specs[k].cols : base.w);
        assert_int_equal(info.h, specs[k].rows ? specs[k].rows : base.h);
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
        uint8_t *d = slurp(make_dicom(bad[k]), &n);
        pn_image_info info;
        pn_error err = {0};
        assert_int_equal(pn_image_probe(d, n, bad[k]->name, &info, &err), want[k]);
        assert_no_patient_data(err.msg);
        free(d);
    }
}

static const char *find_base_image(void)
{
    const char *shared = pn_test_shared_dir();
    if (!shared)
        return NULL;
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/data/kermany/val/NORMAL", shared);
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        const char *dot = strrchr(list[i]->d_name, '.');
        if (!found && dot && !strcmp(dot, ".jpeg")) {
            snprintf(base_path, sizeof base_path, "%s/%s", dir, list[i]->d_name);
            found = base_path;
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return found;
}

int main(void)
{
    if (!find_base_image()) {
        fprintf(stderr, "skipped: no X-ray under ../shared/data/kermany/val/NORMAL\n");
        return PN_TEST_SKIP;
    }
    if (system("command -v dump2dcm img2dcm dcmodify dcmcjpeg dcmcjpls dcmcrle dcm2pnm >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: DCMTK tools missing (scripts/install-deps.sh test installs dcmtk)\n");
        return PN_TEST_SKIP;
    }
    tmp = pn_test_tmpdir();
    pn_error err = {0};
    if (pn_image_decode_file(base_path, 0, 0, &base, &err) != PN_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_variant_matches_dcm2pnm),
        cmocka_unit_test(first_window_is_used),
        cmocka_unit_test(img2dcm_files_match),
        cmocka_unit_test(malformed_files_are_clear_errors),
        cmocka_unit_test(probe_reads_the_header),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pn_image_free(&base);
    return rc;
}
