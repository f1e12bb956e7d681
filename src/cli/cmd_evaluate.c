/* pneumo evaluate: metrics with confidence intervals, plots and an HTML
 * report for a model on a labelled folder (NORMAL/ and PNEUMONIA/). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "pneumo/infer.h"

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo evaluate --data DIR|FILE.csv [--model FILE] [--threshold T] [--json OUT]\n"
                 "       [--report DIR] [--split NAME | --holdout] [--gradcam-stats] [--threads N] [--tta N]\n"
                 "DIR holds NORMAL/ and PNEUMONIA/ (a split folder); FILE.csv is a manifest (docs/datasets.md).\n"
                 "Without --model the bundled model is used; without --threshold the threshold stored in the model.\n"
                 "--split NAME: only the images of split NAME (train, val, test: a split folder of DIR or the\n"
                 "           manifest's split column); default: every image.\n"
                 "--holdout: DIR is what `pneumo train` was given (a root with train/, a flat folder\n"
                 "           with NORMAL/ and PNEUMONIA/, or a manifest); evaluate on the patient-wise validation\n"
                 "           split that `pneumo train` held out (fraction and seed from the model's recipe;\n"
                 "           for a cross-validation fold model, its held-out fold).\n"
                 "--tta N: average N test-time views per network (1 = none; default: the model's choice).\n"
                 "--gradcam-stats: for PNEUMONIA images, the share of Grad-CAM heat outside a central lung\n"
                 "           box (x and y in 10%%-90%% of the image).\n");
    return out == stdout ? 0 : 2;
}

static void on_skipped(void *user, const char *why)
{
    cli_progress *progress = user;
    fprintf(stderr, "%sskipped: %s\n", progress->drawn ? "\n" : "", why);
    progress->drawn = 0;
}

static void on_warned(void *user, const char *path, const pn_prediction *p)
{
    cli_progress *progress = user;
    fprintf(stderr, "%swarning: %s:", progress->drawn ? "\n" : "", path);
    progress->drawn = 0;
    for (int k = 0; k < p->n_warnings; k++)
        fprintf(stderr, "%s %s", k ? ";" : "", p->warnings[k]);
    fputc('\n', stderr);
}

static void on_progress(void *user, size_t done, size_t total)
{
    cli_progress_update(user, 0, "%zu/%zu images", done, total);
}

static void print_summary(const pn_metrics *m, const pn_metrics_ci *ci, const char *report)
{
    printf("%s\n", report);
    printf("n=%zu (PNEUMONIA %zu, NORMAL %zu), threshold %.4f\n", m->n, m->n_pos, m->n_neg, m->threshold);
    printf("confusion: TP %zu  FN %zu  TN %zu  FP %zu\n", (size_t)m->confusion.tp,
           (size_t)m->confusion.fn, (size_t)m->confusion.tn, (size_t)m->confusion.fp);
    for (int k = 0; k < PN_CI_COUNT; k++) {
        printf("%-18s %.4f  ", pn_ci_metric_name((pn_ci_metric)k), pn_metrics_get(m, (pn_ci_metric)k));
        if (isfinite(ci->lo[k]))
            printf("(95%% CI %.4f-%.4f)\n", ci->lo[k], ci->hi[k]);
        else
            printf("(95%% CI: n too small)\n");
    }
    printf("%-18s %.4f\n%-18s %.4f\n%-18s %.4f\n", "npv", m->npv, "brier", m->brier, "ece", m->ece);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_cam_stats(double *outside, size_t n)
{
    double sum = 0;
    size_t over_half = 0;
    for (size_t i = 0; i < n; i++) {
        sum += outside[i];
        over_half += outside[i] > 0.5;
    }
    qsort(outside, n, sizeof *outside, cmp_double);
    printf("Grad-CAM on %zu PNEUMONIA images: heat outside the central box (10%%-90%%): mean %.3f, "
           "median %.3f, 90th percentile %.3f; %zu images with more than half outside\n",
           n, sum / n, outside[n / 2], outside[(size_t)(0.9 * (n - 1))], over_half);
}

static int write_outputs(const pn_model *model, const char *dir, const pn_eval_set *r, const char *json_path,
                         const char *report_dir, pn_error *err)
{
    const pn_model_info *info = pn_model_get_info(model);
    if (json_path) {
        json_t *j;
        if (pn_metrics_to_json(&r->metrics, &r->ci, &j, err))
            return 1;
        json_object_set_new(j, "model_id", json_string(info->id));
        json_object_set_new(j, "data", json_string(dir));
        json_object_set_new(j, "images_unreadable", json_integer((json_int_t)r->failed));
        json_object_set_new(j, "images_with_warnings", json_integer((json_int_t)r->warned));
        json_object_set_new(j, "images_out_of_distribution", json_integer((json_int_t)r->refused));
        int rc = json_dump_file(j, json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(j);
        if (rc)
            return fprintf(stderr, "cannot write %s\n", json_path), 1;
    }
    if (report_dir) {
        char model_name[128];
        snprintf(model_name, sizeof model_name, "%s (%s)", info->arch_name, info->id);
        pn_history history;
        int has_history = pn_model_history(model, &history);
        pn_report_input in = {.model_name = model_name, .model_info = info->version,
                              .history = has_history ? &history : NULL,
                              .dataset_path = dir, .prob = r->prob, .label = r->label, .n = r->n,
                              .file_names = r->names, .threshold = r->threshold,
                              .threshold_note = "stored in the model (chosen on its validation split) unless --threshold",
                              .samples = r->tile_info, .n_samples = r->n_tiles, .seed = 1};
        int failed = pn_report_write(report_dir, &in, err) != PN_OK;
        pn_history_free(&history);
        if (failed)
            return 1;
        printf("report: %s/report.html\n", report_dir);
    }
    return 0;
}

int pn_cmd_evaluate(int argc, char **argv)
{
    const char *model_path = NULL, *dir = NULL, *json_path = NULL, *report_dir = NULL, *split = NULL;
    float thr = -1;
    int threads = 0, holdout = 0, cam_stats = 0, tta = 0;
    const pn_option table[] = {
        PN_OPT_STRING("model", &model_path),
        PN_OPT_STRING("data", &dir),
        PN_OPT_STRING("json", &json_path),
        PN_OPT_STRING("report", &report_dir),
        PN_OPT_STRING("split", &split),
        PN_OPT_FLOAT("threshold", &thr, 0, 1),
        PN_OPT_INT("threads", &threads, 1, 1024),
        PN_OPT_INT("tta", &tta, 1, PN_TTA_MAX_VIEWS),
        PN_OPT_FLAG("holdout", &holdout, 1),
        PN_OPT_FLAG("gradcam-stats", &cam_stats, 1),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo evaluate", table, argc, argv, 1, NULL, NULL)) {
    case PN_OPTS_HELP: return usage(stdout);
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    if (!dir) return usage(stderr);
    if (split && holdout) {
        fprintf(stderr, "pneumo evaluate: --split and --holdout exclude each other (--holdout uses train's split)\n");
        return 2;
    }
    pn_error err = {0};
    pn_model *m = NULL;
    pn_eval_set r = {0};
    char *report = NULL;
    int rc = 1;
    cli_progress progress;
    cli_progress_init(&progress);
    pn_eval_options eo = {.holdout = holdout, .split = split, .cam_stats = cam_stats, .threshold = thr, .skipped = on_skipped,
                          .warned = on_warned, .progress = on_progress, .user = &progress};
    if (pn_model_load(model_path, threads, &m, &err) || (tta && pn_model_set_tta(m, tta, &err)) ||
        pn_model_evaluate_folder(m, dir, &eo, &r, &err))
        goto fail;
    cli_progress_update(&progress, 1, "%zu images evaluated, %zu unreadable, %zu with warnings", r.n, r.failed,
                        r.warned);
    fprintf(stderr, "%zu of %zu images refused by the out-of-distribution gate (%.2f%%); the metrics include them "
                    "(pneumo predict withholds their probability)\n", r.refused, r.n, r.n ? 100.0 * r.refused / r.n : 0.0);
    if (pn_classification_report(&r.metrics, &report, &err))
        goto fail;
    print_summary(&r.metrics, &r.ci, report);
    if (r.n_cam)
        print_cam_stats(r.cam_outside, r.n_cam);
    rc = write_outputs(m, dir, &r, json_path, report_dir, &err);
    if (rc && err.msg[0])
        goto fail;
    goto done;
fail:
    fprintf(stderr, "pneumo evaluate: %s\n", err.msg);
    rc = 1;
done:
    free(report);
    pn_eval_set_free(&r);
    pn_model_free(m);
    return rc;
}
