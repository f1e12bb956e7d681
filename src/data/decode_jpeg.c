/* JPEG decoding with libjpeg-turbo. Every libjpeg error *and warning* (a
 * warning is how libjpeg reports truncated or corrupt entropy data) leaves
 * through longjmp and becomes a pn_error, so bad files never yield a
 * half-grey image silently. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "data/internal.h"

typedef struct jpeg_ctx {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    uint8_t *raw;   /* decoded scanlines (1, 3 or 4 channels) */
    uint8_t *gray;
} jpeg_ctx;

static void on_error(j_common_ptr cinfo)
{
    jpeg_ctx *ctx = (jpeg_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, ctx->msg);
    longjmp(ctx->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    if (level < 0)  /* warning: corrupt or truncated data */
        on_error(cinfo);
}

static int find_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1) {
            int o = pn_exif_orientation(m->data, m->data_length);
            if (o != 1)
                return o;
        }
    return 1;
}

/* Smallest DCT scale M/8 whose output still covers min_w x min_h. */
static void choose_scale(j_decompress_ptr cinfo, int min_w, int min_h)
{
    if (min_w <= 0 && min_h <= 0)
        return;
    cinfo->scale_denom = 8;
    for (unsigned num = 1; num <= 8; num++) {
        cinfo->scale_num = num;
        jpeg_calc_output_dimensions(cinfo);
        if ((int)cinfo->output_width >= min_w && (int)cinfo->output_height >= min_h)
            return;
    }
}

/* CMYK to RGB in place (stride 4 -> 3). Photoshop-style Adobe files store
 * CMYK inverted (0 = full ink), which libjpeg passes through unchanged. */
static void cmyk_to_rgb(uint8_t *p, size_t n, int inverted)
{
    for (size_t i = 0; i < n; i++) {
        int c = p[4 * i], m = p[4 * i + 1], y = p[4 * i + 2], k = p[4 * i + 3];
        if (!inverted) {
            c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k;
        }
        p[3 * i] = (uint8_t)((c * k + 127) / 255);
        p[3 * i + 1] = (uint8_t)((m * k + 127) / 255);
        p[3 * i + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

static pn_status decode(j_decompress_ptr cinfo, jpeg_ctx *ctx, const char *name, int min_w,
                        int min_h, pn_image *out, pn_error *err)
{
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);
    uint64_t pixels = (uint64_t)cinfo->image_width * cinfo->image_height;
    if (pixels == 0)
        return pn_fail(err, PN_EFORMAT, "%s: JPEG has zero width or height", name);
    if (pixels > PN_IMAGE_MAX_PIXELS)
        return pn_fail(err, PN_ELIMIT, "%s: JPEG is %ux%u, more than the %u pixel limit", name,
                       cinfo->image_width, cinfo->image_height, PN_IMAGE_MAX_PIXELS);
    int orientation = find_orientation(cinfo);
    if (orientation >= 5) {  /* target is in displayed orientation */
        int t = min_w;
        min_w = min_h;
        min_h = t;
    }
    int cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
    if (cinfo->num_components == 1)
        cinfo->out_color_space = JCS_GRAYSCALE;
    else if (cmyk)
        cinfo->out_color_space = JCS_CMYK;
    else if (cinfo->num_components == 3)
        cinfo->out_color_space = JCS_RGB;
    else
        return pn_fail(err, PN_EUNSUPPORTED, "%s: JPEG with %d colour components", name,
                       cinfo->num_components);
    choose_scale(cinfo, min_w, min_h);
    jpeg_start_decompress(cinfo);
    size_t w = cinfo->output_width, h = cinfo->output_height;
    size_t comps = (size_t)cinfo->output_components;
    ctx->raw = malloc(w * h * comps);
    if (!ctx->raw)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %zux%zu JPEG", name, w, h);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = ctx->raw + (size_t)cinfo->output_scanline * w * comps;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);

    int is_color = 0;
    if (comps == 1) {
        ctx->gray = ctx->raw;
        ctx->raw = NULL;
    } else {
        if (comps == 4)
            cmyk_to_rgb(ctx->raw, w * h, cinfo->saw_Adobe_marker);
        ctx->gray = malloc(w * h);
        if (!ctx->gray)
            return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %zux%zu JPEG", name, w, h);
        is_color = pn_rgb_to_gray(ctx->raw, w * h, ctx->gray);
    }
    out->w = (int)w;
    out->h = (int)h;
    out->src_w = (int)cinfo->image_width;
    out->src_h = (int)cinfo->image_height;
    out->pixels = ctx->gray;
    out->is_color = is_color;
    ctx->gray = NULL;
    pn_status st = pn_image_orient(out, orientation, err);
    if (st) {
        pn_image_free(out);
        return pn_error_prefix(err, st, "%s: ", name);
    }
    return PN_OK;
}

pn_status pn_probe_jpeg(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                        pn_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.mgr);
    ctx.mgr.error_exit = on_error;
    ctx.mgr.emit_message = on_message;
    pn_status st = PN_OK;
    if (setjmp(ctx.jump)) {
        st = pn_fail(err, PN_EFORMAT, "%s: corrupt or truncated JPEG header: %s", name, ctx.msg);
    } else {
        jpeg_create_decompress(&cinfo);
        jpeg_mem_src(&cinfo, data, (unsigned long)size);
        jpeg_read_header(&cinfo, TRUE); /* markers only: no scan is decoded */
        *info = (pn_image_info){.format = "JPEG", .w = (int)cinfo.image_width, .h = (int)cinfo.image_height,
                                .bit_depth = cinfo.data_precision, .channels = cinfo.num_components};
    }
    jpeg_destroy_decompress(&cinfo);
    return st;
}

pn_status pn_decode_jpeg(const uint8_t *data, size_t size, const char *name, int min_w,
                         int min_h, pn_image *out, pn_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.mgr);
    ctx.mgr.error_exit = on_error;
    ctx.mgr.emit_message = on_message;
    pn_status st;
    if (setjmp(ctx.jump)) {
        st = pn_fail(err, PN_EFORMAT, "%s: corrupt or truncated JPEG: %s", name, ctx.msg);
        pn_image_free(out);
    } else {
        jpeg_create_decompress(&cinfo);
        jpeg_mem_src(&cinfo, data, (unsigned long)size);
        st = decode(&cinfo, &ctx, name, min_w, min_h, out, err);
    }
    jpeg_destroy_decompress(&cinfo);
    free(ctx.raw);
    free(ctx.gray);
    return st;
}
