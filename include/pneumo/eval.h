/* Evaluation of a binary NORMAL (label 0) vs PNEUMONIA (label 1) classifier:
 * metrics, bootstrap confidence intervals, threshold selection, temperature
 * scaling, plots (cairo, PNG or SVG) and a self-contained HTML report.
 *
 * Conventions used throughout:
 *  - Scores are P(pneumonia) in [0, 1]; an example is predicted PNEUMONIA when
 *    prob >= threshold (the same rule as scikit-learn's `y_score >= t`).
 *  - Positive class = PNEUMONIA, so sensitivity = recall of PNEUMONIA and
 *    specificity = recall of NORMAL.
 *  - A ratio whose denominator is zero (e.g. sensitivity with no positives,
 *    precision with no predicted positives, ROC AUC with one class only) is
 *    NaN, and NaN is written as JSON null. We never substitute 0, which would
 *    look like a measured value.
 *
 * Research and screening-assist tool, not a diagnostic device. */
#ifndef PNEUMO_EVAL_H
#define PNEUMO_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pneumo/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Metrics ----------------------------------------------------------- */

/* Number of equal-width probability bins used by the ECE and the reliability
 * diagram: bin b holds probabilities in [b/10, (b+1)/10), the last bin also 1.0. */
#define PN_CALIBRATION_BINS 10

typedef struct pn_confusion {
    size_t tp, fp, tn, fn;
} pn_confusion;

typedef struct pn_metrics {
    size_t n, n_pos, n_neg;   /* examples, PNEUMONIA, NORMAL */
    float threshold;
    pn_confusion confusion;
    double accuracy;          /* (tp+tn)/n */
    double sensitivity;       /* tp/(tp+fn), recall of PNEUMONIA */
    double specificity;       /* tn/(tn+fp), recall of NORMAL */
    double precision;         /* tp/(tp+fp), positive predictive value */
    double npv;               /* tn/(tn+fn), negative predictive value */
    double f1;                /* 2tp/(2tp+fp+fn) */
    double balanced_accuracy; /* (sensitivity+specificity)/2; NaN unless both classes occur */
    double roc_auc;           /* exact, ties count 1/2 (= sklearn roc_auc_score) */
    double pr_auc;            /* average precision (= sklearn average_precision_score) */
    double brier;             /* mean (prob - label)^2 */
    double ece;               /* sum_b n_b/n * |mean label_b - mean prob_b| over PN_CALIBRATION_BINS */
    double log_loss;          /* mean negative log-likelihood, probs clipped to [1e-15, 1-1e-15] */
} pn_metrics;

/* Needs n >= 1, labels in {0,1} and probabilities in [0,1] (NaN is rejected).
 * O(n log n). */
pn_status pn_metrics_compute(const float *prob, const int *label, size_t n, float threshold,
                             pn_metrics *out, pn_error *err);

/* Reliability diagram data: per bin, the count, the mean predicted probability
 * and the fraction of positives (both NaN for an empty bin). */
typedef struct pn_calibration {
    size_t count[PN_CALIBRATION_BINS];
    double mean_prob[PN_CALIBRATION_BINS];
    double frac_pos[PN_CALIBRATION_BINS];
    double ece;
} pn_calibration;

pn_status pn_calibration_compute(const float *prob, const int *label, size_t n, pn_calibration *out,
                                 pn_error *err);

/* ---- Bootstrap confidence intervals ------------------------------------ */

typedef enum pn_ci_metric {
    PN_CI_ACCURACY,
    PN_CI_SENSITIVITY,
    PN_CI_SPECIFICITY,
    PN_CI_PRECISION,
    PN_CI_F1,
    PN_CI_BALANCED_ACCURACY,
    PN_CI_ROC_AUC,
    PN_CI_PR_AUC,
    PN_CI_COUNT
} pn_ci_metric;

