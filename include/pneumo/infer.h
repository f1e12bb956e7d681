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

#define PN_MAX_WARNINGS 8
/* Networks one model file may hold (an ensemble). */
#define PN_MODEL_MAX_MEMBERS 16

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
    int n_classes;            /* 3: class_prob holds P(NORMAL), P(BACTERIAL), P(VIRAL); else 2 */
    float class_prob[3];      /* with n_classes 3: sums to 1, [1] + [2] == probability */
    int width, height;        /* of the decoded image */
    int is_color;             /* input had colour: probably not an X-ray */
    float *cam;               /* Grad-CAM in [0,1], cam_size x cam_size (input resolution), or NULL */
    int cam_size;
    int n_warnings;
    char warnings[PN_MAX_WARNINGS][160];
    /* The out-of-distribution gate (docs/ood.md): out_of_distribution is 1
     * when the image does not look like a frontal chest X-ray like the
     * training data; ood_reason then says why. ood_score is the mean over
     * members of feature distance / the member's threshold (> 1 refuses), or
     * -1 when the model file has no gate statistics (only the image checks ran). */
    int out_of_distribution;
    float ood_score;
    char ood_reason[96];
} pn_prediction;

/* path NULL = $PNEUMO_MODEL, else the bundled default model (default.safetensors
 * in share/pneumo/ beside the binary's bin/, or models/ in the source tree). threads
 * 0 = all cores. A file holds one network or an ensemble (pn_ensemble_write);
 * heads other than NORMAL/PNEUMONIA or NORMAL/BACTERIAL/VIRAL are refused
 * with PN_EUNSUPPORTED.
 *
 * The probability rule: each member network gives P(pneumonia) =
 * sigmoid(b / T) with b its binary logit (z1 - z0, or logsumexp(z1, z2) - z0
 * for three classes) and T its temperature; with test-time augmentation each
 * member averages that over its views (pn_tta_view); the model's probability
 * is the mean over members. Three-class models split each P(pneumonia) by
 * the member's softmax over (z1, z2), so P(bacterial) + P(viral) is exactly
 * the binary probability. */
pn_status pn_model_load(const char *path, int threads, pn_model **out, pn_error *err);
void pn_model_free(pn_model *m);
/* Test-time augmentation: views per member (1 = none, up to PN_TTA_MAX_VIEWS);
 * replaces the model file's stored choice. */
pn_status pn_model_set_tta(pn_model *m, int views, pn_error *err);
int pn_model_tta(const pn_model *m);
int pn_model_members(const pn_model *m);
int pn_model_classes(const pn_model *m);
const pn_model_info *pn_model_get_info(const pn_model *m);

/* A model's networks, for exporters: member i's network (fused for inference,
 * fp32) and the temperature its binary logit is divided by (see the
 * probability rule above; for two classes it equals softmax(logits / T)). */
int pn_model_member_count(const pn_model *m);
const struct pn_net *pn_model_member_net(const pn_model *m, int i);
float pn_model_member_temperature(const pn_model *m, int i);
/* 1 when member i equalises its resized input with CLAHE (PN_CLAHE_TILES, PN_CLAHE_CLIP). */
int pn_model_member_clahe(const pn_model *m, int i);

/* Decodes an image file held in memory (JPEG, PNG or DICOM), preprocesses it as in
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

/* How a prediction's Grad-CAM is shown (predict --gradcam-dir, the API, the
 * page): over the image itself, shrunk so its long side is at most
 * PN_CAM_DISPLAY_SIDE (decode with that size hint), at PN_CAM_OPACITY. */
#define PN_CAM_DISPLAY_SIDE 512
#define PN_CAM_OPACITY 0.45f
/* The overlay PNG of p->cam over img and, when heatmap_png is not NULL, the
 * colour-mapped heatmap alone at the same size (both malloc'ed). */
pn_status pn_prediction_cam_pngs(const pn_image *img, const pn_prediction *p, unsigned char **overlay_png,
                                 size_t *overlay_size, unsigned char **heatmap_png, size_t *heatmap_size,
                                 pn_error *err);

/* The training curves stored in the model by `pneumo train` (card key
 * "history"). Returns 0 and an empty history when the model has none;
 * pn_history_free releases the columns. */
int pn_model_history(const pn_model *m, pn_history *out);

