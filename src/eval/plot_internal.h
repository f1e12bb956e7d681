/* Minimal plotting kit on cairo shared by the eval plots: a canvas that
 * writes PNG or SVG, data-to-pixel axes with ticks and grid, text and legend. */
#ifndef PNEUMO_EVAL_PLOT_INTERNAL_H
#define PNEUMO_EVAL_PLOT_INTERNAL_H

#include <cairo.h>
#include <stddef.h>

#include "pneumo/error.h"

#define PLOT_FONT "DejaVu Sans"

typedef struct rgb {
    double r, g, b;
} rgb;

/* Tableau-like palette, readable on white and for most colour-blind viewers. */
static const rgb COLOR_BLUE = {0.122, 0.467, 0.706};
static const rgb COLOR_ORANGE = {1.000, 0.498, 0.055};
static const rgb COLOR_GREEN = {0.173, 0.627, 0.173};
static const rgb COLOR_RED = {0.839, 0.153, 0.157};
static const rgb COLOR_GRAY = {0.5, 0.5, 0.5};
static const rgb COLOR_BLACK = {0.1, 0.1, 0.1};

typedef struct canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    const char *path;
    int is_svg;
} canvas;

/* Opens a white width x height canvas for path (".svg" -> SVG, else PNG). */
pn_status ev_canvas_open(canvas *c, const char *path, int width, int height, pn_error *err);
/* Writes the file and frees the canvas (also on error). */
pn_status ev_canvas_close(canvas *c, pn_error *err);

typedef struct axes {
    double left, top, width, height; /* plot area in pixels */
    double x0, x1, y0, y1;           /* data range */
} axes;

double ev_axes_px(const axes *a, double x);
double ev_axes_py(const axes *a, double y);

/* Frame, grid, ticks every step (data units) with labels, title and axis labels. */
void ev_axes_draw(cairo_t *cr, const axes *a, double xstep, double ystep, const char *title,
                  const char *xlabel, const char *ylabel);

/* A 1-2-5 x 10^k step giving about `ticks` intervals over span (> 0). */
double ev_nice_step(double span, int ticks);

/* Text anchored at (x, y): ax/ay = 0 left/top, 0.5 centre, 1 right/bottom. */
void ev_draw_text(cairo_t *cr, double x, double y, double size, int bold, double ax, double ay,
                  const char *text);
void ev_draw_text_vertical(cairo_t *cr, double x, double y, double size, const char *text);

void ev_set_color(cairo_t *cr, rgb c);
/* Polyline through data points (clipped to the plot area). */
void ev_draw_polyline(cairo_t *cr, const axes *a, const double *x, const double *y, size_t n,
                      rgb color, double width, int dashed);
void ev_draw_marker(cairo_t *cr, double px, double py, double radius, rgb fill);

typedef struct legend_entry {
    const char *label;
    rgb color;
    int dashed;
    int marker; /* draw a dot instead of a line */
} legend_entry;

/* Boxed legend with its bottom-right corner (anchor_right=1) or top-left at (x, y). */
void ev_draw_legend(cairo_t *cr, double x, double y, int anchor_right, int anchor_bottom,
                    const legend_entry *entries, size_t n);

#endif
