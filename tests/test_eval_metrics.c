/* Metrics, bootstrap CIs, threshold selection, temperature scaling, report
 * text and JSON on hand-computed and synthetic examples. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pneumo/eval.h"

#define TOL 1e-12

/* Fails on NaN too, and shows full precision. */
#define assert_near(a, b, tol)                                                            \
    do {                                                                                  \
        double a_ = (a), b_ = (b);                                                        \
        if (!(fabs(a_ - b_) <= (tol)))                                                    \
            fail_msg("%s = %.17g, expected %s = %.17g (tol %g)", #a, a_, #b, b_, (double)(tol)); \
    } while (0)

static uint64_t rng_state;

static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double gaussian(void)
{
    double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* Positives score higher on average; quantize > 0 rounds scores to create ties. */
static void synth(size_t n, double pos_rate, double separation, double quantize, uint64_t seed,
                  float *prob, int *label)
{
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        label[i] = uniform() < pos_rate;
        double z = gaussian() + (label[i] ? separation : 0) - separation / 2;
        double p = 1 / (1 + exp(-z));
        if (quantize > 0)
            p = round(p / quantize) * quantize;
        prob[i] = (float)fmin(fmax(p, 0), 1);
    }
}

/* The sklearn documentation example: roc_auc 0.75, average precision 0.8333. */
static const float hand_prob[] = {0.1f, 0.4f, 0.35f, 0.8f};
static const int hand_label[] = {0, 0, 1, 1};

static void test_hand_example(void **state)
{
    pn_metrics m;
    pn_error err = {0};
    assert_int_equal(pn_metrics_compute(hand_prob, hand_label, 4, 0.5f, &m, &err), PN_OK);
    assert_int_equal(m.n, 4);
    assert_int_equal(m.n_pos, 2);
    assert_int_equal(m.confusion.tp, 1);
    assert_int_equal(m.confusion.fn, 1);
    assert_int_equal(m.confusion.tn, 2);
    assert_int_equal(m.confusion.fp, 0);
    assert_near(m.accuracy, 0.75, TOL);
    assert_near(m.sensitivity, 0.5, TOL);
    assert_near(m.specificity, 1.0, TOL);
    assert_near(m.precision, 1.0, TOL);
    assert_near(m.npv, 2.0 / 3, TOL);
    assert_near(m.f1, 2.0 / 3, TOL);
    assert_near(m.balanced_accuracy, 0.75, TOL);
    assert_near(m.roc_auc, 0.75, TOL);
    assert_near(m.pr_auc, 0.5 * 1 + 0.5 * 2.0 / 3, TOL);
    double brier = 0, nll = 0, ece = 0;
    for (int i = 0; i < 4; i++) {
        double p = hand_prob[i];
        brier += (p - hand_label[i]) * (p - hand_label[i]) / 4;
        nll -= (hand_label[i] ? log(p) : log(1 - p)) / 4;
        ece += fabs(hand_label[i] - p) / 4; /* every example is alone in its bin */
    }
    assert_near(m.brier, brier, TOL);
    assert_near(m.log_loss, nll, 1e-9);
    assert_near(m.ece, ece, TOL);
}

static void test_ties(void **state)
{
    /* Positive 0.6 ties a negative 0.6: half a pair. AUC = (1 + 0.5 + 2) / 4. */
    const float prob[] = {0.2f, 0.6f, 0.6f, 0.9f};
    const int label[] = {0, 0, 1, 1};
    pn_metrics m;
    assert_int_equal(pn_metrics_compute(prob, label, 4, 0.6f, &m, NULL), PN_OK);
    assert_near(m.roc_auc, 0.875, TOL);
    /* Thresholds 0.9 (R 0.5, P 1) and 0.6 (R 1, P 2/3). */
    assert_near(m.pr_auc, 0.5 + 0.5 * 2.0 / 3, TOL);
    /* prob == threshold counts as positive. */
    assert_int_equal(m.confusion.tp, 2);
    assert_int_equal(m.confusion.fp, 1);

    const float flat[] = {0.5f, 0.5f, 0.5f, 0.5f};
    assert_int_equal(pn_metrics_compute(flat, label, 4, 0.7f, &m, NULL), PN_OK);
    assert_near(m.roc_auc, 0.5, TOL);
    assert_near(m.pr_auc, 0.5, TOL);
    assert_true(isnan(m.precision)); /* nothing predicted positive */
    assert_near(m.f1, 0.0, TOL);
}

static void test_degenerate(void **state)
{
    const float prob[] = {0.1f, 0.7f, 0.3f};
    const int negatives[] = {0, 0, 0}, positives[] = {1, 1, 1};
    pn_metrics m;
    assert_int_equal(pn_metrics_compute(prob, negatives, 3, 0.5f, &m, NULL), PN_OK);
    assert_true(isnan(m.sensitivity));
    assert_true(isnan(m.roc_auc));
    assert_true(isnan(m.pr_auc));
    assert_true(isnan(m.balanced_accuracy));
    assert_near(m.specificity, 2.0 / 3, TOL);
    assert_near(m.precision, 0.0, TOL);
    assert_near(m.f1, 0.0, TOL);

    json_t *j;
    assert_int_equal(pn_metrics_to_json(&m, NULL, &j, NULL), PN_OK);
    assert_true(json_is_null(json_object_get(j, "sensitivity")));
    assert_true(json_is_null(json_object_get(j, "roc_auc")));
    assert_true(json_is_real(json_object_get(j, "specificity")));
    char *text = json_dumps(j, 0);
    assert_non_null(strstr(text, "\"roc_auc\": null"));
    free(text);
    json_decref(j);

    assert_int_equal(pn_metrics_compute(prob, positives, 3, 0.5f, &m, NULL), PN_OK);
    assert_true(isnan(m.specificity));
    assert_true(isnan(m.npv) == 0); /* two predicted negatives, both wrong: npv = 0 */
    assert_near(m.npv, 0.0, TOL);
    assert_near(m.sensitivity, 1.0 / 3, TOL);

    /* All negative, none predicted positive: f1 is 0/0. */
    const float low[] = {0.1f, 0.2f};
    assert_int_equal(pn_metrics_compute(low, negatives, 2, 0.5f, &m, NULL), PN_OK);
    assert_true(isnan(m.f1));
    assert_true(isnan(m.precision));

    const float sep[] = {0.1f, 0.2f, 0.8f, 0.9f};
    const int sep_label[] = {0, 0, 1, 1};
    assert_int_equal(pn_metrics_compute(sep, sep_label, 4, 0.5f, &m, NULL), PN_OK);
    assert_near(m.roc_auc, 1.0, TOL);
    assert_near(m.pr_auc, 1.0, TOL);
    assert_near(m.accuracy, 1.0, TOL);
}

static void test_invalid_input(void **state)
{
    pn_metrics m;
    pn_error err = {0};
    const float prob[] = {0.1f, NAN};
    const int label[] = {0, 1}, bad_label[] = {0, 2};
    assert_int_equal(pn_metrics_compute(prob, label, 2, 0.5f, &m, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "index 1"));
    assert_int_equal(pn_metrics_compute(hand_prob, bad_label, 2, 0.5f, &m, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "label 2"));
    assert_int_equal(pn_metrics_compute(hand_prob, hand_label, 0, 0.5f, &m, &err), PN_EINVAL);
    const float over[] = {0.1f, 1.5f};
    assert_int_equal(pn_metrics_compute(over, label, 2, 0.5f, &m, &err), PN_EINVAL);
    pn_metrics_ci ci;
    const int one_class[] = {1, 1, 1, 1};
    assert_int_equal(pn_metrics_bootstrap(hand_prob, one_class, 4, 0.5f, 100, 1, &ci, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "both classes"));
}

/* Reference: try every distinct score as threshold via pn_metrics_compute. */
static void brute_force_thresholds(const float *prob, const int *label, size_t n, double target,
                                   float *best_sens_t, float *best_j_t)
{
    *best_sens_t = -1;
    *best_j_t = -1;
    double best_j = -INFINITY;
    float *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, prob, n * sizeof *sorted);
    for (size_t i = 0; i < n; i++) /* descending selection order, small n */
        for (size_t k = i + 1; k < n; k++)
            if (sorted[k] > sorted[i]) {
                float t = sorted[i];
                sorted[i] = sorted[k];
                sorted[k] = t;
            }
    for (size_t i = 0; i < n; i++) {
        if (i && sorted[i] == sorted[i - 1])
            continue;
        pn_metrics m;
        assert_int_equal(pn_metrics_compute(prob, label, n, sorted[i], &m, NULL), PN_OK);
        if (*best_sens_t < 0 && m.sensitivity >= target)
            *best_sens_t = sorted[i];
        double j = (double)m.confusion.tp * (double)m.n_neg - (double)m.confusion.fp * (double)m.n_pos;
        if (j > best_j) {
            best_j = j;
            *best_j_t = sorted[i];
        }
    }
    free(sorted);
}

