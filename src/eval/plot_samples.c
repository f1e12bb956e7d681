/* Grid of example images with true label, predicted label and probability;
 * green border = correct at the threshold, red = wrong. */
#include "eval/plot_internal.h"
#include "pneumo/eval.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TILE 220      /* image box */
#define CAPTION 64    /* caption height under the image */
#define GAP 24
#define TITLE_H 70
#define MAX_COLS 4
#define MAX_TILES 64
#define MAX_SIDE 8192 /* refuse absurd images before allocating a surface */

static cairo_surface_t *gray_surface(const pn_sample_tile *t)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, t->width, t->height);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < t->height; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)y * (size_t)stride);
        const uint8_t *src = t->pixels + (size_t)y * (size_t)t->width;
        for (int x = 0; x < t->width; x++)
            row[x] = 0x010101u * src[x];
    }
    cairo_surface_mark_dirty(s);
    return s;
}

static pn_status draw_tile(cairo_t *cr, const pn_sample_tile *t, float threshold, double x, double y,
                           pn_error *err)
{
    cairo_surface_t *img = gray_surface(t);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return pn_fail(err, PN_ENOMEM, "sample grid: cannot create a %dx%d image", t->width, t->height);
    }
    double scale = fmin((double)TILE / t->width, (double)TILE / t->height);
    double w = t->width * scale, h = t->height * scale;
    double ix = x + (TILE - w) / 2, iy = y + (TILE - h) / 2;
    cairo_save(cr);
    cairo_translate(cr, ix, iy);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);

    int predicted = t->prob >= threshold;
    int correct = predicted == (t->label != 0);
    ev_set_color(cr, correct ? COLOR_GREEN : COLOR_RED);
    cairo_set_line_width(cr, 6);
    cairo_rectangle(cr, ix - 3, iy - 3, w + 6, h + 6);
    cairo_stroke(cr);

    char line[160];
    ev_set_color(cr, COLOR_BLACK);
    snprintf(line, sizeof line, "True: %s", t->label ? "PNEUMONIA" : "NORMAL");
    ev_draw_text(cr, x + TILE / 2.0, y + TILE + 10, 14, 0, 0.5, 0, line);
    ev_set_color(cr, correct ? COLOR_GREEN : COLOR_RED);
    snprintf(line, sizeof line, "Pred: %s (p = %.2f)", predicted ? "PNEUMONIA" : "NORMAL",
             (double)t->prob);
    ev_draw_text(cr, x + TILE / 2.0, y + TILE + 28, 14, 1, 0.5, 0, line);
    if (t->name) {
        /* Keep long file names inside the tile: show the tail, which is the distinctive part. */
        size_t len = strlen(t->name);
        snprintf(line, sizeof line, "%s%s", len > 30 ? "..." : "", len > 30 ? t->name + len - 27 : t->name);
        ev_set_color(cr, COLOR_GRAY);
        ev_draw_text(cr, x + TILE / 2.0, y + TILE + 46, 12, 0, 0.5, 0, line);
    }
    return PN_OK;
}

pn_status pn_plot_samples(const pn_sample_tile *tiles, size_t count, float threshold,
                          const char *path, pn_error *err)
{
    if (count == 0 || count > MAX_TILES)
        return pn_fail(err, PN_EINVAL, "%s: sample grid needs 1 to %d images, got %zu", path,
                       MAX_TILES, count);
    for (size_t i = 0; i < count; i++)
        if (!tiles[i].pixels || tiles[i].width <= 0 || tiles[i].height <= 0 ||
            tiles[i].width > MAX_SIDE || tiles[i].height > MAX_SIDE)
            return pn_fail(err, PN_EINVAL, "%s: sample %zu has no pixels or a bad size %dx%d", path, i,
                           tiles[i].width, tiles[i].height);
    size_t cols = count < MAX_COLS ? count : MAX_COLS, rows = (count + cols - 1) / cols;
    int grid_w = (int)(cols * (TILE + GAP) + GAP), height = (int)(TITLE_H + rows * (TILE + CAPTION + GAP));
    int width = grid_w < 560 ? 560 : grid_w; /* room for the title with few tiles */
    canvas c;
    pn_status st = ev_canvas_open(&c, path, width, height, err);
    if (st)
        return st;
    char title[96];
    snprintf(title, sizeof title, "Sample predictions (threshold %.3g)", (double)threshold);
    ev_set_color(c.cr, COLOR_BLACK);
    ev_draw_text(c.cr, width / 2.0, 22, 20, 1, 0.5, 0.5, title);
    ev_draw_text(c.cr, width / 2.0, 48, 13, 0, 0.5, 0.5,
              "Green border: correct, red border: wrong");
    double x0 = (width - grid_w) / 2.0;
    for (size_t i = 0; i < count && !st; i++)
        st = draw_tile(c.cr, &tiles[i], threshold, x0 + GAP + (double)(i % cols) * (TILE + GAP),
                       TITLE_H + (double)(i / cols) * (TILE + CAPTION + GAP) + 8, err);
    if (st) {
        ev_canvas_close(&c, NULL);
        return st;
    }
    return ev_canvas_close(&c, err);
}
