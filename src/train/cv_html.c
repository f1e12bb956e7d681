/* The cross-validation section of the pooled report: per-fold figures with
 * mean and sd, calibration before and after temperature scaling, and the
 * three-class table. Built from cv.json's object; every value is a number
 * or one of pneumo's own names, so nothing here needs escaping. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "train/cv_internal.h"

static void put_value(FILE *f, json_t *v)
{
    double x = json_number_value(v);
    if (json_is_number(v) && isfinite(x))
        fprintf(f, "%.4f", x);
    else
        fputs("n/a", f);
}

static void put_folds(FILE *f, json_t *across)
{
    static const char *const keys[] = {"roc_auc", "sensitivity", "specificity", "accuracy", "f1"};
    json_t *per = json_object_get(across, "per_fold");
    fputs("<table class=\"metrics\"><tr><th>fold</th><th>images</th>", f);
    for (int k = 0; k < 5; k++)
        fprintf(f, "<th>%s</th>", keys[k]);
    fputs("</tr>\n", f);
    for (size_t i = 0; i < json_array_size(per); i++) {
        json_t *o = json_array_get(per, i);
        fprintf(f, "<tr><td>%zu</td><td>%lld</td>", i + 1, (long long)json_integer_value(json_object_get(o, "n")));
        for (int k = 0; k < 5; k++) {
            fputs("<td>", f);
            put_value(f, json_object_get(o, keys[k]));
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("<tr><th>mean &plusmn; sd</th><td></td>", f);
    for (int k = 0; k < 5; k++) {
        json_t *m = json_object_get(across, keys[k]);
        fputs("<td>", f);
        put_value(f, json_object_get(m, "mean"));
        fputs(" &plusmn; ", f);
        put_value(f, json_object_get(m, "sd"));
        fputs("</td>", f);
    }
    fputs("</tr></table>\n", f);
}

static void put_calibration(FILE *f, json_t *cal)
{
    const char *rows[2][3] = {{"before temperature scaling", "ece_before", "ece_before_ci95"},
                              {"after temperature scaling", "ece_after", "ece_after_ci95"}};
    fputs("<table class=\"metrics\"><tr><th>pooled out-of-fold</th><th>ECE (10 bins)</th><th>95% CI</th></tr>\n", f);
    for (int r = 0; r < 2; r++) {
        json_t *ci = json_object_get(cal, rows[r][2]);
        fprintf(f, "<tr><td>%s</td><td>", rows[r][0]);
        put_value(f, json_object_get(cal, rows[r][1]));
        fputs("</td><td>", f);
        put_value(f, json_array_get(ci, 0));
        fputs(" &ndash; ", f);
        put_value(f, json_array_get(ci, 1));
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void put_three_class(FILE *f, json_t *t)
{
    static const char *const names[3] = {"NORMAL", "BACTERIAL", "VIRAL"};
    json_t *per = json_object_get(t, "per_class"), *cm = json_object_get(t, "confusion");
    fputs("<h3>Three classes</h3>\n<p>Accuracy ", f);
    put_value(f, json_object_get(t, "accuracy"));
    fputs(", macro ROC AUC ", f);
    put_value(f, json_object_get(t, "macro_roc_auc"));
    fputs(" (NORMAL below the threshold, else the likelier subtype).</p>\n"
          "<table class=\"metrics\"><tr><th>class</th><th>images</th><th>sensitivity</th>"
          "<th>specificity</th><th>ROC AUC (one vs rest)</th><th>predicted NORMAL</th>"
          "<th>predicted BACTERIAL</th><th>predicted VIRAL</th></tr>\n", f);
    for (int k = 0; k < 3; k++) {
        json_t *o = json_object_get(per, names[k]), *row = json_array_get(cm, (size_t)k);
        fprintf(f, "<tr><td>%s</td><td>%lld</td><td>", names[k], (long long)json_integer_value(json_object_get(o, "n")));
        put_value(f, json_object_get(o, "sensitivity"));
        fputs("</td><td>", f);
        put_value(f, json_object_get(o, "specificity"));
        fputs("</td><td>", f);
        put_value(f, json_object_get(o, "roc_auc"));
        for (int q = 0; q < 3; q++)
            fprintf(f, "</td><td>%lld", (long long)json_integer_value(json_array_get(row, (size_t)q)));
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

char *pn_cv_section_html(json_t *cv)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "<h2>Cross-validation</h2>\n<p>%lld patient-wise folds; every image below was "
               "predicted by the fold model that did not train on its patient. Temperature %.4f "
               "and threshold %.4f were fitted on these pooled out-of-fold predictions.</p>\n",
            (long long)json_integer_value(json_object_get(cv, "folds")),
            json_number_value(json_object_get(cv, "temperature")),
            json_number_value(json_object_get(cv, "threshold")));
    fputs("<h3>Per fold, at the pooled temperature and threshold</h3>\n", f);
    put_folds(f, json_object_get(cv, "across_folds"));
    fputs("<h3>Calibration</h3>\n", f);
    put_calibration(f, json_object_get(cv, "calibration"));
    json_t *three = json_object_get(cv, "three_class");
    if (three)
        put_three_class(f, three);
    return fclose(f) ? (free(text), NULL) : text;
}
