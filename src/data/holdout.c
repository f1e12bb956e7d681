/* The one holdout rule of a trained model (which images it learned from and
 * which it was validated on) and the one encoder/decoder of the recipe keys
 * that record it. `pneumo train`, `pneumo evaluate --holdout` and
 * `pneumo ood fit` all split through pn_dataset_holdout. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/data.h"

/* Fold h->fold of h->folds (pn_dataset_folds) held out, the other folds trained on. */
static pn_status fold_split(const pn_dataset *ds, const pn_holdout *h, pn_split *out, pn_error *err)
{
    if (h->fold < 0 || h->fold >= h->folds)
        return pn_fail(err, PN_EINVAL, "fold %d is not in [0, %d)", h->fold, h->folds);
    size_t n = ds->n ? ds->n : 1;
    int *fold = malloc(n * sizeof *fold);         /* [ds->n] fold of each sample, -1 outside the split folder */
    out->train = malloc(n * sizeof *out->train); /* [<= ds->n] */
    out->val = malloc(n * sizeof *out->val);     /* [<= ds->n] */
    pn_status st = !fold || !out->train || !out->val
                       ? pn_fail(err, PN_ENOMEM, "out of memory for folds")
                       : pn_dataset_folds(ds, pn_dataset_holdout_folder(ds), h->folds, h->seed, fold, err);
    for (size_t i = 0; !st && i < ds->n; i++) {
        if (fold[i] < 0)
            continue;
        if (fold[i] == h->fold)
            out->val[out->n_val++] = i;
        else
            out->train[out->n_train++] = i;
        out->n_unknown_patient += !ds->samples[i].patient_known;
    }
    free(fold);
    if (!st && (out->n_val == 0 || out->n_train == 0))
        st = pn_fail(err, PN_EINVAL, "too few images for %d folds", h->folds);
    if (st)
        pn_split_free(out);
    return st;
}

pn_status pn_dataset_holdout(const pn_dataset *ds, const pn_holdout *h, pn_split *out, pn_error *err)
{
    memset(out, 0, sizeof *out);
    if (h->folds >= 2)
        return fold_split(ds, h, out, err);
    if (!(h->val_fraction > 0 && h->val_fraction < 1))
        return pn_fail(err, PN_EINVAL, "no holdout rule: neither folds >= 2 nor a validation fraction in (0, 1)");
    return pn_dataset_holdout_split(ds, h->val_fraction, h->seed, out, err);
}

char *pn_holdout_to_json(const pn_holdout *h)
{
    json_t *r = json_pack("{s:f, s:I}", "val_fraction", h->val_fraction, "seed", (json_int_t)h->seed);
    if (r && h->folds >= 2) {
        json_object_set_new(r, "folds", json_integer(h->folds));
        json_object_set_new(r, "fold", json_integer(h->fold));
    }
    char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    return text;
}

int pn_holdout_from_json(const char *recipe_json, pn_holdout *h)
{
    memset(h, 0, sizeof *h);
    json_t *r = recipe_json ? json_loads(recipe_json, 0, NULL) : NULL;
    if (!json_is_object(r)) {
        json_decref(r);
        return 0;
    }
    h->val_fraction = json_number_value(json_object_get(r, "val_fraction"));
    h->seed = (uint64_t)json_integer_value(json_object_get(r, "seed"));
    h->folds = (int)json_integer_value(json_object_get(r, "folds"));
    h->fold = (int)json_integer_value(json_object_get(r, "fold"));
    json_decref(r);
    return h->folds >= 2 || (h->val_fraction > 0 && h->val_fraction < 1);
}
