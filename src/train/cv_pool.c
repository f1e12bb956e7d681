/* Pooling the out-of-fold predictions of a cross-validation: temperature,
 * threshold, metrics with CIs, per-fold spread, calibration, three-class
 * figures, and the files that show them. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pneumo/eval.h"
#include "pneumo/nn.h"
#include "train/cv_internal.h"

typedef struct oof_row {
    char *path, *patient;
    int label, subtype, fold;
    float logit;                /* binary logit of the fold's saved model, before temperature */
    float z[3];                 /* three-class logits (classes == 3) */
} oof_row;

typedef struct oof_set {
    oof_row *rows;              /* [n] */
    size_t n, cap;
    int classes, folds;
    float *prob, *prob_raw;     /* [n] P(pneumonia) after / before temperature scaling */
    int *label;                 /* [n] binary labels */
} oof_set;

static void oof_free(oof_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->rows[i].path);
        free(s->rows[i].patient);
    }
    free(s->rows);
    free(s->prob);
    free(s->prob_raw);
    free(s->label);
}

/* One line of val_predictions.csv: "path",patient,label,subtype,fold,logit[,z0,z1,z2]. */
static int parse_row(char *line, int classes, oof_row *r)
{
    if (line[0] != '"')
        return -1;
    char *end = strchr(line + 1, '"');
    if (!end || end[1] != ',')
        return -1;
    *end = '\0';
    char patient[256];
    int used = 0;
    if (sscanf(end + 2, "%255[^,],%d,%d,%d,%f%n", patient, &r->label, &r->subtype, &r->fold,
               &r->logit, &used) != 5)
        return -1;
    if (classes == 3 && sscanf(end + 2 + used, ",%f,%f,%f", &r->z[0], &r->z[1], &r->z[2]) != 3)
        return -1;
    r->path = strdup(line + 1);
    r->patient = strdup(patient);
    return r->path && r->patient ? 0 : -1;
}

static pn_status read_fold(oof_set *s, const char *path, pn_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: %s", path, strerror(errno));
    char line[8192];
    pn_status st = PN_OK;
    int classes = fgets(line, sizeof line, f) && strstr(line, "z_viral") ? 3 : 2;
    if (s->classes && s->classes != classes)
        st = pn_fail(err, PN_EFORMAT, "%s: folds disagree on the number of classes", path);
    s->classes = classes;
    while (!st && fgets(line, sizeof line, f)) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 1024;
            oof_row *rows = realloc(s->rows, cap * sizeof *rows);
            if (!rows) {
                st = pn_fail(err, PN_ENOMEM, "out of memory reading %s", path);
                break;
            }
            s->rows = rows;
            s->cap = cap;
        }
        memset(&s->rows[s->n], 0, sizeof s->rows[s->n]);
        if (parse_row(line, classes, &s->rows[s->n]))
            st = pn_fail(err, PN_EFORMAT, "%s: unreadable row %zu", path, s->n + 1);
        else
            s->n++;
    }
    fclose(f);
    return st;
}

static pn_status read_all(const pn_train_config *c, oof_set *s, pn_error *err)
{
    pn_status st = PN_OK;
    for (int k = 0; !st && k < c->folds; k++) {
        char dir[4096], path[4200];
        pn_cv_fold_dir(c, k, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/val_predictions.csv", dir);
        st = read_fold(s, path, err);
    }
    s->folds = c->folds;
    s->prob = malloc(s->n * sizeof *s->prob);
    s->prob_raw = malloc(s->n * sizeof *s->prob_raw);
    s->label = malloc(s->n * sizeof *s->label);
    if (!st && (!s->prob || !s->prob_raw || !s->label))
        st = pn_fail(err, PN_ENOMEM, "out of memory pooling predictions");
    if (!st && s->n == 0)
        st = pn_fail(err, PN_EINVAL, "no out-of-fold predictions in %s", c->out_dir);
    return st;
}

/* Temperature on the pooled logits, then the sensitivity-rule threshold
 * (halfway to the next lower score, as training does). */
static pn_status fit_operating_point(oof_set *s, double target, double *temperature,
                                     float *threshold, pn_error *err)
{
    float *logit = malloc(s->n * sizeof *logit);
    if (!logit)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n; i++) {
        logit[i] = s->rows[i].logit;
        s->label[i] = s->rows[i].label;
    }
    pn_status st = pn_temperature_fit(logit, s->label, s->n, temperature, err);
    pn_operating_point op;
    if (!st) {
        pn_temperature_apply(logit, s->n, *temperature, s->prob);
        pn_temperature_apply(logit, s->n, 1.0, s->prob_raw);
        st = pn_threshold_for_sensitivity(s->prob, s->label, s->n, target, &op, err);
    }
    if (!st) {
        float below = 0;
        for (size_t i = 0; i < s->n; i++)
            if (s->prob[i] < op.threshold && s->prob[i] > below)
                below = s->prob[i];
        *threshold = 0.5f * (op.threshold + below);
    }
    free(logit);
    return st;
}

