/* Internals of the infer module: a pn_model is one or more members, each a
 * network with its own preprocessing and calibration. */
#ifndef PNEUMO_INFER_INTERNAL_H
#define PNEUMO_INFER_INTERNAL_H

#include "pneumo/data.h"
#include "pneumo/infer.h"
#include "pneumo/nn.h"

/* Heads a model may have: NORMAL / PNEUMONIA, or NORMAL / BACTERIAL / VIRAL
 * (P(pneumonia) = P(bacterial) + P(viral)). */
#define PN_MODEL_MAX_CLASSES 3

/* One network of a model with everything needed to turn an image into a
 * probability: the network (fused for inference), its input preprocessing
 * (size, channels, mean/std in the net, resize mode) and its temperature.
 * A model is a list of members so that an ensemble is more members whose
 * probabilities are averaged (model_probability in predict.c). */
typedef struct pn_model_member {
    char *path;
    char *prefix;          /* tensor-name prefix in the file ("" or "m<i>/") */
    char *arch;            /* cfg text (spec.arch points here) */
    pn_net_spec spec;      /* to rebuild the network for Grad-CAM */
    pn_net *net;           /* fused, inference only */
    pn_net *cam_net;       /* unfused, for Grad-CAM; created lazily */
    float temperature;     /* the binary logit is divided by it (1 = uncalibrated) */
    pn_resize_mode resize;
    int clahe;             /* CLAHE after resizing, as in training */
    int classes;           /* 2 or 3 */
    float *input;          /* [PN_TTA_MAX_VIEWS][input_size][input_size][channels] preprocessed views */
    uint8_t *view;         /* [input_size * input_size] one view's pixels */
    float logits[PN_MODEL_MAX_CLASSES]; /* identity view's logits of the last prediction */
} pn_model_member;

struct pn_model {
    pn_ctx *ctx;               /* with the model's thread count */
    pn_model_member *members; /* [n_members]; the Grad-CAM is the mean of their maps */
    int n_members;
    int tta;                  /* views per member (1 = none); the model's stored choice or an override */
    int classes;              /* 3 when every member has the three-class head, else 2 */
    pn_model_info info;
    char id[17], *version, *arch_name, *metrics_json, *card_json;
};

#endif
