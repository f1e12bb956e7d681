/* DICOM test files made with DCMTK's tools (dump2dcm, the compressors) and
 * the pixel comparison with dcm2pnm; see dicom_fixture.h. */
#define _GNU_SOURCE /* memmem */
#include "dicom_fixture.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *dcm_tmp;
pn_image dcm_base;
char dcm_base_path[4096];

int dcm_run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd - 40);
    snprintf(cmd + n, sizeof cmd - n, " >>%s/tools.log 2>&1", dcm_tmp);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

char *dcm_path(const char *name)
{
    static char paths[8][4096];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dcm_tmp, name);
    return p;
}

/* ------------------------------------------------------------ generators */

int dcm_stored_value(const dicom_spec *s, int v, int frame)
{
    if (frame > 0)
        v = 255 - v;
    int bits = s->range_bits ? s->range_bits : s->bits_stored;
    long max = (1L << bits) - 1;
    long u = (v * max + 127) / 255;
    return (int)(s->is_signed ? u - (1L << (bits - 1)) : u);
}

/* The raw sample of stored value `value`: placed at High Bit, junk above it if asked. */
static unsigned raw_sample(const dicom_spec *s, int value, size_t i, int bytes)
{
    int high = s->high_bit ? s->high_bit : s->bits_stored - 1;
    unsigned mask = (1u << s->bits_stored) - 1;
    unsigned raw = ((unsigned)value & mask) << (high + 1 - s->bits_stored);
    if (s->junk_high_bits && i % 2)
        raw |= (bytes == 2 ? 0xFFFFu : 0xFFu) & ~(((1u << (high + 1)) - 1));
    return raw;
}