/* 95% percentile intervals (2.5th and 97.5th percentiles, linear interpolation
 * as numpy.percentile) over `resamples` stratified bootstrap resamples: each
 * resample draws n_pos positives from the positives and n_neg negatives from
 * the negatives with replacement, so every resample has both classes.
 * Resamples where a metric is undefined (e.g. no predicted positives for
 * precision) are left out for that metric. */
typedef struct pn_metrics_ci {
    int resamples;
    uint64_t seed;
    double lo[PN_CI_COUNT], hi[PN_CI_COUNT];
} pn_metrics_ci;

#define PN_BOOTSTRAP_DEFAULT_RESAMPLES 1000

/* Deterministic for a given seed. Needs both classes (else PN_EINVAL).
 * O(n log n) once, then O(n) per resample. An interval of zero width (every
 * resample agreed: a few samples, all right) is replaced: sensitivity,
 * specificity, precision and accuracy by their Wilson score interval, the
 * other metrics by NaN, printed as "n too small". */
pn_status pn_metrics_bootstrap(const float *prob, const int *label, size_t n, float threshold,
                               int resamples, uint64_t seed, pn_metrics_ci *out, pn_error *err);

/* 95% Wilson score interval of k successes in n trials; NaN when n = 0. */
void pn_wilson_interval(size_t k, size_t n, double *lo, double *hi);

/* JSON key of a metric ("accuracy", "roc_auc", ...), and its value in m. */
const char *pn_ci_metric_name(pn_ci_metric which);
double pn_metrics_get(const pn_metrics *m, pn_ci_metric which);

/* ---- Threshold selection and calibration ------------------------------- */

typedef struct pn_operating_point {
    float threshold;
    double sensitivity, specificity, youden_j;
} pn_operating_point;

#define PN_DEFAULT_TARGET_SENSITIVITY 0.95

/* Highest threshold (one of the scores) whose sensitivity is >= target, i.e.
 * the most specific operating point that still meets the screening target.
 * Needs positives; target in (0, 1]. */
pn_status pn_threshold_for_sensitivity(const float *prob, const int *label, size_t n, double target,
                                       pn_operating_point *out, pn_error *err);

/* Threshold (one of the scores) maximising Youden's J = sens + spec - 1;
 * on ties the highest such threshold. Needs both classes. */
pn_status pn_threshold_youden(const float *prob, const int *label, size_t n,
                              pn_operating_point *out, pn_error *err);

/* Fits T > 0 minimising the mean NLL of sigmoid(logit / T) by golden-section
 * search on log T over [1e-2, 1e2] (the NLL is unimodal in log T). A result at
 * a bound means the logits carry no usable signal (or are perfectly separated). */
pn_status pn_temperature_fit(const float *logit, const int *label, size_t n, double *temperature,
                             pn_error *err);
/* prob_out[i] = sigmoid(logit[i] / temperature). */
void pn_temperature_apply(const float *logit, size_t n, double temperature, float *prob_out);
/* logit_out[i] = log(p / (1-p)) with p clipped to [1e-7, 1-1e-7], to calibrate
 * a model that only exposes probabilities. */
void pn_prob_to_logit(const float *prob, size_t n, float *logit_out);

/* ---- Text and JSON ----------------------------------------------------- */

/* scikit-learn classification_report layout (digits = 2) for the NORMAL and
 * PNEUMONIA rows, accuracy, macro avg, weighted avg. Undefined values print
 * as "nan". Returns a malloc'ed string (free() it). */
pn_status pn_classification_report(const pn_metrics *m, char **out, pn_error *err);

/* {"n", "n_pos", "n_neg", "accuracy", ..., "threshold", "confusion": {tp,fp,tn,fn},
 *  "ci95": {metric: [lo, hi]} (only when ci != NULL), "ci_resamples", "ci_seed"}.
 * NaN -> null. The caller owns the returned reference (json_decref). */
pn_status pn_metrics_to_json(const pn_metrics *m, const pn_metrics_ci *ci, json_t **out,
                             pn_error *err);