/* 95% percentile interval of the ECE over stratified bootstrap resamples. */
static pn_status ece_interval(const float *prob, const int *label, size_t n, uint64_t seed,
                              double ci[2], pn_error *err)
{
    enum { RESAMPLES = 1000 };
    float *bp = malloc(n * sizeof *bp);
    int *bl = malloc(n * sizeof *bl);
    size_t *pos = malloc(n * sizeof *pos), *neg = malloc(n * sizeof *neg), np = 0, nn = 0;
    double *ece = malloc(RESAMPLES * sizeof *ece);
    pn_status st = bp && bl && pos && neg && ece ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++)
        label[i] ? (pos[np++] = i) : (neg[nn++] = i);
    pn_rng rng = pn_rng_seed(seed, 0xece, 0);
    for (int r = 0; !st && r < RESAMPLES; r++) {
        for (size_t i = 0; i < n; i++) {
            size_t j = i < np ? pos[pn_rng_next(&rng) % np] : neg[pn_rng_next(&rng) % (nn ? nn : 1)];
            bp[i] = prob[j];
            bl[i] = label[j];
        }
        pn_calibration cal;
        st = pn_calibration_compute(bp, bl, n, &cal, err);
        ece[r] = cal.ece;
    }
    if (!st) {
        for (int i = 1; i < RESAMPLES; i++) /* insertion sort: 1000 values */
            for (int j = i; j > 0 && ece[j - 1] > ece[j]; j--) {
                double t = ece[j];
                ece[j] = ece[j - 1];
                ece[j - 1] = t;
            }
        ci[0] = ece[(int)(0.025 * (RESAMPLES - 1))];
        ci[1] = ece[(int)(0.975 * (RESAMPLES - 1))];
    }
    free(bp), free(bl), free(pos), free(neg), free(ece);
    return st;
}

/* ---- per-fold spread ---- */

enum { FOLD_METRICS = 5 };
static const char *const fold_metric_names[FOLD_METRICS] = {"roc_auc", "sensitivity", "specificity",
                                                            "accuracy", "f1"};

static double fold_metric(const pn_metrics *m, int k)
{
    const double v[FOLD_METRICS] = {m->roc_auc, m->sensitivity, m->specificity, m->accuracy, m->f1};
    return v[k];
}

/* Each fold's metrics at the pooled temperature and threshold. */
static pn_status per_fold(const oof_set *s, float threshold, pn_metrics *out, pn_error *err)
{
    float *p = malloc(s->n * sizeof *p);
    int *l = malloc(s->n * sizeof *l);
    pn_status st = p && l ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
    for (int k = 0; !st && k < s->folds; k++) {
        size_t m = 0;
        for (size_t i = 0; i < s->n; i++)
            if (s->rows[i].fold == k) {
                p[m] = s->prob[i];
                l[m++] = s->label[i];
            }
        st = m ? pn_metrics_compute(p, l, m, threshold, &out[k], err)
               : pn_fail(err, PN_EINVAL, "fold %d has no predictions", k + 1);
    }
    free(p);
    free(l);
    return st;
}

static json_t *fold_json(const pn_metrics *fm, int folds)
{
    json_t *j = json_object(), *per = json_array();
    for (int f = 0; f < folds; f++) {
        json_t *o = json_object();
        json_object_set_new(o, "n", json_integer((json_int_t)fm[f].n));
        for (int k = 0; k < FOLD_METRICS; k++)
            json_object_set_new(o, fold_metric_names[k], json_real(fold_metric(&fm[f], k)));
        json_array_append_new(per, o);
    }
    json_object_set_new(j, "per_fold", per);
    for (int k = 0; k < FOLD_METRICS; k++) {
        double sum = 0, sq = 0;
        for (int f = 0; f < folds; f++)
            sum += fold_metric(&fm[f], k);
        double mean = sum / folds;
        for (int f = 0; f < folds; f++)
            sq += (fold_metric(&fm[f], k) - mean) * (fold_metric(&fm[f], k) - mean);
        json_object_set_new(j, fold_metric_names[k],
                            json_pack("{s:f, s:f}", "mean", mean, "sd", folds > 1 ? sqrt(sq / (folds - 1)) : 0.0));
    }
    return j;
}

