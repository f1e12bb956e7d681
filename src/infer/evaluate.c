/* Evaluating a model on a labelled folder or manifest: predict every image, keep a few
 * tiles for the report, optionally measure where the Grad-CAM heat lies. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "infer/internal.h"
#include "pneumo/gradcam.h"

/* The validation indices `pneumo train` or `pneumo cv` held out, by the
 * holdout rule recorded in the recipe of the model card. */
static pn_status holdout_indices(const pn_model *m, const pn_dataset *ds, size_t **idx, size_t *n,
                                 pn_error *err)
{
    json_t *card = json_loads(m->info.card_json, 0, NULL);
    char *recipe = card ? json_dumps(json_object_get(card, "recipe"), JSON_COMPACT) : NULL;
    json_decref(card);
    pn_holdout rule;
    int recorded = pn_holdout_from_json(recipe, &rule);
    free(recipe);
    if (!recorded)
        return pn_fail(err, PN_EINVAL, "the model records no validation split (recipe val_fraction or folds)");
    pn_split split;
    pn_status st = pn_dataset_holdout(ds, &rule, &split, err);
    if (st)
        return st;
    *idx = split.val;
    *n = split.n_val;
    split.val = NULL;
    pn_split_free(&split);
    return PN_OK;
}

/* Every sample, or those of one split. */
static pn_status split_indices(const pn_dataset *ds, const char *split, size_t **idx, size_t *n, pn_error *err)
{
    pn_status st = pn_dataset_select(ds, split, idx, n, err);
    if (!st && *n == 0)
        st = pn_fail(err, PN_EINVAL, "no images in split '%s'", split);
    return st;
}

/* Keeps image i of total (spread evenly over the set) as a report tile. */
static void keep_tile(pn_eval_set *r, size_t i, size_t total, const char *path, int size)
{
    if (r->n_tiles >= PN_EVAL_MAX_TILES || i != r->n_tiles * total / PN_EVAL_MAX_TILES)
        return;
    pn_image img = {0}, small = {0};
    if (pn_image_decode_file(path, size, size, &img, NULL) == PN_OK &&
        pn_image_resize(&img, size, size, PN_RESIZE_SQUASH, &small, NULL) == PN_OK) {
        const char *slash = strrchr(path, '/');
        r->tiles[r->n_tiles] = small;
        r->tile_info[r->n_tiles] = (pn_sample_tile){small.pixels, size, size, r->label[r->n], r->prob[r->n],
                                                    slash ? slash + 1 : path};
        r->n_tiles++;
    }
    pn_image_free(&img);
}

static pn_status alloc_set(pn_eval_set *r, size_t count, pn_error *err)
{
    size_t n = count ? count : 1;
    r->prob = malloc(n * sizeof *r->prob);
    r->label = malloc(n * sizeof *r->label);
    r->names = malloc(n * sizeof *r->names);
    r->cam_outside = malloc(n * sizeof *r->cam_outside);
    if (!r->prob || !r->label || !r->names || !r->cam_outside)
        return pn_fail(err, PN_ENOMEM, "out of memory for %zu results", count);
    return PN_OK;
}

/* Predicts sample s into the next slot of r (returns 1), or counts it as
 * unreadable (returns 0). */
static int evaluate_one(pn_model *m, const pn_sample *s, const pn_eval_options *o, pn_eval_set *r)
{
    pn_prediction p;
    pn_error e = {0};
    int want_cam = o->cam_stats && s->label == PN_CLASS_PNEUMONIA;
    if (pn_model_predict_file(m, s->path, want_cam, &p, &e)) {
        r->failed++;
        if (o->skipped)
            o->skipped(o->user, e.msg);
        return 0;
    }
    if (p.n_warnings) {
        r->warned++;
        if (o->warned)
            o->warned(o->user, s->path, &p);
    }
    r->refused += p.out_of_distribution != 0;
    if (p.cam)
        r->cam_outside[r->n_cam++] = pn_cam_fraction_outside(p.cam, p.cam_size, 0.1f, 0.1f, 0.9f, 0.9f);
    pn_prediction_clear(&p);
    r->prob[r->n] = p.probability;
    r->label[r->n] = s->label;
    r->names[r->n] = s->path;
    return 1;
}

pn_status pn_model_evaluate_folder(pn_model *m, const char *dir, const pn_eval_options *o, pn_eval_set *out,
                                   pn_error *err)
{
    memset(out, 0, sizeof *out);
    out->threshold = o->threshold >= 0 ? o->threshold : m->info.threshold;
    if (!(out->threshold <= 1))
        return pn_fail(err, PN_EINVAL, "threshold %g is not in [0, 1]", (double)out->threshold);
    size_t *idx = NULL, count = 0;
    int tile_size = o->tile_size > 0 ? o->tile_size : 160;
    pn_status st = pn_dataset_load(dir, &out->ds, err);
    if (!st)
        st = o->holdout ? holdout_indices(m, &out->ds, &idx, &count, err)
                         : split_indices(&out->ds, o->split, &idx, &count, err);
    if (!st)
        st = alloc_set(out, count, err);
    for (size_t i = 0; !st && i < count; i++) {
        const pn_sample *s = &out->ds.samples[idx[i]];
        if (evaluate_one(m, s, o, out)) {
            keep_tile(out, i, count, s->path, tile_size);
            out->n++;
        }
        if (o->progress)
            o->progress(o->user, i + 1, count);
    }
    free(idx);
    if (!st && out->n == 0)
        st = pn_fail(err, PN_EFORMAT, "no readable image in %s", dir);
    if (!st)
        st = pn_metrics_compute(out->prob, out->label, out->n, out->threshold, &out->metrics, err);
    if (!st)
        st = pn_metrics_bootstrap(out->prob, out->label, out->n, out->threshold,
                                  o->bootstrap > 0 ? o->bootstrap : 1000, 1, &out->ci, err);
    if (st)
        pn_eval_set_free(out);
    return st;
}

void pn_eval_set_free(pn_eval_set *s)
{
    for (size_t i = 0; i < s->n_tiles; i++)
        pn_image_free(&s->tiles[i]);
    free(s->prob);
    free(s->label);
    free(s->names);
    free(s->cam_outside);
    pn_dataset_free(&s->ds);
    memset(s, 0, sizeof *s);
}

int pn_model_history(const pn_model *m, pn_history *out)
{
    json_t *card = json_loads(m->info.card_json, 0, NULL);
    json_t *h = card ? json_object_get(card, "history") : NULL;
    char *text = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(card);
    int found = pn_history_from_json(text, out);
    free(text);
    return found;
}
