/* Seeded augmentation of one 8-bit plane: a single inverse-mapped affine warp
 * (rotation, scale, translation, flip and random resized crop composed, then
 * bilinear sampling once), a brightness/contrast/gamma lookup table, and
 * optional random erasing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

pn_augment pn_augment_none(void)
{
    return (pn_augment){.scale_min = 1, .scale_max = 1, .crop_min_area = 1};
}

pn_augment pn_augment_default(void)
{
    return (pn_augment){.rotate_deg = 10, .translate = 0.1f, .scale_min = 0.9f,
                        .scale_max = 1.1f, .brightness = 0.1f, .contrast = 0.1f,
                        .gamma = 0.1f, .crop_min_area = 1};
}

pn_augment pn_augment_strong(void)
{
    return (pn_augment){.rotate_deg = 10, .translate = 0.06f, .scale_min = 0.9f,
                        .scale_max = 1.1f, .brightness = 0.2f, .contrast = 0.2f,
                        .gamma = 0.25f, .crop_min_area = 0.7f, .erase_prob = 0.25f,
                        .blur_prob = 0.2f, .noise_std = 0.02f};
}

const char *const pn_augment_preset_names[PN_AUG_PRESET_COUNT] = {"default", "strong"};
_Static_assert(PN_AUG_PRESET_COUNT == 2, "pn_augment_preset_names lists every preset");

pn_augment pn_augment_from_preset(pn_augment_preset p)
{
    return p == PN_AUG_STRONG ? pn_augment_strong() : pn_augment_default();
}

int pn_augment_preset_parse(const char *name)
{
    for (int i = 0; i < PN_AUG_PRESET_COUNT; i++)
        if (!strcmp(name, pn_augment_preset_names[i]))
            return i;
    return -1;
}

static double uniform(uint64_t *rng, double lo, double hi)
{
    return lo + (hi - lo) * pn_rand_unit(rng);
}

/* src = (ax*x + bx*y + cx, ay*x + by*y + cy) for an output pixel (x, y). */
typedef struct warp {
    double ax, bx, cx, ay, by, cy;
} warp;

static warp draw_warp(const pn_augment *a, uint64_t *rng, int w, int h)
{
    double th = uniform(rng, -a->rotate_deg, a->rotate_deg) * M_PI / 180.0;
    double s = uniform(rng, a->scale_min, a->scale_max);
    double tx = uniform(rng, -a->translate, a->translate) * w;
    double ty = uniform(rng, -a->translate, a->translate) * h;
    double flip = a->hflip && pn_rand_unit(rng) < 0.5 ? -1.0 : 1.0;
    /* Random resized crop: region of area fraction `area`, aspect in [3/4, 4/3]. */
    double kx = 1, ky = 1, ccx = (w - 1) / 2.0, ccy = (h - 1) / 2.0;
    if (a->crop_min_area < 1) {
        double area = uniform(rng, a->crop_min_area, 1);
        double ratio = exp(uniform(rng, log(3.0 / 4), log(4.0 / 3)));
        kx = fmin(1, sqrt(area * ratio));
        ky = fmin(1, sqrt(area / ratio));
        ccx += uniform(rng, -0.5, 0.5) * (1 - kx) * w;
        ccy += uniform(rng, -0.5, 0.5) * (1 - ky) * h;
    }
    double c = cos(th), sn = sin(th), ox = (w - 1) / 2.0, oy = (h - 1) / 2.0;
    /* Inverse of: crop -> flip -> rotate -> scale -> translate, about the centre. */
    warp m;
    m.ax = kx * flip * c / s;
    m.bx = kx * flip * sn / s;
    m.ay = -ky * sn / s;
    m.by = ky * c / s;
    m.cx = ccx - m.ax * (ox + tx) - m.bx * (oy + ty);
    m.cy = ccy - m.ay * (ox + tx) - m.by * (oy + ty);
    return m;
}

