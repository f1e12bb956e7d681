/* pneumo predict: probability and label per image file (files or folders,
 * recursively), optional Grad-CAM overlays. Bad files get an error row and
 * the run goes on; the exit status is 1 if any file failed. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/disclaimer.h"
#include "pneumo/data.h"
#include "pneumo/infer.h"
#include "pneumo/os.h"

typedef enum { FMT_TABLE, FMT_CSV, FMT_JSON } out_format;

typedef struct predict_opts {
    const char *model, *gradcam_dir;
    float threshold;
    out_format format;
    int threads, tta;
    int force; /* give the probability of refused (out-of-distribution) images too */
} predict_opts;

typedef struct file_list {
    char **paths;
    size_t n, cap;
} file_list;

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo predict [--model FILE] [--threshold T] [--format table|csv|json]\n"
                 "                      [--gradcam DIR] [--threads N] [--tta N] [--force] PATH...\n"
                 "--tta N: average N test-time views per network (1 = none; default: the model's choice).\n"
                 "Three-class models also give P(NORMAL), P(BACTERIAL), P(VIRAL) (CSV and JSON).\n"
                 "PATH: image files (JPEG, PNG, DICOM) or folders (searched recursively; .jpg .jpeg .png .dcm).\n"
                 "Images that do not look like a frontal chest X-ray are refused (label OUT-OF-DISTRIBUTION,\n"
                 "no probability) unless --force is given; see docs/ood.md.\n"
                 PN_DISCLAIMER "\n");
    return out == stdout ? 0 : 2;
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png") ||
                   !strcasecmp(dot, ".dcm"));
}

static void add_file(file_list *l, const char *path)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->paths = realloc(l->paths, l->cap * sizeof *l->paths);
    }
    l->paths[l->n++] = strdup(path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Folders contribute their image files (by extension); named files are always tried. */
static void collect(file_list *l, const char *path, int named)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (named || has_image_ext(path))
            add_file(l, path);
        return;
    }
    DIR *d = opendir(path);
    if (!d)
        return add_file(l, path); /* reported as unreadable */
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        collect(l, child, 0);
    }
    closedir(d);
}

static void write_overlay(const predict_opts *o, const char *path, const pn_prediction *p)
{
    pn_image img = {0};
    unsigned char *png = NULL;
    size_t size;
    char out[4096];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(out, sizeof out, "%s/%s.gradcam.png", o->gradcam_dir, base);
    if (pn_image_decode_file(path, PN_CAM_DISPLAY_SIDE, PN_CAM_DISPLAY_SIDE, &img, NULL) == PN_OK &&
        pn_prediction_cam_pngs(&img, p, &png, &size, NULL, NULL, NULL) == PN_OK) {
        FILE *f = fopen(out, "wb");
        if (f) {
            fwrite(png, 1, size, f);
            fclose(f);
        }
    }
    free(png);
    pn_image_free(&img);
}

/* The gate's fields of a JSON row; the probability only when answered. */
static json_t *json_row(const predict_opts *o, const char *path, const pn_prediction *p, const char *label,
                        const char *warn, int answered)
{
    json_t *row = json_pack("{s:s, s:s, s:f, s:s, s:b}", "file", path, "label", label, "threshold",
                            o->threshold, "warnings", warn, "out_of_distribution", p->out_of_distribution);
    json_object_set_new(row, "ood_score", p->ood_score >= 0 ? json_real(p->ood_score) : json_null());
    if (p->out_of_distribution)
        json_object_set_new(row, "ood_reason", json_string(p->ood_reason));
    if (answered)
        json_object_set_new(row, "probability", json_real(p->probability));
    if (answered && p->n_classes == 3)
        json_object_set_new(row, "classes", json_pack("{s:f, s:f, s:f}", "NORMAL", p->class_prob[0],
                                                      "BACTERIAL", p->class_prob[1], "VIRAL", p->class_prob[2]));
    return row;
}

static void print_row(const predict_opts *o, json_t *arr, const char *path, const pn_prediction *p,
                      const char *error)
{
    int answered = !error && (!p->out_of_distribution || o->force);
    const char *label = error                     ? ""
                        : p->out_of_distribution && !o->force ? "OUT-OF-DISTRIBUTION"
                        : p->probability >= o->threshold        ? "PNEUMONIA"
                                                                : "NORMAL";
    char warn[PN_MAX_WARNINGS * 162 + 128] = "", prob[32] = "", score[32] = "";
    if (!error && p->out_of_distribution)
        snprintf(warn, sizeof warn, "does not look like a chest X-ray: %s", p->ood_reason);
    for (int i = 0; !error && i < p->n_warnings; i++)
        snprintf(warn + strlen(warn), sizeof warn - strlen(warn), "%s%s", warn[0] ? "; " : "", p->warnings[i]);
    if (answered)
        snprintf(prob, sizeof prob, "%.6f", p->probability);
    if (!error && p->ood_score >= 0)
        snprintf(score, sizeof score, "%.4f", p->ood_score);
    if (o->format == FMT_JSON) {
        json_array_append_new(arr, error ? json_pack("{s:s, s:s}", "file", path, "error", error)
                                         : json_row(o, path, p, label, warn, answered));
    } else if (o->format == FMT_CSV) {
        printf("\"%s\",%s,%s,%.4f,%s,%s,\"%s\"", path, prob, label, o->threshold,
               error ? "" : p->out_of_distribution ? "true" : "false", score, error ? error : warn);
        for (int k = 0; answered && p->n_classes == 3 && k < 3; k++)
            printf(",%.6f", p->class_prob[k]);
        printf("\n");
    } else if (error) {
        printf("%-50s %-11s %-9s %-8s %s\n", path, "ERROR", "", "", error);
    } else {
        printf("%-50s %-11.11s %-9s %-8s %s\n", path, answered ? prob : "-", label, score[0] ? score : "-", warn);
    }
}

