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
    uint8_t *gray_row;   /* [w] one row as luminance (streamed colour PNGs) */
    uint32_t *sums;      /* [ceil(w / f)] box sums of the output row being built */
    unsigned lo, hi;     /* range of a streamed 16-bit PNG's samples, from the first pass */
    int range_known;
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
typedef struct map16 {
    unsigned shift, lo;
    uint64_t range;
} map16;

/* lo..hi: the smallest and largest stored 16-bit sample of the image. */
static map16 map16_from_range(unsigned lo, unsigned hi, int sig_bits)
{
    unsigned shift = 0;
    if (sig_bits) {
        unsigned top = (1u << sig_bits) - 1;
        shift = hi > top ? 16 - (unsigned)sig_bits : 0;
        lo = 0;
        hi = top;
    }
    return (map16){.shift = shift, .lo = lo, .range = hi - lo};
}

static void sample16_range(const uint8_t *buf, size_t n, unsigned *lo, unsigned *hi)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = sample16(buf, i);
        *lo = v < *lo ? v : *lo;
        *hi = v > *hi ? v : *hi;
    }
}

static void map16_apply(const map16 *m, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = sample16(buf, i) >> m->shift;
        buf[i] = m->range ? (uint8_t)(((uint64_t)(v - m->lo) * 255 + m->range / 2) / m->range) : (uint8_t)(v >> 8);
    }
}

static void map_16_to_8(uint8_t *buf, size_t n, int sig_bits)
{
    unsigned lo = 65535, hi = 0;
    sample16_range(buf, n, &lo, &hi);
    map16 m = map16_from_range(lo, hi, sig_bits);
    map16_apply(&m, buf, n);
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

/* First of two streamed passes over a 16-bit PNG: the range of its samples,
 * read one row at a time (the mapping to 8 bits needs it before any row). */
static pn_status scan_range16(png_structp png, png_ctx *ctx, const char *name, png_uint_32 w, png_uint_32 h,
                              size_t comps, pn_error *err)
{
    ctx->raw = malloc((size_t)w * comps * 2);
    if (!ctx->raw)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w, (unsigned)h);
    ctx->lo = 65535;
    ctx->hi = 0;
    for (png_uint_32 y = 0; y < h; y++) {
        png_read_row(png, ctx->raw, NULL);
        sample16_range(ctx->raw, (size_t)w * comps, &ctx->lo, &ctx->hi);
    }
    png_read_end(png, NULL);
    ctx->range_known = 1;
    return PN_OK;
}

/* Reads one row at a time (16-bit rows mapped to 8 bits with m) and averages
 * f x f boxes into out (the last box of a row or column may be smaller):
 * memory is one input row, one row of sums and the down-scaled image,
 * whatever the height. */
static pn_status decode_streamed(png_structp png, png_ctx *ctx, const char *name, png_uint_32 w, png_uint_32 h,
                                 size_t comps, size_t bytes, const map16 *m, int f, pn_image *out, pn_error *err)
{
    size_t ow = (w + (size_t)f - 1) / (size_t)f, oh = (h + (size_t)f - 1) / (size_t)f;
    ctx->raw = malloc((size_t)w * comps * bytes);
    ctx->gray_row = malloc(w);
    ctx->sums = calloc(ow, sizeof *ctx->sums);
    out->pixels = malloc(ow * oh);
    if (!ctx->raw || !ctx->gray_row || !ctx->sums || !out->pixels)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w, (unsigned)h);
    size_t colored = 0;
    for (png_uint_32 y = 0; y < h; y++) {
        png_read_row(png, ctx->raw, NULL);
        if (bytes == 2)
            map16_apply(m, ctx->raw, (size_t)w * comps);
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
    int sig_bits = significant_bits(png, info);
    png_set_expand(png);     /* palette -> RGB, low bit depths -> 8, tRNS -> alpha */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t comps = png_get_channels(png, info);
    size_t bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    if (comps != 1 && comps != 3)
        return pn_fail(err, PN_EINTERNAL, "%s: PNG gave %zu channels after expansion", name, comps);
    int f = stream_factor(png, info, w, h, min_w, min_h);
    if (f > 1 && bytes == 2 && !ctx->range_known)
        return scan_range16(png, ctx, name, w, h, comps, err);
    if (f > 1) {
        map16 m = map16_from_range(ctx->lo, ctx->hi, sig_bits);
        return decode_streamed(png, ctx, name, w, h, comps, bytes, &m, f, out, err);
    }
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

/* One libpng pass over the file; a streamed 16-bit PNG takes two (the first
 * only finds the range of its samples, leaving ctx->range_known set). */
static pn_status decode_pass(png_ctx *ctx, const char *name, int min_w, int min_h, pn_image *out,
                             pn_error *err)
{
    ctx->pos = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return pn_fail(err, PN_ENOMEM, "%s: cannot create PNG decoder", name);
    }
    pn_status st;
    if (setjmp(png_jmpbuf(png))) {
        st = pn_fail(err, PN_EFORMAT, "%s: corrupt or truncated PNG: %s", name, ctx->msg);
        pn_image_free(out);
    } else {
        st = decode(png, info, ctx, name, min_w, min_h, out, err);
        if (st)
            pn_image_free(out);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx->raw);
    free(ctx->rows);
    free(ctx->gray_row);
    free(ctx->sums);
    ctx->raw = NULL;
    ctx->rows = NULL;
    ctx->gray_row = NULL;
    ctx->sums = NULL;
    return st;
}

pn_status pn_decode_png(const uint8_t *data, size_t size, const char *name, int min_w, int min_h,
                        pn_image *out, pn_error *err)
{
    png_ctx ctx = {.data = data, .size = size};
    pn_status st = decode_pass(&ctx, name, min_w, min_h, out, err);
    if (!st && ctx.range_known)
        st = decode_pass(&ctx, name, min_w, min_h, out, err);
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
