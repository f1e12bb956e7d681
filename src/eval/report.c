/* pn_report_write: plots + metrics.json + one self-contained report.html
 * (plots embedded as base64 data URIs, so the file can be mailed alone). */
#include "eval/eval_internal.h"
#include "pneumo/disclaimer.h"
#include "pneumo/os.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_LISTED_ERRORS 10

static const char *const DISCLAIMER =
    PN_DISCLAIMER " These results describe this model on this dataset only and do not establish "
    "clinical performance. Sensitivity and specificity are both reported because a screening "
    "threshold trades one for the other: a negative result does not rule out pneumonia.";

typedef struct report_ctx {
    const char *dir;
    const pn_report_input *in;
    pn_metrics m;
    pn_metrics_ci ci;
    pn_calibration cal;
    char *class_report;
} report_ctx;

static pn_status join_path(char *buf, size_t cap, const char *dir, const char *name, pn_error *err)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap)
        return pn_fail(err, PN_EINVAL, "%s: report directory path is too long", dir);
    return PN_OK;
}

/* ---- plots ---- */

typedef enum plot_id { PLOT_CONFUSION, PLOT_ROC, PLOT_PR, PLOT_CALIBRATION, PLOT_HISTORY, PLOT_SAMPLES, PLOT_COUNT } plot_id;

static const struct {
    const char *file, *title;
} plots[PLOT_COUNT] = {
    {"confusion_matrix.png", "Confusion matrix"},
    {"roc_curve.png", "ROC curve"},
    {"pr_curve.png", "Precision-recall curve"},
    {"calibration.png", "Calibration"},
    {"history.png", "Training history"},
    {"samples.png", "Sample predictions"},
};

static int plot_wanted(const report_ctx *r, plot_id id)
{
    if (id == PLOT_HISTORY)
        return r->in->history && r->in->history->epochs > 0;
    if (id == PLOT_SAMPLES)
        return r->in->samples && r->in->n_samples > 0;
    return 1;
}

static pn_status render_plot(const report_ctx *r, plot_id id, const char *path, pn_error *err)
{
    const pn_report_input *in = r->in;
    switch (id) {
    case PLOT_CONFUSION: return pn_plot_confusion(&r->m, path, err);
    case PLOT_ROC: return pn_plot_roc(in->prob, in->label, in->n, in->threshold, path, err);
    case PLOT_PR: return pn_plot_pr(in->prob, in->label, in->n, in->threshold, path, err);
    case PLOT_CALIBRATION: return pn_plot_calibration(in->prob, in->label, in->n, path, err);
    case PLOT_HISTORY: return pn_plot_history(in->history, path, err);
    case PLOT_SAMPLES: return pn_plot_samples(in->samples, in->n_samples, in->threshold, path, err);
    case PLOT_COUNT: break;
    }
    return pn_fail(err, PN_EINTERNAL, "report: unknown plot %d", (int)id);
}

static pn_status render_plots(const report_ctx *r, pn_error *err)
{
    char path[4096];
    for (int id = 0; id < PLOT_COUNT; id++) {
        if (!plot_wanted(r, (plot_id)id))
            continue;
        pn_status st = join_path(path, sizeof path, r->dir, plots[id].file, err);
        if (!st)
            st = render_plot(r, (plot_id)id, path, err);
        if (st)
            return st;
    }
    return PN_OK;
}

/* ---- metrics.json ---- */

