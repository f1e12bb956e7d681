/* Confusion matrix heatmaps (2x2 at a threshold, or k x k): rows = true class, columns = predicted class,
 * colour = row percentage (so both classes read as recall whatever the class
 * balance), each cell shows the count and the row percentage. */
#include "eval/plot_internal.h"
#include "pneumo/eval.h"

#include <math.h>
#include <stdio.h>

static const char *const class_names[2] = {"NORMAL", "PNEUMONIA"};

/* White -> dark blue ramp (like matplotlib's "Blues"). */
static rgb blues(double t)
{
    rgb light = {0.97, 0.98, 1.0}, dark = {0.03, 0.19, 0.42};
    return (rgb){light.r + t * (dark.r - light.r), light.g + t * (dark.g - light.g),
                 light.b + t * (dark.b - light.b)};
}

static void draw_cell(cairo_t *cr, double x, double y, double size, size_t count, double row_total)
{
    double frac = row_total > 0 ? (double)count / row_total : 0;
    ev_set_color(cr, blues(frac));
    cairo_rectangle(cr, x, y, size, size);
    cairo_fill(cr);
    if (frac > 0.5)
        cairo_set_source_rgb(cr, 1, 1, 1);
    else
        ev_set_color(cr, COLOR_BLACK);
    char buf[64];
    snprintf(buf, sizeof buf, "%zu", count);
    ev_draw_text(cr, x + size / 2, y + size / 2 - 14, 30, 1, 0.5, 0.5, buf);
    if (row_total > 0)
        snprintf(buf, sizeof buf, "%.1f%% of row", 100 * frac);
    else
        snprintf(buf, sizeof buf, "no examples");
    ev_draw_text(cr, x + size / 2, y + size / 2 + 22, 16, 0, 0.5, 0.5, buf);
}

static void draw_colorbar(cairo_t *cr, double x, double y, double w, double h)
{
    for (int i = 0; i < (int)h; i++) {
        ev_set_color(cr, blues(1 - i / h));
        cairo_rectangle(cr, x, y + i, w, 1.5);
        cairo_fill(cr);
    }
    ev_set_color(cr, COLOR_BLACK);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x + 0.5, y + 0.5, w, h);
    cairo_stroke(cr);
    const char *ticks[] = {"100%", "75%", "50%", "25%", "0%"};
    for (int i = 0; i < 5; i++)
        ev_draw_text(cr, x + w + 6, y + h * i / 4, 12, 0, 0, 0.5, ticks[i]);
    ev_draw_text_vertical(cr, x + w + 58, y + h / 2, 14, "Row percentage");
}

pn_status pn_plot_confusion_matrix(const size_t *cells, int k, const char *const *names,
                                   const char *title, const char *path, pn_error *err)
{
    if (k < 2 || k > 8)
        return pn_fail(err, PN_EINVAL, "confusion matrix plot: %d classes (2 to 8 supported)", k);
    canvas c;
    pn_status st = ev_canvas_open(&c, path, 800, 640, err);
    if (st)
        return st;
    const double size = 400.0 / k, left = 230, top = 110;
    ev_set_color(c.cr, COLOR_BLACK);
    ev_draw_text(c.cr, 400, 40, 20, 1, 0.5, 0.5, title);
    for (int r = 0; r < k; r++) {
        double row = 0;
        for (int q = 0; q < k; q++)
            row += (double)cells[r * k + q];
        for (int q = 0; q < k; q++)
            draw_cell(c.cr, left + q * size, top + r * size, size, cells[r * k + q], row);
    }
    ev_set_color(c.cr, COLOR_BLACK);
    cairo_set_line_width(c.cr, 1.5);
    cairo_rectangle(c.cr, left, top, k * size, k * size);
    cairo_stroke(c.cr);
    for (int i = 0; i < k; i++) {
        ev_draw_text(c.cr, left + (i + 0.5) * size, top + k * size + 12, 16, 0, 0.5, 0, names[i]);
        ev_draw_text(c.cr, left - 12, top + (i + 0.5) * size, 16, 0, 1, 0.5, names[i]);
    }
    ev_draw_text(c.cr, left + 200, top + 400 + 44, 17, 1, 0.5, 0, "Predicted label");
    cairo_save(c.cr);
    cairo_translate(c.cr, left - 140, top + 200);
    cairo_rotate(c.cr, -M_PI / 2);
    ev_draw_text(c.cr, 0, 0, 17, 1, 0.5, 0.5, "True label");
    cairo_restore(c.cr);
    draw_colorbar(c.cr, left + 400 + 40, top, 22, 400);
    return ev_canvas_close(&c, err);
}

pn_status pn_plot_confusion(const pn_metrics *m, const char *path, pn_error *err)
{
    const pn_confusion *cm = &m->confusion;
    size_t cells[4] = {cm->tn, cm->fp, cm->fn, cm->tp};
    char title[96];
    snprintf(title, sizeof title, "Confusion matrix (threshold %.3g, n = %zu)", (double)m->threshold,
             m->n);
    return pn_plot_confusion_matrix(cells, 2, class_names, title, path, err);
}