static const pn_opt_choice format_choices[] = {
    {"table", FMT_TABLE}, {"csv", FMT_CSV}, {"json", FMT_JSON}, {NULL, 0}};

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, predict_opts *o, file_list *files)
{
    *o = (predict_opts){.threshold = -1};
    int format = FMT_TABLE, n_paths = 0;
    const pn_option table[] = {
        PN_OPT_STRING("model", &o->model),
        PN_OPT_STRING("gradcam", &o->gradcam_dir),
        PN_OPT_FLOAT("threshold", &o->threshold, 0, 1),
        PN_OPT_INT("threads", &o->threads, 1, 1024),
        PN_OPT_INT("tta", &o->tta, 1, PN_TTA_MAX_VIEWS),
        PN_OPT_FLAG("force", &o->force, 1),
        PN_OPT_CHOICE("format", &format, format_choices),
        PN_OPT_END,
    };
    const char **paths = calloc((size_t)argc, sizeof *paths);
    if (!paths)
        return 1;
    int rc = -1;
    switch (pn_opts_parse("pneumo predict", table, argc, argv, 1, paths, &n_paths)) {
    case PN_OPTS_HELP: rc = usage(stdout); break;
    case PN_OPTS_BAD: rc = 2; break;
    case PN_OPTS_OK: rc = n_paths ? -1 : usage(stderr); break;
    }
    o->format = (out_format)format;
    for (int i = 0; rc < 0 && i < n_paths; i++)
        collect(files, paths[i], 1);
    free(paths);
    if (rc < 0)
        qsort(files->paths, files->n, sizeof *files->paths, cmp_str);
    return rc;
}

/* Predicts every file with m and prints the rows; 1 if any file failed. */
static int predict_files(pn_model *m, const predict_opts *o, const file_list *files)
{
    json_t *arr = o->format == FMT_JSON ? json_array() : NULL;
    if (o->format == FMT_CSV)
        printf("file,probability,label,threshold,out_of_distribution,ood_score,warnings%s\n",
               pn_model_classes(m) == 3 ? ",p_normal,p_bacterial,p_viral" : "");
    else if (o->format == FMT_TABLE)
        printf("%-50s %-11s %-9s %-8s %s\n", "file", "P(pneum.)", "label", "ood", "warnings");
    int failed = 0, tty = isatty(2) && files->n > 20;
    for (size_t i = 0; i < files->n; i++) {
        pn_prediction p;
        pn_error e = {0};
        if (pn_model_predict_file(m, files->paths[i], o->gradcam_dir != NULL, &p, &e)) {
            failed = 1;
            print_row(o, arr, files->paths[i], NULL, e.msg);
        } else {
            print_row(o, arr, files->paths[i], &p, NULL);
            if (o->gradcam_dir && p.cam)
                write_overlay(o, files->paths[i], &p);
            pn_prediction_clear(&p);
        }
        if (tty)
            fprintf(stderr, "\r%zu/%zu", i + 1, files->n);
    }
    if (tty)
        fprintf(stderr, "\n");
    if (arr) {
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        printf("\n");
        json_decref(arr);
    }
    return failed;
}

int pn_cmd_predict(int argc, char **argv)
{
    predict_opts o;
    file_list files = {0};
    int rc = parse(argc, argv, &o, &files);
    if (rc >= 0)
        return rc;
    pn_error err = {0};
    pn_model *m = NULL;
    if (pn_model_load(o.model, o.threads, &m, &err) || (o.tta && pn_model_set_tta(m, o.tta, &err)) ||
        (o.gradcam_dir && pn_make_dir(o.gradcam_dir, &err))) {
        fprintf(stderr, "pneumo predict: %s\n", err.msg);
        rc = 1;
    } else {
        if (o.threshold < 0)
            o.threshold = pn_model_get_info(m)->threshold;
        rc = predict_files(m, &o, &files);
    }
    for (size_t i = 0; i < files.n; i++)
        free(files.paths[i]);
    free(files.paths);
    pn_model_free(m);
    return rc;
}