/* ---- three classes ---- */

static const char *const class3_names[3] = {"NORMAL", "BACTERIAL", "VIRAL"};

/* P(normal), P(bacterial), P(viral): P(pneumonia) = sigmoid(logit / T) split
 * by the softmax of the two pneumonia logits, so bacterial + viral equals the
 * binary probability exactly. */
void pn_cv_three_class_probs(const float *z, float p_pneumonia, float *out)
{
    double m = z[1] > z[2] ? z[1] : z[2];
    double eb = exp(z[1] - m), ev = exp(z[2] - m);
    out[0] = 1 - p_pneumonia;
    out[1] = (float)(p_pneumonia * eb / (eb + ev));
    out[2] = p_pneumonia - out[1];
}

/* The class a three-class model reports: NORMAL below the binary threshold,
 * else the likelier subtype. */
static int predicted_class(const float *p3, float threshold)
{
    if (p3[1] + p3[2] < threshold)
        return 0;
    return p3[1] >= p3[2] ? 1 : 2;
}

static pn_status three_class(const oof_set *s, float threshold, const char *dir, json_t *out,
                             pn_cv_result *res, pn_error *err)
{
    size_t cells[9] = {0};
    float *p3 = malloc(s->n * 3 * sizeof *p3), *score = malloc(s->n * sizeof *score);
    int *truth = malloc(s->n * sizeof *truth), *onevsrest = malloc(s->n * sizeof *onevsrest);
    pn_status st = p3 && score && truth && onevsrest ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
    size_t correct = 0;
    for (size_t i = 0; !st && i < s->n; i++) {
        pn_cv_three_class_probs(s->rows[i].z, s->prob[i], p3 + 3 * i);
        truth[i] = s->rows[i].label ? s->rows[i].subtype : 0;
        int pred = predicted_class(p3 + 3 * i, threshold);
        cells[truth[i] * 3 + pred]++;
        correct += pred == truth[i];
    }
    json_t *per = json_object();
    double auc_sum = 0;
    for (int k = 0; !st && k < 3; k++) {
        for (size_t i = 0; i < s->n; i++) {
            score[i] = p3[3 * i + k];
            onevsrest[i] = truth[i] == k;
        }
        pn_metrics m;
        if ((st = pn_metrics_compute(score, onevsrest, s->n, 0.5f, &m, err)))
            break;
        size_t tp = cells[k * 3 + k], row = 0, col = 0, n = s->n;
        for (int q = 0; q < 3; q++) {
            row += cells[k * 3 + q];
            col += cells[q * 3 + k];
        }
        double sens = row ? (double)tp / row : NAN, spec = n - row ? (double)(n - row - (col - tp)) / (n - row) : NAN;
        json_object_set_new(per, class3_names[k], json_pack("{s:i, s:f, s:f, s:f}", "n", (int)row, "sensitivity", sens,
                                                            "specificity", spec, "roc_auc", m.roc_auc));
        auc_sum += m.roc_auc;
    }
    if (!st) {
        res->accuracy3 = (double)correct / s->n;
        res->macro_auc3 = auc_sum / 3;
        json_t *cm = json_array();
        for (int r = 0; r < 3; r++)
            json_array_append_new(cm, json_pack("[i,i,i]", (int)cells[3 * r], (int)cells[3 * r + 1], (int)cells[3 * r + 2]));
        json_object_set_new(out, "three_class", json_pack("{s:f, s:f, s:o, s:o, s:[s,s,s]}", "accuracy", res->accuracy3,
                            "macro_roc_auc", res->macro_auc3, "per_class", per, "confusion", cm,
                            "classes", class3_names[0], class3_names[1], class3_names[2]));
        char path[4200], title[96];
        snprintf(path, sizeof path, "%s/confusion_3class.png", dir);
        snprintf(title, sizeof title, "Three classes, out-of-fold (n = %zu)", s->n);
        st = pn_plot_confusion_matrix(cells, 3, class3_names, title, path, err);
    } else {
        json_decref(per);
    }
    free(p3), free(score), free(truth), free(onevsrest);
    return st;
}