static void test_threshold_selection(void **state)
{
    enum { N = 400 };
    float prob[N];
    int label[N];
    for (uint64_t seed = 1; seed <= 4; seed++) {
        synth(N, 0.4, 1.5, seed % 2 ? 0.02 : 0, seed, prob, label);
        pn_operating_point sens, youden;
        pn_error err = {0};
        assert_int_equal(pn_threshold_for_sensitivity(prob, label, N, 0.95, &sens, &err), PN_OK);
        assert_int_equal(pn_threshold_youden(prob, label, N, &youden, &err), PN_OK);
        float want_sens_t, want_j_t;
        brute_force_thresholds(prob, label, N, 0.95, &want_sens_t, &want_j_t);
        assert_near(sens.threshold, want_sens_t, 0);
        assert_near(youden.threshold, want_j_t, 0);
        assert_true(sens.sensitivity >= 0.95);
        pn_metrics m;
        assert_int_equal(pn_metrics_compute(prob, label, N, sens.threshold, &m, NULL), PN_OK);
        assert_near(m.sensitivity, sens.sensitivity, TOL);
        assert_near(m.specificity, sens.specificity, TOL);
        assert_int_equal(pn_metrics_compute(prob, label, N, youden.threshold, &m, NULL), PN_OK);
        assert_near(m.sensitivity + m.specificity - 1, youden.youden_j, 1e-12);
    }
    /* Target 1.0: the lowest positive score. */
    pn_operating_point p;
    assert_int_equal(pn_threshold_for_sensitivity(hand_prob, hand_label, 4, 1.0, &p, NULL), PN_OK);
    assert_near(p.threshold, 0.35f, 0);
    assert_near(p.specificity, 0.5, TOL);
    assert_int_equal(pn_threshold_for_sensitivity(hand_prob, hand_label, 4, 1.5, &p, NULL), PN_EINVAL);
}

