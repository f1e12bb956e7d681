#include "eval/plot_internal.h"

#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

pn_status ev_canvas_open(canvas *c, const char *path, int width, int height, pn_error *err)
{
    memset(c, 0, sizeof *c);
    if (!path || !*path)
        return pn_fail(err, PN_EINVAL, "plot: no output path");
    c->path = path;
    c->is_svg = ends_with(path, ".svg");
    c->surface = c->is_svg ? cairo_svg_surface_create(path, width, height)
                           : cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    if (cairo_surface_status(c->surface) != CAIRO_STATUS_SUCCESS) {
        pn_status st = pn_fail(err, PN_EIO, "%s: cannot create surface: %s", path,
                               cairo_status_to_string(cairo_surface_status(c->surface)));
        cairo_surface_destroy(c->surface);
        c->surface = NULL;
        return st;
    }
    if (c->is_svg) /* default is pt, which browsers scale by 4/3 */
        cairo_svg_surface_set_document_unit(c->surface, CAIRO_SVG_UNIT_PX);
    c->cr = cairo_create(c->surface);
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    return PN_OK;
}

pn_status ev_canvas_close(canvas *c, pn_error *err)
{
    pn_status st = PN_OK;
    cairo_status_t cs = cairo_status(c->cr);
    if (cs != CAIRO_STATUS_SUCCESS)
        st = pn_fail(err, PN_EINTERNAL, "%s: drawing failed: %s", c->path, cairo_status_to_string(cs));
    cairo_destroy(c->cr);
    if (!st && !c->is_svg) {
        cs = cairo_surface_write_to_png(c->surface, c->path);
        if (cs != CAIRO_STATUS_SUCCESS)
            st = pn_fail(err, PN_EIO, "%s: cannot write PNG: %s", c->path, cairo_status_to_string(cs));
    }
    /* For SVG, finishing the surface is what writes the file. */
    cairo_surface_finish(c->surface);
    cs = cairo_surface_status(c->surface);
    if (!st && cs != CAIRO_STATUS_SUCCESS)
        st = pn_fail(err, PN_EIO, "%s: cannot write: %s", c->path, cairo_status_to_string(cs));
    cairo_surface_destroy(c->surface);
    memset(c, 0, sizeof *c);
    return st;
}

double ev_axes_px(const axes *a, double x)
{
    return a->left + (x - a->x0) / (a->x1 - a->x0) * a->width;
}

double ev_axes_py(const axes *a, double y)
{
    return a->top + a->height - (y - a->y0) / (a->y1 - a->y0) * a->height;
}

void ev_set_color(cairo_t *cr, rgb c)
{
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

void ev_draw_text(cairo_t *cr, double x, double y, double size, int bold, double ax, double ay,
                  const char *text)
{
    cairo_select_font_face(cr, PLOT_FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    /* Anchor on the font's cap height, not the ink box, so labels with and
     * without descenders line up. */
    double cap = size * 0.72;
    cairo_move_to(cr, x - ax * te.x_advance, y + cap - ay * cap);
    cairo_show_text(cr, text);
}

void ev_draw_text_vertical(cairo_t *cr, double x, double y, double size, const char *text)
{
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -M_PI / 2);
    ev_draw_text(cr, 0, 0, size, 0, 0.5, 0.5, text);
    cairo_restore(cr);
}

static void format_tick(char *buf, size_t cap, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, cap, "%.*f", decimals, fabs(v) < 1e-12 ? 0.0 : v);
}

