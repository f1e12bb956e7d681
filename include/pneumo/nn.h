/* pneumo's neural-network engine: networks described by a text cfg
 * (docs/cfg.md), run on oneDNN primitives, trained with fp32 master weights
 * and fp32 or bf16 compute.
 *
 * Activations are NHWC. The caller feeds float32 NHWC input normalised as the
 * model expects, and reads float32 logits. Nothing here is global: a pn_ctx
 * holds the oneDNN engine and stream; a pn_net is used by one thread at a time. */
#ifndef PNEUMO_NN_H
#define PNEUMO_NN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pneumo/error.h"
#include "pneumo/tensor.h"

/* ---- context ------------------------------------------------------------ */
typedef struct pn_ctx pn_ctx;

typedef struct pn_ctx_options {
    /* OpenMP threads for the work of this context's networks and optimisers
     * (forward, backward, optimiser step); 0 = the calling thread's setting.
     * Applied for the duration of each call and restored after it, so the
     * caller's OpenMP settings never change. */
    int threads;
} pn_ctx_options;

pn_status pn_ctx_create(pn_ctx **out, pn_error *err);
/* pn_ctx_create with options (NULL = defaults). */
pn_status pn_ctx_create_with(const pn_ctx_options *opt, pn_ctx **out, pn_error *err);
void pn_ctx_destroy(pn_ctx *ctx);
/* 1 when the CPU computes bf16 natively (AVX512-BF16 or AMX). */
int pn_ctx_has_native_bf16(const pn_ctx *ctx);
const char *pn_ctx_isa_name(const pn_ctx *ctx);

/* ---- networks ----------------------------------------------------------- */
typedef struct pn_net pn_net;

/* Sums over a group of processes training one network on slices of each
 * batch (data-parallel training): sum(user, v, n) replaces v[0..n) by its
 * element-wise sums over the group and returns 0, or -1 on failure. */
typedef struct pn_net_group {
    int (*sum)(void *user, double *v, size_t n);
    void *user;
} pn_net_group;

typedef struct pn_net_options {
    int channels;       /* 0 = as in the cfg */
    int input_size;     /* 0 = as in the cfg */
    int classes;        /* 0 = as in the cfg */
    pn_dtype precision; /* compute type; PN_BF16 falls back to PN_F32 without native bf16 */
    uint64_t seed;      /* initialisation and dropout */
    int no_bn_fusion; /* no training fusions of batch norm with the following activation or
                         squeeze-excitation block (a reference for tests) */
    /* Synchronised batch norm: training batch statistics (and their gradient
     * sums) over the whole group's batch, not this process's slice; NULL =
     * this process's batch. Copied; the group must outlive the net. */
    const pn_net_group *bn_group;
} pn_net_options;

typedef struct pn_param {
    char name[128];
    int ndim;
    int shape[4];
    size_t numel;
    float *data;        /* fp32 master copy */
    float *grad;        /* written by pn_net_backward; NULL for buffers */
    int is_buffer;      /* running statistics: saved, not trained */
    int frozen;         /* excluded from optimisation (and its layer's weight gradients) */
    int no_decay;       /* biases and norm parameters: no weight decay */
} pn_param;

/* Builds a network from cfg text. Parameters are initialised seeded: He
 * (Kaiming) normal for convolutions, Xavier uniform for fully connected and
 * SE output layers, zero biases, batch norm gamma 1. */
pn_status pn_net_create(pn_ctx *ctx, const char *cfg_text, const pn_net_options *opt,
                        pn_net **out, pn_error *err);
void pn_net_destroy(pn_net *net);

/* Reads models/arch/NAME.cfg (searching $PNEUMO_ARCH_DIR, the source tree, the
 * installed share dir) or a file path; *text is malloc'ed. */
pn_status pn_arch_read(const char *name_or_path, char **text, pn_error *err);

int pn_net_input_size(const pn_net *net);
int pn_net_channels(const pn_net *net);
int pn_net_classes(const pn_net *net);
pn_dtype pn_net_precision(const pn_net *net);
const char *pn_net_cfg_text(const pn_net *net);
const float *pn_net_mean(const pn_net *net); /* per-channel normalisation */
const float *pn_net_std(const pn_net *net);

size_t pn_net_param_count(const pn_net *net);
pn_param *pn_net_param(pn_net *net, size_t i);
pn_param *pn_net_find_param(pn_net *net, const char *name);
/* Freezes (1) or unfreezes (0) every parameter whose name starts with prefix
 * ("" = all); returns how many matched. */
size_t pn_net_freeze(pn_net *net, const char *prefix, int frozen);
/* Data-parallel training, where this process holds images [first, first + n)
 * of each batch: dropout masks are drawn for those positions, so the group
 * draws the masks one process with the whole batch would. Default 0. */