static json_t *calibration_json(const pn_calibration *cal)
{
    json_t *bins = json_array();
    for (int b = 0; b < PN_CALIBRATION_BINS && bins; b++)
        json_array_append_new(bins, json_pack("{sf sf sI so so}", "lo", b / 10.0, "hi", (b + 1) / 10.0,
                                              "count", (json_int_t)cal->count[b], "mean_prob",
                                              isfinite(cal->mean_prob[b]) ? json_real(cal->mean_prob[b]) : json_null(),
                                              "frac_pos",
                                              isfinite(cal->frac_pos[b]) ? json_real(cal->frac_pos[b]) : json_null()));
    return bins;
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static pn_status write_metrics_json(const report_ctx *r, pn_error *err)
{
    json_t *obj;
    pn_status st = pn_metrics_to_json(&r->m, &r->ci, &obj, err);
    if (st)
        return st;
    json_object_set_new(obj, "model", string_or_null(r->in->model_name));
    json_object_set_new(obj, "model_info", string_or_null(r->in->model_info));
    json_object_set_new(obj, "dataset", string_or_null(r->in->dataset_path));
    json_object_set_new(obj, "threshold_note", string_or_null(r->in->threshold_note));
    json_object_set_new(obj, "calibration_bins", calibration_json(&r->cal));
    char path[4096];
    if (!(st = join_path(path, sizeof path, r->dir, "metrics.json", err)) &&
        json_dump_file(obj, path, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) != 0)
        st = pn_fail(err, PN_EIO, "%s: cannot write: %s", path, strerror(errno));
    json_decref(obj);
    return st;
}

/* ---- report.html ---- */

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static pn_status put_base64_file(FILE *out, const char *path, pn_error *err)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *in = fopen(path, "rb");
    if (!in)
        return pn_fail(err, PN_EIO, "%s: cannot read plot: %s", path, strerror(errno));
    unsigned char b[3];
    size_t got;
    while ((got = fread(b, 1, 3, in)) > 0) {
        uint32_t v = (uint32_t)b[0] << 16 | (got > 1 ? (uint32_t)b[1] << 8 : 0) | (got > 2 ? b[2] : 0);
        char q[4] = {alphabet[v >> 18 & 63], alphabet[v >> 12 & 63],
                     got > 1 ? alphabet[v >> 6 & 63] : '=', got > 2 ? alphabet[v & 63] : '='};
        fwrite(q, 1, 4, out);
    }
    int failed = ferror(in);
    fclose(in);
    return failed ? pn_fail(err, PN_EIO, "%s: read error", path) : PN_OK;
}

static void put_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.4f", v);
    else
        fputs("n/a", f);
}

static void put_metrics_table(FILE *f, const report_ctx *r)
{
    static const struct {
        const char *name, *key, *help;
    } rows[] = {
        {"Sensitivity (recall)", "sensitivity", "PNEUMONIA cases flagged"},
        {"Specificity", "specificity", "NORMAL cases cleared"},
        {"Precision (PPV)", "precision", "flagged cases that are PNEUMONIA"},
        {"NPV", "npv", "cleared cases that are NORMAL"},
        {"Accuracy", "accuracy", ""},
        {"Balanced accuracy", "balanced_accuracy", "mean of sensitivity and specificity"},
        {"F1", "f1", "PNEUMONIA class"},
        {"ROC AUC", "roc_auc", "threshold-free ranking quality"},
        {"PR AUC (average precision)", "pr_auc", ""},
        {"Brier score", "brier", "lower is better"},
        {"ECE (10 bins)", "ece", "expected calibration error, lower is better"},
        {"Log loss", "log_loss", "lower is better"},
    };
    const double values[] = {r->m.sensitivity, r->m.specificity, r->m.precision, r->m.npv,
                             r->m.accuracy, r->m.balanced_accuracy, r->m.f1, r->m.roc_auc,
                             r->m.pr_auc, r->m.brier, r->m.ece, r->m.log_loss};
    fputs("<table class=\"metrics\"><tr><th>Metric</th><th>Value</th><th>95% CI</th><th></th></tr>\n", f);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        fprintf(f, "<tr id=\"m-%s\"><td>%s</td><td>", rows[i].key, rows[i].name);
        put_number(f, values[i]);
        fputs("</td><td>", f);
        for (int k = 0; k < PN_CI_COUNT; k++)
            if (!strcmp(pn_ci_metric_name((pn_ci_metric)k), rows[i].key)) {
                if (!isfinite(r->ci.lo[k])) {
                    fputs("n too small", f);
                    continue;
                }
                put_number(f, r->ci.lo[k]);
                fputs(" &ndash; ", f);
                put_number(f, r->ci.hi[k]);
            }
        fprintf(f, "</td><td class=\"help\">%s</td></tr>\n", rows[i].help);
    }
    fprintf(f, "</table>\n<p class=\"note\">95%% confidence intervals: percentile bootstrap, %d "
               "stratified resamples (seed %llu). Predicted PNEUMONIA when P(pneumonia) &ge; threshold. "
               "n/a = undefined (zero denominator).</p>\n",
            r->ci.resamples, (unsigned long long)r->ci.seed);
}