static void apply_warp(const warp *m, const uint8_t *src, int w, int h, uint8_t *dst)
{
    for (int y = 0; y < h; y++) {
        double sx = m->bx * y + m->cx, sy = m->by * y + m->cy;
        uint8_t *out = dst + (size_t)y * w;
        for (int x = 0; x < w; x++, sx += m->ax, sy += m->ay) {
            /* Outside the source is black, like letterbox padding. */
            if (sx <= -1 || sy <= -1 || sx >= w || sy >= h) {
                out[x] = 0;
                continue;
            }
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            float fx = (float)(sx - x0), fy = (float)(sy - y0);
            int x1 = x0 + 1, y1 = y0 + 1;
            float p00 = x0 >= 0 && y0 >= 0 ? src[(size_t)y0 * w + x0] : 0;
            float p01 = x1 < w && y0 >= 0 ? src[(size_t)y0 * w + x1] : 0;
            float p10 = x0 >= 0 && y1 < h ? src[(size_t)y1 * w + x0] : 0;
            float p11 = x1 < w && y1 < h ? src[(size_t)y1 * w + x1] : 0;
            float v = (1 - fy) * ((1 - fx) * p00 + fx * p01) + fy * ((1 - fx) * p10 + fx * p11);
            out[x] = (uint8_t)(v + 0.5f);
        }
    }
}

/* Gamma, then contrast about the image mean, then brightness, as one LUT. */
static void apply_intensity(const pn_augment *a, uint64_t *rng, uint8_t *img, size_t n)
{
    double gamma = exp(uniform(rng, -a->gamma, a->gamma));
    double contrast = uniform(rng, 1 - a->contrast, 1 + a->contrast);
    double bright = uniform(rng, -a->brightness, a->brightness) * 255;
    double g[256], sum = 0;
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++)
        hist[img[i]]++;
    for (int v = 0; v < 256; v++) {
        g[v] = 255 * pow(v / 255.0, gamma);
        sum += g[v] * hist[v];
    }
    double mean = sum / (double)n;
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) {
        double o = (g[v] - mean) * contrast + mean + bright;
        lut[v] = (uint8_t)(o < 0 ? 0 : o > 255 ? 255 : o + 0.5);
    }
    for (size_t i = 0; i < n; i++)
        img[i] = lut[img[i]];
}

/* One rectangle of 2-20% of the area, aspect 0.3-3.3, filled with noise. */
static void apply_erase(uint64_t *rng, uint8_t *img, int w, int h)
{
    double area = uniform(rng, 0.02, 0.2) * w * h;
    double ratio = exp(uniform(rng, log(0.3), log(3.3)));
    int ew = (int)fmin(w, sqrt(area * ratio)), eh = (int)fmin(h, sqrt(area / ratio));
    int x0 = (int)(pn_rand_unit(rng) * (w - ew + 1));
    int y0 = (int)(pn_rand_unit(rng) * (h - eh + 1));
    for (int y = y0; y < y0 + eh; y++)
        for (int x = x0; x < x0 + ew; x++)
            img[(size_t)y * w + x] = (uint8_t)(pn_splitmix64(rng) >> 56);
}

/* A 3x3 binomial ([1 2 1] x [1 2 1] / 16) blur, edges clamped; tmp is w*h. */
static void apply_blur(uint8_t *img, int w, int h, uint8_t *tmp)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *r = img + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            int l = r[x > 0 ? x - 1 : x], c = r[x], rr = r[x + 1 < w ? x + 1 : x];
            tmp[(size_t)y * w + x] = (uint8_t)((l + 2 * c + rr + 2) >> 2);
        }
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *u = tmp + (size_t)(y > 0 ? y - 1 : y) * w, *c = tmp + (size_t)y * w;
        const uint8_t *d = tmp + (size_t)(y + 1 < h ? y + 1 : y) * w;
        for (int x = 0; x < w; x++)
            img[(size_t)y * w + x] = (uint8_t)((u[x] + 2 * c[x] + d[x] + 2) >> 2);
    }
}

