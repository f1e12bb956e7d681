/* Shared by the training loop and its checkpoints. Not a public API. */
#ifndef PNEUMO_TRAIN_INTERNAL_H
#define PNEUMO_TRAIN_INTERNAL_H

#include "pneumo/data.h"
#include "pneumo/dist.h"
#include "pneumo/eval.h"
#include "pneumo/os.h"
#include "pneumo/train.h"

typedef struct pn_train_par pn_train_par;

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
    /* Data parallelism (parallel.c): this process is rank `rank` of `ranks`
     * and trains images [batch_first, batch_first + local_batch) of each batch. */
    pn_dist *dist;              /* cfg->dist, or the single process */
    pn_dist *own_dist;          /* the single process made here (freed with the trainer) */
    int rank, ranks, batch_first, local_batch;
    pn_train_par *par;          /* gradient buckets; NULL in one process */
    int stop_agreed;            /* some process asked to stop (summed each step) */
    double grad_wait_s;         /* waiting for gradient sums after backward */
    int steps_run;              /* by this call of pn_train_run */
    double train_s, images_trained; /* in its training steps after the first two (images per second) */
    pn_net_group bn_group;      /* synchronised batch norm over t->dist */
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

/* parallel.c: data-parallel training; each is a no-op in one process. */
/* The process group and this process's slice of each batch (before the data and net are set up). */
pn_status pn_train_par_init(trainer *t, pn_error *err);
/* After the net and buffers exist: rank 0's weights everywhere, dropout
 * offset, gradient buckets and the backward hook that starts their sums. */
pn_status pn_train_par_setup(trainer *t, pn_error *err);
pn_status pn_train_par_epoch_start(trainer *t, pn_error *err); /* buckets for what trains now */
/* After the loss of this process's n images: the whole batch's loss, correct
 * count and image count (summed over processes), dlogits rescaled to the
 * whole batch, and whether any process asked to stop. */
pn_status pn_train_par_step(trainer *t, int n, float *loss, double *correct, double *seen,
                            volatile int *stop, pn_error *err);
/* After backward: every gradient summed over the processes. */
pn_status pn_train_par_grads(trainer *t, pn_error *err);
/* Rank 0's train state and early-stop decision after its epoch end, to all. */
pn_status pn_train_par_epoch_end(trainer *t, train_state *s, int *early, pn_error *err);
/* Whether training stops before the next step: *stop in one process, the
 * processes' agreement (pn_train_par_step) in a group. */
int pn_train_stopping(const trainer *t, volatile int *stop);
void pn_train_par_free(trainer *t);
static inline int pn_train_is_root(const trainer *t) { return t->rank == 0; }

/* history_file.c: out_dir/history.csv */
void pn_train_append_history(const trainer *t, int epoch, double lr, double tl, double ta, double vl,
                             const pn_metrics *m);
/* On resume: the header and the rows of the `completed` epochs only. */
pn_status pn_train_trim_history(const trainer *t, int completed, pn_error *err);
/* The per-epoch curves as JSON (stored in the model) and as history.png. */
char *pn_train_history_json(trainer *t, int epochs);

#endif
