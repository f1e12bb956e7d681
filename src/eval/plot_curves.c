/* ROC, precision-recall and reliability plots. */
#include "eval/eval_internal.h"
#include "eval/plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PLOT_W 800
#define PLOT_H 640

static const axes unit_axes = {95, 70, PLOT_W - 95 - 40, PLOT_H - 70 - 80, 0, 1, 0, 1};

/* Point metrics plus the sorted scores the curves are drawn from. */
static pn_status prepare(const float *prob, const int *label, size_t n, float threshold,
                         pn_metrics *m, sorted_scores *s, pn_error *err)
{
    pn_status st = pn_metrics_compute(prob, label, n, threshold, m, err);
    if (st)
        return st;
    if (m->n_pos == 0 || m->n_neg == 0)
        return pn_fail(err, PN_EINVAL, "plot: curves need both classes (%zu PNEUMONIA, %zu NORMAL)",
                       m->n_pos, m->n_neg);
    return ev_sorted_scores_init(s, prob, label, n, err);
}

typedef pn_status (*curve_points_fn)(const sorted_scores *s, double **x, double **y, size_t *count,
                                     pn_error *err);

/* What ROC and PR plots share: point metrics, the curve's points, and a canvas
 * with unit axes drawn. On success the caller owns *x, *y and the open canvas. */
static pn_status open_curve_plot(const float *prob, const int *label, size_t n, float threshold,
                                 const char *path, curve_points_fn points, const char *title,
                                 const char *xlabel, const char *ylabel, pn_metrics *m, canvas *c,
                                 double **x, double **y, size_t *count, pn_error *err)
{
    sorted_scores s;
    pn_status st = prepare(prob, label, n, threshold, m, &s, err);
    if (st)
        return st;
    st = points(&s, x, y, count, err);
    ev_sorted_scores_free(&s);
    if (st)
        return st;
    if ((st = ev_canvas_open(c, path, PLOT_W, PLOT_H, err))) {
        free(*x);
        free(*y);
        return st;
    }
    ev_axes_draw(c->cr, &unit_axes, 0.1, 0.1, title, xlabel, ylabel);
    return PN_OK;
}

static void operating_point_label(char *buf, size_t cap, const pn_metrics *m)
{
    snprintf(buf, cap, "Threshold %.3g: sens %.3f, spec %.3f", (double)m->threshold,
             m->sensitivity, m->specificity);
}

pn_status pn_plot_roc(const float *prob, const int *label, size_t n, float threshold,
                      const char *path, pn_error *err)
{
    pn_metrics m;
    canvas c;
    double *fpr, *tpr;
    size_t count;
    pn_status st = open_curve_plot(prob, label, n, threshold, path, ev_roc_points,
                                   "ROC curve (PNEUMONIA = positive)",
                                   "False positive rate (1 - specificity)",
                                   "True positive rate (sensitivity)", &m, &c, &fpr, &tpr, &count, err);
    if (st)
        return st;
    const axes *a = &unit_axes;
    double diag[] = {0, 1};
    ev_draw_polyline(c.cr, a, diag, diag, 2, COLOR_GRAY, 1.5, 1);
    ev_draw_polyline(c.cr, a, fpr, tpr, count, COLOR_BLUE, 2.5, 0);
    ev_draw_marker(c.cr, ev_axes_px(a, 1 - m.specificity), ev_axes_py(a, m.sensitivity), 7, COLOR_RED);
    free(fpr);
    free(tpr);

    char auc[64], op[96];
    snprintf(auc, sizeof auc, "ROC (AUC = %.3f)", m.roc_auc);
    operating_point_label(op, sizeof op, &m);
    legend_entry entries[] = {
        {auc, COLOR_BLUE, 0, 0},
        {"Chance (AUC = 0.5)", COLOR_GRAY, 1, 0},
        {op, COLOR_RED, 0, 1},
    };
    ev_draw_legend(c.cr, a->left + a->width - 12, a->top + a->height - 12, 1, 1, entries, 3);
    return ev_canvas_close(&c, err);
}

