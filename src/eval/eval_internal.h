/* Shared by the eval sources: scores sorted once and grouped by equal value,
 * so that every rank-based quantity (confusion at a threshold, ROC AUC,
 * average precision, curves) is one linear walk, optionally with per-example
 * multiplicities (bootstrap resamples). Cross-file internals carry an ev_
 * prefix so they cannot clash with other pneumo modules at link time. */
#ifndef PNEUMO_EVAL_INTERNAL_H
#define PNEUMO_EVAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/eval.h"

typedef struct sorted_scores {
    size_t n, n_groups;
    float *score;       /* n scores, ascending */
    uint8_t *label;     /* labels in the same order */
    size_t *group_end;  /* group g = [group_end[g-1], group_end[g]) of equal scores */
} sorted_scores;

/* Validates labels/probabilities (messages name the offending index). */
pn_status ev_check_inputs(const float *prob, const int *label, size_t n, pn_error *err);
/* Validates the inputs (ev_check_inputs), then sorts them by score and
 * groups equal scores. */
pn_status ev_sorted_scores_init(sorted_scores *s, const float *prob, const int *label, size_t n,
                                pn_error *err);
void ev_sorted_scores_free(sorted_scores *s);

/* Weighted confusion at threshold plus ROC AUC and AP. weight[k] is the
 * multiplicity of sorted example k (NULL = 1 each). */
typedef struct rank_summary {
    double tp, fp, tn, fn;
    double roc_auc, pr_auc;
} rank_summary;

void ev_summarize_ranks(const sorted_scores *s, const uint32_t *weight, float threshold,
                        rank_summary *out);

/* Fills the ratio metrics of m from its confusion counts (given as doubles
 * so bootstrap multiplicities can be used). */
void ev_fill_ratios(double tp, double fp, double tn, double fn, pn_metrics *m);

/* ROC points (fpr, tpr) from (0,0) to (1,1), one per distinct threshold
 * (descending), and PR points (recall, precision) starting at (0,1) as
 * sklearn's precision_recall_curve. Arrays are malloc'ed; *count set. */
pn_status ev_roc_points(const sorted_scores *s, double **fpr, double **tpr, size_t *count,
                        pn_error *err);
pn_status ev_pr_points(const sorted_scores *s, double **recall, double **precision, size_t *count,
                       pn_error *err);

/* Canonical quiet NaN (positive sign, so it prints as "nan"). */
double ev_nan_value(void);

#endif
