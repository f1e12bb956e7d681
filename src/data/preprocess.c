/* Resizing, contrast normalisation and float conversion of 8-bit planes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

/* For one axis, which source pixels feed each destination pixel and how much. */
typedef struct axis_weights {
    int *start, *count;
    float *weight;  /* dn * max_count */
    int max_count;
} axis_weights;

static void axis_free(axis_weights *a)
{
    free(a->start);
    free(a->count);
    free(a->weight);
}

static int axis_init(axis_weights *a, int sn, int dn)
{
    double ratio = (double)sn / dn;
    a->max_count = dn < sn ? (int)ceil(ratio) + 1 : 2;
    a->start = malloc(dn * sizeof *a->start);
    a->count = malloc(dn * sizeof *a->count);
    a->weight = calloc((size_t)dn * a->max_count, sizeof *a->weight);
    if (!a->start || !a->count || !a->weight)
        return -1;
    for (int i = 0; i < dn; i++) {
        float *w = a->weight + (size_t)i * a->max_count;
        if (dn < sn) {
            /* Area average: each source pixel weighs by its overlap with [lo, hi). */
            double lo = i * ratio, hi = (i + 1) * ratio;
            int s0 = (int)floor(lo), s1 = (int)ceil(hi);
            if (s1 > sn)
                s1 = sn;
            a->start[i] = s0;
            a->count[i] = s1 - s0;
            for (int j = s0; j < s1; j++)
                w[j - s0] = (float)((fmin(hi, j + 1) - fmax(lo, j)) / ratio);
        } else {
            /* Bilinear between the two source pixels around this pixel's centre. */
            double c = (i + 0.5) * ratio - 0.5;
            int j0 = (int)floor(c);
            double f = c - j0;
            if (j0 < 0) {
                j0 = 0;
                f = 0;
            }
            if (j0 >= sn - 1) {
                j0 = sn - 1;
                f = 0;
            }
            a->start[i] = j0;
            a->count[i] = f > 0 ? 2 : 1;
            w[0] = (float)(1 - f);
            w[1] = (float)f;
        }
    }
    return 0;
}