/* ---- Plots (800x600-ish px; PNG, or SVG when path ends in ".svg") ------- */

/* Per-epoch training curves; any array may be NULL (not drawn). */
typedef struct pn_history {
    size_t epochs;
    const float *train_loss, *val_loss;
    const float *train_acc, *val_acc, *val_auc;
} pn_history;

/* The training curves' names in pn_history order: the keys of the model
 * card's "history" object and of the checkpoint's history tensors. */
#define PN_HISTORY_COLUMNS 5
extern const char *const pn_history_keys[PN_HISTORY_COLUMNS];
/* Column k of h (pn_history_keys order). */
const float *pn_history_column(const pn_history *h, int k);
/* {"train_loss":[...], ...} over h->epochs, compact; malloc'ed, NULL when out of memory. */
char *pn_history_to_json(const pn_history *h);
/* Reads what pn_history_to_json wrote: 1 and malloc'ed columns (release with
 * pn_history_free), or 0 and an empty history when text holds no curves. */
int pn_history_from_json(const char *text, pn_history *out);
void pn_history_free(pn_history *h);

/* One tile of the sample-prediction grid. */
typedef struct pn_sample_tile {
    const uint8_t *pixels; /* 8-bit gray, row-major, width*height bytes */
    int width, height;
    int label;             /* true label, 1 = PNEUMONIA */
    float prob;            /* predicted P(pneumonia) */
    const char *name;      /* optional caption line (e.g. file name), may be NULL */
} pn_sample_tile;

pn_status pn_plot_confusion(const pn_metrics *m, const char *path, pn_error *err);
/* k x k counts (row = true class, column = predicted), k in [2, 8]. */
pn_status pn_plot_confusion_matrix(const size_t *cells, int k, const char *const *names,
                                   const char *title, const char *path, pn_error *err);
pn_status pn_plot_roc(const float *prob, const int *label, size_t n, float threshold,
                      const char *path, pn_error *err);
pn_status pn_plot_pr(const float *prob, const int *label, size_t n, float threshold,
                     const char *path, pn_error *err);
pn_status pn_plot_calibration(const float *prob, const int *label, size_t n, const char *path,
                              pn_error *err);
pn_status pn_plot_history(const pn_history *h, const char *path, pn_error *err);
pn_status pn_plot_samples(const pn_sample_tile *tiles, size_t count, float threshold,
                          const char *path, pn_error *err);

/* ---- Report ------------------------------------------------------------ */

typedef struct pn_report_input {
    const char *model_name;        /* required */
    const char *model_info;        /* optional free text (architecture, training run, ...) */
    const char *dataset_path;      /* optional */
    const float *prob;             /* n predicted P(pneumonia) */
    const int *label;              /* n true labels */
    size_t n;
    const char *const *file_names; /* optional, n entries: lists the most confident errors */
    float threshold;
    const char *threshold_note;    /* optional: how the threshold was chosen */
    const pn_history *history;     /* optional */
    const pn_sample_tile *samples; /* optional grid */
    size_t n_samples;
    int bootstrap_resamples;       /* 0 = PN_BOOTSTRAP_DEFAULT_RESAMPLES */
    uint64_t seed;
    const char *extra_html;        /* optional section after the summary, trusted HTML the caller built */
    const char *const *extra_figures;  /* optional PNG paths, embedded after the standard plots */
    const char *const *extra_captions; /* their captions (escaped here) */
    size_t n_extra_figures;
} pn_report_input;

/* Creates dir if needed and writes confusion_matrix.png, roc_curve.png,
 * pr_curve.png, calibration.png, history.png (with history), samples.png (with
 * samples), metrics.json and report.html (a single file: images are embedded
 * as data URIs). Needs both classes in the labels. */
pn_status pn_report_write(const char *dir, const pn_report_input *in, pn_error *err);

#ifdef __cplusplus
}
#endif
#endif
