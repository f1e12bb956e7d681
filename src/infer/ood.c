/* The out-of-distribution gate at prediction time: cheap image checks
 * (colour, aspect ratio, intensity histogram) and the distance of each
 * member's mid-level features (mean and spread per channel) to the class-
 * conditional Gaussians fitted on its training images (ood_fit.c).
 * docs/ood.md says what it promises. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/internal.h"
#include "pneumo/safetensors.h"

/* Image checks: refusals that need no statistics. A chest X-ray is gray,
 * roughly square and has a spread-out histogram; these limits leave every
 * held-out chest X-ray we measured alone (docs/ood.md). */
#define OOD_MAX_ASPECT 4.0      /* long side / short side (one Kermany original is 3.15) */
#define OOD_MIN_STD 8.0         /* gray levels: below it the image is nearly constant */
#define OOD_MAX_TOP2_SHARE 0.6  /* share of pixels in the two fullest gray levels: nearly binary above */

static pn_status read_tensor(pn_st_file *f, const char *prefix, const char *name, size_t numel, float **out,
                             const pn_st_tensor **t, pn_error *err)
{
    char full[160];
    snprintf(full, sizeof full, "%sood/%s", prefix, name);
    *t = pn_st_find(f, full);
    if (!*t)
        return PN_OK;
    if (numel && (*t)->numel != numel)
        return pn_fail(err, PN_EFORMAT, "tensor %s has %zu values, expected %zu", full, (*t)->numel, numel);
    if (!(*out = malloc((*t)->numel * sizeof **out)))
        return pn_fail(err, PN_ENOMEM, "out of memory");
    return pn_st_to_f32(*t, *out, err);
}

/* The feature layer: the file's <prefix>ood/layer (its name as bytes) when
 * the member has statistics, else the default. */
static pn_status feature_layer(pn_model_member *mb, const pn_st_tensor *t, pn_error *err)
{
    const char *def = pn_net_layer_at_stride(mb->net, PN_OOD_STRIDE);
    if (t && (t->dtype != PN_ST_U8 || t->ndim != 1 || t->numel == 0 || t->numel > 200))
        return pn_fail(err, PN_EFORMAT, "%s: %sood/layer must be a layer name (U8)", mb->path, mb->prefix);
    if (!t && !def)
        return PN_OK; /* no gate for this network */
    mb->feature_layer = t ? strndup(t->data, t->numel) : strdup(def);
    return mb->feature_layer ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
}

pn_status pn_ood_load_member(pn_model_member *mb, pn_st_file *f, pn_error *err)
{
    pn_ood_stats *s = &mb->ood;
    char name[160];
    snprintf(name, sizeof name, "%sood/layer", mb->prefix);
    const pn_st_tensor *tl = pn_st_find(f, name), *tm = NULL, *tp = NULL, *tt = NULL;
    pn_status st = feature_layer(mb, tl, err);
    if (!st)
        st = read_tensor(f, mb->prefix, "means", 0, &s->means, &tm, err);
    if (st || !tm)
        return st; /* no statistics: only the image checks run */
    float *thr = NULL;
    if (tm->ndim != 2 || !tl)
        st = pn_fail(err, PN_EFORMAT, "%s: %sood/means must be [classes][features], with ood/layer", mb->path,
                     mb->prefix);
    s->classes = (int)tm->shape[0];
    s->dim = (int)tm->shape[1];
    if (!st)
        st = read_tensor(f, mb->prefix, "precision", (size_t)s->dim * s->dim, &s->precision, &tp, err);
    if (!st)
        st = read_tensor(f, mb->prefix, "threshold", 1, &thr, &tt, err);
    if (!st && (!tp || !tt))
        st = pn_fail(err, PN_EFORMAT, "%s: %sood/ statistics are incomplete", mb->path, mb->prefix);
    if (!st && !(thr[0] > 0 && isfinite(thr[0])))
        st = pn_fail(err, PN_EFORMAT, "%s: %sood/threshold must be positive", mb->path, mb->prefix);
    if (!st) {
        s->threshold = thr[0];
        st = pn_net_watch(mb->net, mb->feature_layer, err);
    }
    free(thr);
    if (st)
        pn_ood_stats_free(s);
    return st;
}

