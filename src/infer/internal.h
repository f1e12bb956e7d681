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
/* The gate's default feature map: mid-level (1/16 of the input width), where
 * features still describe the image rather than the diagnosis (docs/ood.md). */
#define PN_OOD_STRIDE 16

/* A member's out-of-distribution statistics (ood.c): class-conditional
 * Gaussians over its feature vector with one shared, shrunk covariance.
 * Stored in the model file as <prefix>ood/means, ood/precision, ood/threshold. */
typedef struct pn_ood_stats {
    int dim, classes;   /* feature length, Gaussians (one per class) */
    float *means;       /* [classes][dim] */
    float *precision;   /* [dim][dim] inverse of the shrunk pooled covariance */
    float threshold;    /* squared distance refused above (set on held-out images) */
} pn_ood_stats;

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
    char *feature_layer;       /* watched for the OOD gate: the file's <prefix>ood/layer, or by
                                * default pn_net_layer_at_stride(net, PN_OOD_STRIDE); NULL if none */
    float *feat;               /* [2 * channels of feature_layer] its per-channel spatial mean, then std */
    pn_ood_stats ood;          /* dim 0 when the file has none for this member */
} pn_model_member;

/* ood.c: reads a member's statistics from the open file (absent = none) and
 * watches its feature layer. */
struct pn_st_file;
pn_status pn_ood_load_member(pn_model_member *mb, struct pn_st_file *f, pn_error *err);
void pn_ood_stats_free(pn_ood_stats *s);
/* Squared Mahalanobis distance of features f[dim] to the nearest class mean. */
double pn_ood_distance(const pn_ood_stats *s, const float *f);
/* The member's feature vector of its last forward (identity view) into
 * mb->feat: per channel of the feature layer the spatial mean, then the
 * spatial standard deviation. Returns its length, or -1 (nothing watched, no memory). */
int pn_ood_features(pn_model_member *mb);
/* The first cheap image check the image fails (colour, aspect, histogram), or NULL. */
const char *pn_ood_image_check(const pn_image *img);
/* predict.c: member i's feature vector of img (identity view, as predicted):
 * *feat points into the network (valid until its next forward), *dim its length. */
pn_status pn_model_member_features(pn_model *m, int i, const pn_image *img, const float **feat, int *dim,
                                   pn_error *err);
/* After the members' forward passes on img: fills the prediction's gate fields. */
void pn_ood_judge(pn_model *m, const pn_image *img, pn_prediction *out);

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