pn_status pn_resample(const uint8_t *src, int sw, int sh, int sstride, uint8_t *dst, int dw,
                      int dh, int dstride, pn_error *err)
{
    axis_weights ax = {0}, ay = {0};
    float *tmp = malloc((size_t)sh * dw * sizeof *tmp);
    pn_status st = PN_OK;
    if (!tmp || axis_init(&ax, sw, dw) || axis_init(&ay, sh, dh)) {
        st = pn_fail(err, PN_ENOMEM, "out of memory resizing %dx%d to %dx%d", sw, sh, dw, dh);
        goto done;
    }
    for (int y = 0; y < sh; y++) {
        const uint8_t *row = src + (size_t)y * sstride;
        float *out = tmp + (size_t)y * dw;
        for (int x = 0; x < dw; x++) {
            const float *w = ax.weight + (size_t)x * ax.max_count;
            const uint8_t *p = row + ax.start[x];
            float acc = 0;
            for (int k = 0; k < ax.count[x]; k++)
                acc += w[k] * p[k];
            out[x] = acc;
        }
    }
    for (int y = 0; y < dh; y++) {
        const float *w = ay.weight + (size_t)y * ay.max_count;
        uint8_t *out = dst + (size_t)y * dstride;
        for (int x = 0; x < dw; x++) {
            float acc = 0;
            for (int k = 0; k < ay.count[y]; k++)
                acc += w[k] * tmp[(size_t)(ay.start[y] + k) * dw + x];
            int v = (int)lrintf(acc);
            out[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
done:
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    return st;
}

pn_status pn_image_resize(const pn_image *src, int w, int h, pn_resize_mode mode, pn_image *dst,
                          pn_error *err)
{
    memset(dst, 0, sizeof *dst);
    if (w <= 0 || h <= 0 || src->w <= 0 || src->h <= 0 || !src->pixels)
        return pn_fail(err, PN_EINVAL, "cannot resize %dx%d to %dx%d", src->w, src->h, w, h);
    if (mode != PN_RESIZE_SQUASH && mode != PN_RESIZE_LETTERBOX)
        return pn_fail(err, PN_EINVAL, "unknown resize mode %d", (int)mode);
    uint8_t *pixels = calloc((size_t)w * h, 1);  /* letterbox padding is black */
    if (!pixels)
        return pn_fail(err, PN_ENOMEM, "out of memory for a %dx%d image", w, h);
    int fw = w, fh = h, ox = 0, oy = 0;
    if (mode == PN_RESIZE_LETTERBOX) {
        double s = fmin((double)w / src->w, (double)h / src->h);
        fw = (int)lround(src->w * s);
        fh = (int)lround(src->h * s);
        fw = fw < 1 ? 1 : fw > w ? w : fw;
        fh = fh < 1 ? 1 : fh > h ? h : fh;
        ox = (w - fw) / 2;
        oy = (h - fh) / 2;
    }
    pn_status st = pn_resample(src->pixels, src->w, src->h, src->w, pixels + (size_t)oy * w + ox,
                               fw, fh, w, err);
    if (st) {
        free(pixels);
        return st;
    }
    dst->w = w;
    dst->h = h;
    dst->pixels = pixels;
    dst->is_color = src->is_color;
    dst->orientation = src->orientation;
    return PN_OK;
}

/* Clipped, equalised mapping for the pixels of one tile. */
static void tile_lut(const pn_image *img, int x0, int x1, int y0, int y1, float clip_limit,
                     uint8_t *lut)
{
    unsigned hist[256] = {0};
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            hist[img->pixels[(size_t)y * img->w + x]]++;
    unsigned n = (unsigned)((x1 - x0) * (y1 - y0));
    unsigned clip = (unsigned)fmaxf(1.0f, clip_limit * n / 256.0f);
    unsigned excess = 0;
    for (int i = 0; i < 256; i++)
        if (hist[i] > clip) {
            excess += hist[i] - clip;
            hist[i] = clip;
        }
    /* Clipped counts are spread evenly, remainder over the first bins. */
    for (int i = 0; i < 256; i++)
        hist[i] += excess / 256 + ((unsigned)i < excess % 256);
    unsigned cdf = 0;
    for (int i = 0; i < 256; i++) {
        cdf += hist[i];
        lut[i] = (uint8_t)((cdf * 255u + n / 2) / (n ? n : 1));
    }
}

/* Position of a pixel between tile centres: lower tile index and fraction. */
static void tile_coord(int p, int size, int tiles, int *t0, float *f)
{
    float t = (p + 0.5f) * tiles / size - 0.5f;
    if (t < 0)
        t = 0;
    if (t > tiles - 1)
        t = (float)(tiles - 1);
    *t0 = (int)t;
    if (*t0 >= tiles - 1)
        *t0 = tiles > 1 ? tiles - 2 : 0;
    *f = tiles > 1 ? t - *t0 : 0;
}

pn_status pn_image_clahe(pn_image *img, int tiles, float clip_limit, pn_error *err)
{
    if (tiles < 1 || tiles > img->w || tiles > img->h || clip_limit < 1.0f)
        return pn_fail(err, PN_EINVAL, "CLAHE needs 1 <= tiles <= image side and clip >= 1 "
                       "(got tiles %d, clip %g)", tiles, clip_limit);
    uint8_t *luts = malloc((size_t)tiles * tiles * 256);
    if (!luts)
        return pn_fail(err, PN_ENOMEM, "out of memory for CLAHE");
    for (int ty = 0; ty < tiles; ty++)
        for (int tx = 0; tx < tiles; tx++)
            tile_lut(img, tx * img->w / tiles, (tx + 1) * img->w / tiles, ty * img->h / tiles,
                     (ty + 1) * img->h / tiles, clip_limit, luts + (size_t)(ty * tiles + tx) * 256);
    for (int y = 0; y < img->h; y++) {
        int ty;
        float fy;
        tile_coord(y, img->h, tiles, &ty, &fy);
        int ty1 = ty + (tiles > 1);
        for (int x = 0; x < img->w; x++) {
            int tx;
            float fx;
            tile_coord(x, img->w, tiles, &tx, &fx);
            int tx1 = tx + (tiles > 1);
            uint8_t *p = img->pixels + (size_t)y * img->w + x;
            float a = luts[(size_t)(ty * tiles + tx) * 256 + *p];
            float b = luts[(size_t)(ty * tiles + tx1) * 256 + *p];
            float c = luts[(size_t)(ty1 * tiles + tx) * 256 + *p];
            float d = luts[(size_t)(ty1 * tiles + tx1) * 256 + *p];
            float v = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d);
            *p = (uint8_t)lrintf(v);
        }
    }
    free(luts);
    return PN_OK;
}

pn_norm pn_norm_default(int channels)
{
    pn_norm n = {.channels = channels};
    for (int c = 0; c < 3; c++) {
        n.mean[c] = 0.5f;
        n.std[c] = 0.5f;
    }
    return n;
}

pn_status pn_normalize(const uint8_t *plane, int w, int h, const pn_norm *norm, float *out,
                       pn_error *err)
{
    int C = norm->channels;
    if (C != 1 && C != 3)
        return pn_fail(err, PN_EINVAL, "normalisation supports 1 or 3 channels, not %d", C);
    float lut[3][256];
    for (int c = 0; c < C; c++) {
        if (!(norm->std[c] > 0))
            return pn_fail(err, PN_EINVAL, "normalisation std[%d] must be > 0", c);
        for (int v = 0; v < 256; v++)
            lut[c][v] = (v / 255.0f - norm->mean[c]) / norm->std[c];
    }
    size_t n = (size_t)w * h;
    if (C == 1) {
        for (size_t i = 0; i < n; i++)
            out[i] = lut[0][plane[i]];
    } else {
        for (size_t i = 0; i < n; i++) {
            out[3 * i] = lut[0][plane[i]];
            out[3 * i + 1] = lut[1][plane[i]];
            out[3 * i + 2] = lut[2][plane[i]];
        }
    }
    return PN_OK;
}