/* ---- files ---- */

static pn_status write_oof_csv(const oof_set *s, const char *dir, pn_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/oof.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: %s", path, strerror(errno));
    fprintf(f, "path,patient,label,subtype,fold,logit,probability%s\n",
            s->classes == 3 ? ",p_normal,p_bacterial,p_viral" : "");
    for (size_t i = 0; i < s->n; i++) {
        const oof_row *r = &s->rows[i];
        fprintf(f, "\"%s\",%s,%d,%d,%d,%.7g,%.7g", r->path, r->patient, r->label, r->subtype,
                r->fold + 1, r->logit, s->prob[i]);
        if (s->classes == 3) {
            float p3[3];
            pn_cv_three_class_probs(r->z, s->prob[i], p3);
            fprintf(f, ",%.7g,%.7g,%.7g", p3[0], p3[1], p3[2]);
        }
        fputc('\n', f);
    }
    return fclose(f) ? pn_fail(err, PN_EIO, "%s: write failed", path) : PN_OK;
}

static pn_status pooled_report(const pn_train_config *c, const oof_set *s, float threshold,
                               json_t *cv, pn_error *err)
{
    char dir[4200], info[256], note[160];
    const char **names = malloc(s->n * sizeof *names);
    if (!names)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n; i++)
        names[i] = s->rows[i].path;
    snprintf(dir, sizeof dir, "%s/report", c->out_dir);
    snprintf(info, sizeof info, "%s, %d-fold patient-wise cross-validation: every training image "
             "predicted by the one model that did not see it", c->arch, c->folds);
    snprintf(note, sizeof note, "highest threshold with pooled out-of-fold sensitivity >= %.2f",
             c->target_sensitivity);
    pn_report_input in = {.model_name = "cross-validation (pooled out-of-fold)", .model_info = info,
                          .dataset_path = c->data_dir, .prob = s->prob, .label = s->label, .n = s->n,
                          .file_names = names, .threshold = threshold, .threshold_note = note,
                          .seed = c->seed};
    char fig_cal[4200], fig_cm[4200];
    snprintf(fig_cal, sizeof fig_cal, "%s/calibration_before_temperature.png", c->out_dir);
    snprintf(fig_cm, sizeof fig_cm, "%s/confusion_3class.png", c->out_dir);
    const char *figs[] = {fig_cal, fig_cm};
    const char *caps[] = {"Reliability diagram before temperature scaling (pooled out-of-fold)",
                          "Three-class confusion matrix (pooled out-of-fold)"};
    in.extra_html = pn_cv_section_html(cv);
    in.extra_figures = figs;
    in.extra_captions = caps;
    in.n_extra_figures = s->classes == 3 ? 2 : 1;
    pn_status st = in.extra_html ? pn_report_write(dir, &in, err) : pn_fail(err, PN_ENOMEM, "out of memory");
    free((char *)in.extra_html);
    free(names);
    return st;
}

/* out_dir/ensemble.safetensors: the fold models as one model, at the pooled
 * temperature and threshold, carrying the pooled out-of-fold metrics. */
static pn_status write_ensemble(const pn_train_config *c, const pn_cv_result *res, json_t *cv,
                                pn_error *err)
{
    char dirs[100][4096], path[4200], thr[32], rule[128], when[32];
    const char *members[100];
    for (int k = 0; k < c->folds; k++) {
        char dir[4000];
        pn_cv_fold_dir(c, k, dir, sizeof dir);
        snprintf(dirs[k], sizeof dirs[k], "%s/model.safetensors", dir);
        members[k] = dirs[k];
    }
    json_t *metrics = json_deep_copy(json_object_get(cv, "pooled"));
    char split[256];
    snprintf(split, sizeof split, "pooled out-of-fold predictions of %d-fold patient-wise cross-validation "
             "(each image scored by the one fold model that did not train on it)", c->folds);
    json_object_set_new(metrics, "split", json_string(split));
    char *mtext = json_dumps(metrics, JSON_COMPACT | JSON_REAL_PRECISION(6));
    char *cvtext = json_dumps(cv, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(metrics);
    snprintf(thr, sizeof thr, "%.6g", res->threshold);
    snprintf(rule, sizeof rule, "highest threshold with pooled out-of-fold sensitivity >= %.2f", c->target_sensitivity);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    pn_kv meta[] = {{"threshold", thr}, {"threshold_rule", rule}, {"metrics", mtext ? mtext : "{}"},
                    {"cross_validation", cvtext ? cvtext : "{}"}, {"trained_at", when}};
    snprintf(path, sizeof path, "%s/ensemble.safetensors", c->out_dir);
    pn_status st = mtext && cvtext ? pn_ensemble_write(path, members, c->folds > 16 ? 16 : c->folds, res->temperature,
                                                      meta, sizeof meta / sizeof *meta, err)
                                   : pn_fail(err, PN_ENOMEM, "out of memory");
    free(mtext);
    free(cvtext);
    return st;
}

static pn_status write_json(const char *dir, json_t *j, pn_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/cv.json", dir);
    return json_dump_file(j, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6))
               ? pn_fail(err, PN_EIO, "%s: write failed", path)
               : PN_OK;
}

