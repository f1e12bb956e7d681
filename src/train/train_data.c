/* The training loop's data: the held-out split (a validation fraction or a
 * cross-validation fold), the decoded-image cache, the loaders with their
 * augmentation, and the class weights; three-class training relabels by subtype. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"


/* The class a network output is trained for: the binary label, or with three
 * classes the subtype (0 normal, 1 bacterial, 2 viral). */
static int class_of(const trainer *t, size_t idx)
{
    return t->classes == 3 ? t->ds.samples[idx].subtype : pn_cache_label(t->cache, idx);
}

void pn_train_to_classes(const trainer *t, const size_t *idx, int *labels, int n)
{
    for (int i = 0; t->classes == 3 && i < n; i++)
        labels[i] = class_of(t, idx[i]);
}

static pn_status check_subtypes(const trainer *t, pn_error *err)
{
    const size_t *sets[2] = {t->split.train, t->split.val};
    size_t counts[2] = {t->split.n_train, t->split.n_val};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < counts[k]; i++)
            if (t->ds.samples[sets[k][i]].subtype == PN_SUBTYPE_UNKNOWN)
                return pn_fail(err, PN_EINVAL, "%s: three classes need every pneumonia image's subtype: "
                               "'bacteria' or 'virus' in its file name, or a manifest label BACTERIAL or VIRAL", t->ds.samples[sets[k][i]].path);
    return PN_OK;
}

pn_status pn_train_setup_data(trainer *t, int size, int channels, const float *mean, const float *std,
                            pn_error *err)
{
    const pn_train_config *c = t->cfg;
    pn_status st = pn_dataset_load(c->data_dir, &t->ds, err);
    if (st)
        return st;
    pn_holdout rule = pn_train_holdout(c);
    st = pn_dataset_holdout(&t->ds, &rule, &t->split, err);
    if (!st && t->classes == 3)
        st = check_subtypes(t, err);
    if (st) {
        pn_error_prefix(err, st, "%s: ", c->data_dir);
        return st;
    }
    t->n_train = t->split.n_train;
    if (c->max_images > 0 && (size_t)c->max_images < t->split.n_train) {
        /* An evenly spaced subset keeps both classes (the list is sorted by class folder). */
        t->n_train = (size_t)c->max_images;
        for (size_t i = 0; i < t->n_train; i++)
            t->split.train[i] = t->split.train[i * t->split.n_train / t->n_train];
    }
    char cache_path[4096];
    pn_resize_mode mode = c->letterbox ? PN_RESIZE_LETTERBOX : PN_RESIZE_SQUASH;
    snprintf(cache_path, sizeof cache_path, "%s/cache-%d%s.bin", c->cache_dir ? c->cache_dir : c->out_dir,
             size, c->letterbox ? "-letterbox" : "");
    int threads = c->threads > 0 ? c->threads : omp_get_num_procs();
    /* In a process group rank 0 builds the cache and the others then open it
     * (without a shared file system each builds its own; the cache is
     * written through a temporary file and rename, so that is safe). */
    if (!pn_train_is_root(t) && (st = pn_dist_barrier(t->dist, "wait for rank 0's image cache", err)))
        return st;
    if ((st = pn_cache_ensure(cache_path, &t->ds, size, mode, threads, NULL, &t->cache, err)))
        return st;
    if (pn_train_is_root(t) && (st = pn_dist_barrier(t->dist, "image cache made", err)))
        return st;
    pn_augment aug = pn_augment_from_preset(c->aug_preset);
    pn_loader_config lc = pn_loader_config_default();
    lc.batch_size = c->batch;
    lc.shuffle = 1;
    lc.drop_last = 1;
    if (t->ranks > 1) { /* this process's slice of every batch */
        lc.shard_first = t->batch_first;
        lc.shard_size = t->local_batch;
    }
    lc.seed = c->seed;
    lc.augment = c->augment ? &aug : NULL;
    lc.clahe = c->clahe;
    lc.norm.channels = channels;
    memcpy(lc.norm.mean, mean, (size_t)channels * sizeof(float));
    memcpy(lc.norm.std, std, (size_t)channels * sizeof(float));
    lc.n_threads = 1; /* one worker overlaps the compute; more would steal its cores */
    if ((st = pn_loader_create(t->cache, t->split.train, t->n_train, &lc, &t->train, err)))
        return st;
    lc.batch_size = t->local_batch; /* validation (rank 0's) in batches t->x holds */
    lc.shard_first = lc.shard_size = 0;
    lc.shuffle = 0;
    lc.drop_last = 0;
    lc.augment = NULL;
    lc.n_threads = 1;
    if ((st = pn_loader_create(t->cache, t->split.val, t->split.n_val, &lc, &t->val, err)))
        return st;
    /* class weights from the training labels */
    int *labels = malloc(t->n_train * sizeof(int));
    if (!labels)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n_train; i++)
        labels[i] = class_of(t, t->split.train[i]);
    t->class_weights[0] = t->class_weights[1] = t->class_weights[2] = 1;
    if (c->class_weights_auto)
        st = pn_class_weights(labels, t->n_train, t->classes, t->class_weights, err);
    else if (c->class_weights[0] > 0 && t->classes == 2)
        memcpy(t->class_weights, c->class_weights, sizeof c->class_weights);
    free(labels);
    return st;
}

