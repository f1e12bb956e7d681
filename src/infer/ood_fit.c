/* Fitting the out-of-distribution gate of a model file: per member, the
 * class means and the shrunk pooled covariance of its feature vectors on its
 * own training images, and a threshold from its held-out images (the split
 * its recipe records); written back into the file as <prefix>ood/ tensors. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/internal.h"
#include "pneumo/safetensors.h"

/* The covariance is shrunk towards its mean variance times the identity:
 * S' = (1 - a) S + a tr(S)/d I, which keeps it invertible and the distance
 * stable along directions the training images barely vary in. */
#define OOD_SHRINKAGE 0.01
/* Threshold = the held-out quantile times a margin, so that chest X-rays of
 * the same kind taken at another time stay under about 1% refused. */
#define OOD_HELDOUT_QUANTILE 0.995
#define OOD_MARGIN 1.5
#define OOD_DEFAULT_MAX_FIT 2000

/* The member's recipe as JSON text (malloc'ed; NULL when the file records none). */
static char *member_recipe(pn_st_file *f, int i)
{
    const char *members = pn_st_metadata(f, "members");
    if (!members)
        return pn_st_metadata(f, "recipe") ? strdup(pn_st_metadata(f, "recipe")) : NULL;
    json_t *root = json_loads(members, 0, NULL);
    json_t *recipe = json_object_get(json_array_get(root, (size_t)i), "recipe");
    char *text = recipe ? json_dumps(recipe, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

/* The member's training (out->train) and held-out (out->val) images, by the
 * holdout rule its recipe records. */
static pn_status split_for(pn_st_file *f, int i, const pn_dataset *ds, pn_split *out, pn_error *err)
{
    char *recipe = member_recipe(f, i);
    pn_holdout rule;
    int recorded = pn_holdout_from_json(recipe, &rule);
    free(recipe);
    if (!recorded)
        return pn_fail(err, PN_EINVAL, "member %d records no training split (recipe folds/fold or val_fraction)", i);
    return pn_dataset_holdout(ds, &rule, out, err);
}

/* Features of one dataset image into feat[dim]; 1 when it was read and
 * passes the image checks (else the image is left out, *checked says why). */
static int image_features(pn_model *m, int i, const char *path, float *feat, int dim, int *checked)
{
    pn_image img = {0};
    const float *f = NULL;
    int d = 0, in = m->members[i].spec.input_size, ok = 0;
    pn_error err = {0};
    *checked = 0;
    if (pn_image_decode_file(path, in, in, &img, &err) == PN_OK) {
        *checked = pn_ood_image_check(&img) != NULL;
        ok = !*checked && pn_model_member_features(m, i, &img, &f, &d, &err) == PN_OK && d == dim;
        if (ok)
            memcpy(feat, f, (size_t)dim * sizeof *feat);
    }
    pn_image_free(&img);
    return ok;
}

/* Inverts the symmetric positive definite a[d][d] in place (Gauss-Jordan). */
static pn_status invert(double *a, int d, pn_error *err)
{
    for (int c = 0; c < d; c++) {
        double piv = a[(size_t)c * d + c];
        if (!(fabs(piv) > 1e-300))
            return pn_fail(err, PN_EINVAL, "the feature covariance is singular");
        a[(size_t)c * d + c] = 1;
        for (int j = 0; j < d; j++)
            a[(size_t)c * d + j] /= piv;
        for (int r = 0; r < d; r++) {
            if (r == c)
                continue;
            double x = a[(size_t)r * d + c];
            a[(size_t)r * d + c] = 0;
            for (int j = 0; j < d; j++)
                a[(size_t)r * d + j] -= x * a[(size_t)c * d + j];
        }
    }
    return PN_OK;
}

/* Means per class and the precision of the shrunk pooled covariance of
 * feats[n][dim] with labels[n] in [0, classes). */
static pn_status fit_gaussians(const float *feats, const int *labels, size_t n, int dim, int classes,
                               pn_ood_stats *s, pn_error *err)
{
    double *mean = calloc((size_t)classes * dim, sizeof *mean); /* [classes][dim] */
    double *cov = calloc((size_t)dim * dim, sizeof *cov);       /* [dim][dim] */
    double *x = malloc((size_t)dim * sizeof *x);                /* [dim] centred feature */
    size_t count[PN_MODEL_MAX_CLASSES] = {0};
    s->means = malloc((size_t)classes * dim * sizeof *s->means);
    s->precision = malloc((size_t)dim * dim * sizeof *s->precision);
    pn_status st = mean && cov && x && s->means && s->precision ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t k = 0; !st && k < n; k++) {
        count[labels[k]]++;
        for (int j = 0; j < dim; j++)
            mean[(size_t)labels[k] * dim + j] += feats[k * dim + j];
    }
    for (int c = 0; !st && c < classes; c++)
        if (!count[c])
            st = pn_fail(err, PN_EINVAL, "no training image of class %d to fit the gate on", c);
    for (int c = 0; !st && c < classes; c++)
        for (int j = 0; j < dim; j++)
            mean[(size_t)c * dim + j] /= (double)count[c];
    for (size_t k = 0; !st && k < n; k++) {
        for (int j = 0; j < dim; j++)
            x[j] = feats[k * dim + j] - mean[(size_t)labels[k] * dim + j];
        for (int r = 0; r < dim; r++)
            for (int j = 0; j <= r; j++)
                cov[(size_t)r * dim + j] += x[r] * x[j];
    }
    double trace = 0;
    for (int r = 0; !st && r < dim; r++) {
        for (int j = 0; j <= r; j++)
            cov[(size_t)j * dim + r] = cov[(size_t)r * dim + j] /= (double)n;
        trace += cov[(size_t)r * dim + r];
    }
    for (int r = 0; !st && r < dim; r++) {
        for (int j = 0; j < dim; j++)
            cov[(size_t)r * dim + j] *= 1 - OOD_SHRINKAGE;
        cov[(size_t)r * dim + r] += OOD_SHRINKAGE * trace / dim;
    }
    if (!st)
        st = invert(cov, dim, err);
    for (size_t k = 0; !st && k < (size_t)dim * dim; k++)
        s->precision[k] = (float)cov[k];
    for (size_t k = 0; !st && k < (size_t)classes * dim; k++)
        s->means[k] = (float)mean[k];
    s->dim = dim;
    s->classes = classes;
    free(mean);
    free(cov);
    free(x);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fits member i: Gaussians on (at most max_fit, evenly spaced) training
 * images, threshold from every held-out image. */
static pn_status fit_member(pn_model *m, int i, const pn_dataset *ds, const pn_split *sp,
                            const pn_ood_fit_options *o, pn_ood_member_report *rep, pn_error *err)
{
    pn_model_member *mb = &m->members[i];
    const float *probe;
    int dim = 0;
    pn_image blank = {.w = 8, .h = 8, .pixels = calloc(64, 1), .src_w = 8, .src_h = 8};
    pn_status st = blank.pixels ? pn_model_member_features(m, i, &blank, &probe, &dim, err)
                                : pn_fail(err, PN_ENOMEM, "out of memory");
    free(blank.pixels);
    size_t max_fit = o->max_fit_images > 0 ? (size_t)o->max_fit_images : OOD_DEFAULT_MAX_FIT;
    size_t n_fit = sp->n_train < max_fit ? sp->n_train : max_fit, n = 0;
    float *feats = st ? NULL : malloc((n_fit + 1) * dim * sizeof *feats); /* [n_fit][dim] */
    int *labels = malloc((n_fit + 1) * sizeof *labels);                   /* [n_fit] */
    double *dist = malloc((sp->n_val + 1) * sizeof *dist);               /* [n_held] */
    if (!st && (!feats || !labels || !dist))
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t k = 0; !st && k < n_fit; k++) {
        const pn_sample *s = &ds->samples[sp->train[k * sp->n_train / n_fit]];
        int checked;
        if (image_features(m, i, s->path, feats + n * dim, dim, &checked)) {
            labels[n++] = s->label == PN_CLASS_NORMAL ? 0 : 1;
        }
        rep->fit_refused_by_checks += checked;
    }
    pn_ood_stats_free(&mb->ood);
    if (!st)
        st = fit_gaussians(feats, labels, n, dim, 2, &mb->ood, err);
    rep->n_fit = n;
    size_t nd = 0;
    for (size_t k = 0; !st && k < sp->n_val; k++) {
        int checked;
        if (image_features(m, i, ds->samples[sp->val[k]].path, feats, dim, &checked))
            dist[nd++] = pn_ood_distance(&mb->ood, feats);
        rep->held_refused_by_checks += checked;
    }
    if (!st && nd < 20)
        st = pn_fail(err, PN_EINVAL, "member %d: only %zu held-out images to set the threshold on", i, nd);
    if (!st) {
        qsort(dist, nd, sizeof *dist, cmp_double);
        size_t q = (size_t)ceil(OOD_HELDOUT_QUANTILE * nd) - 1;
        mb->ood.threshold = (float)(dist[q] * OOD_MARGIN);
        rep->n_held = nd;
        rep->threshold = mb->ood.threshold;
        rep->dim = dim;
        for (size_t k = 0; k < nd; k++)
            rep->held_refused_by_score += dist[k] > mb->ood.threshold;
        rep->held_median_ratio = (float)(dist[nd / 2] / mb->ood.threshold);
    }
    free(feats);
    free(labels);
    free(dist);
    return st;
}

/* The file with every member's statistics replaced by the fitted ones. */
static pn_status write_back(const pn_model *m, pn_st_file *f, const char *path, pn_error *err)
{
    pn_st_writer *w = NULL;
    pn_status st = pn_st_writer_create(&w, err);
    for (size_t k = 0; !st && k < pn_st_count(f); k++) {
        const pn_st_tensor *t = pn_st_get(f, k);
        const char *slash = strstr(t->name, "ood/");
        if (slash && (slash == t->name || slash[-1] == '/'))
            continue; /* old statistics */
        st = pn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err);
    }
    for (size_t k = 0; !st && k < pn_st_metadata_count(f); k++) {
        const char *key = pn_st_metadata_key(f, k);
        st = pn_st_writer_set_metadata(w, key, pn_st_metadata(f, key), err);
    }
    for (int i = 0; !st && i < m->n_members; i++) {
        const pn_model_member *mb = &m->members[i];
        const pn_ood_stats *s = &mb->ood;
        char name[160];
        int64_t shape_m[2] = {s->classes, s->dim}, shape_p[2] = {s->dim, s->dim}, one = 1;
        snprintf(name, sizeof name, "%sood/means", mb->prefix);
        st = pn_st_writer_add_f32(w, name, PN_ST_F32, 2, shape_m, s->means, err);
        snprintf(name, sizeof name, "%sood/precision", mb->prefix);
        if (!st) st = pn_st_writer_add_f32(w, name, PN_ST_F32, 2, shape_p, s->precision, err);
        snprintf(name, sizeof name, "%sood/threshold", mb->prefix);
        if (!st) st = pn_st_writer_add_f32(w, name, PN_ST_F32, 1, &one, &s->threshold, err);
        int64_t len = (int64_t)strlen(mb->feature_layer);
        snprintf(name, sizeof name, "%sood/layer", mb->prefix);
        if (!st) st = pn_st_writer_add(w, name, PN_ST_U8, 1, &len, mb->feature_layer, err);
    }
    char rule[200];
    snprintf(rule, sizeof rule, "mean and std per channel of ood/layer; Mahalanobis to class means, shrinkage %g; threshold = held-out %g quantile x %g",
             OOD_SHRINKAGE, OOD_HELDOUT_QUANTILE, OOD_MARGIN);
    if (!st) st = pn_st_writer_set_metadata(w, "ood_rule", rule, err);
    if (!st) st = pn_st_writer_save(w, path, err);
    pn_st_writer_destroy(w);
    return st;
}

pn_status pn_ood_fit(const char *model_path, const char *data_dir, const pn_ood_fit_options *o,
                     pn_ood_fit_report *rep, pn_error *err)
{
    memset(rep, 0, sizeof *rep);
    pn_model *m = NULL;
    pn_st_file *f = NULL;
    pn_dataset ds = {0};
    pn_status st = pn_model_load(model_path, o->threads, &m, err);
    if (!st) st = pn_st_open(model_path, &f, err);
    if (!st) st = pn_dataset_load(data_dir, &ds, err);
    for (int i = 0; !st && i < m->n_members; i++) {
        pn_split sp = {0};
        st = split_for(f, i, &ds, &sp, err);
        if (!st)
            st = fit_member(m, i, &ds, &sp, o, &rep->members[i], err);
        if (!st && o->progress)
            o->progress(o->user, i, &rep->members[i]);
        pn_split_free(&sp);
        rep->n_members = i + 1;
    }
    if (!st)
        st = write_back(m, f, model_path, err);
    pn_dataset_free(&ds);
    pn_st_close(f);
    pn_model_free(m);
    return st;
}
