/* Decoder tests: every JPEG/PNG variant generated here with libjpeg/libpng,
 * the 20 real originals, and every kind of bad input. */
#define _GNU_SOURCE /* memmem, strsep */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "pneumo/data.h"
#include "testutil.h"

/* ------------------------------------------------------------ generators */

typedef struct buf {
    uint8_t *data;
    size_t size;
} buf;

/* Test pattern: asymmetric so every orientation is distinguishable. */
static uint8_t pattern(int x, int y)
{
    return (uint8_t)((x * 3 + y * 7 + (x > y ? 60 : 0)) & 0xFF);
}

typedef struct jpeg_opts {
    int w, h, comps;         /* 1 gray, 3 RGB, 4 CMYK */
    int progressive, restart, orientation;
    int adobe_cmyk_inverted; /* 1: Photoshop-style inverted CMYK with Adobe marker */
    int color;               /* 3 comps: 1 = real colour, 0 = R=G=B */
} jpeg_opts;

/* The sample value of channel c of pixel (x, y) written by make_jpeg. */
static uint8_t jpeg_src(const jpeg_opts *o, int x, int y, int c)
{
    uint8_t g = pattern(x, y);
    if (o->comps == 3 && o->color)
        return c == 0 ? g : c == 1 ? (uint8_t)(255 - g) : (uint8_t)(x * 255 / o->w);
    if (o->comps == 4) {
        if (o->adobe_cmyk_inverted)
            return c < 3 ? 255 : g;               /* stored = 255 - ink */
        return c < 3 ? 0 : (uint8_t)(255 - g);    /* ink */
    }
    return g;
}

static buf make_jpeg(const jpeg_opts *o)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr em;
    ci.err = jpeg_std_error(&em);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long out_size = 0;
    jpeg_mem_dest(&ci, &out, &out_size);
    ci.image_width = o->w;
    ci.image_height = o->h;
    ci.input_components = o->comps;
    ci.in_color_space = o->comps == 1 ? JCS_GRAYSCALE : o->comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    if (o->comps == 4) {
        jpeg_set_colorspace(&ci, JCS_CMYK);
        ci.write_Adobe_marker = o->adobe_cmyk_inverted ? TRUE : FALSE;
    }
    if (o->progressive)
        jpeg_simple_progression(&ci);
    ci.restart_interval = (unsigned)o->restart;
    jpeg_start_compress(&ci, TRUE);
    if (o->orientation) {
        /* Minimal big-endian EXIF: one IFD0 entry, tag 0x0112 SHORT. */
        uint8_t exif[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                          0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (uint8_t)o->orientation, 0, 0,
                          0, 0, 0, 0};
        jpeg_write_marker(&ci, JPEG_APP0 + 1, exif, sizeof exif);
    }
    uint8_t *row = malloc((size_t)o->w * o->comps);
    while (ci.next_scanline < ci.image_height) {
        int y = (int)ci.next_scanline;
        for (int x = 0; x < o->w; x++)
            for (int c = 0; c < o->comps; c++)
                row[x * o->comps + c] = jpeg_src(o, x, y, c);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    return (buf){out, out_size};
}

