/* Choosing an operating point on validation scores, and temperature scaling. */
#include "eval/eval_internal.h"

#include <math.h>

typedef struct class_counts {
    double pos, neg;
} class_counts;

static class_counts count_classes(const sorted_scores *s)
{
    class_counts c = {0, 0};
    for (size_t k = 0; k < s->n; k++)
        s->label[k] ? c.pos++ : c.neg++;
    return c;
}

/* Walks thresholds from the highest score down; at group g the predicted
 * positives are exactly the groups >= g (rule prob >= threshold). */
static pn_operating_point point_at(const sorted_scores *s, size_t g, double tp, double fp,
                                   class_counts c)
{
    pn_operating_point p;
    p.threshold = s->score[s->group_end[g] - 1];
    p.sensitivity = c.pos > 0 ? tp / c.pos : ev_nan_value();
    p.specificity = c.neg > 0 ? (c.neg - fp) / c.neg : ev_nan_value();
    p.youden_j = p.sensitivity + p.specificity - 1;
    return p;
}

pn_status pn_threshold_for_sensitivity(const float *prob, const int *label, size_t n, double target,
                                       pn_operating_point *out, pn_error *err)
{
    if (!(target > 0 && target <= 1))
        return pn_fail(err, PN_EINVAL, "threshold: target sensitivity %g is not in (0, 1]", target);
    sorted_scores s;
    pn_status st = ev_sorted_scores_init(&s, prob, label, n, err);
    if (st)
        return st;
    class_counts c = count_classes(&s);
    if (c.pos == 0) {
        ev_sorted_scores_free(&s);
        return pn_fail(err, PN_EINVAL, "threshold: no PNEUMONIA examples, sensitivity is undefined");
    }
    double tp = 0, fp = 0;
    for (size_t g = s.n_groups; g-- > 0;) {
        for (size_t k = g ? s.group_end[g - 1] : 0; k < s.group_end[g]; k++)
            s.label[k] ? tp++ : fp++;
        /* Same expression as the reported sensitivity, so the check and the
         * report can never disagree by rounding. */
        if (tp / c.pos >= target) {
            *out = point_at(&s, g, tp, fp, c);
            break;
        }
    }
    ev_sorted_scores_free(&s);
    return PN_OK;
}

pn_status pn_threshold_youden(const float *prob, const int *label, size_t n,
                              pn_operating_point *out, pn_error *err)
{
    sorted_scores s;
    pn_status st = ev_sorted_scores_init(&s, prob, label, n, err);
    if (st)
        return st;
    class_counts c = count_classes(&s);
    if (c.pos == 0 || c.neg == 0) {
        ev_sorted_scores_free(&s);
        return pn_fail(err, PN_EINVAL, "threshold: Youden's J needs both classes (%g PNEUMONIA, %g NORMAL)",
                       c.pos, c.neg);
    }
    /* J * P * N = tp * N - fp * P is exact in doubles for any realistic n,
     * so equal J values compare equal and ties resolve as documented. */
    double tp = 0, fp = 0, best = -INFINITY;
    for (size_t g = s.n_groups; g-- > 0;) {
        for (size_t k = g ? s.group_end[g - 1] : 0; k < s.group_end[g]; k++)
            s.label[k] ? tp++ : fp++;
        double scaled_j = tp * c.neg - fp * c.pos;
        if (scaled_j > best) { /* strict: ties keep the higher threshold */
            best = scaled_j;
            *out = point_at(&s, g, tp, fp, c);
        }
    }
    ev_sorted_scores_free(&s);
    return PN_OK;
}

/* Mean NLL of sigmoid(z/T) in the stable form softplus(x) - y*x. */
static double mean_nll(const float *logit, const int *label, size_t n, double T)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double x = logit[i] / T;
        sum += fmax(x, 0) + log1p(exp(-fabs(x))) - label[i] * x;
    }
    return sum / (double)n;
}

pn_status pn_temperature_fit(const float *logit, const int *label, size_t n, double *temperature,
                             pn_error *err)
{
    if (n == 0 || !logit || !label)
        return pn_fail(err, PN_EINVAL, "temperature: no examples");
    for (size_t i = 0; i < n; i++) {
        if (label[i] != 0 && label[i] != 1)
            return pn_fail(err, PN_EINVAL, "temperature: label %d at index %zu is not 0 or 1", label[i], i);
        if (!isfinite(logit[i]))
            return pn_fail(err, PN_EINVAL, "temperature: logit at index %zu is not finite", i);
    }
    /* The NLL is convex in 1/T, hence unimodal in log T: golden-section search
     * needs no derivatives and cannot diverge. */
    const double phi = 0.6180339887498949;
    double a = log(1e-2), b = log(1e2);
    double c = b - phi * (b - a), d = a + phi * (b - a);
    double fc = mean_nll(logit, label, n, exp(c)), fd = mean_nll(logit, label, n, exp(d));
    while (b - a > 1e-9) {
        if (fc < fd) {
            b = d, d = c, fd = fc;
            c = b - phi * (b - a);
            fc = mean_nll(logit, label, n, exp(c));
        } else {
            a = c, c = d, fc = fd;
            d = a + phi * (b - a);
            fd = mean_nll(logit, label, n, exp(d));
        }
    }
    *temperature = exp((a + b) / 2);
    return PN_OK;
}

void pn_temperature_apply(const float *logit, size_t n, double temperature, float *prob_out)
{
    for (size_t i = 0; i < n; i++)
        prob_out[i] = (float)(1.0 / (1.0 + exp(-logit[i] / temperature)));
}

void pn_prob_to_logit(const float *prob, size_t n, float *logit_out)
{
    for (size_t i = 0; i < n; i++) {
        double p = fmin(fmax(prob[i], 1e-7), 1 - 1e-7);
        logit_out[i] = (float)log(p / (1 - p));
    }
}
