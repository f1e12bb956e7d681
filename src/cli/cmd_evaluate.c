/* pneumo evaluate: metrics with confidence intervals, plots and an HTML
 * report for a model on a labelled folder (NORMAL/ and PNEUMONIA/). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/progress.h"
#include "pneumo/data.h"
#include "pneumo/eval.h"
#include "pneumo/gradcam.h"
#include "pneumo/model.h"

#define GRID_TILES 16

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo evaluate --data DIR [--model FILE] [--threshold T] [--json OUT] [--report DIR]\n"
                 "       [--holdout] [--gradcam-stats] [--threads N]\n"
                 "DIR holds NORMAL/ and PNEUMONIA/ (a split folder). Without --model the bundled model is used;\n"
                 "without --threshold the threshold stored in the model.\n"
                 "--holdout: DIR is what `pneumo train` was given (a root with train/, or a flat folder\n"
                 "           with NORMAL/ and PNEUMONIA/); evaluate on the patient-wise validation\n"
                 "           split that `pneumo train` held out (fraction and seed from the model's recipe).\n"
                 "--gradcam-stats: for PNEUMONIA images, the share of Grad-CAM heat outside a central lung\n"
                 "           box (x and y in 10%%-90%% of the image).\n");
    return out == stdout ? 0 : 2;
}

/* The validation indices `pneumo train` used: same fraction and seed. */
static int holdout_indices(const pn_model_info *info, const pn_dataset *ds, size_t **idx, size_t *n,
                           pn_error *err)
{
    json_t *card = json_loads(info->card_json, 0, NULL);
    json_t *recipe = card ? json_object_get(card, "recipe") : NULL;
    double fraction = recipe ? json_number_value(json_object_get(recipe, "val_fraction")) : 0;
    json_int_t seed = recipe ? json_integer_value(json_object_get(recipe, "seed")) : 0;
    json_decref(card);
    if (!(fraction > 0 && fraction < 1)) {
        fprintf(stderr, "pneumo evaluate: the model records no validation split (recipe.val_fraction)\n");
        return 1;
    }
    pn_split split;
    if (pn_dataset_holdout_split(ds, fraction, (uint64_t)seed, &split, err))
        return 1;
    *idx = split.val;
    *n = split.n_val;
    split.val = NULL;
    pn_split_free(&split);
    return 0;
}

typedef struct eval_run {
    pn_dataset ds;
    float *prob;
    int *label;
    const char **names;
    size_t n, failed;
    double *cam_outside;
    size_t n_cam;
    pn_image tiles[GRID_TILES];
    pn_sample_tile tile_info[GRID_TILES];
    size_t n_tiles;
} eval_run;

/* Keeps a few images (spread over the set) for the report's sample grid. */
static void keep_tile(eval_run *r, size_t i, size_t total, const char *path, int size)
{
    if (r->n_tiles >= GRID_TILES || i != r->n_tiles * total / GRID_TILES)
        return;
    pn_image img = {0}, small = {0};
    if (pn_image_decode_file(path, size, size, &img, NULL) == PN_OK &&
        pn_image_resize(&img, size, size, PN_RESIZE_SQUASH, &small, NULL) == PN_OK) {
        r->tiles[r->n_tiles] = small;
        r->tile_info[r->n_tiles] = (pn_sample_tile){small.pixels, size, size, r->label[r->n],
                                                    r->prob[r->n], strrchr(path, '/') + 1};
        r->n_tiles++;
    }
    pn_image_free(&img);
}

