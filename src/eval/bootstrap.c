/* Stratified percentile bootstrap. The scores are sorted once; a resample is
 * represented by a multiplicity per sorted example, so each resample costs one
 * O(n) walk instead of a fresh sort. */
#include "eval/eval_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: tiny, seedable, good enough for resampling indices. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, k) by multiply-shift (bias < k / 2^64, negligible). */
static size_t random_below(uint64_t *state, size_t k)
{
    return (size_t)(((unsigned __int128)next_random(state) * k) >> 64);
}

static const char *const metric_names[PN_CI_COUNT] = {
    "accuracy", "sensitivity", "specificity", "precision",
    "f1", "balanced_accuracy", "roc_auc", "pr_auc",
};

const char *pn_ci_metric_name(pn_ci_metric which)
{
    return which < PN_CI_COUNT ? metric_names[which] : "unknown";
}

double pn_metrics_get(const pn_metrics *m, pn_ci_metric which)
{
    switch (which) {
    case PN_CI_ACCURACY: return m->accuracy;
    case PN_CI_SENSITIVITY: return m->sensitivity;
    case PN_CI_SPECIFICITY: return m->specificity;
    case PN_CI_PRECISION: return m->precision;
    case PN_CI_F1: return m->f1;
    case PN_CI_BALANCED_ACCURACY: return m->balanced_accuracy;
    case PN_CI_ROC_AUC: return m->roc_auc;
    case PN_CI_PR_AUC: return m->pr_auc;
    case PN_CI_COUNT: break;
    }
    return ev_nan_value();
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default (linear) rule; v must be sorted, m >= 1. */
static double quantile_sorted(const double *v, size_t m, double q)
{
    double pos = q * (double)(m - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= m)
        return v[m - 1];
    return v[lo] + (pos - (double)lo) * (v[lo + 1] - v[lo]);
}

/* 2.5th and 97.5th percentiles of the finite values of v (reorders v). */
static void percentile_interval(double *v, size_t count, double *lo, double *hi)
{
    size_t m = 0;
    for (size_t i = 0; i < count; i++)
        if (isfinite(v[i]))
            v[m++] = v[i];
    if (m == 0) {
        *lo = *hi = ev_nan_value();
        return;
    }
    qsort(v, m, sizeof *v, by_value);
    *lo = quantile_sorted(v, m, 0.025);
    *hi = quantile_sorted(v, m, 0.975);
}

typedef struct bootstrap_work {
    uint32_t *weight;    /* multiplicity per sorted example */
    size_t *pos, *neg;   /* sorted positions of each class */
    double *samples;     /* resamples x PN_CI_COUNT, metric-major */
} bootstrap_work;

static void free_work(bootstrap_work *w)
{
    free(w->weight);
    free(w->pos);
    free(w->neg);
    free(w->samples);
}

static void draw_resample(const bootstrap_work *w, size_t n, size_t n_pos, size_t n_neg,
                          uint64_t *rng)
{
    memset(w->weight, 0, n * sizeof *w->weight);
    for (size_t i = 0; i < n_pos; i++)
        w->weight[w->pos[random_below(rng, n_pos)]]++;
    for (size_t i = 0; i < n_neg; i++)
        w->weight[w->neg[random_below(rng, n_neg)]]++;
}

static pn_status run_resamples(const sorted_scores *s, float threshold, int resamples,
                               uint64_t seed, pn_metrics_ci *out, pn_error *err)
{
    size_t n = s->n, n_pos = 0, n_neg = 0, R = (size_t)resamples;
    bootstrap_work w = {
        .weight = malloc(n * sizeof *w.weight),
        .pos = malloc(n * sizeof *w.pos),
        .neg = malloc(n * sizeof *w.neg),
        .samples = malloc(R * PN_CI_COUNT * sizeof *w.samples),
    };
    if (!w.weight || !w.pos || !w.neg || !w.samples) {
        free_work(&w);
        return pn_fail(err, PN_ENOMEM, "bootstrap: out of memory for %d resamples of %zu", resamples, n);
    }
    for (size_t k = 0; k < n; k++) {
        if (s->label[k])
            w.pos[n_pos++] = k;
        else
            w.neg[n_neg++] = k;
    }
    if (n_pos == 0 || n_neg == 0) {
        free_work(&w);
        return pn_fail(err, PN_EINVAL, "bootstrap: needs both classes (%zu PNEUMONIA, %zu NORMAL)",
                       n_pos, n_neg);
    }
    uint64_t rng = seed;
    for (size_t r = 0; r < R; r++) {
        draw_resample(&w, n, n_pos, n_neg, &rng);
        rank_summary rs;
        ev_summarize_ranks(s, w.weight, threshold, &rs);
        pn_metrics m = {0};
        ev_fill_ratios(rs.tp, rs.fp, rs.tn, rs.fn, &m);
        m.roc_auc = rs.roc_auc;
        m.pr_auc = rs.pr_auc;
        for (int k = 0; k < PN_CI_COUNT; k++)
            w.samples[(size_t)k * R + r] = pn_metrics_get(&m, (pn_ci_metric)k);
    }
    for (int k = 0; k < PN_CI_COUNT; k++) {
        percentile_interval(w.samples + (size_t)k * R, R, &out->lo[k], &out->hi[k]);
    }
    free_work(&w);
    return PN_OK;
}

/* 95% Wilson score interval of k successes in n trials (NaN without trials). */
void pn_wilson_interval(size_t k, size_t n, double *lo, double *hi)
{
    if (n == 0) {
        *lo = *hi = NAN;
        return;
    }
    const double z = 1.959963984540054, z2 = z * z;
    double p = (double)k / (double)n, denom = 1.0 + z2 / (double)n;
    double center = (p + z2 / (2.0 * (double)n)) / denom;
    double half = z * sqrt(p * (1.0 - p) / (double)n + z2 / (4.0 * (double)n * (double)n)) / denom;
    *lo = fmax(0.0, center - half);
    *hi = fmin(1.0, center + half);
}

/* A percentile interval of zero width (every resample agreed, as with 100%
 * of a few positives found) claims a certainty the sample cannot give: a
 * proportion gets its Wilson interval instead, any other metric NaN ("n too
 * small"). */
static void replace_degenerate(const float *prob, const int *label, size_t n, float threshold, pn_metrics_ci *ci)
{
    size_t tp = 0, fn = 0, tn = 0, fp = 0;
    for (size_t i = 0; i < n; i++) {
        int predicted = prob[i] >= threshold;
        tp += label[i] && predicted;
        fn += label[i] && !predicted;
        tn += !label[i] && !predicted;
        fp += !label[i] && predicted;
    }
    for (int k = 0; k < PN_CI_COUNT; k++) {
        if (ci->hi[k] - ci->lo[k] > 1e-12)
            continue;
        switch ((pn_ci_metric)k) {
        case PN_CI_SENSITIVITY: pn_wilson_interval(tp, tp + fn, &ci->lo[k], &ci->hi[k]); break;
        case PN_CI_SPECIFICITY: pn_wilson_interval(tn, tn + fp, &ci->lo[k], &ci->hi[k]); break;
        case PN_CI_PRECISION: pn_wilson_interval(tp, tp + fp, &ci->lo[k], &ci->hi[k]); break;
        case PN_CI_ACCURACY: pn_wilson_interval(tp + tn, n, &ci->lo[k], &ci->hi[k]); break;
        default: ci->lo[k] = ci->hi[k] = NAN; break;
        }
    }
}

pn_status pn_metrics_bootstrap(const float *prob, const int *label, size_t n, float threshold,
                               int resamples, uint64_t seed, pn_metrics_ci *out, pn_error *err)
{
    if (resamples < 2)
        return pn_fail(err, PN_EINVAL, "bootstrap: need at least 2 resamples, got %d", resamples);
    sorted_scores s;
    pn_status st = ev_sorted_scores_init(&s, prob, label, n, err);
    if (st)
        return st;
    memset(out, 0, sizeof *out);
    out->resamples = resamples;
    out->seed = seed;
    st = run_resamples(&s, threshold, resamples, seed, out, err);
    ev_sorted_scores_free(&s);
    if (!st)
        replace_degenerate(prob, label, n, threshold, out);
    return st;
}
