/* PNG decoding with libpng. libpng errors and warnings both leave through
 * longjmp and become a pn_error. Ancillary chunks we would ignore anyway
 * (colour profiles, text, time) are skipped unparsed, so their harmless
 * quirks are not warnings and do not reject otherwise good files. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "data/internal.h"

typedef struct png_ctx {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
    uint8_t *raw;
    png_bytep *rows;
    uint8_t *gray_row;   /* [w] one row as luminance (streamed colour PNGs) */
    uint32_t *sums;      /* [ceil(w / f)] box sums of the output row being built */
} png_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    on_error(png, msg);
}

static void read_memory(png_structp png, png_bytep out, png_size_t n)
{
    png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->size - ctx->pos)
        png_error(png, "unexpected end of file");
    memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

static void skip_unused_chunks(png_structp png)
{
    static const png_byte unused[] = "iCCP\0sRGB\0cHRM\0gAMA\0sBIT\0bKGD\0hIST\0pHYs\0sPLT\0"
                                     "tIME\0tEXt\0zTXt\0iTXt\0eXIf\0";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, unused,
                                (int)(sizeof unused - 1) / 5);
}

/* Integer factor f >= 1 such that the f x f box-averaged image still covers
 * min_w x min_h; 1 (no streaming) for interlaced images, whose rows only
 * come complete after the last pass. */
static int stream_factor(png_structp png, png_infop info, png_uint_32 w, png_uint_32 h, int min_w, int min_h)
{
    if (min_w <= 0 || min_h <= 0 || png_get_interlace_type(png, info) != PNG_INTERLACE_NONE)
        return 1;
    png_uint_32 fw = w / (png_uint_32)min_w, fh = h / (png_uint_32)min_h;
    png_uint_32 f = fw < fh ? fw : fh;
    return f < 1 ? 1 : f > 4096 ? 4096 : (int)f;
}

/* Reads one row at a time and averages f x f boxes into out (the last box
 * of a row or column may be smaller): memory is one input row, one row of
 * sums and the down-scaled image, whatever the height. */
static pn_status decode_streamed(png_structp png, png_ctx *ctx, const char *name, png_uint_32 w, png_uint_32 h,
                                 size_t comps, int f, pn_image *out, pn_error *err)
{
    size_t ow = (w + (size_t)f - 1) / (size_t)f, oh = (h + (size_t)f - 1) / (size_t)f;
    ctx->raw = malloc((size_t)w * comps);
    ctx->gray_row = malloc(w);
    ctx->sums = calloc(ow, sizeof *ctx->sums);
    out->pixels = malloc(ow * oh);
    if (!ctx->raw || !ctx->gray_row || !ctx->sums || !out->pixels)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w, (unsigned)h);
    size_t colored = 0;
    for (png_uint_32 y = 0; y < h; y++) {
        png_read_row(png, ctx->raw, NULL);
        const uint8_t *gray = ctx->raw;
        if (comps == 3) {
            colored += pn_rgb_to_gray_count(ctx->raw, w, ctx->gray_row);
            gray = ctx->gray_row;
        }
        for (png_uint_32 x = 0; x < w; x++)
            ctx->sums[x / (png_uint_32)f] += gray[x];
        if ((y + 1) % (png_uint_32)f && y + 1 != h)
            continue;
        size_t oy = y / (png_uint_32)f, rows = y + 1 - oy * (size_t)f;
        for (size_t ox = 0; ox < ow; ox++) {
            size_t cols = w - ox * (size_t)f < (size_t)f ? w - ox * (size_t)f : (size_t)f, n = rows * cols;
            out->pixels[oy * ow + ox] = (uint8_t)((ctx->sums[ox] + n / 2) / n);
            ctx->sums[ox] = 0;
        }
    }
    png_read_end(png, NULL);
    out->w = (int)ow;
    out->h = (int)oh;
    out->src_w = (int)w;
    out->src_h = (int)h;
    out->orientation = 1;
    out->is_color = pn_is_color(colored, (size_t)w * h);
    return PN_OK;
}

