/* PNG decoding with libpng. libpng errors and warnings both leave through
 * longjmp and become a pn_error. Ancillary chunks we would ignore anyway
 * (colour profiles, text, time) are skipped unparsed, so their harmless
 * quirks are not warnings and do not reject otherwise good files.
 * 16-bit samples are mapped to 8 bits the way DICOM maps stored values
 * without a window (docs/input-formats.md): the full range of the sBIT
 * significant bits when the file has sBIT, else the min-max of the values. */
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
    static const png_byte unused[] = "iCCP\0sRGB\0cHRM\0gAMA\0bKGD\0hIST\0pHYs\0sPLT\0"
                                     "tIME\0tEXt\0zTXt\0iTXt\0eXIf\0";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, unused,
                                (int)(sizeof unused - 1) / 5);
}

/* Significant bits of the 16-bit colour samples from sBIT (largest of R, G,
 * B for colour), or 0 when the file has none. */
static int significant_bits(png_structp png, png_infop info)
{
    png_color_8p sig = NULL;
    if (png_get_bit_depth(png, info) != 16 || !png_get_sBIT(png, info, &sig) || !sig)
        return 0;
    int bits = sig->gray;
    if (png_get_color_type(png, info) & PNG_COLOR_MASK_COLOR)
        bits = sig->red > sig->green ? sig->red : sig->green, bits = bits > sig->blue ? bits : sig->blue;
    return bits >= 1 && bits <= 16 ? bits : 0;
}

static unsigned sample16(const uint8_t *buf, size_t i) { return (unsigned)buf[2 * i] << 8 | buf[2 * i + 1]; }

/* In place: n big-endian 16-bit samples -> n 8-bit samples at the start of
 * buf. With sig_bits s, [0, 2^s - 1] maps to [0, 255]; values are taken as
 * stored left-shifted (the PNG rule) unless they all fit in s bits (written
 * unshifted, as many converters do). Without sig_bits, [min, max] of the
 * values maps to [0, 255] (a flat image keeps its high byte). */
static void map_16_to_8(uint8_t *buf, size_t n, int sig_bits)
{
    unsigned lo = 65535, hi = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = sample16(buf, i);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    unsigned shift = 0;
    if (sig_bits) {
        unsigned top = (1u << sig_bits) - 1;
        shift = hi > top ? 16 - (unsigned)sig_bits : 0;
        lo = 0;
        hi = top;
    }
    uint64_t range = hi - lo;
    for (size_t i = 0; i < n; i++) {
        unsigned v = sample16(buf, i) >> shift;
        buf[i] = range ? (uint8_t)(((uint64_t)(v - lo) * 255 + range / 2) / range) : (uint8_t)(v >> 8);
    }
}

static pn_status decode(png_structp png, png_infop info, png_ctx *ctx, const char *name,
                        pn_image *out, pn_error *err)
{
    png_set_read_fn(png, ctx, read_memory);
    skip_unused_chunks(png);
    png_set_user_limits(png, 1u << 24, 1u << 24);  /* our own pixel limit below is tighter */
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((uint64_t)w * h > PN_IMAGE_MAX_PIXELS)
        return pn_fail(err, PN_ELIMIT, "%s: PNG is %ux%u, more than the %u pixel limit", name,
                       (unsigned)w, (unsigned)h, PN_IMAGE_MAX_PIXELS);
    int sig_bits = significant_bits(png, info);
    png_set_expand(png);     /* palette -> RGB, low bit depths -> 8, tRNS -> alpha */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t comps = png_get_channels(png, info);
    size_t bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    if (comps != 1 && comps != 3)
        return pn_fail(err, PN_EINTERNAL, "%s: PNG gave %zu channels after expansion", name, comps);
    ctx->raw = malloc((size_t)w * h * comps * bytes);
    ctx->rows = malloc(h * sizeof *ctx->rows);
    if (!ctx->raw || !ctx->rows)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w,
                       (unsigned)h);
    for (png_uint_32 y = 0; y < h; y++)
        ctx->rows[y] = ctx->raw + (size_t)y * w * comps * bytes;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);
    if (bytes == 2)
        map_16_to_8(ctx->raw, (size_t)w * h * comps, sig_bits);

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

pn_status pn_decode_png(const uint8_t *data, size_t size, const char *name, pn_image *out,
                        pn_error *err)
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
        st = decode(png, info, &ctx, name, out, err);
        if (st)
            pn_image_free(out);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.raw);
    free(ctx.rows);
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
