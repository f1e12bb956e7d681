/* Inference with a trained pneumo model: load a model file (network,
 * metadata, the preprocessing it was trained with), predict a temperature-
 * scaled P(pneumonia) with warnings and an optional Grad-CAM map, and
 * evaluate a labelled folder. Research and screening-assist tool, not a
 * diagnostic device.
 *
 * A pn_model is not thread-safe: serialize calls on one instance, or load one
 * instance per worker thread (loading is cheap: the file is small). */
#ifndef PNEUMO_INFER_H
#define PNEUMO_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/data.h"
#include "pneumo/error.h"
#include "pneumo/eval.h"

typedef struct pn_model pn_model;

#define PN_MAX_WARNINGS 4

typedef struct pn_model_info {
    const char *id;           /* content hash of the model file (first 16 hex of SHA-256) */
    const char *version;      /* pneumo format version + training date */
    const char *arch_name;    /* e.g. "mobilenetv3-small" */
    int input_size;           /* square input in pixels */
    int channels;             /* 1 or 3 */
    float threshold;          /* stored decision threshold on P(pneumonia) */
    const char *metrics_json; /* validation metrics as a JSON object text ("{}" if none) */
    const char *card_json;    /* everything else from __metadata__ as a JSON object text */
} pn_model_info;

typedef struct pn_prediction {
    float probability;        /* P(PNEUMONIA) in [0, 1] */
    int width, height;        /* of the decoded image */
    int is_color;             /* input had colour: probably not an X-ray */
    float *cam;               /* Grad-CAM in [0,1], cam_size x cam_size (input resolution), or NULL */
    int cam_size;
    int n_warnings;
    char warnings[PN_MAX_WARNINGS][160];
} pn_prediction;

/* path NULL = the bundled default model (models/default.safetensors). threads
 * 0 = all cores. Models whose head is not NORMAL/PNEUMONIA (two classes) are
 * refused with PN_EUNSUPPORTED. */
pn_status pn_model_load(const char *path, int threads, pn_model **out, pn_error *err);
void pn_model_free(pn_model *m);
const pn_model_info *pn_model_get_info(const pn_model *m);

/* A model's networks, for exporters: member i's network (fused for inference,
 * fp32) and the temperature its logits are divided by. A model's probability
 * is the mean of its members' softmax(logits / temperature) probabilities. */
int pn_model_member_count(const pn_model *m);
const struct pn_net *pn_model_member_net(const pn_model *m, int i);
float pn_model_member_temperature(const pn_model *m, int i);

/* Decodes an image file held in memory (JPEG or PNG), preprocesses it as in
 * training and predicts. want_cam adds a Grad-CAM map. */
pn_status pn_model_predict_bytes(pn_model *m, const void *bytes, size_t size, int want_cam,
                                 pn_prediction *out, pn_error *err);
pn_status pn_model_predict_file(pn_model *m, const char *path, int want_cam, pn_prediction *out,
                                pn_error *err);
/* Predicts an already decoded 8-bit gray image. */
pn_status pn_model_predict_image(pn_model *m, const pn_image *img, int want_cam, pn_prediction *out,
                                 pn_error *err);
/* Runs the network (and Grad-CAM) once on a blank image, so the first real
 * request does not pay for building oneDNN's kernels. */
pn_status pn_model_warm_up(pn_model *m, pn_error *err);
/* Frees the prediction's Grad-CAM map. */
void pn_prediction_clear(pn_prediction *p);

/* The training curves stored in the model by `pneumo train` (card key
 * "history"). Returns 0 and an empty history when the model has none;
 * pn_model_history_free releases the columns. */
int pn_model_history(const pn_model *m, pn_history *out);
void pn_model_history_free(pn_history *h);

/* ---- Evaluating a labelled folder -------------------------------------- */

#define PN_EVAL_MAX_TILES 16

typedef struct pn_eval_options {
    /* dir is a dataset root with train/: evaluate on the patient-wise
     * validation split `pneumo train` held out (fraction and seed from the
     * model's recipe). */
    int holdout;
    /* For PNEUMONIA images, the share of Grad-CAM heat outside the central
     * lung box (x and y in 10%-90%), in cam_outside. */
    int cam_stats;
    int tile_size;            /* side of the report's sample tiles (0: 160) */
    /* Optional: called for every unreadable image and every 100 images. */
    void (*skipped)(void *user, const char *why);
    void (*progress)(void *user, size_t done, size_t total);
    void *user;
} pn_eval_options;

typedef struct pn_eval_set {
    pn_dataset ds;
    float *prob;              /* [n] P(pneumonia) */
    int *label;               /* [n] true labels */
    const char **names;       /* [n] file paths (into ds) */
    size_t n, failed;         /* images evaluated, images unreadable */
    double *cam_outside;      /* [n_cam] with cam_stats */
    size_t n_cam;
    pn_image tiles[PN_EVAL_MAX_TILES];
    pn_sample_tile tile_info[PN_EVAL_MAX_TILES];
    size_t n_tiles;
} pn_eval_set;

/* Predicts every image of the labelled folder dir (NORMAL/ and PNEUMONIA/),
 * skipping unreadable files, and keeps a few sample tiles for a report.
 * Fails when no image could be read. pn_eval_set_free releases out. */
pn_status pn_model_evaluate_folder(pn_model *m, const char *dir, const pn_eval_options *o, pn_eval_set *out,
                                   pn_error *err);
void pn_eval_set_free(pn_eval_set *s);

#endif
