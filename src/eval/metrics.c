/* Point metrics. Rank-based ones come from one walk over the scores sorted
 * ascending and grouped by equal value; grouping is what makes ties behave as
 * in scikit-learn (a tie group is one threshold step of the curves). */
#include "eval/eval_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ev_nan_value(void)
{
    return __builtin_nan("");
}

pn_status ev_check_inputs(const float *prob, const int *label, size_t n, pn_error *err)
{
    if (n == 0)
        return pn_fail(err, PN_EINVAL, "metrics: no examples");
    if (!prob || !label)
        return pn_fail(err, PN_EINVAL, "metrics: missing probabilities or labels");
    for (size_t i = 0; i < n; i++) {
        if (label[i] != 0 && label[i] != 1)
            return pn_fail(err, PN_EINVAL, "metrics: label %d at index %zu is not 0 or 1",
                           label[i], i);
        /* Written so that NaN fails the test too. */
        if (!(prob[i] >= 0.0f && prob[i] <= 1.0f))
            return pn_fail(err, PN_EINVAL, "metrics: probability %g at index %zu is outside [0, 1]",
                           (double)prob[i], i);
    }
    return PN_OK;
}

typedef struct score_label {
    float score;
    int label;
} score_label;

static int by_score(const void *a, const void *b)
{
    float x = ((const score_label *)a)->score, y = ((const score_label *)b)->score;
    return (x > y) - (x < y);
}

pn_status ev_sorted_scores_init(sorted_scores *s, const float *prob, const int *label, size_t n,
                                pn_error *err)
{
    memset(s, 0, sizeof *s);
    pn_status st = ev_check_inputs(prob, label, n, err);
    if (st)
        return st;
    score_label *pairs = malloc(n * sizeof *pairs);
    s->score = malloc(n * sizeof *s->score);
    s->label = malloc(n);
    s->group_end = malloc(n * sizeof *s->group_end);
    if (!pairs || !s->score || !s->label || !s->group_end) {
        free(pairs);
        ev_sorted_scores_free(s);
        return pn_fail(err, PN_ENOMEM, "metrics: out of memory sorting %zu scores", n);
    }
    for (size_t i = 0; i < n; i++)
        pairs[i] = (score_label){prob[i], label[i]};
    qsort(pairs, n, sizeof *pairs, by_score);
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->score[i] = pairs[i].score;
        s->label[i] = (uint8_t)pairs[i].label;
        if (i + 1 == n || pairs[i + 1].score != pairs[i].score)
            s->group_end[s->n_groups++] = i + 1;
    }
    free(pairs);
    return PN_OK;
}

void ev_sorted_scores_free(sorted_scores *s)
{
    free(s->score);
    free(s->label);
    free(s->group_end);
    memset(s, 0, sizeof *s);
}

typedef struct group_weight {
    double pos, neg;
} group_weight;

static group_weight weigh_group(const sorted_scores *s, const uint32_t *weight, size_t g)
{
    group_weight w = {0, 0};
    for (size_t k = g ? s->group_end[g - 1] : 0; k < s->group_end[g]; k++) {
        double m = weight ? weight[k] : 1.0;
        if (s->label[k])
            w.pos += m;
        else
            w.neg += m;
    }
    return w;
}

void ev_summarize_ranks(const sorted_scores *s, const uint32_t *weight, float threshold,
                        rank_summary *out)
{
    memset(out, 0, sizeof *out);
    /* Ascending walk: confusion counts, and the Mann-Whitney sum for the AUC
     * (a positive beats every lower negative and half of the tied ones). */
    double neg_below = 0, auc_sum = 0;
    for (size_t g = 0; g < s->n_groups; g++) {
        group_weight w = weigh_group(s, weight, g);
        auc_sum += w.pos * (neg_below + 0.5 * w.neg);
        neg_below += w.neg;
        if (s->score[s->group_end[g] - 1] >= threshold) {
            out->tp += w.pos;
            out->fp += w.neg;
        } else {
            out->fn += w.pos;
            out->tn += w.neg;
        }
    }
    double P = out->tp + out->fn, N = out->fp + out->tn;
    out->roc_auc = P > 0 && N > 0 ? auc_sum / (P * N) : ev_nan_value();

    /* Descending walk: AP = sum over thresholds of (recall step) * precision. */
    double tp = 0, fp = 0, ap = 0;
    for (size_t g = s->n_groups; g-- > 0;) {
        group_weight w = weigh_group(s, weight, g);
        tp += w.pos;
        fp += w.neg;
        if (w.pos > 0)
            ap += w.pos / P * (tp / (tp + fp));
    }
    out->pr_auc = P > 0 ? ap : ev_nan_value();
}

static double ratio(double num, double den)
{
    return den > 0 ? num / den : ev_nan_value();
}

void ev_fill_ratios(double tp, double fp, double tn, double fn, pn_metrics *m)
{
    m->accuracy = ratio(tp + tn, tp + fp + tn + fn);
    m->sensitivity = ratio(tp, tp + fn);
    m->specificity = ratio(tn, tn + fp);
    m->precision = ratio(tp, tp + fp);
    m->npv = ratio(tn, tn + fn);
    m->f1 = ratio(2 * tp, 2 * tp + fp + fn);
    m->balanced_accuracy = (m->sensitivity + m->specificity) / 2; /* NaN propagates */
}

