/* Grad-CAM overlay: bilinear upsampling, turbo colormap, alpha blend, PNG. */
#include "pneumo/overlay.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>

static float clamp01(float x)
{
    /* NaN fails both comparisons and lands on 0: a broken map shows as "cold". */
    return x > 0.f ? (x < 1.f ? x : 1.f) : 0.f;
}

/* Polynomial fit of turbo by its author (Anton Mikhailov): perceptually
 * smoother than jet, with no table to ship. */
void pn_turbo_rgb(float x, uint8_t rgb[3])
{
    x = clamp01(x);
    float r = 0.13572138f + x * (4.61539260f + x * (-42.66032258f + x * (132.13108234f + x * (-152.94239396f + x * 59.28637943f))));
    float g = 0.09140261f + x * (2.19418839f + x * (4.84296658f + x * (-14.18503333f + x * (4.27729857f + x * 2.82956604f))));
    float b = 0.10667330f + x * (12.64194608f + x * (-60.58204836f + x * (110.36276771f + x * (-89.90310912f + x * 27.34824973f))));
    rgb[0] = (uint8_t)lrintf(clamp01(r) * 255.f);
    rgb[1] = (uint8_t)lrintf(clamp01(g) * 255.f);
    rgb[2] = (uint8_t)lrintf(clamp01(b) * 255.f);
}

/* Source coordinate of output pixel i when n_src cells stretch over n_dst
 * pixels, pixel centres aligned (as in PyTorch's align_corners=False). */
static void source_span(int i, int n_dst, int n_src, int *lo, int *hi, float *frac)
{
    float s = ((float)i + 0.5f) * (float)n_src / (float)n_dst - 0.5f;
    if (s < 0.f)
        s = 0.f;
    *lo = (int)s;
    if (*lo > n_src - 1)
        *lo = n_src - 1;
    *hi = *lo + 1 < n_src ? *lo + 1 : n_src - 1;
    *frac = s - (float)*lo;
}

static float cam_at(const float *cam, int n, int y, int x)
{
    return clamp01(cam[(size_t)y * (size_t)n + (size_t)x]);
}

/* One row of the map upsampled bilinearly to w x h. */
static void cam_row(const float *cam, int n, int w, int h, int y, float *vals)
{
    int y0, y1;
    float fy;
    source_span(y, h, n, &y0, &y1, &fy);
    for (int x = 0; x < w; x++) {
        int x0, x1;
        float fx;
        source_span(x, w, n, &x0, &x1, &fx);
        float top = cam_at(cam, n, y0, x0) * (1.f - fx) + cam_at(cam, n, y0, x1) * fx;
        float bottom = cam_at(cam, n, y1, x0) * (1.f - fx) + cam_at(cam, n, y1, x1) * fx;
        vals[x] = top * (1.f - fy) + bottom * fy;
    }
}

static void blend_row(const uint8_t *gray, const float *vals, int w, int y, float opacity, uint8_t *out)
{
    for (int x = 0; x < w; x++) {
        uint8_t rgb[3];
        pn_turbo_rgb(vals[x], rgb);
        float g = (float)gray[(size_t)y * (size_t)w + (size_t)x];
        for (int c = 0; c < 3; c++)
            out[3 * x + c] = (uint8_t)lrintf((1.f - opacity) * g + opacity * (float)rgb[c]);
    }
}

/* Colour from the map, alpha equal to it: weak evidence stays transparent. */
static void heat_row(const float *vals, int w, uint8_t *out)
{
    for (int x = 0; x < w; x++) {
        pn_turbo_rgb(vals[x], out + 4 * x);
        out[4 * x + 3] = (uint8_t)lrintf(255.f * vals[x]);
    }
}

static pn_status encode_png(const uint8_t *pixels, png_uint_32 format, int w, int h, unsigned char **png,
                            size_t *png_size, pn_error *err)
{
    png_image img = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)w, .height = (png_uint_32)h,
                     .format = format};
    png_alloc_size_t size = 0;
    /* First pass measures, second pass writes into a buffer of that size. */
    if (!png_image_write_to_memory(&img, NULL, &size, 0, pixels, 0, NULL))
        return pn_fail(err, PN_EINTERNAL, "overlay PNG: %s", img.message);
    unsigned char *buf = malloc(size);
    if (!buf)
        return pn_fail(err, PN_ENOMEM, "overlay PNG: out of memory (%zu bytes)", (size_t)size);
    if (!png_image_write_to_memory(&img, buf, &size, 0, pixels, 0, NULL)) {
        free(buf);
        return pn_fail(err, PN_EINTERNAL, "overlay PNG: %s", img.message);
    }
    png_image_free(&img);
    *png = buf;
    *png_size = size;
    return PN_OK;
}

static pn_status check_sizes(const float *cam, int cam_size, int w, int h, pn_error *err)
{
    if (!cam || w < 1 || h < 1 || w > PN_OVERLAY_MAX_SIDE || h > PN_OVERLAY_MAX_SIDE)
        return pn_fail(err, PN_EINVAL, "overlay: image %dx%d outside 1..%d", w, h, PN_OVERLAY_MAX_SIDE);
    if (cam_size < 1 || cam_size > PN_OVERLAY_MAX_SIDE)
        return pn_fail(err, PN_EINVAL, "overlay: Grad-CAM size %d outside 1..%d", cam_size, PN_OVERLAY_MAX_SIDE);
    return PN_OK;
}

/* gray NULL: the RGBA heatmap alone; else the RGB blend at `opacity`. */
static pn_status render(const uint8_t *gray, int w, int h, const float *cam, int cam_size, float opacity,
                        unsigned char **png, size_t *png_size, pn_error *err)
{
    *png = NULL;
    *png_size = 0;
    pn_status st = check_sizes(cam, cam_size, w, h, err);
    if (st)
        return st;
    size_t channels = gray ? 3 : 4;
    uint8_t *pixels = malloc((size_t)w * (size_t)h * channels);
    float *vals = malloc((size_t)w * sizeof(float));
    if (!pixels || !vals) {
        free(pixels);
        free(vals);
        return pn_fail(err, PN_ENOMEM, "overlay: out of memory for %dx%d", w, h);
    }
    for (int y = 0; y < h; y++) {
        uint8_t *row = pixels + (size_t)y * (size_t)w * channels;
        cam_row(cam, cam_size, w, h, y, vals);
        if (gray)
            blend_row(gray, vals, w, y, opacity, row);
        else
            heat_row(vals, w, row);
    }
    st = encode_png(pixels, gray ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA, w, h, png, png_size, err);
    free(pixels);
    free(vals);
    return st;
}

pn_status pn_overlay_png(const uint8_t *gray, int w, int h, const float *cam, int cam_size, float opacity,
                         unsigned char **png, size_t *png_size, pn_error *err)
{
    if (!gray)
        return pn_fail(err, PN_EINVAL, "overlay: no image");
    if (!(opacity >= 0.f && opacity <= 1.f))
        return pn_fail(err, PN_EINVAL, "overlay: opacity %g outside 0..1", (double)opacity);
    return render(gray, w, h, cam, cam_size, opacity, png, png_size, err);
}

pn_status pn_heatmap_png(const float *cam, int cam_size, int w, int h, unsigned char **png,
                         size_t *png_size, pn_error *err)
{
    return render(NULL, w, h, cam, cam_size, 1.0f, png, png_size, err);
}