/* ---- The out-of-distribution gate (docs/ood.md) ------------------------ */
typedef struct pn_ood_member_report {
    size_t n_fit, n_held;          /* images the Gaussians / the threshold were computed on */
    size_t fit_refused_by_checks;  /* training images the image checks refuse (left out) */
    size_t held_refused_by_checks; /* held-out images the image checks refuse */
    size_t held_refused_by_score;  /* held-out images over the threshold */
    float threshold, held_median_ratio; /* squared distance; median held-out distance / threshold */
    int dim;
} pn_ood_member_report;
typedef struct pn_ood_fit_options {
    int threads;          /* 0 = all cores */
    int max_fit_images;   /* training images per member the Gaussians are fitted on (0: 2000, evenly spaced) */
    void (*progress)(void *user, int member, const struct pn_ood_member_report *r);
    void *user;
} pn_ood_fit_options;
typedef struct pn_ood_fit_report {
    int n_members;
    pn_ood_member_report members[PN_MODEL_MAX_MEMBERS];
} pn_ood_fit_report;
/* Fits and stores the gate of the model file at model_path (rewritten in
 * place, atomically): for each member, Gaussians on its training images and
 * a threshold on its held-out images of the dataset data_dir, both as the
 * member's recipe split them (folds/fold/seed of a cv fold, else
 * val_fraction/seed). data_dir must be the dataset the model was trained on. */
pn_status pn_ood_fit(const char *model_path, const char *data_dir, const pn_ood_fit_options *o,
                     pn_ood_fit_report *rep, pn_error *err);

/* ---- Evaluating a labelled folder -------------------------------------- */

#define PN_EVAL_MAX_TILES 16

typedef struct pn_eval_options {
    /* dir is what `pneumo train` was given (a root with train/, or a flat
     * folder with NORMAL/ and PNEUMONIA/): evaluate on the patient-wise
     * validation split it held out (pn_dataset_holdout_split, fraction and
     * seed from the model's recipe). */
    int holdout;
    /* Without holdout: only the samples of this split ("train", "val",
     * "test": a split folder of the root or a manifest's split column);
     * NULL = every sample. */
    const char *split;
    /* For PNEUMONIA images, the share of Grad-CAM heat outside the central
     * lung box (x and y in 10%-90%), in cam_outside. */
    int cam_stats;
    int tile_size;            /* side of the report's sample tiles (0: 160) */
    float threshold;          /* decision threshold in [0, 1]; < 0: the model's stored one */
    int bootstrap;            /* bootstrap resamples for the CIs (0: 1000), seed 1 */
    /* Optional: called for every unreadable image, every warned image and
     * after every image (progress; the caller throttles its output). */
    void (*skipped)(void *user, const char *why);
    void (*warned)(void *user, const char *path, const pn_prediction *p);
    void (*progress)(void *user, size_t done, size_t total);
    void *user;
} pn_eval_options;

typedef struct pn_eval_set {
    pn_dataset ds;
    float *prob;              /* [n] P(pneumonia) */
    int *label;               /* [n] true labels */
    const char **names;       /* [n] file paths (into ds) */
    size_t n, failed;         /* images evaluated, images unreadable */
    size_t warned;            /* images predicted with at least one warning */
    size_t refused;           /* images the out-of-distribution gate refuses; they are
                               * still scored, so the metrics cover all n images */
    double *cam_outside;      /* [n_cam] with cam_stats */
    size_t n_cam;
    pn_image tiles[PN_EVAL_MAX_TILES];
    pn_sample_tile tile_info[PN_EVAL_MAX_TILES];
    size_t n_tiles;
    float threshold;          /* the threshold the metrics use */
    pn_metrics metrics;
    pn_metrics_ci ci;         /* 95% bootstrap intervals */
} pn_eval_set;

/* Predicts every image of the labelled folder dir (NORMAL/ and PNEUMONIA/)
 * or CSV manifest (pn_dataset_load), or of its split o->split,
 * skipping unreadable files, keeps a few sample tiles for a report and
 * computes the metrics with bootstrap CIs at the threshold. Fails when no
 * image could be read. pn_eval_set_free releases out. */
pn_status pn_model_evaluate_folder(pn_model *m, const char *dir, const pn_eval_options *o, pn_eval_set *out,
                                   pn_error *err);
void pn_eval_set_free(pn_eval_set *s);

#endif
