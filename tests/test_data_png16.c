/* 16-bit PNG to 8 bits, the way DICOM maps stored values without a window:
 * the full range of the sBIT significant bits when present (stored shifted,
 * as the PNG rule says, or unshifted, as many converters write them), else
 * the min-max of the stored values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "pneumo/data.h"
#include "testutil.h"

enum { W = 41, H = 23 };

/* The 8-bit picture every file encodes: covers 0..255. */
static uint8_t picture(int x, int y) { return (uint8_t)((x * 255 / (W - 1) + y * 11) % 256); }

typedef struct png16 {
    int color_type;  /* GRAY, GRAY_ALPHA or RGB */
    int sbit;        /* 0: no sBIT chunk */
    unsigned lo, hi; /* picture value 0 -> lo, 255 -> hi, linearly */
    int shift;       /* left shift applied after scaling (the PNG sBIT rule) */
} png16;

static unsigned stored(const png16 *o, uint8_t v)
{
    return (o->lo + (v * (o->hi - o->lo) + 127) / 255) << o->shift;
}

typedef struct buf {
    uint8_t *data;
    size_t size;
} buf;

static void append(png_structp png, png_bytep data, png_size_t n)
{
    buf *b = png_get_io_ptr(png);
    b->data = realloc(b->data, b->size + n);
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

static void flush_noop(png_structp png) {}

static buf make_png16(const png16 *o)
{
    buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(png, &b, append, flush_noop);
    png_set_IHDR(png, info, W, H, 16, o->color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (o->sbit) {
        png_color_8 sig = {.red = (png_byte)o->sbit, .green = (png_byte)o->sbit, .blue = (png_byte)o->sbit,
                           .gray = (png_byte)o->sbit, .alpha = 16};
        png_set_sBIT(png, info, &sig);
    }
    png_write_info(png, info);
    int ch = o->color_type == PNG_COLOR_TYPE_GRAY ? 1 : o->color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 3;
    uint8_t row[W * 3 * 2]; /* W x ch samples, big endian */
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++)
            for (int c = 0; c < ch; c++) {
                unsigned v = ch == 2 && c == 1 ? 65535 : stored(o, picture(x, y));
                row[(x * ch + c) * 2] = (uint8_t)(v >> 8);
                row[(x * ch + c) * 2 + 1] = (uint8_t)v;
            }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return b;
}

/* Largest |decoded - expected(picture)| over the image. */
static int max_error(const png16 *o, int (*expected)(const png16 *, uint8_t))
{
    buf b = make_png16(o);
    pn_image img = {0};
    pn_error err = {0};
    if (pn_image_decode_memory(b.data, b.size, "gen16.png", 0, 0, &img, &err))
        fail_msg("%s", err.msg);
    free(b.data);
    assert_int_equal(img.w, W);
    assert_int_equal(img.h, H);
    assert_int_equal(img.is_color, 0);
    int worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int d = abs(img.pixels[y * W + x] - expected(o, picture(x, y)));
            worst = d > worst ? d : worst;
        }
    pn_image_free(&img);
    return worst;
}

static int same_picture(const png16 *o, uint8_t v) { return v; }

/* sBIT s: value / (2^s - 1) of full scale, whatever part of it is used. */
static int full_scale_of_sbit(const png16 *o, uint8_t v)
{
    double top = (double)((1u << o->sbit) - 1);
    return (int)(255.0 * (stored(o, v) >> o->shift) / top + 0.5);
}

static void partial_range_without_sbit_is_stretched(void **state)
{
    /* The case: 12-bit data in a 16-bit PNG, no sBIT. */
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY, 0, 0, 4095, 0}, same_picture), 0);
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY, 0, 1000, 3000, 0}, same_picture), 0);
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY, 0, 0, 65535, 0}, same_picture), 0);
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY_ALPHA, 0, 0, 1023, 0}, same_picture), 0);
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_RGB, 0, 20000, 40000, 0}, same_picture), 0);
}