void ev_axes_draw(cairo_t *cr, const axes *a, double xstep, double ystep, const char *title,
                  const char *xlabel, const char *ylabel)
{
    char buf[32];
    cairo_set_line_width(cr, 1);
    /* Ticks at multiples of the step, so padded ranges still get round labels. */
    for (int i = (int)ceil(a->x0 / xstep - 1e-9);; i++) {
        double x = i * xstep;
        if (x > a->x1 + 1e-9)
            break;
        double px = round(ev_axes_px(a, x)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px, a->top);
        cairo_line_to(cr, px, a->top + a->height);
        cairo_stroke(cr);
        ev_set_color(cr, COLOR_BLACK);
        format_tick(buf, sizeof buf, x, xstep);
        ev_draw_text(cr, px, a->top + a->height + 8, 13, 0, 0.5, 0, buf);
    }
    for (int i = (int)ceil(a->y0 / ystep - 1e-9);; i++) {
        double y = i * ystep;
        if (y > a->y1 + 1e-9)
            break;
        double py = round(ev_axes_py(a, y)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, a->left, py);
        cairo_line_to(cr, a->left + a->width, py);
        cairo_stroke(cr);
        ev_set_color(cr, COLOR_BLACK);
        format_tick(buf, sizeof buf, y, ystep);
        ev_draw_text(cr, a->left - 8, py, 13, 0, 1, 0.5, buf);
    }
    ev_set_color(cr, COLOR_BLACK);
    cairo_rectangle(cr, a->left + 0.5, a->top + 0.5, a->width, a->height);
    cairo_stroke(cr);
    if (title)
        ev_draw_text(cr, a->left + a->width / 2, a->top - 34, 18, 1, 0.5, 0.5, title);
    if (xlabel)
        ev_draw_text(cr, a->left + a->width / 2, a->top + a->height + 34, 15, 0, 0.5, 0, xlabel);
    if (ylabel)
        ev_draw_text_vertical(cr, a->left - 58, a->top + a->height / 2, 15, ylabel);
}

void ev_draw_polyline(cairo_t *cr, const axes *a, const double *x, const double *y, size_t n,
                      rgb color, double width, int dashed)
{
    cairo_save(cr);
    cairo_rectangle(cr, a->left, a->top, a->width, a->height);
    cairo_clip(cr);
    ev_set_color(cr, color);
    cairo_set_line_width(cr, width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    if (dashed) {
        double dash[] = {7, 5};
        cairo_set_dash(cr, dash, 2, 0);
    }
    int started = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            started = 0; /* a gap, not a jump to the origin */
            continue;
        }
        if (started)
            cairo_line_to(cr, ev_axes_px(a, x[i]), ev_axes_py(a, y[i]));
        else
            cairo_move_to(cr, ev_axes_px(a, x[i]), ev_axes_py(a, y[i]));
        started = 1;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

void ev_draw_marker(cairo_t *cr, double px, double py, double radius, rgb fill)
{
    cairo_new_sub_path(cr);
    cairo_arc(cr, px, py, radius, 0, 2 * M_PI);
    ev_set_color(cr, fill);
    cairo_fill_preserve(cr);
    ev_set_color(cr, COLOR_BLACK);
    cairo_set_line_width(cr, 1.2);
    cairo_stroke(cr);
}

void ev_draw_legend(cairo_t *cr, double x, double y, int anchor_right, int anchor_bottom,
                    const legend_entry *entries, size_t n)
{
    const double size = 14, row = 22, pad = 10, sample = 30;
    double text_w = 0;
    cairo_select_font_face(cr, PLOT_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    for (size_t i = 0; i < n; i++) {
        cairo_text_extents_t te;
        cairo_text_extents(cr, entries[i].label, &te);
        text_w = fmax(text_w, te.x_advance);
    }
    double w = pad * 3 + sample + text_w, h = pad * 2 + row * (double)n - (row - size);
    double left = anchor_right ? x - w : x, top = anchor_bottom ? y - h : y;
    cairo_rectangle(cr, left + 0.5, top + 0.5, w, h);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.92);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (size_t i = 0; i < n; i++) {
        double cy = top + pad + row * (double)i + size / 2;
        if (entries[i].marker) {
            ev_draw_marker(cr, left + pad + sample / 2, cy, 6, entries[i].color);
        } else {
            cairo_save(cr);
            ev_set_color(cr, entries[i].color);
            cairo_set_line_width(cr, 2.5);
            if (entries[i].dashed) {
                double dash[] = {7, 5};
                cairo_set_dash(cr, dash, 2, 0);
            }
            cairo_move_to(cr, left + pad, cy);
            cairo_line_to(cr, left + pad + sample, cy);
            cairo_stroke(cr);
            cairo_restore(cr);
        }
        ev_set_color(cr, COLOR_BLACK);
        ev_draw_text(cr, left + pad * 2 + sample, cy, size, 0, 0, 0.5, entries[i].label);
    }
}

double ev_nice_step(double span, int ticks)
{
    double raw = span / ticks, mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}