/* Additive Gaussian noise (Box-Muller), sigma drawn once per image. */
static void apply_noise(uint64_t *rng, float max_std, uint8_t *img, size_t n)
{
    double sigma = uniform(rng, 0, max_std) * 255;
    for (size_t i = 0; i < n; i++) {
        double u1 = 1 - pn_rand_unit(rng), u2 = pn_rand_unit(rng);
        double v = img[i] + sigma * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        img[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
    }
}

/* The inverse map of rotate (degrees) -> scale -> translate (pixels) about the centre. */
static warp fixed_warp(double deg, double s, double tx, double ty, int w, int h)
{
    double th = deg * M_PI / 180.0, c = cos(th), sn = sin(th);
    double ox = (w - 1) / 2.0, oy = (h - 1) / 2.0;
    warp m = {.ax = c / s, .bx = sn / s, .ay = -sn / s, .by = c / s};
    m.cx = ox - m.ax * (ox + tx) - m.bx * (oy + ty);
    m.cy = oy - m.ay * (ox + tx) - m.by * (oy + ty);
    return m;
}

/* Test-time views: small zooms, shifts and rotations within the training
 * augmentation's range; view 0 is the image itself. */
static const struct {
    float deg, scale, shift_x, shift_y; /* shifts as fractions of the side */
} tta_views[PN_TTA_MAX_VIEWS] = {
    {0, 1, 0, 0},        {0, 1.05f, 0, 0},    {0, 0.95f, 0, 0},
    {0, 1, 0.03f, 0},    {0, 1, -0.03f, 0},   {0, 1, 0, 0.03f},
    {0, 1, 0, -0.03f},   {5, 1, 0, 0},        {-5, 1, 0, 0},
};

pn_status pn_tta_view(int view, const uint8_t *src, int w, int h, uint8_t *dst, pn_error *err)
{
    if (view < 0 || view >= PN_TTA_MAX_VIEWS || w <= 0 || h <= 0)
        return pn_fail(err, PN_EINVAL, "test-time view %d of %d views", view, PN_TTA_MAX_VIEWS);
    if (view == 0) {
        memcpy(dst, src, (size_t)w * h);
        return PN_OK;
    }
    warp m = fixed_warp(tta_views[view].deg, tta_views[view].scale, tta_views[view].shift_x * w,
                        tta_views[view].shift_y * h, w, h);
    apply_warp(&m, src, w, h, dst);
    return PN_OK;
}

static int has_geometry(const pn_augment *a)
{
    return a->rotate_deg != 0 || a->translate != 0 || a->scale_min != 1 || a->scale_max != 1 ||
           a->hflip || a->crop_min_area < 1;
}

pn_status pn_augment_apply(const pn_augment *aug, uint64_t seed, uint64_t epoch, uint64_t index,
                           const uint8_t *src, int w, int h, uint8_t *dst, pn_error *err)
{
    if (w <= 0 || h <= 0 || !(aug->scale_min > 0) || aug->scale_max < aug->scale_min ||
        !(aug->crop_min_area > 0) || aug->crop_min_area > 1)
        return pn_fail(err, PN_EINVAL, "augmentation: bad size or scale/crop range");
    /* The stream depends only on (seed, epoch, index): thread-independent. */
    uint64_t rng = seed;
    rng = pn_splitmix64(&rng) ^ epoch;
    rng = pn_splitmix64(&rng) ^ index;
    pn_splitmix64(&rng);
    if (has_geometry(aug)) {
        warp m = draw_warp(aug, &rng, w, h);
        apply_warp(&m, src, w, h, dst);
    } else {
        memcpy(dst, src, (size_t)w * h);
    }
    if (aug->gamma != 0 || aug->contrast != 0 || aug->brightness != 0)
        apply_intensity(aug, &rng, dst, (size_t)w * h);
    if (aug->blur_prob > 0 && pn_rand_unit(&rng) < aug->blur_prob) {
        uint8_t *tmp = malloc((size_t)w * h); /* w x h, the horizontal pass */
        if (!tmp)
            return pn_fail(err, PN_ENOMEM, "augmentation: out of memory for blur");
        apply_blur(dst, w, h, tmp);
        free(tmp);
    }
    if (aug->noise_std > 0)
        apply_noise(&rng, aug->noise_std, dst, (size_t)w * h);
    if (aug->erase_prob > 0 && pn_rand_unit(&rng) < aug->erase_prob)
        apply_erase(&rng, dst, w, h);
    return PN_OK;
}