static void put_confusion_table(FILE *f, const pn_metrics *m)
{
    const pn_confusion *c = &m->confusion;
    fprintf(f,
            "<table class=\"confusion\"><tr><th></th><th>Predicted NORMAL</th><th>Predicted PNEUMONIA</th></tr>\n"
            "<tr><th>True NORMAL</th><td>%zu (TN)</td><td>%zu (FP)</td></tr>\n"
            "<tr><th>True PNEUMONIA</th><td>%zu (FN)</td><td>%zu (TP)</td></tr></table>\n",
            c->tn, c->fp, c->fn, c->tp);
}

typedef struct ranked {
    float prob;
    size_t index;
} ranked;

static int by_prob(const void *a, const void *b)
{
    float x = ((const ranked *)a)->prob, y = ((const ranked *)b)->prob;
    return (x > y) - (x < y);
}

/* The most confident mistakes of one kind (false negatives: lowest scores
 * first; false positives: highest first) are the cases worth a second look. */
static pn_status put_errors(FILE *f, const report_ctx *r, int want_label, pn_error *err)
{
    const pn_report_input *in = r->in;
    ranked *list = malloc(in->n * sizeof *list);
    if (!list)
        return pn_fail(err, PN_ENOMEM, "report: out of memory");
    size_t count = 0;
    for (size_t i = 0; i < in->n; i++) {
        int predicted = in->prob[i] >= in->threshold;
        if (in->label[i] == want_label && predicted != want_label)
            list[count++] = (ranked){want_label ? in->prob[i] : -in->prob[i], i};
    }
    qsort(list, count, sizeof *list, by_prob);
    fprintf(f, "<h3>%s (%zu)</h3>\n", want_label ? "Most confident false negatives" : "Most confident false positives", count);
    if (count) {
        fputs("<table class=\"errors\"><tr><th>File</th><th>P(pneumonia)</th></tr>\n", f);
        for (size_t k = 0; k < count && k < MAX_LISTED_ERRORS; k++) {
            fputs("<tr><td>", f);
            put_escaped(f, in->file_names[list[k].index]);
            fprintf(f, "</td><td>%.4f</td></tr>\n", (double)in->prob[list[k].index]);
        }
        fputs("</table>\n", f);
    }
    free(list);
    return PN_OK;
}

static const char *const STYLE =
    "body{font-family:'DejaVu Sans',Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "h1{margin-bottom:.2em}.disclaimer{border:2px solid #c0392b;background:#fdecea;padding:.8em 1em;border-radius:6px}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}"
    "th{background:#f3f5f8}.metrics td:nth-child(2),.metrics td:nth-child(3){font-family:monospace;text-align:right}"
    ".help,.note{color:#666;font-size:.9em}pre{background:#f6f8fa;padding:.8em;border-radius:4px}"
    "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555}";

static void put_summary(FILE *f, const report_ctx *r)
{
    const pn_report_input *in = r->in;
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&now, &tm));
    fputs("<table class=\"summary\"><tr><th>Model</th><td>", f);
    put_escaped(f, in->model_name);
    if (in->model_info) {
        fputs("<br><span class=\"help\">", f);
        put_escaped(f, in->model_info);
        fputs("</span>", f);
    }
    fputs("</td></tr>\n<tr><th>Dataset</th><td>", f);
    put_escaped(f, in->dataset_path ? in->dataset_path : "(not given)");
    fprintf(f, "</td></tr>\n<tr><th>Examples</th><td>%zu: %zu NORMAL, %zu PNEUMONIA</td></tr>\n"
               "<tr><th>Threshold</th><td>P(pneumonia) &ge; %.4g",
            r->m.n, r->m.n_neg, r->m.n_pos, (double)r->m.threshold);
    if (in->threshold_note) {
        fputs(" (", f);
        put_escaped(f, in->threshold_note);
        fputs(")", f);
    }
    fprintf(f, "</td></tr>\n<tr><th>Generated</th><td>%s</td></tr></table>\n", when);
}

static pn_status put_figures(FILE *f, const report_ctx *r, pn_error *err)
{
    char path[4096];
    for (int id = 0; id < PLOT_COUNT; id++) {
        if (!plot_wanted(r, (plot_id)id) || id == PLOT_CONFUSION)
            continue;
        pn_status st = join_path(path, sizeof path, r->dir, plots[id].file, err);
        if (st)
            return st;
        fprintf(f, "<figure id=\"fig-%s\"><img alt=\"%s\" src=\"data:image/png;base64,", plots[id].file,
                plots[id].title);
        if ((st = put_base64_file(f, path, err)))
            return st;
        fprintf(f, "\"><figcaption>%s</figcaption></figure>\n", plots[id].title);
    }
    for (size_t i = 0; i < r->in->n_extra_figures; i++) {
        fputs("<figure><img alt=\"\" src=\"data:image/png;base64,", f);
        pn_status st = put_base64_file(f, r->in->extra_figures[i], err);
        if (st)
            return st;
        fputs("\"><figcaption>", f);
        put_escaped(f, r->in->extra_captions[i]);
        fputs("</figcaption></figure>\n", f);
    }
    return PN_OK;
}