/* Threshold selection at the edges: ties, one class only, perfect
 * separation, extreme targets and invalid input, each with a known answer. */
static void test_threshold_edge_cases(void **state)
{
    pn_operating_point p;
    pn_error err = {0};
    /* every score tied: the one threshold predicts everything positive */
    const float tied[4] = {0.6f, 0.6f, 0.6f, 0.6f};
    const int mixed[4] = {0, 1, 0, 1};
    assert_int_equal(pn_threshold_for_sensitivity(tied, mixed, 4, 0.95, &p, &err), PN_OK);
    assert_near(p.threshold, 0.6f, 0);
    assert_near(p.sensitivity, 1, 0);
    assert_near(p.specificity, 0, 0);
    assert_int_equal(pn_threshold_youden(tied, mixed, 4, &p, &err), PN_OK);
    assert_near(p.threshold, 0.6f, 0);
    assert_near(p.youden_j, 0, 0);
    /* perfect separation: Youden picks the lowest positive score, J = 1 */
    const float sep[6] = {0.1f, 0.2f, 0.3f, 0.7f, 0.8f, 0.9f};
    const int sep_label[6] = {0, 0, 0, 1, 1, 1};
    assert_int_equal(pn_threshold_youden(sep, sep_label, 6, &p, &err), PN_OK);
    assert_near(p.threshold, 0.7f, 0);
    assert_near(p.youden_j, 1, TOL);
    assert_int_equal(pn_threshold_for_sensitivity(sep, sep_label, 6, 1.0, &p, &err), PN_OK);
    assert_near(p.threshold, 0.7f, 0);
    assert_near(p.specificity, 1, TOL);
    /* a tiny target: the highest threshold that catches one positive, even
     * when the top score is a negative */
    const float top_neg[4] = {0.95f, 0.8f, 0.4f, 0.2f};
    const int top_neg_label[4] = {0, 1, 1, 0};
    assert_int_equal(pn_threshold_for_sensitivity(top_neg, top_neg_label, 4, 1e-9, &p, &err), PN_OK);
    assert_near(p.threshold, 0.8f, 0);
    assert_near(p.sensitivity, 0.5, TOL);
    /* one class only */
    const int all_pos[4] = {1, 1, 1, 1}, all_neg[4] = {0, 0, 0, 0};
    assert_int_equal(pn_threshold_for_sensitivity(sep, all_pos, 4, 0.95, &p, &err), PN_OK);
    assert_true(isnan(p.specificity));
    assert_int_equal(pn_threshold_youden(sep, all_pos, 4, &p, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "both classes"));
    assert_int_equal(pn_threshold_for_sensitivity(sep, all_neg, 4, 0.95, &p, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "no PNEUMONIA"));
    /* invalid input: no examples, NaN or out-of-range scores, bad labels, bad targets */
    assert_int_equal(pn_threshold_youden(sep, sep_label, 0, &p, NULL), PN_EINVAL);
    const float with_nan[2] = {NAN, 0.5f}, above_one[2] = {1.5f, 0.5f};
    const int two[2] = {0, 1}, bad_label[2] = {0, 2};
    assert_int_equal(pn_threshold_youden(with_nan, two, 2, &p, NULL), PN_EINVAL);
    assert_int_equal(pn_threshold_for_sensitivity(above_one, two, 2, 0.9, &p, NULL), PN_EINVAL);
    assert_int_equal(pn_threshold_youden(sep, bad_label, 2, &p, NULL), PN_EINVAL);
    assert_int_equal(pn_threshold_for_sensitivity(sep, sep_label, 6, 0, &p, NULL), PN_EINVAL);
    assert_int_equal(pn_threshold_for_sensitivity(sep, sep_label, 6, NAN, &p, NULL), PN_EINVAL);
}