static void sbit_sets_the_range(void **state)
{
    /* 12 significant bits stored the PNG way (shifted left by 4) or unshifted. */
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY, 12, 0, 4095, 4}, same_picture), 0);
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY, 12, 0, 4095, 0}, same_picture), 0);
    assert_int_equal(max_error(&(png16){PNG_COLOR_TYPE_GRAY, 10, 0, 1023, 6}, same_picture), 0);
    /* Values using part of the declared range stay as dark/bright as they are:
     * not stretched (that is what sBIT is for). */
    png16 part = {PNG_COLOR_TYPE_GRAY, 12, 500, 2500, 0};
    assert_int_equal(max_error(&part, full_scale_of_sbit), 0);
    assert_true(max_error(&part, same_picture) > 50);
    png16 part16 = {PNG_COLOR_TYPE_RGB, 16, 0, 4095, 0};
    assert_int_equal(max_error(&part16, full_scale_of_sbit), 0);
}

static void flat_image_keeps_its_level(void **state)
{
    buf b = make_png16(&(png16){PNG_COLOR_TYPE_GRAY, 0, 30000, 30000, 0});
    pn_image img = {0};
    assert_int_equal(pn_image_decode_memory(b.data, b.size, "flat.png", 0, 0, &img, NULL), PN_OK);
    for (int i = 0; i < W * H; i++)
        assert_int_equal(img.pixels[i], 30000 >> 8);
    pn_image_free(&img);
    free(b.data);
}

/* The row-by-row path (a minimum size at most half the image's) maps with
 * the same range as a whole decode: its output is the f x f box average of
 * the whole decode, for every rule above (min-max, sBIT shifted, unshifted,
 * partial sBIT range, flat). */
static void streamed_decode_maps_like_whole(void **state)
{
    static const png16 cases[] = {
        {PNG_COLOR_TYPE_GRAY, 0, 1000, 3000, 0},  {PNG_COLOR_TYPE_RGB, 0, 20000, 40000, 0},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 0, 0, 1023, 0}, {PNG_COLOR_TYPE_GRAY, 12, 0, 4095, 4},
        {PNG_COLOR_TYPE_GRAY, 12, 0, 4095, 0},    {PNG_COLOR_TYPE_GRAY, 12, 500, 2500, 0},
        {PNG_COLOR_TYPE_GRAY, 0, 30000, 30000, 0},
    };
    enum { MIN = 10, F = 2 }; /* min(41 / 10, 23 / 10) */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        buf b = make_png16(&cases[k]);
        pn_image whole = {0}, small = {0};
        pn_error err = {0};
        if (pn_image_decode_memory(b.data, b.size, "whole16.png", 0, 0, &whole, &err) ||
            pn_image_decode_memory(b.data, b.size, "small16.png", MIN, MIN, &small, &err))
            fail_msg("case %zu: %s", k, err.msg);
        int ow = (W + F - 1) / F, oh = (H + F - 1) / F;
        assert_int_equal(small.w, ow);
        assert_int_equal(small.h, oh);
        assert_int_equal(small.src_w, W);
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                unsigned sum = 0, n = 0;
                for (int y = oy * F; y < oy * F + F && y < H; y++)
                    for (int x = ox * F; x < ox * F + F && x < W; x++, n++)
                        sum += whole.pixels[y * W + x];
                if (small.pixels[oy * ow + ox] != (sum + n / 2) / n)
                    fail_msg("case %zu: box (%d,%d) is %d, whole decode's average %u", k, ox, oy,
                             small.pixels[oy * ow + ox], (sum + n / 2) / n);
            }
        pn_image_free(&whole);
        pn_image_free(&small);
        free(b.data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(partial_range_without_sbit_is_stretched),
        cmocka_unit_test(sbit_sets_the_range),
        cmocka_unit_test(flat_image_keeps_its_level),
        cmocka_unit_test(streamed_decode_maps_like_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