void pn_net_set_batch_offset(pn_net *net, int first);
/* Called by pn_net_backward after each layer's backward with the lowest
 * parameter index whose gradient is final (every parameter from it on is
 * done; pn_net_param_count when none is yet), so gradient sums over
 * processes can start while earlier layers still run. NULL = none. */
typedef void (*pn_net_grad_hook)(void *user, size_t first_done);
void pn_net_set_grad_hook(pn_net *net, pn_net_grad_hook hook, void *user);
/* Training forward passes so far (dropout masks depend on it; checkpoints save it). */
uint64_t *pn_net_step_counter(pn_net *net);
/* Call after writing parameter data directly, so cached weight layouts refresh. */
void pn_net_params_changed(pn_net *net);
/* Total trainable values. */
size_t pn_net_trainable_count(const pn_net *net);

/* Forward modes. */
enum {
    PN_FWD_INFER = 0, /* inference: running statistics, no dropout, nothing kept */
    PN_FWD_TRAIN = 1, /* training: batch statistics, dropout, keeps what backward needs */
    PN_FWD_GRAD = 2   /* inference semantics, but backward allowed (Grad-CAM) */
};
/* Forward pass on n images (float32 NHWC, n x size x size x channels). */
pn_status pn_net_forward(pn_net *net, const float *input, int n, int mode, pn_error *err);
/* Logits of the last forward, n x classes float32 (valid until the next call). */
const float *pn_net_logits(pn_net *net);
/* Backpropagates d(loss)/d(logits) (n x classes float32) from the last
 * training forward; fills every non-frozen param's grad. */
pn_status pn_net_backward(pn_net *net, const float *dlogits, pn_error *err);

/* Layer outputs by name, for Grad-CAM: activations and their gradient after
 * pn_net_backward (f32 copies, NHWC). Keep-alive is requested before forward. */
pn_status pn_net_watch(pn_net *net, const char *layer_name, pn_error *err);
pn_status pn_net_watched(pn_net *net, float **act, float **grad, int *c, int *h, int *w,
                         pn_error *err);
/* Name of the last layer with spatial output (Grad-CAM default target). */
const char *pn_net_last_conv_name(const pn_net *net);
/* Name of the last residual sum ([add]) whose output is input_size / stride
 * pixels wide, else of the last layer of that width: a mid-level feature map
 * (MobileNetV3-Small at stride 16: features.8), used by the out-of-
 * distribution gate. NULL when no layer has that width. */
const char *pn_net_layer_at_stride(const pn_net *net, int stride);

/* Prints the layer table: layer, kind, output shape, parameters, MACs. */
void pn_net_print(const pn_net *net, FILE *out);
/* Per-layer timing, for tuning an architecture or the engine: while on, every
 * forward and backward adds each layer's wall time (pn_net_profile(net, 1)
 * also clears the totals); pn_net_profile_print writes a table of the
 * average per training step, slowest layers first. */
void pn_net_profile(pn_net *net, int on);
void pn_net_profile_print(const pn_net *net, FILE *out);
uint64_t pn_net_macs(const pn_net *net);

/* Inference-only: folds batch norm into the preceding convolution and fuses
 * activations as oneDNN post-ops. The net can no longer train afterwards. */
pn_status pn_net_fuse_for_inference(pn_net *net, pn_error *err);

/* For fine-tuning BN-folded pretrained weights with batch statistics: one
 * forward pass over a representative batch sets every batch norm's running
 * statistics to the batch's and rescales its affine parameters so that the
 * function computed is unchanged (see ../shared/pretrained/README.md). */
pn_status pn_net_recalibrate_bn(pn_net *net, const float *input, int n, pn_error *err);

/* Copies weights by name from a safetensors file. map: "from=to" prefix
 * rewrites, ';'-separated (may be NULL). skip_prefix: parameters of ours not
 * to load (e.g. "classifier."; NULL for none). A conv bias in the file whose
 * layer has no bias but feeds a batch norm becomes that batch norm's shift
 * (BN-folded pretrained files). Fails on shape mismatch; reports unused and
 * missing tensors in *report (malloc'ed text, may be NULL). */
pn_status pn_net_load_weights(pn_net *net, const char *path, const char *map,
                              const char *skip_prefix, char **report, pn_error *err);

/* ---- the computed graph, for exporters ------------------------------------ */
typedef enum pn_act_kind {
    PN_ACT_LINEAR, PN_ACT_RELU, PN_ACT_RELU6, PN_ACT_HARDSWISH, PN_ACT_HARDSIGMOID,
    PN_ACT_SIGMOID, PN_ACT_SILU
} pn_act_kind;
/* hardswish(x) = x relu6(x + 3) / 6, hardsigmoid(x) = relu6(x + 3) / 6, silu(x) = x sigmoid(x). */
const char *pn_act_name(pn_act_kind k);

