/* A trained pneumo model loaded for inference: network + metadata from a
 * safetensors model file, plus the image preprocessing it was trained with.
 *
 * A pn_model is not thread-safe: serialize calls on one instance, or load one
 * instance per worker thread (loading is cheap: the file is small). */
#ifndef PNEUMO_MODEL_H
#define PNEUMO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/error.h"

typedef struct pn_model pn_model;

#define PN_MAX_WARNINGS 6

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

/* path NULL = the bundled default model (models/default.safetensors). threads 0 = all cores. */
pn_status pn_model_load(const char *path, int threads, pn_model **out, pn_error *err);
void pn_model_free(pn_model *m);
const pn_model_info *pn_model_get_info(const pn_model *m);

/* Decodes an image file held in memory (JPEG or PNG), preprocesses it as in
 * training and predicts. want_cam adds a Grad-CAM map. */
pn_status pn_model_predict_bytes(pn_model *m, const void *bytes, size_t size, int want_cam,
                                 pn_prediction *out, pn_error *err);
pn_status pn_model_predict_file(pn_model *m, const char *path, int want_cam, pn_prediction *out,
                                pn_error *err);
/* Runs the network (and Grad-CAM) once on a blank image, so the first real
 * request does not pay for building oneDNN's kernels. */
pn_status pn_model_warm_up(pn_model *m, pn_error *err);
/* Frees the prediction's Grad-CAM map. */
void pn_prediction_clear(pn_prediction *p);

#endif