static pn_status decode(png_structp png, png_infop info, png_ctx *ctx, const char *name, int min_w,
                        int min_h, pn_image *out, pn_error *err)
{
    png_set_read_fn(png, ctx, read_memory);
    skip_unused_chunks(png);
    png_set_user_limits(png, 1u << 24, 1u << 24);  /* our own pixel limit below is tighter */
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((uint64_t)w * h > PN_IMAGE_MAX_PIXELS)
        return pn_fail(err, PN_ELIMIT, "%s: PNG is %ux%u, more than the %u pixel limit", name,
                       (unsigned)w, (unsigned)h, PN_IMAGE_MAX_PIXELS);
    png_set_expand(png);     /* palette -> RGB, low bit depths -> 8, tRNS -> alpha */
    png_set_scale_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t comps = png_get_channels(png, info);
    if (comps != 1 && comps != 3)
        return pn_fail(err, PN_EINTERNAL, "%s: PNG gave %zu channels after expansion", name, comps);
    int f = stream_factor(png, info, w, h, min_w, min_h);
    if (f > 1)
        return decode_streamed(png, ctx, name, w, h, comps, f, out, err);
    ctx->raw = malloc((size_t)w * h * comps);
    ctx->rows = malloc(h * sizeof *ctx->rows);
    if (!ctx->raw || !ctx->rows)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w,
                       (unsigned)h);
    for (png_uint_32 y = 0; y < h; y++)
        ctx->rows[y] = ctx->raw + (size_t)y * w * comps;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);

    out->w = out->src_w = (int)w;
    out->h = out->src_h = (int)h;
    out->orientation = 1;
    if (comps == 1) {
        out->pixels = ctx->raw;
        ctx->raw = NULL;
        return PN_OK;
    }
    out->pixels = malloc((size_t)w * h);
    if (!out->pixels)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w,
                       (unsigned)h);
    out->is_color = pn_rgb_to_gray(ctx->raw, (size_t)w * h, out->pixels);
    return PN_OK;
}

pn_status pn_probe_png(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                       pn_error *err)
{
    /* Signature, then the IHDR chunk: length 13, "IHDR", width, height, bit
     * depth, colour type, compression, filter, interlace (PNG spec 11.2.2). */
    if (size < 8 + 8 + 13 || memcmp(data + 8, "\0\0\0\x0dIHDR", 8))
        return pn_fail(err, PN_EFORMAT, "%s: corrupt or truncated PNG: no IHDR header", name);
    const uint8_t *h = data + 16;
    uint32_t w = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    uint32_t ht = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
    static const int channels_of_type[7] = {1, 0, 3, 1, 2, 0, 4}; /* 0 = invalid colour type */
    int depth = h[8], type = h[9];
    if (w == 0 || ht == 0 || w > 0x7fffffffu || ht > 0x7fffffffu || type > 6 || !channels_of_type[type] ||
        (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16))
        return pn_fail(err, PN_EFORMAT, "%s: corrupt PNG header", name);
    *info = (pn_image_info){.format = "PNG", .w = (int)w, .h = (int)ht, .bit_depth = depth,
                            .channels = channels_of_type[type]};
    return PN_OK;
}

pn_status pn_decode_png(const uint8_t *data, size_t size, const char *name, int min_w, int min_h,
                        pn_image *out, pn_error *err)
{
    png_ctx ctx = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return pn_fail(err, PN_ENOMEM, "%s: cannot create PNG decoder", name);
    }
    pn_status st;
    if (setjmp(png_jmpbuf(png))) {
        st = pn_fail(err, PN_EFORMAT, "%s: corrupt or truncated PNG: %s", name, ctx.msg);
        pn_image_free(out);
    } else {
        st = decode(png, info, &ctx, name, min_w, min_h, out, err);
        if (st)
            pn_image_free(out);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.raw);
    free(ctx.rows);
    free(ctx.gray_row);
    free(ctx.sums);
    return st;
}

pn_status pn_image_write_png(const char *path, const pn_image *img, pn_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: cannot create file", path);
    png_ctx ctx = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    pn_status st = PN_OK;
    if (!info) {
        st = pn_fail(err, PN_ENOMEM, "%s: cannot create PNG encoder", path);
    } else if (setjmp(png_jmpbuf(png))) {
        st = pn_fail(err, PN_EIO, "%s: writing PNG failed: %s", path, ctx.msg);
    } else {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_GRAY,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < img->h; y++)
            png_write_row(png, img->pixels + (size_t)y * img->w);
        png_write_end(png, info);
    }
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0 && !st)
        st = pn_fail(err, PN_EIO, "%s: write error", path);
    return st;
}