pn_status pn_plot_pr(const float *prob, const int *label, size_t n, float threshold,
                     const char *path, pn_error *err)
{
    pn_metrics m;
    canvas c;
    double *recall, *precision;
    size_t count;
    pn_status st = open_curve_plot(prob, label, n, threshold, path, ev_pr_points,
                                   "Precision-recall curve (PNEUMONIA = positive)",
                                   "Recall (sensitivity)", "Precision (PPV)", &m, &c, &recall,
                                   &precision, &count, err);
    if (st)
        return st;
    const axes *a = &unit_axes;
    double prevalence = (double)m.n_pos / (double)m.n;
    double base_x[] = {0, 1}, base_y[] = {prevalence, prevalence};
    ev_draw_polyline(c.cr, a, base_x, base_y, 2, COLOR_GRAY, 1.5, 1);
    /* Step plot (precision holds until the next recall step), which is what
     * average precision integrates. */
    double *sx = malloc(2 * count * sizeof *sx), *sy = malloc(2 * count * sizeof *sy);
    if (!sx || !sy) {
        free(sx), free(sy), free(recall), free(precision);
        ev_canvas_close(&c, NULL);
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", path);
    }
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            sx[k] = recall[i], sy[k++] = precision[i - 1];
        }
        sx[k] = recall[i], sy[k++] = precision[i];
    }
    ev_draw_polyline(c.cr, a, sx, sy, k, COLOR_BLUE, 2.5, 0);
    free(sx), free(sy), free(recall), free(precision);
    if (isfinite(m.precision))
        ev_draw_marker(c.cr, ev_axes_px(a, m.sensitivity), ev_axes_py(a, m.precision), 7, COLOR_RED);

    char ap[64], chance[64], op[96];
    snprintf(ap, sizeof ap, "PR (AP = %.3f)", m.pr_auc);
    snprintf(chance, sizeof chance, "Chance (prevalence = %.3f)", prevalence);
    snprintf(op, sizeof op, "Threshold %.3g: recall %.3f, precision %.3f", (double)m.threshold,
             m.sensitivity, m.precision);
    legend_entry entries[] = {
        {ap, COLOR_BLUE, 0, 0},
        {chance, COLOR_GRAY, 1, 0},
        {op, COLOR_RED, 0, 1},
    };
    ev_draw_legend(c.cr, a->left + 12, a->top + a->height - 12, 0, 1, entries, 3);
    return ev_canvas_close(&c, err);
}

static void draw_reliability(cairo_t *cr, const axes *a, const pn_calibration *cal)
{
    double diag[] = {0, 1};
    ev_draw_polyline(cr, a, diag, diag, 2, COLOR_GRAY, 1.5, 1);
    double x[PN_CALIBRATION_BINS], y[PN_CALIBRATION_BINS];
    size_t k = 0;
    for (int b = 0; b < PN_CALIBRATION_BINS; b++) {
        if (cal->count[b]) {
            x[k] = cal->mean_prob[b];
            y[k++] = cal->frac_pos[b];
        }
    }
    ev_draw_polyline(cr, a, x, y, k, COLOR_BLUE, 2.5, 0);
    for (size_t i = 0; i < k; i++)
        ev_draw_marker(cr, ev_axes_px(a, x[i]), ev_axes_py(a, y[i]), 5, COLOR_BLUE);
}

static void draw_histogram(cairo_t *cr, const axes *a, const pn_calibration *cal)
{
    for (int b = 0; b < PN_CALIBRATION_BINS; b++) {
        double x0 = ev_axes_px(a, b / 10.0) + 1, x1 = ev_axes_px(a, (b + 1) / 10.0) - 1;
        double top = ev_axes_py(a, (double)cal->count[b]);
        cairo_rectangle(cr, x0, top, x1 - x0, ev_axes_py(a, 0) - top);
        cairo_set_source_rgba(cr, COLOR_BLUE.r, COLOR_BLUE.g, COLOR_BLUE.b, 0.55);
        cairo_fill(cr);
    }
}

pn_status pn_plot_calibration(const float *prob, const int *label, size_t n, const char *path,
                              pn_error *err)
{
    pn_calibration cal;
    pn_status st = pn_calibration_compute(prob, label, n, &cal, err);
    if (st)
        return st;
    canvas c;
    if ((st = ev_canvas_open(&c, path, PLOT_W, 800, err)))
        return st;
    axes top = {95, 70, PLOT_W - 95 - 40, 440, 0, 1, 0, 1};
    ev_axes_draw(c.cr, &top, 0.1, 0.1, "Calibration (reliability diagram)", NULL,
              "Observed fraction of PNEUMONIA");
    draw_reliability(c.cr, &top, &cal);
    char ece[64];
    snprintf(ece, sizeof ece, "Model (ECE = %.3f, 10 bins)", cal.ece);
    legend_entry entries[] = {
        {ece, COLOR_BLUE, 0, 0},
        {"Perfectly calibrated", COLOR_GRAY, 1, 0},
    };
    ev_draw_legend(c.cr, top.left + 12, top.top + 12, 0, 0, entries, 2);

    double max_count = 0;
    for (int b = 0; b < PN_CALIBRATION_BINS; b++)
        max_count = fmax(max_count, (double)cal.count[b]);
    double step = fmax(1, ev_nice_step(fmax(max_count, 1), 3));
    axes hist = {95, 560, PLOT_W - 95 - 40, 150, 0, 1, 0, step * ceil(fmax(max_count, 1) / step)};
    ev_axes_draw(c.cr, &hist, 0.1, step, NULL, "Predicted P(pneumonia)", "Count");
    draw_histogram(c.cr, &hist, &cal);
    return ev_canvas_close(&c, err);
}