/* Training curves survive their JSON form (model cards, reports); anything
 * without curves reads as no history. */
static void test_history_json_round_trip(void **state)
{
    const float tl[3] = {0.9f, 0.5f, 0.25f}, vl[3] = {1, 0.75f, 0.5f}, ta[3] = {0.5f, 0.75f, 0.875f},
                va[3] = {0.5f, 0.625f, 0.75f}, auc[3] = {0.6f, 0.7f, 0.8f};
    pn_history h = {3, tl, vl, ta, va, auc}, back;
    char *text = pn_history_to_json(&h);
    assert_non_null(text);
    for (int k = 0; k < PN_HISTORY_COLUMNS; k++)
        assert_non_null(strstr(text, pn_history_keys[k]));
    assert_int_equal(pn_history_from_json(text, &back), 1);
    assert_int_equal(back.epochs, 3);
    for (int k = 0; k < PN_HISTORY_COLUMNS; k++)
        for (int e = 0; e < 3; e++)
            assert_near(pn_history_column(&back, k)[e], pn_history_column(&h, k)[e], 1e-6);
    pn_history_free(&back);
    assert_null(back.val_auc);
    free(text);
    const char *none[] = {NULL, "", "not json", "{}", "{\"train_loss\": []}", "[1, 2]"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        assert_int_equal(pn_history_from_json(none[i], &back), 0);
        assert_int_equal(back.epochs, 0);
        assert_null(back.train_loss);
    }
}

