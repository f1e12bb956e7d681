/* Cross-check of pn_metrics_compute, threshold selection and the
 * classification report against scikit-learn: the C results for fixed score
 * vectors go to a JSON file that tests/sklearn_check.py recomputes with
 * sklearn and compares (tolerance 1e-9 absolute). Skipped (77) without
 * /usr/bin/python3 + sklearn. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "pneumo/eval.h"

#define PYTHON "/usr/bin/python3"

static uint64_t rng_state;

static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

typedef struct test_case {
    const char *name;
    size_t n;
    float threshold;
    float *prob;
    int *label;
} test_case;

typedef enum shape { RANDOM, TIES, SEPARABLE, ALL_NEG, ALL_POS, CONSTANT, AT_THRESHOLD, EXTREMES } shape;

static test_case make_case(const char *name, shape kind, size_t n, double pos_rate, float threshold,
                           uint64_t seed)
{
    test_case c = {name, n, threshold, malloc(n * sizeof(float)), malloc(n * sizeof(int))};
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        int y = kind == ALL_NEG ? 0 : kind == ALL_POS ? 1 : uniform() < pos_rate;
        double u = uniform(), p;
        switch (kind) {
        case TIES: p = round((0.35 * u + (y ? 0.4 : 0.25)) * 10) / 10; break;
        case SEPARABLE: p = y ? 0.6 + 0.4 * u : 0.4 * u; break;
        case CONSTANT: p = 0.5; break;
        case AT_THRESHOLD: p = u < 0.3 ? threshold : 0.6 * u + (y ? 0.3 : 0.1); break;
        case EXTREMES: p = u < 0.2 ? 0 : u < 0.4 ? 1 : (y ? u : 1 - u); break;
        default: p = y ? pow(u, 0.4) : pow(u, 1.6); break;
        }
        c.label[i] = y;
        c.prob[i] = (float)p;
    }
    return c;
}

static json_t *float_array(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i])); /* exact: a float is a double */
    return a;
}

static json_t *case_json(const test_case *c)
{
    pn_metrics m;
    pn_error err = {0};
    if (pn_metrics_compute(c->prob, c->label, c->n, c->threshold, &m, &err))
        fail_msg("%s: %s", c->name, err.msg);
    json_t *metrics;
    assert_int_equal(pn_metrics_to_json(&m, NULL, &metrics, NULL), PN_OK);
    json_object_set_new(metrics, "threshold", json_real(c->threshold)); /* exact float value */
    char *report;
    assert_int_equal(pn_classification_report(&m, &report, NULL), PN_OK);
    json_t *labels = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(labels, json_integer(c->label[i]));
    json_t *obj = json_pack("{ss so so so ss}", "name", c->name, "prob", float_array(c->prob, c->n),
                            "label", labels, "c", metrics, "report", report);
    free(report);

    pn_operating_point op;
    if (m.n_pos > 0 && pn_threshold_for_sensitivity(c->prob, c->label, c->n, 0.95, &op, NULL) == PN_OK)
        json_object_set_new(obj, "thr_sens95", json_real(op.threshold));
    if (m.n_pos > 0 && m.n_neg > 0 && pn_threshold_youden(c->prob, c->label, c->n, &op, NULL) == PN_OK)
        json_object_set_new(obj, "thr_youden", json_real(op.threshold));
    return obj;
}

static int have_sklearn(void)
{
    return system(PYTHON " -c 'import sklearn, numpy' >/dev/null 2>&1") == 0;
}

static void test_against_sklearn(void **state)
{
    test_case cases[] = {
        make_case("random_balanced", RANDOM, 2000, 0.5, 0.5f, 1),
        make_case("random_imbalanced", RANDOM, 1500, 0.08, 0.3f, 2),
        make_case("ties", TIES, 400, 0.6, 0.5f, 3),
        make_case("separable", SEPARABLE, 300, 0.4, 0.5f, 4),
        make_case("all_negative", ALL_NEG, 50, 0, 0.5f, 5),
        make_case("all_positive", ALL_POS, 50, 1, 0.5f, 6),
        make_case("constant_scores", CONSTANT, 40, 0.5, 0.5f, 7),
        make_case("at_threshold", AT_THRESHOLD, 300, 0.5, 0.45f, 8),
        make_case("extremes_0_1", EXTREMES, 200, 0.5, 0.5f, 9),
        make_case("tiny", RANDOM, 3, 0.5, 0.5f, 10),
    };
    size_t n_cases = sizeof cases / sizeof cases[0];
    json_t *all = json_array();
    for (size_t i = 0; i < n_cases; i++)
        json_array_append_new(all, case_json(&cases[i]));
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/sklearn_cases.json", pn_test_tmpdir());
    assert_int_equal(json_dump_file(all, path, JSON_REAL_PRECISION(17)), 0);
    json_decref(all);
    for (size_t i = 0; i < n_cases; i++) {
        free(cases[i].prob);
        free(cases[i].label);
    }
    snprintf(cmd, sizeof cmd, PYTHON " '%s/tests/sklearn_check.py' '%s'", pn_test_source_dir(), path);
    fflush(stdout);
    int rc = system(cmd);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        fail_msg("sklearn_check.py reported mismatches (exit %d)", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
}

int main(void)
{
    if (!have_sklearn()) {
        printf("SKIP: %s with scikit-learn and numpy is not available (apt-get install python3-sklearn)\n",
               PYTHON);
        return PN_TEST_SKIP;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_sklearn)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
