/* Text and JSON forms of pn_metrics. */
#include "eval/eval_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* One row of numbers as sklearn's "{:>9.2f}", but NaN always as "nan"
 * (printf may write "-nan"). */
static int put_value(char *buf, size_t cap, double v)
{
    return isnan(v) ? snprintf(buf, cap, " %9s", "nan") : snprintf(buf, cap, " %9.2f", v);
}

typedef struct text_buf {
    char *data;
    size_t len, cap;
} text_buf;

static void append_row(text_buf *t, const char *name, double p, double r, double f, size_t support)
{
    t->len += (size_t)snprintf(t->data + t->len, t->cap - t->len, "%12s ", name);
    t->len += (size_t)put_value(t->data + t->len, t->cap - t->len, p);
    t->len += (size_t)put_value(t->data + t->len, t->cap - t->len, r);
    t->len += (size_t)put_value(t->data + t->len, t->cap - t->len, f);
    t->len += (size_t)snprintf(t->data + t->len, t->cap - t->len, " %9zu\n", support);
}

pn_status pn_classification_report(const pn_metrics *m, char **out, pn_error *err)
{
    /* 7 lines of at most 54 characters. */
    text_buf t = {malloc(1024), 0, 1024};
    if (!t.data)
        return pn_fail(err, PN_ENOMEM, "classification report: out of memory");
    const pn_confusion *c = &m->confusion;
    double f1_normal = 2.0 * (double)c->tn / (double)(2 * c->tn + c->fn + c->fp);
    if (2 * c->tn + c->fn + c->fp == 0)
        f1_normal = ev_nan_value();
    double n = (double)m->n, wn = (double)m->n_neg / n, wp = (double)m->n_pos / n;

    t.len += (size_t)snprintf(t.data, t.cap, "%12s  %9s %9s %9s %9s\n\n", "", "precision", "recall",
                              "f1-score", "support");
    append_row(&t, "NORMAL", m->npv, m->specificity, f1_normal, m->n_neg);
    append_row(&t, "PNEUMONIA", m->precision, m->sensitivity, m->f1, m->n_pos);
    t.len += (size_t)snprintf(t.data + t.len, t.cap - t.len, "\n%12s  %9s %9s", "accuracy", "", "");
    t.len += (size_t)put_value(t.data + t.len, t.cap - t.len, m->accuracy);
    t.len += (size_t)snprintf(t.data + t.len, t.cap - t.len, " %9zu\n", m->n);
    append_row(&t, "macro avg", (m->npv + m->precision) / 2, (m->specificity + m->sensitivity) / 2,
               (f1_normal + m->f1) / 2, m->n);
    append_row(&t, "weighted avg", wn * m->npv + wp * m->precision,
               wn * m->specificity + wp * m->sensitivity, wn * f1_normal + wp * m->f1, m->n);
    *out = t.data;
    return PN_OK;
}

/* jansson refuses NaN reals; an undefined metric is null. */
static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int add_ci(json_t *obj, const pn_metrics_ci *ci)
{
    json_t *ci95 = json_object();
    if (!ci95 || json_object_set_new(obj, "ci95", ci95))
        return -1;
    for (int k = 0; k < PN_CI_COUNT; k++) {
        json_t *pair = json_pack("[oo]", real_or_null(ci->lo[k]), real_or_null(ci->hi[k]));
        if (!pair || json_object_set_new(ci95, pn_ci_metric_name((pn_ci_metric)k), pair))
            return -1;
    }
    return json_object_set_new(obj, "ci_resamples", json_integer(ci->resamples)) ||
           json_object_set_new(obj, "ci_seed", json_integer((json_int_t)ci->seed));
}

/* The float threshold as the shortest decimal that reads back as the same
 * float (0.42f -> 0.42, not 0.419999986887). */
static json_t *float_json(float v)
{
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return isfinite(v) ? json_real(strtod(buf, NULL)) : json_null();
}

pn_status pn_metrics_to_json(const pn_metrics *m, const pn_metrics_ci *ci, json_t **out,
                             pn_error *err)
{
    const pn_confusion *c = &m->confusion;
    json_t *obj = json_pack(
        "{sI sI sI so so so so so so so so so so so so so s{sI sI sI sI}}",
        "n", (json_int_t)m->n, "n_pos", (json_int_t)m->n_pos, "n_neg", (json_int_t)m->n_neg,
        "accuracy", real_or_null(m->accuracy), "sensitivity", real_or_null(m->sensitivity),
        "specificity", real_or_null(m->specificity), "precision", real_or_null(m->precision),
        "npv", real_or_null(m->npv), "f1", real_or_null(m->f1),
        "balanced_accuracy", real_or_null(m->balanced_accuracy), "roc_auc", real_or_null(m->roc_auc),
        "pr_auc", real_or_null(m->pr_auc), "brier", real_or_null(m->brier),
        "ece", real_or_null(m->ece), "log_loss", real_or_null(m->log_loss),
        "threshold", float_json(m->threshold),
        "confusion", "tp", (json_int_t)c->tp, "fp", (json_int_t)c->fp, "tn", (json_int_t)c->tn,
        "fn", (json_int_t)c->fn);
    if (!obj || (ci && add_ci(obj, ci))) {
        json_decref(obj);
        return pn_fail(err, PN_ENOMEM, "metrics JSON: out of memory");
    }
    *out = obj;
    return PN_OK;
}