/* The registry of layer kinds; names are the cfg section names. */
typedef enum pn_layer_kind {
    PN_LAYER_INPUT, PN_LAYER_CONV, PN_LAYER_BATCHNORM, PN_LAYER_ACTIVATION, PN_LAYER_MAXPOOL,
    PN_LAYER_AVGPOOL, PN_LAYER_GAP, PN_LAYER_FC, PN_LAYER_DROPOUT, PN_LAYER_ADD, PN_LAYER_CONCAT,
    PN_LAYER_SE, PN_LAYER_KIND_COUNT
} pn_layer_kind;
const char *pn_layer_kind_name(pn_layer_kind kind);

#define PN_LAYER_MAX_INPUTS 8

/* What one layer computes at inference, as the net stands: after
 * pn_net_fuse_for_inference a convolution carries its folded batch norm in
 * weight and bias and its activation in act, and the layers it absorbed are
 * `folded`. Layer outputs are per image c x h x w; pointers are valid until
 * the net changes. */
typedef struct pn_layer_desc {
    pn_layer_kind kind;
    const char *name;
    int n_inputs;
    int inputs[PN_LAYER_MAX_INPUTS]; /* layer indices; 0 is the network input */
    int c, h, w;
    int folded;       /* its function is already applied by its input's layer: output = input 0 */
    pn_act_kind act;  /* applied to the result: conv post-op, batch norm's fused activation,
                         [activation]'s function; [se]: the squeeze activation */
    pn_act_kind gate; /* [se] */
    int kh, kw, sh, sw, dh, dw; /* conv, maxpool, avgpool */
    int pt, pb, pl, pr;         /* padding top, bottom, left, right */
    int groups;                 /* conv */
    int squeeze;                /* [se] */
    float eps;                  /* batchnorm */
    const float *weight; /* conv [c, in_c/groups, kh, kw]; fc [c, in_c*in_h*in_w] over its input
                            flattened in NHWC order; [se] fc1 [squeeze, c] */
    const float *bias;   /* conv, fc [c]; [se] fc1 [squeeze]; NULL when none */
    const float *weight2, *bias2;           /* [se] fc2 [c, squeeze], [c] */
    const float *gamma, *beta, *mean, *var; /* batchnorm [c] */
} pn_layer_desc;

/* Layers in execution order; layer 0 is the input (c x h x w = channels x size x size). */
int pn_net_layer_count(const pn_net *net);
void pn_net_describe(const pn_net *net, int index, pn_layer_desc *d);

/* ---- model files (safetensors) -------------------------------------------- */
typedef struct pn_kv {
    const char *key, *value;
} pn_kv;

#define PN_MODEL_FORMAT_VERSION "1"

/* The one rule for what pn_net_save stores as bf16 when asked to: trainable
 * weights with more than one dimension (conv and fc kernels). Biases, batch
 * norm scales and running statistics stay fp32. */
int pn_param_stored_bf16(const pn_param *p);
/* Writes every parameter and buffer (weights as bf16 when bf16_weights, see
 * pn_param_stored_bf16, else fp32) and __metadata__: format, version,
 * arch (the cfg text), input_size, channels, classes, mean, std, plus `meta`. */
pn_status pn_net_save(const pn_net *net, const char *path, const pn_kv *meta, size_t n_meta,
                      int bf16_weights, pn_error *err);
/* Rebuilds the network from a model file's own metadata and loads every
 * tensor, rejecting unknown, missing, mis-shaped or non-finite ones. *meta
 * (optional) receives the opened file for reading the rest of __metadata__;
 * close it with pn_st_close. */
struct pn_st_file;
pn_status pn_net_load(pn_ctx *ctx, const char *path, pn_dtype precision, pn_net **out,
                      struct pn_st_file **meta, pn_error *err);

/* What a model file records to rebuild one network. */
typedef struct pn_net_spec {
    const char *arch;           /* cfg text */
    int input_size, channels, classes;
    float mean[3], std[3];      /* input normalisation per channel */
} pn_net_spec;
/* The spec in a single-network model file's metadata (format, version,
 * arch, input_size, channels, classes, mean, std); arch points into f. */
pn_status pn_net_spec_from_metadata(struct pn_st_file *f, const char *path, pn_net_spec *spec,
                                    pn_error *err);
/* Builds the network of spec and loads its tensors from an open file: those
 * named prefix + a name without '/' (prefix "" = the names without a '/';
 * other parts of a model file, e.g. ensemble members "m0/..." or statistics
 * "ood/..." and "m0/ood/...", are not the network's). Unknown, missing, mis-shaped or non-finite tensors
 * are errors naming path. */