void pn_ood_stats_free(pn_ood_stats *s)
{
    free(s->means);
    free(s->precision);
    memset(s, 0, sizeof *s);
}

double pn_ood_distance(const pn_ood_stats *s, const float *f)
{
    double best = INFINITY;
    double *d = malloc((size_t)s->dim * sizeof *d); /* [dim] f - mean */
    if (!d)
        return NAN;
    for (int k = 0; k < s->classes; k++) {
        const float *mu = s->means + (size_t)k * s->dim;
        for (int i = 0; i < s->dim; i++)
            d[i] = (double)f[i] - mu[i];
        double q = 0;
        for (int i = 0; i < s->dim; i++) {
            const float *row = s->precision + (size_t)i * s->dim;
            double r = 0;
            for (int j = 0; j < s->dim; j++)
                r += row[j] * d[j];
            q += d[i] * r;
        }
        best = q < best ? q : best;
    }
    free(d);
    return best;
}

/* The first image check that fails, or NULL. */
const char *pn_ood_image_check(const pn_image *img)
{
    if (img->is_color)
        return "colour image (chest X-rays are grayscale)";
    double a = (double)img->src_w / img->src_h;
    if (a > OOD_MAX_ASPECT || a < 1.0 / OOD_MAX_ASPECT)
        return "extreme aspect ratio for a chest X-ray";
    size_t hist[256] = {0}, n = (size_t)img->w * img->h; /* [gray level] pixel count */
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        hist[img->pixels[i]]++;
        sum += img->pixels[i];
        sum2 += (double)img->pixels[i] * img->pixels[i];
    }
    double mean = sum / n, sd = sqrt(fmax(0, sum2 / n - mean * mean));
    if (sd < OOD_MIN_STD)
        return "nearly uniform image";
    size_t top1 = 0, top2 = 0;
    for (int v = 0; v < 256; v++) {
        if (hist[v] > top1) {
            top2 = top1;
            top1 = hist[v];
        } else if (hist[v] > top2) {
            top2 = hist[v];
        }
    }
    if ((double)(top1 + top2) / n > OOD_MAX_TOP2_SHARE)
        return "nearly black-and-white image (a drawing, text or document?)";
    return NULL;
}

int pn_ood_features(pn_model_member *mb)
{
    float *act, *grad;
    int c, h, w;
    pn_error err = {0};
    if (pn_net_watched(mb->net, &act, &grad, &c, &h, &w, &err))
        return -1;
    if (!mb->feat && !(mb->feat = malloc(2 * (size_t)c * sizeof *mb->feat)))
        return -1;
    size_t hw = (size_t)h * w;
    for (int k = 0; k < c; k++) {
        double s = 0, s2 = 0;
        for (size_t p = 0; p < hw; p++) {
            double v = act[p * c + k]; /* NHWC, image 0 = the identity view */
            s += v;
            s2 += v * v;
        }
        double mean = s / hw;
        mb->feat[k] = (float)mean;
        mb->feat[c + k] = (float)sqrt(fmax(0, s2 / hw - mean * mean));
    }
    return 2 * c;
}

/* Mean over members with statistics of distance / threshold; -1 without any. */
static float feature_score(pn_model *m)
{
    double sum = 0;
    int n = 0;
    for (int i = 0; i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        if (!mb->ood.dim || pn_ood_features(mb) != mb->ood.dim)
            continue;
        sum += pn_ood_distance(&mb->ood, mb->feat) / mb->ood.threshold;
        n++;
    }
    return n ? (float)(sum / n) : -1.0f;
}

void pn_ood_judge(pn_model *m, const pn_image *img, pn_prediction *out)
{
    const char *why = pn_ood_image_check(img);
    out->ood_score = feature_score(m);
    if (!why && !(out->ood_score <= 1.0f) && out->ood_score != -1.0f)
        why = "its features are far from the training chest X-rays";
    out->out_of_distribution = why != NULL;
    snprintf(out->ood_reason, sizeof out->ood_reason, "%s", why ? why : "");
}
