/* Training history: loss (left) and accuracy / AUC (right) per epoch,
 * training in blue, validation in orange (AUC dashed green). */
#include "eval/plot_internal.h"
#include "pneumo/eval.h"

#include <math.h>
#include <stdlib.h>

typedef struct series {
    const float *values;
    const char *label;
    rgb color;
    int dashed;
} series;

static void value_range(const series *s, size_t n_series, size_t epochs, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t k = 0; k < n_series; k++)
        for (size_t e = 0; s[k].values && e < epochs; e++)
            if (isfinite(s[k].values[e])) {
                *lo = fmin(*lo, s[k].values[e]);
                *hi = fmax(*hi, s[k].values[e]);
            }
    if (!isfinite(*lo))
        *lo = 0, *hi = 1;
}

/* legend_bottom: losses fall and scores rise, so the legend goes where the
 * curves end up not being (top right for loss, bottom right for scores). */
static void draw_panel(cairo_t *cr, axes *a, const series *s, size_t n_series, size_t epochs,
                       double ystep, const char *title, const char *ylabel, const double *xs,
                       double *ys, int legend_bottom)
{
    double xstep = fmax(1, ev_nice_step((double)epochs, 8));
    ev_axes_draw(cr, a, xstep, ystep, title, "Epoch", ylabel);
    legend_entry entries[n_series];
    size_t shown = 0;
    for (size_t k = 0; k < n_series; k++) {
        if (!s[k].values)
            continue;
        for (size_t e = 0; e < epochs; e++)
            ys[e] = s[k].values[e];
        ev_draw_polyline(cr, a, xs, ys, epochs, s[k].color, 2.5, s[k].dashed);
        if (epochs <= 40)
            for (size_t e = 0; e < epochs; e++)
                if (isfinite(ys[e]))
                    ev_draw_marker(cr, ev_axes_px(a, xs[e]), ev_axes_py(a, ys[e]), 3.5, s[k].color);
        entries[shown++] = (legend_entry){s[k].label, s[k].color, s[k].dashed, 0};
    }
    if (shown)
        ev_draw_legend(cr, a->left + a->width - 10, legend_bottom ? a->top + a->height - 10 : a->top + 10,
                    1, legend_bottom, entries, shown);
}

pn_status pn_plot_history(const pn_history *h, const char *path, pn_error *err)
{
    if (!h || h->epochs == 0)
        return pn_fail(err, PN_EINVAL, "%s: training history has no epochs", path ? path : "history");
    if (h->epochs > 100000)
        return pn_fail(err, PN_ELIMIT, "%s: %zu epochs is more than the plot supports", path, h->epochs);
    canvas c;
    pn_status st = ev_canvas_open(&c, path, 1200, 560, err);
    if (st)
        return st;
    size_t E = h->epochs;
    double *xs = malloc(E * sizeof *xs), *ys = malloc(E * sizeof *ys);
    if (!xs || !ys) {
        free(xs);
        free(ys);
        ev_canvas_close(&c, NULL);
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", path);
    }
    for (size_t e = 0; e < E; e++)
        xs[e] = (double)(e + 1);
    /* Half an epoch of padding keeps the first and last markers inside. */
    double x0 = 0.5, x1 = (double)E + 0.5;

    series loss[] = {{h->train_loss, "Train loss", COLOR_BLUE, 0},
                     {h->val_loss, "Validation loss", COLOR_ORANGE, 0}};
    double lo, hi;
    value_range(loss, 2, E, &lo, &hi);
    double ystep = ev_nice_step(fmax(hi, 1e-3), 6);
    axes left = {90, 70, 470, 400, x0, x1, 0, ystep * ceil(fmax(hi, 1e-3) / ystep)};
    draw_panel(c.cr, &left, loss, 2, E, ystep, "Loss", "Loss", xs, ys, 0);

    series acc[] = {{h->train_acc, "Train accuracy", COLOR_BLUE, 0},
                    {h->val_acc, "Validation accuracy", COLOR_ORANGE, 0},
                    {h->val_auc, "Validation ROC AUC", COLOR_GREEN, 1}};
    value_range(acc, 3, E, &lo, &hi);
    /* Zoom in on the interesting top of [0, 1], in steps of 0.1. */
    double bottom = fmax(0, floor(fmin(lo, 1) * 10 - 1) / 10);
    axes right = {690, 70, 470, 400, x0, x1, bottom, 1};
    draw_panel(c.cr, &right, acc, 3, E, 1 - bottom > 0.5 ? 0.1 : 0.05, "Accuracy and ROC AUC",
               "Score", xs, ys, 1);
    free(xs);
    free(ys);
    return ev_canvas_close(&c, err);
}