pn_status pn_cv_pool(const pn_train_config *c, pn_cv_result *res, pn_error *err)
{
    oof_set s = {0};
    json_t *j = json_object(), *mj = NULL;
    pn_metrics m, *fm = calloc((size_t)c->folds, sizeof *fm);
    pn_metrics_ci ci;
    pn_calibration before, after;
    double ece_ci_before[2], ece_ci_after[2];
    char path[4200];
    pn_status st = fm ? read_all(c, &s, err) : pn_fail(err, PN_ENOMEM, "out of memory");
    if (!st) st = fit_operating_point(&s, c->target_sensitivity, &res->temperature, &res->threshold, err);
    if (!st) st = pn_metrics_compute(s.prob, s.label, s.n, res->threshold, &m, err);
    if (!st) st = pn_metrics_bootstrap(s.prob, s.label, s.n, res->threshold, 1000, c->seed, &ci, err);
    if (!st) st = pn_metrics_to_json(&m, &ci, &mj, err);
    if (!st) st = pn_calibration_compute(s.prob_raw, s.label, s.n, &before, err);
    if (!st) st = pn_calibration_compute(s.prob, s.label, s.n, &after, err);
    if (!st) st = ece_interval(s.prob_raw, s.label, s.n, c->seed, ece_ci_before, err);
    if (!st) st = ece_interval(s.prob, s.label, s.n, c->seed, ece_ci_after, err);
    if (!st) st = per_fold(&s, res->threshold, fm, err);
    if (!st) {
        json_object_set_new(j, "folds", json_integer(c->folds));
        json_object_set_new(j, "images", json_integer((json_int_t)s.n));
        json_object_set_new(j, "temperature", json_real(res->temperature));
        json_object_set_new(j, "threshold", json_real(res->threshold));
        json_object_set_new(j, "target_sensitivity", json_real(c->target_sensitivity));
        json_object_set_new(j, "pooled", mj);
        mj = NULL;
        json_object_set_new(j, "calibration", json_pack("{s:f, s:[f,f], s:f, s:[f,f]}",
                            "ece_before", before.ece, "ece_before_ci95", ece_ci_before[0], ece_ci_before[1],
                            "ece_after", after.ece, "ece_after_ci95", ece_ci_after[0], ece_ci_after[1]));
        json_object_set_new(j, "across_folds", fold_json(fm, c->folds));
        res->roc_auc = m.roc_auc;
        res->sensitivity = m.sensitivity;
        res->specificity = m.specificity;
        res->accuracy = m.accuracy;
        res->ece_before = before.ece;
        res->ece_after = after.ece;
        res->classes = s.classes;
        snprintf(res->dir, sizeof res->dir, "%s", c->out_dir);
        snprintf(path, sizeof path, "%s/calibration_before_temperature.png", c->out_dir);
        st = pn_plot_calibration(s.prob_raw, s.label, s.n, path, err);
    }
    if (!st && s.classes == 3) st = three_class(&s, res->threshold, c->out_dir, j, res, err);
    if (!st) st = write_oof_csv(&s, c->out_dir, err);
    if (!st) st = pooled_report(c, &s, res->threshold, j, err);
    if (!st) st = write_json(c->out_dir, j, err);
    if (!st && c->folds <= 16) st = write_ensemble(c, res, j, err);
    json_decref(mj);
    json_decref(j);
    free(fm);
    oof_free(&s);
    return st;
}