static void ci_width_sum(const pn_metrics_ci *ci, double *sum)
{
    *sum = 0;
    for (int k = 0; k < PN_CI_COUNT; k++)
        *sum += ci->hi[k] - ci->lo[k];
}

static void test_bootstrap(void **state)
{
    enum { SMALL = 300, LARGE = 3000 };
    static float prob[LARGE];
    static int label[LARGE];
    pn_metrics_ci small, large, again, other;
    pn_metrics m;
    synth(SMALL, 0.5, 2, 0, 7, prob, label);
    assert_int_equal(pn_metrics_compute(prob, label, SMALL, 0.5f, &m, NULL), PN_OK);
    assert_int_equal(pn_metrics_bootstrap(prob, label, SMALL, 0.5f, 500, 42, &small, NULL), PN_OK);
    assert_int_equal(pn_metrics_bootstrap(prob, label, SMALL, 0.5f, 500, 42, &again, NULL), PN_OK);
    assert_int_equal(pn_metrics_bootstrap(prob, label, SMALL, 0.5f, 500, 43, &other, NULL), PN_OK);
    assert_memory_equal(small.lo, again.lo, sizeof small.lo);
    assert_memory_equal(small.hi, again.hi, sizeof small.hi);
    assert_true(memcmp(small.lo, other.lo, sizeof small.lo) != 0);
    for (int k = 0; k < PN_CI_COUNT; k++) {
        double v = pn_metrics_get(&m, (pn_ci_metric)k);
        if (!(small.lo[k] <= v && v <= small.hi[k]) || !(small.hi[k] - small.lo[k] > 0))
            fail_msg("%s: %g not in [%g, %g]", pn_ci_metric_name((pn_ci_metric)k), v, small.lo[k],
                     small.hi[k]);
    }
    synth(LARGE, 0.5, 2, 0, 7, prob, label);
    assert_int_equal(pn_metrics_bootstrap(prob, label, LARGE, 0.5f, 500, 42, &large, NULL), PN_OK);
    for (int k = 0; k < PN_CI_COUNT; k++)
        if (!(large.hi[k] - large.lo[k] < small.hi[k] - small.lo[k]))
            fail_msg("%s: CI did not narrow with 10x n", pn_ci_metric_name((pn_ci_metric)k));
    double ws, wl;
    ci_width_sum(&small, &ws);
    ci_width_sum(&large, &wl);
    print_message("CI width sum n=%d: %.4f, n=%d: %.4f (expect ~sqrt(10) ratio)\n", SMALL, ws, LARGE, wl);
    assert_true(ws / wl > 2 && ws / wl < 5);
}

static void test_bootstrap_speed(void **state)
{
    enum { N = 5000 };
    static float prob[N];
    static int label[N];
    synth(N, 0.6, 2, 0.001, 11, prob, label);
    pn_metrics_ci ci;
    int resamples = pn_test_sanitized() ? 100 : 1000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pn_metrics_bootstrap(prob, label, N, 0.5f, resamples, 1, &ci, NULL), PN_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    print_message("bootstrap n=%d, %d resamples: %.3f s\n", N, resamples, secs);
    if (!pn_test_sanitized())
        assert_true(secs < 5.0);
}