pn_status pn_calibration_compute(const float *prob, const int *label, size_t n, pn_calibration *out,
                                 pn_error *err)
{
    pn_status st = ev_check_inputs(prob, label, n, err);
    if (st)
        return st;
    double sum_prob[PN_CALIBRATION_BINS] = {0}, sum_pos[PN_CALIBRATION_BINS] = {0};
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        /* In double: float rounding would push e.g. 0.7f (just below 0.7) into bin 7. */
        int b = (int)((double)prob[i] * PN_CALIBRATION_BINS);
        if (b >= PN_CALIBRATION_BINS)
            b = PN_CALIBRATION_BINS - 1; /* prob == 1.0 belongs to the last bin */
        out->count[b]++;
        sum_prob[b] += prob[i];
        sum_pos[b] += label[i];
    }
    for (int b = 0; b < PN_CALIBRATION_BINS; b++) {
        out->mean_prob[b] = ratio(sum_prob[b], (double)out->count[b]);
        out->frac_pos[b] = ratio(sum_pos[b], (double)out->count[b]);
        if (out->count[b])
            out->ece += (double)out->count[b] / (double)n * fabs(out->frac_pos[b] - out->mean_prob[b]);
    }
    return PN_OK;
}

static void fill_probabilistic(const float *prob, const int *label, size_t n, pn_metrics *m)
{
    const double eps = 1e-15;
    double brier = 0, nll = 0;
    for (size_t i = 0; i < n; i++) {
        double p = prob[i], d = p - label[i];
        brier += d * d;
        p = fmin(fmax(p, eps), 1 - eps);
        nll -= label[i] ? log(p) : log1p(-p);
    }
    m->brier = brier / (double)n;
    m->log_loss = nll / (double)n;
}

pn_status pn_metrics_compute(const float *prob, const int *label, size_t n, float threshold,
                             pn_metrics *out, pn_error *err)
{
    sorted_scores s;
    pn_status st = ev_sorted_scores_init(&s, prob, label, n, err);
    if (st)
        return st;
    rank_summary r;
    ev_summarize_ranks(&s, NULL, threshold, &r);
    ev_sorted_scores_free(&s);

    memset(out, 0, sizeof *out);
    out->n = n;
    out->threshold = threshold;
    out->confusion = (pn_confusion){(size_t)r.tp, (size_t)r.fp, (size_t)r.tn, (size_t)r.fn};
    out->n_pos = out->confusion.tp + out->confusion.fn;
    out->n_neg = out->confusion.tn + out->confusion.fp;
    ev_fill_ratios(r.tp, r.fp, r.tn, r.fn, out);
    out->roc_auc = r.roc_auc;
    out->pr_auc = r.pr_auc;
    fill_probabilistic(prob, label, n, out);
    pn_calibration cal;
    pn_calibration_compute(prob, label, n, &cal, NULL); /* inputs already checked */
    out->ece = cal.ece;
    return PN_OK;
}

pn_status ev_roc_points(const sorted_scores *s, double **fpr, double **tpr, size_t *count,
                        pn_error *err)
{
    *fpr = malloc((s->n_groups + 1) * sizeof **fpr);
    *tpr = malloc((s->n_groups + 1) * sizeof **tpr);
    if (!*fpr || !*tpr) {
        free(*fpr);
        free(*tpr);
        return pn_fail(err, PN_ENOMEM, "ROC curve: out of memory");
    }
    double P = 0, N = 0, tp = 0, fp = 0;
    for (size_t k = 0; k < s->n; k++)
        s->label[k] ? P++ : N++;
    (*fpr)[0] = (*tpr)[0] = 0;
    *count = 1;
    for (size_t g = s->n_groups; g-- > 0;) {
        group_weight w = weigh_group(s, NULL, g);
        tp += w.pos;
        fp += w.neg;
        (*fpr)[*count] = ratio(fp, N);
        (*tpr)[*count] = ratio(tp, P);
        (*count)++;
    }
    return PN_OK;
}

pn_status ev_pr_points(const sorted_scores *s, double **recall, double **precision, size_t *count,
                       pn_error *err)
{
    *recall = malloc((s->n_groups + 1) * sizeof **recall);
    *precision = malloc((s->n_groups + 1) * sizeof **precision);
    if (!*recall || !*precision) {
        free(*recall);
        free(*precision);
        return pn_fail(err, PN_ENOMEM, "PR curve: out of memory");
    }
    double P = 0, tp = 0, fp = 0;
    for (size_t k = 0; k < s->n; k++)
        P += s->label[k];
    (*recall)[0] = 0;
    (*precision)[0] = 1;
    *count = 1;
    for (size_t g = s->n_groups; g-- > 0;) {
        group_weight w = weigh_group(s, NULL, g);
        tp += w.pos;
        fp += w.neg;
        (*recall)[*count] = ratio(tp, P);
        (*precision)[*count] = tp / (tp + fp);
        (*count)++;
    }
    return PN_OK;
}