static void png_append(png_structp png, png_bytep data, png_size_t n)
{
    buf *b = png_get_io_ptr(png);
    b->data = realloc(b->data, b->size + n);
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

static void png_flush_noop(png_structp png) {}

typedef struct png_opts {
    int w, h, color_type, depth, interlace, color_palette;
} png_opts;

/* Gray value every pixel must decode to (alpha and palette aside). */
static uint8_t png_expected(int x, int y) { return pattern(x, y); }

static buf make_png(const png_opts *o)
{
    buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(png, &b, png_append, png_flush_noop);
    png_set_IHDR(png, info, o->w, o->h, o->depth, o->color_type,
                 o->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (o->color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < 256; i++)
            pal[i] = o->color_palette ? (png_color){(png_byte)i, (png_byte)(255 - i), 0}
                                      : (png_color){(png_byte)i, (png_byte)i, (png_byte)i};
        png_set_PLTE(png, info, pal, 256);
    }
    png_write_info(png, info);
    if (o->depth == 16)
        png_set_swap(png);  /* we fill rows little-endian below */
    int ch = o->color_type == PNG_COLOR_TYPE_GRAY || o->color_type == PNG_COLOR_TYPE_PALETTE ? 1
             : o->color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
             : o->color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
    int bps = o->depth / 8;
    png_bytep *rows = malloc(o->h * sizeof *rows);
    for (int y = 0; y < o->h; y++) {
        rows[y] = malloc((size_t)o->w * ch * bps);
        for (int x = 0; x < o->w; x++)
            for (int c = 0; c < ch; c++) {
                int v = c == 3 || (ch == 2 && c == 1) ? 128 : png_expected(x, y);  /* alpha 128 */
                if (bps == 2) {
                    rows[y][(x * ch + c) * 2] = (png_byte)v;      /* low byte = high byte: */
                    rows[y][(x * ch + c) * 2 + 1] = (png_byte)v;  /* v * 257 */
                } else {
                    rows[y][x * ch + c] = (png_byte)v;
                }
            }
    }
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    for (int y = 0; y < o->h; y++)
        free(rows[y]);
    free(rows);
    return b;
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", pn_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

/* Mean absolute difference to the expected gray pattern under orientation o. */
static double mean_error(const pn_image *img, int sw, int sh, int o)
{
    double sum = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            int sx = x, sy = y;
            if (o == 3) { sx = sw - 1 - x; sy = sh - 1 - y; }
            if (o == 6) { sx = y; sy = sh - 1 - x; }
            if (o == 8) { sx = sw - 1 - y; sy = x; }
            if (o == 2) { sx = sw - 1 - x; }
            sum += abs(img->pixels[y * img->w + x] - pattern(sx, sy));
        }
    return sum / ((double)img->w * img->h);
}

/* ------------------------------------------------------------------ JPEG */

static void check_jpeg(const jpeg_opts *o, int expect_color, double max_err)
{
    buf b = make_jpeg(o);
    pn_image img;
    pn_error e;
    assert_int_equal(pn_image_decode_memory(b.data, b.size, "gen.jpg", 0, 0, &img, &e), PN_OK);
    int swap = o->orientation >= 5;
    assert_int_equal(img.w, swap ? o->h : o->w);
    assert_int_equal(img.h, swap ? o->w : o->h);
    assert_int_equal(img.is_color, expect_color);
    assert_int_equal(img.orientation, o->orientation ? o->orientation : 1);
    if (max_err > 0) {
        double err = mean_error(&img, o->w, o->h, o->orientation);
        if (err > max_err)
            fail_msg("mean error %.2f > %.2f", err, max_err);
    }
    pn_image_free(&img);
    free(b.data);
}

static void test_jpeg_gray(void **state)
{
    check_jpeg(&(jpeg_opts){.w = 97, .h = 61, .comps = 1}, 0, 2.0);
}

static void test_jpeg_rgb_gray_content(void **state)
{
    /* 3 components, all equal: still a grayscale picture. */
    check_jpeg(&(jpeg_opts){.w = 80, .h = 64, .comps = 3}, 0, 2.0);
}

static void test_jpeg_rgb_color(void **state)
{
    jpeg_opts o = {.w = 80, .h = 64, .comps = 3, .color = 1};
    buf b = make_jpeg(&o);
    pn_image img;
    assert_int_equal(pn_image_decode_memory(b.data, b.size, "c.jpg", 0, 0, &img, NULL), PN_OK);
    assert_int_equal(img.is_color, 1);
    /* BT.601 luma of the source colours, within JPEG error. */
    double sum = 0;
    for (int y = 0; y < o.h; y++)
        for (int x = 0; x < o.w; x++) {
            double l = 0.299 * jpeg_src(&o, x, y, 0) + 0.587 * jpeg_src(&o, x, y, 1) +
                       0.114 * jpeg_src(&o, x, y, 2);
            sum += abs(img.pixels[y * o.w + x] - (int)(l + 0.5));
        }
    assert_true(sum / (o.w * o.h) < 4.0);
    pn_image_free(&img);
    free(b.data);
}

static void test_jpeg_cmyk(void **state)
{
    check_jpeg(&(jpeg_opts){.w = 64, .h = 48, .comps = 4}, 0, 3.0);
    check_jpeg(&(jpeg_opts){.w = 64, .h = 48, .comps = 4, .adobe_cmyk_inverted = 1}, 0, 3.0);
}

static void test_jpeg_progressive_restart(void **state)
{
    check_jpeg(&(jpeg_opts){.w = 120, .h = 90, .comps = 1, .progressive = 1}, 0, 2.0);
    check_jpeg(&(jpeg_opts){.w = 120, .h = 90, .comps = 1, .restart = 3}, 0, 2.0);
    check_jpeg(&(jpeg_opts){.w = 120, .h = 90, .comps = 3, .color = 1, .progressive = 1,
                            .restart = 2}, 1, 0);
}

static void test_jpeg_exif_orientation(void **state)
{
    for (int o = 1; o <= 8; o++)
        check_jpeg(&(jpeg_opts){.w = 72, .h = 40, .comps = 1, .orientation = o}, 0,
                   o == 1 || o == 2 || o == 3 || o == 6 || o == 8 ? 2.0 : 0);
}

static void test_jpeg_dct_scaling(void **state)
{
    buf b = make_jpeg(&(jpeg_opts){.w = 800, .h = 600, .comps = 1});
    pn_image img;
    /* Smallest M/8 with both sides >= 100: M = 2 (200x150); M = 1 gives 75 rows. */
    assert_int_equal(pn_image_decode_memory(b.data, b.size, "big.jpg", 100, 100, &img, NULL), PN_OK);
    assert_int_equal(img.w, 200);
    assert_int_equal(img.h, 150);
    pn_image_free(&img);
    /* Target above the image size: full size, never upscaled. */
    assert_int_equal(pn_image_decode_memory(b.data, b.size, "big.jpg", 900, 100, &img, NULL), PN_OK);
    assert_int_equal(img.w, 800);
    pn_image_free(&img);
    free(b.data);
    /* Orientation 6: target is in displayed orientation (w and h swapped). */
    b = make_jpeg(&(jpeg_opts){.w = 800, .h = 400, .comps = 1, .orientation = 6});
    assert_int_equal(pn_image_decode_memory(b.data, b.size, "r.jpg", 100, 200, &img, NULL), PN_OK);
    assert_int_equal(img.w, 100);
    assert_int_equal(img.h, 200);
    pn_image_free(&img);
    free(b.data);
}

static void test_decode_file_matches_memory(void **state)
{
    buf b = make_jpeg(&(jpeg_opts){.w = 50, .h = 30, .comps = 1});
    const char *path = write_file("same.png.really-jpeg", b.data, b.size);  /* name not trusted */
    pn_image a, m;
    assert_int_equal(pn_image_decode_file(path, 0, 0, &a, NULL), PN_OK);
    assert_int_equal(pn_image_decode_memory(b.data, b.size, NULL, 0, 0, &m, NULL), PN_OK);
    assert_int_equal(a.w * a.h, m.w * m.h);
    assert_memory_equal(a.pixels, m.pixels, (size_t)a.w * a.h);
    pn_image_free(&a);
    pn_image_free(&m);
    free(b.data);
}

/* ------------------------------------------------------------------- PNG */

static void check_png(const png_opts *o, int expect_color)
{
    buf b = make_png(o);
    pn_image img;
    pn_error e;
    if (pn_image_decode_memory(b.data, b.size, "gen.png", 0, 0, &img, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(img.w, o->w);
    assert_int_equal(img.h, o->h);
    assert_int_equal(img.is_color, expect_color);
    if (!expect_color)
        for (int y = 0; y < o->h; y++)
            for (int x = 0; x < o->w; x++)
                assert_int_equal(img.pixels[y * o->w + x], png_expected(x, y));
    pn_image_free(&img);
    free(b.data);
}

static void test_png_variants(void **state)
{
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_GRAY, 8, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_GRAY, 16, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_RGB, 8, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_RGB, 16, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_PALETTE, 8, 0, 0}, 0);
    check_png(&(png_opts){33, 21, PNG_COLOR_TYPE_PALETTE, 8, 0, 1}, 1);
    check_png(&(png_opts){37, 29, PNG_COLOR_TYPE_GRAY, 8, 1, 0}, 0);      /* Adam7 */
    check_png(&(png_opts){37, 29, PNG_COLOR_TYPE_RGB_ALPHA, 16, 1, 0}, 0);
}

static void test_png_write_roundtrip(void **state)
{
    pn_image img = {.w = 40, .h = 30, .pixels = malloc(1200)};
    for (int i = 0; i < 1200; i++)
        img.pixels[i] = (uint8_t)(i * 13);
    char path[512];
    snprintf(path, sizeof path, "%s/rt.png", pn_test_tmpdir());
    assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
    pn_image back;
    assert_int_equal(pn_image_decode_file(path, 0, 0, &back, NULL), PN_OK);
    assert_memory_equal(back.pixels, img.pixels, 1200);
    pn_image_free(&back);
    pn_image_free(&img);
}

/* ---------------------------------------------------------- real samples */

static void test_real_samples(void **state)
{
    const char *shared = pn_test_require_shared("the 20 original sample JPEGs");
    char csv[1024];
    snprintf(csv, sizeof csv, "%s/data/samples_orig/samples.csv", shared);
    FILE *f = fopen(csv, "r");
    assert_non_null(f);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, f));  /* header: label,file,...,width,height,... */
    assert_non_null(strstr(line, "label,file,split,source_repo,source_commit,source_path,width,height"));
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *field[8];
        char *p = line;
        for (int i = 0; i < 8; i++)
            field[i] = strsep(&p, ",");
        assert_non_null(field[7]);
        char path[2048];
        snprintf(path, sizeof path, "%s/data/samples_orig/%s/%s", shared, field[0], field[1]);
        pn_image img;
        pn_error e;
        if (pn_image_decode_file(path, 0, 0, &img, &e))
            fail_msg("%s", e.msg);
        int w = atoi(field[6]), h = atoi(field[7]);
        /* samples.csv gives stored (SOF) dimensions; EXIF 5-8 would swap them. */
        int swap = img.orientation >= 5;
        assert_int_equal(img.w, swap ? h : w);
        assert_int_equal(img.h, swap ? w : h);
        assert_int_equal(img.is_color, 0);  /* X-rays, including the 3-component ones */
        pn_image_free(&img);
        /* Reduced-size decode for a 224 training input. */
        assert_int_equal(pn_image_decode_file(path, 224, 224, &img, NULL), PN_OK);
        assert_true(img.w >= 224 || img.w == w);
        assert_true(img.h >= 224 || img.h == h);
        pn_image_free(&img);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 20);
}