static void test_temperature(void **state)
{
    size_t n = pn_test_sanitized() ? 4000 : 40000;
    float *logit = malloc(n * sizeof *logit), *prob = malloc(n * sizeof *prob);
    int *label = malloc(n * sizeof *label);
    rng_state = 99;
    const double true_t = 2.5;
    for (size_t i = 0; i < n; i++) {
        double z = 2.5 * gaussian(); /* calibrated log-odds */
        label[i] = uniform() < 1 / (1 + exp(-z));
        logit[i] = (float)(z * true_t); /* an overconfident model */
    }
    double t;
    pn_error err = {0};
    assert_int_equal(pn_temperature_fit(logit, label, n, &t, &err), PN_OK);
    print_message("fitted T = %.4f (true %.2f, n = %zu)\n", t, true_t, n);
    assert_near(t, true_t, pn_test_sanitized() ? 0.3 : 0.1);

    /* Recalibrated probabilities are better (lower log loss) than raw ones. */
    pn_metrics raw, cal;
    pn_temperature_apply(logit, n, 1.0, prob);
    assert_int_equal(pn_metrics_compute(prob, label, n, 0.5f, &raw, NULL), PN_OK);
    pn_temperature_apply(logit, n, t, prob);
    assert_int_equal(pn_metrics_compute(prob, label, n, 0.5f, &cal, NULL), PN_OK);
    assert_true(cal.log_loss < raw.log_loss);
    assert_true(cal.ece < raw.ece);
    assert_near(cal.roc_auc, raw.roc_auc, 1e-6); /* monotone: ranking unchanged */

    /* Round trip through probabilities. */
    float back[3], p3[] = {0.2f, 0.5f, 0.9f};
    pn_prob_to_logit(p3, 3, back);
    assert_near(back[0], logf(0.25f), 1e-5);
    assert_near(back[1], 0.0f, 1e-6);
    assert_int_equal(pn_temperature_fit(logit, label, 0, &t, &err), PN_EINVAL);
    free(logit);
    free(prob);
    free(label);
}

static void test_classification_report(void **state)
{
    pn_metrics m;
    char *text;
    assert_int_equal(pn_metrics_compute(hand_prob, hand_label, 4, 0.5f, &m, NULL), PN_OK);
    assert_int_equal(pn_classification_report(&m, &text, NULL), PN_OK);
    /* What sklearn.metrics.classification_report prints for the same input. */
    const char *expected =
        "              precision    recall  f1-score   support\n\n"
        "      NORMAL       0.67      1.00      0.80         2\n"
        "   PNEUMONIA       1.00      0.50      0.67         2\n\n"
        "    accuracy                           0.75         4\n"
        "   macro avg       0.83      0.75      0.73         4\n"
        "weighted avg       0.83      0.75      0.73         4\n";
    assert_string_equal(text, expected);
    free(text);

    const int negatives[] = {0, 0, 0, 0};
    assert_int_equal(pn_metrics_compute(hand_prob, negatives, 4, 0.5f, &m, NULL), PN_OK);
    assert_int_equal(pn_classification_report(&m, &text, NULL), PN_OK);
    assert_non_null(strstr(text, "nan"));
    assert_null(strstr(text, "-nan"));
    free(text);
}

static double get_real(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("JSON key %s missing or not a number", key);
    return json_number_value(v);
}