static int predict_all(pn_model *m, const char *dir, int holdout, int cam_stats, eval_run *r,
                       pn_error *err)
{
    size_t *idx = NULL, count;
    if (pn_dataset_scan(dir, &r->ds, err))
        return 1;
    if (holdout) {
        if (holdout_indices(pn_model_get_info(m), &r->ds, &idx, &count, err))
            return 1;
    } else {
        count = r->ds.n;
        idx = malloc(count * sizeof *idx);
        for (size_t i = 0; idx && i < count; i++)
            idx[i] = i;
    }
    if (!idx)
        return fprintf(stderr, "out of memory\n"), 1;
    cli_progress progress;
    cli_progress_init(&progress);
    r->prob = malloc(count * sizeof(float));
    r->label = malloc(count * sizeof(int));
    r->names = malloc(count * sizeof(char *));
    r->cam_outside = malloc(count * sizeof(double));
    if (!r->prob || !r->label || !r->names || !r->cam_outside)
        return free(idx), fprintf(stderr, "out of memory\n"), 1;
    for (size_t i = 0; i < count; i++) {
        const pn_sample *s = &r->ds.samples[idx[i]];
        pn_prediction p;
        pn_error e = {0};
        int want_cam = cam_stats && s->label == PN_CLASS_PNEUMONIA;
        if (pn_model_predict_file(m, s->path, want_cam, &p, &e)) {
            fprintf(stderr, "%sskipped: %s\n", progress.drawn ? "\n" : "", e.msg);
            progress.drawn = 0;
            r->failed++;
            continue;
        }
        if (p.cam)
            r->cam_outside[r->n_cam++] = pn_cam_fraction_outside(p.cam, p.cam_size, 0.1f, 0.1f, 0.9f, 0.9f);
        pn_prediction_clear(&p);
        r->prob[r->n] = p.probability;
        r->label[r->n] = s->label;
        r->names[r->n] = s->path;
        keep_tile(r, i, count, s->path, 160);
        r->n++;
        cli_progress_update(&progress, 0, "%zu/%zu images", i + 1, count);
    }
    free(idx);
    cli_progress_update(&progress, 1, "%zu images evaluated, %zu unreadable", r->n, r->failed);
    return r->n ? 0 : (fprintf(stderr, "no readable image in %s\n", dir), 1);
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

/* The training curves stored in the model (pneumo train), for the report. */
typedef struct stored_history {
    pn_history h;
    float *cols[5];
} stored_history;

static int load_history(const pn_model_info *info, stored_history *sh)
{
    memset(sh, 0, sizeof *sh);
    json_t *card = json_loads(info->card_json, 0, NULL);
    json_t *h = card ? json_object_get(card, "history") : NULL;
    const char *names[] = {"train_loss", "val_loss", "train_acc", "val_acc", "val_auc"};
    size_t epochs = h ? json_array_size(json_object_get(h, "train_loss")) : 0;
    for (int k = 0; epochs && k < 5; k++) {
        json_t *a = json_object_get(h, names[k]);
        sh->cols[k] = calloc(epochs, sizeof(float));
        for (size_t e = 0; sh->cols[k] && e < epochs && e < json_array_size(a); e++)
            sh->cols[k][e] = (float)json_number_value(json_array_get(a, e));
    }
    json_decref(card);
    sh->h = (pn_history){epochs, sh->cols[0], sh->cols[1], sh->cols[2], sh->cols[3], sh->cols[4]};
    return epochs > 0 && sh->cols[4] != NULL;
}

static int write_outputs(const pn_model_info *info, const char *dir, const eval_run *r, float thr,
                         const pn_metrics *m, const pn_metrics_ci *ci, const char *json_path,
                         const char *report_dir, pn_error *err)
{
    if (json_path) {
        json_t *j;
        if (pn_metrics_to_json(m, ci, &j, err))
            return 1;
        json_object_set_new(j, "model_id", json_string(info->id));
        json_object_set_new(j, "data", json_string(dir));
        int rc = json_dump_file(j, json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(j);
        if (rc)
            return fprintf(stderr, "cannot write %s\n", json_path), 1;
    }
    if (report_dir) {
        char model_name[128];
        snprintf(model_name, sizeof model_name, "%s (%s)", info->arch_name, info->id);
        stored_history sh;
        int has_history = load_history(info, &sh);
        pn_report_input in = {.model_name = model_name, .model_info = info->version,
                              .history = has_history ? &sh.h : NULL,
                              .dataset_path = dir, .prob = r->prob, .label = r->label, .n = r->n,
                              .file_names = r->names, .threshold = thr,
                              .threshold_note = "stored in the model (chosen on patient-wise validation) unless --threshold",
                              .samples = r->tile_info, .n_samples = r->n_tiles, .seed = 1};
        int failed = pn_report_write(report_dir, &in, err) != PN_OK;
        for (int k = 0; k < 5; k++)
            free(sh.cols[k]);
        if (failed)
            return 1;
        printf("report: %s/report.html\n", report_dir);
    }
    return 0;
}

int pn_cmd_evaluate(int argc, char **argv)
{
    const char *model_path = NULL, *dir = NULL, *json_path = NULL, *report_dir = NULL;
    float thr = -1;
    int threads = 0, holdout = 0, cam_stats = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        if (!strcmp(a, "--holdout")) { holdout = 1; continue; }
        if (!strcmp(a, "--gradcam-stats")) { cam_stats = 1; continue; }
        if (!v) return usage(stderr);
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--json")) json_path = v;
        else if (!strcmp(a, "--report")) report_dir = v;
        else if (!strcmp(a, "--threshold")) thr = strtof(v, NULL);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else return usage(stderr);
        i++;
    }
    if (!dir) return usage(stderr);
    pn_error err = {0};
    pn_model *m = NULL;
    eval_run r = {0};
    pn_metrics met;
    pn_metrics_ci ci;
    char *report = NULL;
    int rc = 1;
    if (pn_model_load(model_path, threads, &m, &err))
        goto fail;
    if (thr < 0)
        thr = pn_model_get_info(m)->threshold;
    if (!(thr >= 0 && thr <= 1)) {
        fprintf(stderr, "pneumo evaluate: --threshold must be in [0, 1]\n");
        goto done;
    }
    if (predict_all(m, dir, holdout, cam_stats, &r, &err))
        goto fail;
    if (pn_metrics_compute(r.prob, r.label, r.n, thr, &met, &err) ||
        pn_metrics_bootstrap(r.prob, r.label, r.n, thr, 1000, 1, &ci, &err) ||
        pn_classification_report(&met, &report, &err))
        goto fail;
    print_summary(&met, &ci, report);
    if (r.n_cam)
        print_cam_stats(r.cam_outside, r.n_cam);
    rc = write_outputs(pn_model_get_info(m), dir, &r, thr, &met, &ci, json_path, report_dir, &err);
    if (rc && err.msg[0])
        goto fail;
    goto done;
fail:
    fprintf(stderr, "pneumo evaluate: %s\n", err.msg);
    rc = 1;
done:
    free(report);
    for (size_t i = 0; i < r.n_tiles; i++)
        pn_image_free(&r.tiles[i]);
    free(r.prob);
    free(r.label);
    free(r.names);
    free(r.cam_outside);
    pn_dataset_free(&r.ds);
    pn_model_free(m);
    return rc;
}