static void write_pixels(const dicom_spec *s, const char *path, int *bits_allocated)
{
    int w = dcm_base.w, h = dcm_base.h, frames = s->frames > 1 ? s->frames : 1;
    int high = s->high_bit ? s->high_bit : s->bits_stored - 1;
    int bytes = high >= 8 ? 2 : 1;
    *bits_allocated = 8 * bytes;
    size_t n = (size_t)w * h * frames * bytes;
    uint8_t *raw = malloc(n); /* frames x h x w x bytes, little endian */
    assert_non_null(raw);
    for (int f = 0; f < frames; f++)
        for (size_t i = 0; i < (size_t)w * h; i++) {
            int value = i / w < (size_t)s->pad_rows ? s->pad_value : dcm_stored_value(s, dcm_base.pixels[i], f);
            unsigned sample = raw_sample(s, value, i, bytes);
            uint8_t *p = raw + ((size_t)f * w * h + i) * bytes;
            p[0] = (uint8_t)(sample & 0xFF);
            if (bytes == 2)
                p[1] = (uint8_t)((sample >> 8) & 0xFF);
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

static void write_pixel_module(FILE *f, const dicom_spec *s, int alloc)
{
    if (!s->acr_nema)
        fprintf(f, "(0028,0002) US 1\n(0028,0004) CS [%s]\n", s->photometric ? s->photometric : "MONOCHROME2");
    if (s->frames > 1)
        fprintf(f, "(0028,0008) IS [%d]\n", s->frames);
    fprintf(f, "(0028,0010) US %d\n(0028,0011) US %d\n", s->rows ? s->rows : dcm_base.h,
            s->cols ? s->cols : dcm_base.w);
    fprintf(f, "(0028,0100) US %d\n(0028,0101) US %d\n(0028,0102) US %d\n(0028,0103) US %d\n", alloc,
            s->bits_stored, s->high_bit ? s->high_bit : s->bits_stored - 1, s->is_signed);
    if (s->pad_rows)
        fprintf(f, "(0028,0120) %s %d\n", s->is_signed ? "SS" : "US", s->pad_value);
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
}

const char *dcm_make(const dicom_spec *s)
{
    char raw[4096], dump[4096], plain[4096];
    static char out[4096];
    snprintf(raw, sizeof raw, "%s/%s.raw", dcm_tmp, s->name);
    snprintf(dump, sizeof dump, "%s/%s.dump", dcm_tmp, s->name);
    snprintf(plain, sizeof plain, "%s/%s.plain.dcm", dcm_tmp, s->name);
    snprintf(out, sizeof out, "%s/%s.dcm", dcm_tmp, s->name);
    int alloc;
    write_pixels(s, raw, &alloc);
    FILE *f = fopen(dump, "w");
    assert_non_null(f);
    fprintf(f, "(0008,0016) UI [1.2.840.10008.5.1.4.1.1.1.1]\n(0008,0018) UI [1.2.826.0.1.3680043.2.1143.%d]\n",
            (int)strlen(s->name));
    fprintf(f, "(0008,0060) CS [%s]\n", s->modality ? s->modality : "DX");
    fprintf(f, "(0010,0010) PN [%s]\n(0010,0020) LO [%s]\n(0010,0030) DA [19700101]\n"
               "(0008,0050) SH [ACC-55555]\n", DCM_PATIENT_NAME, DCM_PATIENT_ID);
    fprintf(f, "(0018,0015) CS [%s]\n(0018,5101) CS [%s]\n", s->body_part ? s->body_part : "CHEST",
            s->view ? s->view : "PA");
    write_pixel_module(f, s, alloc);
    if (s->extra)
        fputs(s->extra, f);
    if (s->pixel_bytes >= 0)
        fprintf(f, "(7fe0,0010) %s =%s\n", alloc == 8 ? "OB" : "OW", raw);
    fclose(f);
    const char *opts = s->dump2dcm_opts ? s->dump2dcm_opts : "+te";
    if (!s->compress) {
        assert_int_equal(dcm_run("dump2dcm +l 1000000 %s %s %s", opts, dump, out), 0);
        return out;
    }
    assert_int_equal(dcm_run("dump2dcm +l 1000000 %s %s %s", opts, dump, plain), 0);
    assert_int_equal(dcm_run("%s %s %s", s->compress, plain, out), 0);
    return out;
}

/* ------------------------------------------------------------ comparison */

uint8_t *dcm_read_pgm(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int maxval;
    char kind;
    assert_int_equal(fscanf(f, "P%c %d %d %d", &kind, w, h, &maxval), 4);
    assert_true(kind == '5' || kind == '6');
    assert_int_equal(maxval, 255);
    fgetc(f); /* the single whitespace before the raster */
    size_t n = (size_t)*w * *h, ch = kind == '6' ? 3 : 1;
    uint8_t *px = malloc(n * ch); /* [n][ch] */
    assert_non_null(px);
    assert_int_equal(fread(px, ch, n, f), n);
    fclose(f);
    for (size_t i = 0; ch == 3 && i < n; i++) /* BT.601 luma, as docs/input-formats.md says */
        px[i] = (uint8_t)((19595 * px[3 * i] + 38470 * px[3 * i + 1] + 7471 * px[3 * i + 2] + 32768) >> 16);
    return px;
}

uint8_t *dcm_slurp(const char *path, size_t *n)
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

void dcm_assert_no_patient_data(const char *text)
{
    if (strstr(text, "Doe") || strstr(text, "Jane") || strstr(text, "98765") || strstr(text, "19700101") ||
        strstr(text, "ACC-55555"))
        fail_msg("patient data in \"%s\"", text);
}

/* DCMTK's own decompressor for a file made by the compressor `compress`
 * (dcm2pnm itself reads only uncompressed and RLE files). */
static const char *decompressor(const char *compress)
{
    if (!compress)
        return NULL;
    return !strncmp(compress, "dcmcjpls", 8) ? "dcmdjpls" : !strncmp(compress, "dcmcrle", 7) ? "dcmdrle" : "dcmdjpeg";
}

void dcm_assert_matches(const char *path, const char *compress, const char *window, pn_image *img)
{
    pn_error err = {0};
    if (pn_image_decode_file(path, 0, 0, img, &err) != PN_OK)
        fail_msg("%s: %s", path, err.msg);
    char pgm[4096], plain[4096];
    snprintf(pgm, sizeof pgm, "%s.pgm", path);
    snprintf(plain, sizeof plain, "%s.decompressed.dcm", path);
    if (decompressor(compress)) {
        assert_int_equal(dcm_run("%s %s %s", decompressor(compress), path, plain), 0);
        path = plain;
    }
    assert_int_equal(dcm_run("dcm2pnm --no-overlays %s %s %s", window, path, pgm), 0);
    int w, h;
    uint8_t *ref = dcm_read_pgm(pgm, &w, &h);
    assert_int_equal(img->w, w);
    assert_int_equal(img->h, h);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        differ += img->pixels[i] != ref[i];
    free(ref);
    if (differ)
        fail_msg("%s: %zu of %d pixels differ from dcm2pnm %s", path, differ, w * h, window);
    for (int i = 0; i < img->n_notes; i++)
        dcm_assert_no_patient_data(img->notes[i]);
    dcm_assert_no_patient_data(img->not_chest);
}

int dcm_has_note(const pn_image *img, const char *text)
{
    for (int i = 0; i < img->n_notes; i++)
        if (strstr(img->notes[i], text))
            return 1;
    return 0;
}

double dcm_mean_abs_diff(const pn_image *a, const pn_image *b)
{
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->h, b->h);
    double sum = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h; i++)
        sum += abs(a->pixels[i] - b->pixels[i]);
    return sum / ((double)a->w * a->h);
}

/* ------------------------------------------------------------ set-up */

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
            snprintf(dcm_base_path, sizeof dcm_base_path, "%s/%s", dir, list[i]->d_name);
            found = dcm_base_path;
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return found;
}

int dcm_run_tests(const char *group, const struct CMUnitTest *tests, size_t n)
{
    if (!find_base_image()) {
        fprintf(stderr, "skipped: no X-ray under ../shared/data/kermany/val/NORMAL\n");
        return PN_TEST_SKIP;
    }
    if (system("command -v dump2dcm img2dcm dcmodify dcmcjpeg dcmcjpls dcmcrle dcm2pnm >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: DCMTK tools missing (scripts/install-deps.sh test installs dcmtk)\n");
        return PN_TEST_SKIP;
    }
    dcm_tmp = pn_test_tmpdir();
    pn_error err = {0};
    if (pn_image_decode_file(dcm_base_path, 0, 0, &dcm_base, &err) != PN_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    pn_image_free(&dcm_base);
    return rc;
}