pn_status pn_net_load_from(pn_ctx *ctx, struct pn_st_file *f, const char *path, const char *prefix,
                           const pn_net_spec *spec, pn_dtype precision, pn_net **out, pn_error *err);

/* Writes an ensemble model file from single-network model files: member i's
 * tensors as "m<i>/<name>" (bytes as stored), its description (arch cfg,
 * input size, channels, classes, mean, std, resize, CLAHE, temperature,
 * recipe, metrics, SHA-256 of its file) in the "members" JSON array, and the
 * caller's metadata (threshold, metrics, tta, ...). temperature > 0 replaces
 * every member's own. pn_model_load (infer.h) reads it. */
pn_status pn_ensemble_write(const char *out, const char *const *members, int n, double temperature,
                            const pn_kv *meta, size_t n_meta, pn_error *err);

/* ---- losses --------------------------------------------------------------- */
/* Mean softmax cross-entropy with optional per-class weights (NULL = 1) and
 * label smoothing; writes dlogits (n x classes) when non-NULL. */
float pn_softmax_cross_entropy(const float *logits, const int *labels, int n, int classes,
                               const float *class_weights, float label_smoothing,
                               float *dlogits);
/* Mean binary cross-entropy with logits (one logit per sample), optional
 * positive-class weight. */
float pn_bce_with_logits(const float *logits, const float *targets, int n, float pos_weight,
                         float *dlogits);
void pn_softmax(const float *logits, int n, int classes, float *probs);
/* log P(any class but 0) - log P(class 0) of one sample's logits: the binary
 * PNEUMONIA-vs-NORMAL logit of a 2-class (z1 - z0) or 3-class
 * (logsumexp(z1, z2) - z0) head. */
float pn_positive_logit(const float *z, int classes);

/* ---- optimisers and schedules ------------------------------------------- */
typedef enum pn_optim_kind { PN_SGD, PN_ADAM, PN_ADAMW } pn_optim_kind;

typedef struct pn_optim_config {
    pn_optim_kind kind;
    float lr;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float beta1, beta2, eps; /* Adam(W) */
    float weight_decay;  /* L2 for SGD/Adam, decoupled for AdamW */
    float clip_norm;     /* global gradient-norm clipping; 0 = off */
} pn_optim_config;

typedef struct pn_optim pn_optim;

pn_optim_config pn_optim_defaults(pn_optim_kind kind);
pn_status pn_optim_create(const pn_optim_config *cfg, pn_net *net, pn_optim **out, pn_error *err);
void pn_optim_destroy(pn_optim *o);
/* One update of every trainable parameter at learning rate lr; returns the
 * gradient norm before clipping. */
float pn_optim_step(pn_optim *o, float lr);
/* State for checkpoints: moments per parameter, step count. */
size_t pn_optim_state_count(const pn_optim *o);
float *pn_optim_state(pn_optim *o, size_t param_index, int which); /* which 0/1 = moments */
int64_t *pn_optim_step_counter(pn_optim *o);

typedef enum pn_schedule_kind { PN_SCHED_CONSTANT, PN_SCHED_STEP, PN_SCHED_COSINE, PN_SCHED_PLATEAU } pn_schedule_kind;

typedef struct pn_schedule {
    pn_schedule_kind kind;
    float base_lr, min_lr;
    int warmup_steps;       /* linear warm-up (cosine) */
    int total_steps;        /* cosine */
    int step_size;          /* step: epochs between decays */
    float gamma;            /* step and plateau factor */
    int patience;           /* plateau: epochs without improvement */
    /* plateau state: zero it before the first observation (current_lr 0 = none yet) */
    float best, current_lr;
    int bad_epochs;
} pn_schedule;

/* Learning rate at global step `step` within epoch `epoch`. */
float pn_schedule_lr(const pn_schedule *s, int step, int epoch);
/* Plateau schedule: report the epoch's validation metric (lower is better). */
void pn_schedule_observe(pn_schedule *s, float val_metric);

/* ---- reproducible randomness -------------------------------------------- */
/* Counter-based: the same (seed, a, b) always gives the same stream, whatever
 * the thread that asks. */
typedef struct pn_rng { uint64_t s[2]; } pn_rng;
pn_rng pn_rng_seed(uint64_t seed, uint64_t a, uint64_t b);
uint64_t pn_rng_next(pn_rng *r);
float pn_rng_uniform(pn_rng *r);          /* [0, 1) */
float pn_rng_normal(pn_rng *r);
float pn_rng_beta(pn_rng *r, float a);     /* Beta(a, a), a > 0 (mixup's lambda) */

#endif