/* ------------------------------------------------------------- bad input */

static void expect_file_error(const char *name, const void *data, size_t n, pn_status code,
                              const char *reason)
{
    const char *path = write_file(name, data, n);
    pn_image img;
    pn_error e;
    pn_status st = pn_image_decode_file(path, 0, 0, &img, &e);
    if (st != code)
        fail_msg("%s: expected status %d, got %d (%s)", name, code, st, st ? e.msg : "ok");
    assert_non_null(strstr(e.msg, name));
    if (!strstr(e.msg, reason))
        fail_msg("%s: message '%s' lacks '%s'", name, e.msg, reason);
    assert_null(img.pixels);
    /* cache.c, predict and evaluate decode with err == NULL: still a failure */
    img.pixels = (uint8_t *)(uintptr_t)1;
    assert_int_equal(pn_image_decode_file(path, 0, 0, &img, NULL), code);
    assert_null(img.pixels);
}

/* Offset of the first marker m (0xFF m) after SOI. */
static size_t find_marker(const buf *b, uint8_t m)
{
    for (size_t i = 2; i + 1 < b->size; i++)
        if (b->data[i] == 0xFF && b->data[i + 1] == m)
            return i;
    fail_msg("marker %02x not found", m);
    return 0;
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void test_bad_inputs(void **state)
{
    expect_file_error("empty.jpeg", "", 0, PN_EFORMAT, "empty");
    expect_file_error("text.jpeg", "hello, not an image", 19, PN_EFORMAT, "not a JPEG, PNG or DICOM");
    expect_file_error("pic.bmp.jpeg", "BM\x36\0\0\0\0\0\0\0\x36\0\0\0", 14, PN_EUNSUPPORTED, "BMP");
    expect_file_error("anim.png", "GIF89a\x01\0\x01\0\0\0\0", 13, PN_EUNSUPPORTED, "GIF");

    buf j = make_jpeg(&(jpeg_opts){.w = 120, .h = 90, .comps = 1});
    expect_file_error("trunc.jpeg", j.data, j.size / 2, PN_EFORMAT, "truncated");
    expect_file_error("header-only.jpeg", j.data, 40, PN_EFORMAT, "truncated");
    buf pj = make_jpeg(&(jpeg_opts){.w = 120, .h = 90, .comps = 3, .color = 1, .progressive = 1});
    expect_file_error("trunc-progressive.jpeg", pj.data, pj.size * 2 / 3, PN_EFORMAT, "JPEG");
    free(pj.data);
    /* Corrupt Huffman table: all code-length counts 255. */
    buf c = {malloc(j.size), j.size};
    memcpy(c.data, j.data, j.size);
    size_t dht = find_marker(&c, 0xC4);
    memset(c.data + dht + 5, 0xFF, 16);
    expect_file_error("bad-huffman.jpeg", c.data, c.size, PN_EFORMAT, "corrupt");
    /* Decompression bomb: SOF0 claims 20000 x 20000. */
    memcpy(c.data, j.data, j.size);
    size_t sof = find_marker(&c, 0xC0);
    c.data[sof + 5] = 20000 >> 8; c.data[sof + 6] = 20000 & 0xFF;
    c.data[sof + 7] = 20000 >> 8; c.data[sof + 8] = 20000 & 0xFF;
    expect_file_error("bomb.jpeg", c.data, c.size, PN_ELIMIT, "pixel limit");
    free(c.data);
    free(j.data);

    buf p = make_png(&(png_opts){64, 48, PNG_COLOR_TYPE_GRAY, 8, 0, 0});
    expect_file_error("trunc.png", p.data, p.size - 20, PN_EFORMAT, "PNG");
    expect_file_error("sig-only.png", p.data, 8, PN_EFORMAT, "PNG");
    /* Flip a byte inside IDAT: CRC mismatch. */
    c = (buf){malloc(p.size), p.size};
    memcpy(c.data, p.data, p.size);
    uint8_t *idat = memmem(c.data, c.size, "IDAT", 4);
    assert_non_null(idat);
    idat[6] ^= 0x55;
    expect_file_error("crc.png", c.data, c.size, PN_EFORMAT, "corrupt");
    /* IHDR claiming 20000 x 20000 with a valid CRC. */
    memcpy(c.data, p.data, p.size);
    uint8_t *ihdr = c.data + 12;  /* "IHDR" then width, height */
    uint8_t dims[8] = {0, 0, 20000 >> 8, 20000 & 0xFF, 0, 0, 20000 >> 8, 20000 & 0xFF};
    memcpy(ihdr + 4, dims, 8);
    uint32_t crc = crc32_of(ihdr, 17);
    uint8_t crc_be[4] = {crc >> 24, crc >> 16, crc >> 8, crc};
    memcpy(ihdr + 17, crc_be, 4);
    expect_file_error("bomb.png", c.data, c.size, PN_ELIMIT, "pixel limit");
    free(c.data);
    free(p.data);

    pn_image img;
    pn_error e;
    char missing[512];
    snprintf(missing, sizeof missing, "%s/does-not-exist.jpeg", pn_test_tmpdir());
    assert_int_equal(pn_image_decode_file(missing, 0, 0, &img, &e), PN_EIO);
    assert_non_null(strstr(e.msg, "does-not-exist.jpeg"));
}

/* Streamed PNG decoding (min size given, image >= 2x it) equals an f x f box
 * average of the full decode, whatever the colour type, bit depth or
 * remainder rows and columns; interlaced files decode whole. */
static void check_png_streamed(const png_opts *o, int min, int expect_f)
{
    buf b = make_png(o);
    pn_image full, small;
    pn_error e;
    if (pn_image_decode_memory(b.data, b.size, "full.png", 0, 0, &full, &e) ||
        pn_image_decode_memory(b.data, b.size, "small.png", min, min, &small, &e))
        fail_msg("%s", e.msg);
    int f = expect_f, ow = (o->w + f - 1) / f, oh = (o->h + f - 1) / f;
    assert_int_equal(small.w, ow);
    assert_int_equal(small.h, oh);
    assert_int_equal(small.src_w, o->w);
    assert_int_equal(small.src_h, o->h);
    assert_int_equal(small.is_color, full.is_color);
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            unsigned sum = 0, n = 0;
            for (int y = oy * f; y < oy * f + f && y < o->h; y++)
                for (int x = ox * f; x < ox * f + f && x < o->w; x++, n++)
                    sum += full.pixels[y * o->w + x];
            assert_int_equal(small.pixels[oy * ow + ox], (sum + n / 2) / n);
        }
    pn_image_free(&full);
    pn_image_free(&small);
    free(b.data);
}

