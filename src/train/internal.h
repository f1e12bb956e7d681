/* Shared by the training loop and its checkpoints. Not a public API. */
#ifndef PNEUMO_TRAIN_INTERNAL_H
#define PNEUMO_TRAIN_INTERNAL_H

#include "pneumo/data.h"
#include "pneumo/eval.h"
#include "pneumo/train.h"

/* Where training stands: enough to continue bit for bit after a stop. */
typedef struct train_state {
    int epoch;                  /* current epoch, 0-based */
    int batch;                  /* batches of it already trained */
    int step;                   /* optimiser steps so far (drives the LR schedule) */
    int best_epoch, since_best;
    double best_auc, best_loss;
    double loss_sum, correct, seen; /* running sums of the current epoch */
    pn_schedule sched;
} train_state;

typedef struct trainer {
    const pn_train_config *cfg;
    pn_dataset ds;
    pn_split split;
    pn_cache *cache;
    pn_loader *train, *val;
    pn_ctx *ctx;
    pn_net *net;
    pn_optim *opt;
    char *arch_text;
    int classes;                /* 2 or 3 (pn_train_config.classes) */
    float *x;                   /* [batch][size][size][channels] input batch */
    float *dlogits, *dlogits_mix; /* [batch][classes] loss gradients (mixup: its partner's) */
    float *logits_val;          /* [n_val][classes] validation logits, split order */
    float *best_params, *ema;   /* [total parameter values] kept weights; EMA weights or NULL */
    int *labels, *mix_labels;   /* [batch] class of each sample; mixup partner's class */
    int *val_labels;            /* [n_val] binary labels (0 normal, 1 pneumonia) */
    size_t *batch_index;        /* [batch] cache indices of the batch */
    size_t *val_index;          /* [n_val] cache (= dataset) indices of validation images */
    size_t n_val, n_train;
    float class_weights[3];
    float *h_train_loss, *h_val_loss, *h_train_acc, *h_val_acc, *h_val_auc;
    double t_start;
} trainer;

/* out_dir/checkpoint.safetensors: parameters, best parameters, optimiser
 * moments, training history and state; written atomically. */
pn_status pn_checkpoint_save(const trainer *t, const train_state *s, pn_error *err);
/* Restores what pn_checkpoint_save wrote; fails if the recipe differs. */
pn_status pn_checkpoint_load(trainer *t, train_state *s, pn_error *err);
char *pn_train_recipe_json(const pn_train_config *c, const trainer *t, int with_command);
/* The holdout rule the config asks for: fold `fold` of `folds`, else val_fraction. */
pn_holdout pn_train_holdout(const pn_train_config *c);

/* train_data.c: split, cache, loaders and class weights for t->cfg. */
pn_status pn_train_setup_data(trainer *t, int size, int channels, const float *mean, const float *std,
                              pn_error *err);
/* With three classes, labels[i] becomes the subtype of cache index idx[i]. */
void pn_train_to_classes(const trainer *t, const size_t *idx, int *labels, int n);

/* step.c */
size_t pn_train_param_values(pn_net *net);              /* parameter and buffer values in all */
void pn_train_copy_params(pn_net *net, float *buf, int to_buf); /* buf <-> the net's parameters */
void pn_train_ema_update(trainer *t, int step);        /* t->ema toward the weights after a step */
void pn_train_ema_swap(trainer *t);                    /* the net's weights <-> t->ema */
/* Mixes the batch in t->x with its reverse (labels in t->mix_labels); the lambda drawn. */
float pn_train_mixup_batch(trainer *t, int step, int n);
/* The batch's loss with dlogits in t->dlogits; with lam < 1 the mix of both targets. */
float pn_train_batch_loss(trainer *t, const float *z, int n, float lam);
int pn_train_argmax(const float *z, int classes);

#endif
