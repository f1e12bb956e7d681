/* Internals of the infer module: a pn_model is one or more members, each a
 * network with its own preprocessing and calibration. */
#ifndef PNEUMO_INFER_INTERNAL_H
#define PNEUMO_INFER_INTERNAL_H

#include "pneumo/data.h"
#include "pneumo/infer.h"
#include "pneumo/nn.h"

/* The output classes a model must have: NORMAL (class 0) and PNEUMONIA. */
#define PN_MODEL_CLASSES 2

/* One network of a model with everything needed to turn an image into a
 * probability: the network (fused for inference), its input preprocessing
 * (size, channels, mean/std in the net, resize mode) and its temperature.
 * A model is a list of members so that an ensemble is more members whose
 * probabilities are averaged (model_probability in predict.c). */
typedef struct pn_model_member {
    char *path;
    pn_net *net;           /* fused, inference only */
    pn_net *cam_net;       /* unfused, for Grad-CAM; created lazily */
    float temperature;     /* logits are divided by it (1 = uncalibrated) */
    pn_resize_mode resize;
    float *input;          /* [input_size * input_size * channels] one preprocessed image */
} pn_model_member;

struct pn_model {
    pn_ctx *ctx;               /* with the model's thread count */
    pn_model_member *members; /* [n_members]; members[0] draws the Grad-CAM */
    int n_members;
    pn_model_info info;
    char id[17], *version, *arch_name, *metrics_json, *card_json;
};

#endif
