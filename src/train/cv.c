/* pneumo cv: patient-wise K-fold cross-validation, one training run per fold. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pneumo/train.h"
#include "train/cv_internal.h"

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

typedef struct fold_progress {
    pn_train_progress_fn inner;
    void *user;
    int fold, folds;
} fold_progress;

static void forward_progress(void *user, const pn_train_progress *p)
{
    fold_progress *f = user;
    pn_train_progress q = *p;
    q.fold = f->fold + 1;
    q.folds = f->folds;
    f->inner(f->user, &q);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Trains fold k unless its model and predictions exist; resumes a checkpoint. */
static pn_status run_fold(const pn_train_config *base, int k, pn_train_progress_fn progress,
                          void *user, volatile int *stop, int *stopped, pn_error *err)
{
    char dir[4096], model[4200], preds[4200], ckpt[4200];
    pn_cv_fold_dir(base, k, dir, sizeof dir);
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(preds, sizeof preds, "%s/val_predictions.csv", dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    if (file_exists(model) && file_exists(preds))
        return PN_OK;
    pn_train_config c = *base;
    c.fold = k;
    c.keep_last = 1;
    c.out_dir = dir;
    c.cache_dir = base->out_dir;
    c.resume = file_exists(ckpt);
    fold_progress fp = {progress, user, k, base->folds};
    pn_train_result r;
    pn_status st = pn_train_run(&c, progress ? forward_progress : NULL, &fp, stop, &r, err);
    if (st)
        return pn_error_prefix(err, st, "fold %d: ", k + 1);
    *stopped = r.stopped;
    return PN_OK;
}

pn_status pn_cv_run(const pn_train_config *cfg, pn_train_progress_fn progress, void *user,
                    volatile int *stop, pn_cv_result *result, pn_error *err)
{
    memset(result, 0, sizeof *result);
    double t0 = seconds_now();
    pn_train_config base = *cfg;
    if (base.folds == 0)
        base.folds = 5;
    if (base.folds < 2 || base.folds > 100)
        return pn_fail(err, PN_EINVAL, "cross-validation needs 2 to 100 folds, got %d", base.folds);
    pn_status st = PN_OK;
    for (int k = 0; !st && k < base.folds && !result->stopped; k++)
        st = run_fold(&base, k, progress, user, stop, &result->stopped, err);
    if (!st && !result->stopped)
        st = pn_cv_pool(&base, result, err);
    result->folds = base.folds;
    result->seconds = seconds_now() - t0;
    return st;
}