static void test_json_consistency(void **state)
{
    enum { N = 500 };
    float prob[N];
    int label[N];
    synth(N, 0.3, 1.5, 0, 5, prob, label);
    pn_metrics m;
    pn_metrics_ci ci;
    assert_int_equal(pn_metrics_compute(prob, label, N, 0.4f, &m, NULL), PN_OK);
    assert_int_equal(pn_metrics_bootstrap(prob, label, N, 0.4f, 200, 3, &ci, NULL), PN_OK);
    json_t *j;
    assert_int_equal(pn_metrics_to_json(&m, &ci, &j, NULL), PN_OK);
    /* Round trip through text, as a consumer of metrics.json would see it. */
    char *text = json_dumps(j, JSON_REAL_PRECISION(17));
    json_decref(j);
    j = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(j);
    json_t *c = json_object_get(j, "confusion");
    double tp = get_real(c, "tp"), fp = get_real(c, "fp"), tn = get_real(c, "tn"), fn = get_real(c, "fn");
    double n = get_real(j, "n");
    assert_near(tp + fp + tn + fn, n, 0);
    assert_near(get_real(j, "accuracy"), (tp + tn) / n, TOL);
    assert_near(get_real(j, "sensitivity"), tp / (tp + fn), TOL);
    assert_near(get_real(j, "specificity"), tn / (tn + fp), TOL);
    assert_near(get_real(j, "precision"), tp / (tp + fp), TOL);
    assert_near(get_real(j, "npv"), tn / (tn + fn), TOL);
    assert_near(get_real(j, "f1"), 2 * tp / (2 * tp + fp + fn), TOL);
    assert_near(get_real(j, "balanced_accuracy"),
                        (tp / (tp + fn) + tn / (tn + fp)) / 2, TOL);
    assert_true((float)get_real(j, "threshold") == 0.4f); /* written as the shortest "0.4" */
    const char *keys[] = {"roc_auc", "pr_auc", "brier", "ece", "log_loss", "n_pos", "n_neg"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        get_real(j, keys[i]);
    json_t *ci95 = json_object_get(j, "ci95");
    for (int k = 0; k < PN_CI_COUNT; k++) {
        const char *name = pn_ci_metric_name((pn_ci_metric)k);
        json_t *pair = json_object_get(ci95, name);
        if (!json_is_array(pair) || json_array_size(pair) != 2)
            fail_msg("ci95.%s is not [lo, hi]", name);
        double lo = json_number_value(json_array_get(pair, 0)), hi = json_number_value(json_array_get(pair, 1));
        double v = get_real(j, name);
        if (!(lo <= v && v <= hi))
            fail_msg("ci95.%s = [%g, %g] excludes %g", name, lo, hi, v);
    }
    json_decref(j);
}

/* A few positives, all found: the bootstrap alone would claim 100-100%. */
static void test_degenerate_intervals(void **state)
{
    /* 8 positives all above the threshold, 8 negatives, 6 below it. */
    static const float prob[16] = {0.9f, 0.8f, 0.95f, 0.7f, 0.85f, 0.99f, 0.6f, 0.75f,
                                   0.1f, 0.2f, 0.3f, 0.05f, 0.6f, 0.65f, 0.15f, 0.25f};
    static const int label[16] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    pn_metrics_ci ci;
    assert_int_equal(pn_metrics_bootstrap(prob, label, 16, 0.5f, 500, 3, &ci, NULL), PN_OK);
    double lo, hi;
    pn_wilson_interval(8, 8, &lo, &hi);
    assert_float_equal(ci.lo[PN_CI_SENSITIVITY], lo, 1e-12);
    assert_float_equal(ci.hi[PN_CI_SENSITIVITY], 1.0, 1e-12);
    assert_true(lo > 0.6 && lo < 0.7); /* Wilson 95% for 8/8: 0.676 */
    /* Specificity 6/8 varies across resamples: a real percentile interval. */
    assert_true(ci.hi[PN_CI_SPECIFICITY] - ci.lo[PN_CI_SPECIFICITY] > 0.1);
    /* Every interval has width or is NaN ("n too small"): none claims certainty. */
    for (int k = 0; k < PN_CI_COUNT; k++)
        assert_true(isnan(ci.lo[k]) || ci.hi[k] - ci.lo[k] > 1e-6);

    /* Wilson against hand values (z = 1.96): 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634]. */
    static const struct {
        size_t k, n;
        double lo, hi;
    } cases[] = {{0, 10, 0.0, 0.27753}, {5, 10, 0.23659, 0.76341}, {10, 10, 0.72247, 1.0}, {1, 1, 0.20654, 1.0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pn_wilson_interval(cases[i].k, cases[i].n, &lo, &hi);
        assert_float_equal(lo, cases[i].lo, 1e-4);
        assert_float_equal(hi, cases[i].hi, 1e-4);
    }
    pn_wilson_interval(0, 0, &lo, &hi);
    assert_true(isnan(lo) && isnan(hi));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_example),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_threshold_selection),
        cmocka_unit_test(test_threshold_edge_cases),
        cmocka_unit_test(test_history_json_round_trip),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_degenerate_intervals),
        cmocka_unit_test(test_bootstrap_speed),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_classification_report),
        cmocka_unit_test(test_json_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
