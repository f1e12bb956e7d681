/* Training a pneumo model from a folder dataset (Kaggle chest_xray layout):
 * patient-wise validation split, cached decoding, augmentation, optional
 * two-phase transfer learning, per-epoch validation, checkpoints, and at the
 * end a decision threshold and temperature chosen on validation. */
#ifndef PNEUMO_TRAIN_H
#define PNEUMO_TRAIN_H

#include <stdint.h>

#include "pneumo/data.h"
#include "pneumo/dist.h"
#include "pneumo/error.h"
#include "pneumo/nn.h"

typedef struct pn_train_config {
    const char *data_dir;       /* <root>/train/{NORMAL,PNEUMONIA} or <root>/{NORMAL,PNEUMONIA} */
    const char *arch;           /* name in models/arch or a cfg path */
    const char *init;           /* pretrained safetensors (by name), or NULL */
    const char *init_skip;      /* our parameters not to import (e.g. "classifier.") */
    const char *out_dir;        /* model.safetensors, best/last checkpoints, history.csv */
    const char *recipe_text;    /* the recipe (command line or file), stored in the model */
    int input_size, channels;   /* 0 = from the cfg */
    int epochs, batch, threads;
    float lr, weight_decay, label_smoothing, val_fraction;
    pn_optim_kind optimizer;
    pn_schedule_kind schedule;
    float warmup_epochs;
    const char *freeze_prefix;  /* frozen for the first freeze_epochs (NULL = none) */
    int freeze_epochs;
    float phase2_lr_scale;      /* lr multiplier after unfreezing */
    int class_weights_auto;     /* inverse-frequency class weights */
    float class_weights[2];     /* used when not auto and [0] > 0 */
    int augment;                /* default augmentation on/off */
    int letterbox;              /* resize keeping the aspect ratio (pad black); default: squash */
    int early_stop;             /* epochs without validation AUC improvement; 0 = off */
    float target_sensitivity;   /* threshold rule; default 0.95 */
    pn_dtype precision;
    uint64_t seed;
    int max_images;             /* use at most this many training images (tests); 0 = all */
    int resume;                 /* continue from out_dir/checkpoint.safetensors */
    int stop_after;             /* stop (as *stop would) after this many optimiser steps; 0 = never */
    /* Patient-wise K-fold cross-validation: with folds > 0 the held-out set is
     * fold `fold` of pn_dataset_folds (val_fraction is then unused). */
    int folds, fold;
    int keep_last;              /* keep the last epoch's weights (CV: no choice on held-out data) */
    int classes;                /* 2 (normal/pneumonia) or 3 (normal/bacterial/viral); 0 = 2 */
    float ema_decay;            /* exponential moving average of the weights; 0 = off */
    float mixup_alpha;          /* mixup with lambda ~ Beta(a, a); 0 = off */
    int clahe;                  /* CLAHE (8x8 tiles, clip 2) on every image before the network */
    pn_augment_preset aug_preset; /* augmentation strength when augment is on */
    const char *cache_dir;      /* where the decoded-image cache lives; NULL = out_dir */
    /* Data-parallel training over a process group (pneumo/dist.h); NULL =
     * this process alone. `batch` stays the batch of one optimiser step,
     * split over the processes (rank r trains images [first_r, first_r +
     * n_r) of it, n_r = batch / N or one more), so a recipe trains the same
     * model on any number of processes; only rank 0 validates and writes. */
    pn_dist *dist;
    int sync_bn;                /* with a group: batch statistics over the whole batch, not the slice */
    int patient_ids;            /* 1: val_predictions.csv (and cv's oof.csv) name each row's patient; 0: its
                                 * patient group as "group<N>" (rows of one patient stay linked, no id written) */
    float dist_timeout_s;       /* for whoever opens the group (the CLI): pn_dist_options.timeout_s */
} pn_train_config;

pn_train_config pn_train_defaults(void);

typedef struct pn_train_progress {
    int fold, folds;            /* cross-validation: 1-based fold being trained, of folds; else 0 */
    int epoch, epochs, batch, batches, phase;
    double loss, accuracy, images_per_s, eta_s, elapsed_s;
    int epoch_done;             /* 1: the validation fields below are set */
    double val_loss, val_accuracy, val_auc, val_sensitivity, val_specificity, lr;
    int best;                   /* this epoch is the best so far */
    /* Set (and nothing else) for a warning to show the user, e.g. before the
     * first batch when file names carry no patient id. */
    const char *warning;
} pn_train_progress;

typedef void (*pn_train_progress_fn)(void *user, const pn_train_progress *p);

typedef struct pn_train_result {
    int stopped;                /* *stop was set: a checkpoint was written, no model */
    double seconds;
    int best_epoch;
    float threshold, threshold_youden, temperature;
    double val_auc, val_sensitivity, val_specificity, val_accuracy, val_balanced_accuracy;
    const char *split_kind;     /* "patient-wise", "image-wise", ... (pn_split_kind) */
    char model_path[4096];      /* empty on ranks other than 0 */
    int processes;              /* in the group that trained (1 = one process) */
    double images_per_s;        /* training images (all processes') per second of training steps,
                                   after the first two; 0 when there were no more */
    double grad_wait_s;         /* this process's wait for gradient sums after backward */
    double comm_wait_s;         /* this process's time blocked in all collectives */
} pn_train_result;

/* *stop may be set (e.g. from a SIGINT handler) to finish after the current
 * batch; out_dir/checkpoint.safetensors is then written, and a later run with
 * resume = 1 continues bit for bit (same recipe, same thread count). */
pn_status pn_train_run(const pn_train_config *cfg, pn_train_progress_fn progress, void *user,
                       volatile int *stop, pn_train_result *result, pn_error *err);

/* ---- patient-wise K-fold cross-validation ---- */

typedef struct pn_cv_result {
    int stopped;                /* *stop was set: the current fold left a checkpoint */
    int folds;
    double seconds;             /* this call's wall time (folds already done cost nothing) */
    double temperature;         /* fitted on the pooled out-of-fold logits */
    float threshold;            /* on pooled OOF probabilities, for cfg->target_sensitivity */
    double roc_auc, sensitivity, specificity, accuracy, ece_before, ece_after;
    int classes;
    double accuracy3, macro_auc3; /* three-class figures (classes == 3) */
    char dir[4096];
} pn_cv_result;

/* Trains cfg->folds models (default 5), fold k in out_dir/fold-<k+1>/ with
 * fold k held out, keeping each fold's last weights (no choice is made on
 * held-out data). A fold whose model and predictions exist is skipped; one
 * with a checkpoint resumes, so a stopped run continues with the same call.
 * Then pools the out-of-fold predictions: out_dir/oof.csv (every image of
 * the training folder exactly once), a temperature and a threshold fitted on
 * them, metrics with bootstrap CIs, per-fold figures with mean and sd,
 * calibration before/after temperature scaling, three-class figures when
 * cfg->classes == 3, cv.json, cv.html and report/ (pn_report_write). */
pn_status pn_cv_run(const pn_train_config *cfg, pn_train_progress_fn progress, void *user,
                    volatile int *stop, pn_cv_result *result, pn_error *err);

/* The pooling half of pn_cv_run on the folds already in out_dir. */
pn_status pn_cv_pool(const pn_train_config *cfg, pn_cv_result *result, pn_error *err);

#endif