static void test_png_streamed(void **state)
{
    check_png_streamed(&(png_opts){700, 500, PNG_COLOR_TYPE_GRAY, 8, 0, 0}, 224, 2);
    check_png_streamed(&(png_opts){1000, 701, PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, 0}, 224, 3);
    check_png_streamed(&(png_opts){901, 1130, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0}, 224, 4);
    check_png_streamed(&(png_opts){500, 500, PNG_COLOR_TYPE_PALETTE, 8, 0, 1}, 100, 5);
    check_png_streamed(&(png_opts){300, 300, PNG_COLOR_TYPE_RGB, 8, 0, 0}, 224, 1);  /* < 2x: whole */
    check_png_streamed(&(png_opts){700, 500, PNG_COLOR_TYPE_GRAY, 8, 1, 0}, 224, 1); /* Adam7: whole */
}

/* Dimensions, depth and channels come from the header alone. */
static void test_probe(void **state)
{
    static const struct {
        png_opts o;
        int channels;
    } pngs[] = {
        {{33, 21, PNG_COLOR_TYPE_GRAY, 8, 0, 0}, 1},       {{40, 7, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0}, 2},
        {{5, 300, PNG_COLOR_TYPE_RGB, 16, 0, 0}, 3},       {{64, 64, PNG_COLOR_TYPE_RGB_ALPHA, 8, 1, 0}, 4},
        {{16, 16, PNG_COLOR_TYPE_PALETTE, 8, 0, 0}, 1},
    };
    pn_image_info info;
    pn_error e;
    for (size_t i = 0; i < sizeof pngs / sizeof *pngs; i++) {
        buf b = make_png(&pngs[i].o);
        /* The header is enough: cut the file right after IHDR. */
        assert_int_equal(pn_image_probe(b.data, 33, "p.png", &info, &e), PN_OK);
        assert_string_equal(info.format, "PNG");
        assert_int_equal(info.w, pngs[i].o.w);
        assert_int_equal(info.h, pngs[i].o.h);
        assert_int_equal(info.bit_depth, pngs[i].o.depth);
        assert_int_equal(info.channels, pngs[i].channels);
        b.data[16 + 9] = 5; /* colour type 5 does not exist */
        assert_int_equal(pn_image_probe(b.data, b.size, "p.png", &info, &e), PN_EFORMAT);
        assert_int_equal(pn_image_probe(b.data, 30, "p.png", &info, &e), PN_EFORMAT);
        free(b.data);
    }
    buf j = make_jpeg(&(jpeg_opts){.w = 77, .h = 45, .comps = 3});
    assert_int_equal(pn_image_probe(j.data, j.size, "p.jpeg", &info, &e), PN_OK);
    assert_string_equal(info.format, "JPEG");
    assert_int_equal(info.w, 77);
    assert_int_equal(info.h, 45);
    assert_int_equal(info.bit_depth, 8);
    assert_int_equal(info.channels, 3);
    assert_int_equal(pn_image_probe(j.data, 20, "p.jpeg", &info, &e), PN_EFORMAT);
    free(j.data);
    assert_int_equal(pn_image_probe("GIF89a......", 12, "p.gif", &info, &e), PN_EUNSUPPORTED);
    assert_int_equal(pn_image_probe("not an image", 12, "p.txt", &info, &e), PN_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_gray),
        cmocka_unit_test(test_jpeg_rgb_gray_content),
        cmocka_unit_test(test_jpeg_rgb_color),
        cmocka_unit_test(test_jpeg_cmyk),
        cmocka_unit_test(test_jpeg_progressive_restart),
        cmocka_unit_test(test_jpeg_exif_orientation),
        cmocka_unit_test(test_jpeg_dct_scaling),
        cmocka_unit_test(test_decode_file_matches_memory),
        cmocka_unit_test(test_png_variants),
        cmocka_unit_test(test_png_write_roundtrip),
        cmocka_unit_test(test_png_streamed),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_real_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