static pn_status put_html(FILE *f, const report_ctx *r, pn_error *err)
{
    char path[4096];
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<title>pneumo evaluation: ");
    put_escaped(f, r->in->model_name);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>pneumo evaluation report</h1>\n"
               "<p class=\"disclaimer\"><strong>Not a diagnostic device.</strong> %s</p>\n",
            STYLE, DISCLAIMER);
    put_summary(f, r);
    if (r->in->extra_html)
        fputs(r->in->extra_html, f);
    fputs("<h2>Metrics</h2>\n", f);
    put_metrics_table(f, r);
    fputs("<h2>Confusion matrix</h2>\n", f);
    put_confusion_table(f, &r->m);
    pn_status st = join_path(path, sizeof path, r->dir, plots[PLOT_CONFUSION].file, err);
    if (st)
        return st;
    fputs("<figure id=\"fig-confusion_matrix.png\"><img alt=\"Confusion matrix\" src=\"data:image/png;base64,", f);
    if ((st = put_base64_file(f, path, err)))
        return st;
    fputs("\"></figure>\n<h2>Classification report</h2>\n<pre>", f);
    put_escaped(f, r->class_report);
    fputs("</pre>\n<h2>Plots</h2>\n", f);
    if ((st = put_figures(f, r, err)))
        return st;
    if (r->in->file_names) {
        fputs("<h2>Errors worth reviewing</h2>\n", f);
        if ((st = put_errors(f, r, 1, err)) || (st = put_errors(f, r, 0, err)))
            return st;
    }
    fprintf(f, "<hr><p class=\"note\">Generated by pneumo %s. %s</p>\n</body></html>\n",
            PNEUMO_VERSION, DISCLAIMER);
    return PN_OK;
}

static pn_status write_html(const report_ctx *r, pn_error *err)
{
    char path[4096];
    pn_status st = join_path(path, sizeof path, r->dir, "report.html", err);
    if (st)
        return st;
    FILE *f = fopen(path, "w");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: cannot create: %s", path, strerror(errno));
    st = put_html(f, r, err);
    int write_failed = ferror(f);
    if (fclose(f) != 0 || write_failed)
        write_failed = 1;
    if (!st && write_failed)
        st = pn_fail(err, PN_EIO, "%s: write failed (disk full?)", path);
    return st;
}

static pn_status check_report_input(const char *dir, const pn_report_input *in, pn_error *err)
{
    if (!dir || !*dir)
        return pn_fail(err, PN_EINVAL, "report: no output directory");
    if (!in || !in->model_name)
        return pn_fail(err, PN_EINVAL, "report: model name is required");
    if (in->bootstrap_resamples < 0)
        return pn_fail(err, PN_EINVAL, "report: negative bootstrap resample count %d",
                       in->bootstrap_resamples);
    return PN_OK;
}

pn_status pn_report_write(const char *dir, const pn_report_input *in, pn_error *err)
{
    pn_status st = check_report_input(dir, in, err);
    if (st)
        return st;
    report_ctx r = {.dir = dir, .in = in};
    int resamples = in->bootstrap_resamples ? in->bootstrap_resamples : PN_BOOTSTRAP_DEFAULT_RESAMPLES;
    if ((st = pn_metrics_compute(in->prob, in->label, in->n, in->threshold, &r.m, err)) ||
        (st = pn_metrics_bootstrap(in->prob, in->label, in->n, in->threshold, resamples, in->seed,
                                   &r.ci, err)) ||
        (st = pn_calibration_compute(in->prob, in->label, in->n, &r.cal, err)) ||
        (st = pn_classification_report(&r.m, &r.class_report, err)))
        return st;
    if (!(st = pn_make_dir(dir, err)) && !(st = render_plots(&r, err)) &&
        !(st = write_metrics_json(&r, err)))
        st = write_html(&r, err);
    free(r.class_report);
    return st;
}
